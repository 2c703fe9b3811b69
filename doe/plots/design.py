"""Plotly figures of a design and its evaluation, for screens and regulatory reports.

Pure functions: each takes a :class:`~doe.evaluate.DesignEvaluation` (or a
:class:`~doe.design.Design`) and returns a :class:`plotly.graph_objects.Figure`.
Figures only draw what the evaluation holds; they never recompute statistics.
Every figure uses the house :data:`TEMPLATE` (white background, readable fonts,
colour-blind-safe Okabe-Ito colours) and says in its title what is shown and
in which units.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from doe.design import Design
from doe.evaluate import DesignEvaluation
from doe.plots.theme import PALETTE, TEMPLATE

__all__ = [
    "TEMPLATE",
    "correlation_map",
    "design_matrix_plot",
    "fds_plot",
    "power_chart",
    "vif_chart",
]

_DARK = "#08306b"
_REFERENCE = "#D55E00"


def correlation_map(ev: DesignEvaluation) -> go.Figure:
    """Colour map on correlations: |r| between model terms and omitted 2FI (coded units).

    JMP's "Color Map on Correlations": white = uncorrelated (0), dark = completely
    confounded (1). Cells carry the value when there are at most 20 columns.
    """
    corr = ev.correlation
    names = list(corr.columns)
    heat = go.Heatmap(
        z=corr.to_numpy(), x=names, y=names, zmin=0.0, zmax=1.0,
        colorscale=[[0.0, "#ffffff"], [0.5, "#6baed6"], [1.0, _DARK]],
        colorbar={"title": {"text": "|r|"}, "tickvals": [0, 0.25, 0.5, 0.75, 1]},
        hovertemplate="%{y} vs %{x}<br>|r| = %{z:.3f}<extra></extra>",
        texttemplate="%{z:.2f}" if len(names) <= 20 else None,
    )
    fig = go.Figure(heat)
    fig.update_layout(
        template=TEMPLATE,
        title="Colour map on correlations: |r| between model terms and two-factor "
              "interactions (coded units)",
        xaxis={"title": {"text": "Term (model column)"}, "tickangle": -45},
        yaxis={"title": {"text": "Term (model column)"}, "autorange": "reversed"},
        height=max(450, 26 * len(names) + 200),
    )
    return fig


def fds_plot(ev: DesignEvaluation) -> go.Figure:
    """Fraction of design space plot: relative prediction variance Var(y-hat)/sigma^2.

    The share of the design region (random feasible points) whose prediction
    variance is at most the value on the vertical axis (Zahran, Anderson-Cook &
    Myers 2003); the dashed line is the average prediction variance I.
    """
    fig = go.Figure(go.Scatter(
        x=ev.fds.get("fraction", []), y=ev.fds.get("variance", []), mode="lines",
        name="Prediction variance", line={"width": 3, "color": PALETTE[0]},
        hovertemplate="Fraction %{x:.2f}<br>Var(ŷ)/σ² = %{y:.4g}<extra></extra>",
    ))
    if ev.avg_prediction_variance is not None:
        fig.add_hline(
            y=ev.avg_prediction_variance, line={"dash": "dash", "color": _REFERENCE},
            annotation_text=f"Average = {ev.avg_prediction_variance:.4g}",
            annotation_position="top left",
        )
    fig.update_layout(
        template=TEMPLATE,
        title="Fraction of design space: relative prediction variance (coded units, σ² = 1)",
        xaxis={"title": {"text": "Fraction of design space"}, "range": [0, 1]},
        yaxis={"title": {"text": "Relative prediction variance Var(ŷ)/σ²"}, "rangemode": "tozero"},
        showlegend=False,
    )
    if not ev.fds.get("variance"):
        _note(fig, "Not available: the model is not estimable with this design.")
    return fig


def power_chart(ev: DesignEvaluation, snr: float | None = None,
                alpha: float | None = None) -> go.Figure:
    """Power of each term's F test, horizontal bars, with the 0.8 reference line.

    ``snr`` and ``alpha`` only label the chart: they must be the values the
    evaluation was computed with (default: taken from ``ev``).
    """
    snr = ev.snr if snr is None else snr
    alpha = ev.alpha if alpha is None else alpha
    if not (math.isclose(snr, ev.snr) and math.isclose(alpha, ev.alpha)):
        raise ValueError(
            f"The evaluation was computed at snr={ev.snr:g}, alpha={ev.alpha:g}; "
            f"evaluate again with snr={snr:g}, alpha={alpha:g} to chart those values."
        )
    table = ev.power.iloc[::-1]
    values = table["power"].fillna(0.0)
    hover = [f"{t}<br>columns: {c}<br>df = {d}<br>power = " + (f"{p:.3f}" if pd.notna(p) else r)
             for t, c, d, p, r in table[["term", "columns", "df", "power", "reason"]].itertuples(index=False)]
    fig = go.Figure(go.Bar(
        x=values, y=table["term"], orientation="h", marker_color=PALETTE[0],
        text=[f"{p:.2f}" if pd.notna(p) else "n/a" for p in table["power"]],
        textposition="outside", hovertext=hover, hoverinfo="text",
    ))
    fig.add_vline(x=0.8, line={"dash": "dash", "color": _REFERENCE},
                  annotation_text="0.8", annotation_position="top")
    fig.update_layout(
        template=TEMPLATE,
        title=f"Power of each term (α = {alpha:g}, anticipated coefficient = {snr:g} σ, coded units)",
        xaxis={"title": {"text": "Power (probability of detecting the effect)"}, "range": [0, 1.1]},
        yaxis={"title": {"text": "Model term"}},
        height=max(400, 28 * len(table) + 180),
    )
    return fig


def vif_chart(ev: DesignEvaluation) -> go.Figure:
    """Variance inflation factor of each model column, with reference lines at 5 and 10."""
    names = list(ev.vif)[::-1]
    values = [ev.vif[n] for n in names]
    shown = [v if math.isfinite(v) else 0.0 for v in values]
    fig = go.Figure(go.Bar(
        x=shown, y=names, orientation="h", marker_color=PALETTE[0],
        text=[f"{v:.2f}" if math.isfinite(v) else "not estimable" for v in values],
        textposition="outside",
        hovertemplate="%{y}<br>VIF = %{text}<extra></extra>",
    ))
    for level, text in ((5, "5 (moderate)"), (10, "10 (high)")):
        fig.add_vline(x=level, line={"dash": "dash", "color": _REFERENCE},
                      annotation_text=text, annotation_position="top")
    top = max([10.0, *[v for v in shown]]) * 1.15
    fig.update_layout(
        template=TEMPLATE,
        title="Variance inflation factors (coded units; 1 = orthogonal)",
        xaxis={"title": {"text": "VIF = 1 / (1 − R²)"}, "range": [0, top]},
        yaxis={"title": {"text": "Model column"}},
        height=max(400, 28 * len(names) + 180),
    )
    return fig


def design_matrix_plot(design: Design) -> go.Figure:
    """The design's runs in actual units, coloured by point type.

    Two numeric factors: a 2-D scatter, one panel per level of the first
    categorical factor (symbols for a second one). Otherwise a scatter matrix of
    all factors; a single factor is drawn against the run number.
    """
    study = design.study
    table = design.table.copy()
    if "PointType" not in table:
        table["PointType"] = "run"
    labels = {f.name: f.label() for f in study.factors} | {"PointType": "Point type"}
    numeric = [f for f in study.factors if not f.is_categorical]
    cats = [f for f in study.factors if f.is_categorical]
    hover = [c for c in ("Run", "StdOrder", study.blocks or "Block") if c in table]
    title = f"Design runs in actual units ({design.n_runs} runs, {design.kind})"
    if len(numeric) == 2:
        fig = px.scatter(
            table, x=numeric[0].name, y=numeric[1].name, color="PointType",
            facet_col=cats[0].name if cats else None, facet_col_wrap=3,
            symbol=cats[1].name if len(cats) > 1 else None, labels=labels,
            hover_data=hover + [f.name for f in cats], color_discrete_sequence=PALETTE,
        )
        fig.update_traces(marker={"size": 11, "opacity": 0.85, "line": {"width": 1, "color": "white"}})
        fig.update_xaxes(title_text=numeric[0].label())
        fig.update_yaxes(title_text=numeric[1].label())
    elif len(study.factors) == 1:
        f = study.factors[0]
        table["Run"] = table["Run"] if "Run" in table else range(1, len(table) + 1)
        fig = px.scatter(table, x=f.name, y="Run", color="PointType", labels=labels,
                         color_discrete_sequence=PALETTE)
        fig.update_xaxes(title_text=f.label())
        fig.update_yaxes(title_text="Run order")
    else:
        fig = px.scatter_matrix(
            table, dimensions=study.factor_names, color="PointType", labels=labels,
            hover_data=hover, color_discrete_sequence=PALETTE,
        )
        fig.update_traces(diagonal_visible=False, showupperhalf=False,
                          marker={"size": 8, "opacity": 0.85})
        for i, f in enumerate(study.factors):
            suffix = "" if i == 0 else str(i + 1)
            fig.update_layout({f"xaxis{suffix}": {"title": {"text": f.label()}},
                               f"yaxis{suffix}": {"title": {"text": f.label()}}})
        fig.update_layout(height=max(500, 170 * len(study.factors)))
    fig.update_layout(template=TEMPLATE, title=title, legend_title_text="Point type")
    return fig


def _note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font={"size": 15, "color": "#555555"})
