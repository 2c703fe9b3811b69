"""The Seed train, Scale comparison and Scale planner pages on recorded passages (Streamlit AppTest).

The example passages are loaded with the Seed train page's button (stored as passage data version 1); the
Scale comparison page then shows the TOST conclusion the library gives for the same data, saves the test, and
the planner plans from the recorded passages with the saved test checked.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from doe.equivalence import tost
from doe.growth import PASSAGES_FILE, passage_kinetics, read_passages
from doe.store import Store, default_url
from tests.conftest import ROOT


def _app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["_user_name"] = "tester"
    at.run()
    assert not at.exception, at.exception
    return at


def test_load_example_passages_then_compare_and_plan():
    at = _app()
    at.switch_page("pages/seed_train.py").run()
    assert not at.exception, at.exception
    at.button(key="load_example_passages").click().run()
    assert not at.exception, at.exception
    assert any("saved as passage data version 1" in s.value for s in at.success)
    assert any(h.value == "Growth kinetics" for h in at.header)
    assert any("simulated" in w.value for w in at.warning)

    at.switch_page("pages/scale_compare.py").run()
    assert not at.exception, at.exception
    assert (at.selectbox(key="eq_reference").value, at.selectbox(key="eq_test").value) == ("CellSTACK", "CellCube")
    expected = tost(passage_kinetics(read_passages(PASSAGES_FILE).table), "Fold expansion", "Family", "CellSTACK",
                    "CellCube", (0.8, 1.25), paired=True, id="Donor", log=True)
    assert [s.value for s in at.success] == [expected.conclusion()]
    at.button(key="save_equivalence").click().run()
    assert not at.exception, at.exception
    assert any("Equivalence test 1 saved" in s.value for s in at.success)

    at.switch_page("pages/scale.py").run()
    at.radio(key="sc_source").set_value("Recorded passages (Seed train page)").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    warnings = " ".join(w.value for w in at.warning)
    assert "no equivalence evidence between T-flask" in warnings
    assert any("Predicted against recorded cells per vessel" in m.value for m in at.markdown)

    db = Store.open(default_url())
    try:
        name = at.session_state["study"].name
        assert len(db.passages(name)) == len(read_passages(PASSAGES_FILE).table)
        assert db.equivalence_tests(name)["equivalent"].tolist() == [expected.equivalent]
    finally:
        db.close()


def test_growth_curve_works_for_a_new_study_without_passages():
    """A new study has no passages (no kinetics) but the growth curve of the example time course is fitted, and
    the page shows the same numbers as the library."""
    from doe.growth import GROWTH_CURVE_FILE
    from doe.growth_curve import fit_growth_curve, read_growth_curve

    at = _app()
    at.button(key="new_study").click().run()
    at.switch_page("pages/seed_train.py").run()
    assert not at.exception, at.exception
    assert any("No passages recorded yet" in i.value for i in at.info)
    assert not any(h.value == "Growth kinetics" for h in at.header)
    at.toggle(key="curve_example").set_value(True).run()
    assert not at.exception, at.exception
    curve = fit_growth_curve(*read_growth_curve(GROWTH_CURVE_FILE, "Day", "Cells per cm2"))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["μmax (per day)"] == f"{curve.mumax:.3g}"
    assert metrics["Lag (days)"] == f"{curve.lag:.3g}"
