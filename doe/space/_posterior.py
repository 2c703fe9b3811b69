"""The posterior predictive of the CQA models and its Monte Carlo draws.

:class:`PredictiveModel` (built by :func:`build_predictive`) holds, per CQA with a spec, the fitted
model on a monomial basis, the residual correlation and the cached posterior draws that every
probability of :mod:`doe.space` uses.

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
   tr(M_i M_j), M_i = I - H_i: Zellner's unbiased SUR estimator, computed without any n x n matrix by
   :func:`zellner_denominators`), d the
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
   mean is OLS rather than GLS otherwise). It is drawn without summing over the runs: the stacked
   maps of every CQA's runs through (X_i'X_i)^-1 X_i' have a fixed P x P cross-product C (P = sum p_i),
   so each draw needs m x P standard normals and a root of C (:func:`_coefficient_root`), memory and
   time O(n P^2) once instead of O(n m) per draw.
3. **New run.** y_new,i(x) = x_i' beta_i + e_i with e ~ N(0, Sigma).

**The exact case.** When every CQA with a spec was fitted on the same runs with the same model
(the same column space), steps 1-2 are replaced by the exact posterior: Sigma ~
inverse-Wishart(n - p, E'E) with E the n x m residuals, and B | Sigma ~ matrix normal; a new run is
then multivariate t with n - p - m + 1 df, location x'B_hat and shape (1 + x'(X'X)^-1 x) E'E /
(n - p - m + 1) (Box & Tiao 1973, sec. 8.4: the matrix-variate t); ``PredictiveModel.exact`` says
which case applies and :meth:`PredictiveModel.describe` names it.

**Different models or runs.** When the CQAs are correlated but their models (or runs) differ,
the exact posterior of the seemingly-unrelated regression is drawn by Gibbs sampling
(:func:`doe.space.sur_draws`: many chains side by side, missing responses imputed, convergence
checked; ``PredictiveModel.gibbs``); steps 1-2 below are the fallback when it refuses the data.

**Random effects.** When any CQA with a spec was fitted as a linear mixed model (``fm.mixed``: donors,
hPL lots, whole plots), every CQA with a spec is drawn by :mod:`doe.space._random` instead: GLS
coefficients, variance components drawn with their uncertainty, random effects correlated across CQAs,
and a new run with a new donor, lot and whole plot (``random_effects="new"``, the default) or the
average ones (``"average"``); a fully randomised CQA among them keeps its least-squares draw.
``PredictiveModel.correlation`` is then the correlation of a new run's deviation across the CQAs.

The SUR-style approximation: for one CQA this is exactly
y_new | data ~ t_{n-p}(x'beta_hat, s^2 (1 + x'(X'X)^-1 x));
with several CQAs every marginal is still exactly that Student t (see
:func:`doe.space.closed_form_probability`) and the joint carries the estimated residual
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
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import special

from doe._threads import one_blas_thread
from doe.errors import ModelError, quoted_list
from doe.fit import FittedModel, Transform
from doe.model import effect_codes
from doe.space import _random, _sur
from doe.study import Study

__all__ = ["DEFAULT_DRAWS", "GIBBS_MAX_SYSTEM", "MIN_DRAWS", "CQAModel", "Draws", "PredictiveModel", "build_predictive",
           "decreasing", "fitted_limits", "setpoint_normals"]

#: Monte Carlo draws by default: the standard error of any probability is below 0.5/sqrt(4000) = 0.008.
DEFAULT_DRAWS = 4000
#: Fewer draws than this are refused (the Monte Carlo error would exceed 0.05).
MIN_DRAWS = 100
#: Draw sets kept per predictive model.
_MAX_CACHED = 6


# -- spec limits on the fitted scale ----------------------------------------------------------
def fitted_limits(tf: Transform, lower: float | None, upper: float | None) -> tuple[float, float]:
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


def decreasing(tf: Transform) -> bool:
    return tf.kind == "power" and tf.power < 0


# -- the predictive model ---------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _effect_codes(n_levels: int) -> np.ndarray:
    return effect_codes(n_levels)


@dataclass(eq=False)
class CQAModel:
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
    _maps: dict[tuple[tuple[int, ...], tuple[int, ...]], np.ndarray] = field(default_factory=dict, repr=False)  # combo -> basis_map (small; one per combination)

    @property
    def has_spec(self) -> bool:
        return self.lower is not None or self.upper is not None

    @property
    def beta(self) -> np.ndarray:
        """The fixed-effect coefficients: GLS for a CQA with random effects (``fm.mixed``), else least squares."""
        mixed = _random.mixed_of(self.fm)
        return self.fm.least_squares.coef if mixed is None else np.asarray(mixed.coef, dtype=float)

    @property
    def random_components(self) -> dict[str, float]:
        """Variance components {random effect: variance, ..., "Residual": variance}; {} when fully randomised."""
        mixed = _random.mixed_of(self.fm)
        return {} if mixed is None else {str(k): float(v) for k, v in mixed.components.items()}

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
class Draws:
    """One set of posterior draws (common random numbers for every point)."""

    n: int
    seed: int
    coef: list[np.ndarray]  # per CQA with a spec: (p_i x n) coefficient draws
    noise: np.ndarray  # (m x n) new-run errors on the fitted scale
    sigma: np.ndarray  # (m x n) residual SDs
    eta: np.ndarray | None = None  # (numeric factors x n) standard normals for set-point variation
    chol: np.ndarray | None = None  # (n x m x m) Cholesky factors of the covariance draws (fitted scale)
    margins: dict[Any, Any] = field(default_factory=dict, repr=False)  # combo -> float32 margins (no set-point SD)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "margins": {}}  # a cache: not pickled


@dataclass(eq=False)
class PredictiveModel:
    """The Bayesian posterior predictive of the fitted CQA models (see the module notes).

    Build it with :func:`build_predictive`. Attributes are read-only facts about
    the model; draws are made lazily and cached by (seed, draws).
    """

    study: Study
    cqas: list[CQAModel]
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
    #: Gibbs sampling of the seemingly-unrelated regression (doe.space.sur_draws); False if the sampler refused the data
    #: (the SUR-style approximation is used, with a warning).
    gibbs: bool = False
    #: The Gibbs sampler's diagnostics of the last draw set (chains, burn-in, R-hat, ESS, converged).
    gibbs_diagnostics: dict[str, Any] = field(default_factory=dict, repr=False)
    #: Why the exact (Gibbs) posterior is not used when the CQAs are correlated with different models ("" if it is).
    gibbs_note: str = ""
    #: With random effects (a CQA with a spec fitted as a mixed model, ``fm.mixed``): "new" (a run with a new donor,
    #: lot and whole plot) or "average" (the average ones); None when every CQA with a spec is fully randomised.
    random_effects: str | None = None
    #: The random-effect structure the draws use (doe.space._random.RandomStructure), None when fully randomised.
    random: _random.RandomStructure | None = field(default=None, repr=False)
    _sscp: np.ndarray | None = field(default=None, repr=False)
    _union_runs: list[Any] = field(default_factory=list, repr=False)
    _rows: list[np.ndarray] = field(default_factory=list, repr=False)
    _cache: dict[tuple[int, int], Draws] = field(default_factory=dict, repr=False)

    @property
    def spec_cqas(self) -> list[CQAModel]:
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
        rs = self.random
        who = "a new run" if rs is None else _random.describe_random_effects(self.random_effects, rs.names)
        text = (f"Posterior predictive probability that {who} meets every CQA spec ({names}): "
                "Bayesian, non-informative prior (Peterson 2004; Peterson & Lief 2010)")
        if rs is not None:
            mixed = [c.name for c in self.spec_cqas if c.random_components]
            text += (f"; random effects ({', '.join(rs.names) or 'none estimated'}) of {', '.join(mixed)} from the "
                     "mixed models: GLS coefficients, variance components drawn from scaled inverse chi-squares "
                     "with their Satterthwaite df")
            if self.random_effects == "new":
                text += ", a new level of every random effect added to the new run"
            else:
                text += ", the random effects at 0 (the average level): the new run carries the residual only"
            if len(self.spec_cqas) > 1:
                text += (", correlated across CQAs (from the BLUPs and conditional residuals)" if self.correlated
                         else ", CQAs independent")
        elif self.exact:
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

    def draws(self, n: int | None = None, seed: int = 0) -> Draws:
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


@one_blas_thread
def build_predictive(study: Study, fits: Mapping[str, Any], *, seed: int = 0, draws: int | None = None,
                     correlated: bool = True, random_effects: str | None = None) -> PredictiveModel:
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
    random_effects : {"new", "average"}, optional
        For CQAs fitted as mixed models (``fm.mixed``: donors, hPL lots, whole plots): "new" (default when
        any CQA with a spec has random effects) is the probability that a run with a new donor, lot and
        whole plot meets every spec; "average" the probability for the average ones (the random effects
        at 0). Ignored when every CQA with a spec is fully randomised. See :mod:`doe.space._random`.

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
    mixed = any(_random.mixed_of(c.fm) is not None for c in pm.spec_cqas)
    pm.random_effects = _random.check_random_effects(random_effects, mixed)
    if mixed:
        _setup_random(pm, correlated)
    elif correlated:
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
               categorical: list[str]) -> CQAModel:
    index = {tuple(e): i for i, e in enumerate(exps.tolist())}
    used = {_exponent(c.num, numeric) for c in fm.model_columns if not c.is_block}
    closed = {tuple(e) for u in used for e in itertools.product(*[range(k + 1) for k in u])}
    basis = np.array(sorted(index[e] for e in closed), dtype=int)
    pos = {b: i for i, b in enumerate(basis.tolist())}
    col_pos = np.array([-1 if c.is_block else pos[index[_exponent(c.num, numeric)]] for c in fm.model_columns])
    col_cat = [tuple((categorical.index(f), k) for f, k in c.cat) for c in fm.model_columns]
    r = study.response(name)
    zl, zu = fitted_limits(fm.fitted_transform, r.lower, r.upper)
    return CQAModel(name, fm, r.lower, r.upper, zl, zu, basis, col_pos, col_cat)


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


def _setup_random(pm: PredictiveModel, correlated: bool) -> None:
    """The random-effect structure of the CQAs with specs (some fitted as mixed models) and the correlation of
    a new run's deviation across them (:mod:`doe.space._random`)."""
    cqas = pm.spec_cqas
    assert pm.random_effects is not None  # set with mixed CQAs
    rs = _random.random_structure(pm.spec_names, [c.fm for c in cqas], pm._rows, len(pm._union_runs),
                                  pm.random_effects, correlated=correlated)
    pm.random = rs
    pm.warnings.extend(rs.warnings)
    pm.shared_runs = len(_shared_rows(pm._rows, len(pm._union_runs)))
    cov = rs.new_run_covariance()
    sd = np.sqrt(np.diag(cov))
    if len(cqas) > 1 and np.all(sd > 0):
        R = cov / np.outer(sd, sd)
        if np.max(np.abs(R - np.eye(len(R)))) > 0:
            pm.correlation = pd.DataFrame(R, index=pm.spec_names, columns=pm.spec_names)


