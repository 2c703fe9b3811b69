"""The design space (ICH Q8(R2)): where every CQA meets its spec with high probability.

A point of the factor space belongs to the design space when the posterior
predictive probability that a *new run* there meets every CQA specification is
at least a threshold (e.g. 0.9), judged within the tested region only (Peterson
2004; Peterson & Lief 2010). This module computes that probability from the
fitted CQA models (:class:`doe.fit.FittedModel`), draws probability maps, the
proven acceptable ranges (PAR), checks a normal operating range (NOR) and finds
the most robust set point. It is pure: no Streamlit, no files.

The posterior predictive
------------------------
Each CQA *i* with a spec is fitted by least squares on its own model matrix
``X_i`` (n_i runs, p_i coefficients, coded units, possibly on a transformed
scale), giving beta_hat_i, SSE_i and df_i = n_i - p_i. Under the
non-informative prior p(beta, Sigma) ~ |Sigma|^-(m+1)/2 one posterior draw is

1. **Residual covariance.** The variance of CQA *i* is drawn exactly from its
   own posterior, sigma_ii = SSE_i / chi2(df_i). When the CQAs were observed on
   shared runs, their correlation is drawn too: Sigma* ~ inverse-Wishart(nu,
   Psi) with Psi = d R + k I, where R is the residual correlation of the
   own-model residuals on the shared runs (each cross product divided by
   tr(M_i M_j), M_i = I - H_i: Zellner's unbiased SUR estimator), d the
   smallest residual df on the shared runs (n - p_max when all runs are
   shared), k = max(1, m + 1 - d) pseudo-observations of independent noise (a
   weak proper prior that keeps Psi positive definite when there are fewer
   residual df than CQAs) and nu = d + k + m - 1. The draw contributes its
   correlation matrix and, through a quantile map of Psi_ii / Sigma*_ii
   (chi2(d + k)) onto chi2(df_i), the *dependence* between the variances, while
   every variance keeps its exact univariate posterior (a Gaussian-copula-like
   construction; Peterson & Lief 2010 use Gibbs sampling of the SUR posterior
   instead).
   (This approximation is used only when the Gibbs sampler below refuses the data.)
2. **Coefficients given Sigma.** beta_i = beta_hat_i + (X_i'X_i)^-1 X_i' z_i
   where the pseudo-errors z (runs x CQAs) have rows ~ N(0, Sigma) on the
   union of the runs. This gives beta_i ~ N(beta_hat_i, Sigma_ii (X_i'X_i)^-1)
   and Cov(beta_i, beta_j) = Sigma_ij (X_i'X_i)^-1 X_i'X_j (X_j'X_j)^-1 over
   the runs both CQAs share: the sampling covariance of equation-by-equation
   least squares (the SUR-style approximation; it is the exact posterior,
   Sigma (x) (X'X)^-1, when every CQA has the same model and runs, and the
   mean is OLS rather than GLS otherwise).
3. **New run.** y_new,i(x) = x_i' beta_i + e_i with e ~ N(0, Sigma).

**The exact case.** When every CQA with a spec was fitted on the same runs with the same model
(the same column space), steps 1-2 are replaced by the exact posterior: Sigma ~
inverse-Wishart(n - p, E'E) with E the n x m residuals, and B | Sigma ~ matrix normal; a new run is
then multivariate t with n - p - m + 1 df, location x'B_hat and shape (1 + x'(X'X)^-1 x) E'E /
(n - p - m + 1) (Box & Tiao 1973, sec. 8.4: the matrix-variate t); ``PredictiveModel.exact`` says
which case applies and :meth:`PredictiveModel.describe` names it.

**Different models or runs.** When the CQAs are correlated but their models (or runs) differ,
the exact posterior of the seemingly-unrelated regression is drawn by Gibbs sampling
(:func:`doe._sur.sur_draws`: many chains side by side, missing responses imputed, convergence
checked; ``PredictiveModel.gibbs``); steps 1-2 below are the fallback when it refuses the data.

The SUR-style approximation: for one CQA this is exactly
y_new | data ~ t_{n-p}(x'beta_hat, s^2 (1 + x'(X'X)^-1 x));
with several CQAs every marginal is still exactly that Student t (see
:func:`closed_form_probability`) and the joint carries the estimated residual
correlation. A CQA fitted on a transform is judged on its original scale: a
draw is in spec when the back-transformed value is within the limits, which
(the transforms being monotone) is the same as the draw on the fitted scale
lying within the transformed limits.

Monte Carlo
-----------
Every grid point uses the same draws (common random numbers), so maps are
smooth and differences between points are far more precise than each
probability. The default of 4000 draws bounds the Monte Carlo standard error of
any probability by 0.5 / sqrt(4000) = 0.0079. Draws are cached in the
:class:`PredictiveModel` by (seed, draws). Model predictions are evaluated on a
monomial basis of the numeric factors per categorical combination, so a 50 x 50
map with all CQAs costs a few hundred million float32 multiply-adds.

References
----------
ICH Q8(R2) (2009) Pharmaceutical Development, sec. 2.4 and Appendix 2.
Peterson, J.J. (2004) A posterior predictive approach to multiple response
surface optimization. J. Qual. Technol. 36:139-153.
Peterson, J.J., Lief, K. (2010) The ICH Q8 definition of design space: a
comparison of the overlapping means and the Bayesian predictive approaches.
Stat. Biopharm. Res. 2:249-259.
Box, G.E.P., Tiao, G.C. (1973) Bayesian Inference in Statistical Analysis, Addison-Wesley, ch. 8.
Zellner, A. (1962) An efficient method of estimating seemingly unrelated
regressions. JASA 57:348-368.
Howe, W.G. (1969) Two-sided tolerance limits for normal populations - some
improvements. JASA 64:610-620.
Krishnamoorthy, K., Mathew, T. (2009) Statistical Tolerance Regions, Wiley,
ch. 2-3 (Wald-Wolfowitz approximation; regression tolerance intervals).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from doe._format import plain
from doe._json import json_ready
from doe.constraints import feasible as _constraints_feasible
from doe.decision import DEFAULT_THRESHOLD
from doe.errors import ModelError, did_you_mean, quoted_list
from doe.fit import FittedModel, Transform
from doe.model import effect_codes
from doe.study import Factor, Study

__all__ = [
    "DEFAULT_DRAWS", "DEFAULT_THRESHOLD", "PARResult", "PredictiveModel", "ProbabilityResult", "SpaceGrid",
    "build_predictive", "check_nor", "closed_form_probability", "probability",
    "lower_bound_at", "proven_acceptable_ranges", "robust_set_point", "set_point_report", "space_grid",
    "summary_and_grid", "summary_json",
    "tolerance_factor",
]

#: Monte Carlo draws by default: the standard error of any probability is below 0.5/sqrt(4000) = 0.008.
DEFAULT_DRAWS = 4000
#: Fewer draws than this are refused (the Monte Carlo error would exceed 0.05).
MIN_DRAWS = 100
#: Grid points x draws evaluated at once (float32 buffers of ~1.6 MB stay in cache).
_CHUNK_ELEMENTS = 400_000
#: Draw sets kept per predictive model.
_MAX_CACHED = 6
INTERVAL_KINDS = ("confidence", "prediction", "tolerance")


# -- spec limits on the fitted scale ----------------------------------------------------------
def _fitted_limits(tf: Transform, lower: float | None, upper: float | None) -> tuple[float, float]:
    """Limits (zl, zu) on the fitted scale: inverse(z) in [lower, upper] iff zl <= z <= zu.

    An impossible limit gives zl = +inf or zu = -inf; a limit outside the
    transform's range (e.g. lower <= 0 under a log) gives -inf or +inf.
    """
    lo = -math.inf if lower is None else float(lower)
    hi = math.inf if upper is None else float(upper)
    if tf.kind == "none":
        return lo, hi
    if tf.kind == "power" and tf.power < 0:  # decreasing; inverse(z <= 0) is +inf
        zl = -math.inf if hi == math.inf else (math.inf if hi <= 0 else hi ** tf.power)
        zu = math.inf if lo <= 0 else lo ** tf.power
        return zl, zu
    a, b = (tf.lower, tf.upper) if tf.kind == "logit" else (0.0, math.inf)
    closed_at_a = tf.kind == "power"  # y = max(z, 0)^(1/L) reaches 0
    zl = -math.inf if lo <= a else (math.inf if lo >= b else float(tf.forward(lo)))
    if hi >= b:
        zu = math.inf
    elif hi < a or (hi == a and not closed_at_a):
        zu = -math.inf
    else:
        zu = float(tf.forward(hi))
    return zl, zu


def _decreasing(tf: Transform) -> bool:
    return tf.kind == "power" and tf.power < 0


# -- the predictive model ---------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _effect_codes(n_levels: int) -> np.ndarray:
    return effect_codes(n_levels)


@dataclass(eq=False)
class _CQAModel:
    """One CQA's fit in the form the Monte Carlo needs."""

    name: str
    fm: FittedModel
    lower: float | None
    upper: float | None
    zl: float
    zu: float
    basis: np.ndarray  # indices into the study's monomial basis (downward closed)
    col_pos: np.ndarray  # per model column: position in ``basis``, -1 for block columns
    col_cat: list[tuple[tuple[int, int], ...]]  # per model column: (categorical factor #, code column)
    _maps: dict = field(default_factory=dict, repr=False)  # combo -> basis_map (small; one per combination)

    @property
    def has_spec(self) -> bool:
        return self.lower is not None or self.upper is not None

    @property
    def beta(self) -> np.ndarray:
        return self.fm.least_squares.coef

    def cat_weights(self, combo: tuple[int, ...], cat_sizes: list[int]) -> np.ndarray:
        """Effect-code product of every model column at one categorical combination (0 for blocks)."""
        codes = [_effect_codes(n) for n in cat_sizes]
        out = np.ones(len(self.col_pos))
        for j, parts in enumerate(self.col_cat):
            for f, k in parts:
                out[j] *= codes[f][combo[f], k]
        out[self.col_pos < 0] = 0.0
        return out

    def basis_map(self, combo: tuple[int, ...], cat_sizes: list[int]) -> np.ndarray:
        """A (p x K): model row x = A m(u), m the monomials of ``basis`` at coded numeric settings u.

        Cached per combination (read-only array: do not modify it).
        """
        key = (tuple(combo), tuple(cat_sizes))
        A = self._maps.get(key)
        if A is None:
            A = np.zeros((len(self.col_pos), len(self.basis)))
            w = self.cat_weights(combo, cat_sizes)
            ok = self.col_pos >= 0
            A[np.flatnonzero(ok), self.col_pos[ok]] = w[ok]
            A.flags.writeable = False
            if len(self._maps) >= 256:
                self._maps.clear()
            self._maps[key] = A
        return A


