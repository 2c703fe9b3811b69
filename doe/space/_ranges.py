"""Ranges around a set point: proven acceptable ranges (PAR), normal operating ranges (NOR).

:func:`meets_threshold` is the decision every range and the pattern search use: the posterior
predictive probability at the threshold, or, with an assurance level, its lower credible bound
(:func:`lower_bound_at` at one point).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy.stats import qmc

from doe.decision import DEFAULT_THRESHOLD
from doe.errors import ModelError
from doe.jsonable import json_ready
from doe.study import Factor

from . import _assurance
from ._assurance import check_assurance_options
from ._kernels import joint_probability
from ._posterior import PredictiveModel
from ._settings import (
    Points,
    factor_range,
    feasible_at,
    fixed_settings,
    numeric_factor,
    settings_frame,
    settings_points,
)

__all__ = ["MAX_NOR_POINTS", "PARResult", "box_points", "check_nor", "lower_bound_at", "meets_threshold",
           "proven_acceptable_ranges"]

#: Most points a NOR box is checked at (:func:`box_points`): a larger ``points``-per-factor grid is sampled.
MAX_NOR_POINTS = 20_000

def meets_threshold(pm: PredictiveModel, frame: pd.DataFrame | Points, threshold: float, opts: dict[str, Any]
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, feasible, ok) at the rows of ``frame``.

    ``opts['assurance']`` (optional): ok is then the assured decision (:func:`doe.space.lower_bound`); the
    probability returned is still the posterior predictive probability.
    """
    opts = dict(opts)
    gamma = opts.pop("assurance", None)
    p = joint_probability(pm, frame, **opts)
    feas = feasible_at(pm, frame)
    if gamma is None:
        return p, feas, (p >= threshold) & feas
    bound = _assurance.lower_bound(pm, frame, gamma, draws=opts.get("draws"), seed=opts.get("seed", 0))
    return p, feas, (bound >= threshold) & feas


# -- proven acceptable ranges ----------------------------------------------------------------------
class PARResult(dict[str, Any]):
    """Proven acceptable ranges: factor -> (low, high) for numeric factors, [levels] for categorical.

    Extra attributes: ``set_point``, ``probability`` (at the set point),
    ``threshold``, ``limited_by`` (factor -> (low end, high end) reasons:
    'study range', 'probability' or 'constraint'), ``end_probability``
    (factor -> probability at each end), ``reason`` (why the PAR is empty, else
    None), ``draws``, ``mc_se``. Empty when the set point itself is not in the
    design space.
    """

    def __init__(self, ranges: dict[str, Any], **info: Any):
        super().__init__(ranges)
        self.set_point: dict[str, Any] = info.get("set_point", {})
        self.probability: float = info.get("probability", math.nan)
        self.threshold: float = info.get("threshold", math.nan)
        self.limited_by: dict[str, tuple[str, str]] = info.get("limited_by", {})
        self.end_probability: dict[str, tuple[float, float]] = info.get("end_probability", {})
        self.reason: str | None = info.get("reason")
        self.draws: int = info.get("draws", 0)
        self.mc_se: float = info.get("mc_se", math.nan)
        self.assurance: float | None = info.get("assurance")
        self.lower_bound: float | None = info.get("lower_bound")

    def to_json(self) -> dict[str, Any]:
        out = {"ranges": {k: list(v) for k, v in self.items()}, "limited_by": self.limited_by,
               "end_probability": self.end_probability, "set_point": self.set_point,
               "probability_at_set_point": self.probability, "threshold": self.threshold,
               "reason": self.reason, "draws": self.draws, "mc_se": self.mc_se}
        if self.assurance is not None:
            out.update(assurance=self.assurance, probability_lower_bound_at_set_point=self.lower_bound)
        return cast(dict[str, Any], json_ready(out))


