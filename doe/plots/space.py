"""Design-space figures for regulatory review: overlay, interval overlay, probability map.

Pure functions of a :class:`doe.space.SpaceGrid` that return plotly figures:
axis titles with units, spec limits in the legend, the threshold and method
stated on the plot, and a footnote with study name, data version and date.
:func:`export_figure` writes PNG or SVG (kaleido with a system Chromium or
Chrome) or self-contained HTML.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import html
import math
import textwrap
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import plotly.graph_objects as go

from doe.errors import DoeError
from doe.plots.theme import PALETTE, TEMPLATE
from doe.space import edge_limits

if TYPE_CHECKING:
    from doe.space import SpaceGrid
    from doe.study import Study

EXPORT_FORMATS = ("png", "svg", "html")
#: PNG pixels per layout pixel: 1100 x 700 becomes 3300 x 2100, 300 dpi at 11 x 7 inches (print).
PNG_SCALE = 3
_INSIDE = "rgba(240, 200, 60, 0.55)"
_OUTSIDE = "rgba(170, 170, 170, 0.35)"
_INFEASIBLE = "rgba(90, 90, 90, 0.55)"
#: Edge dots per limiting CQA: apart from the PAR (orange), NOR (pink) and set point (vermilion) colours.
_EDGE_COLOURS = ["#0072B2", "#FFFFFF", "#56B4E9", "#7B3294", "#1B9E77", "#A6611A", "#E7298A", "#666666"]
_LEGEND_ROW = 24  # pixels per row of the legend below the plot
_EDGE = "#111111"  # dark: visible on the map's yellow-green at the threshold and in the legend on white


class ExportError(DoeError):
    """A static image cannot be made here (no kaleido or no Chromium/Chrome)."""


def footnote(study: Study, data_version: str = "", when: dt.datetime | str | None = None) -> str:
    """'Study · data version · date (UTC)' for the bottom of every design-space figure; ``when`` a time
    (shown to the minute) or the text to show (a report gives its analysis time, so that the same analysis
    makes the same figure); default now."""
    when = when or dt.datetime.now(dt.UTC)
    parts = [f"Study: {study.name}"]
    if data_version:
        parts.append(f"data version {data_version}")
    parts.append(when if isinstance(when, str) else when.strftime("%Y-%m-%d %H:%M UTC"))
    return " · ".join(parts)


def _spec_words(study: Study, cqa: str) -> str:
    r = study.response(cqa)
    return f"{cqa} {r.spec_text()}"


def _legend_rows(data: list[Any]) -> int:
    """Rows of the two-column legend below the plot for these traces (heatmaps have no entry)."""
    def entry(t: Any) -> bool:
        get = t.get if isinstance(t, dict) else (lambda k, d=None: getattr(t, k, d))
        return get("type") != "heatmap" and get("showlegend") is not False
    return max(1, math.ceil(sum(entry(t) for t in data) / 2))


def _layout_dict(grid: SpaceGrid, study: Study, title: str, subtitle: str, note: str,
                 legend_rows: int = 3) -> dict[str, Any]:
    """The layout (title, axes, legend, margins, footnote annotation) as a plain dict."""
    fx, fy = study.factor(grid.x), study.factor(grid.y)
    fixed = ", ".join(f"{k} = {v}" for k, v in grid.fixed.items())
    sub = "<br>".join(html.escape(line) for line in textwrap.wrap(subtitle, 150))
    n_sub = sub.count("<br>") + 1
    lines = [f"Other factors: {fixed}" if fixed else "", note]
    return {
        "template": _template_json(),
        "title": {"text": f"{html.escape(title)}<br><sup>{sub}</sup>", "x": 0.01, "y": 1, "yref": "container",
                  "yanchor": "top", "pad": {"t": 14}},
        "xaxis": {"title": {"text": html.escape(fx.label())}, "range": [grid.xs[0], grid.xs[-1]],
                  "constrain": "domain"},
        "yaxis": {"title": {"text": html.escape(fy.label())}, "range": [grid.ys[0], grid.ys[-1]]},
        # the legend below the plot, the colour bar alone at the right: they cannot overlap at any width
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 0.005, "yref": "container", "x": 0, "xanchor": "left",
                   "font": {"size": 12}, "entrywidth": 0.5, "entrywidthmode": "fraction"},
        "margin": {"b": 110 + _LEGEND_ROW * legend_rows, "t": 60 + 22 * n_sub, "r": 40},
        "height": 640 + 26 * n_sub + _LEGEND_ROW * legend_rows,
        "annotations": [{"text": html.escape(" | ".join(t for t in lines if t)), "xref": "paper",
                         "yref": "paper", "x": 0, "y": 0, "yshift": -72, "showarrow": False,
                         "xanchor": "left", "yanchor": "top", "font": {"size": 11}}],
    }


def _layout(fig: go.Figure, grid: SpaceGrid, study: Study, title: str, subtitle: str, note: str) -> go.Figure:
    layout = _layout_dict(grid, study, title, subtitle, note, _legend_rows(list(fig.data)))
    annotations = layout.pop("annotations")
    fig.update_layout(**layout)
    for a in annotations:
        fig.add_annotation(**a)
    return fig


@functools.lru_cache(maxsize=1)
def _template_json_cached() -> dict[str, Any]:
    template: dict[str, Any] = TEMPLATE.to_plotly_json()
    return template


def _template_json() -> dict[str, Any]:
    """The house template as plain JSON (a deep copy: a figure may change its own)."""
    return copy.deepcopy(_template_json_cached())


def _region_trace(grid: SpaceGrid, mask: np.ndarray, name: str) -> go.Heatmap:
    """Yellow where ``mask``, grey elsewhere, dark grey where constraints exclude."""
    z = np.where(~grid.feasible, 0, np.where(mask, 2, 1)).astype(float)
    return go.Heatmap(
        x=grid.xs, y=grid.ys, z=z, zmin=0, zmax=2, showscale=False, hoverinfo="skip", name=name,
        colorscale=[[0, _INFEASIBLE], [0.33, _INFEASIBLE], [0.34, _OUTSIDE], [0.66, _OUTSIDE],
                    [0.67, _INSIDE], [1, _INSIDE]],
    )


def _limit_lines(fig: go.Figure, grid: SpaceGrid, study: Study, values: dict[str, np.ndarray],
                 which: str) -> None:
    """One labelled contour line per CQA spec limit (of the mean or of an interval bound)."""
    for i, r in enumerate(r for r in study.responses if r.name in grid.per_cqa):
        color = PALETTE[i % len(PALETTE)]
        for limit in (r.lower, r.upper):
            if limit is None or r.name not in values:
                continue
            z = values[r.name]
            if not (np.nanmin(z) <= limit <= np.nanmax(z)):
                continue
            fig.add_trace(go.Contour(
                x=grid.xs, y=grid.ys, z=z, showscale=False, hoverinfo="skip",
                contours={"start": limit, "end": limit, "size": 1, "coloring": "none",
                          "showlabels": True, "labelfont": {"color": color, "size": 12}},
                line={"color": color, "width": 2.5}, name=f"{_spec_words(study, r.name)} ({which})",
                showlegend=True,
            ))


def overlay_plot(grid: SpaceGrid, study: Study, *, note: str = "") -> go.Figure:
    """'Sweet spot' overlay: where every CQA's predicted mean meets its limits."""
    fig = go.Figure(_region_trace(grid, grid.overlay_inside, "all CQA means in spec"))
    _limit_lines(fig, grid, study, grid.mean, "mean")
    _legend_swatches(fig, "All predicted means in spec", "At least one CQA out of spec")
    return _layout(fig, grid, study, "Overlay of CQA specifications (predicted means)",
                   "Yellow: every CQA's predicted mean meets its spec; lines: where each mean "
                   "equals its limit. Means alone give no assurance; see the probability map.", note)


