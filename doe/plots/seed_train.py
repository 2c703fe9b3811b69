"""Figures of the measured seed train: growth kinetics per vessel family and donor, and a growth curve.

Pure functions of :class:`doe.growth.GrowthSummary` and :class:`doe.growth_curve.GrowthCurve`; they
draw what those hold and never recompute statistics.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from doe.growth import GrowthSummary
from doe.growth_curve import GrowthCurve
from doe.plots.theme import PALETTE, TEMPLATE

#: What each kinetic quantity is called on an axis, its key in ``GrowthSummary.to_json()['groups']`` and
#: its column in ``GrowthSummary.passages``.
KINETICS: dict[str, tuple[str, str]] = {
    "Fold expansion": ("fold_expansion", "Fold expansion"),
    "Doubling time (h)": ("doubling_time_h", "Doubling time (h)"),
    "Harvest density (cells/cm²)": ("harvest_density", "Harvest density (cells/cm2)"),
}


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))


def kinetics_figure(summary: GrowthSummary, quantity: str = "Fold expansion", *, note: str = "") -> go.Figure:
    """Every passage of ``quantity`` by group (points coloured by donor), with each group's mean and 95 % CI.

    ``quantity`` is a key of :data:`KINETICS`. Groups are in the order of the summary (the seed train's
    order for vessel families); the CI is the one the summary states (mixed model with the donor as a random
    effect, or the t interval), named in the hover text.
    """
    if quantity not in KINETICS:
        raise ValueError(f"quantity must be one of {list(KINETICS)}, not {quantity!r}")
    key, column = KINETICS[quantity]
    data = summary.to_json()
    groups = list(data["groups"])
    passages = summary.passages
    fig = go.Figure()
    donors = [str(d) for d in dict.fromkeys(passages["Donor"].astype(str))]
    for k, donor in enumerate(donors):
        rows = passages[passages["Donor"].astype(str) == donor]
        values = rows[column].astype(float)
        keep = values.notna()
        hover = [html.escape(f"Donor {donor}, passage {int(p)}, {v}: {quantity} {y:.3g}")
                 for p, v, y in zip(rows["Passage"][keep], rows["Vessel"][keep], values[keep], strict=True)]
        fig.add_trace(go.Scatter(
            x=rows[summary.by].astype(str)[keep], y=values[keep], mode="markers", name=html.escape(f"Donor {donor}"),
            marker={"size": 9, "color": PALETTE[k % len(PALETTE)], "opacity": 0.8,
                    "line": {"width": 1, "color": "white"}},
            text=hover, hovertemplate="%{text}<extra></extra>"))
    xs, ys, lo, hi, hover = [], [], [], [], []
    for name in groups:
        g = data["groups"][name][key]
        if not _finite(g.get("mean")):
            continue
        xs.append(str(name))
        ys.append(float(g["mean"]))
        low, high = g.get("ci_low"), g.get("ci_high")
        lo.append(float(g["mean"]) - float(low) if _finite(low) else 0.0)
        hi.append(float(high) - float(g["mean"]) if _finite(high) else 0.0)
        ci = f"95 % CI {float(low):.3g} to {float(high):.3g}" if _finite(low) and _finite(high) else "no interval"
        hover.append(html.escape(f"{name}: mean {float(g['mean']):.3g}, {ci} "
                                 f"({data['groups'][name]['method']})"))
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers", name="Mean with 95 % CI",
        marker={"symbol": "line-ew-open", "size": 30, "color": "#222222", "line": {"width": 3}},
        error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "thickness": 2,
                 "width": 10, "color": "#222222"},
        text=hover, hovertemplate="%{text}<extra></extra>"))
    by = "Vessel family" if summary.by == "Family" else summary.by
    fig.update_layout(template=TEMPLATE, title=html.escape(f"{quantity} by {by.lower()}"
                                                           + (f" - {note}" if note else "")),
                      xaxis={"title": by, "categoryorder": "array", "categoryarray": groups},
                      yaxis={"title": html.escape(quantity)}, legend={"title": "Passages"})
    return fig


def pdl_figure(summary: GrowthSummary, *, limit: float | None = None, note: str = "") -> go.Figure:
    """Cumulative population doubling level of each donor against passage number (with the PDL budget)."""
    data = summary.to_json()["donors"]
    fig = go.Figure()
    for k, (donor, steps) in enumerate(data.items()):
        fig.add_trace(go.Scatter(
            x=[s["passage"] for s in steps], y=[s["cumulative_pdl"] for s in steps], mode="lines+markers",
            name=html.escape(f"Donor {donor}"), line={"color": PALETTE[k % len(PALETTE)], "width": 2.5},
            text=[html.escape(f"Donor {donor}, passage {s['passage']} ({s['vessel']}): "
                              f"{s['population_doublings']:.2f} doublings, cumulative {s['cumulative_pdl']:.2f}")
                  for s in steps], hovertemplate="%{text}<extra></extra>"))
    if limit is not None:
        fig.add_hline(y=limit, line={"color": "#D55E00", "dash": "dash", "width": 1.5})
        fig.add_annotation(x=0.01, xref="paper", y=limit, text=html.escape(f"PDL budget {limit:g}"), showarrow=False,
                           xanchor="left", yanchor="bottom", font={"size": 12, "color": "#D55E00"})
    fig.update_layout(template=TEMPLATE, title=html.escape("Cumulative population doublings by donor"
                                                           + (f" - {note}" if note else "")),
                      xaxis={"title": "Passage", "dtick": 1}, yaxis={"title": "Cumulative population doubling level"})
    return fig


def growth_curve_figure(curve: GrowthCurve, time: Iterable[float], value: Iterable[float], *,
                        time_label: str = "Time", value_label: str = "Cells", time_unit: str = "",
                        note: str = "") -> go.Figure:
    """A time course of counts on a log axis: every point, the points of the exponential window, the fitted
    exponential line and the lag, as the "easy linear" method of Hall et al. (2014) found them."""
    t = [float(x) for x in time]
    y = [float(v) for v in value]
    used = set(curve.window)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=y, mode="markers", name="Counts",
                             marker={"size": 9, "color": "#999999"},
                             hovertemplate=f"{html.escape(time_label)} %{{x:.3g}}: %{{y:.4g}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[t[i] for i in sorted(used)], y=[y[i] for i in sorted(used)], mode="markers",
                             name="Used for μmax (exponential phase)",
                             marker={"size": 11, "color": PALETTE[0]},
                             hovertemplate=f"{html.escape(time_label)} %{{x:.3g}}: %{{y:.4g}}<extra></extra>"))
    lx, ly = curve.fitted_line()
    fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", name="Exponential fit", line={"color": PALETTE[3], "width": 2},
                             hoverinfo="skip"))
    if _finite(curve.lag) and curve.lag > min(t):
        fig.add_vline(x=curve.lag, line={"color": "#444444", "dash": "dot", "width": 1.5})
        fig.add_annotation(x=curve.lag, y=1, yref="paper", text=html.escape(f"lag {curve.lag:.3g}"),
                           showarrow=False, xanchor="left", yanchor="top", font={"size": 12, "color": "#444444"})
    unit = time_unit or "time unit"
    title = (f"Growth curve: μmax {curve.mumax:.3g} per {unit}, doubling time {curve.doubling_time:.3g} "
             f"{unit}s, lag {curve.lag:.3g}, R² {curve.r2:.3f}" + (f" - {note}" if note else ""))
    fig.update_layout(template=TEMPLATE, title=html.escape(title), xaxis={"title": html.escape(time_label)},
                      yaxis={"title": html.escape(value_label) + " (log scale)", "type": "log"})
    return fig