def proven_acceptable_ranges(pm: PredictiveModel, set_point: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD,
                             draws: int | None = None, seed: int = 0,
                             setpoint_sd: dict[str, float] | None = None, n: int = 201,
                             assurance: float | None = None) -> PARResult:
    """Proven acceptable ranges (ICH Q8(R2)): one factor at a time, the others at the set point.

    For each continuous factor, the interval containing the set point where the
    joint probability stays >= ``threshold`` at feasible settings: a scan of
    ``n`` points over the study range, ends refined by repeated 16-fold
    subdivision on the same draws (resolution below 1e-5 of the range). An
    end at the study range is reported as limited by it: a PAR never
    extrapolates. For each categorical or discrete factor, the tested levels
    that keep the probability >= threshold. A PAR is one-factor-at-a-time: the design
    space is not the box of the PARs. With ``assurance`` (gamma), "in the design space" means the
    lower gamma credible bound of P(all in spec | parameters) is >= threshold (:func:`doe.space.lower_bound`);
    the probabilities reported stay the posterior predictive ones, and ``lower_bound`` is the bound
    at the set point.

    Returns
    -------
    PARResult
        A dict factor -> (low, high) or [levels], with ``limited_by``,
        ``end_probability``, ``probability`` at the set point and ``reason``.
    """
    sp = fixed_settings(pm, set_point, [], complete=True)
    gamma = check_assurance_options(assurance, setpoint_sd)
    opts: dict[str, Any] = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    if gamma is not None:
        opts["assurance"] = gamma
    p0, feas0, ok0 = meets_threshold(pm, settings_points(pm, sp), threshold, opts)
    dr = pm.draws(draws, seed)
    info = {"set_point": sp, "probability": float(p0[0]), "threshold": threshold, "draws": dr.n,
            "mc_se": float(math.sqrt(p0[0] * (1 - p0[0]) / dr.n)), "assurance": gamma}
    if gamma is not None:
        info["lower_bound"] = lower_bound_at(pm, sp, gamma, draws=draws, seed=seed)
    if not feas0[0]:
        return PARResult({}, reason="The set point violates a study constraint.", **info)
    if gamma is not None and not ok0[0]:
        return PARResult({}, reason=f"The set point is not in the design space with {100 * gamma:g} % assurance: "
                                    f"the lower {100 * gamma:g} % credible bound of its probability is "
                                    f"{info['lower_bound']:.3f} < {threshold:g}, so there is no proven acceptable "
                                    "range.", **info)
    if gamma is None and p0[0] < threshold:
        return PARResult({}, reason=f"The set point is not in the design space: P = {p0[0]:.3f} < "
                                    f"{threshold:g}, so there is no proven acceptable range.", **info)
    ranges: dict[str, Any] = {}
    limited: dict[str, tuple[str, str]] = {}
    ends: dict[str, tuple[float, float]] = {}
    for f in pm.study.factors:
        if f.is_categorical or f.kind == "discrete":  # tested levels only: no values in between
            frame = settings_points(pm, sp, len(f.levels), **{f.name: list(f.levels)})
            _, _, ok = meets_threshold(pm, frame, threshold, opts)
            ranges[f.name] = [lv for lv, good in zip(f.levels, ok) if good]
            continue
        ranges[f.name], limited[f.name], ends[f.name] = _par_numeric(pm, sp, f, threshold, opts, n)
    return PARResult(ranges, limited_by=limited, end_probability=ends, **info)


def lower_bound_at(pm: PredictiveModel, set_point: Mapping[str, Any], assurance: float, *,
                   draws: int | None = None, seed: int = 0) -> float:
    """The lower ``assurance`` credible bound of P(all CQAs in spec | parameters) at one set point
    (:func:`doe.space.lower_bound`)."""
    sp = fixed_settings(pm, set_point, [], complete=True)
    return float(_assurance.lower_bound(pm, settings_frame(pm, sp), assurance, draws=draws, seed=seed)[0])



def _par_numeric(pm: PredictiveModel, sp: dict[str, Any], f: Factor, threshold: float,
                 opts: dict[str, Any], n: int) -> tuple[tuple[float, float], tuple[str, str], tuple[float, float]]:
    grid = np.union1d(np.linspace(*factor_range(f), max(n, 3)), [sp[f.name]])
    p, feas, ok = meets_threshold(pm, settings_points(pm, sp, len(grid), **{f.name: grid}), threshold, opts)
    i0 = int(np.searchsorted(grid, sp[f.name]))
    lo_i, hi_i = i0, i0
    while lo_i > 0 and ok[lo_i - 1]:
        lo_i -= 1
    while hi_i < len(grid) - 1 and ok[hi_i + 1]:
        hi_i += 1
    out, why, prob = [], [], []
    for i, step in ((lo_i, -1), (hi_i, 1)):
        j = i + step
        if j < 0 or j >= len(grid):
            out.append(float(grid[i]))
            why.append("study range")
            prob.append(float(p[i]))
            continue
        x, px, fail_feasible = _refine_end(pm, sp, f, grid[i], grid[j], threshold, opts)
        out.append(x)
        why.append("probability" if fail_feasible else "constraint")
        prob.append(px)
    return (out[0], out[1]), (why[0], why[1]), (prob[0], prob[1])


