"""Design-space figures: method, threshold, specs and footnote on the plot; panels; export."""

import html

import pytest

from doe.analysis import ModelChoice, fit_all
from doe.plots import space as sf
from doe.runs import read_results
from doe.space import build_predictive, space_grid
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def space(example_study_module):
    study = example_study_module
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    fits = fit_all(study, runs, default=ModelChoice(reduce=True))
    pm = build_predictive(study, fits)
    fixed = {"Medium": "SFM-XF", "Surface": "ULA", "Harvest reagent": "Accutase"}
    g = space_grid(pm, "Agitation", "Seeding density", fixed, n=25,
                   interval={"kind": "tolerance", "level": 0.95, "proportion": 0.99})
    return study, pm, g


@pytest.fixture(scope="module")
def example_study_module():
    from doe.study import Study
    from tests.conftest import EXAMPLE

    return Study.load(EXAMPLE)


def texts(fig):
    out = [fig.layout.title.text or ""] + [a.text for a in fig.layout.annotations]
    out += [t.name or "" for t in fig.data]
    return html.unescape(" ".join(out)).replace("<br>", " ")  # a line break of a wrapped title is a space


def test_probability_map_states_method_threshold_specs_and_footnote(space):
    study, pm, g = space
    fig = sf.probability_map(g, study, set_point={"Agitation": 50, "Seeding density": 1200},
                             par={"Agitation": (40, 65), "Seeding density": (1000, 1700)},
                             nor={"Agitation": (45, 55), "Seeding density": (1000, 1400)},
                             note=sf.footnote(study, "abc123"))
    text = texts(fig)
    assert "P >= 0.9" in text and "4,000 posterior draws" in text
    assert "Viability >= 80 %" in text
    assert "Study: MSC expansion" in text and "data version abc123" in text
    assert {"Set point", "PAR (proven acceptable ranges)", "NOR (normal operating ranges)"} <= {t.name for t in fig.data}
    assert fig.layout.xaxis.title.text == "Agitation (rpm)"
    assert fig.layout.yaxis.title.text == "Seeding density (cells/cm2)"


def test_overlays_and_panels(space):
    study, pm, g = space
    assert "mean" in texts(sf.overlay_plot(g, study))
    assert "tolerance interval (99 % of runs, 95 % confidence)" in texts(sf.interval_overlay_plot(g, study))
    grids = {("", s): space_grid(pm, "Agitation", "Seeding density", {"Surface": s}, n=10)
             for s in study.factor("Surface").levels}
    fig = sf.probability_panels(grids, study, rows=None, cols="Surface")
    assert len([t for t in fig.data if t.type == "heatmap"]) == 3


def test_html_export_is_self_contained(space):
    study, pm, g = space
    page = sf.export_figure(sf.probability_map(g, study), "html").decode()
    assert "<script" in page and "cdn.plot.ly" not in page.split("<body>")[0][:2000]
    with pytest.raises(Exception, match="not supported"):
        sf.export_figure(sf.probability_map(g, study), "gif")