def _estimate_correlation(pm: PredictiveModel) -> None:
    """Residual correlation of the CQAs with specs on their shared runs (Zellner 1962), and its df."""
    cqas = pm.spec_cqas
    m = len(cqas)
    if m < 2:
        return
    shared_rows = _shared_rows(pm._rows, len(pm._union_runs))
    if len(shared_rows) < 3:
        pm.warnings.append("The CQAs share fewer than 3 runs: their correlation is not estimated "
                           "(treated as independent).")
        return
    E, Qs = [], []
    for c, rows in zip(cqas, pm._rows):
        pick = _positions(rows, shared_rows, len(pm._union_runs))
        Qs.append(c.fm.least_squares.Q[pick])
        E.append(c.fm.least_squares.resid[pick])
    D = zellner_denominators(Qs)
    d = float(np.min(np.diag(D)))
    if d < 1:
        pm.warnings.append("Too few residual degrees of freedom on the shared runs to estimate the "
                           "CQA correlation: the CQAs are treated as independent.")
        return
    resid_shared = np.column_stack(E)
    S = (resid_shared.T @ resid_shared) / D
    sd = np.sqrt(np.clip(np.diag(S), 1e-300, None))
    R = _nearest_correlation(S / np.outer(sd, sd))
    pm.correlation = pd.DataFrame(R, index=pm.spec_names, columns=pm.spec_names)
    pm.shared_runs, pm.residual_df = len(shared_rows), d
    pm.prior_df = max(1.0, m + 1 - d)
    if _same_runs_and_model(pm) and d - m + 1 >= 1:
        pm.exact, pm.residual_df, pm.prior_df = True, float(cqas[0].fm.df_resid), 0.0
        resid = np.column_stack([c.fm.least_squares.resid for c in cqas])
        pm._sscp = resid.T @ resid
        scale = np.sqrt(np.diag(pm._sscp))
        if np.all(scale > 0):  # a CQA fitted exactly has no residual spread to correlate
            _refuse_dependent_residuals(pm.spec_names, pm._sscp / np.outer(scale, scale))
    else:
        pm.gibbs, pm.gibbs_note = _gibbs_affordable(pm)


