"""Figures of fitted models (doe.plots.model).

Plotted predictions are checked against an independent evaluation of the coded model:
the coefficient names of ``fm.coefficients`` are parsed and each model column is built
here from the settings (coded -1..+1, effect codes with the last level -1), without
doe.model or FittedModel.predict. Confidence bands are checked against (X'X)^-1 built the
same way from the runs.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy import stats

from doe.fit import box_cox, fit_model
from doe.plots import model as mf
from doe.runs import read_results
from doe.study import Factor, Response, Study

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "msc_expansion.yaml"
RESULTS = ROOT / "data" / "msc_example_results.csv"
PILOT = ROOT / "tests" / "reference_cases" / "bhh_pilot_plant_2x3_unreplicated_lenth"


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example():
    study = Study.load(EXAMPLE)
    return study, read_results(study, RESULTS).table


@pytest.fixture(scope="module")
def fm_via(example):
    study, runs = example
    return fit_model(study, runs, "Viability", "quadratic")


@pytest.fixture(scope="module")
def fm_log(example):
    study, runs = example
    return fit_model(study, runs, "Aggregates", "quadratic", transform="log")


@pytest.fixture(scope="module")
def pilot():
    data = pd.read_csv(PILOT / "data.csv")
    study = Study("pilot", [Factor(n, low=-1, high=1) for n in "TCK"], [Response("y")])
    return study, data, fit_model(study, data, "y", "full")


# -- independent evaluation of the coded model ---------------------------------------------------------
def _column_value(study: Study, name: str, setting: dict, zero_cats: tuple = ()) -> float:
    if name == "Intercept":
        return 1.0
    value = 1.0
    for part in name.split(":"):
        m = re.fullmatch(r"(.+)\[(.+)\]", part)
        if m:
            fac = study.factor(m.group(1))
            if fac.name in zero_cats:
                return 0.0
            current = str(setting[fac.name])
            value *= 1.0 if current == m.group(2) else (-1.0 if current == str(fac.levels[-1]) else 0.0)
            continue
        m = re.fullmatch(r"(.+)\^(\d+)", part)
        fname, power = (m.group(1), int(m.group(2))) if m else (part, 1)
        fac = study.factor(fname)
        value *= ((float(setting[fname]) - fac.center) / fac.half_range) ** power
    return value


def _row(fm, setting: dict, zero_cats: tuple = ()) -> np.ndarray:
    return np.array([_column_value(fm.study, t, setting, zero_cats) for t in fm.coefficients["term"]])


def _independent(fm, setting: dict, zero_cats: tuple = (), back=lambda z: z) -> float:
    return float(back(_row(fm, setting, zero_cats) @ fm.coefficients["estimate"].to_numpy()))


def _defaults(study: Study) -> dict:
    return {f.name: (f.levels[0] if f.is_categorical else f.center) for f in study.factors}


def _check_figure(fig: go.Figure) -> None:
    """Has data, a title, axis titles, no trace whose numbers are all NaN, and serialises."""
    assert isinstance(fig, go.Figure)
    assert len(fig.data) > 0
    assert fig.layout.title.text
    assert fig.layout.template.layout.font.size == 14  # the house template
    layout = fig.to_plotly_json()["layout"]
    titles = [v.get("title", {}).get("text") for k, v in layout.items()
              if re.fullmatch(r"[xy]axis\d*", k) and isinstance(v, dict)]
    if "scene" in layout:
        titles += [layout["scene"][a]["title"]["text"] for a in ("xaxis", "yaxis", "zaxis")]
    assert any(titles), "no axis titles"
    for trace in fig.data:
        for key in ("x", "y", "z"):
            values = getattr(trace, key, None)
            if values is None:
                continue
            arr = np.asarray(values, dtype=object).ravel()
            numeric = [v for v in arr
                       if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)]
            if numeric and len(numeric) == len(arr):
                assert np.isfinite(np.asarray(numeric, dtype=float)).any(), \
                    f"{trace.type} '{trace.name}' {key} all NaN"
    json.dumps(fig.to_plotly_json(), cls=_NumpyEncoder)
    fig.to_json()


class _NumpyEncoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        return super().default(o)


def _all_figures(fm, x, y, a, b):
    figs = {
        "residual_plots": mf.residual_plots(fm),
        "influence_plot": mf.influence_plot(fm),
        "main_effects_plot": mf.main_effects_plot(fm),
        "main_effects_avg": mf.main_effects_plot(fm, average_categoricals=True),
        "interaction_plot": mf.interaction_plot(fm, a, b),
        "interaction_plot_swapped": mf.interaction_plot(fm, b, a),
        "contour_plot": mf.contour_plot(fm, x, y),
        "surface_plot": mf.surface_plot(fm, x, y),
        "profiler": mf.profiler(fm, None),
        "steepest_ascent_plot": mf.steepest_ascent_plot(fm),
    }
    if fm.effects is not None:
        figs["half_normal_plot"] = mf.half_normal_plot(fm)
        figs["pareto_chart"] = mf.pareto_chart(fm)
    return figs


# -- every figure -----------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["via", "log"])
def test_every_figure_example(which, fm_via, fm_log):
    fm = fm_via if which == "via" else fm_log
    figs = _all_figures(fm, "Agitation", "Seeding density", "Agitation", "Medium")
    for fig in figs.values():
        _check_figure(fig)
    if which == "log":
        for name in ("residual_plots", "main_effects_plot", "contour_plot", "profiler"):
            assert "ln(Aggregates)" in figs[name].layout.title.text, name
    for name in ("main_effects_plot", "contour_plot", "surface_plot", "profiler", "interaction_plot"):
        assert "actual units" in figs[name].layout.title.text
    assert "coded units" in figs["steepest_ascent_plot"].layout.title.text


def test_every_figure_pilot(pilot):
    _, _, fm = pilot
    figs = _all_figures(fm, "T", "K", "T", "K")
    for fig in figs.values():
        _check_figure(fig)
    # saturated model: no residuals to studentize, no confidence bands
    notes = " ".join(a.text for a in figs["residual_plots"].layout.annotations)
    assert "no residual degrees of freedom" in notes
    assert "no residual df" in figs["profiler"].layout.title.text


def test_axis_titles_carry_units(fm_via):
    fig = mf.contour_plot(fm_via, "Agitation", "Seeding density")
    assert fig.layout.xaxis.title.text == "Agitation (rpm)"
    assert fig.layout.yaxis.title.text == "Seeding density (cells/cm2)"
    assert fig.data[0].colorbar.title.text == "Viability (%)"
    prof = mf.profiler(fm_via, None)
    assert prof.layout.yaxis.title.text == "Viability (%)"
    xt = {prof.layout[f"xaxis{'' if i == 1 else i}"].title.text for i in range(1, 6)}
    assert xt == {"Medium", "Surface", "Harvest reagent", "Agitation (rpm)", "Seeding density (cells/cm2)"}
    res = mf.residual_plots(fm_via)
    assert res.layout.xaxis4.title.text == "Actual Viability (%)"


# -- predictions on the figures equal the model ----------------------------------------------------------
@pytest.mark.parametrize("which", ["via", "log"])
def test_contour_values_equal_model(which, fm_via, fm_log, example):
    fm = fm_via if which == "via" else fm_log
    back = (lambda z: z) if which == "via" else np.exp
    study = fm.study
    settings = {"Medium": "hPL 5%", "Surface": "ULA", "Harvest reagent": "TrypLE"}
    fig = mf.contour_plot(fm, "Agitation", "Seeding density", settings=settings, n=50)
    tr = fig.data[0]
    xs, ys, z = np.asarray(tr.x), np.asarray(tr.y), np.asarray(tr.z)
    assert z.shape == (50, 50)
    assert xs[0] == 30 and xs[-1] == 90 and ys[0] == 1000 and ys[-1] == 5000
    for i, j in [(0, 0), (49, 49), (10, 37), (25, 3), (49, 0)]:
        setting = {**_defaults(study), **settings, "Agitation": xs[j], "Seeding density": ys[i]}
        assert z[i, j] == pytest.approx(_independent(fm, setting, back=back), rel=1e-10)
        frame = pd.DataFrame([setting])
        assert z[i, j] == pytest.approx(fm.predict(frame, None)["mean"].iloc[0], rel=1e-12)


def test_pilot_contour_equals_effects(pilot):
    study, data, fm = pilot
    fig = mf.contour_plot(fm, "T", "K", settings={"C": 1}, n=21)
    z = np.asarray(fig.data[0].z)
    # corners of the slice C = +1 are runs of the saturated design: the fit passes through them
    corners = {(-1, -1): 54, (1, -1): 68, (-1, 1): 45, (1, 1): 80}
    for (t, k), y in corners.items():
        i, j = (0 if k < 0 else 20), (0 if t < 0 else 20)
        assert z[i, j] == pytest.approx(y, abs=1e-9)
        assert z[i, j] == pytest.approx(_independent(fm, {"T": t, "C": 1, "K": k}), abs=1e-9)
    # the runs on the slice are overlaid and labelled
    runs = [t for t in fig.data if t.type == "scatter"]
    assert len(runs) == 1 and len(runs[0].x) == 4


def test_profiler_values_and_band(fm_via, example):
    study, table = example
    fm = fm_via
    settings = {"Medium": "SFM-XF", "Surface": "CellBIND", "Harvest reagent": "Accutase",
                "Agitation": 45.0, "Seeding density": 4000.0}
    fig = mf.profiler(fm, settings)
    # the current prediction in the title
    now = fm.predict(pd.DataFrame([settings]))
    assert f"{float(now['mean'].iloc[0]):.4g}" in fig.layout.title.text
    assert f"{float(now['lower'].iloc[0]):.4g}" in fig.layout.title.text
    assert _independent(fm, settings) == pytest.approx(float(now["mean"].iloc[0]), rel=1e-12)
    # independent (X'X)^-1 from the runs
    X = np.array([_row(fm, r) for r in table[study.factor_names].to_dict("records")])
    XtX_inv = np.linalg.inv(X.T @ X)
    t = stats.t.ppf(0.975, fm.df_resid)
    mse = fm.rmse ** 2
    lines = [tr for tr in fig.data if tr.mode and "lines" in tr.mode and tr.fill is None]
    bands = [tr for tr in fig.data if tr.fill == "toself"]
    # Agitation panel: axis x4 (study order: Medium, Surface, Harvest reagent, Agitation, Seeding density)
    agit = next(tr for tr in lines if tr.xaxis == "x4")
    band = next(tr for tr in bands if tr.xaxis == "x4")
    xs = np.asarray(agit.x, dtype=float)
    assert xs[0] == 30 and xs[-1] == 90 and len(xs) == 30
    n = len(xs)
    upper, lower = np.asarray(band.y[:n], dtype=float), np.asarray(band.y[n:][::-1], dtype=float)
    for k in (0, 7, 29):
        setting = {**settings, "Agitation": xs[k]}
        row = _row(fm, setting)
        assert agit.y[k] == pytest.approx(_independent(fm, setting), rel=1e-10)
        half = t * math.sqrt(mse * row @ XtX_inv @ row)
        assert upper[k] == pytest.approx(agit.y[k] + half, rel=1e-8)
        assert lower[k] == pytest.approx(agit.y[k] - half, rel=1e-8)
    # categorical panel: one point per level with error bars
    med = next(tr for tr in fig.data if (tr.xaxis or "x") == "x")
    assert list(med.x) == ["FBS 10%", "hPL 5%", "SFM-XF"]
    for lv, yv in zip(med.x, med.y):
        assert yv == pytest.approx(_independent(fm, {**settings, "Medium": lv}), rel=1e-10)
    assert med.error_y.array is not None
    # shared y axis, dashed line at the current setting, spec limit line (Viability >= 80)
    assert fig.layout.yaxis2.matches == "y"
    assert any(s.x0 == 45.0 and s.xref == "x4" for s in fig.layout.shapes)
    assert any(s.y0 == 80 and s.type == "line" for s in fig.layout.shapes)


def test_main_effects_default_and_averaged(fm_via):
    fm = fm_via
    study = fm.study
    fig = mf.main_effects_plot(fm)
    agit = next(tr for tr in fig.data if tr.xaxis == "x4" and tr.fill is None)
    base = _defaults(study)
    for k in (0, 15, 29):
        assert agit.y[k] == pytest.approx(_independent(fm, {**base, "Agitation": agit.x[k]}), rel=1e-10)
    assert "Medium = FBS 10%" in fig.layout.title.text  # defaults: first level
    avg = mf.main_effects_plot(fm, average_categoricals=True)
    agit = next(tr for tr in avg.data if tr.xaxis == "x4" and tr.fill is None)
    cats = ("Medium", "Surface", "Harvest reagent")
    for k in (0, 15, 29):
        # with effect coding the level average is the prediction with every effect-coded column 0
        assert agit.y[k] == pytest.approx(_independent(fm, {**base, "Agitation": agit.x[k]}, zero_cats=cats),
                                          rel=1e-10)
    med = next(tr for tr in avg.data if (tr.xaxis or "x") == "x")
    for lv, yv in zip(med.x, med.y):
        expected = _independent(fm, {**base, "Medium": lv}, zero_cats=("Surface", "Harvest reagent"))
        assert yv == pytest.approx(expected, rel=1e-10)
    assert "averaged over levels" in avg.layout.title.text


def test_interaction_plot_lines(fm_via):
    fig = mf.interaction_plot(fm_via, "Agitation", "Seeding density", ci=False)
    lines = [tr for tr in fig.data if tr.fill is None]
    assert [tr.name for tr in lines] == ["Seeding density = 1000 cells/cm2",
                                         "Seeding density = 5000 cells/cm2"]
    base = _defaults(fm_via.study)
    for tr, sd in zip(lines, (1000, 5000)):
        at = {**base, "Agitation": tr.x[3], "Seeding density": sd}
        assert tr.y[3] == pytest.approx(_independent(fm_via, at), rel=1e-10)
    assert not [tr for tr in fig.data if tr.fill == "toself"]
    cat = mf.interaction_plot(fm_via, "Surface", "Medium")
    assert [tr.name for tr in cat.data] == ["Medium = FBS 10%", "Medium = hPL 5%", "Medium = SFM-XF"]


# -- two-level effects ---------------------------------------------------------------------------------
def test_half_normal_and_pareto_pilot(pilot):
    _, _, fm = pilot
    fig = mf.half_normal_plot(fm)
    labels = {t for tr in fig.data if tr.text is not None for t in tr.text if t}
    assert {"T", "T:K"} <= labels
    xs = sorted(x for tr in fig.data if tr.mode == "markers+text" for x in tr.x)
    assert xs == pytest.approx(sorted(fm.effects["abs_effect"]))
    vlines = sorted(s.x0 for s in fig.layout.shapes if s.type == "line")
    assert vlines == pytest.approx(sorted([fm.lenth["me"], fm.lenth["sme"]]))
    # positive and negative effects in separate (coloured) traces
    pos = next(tr for tr in fig.data if tr.name == "positive effect")
    neg = next(tr for tr in fig.data if tr.name == "negative effect")
    assert "C" in list(neg.text) and "T" in list(pos.text)
    par = mf.pareto_chart(fm)
    bars = [tr for tr in par.data if tr.type == "bar"]
    terms = [t for tr in bars for t in tr.y]
    assert set(terms) == set(fm.effects["term"])
    order = list(par.layout.yaxis.categoryarray)
    assert order[-1] == "T" and order[-2] == "T:K"  # largest at the top
    texts = " ".join(a.text for a in par.layout.annotations)
    assert "ME = 8.469" in texts and "SME = 20.27" in texts


def test_effects_figures_refuse_non_two_level(fm_via):
    with pytest.raises(ValueError, match="two-level"):
        mf.half_normal_plot(fm_via)
    with pytest.raises(ValueError, match="two-level"):
        mf.pareto_chart(fm_via)


# -- residuals and influence -----------------------------------------------------------------------------
def test_residual_plots_flag_outlier(example):
    study, table = example
    runs = table.copy()
    runs.loc[5, "Viability"] += 12  # run 6 becomes an outlier
    fm = fit_model(study, runs, "Viability", "linear")
    fig = mf.residual_plots(fm)
    _check_figure(fig)
    labelled = {t for tr in fig.data if tr.text is not None for t in tr.text if t}
    flagged = set(fm.diagnostics.loc[fm.diagnostics["flag"].str.contains("studentized"), "run"].astype(str))
    assert flagged == {"6"} and labelled == flagged
    limits = mf.diagnostic_limits(fm)
    ys = {round(s.y0, 9) for s in fig.layout.shapes if s.type == "line"}
    assert round(limits["ext_student"], 9) in ys and round(-limits["ext_student"], 9) in ys
    assert round(limits["bonferroni"], 9) in ys  # on scale here (|t| = 8.2)
    # the plotted residuals are fm's, on the run-order panel with run ids on x
    order_panel = [tr for tr in fig.data if tr.xaxis == "x2"]
    pts = {x: y for tr in order_panel for x, y in zip(tr.x, tr.y)}
    d = fm.diagnostics.set_index("run")
    assert pts[6] == pytest.approx(d.loc[6, "ext_studentized"])
    # normal plot: sorted residuals against increasing quantiles
    normal = [tr for tr in fig.data if tr.xaxis == "x3" and tr.mode != "lines"]
    pairs = sorted((x, y) for tr in normal for x, y in zip(tr.x, tr.y))
    assert [p[1] for p in pairs] == sorted(p[1] for p in pairs)


def test_limits_match_fit_flags(fm_via, example):
    """The lines drawn are the limits fit_model flags against (its flag texts print them)."""
    fm = fm_via
    lim = mf.diagnostic_limits(fm)
    text = " ".join(fm.diagnostics["flag"])
    m = re.search(r"4/n = ([\d.]+)", text)
    assert m and float(m.group(1)) == pytest.approx(lim["cooks_4n"], abs=1e-3)
    m = re.search(r"F\(0.5; p, n-p\) = ([\d.]+)", text)
    assert m and float(m.group(1)) == pytest.approx(lim["cooks_f"], abs=1e-3)
    m = re.search(r"2 sqrt\(p/n\) = ([\d.]+)", text)
    assert m and float(m.group(1)) == pytest.approx(lim["dffits"], abs=1e-3)
    fig = mf.influence_plot(fm)
    ys = sorted(round(s.y0, 9) for s in fig.layout.shapes)
    for v in (lim["leverage"], lim["cooks_4n"], lim["cooks_f"], lim["dffits"], -lim["dffits"]):
        assert round(v, 9) in ys
    cook = next(tr for tr in fig.data if tr.yaxis == "y2")
    assert list(cook.y) == pytest.approx(fm.diagnostics["cooks_d"].tolist())
    over = {t for t in cook.text if t}
    assert over == set(fm.diagnostics.loc[fm.diagnostics["cooks_d"] > lim["cooks_4n"], "run"].astype(str))


# -- Box-Cox -------------------------------------------------------------------------------------------
def test_box_cox_plot(example, fm_via):
    study, runs = example
    fm = fit_model(study, runs, "Fold expansion", "quadratic", transform="boxcox")
    fig = mf.box_cox_plot(fm)
    _check_figure(fig)
    assert list(fig.data[0].y) == pytest.approx([v for v in fm.box_cox["log_likelihood"] if math.isfinite(v)])
    xs = [s.x0 for s in fig.layout.shapes if s.type == "line" and s.xref == "x"]
    assert fm.box_cox["best"] in xs and fm.boxcox_lambda in xs
    rect = next(s for s in fig.layout.shapes if s.type == "rect")
    assert [rect.x0, rect.x1] == pytest.approx(fm.box_cox["ci"])
    assert "log-likelihood" in fig.layout.title.text and "ln(residual SS)" in fig.layout.title.text
    bc = box_cox(study, runs, "Fold expansion", "quadratic", transform="log")
    fig2 = mf.box_cox_plot(bc)
    _check_figure(fig2)
    assert 0.0 in [s.x0 for s in fig2.layout.shapes if s.type == "line" and s.xref == "x"]  # current: log
    with pytest.raises(ValueError, match="boxcox"):
        mf.box_cox_plot(fm_via)


# -- contour details --------------------------------------------------------------------------------------
def test_contour_spec_line_and_runs(fm_via, example):
    study, table = example
    settings = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE"}
    fig = mf.contour_plot(fm_via, "Agitation", "Seeding density", settings=settings)
    spec = [tr for tr in fig.data if tr.type == "contour" and tr.name.startswith("spec")]
    assert len(spec) == 1 and spec[0].contours.start == 80 and spec[0].line.width >= 3
    z = np.asarray(fig.data[0].z)
    if z.min() <= 80 <= z.max():
        assert any(a.text.startswith("spec") for a in fig.layout.annotations)
    runs = [tr for tr in fig.data if tr.type == "scatter"]
    expected = table[(table["Medium"] == "hPL 5%") & (table["Surface"] == "Standard TC")
                     & (table["Harvest reagent"] == "TrypLE")]
    if len(expected):
        assert sorted(runs[0].text) == sorted(expected["Run"].astype(str))
    else:
        assert not runs
    # an explicit runs table gives the same overlay
    fig2 = mf.contour_plot(fm_via, "Agitation", "Seeding density", settings=settings, runs=table)
    assert [list(tr.text) for tr in fig2.data if tr.type == "scatter"] == [list(tr.text) for tr in runs]


def test_spec_contour_label_lies_on_the_spec(example):
    study, table = example
    fm = fit_model(study, table, "CD73/CD90/CD105", "quadratic")
    settings = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "Trypsin-EDTA"}
    fig = mf.contour_plot(fm, "Agitation", "Seeding density", settings=settings)
    label = next(a for a in fig.layout.annotations if a.text.startswith("spec"))
    assert label.text == "spec ≥ 95"
    at = {**_defaults(study), **settings, "Agitation": label.x, "Seeding density": label.y}
    assert _independent(fm, at) == pytest.approx(95, abs=0.05)  # linear interpolation on the grid
    surf = mf.surface_plot(fm, "Agitation", "Seeding density", settings=settings)
    assert surf.data[0].contours.z.start == 95 and surf.data[0].contours.z.show
    assert "spec ≥ 95 %" in surf.layout.title.text


def test_contour_refuses_categorical_and_bad_settings(fm_via):
    with pytest.raises(ValueError, match="categorical"):
        mf.contour_plot(fm_via, "Medium", "Agitation")
    with pytest.raises(ValueError, match="not a level"):
        mf.profiler(fm_via, {"Medium": "DMEM"})
    with pytest.raises(ValueError, match="Unknown factor"):
        mf.main_effects_plot(fm_via, {"Temperature": 37})
    # level names match ignoring case; a one-row table works (extra columns ignored)
    s = mf.resolve_settings(fm_via, pd.DataFrame([{"Run": 3, "Medium": "hpl 5%", "Agitation": 40}]))
    assert s["Medium"] == "hPL 5%" and s["Agitation"] == 40 and s["Seeding density"] == 3000


def test_steepest_ascent_plot_reads_path(pilot):
    _, _, fm = pilot
    fig = mf.steepest_ascent_plot(fm)
    path = fm.steepest_ascent()
    assert list(fig.data[0].y) == pytest.approx(path["yhat"].tolist())
    assert list(fig.data[0].x) == pytest.approx(path["dist"].tolist())


# -- every figure of the example builds (their speed: bench/bench_models.py) ------------------------
def test_every_example_figure_builds(fm_via):
    calls = [
        lambda: mf.residual_plots(fm_via), lambda: mf.influence_plot(fm_via),
        lambda: mf.main_effects_plot(fm_via), lambda: mf.main_effects_plot(fm_via, average_categoricals=True),
        lambda: mf.interaction_plot(fm_via, "Agitation", "Medium"),
        lambda: mf.contour_plot(fm_via, "Agitation", "Seeding density", n=50),
        lambda: mf.surface_plot(fm_via, "Agitation", "Seeding density"),
        lambda: mf.profiler(fm_via, None), lambda: mf.steepest_ascent_plot(fm_via),
    ]
    for fn in calls:
        fig = fn()
        assert fig.data, fn