def interval_overlay_plot(grid: SpaceGrid, study: Study, *, note: str = "") -> go.Figure:
    """Overlay with each CQA's interval bound required inside its limits (Design-Expert style)."""
    inside, lower, upper = grid.interval_inside, grid.lower, grid.upper
    if grid.interval is None or inside is None or lower is None or upper is None:
        raise DoeError("This grid has no interval bounds: compute it with an interval kind.")
    info = grid.interval
    kind = info.get("kind", "interval")
    level = info.get("level")
    words = f"{kind} interval" + (f" {100 * level:g} %" if level else "")
    if kind == "tolerance":
        words = (f"tolerance interval ({100 * info.get('proportion', 0):g} % of runs, "
                 f"{100 * (level or 0):g} % confidence)")
    fig = go.Figure(_region_trace(grid, inside, "all CQA intervals in spec"))
    bounds = {}
    for r in study.responses:
        if r.name not in grid.per_cqa:
            continue
        if r.lower is not None:
            bounds[r.name] = lower[r.name]
        elif r.upper is not None:
            bounds[r.name] = upper[r.name]
    _limit_lines(fig, grid, study, bounds, "interval bound")
    _legend_swatches(fig, f"Every CQA's {kind} bound in spec", "At least one bound out of spec")
    return _layout(fig, grid, study, f"Interval overlay: {words}",
                   "Yellow: for every CQA the one-sided (or two-sided) interval bound meets the spec. "
                   "Lines: where each bound equals its limit.", note)


