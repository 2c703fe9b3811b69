"""The probability map built from plain dicts: valid plotly, same hover information, user text escaped."""

import html
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from doe.analysis import ModelChoice, fit_all
from doe.plots import space as sf
from doe.runs import read_results
from doe.space import SpaceGrid, build_predictive, space_grid
from doe.study import Factor, Response, Study
from tests.conftest import EXAMPLE, ROOT

FIELD = re.compile(r"%\{([^}]*)\}")


@pytest.fixture(scope="module")
def example_grid():
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    pm = build_predictive(study, fit_all(study, runs, default=ModelChoice(reduce=True)))
    fixed = {"Medium": "SFM-XF", "Surface": "ULA", "Harvest reagent": "Accutase"}
    return study, space_grid(pm, "Agitation", "Seeding density", fixed, n=20)


def _old_hover(grid, study, i, j):
    """The hover text of one cell as the figure built it before (one Python string per cell)."""
    fx, fy = study.factor(grid.x), study.factor(grid.y)
    lines = [f"{fx.name} = {grid.xs[j]:.4g} {fx.units}", f"{fy.name} = {grid.ys[i]:.4g} {fy.units}",
             f"<b>P(all in spec) = {grid.probability[i, j]:.3f}</b>"]
    lines += [f"{k}: P = {v[i, j]:.3f}, mean {grid.mean[k][i, j]:.3g}" for k, v in grid.per_cqa.items()]
    return "<br>".join(html.escape(t).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>") for t in lines)


def _render(template, grid, customdata, i, j):
    """plotly.js's substitution of %{...} fields, with Python's formats for d3's ('~g' -> 'g')."""
    def field(m):
        name, _, fmt = m.group(1).partition(":")
        fmt = fmt.replace("~", "")
        if name == "x":
            value = grid.xs[j]
        elif name == "y":
            value = grid.ys[i]
        else:
            value = float(customdata[i, j, int(re.fullmatch(r"customdata\[(\d+)\]", name).group(1))])
        return format(value, fmt)
    return FIELD.sub(field, template.replace("<extra></extra>", "")).replace("&#37;", "%")


def test_probability_map_is_valid_plotly(example_grid):
    study, g = example_grid
    fig = sf.probability_map(g, study, set_point={"Agitation": 50, "Seeding density": 1200},
                             par={"Agitation": (40, 65), "Seeding density": (1000, 1700)},
                             nor={"Agitation": (45, 55), "Seeding density": (1000, 1400)}, note="n")
    go.Figure(fig.to_plotly_json())  # validates every property: raises on a wrong name or value
    assert fig.layout.template.layout.font.family  # the house template is there
    assert fig.data[0].type == "heatmap" and fig.data[0].hovertemplate.endswith("<extra></extra>")
    assert len(fig.layout.annotations) == 1 and "Other factors" in fig.layout.annotations[0].text


def test_hover_shows_what_it_showed_before(example_grid):
    study, g = example_grid
    fig = sf.probability_map(g, study)
    customdata, template = np.asarray(fig.data[0].customdata), fig.data[0].hovertemplate
    assert customdata.shape == g.probability.shape + (1 + 2 * len(g.per_cqa),)
    for i, j in [(0, 0), (3, 17), (19, 19), (10, 4)]:
        assert _render(template, g, customdata, i, j) == _old_hover(g, study, i, j)
    assert customdata.dtype == np.float32  # at the precision shown: half the bytes of float64
    exact = [g.probability] + [a for k in g.per_cqa for a in (g.per_cqa[k], g.mean[k])]
    for layer, (values, fmt) in enumerate(zip(exact, [".3f"] + [".3f", ".3g"] * len(g.per_cqa))):
        for i, j in np.ndindex(values.shape):  # every cell shows the digits Python shows for the exact value
            assert format(float(customdata[i, j, layer]), fmt) == format(float(values[i, j]), fmt)


@pytest.mark.parametrize("kind, fmt", [("f", ".3f"), ("g", ".3g")])
def test_shown_digits_are_pythons_digits_even_at_ties(kind, fmt):
    """Probabilities from 4,000 draws are often exact ties at the 4th decimal (0.0625, 0.1235): the
    hover rounds them as Python does, and stored as float32 they still format to the same digits."""
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(0, 4001, 20_000) / 4000, rng.random(20_000),
                             [0.0625, 0.1235, 0.9995, 0.0005, 1.0, 0.0, -0.0625]])
    if kind == "g":
        values = np.concatenate([values, rng.lognormal(0, 4, 20_000), rng.normal(50, 30, 20_000),
                                 [999.5, 999.4, 99.95, 9.995, -999.7, 1e-9]])
    shown = sf.shown_digits(values, kind).astype(np.float32)
    assert [format(float(v), fmt) for v in shown] == [format(float(v), fmt) for v in values]
    assert np.isnan(sf.shown_digits(np.array([np.nan]), kind)).all()


def test_hover_escapes_user_text_and_has_only_its_own_fields():
    script, img = "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'
    study = Study(
        "hostile",
        [Factor(f"Temp {script} %{{y}}", low=30, high=40, units=img),
         Factor(f"pH {img}", low=6, high=8, units="%{customdata[0]}")],
        [Response(f"Yield {script}", units=img, lower=40), Response(f"Purity %{{x}} {img}", lower=80)],
    )
    x, y = study.factors[0].name, study.factors[1].name
    shape = (3, 4)
    names = [r.name for r in study.responses]
    g = SpaceGrid(x=x, y=y, fixed={}, xs=np.linspace(30, 40, 4), ys=np.linspace(6, 8, 3),
                  probability=np.full(shape, 0.5), per_cqa={n: np.full(shape, 0.7) for n in names},
                  mean={n: np.full(shape, 50.0) for n in names}, lower=None, upper=None, interval=None,
                  feasible=np.ones(shape, dtype=bool), threshold=0.9, draws=4000, seed=0, mc_se=0.008,
                  setpoint_sd=None, method="m.", limits={n: (40, None) for n in names})
    fig = sf.probability_map(g, study)
    template = fig.data[0].hovertemplate
    assert "<script" not in template and "<img" not in template
    assert "&lt;script&gt;" in template and "&lt;img" in template
    fields = FIELD.findall(template)
    assert fields == ["x:.4~g", "y:.4~g", "customdata[0]:.3f", "customdata[1]:.3f", "customdata[2]:.3~g",
                      "customdata[3]:.3f", "customdata[4]:.3~g"]
    customdata = np.asarray(fig.data[0].customdata)
    assert _render(template, g, customdata, 1, 2) == _old_hover(g, study, 1, 2)
