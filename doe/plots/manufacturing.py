"""Figures of manufacturing lots: a capability histogram and the lots on the design-space map (issue 20).

Pure functions of numbers in, plotly figures out, in the house theme (:mod:`doe.plots.theme`):

- :func:`capability_figure`: the lots' histogram (as a density) with the normal curves of the within and
  overall sigma (:class:`doe.capability.Capability`), the spec limits and target as labelled vertical lines
  and the normal tolerance interval as a shaded band; the title gives Cpk and Ppk.
- :func:`lots_on_map_figure`: the design-space probability map (:func:`doe.plots.space.probability_map`)
  with each lot (:class:`doe.lots.LotCheck`) as a marker at its settings, green inside the design space and
  red outside, the hover naming the lot, its probability and why it left.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from scipy import stats

from doe._format import fmt_sig
from doe.errors import DoeError
from doe.plots.theme import PALETTE, TEMPLATE

if TYPE_CHECKING:
    from doe.capability import Capability
    from doe.lots import LotCheck
    from doe.space import SpaceGrid
    from doe.study import Study

#: Marker colours of lots inside / outside the design space (Okabe-Ito bluish green and vermillion).
INSIDE_COLOUR = "#009E73"
OUTSIDE_COLOUR = "#D55E00"
_BAND = "rgba(0, 114, 178, 0.12)"


def _index_text(value: Any) -> str:
    number = getattr(value, "value", value)
    return "n/a" if number is None or not np.isfinite(number) else f"{number:.2f}"  # as the page shows the indices


def capability_figure(values: ArrayLike, capability: Capability, *, units: str = "", note: str = "") -> go.Figure:
    """Histogram of the lots' values with the fitted normal curves, spec lines and tolerance band.

    The histogram is a density so that the normal curves N(mean, sigma within) and N(mean, sigma overall)
    lie on it; LSL, USL and the target are vertical lines labelled with their values; the normal tolerance
    interval (when computed) is a shaded band. The title carries Cpk and Ppk.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise DoeError(f"No values of {capability.response} to draw: give the lots' measured values.")
    label = f"{capability.response} ({units})" if units else capability.response
    marks = [v for v in (capability.lower, capability.upper, capability.target) if v is not None]
    ti = capability.tolerance_interval
    if ti is not None:
        marks += [v for v in (ti.low, ti.high) if v is not None]
    spread = max(capability.sigma_overall, capability.sigma_within, 1e-12)
    low = min([float(x.min()), capability.mean - 4 * spread, *marks])
    high = max([float(x.max()), capability.mean + 4 * spread, *marks])
    pad = 0.03 * (high - low or 1.0)
    grid = np.linspace(low - pad, high + pad, 301)
    fig = go.Figure(layout={"template": TEMPLATE})
    fig.add_trace(go.Histogram(x=x, histnorm="probability density", name=f"Lots (n = {x.size})",
                               marker={"color": PALETTE[5], "line": {"color": "white", "width": 1}},
                               opacity=0.8, hovertemplate=f"{html.escape(label)}: %{{x}}<br>density %{{y:.3g}}"
                                                          "<extra></extra>"))
    for sigma, name, dash, colour in ((capability.sigma_within, "Normal, sigma within", "dash", PALETTE[1]),
                                      (capability.sigma_overall, "Normal, sigma overall", "solid", PALETTE[0])):
        if sigma > 0 and np.isfinite(sigma):
            fig.add_trace(go.Scatter(x=grid, y=stats.norm.pdf(grid, capability.mean, sigma), mode="lines",
                                     name=f"{name} ({fmt_sig(sigma, 3)})", line={"color": colour, "dash": dash,
                                                                                  "width": 2.5}))
    if ti is not None:
        band_low = ti.low if ti.low is not None else low - pad
        band_high = ti.high if ti.high is not None else high + pad
        fig.add_vrect(x0=band_low, x1=band_high, fillcolor=_BAND, line_width=0, layer="below",
                      annotation_text=f"{fmt_sig(100 * ti.coverage, 4)} % / {fmt_sig(100 * ti.confidence, 4)} % "
                                      "tolerance interval", annotation_position="top left",
                      annotation_font_size=12)
    for value, word, colour in ((capability.lower, "LSL", OUTSIDE_COLOUR), (capability.upper, "USL", OUTSIDE_COLOUR),
                                (capability.target, "Target", PALETTE[7])):
        if value is not None:
            fig.add_vline(x=value, line={"color": colour, "width": 2, "dash": "dot" if word == "Target" else "solid"},
                          annotation_text=f"{word} {fmt_sig(value, 4)}", annotation_position="top",
                          annotation_font_color=colour)
    title = (f"Capability of {html.escape(capability.response)}: Cpk {_index_text(capability.cpk)}, "
             f"Ppk {_index_text(capability.ppk)}")
    subtitle = (f"{capability.n} lots, mean {fmt_sig(capability.mean, 4)}; sigma within "
                f"{fmt_sig(capability.sigma_within, 3)}, overall {fmt_sig(capability.sigma_overall, 3)}")
    fig.update_layout(title={"text": f"{title}<br><sup>{subtitle}</sup>"}, xaxis_title=html.escape(label),
                      yaxis_title="Density (per unit)", bargap=0.02,
                      legend={"orientation": "h", "y": -0.2, "x": 0}, margin={"t": 110, "b": 120 if note else 90})
    if note:  # under the legend, clear of the spec-limit labels at the top
        fig.add_annotation(text=html.escape(note), xref="paper", yref="paper", x=0, y=-0.32, showarrow=False,
                           xanchor="left", yanchor="top", font={"size": 11})
    return fig