def probability_map(grid: SpaceGrid, study: Study, *, set_point: dict[str, Any] | None = None,
                    par: dict[str, Any] | None = None, nor: dict[str, Any] | None = None,
                    note: str = "") -> go.Figure:
    """Joint probability that every CQA meets spec, with the design space outlined.

    The design space is the region where the probability is at least the
    threshold (bold line); the set point, the proven acceptable ranges of the
    two plotted factors (dashed box) and the normal operating ranges (solid
    box) are drawn when given.
    """
    z = np.where(grid.feasible, grid.probability, np.nan)
    customdata, hovertemplate = _probability_hover(grid, study)
    # plain dicts, validated once by the tests (tests/test_space_speed_figures.py): plotly's
    # per-property validation of a 2,500-cell map costs more than drawing it
    data: list[dict[str, Any]] = [{
        "type": "heatmap", "x": grid.xs, "y": grid.ys, "z": z, "zmin": 0, "zmax": 1, "colorscale": "Viridis",
        "name": "P(all CQAs in spec)",
        "colorbar": {"title": {"text": "P(all CQAs<br>in spec)"}, "tickformat": ".1f"},
        "customdata": customdata, "hovertemplate": hovertemplate,
    }]
    data += _edge_dicts(grid, z)
    if (~grid.feasible).any():
        data.append({"type": "heatmap", "x": grid.xs, "y": grid.ys, "z": np.where(grid.feasible, np.nan, 1.0),
                     "showscale": False, "colorscale": [[0, _INFEASIBLE], [1, _INFEASIBLE]],
                     "hoverinfo": "skip", "name": "excluded by constraints"})
        data.append(_swatch_dict(_INFEASIBLE, "Excluded by constraints"))
    data += _edge_limit_dicts(grid, study)
    data += _box_dicts(grid, par, nor)
    if set_point is not None and grid.x in set_point and grid.y in set_point:
        data.append({"type": "scatter", "x": [set_point[grid.x]], "y": [set_point[grid.y]], "mode": "markers",
                     "marker": {"symbol": "star", "size": 18, "color": "#D55E00",
                                "line": {"color": "white", "width": 1.5}},
                     "name": "Set point"})
    sd = "" if not grid.setpoint_sd else "; set-point variation SD " + ", ".join(
        f"{k} {v:g}" for k, v in grid.setpoint_sd.items())
    specs = "; ".join(_spec_words(study, r.name) for r in study.responses if r.name in grid.per_cqa)
    if grid.assurance is None:
        space = f"design space: P >= {grid.threshold:g}{sd}"
    else:
        g = f"{100 * grid.assurance:g} %"
        level = grid.assurance_level if grid.assurance_level is not None else grid.assurance
        if grid.assurance_kind == "simultaneous":
            space = (f"design space with {g} simultaneous assurance (bold line: with posterior probability "
                     f"{grid.assurance:g}, P >= {grid.threshold:g} at every point inside at once; pointwise credible "
                     f"level {level:.3f}")
        else:
            space = (f"design space with {g} assurance (bold line: the lower {g} credible bound of P >= "
                     f"{grid.threshold:g}, point by point")
        space += (f"; {grid.assurance_draws:,} parameter draws); dashed line: the point estimate P >= "
                  f"{grid.threshold:g}, {100 * _share(grid.point_estimate_inside, grid.feasible):.0f} % of the map")
    subtitle = (f"{grid.method} {grid.draws:,} posterior draws (Monte Carlo SE <= {grid.mc_se:.3f}); "
                f"{space}. Inside: {100 * grid.fraction_inside:.0f} % "
                f"of the plotted feasible region. Specs: {specs}. Dots: the CQA that ends the design space there.")
    layout = _layout_dict(grid, study, "Design space: probability that every CQA meets its spec", subtitle, note,
                          _legend_rows(data))
    return go.Figure(data=data, layout=layout, _validate=False)


