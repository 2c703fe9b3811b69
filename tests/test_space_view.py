"""The design-space page's opening view, the CQA that ends the design space, the figure's legend and
export resolution, and the saved decision restored (page) and reported (report).

Expected values are derived independently: a map whose per-CQA probabilities are built by hand (so
the limiting CQA of each edge is known), the PNG header's pixel size, bounding boxes measured in
Chromium, and the settings typed into the page.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from doe.analysis import default_choice, fit_all
from doe.plots import space as sf
from doe.runs import read_results
from doe.space import (
    SpaceGrid,
    build_predictive,
    edge_limits,
    limiting_cqa,
    opening_view,
    robust_set_point,
    saved_view,
    space_grid,
)
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT, make_study

APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def example():
    """The example as the page fits it (the default model choice)."""
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    fits = fit_all(study, runs, {}, default=default_choice())
    pm = build_predictive(study, fits.models)
    return study, pm


def _map(pm, x, y, point):
    return space_grid(pm, x, y, {k: v for k, v in point.items() if k not in (x, y)}, n=25)


# -- 1. the opening view ------------------------------------------------------------------------------
def test_opening_view_shows_the_edge_and_stays_robust(example):
    study, pm = example
    robust = robust_set_point(pm, threshold=0.9)
    flat = _map(pm, "Agitation", "Seeding density", robust["settings"])
    assert flat.probability.min() > 0.99  # the old first view: P = 1.000 everywhere, nothing to see
    view = opening_view(pm, threshold=0.9, robust=robust)
    g = _map(pm, view.x, view.y, view.set_point)
    assert 0.1 < g.fraction_inside < 0.9  # the edge crosses the map
    assert g.probability[g.feasible].min() < 0.5
    n = robust["draws"]
    tol = 2 * math.sqrt(robust["probability"] * (1 - robust["probability"]) / n) + 1 / n
    assert view.probability >= robust["probability"] - tol  # still tied with the maximum probability
    assert "robust set point" in view.reason


def test_opening_view_with_a_given_set_point_only_chooses_the_axes(example):
    study, pm = example
    point = {"Medium": "FBS 10%", "Surface": "ULA", "Harvest reagent": "Accutase", "Agitation": 42.0,
             "Seeding density": 1600.0}
    view = opening_view(pm, set_point=point)
    assert view.set_point == point and {view.x, view.y} == {"Agitation", "Seeding density"}


# -- 2. which CQA limits the edge --------------------------------------------------------------------
def _hand_grid() -> tuple[Study, SpaceGrid]:
    """A left part where A fails, a right part where B fails, joint = product: edges known by hand."""
    study = make_study([{"name": "X1", "low": 0, "high": 10}, {"name": "X2", "low": 0, "high": 10}],
                       [{"name": "A", "lower": 1}, {"name": "B", "upper": 5}])
    xs = ys = np.linspace(0, 10, 11)
    gx, _ = np.meshgrid(xs, ys)
    pa = np.where(gx < 3, 0.2, 0.99)  # A fails left of x = 3
    pb = np.where(gx > 7, 0.3, 0.98)  # B fails right of x = 7
    joint = pa * pb
    nan = {k: np.zeros_like(joint) for k in ("A", "B")}
    g = SpaceGrid(x="X1", y="X2", fixed={}, xs=xs, ys=ys, probability=joint, per_cqa={"A": pa, "B": pb},
                  mean=nan, lower=None, upper=None, interval=None, feasible=np.ones_like(joint, bool),
                  threshold=0.9, draws=4000, seed=0, mc_se=0.01, setpoint_sd=None, method="hand-made.",
                  limits={"A": (1, None), "B": (None, 5)})
    return study, g


def test_edge_limits_name_the_cqa_on_each_side():
    study, g = _hand_grid()
    e = edge_limits(g, study)
    left, right = e.points[e.points["x"] < 5], e.points[e.points["x"] > 5]
    assert set(left["cqa"]) == {"A"} and set(right["cqa"]) == {"B"}
    assert np.allclose(left["x"], 2.5) and np.allclose(right["x"], 7.5)  # midway between the cells
    assert len(left) == len(right) == 11  # one per row of the map
    table = e.table.set_index("CQA")
    assert table.loc["A", "Share of the edge (%)"] == 50 and table.loc["B", "Spec"] == "<= 5"
    assert table.loc["A", "Lowest P(in spec) just outside"] == "0.200"
    fig = sf.probability_map(g, study)
    dots = {t.name: t for t in fig.data if t.name and t.name.startswith("Edge limited by")}
    assert set(dots) == {"Edge limited by A &gt;= 1", "Edge limited by B &lt;= 5"}
    assert limiting_cqa({"A": 0.5, "B": 0.7}) == "A" and limiting_cqa({"A": 1.0, "B": 1.0}) is None


# -- 3. legend: every entry is drawn, the edge is visible ----------------------------------------------
def test_every_legend_entry_is_drawn_and_the_edge_is_not_white(example):
    study, pm = example
    view = opening_view(pm, threshold=0.9)
    g = _map(pm, view.x, view.y, view.set_point)
    fig = sf.probability_map(g, study, set_point=view.set_point)
    regions = {t.name.lower() for t in fig.data if t.type == "heatmap" and t.name}
    for t in fig.data:
        if t.type == "scatter" and t.showlegend is not False and not any(v is not None for v in t.x):
            assert t.name.lower() in regions, f"legend entry {t.name!r} names nothing drawn"
    edge = [t for t in fig.data if t.name and t.name.startswith("Design space edge")]
    assert edge and edge[0].line.color.lower() not in ("white", "#ffffff", "#fff")
    assert not [t for t in fig.data if t.name and t.name.startswith("Spec:")]  # no entry without a line
    assert "Viability &gt;= 80 %" in fig.layout.title.text  # the specs are still stated (HTML-escaped)


# -- 4. PNG at print resolution ----------------------------------------------------------------------
def test_png_export_is_at_print_resolution(example):
    study, pm = example
    g = _map(pm, "Agitation", "Seeding density", {"Medium": "FBS 10%", "Surface": "ULA",
                                                  "Harvest reagent": "Accutase"})
    try:
        png = sf.export_figure(sf.probability_map(g, study), "png", width=1100, height=700)
    except sf.ExportError as exc:
        pytest.fail(f"PNG export must work here (kaleido + Chromium are requirements): {exc}")
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (3 * 1100, 3 * 700)


# -- 5. legend and colour bar apart at 1280 px ---------------------------------------------------------
def _boxes(html_text: str, selectors: list[str], width: int = 1280) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_content(html_text)
        page.wait_for_selector(".main-svg")
        out = {s: [e.bounding_box() for e in page.query_selector_all(s)] for s in selectors}
        browser.close()
    return out


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 900])
def test_legend_is_clear_of_the_colour_bar_in_chromium(example, width):
    study, pm = example
    view = opening_view(pm, threshold=0.9)
    g = _map(pm, view.x, view.y, view.set_point)
    fig = sf.probability_map(g, study, set_point=view.set_point, note=sf.footnote(study, "v1"))
    fig.update_layout(width=width - 80)  # the page's content width at this viewport
    boxes = _boxes(fig.to_html(include_plotlyjs=True), ["g.legend", "g.colorbar", "g.annotation"], width)
    assert boxes["g.legend"] and boxes["g.colorbar"]
    for legend in boxes["g.legend"]:
        for other in boxes["g.colorbar"] + boxes["g.annotation"]:
            assert not _overlap(legend, other), (legend, other)


# -- 7. the saved decision: restored on opening the study, reported --------------------------------------
def test_set_point_table_has_blanks_not_none():
    from doe.space import set_point_frame

    report = {"per_cqa": {"A": 0.97, "B": 0.999}, "predictions": {
        k: {"spec": s, "mean": 1.0, "lower_95pi": 0.5, "upper_95pi": 1.5} for k, s in
        (("A", ">= 1"), ("B", "<= 5"), ("C", "no spec"))}}
    frame = set_point_frame(report).set_index("CQA")
    assert list(frame["P(in spec)"]) == ["0.970", "0.999", ""]
    assert list(frame["Limits the design space"]) == ["yes (lowest P)", "", ""]


def test_saved_view_checks_the_decision_against_the_study():
    study = Study.load(EXAMPLE)
    point = {"Medium": "hPL 5%", "Surface": "CellBIND", "Harvest reagent": "TrypLE", "Agitation": 44.5,
             "Seeding density": 2100.0}
    ok = saved_view(study, {"id": 3, "threshold": 0.85, "set_point": point,
                            "ranges": {"setpoint_sd": {"Agitation": 2.0, "Seeding density": 0}}})
    assert ok.set_point == point and ok.threshold == 0.85 and ok.setpoint_sd == {"Agitation": 2.0}
    assert not ok.problems
    bad = saved_view(study, {"id": 4, "threshold": 0.9, "set_point": {**point, "Agitation": 120.0},
                             "ranges": {"setpoint_sd": {"Gone": 1.0}}})
    assert bad.set_point is None and any("outside the tested range" in p for p in bad.problems)
    assert any("Gone" in p for p in bad.problems)


def _session():
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["_user_name"] = "tester"
    at.run()
    assert not at.exception, at.exception
    return at


def test_page_opens_on_an_informative_view():
    at = _session()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    assert not at.exception, at.exception
    at.switch_page("pages/space.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["In the design space"] == "yes"
    assert metrics["Share of this map inside"] != "100 %"  # the opening view shows where the space ends


def test_the_saved_decision_is_restored_when_the_study_is_reopened():
    at = _session()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    at.switch_page("pages/space.py").run()
    assert not at.exception, at.exception
    at.slider(key="sp_Agitation").set_value(45.0).run()
    at.slider(key="space_threshold").set_value(0.85).run()
    at.number_input(key="sd_Agitation").set_value(2.0).run()
    at.text_input(key="decision_note").set_value("restore me").run()
    at.button(key="save_decision").click().run()
    assert not at.exception, at.exception
    assert any("Saved as decision" in s.value for s in at.success), [e.value for e in at.error]
    # the panel's heading says so at once (it said '(none saved yet)' until the next rerun)
    assert any("last saved: decision 1" in e.label for e in at.expander), [e.label for e in at.expander]
    assert not any("none saved yet" in e.label for e in at.expander)
    saved = {k: at.session_state[f"sp_{k}"] for k in at.session_state["study"].factor_names}

    again = _session()  # the study reopened in a new session
    again.switch_page("pages/space.py").run()
    assert not again.exception, again.exception
    for k, v in saved.items():
        assert again.session_state[f"sp_{k}"] == (pytest.approx(v) if isinstance(v, float) else v), k
    assert again.session_state["space_threshold"] == pytest.approx(0.85)
    assert again.session_state["sd_Agitation"] == pytest.approx(2.0)
    assert any("saved decision" in c.value for c in again.caption)


def test_report_states_the_saved_set_point_variation(tmp_path):
    from doe.report.content import Paragraph, build_report
    from doe.store import Store
    from doe.versions import rerun_analysis

    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    store.save_study(study, "alice")
    store.append_runs(study.name, runs, "alice")
    rerun_analysis(store, study.name, "alice", draws=500)
    point = {"Medium": "FBS 10%", "Surface": "ULA", "Harvest reagent": "Accutase", "Agitation": 42.0,
             "Seeding density": 1600.0}
    store.save_decision(study.name, 0.9, point, {"par": {}, "nor": {}, "setpoint_sd": {"Agitation": 2.0}},
                        "bob", analysis_version=1, note="with variation")
    content = build_report(store, study.name, draws=1000)
    text = " ".join(b.text for s in content.sections for b in s.blocks if isinstance(b, Paragraph))
    assert "set-point variation: none" not in text
    assert "set-point variation: normal, SD 2 rpm for Agitation" in text
    assert content.set_point["Agitation"] == pytest.approx(42.0)
    store.close()


def test_map_axes_are_the_factors_the_probability_depends_on():
    """Y depends on B and C only: the map (page, report and CLI summary) is B by C, not the first two."""
    from doe.fit import fit_model
    from doe.space import summary_json, view_axes

    study = make_study([{"name": n, "low": -1, "high": 1} for n in ("A", "B", "C")], [{"name": "Y", "upper": 12}])
    levels = [-1.0, 0.0, 1.0]
    runs = pd.DataFrame([(a, b, c) for a in levels for b in levels for c in levels], columns=["A", "B", "C"])
    rng = np.random.default_rng(1)
    runs["Y"] = 10 + 1.5 * runs["B"] + 1.5 * runs["C"] + rng.normal(0, 0.3, len(runs))
    pm = build_predictive(study, {"Y": fit_model(study, runs, "Y", "linear")})
    centre = {"A": 0.0, "B": 0.0, "C": 0.0}
    assert view_axes(pm, centre) == ("B", "C")
    grid = summary_json(pm, set_point=centre, n=15)["grid"]
    assert (grid["x"], grid["y"]) == ("B", "C")