def lots_on_map_figure(grid_figure_or_grid: SpaceGrid | go.Figure, checks: Sequence[LotCheck], x: str, y: str, *,
                       study: Study | None = None, set_point: dict[str, Any] | None = None,
                       par: dict[str, Any] | None = None, nor: dict[str, Any] | None = None,
                       note: str = "") -> go.Figure:
    """The design-space probability map with each lot as a marker at its (``x``, ``y``) settings.

    ``grid_figure_or_grid`` is a map already drawn (a copy gets the lots) or a :class:`doe.space.SpaceGrid`,
    drawn with :func:`doe.plots.space.probability_map` (then ``study`` is needed; ``set_point``, ``par``,
    ``nor`` and ``note`` are passed on). Lots inside the design space are green circles, the others red
    crosses; the hover gives the lot, its probability and why it left.
    """
    if isinstance(grid_figure_or_grid, go.Figure):
        fig = go.Figure(copy.deepcopy(grid_figure_or_grid.to_dict()))
    else:
        from doe.plots.space import probability_map

        if study is None:
            raise DoeError("Give the study (study=...) to draw the probability map of a SpaceGrid.")
        grid = grid_figure_or_grid
        if (grid.x, grid.y) != (x, y):
            raise DoeError(f"The map plots {grid.x} against {grid.y}, not {x} against {y}: draw the map of "
                           f"{x} and {y}, or place the lots on {grid.x} and {grid.y}.")
        fig = probability_map(grid, study, set_point=set_point, par=par, nor=nor, note=note)
    missing = [c.lot for c in checks if x not in c.settings or y not in c.settings]
    if missing:
        raise DoeError(f"Lots {', '.join(missing[:5])} have no setting of {x} or {y}: the lots' settings must "
                       "include both plotted factors.")
    for inside, name, colour, symbol in ((True, "Lot inside the design space", INSIDE_COLOUR, "circle"),
                                         (False, "Lot outside the design space", OUTSIDE_COLOUR, "x")):
        group = [c for c in checks if c.in_space == inside]
        if not group:
            continue
        text = [f"Lot {html.escape(c.lot)}<br>P(all CQAs in spec) {c.probability:.3f}<br>"
                + ("inside the design space" if c.in_space else "outside: " + html.escape(" ".join(c.reasons)))
                for c in group]
        fig.add_trace(go.Scatter(
            x=[c.settings[x] for c in group], y=[c.settings[y] for c in group], mode="markers",
            name=f"{name} ({len(group)})", text=text, hovertemplate="%{text}<extra></extra>",
            customdata=[c.lot for c in group],
            marker={"color": colour, "symbol": symbol, "size": 11, "line": {"color": "white", "width": 1.5}}))
    return fig