def _share(mask: np.ndarray, feasible: np.ndarray) -> float:
    n = int(feasible.sum())
    return float((mask & feasible).sum() / n) if n else 0.0


def _edge_dicts(grid: SpaceGrid, z: np.ndarray) -> list[dict[str, Any]]:
    """The design-space edge (bold); with an assurance level, the assured edge (bold) and the
    point-estimate edge (dashed), each where the map has points on both sides."""
    out = []
    point = grid.point_estimate_inside
    if grid.assurance is not None and grid.lower_bound is not None:
        inside = grid.inside
        if inside.any() and (~inside & grid.feasible).any():
            level = grid.threshold
            out.append({
                "type": "contour", "x": grid.xs, "y": grid.ys, "showscale": False, "hoverinfo": "skip",
                "z": np.where(grid.feasible, grid.lower_bound, np.nan),
                "contours": {"start": level, "end": level, "size": 1, "coloring": "none"},
                "line": {"color": _EDGE, "width": 3},
                "name": f"Design space edge ({100 * grid.assurance:g} % "
                        f"{'simultaneous ' if grid.assurance_kind == 'simultaneous' else ''}assurance of "
                        f"P >= {grid.threshold:g})",
                "showlegend": True,
            })
        dash, width, name = "dash", 2, f"Point-estimate edge (P = {grid.threshold:g})"
    else:
        dash, width, name = "solid", 3, f"Design space edge (P = {grid.threshold:g})"
    if point.any() and (~point & grid.feasible).any():
        out.append({
            "type": "contour", "x": grid.xs, "y": grid.ys, "z": z, "showscale": False, "hoverinfo": "skip",
            "contours": {"start": grid.threshold, "end": grid.threshold, "size": 1, "coloring": "none"},
            "line": {"color": _EDGE, "width": width, "dash": dash}, "name": name, "showlegend": True,
        })
    return out


def _hover_text(text: str) -> str:
    """User text for a hover template: HTML-escaped, and no '%' that could start a %{...} field."""
    return html.escape(text).replace("%", "&#37;")


def _probability_hover(grid: SpaceGrid, study: Study) -> tuple[np.ndarray, str]:
    """Per-cell numbers (customdata, ny x nx x (1 + 2 per CQA), at the precision shown: see
    ``shown_digits``) and the hover template that shows them.

    The template holds the (escaped) factor and CQA names once; each cell carries
    only its numbers: joint probability, then per CQA its probability and mean.
    Shown as before: the two settings to 4 significant digits with units, the
    joint probability in bold (3 decimals), per CQA 'P = 0.xxx, mean (3 significant digits)'.
    """
    fx, fy = study.factor(grid.x), study.factor(grid.y)
    names = list(grid.per_cqa)
    layers = [shown_digits(grid.probability, "f")]
    for k in names:
        layers += [shown_digits(grid.per_cqa[k], "f"), shown_digits(grid.mean[k], "g")]
    if grid.lower_bound is not None:
        layers.append(shown_digits(grid.lower_bound, "f"))
    customdata = np.ascontiguousarray(np.stack(layers, axis=-1), dtype=np.float32)
    lines = [f"{_hover_text(f'{fx.name} = ')}%{{x:.4~g}}{_hover_text(f' {fx.units}')}",
             f"{_hover_text(f'{fy.name} = ')}%{{y:.4~g}}{_hover_text(f' {fy.units}')}",
             "<b>P(all in spec) = %{customdata[0]:.3f}</b>"]
    lines += [f"{_hover_text(f'{k}: P = ')}%{{customdata[{1 + 2 * i}]:.3f}}, mean "
              f"%{{customdata[{2 + 2 * i}]:.3~g}}" for i, k in enumerate(names)]
    if grid.lower_bound is not None:  # a map with an assurance level: grid.assurance is set
        level = cast(float, grid.assurance_level or grid.assurance)
        lines.append(f"Lower {100 * level:.3g}&#37; credible bound of P = "
                     f"%{{customdata[{1 + 2 * len(names)}]:.3f}}")
    return customdata, "<br>".join(lines) + "<extra></extra>"