@dataclass
class _Draws:
    """One set of posterior draws (common random numbers for every point)."""

    n: int
    seed: int
    coef: list[np.ndarray]  # per CQA with a spec: (p_i x n) coefficient draws
    noise: np.ndarray  # (m x n) new-run errors on the fitted scale
    sigma: np.ndarray  # (m x n) residual SDs
    eta: np.ndarray | None = None  # (numeric factors x n) standard normals for set-point variation
    chol: np.ndarray | None = None  # (n x m x m) Cholesky factors of the covariance draws (fitted scale)
    margins: dict = field(default_factory=dict, repr=False)  # combo -> float32 margins (no set-point SD)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "margins": {}}  # a cache: not pickled


@dataclass(eq=False)
class PredictiveModel:
    """The Bayesian posterior predictive of the fitted CQA models (see the module notes).

    Build it with :func:`build_predictive`. Attributes are read-only facts about
    the model; draws are made lazily and cached by (seed, draws).
    """

    study: Study
    cqas: list[_CQAModel]
    numeric: list[str]
    categorical: list[str]
    exponents: np.ndarray  # (K x numeric) monomial exponents, downward closed
    correlation: pd.DataFrame | None
    shared_runs: int
    residual_df: float
    prior_df: float
    not_modelled: list[str]
    warnings: list[str] = field(default_factory=list)
    #: True when every CQA with a spec was fitted on the same runs with the same model (column space):
    #: the covariance is then drawn from its exact posterior, inverse-Wishart(n - p, E'E), and the joint
    #: predictive is the matrix-variate t (multivariate t with n - p - m + 1 df at each point).
    exact: bool = False
    #: True when the CQAs are correlated but their models or runs differ: the exact posterior is then drawn by
    #: Gibbs sampling of the seemingly-unrelated regression (doe._sur); False if the sampler refused the data
    #: (the SUR-style approximation is used, with a warning).
    gibbs: bool = False
    #: The Gibbs sampler's diagnostics of the last draw set (chains, burn-in, R-hat, ESS, converged).
    gibbs_diagnostics: dict = field(default_factory=dict, repr=False)
    #: Why the exact (Gibbs) posterior is not used when the CQAs are correlated with different models ("" if it is).
    gibbs_note: str = ""
    _sscp: np.ndarray | None = field(default=None, repr=False)
    _union_runs: list[Any] = field(default_factory=list, repr=False)
    _rows: list[np.ndarray] = field(default_factory=list, repr=False)
    _cache: dict[tuple[int, int], _Draws] = field(default_factory=dict, repr=False)

    @property
    def spec_cqas(self) -> list[_CQAModel]:
        return [c for c in self.cqas if c.has_spec]

    @property
    def spec_names(self) -> list[str]:
        """CQAs with at least one spec limit: the ones the probability is about."""
        return [c.name for c in self.spec_cqas]

    @property
    def cqa_names(self) -> list[str]:
        return [c.name for c in self.cqas]

    @property
    def correlated(self) -> bool:
        return self.correlation is not None

    @property
    def exact_df(self) -> float:
        """Degrees of freedom of the exact joint predictive (n - p - m + 1); NaN when not exact."""
        return self.residual_df - len(self.spec_cqas) + 1 if self.exact else math.nan

    def limits(self) -> dict[str, tuple[float | None, float | None]]:
        """Spec limits (original scale) of the CQAs with specs."""
        return {c.name: (c.lower, c.upper) for c in self.spec_cqas}

    def describe(self) -> str:
        """One sentence naming the method, for plots and reports."""
        names = ", ".join(self.spec_names) or "none"
        text = (f"Posterior predictive probability that a new run meets every CQA spec ({names}): "
                "Bayesian, non-informative prior (Peterson 2004; Peterson & Lief 2010)")
        if self.exact:
            text += (f"; exact joint posterior (multivariate t with {self.exact_df:g} df): every CQA fitted on "
                     f"the same {self.shared_runs} runs with the same model")
        elif self.correlated and self.gibbs:
            text += (f"; exact joint posterior of the seemingly-unrelated regression by Gibbs sampling (the CQAs' "
                     f"models or runs differ; residual correlation from {self.shared_runs} shared runs)")
        elif self.correlated:
            text += (f", residual correlation from {self.shared_runs} shared runs (the CQAs' models or runs differ: "
                     "covariance drawn by the SUR-style approximation, each marginal exact"
                     + (f"; {self.gibbs_note}" if self.gibbs_note else "") + ")")
        elif len(self.spec_cqas) > 1:
            text += ", CQAs independent"
        if self.not_modelled:
            text += f"; NOT covered (no model): {', '.join(self.not_modelled)}"
        return text

    def draws(self, n: int | None = None, seed: int = 0) -> _Draws:
        """Posterior draws for ``n`` draws and ``seed`` (cached)."""
        n = _check_draws(n)
        key = (int(seed), n)
        if key not in self._cache:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = _make_draws(self, n, int(seed))
        return self._cache[key]


def _check_draws(n: int | None) -> int:
    n = DEFAULT_DRAWS if n is None else int(n)
    if n < MIN_DRAWS:
        raise ModelError(f"Use at least {MIN_DRAWS} Monte Carlo draws (default {DEFAULT_DRAWS}); got {n}.")
    return n


def build_predictive(study: Study, fits: Mapping[str, Any], *, seed: int = 0, draws: int | None = None,
                     correlated: bool = True) -> PredictiveModel:
    """Bayesian posterior predictive of the fitted CQA models (Peterson 2004; Peterson & Lief 2010).

    Parameters
    ----------
    study : Study
        The study (factors, CQA spec limits, constraints).
    fits : dict
        CQA name -> :class:`~doe.fit.FittedModel` (or a :class:`~doe.analysis.CQAFit`;
        CQAs whose fit failed are skipped). Only CQAs with a lower and/or upper
        spec count towards the probability; the others keep their predictions.
    seed : int
        Seed of the draws made now (default draws); later calls with other seeds draw lazily.
    draws : int, optional
        Number of draws made now (default :data:`DEFAULT_DRAWS`).
    correlated : bool
        Draw the residual covariance jointly when the CQAs share runs (default);
        False treats the CQAs as independent.

    Returns
    -------
    PredictiveModel

    Raises
    ------
    ModelError
        No fitted CQA, or a CQA with a spec whose model has no residual degrees of freedom.
    """
    models = _collect_models(study, fits)
    numeric = [f.name for f in study.factors if not f.is_categorical]
    categorical = [f.name for f in study.factors if f.is_categorical]
    exps = _monomial_basis(study, models, numeric)
    cqas = [_cqa_model(study, name, fm, exps, numeric, categorical) for name, fm in models.items()]
    not_modelled = [r.name for r in study.responses
                    if (r.lower is not None or r.upper is not None) and r.name not in models]
    pm = PredictiveModel(study, cqas, numeric, categorical, exps, None, 0, math.nan, math.nan, not_modelled)
    _setup_runs(pm)
    if correlated:
        _estimate_correlation(pm)
    for c in pm.spec_cqas:
        if c.zl == math.inf or c.zu == -math.inf:
            pm.warnings.append(f"{c.name}: the spec cannot be met on the scale of its transform "
                               f"({c.fm.transform_label}); its probability is 0.")
    if pm.not_modelled:
        pm.warnings.append(f"{quoted_list(pm.not_modelled)} have specs but no fitted model: the "
                           "probability does not cover them.")
    pm.draws(draws, seed)
    return pm