def _refine_end(pm: PredictiveModel, sp: dict[str, Any], f: Factor, good: float, bad: float,
                threshold: float, opts: dict[str, Any], rounds: int = 4) -> tuple[float, float, bool]:
    """Last acceptable value between ``good`` and ``bad`` (16-fold subdivision per round, same draws)."""
    p_good = math.nan
    bad_feasible = True
    for _ in range(rounds):
        xs = np.linspace(good, bad, 17)
        p, feas, ok = meets_threshold(pm, settings_points(pm, sp, len(xs), **{f.name: xs}), threshold, opts)
        k = max(int(np.argmin(ok)), 1) if not ok.all() else len(xs) - 1
        good, bad, p_good, bad_feasible = xs[k - 1], xs[k], float(p[k - 1]), bool(feas[k])
    return float(good), p_good, bad_feasible


# -- normal operating ranges ----------------------------------------------------------------------
def check_nor(pm: PredictiveModel, set_point: Mapping[str, Any], nor: Mapping[str, tuple[float, float]], *,
              threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
              setpoint_sd: dict[str, float] | None = None, points: int = 5,
              assurance: float | None = None) -> dict[str, Any]:
    """Whether a normal operating range (a box of numeric factors) lies inside the design space.

    The box is evaluated on a ``points``-per-factor grid including its corners
    (above :data:`MAX_NOR_POINTS` grid points, e.g. 7 or more factors at 5 points,
    on the bounded sample of :func:`box_points`: lines, corners and a Sobol sample),
    the other factors at the set point; every grid point must be feasible,
    within the tested ranges and have joint probability >= ``threshold``. If it
    does not, the largest box with the same relative shrink of every range
    towards the set point (towards the box centre when the set point is outside
    the box) that passes is found by bisection.

    Returns
    -------
    dict
        ``inside``, ``min_probability`` and ``where`` (the worst grid point),
        ``failing_points``, ``n_points``, ``threshold``, ``draws``,
        ``largest_box`` (factor -> (low, high); the NOR itself when inside, None
        when even the centre fails) with ``shrink`` (its share of each range),
        and ``message`` (the verdict in one or two sentences).
    """
    sp = fixed_settings(pm, set_point, [], complete=True)
    box = _check_box(pm, nor)
    centre = {f: (sp[f] if lo <= sp[f] <= hi else (lo + hi) / 2) for f, (lo, hi) in box.items()}
    opts: dict[str, Any] = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    gamma = check_assurance_options(assurance, setpoint_sd)
    if gamma is not None:  # every grid point must be in the assured design space
        opts["assurance"] = gamma
    full = _box_eval(pm, sp, box, centre, 1.0, threshold, opts, points)
    out = {"inside": full["ok"], "min_probability": full["min"], "where": full["where"],
           "failing_points": full["failing"], "n_points": full["n"], "threshold": threshold,
           "draws": pm.draws(draws, seed).n, "nor": {f: tuple(v) for f, v in box.items()}}
    if full["ok"]:
        return {**out, "largest_box": out["nor"], "shrink": 1.0, "box_min_probability": full["min"],
                "message": (f"The NOR lies inside the design space: the lowest probability on its "
                            f"{full['n']}-point grid is {full['min']:.3f} >= {threshold:g}." if gamma is None else
                            f"The NOR lies inside the design space with assurance: at every point of its "
                            f"{full['n']}-point grid the lower credible bound of the probability is >= {threshold:g} "
                            f"(lowest point-estimate probability {full['min']:.3f}).")}
    lo_s, hi_s, best = 0.0, 1.0, None
    if _box_eval(pm, sp, box, centre, 0.0, threshold, opts, points)["ok"]:
        for _ in range(14):
            mid = (lo_s + hi_s) / 2
            res = _box_eval(pm, sp, box, centre, mid, threshold, opts, points)
            lo_s, hi_s = (mid, hi_s) if res["ok"] else (lo_s, mid)
            best = res if res["ok"] else best
    where = ", ".join(f"{f} = {v:.4g}" for f, v in full["where"].items())
    fail = "fail" if gamma is None else "have a lower credible bound below the threshold"
    head = (f"The NOR is not inside the design space: {full['failing']} of its {full['n']} grid points {fail} "
            f"(lowest {'' if gamma is None else 'point-estimate '}probability {full['min']:.3f} at {where}).")
    if best is None:
        return {**out, "largest_box": None, "shrink": 0.0, "box_min_probability": math.nan,
                "message": head + " Even its centre is not in the design space."}
    box_text = "; ".join(f"{f} {lo:.4g} to {hi:.4g}" for f, (lo, hi) in best["box"].items())
    return {**out, "largest_box": best["box"], "shrink": lo_s, "box_min_probability": best["min"],
            "message": head + f" The largest box shrunk evenly towards the centre that passes is {box_text} "
                              f"({100 * lo_s:.0f} % of each range)."}


