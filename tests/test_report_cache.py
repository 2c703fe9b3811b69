"""The Report page's "current runs" report follows the runs: after a new batch is saved, the report
built before is no longer offered as current, and building again includes the new run (issue 14)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from doe.store import RUN_META, Store, User, default_url
from tests.conftest import ROOT, app_with_example_results

APP = str(ROOT / "app.py")
NAME = "MSC expansion"
CURRENT = "the open study and its current runs (not a saved analysis)"
NEW_VIABILITY = 93.21  # the new run's result; no run of the example has it


def _build(at: AppTest) -> AppTest:
    at.switch_page("pages/report.py").run()
    at.selectbox(key="report_source").set_value(CURRENT).run()
    at.button(key="build_report").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Built:") for s in at.success), [e.value for e in at.error]
    return at


def _newest_html(at: AppTest) -> str:
    return list(at.session_state["report_cache"].values())[-1]["html"].decode("utf-8")


def test_current_runs_report_follows_a_new_batch():
    at = app_with_example_results(600)
    _build(at)
    assert str(NEW_VIABILITY) not in _newest_html(at)

    db = Store.open(default_url())
    runs = db.runs(NAME).drop(columns=list(RUN_META))
    new = runs.iloc[[0]].assign(Run=int(runs["Run"].max()) + 1, Viability=NEW_VIABILITY)
    db.append_runs(NAME, new, User("tester"))  # a new batch: data version 2, one more run

    at.switch_page("pages/report.py").run()
    at.selectbox(key="report_source").set_value(CURRENT).run()
    assert not at.exception, at.exception
    assert not [s.value for s in at.success if s.value.startswith("Built:")], "the report of the old runs is shown"
    assert any("Press **Build the report**" in c.value for c in at.caption)
    _build(at)
    assert str(NEW_VIABILITY) in _newest_html(at)
