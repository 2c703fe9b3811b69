"""Figures of the seed-train scale planner (pure functions returning plotly figures)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from doe.plots.theme import PALETTE, TEMPLATE
from doe.scale import ScalePlan

_DASH = {"scale-out": "solid", "scale-up": "dash"}
_STRIP = 17  # pixels per row of vessel labels above the plot


def _label_shift(strategy: int, stage: int) -> int:
    """Pixels above the plot of a stage's vessel label: two rows per strategy, neighbouring stages on
    different rows, so labels never overlap each other nor the lines (on the plot, the two
    strategies' lines often coincide)."""
    return 4 + _STRIP * (2 * strategy + stage % 2)


def plan_figure(plans: ScalePlan | Sequence[ScalePlan], *, note: str = "") -> go.Figure:
    """Cells (log scale) against day for each strategy, stage by stage.

    Within a stage the line rises from the cells seeded to the cells harvested
    (exponential growth is straight on the log axis); between stages it drops
    to the cells the next stage seeds (surplus cells are discarded). Dotted
    verticals mark the passages; the horizontal line is the cells the batch
    needs. Readable at 900 x 500.
    """
    plans = [plans] if isinstance(plans, ScalePlan) else list(plans)
    fig = go.Figure()
    for k, plan in enumerate(plans):
        colour = PALETTE[k % len(PALETTE)]
        xs: list[float] = []
        ys: list[float] = []
        hover: list[str] = []
        for s in plan.stages:
            what = f"{plan.strategy}, stage {s.number}: {s.vessels} x {s.vessel}"
            xs += [s.day_start, s.day_end]
            ys += [s.cells_in, s.cells_out]
            hover += [f"{what}<br>day {s.day_start:g}: {s.cells_in:.3g} cells seeded",
                      f"{what}<br>day {s.day_end:g}: {s.cells_out:.3g} cells harvested"
                      f"<br>cumulative PDL {s.cumulative_pdl:.1f}"]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=html.escape(_legend(plan)),
            line={"color": colour, "width": 3, "dash": _DASH.get(plan.strategy, "solid")},
            marker={"size": 8}, text=hover, hovertemplate="%{text}<extra></extra>"))
        for i, s in enumerate(plan.stages):  # vessel labels in this strategy's strip above the plot
            fig.add_annotation(x=(s.day_start + s.day_end) / 2, y=1, yref="paper", yanchor="bottom",
                               yshift=_label_shift(k, i), text=html.escape(f"{s.vessels}x {s.vessel}"),
                               showarrow=False, font={"size": 11, "color": colour})
    if plans:
        need = plans[0].cells_needed
        fig.add_hline(y=need, line={"color": "#444444", "dash": "dot", "width": 1.5})
        fig.add_annotation(x=0.01, xref="paper", y=_log10(need), text=html.escape(f"batch needs {need:.3g} cells"),
                           showarrow=False, xanchor="left", yanchor="bottom", font={"size": 12, "color": "#444444"})
        days = sorted({s.day_end for p in plans for s in p.stages} | {0.0})
        for d in days:
            fig.add_vline(x=d, line={"color": "#BBBBBB", "dash": "dot", "width": 1})
    title = "Seed train: cells against day"
    sub = ("Each stage seeded at the seeding density and harvested at the harvest density; dotted lines: passages",
           "Above the plot: the vessels of each stage, one strip per strategy (in its colour)")
    fig.update_layout(
        template=TEMPLATE, width=900, height=516 + _STRIP * 2 * len(plans),
        title={"text": f"{title}<br><sup>{'<br>'.join(html.escape(t) for t in sub)}</sup>", "x": 0.01, "y": 1, "yref": "container",
               "yanchor": "top", "pad": {"t": 12}},
        xaxis={"title": {"text": "Day from thawing the vial (days)"}, "rangemode": "tozero"},
        yaxis={"title": {"text": "Cells (count, log scale)"}, "type": "log", "exponentformat": "power"},
        legend={"orientation": "h", "yanchor": "bottom", "y": -0.27, "x": 0, "font": {"size": 12}},
        margin={"t": 96 + _STRIP * 2 * len(plans), "b": 140, "l": 80, "r": 30},
    )
    if note:
        fig.add_annotation(text=html.escape(note), xref="paper", yref="paper", x=0, y=-0.36, showarrow=False,
                           xanchor="left", yanchor="top", font={"size": 11})
    return fig


def _legend(plan: ScalePlan) -> str:
    t = plan.totals()
    return (f"{plan.strategy}: {t['stages']} passages, {t['final_stage_vessels']} x {t['final_stage_vessel']} "
            f"at the end, PDL {t['cumulative_pdl']:.1f}")


def _log10(x: float) -> float:
    import math

    return math.log10(x) if x > 0 else 0.0
