"""The probability kernels: the posterior predictive probability at settings, from the cached draws.

:func:`probability` (and :func:`joint_probability`, the joint only) evaluate the draws of a
:class:`~doe.space.PredictiveModel` per level combination (:func:`level_groups`) on the monomial
basis (:func:`monomials`), counting draws in spec per CQA and jointly (:func:`count_in_spec`,
word-wise: :func:`row_counts`). :func:`closed_form_probability` is the one-CQA Student-t answer,
:func:`tolerance_factor` and :func:`interval_bounds` the interval overlays of a map.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import special, stats

from doe.errors import ModelError, quoted_list
from doe.fit import FittedModel, complete_settings

from ._posterior import CQAModel, Draws, PredictiveModel, decreasing, fitted_limits, setpoint_normals
from ._settings import Points, settings_arrays

__all__ = ["CHUNK_ELEMENTS", "INTERVAL_KINDS", "ProbabilityResult", "closed_form_probability", "count_in_spec",
           "count_width", "group_margins", "interval_bounds", "interval_spec", "joint_probability", "level_groups",
           "monomials", "probability", "row_counts", "shift_draws", "tolerance_factor", "within"]

#: Grid points x draws evaluated at once (float32 buffers of ~1.6 MB stay in cache).
CHUNK_ELEMENTS = 400_000
INTERVAL_KINDS = ("confidence", "prediction", "tolerance")


def monomials(U: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """Monomials m_k(u) = prod_f u_f^e_kf (points x K)."""
    M = np.ones((U.shape[0], len(exps)))
    for f in range(exps.shape[1]):
        for p in range(1, int(exps[:, f].max(initial=0)) + 1):
            M[:, exps[:, f] == p] *= (U[:, f] ** p)[:, None]
    return M


def _shift_matrix(exps: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """T (n x K x K) with m_k(u + eta) = sum_j T[k, j] m_j(u) (binomial expansion per draw)."""
    K = len(exps)
    T = np.zeros((eta.shape[1], K, K))
    for k, j in itertools.product(range(K), range(K)):
        diff = exps[k] - exps[j]
        if np.any(diff < 0):
            continue
        const = math.prod(math.comb(int(a), int(b)) for a, b in zip(exps[k], exps[j]))
        col = np.full(eta.shape[1], float(const))
        for f in np.flatnonzero(diff):
            col *= eta[f] ** diff[f]
        T[:, k, j] = col
    return T


# -- evaluation -------------------------------------------------------------------------------------
@dataclass
class ProbabilityResult:
    """Posterior predictive probabilities at a set of points.

    ``joint``: P(every CQA with a spec in spec) per point; ``per_cqa``: P(this
    CQA in spec); ``mean``: the prediction on the original scale for every
    CQA (back-transformed fitted-scale mean, i.e. the median for a
    transformed CQA, as :meth:`~doe.fit.FittedModel.predict`); ``draws``:
    Monte Carlo draws; ``mc_se``: the largest Monte Carlo standard error
    sqrt(p (1 - p) / draws) of the joint probabilities.
    """

    joint: np.ndarray
    per_cqa: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    draws: int
    mc_se: float
    seed: int = 0
    setpoint_sd: dict[str, float] | None = None


def probability(pm: PredictiveModel, settings: pd.DataFrame, *, draws: int | None = None, seed: int = 0,
                setpoint_sd: dict[str, float] | None = None) -> ProbabilityResult:
    """Posterior predictive probability that a new run meets every CQA spec, at each row of ``settings``.

    Parameters
    ----------
    pm : PredictiveModel
        From :func:`build_predictive`.
    settings : DataFrame
        One row per point, one column per factor, actual units (level names for
        categorical factors).
    draws : int, optional
        Monte Carlo draws (default :data:`DEFAULT_DRAWS` = 4000: standard error <= 0.008).
    seed : int
        Seed of the draws; the same (seed, draws) reuse the cached draws.
    setpoint_sd : dict, optional
        Set-point variation: factor -> SD in actual units. Each draw moves every
        point by an independent normal deviation per factor (the same deviation
        at every point: common random numbers), so a point near an edge loses
        probability.

    Returns
    -------
    ProbabilityResult

    Notes
    -----
    Peterson (2004) J. Qual. Technol. 36:139; Peterson & Lief (2010) Stat.
    Biopharm. Res. 2:249. See the module notes for the draws.
    """
    U, L = settings_arrays(pm, settings)
    dr = pm.draws(draws, seed)
    shift = shift_draws(pm, dr, setpoint_sd)
    joint, per, mean = _evaluate(pm, dr, U, L, shift)
    se = float(np.sqrt(np.max(joint * (1 - joint), initial=0.0) / dr.n))
    sd = None if not setpoint_sd else dict(setpoint_sd)
    return ProbabilityResult(joint, per, mean, dr.n, se, int(seed), sd)


def joint_probability(pm: PredictiveModel, settings: pd.DataFrame | Points, *, draws: int | None = None,
                       seed: int = 0, setpoint_sd: dict[str, float] | None = None) -> np.ndarray:
    """``probability(...).joint`` without the per-CQA shares and means (the same numbers, faster)."""
    U, L = settings_arrays(pm, settings)
    dr = pm.draws(draws, seed)
    shift = shift_draws(pm, dr, setpoint_sd)
    return _evaluate(pm, dr, U, L, shift, joint_only=True)[0]


def _evaluate(pm: PredictiveModel, dr: Draws, U: np.ndarray, L: np.ndarray, shift: np.ndarray | None,
              joint_only: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    n = len(U)
    joint = np.zeros(n)
    per = {} if joint_only else {c.name: np.zeros(n) for c in pm.spec_cqas}
    mean = {} if joint_only else {c.name: np.zeros(n) for c in pm.cqas}
    for combo, rows in level_groups(L):
        j, p, mu = _evaluate_group(pm, dr, combo, U[rows], shift, joint_only)
        joint[rows] = j
        for name in per:
            per[name][rows] = p[name]
        for name in mean:
            mean[name][rows] = mu[name]
    return joint, per, mean


def level_groups(L: np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    if L.shape[1] == 0:
        return [((), np.arange(len(L)))]
    radix = L.max(axis=0, initial=0) + 1
    if float(np.prod(radix.astype(float))) >= 2.0 ** 62:  # too many levels for one integer key
        combos, inverse = np.unique(L, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        return [(tuple(int(v) for v in c), np.flatnonzero(inverse == i)) for i, c in enumerate(combos)]
    weight = np.cumprod(np.r_[radix[1:], 1][::-1])[::-1]  # mixed radix, first column most significant
    code = L.astype(np.int64) @ weight.astype(np.int64) if len(L) else np.zeros(0, dtype=np.int64)
    if len(code) and np.all(code == code[0]):
        return [(tuple(int(v) for v in L[0]), np.arange(len(L)))]
    order = np.argsort(code, kind="stable")
    keys, starts = np.unique(code[order], return_index=True)
    bounds = np.r_[starts, len(order)]
    return [(tuple(int(v) for v in L[order[bounds[i]]]), np.sort(order[bounds[i]:bounds[i + 1]]))
            for i in range(len(keys))]


def shift_draws(pm: PredictiveModel, dr: Draws, setpoint_sd: dict[str, float] | None
                 ) -> np.ndarray | None:
    """Per-draw coded deviations (numeric factors x draws) of the set point, or None."""
    if not setpoint_sd:
        return None
    sd = np.zeros(len(pm.numeric))
    for name, value in setpoint_sd.items():
        f = pm.study.factor(name)
        if f.is_categorical:
            raise ModelError(f"{name} is categorical: set-point variation applies to numeric factors.")
        if not (value is not None and math.isfinite(float(value)) and float(value) >= 0):
            raise ModelError(f"The set-point SD of {name} must be a number >= 0; got {value!r}.")
        sd[pm.numeric.index(name)] = float(value) / f.half_range
    if not np.any(sd > 0):
        return None
    return setpoint_normals(pm, dr) * sd[:, None]


def _evaluate_group(pm: PredictiveModel, dr: Draws, combo: tuple[int, ...], U: np.ndarray,
                    shift: np.ndarray | None, joint_only: bool = False
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Joint and per-CQA probabilities and means at points sharing one categorical combination.

    ``joint_only``: skip the per-CQA shares and the means (returned empty).
    """
    sizes = [len(pm.study.factor(f).levels) for f in pm.categorical]
    M = monomials(U, pm.exponents)
    mean, mats, names = {}, [], []
    for c in pm.cqas:
        if joint_only and not c.has_spec:
            continue
        A = c.basis_map(combo, sizes)
        Mi = M[:, c.basis]
        if not joint_only:
            mean[c.name] = c.fm.fitted_transform.inverse(Mi @ (A.T @ c.beta))
        if not c.has_spec:
            continue
        mats.append(np.ascontiguousarray(Mi, dtype=np.float32))
        names.append(c.name)
    sides = group_margins(pm, dr, combo, sizes, shift)
    joint, per = count_in_spec(mats, sides, len(U), dr.n, joint_only)
    return joint, ({} if joint_only else dict(zip(names, per))), mean


