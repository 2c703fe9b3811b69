"""The design-space map's in-place chart (pages/_app/live_plot.py): what is sent to the browser.

The browser side (pages/_app/live_plot.js: only changed traces parsed, Plotly.react, the map showing the
moved set point) is checked in Chromium by tests/test_e2e_journey.py.
"""

import json

import plotly.io as pio
import plotly.offline
import pytest

from doe.plots.space import overlay_plot, probability_map
from doe.runs import read_results
from doe.space import build_predictive, space_grid
from doe.study import Study
from pages._app.live_plot import APP_FONT, chart_data
from pages._app.plotly_asset import ASSETS, PLOTLY_FILE, PLOTLY_ROUTE
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def grid_and_study():
    from doe.fit import fit_model

    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    pm = build_predictive(study, {r: fit_model(study, runs, r, "quadratic") for r in study.response_names})
    fixed = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE"}
    return space_grid(pm, "Agitation", "Seeding density", fixed), study


def test_the_browser_gets_the_same_figure_trace_by_trace(grid_and_study):
    grid, study = grid_and_study
    fig = probability_map(grid, study, set_point={"Agitation": 60.0, "Seeding density": 3000.0})
    data = chart_data(fig)
    whole = json.loads(pio.to_json(fig, validate=False))  # what st.plotly_chart would send
    assert [json.loads(t) for t in data["traces"]] == whole["data"]
    layout = json.loads(data["layout"])
    assert layout.pop("font")["family"] == APP_FONT  # drawn in the app's font, as st.plotly_chart does
    for axis in ("xaxis", "yaxis"):  # tick labels that never pass the chart: plotly need not measure them
        assert layout[axis].pop("ticklabeloverflow") == "allow"
    assert layout == {k: v for k, v in whole["layout"].items() if k != "font"}  # nothing else changed
    assert data["height"] == whole["layout"]["height"]
    assert data["src"] == PLOTLY_ROUTE


def test_moving_the_set_point_changes_only_the_small_traces(grid_and_study):
    """The browser reuses a trace whose text is unchanged: moving the set point along a map axis
    resends the probability surface unchanged and changes only the set-point marker."""
    grid, study = grid_and_study
    before = chart_data(probability_map(grid, study, set_point={"Agitation": 60.0, "Seeding density": 3000.0}))
    after = chart_data(probability_map(grid, study, set_point={"Agitation": 61.5, "Seeding density": 3000.0}))
    changed = [i for i, (a, b) in enumerate(zip(before["traces"], after["traces"])) if a != b]
    assert len(before["traces"]) == len(after["traces"])
    assert [json.loads(after["traces"][i])["name"] for i in changed] == ["Set point"]
    assert json.loads(after["traces"][changed[0]])["x"] == [61.5]
    big = max(range(len(before["traces"])), key=lambda i: len(before["traces"][i]))
    assert big not in changed and len(before["traces"][big]) > 100_000  # the heatmap with its hover data


def test_every_design_space_view_is_drawn_by_the_bundle(grid_and_study):
    grid, study = grid_and_study
    assert chart_data(overlay_plot(grid, study)) is not None


def test_a_figure_outside_the_bundle_is_left_to_st_plotly_chart():
    import plotly.graph_objects as go

    assert chart_data(go.Figure(go.Surface(z=[[1, 2], [3, 4]]))) is None


def test_the_bundle_is_plotly_pys_own_plotly_js_version():
    """pages/assets/plotly-map.min.js draws what plotly.py describes: the same plotly.js major
    version (its figure schema changes only with a major version; requirements.txt keeps plotly.py
    on the one that bundles it). Rebuild it with pages/assets/build_plotly_map.sh on an upgrade."""
    version = (ASSETS / "plotly-map.version").read_text(encoding="utf-8").strip()
    assert version.split(".")[0] == plotly.offline.get_plotlyjs_version().split(".")[0]
    assert PLOTLY_ROUTE.endswith(f"-{version}.min.js")
    head = PLOTLY_FILE.read_text(encoding="utf-8")[:400]
    assert f"plotly.js v{version} (core, heatmap, contour)" in head
    body = PLOTLY_FILE.read_text(encoding="utf-8")
    assert "window.DoePlotly" in body and '"heatmap"' in body and '"contour"' in body


def test_the_design_space_page_sends_the_map_as_a_live_chart():
    from tests.test_pages import with_example_results

    at = with_example_results()
    at.switch_page("pages/space.py").run()
    assert not at.exception, at.exception
    charts = [e for e in at.get("bidi_component") if e.proto.component_name == "doe_live_plot"]
    assert len(charts) == 1
    data = json.loads(charts[0].proto.json)
    names = [json.loads(t).get("name") for t in data["traces"]]
    assert names[0] == "P(all CQAs in spec)" and "Set point" in names
