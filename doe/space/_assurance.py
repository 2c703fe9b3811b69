"""Assurance: a design space with stated confidence.

The posterior predictive probability of :func:`doe.space.probability` is the posterior *mean* of

    pi(x | theta) = P(a new run at x meets every CQA spec | theta),

theta = (the CQA models' coefficients, the residual covariance Sigma). It is a point
estimate: in many data sets the region where it is >= 0.90 contains settings whose
true probability is below 0.90. With an **assurance level** gamma (e.g. 0.95) the
design space is instead where the posterior probability that pi(x | theta) >=
threshold is at least gamma, i.e. where the lower gamma-credible bound of pi(x | theta)
(the 1 - gamma quantile of its posterior draws) is >= threshold. This is the
"probability of a probability" formulation of Peterson (2004, sec. 5) and Peterson &
Lief (2010); compare the tolerance-interval ("beta-content, gamma-confidence")
approach of Lebrun et al. (2013).

Computation
-----------
The parameter draws are the first :data:`ASSURANCE_DRAWS` posterior draws of the
:class:`~doe.space.PredictiveModel` (its coefficient and covariance draws, the same
ones the point estimate uses). For each draw and each point, pi(x | theta) is the
probability of a rectangle under the normal N(x'beta, Sigma) on the fitted scale:

- one CQA, or CQAs treated as independent: a product of normal CDFs (exact);
- correlated CQAs: first the exact bounds 1 - sum(1 - P_i) <= pi <= min P_i decide most draws
  (or, for the lower bound, show they cannot be the order statistic); for the others, CQAs out of
  spec with probability below :data:`NEGLIGIBLE` are left out, two remaining CQAs get the exact
  bivariate normal CDF (Owen's T function, :func:`bvn`), three or more Genz's separation of
  variables (Genz 1992), the variables ordered least likely in spec first, the first exact and the
  others on :data:`INNER_POINTS` scrambled Sobol points (the same points for every draw and
  setting: common random numbers), kept within the exact bounds. Quasi-Monte Carlo error: RMS
  about 0.001, at most 0.006, against scipy's multivariate normal CDF for random covariances of
  3 to 6 CQAs (tests/test_assurance.py).

The bound is an order statistic of the draws: the value b such that ceil(gamma x draws) of
them have pi(x | theta) >= b (so the stated assurance is never rounded down). "Simultaneous"
assurance (:func:`simultaneous_level`) raises the pointwise level until, with posterior
probability gamma, every point of the region meets the threshold at once.

References
----------
Peterson, J.J. (2004) A posterior predictive approach to multiple response surface
optimization. J. Qual. Technol. 36:139-153.
Peterson, J.J., Lief, K. (2010) The ICH Q8 definition of design space: a comparison of
the overlapping means and the Bayesian predictive approaches. Stat. Biopharm. Res. 2:249-259.
Lebrun, P., Boulanger, B., Debrus, B., Lambert, P., Hubert, P. (2013) A Bayesian design
space for analytical methods based on multivariate models and predictions. J.
Biopharm. Stat. 23:1330-1351.
Genz, A. (1992) Numerical computation of multivariate normal probabilities. J. Comput.
Graph. Stat. 1:141-149.
Owen, D.B. (1956) Tables for computing bivariate normal probabilities. Ann. Math. Stat. 27:1075-1090.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, cast, overload

import numpy as np
import pandas as pd
from scipy import special

from doe.errors import ModelError

from ._kernels import level_groups, monomials
from ._settings import Points, settings_arrays

__all__ = ["ASSURANCE_DRAWS", "INNER_POINTS", "bvn", "check_assurance", "check_assurance_options",
           "conditional_probability", "meets", "simultaneous_level", "assurance_level",
           "describe_assurance", "lower_bound", "parameter_draws"]

#: Parameter draws the lower bound is taken over (the first of the predictive model's draws).
ASSURANCE_DRAWS = 1000
#: Sobol points per parameter draw for correlated CQAs (separation of variables).
INNER_POINTS = 64
#: Points x draws x inner points evaluated at once.
_CHUNK = 2_000_000


@overload
def check_assurance(assurance: None) -> None: ...
@overload
def check_assurance(assurance: float) -> float: ...
def check_assurance(assurance: Any) -> float | None:
    """The assurance level as a float in (0.5, 1), None for none; a clear message otherwise."""
    if assurance is None:
        return None
    try:
        g = float(assurance)
    except (TypeError, ValueError):
        raise ModelError(f"The assurance level must be a number such as 0.95; got {assurance!r}.") from None
    if not (0.5 <= g < 1):
        raise ModelError(f"The assurance level must be at least 0.5 and below 1 (e.g. 0.95); got {g:g}.")
    return g


def describe_assurance(assurance: float | None, threshold: float, kind: str = "pointwise",
                       level: float | None = None, points: int | None = None) -> str:
    """The definition of the region shown, in one sentence."""
    if assurance is None:
        return (f"Design space: posterior predictive probability (a point estimate) that a new run meets every "
                f"spec >= {threshold:g}.")
    g = f"{100 * assurance:g} %"
    if kind == "simultaneous":
        where = f" of the {points:,} points evaluated" if points else ""
        lev = f"; pointwise credible level {level:.3f}" if level is not None else ""
        return (f"Design space with {g} simultaneous assurance: with posterior probability >= {assurance:g}, every "
                f"point of the region{where} at once gives a new run a probability >= {threshold:g} of meeting "
                f"every spec{lev}.")
    return (f"Design space with {g} assurance: settings where, with posterior probability >= {assurance:g}, a new "
            f"run meets every spec with probability >= {threshold:g} (the lower {g} credible bound of that "
            f"probability >= {threshold:g}, point by point).")


def assurance_level(pm: Any, settings: pd.DataFrame, threshold: float, assurance: float, kind: str, *,
                    draws: int | None = None, seed: int = 0) -> float:
    """The pointwise credible level for ``kind``: ``assurance`` itself ("pointwise"), or
    :func:`simultaneous_level` over ``settings`` ("simultaneous")."""
    g = check_assurance(assurance)
    if kind == "pointwise":
        return g
    if kind != "simultaneous":
        raise ModelError(f"The assurance kind must be 'simultaneous' or 'pointwise'; got {kind!r}.")
    return simultaneous_level(pm, settings, threshold, g, draws=draws, seed=seed)


def _theta_count(dr: Any) -> int:
    return cast(int, min(dr.n, ASSURANCE_DRAWS))


def parameter_draws(pm: Any, draws: int | None = None, seed: int = 0) -> int:
    """How many posterior draws of the parameters the bound is taken over (the first of ``pm``'s draws)."""
    return _theta_count(pm.draws(draws, seed))


def conditional_probability(pm: Any, settings: pd.DataFrame, *, draws: int | None = None, seed: int = 0
                            ) -> np.ndarray:
    """pi(x | theta): P(a new run meets every spec | parameters), points x parameter draws.

    Parameters
    ----------
    pm : doe.space.PredictiveModel
    settings : DataFrame
        One row per point, actual units.
    draws, seed
        The predictive model's draw set (as :func:`doe.space.probability`); the
        first :data:`ASSURANCE_DRAWS` of its draws are used.
    """
    return _by_group(pm, settings, draws, seed, "probability", None)


def lower_bound(pm: Any, settings: pd.DataFrame | Points, assurance: float, *, draws: int | None = None,
                seed: int = 0) -> np.ndarray:
    """Lower ``assurance`` credible bound of pi(x | theta) at each row of ``settings``.

    The value b such that ceil(assurance x draws) of the parameter draws have pi(x | theta) >= b
    (an order statistic of the draws): a point is in the design space with this assurance
    exactly when b >= the threshold.

    Computed with bounds first: pi(x | theta) lies between the Bonferroni bound 1 - sum(1 - P_i)
    and the smallest per-CQA probability min P_i (both exact normal CDFs); the order statistic of
    pi lies between the same order statistics of the two bounds, so only the draws whose bounds
    overlap that window need the joint probability (separation of variables).
    """
    g = check_assurance(assurance)
    return _by_group(pm, settings, draws, seed, "bound", g)


def meets(pm: Any, settings: pd.DataFrame, threshold: float, *, draws: int | None = None, seed: int = 0
          ) -> np.ndarray:
    """Whether pi(x | theta) >= ``threshold``, points x parameter draws (boolean).

    The same bounds decide most pairs; only pairs between them need the joint probability.
    """
    return _by_group(pm, settings, draws, seed, "meets", float(threshold))


def simultaneous_level(pm: Any, settings: pd.DataFrame, threshold: float, assurance: float, *,
                       draws: int | None = None, seed: int = 0) -> float:
    """The pointwise level gamma' that makes the design space simultaneous over ``settings``.

    With gamma' the region {x in settings: lower gamma' bound >= threshold} is such that, with
    posterior probability >= ``assurance``, pi(x | theta) >= threshold at EVERY one of its
    points at once (not only at each point separately). Per parameter draw s, c_s is the
    largest share of draws meeting the threshold among the points that draw s fails; the region
    {share > c} is then inside draw s's region exactly when c >= c_s, so c is taken as the
    ``assurance`` quantile of the c_s (a max-statistic simultaneous credible region, as for
    simultaneous credible bands; cf. Krivobokova, Kneib & Claeskens 2010). gamma' = c + 1/draws,
    never below ``assurance``.
    """
    g = check_assurance(assurance)
    ok = meets(pm, settings, threshold, draws=draws, seed=seed)
    n_pts, s = ok.shape
    if not n_pts or not s:
        return g
    count = ok.sum(axis=1)
    worst = np.where(~ok, count[:, None], -1).max(axis=0)  # per draw: count of its worst failing point
    k = _needed(s, g) - 1
    c = int(np.sort(worst)[k])  # the region {count > c} is inside >= ceil(g s) draws' regions
    return cast(float, max(g, min(1.0 - 1e-12, (c + 1) / s)))


def _needed(s: int, assurance: float) -> int:
    """Draws that must meet the threshold for a point to be assured: ceil(assurance x draws)."""
    return math.ceil(assurance * s - 1e-9)


def _by_group(pm: Any, settings: pd.DataFrame | Points, draws: int | None, seed: int, mode: str, value: float | None
              ) -> np.ndarray:
    """Per categorical combination: see :func:`_group`."""
    U, L = settings_arrays(pm, settings)
    dr = pm.draws(draws, seed)
    s = _theta_count(dr)
    empty: dict[str, Callable[[], np.ndarray]] = {
        "probability": lambda: np.ones((len(U), s)), "bound": lambda: np.ones(len(U)),
        "meets": lambda: np.ones((len(U), s), dtype=bool)}
    out = empty[mode]()
    if not pm.spec_cqas or not len(U):
        return out
    sizes = [len(pm.study.factor(f).levels) for f in pm.categorical]
    for combo, rows in level_groups(L):
        out[rows] = _group(pm, dr, combo, sizes, U[rows], s, mode, value)
    return out


def _group(pm: Any, dr: Any, combo: tuple[int, ...], sizes: list[int], U: np.ndarray, s: int, mode: str,
           value: float | None) -> np.ndarray:
    """At points of one categorical combination: pi(x | theta) (points x draws, mode "probability"),
    its lower ``value`` credible bound (points, "bound") or whether it is >= ``value`` (points x
    draws, "meets")."""
    M = monomials(U, pm.exponents)
    chol = dr.chol[:s]
    sd = np.sqrt(np.einsum("nij,nij->in", chol, chol))  # m x draws
    mus, fail = [], []
    for i, c in enumerate(pm.spec_cqas):
        A = c.basis_map(combo, sizes)
        mu = M[:, c.basis].astype(np.float32) @ (A.T @ dr.coef[i][:, :s]).astype(np.float32)  # fitted scale
        mus.append(mu)
        fail.append(_outside(c.zl, c.zu, mu, sd[i].astype(np.float32)))
    limits = [(c.zl, c.zu) for c in pm.spec_cqas]
    if len(fail) == 1 or not pm.correlated:  # exact: independent given the parameters
        prob = np.prod([1.0 - q for q in fail], axis=0)
        if mode == "probability":
            return cast(np.ndarray, prob)
        assert value is not None  # "meets" and "bound" have a value
        if mode == "meets":
            return cast(np.ndarray, prob >= value)
        k = s - _needed(s, value)
        return np.partition(prob, k, axis=1)[:, k]
    upper = 1.0 - np.max(fail, axis=0)
    bonferroni = np.clip(1.0 - np.sum(fail, axis=0), 0.0, 1.0)

    def joint(pts: np.ndarray, draw: np.ndarray) -> np.ndarray:  # kept within the exact bounds
        return cast(np.ndarray, np.clip(_joint(limits, mus, fail, chol, pts, draw), bonferroni[pts, draw], upper[pts, draw]))

    if mode == "probability":
        pts, draw = np.divmod(np.arange(len(U) * s), s)
        return joint(pts, draw).reshape(len(U), s)
    assert value is not None  # "meets" and "bound" have a value
    if mode == "meets":
        ok = bonferroni >= value
        pts, draw = np.nonzero((upper >= value) & ~ok)
        ok[pts, draw] = joint(pts, draw) >= value
        return cast(np.ndarray, ok)
    k = s - _needed(s, value)  # 0-based order statistic
    k_lo = np.partition(bonferroni, k, axis=1)[:, k:k + 1]
    k_hi = np.partition(upper, k, axis=1)[:, k:k + 1]
    below = (upper < k_lo).sum(axis=1)  # draws surely below the order statistic
    window = (upper >= k_lo) & (bonferroni <= k_hi)  # draws that may be it: evaluate exactly
    pts, draw = np.nonzero(window)
    exact = joint(pts, draw)
    out = np.empty(len(U))
    starts = np.searchsorted(pts, np.arange(len(U) + 1))
    for r in range(len(U)):
        vals = exact[starts[r]:starts[r + 1]]
        j = k - below[r]
        out[r] = np.partition(vals, j)[j]
    return out


def _outside(zl: float, zu: float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(a new run is outside [zl, zu] | parameters) for one CQA, points x draws (in-place arithmetic)."""
    inv = 1.0 / sd
    if zl > -math.inf:
        q = np.subtract(mu.dtype.type(zl), mu)
        q *= inv
        special.ndtr(q, out=q)
        if zu < math.inf:
            z = np.subtract(mu, mu.dtype.type(zu))
            z *= inv
            q += special.ndtr(z, out=z)
            np.minimum(q, 1.0, out=q)
        return cast(np.ndarray, q)
    if zu < math.inf:
        q = np.subtract(mu, mu.dtype.type(zu))
        q *= inv
        return cast(np.ndarray, special.ndtr(q, out=q))
    return np.zeros_like(mu)


#: A CQA whose probability of being out of spec at a (point, draw) is below this is left out of that pair's
#: joint probability (changing it by less than m x this), so the separation of variables runs over fewer variables.
NEGLIGIBLE = 1e-9


def _joint(limits: list[tuple[float, float]], mus: list[np.ndarray], fail: list[np.ndarray], chol: np.ndarray,
           pts: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """pi at the (point, draw) pairs given, by separation of variables with the CQAs of each pair in
    its own order, the least likely to be in spec first (Genz 1992's variable ordering: the first,
    exact, variable then carries most of the answer and the quasi-Monte Carlo error stays small).
    CQAs out of spec with probability below :data:`NEGLIGIBLE` are left out; with one CQA left the
    probability is its exact normal CDF."""
    out = np.empty(len(pts))
    if not len(pts):
        return out
    q = np.stack([f[pts, draw] for f in fail], axis=1)
    m = q.shape[1]
    order = np.argsort(-q, axis=1, kind="stable")
    active = np.maximum(1, (q > NEGLIGIBLE).sum(axis=1))
    digits = np.where(np.arange(m)[None, :] < active[:, None], order, m)  # the active CQAs in order, then m
    code = digits.astype(np.int64) @ (m + 1) ** np.arange(m - 1, -1, -1, dtype=np.int64)
    by_code = np.argsort(code, kind="stable")
    bounds = np.flatnonzero(np.diff(code[by_code])) + 1
    cov_all = chol @ np.swapaxes(chol, 1, 2)  # per draw
    for sel in np.split(by_code, bounds):
        perm = digits[sel[0]][digits[sel[0]] < m]
        if len(perm) == 1:
            out[sel] = 1.0 - q[sel, perm[0]]
            continue
        p, d = pts[sel], draw[sel]
        mu = [mus[i][p, d] for i in perm]
        lo = [limits[i][0] - v for i, v in zip(perm, mu)]
        hi = [limits[i][1] - v for i, v in zip(perm, mu)]
        if len(perm) == 2:  # exact: the bivariate normal CDF (Owen's T)
            i, k = perm
            s1, s2 = np.sqrt(cov_all[d, i, i]), np.sqrt(cov_all[d, k, k])
            out[sel] = _rectangle2(lo[0] / s1, hi[0] / s1, lo[1] / s2, hi[1] / s2, cov_all[d, i, k] / (s1 * s2))
            continue
        sub = cov_all[:, perm][:, :, perm]
        out[sel] = _sov(lo, hi, np.linalg.cholesky(sub)[d])
    return out


def bvn(h: np.ndarray, k: np.ndarray, r: np.ndarray) -> np.ndarray:
    """P(X <= h, Y <= k) for a standard bivariate normal with correlation r (elementwise, infinite limits allowed).

    Owen (1956): Phi2(h, k; r) = Phi(h)/2 + Phi(k)/2 - T(h, (k - r h)/(h s)) - T(k, (h - r k)/(k s)) - beta,
    s = sqrt(1 - r^2), beta = 0 if h k > 0 else 1/2 (h or k of 0 nudged to 1e-12); T is Owen's T function.
    """
    h, k, r = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float), np.asarray(r, float))
    out = np.zeros(h.shape)
    none = np.isneginf(h) | np.isneginf(k)
    h_inf, k_inf = np.isposinf(h) & ~none, np.isposinf(k) & ~none
    out[h_inf] = special.ndtr(k[h_inf])
    only_k = k_inf & ~h_inf
    out[only_k] = special.ndtr(h[only_k])
    f = ~(none | h_inf | k_inf)
    hf = np.where(np.abs(h[f]) < 1e-12, 1e-12, h[f])
    kf = np.where(np.abs(k[f]) < 1e-12, 1e-12, k[f])
    rf = np.clip(r[f], -1 + 1e-12, 1 - 1e-12)
    s = np.sqrt(1.0 - rf ** 2)
    beta = np.where(hf * kf > 0, 0.0, 0.5)
    out[f] = (0.5 * special.ndtr(hf) + 0.5 * special.ndtr(kf) - special.owens_t(hf, (kf - rf * hf) / (hf * s))
              - special.owens_t(kf, (hf - rf * kf) / (kf * s)) - beta)
    return np.clip(out, 0.0, 1.0)


def _rectangle2(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray, r: np.ndarray) -> np.ndarray:
    """P(a1 <= X <= b1, a2 <= Y <= b2), standard bivariate normal with correlation r (inclusion-exclusion)."""
    out = bvn(b1, b2, r)
    low1, low2 = np.isfinite(a1), np.isfinite(a2)
    if low1.any():
        out -= np.where(low1, bvn(np.where(low1, a1, 0.0), b2, r), 0.0)
    if low2.any():
        out -= np.where(low2, bvn(b1, np.where(low2, a2, 0.0), r), 0.0)
    both = low1 & low2
    if both.any():
        out += np.where(both, bvn(np.where(both, a1, 0.0), np.where(both, a2, 0.0), r), 0.0)
    return cast(np.ndarray, np.clip(out, 0.0, 1.0))


def _interval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Phi(b) - Phi(a), accurate in both tails (one CDF when a side is unbounded)."""
    if np.all(np.isneginf(a)):
        return cast(np.ndarray, special.ndtr(b))
    if np.all(np.isposinf(b)):
        return cast(np.ndarray, special.ndtr(-a))
    with np.errstate(invalid="ignore"):
        upper = special.ndtr(b) - special.ndtr(a)
        lower = special.ndtr(-a) - special.ndtr(-b)
    return cast(np.ndarray, np.clip(np.where(a > 0, lower, upper), 0.0, 1.0))


@functools.lru_cache(maxsize=16)
def _sobol(m: int) -> np.ndarray:
    from scipy.stats import qmc

    return cast(np.ndarray, qmc.Sobol(d=max(m - 1, 1), scramble=True, seed=20261206).random(INNER_POINTS))


def _sov(lo: list[np.ndarray], hi: list[np.ndarray], chol: np.ndarray) -> np.ndarray:
    """P(lo <= z <= hi), z ~ N(0, C C'), per element (Genz 1992 separation of variables).

    ``lo``, ``hi``: per CQA, arrays of N limits; ``chol``: N x m x m lower Cholesky factors.
    """
    m = len(lo)
    n = len(lo[0])
    w = _sobol(m)
    k = len(w)
    out = np.empty(n)
    step = max(1, _CHUNK // k)
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        C = chol[sl]
        a0, b0 = lo[0][sl] / C[:, 0, 0], hi[0][sl] / C[:, 0, 0]
        f = np.repeat(_interval(a0, b0)[:, None], k, axis=1)
        d, e = special.ndtr(a0)[:, None], special.ndtr(b0)[:, None]
        ys = []
        for i in range(1, m):
            u = np.clip(d + w[:, i - 1] * (e - d), 1e-15, 1 - 1e-15)
            ys.append(special.ndtri(u))
            shift = sum(C[:, i, j][:, None] * ys[j] for j in range(i))
            a = (lo[i][sl][:, None] - shift) / C[:, i, i][:, None]
            b = (hi[i][sl][:, None] - shift) / C[:, i, i][:, None]
            f *= _interval(a, b)
            if i < m - 1:
                d, e = special.ndtr(a), special.ndtr(b)
        out[sl] = f.mean(axis=1)
    return out


def check_assurance_options(assurance: Any, setpoint_sd: dict[str, float] | None) -> float | None:
    """The checked assurance level (:func:`check_assurance`); refused with set-point variation."""
    g = check_assurance(assurance)
    if g is not None and setpoint_sd and any(float(v or 0) > 0 for v in setpoint_sd.values()):
        raise ModelError("An assurance level and set-point variation cannot be combined: the assured design "
                         "space is computed for settings held exactly. Remove one of them.")
    return cast(float | None, g)
