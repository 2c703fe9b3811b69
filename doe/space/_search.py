"""The robust set point (maximum probability of meeting every spec) and the report at a set point.

:func:`robust_set_point` scores a grid per level combination (:func:`search_grid`,
:func:`search_probability`: counts stopped early where a point cannot tie with the best,
:func:`pruned_joint`), then refines the best by a pattern search; :func:`set_point_report`
describes one set point. With many numeric factors (a lattice above :data:`MAX_SEARCH_POINTS`
points, e.g. 3^10 with 10 factors) the grid is a seeded space-filling sample (:func:`search_points`)
instead, so the search grows linearly, not exponentially, with the number of factors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import qmc

from doe._format import plain
from doe.decision import DEFAULT_THRESHOLD
from doe.errors import ModelError

from ._assurance import check_assurance_options
from ._kernels import (
    CHUNK_ELEMENTS,
    count_in_spec,
    count_width,
    group_margins,
    level_groups,
    monomials,
    probability,
    row_counts,
    shift_draws,
    within,
)
from ._posterior import PredictiveModel
from ._ranges import lower_bound_at, meets_threshold
from ._settings import fixed_settings, settings_arrays, settings_frame, settings_points

__all__ = ["MAX_SEARCH_POINTS", "SAMPLED_START_STEP", "robust_set_point", "search_points", "set_point_report"]

#: Most numeric search points per level combination: a larger lattice is replaced by a space-filling sample.
MAX_SEARCH_POINTS = 20_000
#: First coded step of the pattern search after a space-filling sample (the sample is coarser than a lattice).
SAMPLED_START_STEP = 0.25

# -- robust set point -----------------------------------------------------------------------------
def robust_set_point(pm: PredictiveModel, *, fixed: Mapping[str, Any] | None = None, threshold: float = DEFAULT_THRESHOLD,
                     draws: int | None = None, seed: int = 0, setpoint_sd: dict[str, float] | None = None,
                     grid: int = 21, max_points: int | None = None) -> dict[str, Any]:
    """The settings that maximise the joint probability of meeting every spec (Peterson 2004).

    Every allowed combination of categorical levels (at least one feasible
    point) is searched on a ``grid``-per-axis grid of the numeric factors
    (fewer points per axis with many factors, at least 3; the tested levels
    of a discrete factor), within the study ranges and constraints. When that
    lattice would hold more than ``max_points`` points per combination
    (default :data:`MAX_SEARCH_POINTS`, 20,000: e.g. 3^10 = 59,049 with 10
    factors), a seeded space-filling sample of the coded cube is searched
    instead (:func:`search_points`: the centre, the face centres and a
    scrambled Sobol sample, ``seed``; at most ``max_points`` points), so the
    work grows linearly, not exponentially, with the number of factors; the
    pattern search then starts with a coarser step. Points within
    Monte Carlo error of the best (2 standard errors + 1/draws) are ties,
    broken by the largest coded distance to the design-space edge (the
    nearest grid point outside it, or the study range); a pattern search on
    the same draws then refines the numeric factors, accepting only real
    improvements.

    Returns
    -------
    dict
        ``settings`` (actual units), ``coded``, ``probability``, ``per_cqa``,
        ``inside``, ``distance_to_edge`` (coded), ``predictions`` (every CQA:
        mean and 95 % prediction interval from ``FittedModel.predict``, spec
        and whether the mean is in spec), ``combinations`` (best probability
        per categorical combination, best first), ``threshold``, ``draws``,
        ``mc_se``.
    """
    held = fixed_settings(pm, fixed, [], complete=False) if fixed else {}
    held = {k: v for k, v in held.items() if k in (fixed or {})}
    free_num = [f for f in pm.numeric if f not in held]
    free_cat = [f for f in pm.categorical if f not in held]
    opts: dict[str, Any] = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    cap = MAX_SEARCH_POINTS if max_points is None else int(max_points)
    if cap < 1:
        raise ModelError(f"max_points must be a positive number of search points; got {max_points}.")
    frame, coded = _search_grid(pm, held, free_num, free_cat, grid, max_points=cap, seed=seed)
    sampled = bool(free_num) and not _lattice_fits(pm, free_num, grid, cap)
    feas = pm.study.feasible(frame)
    p = _search_probability(pm, frame, feas, threshold, opts, coded)
    n = pm.draws(draws, seed).n
    score = np.where(feas, p, -1.0)
    best_p = float(score.max())
    if best_p < 0:
        raise ModelError("No feasible settings: the constraints exclude every grid point searched.")
    tol = 2 * math.sqrt(best_p * (1 - best_p) / n) + 1.0 / n
    keys = (frame.groupby(free_cat, sort=False).ngroup().to_numpy() if free_cat
            else np.zeros(len(frame), dtype=int))
    edge = ~((p >= threshold) & feas)
    cand = np.flatnonzero(score >= best_p - tol)
    dist = _edge_distances(coded, edge, keys, cand)
    pick = int(cand[np.lexsort((-score[cand], -dist))[0]])
    point = {f: frame[f].iloc[pick] for f in pm.study.factor_names}
    continuous = [f for f in free_num if pm.study.factor(f).kind == "continuous"]  # discrete: levels only
    start = SAMPLED_START_STEP if sampled else None
    point, _ = _pattern_search(pm, point, continuous, float(p[pick]), tol, threshold, opts, grid, start)
    return _set_point_report(pm, point, float(dist[list(cand).index(pick)]), threshold, opts,  # type: ignore[arg-type]  # numpy stubs: int == np.int64 here
                             _combination_table(frame, free_cat, score))


def _search_probability(pm: PredictiveModel, frame: pd.DataFrame, feas: np.ndarray, threshold: float,
                        opts: dict[str, Any], coded: np.ndarray) -> np.ndarray:
    """Joint probabilities of the search grid, exact wherever :func:`robust_set_point` uses the value.

    Every decision the search makes is the one exact probabilities give: the
    best probability, the ties within ``tol`` of it, the best probability per
    level combination, and inside/outside the design space (``p >= threshold``)
    of every point that can be the nearest edge point of a tie (same level
    combination, within the tie's distance to the study range: the only edge
    points :func:`_edge_distance` can use; ``coded``: the searched numeric
    factors of ``frame``, coded).

    A point is exact unless, part-way through the CQAs, its running count of
    draws in spec (an upper bound of the final count) is already below the best
    probability known in its level combination and more than the largest
    possible ``tol`` below the best probability known overall: it then keeps
    that upper bound, which is neither a tie nor the best of its combination.
    Such points near a tie are evaluated again in full when their bound does
    not settle ``p < threshold``. Infeasible points are not evaluated (0). The
    known bests start from exact probe points (every ~16th point of each
    combination) and rise with every exact point; points nearest the best probe
    and the most restrictive CQAs go first.
    """
    p = np.zeros(len(frame))
    rows_all = np.flatnonzero(feas)
    if not len(rows_all):
        return p
    U, L = settings_arrays(pm, frame)
    dr = pm.draws(opts.get("draws"), opts.get("seed", 0))
    shift = shift_draws(pm, dr, opts.get("setpoint_sd"))
    n = dr.n
    sizes = [len(pm.study.factor(f).levels) for f in pm.categorical]
    spec = pm.spec_cqas
    groups = []
    for combo, local in level_groups(L[rows_all]):
        rows = rows_all[local]
        sides = group_margins(pm, dr, combo, sizes, shift)
        if not spec or any(cs is not None and not cs for cs in sides):  # always 1 (no spec) or never 0
            p[rows] = 1.0 if not spec else 0.0
            continue
        M = monomials(U[rows], pm.exponents)
        mats = [np.ascontiguousarray(M[:, c.basis], dtype=np.float32) for c in spec]
        probe = np.zeros(len(rows), dtype=bool)
        probe[::max(1, len(rows) // 16)] = True
        groups.append((rows, sides, mats, probe))
    if not groups:
        return p
    best_combo, orders, nearest = [], [], []
    for rows, sides, mats, probe in groups:  # probes: exact, and per-CQA shares to order the CQAs
        joint, per = count_in_spec([m[probe] for m in mats], sides, int(probe.sum()), n)
        p[rows[probe]] = joint
        best_combo.append(float(np.max(joint)))
        passed = [float(np.sum(v)) for v in per]
        orders.append([int(i) for i in np.argsort(passed, kind="stable") if sides[i] is not None])
        rest = np.flatnonzero(~probe)  # the other points, nearest to the best probe first
        top = U[rows[np.flatnonzero(probe)[int(np.argmax(joint))]]]
        nearest.append(rest[np.argsort(np.sum((U[rows[rest]] - top) ** 2, axis=1), kind="stable")])
    known = {"all": max(best_combo), "n": n}
    stopped = [np.zeros(len(g[0]), dtype=bool) for g in groups]
    for gi in np.argsort(best_combo, kind="stable")[::-1]:  # the most promising combinations first
        (rows, sides, mats, probe), rest = groups[gi], nearest[gi]
        if len(rest):
            known["combo"] = best_combo[gi]
            share, early = _pruned_joint([m[rest] for m in mats], sides, orders[gi], n, known)
            p[rows[rest]] = share
            stopped[gi][rest] = early
    best_p = float(np.max(p[rows_all]))  # exact: the best point of each combination is never stopped
    tol = 2 * math.sqrt(best_p * (1 - best_p) / n) + 1.0 / n
    for (rows, sides, mats, _probe), stop, order in zip(groups, stopped, orders):
        ties = rows[p[rows] >= best_p - tol - 1e-9]
        redo = stop & ~(p[rows] < threshold)
        if not len(ties) or not redo.any():
            continue  # no tie here (its edge is never used), or every edge point known
        if coded.shape[1]:
            reach = np.min(1.0 - np.abs(coded[ties]), axis=1) + 1e-9  # farther edge points are never used
            near = np.zeros(int(redo.sum()), dtype=bool)
            where = coded[rows[redo]]
            for start in range(0, len(ties), 256):
                t = slice(start, start + 256)
                d = np.linalg.norm(where[:, None, :] - coded[ties[t]][None, :, :], axis=2)
                near |= (d <= reach[t][None, :]).any(axis=1)
            redo[np.flatnonzero(redo)[~near]] = False
        if redo.any():
            p[rows[redo]] = _pruned_joint([m[redo] for m in mats], sides, order, n, None)[0]
    return p


def _tie_tolerance_bound(known_best: float, n: int) -> float:
    """Largest tie tolerance 2 sqrt(b (1 - b) / n) + 1 / n of :func:`robust_set_point` for a best b >= known_best.

    The tolerance peaks at b = 0.5 and falls towards b = 1, so for a known best
    of at least 0.5 it is largest at the known best itself (plus 1e-9 for rounding).
    """
    b = max(0.5, known_best)
    return 2 * math.sqrt(b * (1 - b) / n) + 1.0 / n + 1e-9


def _pruned_joint(mats: list[np.ndarray], sides: list[list[np.ndarray] | None], order: list[int], n_draws: int,
                  known: dict[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Joint shares in spec, points of one level combination; a point may stop early with an upper bound.

    ``known`` holds exact shares seen so far: ``combo`` (best in this
    combination) and ``all`` (best overall); None: no point stops. A point
    stops as soon as its running share is below both ``combo`` and ``all``
    minus :func:`_tie_tolerance_bound`; ``known`` is raised with
    every exact share found (points are taken in chunks, in the given order).
    ``order``: the CQAs with margins (``sides[i]`` not None), in the order to
    evaluate them. Returns the shares and which points stopped early; the
    others' shares are exactly those of :func:`count_in_spec` (the same
    float32 margins and products).
    """
    n_points = len(mats[0])
    out = np.zeros(n_points)
    early = np.zeros(n_points, dtype=bool)
    if not order:
        return np.ones(n_points), early
    chunk = max(1, CHUNK_ELEMENTS // n_draws)
    width = count_width(n_draws)
    this_all = np.zeros((min(chunk, n_points), width), dtype=bool)  # padding columns stay False
    side_all = np.empty((min(chunk, n_points), n_draws), dtype=bool)
    w_all = np.empty((min(chunk, n_points), n_draws), dtype=np.float32)
    for start in range(0, n_points, chunk):
        idx = np.arange(start, min(start + chunk, n_points))
        ok_buf = None
        cut = -1.0 if known is None else min(known["combo"], known["all"] - _tie_tolerance_bound(known["all"], n_draws))
        for step, i in enumerate(order):
            rows = len(idx)
            this_buf = this_all[:rows]
            this, side, w = this_buf[:, :n_draws], side_all[:rows], w_all[:rows]
            Mi = mats[i][idx]
            cs = sides[i]
            assert cs is not None  # order holds the CQAs with margins
            for k, coef in enumerate(cs):
                np.einsum("pk,kn->pn", Mi, coef, out=w, optimize=False)  # as count_in_spec
                np.greater_equal(w, 0.0, out=this if k == 0 else side)
                if k:
                    np.logical_and(this, side, out=this)
            if ok_buf is None:
                ok_buf = this_buf.copy()
            else:
                np.logical_and(ok_buf, this_buf, out=ok_buf)
            share = row_counts(ok_buf) / n_draws
            out[idx] = share
            if step == len(order) - 1:
                if known is not None and len(share):  # exact shares
                    known["combo"] = max(known["combo"], float(share.max()))
                    known["all"] = max(known["all"], known["combo"])
                break
            low = share < cut
            if low.any():
                early[idx[low]] = True
                idx, ok_buf = idx[~low], ok_buf[~low]
                if not len(idx):
                    break
    return out, early


def _lattice_axes(pm: PredictiveModel, free_num: list[str], grid: int) -> list[np.ndarray]:
    """The coded values per axis of the search lattice: the tested levels of a discrete factor, else
    ``grid`` points (fewer with many factors: ~20,000 ** (1/k), at least 3)."""
    per_axis = max(3, min(grid, int(20_000 ** (1 / max(len(free_num), 1)))))
    return [np.asarray(pm.study.factor(f).to_coded(pm.study.factor(f).levels), dtype=float)
            if pm.study.factor(f).kind == "discrete" else np.linspace(-1, 1, per_axis) for f in free_num]


def _lattice_fits(pm: PredictiveModel, free_num: list[str], grid: int, max_points: int) -> bool:
    """Whether the search lattice of ``free_num`` has at most ``max_points`` points (the product of the axis
    sizes, computed without building it)."""
    size = 1
    for axis in _lattice_axes(pm, free_num, grid):
        size *= len(axis)
        if size > max_points:
            return False
    return True


def search_points(levels: list[np.ndarray | None], max_points: int, seed: int = 0) -> np.ndarray:
    """A space-filling sample of the coded cube [-1, 1]^k with at most ``max_points`` rows (k = len(levels)).

    The rows are the centre and the 2k face centres (each factor at -1 or +1, the others at 0; left
    out when they do not fit), then, from scrambled Sobol samples (:class:`scipy.stats.qmc.Sobol`,
    seeded with ``seed``; 2^m points each, the largest power of two that fits) a quarter of the
    room each: corners of the cube (all 2^k when they fit, else the signs of a Sobol sample) and
    points of the 3-level lattice {-1, 0, 1}^k (each coordinate in thirds of a Sobol sample), and a
    Sobol sample of the whole cube in the remaining half. Duplicate rows are dropped. ``levels[j]``
    (coded) snaps axis j to those values (a discrete factor; each level equally often in the Sobol
    parts); None: continuous. The number of rows is bounded by ``max_points``, whatever k.
    """
    k = len(levels)
    if k == 0:
        return np.zeros((1, 0))
    head = [np.zeros((1, k))]
    if 1 + 2 * k <= max_points // 2:
        faces = np.zeros((2 * k, k))
        faces[np.arange(k), np.arange(k)] = -1.0
        faces[k + np.arange(k), np.arange(k)] = 1.0
        head.append(faces)
    rows = np.vstack(head)
    room = max_points - len(rows)
    rng = np.random.default_rng(seed)
    parts = [rows]
    if room >= 4:
        quarter = room // 4
        if k <= 62 and 2 ** k <= quarter:
            parts.append(np.array(list(itertools.product((-1.0, 1.0), repeat=k))))
        else:
            u = qmc.Sobol(k, scramble=True, seed=rng).random_base2(int(math.log2(quarter)))
            parts.append(np.where(u < 0.5, -1.0, 1.0))
        u = qmc.Sobol(k, scramble=True, seed=rng).random_base2(int(math.log2(quarter)))
        parts.append(np.minimum(np.floor(3.0 * u), 2.0) - 1.0)
        room -= len(parts[1]) + len(parts[2])
    if room >= 1:
        u = qmc.Sobol(k, scramble=True, seed=rng).random_base2(int(math.log2(room)))
        parts.append(2.0 * u - 1.0)
    out = np.vstack(parts)
    for j, lv in enumerate(levels):
        if lv is None:
            continue
        values = np.sort(np.asarray(lv, dtype=float))
        near = np.abs(out[:len(rows), j, None] - values[None, :]).argmin(axis=1)  # centre, faces: nearest level
        u = (out[len(rows):, j] + 1.0) / 2.0  # the Sobol parts: equal shares of the levels
        out[len(rows):, j] = values[np.minimum((u * len(values)).astype(int), len(values) - 1)]
        out[:len(rows), j] = values[near]
    _, first = np.unique(out, axis=0, return_index=True)
    return out[np.sort(first)]


def _search_grid(pm: PredictiveModel, held: dict[str, Any], free_num: list[str], free_cat: list[str],
                 grid: int, *, max_points: int = 0, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """The search points of :func:`robust_set_point` as actual settings (every level combination) and their
    coded numeric factors: the lattice (:func:`_lattice_axes`), or, when it has more than ``max_points``
    points (0: :data:`MAX_SEARCH_POINTS`), :func:`search_points`."""
    cap = max_points or MAX_SEARCH_POINTS
    if not free_num:
        num = np.zeros((1, 0))
    elif _lattice_fits(pm, free_num, grid, cap):
        num = np.array(list(itertools.product(*_lattice_axes(pm, free_num, grid))))
    else:
        levels = [np.asarray(pm.study.factor(f).to_coded(pm.study.factor(f).levels), dtype=float)
                  if pm.study.factor(f).kind == "discrete" else None for f in free_num]
        num = search_points(levels, cap, seed)
    cats = list(itertools.product(*[pm.study.factor(f).levels for f in free_cat]))
    rows = len(num) * len(cats)
    data: dict[str, Any] = {f: [v] * rows for f, v in held.items()}
    for j, f in enumerate(free_cat):
        data[f] = np.repeat([c[j] for c in cats], len(num))
    for j, f in enumerate(free_num):
        data[f] = pm.study.factor(f).to_actual(np.tile(num[:, j], len(cats)))
    frame = pd.DataFrame(data, columns=pm.study.factor_names)
    for f in pm.categorical:
        if f not in data:
            frame[f] = pm.study.factor(f).levels[0]
    for f in pm.numeric:
        if f not in data:
            frame[f] = pm.study.factor(f).center
    return frame, np.tile(num, (len(cats), 1))


def _edge_distance(coded: np.ndarray, edge: np.ndarray, keys: np.ndarray, i: int) -> float:
    """Coded distance from grid point i to the nearest point outside the design space (same levels)."""
    if coded.shape[1] == 0:
        return 0.0
    to_range = float(np.min(1.0 - np.abs(coded[i])))
    out = edge & (keys == keys[i])
    if not out.any():
        return to_range
    return min(to_range, float(np.min(np.linalg.norm(coded[out] - coded[i], axis=1))))


def _edge_distances(coded: np.ndarray, edge: np.ndarray, keys: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """:func:`_edge_distance` of every candidate in ``cand`` (the same numbers, computed per level combination)."""
    dist = np.zeros(len(cand))
    if coded.shape[1] == 0 or not len(cand):
        return dist
    to_range = np.min(1.0 - np.abs(coded[cand]), axis=1)
    dist[:] = to_range
    block = max(1, 2_000_000 // max(1, coded.shape[0] * coded.shape[1]))  # bounds the (c x e x d) differences
    for key in np.unique(keys[cand]):
        out = coded[edge & (keys == key)]
        if not len(out):
            continue
        mine = np.flatnonzero(keys[cand] == key)
        for start in range(0, len(mine), block):
            sel = mine[start:start + block]
            diff = out[None, :, :] - coded[cand[sel]][:, None, :]
            near = np.min(np.linalg.norm(diff, axis=2), axis=1)
            dist[sel] = np.minimum(to_range[sel], near)
    return dist


def _pattern_search(pm: PredictiveModel, point: dict[str, Any], free_num: list[str], p0: float, tol: float,
                    threshold: float, opts: dict[str, Any], grid: int,
                    start: float | None = None) -> tuple[dict[str, Any], float]:
    """Compass search of the numeric factors on common random numbers (real improvements only).

    The first step (coded) is ``start``, else one lattice spacing 1 / (grid - 1); it halves down to 1e-3.
    """
    step = start if start is not None else 1.0 / max(grid - 1, 1)
    best = dict(point)
    while free_num and step > 1e-3:
        trials = []
        for f, sign in itertools.product(free_num, (-1, 1)):
            fac = pm.study.factor(f)
            u = float(fac.to_coded(best[f])) + sign * step
            if -1 <= u <= 1:
                trials.append({**best, f: float(fac.to_actual(u))})
        if not trials:
            break
        frame = settings_points(pm, {}, len(trials), **{f: [t[f] for t in trials] for f in pm.study.factor_names})
        p, feas, _ = meets_threshold(pm, frame, threshold, opts)
        p = np.where(feas, p, -1.0)
        k = int(np.argmax(p))
        if p[k] > p0 + tol:
            best, p0 = trials[k], float(p[k])
        else:
            step /= 2
    return best, p0


def _combination_table(frame: pd.DataFrame, free_cat: list[str], score: np.ndarray) -> list[dict[str, Any]]:
    if not free_cat:
        return []
    table = frame[free_cat].assign(probability=score)
    table = table[table["probability"] >= 0]
    best = table.groupby(free_cat, sort=False)["probability"].max().sort_values(ascending=False)
    return [{**dict(zip(free_cat, k if isinstance(k, tuple) else (k,))), "probability": float(v)}
            for k, v in best.items()]


def set_point_report(pm: PredictiveModel, set_point: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD,
                     draws: int | None = None, seed: int = 0,
                     setpoint_sd: dict[str, float] | None = None,
                     assurance: float | None = None) -> dict[str, Any]:
    """Everything about one set point: joint and per-CQA probability, predictions with 95 % PIs.

    Returns
    -------
    dict
        ``settings``, ``coded``, ``probability``, ``per_cqa``, ``inside``
        (probability >= threshold and feasible), ``feasible``, ``predictions``
        (every CQA: ``mean``, ``lower_95pi``, ``upper_95pi`` from
        :meth:`~doe.fit.FittedModel.predict`, ``spec``, ``units``,
        ``mean_in_spec``), ``threshold``, ``draws``, ``mc_se``. With ``assurance`` (gamma) also
        ``assurance`` and ``probability_lower_bound`` (the lower gamma credible bound of P(all in spec
        | parameters), :func:`doe.space.lower_bound`), and ``inside`` means that bound is >= threshold.
    """
    sp = fixed_settings(pm, set_point, [], complete=True)
    gamma = check_assurance_options(assurance, setpoint_sd)
    opts: dict[str, Any] = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    out = _set_point_report(pm, sp, math.nan, threshold, opts, [])
    del out["distance_to_edge"], out["combinations"]
    if gamma is not None:
        lb = lower_bound_at(pm, sp, gamma, draws=draws, seed=seed)
        out.update(assurance=gamma, probability_lower_bound=lb, inside=bool(lb >= threshold and out["feasible"]))
    return out


def _set_point_report(pm: PredictiveModel, point: dict[str, Any], dist: float, threshold: float,
                      opts: dict[str, Any], combos: list[dict[str, Any]]) -> dict[str, Any]:
    frame = settings_frame(pm, point)
    feasible = bool(pm.study.feasible(frame)[0])
    res = probability(pm, frame, **opts)
    predictions = {}
    for c in pm.cqas:
        pred = c.fm.predict(frame, "prediction", 0.95).iloc[0]
        r = pm.study.response(c.name)
        predictions[c.name] = {"mean": float(pred["mean"]), "lower_95pi": float(pred["lower"]),
                               "upper_95pi": float(pred["upper"]), "spec": r.spec_text(),
                               "units": r.units,
                               "mean_in_spec": bool(within(np.array([pred["mean"]]), c.lower, c.upper)[0])}
    n = res.draws
    coded = {f: float(pm.study.factor(f).to_coded(point[f])) for f in pm.numeric}
    return {"settings": {k: plain(v) for k, v in point.items()}, "coded": coded,
            "probability": float(res.joint[0]), "per_cqa": {k: float(v[0]) for k, v in res.per_cqa.items()},
            "inside": bool(res.joint[0] >= threshold and feasible), "feasible": feasible,
            "distance_to_edge": dist, "predictions": predictions,
            "combinations": combos, "threshold": threshold, "draws": n,
            "mc_se": float(math.sqrt(res.joint[0] * (1 - res.joint[0]) / n))}
