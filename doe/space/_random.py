"""Random effects (donors, hPL lots, whole plots) in the posterior predictive of the design space.

A CQA analysed as a linear mixed model (``fm.mixed``, a :class:`doe.mixed.MixedFit`) is
y = X b + sum_k Z_k u_k + e with u_k ~ N(0, s2_k I) per random-effect factor k (``Donor``,
``hPL lot``, ``Whole plot``) and e ~ N(0, s2 I). Two questions can be asked of the design space:

- ``"new"`` (the default when any CQA with a spec has random effects): the probability that a run
  with a NEW donor, a NEW lot and a NEW whole plot meets every spec. The new run is
  x'b + sum_k u_k,new + e: its variance is s2 + sum_k s2_k, the manufacturing reality of a process
  that will meet donors it has never seen.
- ``"average"``: the probability for the average donor / lot / whole plot (u = 0): the new-run
  noise is the residual only. It answers a narrower question and is always the larger probability
  for a centred spec.

How one posterior draw is made (:func:`random_draws`)
-----------------------------------------------------
1. **Variance components.** Each component of each CQA (every random effect and the residual) is
   drawn from a scaled inverse-chi-square with its Satterthwaite degrees of freedom
   (``MixedFit.component_df``, nu = 2 v^2 / var(v)): s2* = v nu / chi2(nu). It is the exact
   posterior of a residual variance under the reference prior (for a fully randomised CQA,
   v = SSE / df and nu = df: the same draw as the rest of :mod:`doe.space`), it keeps every draw
   positive and, unlike the asymptotic log-normal, it has the heavy right tail a donor variance
   estimated from 6 to 8 donors really has (the tail is what lowers the probability for a new
   donor). Its first two moments match the asymptotic distribution of the REML estimate. The
   components are drawn independently (their asymptotic covariance, usually small and negative
   between a donor variance and the residual, is not used). A component estimated at 0 stays 0
   (a warning names it); a component whose df is not finite is held at its estimate; a df below 1
   (a component near 0) is drawn with 1 df (:data:`MIN_COMPONENT_DF`, with a warning).
2. **Cross-CQA correlation.** A donor acts on every CQA measured on its cells, so u_k,new is
   correlated across CQAs. The correlation of each random effect is estimated from the BLUPs of
   the levels the CQAs share, and the residual correlation from the conditional residuals on the
   runs they share; each is shrunk towards independence as the rest of :mod:`doe.space` does
   (R = (d R_hat + k I) / (d + k) with d the shared levels (runs) and k = max(1, m + 1 - d)
   pseudo-observations of independence) and made positive semi-definite. With fewer than 3 shared
   levels (runs) the pair is treated as independent and a warning says so. The correlations are
   held at these estimates across draws; the variances carry the uncertainty.
3. **Fixed effects.** As the SUR-style draw of :mod:`doe.space._posterior`: per draw, the random
   effects of every existing level and the residual of every run are simulated with the drawn
   covariances (correlated across CQAs), and propagated through each CQA's GLS weights
   W = (X'V^-1X)^-1 X'V^-1: b* = b_GLS + W (Z u* + e*). At the estimated components this has
   covariance (X'V^-1X)^-1, the GLS covariance; across draws it carries the uncertainty of the
   components, and the coefficient errors of CQAs measured on the same runs and donors are
   correlated as their data are. A fully randomised CQA (no ``mixed``) uses its least-squares
   W = (X'X)^-1 X' and only the residual, exactly as before, so mixed and fully randomised CQAs
   can share one study.
4. **New run.** y_new = x'b* + (sum_k u*_k,new) + e*, with u*_k,new ~ N(0, Sigma*_k) in mode
   ``"new"`` and left out in mode ``"average"``.

The functions here work on arrays (:func:`component_draws`, :func:`shrunk_correlation`,
:func:`random_draws`) and on fitted models (:func:`random_structure`); :func:`doe.space.build_predictive`
uses :func:`random_structure` when any CQA with a spec has ``fm.mixed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from doe.errors import ModelError

__all__ = ["RANDOM_EFFECTS_MODES", "RandomStructure", "check_random_effects", "component_draws", "components_json",
           "correlations_json", "describe_random_effects", "mixed_of", "random_draws", "random_effect_names",
           "random_structure", "shrunk_correlation"]

#: The questions the design space can answer when CQAs have random effects.
RANDOM_EFFECTS_MODES = ("new", "average")
#: Name of the residual component (as :attr:`doe.mixed.MixedFit.components`).
RESIDUAL = "Residual"
#: Fewer shared levels (or runs) than this: the pair of CQAs is treated as independent.
MIN_SHARED = 3
#: Smallest df a variance component is drawn with. A component near 0 has a Satterthwaite df near 0, and
#: chi2(df) then puts most of its mass within 1e-100 of 0, so v df / chi2(df) would overflow; 1 df (the
#: posterior of a variance from one observation, a Cauchy-like tail) is the heaviest tail used.
MIN_COMPONENT_DF = 1.0


def check_random_effects(mode: str | None, any_random: bool) -> str | None:
    """The random-effects mode to use: ``mode`` checked, "new" by default when there are random effects.

    None when no CQA with a spec has random effects (the mode is then irrelevant).
    """
    if mode is not None and mode not in RANDOM_EFFECTS_MODES:
        raise ModelError(f"random_effects must be 'new' (a run with a new donor, lot and whole plot) or 'average' "
                         f"(the average donor, lot and whole plot); got {mode!r}.")
    if not any_random:
        return None
    return mode or "new"


def mixed_of(fm: Any) -> Any:
    """The mixed-model fit attached to a fitted model (``fm.mixed``), or None for a fully randomised CQA."""
    return getattr(fm, "mixed", None)


def random_effect_names(fits: Mapping[str, Any]) -> list[str]:
    """The random effects of the fitted CQA models (donors, lots, whole plots), sorted by name; [] when every CQA
    is fully randomised (then the design space has no new-or-average question)."""
    return sorted({k for fm in fits.values() if (m := mixed_of(fm)) is not None for k in m.components
                   if k != "Residual"})


def _label(name: str) -> str:
    """'Donor' -> 'donor', 'hPL lot' stays, 'CD73' stays (an acronym keeps its capitals)."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def describe_random_effects(mode: str | None, names: Sequence[str]) -> str:
    """In words, which run the probability is about: 'a run with a new donor, a new hPL lot and a new
    whole plot' or 'a run with the average donor, hPL lot and whole plot'."""
    if mode is None or not names:
        return "a new run"
    words = [_label(n) for n in names]
    if mode == "new":
        parts = [f"a new {w}" for w in words]
    else:
        parts = words
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"a run with {text}" if mode == "new" else f"a run with the average {text}"


