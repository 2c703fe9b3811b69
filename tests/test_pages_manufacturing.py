"""The Manufacturing page (Streamlit AppTest): example lots loaded and stored, control chart, capability with the
library's numbers, and every lot against a saved design-space decision."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from doe.analysis import default_choice, fit_all
from doe.capability import capability
from doe.decision import Decision
from doe.lots import LOTS_FILE, predicted_capability, read_lots
from doe.runs import read_results
from doe.space import DesignSpace
from doe.store import Store, default_url
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT


def _app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["_user_name"] = "tester"
    at.run()
    assert not at.exception, at.exception
    return at


def db_row(name):
    db = Store.open(default_url())
    try:
        return db.decisions(name).iloc[-1]
    finally:
        db.close()


def test_example_lots_charts_capability_and_design_space():
    study = Study.load(EXAMPLE)
    db = Store.open(default_url())
    try:
        db.save_study(study, "tester")
        db.append_runs(study.name, read_results(study, ROOT / "data" / "msc_example_results.csv").table, "tester")
        sp = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE", "Agitation": 42.0,
              "Seeding density": 1800.0}
        db.save_decision(study.name, 0.5, sp, {"par": {"Harvest reagent": ["TrypLE", "Accutase"]}, "nor": {}}, "tester")
    finally:
        db.close()
    at = _app()
    at.switch_page("pages/manufacturing.py").run()
    assert not at.exception, at.exception
    at.button(key="load_example_lots").click().run()
    assert not at.exception, at.exception
    assert any("saved as lot data version 1" in s.value for s in at.success)
    assert any("simulated" in w.value for w in at.warning)

    at.session_state["manufacturing_tab"] = "Capability"
    at.run()
    assert not at.exception, at.exception
    lots = read_lots(study, LOTS_FILE.read_bytes(), LOTS_FILE.name).table
    first = next(r for r in study.responses if r.lower is not None or r.upper is not None)
    cap = capability(lots[first.name].tolist(), lower=first.lower, upper=first.upper)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ppk observed"] == f"{cap.ppk:.2f}"
    decision = Decision.from_row(db_row(study.name))
    analysis = fit_all(study, read_results(study, ROOT / "data" / "msc_example_results.csv").table,
                       default=default_choice())  # the page's default: the reduced quadratic
    space = DesignSpace.of(study, analysis).on_decision(decision)
    predicted = predicted_capability(space, study, decision.set_point, decision.setpoint_sd, first.name)
    assert metrics["Ppk predicted"] == f"{predicted['ppk']:.2f}"

    at.session_state["manufacturing_tab"] = "Control charts"
    at.session_state["chart_phase"] = "baseline"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="chart_baseline").value == "L20"  # the first two thirds (20 of 30 lots) set the limits
    assert any("--baseline L20" in c.value for c in at.caption)

    at.session_state["manufacturing_tab"] = "Lots in the design space"
    at.run()
    assert not at.exception, at.exception
    assert any("L26" in w.value for w in at.warning)  # the Trypsin-EDTA lot is outside

    db = Store.open(default_url())
    try:
        assert len(db.lots(study.name)) == 30 and db.verify_audit().ok
    finally:
        db.close()
