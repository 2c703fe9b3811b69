"""The TOST picture of equivalence between scales (a pure function returning a plotly figure).

One row per comparison: the point estimate (difference test - reference, or ratio of geometric means
test / reference) with its 1 - 2 alpha confidence interval as a horizontal bar, the row's equivalence
margins as dashed verticals around a shaded equivalence region, and the no-difference line (0, or 1 on a
log ratio axis). A comparison is equivalent when its bar lies inside its shaded region; the verdict is in
the row's label.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go

from doe.equivalence import EquivalenceError, EquivalenceResult
from doe.plots.theme import PALETTE, TEMPLATE

__all__ = ["equivalence_figure"]

_EQUIVALENT = PALETTE[2]  # bluish green
_NOT_SHOWN = PALETTE[3]  # vermillion
_HALF = 0.32  # half the height of a row's shaded region and margin lines (rows are 1 apart)


def _verdict(r: EquivalenceResult) -> str:
    return "equivalent" if r.equivalent else "not shown equivalent"


def _row_label(r: EquivalenceResult) -> str:
    return (f"{html.escape(r.test)} vs {html.escape(r.reference)}<br>{html.escape(r.response)}: "
            f"<b>{_verdict(r)}</b>")


def _axis_title(results: Sequence[EquivalenceResult]) -> str:
    first = results[0]
    same_pair = all((r.test, r.reference) == (first.test, first.reference) for r in results)
    pair_ratio = f"{first.test} / {first.reference}" if same_pair else "test / reference"
    pair_diff = f"{first.test} - {first.reference}" if same_pair else "test - reference"
    if first.log:
        return f"Ratio of geometric means ({pair_ratio}, log scale)"
    if all(r.response == first.response for r in results):
        return f"Difference in {first.response} ({pair_diff})"
    return f"Difference in means ({pair_diff}, in each response's units)"


def equivalence_figure(result: EquivalenceResult | Sequence[EquivalenceResult], *,
                       note: str | None = None) -> go.Figure:
    """Confidence intervals against the equivalence margins, one row per comparison (first on top).

    Traces per row, named for what they carry: "CI <label>" (x = the interval's two ends), "Estimate
    <label>" (x = the point estimate), "Margins <label>" (x = low, low, None, high, high: the dashed
    margin lines) and the shaded region ("Equivalence region <label>"). Ratios are drawn on a log axis,
    so 0.80 and 1.25 sit symmetrically around 1. All results must be on the same scale (all ratios or all
    differences).
    """
    results = [result] if isinstance(result, EquivalenceResult) else list(result)
    if not results:
        raise EquivalenceError("There is no equivalence result to draw: run an equivalence test first.")
    if len({r.log for r in results}) > 1:
        raise EquivalenceError("Ratios (log=True) and differences cannot share one axis: draw them in two "
                               "figures.")
    log = results[0].log
    fig = go.Figure()
    n = len(results)
    for i, r in enumerate(results):
        y = float(n - 1 - i)  # the first result on top
        label = f"{r.test} vs {r.reference}: {r.response}"
        colour = _EQUIVALENT if r.equivalent else _NOT_SHOWN
        low, high = r.margin
        level = f"{100 * (1 - 2 * r.alpha):.3g} %"
        fig.add_trace(go.Scatter(
            x=[low, high, high, low, low], y=[y - _HALF, y - _HALF, y + _HALF, y + _HALF, y - _HALF],
            fill="toself", fillcolor="rgba(0, 158, 115, 0.12)", line={"width": 0}, mode="lines",
            name=html.escape(f"Equivalence region {label}"), hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(
            x=[low, low, None, high, high], y=[y - _HALF, y + _HALF, None, y - _HALF, y + _HALF], mode="lines",
            line={"color": "#444444", "dash": "dash", "width": 1.5}, name=html.escape(f"Margins {label}"),
            hovertemplate=html.escape(f"margin %{{x:.4g}} ({label})") + "<extra></extra>", showlegend=False))
        fig.add_trace(go.Scatter(
            x=[r.ci[0], r.ci[1]], y=[y, y], mode="lines+markers",
            line={"color": colour, "width": 5}, marker={"symbol": "line-ns", "size": 16,
                                                         "line": {"width": 3, "color": colour}},
            name=html.escape(f"CI {label}"), showlegend=False,
            hovertemplate=html.escape(f"{level} CI end %{{x:.4g}} ({label})") + "<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=[r.estimate], y=[y], mode="markers", marker={"color": colour, "size": 12, "symbol": "diamond",
                                                           "line": {"color": "white", "width": 1}},
            name=html.escape(f"Estimate {label}"), showlegend=False,
            hovertemplate=html.escape(f"{r.quantity} %{{x:.4g}}, {_verdict(r)}, TOST p = {r.p:.3g}")
            + "<extra></extra>"))
    fig.add_vline(x=1.0 if log else 0.0, line={"color": "#888888", "width": 1})
    ends = [v for r in results for v in (*r.margin, *r.ci, r.estimate) if math.isfinite(v) and (v > 0 or not log)]
    ends.append(1.0 if log else 0.0)
    lo, hi = min(ends), max(ends)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    pad = 0.08 * (hi - lo) or 0.1
    x_range = [lo - pad, hi + pad]
    levels = sorted({round(100 * (1 - 2 * r.alpha), 6) for r in results})
    level_text = " / ".join(f"{v:g} %" for v in levels)
    alphas = " / ".join(f"{a:g}" for a in sorted({r.alpha for r in results}))
    sub = (f"Bars: {level_text} confidence intervals (TOST at alpha = {alphas}); "
           "dashed: equivalence margins; shaded: equivalence region. Equivalent when the bar lies inside.")
    fig.update_layout(
        template=TEMPLATE, width=1000, height=220 + 70 * n,
        title={"text": f"Equivalence between scales (two one-sided tests)<br><sup>{html.escape(sub)}</sup>",
               "x": 0.01},
        xaxis={"title": {"text": html.escape(_axis_title(results))}, "type": "log" if log else "linear",
               "range": x_range, "zeroline": False},
        yaxis={"tickvals": list(range(n)), "ticktext": [_row_label(r) for r in reversed(results)],
               "range": [-0.6, n - 0.4], "showgrid": False, "zeroline": False, "ticksuffix": "  "},
        margin={"l": 260, "r": 30, "t": 90, "b": 90 if note else 70},
    )
    if note:
        fig.add_annotation(text=html.escape(note), xref="paper", yref="paper", x=0, y=-0.12 - 0.6 / (n + 2),
                           showarrow=False, xanchor="left", yanchor="top", font={"size": 11})
    return fig
