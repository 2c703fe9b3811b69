"""doe.decision: the one reading of a saved design-space decision (a row of Store.decisions)."""

import pandas as pd

from doe.decision import DEFAULT_ASSURANCE_KIND, DEFAULT_THRESHOLD, Decision, latest_decision


def test_from_a_store_row_and_defaults():
    row = pd.Series({"id": 3, "analysis_version": 2, "threshold": 0.85, "set_point": {"A": 1.0, "M": "x"},
                     "ranges": {"par": {}, "setpoint_sd": {"A": 0.5, "B": 0.0, "C": None},
                                "assurance": {"level": 0.95}},
                     "note": "n", "created_at": pd.Timestamp("2026-12-06 10:00"), "created_by": "bob"})
    d = Decision.from_row(row)
    assert (d.id, d.analysis_version, d.threshold, d.set_point) == (3, 2, 0.85, {"A": 1.0, "M": "x"})
    assert d.setpoint_sd == {"A": 0.5}  # zero and missing SDs are no variation
    assert d.assurance == 0.95 and d.assurance_kind == DEFAULT_ASSURANCE_KIND == "simultaneous"
    assert d.source == "decision 3 by bob (2026-12-06)"
    bare = Decision.from_row({"threshold": None, "set_point": {}, "ranges": None, "analysis_version": float("nan")})
    assert bare.threshold == DEFAULT_THRESHOLD == 0.9 and bare.assurance is None and bare.analysis_version is None


def test_latest_decision(tmp_path):
    from doe.store import Store
    from tests.conftest import make_study

    study = make_study([{"name": "A", "low": 0, "high": 1}], [{"name": "Y", "lower": 1.0}])
    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        store.save_study(study, "alice")
        assert latest_decision(store, study.name) is None
        store.save_decision(study.name, 0.8, {"A": 0.5}, {"assurance": {"level": 0.9, "kind": "pointwise"}}, "bob")
        store.save_decision(study.name, 0.7, {"A": 0.2}, {}, "bob")
        d = latest_decision(store, study.name)
    finally:
        store.close()
    assert d.threshold == 0.7 and d.set_point == {"A": 0.2} and d.assurance is None and d.created_by == "bob"
