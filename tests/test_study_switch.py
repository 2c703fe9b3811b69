"""Switching studies: after opening study B from Home, every page shows B's own state (its runs,
its model choices, its design space), never what was on screen for study A (issue 14)."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from doe.store import Store, User, default_url
from doe.study import Factor, Response, Study
from tests.conftest import ROOT, app_with_example_results

APP = str(ROOT / "app.py")
A = "MSC expansion"
B = "Study B"
#: Study B: two factors, one CQA and a 3 x 3 factorial of runs whose names and numbers appear nowhere in study A.
STUDY_B = Study(name=B, factors=[Factor("Temperature", "continuous", 36.5, 38.5, units="degC"),
                                 Factor("pH", "continuous", 7.0, 7.4)],
                responses=[Response("Titre", units="g/L", goal="maximize", lower=1.5)])
TITRE = [1.61, 1.72, 1.70, 1.80, 1.93, 1.88, 1.74, 1.85, 1.77]
RUNS_B = pd.DataFrame({"Run": range(1, 10), "Temperature": [36.5, 37.5, 38.5] * 3,
                       "pH": [7.0] * 3 + [7.2] * 3 + [7.4] * 3, "Titre": TITRE})


def _study_a_with_runs_open() -> AppTest:
    """Study A (the example) saved with its 40 runs, open on the Runs page; study B saved with 3 runs."""
    at = app_with_example_results(180)
    assert at.session_state["study"].name == A
    db = Store.open(default_url())
    db.save_study(STUDY_B, User("tester"))
    db.append_runs(B, RUNS_B, User("tester"))
    at.switch_page("pages/runs.py").run()
    assert len(_runs_shown(at)) == 40  # study A's runs on screen: the Runs page made its snapshot
    return at


def _runs_shown(at: AppTest) -> pd.DataFrame:
    return at.session_state[f"_runs_snapshot_{at.session_state['runs_editor_gen'] if 'runs_editor_gen' in at.session_state else 0}"]


def _open_b(at: AppTest) -> AppTest:
    at.switch_page("pages/home.py").run()
    at.selectbox(key="open_study_name").set_value(B)
    at.button(key="open_study").click().run()  # opens B and lands on the Runs page
    assert not at.exception, at.exception
    assert at.session_state["study"].name == B
    return at


def test_runs_page_shows_the_opened_study_runs_after_a_switch():
    at = _open_b(_study_a_with_runs_open())
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    shown = _runs_shown(at)
    assert shown["Run"].tolist() == list(range(1, 10)) and shown["Titre"].tolist() == TITRE
    assert any("9 runs saved; results entered: Titre 9" in c.value for c in at.caption)


def test_every_page_shows_the_opened_study_after_a_switch():
    at = _open_b(_study_a_with_runs_open())
    at.switch_page("pages/models.py").run()  # study A's choices would be kept by the Models page
    assert not at.exception, at.exception
    assert set(at.session_state["model_choices"]) <= {"Titre"}
    for page in ["pages/runs.py", "pages/models.py", "pages/explore.py", "pages/space.py", "pages/versions.py",
                 "pages/report.py", "pages/design.py", "pages/study.py"]:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
        text = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.warning, *at.success])
        for a_only in ("Viability", "Harvest reagent", A):  # names only study A has
            assert a_only not in text, (page, a_only, text[:400])


def test_switching_back_shows_study_a_again():
    at = _open_b(_study_a_with_runs_open())
    at.switch_page("pages/home.py").run()
    at.selectbox(key="open_study_name").set_value(A)
    at.button(key="open_study").click().run()
    assert not at.exception, at.exception
    at.switch_page("pages/runs.py").run()
    assert not at.error, [e.value for e in at.error]
    assert len(_runs_shown(at)) == 40 and "Viability" in _runs_shown(at)
