"""Scale benchmark (issue 21): large studies, today against after, on the same machine in the same run.

Run from the repository root (about 10 minutes; needs git, and Chromium for the cold-start row)::

    python bench/bench_scale.py [--baseline REV] [--only k12,n10000,...] [--json OUT.json]

"today" is the library as of ``--baseline`` (default: the commit before the issue-21 work), exported with
``git archive`` into a temporary folder; "after" is this working tree. Every case runs in a fresh process
with the same inputs (bench/scale_cases.py, fixed seeds); memory is the peak RSS of that process
(``os.wait4``'s ``ru_maxrss``). Rows (the issue's table):

1. ``k12``: ``python -m doe space`` on 12 factors, 182 runs, quadratic, 7 CQAs. Target < 20 s, < 1.5 GB.
2. ``n10000``: ``python -m doe space`` on 5 factors, 10,000 runs. Target < 30 s, < 2 GB.
3. ``fits``: every CQA of 1,000 runs fitted (``fit_all``, quadratic) against statsmodels on the same data
   with the same outputs (formula OLS + Type II ``anova_lm`` per CQA: coefficients, SEs and the ANOVA); the
   ratio of the medians of 5. Target: within 3x. Also printed: the ratio to bare ``sm.OLS(y, X).fit()`` on a
   prebuilt model matrix (coefficients and SEs only), the issue's "26x".
4. ``load``: one 12-factor quadratic fit (91 terms, 182 runs) with all its tables (``FittedModel.to_json``)
   while two busy processes load both cores.
   Target: no thread oversubscription (within 3x of the unloaded time; the issue measured 29.8 s against
   0.6 s with one BLAS thread).
5. ``design``: ``python -m doe design --type optimal --model quadratic --seed 1`` on 10 factors (D-optimal,
   default runs and starts); the D criterion is printed beside the time. Target: >= 2.5x faster, same D.
6. ``report``: the PDF report of the bundled example built twice in one process; the second (warm) build.
   Target < 5 s.
7. ``cold``: ``streamlit run app.py`` until the Home page shows in headless Chromium, against a hello-world
   Streamlit app measured the same way (median of 3). Target <= 1.3x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import scale_cases  # noqa: E402  (bench/ is the script's folder)

#: The last commit before the issue-21 work: "today".
BASELINE = "9a4fe88"
CASES = ("k12", "n10000", "fits", "load", "design", "report", "cold")


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``cmd`` in ``cwd``; wall seconds, peak RSS (MB), exit status and the last lines of its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return {"seconds": wall, "peak_mb": usage.ru_maxrss / 1024, "status": os.waitstatus_to_exitcode(status),
            "tail": text.strip().splitlines()[-3:]}


def export(rev: str, folder: Path) -> Path:
    """The library as of ``rev``, exported into ``folder`` (git archive)."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


FITS = """
import statistics, sys, time
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm
import doe.analysis as analysis
from doe.analysis import ModelChoice, fit_all
from doe.runs import read_results
from doe.study import Study
study = Study.load(sys.argv[1]); runs = read_results(study, sys.argv[2]).table
def ours():
    analysis._RECENT_ANALYSES.clear()
    for fm in fit_all(study, runs, default=ModelChoice(model="quadratic")).models.values():
        fm.to_json()  # coefficients, SEs, the ANOVA and every other table (computed when first read)
xs = [f.name for f in study.factors]
rhs = "(" + " + ".join(xs) + ")**2 + " + " + ".join(f"I({x}**2)" for x in xs)
def theirs():
    for y in study.response_names:
        anova_lm(smf.ols(f"{y} ~ {rhs}", data=runs).fit(), typ=2)
import numpy as np, patsy, statsmodels.api as sm
X = np.asarray(patsy.dmatrix(rhs, runs))
def bare():
    for y in study.response_names:
        sm.OLS(runs[y].to_numpy(float), X).fit()
def median(fn):
    fn(); t = []
    for _ in range(5):
        s = time.perf_counter(); fn(); t.append(time.perf_counter() - s)
    return statistics.median(t)
print(median(ours), median(theirs), median(bare))
"""

