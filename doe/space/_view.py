"""Which slice of the design space to show first, which CQA limits its edge, and a saved decision's view.

The design-space page, the report and ``python -m doe space`` open on the same view
(:func:`opening_view`): the robust set point (maximum probability of meeting every spec), and,
among the settings tied with it within Monte Carlo error, the categorical levels and the pair of
numeric factors over which the probability varies most, so the map shows where the design space
ends instead of a uniform P = 1.000. :func:`edge_limits` names, along the edge of a map, the CQA
whose own probability of meeting its spec is the lowest there (the one that ends the design space);
:func:`limiting_cqa` does the same at any setting. :func:`saved_view` turns a saved design-space
decision (set point, threshold, set-point variation) back into settings of the current study,
saying what no longer applies.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from doe.decision import DEFAULT_THRESHOLD, Decision
from doe.study import Study

from ._grid import SpaceGrid, space_grid
from ._kernels import probability
from ._posterior import PredictiveModel
from ._search import robust_set_point
from ._settings import factor_range

__all__ = ["MAX_CANDIDATES", "MAX_VIEW_FACTORS", "MAX_VIEW_PAIRS", "VIEW_GRID", "EdgeLimits", "OpeningView",
           "SavedView", "candidate_pairs", "decision_setpoint_sd", "describe_setpoint_sd", "edge_limits",
           "limiting_cqa", "limiting_map", "opening_view", "par_frame", "par_limits", "saved_view",
           "set_point_frame", "view_axes"]

#: Points per axis of the coarse maps that score a candidate view.
VIEW_GRID = 21
#: At most this many tied categorical combinations are scored.
MAX_CANDIDATES = 12
#: With more pairs of numeric factors than this, only the pairs of the most influential factors are scored.
MAX_VIEW_PAIRS = 15
#: How many factors (ranked by the spread along their own range) make the scored pairs above the cap.
MAX_VIEW_FACTORS = 6


@dataclass
class OpeningView:
    """The first view of the design space: axes, set point and why.

    ``x``/``y`` are the numeric factors on the map's axes, ``set_point`` the settings of every
    factor (the map is the slice through it), ``probability`` the joint probability there,
    ``spread`` the standard deviation of the probability over the feasible cells of the (coarse)
    map, ``reason`` one sentence for the page and the report.
    """

    x: str
    y: str
    set_point: dict[str, Any]
    probability: float
    spread: float
    reason: str
    candidates: int = 1


def _pairs(pm: PredictiveModel) -> list[tuple[str, str]]:
    return list(itertools.combinations(pm.numeric, 2))


def _line_spread(pm: PredictiveModel, name: str, point: Mapping[str, Any], opts: dict[str, Any]) -> float:
    """Standard deviation of the probability over ``VIEW_GRID`` feasible settings of one factor (its study
    range), the others at ``point``."""
    f = pm.study.factor(name)
    xs = np.unique(np.asarray(f.levels, dtype=float)) if f.kind == "discrete" else np.linspace(*factor_range(f),
                                                                                               VIEW_GRID)
    frame = pd.DataFrame({**{k: [v] * len(xs) for k, v in point.items() if k != name}, name: xs},
                         columns=pm.study.factor_names)
    res = probability(pm, frame, draws=opts.get("draws"), seed=opts.get("seed", 0),
                      setpoint_sd=opts.get("setpoint_sd"))
    p = res.joint[pm.study.feasible(frame)]
    return float(p.std()) if p.size else 0.0


def candidate_pairs(pm: PredictiveModel, point: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD,
                    draws: int | None = None, seed: int = 0,
                    setpoint_sd: dict[str, float] | None = None) -> list[tuple[str, str]]:
    """The pairs of numeric factors whose maps through ``point`` are scored for the view (study order).

    Every pair when there are at most ``MAX_VIEW_PAIRS`` (15: up to 6 numeric factors). With more, the
    pairs of the ``MAX_VIEW_FACTORS`` (6) factors over whose own range (the others at ``point``) the
    probability varies most (standard deviation over ``VIEW_GRID`` points; study order on a tie): so
    the work grows linearly with the number of factors (k lines + 15 maps) instead of with k^2 maps.
    ``threshold`` is accepted for the same options as the other view calls; the spread does not use it.
    """
    pairs = _pairs(pm)
    if len(pairs) <= MAX_VIEW_PAIRS:
        return pairs
    opts: dict[str, Any] = {"threshold": threshold, "draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    full = {**{f.name: (f.levels[0] if f.is_categorical else f.center) for f in pm.study.factors}, **dict(point)}
    spread = [_line_spread(pm, f, full, opts) for f in pm.numeric]
    order = sorted(range(len(pm.numeric)), key=lambda i: (-spread[i], i))[:MAX_VIEW_FACTORS]
    return list(itertools.combinations([pm.numeric[i] for i in sorted(order)], 2))


def _spread(pm: PredictiveModel, x: str, y: str, point: Mapping[str, Any], opts: dict[str, Any]) -> float:
    g = space_grid(pm, x, y, {k: v for k, v in point.items() if k not in (x, y)}, n=VIEW_GRID, **opts)
    p = g.probability[g.feasible]
    return float(p.std()) if p.size else 0.0


def view_axes(pm: PredictiveModel, set_point: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD,
              draws: int | None = None, seed: int = 0,
              setpoint_sd: dict[str, float] | None = None) -> tuple[str, str] | None:
    """The pair of numeric factors over which the probability varies most through ``set_point``
    (the first pair in study order on a tie; with many factors among :func:`candidate_pairs`); None with
    fewer than two numeric factors."""
    pairs = _pairs(pm)
    if not pairs:
        return None
    if len(pairs) == 1:
        return pairs[0]
    opts: dict[str, Any] = {"threshold": threshold, "draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    pairs = candidate_pairs(pm, set_point, **opts)
    scores = [_spread(pm, x, y, set_point, opts) for x, y in pairs]
    return pairs[int(np.argmax(scores))]


def opening_view(pm: PredictiveModel, *, threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
                 setpoint_sd: dict[str, float] | None = None, robust: Mapping[str, Any] | None = None,
                 set_point: Mapping[str, Any] | None = None) -> OpeningView | None:
    """The informative first view of the design space (None with fewer than two numeric factors).

    With ``set_point`` (e.g. a saved decision's), only the axes are chosen: the pair of numeric
    factors over which the probability varies most through it. Without, the robust set point
    (``robust``, a :func:`doe.space.robust_set_point` result, computed when not given) is the start;
    every categorical combination whose best probability is tied with it (within 2 Monte Carlo
    standard errors + 1/draws, the robust search's own tie rule; at most ``MAX_CANDIDATES``, the
    robust one first) and every pair of numeric factors is scored by the standard deviation of
    the probability over the map through it; the highest wins (the robust one on a tie). The set
    point is then the robust set point within the winning combination: still tied with the
    maximum probability, and the map shows the edge of the design space. With more than 6 numeric
    factors only the pairs of :func:`candidate_pairs` are scored (linear, not quadratic, in the
    number of factors).
    """
    pairs = _pairs(pm)
    if not pairs:
        return None
    opts: dict[str, Any] = {"threshold": threshold, "draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    if set_point is not None:
        axes = view_axes(pm, set_point, **opts)
        assert axes is not None  # the study has a pair of numeric factors
        x, y = axes
        spread = _spread(pm, x, y, set_point, opts)
        return OpeningView(x, y, dict(set_point), math.nan, spread, "the saved set point; axes: the pair of "
                           "factors over which the probability varies most through it")
    best = dict(robust) if robust is not None else robust_set_point(pm, **opts)
    start = dict(best["settings"])
    p_best, n = float(best["probability"]), int(best["draws"])
    tol = 2 * math.sqrt(max(p_best * (1 - p_best), 0.0) / n) + 1.0 / n
    own = {f: start[f] for f in pm.categorical}
    combos = [own] + [{f: c[f] for f in pm.categorical} for c in best.get("combinations", [])
                      if c["probability"] >= p_best - tol and any(c[f] != own[f] for f in pm.categorical)]
    combos = combos[:MAX_CANDIDATES]
    scored = []
    for i, combo in enumerate(combos):
        point = {**start, **combo}
        for j, (x, y) in enumerate(candidate_pairs(pm, point, **opts)):
            scored.append((_spread(pm, x, y, point, opts), -i, -j, combo, (x, y)))
    spread, neg_i, _, combo, (x, y) = max(scored, key=lambda t: t[:3])
    if neg_i == 0:
        point, p = start, p_best
    else:
        found = robust_set_point(pm, fixed=combo, **opts)
        point, p = dict(found["settings"]), float(found["probability"])
    if len(combos) > 1:
        reason = (f"the robust set point (maximum probability); of the {len(combos)} level combinations tied "
                  "with it, the one whose map shows the most variation of the probability")
    else:
        reason = "the robust set point (maximum probability)"
    if len(pairs) > 1:
        reason += "; axes: the pair of factors over which the probability varies most"
    return OpeningView(x, y, point, p, spread, reason, len(combos))


# -- which CQA limits the design space -----------------------------------------------------------------
def limiting_cqa(per_cqa: Mapping[str, Any]) -> str | None:
    """The CQA with the lowest probability of meeting its spec (the first in order on a tie); None
    without numbers or when every CQA has the same probability (e.g. all 1.000: none limits)."""
    finite = {k: float(v) for k, v in per_cqa.items() if v is not None and np.isfinite(v)}
    if not finite or min(finite.values()) == max(finite.values()):
        return None
    return min(finite, key=lambda k: (finite[k], list(finite).index(k)))


def limiting_map(grid: SpaceGrid) -> np.ndarray:
    """Per cell, the index (into ``list(grid.per_cqa)``) of the CQA with the lowest probability."""
    names = list(grid.per_cqa)
    if not names:
        return np.full(grid.probability.shape, -1)
    return cast(np.ndarray, np.argmin(np.stack([grid.per_cqa[k] for k in names]), axis=0))


@dataclass
class EdgeLimits:
    """Where a map's design space ends and which CQA ends it.

    ``points``: one row per stretch of edge between a cell inside the design space and a feasible
    neighbour outside it: ``x``, ``y`` (the midpoint), ``cqa`` (lowest probability on the outside
    cell), ``probability`` (that CQA's probability there). ``table``: per CQA its share of the edge.
    """

    points: pd.DataFrame
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


def edge_limits(grid: SpaceGrid, study: Study | None = None) -> EdgeLimits:
    """The CQA that limits the design space along the edge of ``grid`` (see :class:`EdgeLimits`).

    Where the map's design space ends at a constraint or at the study range, no CQA is named:
    only edges between a cell inside and a feasible cell outside count.
    """
    names = list(grid.per_cqa)
    inside, feasible = grid.inside, grid.feasible
    low = limiting_map(grid)
    rows = []
    ny, nx = inside.shape
    for dy, dx in ((0, 1), (1, 0)):  # neighbours to the right and above: each pair of cells once
        a_in, b_in = inside[:ny - dy, :nx - dx], inside[dy:, dx:]
        a_ok, b_ok = feasible[:ny - dy, :nx - dx], feasible[dy:, dx:]
        for out_is_b, mask in ((True, a_in & ~b_in & b_ok), (False, b_in & ~a_in & a_ok)):
            for i, j in zip(*np.nonzero(mask)):
                i1, j1 = (i + dy, j + dx) if out_is_b else (i, j)
                k = int(low[i1, j1])
                rows.append({"x": (grid.xs[j] + grid.xs[j + dx]) / 2, "y": (grid.ys[i] + grid.ys[i + dy]) / 2,
                             "cqa": names[k], "probability": float(grid.per_cqa[names[k]][i1, j1])})
    points = pd.DataFrame(rows, columns=["x", "y", "cqa", "probability"])
    counts = points["cqa"].value_counts()
    table = pd.DataFrame({
        "CQA": list(counts.index),
        "Spec": [study.response(k).spec_text() if study is not None else "" for k in counts.index],
        "Share of the edge (%)": [round(100 * v / len(points)) for v in counts.to_numpy()],
        "Lowest P(in spec) just outside": [f"{points.loc[points['cqa'] == k, 'probability'].min():.3f}"
                                          for k in counts.index],
    })
    return EdgeLimits(points, table)


# -- a saved decision ----------------------------------------------------------------------------------
@dataclass
class SavedView:
    """A saved design-space decision as settings of the current study.

    ``set_point`` is complete and inside the tested ranges, or None when it cannot be used
    (``problems`` says why); ``setpoint_sd`` keeps only numeric factors of the study with a
    positive SD; ``problems`` lists what of the decision no longer applies.
    """

    decision_id: int | None
    threshold: float
    set_point: dict[str, Any] | None
    setpoint_sd: dict[str, float]
    problems: list[str]


def decision_setpoint_sd(ranges: Mapping[str, Any] | None) -> dict[str, float]:
    """The set-point variation (factor -> SD) saved in a decision's ranges JSON; {} when none
    (:attr:`doe.decision.Decision.setpoint_sd`)."""
    return Decision(DEFAULT_THRESHOLD, {}, dict(ranges or {})).setpoint_sd


def describe_setpoint_sd(study: Study, sd: Mapping[str, float] | None) -> str:
    """'SD 2 rpm for Agitation, ...' or 'none (the set point is taken as exact)'."""
    if not sd:
        return "none (the set point is taken as exact)"
    parts = []
    for k, v in sd.items():
        units = study.factor(k).units if k in study.factor_names else ""
        parts.append(f"SD {v:.4g}{' ' + units if units else ''} for {k}")
    return "normal, " + ", ".join(parts)


def saved_view(study: Study, decision: Mapping[str, Any]) -> SavedView:
    """The set point, threshold and set-point variation of a saved decision (a row of
    ``Store.decisions``), checked against ``study``: a factor missing from the decision, a value
    outside the tested range or an untested level makes the set point unusable (None) with a
    message; an SD of a factor the study no longer has is dropped with a message."""
    problems: list[str] = []
    saved_decision = Decision.from_row(decision)
    did = saved_decision.id
    saved = dict(saved_decision.set_point)
    point: dict[str, Any] = {}
    for f in study.factors:
        if f.name not in saved:
            problems.append(f"the decision has no setting for {f.name}")
            continue
        v = saved[f.name]
        if f.is_categorical:
            if v not in f.levels:
                problems.append(f"{f.name} = {v} is not a level of the study now ({', '.join(map(str, f.levels))})")
                continue
            point[f.name] = v
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            problems.append(f"{f.name} = {v!r} is not a number")
            continue
        low, high = factor_range(f)
        if not low <= x <= high:
            problems.append(f"{f.name} = {x:g} is outside the tested range {f.describe_range()}")
            continue
        point[f.name] = x
    sd = {}
    for k, v in saved_decision.setpoint_sd.items():
        if k in study.factor_names and not study.factor(k).is_categorical:
            sd[k] = v
        else:
            problems.append(f"the set-point variation of {k} is dropped: the study has no numeric factor {k}")
    return SavedView(did, saved_decision.threshold, None if problems else point, sd, problems)


# -- PAR ends: which CQA ends each proven acceptable range ---------------------------------------------
def par_limits(pm: PredictiveModel, par: Any, *, threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
               setpoint_sd: dict[str, float] | None = None) -> dict[str, tuple[str | None, str | None]]:
    """Per numeric factor of a :class:`doe.space.PARResult`, the CQA with the lowest probability just
    beyond each end that the probability limits (None for an end at the study range or a constraint)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for name, reasons in (getattr(par, "limited_by", None) or {}).items():
        f = pm.study.factor(name)
        f_low, f_high = factor_range(f)
        step = 1e-3 * (f_high - f_low)
        low, high = par[name]
        ends: list[str | None] = []
        for value, reason, sign in ((low, reasons[0], -1), (high, reasons[1], 1)):
            if reason != "probability":
                ends.append(None)
                continue
            x = min(max(value + sign * step, f_low), f_high)
            frame = pd.DataFrame([{**par.set_point, name: x}], columns=pm.study.factor_names)
            res = probability(pm, frame, draws=draws, seed=seed, setpoint_sd=setpoint_sd)
            ends.append(limiting_cqa({k: v[0] for k, v in res.per_cqa.items()}))
        out[name] = (ends[0], ends[1])
    return out


def par_frame(study: Study, par: Any, cqa_ends: Mapping[str, tuple[str | None, str | None]] | None = None
              ) -> pd.DataFrame:
    """The PAR table: factor, PAR, what limits the low and the high end (the CQA, where the
    probability ends it; 'study range' or 'constraint' otherwise)."""
    rows = []
    for f, v in par.items():
        reasons = (getattr(par, "limited_by", None) or {}).get(f)
        ends = (cqa_ends or {}).get(f, (None, None))
        words = ["", ""]
        if reasons:
            for i in (0, 1):
                words[i] = f"{ends[i]} (P below threshold)" if reasons[i] == "probability" and ends[i] \
                    else str(reasons[i])
        rows.append({"Factor": study.factor(f).label(),
                     "PAR": ", ".join(map(str, v)) if isinstance(v, list) else f"{v[0]:.4g} to {v[1]:.4g}",
                     "Low end limited by": words[0], "High end limited by": words[1]})
    return pd.DataFrame(rows, columns=["Factor", "PAR", "Low end limited by", "High end limited by"])


def set_point_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The set point's table (:func:`doe.space.set_point_report`): per CQA spec, prediction, 95 % PI,
    probability of meeting the spec (3 decimals as on the page; blank for a CQA without a spec), and
    which CQA is the lowest (the one that limits)."""
    worst = limiting_cqa(report["per_cqa"])
    return pd.DataFrame([{"CQA": k, "Spec": v["spec"], "Predicted": v["mean"], "95 % PI low": v["lower_95pi"],
                          "95 % PI high": v["upper_95pi"], "P(in spec)": _p3(report["per_cqa"].get(k)),
                          "Limits the design space": "yes (lowest P)" if k == worst else ""}
                         for k, v in report["predictions"].items()])


def _p3(value: float | None) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.3f}"