def box_points(axes: list[np.ndarray], max_points: int, seed: int = 0) -> np.ndarray:
    """The settings a NOR box is checked at (rows; one column per axis): the full grid of ``axes`` when it
    has at most ``max_points`` points, else at most ``max_points`` points that still cover the box.

    Above the cap (e.g. 5 points per factor for 7 or more factors: 5^7 = 78,125) the rows are the
    one-factor lines through the box centre (each axis's values, the others at the middle of their
    range), the box's corners (every corner while 2^d fits in half of ``max_points``, else 2^m corners
    chosen by the signs of a scrambled Sobol sample, ``seed``) and a scrambled Sobol sample of the box
    filling the rest: the number of rows is bounded, never exponential in the number of factors.
    """
    sizes = [len(a) for a in axes]
    total = 1
    for size in sizes:
        total *= size
        if total > max_points:
            break
    else:
        return np.array(list(itertools.product(*axes)), dtype=float).reshape(-1, len(axes))
    d = len(axes)
    low = np.array([a.min() for a in axes])
    high = np.array([a.max() for a in axes])
    mid = (low + high) / 2
    lines = [np.tile(mid, (len(a), 1)) for a in axes]
    for j, a in enumerate(axes):
        lines[j][:, j] = a
    rows = [mid[None, :], *lines]
    room = max(0, max_points - sum(len(r) for r in rows))
    rng = np.random.default_rng(seed)
    if room >= 2 and d <= 62 and 2 ** d <= room // 2:
        signs = np.array(list(itertools.product((0.0, 1.0), repeat=d)))
    elif room >= 2:
        signs = (qmc.Sobol(d, scramble=True, seed=rng).random_base2(int(math.log2(room // 2))) >= 0.5) * 1.0
    else:
        signs = np.zeros((0, d))
    rows.append(low + signs * (high - low))
    room -= len(signs)
    if room >= 1:
        u = qmc.Sobol(d, scramble=True, seed=rng).random_base2(int(math.log2(room)))
        rows.append(low + u * (high - low))
    return np.vstack(rows)[:max_points]


def _check_box(pm: PredictiveModel, nor: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    if not nor:
        raise ModelError("Give the normal operating range of at least one numeric factor.")
    box = {}
    for name, rng in nor.items():
        f = numeric_factor(pm, name)
        lo, hi = (float(v) for v in rng)
        if not lo <= hi:
            raise ModelError(f"NOR of {f.name}: low ({lo:g}) must not exceed high ({hi:g}).")
        box[name] = (lo, hi)
    return box


def _box_eval(pm: PredictiveModel, sp: dict[str, Any], box: dict[str, tuple[float, float]],
              centre: dict[str, float], s: float, threshold: float, opts: dict[str, Any],
              points: int) -> dict[str, Any]:
    shrunk = {f: (centre[f] - s * (centre[f] - lo), centre[f] + s * (hi - centre[f])) for f, (lo, hi) in box.items()}
    axes = [np.linspace(lo, hi, points) for lo, hi in shrunk.values()]
    combos = box_points(axes, MAX_NOR_POINTS)
    frame = settings_frame(pm, sp, len(combos), **{f: combos[:, i] for i, f in enumerate(shrunk)})
    p, feas, ok = meets_threshold(pm, frame, threshold, opts)
    tested = np.ones(len(frame), dtype=bool)
    for f in shrunk:
        low, high = factor_range(pm.study.factor(f))
        tested &= (frame[f] >= low - 1e-9).to_numpy() & (frame[f] <= high + 1e-9).to_numpy()
    ok &= tested
    worst = int(np.argmin(np.where(feas & tested, p, -1.0)))
    return {"ok": bool(ok.all()), "min": float(np.min(np.where(feas & tested, p, 0.0))),
            "where": {f: float(frame[f].iloc[worst]) for f in shrunk}, "failing": int((~ok).sum()),
            "n": len(frame), "box": shrunk}
