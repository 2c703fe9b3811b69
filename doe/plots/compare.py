"""The design space before vs after (:func:`doe.space.compare.space_before_after`) as one figure.

:func:`before_after_figure` draws the new probability map with the new (solid) and old (dashed)
design-space outlines and the set point.
"""

from __future__ import annotations

import html
import textwrap
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from doe._format import json_value as _plain
from doe.plots.space import footnote
from doe.plots.theme import PALETTE, TEMPLATE

if TYPE_CHECKING:
    from doe.space import SpaceGrid
    from doe.space.compare import SpaceComparison

__all__ = ["before_after_figure"]

_NEW_EDGE = PALETTE[7]  # black: the edge lies next to yellow-green (P near the threshold)
_OLD_EDGE = PALETTE[3]  # vermillion, dashed
_SET_POINT = PALETTE[0]


def _outline_z(grid: SpaceGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probability framed by a ring of zeros just outside the map, so the outline closes at its edges."""
    z = np.where(grid.feasible, grid.probability, 0.0)
    dx = 1e-6 * (grid.xs[-1] - grid.xs[0])
    dy = 1e-6 * (grid.ys[-1] - grid.ys[0])
    xs = np.concatenate([[grid.xs[0] - dx], grid.xs, [grid.xs[-1] + dx]])
    ys = np.concatenate([[grid.ys[0] - dy], grid.ys, [grid.ys[-1] + dy]])
    return xs, ys, np.pad(z, 1, constant_values=0.0)


def _outline(grid: SpaceGrid, name: str, color: str, dash: str, width: float) -> go.Contour:
    xs, ys, z = _outline_z(grid)
    return go.Contour(x=xs, y=ys, z=z, showscale=False, hoverinfo="skip", name=name, showlegend=True,
                      contours={"start": grid.threshold, "end": grid.threshold, "size": 1, "coloring": "none"},
                      line={"color": color, "width": width, "dash": dash})


def _legend_name(version: int, grid: SpaceGrid, label: str) -> str:
    return f"{label}: version {version} (fraction {100 * grid.fraction_inside:.0f} %)"


def _probability_trace(c: SpaceComparison) -> go.Heatmap:
    g = c.new_grid
    z = np.where(g.feasible, g.probability, np.nan)
    return go.Heatmap(
        x=g.xs, y=g.ys, z=z, zmin=0, zmax=1, colorscale="Viridis", showlegend=False,
        name=f"P(all CQAs in spec), version {c.new_version}",
        colorbar={"title": {"text": f"P(all CQAs<br>in spec),<br>version {c.new_version}", "font": {"size": 12}},
                  "tickformat": ".1f", "len": 0.8, "thickness": 14},
        hovertemplate=f"{html.escape(c.x)} = %{{x:.4g}}<br>{html.escape(c.y)} = %{{y:.4g}}<br>"
                      "P = %{z:.3f}<extra></extra>",
    )


def _footnote(c: SpaceComparison) -> str:
    dv = (f"{c.old_data_version} (analysis {c.old_version}) and {c.new_data_version} "
          f"(analysis {c.new_version})")
    fixed = ", ".join(f"{k} = {_plain(v)}" for k, v in c.fixed.items()) or "none"
    return (f"{footnote(c.study, dv)} | Other factors: {fixed} | {c.draws:,} posterior draws, seed {c.seed}, "
            f"{c.n} x {c.n} map")


def before_after_figure(comparison: SpaceComparison) -> go.Figure:
    """The new probability map with the new (solid) and old (dashed) design-space outlines and the set point.

    Legend entries name each version and its share of the map inside; the
    footnote gives the study, data versions, fixed factors and draws. 600 px
    high; laid out to read at 900 x 600 (export with ``width=900, height=600``).
    """
    c = comparison
    fig = go.Figure(_probability_trace(c))
    fig.add_trace(_outline(c.new_grid, _legend_name(c.new_version, c.new_grid, "after"), _NEW_EDGE, "solid", 4))
    fig.add_trace(_outline(c.old_grid, _legend_name(c.old_version, c.old_grid, "before"), _OLD_EDGE, "dash", 3))
    if c.x in c.set_point and c.y in c.set_point:
        fig.add_trace(go.Scatter(
            x=[c.set_point[c.x]], y=[c.set_point[c.y]], mode="markers",
            marker={"symbol": "star", "size": 17, "color": _SET_POINT, "line": {"color": "white", "width": 1.5}},
            name=f"Set point: P {c.probability_old:.2f} -> {c.probability_new:.2f}"))
    return _before_after_layout(fig, c)


def _before_after_layout(fig: go.Figure, c: SpaceComparison) -> go.Figure:
    fx, fy = c.study.factor(c.x), c.study.factor(c.y)
    xs = np.concatenate([c.old_grid.xs, c.new_grid.xs])
    ys = np.concatenate([c.old_grid.ys, c.new_grid.ys])
    padx, pady = 0.005 * (xs.max() - xs.min()), 0.005 * (ys.max() - ys.min())
    title = (f"Design space before vs after: analysis version {c.old_version} vs {c.new_version} "
             f"(P >= {c.threshold:g})")
    sub = ("Colour: probability that a new run meets every CQA spec (version "
           f"{c.new_version}); solid: version {c.new_version} design space, dashed: version {c.old_version}.")
    note = "<br>".join(html.escape(t) for t in textwrap.wrap(_footnote(c), 150))
    fig.update_layout(
        template=TEMPLATE, height=600,
        title={"text": f"{html.escape(title)}<br><sup>{html.escape(sub)}</sup>", "x": 0.01, "font": {"size": 16}},
        xaxis={"title": {"text": html.escape(fx.label())}, "range": [xs.min() - padx, xs.max() + padx]},
        yaxis={"title": {"text": html.escape(fy.label())}, "range": [ys.min() - pady, ys.max() + pady]},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.14, "yanchor": "top",
                "font": {"size": 12}, "bgcolor": "rgba(255,255,255,0.8)"},
        margin={"t": 80, "b": 135, "l": 80, "r": 40},
    )
    fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=-0.27, showarrow=False,
                       xanchor="left", yanchor="top", align="left", font={"size": 10, "color": "#555555"})
    return fig