#: Combinations whose margins are kept per draw set (about 0.6 MB each with 6 CQAs and 4000 draws).
_MAX_MARGINS = 8


def group_margins(pm: PredictiveModel, dr: Draws, combo: tuple[int, ...], sizes: list[int],
                   shift: np.ndarray | None) -> list[list[np.ndarray] | None]:
    """Per CQA with a spec: the float32 margins of :func:`_margins` at one combination (cached without shift)."""
    key = (tuple(combo), tuple(sizes))
    if shift is None and key in dr.margins:
        return cast(list[list[np.ndarray] | None], dr.margins[key])
    sides = []
    for s, c in enumerate(pm.spec_cqas):
        A = c.basis_map(combo, sizes)
        G = np.einsum("pk,pn->kn", A, dr.coef[s], optimize=False)  # per-draw polynomial coefficients
        if shift is not None:
            G = np.einsum("kn,nkl->ln", G, _shift_matrix(pm.exponents[c.basis], shift), optimize=False)
        sides.append(_margins(c, G, dr.noise[s]))
    if shift is None:
        if len(dr.margins) >= _MAX_MARGINS:
            dr.margins.pop(next(iter(dr.margins)))
        dr.margins[key] = sides
    return sides


def _margins(c: CQAModel, G: np.ndarray, noise: np.ndarray) -> list[np.ndarray] | None:
    """Polynomial coefficients (K x draws, float32) of 'distance inside the limit' per finite limit.

    None: the CQA is always in spec; an empty list: never. The intercept
    monomial is first in the basis, so the new-run error and the limit go there.
    """
    if c.zl == math.inf or c.zu == -math.inf:
        return []
    out = []
    if c.zl > -math.inf:
        lo = G.copy()
        lo[0] += noise - c.zl
        out.append(lo.astype(np.float32))
    if c.zu < math.inf:
        hi = -G
        hi[0] += c.zu - noise
        out.append(hi.astype(np.float32))
    return out or None


