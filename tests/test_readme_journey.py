"""The README's opening section is true: the system packages CI installs are named beside the two
commands, and the example journey it describes reproduces the example data's own design.

The design the simulated example results were run on is ``data/msc_example_design.csv``, written by
``data/simulate_example.py`` from its ``SEED``. Following the README in the app (AppTest: the
Design page, the seed the README gives, Generate design) must give exactly that file's rows.
"""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
#: From the title to the feature list: what a new user reads first.
TOP = README[:README.index("\n## What it does now")]


def journey() -> str:
    """The README paragraph that walks through the example (after the two commands)."""
    paragraphs = [p for p in TOP.split("\n\n") if "Generate design" in p]
    assert len(paragraphs) == 1, "the README's top section should describe the example journey once"
    return paragraphs[0]


def ci_packages() -> list[str]:
    """The Debian packages `.ci/run` installs with apt-get."""
    line = next(x for x in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
                if "apt-get install" in x)
    return [w for w in line.split("apt-get install", 1)[1].split() if not w.startswith("-")]


def test_system_packages_are_named_beside_the_two_commands():
    packages = ci_packages()
    assert {"chromium", "postgresql", "libpango-1.0-0", "fonts-dejavu-core"} <= set(packages)
    install = next((x for x in TOP.splitlines() if "apt-get install" in x), "")
    assert install, "the README's top section gives no apt-get install line for the system packages"
    assert [p for p in packages if p not in install.split()] == []
    assert TOP.index("apt-get install") < TOP.index("streamlit run app.py")


def test_the_journey_names_the_seed_that_made_the_example_design():
    script = (ROOT / "data" / "simulate_example.py").read_text(encoding="utf-8")
    seed = int(re.search(r"^SEED = (\d+)$", script, re.MULTILINE).group(1))
    assert re.search(r"runs=RUNS, seed=SEED\)", script)  # the design is generated with that seed
    text = journey()
    assert f"`{seed}`" in text and "data/msc_example_design.csv" in text


def test_the_journey_names_controls_that_exist():
    """Every bold control the journey names (``**Page → Button**`` or ``**Label**``) is in the app."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))])
    named = re.findall(r"\*\*(.+?)\*\*", journey().replace("\n", " "))
    assert len(named) >= 4
    for item in named:
        for part in item.split(" → "):
            assert f'"{part}' in sources, f"the README names '{part}', which no page shows"


def test_loading_the_example_results_saves_the_example_design_the_readme_names():
    from doe.example import DESIGN_NAME

    assert f'"{DESIGN_NAME}"' in journey()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any(DESIGN_NAME in s.value for s in at.success), [s.value for s in at.success]
    design = at.session_state["design"]
    expected = (ROOT / "data" / "msc_example_design.csv").read_text(encoding="utf-8")
    assert design.table.to_csv(index=False) == expected


def test_generating_with_the_readme_seed_gives_the_example_design():
    found = re.search(r"`(\d+)`", journey())
    assert found, "the README's journey gives no seed"
    seed = found.group(1)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.switch_page("pages/design.py").run()
    assert not at.exception, at.exception
    at.text_input(key="design_seed").set_value(seed)
    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    design = at.session_state["design"]
    expected = (ROOT / "data" / "msc_example_design.csv").read_text(encoding="utf-8")
    assert (design.kind, design.n_runs, design.seed) == ("optimal", 40, int(seed))
    assert design.table.to_csv(index=False) == expected