def _collect_models(study: Study, fits: Mapping[str, Any]) -> dict[str, FittedModel]:
    out: dict[str, FittedModel] = {}
    for name, fit in fits.items():
        fm = fit if isinstance(fit, FittedModel) else getattr(fit, "model", None)
        if fm is None:
            continue
        study.response(name)
        out[name] = fm
    if not out:
        raise ModelError("No CQA has a fitted model: fit the CQA models before the design space.")
    order = {r: i for i, r in enumerate(study.response_names)}
    out = dict(sorted(out.items(), key=lambda kv: order[kv[0]]))
    for name, fm in out.items():
        r = study.response(name)
        if (r.lower is not None or r.upper is not None) and fm.df_resid < 1:
            raise ModelError(
                f"The model of {name} leaves no residual degrees of freedom, so its prediction "
                "uncertainty is unknown and no probability can be computed: drop terms or add runs."
            )
    return out


def _monomial_basis(study: Study, models: dict[str, FittedModel], numeric: list[str]) -> np.ndarray:
    """Exponent vectors of every numeric monomial the models use, closed downwards (A^2 brings A, 1)."""
    seen: set[tuple[int, ...]] = set()
    for fm in models.values():
        for c in fm.model_columns:
            if not c.is_block:
                seen.add(_exponent(c.num, numeric))
    closed: set[tuple[int, ...]] = set()
    for e in seen:
        closed.update(itertools.product(*[range(k + 1) for k in e]))
    # reshape by the count: with no numeric factor every exponent vector is () (size 0, so -1 is ambiguous)
    return np.array(sorted(closed, key=lambda e: (sum(e), [-k for k in e])), dtype=int).reshape(len(closed),
                                                                                                len(numeric))


def _exponent(parts: tuple[tuple[str, int], ...], numeric: list[str]) -> tuple[int, ...]:
    e = [0] * len(numeric)
    for f, p in parts:
        e[numeric.index(f)] = p
    return tuple(e)


def _cqa_model(study: Study, name: str, fm: FittedModel, exps: np.ndarray, numeric: list[str],
               categorical: list[str]) -> _CQAModel:
    index = {tuple(e): i for i, e in enumerate(exps.tolist())}
    used = {_exponent(c.num, numeric) for c in fm.model_columns if not c.is_block}
    closed = {tuple(e) for u in used for e in itertools.product(*[range(k + 1) for k in u])}
    basis = np.array(sorted(index[e] for e in closed), dtype=int)
    pos = {b: i for i, b in enumerate(basis.tolist())}
    col_pos = np.array([-1 if c.is_block else pos[index[_exponent(c.num, numeric)]] for c in fm.model_columns])
    col_cat = [tuple((categorical.index(f), k) for f, k in c.cat) for c in fm.model_columns]
    r = study.response(name)
    zl, zu = _fitted_limits(fm.fitted_transform, r.lower, r.upper)
    return _CQAModel(name, fm, r.lower, r.upper, zl, zu, basis, col_pos, col_cat)


def _run_ids(fm: FittedModel) -> list[Any]:
    ids = list(fm.diagnostics["run"]) if "run" in fm.diagnostics else list(range(1, fm.n + 1))
    return [str(i) for i in ids]


def _setup_runs(pm: PredictiveModel) -> None:
    """The union of the runs of the CQAs with specs, and each CQA's rows in it."""
    ids = [_run_ids(c.fm) for c in pm.spec_cqas]
    union = list(dict.fromkeys(r for run in ids for r in run))
    where = {r: i for i, r in enumerate(union)}
    pm._union_runs = union
    pm._rows = [np.array([where[r] for r in run], dtype=int) for run in ids]


def _estimate_correlation(pm: PredictiveModel) -> None:
    """Residual correlation of the CQAs with specs on their shared runs (Zellner 1962), and its df."""
    cqas = pm.spec_cqas
    m = len(cqas)
    if m < 2:
        return
    shared = set(range(len(pm._union_runs)))
    for rows in pm._rows:
        shared &= set(rows.tolist())
    shared_rows = sorted(shared)
    if len(shared_rows) < 3:
        pm.warnings.append("The CQAs share fewer than 3 runs: their correlation is not estimated "
                           "(treated as independent).")
        return
    E, Ms = [], []
    for c, rows in zip(cqas, pm._rows):
        local = {u: i for i, u in enumerate(rows.tolist())}
        pick = np.array([local[u] for u in shared_rows])
        Q = c.fm.least_squares.Q[pick]
        Ms.append(np.eye(len(pick)) - Q @ Q.T)
        E.append(c.fm.least_squares.resid[pick])
    D = np.array([[float(np.sum(Ms[i] * Ms[j])) for j in range(m)] for i in range(m)])
    d = float(np.min(np.diag(D)))
    if d < 1:
        pm.warnings.append("Too few residual degrees of freedom on the shared runs to estimate the "
                           "CQA correlation: the CQAs are treated as independent.")
        return
    E = np.column_stack(E)
    S = (E.T @ E) / D
    sd = np.sqrt(np.clip(np.diag(S), 1e-300, None))
    R = _nearest_correlation(S / np.outer(sd, sd))
    pm.correlation = pd.DataFrame(R, index=pm.spec_names, columns=pm.spec_names)
    pm.shared_runs, pm.residual_df = len(shared_rows), d
    pm.prior_df = max(1.0, m + 1 - d)
    if _same_runs_and_model(pm) and d - m + 1 >= 1:
        pm.exact, pm.residual_df, pm.prior_df = True, float(cqas[0].fm.df_resid), 0.0
        resid = np.column_stack([c.fm.least_squares.resid for c in cqas])
        pm._sscp = resid.T @ resid
    else:
        pm.gibbs, pm.gibbs_note = _gibbs_affordable(pm)


def _same_runs_and_model(pm: PredictiveModel) -> bool:
    """Whether every CQA with a spec was fitted on the same runs (same order) with the same column space."""
    cqas = pm.spec_cqas
    first, q0 = pm._rows[0], cqas[0].fm.least_squares.Q
    for c, rows in zip(cqas[1:], pm._rows[1:]):
        q = c.fm.least_squares.Q
        if len(rows) != len(first) or not np.array_equal(rows, first) or q.shape != q0.shape:
            return False
        if not np.isclose(float(np.sum((q0.T @ q) ** 2)), q0.shape[1], rtol=0, atol=1e-8 * q0.shape[1]):
            return False
    return True


def _nearest_correlation(R: np.ndarray) -> np.ndarray:
    """Clip negative eigenvalues and rescale to a unit diagonal (positive semi-definite)."""
    R = (R + R.T) / 2
    vals, vecs = np.linalg.eigh(R)
    R = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
    s = np.sqrt(np.clip(np.diag(R), 1e-300, None))
    R = R / np.outer(s, s)
    np.fill_diagonal(R, 1.0)
    return R