ONE_FIT = """
import sys, time
from doe.fit import fit_model
from doe.runs import read_results
from doe.study import Study
study = Study.load(sys.argv[1]); runs = read_results(study, sys.argv[2]).table
start = time.perf_counter()
fit_model(study, runs, "Y1", model="quadratic").to_json()  # the fit and every table (ANOVA, diagnostics, ...)
print(time.perf_counter() - start)
"""

REPORT = """
import sys, tempfile, time
from pathlib import Path
from doe.cli import main
out = Path(tempfile.mkdtemp())
args = ["report", "data/msc_expansion.yaml", "data/msc_example_results.csv", "--out", str(out / "r.pdf")]
start = time.perf_counter(); main(args); cold = time.perf_counter() - start
start = time.perf_counter(); main(args); warm = time.perf_counter() - start
print(cold, warm)
"""

HELLO = "import streamlit as st\nst.title('Hello')\n"


def _numbers(result: dict[str, Any]) -> list[float]:
    for line in reversed(result["tail"]):
        try:
            return [float(x) for x in line.split()]
        except ValueError:
            continue
    raise RuntimeError(f"no numbers in the output: {result['tail']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_page_seconds(app: Path, cwd: Path, wait_for: str) -> float:
    """Seconds from starting ``streamlit run app`` until ``wait_for`` shows in headless Chromium."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    data = tempfile.mkdtemp()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
        page = browser.new_page()
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
                                 "--server.port", str(port), "--browser.gatherUsageStats", "false"], cwd=cwd,
                                env={**os.environ, "DOE_DATA_DIR": data}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}", timeout=2000)
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    time.sleep(0.02)
            page.get_by_text(wait_for).first.wait_for(timeout=120_000)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
            seconds = time.perf_counter() - start
        finally:
            proc.kill()
            proc.wait()
            browser.close()
            shutil.rmtree(data, ignore_errors=True)
    return seconds


def measure(case: str, code: Path, files: dict[str, dict[str, Path]], scratch: Path) -> dict[str, Any]:
    """One row's numbers for the library in ``code``."""
    py = sys.executable
    if case in ("k12", "n10000"):
        r = run([py, "-m", "doe", "space", str(files[case]["study"]), str(files[case]["runs"]), "--json",
                 str(scratch / f"{case}.json")], code)
        return {"seconds": r["seconds"], "peak_mb": r["peak_mb"], "ok": r["status"] == 0}
    if case == "fits":
        ours, theirs, bare = _numbers(run([py, "-c", FITS, str(files["n1000"]["study"]), str(files["n1000"]["runs"])],
                                          code))
        return {"seconds": ours, "statsmodels_seconds": theirs, "ratio": ours / theirs, "bare_ols_seconds": bare,
                "bare_ratio": ours / bare, "ok": True}
    if case == "load":
        args = [py, "-c", ONE_FIT, str(files["k12"]["study"]), str(files["k12"]["runs"])]
        quiet = _numbers(run(args, code))[0]
        busy = [subprocess.Popen([py, "-c", "while True: pass"]) for _ in range(2)]
        try:
            loaded = _numbers(run(args, code, timeout=600))[0]
        finally:
            for b in busy:
                b.kill()
                b.wait()
        return {"seconds": loaded, "unloaded_seconds": quiet, "ratio": loaded / quiet, "ok": True}
    if case == "design":
        out = scratch / "d.json"
        r = run([py, "-m", "doe", "design", str(files["k10"]["study"]), "--type", "optimal", "--model", "quadratic",
                 "--seed", "1", "--out", str(scratch / "d.csv"), "--json", str(out)], code)
        info = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
        d = info.get("d_criterion")
        return {"seconds": r["seconds"], "peak_mb": r["peak_mb"], "d": d, "ok": r["status"] == 0}
    if case == "report":
        cold, warm = _numbers(run([py, "-c", REPORT], code))
        return {"seconds": warm, "cold_seconds": cold, "ok": True}
    if case == "cold":
        hello = scratch / "hello.py"
        hello.write_text(HELLO, encoding="utf-8")
        app = statistics.median(first_page_seconds(code / "app.py", code, "QbD design-of-experiments workbench")
                                for _ in range(3))
        base = statistics.median(first_page_seconds(hello, scratch, "Hello") for _ in range(3))
        return {"seconds": app, "hello_seconds": base, "ratio": app / base, "ok": True}
    raise ValueError(case)


TARGETS = {
    "k12": ("12 factors, 182 runs (space)", lambda r: r["seconds"] < 20 and r["peak_mb"] < 1536, "< 20 s, < 1.5 GB"),
    "n10000": ("5 factors, 10,000 runs (space)", lambda r: r["seconds"] < 30 and r["peak_mb"] < 2048, "< 30 s, < 2 GB"),
    "fits": ("all-CQA fits, 1,000 runs (x statsmodels)", lambda r: r["ratio"] <= 3, "<= 3x statsmodels"),
    "load": ("one 12-factor fit under load", lambda r: r["ratio"] <= 3, "no oversubscription (<= 3x unloaded)"),
    "design": ("optimal design, 10 factors quadratic", None, ">= 2.5x faster, same D"),
    "report": ("PDF report, bundled example (warm)", lambda r: r["seconds"] < 5, "< 5 s warm"),
    "cold": ("cold start to the first page (x hello world)", lambda r: r["ratio"] <= 1.3, "<= 1.3x"),
}


def cell(case: str, r: dict[str, Any] | None) -> str:
    """A result as the table shows it."""
    if r is None:
        return "not run"
    if not r.get("ok", True):
        return f"failed after {r['seconds']:.1f} s"
    if case in ("k12", "n10000", "design"):
        text = f"{r['seconds']:.1f} s, {r['peak_mb'] / 1024:.2f} GB"
        return text + (f", D {r['d']:.6f}" if case == "design" and r.get("d") is not None else "")
    if case == "fits":
        return (f"{r['seconds']:.2f} s = {r['ratio']:.1f}x statsmodels with the same outputs "
                f"({r['statsmodels_seconds']:.2f} s), {r['bare_ratio']:.0f}x bare OLS ({r['bare_ols_seconds']:.3f} s)")
    if case == "load":
        return f"{r['seconds']:.2f} s = {r['ratio']:.1f}x unloaded ({r['unloaded_seconds']:.2f} s)"
    if case == "report":
        return f"{r['seconds']:.1f} s (first build {r['cold_seconds']:.1f} s)"
    return f"{r['seconds']:.2f} s = {r['ratio']:.2f}x hello world ({r['hello_seconds']:.2f} s)"


def main() -> None:
    """Measure every case today and after, and print the issue's table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision of 'today' (default {BASELINE})")
    parser.add_argument("--only", help="comma-separated cases: " + ",".join(CASES))
    parser.add_argument("--no-baseline", action="store_true", help="measure this working tree only")
    parser.add_argument("--json", help="write the numbers as JSON")
    args = parser.parse_args()
    cases = args.only.split(",") if args.only else list(CASES)
    scratch = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        files = scale_cases.write(scratch / "cases")
        today_code = None if args.no_baseline else export(args.baseline, scratch / "today")
        results: dict[str, dict[str, Any]] = {}
        for case in cases:
            row: dict[str, Any] = {}
            for label, code in (("today", today_code), ("after", ROOT)):
                if code is None:
                    continue
                work = scratch / f"{case}_{label}"
                work.mkdir()
                row[label] = measure(case, code, files, work)
                print(f"{case:<8} {label:<6} {cell(case, row[label])}", flush=True)
            results[case] = row
        print("\n| case | today | after | target | met |\n|---|---|---|---|---|")
        for case in cases:
            title, check, target = TARGETS[case]
            today, after = results[case].get("today"), results[case].get("after")
            if case == "design":
                met = (today is not None and after is not None and after["ok"]
                       and today["seconds"] / after["seconds"] >= 2.5 and after.get("d") is not None
                       and abs(after["d"] - today["d"]) <= 1e-9 * abs(today["d"]))
            else:
                met = bool(after and after.get("ok", True) and check and check(after))
            print(f"| {title} | {cell(case, today)} | {cell(case, after)} | {target} | {'yes' if met else 'NO'} |")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
