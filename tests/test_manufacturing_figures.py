"""Manufacturing figures (doe.plots.manufacturing): the capability histogram and the lots on the map.

The capability figure's curves and lines are checked against numbers computed here by hand: the overall
sigma is the sample SD (numpy), the within sigma of individuals the mean moving range / d2(2) = 1.128
(Montgomery, Introduction to Statistical Quality Control, 7th ed. 2013, table VI), the normal density's
peak 1 / (sigma sqrt(2 pi)), Ppk = min(USL - mean, mean - LSL) / (3 sigma overall). The lots markers carry
the settings and the inside/outside colours of hand-made LotCheck objects, on the bundled example's map.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from doe.analysis import default_choice, fit_all
from doe.capability import capability
from doe.errors import DoeError
from doe.lots import LotCheck
from doe.plots.manufacturing import INSIDE_COLOUR, OUTSIDE_COLOUR, capability_figure, lots_on_map_figure
from doe.runs import read_results
from doe.space import DesignSpace, space_grid
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT

VALUES = np.array([94.6, 92.5, 88.3, 91.9, 93.1, 90.4, 95.0, 92.2, 89.8, 93.7, 91.1, 92.8])


def test_capability_figure_curves_lines_band_and_title():
    cap = capability(VALUES, lower=80.0, upper=100.0, response="Viability")
    fig = capability_figure(VALUES, cap, units="%", note="12 simulated lots")
    mean = VALUES.mean()
    s_overall = VALUES.std(ddof=1)
    s_within = np.abs(np.diff(VALUES)).mean() / 1.128
    hist = [t for t in fig.data if t.type == "histogram"]
    assert len(hist) == 1 and list(hist[0].x) == pytest.approx(VALUES) and hist[0].histnorm == "probability density"
    curves = {t.name.split(" (")[0]: t for t in fig.data if t.type == "scatter"}
    for name, sigma in (("Normal, sigma overall", s_overall), ("Normal, sigma within", s_within)):
        x, y = np.asarray(curves[name].x), np.asarray(curves[name].y)
        assert y.max() == pytest.approx(1 / (sigma * math.sqrt(2 * math.pi)), rel=1e-3)
        assert x[np.argmax(y)] == pytest.approx(mean, abs=(x[1] - x[0]))
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.x0 for s in lines) == pytest.approx([80.0, 90.0, 100.0])  # LSL, target (midpoint), USL
    texts = {a.text for a in fig.layout.annotations}
    assert {"LSL 80", "USL 100", "Target 90"} <= texts
    (band,) = [s for s in fig.layout.shapes if s.type == "rect"]
    ti = cap.tolerance_interval
    assert (band.x0, band.x1) == pytest.approx((ti.low, ti.high))
    assert band.x0 < mean < band.x1
    ppk = min(100 - mean, mean - 80) / (3 * s_overall)
    cpk = min(100 - mean, mean - 80) / (3 * s_within)
    title = fig.layout.title.text
    assert f"Ppk {ppk:.2f}" in title and f"Cpk {cpk:.2f}" in title
    assert fig.layout.xaxis.title.text == "Viability (%)"
    assert any(a.text == "12 simulated lots" for a in fig.layout.annotations)  # the note, under the legend


def test_capability_figure_with_one_limit_has_one_line():
    cap = capability(VALUES, lower=80.0, response="Viability")
    fig = capability_figure(VALUES, cap)
    assert [a.text for a in fig.layout.annotations if a.text.startswith(("LSL", "USL", "Target"))] == ["LSL 80"]


CHECKS = [LotCheck("L01", {"Agitation": 43.0, "Seeding density": 1700.0}, 0.93, True, True, True),
          LotCheck("L19", {"Agitation": 55.0, "Seeding density": 1750.0}, 0.41, False, False, False,
                   ["Agitation"], ["Agitation 55 is outside its PAR 36 to 50."]),
          LotCheck("L02", {"Agitation": 44.0, "Seeding density": 1770.0}, 0.91, True, True, True)]


def test_lots_on_a_drawn_figure_carry_settings_colours_and_hover():
    base = go.Figure(go.Heatmap(z=[[0.1, 0.9], [0.5, 0.7]], x=[30, 90], y=[1000, 5000]))
    fig = lots_on_map_figure(base, CHECKS, "Agitation", "Seeding density")
    assert len(base.data) == 1  # the map given is not changed
    inside, outside = fig.data[1], fig.data[2]
    assert list(inside.customdata) == ["L01", "L02"] and list(outside.customdata) == ["L19"]
    assert list(inside.x) == [43.0, 44.0] and list(inside.y) == [1700.0, 1770.0]
    assert list(outside.x) == [55.0] and list(outside.y) == [1750.0]
    assert inside.marker.color == INSIDE_COLOUR and outside.marker.color == OUTSIDE_COLOUR
    assert "Lot L19" in outside.text[0] and "0.410" in outside.text[0] and "outside its PAR" in outside.text[0]


def test_lots_on_the_example_map():
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    space = DesignSpace.of(study, fit_all(study, runs, default=default_choice()), draws=500, seed=1)
    fixed = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE"}
    grid = space_grid(space.pm, "Agitation", "Seeding density", fixed, n=12, draws=500)
    fig = lots_on_map_figure(grid, CHECKS, "Agitation", "Seeding density", study=study,
                             set_point={"Agitation": 42.0, "Seeding density": 1750.0})
    assert fig.data[0].type == "heatmap" and fig.data[0].name == "P(all CQAs in spec)"
    lots = [t for t in fig.data if t.name and t.name.startswith("Lot ")]
    assert [t.marker.color for t in lots] == [INSIDE_COLOUR, OUTSIDE_COLOUR]
    assert any(t.name == "Set point" for t in fig.data)
    with pytest.raises(DoeError, match="needed|Give the study"):
        lots_on_map_figure(grid, CHECKS, "Agitation", "Seeding density")
    with pytest.raises(DoeError, match="not Seeding density against Agitation"):
        lots_on_map_figure(grid, CHECKS, "Seeding density", "Agitation", study=study)