def shown_digits(values: np.ndarray, kind: str) -> np.ndarray:
    """``values`` rounded to what the hover shows (kind "f": 3 decimals, for probabilities; "g": 3
    significant digits) exactly as Python formats them (``f"{v:.3f}"``, ``f"{v:.3g}"``), so the
    map's hover and the tables show the same digits.

    Sent as float32: a 3-digit number is at least 1e-4 of its size away from the next rounding
    boundary and float32 is exact to 6e-8 of it, so the browser's formatting of the float32 gives the
    same digits, in half the bytes of float64. Near a tie, numpy's arithmetic and Python's correctly
    rounded formatting may differ; those few values are formatted by Python."""
    v = np.asarray(values, dtype=float)
    if kind == "f":
        exponent = np.full(v.shape, -1.0)  # 3 decimals: 10^-3 steps
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            exponent = np.floor(np.log10(np.abs(v)))
        exponent = np.where(np.isfinite(exponent), exponent, 0.0)
    step = 10.0 ** (exponent - 2)
    with np.errstate(invalid="ignore"):
        scaled = v / step
        out = np.round(scaled) * step
        near = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6  # a tie
        if kind == "g":
            near |= np.abs(out) >= 10.0 ** (exponent + 1)  # 999.7 -> 1000: one more digit before the point
        near &= np.isfinite(v)
    fmt = ".3f" if kind == "f" else ".3g"
    for index in zip(*np.nonzero(near)):
        out[index] = float(format(float(v[index]), fmt))
    return out


def _edge_limit_dicts(grid: SpaceGrid, study: Study) -> list[dict[str, Any]]:
    """Dots along the design-space edge, one trace per limiting CQA (doe.space.edge_limits)."""
    points = edge_limits(grid, study).points
    out = []
    for i, r in enumerate(r for r in study.responses if r.name in grid.per_cqa):
        mine = points[points["cqa"] == r.name]
        if mine.empty:
            continue
        out.append({"type": "scatter", "x": mine["x"].to_numpy(), "y": mine["y"].to_numpy(), "mode": "markers",
                    "marker": {"color": _EDGE_COLOURS[i % len(_EDGE_COLOURS)], "size": 7,
                               "line": {"color": _EDGE, "width": 1}},
                    "customdata": mine["probability"].to_numpy(),
                    "name": html.escape(f"Edge limited by {_spec_words(study, r.name)}"),
                    "hovertemplate": _hover_text(f"Edge limited by {r.name}") + ": P(in spec) just outside = "
                    "%{customdata:.3f}<extra></extra>"})
    return out