# -- variance components ------------------------------------------------------------------------
def component_draws(variance: np.ndarray, df: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` posterior draws of variance components: v nu / chi2(nu) per entry (scaled inverse chi-square).

    ``variance`` and ``df`` have the same shape S; the result is (n, *S). A variance <= 0 stays 0; a
    df that is not finite holds the variance at its estimate.

    >>> d = component_draws(np.array([2.0]), np.array([10.0]), 200_000, np.random.default_rng(1))
    >>> round(float(np.median(d)) / (2.0 * 10 / 9.342), 2)  # median: v nu / chi2_{0.5}(nu) (chi2 median 9.342)
    1.0
    """
    v = np.asarray(variance, dtype=float)
    nu = np.asarray(df, dtype=float)
    out = np.broadcast_to(np.clip(v, 0.0, None), (n, *v.shape)).copy()
    random = (v > 0) & np.isfinite(nu) & (nu > 0)
    if np.any(random):
        idx = np.flatnonzero(random.ravel())
        flat = out.reshape(n, -1)
        g = rng.chisquare(nu.ravel()[idx][None, :], size=(n, len(idx)))
        flat[:, idx] = v.ravel()[idx][None, :] * nu.ravel()[idx][None, :] / g
    return out


def shrunk_correlation(values: Sequence[np.ndarray | None]) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """Correlation across CQAs of one effect from its values on shared units (BLUPs or residuals).

    ``values[i]`` is CQA i's value per unit (NaN where the CQA has no value for the unit), or None
    when the CQA does not have the effect. Each pair uses the units both have: r = sum a b /
    sqrt(sum a^2 sum b^2) (the effects have mean zero under the model), shrunk towards 0 as
    r d / (d + k) with d the shared units and k = max(1, m + 1 - d); the matrix is then made positive
    semi-definite. Pairs with fewer than :data:`MIN_SHARED` shared units, or a CQA whose values are
    all 0, get 0. Returns (R, the smallest d used, the pairs left independent for too few units).

    >>> a = np.array([1.0, -1.0, 2.0, -2.0]); R, d, few = shrunk_correlation([a, a])
    >>> round(float(R[0, 1]), 3), d  # r = 1 shrunk by 4 / (4 + 1)
    (0.8, 4)
    """
    m = len(values)
    R = np.eye(m)
    smallest = 0
    few: list[tuple[int, int]] = []
    for i in range(m):
        for j in range(i + 1, m):
            a, b = values[i], values[j]
            if a is None or b is None:
                continue
            ok = np.isfinite(a) & np.isfinite(b)
            d = int(ok.sum())
            if d < MIN_SHARED:
                few.append((i, j))
                continue
            ss = float(np.sum(a[ok] ** 2) * np.sum(b[ok] ** 2))
            if ss <= 0:
                continue
            k = max(1, m + 1 - d)
            R[i, j] = R[j, i] = float(np.sum(a[ok] * b[ok])) / math.sqrt(ss) * d / (d + k)
            smallest = d if smallest == 0 else min(smallest, d)
    return _nearest_correlation(R), smallest, few


def _nearest_correlation(R: np.ndarray) -> np.ndarray:
    """Clip negative eigenvalues and rescale to a unit diagonal (positive semi-definite)."""
    vals, vecs = np.linalg.eigh((R + R.T) / 2)
    R = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
    s = np.sqrt(np.clip(np.diag(R), 1e-300, None))
    R = R / np.outer(s, s)
    np.fill_diagonal(R, 1.0)
    return R


def _factor(R: np.ndarray) -> np.ndarray:
    """F with F F' = R for a positive semi-definite R (symmetric square root; Cholesky may fail at rank loss)."""
    vals, vecs = np.linalg.eigh(R)
    return np.asarray((vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T)


# -- the structure ------------------------------------------------------------------------------
@dataclass
class RandomStructure:
    """Everything the draws need about the random effects of the CQAs with specs (m CQAs, K effects).

    ``variance`` and ``df`` are (m x K+1): per CQA, each random effect then the residual (0 variance
    where a CQA does not have the effect); ``corr`` the K+1 cross-CQA correlations (same order);
    ``level_index[k][i]`` CQA i's per-run index into the union of effect k's levels (None when the
    CQA lacks the effect); ``rows[i]`` CQA i's runs in the union of runs; ``W[i]`` its (p_i x n_i) weights
    (coef = W y); ``beta[i]`` its fixed effects.
    """

    mode: str
    names: list[str]  # random-effect names (union over the CQAs, first seen first)
    variance: np.ndarray
    df: np.ndarray
    corr: list[np.ndarray]
    levels: list[list[str]]
    level_index: list[list[np.ndarray | None]]
    rows: list[np.ndarray]
    runs: int
    W: list[np.ndarray]
    beta: list[np.ndarray]
    warnings: list[str] = field(default_factory=list)

    @property
    def m(self) -> int:
        """Number of CQAs."""
        return int(self.variance.shape[0])

    def new_run_covariance(self, variance: np.ndarray | None = None) -> np.ndarray:
        """Covariance across CQAs of a new run's deviation from x'b (at ``variance``, default the estimates):
        the residual plus, in mode "new", every random effect."""
        v = self.variance if variance is None else variance
        ks = range(len(self.names) + 1) if self.mode == "new" else [len(self.names)]
        out = np.zeros((self.m, self.m))
        for k in ks:
            sd = np.sqrt(v[:, k])
            out += self.corr[k] * np.outer(sd, sd)
        return out


def random_structure(names: Sequence[str], fits: Sequence[Any], rows: Sequence[np.ndarray], runs: int, mode: str,
                     *, correlated: bool = True) -> RandomStructure:
    """The :class:`RandomStructure` of the CQAs ``names`` (fitted models ``fits``, each with ``.mixed`` or None
    and ``.least_squares``) whose runs are ``rows`` in a union of ``runs`` runs."""
    m = len(fits)
    effects: list[str] = []
    mixed = [mixed_of(fm) for fm in fits]
    for mf in mixed:
        if mf is not None:
            effects.extend(k for k in mf.components if k != RESIDUAL and k not in effects)
    K = len(effects)
    variance = np.zeros((m, K + 1))
    df = np.full((m, K + 1), math.inf)
    W, beta, resid = [], [], []
    levels: list[list[str]] = [[] for _ in effects]
    level_index: list[list[np.ndarray | None]] = [[None] * m for _ in effects]
    blups: list[list[tuple[np.ndarray, np.ndarray] | None]] = [[None] * m for _ in effects]  # (union positions, BLUPs)
    warnings: list[str] = []
    for i, (fm, mf) in enumerate(zip(fits, mixed)):
        ls = fm.least_squares
        if mf is None:
            W.append(np.asarray(ls.r_inv @ ls.Q.T))  # (X'X)^-1 X'
            beta.append(np.asarray(ls.coef, dtype=float))
            resid.append(np.asarray(ls.resid, dtype=float))
            variance[i, K], df[i, K] = ls.mse, float(ls.df)
            continue
        Wi = np.asarray(mf.W, dtype=float)
        if Wi.shape != (ls.p, ls.n):
            raise ModelError(f"{names[i]}: the mixed model's weights are {Wi.shape[0]} x {Wi.shape[1]}, but the "
                             f"model has {ls.p} columns and {ls.n} runs: refit the mixed model on the same runs.")
        W.append(Wi)
        beta.append(np.asarray(mf.coef, dtype=float))
        resid.append(np.asarray(mf.conditional_residuals, dtype=float))
        for k, name in enumerate([*effects, RESIDUAL]):
            if name not in mf.components:
                continue
            v = float(mf.components[name])
            variance[i, k] = max(v, 0.0)
            nu = float(mf.component_df.get(name, math.inf))
            df[i, k] = max(nu, MIN_COMPONENT_DF) if v > 0 else math.inf
            if v <= 0 and name != RESIDUAL:
                warnings.append(f"{names[i]}: the {name} variance is estimated at 0, so a new {_label(name)} adds no "
                                "spread (with few levels this understates it).")
            elif math.isnan(nu) and v > 0:
                df[i, k] = MIN_COMPONENT_DF
                warnings.append(f"{names[i]}: the {name} variance has no degrees of freedom (its information is "
                                f"singular): it is drawn with {MIN_COMPONENT_DF:g} df, very heavy-tailed.")
            elif nu < 2 and v > 0:
                warnings.append(f"{names[i]}: the {name} variance is poorly determined ({nu:.2g} df"
                                + (f", drawn with {MIN_COMPONENT_DF:g}" if nu < MIN_COMPONENT_DF else "")
                                + "): its draws have a very heavy tail; more levels would pin it down.")
            if name == RESIDUAL:
                continue
            labels = [str(x) for x in mf.levels[name]]
            for lab in labels:
                if lab not in levels[k]:
                    levels[k].append(lab)
            pos = np.array([levels[k].index(lab) for lab in labels], dtype=int)
            level_index[k][i] = pos[np.asarray(mf.groups[name], dtype=int)]
            b = mf.blups.get(name)
            if b is not None:
                blups[k][i] = (pos, np.array([float(b.get(raw, b.get(lab, math.nan)))  # labels as the fit keeps them
                                              for lab, raw in zip(labels, mf.levels[name])]))
    corr: list[np.ndarray] = []
    for k, name in enumerate(effects):
        values: list[np.ndarray | None] = []
        for i in range(m):
            got = blups[k][i]
            if got is None or variance[i, k] <= 0:
                values.append(None)
                continue
            full = np.full(len(levels[k]), math.nan)
            full[got[0]] = got[1]
            values.append(full)
        corr.append(_correlation(values, name, names, correlated, warnings, "levels"))
    values = []
    for i in range(m):
        full = np.full(runs, math.nan)
        full[rows[i]] = resid[i]
        values.append(full)
    corr.append(_correlation(values, "residual", names, correlated, warnings, "runs"))
    return RandomStructure(mode, effects, variance, df, corr, levels, level_index, [np.asarray(r) for r in rows], runs,
                           W, beta, warnings)


def _correlation(values: list[np.ndarray | None], effect: str, names: Sequence[str], correlated: bool,
                 warnings: list[str], unit: str) -> np.ndarray:
    m = len(values)
    if not correlated or m < 2:
        return np.eye(m)
    R, _, few = shrunk_correlation(values)
    for i, j in few:
        warnings.append(f"{names[i]} and {names[j]} share fewer than {MIN_SHARED} {unit}: the correlation of their "
                        f"{effect} effects is not estimated (treated as independent).")
    return R


# -- drawing ------------------------------------------------------------------------------------
def random_draws(rs: RandomStructure, n: int, rng: np.random.Generator
                 ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """``n`` posterior draws: (coef per CQA (p_i x n), new-run noise (m x n), its SD (m x n), the Cholesky
    factor of its covariance (n x m x m)), as the module notes describe."""
    m, K = rs.m, len(rs.names)
    v = component_draws(rs.variance, rs.df, n, rng)  # n x m x K+1
    factors = [_factor(R) for R in rs.corr]
    coef = [np.empty((len(b), n)) for b in rs.beta]
    noise = np.empty((m, n))
    units = rs.runs + sum(len(lv) for lv in rs.levels) + K + 1
    block = max(1, 2_000_000 // (units * max(m, 1)))
    for start in range(0, n, block):
        sl = slice(start, min(n, start + block))
        b = sl.stop - sl.start
        sd = np.sqrt(v[sl])  # b x m x K+1
        # residuals of every run and of the new run: rows ~ N(0, D R D)
        e = np.einsum("nij,nrj->nri", sd[:, :, K, None] * factors[K][None], rng.standard_normal((b, rs.runs + 1, m)))
        y = [e[:, rows, i] for i, rows in enumerate(rs.rows)]  # b x n_i
        new = e[:, -1, :].copy()
        for k in range(K):
            u = np.einsum("nij,nlj->nli", sd[:, :, k, None] * factors[k][None],
                          rng.standard_normal((b, len(rs.levels[k]) + 1, m)))
            for i in range(m):
                idx = rs.level_index[k][i]
                if idx is not None:
                    y[i] = y[i] + u[:, idx, i]
            if rs.mode == "new":
                new += u[:, -1, :]
        noise[:, sl] = new.T
        for i in range(m):
            coef[i][:, sl] = rs.beta[i][:, None] + rs.W[i] @ y[i].T
    cov = np.zeros((n, m, m))
    ks = range(K + 1) if rs.mode == "new" else [K]
    for k in ks:
        s = np.sqrt(v[:, :, k])
        cov += rs.corr[k][None] * s[:, :, None] * s[:, None, :]
    sigma = np.sqrt(np.einsum("nii->in", cov))
    jitter = 1e-12 * np.maximum(np.einsum("nii->n", cov), 1e-300)[:, None, None] * np.eye(m)[None]
    chol = np.linalg.cholesky(cov + jitter)
    return coef, noise, sigma, chol


def components_json(names: Sequence[str], fits: Sequence[Any]) -> dict[str, dict[str, float]] | None:
    """{CQA: {random effect: variance, ..., "Residual": variance}} of the CQAs with random effects, or None."""
    out: dict[str, dict[str, float]] = {}
    for name, fm in zip(names, fits):
        mf = mixed_of(fm)
        if mf is not None:
            out[name] = {str(k): float(v) for k, v in mf.components.items()}
    return out or None


def correlations_json(rs: RandomStructure, names: Sequence[str]) -> dict[str, Mapping[str, Mapping[str, float]]]:
    """The cross-CQA correlation used for each random effect and the residual (rounded)."""
    out: dict[str, Mapping[str, Mapping[str, float]]] = {}
    for k, effect in enumerate([*rs.names, RESIDUAL]):
        R = rs.corr[k]
        out[effect] = {a: {b: round(float(R[i, j]), 4) for j, b in enumerate(names)} for i, a in enumerate(names)}
    return out
