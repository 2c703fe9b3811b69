"""The Report page's "current runs" report follows the runs: after a new batch is saved, the report
built before is no longer offered as current, and building again includes the new run (issue 14).
The PDF's memos (issue 21): a second report exports only the figures that changed, and the same print
document is laid out once (the memo's bytes equal WeasyPrint's own on that document)."""

from __future__ import annotations

from pathlib import Path

import pytest
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


# -- the PDF's memos (issue 21): figure images by figure digest, the PDF by its document's digest -------------
# No published number applies: these compare the memo's answer with the uncached path run in the test
# (kaleido's jobs as the exporter receives them; WeasyPrint called directly on the same print document).

def _tiny_content(y=(1.0, 3.0, 2.0), width=400):
    import pandas as pd
    import plotly.graph_objects as go

    from doe.report.content import Figure, Paragraph, ReportContent, Section, Table

    figs = [Figure(go.Figure(go.Scatter(x=[1, 2, 3], y=list(y))), "Changing figure", width, 300),
            Figure(go.Figure(go.Bar(x=["a", "b"], y=[4, 5])), "Fixed figure", 400, 300)]
    sec = Section("1. Results", [Paragraph("Viability (%) by run."),
                                 Table(pd.DataFrame({"Run": [1, 2], "Viability (%)": [91.5, 93.2]}), "Runs"),
                                 *figs])
    return ReportContent("Tiny report", "Tiny", None, "2026-12-07", [sec], "name: Tiny\n", "Run\n1\n", {}, None)


def _fake_kaleido(monkeypatch):
    """kaleido's batch export replaced by a recorder writing bytes that name the job (no browser needed)."""
    import json
    import sys
    import types

    import doe.report.pdf as pdfmod

    calls: list[list[dict]] = []

    def write(jobs, kopts=None):
        calls.append(jobs)
        for job in jobs:
            Path(job["path"]).write_bytes(json.dumps([job["fig"]["data"][0]["type"], job["opts"]],
                                                     default=list).encode())

    monkeypatch.setitem(sys.modules, "kaleido", types.SimpleNamespace(write_fig_from_object_sync=write,
                                                                       start_sync_server=lambda **_: None))
    monkeypatch.setattr(pdfmod, "_browser", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(pdfmod, "_server_alive", lambda: True)
    monkeypatch.setattr(pdfmod, "FIGURE_CACHE", pdfmod.Recent(64))
    return calls


def test_a_second_report_exports_only_the_changed_figures(monkeypatch):
    import doe.report.pdf as pdfmod

    calls = _fake_kaleido(monkeypatch)
    first = pdfmod._export_all(_tiny_content())
    assert [len(c) for c in calls] == [2] and sorted(first) == [1, 2]

    again = pdfmod._export_all(_tiny_content())  # the same figures, rebuilt: nothing exported
    assert len(calls) == 1 and again == first

    changed = pdfmod._export_all(_tiny_content(y=(1.0, 3.0, 2.5)))  # one figure's data changed
    assert len(calls) == 2 and [j["path"].rsplit("-", 1)[1] for j in calls[1]] == ["1.png"]
    assert changed[2] == first[2]

    pdfmod._export_all(_tiny_content(width=500))  # same data, another size: exported again
    assert len(calls) == 3 and calls[2][0]["opts"]["width"] == 500


def test_figure_key_follows_data_and_size():
    from doe.report.pdf import figure_key

    base = figure_key(_tiny_content().figures[0])
    assert figure_key(_tiny_content().figures[0]) == base
    assert figure_key(_tiny_content(y=(1.0, 3.0, 2.000001)).figures[0]) != base
    assert figure_key(_tiny_content(width=401).figures[0]) != base


def test_the_same_document_gives_the_same_pdf_bytes_and_is_laid_out_once(monkeypatch):
    import weasyprint

    import doe.report.pdf as pdfmod
    from doe.report.html import render_print_html

    _fake_kaleido(monkeypatch)
    monkeypatch.setattr(pdfmod, "PDF_CACHE", pdfmod.Recent(4))
    content = _tiny_content()
    first = pdfmod.render_pdf(content)

    images, missing = pdfmod.static_figures(content)  # the uncached path: WeasyPrint on the same document
    doc = render_print_html(content, images, missing, pdfmod.font_url())
    direct = weasyprint.HTML(string=doc, base_url=None).write_pdf(pdf_variant=pdfmod.PDF_VARIANT, pdf_forms=False,
                                                                  uncompressed_pdf=False)
    assert direct == first

    def no_layout(*_args, **_kwargs):
        raise AssertionError("the same document was laid out again")

    monkeypatch.setattr(weasyprint, "HTML", no_layout)
    assert pdfmod.render_pdf(_tiny_content()) == first
    with pytest.raises(AssertionError, match="laid out again"):  # another document is laid out
        pdfmod.render_pdf(_tiny_content(width=500))


def test_the_same_analysis_prints_the_same_figure_time():
    """A report's figures print the analysis time (to the minute), or the day when reporting from files, so a
    report built again is the same document and its PDF is laid out once."""
    import datetime as dt
    from types import SimpleNamespace

    from doe.plots.space import footnote
    from doe.report.content import _report_time
    from doe.study import Study
    from tests.conftest import EXAMPLE

    stored = SimpleNamespace(created_at="2026-12-07T06:15:42.123456")
    assert _report_time(stored) == "2026-12-07 06:15 UTC"  # type: ignore[arg-type]
    assert _report_time(SimpleNamespace(created_at=None)) == dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")  # type: ignore[arg-type]
    study = Study.load(EXAMPLE)
    assert footnote(study, "1 (abc)", when="2026-12-07 06:15 UTC").endswith("data version 1 (abc) · 2026-12-07 06:15 UTC")
