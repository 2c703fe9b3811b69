"""Every page renders without an exception (Streamlit AppTest), for the example and a new study."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")
PAGES = ["pages/home.py", "pages/study.py", "pages/design.py", "pages/runs.py", "pages/models.py",
         "pages/explore.py", "pages/scale.py", "pages/versions.py", "pages/audit.py", "pages/report.py"]


def start(user: str | None = "tester"):
    at = AppTest.from_file(APP, default_timeout=120)
    if user:
        at.session_state["_user_name"] = user
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_example(page):
    at = start()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title, f"{page} shows no title"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_new_study(page):
    at = start()
    at.button(key="new_study").click().run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.session_state["study"].name == "New study"


def test_example_default_design_in_two_clicks():
    at = start()
    at.button(key="load_example").click().run()  # click 1: lands on the Design page
    assert not at.exception
    at.button(key="generate").click().run()      # click 2
    assert not at.exception, at.exception
    design = at.session_state["design"]
    assert design.kind == "optimal" and design.n_runs == 40
    assert any("D-efficiency" in m.label for m in at.metric)
    assert not at.error, [e.value for e in at.error]


def test_study_page_reports_bad_edit_without_applying():
    at = start()
    at.switch_page("pages/study.py").run()
    at.text_input[0].set_value("  ")  # blank study name, submitted with the form
    at.button(key="apply").click().run()
    assert not at.exception
    assert any("no name" in e.value for e in at.error)
    assert at.session_state["study"].name == "MSC expansion"


def with_example_results():
    at = start()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("saved as data version 1" in s.value for s in at.success)
    return at


def test_models_page_fits_every_cqa_and_reports_bad_model():
    at = with_example_results()
    at.switch_page("pages/models.py").run()
    assert not at.exception, at.exception
    for name in at.selectbox(key="cqa").options:
        at.selectbox(key="cqa").set_value(name).run()
        assert not at.exception, (name, at.exception)
        assert any(m.label == "R²" for m in at.metric)
    at.text_input[0].set_value("quadratic + Agitaton")
    at.button(key="fit").click().run()
    assert not at.exception
    assert any("Did you mean 'Agitation'" in e.value for e in at.error)


@pytest.mark.parametrize("view", ["Profiler", "Contour", "3D surface", "Main effects", "Interaction"])
def test_explore_views(view):
    at = with_example_results()
    at.switch_page("pages/explore.py").run()
    at.radio(key="explore_view").set_value(view).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_design_space_page_journey():
    at = with_example_results()
    at.switch_page("pages/space.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["In the design space"] == "yes"  # opens at the robust set point
    for view in ("Overlay (means)", "Interval overlay", "Panels by level", "Probability map"):
        at.radio(key="space_view").set_value(view).run()
        assert not at.exception, (view, at.exception)
    at.selectbox(key="sp_Surface").set_value("ULA").run()
    at.slider(key="sp_Agitation").set_value(45.0).run()
    assert not at.exception
    at.button(key="find_robust").click().run()
    assert {m.label: m.value for m in at.metric}["In the design space"] == "yes"
    assert "find_desirability" not in [b.key for b in at.button]  # a hidden tab's content is not run
    at.session_state["space_tab"] = "Robust set point and desirability"  # the tab's content runs when shown
    at.run()
    at.button(key="find_desirability").click().run()
    at.button(key="use_desirability").click().run()
    assert not at.exception, at.exception
    at.checkbox(key="use_nor").check().run()
    assert not at.exception and (at.success or at.error)
