"""Control charts of manufacturing lots (a pure function returning a plotly figure).

One panel per chart of a :class:`doe.control_charts.ChartSet` (xbar over R, I over MR, ...): the points
joined in lot order, the center line and the control limits (step lines when the subgroup size varies),
excluded phase-I points as open markers, and every point with a run-rule violation or beyond a limit in
red, its hover naming the lot and the rules.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go

from doe.control_charts import Chart, ChartError, ChartSet
from doe.plots.theme import PALETTE, TEMPLATE

__all__ = ["control_figure"]

_POINTS = PALETTE[0]  # blue
_VIOLATION = "#D62728"  # red: a signal
_LIMIT = "#444444"

_TITLES = {"xbar-r": "X-bar and R charts", "xbar-s": "X-bar and S charts", "imr": "Individuals and moving range charts",
           "p": "p chart (fraction nonconforming)", "np": "np chart (number nonconforming)"}


_PANEL = {"xbar": "X-bar chart", "r": "R chart", "s": "S chart", "i": "Individuals chart", "mr": "Moving range chart",
          "p": "p chart", "np": "np chart"}


def _axis_label(chart: Chart, units: str) -> str:
    u = f" ({units})" if units else ""
    return {"xbar": f"Subgroup mean{u}", "r": f"Range{u}", "s": f"Standard deviation{u}",
            "i": f"Individual value{u}", "mr": f"Moving range{u}", "p": "Fraction nonconforming",
            "np": "Number nonconforming"}.get(chart.name, chart.name)


def _line(chart: Chart, which: str) -> tuple[list[Any], list[float]]:
    """x and y of a center or limit line: flat, or a step line (one step per point) when it varies."""
    v = getattr(chart, which)
    n = len(chart.statistic)
    if not isinstance(v, list):
        return [-0.5, n - 0.5], [float(v), float(v)]
    xs: list[Any] = []
    ys: list[float] = []
    for i, y in enumerate(v):
        xs += [i - 0.5, i + 0.5]
        ys += [float(y), float(y)]
    return xs, ys


def control_figure(chart_set: ChartSet, *, note: str = "", units: str = "", response: str = "",
                   limits_from: str = "") -> go.Figure:
    """One panel per chart of ``chart_set``, stacked, sharing the lot axis.

    Traces per panel, named for what they carry: "<chart> points", "<chart> center", "<chart> LCL",
    "<chart> UCL", "<chart> signals" (the points with a violation, red) and "<chart> excluded" (phase-I
    points left out of the limits). ``units`` labels the y axes of measured charts (xbar, R, S, I, MR);
    ``note`` is printed under the figure. ``response`` names the charted CQA in the title; ``limits_from``
    says where phase-II limits came from (e.g. "lots L01 to L20"; default "a saved phase I").
    """
    from plotly.subplots import make_subplots

    if not chart_set.charts:
        raise ChartError("There is no chart to draw: make one with control_chart first.")
    names = list(chart_set.charts)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[html.escape(_PANEL.get(k, k)) for k in names])
    for row, key in enumerate(names, start=1):
        ch = chart_set.charts[key]
        n = len(ch.statistic)
        x = list(range(n))
        fig.add_trace(go.Scatter(
            x=x, y=[None if s != s else s for s in ch.statistic], mode="lines+markers",
            line={"color": _POINTS, "width": 1.5}, marker={"color": _POINTS, "size": 7},
            name=html.escape(f"{key} points"), customdata=[html.escape(lab) for lab in ch.labels],
            hovertemplate="lot %{customdata}: %{y:.4g}<extra></extra>", showlegend=False), row=row, col=1)
        for which, dash in (("center", "solid"), ("lcl", "dash"), ("ucl", "dash")):
            lx, ly = _line(ch, which)
            fig.add_trace(go.Scatter(
                x=lx, y=ly, mode="lines", line={"color": _LIMIT, "dash": dash, "width": 1.2},
                name=html.escape(f"{key} {which.upper() if which != 'center' else 'center'}"),
                hovertemplate=html.escape(which.upper() if which != "center" else "center") + " %{y:.4g}<extra></extra>",
                showlegend=False), row=row, col=1)
        rules: dict[int, list[str]] = {}
        for v in ch.violations:
            rules.setdefault(int(v["index"]), []).append(str(v["rule"]))
        for i in ch.qcc_beyond:
            rules.setdefault(i, []).append("beyond a control limit")
        hit = sorted(rules)
        fig.add_trace(go.Scatter(
            x=hit, y=[ch.statistic[i] for i in hit], mode="markers",
            marker={"color": _VIOLATION, "size": 11, "symbol": "circle", "line": {"color": "white", "width": 1}},
            name=html.escape(f"{key} signals"),
            customdata=[html.escape(f"lot {ch.labels[i]}: " + "; ".join(dict.fromkeys(rules[i]))) for i in hit],
            hovertemplate="%{customdata} (%{y:.4g})<extra></extra>", showlegend=False), row=row, col=1)
        if ch.excluded:
            fig.add_trace(go.Scatter(
                x=ch.excluded, y=[ch.statistic[i] for i in ch.excluded], mode="markers",
                marker={"color": _LIMIT, "size": 15, "symbol": "circle-open", "line": {"width": 2}},
                name=html.escape(f"{key} excluded"),
                customdata=[html.escape(ch.labels[i]) for i in ch.excluded],
                hovertemplate="lot %{customdata}: left out of the limits<extra></extra>", showlegend=False),
                row=row, col=1)
        fig.update_yaxes(title_text=html.escape(_axis_label(ch, units)), row=row, col=1)
    first = chart_set.charts[names[0]]
    fig.update_xaxes(tickvals=list(range(len(first.labels))), ticktext=[html.escape(t) for t in first.labels],
                     range=[-0.7, len(first.labels) - 0.3])
    fig.update_xaxes(title_text="Subgroup" if chart_set.type.startswith("xbar") else "Lot", row=len(names), col=1)
    phase = ("phase I (limits from these lots)" if chart_set.phase == 1
             else f"phase II (limits from {limits_from or 'a saved phase I'})")
    title = _TITLES.get(chart_set.type, chart_set.type)
    if response:
        title = f"{response}: {title[0].lower()}{title[1:]}" if not title.startswith(("X-bar", "p ", "np ")) \
            else f"{response}: {title}"
    sub = f"{phase}; dashed: 3-sigma control limits; red: a signal (hover for the rule)"
    if any(ch.excluded for ch in chart_set.charts.values()):
        sub += "; ringed: left out of the limits"
    fig.update_layout(template=TEMPLATE, width=1000, height=180 + 300 * len(names),
                      title={"text": f"{html.escape(title)}<br>"
                                     f"<sup>{html.escape(sub)}</sup>", "x": 0.01},
                      margin={"l": 90, "r": 30, "t": 100, "b": 110 if note else 70})
    if note:
        fig.add_annotation(text=html.escape(note), xref="paper", yref="paper", x=0, y=0, yshift=-62, showarrow=False,
                           xanchor="left", yanchor="top", font={"size": 11})
    return fig