def _shared_rows(rows: list[np.ndarray], n_union: int) -> np.ndarray:
    """Sorted positions (in the union of the runs) that every CQA's ``rows`` contain."""
    count = np.zeros(n_union, dtype=int)
    for r in rows:
        count[np.unique(r)] += 1
    return np.flatnonzero(count == len(rows))


def _positions(rows: np.ndarray, wanted: np.ndarray, n_union: int) -> np.ndarray:
    """Where each of ``wanted`` (union positions, all in ``rows``) sits in ``rows``: O(n) with an index array."""
    local = np.full(n_union, -1, dtype=int)
    local[rows] = np.arange(len(rows))
    out: np.ndarray = local[wanted]
    return out


def zellner_denominators(Qs: list[np.ndarray]) -> np.ndarray:
    """Zellner's (1962) denominators D_ij = tr(M_i M_j), M_i = I - Q_i Q_i', without forming any n x n matrix.

    ``Qs[i]`` is CQA *i*'s orthonormal model basis restricted to the n runs every CQA shares (n x p_i; when a
    CQA has runs the others lack, these rows are no longer orthonormal). Expanding the product,

        tr(M_i M_j) = tr(I) - tr(Q_i Q_i') - tr(Q_j Q_j') + tr(Q_i Q_i' Q_j Q_j')
                    = n - ||Q_i||_F^2 - ||Q_j||_F^2 + ||Q_i' Q_j||_F^2,

    by tr(A B) = tr(B A) (tr(Q_i Q_i') = tr(Q_i' Q_i) = ||Q_i||_F^2, and tr(Q_i Q_i' Q_j Q_j') =
    tr((Q_i' Q_j)(Q_j' Q_i)) = ||Q_i' Q_j||_F^2); no step uses Q_i' Q_i = I, so the identity holds on any
    subset of the rows. Cost O(n p_i p_j) time and O(p_i p_j) extra memory per pair instead of O(n^2).
    """
    n = Qs[0].shape[0] if Qs else 0
    m = len(Qs)
    off = np.concatenate([[0], np.cumsum([Q.shape[1] for Q in Qs])]).astype(int)
    G = np.hstack(Qs).T @ np.hstack(Qs) if Qs else np.zeros((0, 0))  # every Q_i' Q_j in one product (P x P)
    sq = [float(np.trace(G[off[i]:off[i + 1], off[i]:off[i + 1]])) for i in range(m)]
    D = np.empty((m, m))
    for i in range(m):
        for j in range(i, m):
            cross = G[off[i]:off[i + 1], off[j]:off[j + 1]]
            D[i, j] = D[j, i] = n - sq[i] - sq[j] + float(np.sum(cross * cross))
    return D


