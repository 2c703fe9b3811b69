"""Figures of the seed-train scale planner (pure functions returning plotly figures): cells against day
(:func:`plan_figure`) and predicted against recorded cells per vessel (:func:`recorded_figure`)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd
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
                      f"<br>cumulative PDL {s.cumulative_pdl:.1f}"
                      + (f"<br>fold expansion {s.fold_expansion:.3g} ({html.escape(s.source)})" if s.source else "")]
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


def _value(x: object) -> float | None:
    """A finite float, else None (a gap in the figure, null in its JSON)."""
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def recorded_figure(plans: ScalePlan | Sequence[ScalePlan], tables: pd.DataFrame | Sequence[pd.DataFrame], *,
                    note: str = "") -> go.Figure:
    """Cells per vessel at harvest of each stage: the plan's prediction against the recorded passages.

    ``tables`` are :func:`doe.scale.recorded_vs_predicted` of each plan, in
    the same order. Per stage a diamond marks the predicted cells per vessel
    and a circle the recorded mean, with bars from the recorded minimum to
    maximum (log y-axis). With several plans, the stages are grouped by
    strategy on the x-axis.
    """
    plans = [plans] if isinstance(plans, ScalePlan) else list(plans)
    tables = [tables] if isinstance(tables, pd.DataFrame) else list(tables)
    if len(tables) != len(plans):
        from doe.scale import ScaleError

        raise ScaleError(f"recorded_figure needs one table per plan; got {len(tables)} tables for "
                         f"{len(plans)} plans.")
    fig = go.Figure()
    several = len(plans) > 1
    for k, (plan, table) in enumerate(zip(plans, tables, strict=True)):
        colour = PALETTE[k % len(PALETTE)]
        labels = [f"Stage {int(r['Stage'])}: {r['Vessel']}" for _, r in table.iterrows()]
        x: list[str] | list[list[str]] = [[plan.strategy] * len(labels), labels] if several else labels
        predicted = [_value(v) for v in table["Predicted cells per vessel"]]
        mean = [_value(v) for v in table["Recorded cells per vessel (mean)"]]
        low = [_value(v) for v in table["Recorded min"]]
        high = [_value(v) for v in table["Recorded max"]]
        up = [None if m is None or h is None else h - m for m, h in zip(mean, high, strict=True)]
        down = [None if m is None or lo is None else m - lo for m, lo in zip(mean, low, strict=True)]
        who = f" ({plan.strategy})" if several else ""
        fig.add_trace(go.Scatter(
            x=x, y=predicted, mode="markers", name=html.escape(f"Predicted by the plan{who}"),
            marker={"symbol": "diamond", "size": 12, "color": colour, "line": {"color": "#222222", "width": 1}},
            text=[html.escape(f"{lab}: predicted {p:.3g} cells per vessel") if p is not None else lab
                  for lab, p in zip(labels, predicted, strict=True)],
            hovertemplate="%{text}<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=x, y=mean, mode="markers", name=html.escape(f"Recorded mean, bars min to max{who}"),
            marker={"symbol": "circle-open", "size": 11, "color": colour, "line": {"width": 2}},
            error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "color": colour,
                     "thickness": 1.5, "width": 6},
            text=[html.escape(f"{lab}: recorded mean {m:.3g} (min {lo:.3g}, max {h:.3g}) cells per vessel; "
                              f"{frm}") if m is not None and lo is not None and h is not None
                  else html.escape(f"{lab}: {frm}")
                  for lab, m, lo, h, frm in zip(labels, mean, low, high, table["Recorded from"], strict=True)],
            hovertemplate="%{text}<extra></extra>"))
    title = "Cells per vessel at harvest: predicted by the plan against the recorded passages"
    sub = ["Diamonds: the plan; circles: mean of the recorded passages, bars from the least to the most; "
           "no circle: no passages recorded in that vessel family"]
    if note:
        sub.append(note)
    fig.update_layout(  # the legend above the plot: the stage labels below it are long and slanted
        template=TEMPLATE, width=900, height=600,
        title={"text": f"{html.escape(title)}<br><sup>{'<br>'.join(html.escape(s) for s in sub)}</sup>",
               "x": 0.01},
        xaxis={"title": {"text": "Stage of the seed train: vessel"}, "tickangle": -35, "automargin": True},
        yaxis={"title": {"text": "Cells per vessel (count, log scale)"}, "type": "log", "exponentformat": "power"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 12}},
        margin={"t": 110 + 16 * len(sub) + 22 * len(plans), "b": 60, "l": 80, "r": 30},
    )
    return fig