def _box_dicts(grid: SpaceGrid, par: dict[str, Any] | None, nor: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for ranges, name, dash in ((par, "PAR (proven acceptable ranges)", "dash"),
                               (nor, "NOR (normal operating ranges)", "solid")):
        if not ranges or grid.x not in ranges or grid.y not in ranges:
            continue
        (x0, x1), (y0, y1) = ranges[grid.x], ranges[grid.y]
        out.append({"type": "scatter", "x": [x0, x1, x1, x0, x0], "y": [y0, y0, y1, y1, y0], "mode": "lines",
                    "line": {"color": "#E69F00" if dash == "dash" else "#CC79A7", "width": 3, "dash": dash},
                    "name": name})
    return out


def _swatch_dict(color: str, name: str) -> dict[str, Any]:
    return {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": name,
            "marker": {"symbol": "square", "size": 14, "color": color}}


def _swatch(fig: go.Figure, color: str, name: str) -> None:
    fig.add_trace(go.Scatter(_swatch_dict(color, name)))


def _legend_swatches(fig: go.Figure, inside: str, outside: str) -> None:
    _swatch(fig, _INSIDE, inside)
    _swatch(fig, _OUTSIDE, outside)


def export_figure(fig: go.Figure, fmt: str, *, width: int = 1100, height: int = 700) -> bytes:
    """PNG or SVG bytes (kaleido + system Chromium/Chrome), or self-contained HTML.

    Raises ExportError with what to install when a static image cannot be made;
    HTML export always works.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise DoeError(f"Export format '{fmt}' is not supported; use png, svg or html.")
    if fmt == "html":
        html: str = fig.to_html(full_html=True, include_plotlyjs=True)
        return html.encode("utf-8")
    try:
        image: bytes = fig.to_image(format=fmt, width=width, height=height, scale=PNG_SCALE if fmt == "png" else 1)
        return image
    except Exception as exc:  # kaleido missing, or no browser it can drive
        raise ExportError(
            f"A {fmt.upper()} image needs the kaleido package and Chromium or Chrome "
            f"(Debian: apt-get install chromium); the interactive HTML works without them. ({exc})"
        ) from None


def probability_panels(grids: dict[tuple[str, str], SpaceGrid], study: Study, *, rows: str | None,
                       cols: str, note: str = "") -> go.Figure:
    """Small multiples of the probability map: one panel per level of ``cols`` (and ``rows``).

    ``grids`` maps (row level, column level) to the grid of that panel; the
    row level is '' without ``rows``. Every panel has the same colour scale
    and the design-space edge at the threshold.
    """
    from plotly.subplots import make_subplots

    row_levels = list(dict.fromkeys(k[0] for k in grids))
    col_levels = list(dict.fromkeys(k[1] for k in grids))
    titles = [f"{rows} = {r}, {cols} = {c}" if rows else f"{cols} = {c}" for r in row_levels for c in col_levels]
    fig = make_subplots(rows=len(row_levels), cols=len(col_levels), shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=[html.escape(t) for t in titles], horizontal_spacing=0.03,
                        vertical_spacing=0.08)
    any_grid = next(iter(grids.values()))
    for i, r in enumerate(row_levels, start=1):
        for j, c in enumerate(col_levels, start=1):
            g = grids[(r, c)]
            z = np.where(g.feasible, g.probability, np.nan)
            fig.add_trace(go.Heatmap(x=g.xs, y=g.ys, z=z, coloraxis="coloraxis", name=f"{r} {c}".strip(),
                                     hovertemplate="P = %{z:.3f}<extra></extra>"), row=i, col=j)
            if (g.probability >= g.threshold).any() and (g.probability < g.threshold).any():
                fig.add_trace(go.Contour(x=g.xs, y=g.ys, z=z, showscale=False, hoverinfo="skip",
                                         contours={"start": g.threshold, "end": g.threshold, "size": 1,
                                                   "coloring": "none"},
                                         line={"color": "white", "width": 3}, showlegend=False), row=i, col=j)
    fx, fy = study.factor(any_grid.x), study.factor(any_grid.y)
    for j in range(1, len(col_levels) + 1):
        fig.update_xaxes(title_text=html.escape(fx.label()), row=len(row_levels), col=j)
    for i in range(1, len(row_levels) + 1):
        fig.update_yaxes(title_text=html.escape(fy.label()), row=i, col=1)
    others = {k: v for k, v in any_grid.fixed.items() if k not in (rows, cols)}
    subtitle = (f"{any_grid.method} {any_grid.draws:,} posterior draws; design space (white edge): "
                f"P >= {any_grid.threshold:g}.")
    sub = "<br>".join(html.escape(line) for line in textwrap.wrap(subtitle, 150))
    n_sub = sub.count("<br>") + 1
    fig.update_layout(
        template=TEMPLATE, coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1,
                                      "colorbar": {"title": {"text": "P(all CQAs<br>in spec)"}}},
        title={"text": f"Design space by {html.escape(cols)}" + (f" and {html.escape(rows)}" if rows else "")
               + f"<br><sup>{sub}</sup>", "x": 0.01},
        height=max(420, 330 * len(row_levels) + 200 + 26 * n_sub), margin={"t": 110 + 26 * n_sub, "b": 150},
    )
    fixed_text = ", ".join(f"{k} = {v}" for k, v in others.items())
    fig.add_annotation(text=html.escape(" | ".join(t for t in (f"Other factors: {fixed_text}", note) if t)),
                       xref="paper", yref="paper", x=0, y=0, yshift=-95, showarrow=False, xanchor="left",
                       yanchor="top", font={"size": 11})
    return fig