def _refuse_dependent_residuals(names: list[str], R: np.ndarray) -> None:
    """Refuse CQAs whose residuals are linearly dependent (a correlation of +-1, or one CQA's residuals a
    combination of others') although there are at least as many residual degrees of freedom as CQAs: the
    exact posterior's inverse-Wishart scale is then singular, so no posterior predictive exists; it
    happens when one CQA is computed from others or the same results are entered twice. Correlations
    short of that (0.999) are estimated as usual."""
    vals = np.linalg.eigvalsh((R + R.T) / 2)
    if vals.min() > 1e-10 * max(float(vals.max()), 1.0):
        return
    off = np.abs(R - np.eye(len(R)))
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    if off[i, j] > 1 - 1e-8:
        raise ModelError(
            f"The residuals of {names[i]!r} and {names[j]!r} are perfectly correlated (r = {R[i, j]:+.3f} on "
            "the runs they share): one carries no information the other lacks, as when one CQA is computed "
            "from the other or the same results were entered twice. Give a specification to only one of "
            "them, or check their results.")
    raise ModelError(
        f"The residuals of the CQAs {quoted_list(names)} are linearly dependent on the runs they share: one "
        "is a combination of the others, as when a CQA is computed from other CQAs. Remove the "
        "specification of the computed CQA, or check the results.")


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
@one_blas_thread  # small dense algebra: one BLAS thread (doe._threads; issue 21)
def _make_draws(pm: PredictiveModel, n: int, seed: int) -> Draws:
    rng = np.random.default_rng(seed)
    cqas = pm.spec_cqas
    m = len(cqas)
    if m == 0:
        return Draws(n, seed, [], np.zeros((0, n)), np.zeros((0, n)), chol=np.zeros((n, 0, 0)))
    if pm.random is not None:
        coef_r, noise_r, sigma_r, chol_r = _random.random_draws(pm.random, n, rng)
        return Draws(n, seed, coef_r, noise_r, sigma_r, chol=chol_r)
    if pm.gibbs:
        drawn = _gibbs_draws(pm, n, rng)
        if drawn is not None:
            return Draws(n, seed, *drawn)
    if pm.exact:  # Sigma ~ inverse-Wishart(n - p, E'E): the exact posterior under |Sigma|^-(m+1)/2
        assert pm._sscp is not None  # set with pm.exact
        cov = _inverse_wishart(rng, pm.residual_df, pm._sscp, n)
        sigma = np.sqrt(np.einsum("nii->ni", cov))
        corr = cov / (sigma[:, :, None] * sigma[:, None, :])
    else:
        corr, g = _correlation_draws(pm, rng, n)  # (n x m x m), (n x m) chi-square variates per CQA
        sse = np.array([c.fm.least_squares.sse for c in cqas])
        sigma = np.sqrt(sse[None, :] / g)  # exact marginal: sigma_i^2 = SSE_i / chi2(df_i)
    L = np.linalg.cholesky(corr * sigma[:, :, None] * sigma[:, None, :])
    root, offsets = _coefficient_root(pm)
    coef = [np.empty((len(c.beta), n)) for c in cqas]
    noise = np.empty((m, n))
    block = max(1, 2_000_000 // (m * (sum(root.shape) + 1)))  # bounds memory for large studies
    for start in range(0, n, block):
        sl = slice(start, min(n, start + block))
        g = rng.standard_normal((sl.stop - sl.start, m, root.shape[1]))
        V = g @ root.T  # V[:, k] ~ N(0, C): the OLS map of the k-th independent noise column over the runs
        noise[:, sl] = np.einsum("nij,nj->in", L[sl], rng.standard_normal((sl.stop - sl.start, m)))
        for i, c in enumerate(cqas):
            delta = np.einsum("nk,nkp->pn", L[sl, i, :], V[:, :, offsets[i]:offsets[i + 1]], optimize=False)
            coef[i][:, sl] = c.beta[:, None] + delta
    return Draws(n, seed, coef, noise, sigma.T.copy(), chol=L)


def _coefficient_root(pm: PredictiveModel) -> tuple[np.ndarray, np.ndarray]:
    """A root B (P x r, B B' = C) of the OLS maps' cross products, and each CQA's column offsets in it.

    The coefficient error of CQA *i* is delta_i = W_i' z_i with W_i = Q_i R_i^-T (rows of (X_i'X_i)^-1 X_i',
    n_i x p_i) and z_i its pseudo-errors, rows z_r ~ N(0, Sigma) = L xi_r with xi_r standard normal over
    the union of the runs. Then delta_i = sum_k L_ik V_ki, V_ki = sum_{r in runs_i} W_i[r] xi_rk, and the
    stacked V_k = (V_k1, ..., V_km) are independent over k with covariance C (P x P, P = sum p_i, block
    C_ij = sum over the runs both CQAs have of W_i[r] W_j[r]'). So V_k = B g_k with g_k standard normal
    draws the same distribution as summing over the runs, at O(P r) per draw instead of O(n m): r = P
    from the thin QR of the stacked maps (W on the union, zero where a CQA lacks the run), or B = W'
    itself when there are fewer runs than coefficients.
    """
    cqas = pm.spec_cqas
    W = [c.fm.least_squares.Q @ c.fm.least_squares.r_inv.T for c in cqas]
    offsets = np.concatenate([[0], np.cumsum([w.shape[1] for w in W])]).astype(int)
    full = np.zeros((len(pm._union_runs), int(offsets[-1])))
    for i, (w, rows) in enumerate(zip(W, pm._rows)):
        full[rows, offsets[i]:offsets[i + 1]] = w
    if full.shape[0] <= full.shape[1]:
        return full.T.copy(), offsets
    return cast(np.ndarray, np.linalg.qr(full, mode="r")).T, offsets


#: Largest linear system per Gibbs draw (doe.space.sur_draws: K or P coefficients) for which the exact posterior is drawn;
#: its cost grows with the cube: about 0.4 s for 4,000 draws at 60 (2 cores), several seconds at 100.
GIBBS_MAX_SYSTEM = 60


def _gibbs_affordable(pm: PredictiveModel) -> tuple[bool, str]:
    """Whether the exact SUR posterior is drawn (its per-draw linear system is small enough), and if not why."""
    cqas = pm.spec_cqas
    try:
        size = _sur.system_size([c.fm.least_squares.X for c in cqas], [c.fm.least_squares.y for c in cqas], pm._rows,
                           len(pm._union_runs))
    except (ValueError, np.linalg.LinAlgError) as exc:
        return False, f"the exact posterior cannot be drawn: {exc}"
    if size > GIBBS_MAX_SYSTEM:
        return False, (f"the exact posterior is too large to draw here, {size} coefficients per draw; against "
                       "the exact posterior the approximation has moved joint probabilities by up to 0.4")
    return True, ""


def _gibbs_draws(pm: PredictiveModel, n: int, rng: np.random.Generator
                 ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, None, np.ndarray] | None:
    """(coef, noise, sigma, eta, chol) from the exact SUR posterior (doe.space.sur_draws), or None when the sampler
    refuses the data (then the SUR-style approximation is used and a warning says so)."""
    cqas = pm.spec_cqas
    try:
        coef, cov, diag = _sur.sur_draws([c.fm.least_squares.X for c in cqas], [c.fm.least_squares.y for c in cqas], pm._rows,
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
    assert pm.correlation is not None  # set with pm.correlated
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
    return cast(np.ndarray, np.clip(out, 1e-300, None))


def setpoint_normals(pm: PredictiveModel, dr: Draws) -> np.ndarray:
    if dr.eta is None:
        rng = np.random.default_rng([dr.seed, 7919])  # its own stream: draws are shared with/without it
        dr.eta = rng.standard_normal((len(pm.numeric), dr.n))
    return dr.eta