def count_in_spec(mats: list[np.ndarray], sides: list[list[np.ndarray] | None], n_points: int,
                   n_draws: int, joint_only: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Share of draws in spec: jointly, and per CQA (chunks of points; float32 margins).

    ``joint_only``: the per-CQA shares are not counted (returned as zeros).
    """
    joint = np.zeros(n_points)
    per = [np.ones(n_points) if s is None else np.zeros(n_points) for s in sides]
    if not mats:
        return np.ones(n_points), per
    if any(cs is not None and not cs for cs in sides) and joint_only:
        return joint, per  # a CQA that never meets its spec
    chunk = max(1, CHUNK_ELEMENTS // n_draws)
    width = count_width(n_draws)  # boolean buffers padded (False) for the word-wise count
    for start in range(0, n_points, chunk):
        sl = slice(start, min(start + chunk, n_points))
        rows = sl.stop - sl.start
        ok_buf = np.zeros((rows, width), dtype=bool)
        this_buf = np.zeros((rows, width), dtype=bool)
        ok, this = ok_buf[:, :n_draws], this_buf[:, :n_draws]
        side = np.empty((rows, n_draws), dtype=bool)
        w = np.empty((rows, n_draws), dtype=np.float32)
        first = True
        for i, (Mi, cs) in enumerate(zip(mats, sides)):
            if cs is None:
                continue
            if not cs:
                ok[:] = False
                first = False
                continue
            for k, coef in enumerate(cs):
                np.einsum("pk,kn->pn", Mi[sl], coef, out=w, optimize=False)  # einsum: no BLAS threads
                np.greater_equal(w, 0.0, out=this if k == 0 else side)
                if k:
                    np.logical_and(this, side, out=this)
            if not joint_only:
                per[i][sl] = row_counts(this_buf)
            if first:
                ok[:] = this
                first = False
            else:
                np.logical_and(ok, this, out=ok)
            if joint_only and not ok.any():
                break  # no draw of this chunk meets every spec so far
        if first:  # every CQA always in spec
            ok[:] = True
        joint[sl] = row_counts(ok_buf)
    return joint / n_draws, [p if s is None else p / n_draws for p, s in zip(per, sides)]


def count_width(n: int) -> int:
    """Columns of a boolean buffer for ``n`` draws: a multiple of 8 (whole 64-bit words)."""
    return -(-n // 8) * 8


def row_counts(b: np.ndarray) -> np.ndarray:
    """True values per row of a C-contiguous boolean array whose width is a multiple of 8.

    Adds 64-bit words (8 booleans each) in blocks of at most 255 words, so no byte
    overflows into the next, then adds the bytes: exact integer counts.
    """
    rows = b.shape[0]
    words = b.view(np.uint64)
    n_words = words.shape[1]
    if n_words == 0:
        return np.zeros(rows, dtype=np.int64)
    blocks = -(-n_words // 255)
    size = -(-n_words // blocks)
    if blocks * size != n_words:
        words = np.concatenate([words, np.zeros((rows, blocks * size - n_words), dtype=np.uint64)], axis=1)
    sums = np.add.reduce(words.reshape(rows, blocks, size), axis=2)
    return cast(np.ndarray, sums.view(np.uint8).reshape(rows, -1).sum(axis=1, dtype=np.int64))


# -- closed form (one CQA) -------------------------------------------------------------------------
def closed_form_probability(fm: FittedModel, settings: pd.DataFrame, lower: float | None = None,
                            upper: float | None = None) -> np.ndarray:
    """P(lower <= y_new <= upper) for one CQA from the Student-t posterior predictive.

    y_new | data ~ t_{n-p}(x'beta_hat, s^2 (1 + x'(X'X)^-1 x)) on the fitted scale
    under the non-informative prior (Peterson 2004, eq. 2 with one response);
    limits are moved to the fitted scale through the (monotone) transform.

    Parameters
    ----------
    fm : FittedModel
        The CQA's model (needs residual degrees of freedom).
    settings : DataFrame
        Points in actual units.
    lower, upper : float, optional
        Spec limits on the original scale (None: no limit).
    """
    if fm.df_resid < 1:
        raise ModelError(f"The model of {fm.response} has no residual degrees of freedom.")
    X = fm.model_matrix(complete_settings(fm.study, fm.model_terms, settings))
    z = X @ fm.least_squares.coef
    s = np.sqrt(fm.least_squares.mse * (1.0 + fm.least_squares.pred_var(X)))
    zl, zu = fitted_limits(fm.fitted_transform, lower, upper)
    if zl == math.inf or zu == -math.inf:
        return np.zeros(len(z))
    df = fm.df_resid
    with np.errstate(invalid="ignore"):
        return cast(np.ndarray, special.stdtr(df, (zu - z) / s) - special.stdtr(df, (zl - z) / s))


# -- intervals ------------------------------------------------------------------------------------
def tolerance_factor(h: Any, df: float, proportion: float = 0.99, confidence: float = 0.95, *,
                     two_sided: bool = True) -> np.ndarray:
    """Tolerance k-factor for a regression prediction with effective sample size 1/h.

    Two-sided: the Wald-Wolfowitz approximation k = sqrt(df chi2_{1,P}(h) /
    chi2_{df,1-gamma}) with chi2_{1,P}(h) the P quantile of a noncentral
    chi-square with 1 df and noncentrality h = x'(X'X)^-1 x (Howe 1969;
    Krishnamoorthy & Mathew 2009, sec. 2.3 and 3.3: replace 1/n by h). One-sided:
    the exact factor k = t'_{df, gamma}(z_P / sqrt(h)) sqrt(h) (noncentral t).

    >>> round(float(tolerance_factor(0.1, 9, 0.99, 0.95)), 3)  # n = 10; tables: 4.433
    4.433
    >>> round(float(tolerance_factor(0.1, 9, 0.99, 0.95, two_sided=False)), 3)  # tables: 3.981
    3.981
    """
    h = np.asarray(h, dtype=float)
    if not (0 < proportion < 1 and 0 < confidence < 1):
        raise ModelError("Tolerance proportion and confidence must be between 0 and 1.")
    if two_sided:
        return cast(np.ndarray, np.sqrt(df * stats.ncx2.ppf(proportion, 1, h) / stats.chi2.ppf(1 - confidence, df)))
    return cast(np.ndarray, stats.nct.ppf(confidence, df, stats.norm.ppf(proportion) / np.sqrt(h)) * np.sqrt(h))


def interval_spec(interval: Any) -> dict[str, Any] | None:
    if interval is None:
        return None
    spec = {"kind": interval} if isinstance(interval, str) else dict(interval)
    kind = str(spec.get("kind", "")).lower()
    if kind not in INTERVAL_KINDS:
        raise ModelError(f"The interval must be one of {quoted_list(INTERVAL_KINDS)}; got {interval!r}.")
    level = float(spec.get("level", 0.95))
    proportion = float(spec.get("proportion", 0.99)) if kind == "tolerance" else None
    if not 0 < level < 1 or (proportion is not None and not 0 < proportion < 1):
        raise ModelError("The interval level and proportion must be between 0 and 1.")
    return {"kind": kind, "level": level, "proportion": proportion}


def interval_bounds(pm: PredictiveModel, U: np.ndarray, L: np.ndarray, spec: dict[str, Any]
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Interval bounds on the original scale: one-sided for one-sided specs, else two-sided."""
    sizes = [len(pm.study.factor(f).levels) for f in pm.categorical]
    lower = {c.name: np.full(len(U), np.nan) for c in pm.cqas}
    upper = {c.name: np.full(len(U), np.nan) for c in pm.cqas}
    for combo, rows in level_groups(L):
        M = monomials(U[rows], pm.exponents)
        for c in pm.cqas:
            A = c.basis_map(combo, sizes)
            Mi = M[:, c.basis]
            z = Mi @ (A.T @ c.beta)
            if c.fm.mixed is not None:
                lo, hi = _bounds_mixed(c, z, Mi @ A.T, spec, pm.random_effects != "average")
            else:
                h = np.einsum("pk,kl,pl->p", Mi, A.T @ c.fm.least_squares.cov_unscaled @ A, Mi)
                lo, hi = _bounds_fitted(c, z, np.clip(h, 1e-12, None), spec)
            a, b = c.fm.fitted_transform.inverse(lo), c.fm.fitted_transform.inverse(hi)
            if decreasing(c.fm.fitted_transform):
                a, b = b, a
            lower[c.name][rows], upper[c.name][rows] = a, b
    return lower, upper


def _bounds_mixed(c: CQAModel, z: np.ndarray, X: np.ndarray, spec: dict[str, Any], new_levels: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bounds_fitted` for a mixed-model CQA: per point, the variance of the mean and of a new run (with new
    levels of every random effect, or at their average) and its Satterthwaite df (MixedFit.predictive_variance)."""
    mixed = c.fm.mixed
    assert mixed is not None
    mean_var, mean_df = mixed.predictive_variance(X)
    run_var, run_df = mixed.predictive_variance(X, new_levels=new_levels)
    scale2 = np.clip(run_var - mean_var, 1e-300, None)  # the new run's own variance (components added)
    df = mean_df if spec["kind"] == "confidence" else run_df  # tolerance: the new run's df (an approximation)
    return _bounds_fitted(c, z, np.clip(mean_var / scale2, 1e-12, None), spec, df=df, s=np.sqrt(scale2))


def _bounds_fitted(c: CQAModel, z: np.ndarray, h: np.ndarray, spec: dict[str, Any], *, df: Any = None,
                   s: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) on the fitted scale; the side a one-sided spec does not need is NaN.

    ``h``: the mean's variance in units of the new run's variance ``s**2``; ``df`` and ``s`` default to the
    least-squares residual's (per point for a mixed model)."""
    if df is None:
        df, s = c.fm.df_resid, math.sqrt(c.fm.least_squares.mse) if c.fm.df_resid > 0 else math.nan
    one_lower = c.lower is not None and c.upper is None
    one_upper = c.upper is not None and c.lower is None
    two = not (one_lower or one_upper)
    level, kind = spec["level"], spec["kind"]
    if np.all(np.asarray(df) < 1):
        nan = np.full(len(z), np.nan)
        return nan, nan
    if kind == "tolerance":
        k = tolerance_factor(h, df, spec["proportion"], level, two_sided=two)
    else:
        q = stats.t.ppf((1 + level) / 2 if two else level, df)
        k = q * np.sqrt(h + (1.0 if kind == "prediction" else 0.0))
    lo, hi = z - k * s, z + k * s
    if two:
        return lo, hi
    want_low_z = one_lower != decreasing(c.fm.fitted_transform)  # the bound on z that maps to the needed side
    nan = np.full(len(z), np.nan)
    return (lo, nan) if want_low_z else (nan, hi)


def within(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    ok = np.isfinite(values)
    if lo is not None:
        ok &= values >= lo
    if hi is not None:
        ok &= values <= hi
    return cast(np.ndarray, ok)
