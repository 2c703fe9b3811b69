"""The repository stands on its own: nothing refers to files outside it or to one machine's paths.

Every tracked text file (``git ls-files``) is scanned for a sibling folder (the team's shared
folder next to the repository), the workspace this project was built in, home or temporary folders (``/home/<user>``,
``/root/``, ``/Users/``, ``/tmp/``, ``/mnt/``), Windows user folders and ``file://`` addresses.
Paths the operating system defines (``/usr/bin/chromium``, ``/etc/nginx``) are not a machine's.
The published reference cases and the domain sources the app cites live in the repository.
"""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd

from tests.conftest import REFERENCE, ROOT

#: Each pattern: what it catches. A path must start a word (after a space, quote, bracket, ...) so
#: that a web address whose path starts with the same folder name is not a machine path.
START = r"(?<![\w.:/-])"
FORBIDDEN = {
    # written in pieces, so that this file does not hold the strings it looks for
    "a folder outside the repository": re.compile(r"\.\./" + "sha" + r"red\b|\.\.[/\\]\.\.[/\\]"),
    "the build workspace": re.compile(START + "/" + "wo" + "rk/"),
    "a home or temporary folder": re.compile(START + r"/(?:home/[A-Za-z_]|root/|Users/|tmp/|mnt/|scratch/)"),
    "a Windows user folder": re.compile(r"\b[A-Za-z]:[\\/]+(?:Users|Documents and Settings)\b", re.IGNORECASE),
    "a file:// address": re.compile(r"\bfile:///"),
}
THIS = "tests/test_self_contained.py"  # holds the patterns themselves
REFERENCE_CASES = ("algdesign_vignette_optimal_design_benchmarks", "bhh_pilot_plant_2x3_unreplicated_lenth",
                   "desirability_myers_montgomery_conversion_activity", "rsm_chemreact_ccd_two_blocks",
                   "rsm_heli_ccd_4factor_two_blocks")


def tracked_files() -> list[str]:
    """The repository's tracked files; in a copy without git metadata, every file under it."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [f for f in out.decode("utf-8").split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache", "artifacts", "node_modules"}
        return [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def offending_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, what, line) for every line of ``text`` that refers outside the repository."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            if pattern.search(line):
                found.append((number, what, line.strip()[:160]))
    return found


def test_the_patterns_catch_what_they_should():
    bad = ['CASES = Path("/' + 'work/' + 'shared/reference-cases")', "see ../" + "shared/DOMAIN.md", "cache in /home/ana/doe", "open /tmp/x.csv", "file:///C:/data.csv",
           r"C:\Users\ana\study.yaml", "from ../../elsewhere/data.csv"]
    good = ["see docs/domain.md", "CHROMIUM = '/usr/bin/chromium'", "/etc/nginx/certs/fullchain.pem",
            "https://example.org/" + "work/x", "tests/reference_cases/README.md", "the workflow/" + "work/ flow",
            "ratio 1/tmp", "served at /media/x.png"]
    assert [b for b in bad if not offending_lines(b)] == []
    assert [g for g in good if offending_lines(g)] == []


def test_no_tracked_file_refers_outside_the_repository():
    files = tracked_files()
    assert "README.md" in files and "app.py" in files
    problems = []
    for name in files:
        if name == THIS:
            continue
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        text = data.decode("utf-8", errors="replace")
        problems += [f"{name}:{n}: {what}: {line}" for n, what, line in offending_lines(text)]
    assert not problems, "files that refer outside the repository:\n" + "\n".join(problems)


def test_the_tests_read_the_reference_cases_from_the_repository():
    assert REFERENCE == ROOT / "tests" / "reference_cases"
    readme = (REFERENCE / "README.md").read_text(encoding="utf-8")
    for case in REFERENCE_CASES:
        expected = json.loads((REFERENCE / case / "expected.json").read_text(encoding="utf-8"))
        assert expected["source"] and expected["citation"] and expected["expected"], case
        assert len(pd.read_csv(REFERENCE / case / "data.csv")) >= 8, case
        assert f"`{case}`" in readme and expected["citation"] in readme, f"{case}: no citation in the README"


def test_the_domain_sources_the_app_cites_are_in_the_repository():
    domain = (ROOT / "docs" / "domain.md").read_text(encoding="utf-8")
    for source in ("Dominici et al., Cytotherapy 2006", "EudraCT 2010-024041-78", "PMC9289888", "PMC7493356",
                   "Large-Volume Manufacturing of Mesenchymal", "ICH Q8(R2)", "21 CFR 11.10(e)"):
        assert source in domain, source
    cited = [p for p in ("README.md", "pages/scale.py", "data/vessels.csv", "data/msc_expansion.yaml",
                         "data/simulate_example.py") if "docs/domain.md" in (ROOT / p).read_text(encoding="utf-8")]
    assert cited == ["README.md", "pages/scale.py", "data/vessels.csv", "data/msc_expansion.yaml",
                     "data/simulate_example.py"]