# -- drawing ------------------------------------------------------------------------------------
def _make_draws(pm: PredictiveModel, n: int, seed: int) -> _Draws:
    rng = np.random.default_rng(seed)
    cqas = pm.spec_cqas
    m = len(cqas)
    if m == 0:
        return _Draws(n, seed, [], np.zeros((0, n)), np.zeros((0, n)), chol=np.zeros((n, 0, 0)))
    if pm.gibbs:
        drawn = _gibbs_draws(pm, n, rng)
        if drawn is not None:
            return _Draws(n, seed, *drawn)
    if pm.exact:  # Sigma ~ inverse-Wishart(n - p, E'E): the exact posterior under |Sigma|^-(m+1)/2
        cov = _inverse_wishart(rng, pm.residual_df, pm._sscp, n)
        sigma = np.sqrt(np.einsum("nii->ni", cov))
        corr = cov / (sigma[:, :, None] * sigma[:, None, :])
    else:
        corr, g = _correlation_draws(pm, rng, n)  # (n x m x m), (n x m) chi-square variates per CQA
        sse = np.array([c.fm.least_squares.sse for c in cqas])
        sigma = np.sqrt(sse[None, :] / g)  # exact marginal: sigma_i^2 = SSE_i / chi2(df_i)
    L = np.linalg.cholesky(corr * sigma[:, :, None] * sigma[:, None, :])
    W = [c.fm.least_squares.Q @ c.fm.least_squares.r_inv.T for c in cqas]  # rows of (X'X)^-1 X', transposed: n_i x p_i
    coef = [np.empty((len(c.beta), n)) for c in cqas]
    noise = np.empty((m, n))
    runs = len(pm._union_runs)
    block = max(1, 2_000_000 // ((runs + 1) * m))  # bounds memory for large studies
    for start in range(0, n, block):
        sl = slice(start, min(n, start + block))
        xi = rng.standard_normal((sl.stop - sl.start, runs + 1, m))
        Z = np.einsum("nij,nrj->nri", L[sl], xi)  # rows ~ N(0, Sigma) per draw; last row is the new run
        noise[:, sl] = Z[:, -1, :].T
        for i, (c, rows) in enumerate(zip(cqas, pm._rows)):
            delta = np.einsum("nr,rp->pn", Z[:, rows, i], W[i], optimize=False)
            coef[i][:, sl] = c.beta[:, None] + delta
    return _Draws(n, seed, coef, noise, sigma.T.copy(), chol=L)


#: Largest linear system per Gibbs draw (doe._sur: K or P coefficients) for which the exact posterior is drawn;
#: its cost grows with the cube: about 0.4 s for 4,000 draws at 60 (2 cores), several seconds at 100.
GIBBS_MAX_SYSTEM = 60


def _gibbs_affordable(pm: PredictiveModel) -> tuple[bool, str]:
    """Whether the exact SUR posterior is drawn (its per-draw linear system is small enough), and if not why."""
    from doe._sur import system_size

    cqas = pm.spec_cqas
    try:
        size = system_size([c.fm.least_squares.X for c in cqas], [c.fm.least_squares.y for c in cqas], pm._rows,
                           len(pm._union_runs))
    except (ValueError, np.linalg.LinAlgError) as exc:
        return False, f"the exact posterior cannot be drawn: {exc}"
    if size > GIBBS_MAX_SYSTEM:
        return False, (f"the exact posterior is too large to draw here, {size} coefficients per draw; against "
                       "the exact posterior the approximation has moved joint probabilities by up to 0.4")
    return True, ""


def _gibbs_draws(pm: PredictiveModel, n: int, rng: np.random.Generator
                 ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, None, np.ndarray] | None:
    """(coef, noise, sigma, eta, chol) from the exact SUR posterior (doe._sur), or None when the sampler
    refuses the data (then the SUR-style approximation is used and a warning says so)."""
    from doe._sur import sur_draws

    cqas = pm.spec_cqas
    try:
        coef, cov, diag = sur_draws([c.fm.least_squares.X for c in cqas], [c.fm.least_squares.y for c in cqas], pm._rows,
                                    len(pm._union_runs), n, rng)
    except ValueError as exc:
        pm.gibbs, pm.gibbs_note = False, f"the exact posterior could not be drawn: {exc}"
        pm.warnings.append(f"The exact joint posterior could not be drawn ({exc}): the covariance is drawn by the "
                           "SUR-style approximation instead.")
        return None
    pm.gibbs_diagnostics = diag
    if not diag.get("converged", True):
        pm.warnings.append("The Gibbs sampler's convergence check did not pass after its extra rounds "
                           f"(R-hat {diag.get('rhat_max', math.nan):.3f}): treat the probabilities as approximate "
                           "and consider more runs or simpler models.")
    L = np.linalg.cholesky(cov)
    noise = np.einsum("nij,nj->in", L, rng.standard_normal((n, len(cqas))))
    sigma = np.sqrt(np.einsum("nii->in", cov))
    return coef, noise, sigma, None, L


def _correlation_draws(pm: PredictiveModel, rng: np.random.Generator, n: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Correlation matrices and chi-square(df_i) variates, dependent through an inverse-Wishart draw."""
    cqas = pm.spec_cqas
    m = len(cqas)
    df = np.array([float(c.fm.df_resid) for c in cqas])
    if not pm.correlated:
        return np.broadcast_to(np.eye(m), (n, m, m)), rng.chisquare(df[None, :], size=(n, m))
    d, k = pm.residual_df, pm.prior_df
    nu = d + k + m - 1
    psi = d * pm.correlation.to_numpy() + k * np.eye(m)
    sigma = _inverse_wishart(rng, nu, psi, n)
    diag = np.einsum("nii->ni", sigma)
    corr = sigma / np.sqrt(diag[:, :, None] * diag[:, None, :])
    g0 = np.diag(psi)[None, :] / diag  # ~ chi2(nu - m + 1) = chi2(d + k), marginally
    return corr, _chi2_quantile_map(g0, d + k, df)


def _inverse_wishart(rng: np.random.Generator, nu: float, psi: np.ndarray, n: int) -> np.ndarray:
    """n draws of IW(nu, psi) (E = psi / (nu - m - 1)) by the Bartlett decomposition of W(nu, psi^-1)."""
    m = psi.shape[0]
    C = np.linalg.cholesky(np.linalg.inv(psi))
    A = np.zeros((n, m, m))
    idx = np.tril_indices(m, -1)
    A[:, idx[0], idx[1]] = rng.standard_normal((n, len(idx[0])))
    A[:, np.arange(m), np.arange(m)] = np.sqrt(rng.chisquare(nu - np.arange(m), size=(n, m)))
    T = np.einsum("ij,njk->nik", C, A)
    return np.linalg.inv(T @ np.swapaxes(T, 1, 2))


def _chi2_quantile_map(g: np.ndarray, df_from: float, df_to: np.ndarray) -> np.ndarray:
    """Map chi2(df_from) variates onto chi2(df_to[i]) through their probabilities (tails kept exact)."""
    out = np.empty_like(g)
    lower = special.gammainc(df_from / 2, g / 2)
    upper = special.gammaincc(df_from / 2, g / 2)
    for i, df in enumerate(df_to):
        if df == df_from:
            out[:, i] = g[:, i]
            continue
        lo = lower[:, i] < 0.5
        out[lo, i] = 2 * special.gammaincinv(df / 2, lower[lo, i])
        out[~lo, i] = 2 * special.gammainccinv(df / 2, upper[~lo, i])
    return np.clip(out, 1e-300, None)


def _setpoint_normals(pm: PredictiveModel, dr: _Draws) -> np.ndarray:
    if dr.eta is None:
        rng = np.random.default_rng([dr.seed, 7919])  # its own stream: draws are shared with/without it
        dr.eta = rng.standard_normal((len(pm.numeric), dr.n))
    return dr.eta


# -- settings -------------------------------------------------------------------------------------
def _level_index(f: Factor, value: Any) -> int:
    text = str(value).strip().lower()
    for i, lv in enumerate(f.levels):
        if str(lv).strip().lower() == text:
            return i
    raise ModelError(f"'{value}' is not a tested level of {f.name}.{did_you_mean(str(value), f.levels)} "
                     f"Levels are {quoted_list(f.levels)}.")


def _settings_arrays(pm: PredictiveModel, settings: pd.DataFrame | _Points) -> tuple[np.ndarray, np.ndarray]:
    """Coded numeric settings (points x numeric) and level indices (points x categorical)."""
    if not isinstance(settings, (pd.DataFrame, _Points)):
        raise ModelError("Settings must be a table (DataFrame) with one column per factor, actual units.")
    used = {f for c in pm.cqas for t in c.fm.model_terms for f in t.factors}
    missing = [f for f in pm.study.factor_names if f not in settings.columns and f in used]
    if missing:
        raise ModelError(f"Give settings for {quoted_list(missing)}: the models use them.")
    n = len(settings)
    U = np.zeros((n, len(pm.numeric)))
    for j, name in enumerate(pm.numeric):
        f = pm.study.factor(name)
        if name in settings.columns:
            x = pd.to_numeric(settings[name], errors="coerce")
            x = x.to_numpy(dtype=float) if isinstance(x, pd.Series) else np.asarray(x, dtype=float)
            if not np.all(np.isfinite(x)):
                raise ModelError(f"{name}: every setting must be a number in {f.units or 'its units'}.")
            U[:, j] = (x - f.center) / f.half_range
    L = np.zeros((n, len(pm.categorical)), dtype=int)
    for j, name in enumerate(pm.categorical):
        if name in settings.columns:
            f = pm.study.factor(name)
            inv, uniq = pd.factorize(settings[name], use_na_sentinel=False)
            codes = np.array([_level_index(f, v) for v in uniq], dtype=int)
            L[:, j] = codes[inv]
    return U, L


def _monomials(U: np.ndarray, exps: np.ndarray) -> np.ndarray:
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
    U, L = _settings_arrays(pm, settings)
    dr = pm.draws(draws, seed)
    shift = _shift_draws(pm, dr, setpoint_sd)
    joint, per, mean = _evaluate(pm, dr, U, L, shift)
    se = float(np.sqrt(np.max(joint * (1 - joint), initial=0.0) / dr.n))
    sd = None if not setpoint_sd else dict(setpoint_sd)
    return ProbabilityResult(joint, per, mean, dr.n, se, int(seed), sd)


def _joint_probability(pm: PredictiveModel, settings: pd.DataFrame | _Points, *, draws: int | None = None,
                       seed: int = 0, setpoint_sd: dict[str, float] | None = None) -> np.ndarray:
    """``probability(...).joint`` without the per-CQA shares and means (the same numbers, faster)."""
    U, L = _settings_arrays(pm, settings)
    dr = pm.draws(draws, seed)
    shift = _shift_draws(pm, dr, setpoint_sd)
    return _evaluate(pm, dr, U, L, shift, joint_only=True)[0]


def _evaluate(pm: PredictiveModel, dr: _Draws, U: np.ndarray, L: np.ndarray, shift: np.ndarray | None,
              joint_only: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    n = len(U)
    joint = np.zeros(n)
    per = {} if joint_only else {c.name: np.zeros(n) for c in pm.spec_cqas}
    mean = {} if joint_only else {c.name: np.zeros(n) for c in pm.cqas}
    for combo, rows in _groups(L):
        j, p, mu = _evaluate_group(pm, dr, combo, U[rows], shift, joint_only)
        joint[rows] = j
        for name in per:
            per[name][rows] = p[name]
        for name in mean:
            mean[name][rows] = mu[name]
    return joint, per, mean


def _groups(L: np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
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


def _shift_draws(pm: PredictiveModel, dr: _Draws, setpoint_sd: dict[str, float] | None
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
    return _setpoint_normals(pm, dr) * sd[:, None]


def _evaluate_group(pm: PredictiveModel, dr: _Draws, combo: tuple[int, ...], U: np.ndarray,
                    shift: np.ndarray | None, joint_only: bool = False
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Joint and per-CQA probabilities and means at points sharing one categorical combination.

    ``joint_only``: skip the per-CQA shares and the means (returned empty).
    """
    sizes = [len(pm.study.factor(f).levels) for f in pm.categorical]
    M = _monomials(U, pm.exponents)
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
    sides = _group_margins(pm, dr, combo, sizes, shift)
    joint, per = _count_in_spec(mats, sides, len(U), dr.n, joint_only)
    return joint, ({} if joint_only else dict(zip(names, per))), mean


#: Combinations whose margins are kept per draw set (about 0.6 MB each with 6 CQAs and 4000 draws).
_MAX_MARGINS = 8


def _group_margins(pm: PredictiveModel, dr: _Draws, combo: tuple[int, ...], sizes: list[int],
                   shift: np.ndarray | None) -> list[list[np.ndarray] | None]:
    """Per CQA with a spec: the float32 margins of :func:`_margins` at one combination (cached without shift)."""
    key = (tuple(combo), tuple(sizes))
    if shift is None and key in dr.margins:
        return dr.margins[key]
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


def _margins(c: _CQAModel, G: np.ndarray, noise: np.ndarray) -> list[np.ndarray] | None:
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


def _count_in_spec(mats: list[np.ndarray], sides: list[list[np.ndarray] | None], n_points: int,
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
    chunk = max(1, _CHUNK_ELEMENTS // n_draws)
    width = _count_width(n_draws)  # boolean buffers padded (False) for the word-wise count
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
                per[i][sl] = _row_counts(this_buf)
            if first:
                ok[:] = this
                first = False
            else:
                np.logical_and(ok, this, out=ok)
            if joint_only and not ok.any():
                break  # no draw of this chunk meets every spec so far
        if first:  # every CQA always in spec
            ok[:] = True
        joint[sl] = _row_counts(ok_buf)
    return joint / n_draws, [p if s is None else p / n_draws for p, s in zip(per, sides)]


def _count_width(n: int) -> int:
    """Columns of a boolean buffer for ``n`` draws: a multiple of 8 (whole 64-bit words)."""
    return -(-n // 8) * 8


def _row_counts(b: np.ndarray) -> np.ndarray:
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
    return sums.view(np.uint8).reshape(rows, -1).sum(axis=1, dtype=np.int64)


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
    from doe.fit import complete_settings as _complete

    if fm.df_resid < 1:
        raise ModelError(f"The model of {fm.response} has no residual degrees of freedom.")
    X = fm.model_matrix(_complete(fm.study, fm.model_terms, settings))
    z = X @ fm.least_squares.coef
    s = np.sqrt(fm.least_squares.mse * (1.0 + fm.least_squares.pred_var(X)))
    zl, zu = _fitted_limits(fm.fitted_transform, lower, upper)
    if zl == math.inf or zu == -math.inf:
        return np.zeros(len(z))
    df = fm.df_resid
    with np.errstate(invalid="ignore"):
        return special.stdtr(df, (zu - z) / s) - special.stdtr(df, (zl - z) / s)


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
        return np.sqrt(df * stats.ncx2.ppf(proportion, 1, h) / stats.chi2.ppf(1 - confidence, df))
    return stats.nct.ppf(confidence, df, stats.norm.ppf(proportion) / np.sqrt(h)) * np.sqrt(h)


def _interval_spec(interval: Any) -> dict[str, Any] | None:
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


def _interval_bounds(pm: PredictiveModel, U: np.ndarray, L: np.ndarray, spec: dict[str, Any]
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Interval bounds on the original scale: one-sided for one-sided specs, else two-sided."""
    sizes = [len(pm.study.factor(f).levels) for f in pm.categorical]
    lower = {c.name: np.full(len(U), np.nan) for c in pm.cqas}
    upper = {c.name: np.full(len(U), np.nan) for c in pm.cqas}
    for combo, rows in _groups(L):
        M = _monomials(U[rows], pm.exponents)
        for c in pm.cqas:
            A = c.basis_map(combo, sizes)
            Mi = M[:, c.basis]
            z = Mi @ (A.T @ c.beta)
            h = np.einsum("pk,kl,pl->p", Mi, A.T @ c.fm.least_squares.cov_unscaled @ A, Mi)
            lo, hi = _bounds_fitted(c, z, np.clip(h, 1e-12, None), spec)
            a, b = c.fm.fitted_transform.inverse(lo), c.fm.fitted_transform.inverse(hi)
            if _decreasing(c.fm.fitted_transform):
                a, b = b, a
            lower[c.name][rows], upper[c.name][rows] = a, b
    return lower, upper


def _bounds_fitted(c: _CQAModel, z: np.ndarray, h: np.ndarray, spec: dict[str, Any]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) on the fitted scale; the side a one-sided spec does not need is NaN."""
    df, s = c.fm.df_resid, math.sqrt(c.fm.least_squares.mse) if c.fm.df_resid > 0 else math.nan
    one_lower = c.lower is not None and c.upper is None
    one_upper = c.upper is not None and c.lower is None
    two = not (one_lower or one_upper)
    level, kind = spec["level"], spec["kind"]
    if df < 1:
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
    want_low_z = one_lower != _decreasing(c.fm.fitted_transform)  # the bound on z that maps to the needed side
    nan = np.full(len(z), np.nan)
    return (lo, nan) if want_low_z else (nan, hi)


# -- the probability map --------------------------------------------------------------------------
@dataclass
class SpaceGrid:
    """A probability map over two numeric factors, the others fixed (one panel of the design space).

    Arrays are (len(ys), len(xs)): rows follow ``ys``, columns ``xs``. Axes
    span the study range only (a design space never extrapolates).
    """

    x: str
    y: str
    fixed: dict[str, Any]
    xs: np.ndarray
    ys: np.ndarray
    probability: np.ndarray
    per_cqa: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    lower: dict[str, np.ndarray] | None
    upper: dict[str, np.ndarray] | None
    interval: dict | None
    feasible: np.ndarray
    threshold: float
    draws: int
    seed: int
    mc_se: float
    setpoint_sd: dict | None
    method: str
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: Assurance level gamma, or None (the design space is then probability >= threshold).
    assurance: float | None = None
    #: With an assurance level: the lower credible bound of P(all in spec | parameters) per point, at
    #: the pointwise level ``assurance_level``.
    lower_bound: np.ndarray | None = None
    #: Parameter draws the bound is taken over (see :mod:`doe.assurance`).
    assurance_draws: int = 0
    #: "simultaneous" (every point of the region at once, over this map's points) or "pointwise".
    assurance_kind: str = "simultaneous"
    #: The pointwise credible level the region uses (>= ``assurance``; equal for "pointwise").
    assurance_level: float | None = None

    @property
    def inside(self) -> np.ndarray:
        """Design space at feasible settings: joint probability >= threshold, or, with an assurance
        level gamma, its lower gamma credible bound >= threshold."""
        if self.assurance is not None and self.lower_bound is not None:
            return (self.lower_bound >= self.threshold) & self.feasible  # the bound is at assurance_level
        return (self.probability >= self.threshold) & self.feasible

    @property
    def point_estimate_inside(self) -> np.ndarray:
        """Where the posterior predictive probability (the point estimate) is >= threshold (and feasible)."""
        return (self.probability >= self.threshold) & self.feasible

    @property
    def definition(self) -> str:
        """Which design space is shown, in one sentence."""
        from doe.assurance import describe_assurance

        return describe_assurance(self.assurance, self.threshold, self.assurance_kind, self.assurance_level,
                                  int(self.feasible.sum()))

    @property
    def fraction_inside(self) -> float:
        """Share of the feasible grid points inside the design space."""
        n = int(self.feasible.sum())
        return float(self.inside.sum() / n) if n else 0.0

    @property
    def overlay_inside(self) -> np.ndarray:
        """Overlapping means: every CQA's predicted mean within its limits (and feasible)."""
        ok = self.feasible.copy()
        for name, (lo, hi) in self.limits.items():
            ok &= _within(self.mean[name], lo, hi)
        return ok

    @property
    def interval_inside(self) -> np.ndarray | None:
        """Every CQA's interval bound(s) within its limits (and feasible); None without an interval."""
        if self.lower is None or self.upper is None:
            return None
        ok = self.feasible.copy()
        for name, (lo, hi) in self.limits.items():
            if lo is not None:
                ok &= self.lower[name] >= lo
            if hi is not None:
                ok &= self.upper[name] <= hi
        return ok


def _within(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    ok = np.isfinite(values)
    if lo is not None:
        ok &= values >= lo
    if hi is not None:
        ok &= values <= hi
    return ok


def _fixed_settings(pm: PredictiveModel, fixed: Mapping[str, Any] | None, free: list[str],
                    *, complete: bool = False) -> dict[str, Any]:
    """Validated settings of the factors not in ``free`` (defaults: centre, first level)."""
    study = pm.study
    fixed = dict(fixed or {})
    for name in fixed:
        if name not in study.factor_names:
            raise ModelError(f"Unknown factor '{name}'.{did_you_mean(name, study.factor_names)} "
                             f"Factors are {quoted_list(study.factor_names)}.")
    missing = [f.name for f in study.factors if f.name not in free and f.name not in fixed]
    if complete and missing:
        raise ModelError(f"Give the set point of {quoted_list(missing)}.")
    out = {}
    for f in study.factors:
        if f.name in free:
            continue
        value = fixed.get(f.name, f.levels[0] if f.is_categorical else f.center)
        out[f.name] = _checked_value(f, value)
    return out


def _checked_value(f: Factor, value: Any) -> Any:
    if f.is_categorical:
        return f.levels[_level_index(f, value)]
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{f.name} must be a number in {f.units or 'its units'}; got {value!r}.") from None
    tol = 1e-9 * (f.high - f.low)
    if not (f.low - tol <= x <= f.high + tol):
        raise ModelError(f"{f.name} = {x:g} is outside the tested range {f.describe_range()}: the design "
                         "space is only known inside the tested region.")
    return min(max(x, f.low), f.high)


def _numeric_factor(pm: PredictiveModel, name: str) -> Factor:
    f = pm.study.factor(name) if name in pm.study.factor_names else None
    if f is None:
        raise ModelError(f"Unknown factor '{name}'.{did_you_mean(name, pm.study.factor_names)}")
    if f.is_categorical:
        raise ModelError(f"{name} is categorical: a probability map needs numeric factors on its axes.")
    return f


def space_grid(pm: PredictiveModel, x: str, y: str, fixed: Mapping[str, Any] | None = None, *,
               n: int = 50, threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
               setpoint_sd: dict[str, float] | None = None, interval: Any = None,
               assurance: float | None = None, assurance_kind: str = "simultaneous") -> SpaceGrid:
    """Probability map of the design space over ``x`` and ``y`` within their study ranges.

    Parameters
    ----------
    pm : PredictiveModel
    x, y : str
        Numeric factors on the axes.
    fixed : dict, optional
        Settings of the other factors (actual units; tested level names). A
        factor left out is at its centre (numeric) or first level (categorical);
        ``SpaceGrid.fixed`` says which.
    n : int
        Points per axis.
    threshold : float
        Design space: joint probability >= threshold (e.g. 0.9).
    draws, seed, setpoint_sd
        As :func:`probability`.
    interval : str or dict, optional
        'confidence', 'prediction' or 'tolerance', or ``{'kind', 'level',
        'proportion'}`` (defaults 0.95 and 0.99): interval bounds per CQA,
        one-sided for a one-sided spec, back-transformed.
    assurance : float, optional
        Assurance level gamma (e.g. 0.95): the design space is then where a lower credible bound of
        P(all in spec | parameters) is >= ``threshold`` (:mod:`doe.assurance`), kept in
        ``SpaceGrid.lower_bound``.
    assurance_kind : {"simultaneous", "pointwise"}
        "simultaneous" (default): with posterior probability >= gamma every feasible point of the
        region meets the threshold at once (the pointwise level is raised to
        ``SpaceGrid.assurance_level`` by :func:`doe.assurance.simultaneous_level` over this map's
        points); "pointwise": the lower gamma bound at each point.

    Returns
    -------
    SpaceGrid

    Raises
    ------
    ModelError
        Unknown factor, categorical axis, an untested categorical level or a fixed
        setting outside the tested range.
    """
    fx, fy = _numeric_factor(pm, x), _numeric_factor(pm, y)
    if x == y:
        raise ModelError("Choose two different factors for the axes.")
    if not 0 < threshold < 1:
        raise ModelError(f"The probability threshold must be between 0 and 1; got {threshold}.")
    if n < 2:
        raise ModelError("Use at least 2 points per axis.")
    spec = _interval_spec(interval)
    assurance = _check_assurance_opts(assurance, setpoint_sd)
    others = _fixed_settings(pm, fixed, [x, y])
    xs, ys = np.linspace(fx.low, fx.high, n), np.linspace(fy.low, fy.high, n)
    gx, gy = np.meshgrid(xs, ys)
    frame = pd.DataFrame({x: gx.ravel(), y: gy.ravel(), **{k: [v] * gx.size for k, v in others.items()}})
    res = probability(pm, frame, draws=draws, seed=seed, setpoint_sd=setpoint_sd)
    shape = gx.shape
    bound, n_theta, level = None, 0, None
    feasible = pm.study.feasible(frame)
    if assurance is not None:
        from doe import assurance as _assurance

        level = _assurance.assurance_level(pm, frame[feasible], threshold, assurance, assurance_kind,
                                           draws=draws, seed=seed)
        bound = _assurance.lower_bound(pm, frame, level, draws=draws, seed=seed).reshape(shape)
        n_theta = _assurance.parameter_draws(pm, draws, seed)
    lower = upper = None
    if spec is not None:
        U, L = _settings_arrays(pm, frame)
        lo, hi = _interval_bounds(pm, U, L, spec)
        lower = {k: v.reshape(shape) for k, v in lo.items()}
        upper = {k: v.reshape(shape) for k, v in hi.items()}
    return SpaceGrid(
        x=x, y=y, fixed=others, xs=xs, ys=ys, probability=res.joint.reshape(shape),
        per_cqa={k: v.reshape(shape) for k, v in res.per_cqa.items()},
        mean={k: v.reshape(shape) for k, v in res.mean.items()}, lower=lower, upper=upper,
        interval=spec, feasible=feasible.reshape(shape), threshold=float(threshold),
        draws=res.draws, seed=int(seed), mc_se=res.mc_se, setpoint_sd=res.setpoint_sd, method=pm.describe() + ".",
        limits=pm.limits(), assurance=assurance, lower_bound=bound, assurance_draws=n_theta,
        assurance_kind=assurance_kind, assurance_level=level,
    )


def _check_assurance_opts(assurance: Any, setpoint_sd: dict[str, float] | None) -> float | None:
    from doe.assurance import check_assurance

    g = check_assurance(assurance)
    if g is not None and setpoint_sd and any(float(v or 0) > 0 for v in setpoint_sd.values()):
        raise ModelError("An assurance level and set-point variation cannot be combined: the assured design "
                         "space is computed for settings held exactly. Remove one of them.")
    return g


# -- single points ---------------------------------------------------------------------------------
def _frame(pm: PredictiveModel, base: dict[str, Any], n: int = 1, **columns: Any) -> pd.DataFrame:
    data = {f: [v] * n for f, v in base.items()}
    data.update(columns)
    return pd.DataFrame(data, columns=pm.study.factor_names)


class _Points:
    """Settings as numpy columns, one per factor: what the evaluation and Study.feasible read of a DataFrame.

    Internal (PARs, pattern search): building a small DataFrame per evaluation
    costs more than the evaluation. Columns hold what ``DataFrame[c].to_numpy()``
    would: numbers as numbers, level names as an object array.
    """

    def __init__(self, data: dict[str, np.ndarray], n: int):
        self._data, self._n = data, n
        self.columns = list(data)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name]

    def feasible(self, study: Study) -> np.ndarray:
        """As :meth:`Study.feasible` on the same table."""
        if not study.constraints or self._n == 0:
            return np.ones(self._n, dtype=bool)
        return _constraints_feasible(study.constraints, {f.name: self._data[f.name] for f in study.factors})


def _points(pm: PredictiveModel, base: dict[str, Any], n: int = 1, **columns: Any) -> _Points | pd.DataFrame:
    """:func:`_frame` as :class:`_Points` (a DataFrame when a column is not plainly numbers or level names)."""
    values = {f: [v] * n for f, v in base.items()}
    values.update(columns)
    data = {}
    for f in pm.study.factors:
        if f.name not in values:
            return _frame(pm, base, n, **columns)
        v = values[f.name]
        if f.is_categorical:
            col = np.empty(n, dtype=object)
            col[:] = list(v)
            if not all(isinstance(x, str) for x in col):
                return _frame(pm, base, n, **columns)
        else:
            col = np.asarray(v)
            if col.dtype.kind not in "if" or col.shape != (n,):
                return _frame(pm, base, n, **columns)
        data[f.name] = col
    return _Points(data, n)


def _feasible(pm: PredictiveModel, settings: pd.DataFrame | _Points) -> np.ndarray:
    return settings.feasible(pm.study) if isinstance(settings, _Points) else pm.study.feasible(settings)


def _ok(pm: PredictiveModel, frame: pd.DataFrame | _Points, threshold: float, opts: dict[str, Any]
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, feasible, ok) at the rows of ``frame``.

    ``opts['assurance']`` (optional): ok is then the assured decision (:mod:`doe.assurance`); the
    probability returned is still the posterior predictive probability.
    """
    opts = dict(opts)
    gamma = opts.pop("assurance", None)
    p = _joint_probability(pm, frame, **opts)
    feas = _feasible(pm, frame)
    if gamma is None:
        return p, feas, (p >= threshold) & feas
    from doe import assurance as _assurance

    bound = _assurance.lower_bound(pm, frame, gamma, draws=opts.get("draws"), seed=opts.get("seed", 0))
    return p, feas, (bound >= threshold) & feas


# -- proven acceptable ranges ----------------------------------------------------------------------
class PARResult(dict):
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
        return json_ready(out)


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
    lower gamma credible bound of P(all in spec | parameters) is >= threshold (:mod:`doe.assurance`);
    the probabilities reported stay the posterior predictive ones, and ``lower_bound`` is the bound
    at the set point.

    Returns
    -------
    PARResult
        A dict factor -> (low, high) or [levels], with ``limited_by``,
        ``end_probability``, ``probability`` at the set point and ``reason``.
    """
    sp = _fixed_settings(pm, set_point, [], complete=True)
    gamma = _check_assurance_opts(assurance, setpoint_sd)
    opts = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    if gamma is not None:
        opts["assurance"] = gamma
    p0, feas0, ok0 = _ok(pm, _points(pm, sp), threshold, opts)
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
    ranges, limited, ends = {}, {}, {}
    for f in pm.study.factors:
        if f.is_categorical or f.kind == "discrete":  # tested levels only: no values in between
            frame = _points(pm, sp, len(f.levels), **{f.name: list(f.levels)})
            _, _, ok = _ok(pm, frame, threshold, opts)
            ranges[f.name] = [lv for lv, good in zip(f.levels, ok) if good]
            continue
        ranges[f.name], limited[f.name], ends[f.name] = _par_numeric(pm, sp, f, threshold, opts, n)
    return PARResult(ranges, limited_by=limited, end_probability=ends, **info)


def lower_bound_at(pm: PredictiveModel, set_point: Mapping[str, Any], assurance: float, *,
                   draws: int | None = None, seed: int = 0) -> float:
    """The lower ``assurance`` credible bound of P(all CQAs in spec | parameters) at one set point
    (:func:`doe.assurance.lower_bound`)."""
    from doe.assurance import lower_bound

    sp = _fixed_settings(pm, set_point, [], complete=True)
    return float(lower_bound(pm, _frame(pm, sp), assurance, draws=draws, seed=seed)[0])



def _par_numeric(pm: PredictiveModel, sp: dict[str, Any], f: Factor, threshold: float,
                 opts: dict[str, Any], n: int) -> tuple[tuple[float, float], tuple[str, str], tuple[float, float]]:
    grid = np.union1d(np.linspace(f.low, f.high, max(n, 3)), [sp[f.name]])
    p, feas, ok = _ok(pm, _points(pm, sp, len(grid), **{f.name: grid}), threshold, opts)
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
        p, feas, ok = _ok(pm, _points(pm, sp, len(xs), **{f.name: xs}), threshold, opts)
        k = max(int(np.argmin(ok)), 1) if not ok.all() else len(xs) - 1
        good, bad, p_good, bad_feasible = xs[k - 1], xs[k], float(p[k - 1]), bool(feas[k])
    return float(good), p_good, bad_feasible


# -- normal operating ranges ----------------------------------------------------------------------
def check_nor(pm: PredictiveModel, set_point: Mapping[str, Any], nor: Mapping[str, tuple[float, float]], *,
              threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
              setpoint_sd: dict[str, float] | None = None, points: int = 5,
              assurance: float | None = None) -> dict[str, Any]:
    """Whether a normal operating range (a box of numeric factors) lies inside the design space.

    The box is evaluated on a ``points``-per-factor grid including its corners,
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
    sp = _fixed_settings(pm, set_point, [], complete=True)
    box = _check_box(pm, nor)
    centre = {f: (sp[f] if lo <= sp[f] <= hi else (lo + hi) / 2) for f, (lo, hi) in box.items()}
    opts = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    gamma = _check_assurance_opts(assurance, setpoint_sd)
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


def _check_box(pm: PredictiveModel, nor: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    if not nor:
        raise ModelError("Give the normal operating range of at least one numeric factor.")
    box = {}
    for name, rng in nor.items():
        f = _numeric_factor(pm, name)
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
    combos = np.array(list(itertools.product(*axes)))
    frame = _frame(pm, sp, len(combos), **{f: combos[:, i] for i, f in enumerate(shrunk)})
    p, feas, ok = _ok(pm, frame, threshold, opts)
    tested = np.ones(len(frame), dtype=bool)
    for f in shrunk:
        fac = pm.study.factor(f)
        tested &= (frame[f] >= fac.low - 1e-9).to_numpy() & (frame[f] <= fac.high + 1e-9).to_numpy()
    ok &= tested
    worst = int(np.argmin(np.where(feas & tested, p, -1.0)))
    return {"ok": bool(ok.all()), "min": float(np.min(np.where(feas & tested, p, 0.0))),
            "where": {f: float(frame[f].iloc[worst]) for f in shrunk}, "failing": int((~ok).sum()),
            "n": len(frame), "box": shrunk}


# -- robust set point -----------------------------------------------------------------------------
def robust_set_point(pm: PredictiveModel, *, fixed: Mapping[str, Any] | None = None, threshold: float = DEFAULT_THRESHOLD,
                     draws: int | None = None, seed: int = 0, setpoint_sd: dict[str, float] | None = None,
                     grid: int = 21) -> dict[str, Any]:
    """The settings that maximise the joint probability of meeting every spec (Peterson 2004).

    Every allowed combination of categorical levels (at least one feasible
    point) is searched on a ``grid``-per-axis grid of the numeric factors
    (fewer points per axis with many factors, at most ~20,000 per
    combination; the tested levels of a discrete factor), within the study
    ranges and constraints. Points within
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
    held = _fixed_settings(pm, fixed, [], complete=False) if fixed else {}
    held = {k: v for k, v in held.items() if k in (fixed or {})}
    free_num = [f for f in pm.numeric if f not in held]
    free_cat = [f for f in pm.categorical if f not in held]
    opts = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    frame, coded = _search_grid(pm, held, free_num, free_cat, grid)
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
    point, _ = _pattern_search(pm, point, continuous, float(p[pick]), tol, threshold, opts, grid)
    return _set_point_report(pm, point, float(dist[list(cand).index(pick)]), threshold, opts,
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
    U, L = _settings_arrays(pm, frame)
    dr = pm.draws(opts.get("draws"), opts.get("seed", 0))
    shift = _shift_draws(pm, dr, opts.get("setpoint_sd"))
    n = dr.n
    sizes = [len(pm.study.factor(f).levels) for f in pm.categorical]
    spec = pm.spec_cqas
    groups = []
    for combo, local in _groups(L[rows_all]):
        rows = rows_all[local]
        sides = _group_margins(pm, dr, combo, sizes, shift)
        if not spec or any(cs is not None and not cs for cs in sides):  # always 1 (no spec) or never 0
            p[rows] = 1.0 if not spec else 0.0
            continue
        M = _monomials(U[rows], pm.exponents)
        mats = [np.ascontiguousarray(M[:, c.basis], dtype=np.float32) for c in spec]
        probe = np.zeros(len(rows), dtype=bool)
        probe[::max(1, len(rows) // 16)] = True
        groups.append((rows, sides, mats, probe))
    if not groups:
        return p
    best_combo, orders, nearest = [], [], []
    for rows, sides, mats, probe in groups:  # probes: exact, and per-CQA shares to order the CQAs
        joint, per = _count_in_spec([m[probe] for m in mats], sides, int(probe.sum()), n)
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
    others' shares are exactly those of :func:`_count_in_spec` (the same
    float32 margins and products).
    """
    n_points = len(mats[0])
    out = np.zeros(n_points)
    early = np.zeros(n_points, dtype=bool)
    if not order:
        return np.ones(n_points), early
    chunk = max(1, _CHUNK_ELEMENTS // n_draws)
    width = _count_width(n_draws)
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
            for k, coef in enumerate(sides[i]):
                np.einsum("pk,kn->pn", Mi, coef, out=w, optimize=False)  # as _count_in_spec
                np.greater_equal(w, 0.0, out=this if k == 0 else side)
                if k:
                    np.logical_and(this, side, out=this)
            if ok_buf is None:
                ok_buf = this_buf.copy()
            else:
                np.logical_and(ok_buf, this_buf, out=ok_buf)
            share = _row_counts(ok_buf) / n_draws
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


def _search_grid(pm: PredictiveModel, held: dict[str, Any], free_num: list[str], free_cat: list[str],
                 grid: int) -> tuple[pd.DataFrame, np.ndarray]:
    per_axis = max(3, min(grid, int(20_000 ** (1 / max(len(free_num), 1)))))
    axes = [pm.study.factor(f).to_coded(pm.study.factor(f).levels) if pm.study.factor(f).kind == "discrete"
            else np.linspace(-1, 1, per_axis) for f in free_num]
    num = np.array(list(itertools.product(*axes))) if free_num else np.zeros((1, 0))
    cats = list(itertools.product(*[pm.study.factor(f).levels for f in free_cat]))
    rows = len(num) * len(cats)
    data = {f: [v] * rows for f, v in held.items()}
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
                    threshold: float, opts: dict[str, Any], grid: int) -> tuple[dict[str, Any], float]:
    """Compass search of the numeric factors on common random numbers (real improvements only)."""
    step = 1.0 / max(grid - 1, 1)
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
        frame = _points(pm, {}, len(trials), **{f: [t[f] for t in trials] for f in pm.study.factor_names})
        p, feas, _ = _ok(pm, frame, threshold, opts)
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
        | parameters), :mod:`doe.assurance`), and ``inside`` means that bound is >= threshold.
    """
    sp = _fixed_settings(pm, set_point, [], complete=True)
    gamma = _check_assurance_opts(assurance, setpoint_sd)
    opts = {"draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    out = _set_point_report(pm, sp, math.nan, threshold, opts, [])
    del out["distance_to_edge"], out["combinations"]
    if gamma is not None:
        lb = lower_bound_at(pm, sp, gamma, draws=draws, seed=seed)
        out.update(assurance=gamma, probability_lower_bound=lb, inside=bool(lb >= threshold and out["feasible"]))
    return out


def _set_point_report(pm: PredictiveModel, point: dict[str, Any], dist: float, threshold: float,
                      opts: dict[str, Any], combos: list[dict[str, Any]]) -> dict[str, Any]:
    frame = _frame(pm, point)
    feasible = bool(pm.study.feasible(frame)[0])
    res = probability(pm, frame, **opts)
    predictions = {}
    for c in pm.cqas:
        pred = c.fm.predict(frame, "prediction", 0.95).iloc[0]
        r = pm.study.response(c.name)
        predictions[c.name] = {"mean": float(pred["mean"]), "lower_95pi": float(pred["lower"]),
                               "upper_95pi": float(pred["upper"]), "spec": r.spec_text(),
                               "units": r.units,
                               "mean_in_spec": bool(_within(np.array([pred["mean"]]), c.lower, c.upper)[0])}
    n = res.draws
    coded = {f: float(pm.study.factor(f).to_coded(point[f])) for f in pm.numeric}
    return {"settings": {k: plain(v) for k, v in point.items()}, "coded": coded,
            "probability": float(res.joint[0]), "per_cqa": {k: float(v[0]) for k, v in res.per_cqa.items()},
            "inside": bool(res.joint[0] >= threshold and feasible), "feasible": feasible,
            "distance_to_edge": dist, "predictions": predictions,
            "combinations": combos, "threshold": threshold, "draws": n,
            "mc_se": float(math.sqrt(res.joint[0] * (1 - res.joint[0]) / n))}


# -- summary for the CLI ----------------------------------------------------------------------------
def summary_json(pm: PredictiveModel, *, set_point: Mapping[str, Any] | None = None, threshold: float = DEFAULT_THRESHOLD,
                 draws: int | None = None, seed: int = 0, setpoint_sd: dict[str, float] | None = None,
                 x: str | None = None, y: str | None = None, n: int = 50,
                 assurance: float | None = None, assurance_kind: str = "simultaneous") -> dict[str, Any]:
    """JSON-ready design-space summary: set point, its probability, PARs and one map's share inside.

    Without ``set_point`` the robust set point (:func:`robust_set_point`) is used.
    The map is over ``x`` and ``y`` (default: :func:`doe.space_view.view_axes`, the pair of numeric
    factors over which the probability varies most through the set point)
    with the other factors at the set point; ``grid.fraction_inside`` is the
    share of its feasible points inside the design space.

    With ``assurance`` (gamma) the design space is the assured one (:mod:`doe.assurance`): ``inside``,
    ``par`` and ``grid`` use a lower credible bound, and the output adds ``assurance``,
    ``assurance_kind``, ``assurance_level`` (the pointwise level used: gamma for "pointwise", raised so
    that the map's region holds simultaneously for "simultaneous", over the map's points, or over
    the PAR scan lines when there is no map), ``probability_lower_bound_at_set_point`` (the lower
    gamma bound) and ``definition``. The robust set point is still the maximum of the posterior
    predictive probability.
    """
    return summary_and_grid(pm, set_point=set_point, threshold=threshold, draws=draws, seed=seed,
                            setpoint_sd=setpoint_sd, x=x, y=y, n=n, assurance=assurance,
                            assurance_kind=assurance_kind)[0]


def summary_and_grid(pm: PredictiveModel, *, set_point: Mapping[str, Any] | None = None,
                     threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
                     setpoint_sd: dict[str, float] | None = None, x: str | None = None, y: str | None = None,
                     n: int = 50, assurance: float | None = None, assurance_kind: str = "simultaneous"
                     ) -> tuple[dict[str, Any], SpaceGrid | None]:
    """:func:`summary_json` and the map it summarises (None without two numeric factors), so a caller that
    draws the map (the report) does not compute it again."""
    opts = {"threshold": threshold, "draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    gamma = _check_assurance_opts(assurance, setpoint_sd)
    source = "given"
    if set_point is None:
        set_point, source = robust_set_point(pm, **opts)["settings"], "robust (maximum probability)"
    sp = _fixed_settings(pm, set_point, [], complete=True)
    if x and y:
        axes = [x, y]
    else:  # the pair over which the probability varies most through the set point (as the page opens)
        from doe.space_view import view_axes

        axes = list(view_axes(pm, sp, **opts) or ())
    g = level = lines = None
    if len(axes) == 2:
        g = space_grid(pm, axes[0], axes[1], {k: v for k, v in sp.items() if k not in axes}, n=n, **opts,
                       assurance=gamma, assurance_kind=assurance_kind)
        level = g.assurance_level
    elif gamma is not None:
        from doe.assurance import assurance_level

        lines = _par_lines(pm, sp)
        level = assurance_level(pm, lines, threshold, gamma, assurance_kind, draws=draws, seed=seed)
    par = proven_acceptable_ranges(pm, sp, **opts, assurance=level)
    report = set_point_report(pm, sp, **opts, assurance=level)
    out: dict[str, Any] = {
        "method": pm.describe(), "cqas_with_specs": pm.spec_names, "not_modelled": pm.not_modelled,
        "set_point": {k: plain(v) for k, v in sp.items()}, "set_point_source": source,
        "probability_at_set_point": par.probability, "per_cqa_at_set_point": report["per_cqa"],
        "predictions_at_set_point": report["predictions"], "inside": report["inside"], "threshold": threshold,
        "par": {k: list(v) for k, v in par.items()}, "par_limited_by": par.limited_by, "par_reason": par.reason,
        "correlation": None if pm.correlation is None else pm.correlation.round(4).to_dict(),
        "warnings": list(pm.warnings), "grid": None,
    }
    if gamma is not None:
        from doe.assurance import describe_assurance

        points = int(g.feasible.sum()) if g is not None else len(lines)
        out.update(assurance=gamma, assurance_kind=assurance_kind, assurance_level=level,
                   probability_lower_bound_at_set_point=lower_bound_at(pm, sp, gamma, draws=draws, seed=seed),
                   definition=describe_assurance(gamma, threshold, assurance_kind, level, points))
    if g is not None:
        out["grid"] = {"x": g.x, "y": g.y, "fixed": g.fixed, "fraction_inside": g.fraction_inside, "n": n,
                       "threshold": threshold, "draws": g.draws, "mc_se": g.mc_se}
        if gamma is not None:
            out["grid"].update(assurance=gamma, assurance_kind=assurance_kind, assurance_level=level,
                               fraction_inside_point_estimate=float(
                                   g.point_estimate_inside.sum() / max(1, int(g.feasible.sum()))),
                               assurance_draws=g.assurance_draws)
    return json_ready(out), g


def _par_lines(pm: PredictiveModel, sp: dict[str, Any], n: int = 201) -> pd.DataFrame:
    """The feasible settings of the PAR scans through ``sp``: each numeric factor over its range, the
    others at the set point (the reference of a simultaneous assurance level when there is no map)."""
    frames = [_frame(pm, sp)]
    for name in pm.numeric:
        f = pm.study.factor(name)
        if f.kind == "discrete":
            frames.append(_frame(pm, sp, len(f.levels), **{name: list(f.levels)}))
        else:
            frames.append(_frame(pm, sp, n, **{name: np.linspace(f.low, f.high, n)}))
    frame = pd.concat(frames, ignore_index=True)
    return frame[pm.study.feasible(frame)].reset_index(drop=True)
