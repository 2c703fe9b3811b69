"""Every page renders without an exception (Streamlit AppTest), for the example and a new study."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")
PAGES = ["pages/home.py", "pages/study.py", "pages/design.py", "pages/runs.py", "pages/models.py",
         "pages/explore.py", "pages/seed_train.py", "pages/scale_compare.py", "pages/scale.py", "pages/manufacturing.py",
         "pages/versions.py",
         "pages/audit.py", "pages/report.py"]


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


# -- the pages' structure (issue 17): one session-state facade, one services module -------------------
def _attribute_uses(path, name: str, shown_as: str) -> list[str]:
    """Where ``path``'s code (comments and strings left out) reads the attribute ``.name``, as
    'FILE:LINE: name' with FILE given as ``shown_as``."""
    import io
    import tokenize

    tokens = [(t.start[0], t.string) for t in
              tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
              if t.type not in (tokenize.COMMENT, tokenize.STRING)]
    return [f"{shown_as}:{line}: {name}" for (line, text), (_, after) in zip(tokens, tokens[1:])
            if text == "." and after == name]


def _app_uses(name: str, allowed: str) -> list[str]:
    sources = [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]
    return [hit for path in sources if path != ROOT / allowed
            for hit in _attribute_uses(path, name, path.relative_to(ROOT).as_posix())]


def test_session_state_is_read_and_written_only_through_the_facade():
    """Every session key is a typed attribute of pages/_app/state.SessionState: no page or helper reads or
    writes ``st.session_state`` itself (a failure names the file and line)."""
    found = _app_uses("session_state", "pages/_app/state.py")
    assert not found, ("st.session_state used outside pages/_app/state.py; add a typed attribute to "
                       "SessionState and use it:\n" + "\n".join(found))


def test_every_cache_is_in_the_services_module():
    """Every st.cache_data / st.cache_resource of the app is in pages/_app/services.py."""
    found = _app_uses("cache_data", "pages/_app/services.py") + _app_uses("cache_resource", "pages/_app/services.py")
    assert not found, "cached functions outside pages/_app/services.py:\n" + "\n".join(found)


def test_the_source_checks_see_a_use(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('import streamlit as st\n"st.session_state in a string"  # st.session_state in a comment\n'
                     'x = st.session_state.get("a")\n\n\n@st.cache_data\ndef f():\n    return 1\n', encoding="utf-8")
    assert _attribute_uses(probe, "session_state", "probe.py") == ["probe.py:3: session_state"]
    assert _attribute_uses(probe, "cache_data", "probe.py") == ["probe.py:6: cache_data"]


def test_navigation_sections_hold_every_page_once():
    """app.SECTIONS splits app.PAGES in order: every page is in exactly one section (none hidden)."""
    import ast

    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    found = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
             if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("PAGES", "SECTIONS")}
    assert sum(count for _, count in found["SECTIONS"]) == len(found["PAGES"])
    assert all(count > 0 for _, count in found["SECTIONS"])
    assert [p for p, _, _ in found["PAGES"]][-3:] == ["pages/versions.py", "pages/audit.py", "pages/report.py"]
