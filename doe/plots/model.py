"""Plotly figures of a fitted model: residuals, influence, effects, Box-Cox, effects of the
factors, contour and surface plots, the prediction profiler and the steepest-ascent path.

Pure functions: each takes a :class:`~doe.fit.FittedModel` (``fm``) and returns a
:class:`plotly.graph_objects.Figure`. Statistics are read from ``fm`` (coefficients,
diagnostics, effects, Lenth's margins, Box-Cox curve, steepest-ascent path); predicted
values and their intervals come from :meth:`FittedModel.predict`, one call per figure on
the whole grid. Every figure uses the house :data:`doe.plots.theme.TEMPLATE` and
:data:`doe.plots.theme.PALETTE`, names factors with their units (:meth:`Factor.label`), and
says in its title what is shown and in which units.

Conventions
-----------
- **Settings** of the factors not on an axis: a dict ``{factor: value}`` in actual units
  (level names for categorical factors), or a one-row DataFrame / Series (columns that are
  not factors, such as ``Run``, are ignored). Factors left out are at their *default*:
  continuous and discrete factors at the centre of their range, categorical factors at
  their **first level** (:func:`resolve_settings`). With effect coding, the average over
  the levels of a categorical factor is another valid reference; :func:`main_effects_plot`
  and :func:`interaction_plot` offer it with ``average_categoricals=True``.
- **Scales.** With a response transform, the fit (residuals, effects) is on the
  transformed scale, which the titles name (e.g. ``ln(Aggregates)``); predictions and
  their intervals are back-transformed to the response's own units by ``fm.predict``.
- **Intervals** are confidence intervals of the mean (``level``, default 95 %). A
  saturated model (no residual degrees of freedom) has none; the figures then say so.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

from doe.errors import ModelError, did_you_mean, quoted_list
from doe.fit import EXT_STUDENT_LIMIT, FittedModel
from doe.model import actual_frame
from doe.plots.theme import PALETTE, TEMPLATE

if TYPE_CHECKING:
    from doe.study import Factor, Response

__all__ = [
    "RUN_MATCH_TOL",
    "box_cox_plot",
    "contour_plot",
    "diagnostic_limits",
    "half_normal_plot",
    "influence_plot",
    "interaction_plot",
    "main_effects_plot",
    "pareto_chart",
    "profiler",
    "resolve_settings",
    "residual_plots",
    "steepest_ascent_plot",
    "surface_plot",
]

#: A run lies on a contour/surface slice when every fixed numeric factor is within this
#: many coded units (1 = half the range) of the slice setting and categorical levels match.
RUN_MATCH_TOL = 0.05
#: Points per continuous factor on main-effect, interaction and profiler curves.
CURVE_POINTS = 30

_BLUE, _ORANGE, _GREEN, _VERMILLION = PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3]
_GREY = "#555555"
_BAND = "rgba(0, 114, 178, 0.18)"
_POSITIVE, _NEGATIVE = PALETTE[1], PALETTE[0]  # Design-Expert: orange positive, blue negative


# -- public helpers ----------------------------------------------------------------------------
def resolve_settings(fm: FittedModel, settings: Any = None) -> dict[str, Any]:
    """Every study factor's setting in actual units: the given ones, the others at default.

    Defaults: continuous and discrete factors at the centre of their range, categorical
    factors at their first level. Categorical values are matched to the level names
    ignoring case. Raises :class:`~doe.errors.ModelError` (a ValueError) for an unknown
    factor in a dict, an unknown level or a non-numeric value.
    """
    study = fm.study
    out: dict[str, Any] = {f.name: (f.levels[0] if f.is_categorical else float(f.center))
                           for f in study.factors}
    if settings is None:
        return out
    strict = True
    if isinstance(settings, pd.DataFrame):
        if len(settings) == 0:
            return out
        settings, strict = settings.iloc[0].to_dict(), False
    elif isinstance(settings, pd.Series):
        settings, strict = settings.to_dict(), False
    elif not isinstance(settings, dict):
        raise ModelError("Settings must be a dict {factor: value} or a one-row table.")
    for name, value in settings.items():
        if name not in out:
            if strict:
                raise ModelError(f"Unknown factor '{name}' in the settings."
                                 f"{did_you_mean(str(name), study.factor_names)}"
                                 f" Factors are {quoted_list(study.factor_names)}.")
            continue
        f = study.factor(name)
        if f.is_categorical:
            match = {str(v).strip().lower(): v for v in f.levels}.get(str(value).strip().lower())
            if match is None:
                raise ModelError(f"'{value}' is not a level of {name}.{did_you_mean(str(value), f.levels)} "
                                 f"Levels are {quoted_list(f.levels)}.")
            out[name] = match
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ModelError(f"The setting of {name} must be a number in {f.units or 'its units'}; "
                                 f"got {value!r}.") from None
            if not math.isfinite(v):
                raise ModelError(f"The setting of {name} must be a finite number; got {value!r}.")
            out[name] = v
    return out


def diagnostic_limits(fm: FittedModel) -> dict[str, float]:
    """The limits :func:`doe.fit.fit_model` flags diagnostics against (same formulas).

    ``ext_student`` (Design-Expert's fixed limit, :data:`doe.fit.EXT_STUDENT_LIMIT`),
    ``bonferroni`` (t(1 - alpha/(2n), n - p - 1), the outlier limit), ``leverage`` (2p/n),
    ``cooks_4n`` (4/n), ``cooks_f`` (F(0.5; p, n - p)) and ``dffits`` (2 sqrt(p/n)).
    A limit that needs residual degrees of freedom is NaN when there are too few.
    """
    n, p, df = fm.n, fm.p, fm.df_resid
    return {
        "ext_student": float(EXT_STUDENT_LIMIT),
        "bonferroni": float(stats.t.ppf(1 - fm.alpha / (2 * n), df - 1)) if df > 1 else math.nan,
        "leverage": 2 * p / n,
        "cooks_4n": 4 / n,
        "cooks_f": float(stats.f.ppf(0.5, p, n - p)) if n > p else math.nan,
        "dffits": 2 * math.sqrt(p / n),
    }


# -- small helpers --------------------------------------------------------------------------------
def _g(x: Any, digits: int = 4) -> str:
    """Short number for titles and labels."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "n/a"
    text = f"{v:.{digits}g}"
    return "0" if text in ("-0", "0") else text


def _response_obj(fm: FittedModel) -> Response | None:
    return next((r for r in fm.study.responses if r.name == fm.response), None)


def _units(fm: FittedModel) -> str:
    r = _response_obj(fm)
    return r.units if r is not None and r.units else ""


def _resp_label(fm: FittedModel) -> str:
    """Response name with units, e.g. 'Viability (%)'."""
    u = _units(fm)
    return f"{fm.response} ({u})" if u else fm.response


def _transformed(fm: FittedModel) -> bool:
    return fm.transform_label != fm.response


def _scale_label(fm: FittedModel) -> str:
    """The response on the fitted scale: 'ln(Aggregates)', or 'Viability (%)' without a transform."""
    return fm.transform_label if _transformed(fm) else _resp_label(fm)


def _transform_note(fm: FittedModel) -> str:
    if not _transformed(fm):
        return ""
    lam = f", Box-Cox λ = {_g(fm.boxcox_lambda)}" if fm.boxcox_lambda is not None else ""
    return f" (fitted as {fm.transform_label}{lam})"


def _spec_limits(fm: FittedModel) -> list[tuple[str, float]]:
    r = _response_obj(fm)
    out = []
    if r is not None:
        if r.lower is not None:
            out.append(("≥", float(r.lower)))
        if r.upper is not None:
            out.append(("≤", float(r.upper)))
    return out


def _model_factors(fm: FittedModel) -> list[Factor]:
    used = {f for t in fm.model_terms for f in t.factors}
    return [f for f in fm.study.factors if f.name in used]


def _factor_grid(f: Any, n: int = CURVE_POINTS) -> np.ndarray:
    if f.is_categorical:
        return np.array(list(f.levels), dtype=object)
    return np.linspace(float(f.low), float(f.high), n)


def _setting_text(f: Any, value: Any) -> str:
    if f.is_categorical:
        return f"{f.name} = {value}"
    return f"{f.name} = {_g(value)}{(' ' + f.units) if f.units else ''}"


def _settings_line(fm: FittedModel, s: dict[str, Any], skip: tuple[str, ...] = (),
                   averaged: tuple[str, ...] = ()) -> str:
    parts = []
    for f in _model_factors(fm):
        if f.name in skip:
            continue
        parts.append(f"{f.name} averaged over levels" if f.name in averaged else _setting_text(f, s[f.name]))
    return ", ".join(parts)


def _frame(fm: FittedModel, base: dict[str, Any], n: int, varying: dict[str, np.ndarray]) -> pd.DataFrame:
    """n rows of settings in actual units: ``varying`` columns, the other factors at ``base``."""
    data = {}
    for f in fm.study.factors:
        if f.name in varying:
            data[f.name] = varying[f.name]
        elif f.is_categorical:
            data[f.name] = np.full(n, base[f.name], dtype=object)
        else:
            data[f.name] = np.full(n, float(base[f.name]))
    return pd.DataFrame(data)


def _level_combos(fm: FittedModel, names: list[str]) -> list[tuple[Any, ...]]:
    return list(itertools.product(*[fm.study.factor(f).levels for f in names])) or [()]


def _predict_blocks(fm: FittedModel, s: dict[str, Any], blocks: list[dict[str, np.ndarray]],
                    average: list[str] | list[list[str]], level: float,
                    interval: str | None = "confidence") -> list[pd.DataFrame]:
    """Predict several blocks of settings with one ``fm.predict`` call.

    Each block maps factor names to equal-length arrays. ``average`` lists categorical
    factors whose levels are averaged (one list for all blocks, or one list per block):
    the block is repeated for each level combination and the predictions are averaged on
    the fitted scale; the interval half-widths are averaged on the fitted scale too (a
    conservative band: the exact interval of the averaged prediction is never wider).
    """
    per_block = cast("list[list[str]]", list(average) if average and isinstance(average[0], (list, tuple))
                     else [list(average)] * len(blocks))
    columns: dict[str, list[np.ndarray]] = {f.name: [] for f in fm.study.factors}
    plan = []
    for block, avg in zip(blocks, per_block):
        n = len(next(iter(block.values())))
        combos = _level_combos(fm, avg) if avg else [()]
        plan.append((n, len(combos)))
        for combo in combos:
            varying = dict(block)
            for name, lv in zip(avg, combo):
                varying[name] = np.full(n, lv, dtype=object)
            for f in fm.study.factors:
                kind = object if f.is_categorical else float
                if f.name in varying:
                    columns[f.name].append(np.asarray(varying[f.name], dtype=kind))
                else:
                    columns[f.name].append(np.full(n, s[f.name], dtype=kind))
    frame = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
    pred = fm.predict(frame, interval, level)
    tf = getattr(fm, "_tf", None)
    fwd = tf.forward if tf is not None else (lambda v: np.asarray(v, dtype=float))
    inv = tf.inverse if tf is not None else (lambda v: np.asarray(v, dtype=float))
    out, start = [], 0
    for n, k in plan:
        chunk = pred.iloc[start:start + n * k]
        start += n * k
        if k == 1:
            out.append(chunk.reset_index(drop=True))
            continue
        z = chunk["fitted_scale"].to_numpy().reshape(k, n)
        lo = chunk["lower"].to_numpy().reshape(k, n)
        hi = chunk["upper"].to_numpy().reshape(k, n)
        zbar = z.mean(axis=0)
        half = (np.abs(fwd(hi) - fwd(lo)) / 2).mean(axis=0)
        a, b = inv(zbar - half), inv(zbar + half)
        out.append(pd.DataFrame({"mean": inv(zbar), "lower": np.minimum(a, b), "upper": np.maximum(a, b),
                                 "fitted_scale": zbar}))
    return out


def _has_ci(pred: pd.DataFrame) -> bool:
    return bool(np.isfinite(pred["lower"].to_numpy()).any())


def _axis_suffix(i: int) -> str:
    """Axis name suffix of subplot i (1-based, row-major)."""
    return "" if i == 1 else str(i)


def _hline(y: float, axis: int, color: str, dash: str = "dash", width: float = 1.5) -> dict[str, Any]:
    s = _axis_suffix(axis)
    return {"type": "line", "xref": f"x{s} domain", "x0": 0, "x1": 1, "yref": f"y{s}", "y0": y, "y1": y,
            "line": {"color": color, "dash": dash, "width": width}, "layer": "below"}


def _vline(x: float, axis: int, color: str, dash: str = "dash", width: float = 1.5) -> dict[str, Any]:
    s = _axis_suffix(axis)
    return {"type": "line", "yref": f"y{s} domain", "y0": 0, "y1": 1, "xref": f"x{s}", "x0": x, "x1": x,
            "line": {"color": color, "dash": dash, "width": width}, "layer": "below"}


def _label(text: str, axis: int, x: float = 1.0, y: float = 1.0, xanchor: str = "right",
           yanchor: str = "bottom", color: str = _GREY, size: int = 12, xdata: bool = False,
           ydata: bool = False) -> dict[str, Any]:
    s = _axis_suffix(axis)
    return {"text": text, "xref": f"x{s}" if xdata else f"x{s} domain",
            "yref": f"y{s}" if ydata else f"y{s} domain", "x": x, "y": y, "xanchor": xanchor,
            "yanchor": yanchor, "showarrow": False, "font": {"size": size, "color": color}}


def _note(text: str, axis: int | None = None) -> dict[str, Any]:
    """A grey message in the middle of a panel (or of the figure)."""
    if axis is None:
        ref = {"xref": "paper", "yref": "paper"}
    else:
        sfx = _axis_suffix(axis)
        ref = {"xref": f"x{sfx} domain", "yref": f"y{sfx} domain"}
    return {"text": text, "x": 0.5, "y": 0.5, "showarrow": False, "font": {"size": 14, "color": _GREY}, **ref}


class _Canvas:
    """Panels on a grid: traces, shapes and annotations collected as plain dicts and
    validated once by ``go.Figure`` at the end (plotly's make_subplots, add_trace(row, col)
    and update_xaxes cost several times more for the same figure).

    Panels are numbered 1..n row by row; panel i uses axes ``x{i}``/``y{i}`` (``x``/``y``
    for panel 1), as make_subplots does.
    """

    def __init__(self, rows: int = 1, cols: int = 1, *, n: int | None = None, hspace: float = 0.08,
                 vspace: float = 0.12, share_x: bool = False, share_y: bool = False,
                 titles: list[str] | None = None):
        self.n = n or rows * cols
        self.traces: list[dict[str, Any]] = []
        self.shapes: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.axes: dict[str, dict[str, Any]] = {}
        w = (1 - hspace * (cols - 1)) / cols
        h = (1 - vspace * (rows - 1)) / rows
        for i in range(1, self.n + 1):
            r, c = divmod(i - 1, cols)
            sfx = _axis_suffix(i)
            x0, top = c * (w + hspace), 1 - r * (h + vspace)
            xa: dict[str, Any] = {"domain": [x0, min(x0 + w, 1.0)], "anchor": f"y{sfx}", "automargin": True}
            ya: dict[str, Any] = {"domain": [max(top - h, 0.0), top], "anchor": f"x{sfx}", "automargin": True}
            if share_y and i > 1:
                ya["matches"] = "y"
                if c > 0:
                    ya["showticklabels"] = False
            if share_x and i > 1:
                xa["matches"] = "x"
            if share_x and i + cols <= self.n:
                xa["showticklabels"] = False
            self.axes[f"xaxis{sfx}"], self.axes[f"yaxis{sfx}"] = xa, ya
            if titles:
                self.annotations.append({
                    "text": titles[i - 1], "x": x0 + w / 2, "y": top, "xref": "paper", "yref": "paper",
                    "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 15}})

    def add(self, trace: dict[str, Any], axis: int = 1) -> None:
        if axis != 1:
            sfx = _axis_suffix(axis)
            trace["xaxis"], trace["yaxis"] = f"x{sfx}", f"y{sfx}"
        self.traces.append(trace)

    def x(self, axis: int, **props: Any) -> None:
        self.axes[f"xaxis{_axis_suffix(axis)}"].update(props)

    def y(self, axis: int, **props: Any) -> None:
        self.axes[f"yaxis{_axis_suffix(axis)}"].update(props)

    def figure(self, title: str, **layout: Any) -> go.Figure:
        full = {"template": TEMPLATE, "title": {"text": title}, **self.axes, "shapes": self.shapes,
                "annotations": self.annotations, **layout}
        return go.Figure(data=self.traces, layout=full)


def _title(text: str) -> dict[str, Any]:
    return {"title": {"text": text}}


def _run_axis(runs: list[Any]) -> tuple[list[Any], str]:
    numeric = all(isinstance(r, (int, float, np.integer, np.floating)) and not isinstance(r, bool)
                  for r in runs)
    return (list(runs), "linear") if numeric else ([str(r) for r in runs], "category")


def _band(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, name: str, color: str = _BAND,
          legendgroup: str = "ci") -> dict[str, Any]:
    """A filled confidence band (one closed polygon)."""
    x = np.asarray(x, dtype=float)
    return {"type": "scatter", "x": np.concatenate([x, x[::-1]]), "y": np.concatenate([upper, lower[::-1]]),
            "fill": "toself", "fillcolor": color, "line": {"width": 0}, "mode": "lines", "hoverinfo": "skip",
            "name": name, "showlegend": False, "legendgroup": legendgroup}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def _pct(level: float) -> str:
    return f"{_g(100 * level, 3)} %"



# -- residuals and influence ----------------------------------------------------------------------
def residual_plots(fm: FittedModel) -> go.Figure:
    """Four residual panels, as Design-Expert's diagnostics.

    Top left: externally studentized residuals vs predicted values on the fitted scale
    (where the residuals live). Top right: vs run order (run ids on the axis). Bottom
    left: normal probability plot of the externally studentized residuals against normal
    quantiles at R's ``ppoints`` positions, with the reference line through the quartiles
    (R's ``qqline``). Bottom right: predicted vs actual in the response's units with the
    45° line. Dashed lines: ±:data:`doe.fit.EXT_STUDENT_LIMIT` (Design-Expert's limit);
    dotted, the Bonferroni outlier limit, drawn when it is on the scale of the data (it is
    always given in the corner note). Points flagged in ``fm.diagnostics`` are vermillion
    diamonds with the flag in the hover text; those flagged for their residual carry
    their run id. A saturated model has no studentized residuals: the three residual
    panels then say so.
    """
    d = fm.diagnostics
    runs = d["run"].tolist()
    t_ext = d["ext_studentized"].to_numpy(dtype=float)
    fitted = d["predicted_transformed" if "predicted_transformed" in d else "predicted"].to_numpy(dtype=float)
    actual = d["actual"].to_numpy(dtype=float)
    predicted = d["predicted"].to_numpy(dtype=float)
    flags = d["flag"].fillna("").astype(str).to_numpy()
    flagged = flags != ""
    resid_flag = np.array(["studentized" in f for f in flags], dtype=bool)
    lim = diagnostic_limits(fm)
    finite = np.isfinite(t_ext)
    axis_values, run_type = _run_axis(runs)
    run_x = np.array(axis_values, dtype=object if run_type == "category" else float)
    hover_flag = np.array([f"<br>{f}" if f else "" for f in flags], dtype=object)
    run_text = np.array([str(r) for r in runs], dtype=object)
    cv = _Canvas(2, 2, hspace=0.12, vspace=0.17, titles=[
        "Residuals vs predicted", "Residuals vs run order", "Normal probability plot", "Predicted vs actual"])
    legend_done = {"ok": False, "flag": False}

    def points(x: np.ndarray, y: np.ndarray, idx: np.ndarray, axis: int, hover: str) -> None:
        for kind, mask in (("ok", ~flagged[idx]), ("flag", flagged[idx])):
            if not mask.any():
                continue
            sel = idx[mask]
            trace = {
                "type": "scatter", "x": np.asarray(x)[mask], "y": np.asarray(y)[mask],
                "mode": "markers+text" if kind == "flag" else "markers",
                "marker": {"size": 9, "color": _VERMILLION if kind == "flag" else _BLUE,
                           "symbol": "diamond" if kind == "flag" else "circle",
                           "line": {"width": 1, "color": "white"}},
                "name": "flagged in diagnostics (hover for the flag)" if kind == "flag" else "run",
                "legendgroup": kind, "showlegend": not legend_done[kind],
                "customdata": np.column_stack([run_text[sel], hover_flag[sel]]),
                "hovertemplate": "Run %{customdata[0]}<br>" + hover + "%{customdata[1]}<extra></extra>",
            }
            if kind == "flag":
                trace.update(text=np.where(resid_flag[sel], run_text[sel], ""), textposition="top right",
                             textfont={"size": 11, "color": _VERMILLION})
            cv.add(trace, axis)
            legend_done[kind] = True

    if finite.any():
        idx = np.flatnonzero(finite)
        points(fitted[idx], t_ext[idx], idx, 1, "predicted = %{x:.4g}<br>ext. studentized = %{y:.3f}")
        points(run_x[idx], t_ext[idx], idx, 2, "ext. studentized = %{y:.3f}")
        order = idx[np.argsort(t_ext[idx], kind="stable")]
        m = len(order)
        a = 3 / 8 if m <= 10 else 0.5  # R's ppoints
        q = stats.norm.ppf((np.arange(1, m + 1) - a) / (m + 1 - 2 * a))
        points(q, t_ext[order], order, 3, "normal quantile = %{x:.3f}<br>ext. studentized = %{y:.3f}")
        y1, y3 = np.quantile(t_ext[order], [0.25, 0.75])
        x1, x3 = stats.norm.ppf([0.25, 0.75])
        slope = (y3 - y1) / (x3 - x1)
        qx = np.array([q[0], q[-1]])
        cv.add({"type": "scatter", "x": qx, "y": y1 + slope * (qx - x1), "mode": "lines",
                "name": "reference line (quartiles)", "line": {"color": _GREY, "dash": "dash"},
                "hoverinfo": "skip", "showlegend": False}, 3)
        big = float(np.max(np.abs(t_ext[idx])))
        bonf_shown = math.isfinite(lim["bonferroni"]) and lim["bonferroni"] <= max(1.5 * lim["ext_student"],
                                                                                     1.2 * big)
        for axis in (1, 2, 3):
            cv.shapes.append(_hline(0.0, axis, "#999999", "solid", 1))
            for v in (lim["ext_student"], -lim["ext_student"]):
                cv.shapes.append(_hline(v, axis, _VERMILLION, "dash"))
            if bonf_shown:
                for v in (lim["bonferroni"], -lim["bonferroni"]):
                    cv.shapes.append(_hline(v, axis, _ORANGE, "dot"))
        bonf = ""
        if math.isfinite(lim["bonferroni"]):
            bonf = (f"; dotted: Bonferroni outlier limit ±{_g(lim['bonferroni'], 3)}"
                    + ("" if bonf_shown else " (off scale)"))
        cv.annotations.append({"text": f"Dashed: ±{_g(lim['ext_student'])}{bonf}", "xref": "paper",
                               "yref": "paper", "x": 1.0, "y": 1.0, "yanchor": "bottom", "xanchor": "right",
                               "yshift": 24, "showarrow": False, "font": {"size": 12, "color": _GREY}})
    else:
        for axis in (1, 2, 3):
            cv.annotations.append(_note("Not available:<br>no residual degrees of freedom", axis))
    points(actual, predicted, np.arange(len(runs)), 4, "actual = %{x:.4g}<br>predicted = %{y:.4g}")
    both = np.concatenate([actual[np.isfinite(actual)], predicted[np.isfinite(predicted)]])
    lo, hi = float(both.min()), float(both.max())
    pad = 0.03 * (hi - lo or 1.0)
    cv.add({"type": "scatter", "x": [lo - pad, hi + pad], "y": [lo - pad, hi + pad], "mode": "lines",
            "name": "45° line", "line": {"color": _GREY, "dash": "dash"}, "hoverinfo": "skip",
            "showlegend": False}, 4)
    resp = _resp_label(fm)
    cv.x(1, **_title(f"Predicted {_scale_label(fm)}"))
    cv.x(2, **_title("Run (run-sheet order)"), type=run_type)
    cv.x(3, **_title("Normal quantile"))
    cv.x(4, **_title(f"Actual {resp}"))
    for axis in (1, 2, 3):
        cv.y(axis, **_title("Ext. studentized residual"))
    cv.y(4, **_title(f"Predicted {resp}"))
    scale = " (fitted scale)" if _transformed(fm) else ""
    return cv.figure(
        f"Residual diagnostics for {fm.response}{_transform_note(fm)}: externally studentized residuals"
        f"{scale}; predicted vs actual in {resp}",
        height=800, margin={"t": 130}, legend={"orientation": "h", "yanchor": "top", "y": -0.1, "x": 0},
    )


def influence_plot(fm: FittedModel) -> go.Figure:
    """Leverage, Cook's distance and DFFITS of each run (three stacked panels, run ids on x).

    The lines are the limits ``fit_model`` flags against (:func:`diagnostic_limits`):
    leverage 2p/n; Cook's distance 4/n (dashed) and F(0.5; p, n - p) (dotted); DFFITS
    ±2 sqrt(p/n). Runs beyond a panel's (lowest) limit are vermillion and labelled with
    their id; the hover text gives every flag of the run. Panels whose measure needs
    residual degrees of freedom say so for a saturated model.
    """
    d = fm.diagnostics
    runs = d["run"].tolist()
    axis_values, run_type = _run_axis(runs)
    run_x = np.array(axis_values, dtype=object if run_type == "category" else float)
    flags = d["flag"].fillna("").astype(str).to_numpy()
    lim = diagnostic_limits(fm)
    run_text = np.array([str(r) for r in runs], dtype=object)
    panels = [
        ("leverage", "Leverage", [(lim["leverage"], "2p/n", "dash")], False),
        ("cooks_d", "Cook's distance",
         [(lim["cooks_4n"], "4/n", "dash"), (lim["cooks_f"], "F(0.5; p, n−p)", "dot")], False),
        ("dffits", "DFFITS", [(lim["dffits"], "2√(p/n)", "dash"), (-lim["dffits"], "", "dash")], True),
    ]
    cv = _Canvas(3, 1, vspace=0.06, share_x=True)
    for i, (col, name, limits, two_sided) in enumerate(panels, start=1):
        cv.y(i, **_title(name))
        v = d[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        if not ok.any():
            cv.annotations.append(_note(f"{name}: not available (no residual degrees of freedom)", i))
            continue
        finite_limits = [abs(L) for L, _, _ in limits if math.isfinite(L)]
        over = np.zeros(len(v), dtype=bool)
        if finite_limits:
            over = ok & ((np.abs(v) if two_sided else v) > min(finite_limits) + 1e-12)
        cv.add({"type": "bar", "x": run_x[ok], "y": v[ok],
                "marker": {"color": np.where(over[ok], _VERMILLION, _BLUE)},
                "text": np.where(over[ok], run_text[ok], ""), "textposition": "outside", "cliponaxis": False,
                "customdata": np.column_stack([run_text[ok], flags[ok]]), "name": name, "showlegend": False,
                "hovertemplate": f"Run %{{customdata[0]}}<br>{name} = %{{y:.4g}}<br>%{{customdata[1]}}"
                                 "<extra></extra>"},
               i)
        for L, text, dash in limits:
            if not math.isfinite(L):
                continue
            color = _VERMILLION if dash == "dash" else _ORANGE
            cv.shapes.append(_hline(L, i, color, dash))
            if text:
                cv.annotations.append(_label(f"{text} = {_g(L, 3)}", i, x=1.0, y=L, ydata=True, color=color))
    cv.x(1, type=run_type)
    cv.x(3, **_title("Run (run-sheet order)"))
    return cv.figure(
        f"Influence of each run on the model for {fm.response}{_transform_note(fm)}: leverage, Cook's "
        f"distance, DFFITS<br><sup>p = {fm.p} coefficients, n = {fm.n} runs; bars beyond a limit are "
        "vermillion and labelled</sup>",
        height=800, bargap=0.35, showlegend=False,
    )


# -- two-level effects ------------------------------------------------------------------------------
def _effects(fm: FittedModel) -> pd.DataFrame:
    if fm.effects is None or len(fm.effects) == 0:
        raise ModelError(
            f"Half-normal plots and Pareto charts of effects need a two-level design and a model of "
            f"distinct-factor terms (no squares); the model for {fm.response} is not one. Use the "
            "ANOVA and the coefficient table instead."
        )
    return fm.effects


def _effect_units(fm: FittedModel) -> str:
    """Where effects live: ' (ln(Y), transformed scale)', ' (%)' or '' without units."""
    if _transformed(fm):
        return f" ({fm.transform_label}, transformed scale)"
    return f" ({_units(fm)})" if _units(fm) else ""


def _effect_columns(eff: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    m = len(eff)
    lt = eff["lenth_t"].to_numpy(dtype=float) if "lenth_t" in eff else np.full(m, np.nan)
    lp = eff["lenth_p"].to_numpy(dtype=float) if "lenth_p" in eff else np.full(m, np.nan)
    return lt, lp


def _lenth_lines(cv: _Canvas, le: dict[str, float]) -> None:
    for key, dash, text in (("me", "dash", "ME"), ("sme", "dot", "SME")):
        v = le.get(key, math.nan)
        if math.isfinite(v):
            cv.shapes.append(_vline(v, 1, _VERMILLION, dash, 2))
            cv.annotations.append(_label(f"{text} = {_g(v)}", 1, x=v, y=1.0, xanchor="left", xdata=True,
                                         color=_VERMILLION))


def half_normal_plot(fm: FittedModel, n_labels: int = 3) -> go.Figure:
    """Half-normal plot of the absolute effects (Daniel 1959), Design-Expert's orientation.

    x: |effect| (effect = 2 x coded coefficient, read from ``fm.effects``); y: half-normal
    quantile Φ⁻¹(0.5 + 0.5 (i - 0.5)/m) of the i-th smallest of the m effects. Orange
    points are positive effects, blue negative (Design-Expert's colours). The dashed grey
    line is the null line |effect| = PSE x quantile (Lenth's pseudo standard error);
    vermillion verticals are Lenth's ME (dashed) and SME (dotted) from ``fm.lenth``.
    The ``n_labels`` largest effects and every effect beyond the ME are labelled.

    Raises ModelError (a ValueError) if the model has no two-level effects.
    """
    eff = _effects(fm).sort_values("abs_effect", kind="stable").reset_index(drop=True)
    m = len(eff)
    q = stats.norm.ppf(0.5 + 0.5 * (np.arange(1, m + 1) - 0.5) / m)
    absx = eff["abs_effect"].to_numpy(dtype=float)
    effect = eff["effect"].to_numpy(dtype=float)
    positive = effect >= 0
    label = np.zeros(m, dtype=bool)
    label[max(m - n_labels, 0):] = True
    if "active" in eff:
        label |= eff["active"].to_numpy(dtype=bool)
    terms = eff["term"].astype(str).to_numpy(dtype=object)
    lt, lp = _effect_columns(eff)
    cv = _Canvas()
    signs = (("positive effect", positive, _POSITIVE), ("negative effect", ~positive, _NEGATIVE))
    for name, mask, color in signs:
        if mask.any():
            cv.add({"type": "scatter", "x": absx[mask], "y": q[mask], "mode": "markers+text", "name": name,
                    "text": np.where(label[mask], terms[mask], ""), "textposition": "middle left",
                    "textfont": {"size": 13},
                    "marker": {"size": 11, "color": color, "line": {"width": 1, "color": "white"}},
                    "customdata": np.column_stack([terms[mask], effect[mask], lt[mask], lp[mask]]),
                    "hovertemplate": "%{customdata[0]}<br>effect = %{customdata[1]:.4g}<br>Lenth t = "
                                     "%{customdata[2]:.3f}<br>Lenth p = %{customdata[3]:.3g}<extra></extra>"})
    le = fm.lenth or {}
    top = float(q[-1]) * 1.08
    if le.get("pse", 0) > 0:
        cv.add({"type": "scatter", "x": [0.0, le["pse"] * top], "y": [0.0, top], "mode": "lines",
                "name": "null line (slope = Lenth PSE)", "line": {"color": _GREY, "dash": "dash"},
                "hoverinfo": "skip"})
    _lenth_lines(cv, le)
    xmax = max([float(absx.max())] + [le[k] for k in ("me", "sme") if math.isfinite(le.get(k, math.nan))])
    units = _effect_units(fm)
    sub = (f"Lenth PSE = {_g(le['pse'])}, ME = {_g(le['me'])}, SME = {_g(le['sme'])} "
           f"(α = {_g(le['alpha'])}); "
           f"labelled: the {n_labels} largest and every effect beyond ME" if le else "")
    cv.x(1, **_title(f"|Effect|{units}"), range=[-0.15 * xmax, 1.12 * xmax], zeroline=True)
    cv.y(1, **_title("Half-normal quantile"), rangemode="tozero")
    return cv.figure(
        f"Half-normal plot of effects on {fm.response}{units}: effect = 2 × coded coefficient"
        + (f"<br><sup>{sub}</sup>" if sub else ""),
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0}, margin={"t": 110},
    )


def pareto_chart(fm: FittedModel) -> go.Figure:
    """Pareto chart of the absolute effects, largest at the top, coloured by sign.

    Bars are |effect| from ``fm.effects`` (orange positive, blue negative; the signed
    effect is printed at the bar); vermillion verticals are Lenth's margin of error (ME,
    dashed) and simultaneous margin of error (SME, dotted) from ``fm.lenth``. Raises
    ModelError (a ValueError) if the model has no two-level effects.
    """
    eff = _effects(fm).sort_values("abs_effect", ascending=True, kind="stable")
    effect = eff["effect"].to_numpy(dtype=float)
    absx = eff["abs_effect"].to_numpy(dtype=float)
    positive = effect >= 0
    lt, lp = _effect_columns(eff)
    terms = eff["term"].astype(str).to_numpy(dtype=object)
    cv = _Canvas()
    signs = (("positive effect", positive, _POSITIVE), ("negative effect", ~positive, _NEGATIVE))
    for name, mask, color in signs:
        if mask.any():
            cv.add({"type": "bar", "x": absx[mask], "y": terms[mask], "orientation": "h", "name": name,
                    "marker": {"color": color}, "text": [_g(v) for v in effect[mask]],
                    "textposition": "outside",
                    "cliponaxis": False, "customdata": np.column_stack([effect[mask], lt[mask], lp[mask]]),
                    "hovertemplate": "%{y}<br>effect = %{customdata[0]:.4g}<br>Lenth t = %{customdata[1]:.3f}"
                                     "<br>Lenth p = %{customdata[2]:.3g}<extra></extra>"})
    le = fm.lenth or {}
    _lenth_lines(cv, le)
    xmax = max([float(absx.max())] + [le[k] for k in ("me", "sme") if math.isfinite(le.get(k, math.nan))])
    units = _effect_units(fm)
    cv.x(1, **_title(f"|Effect|{units}"), range=[0, 1.15 * xmax])
    cv.y(1, **_title("Term"), categoryorder="array", categoryarray=list(terms), type="category")
    return cv.figure(
        f"Pareto chart of |effects| on {fm.response}{units} with Lenth's ME and SME"
        + (f"<br><sup>α = {_g(le['alpha'])}, PSE = {_g(le['pse'])}; effect = 2 × coded coefficient</sup>"
           if le else ""),
        barmode="overlay", height=max(400, 30 * len(eff) + 220), margin={"t": 110},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
    )


# -- Box-Cox -------------------------------------------------------------------------------------
def box_cox_plot(fm_or_dict: FittedModel | dict[str, Any]) -> go.Figure:
    """Box-Cox plot: profile log-likelihood of λ with the best λ, its interval and the current λ.

    Pass a FittedModel fitted with ``transform='boxcox'`` (its ``box_cox``) or the dict of
    :func:`doe.fit.box_cox`. The curve is the profile **log-likelihood** (Box & Cox 1964),
    maximised at the best λ (green line); Design-Expert plots ln(residual SS) of the
    normalised transform instead, which equals ln n − (2/n) × log-likelihood: the mirror
    image, with the same best λ and interval. The green band is the (1 − α) interval
    {λ : llf ≥ threshold} (dotted line: the threshold); the dashed vermillion line the
    current λ (1 = no transform, 0 = log; none for logit); the diamond the suggested
    conventional power.
    """
    response = ""
    if isinstance(fm_or_dict, FittedModel):
        fm = fm_or_dict
        bc = fm.box_cox
        if bc is None:
            raise ModelError(
                f"The model for {fm.response} was not fitted with transform='boxcox', so it carries no "
                "Box-Cox curve: compute it with doe.fit.box_cox(study, runs, response, model, "
                "transform=...) and pass that dict."
            )
        response = fm.response
        current = fm.boxcox_lambda if fm.boxcox_lambda is not None else bc.get("current")
    elif isinstance(fm_or_dict, dict):
        bc = fm_or_dict
        current = bc.get("current")
        response = str(bc.get("response", ""))
    else:
        raise ModelError("box_cox_plot takes a FittedModel or the dict returned by doe.fit.box_cox.")
    lam = np.asarray(bc["lambdas"], dtype=float)
    llf = np.asarray(bc["log_likelihood"], dtype=float)
    ok = np.isfinite(llf)
    lo, hi = bc["ci"]
    alpha = bc.get("alpha", 0.05)
    cv = _Canvas()
    cv.add({"type": "scatter", "x": lam[ok], "y": llf[ok], "mode": "lines", "name": "log-likelihood",
            "line": {"width": 3, "color": _BLUE},
            "hovertemplate": "λ = %{x:.2f}<br>log-likelihood = %{y:.4g}<extra></extra>"})
    cv.shapes += [{"type": "rect", "xref": "x", "x0": lo, "x1": hi, "yref": "y domain", "y0": 0, "y1": 1,
                   "fillcolor": "rgba(0, 158, 115, 0.12)", "line": {"width": 0}, "layer": "below"},
                  _hline(bc["threshold"], 1, _GREEN, "dot"), _vline(bc["best"], 1, _GREEN, "solid", 2)]
    open_lo, open_hi = bc.get("ci_open", [False, False])
    ci_text = f"{'≤ ' if open_lo else ''}{_g(lo, 3)} to {'≥ ' if open_hi else ''}{_g(hi, 3)}"
    cv.annotations.append(_label(f"best λ = {_g(bc['best'], 3)}<br>{_pct(1 - alpha)} CI {ci_text}", 1,
                                 x=bc["best"], y=0.02, xanchor="left", yanchor="bottom", xdata=True,
                                 color=_GREEN))
    if current is not None and math.isfinite(current):
        cv.shapes.append(_vline(current, 1, _VERMILLION, "dash", 2))
        cv.annotations.append(_label(f"current λ = {_g(current, 3)}", 1, x=current, y=1.0, xanchor="left",
                                     xdata=True, color=_VERMILLION))
    sug = bc.get("suggested")
    if sug is not None and ok.any():
        cv.add({"type": "scatter", "x": [sug], "y": [float(np.interp(sug, lam[ok], llf[ok]))],
                "mode": "markers", "name": f"suggested λ = {_g(sug, 3)}",
                "hovertemplate": "suggested λ = %{x:.3g}<extra></extra>",
                "marker": {"symbol": "diamond", "size": 13, "color": _ORANGE,
                           "line": {"width": 1, "color": "black"}}})
    top = float(np.max(llf[ok]))
    span = max(top - float(bc["threshold"]), 1e-9)
    bottom = top - 12 * span  # zoom on the maximum, but keep the current lambda's height in view
    if current is not None and math.isfinite(current):
        bottom = min(bottom, float(np.interp(current, lam[ok], llf[ok])) - span)
    bottom = max(bottom, float(np.min(llf[ok])) - 0.5 * span)
    cv.x(1, **_title("λ (Box-Cox power)"), range=[float(lam.min()), float(lam.max())])
    cv.y(1, **_title("Log-likelihood"), range=[bottom, top + 1.5 * span])
    return cv.figure(
        f"Box-Cox plot{' for ' + response if response else ''}: profile log-likelihood of λ "
        "(transform y^λ; λ = 0 is ln y)<br><sup>Design-Expert shows ln(residual SS) = ln n − (2/n) × "
        "log-likelihood: the mirror image, same best λ and interval</sup>",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0}, margin={"t": 110},
    )


# -- effects of the factors -----------------------------------------------------------------------
def _panel_grid(k: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(k, max_cols)
    return math.ceil(k / cols), cols


def _draw_effect(cv: _Canvas, f: Any, x: np.ndarray, pred: pd.DataFrame, axis: int, *, color: str,
                 name: str, showlegend: bool, legendgroup: str, level: float, band: bool = True) -> None:
    """A predicted curve with its band (numeric factor) or points with error bars (categorical)."""
    mean, lower, upper = (pred[c].to_numpy(dtype=float) for c in ("mean", "lower", "upper"))
    ci = band and _has_ci(pred)
    units = f" {f.units}" if f.units else ""
    xs = "%{x}" if f.is_categorical else f"%{{x:.4g}}{units}"
    hover = (f"{f.name} = {xs}<br>predicted = %{{y:.4g}}"
             + (f"<br>{_pct(level)} CI %{{customdata[0]:.4g}} to %{{customdata[1]:.4g}}" if ci else "")
             + f"<extra>{name}</extra>")
    trace: dict[str, Any] = {"type": "scatter", "y": mean, "name": name, "legendgroup": legendgroup,
                             "showlegend": showlegend, "hovertemplate": hover}
    if ci:
        trace["customdata"] = np.column_stack([lower, upper])
    if f.is_categorical:
        trace.update(x=list(x), mode="markers+lines", marker={"size": 10, "color": color},
                     line={"color": color, "width": 1, "dash": "dot"})
        if ci:
            trace["error_y"] = {"type": "data", "symmetric": False, "array": upper - mean,
                                "arrayminus": mean - lower, "thickness": 2, "width": 6, "color": color}
    else:
        if ci:
            cv.add(_band(x, lower, upper, f"{_pct(level)} CI", _rgba(color, 0.16), legendgroup), axis)
        trace.update(x=np.asarray(x, dtype=float), mode="lines", line={"color": color, "width": 3})
    cv.add(trace, axis)


def main_effects_plot(fm: FittedModel, settings: Any = None, *, average_categoricals: bool = False,
                      level: float = 0.95) -> go.Figure:
    """One panel per factor in the model: the predicted response across the factor's range.

    Continuous and discrete factors: the predicted mean at 30 points over low..high with
    its confidence band; categorical factors: each level as a point with error bars. The
    other factors are at ``settings`` (default: continuous at the centre, categorical at
    the first level; see :func:`resolve_settings`). With ``average_categoricals=True``
    the predictions are averaged over the levels of the categorical factors not shown in
    a panel (with effect coding this equals setting their columns to 0; the band is then
    the level average of the intervals on the fitted scale, a conservative band). With
    interactions in the model the curves depend on these settings. Panels share the
    vertical axis (the response in its units); spec limits are dotted vermillion lines.
    """
    factors = _model_factors(fm)
    if not factors:
        raise ModelError(f"The model for {fm.response} has no factor terms: there are no effects to plot.")
    s = resolve_settings(fm, settings)
    cats = [f.name for f in factors if f.is_categorical]
    blocks = [{f.name: _factor_grid(f)} for f in factors]
    averaged_per = [[c for c in cats if c != f.name] if average_categoricals else [] for f in factors]
    preds = _predict_blocks(fm, s, blocks, averaged_per, level)
    rows, cols = _panel_grid(len(factors))
    cv = _Canvas(rows, cols, n=len(factors), hspace=0.03, vspace=0.25 if rows > 1 else 0.1, share_y=True)
    for i, (f, pred) in enumerate(zip(factors, preds), start=1):
        _draw_effect(cv, f, blocks[i - 1][f.name], pred, i, color=_BLUE, name="predicted mean",
                     showlegend=False, legendgroup="mean", level=level)
        cv.x(i, **_title(f.label()), **({"type": "category", "tickangle": -30} if f.is_categorical else {}))
        if (i - 1) % cols == 0:
            cv.y(i, **_title(_resp_label(fm)))
        for _, v in _spec_limits(fm):
            cv.shapes.append(_hline(v, i, _VERMILLION, "dot"))
    held = _settings_line(fm, s, averaged=tuple(cats) if average_categoricals else ())
    ci = _has_ci(preds[0])
    return cv.figure(
        f"Main effects on {_resp_label(fm)}{_transform_note(fm)}: predicted mean"
        + (f" with {_pct(level)} confidence band" if ci else " (no confidence band: no residual df)")
        + ", factors in actual units"
        + f"<br><sup>Other factors at: {held or 'n/a'}"
        + ("; spec limits dotted" if _spec_limits(fm) else "") + "</sup>",
        height=420 * rows + 80, showlegend=False, margin={"t": 110},
    )


def interaction_plot(fm: FittedModel, a: str, b: str, settings: Any = None, *, ci: bool = True,
                     level: float = 0.95, average_categoricals: bool = False) -> go.Figure:
    """Predicted response vs factor ``a``, one line per level of ``b``.

    ``b`` continuous (or discrete): its low and high settings; categorical: each level.
    A continuous ``a`` gives lines with optional confidence bands (``ci``); a categorical
    ``a`` gives points joined by dotted lines with error bars. The other factors are at
    ``settings`` (defaults as :func:`resolve_settings`), or averaged over the levels of
    the categorical factors with ``average_categoricals=True``. Parallel lines mean no
    a × b interaction.
    """
    study = fm.study
    fa, fb = study.factor(a), study.factor(b)
    if a == b:
        raise ModelError("An interaction plot needs two different factors.")
    s = resolve_settings(fm, settings)
    xa = _factor_grid(fa)
    # a numeric factor has both bounds
    levels_b = list(fb.levels) if fb.is_categorical else [float(cast(float, fb.low)), float(cast(float, fb.high))]
    kind = object if fb.is_categorical else float
    blocks = [{a: xa, b: np.full(len(xa), lv, dtype=kind)} for lv in levels_b]
    avg = ([f.name for f in _model_factors(fm) if f.is_categorical and f.name not in (a, b)]
           if average_categoricals else [])
    preds = _predict_blocks(fm, s, blocks, avg, level)
    cv = _Canvas()
    for j, (lv, pred) in enumerate(zip(levels_b, preds)):
        name = _setting_text(fb, lv)
        _draw_effect(cv, fa, xa, pred, 1, color=PALETTE[j % len(PALETTE)], name=name, showlegend=True,
                     legendgroup=name, level=level, band=ci)
    cv.shapes += [_hline(v, 1, _VERMILLION, "dot") for _, v in _spec_limits(fm)]
    held = _settings_line(fm, s, skip=(a, b), averaged=tuple(avg))
    used = {x for t in fm.model_terms for x in t.factors}
    missing = [f for f in (a, b) if f not in used]
    note = f"; {' and '.join(missing)} not in the model" if missing else ""
    cv.x(1, **_title(fa.label()), **({"type": "category"} if fa.is_categorical else {}))
    cv.y(1, **_title(_resp_label(fm)))
    return cv.figure(
        f"Interaction {a} × {b} on {_resp_label(fm)}{_transform_note(fm)}: predicted mean"
        + (f" with {_pct(level)} CI" if ci and _has_ci(preds[0]) else "") + " (actual units)"
        + f"<br><sup>Other factors at: {held or 'none'}{note}</sup>",
        legend={"title": {"text": fb.label()}}, margin={"t": 110},
    )


# -- contour and surface -------------------------------------------------------------------------
def _xy_factors(fm: FittedModel, x: str, y: str) -> tuple[Any, Any]:
    fx, fy = fm.study.factor(x), fm.study.factor(y)
    if x == y:
        raise ModelError("Choose two different factors for the axes.")
    for f in (fx, fy):
        if f.is_categorical:
            raise ModelError(f"{f.name} is categorical: contour and surface plots need two continuous "
                             "(or discrete) factors on the axes; fix the categorical ones in the settings.")
    return fx, fy


def _grid_predict(fm: FittedModel, fx: Any, fy: Any, s: dict[str, Any], n: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted mean on an n x n grid (rows follow y, as plotly's z), one fm.predict call."""
    if n < 2:
        raise ModelError(f"The grid needs at least 2 points per axis; got {n}.")
    xs = np.linspace(float(fx.low), float(fx.high), n)
    ys = np.linspace(float(fy.low), float(fy.high), n)
    X, Y = np.meshgrid(xs, ys)
    frame = _frame(fm, s, n * n, {fx.name: X.ravel(), fy.name: Y.ravel()})
    z = fm.predict(frame, interval=None)["mean"].to_numpy(dtype=float).reshape(n, n)
    return xs, ys, z


class _Slice(NamedTuple):
    """The predicted surface over two factors, and the labels contour and surface plots share."""

    fx: Any
    fy: Any
    settings: dict[str, Any]
    xs: np.ndarray
    ys: np.ndarray
    z: np.ndarray
    resp: str
    xu: str
    yu: str
    zu: str


def _surface_slice(fm: FittedModel, x: str, y: str, settings: Any, n: int) -> _Slice:
    """The n x n grid of predicted means over ``x`` and ``y`` (other factors at ``settings``), with the
    response label and the units each hover text appends."""
    fx, fy = _xy_factors(fm, x, y)
    s = resolve_settings(fm, settings)
    xs, ys, z = _grid_predict(fm, fx, fy, s, int(n))
    xu, yu = (f" {fx.units}" if fx.units else ""), (f" {fy.units}" if fy.units else "")
    zu = f" {_units(fm)}" if _units(fm) else ""
    return _Slice(fx, fy, s, xs, ys, z, _resp_label(fm), xu, yu, zu)


def _fm_runs(fm: FittedModel) -> pd.DataFrame | None:
    """The runs used in the fit, in actual units, with Run ids and the observed response."""
    U = getattr(fm, "_U", None)
    if U is None or len(U) != len(fm.diagnostics):
        return None
    frame = actual_frame(fm.study, U)
    frame.insert(0, "Run", fm.diagnostics["run"].to_numpy())
    frame[fm.response] = fm.diagnostics["actual"].to_numpy()
    return frame


def _runs_on_slice(fm: FittedModel, runs: pd.DataFrame | None, s: dict[str, Any], axes: tuple[str, ...]
                   ) -> pd.DataFrame:
    """Runs whose settings of the model's other factors match the slice (RUN_MATCH_TOL)."""
    table = _fm_runs(fm) if runs is None else runs
    if table is None or len(table) == 0:
        return pd.DataFrame()
    if any(a not in table for a in axes):
        return pd.DataFrame()
    keep = np.ones(len(table), dtype=bool)
    for f in _model_factors(fm):
        if f.name in axes:
            continue
        if f.name not in table:
            return pd.DataFrame()
        col = table[f.name]
        if f.is_categorical:
            keep &= col.astype(str).str.strip().str.lower().to_numpy() == str(s[f.name]).strip().lower()
        else:
            v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            keep &= np.abs(v - float(s[f.name])) <= RUN_MATCH_TOL * f.half_range
    return table[keep]


def _crossing_label(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, v: float) -> tuple[float, float] | None:
    """A point of the contour z = v (linear interpolation along a grid row), near its middle."""
    d = z - v
    left, right = d[:, :-1], d[:, 1:]
    rows, cols = np.nonzero((np.sign(left) * np.sign(right) <= 0) & np.isfinite(left) & np.isfinite(right)
                            & ~((left == 0) & (right == 0)))
    if len(rows) == 0:
        return None
    k = len(rows) // 2
    i, j = rows[k], cols[k]
    d0, d1 = d[i, j], d[i, j + 1]
    t = 0.0 if d0 == d1 else d0 / (d0 - d1)
    return float(xs[j] + t * (xs[j + 1] - xs[j])), float(ys[i])


def _slice_runs_arrays(fm: FittedModel, on: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ids = (on["Run"].astype(str).to_numpy(dtype=object) if "Run" in on
           else np.array([str(i + 1) for i in range(len(on))], dtype=object))
    obs = (pd.to_numeric(on[fm.response], errors="coerce").to_numpy(dtype=float)
           if fm.response in on else np.full(len(on), np.nan))
    return ids, obs


def contour_plot(fm: FittedModel, x: str, y: str, settings: Any = None, n: int = 50,
                 runs: pd.DataFrame | None = None) -> go.Figure:
    """Contour plot of the predicted response over two continuous factors (actual units).

    The other factors are at ``settings`` (defaults as :func:`resolve_settings`). The grid
    is n x n, predicted with one ``fm.predict`` call; contour lines are labelled and the
    colour bar carries the response and its units (back-transformed if the model has a
    transform). Spec limits of the response (``Response.lower`` / ``upper``) are bold
    black contour lines labelled 'spec'. Runs of the fit (kept by the model, or ``runs``
    in actual units with the factor columns, optional ``Run`` and response) whose other
    model factors match the slice within :data:`RUN_MATCH_TOL` coded units are overlaid
    as white circles labelled with their run id (hover: observed response).
    """
    fx, fy, s, xs, ys, z, resp, xu, yu, zu = _surface_slice(fm, x, y, settings, n)
    cv = _Canvas()
    cv.add({"type": "contour", "x": xs, "y": ys, "z": z, "colorscale": "Viridis", "ncontours": 14,
            "line": {"width": 1}, "name": fm.response,
            "contours": {"showlabels": True, "labelfont": {"size": 12, "color": "white"}},
            "colorbar": {"title": {"text": resp, "side": "right"}},
            "hovertemplate": f"{fx.name} = %{{x:.4g}}{xu}<br>{fy.name} = %{{y:.4g}}{yu}<br>"
                             f"{fm.response} = %{{z:.4g}}{zu}<extra></extra>"})
    finite = z[np.isfinite(z)]
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (math.nan, math.nan)
    for sign, v in _spec_limits(fm):
        reached = zmin <= v <= zmax
        cv.add({"type": "contour", "x": xs, "y": ys, "z": z, "autocontour": False, "showscale": False,
                "hoverinfo": "skip", "showlegend": True, "line": {"width": 4, "color": "black"},
                "contours": {"coloring": "none", "start": v, "end": v, "size": 1.0, "showlabels": False},
                "name": f"spec {sign} {_g(v)}{zu}" + ("" if reached else " (not reached here)")})
        pos = _crossing_label(xs, ys, z, v) if reached else None
        if pos is not None:
            cv.annotations.append({"x": pos[0], "y": pos[1], "xref": "x", "yref": "y", "showarrow": False,
                                   "text": f"spec {sign} {_g(v)}", "font": {"size": 13, "color": "black"},
                                   "bgcolor": "rgba(255,255,255,0.8)"})
    on = _runs_on_slice(fm, runs, s, (x, y))
    if len(on):
        ids, obs = _slice_runs_arrays(fm, on)
        cv.add({"type": "scatter", "x": pd.to_numeric(on[x]).to_numpy(dtype=float),
                "y": pd.to_numeric(on[y]).to_numpy(dtype=float), "mode": "markers+text", "text": ids,
                "textposition": "top center", "textfont": {"size": 11, "color": "black"},
                "marker": {"size": 10, "color": "white", "line": {"width": 2, "color": "black"}},
                "name": f"runs on this slice ({len(on)})", "customdata": np.column_stack([ids, obs]),
                "hovertemplate": f"Run %{{customdata[0]}}<br>{fx.name} = %{{x:.4g}}{xu}<br>{fy.name} = "
                                 f"%{{y:.4g}}{yu}<br>observed {fm.response} = %{{customdata[1]:.4g}}{zu}"
                                 "<extra></extra>"})
    held = _settings_line(fm, s, skip=(x, y))
    cv.x(1, **_title(fx.label()), range=[float(fx.low), float(fx.high)])
    cv.y(1, **_title(fy.label()), range=[float(fy.low), float(fy.high)])
    return cv.figure(
        f"Contour plot of predicted {resp}{_transform_note(fm)} over {fx.name} and {fy.name} (actual units)"
        f"<br><sup>Other factors at: {held or 'none'}</sup>",
        height=620, margin={"t": 110}, legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
    )


def surface_plot(fm: FittedModel, x: str, y: str, settings: Any = None, n: int = 40,
                 runs: pd.DataFrame | None = None) -> go.Figure:
    """3-D response surface of the predicted response over two continuous factors (actual units).

    Same grid, settings and run matching as :func:`contour_plot`; the runs on the slice
    are drawn at their *observed* response (above or below the surface). Spec limits are
    bold black contour lines on the surface (named in the subtitle).
    """
    fx, fy, s, xs, ys, z, resp, xu, yu, zu = _surface_slice(fm, x, y, settings, n)
    specs = [v for _, v in _spec_limits(fm)]
    contours: dict[str, Any] = {"z": {"show": True, "usecolormap": True, "project": {"z": False}}}
    if specs:
        lo, hi = min(specs), max(specs)
        contours = {"z": {"show": True, "start": lo, "end": hi, "size": (hi - lo) or 1.0, "color": "black",
                          "width": 8}}
    cv = _Canvas()
    cv.add({"type": "surface", "x": xs, "y": ys, "z": z, "colorscale": "Viridis", "name": fm.response,
            "colorbar": {"title": {"text": resp, "side": "right"}}, "contours": contours,
            "hovertemplate": f"{fx.name} = %{{x:.4g}}{xu}<br>{fy.name} = %{{y:.4g}}{yu}<br>"
                             f"{fm.response} = %{{z:.4g}}{zu}<extra></extra>"})
    on = _runs_on_slice(fm, runs, s, (x, y))
    if len(on):
        ids, obs = _slice_runs_arrays(fm, on)
        ok = np.isfinite(obs)
        if ok.any():
            cv.add({"type": "scatter3d", "x": pd.to_numeric(on[x]).to_numpy(dtype=float)[ok],
                    "y": pd.to_numeric(on[y]).to_numpy(dtype=float)[ok], "z": obs[ok], "mode": "markers+text",
                    "text": ids[ok], "marker": {"size": 5, "color": _VERMILLION}, "customdata": ids[ok],
                    "name": f"observed runs on this slice ({int(ok.sum())})",
                    "hovertemplate": f"Run %{{customdata}}<br>{fx.name} = %{{x:.4g}}{xu}<br>{fy.name} = "
                                     f"%{{y:.4g}}{yu}<br>observed = %{{z:.4g}}{zu}<extra></extra>"})
    held = _settings_line(fm, s, skip=(x, y))
    spec_note = ("; bold black line: spec " + ", ".join(f"{sg} {_g(v)}{zu}" for sg, v in _spec_limits(fm))
                 if specs else "")
    cv.axes = {}  # a 3-D scene, no cartesian axes
    return cv.figure(
        f"Response surface of predicted {resp}{_transform_note(fm)} over {fx.name} and {fy.name} "
        "(actual units)"
        f"<br><sup>Other factors at: {held or 'none'}{spec_note}</sup>",
        scene={"xaxis": _title(fx.label()), "yaxis": _title(fy.label()), "zaxis": _title(resp),
               "aspectmode": "cube"},
        height=680, margin={"t": 110}, legend={"orientation": "h", "yanchor": "top", "y": -0.02, "x": 0},
    )


# -- prediction profiler --------------------------------------------------------------------------
def profiler(fm: FittedModel, settings: Any = None, level: float = 0.95) -> go.Figure:
    """JMP-style prediction profiler at ``settings`` (actual units; defaults as
    :func:`resolve_settings`).

    One column per factor in the model, sharing the vertical axis: the predicted mean
    across that factor's range with its confidence band, the other factors at
    ``settings``; categorical factors as points with error bars. A vertical dashed line
    marks the current setting, a horizontal dotted line the current prediction, whose
    value and interval are printed in the title; each column names its current setting.
    Spec limits of the response are green dashed horizontal lines.
    """
    factors = _model_factors(fm)
    if not factors:
        raise ModelError(f"The model for {fm.response} has no factor terms: there is nothing to profile.")
    s = resolve_settings(fm, settings)
    blocks = [{f.name: _factor_grid(f)} for f in factors]
    f0 = factors[0]
    blocks.append({f0.name: np.array([s[f0.name]], dtype=object if f0.is_categorical else float)})
    preds = _predict_blocks(fm, s, blocks, [], level)
    now = preds[-1].iloc[0]
    ci = _has_ci(preds[0])
    k = len(factors)
    cv = _Canvas(1, k, hspace=min(0.03, 0.3 / k), share_y=True)
    zu = f" {_units(fm)}" if _units(fm) else ""
    for i, (f, pred) in enumerate(zip(factors, preds[:-1]), start=1):
        _draw_effect(cv, f, blocks[i - 1][f.name], pred, i, color=_BLUE, name="predicted mean",
                     showlegend=False, legendgroup="mean", level=level)
        x_now = list(f.levels).index(s[f.name]) if f.is_categorical else float(s[f.name])
        cv.shapes.append(_vline(x_now, i, _VERMILLION, "dash", 2))
        cv.shapes.append(_hline(float(now["mean"]), i, _VERMILLION, "dot", 1.5))
        for _, v in _spec_limits(fm):
            cv.shapes.append(_hline(v, i, _GREEN, "dash", 2))
        text = _setting_text(f, s[f.name])
        cv.annotations.append(_label(text.replace(" = ", " =<br>", 1) if len(text) > 22 else text, i, x=0.5,
                                     y=1.0, xanchor="center", color=_VERMILLION, size=12))
        cv.x(i, **_title(f.label()), **({"type": "category", "tickangle": -30} if f.is_categorical else {}))
    cv.y(1, **_title(_resp_label(fm)))
    value = f"{_g(now['mean'])}{zu}"
    interval = (f" [{_g(now['lower'])}, {_g(now['upper'])}] ({_pct(level)} CI)" if ci
                else " (no interval: no residual df)")
    spec = _response_obj(fm)
    spec_text = f"; green: spec {spec.spec_text()}" if spec is not None and _spec_limits(fm) else ""
    return cv.figure(
        f"Prediction profiler for {fm.response}{_transform_note(fm)}: {value}{interval} at the current "
        f"settings (actual units)<br><sup>Dashed: current setting; dotted: current prediction"
        f"{spec_text}</sup>",
        height=480, width=max(720, 240 * k + 140), showlegend=False, margin={"t": 130},
    )


# -- steepest ascent -------------------------------------------------------------------------------
def steepest_ascent_plot(fm: FittedModel, distances: Any = None, *, descent: bool = False) -> go.Figure:
    """Predicted response along the path of steepest ascent (or descent) from the centre.

    Reads :meth:`FittedModel.steepest_ascent` (distance in coded units; categorical
    factors and blocks averaged); the hover gives the factor settings in actual units.
    Raises ModelError when the model has no linear terms of continuous factors.
    """
    path = fm.steepest_ascent(distances, descent=descent)
    names = [c for c in path.columns if c not in ("dist", "yhat") and not c.endswith(" (coded)")]
    units = {n: (f" {fm.study.factor(n).units}" if fm.study.factor(n).units else "") for n in names}
    hover = "<br>".join(f"{n} = %{{customdata[{j}]:.4g}}{units[n]}" for j, n in enumerate(names))
    cv = _Canvas()
    cv.add({"type": "scatter", "x": path["dist"].to_numpy(dtype=float),
            "y": path["yhat"].to_numpy(dtype=float),
            "mode": "lines+markers", "name": "predicted mean", "line": {"width": 3, "color": _BLUE},
            "marker": {"size": 8}, "customdata": path[names].to_numpy(dtype=float),
            "hovertemplate": "distance = %{x:.2f} (coded)<br>predicted = %{y:.4g}<br>" + hover
                             + "<extra></extra>"})
    cv.shapes += [_hline(v, 1, _GREEN, "dash", 2) for _, v in _spec_limits(fm)]
    cv.shapes.append(_vline(1.0, 1, _GREY, "dot", 1))
    which = "descent" if descent else "ascent"
    cv.x(1, **_title("Distance from the design centre (coded units)"))
    cv.y(1, **_title(f"Predicted {_resp_label(fm)}"))
    return cv.figure(
        f"Path of steepest {which} for {_resp_label(fm)}{_transform_note(fm)}: predicted mean vs distance "
        "from the design centre (coded units)<br><sup>Categorical factors averaged; dotted: distance 1, "
        "the edge of the coded cube along one axis; farther out the path may leave the study ranges "
        "(extrapolation)</sup>",
        showlegend=False, margin={"t": 110},
    )
