"""Split-plot, split-split-plot and random-block (donor) optimal designs, their criteria and power.

In an MSC lab a vessel type, a surface treatment or a medium lot is set once for several runs: those
runs form a *whole plot* and share its random deviation; donors are random blocks. The observations
then have covariance ``sigma^2 V`` with

- split-plot: ``V = I + eta Z Z'`` (``Z`` the N x W whole-plot incidence, ``eta`` the whole-plot /
  residual variance ratio);
- split-split-plot: ``V = I + eta1 Z1 Z1' + eta2 Z2 Z2'`` (``Z2`` the incidence of the subplots nested
  in the whole plots; Jones & Goos 2009);
- random blocks (donors): the split-plot ``V`` with no factor held constant within a block (Goos &
  Vandebroek 2001).

The generalised-least-squares information matrix is ``M = X' V^-1 X`` (in units of ``1 / sigma^2``)
and the criteria are those of :mod:`doe.optimal` with ``M`` in place of ``X'X``:

- ``d_criterion = det(M / N)^(1/p)`` (``100 x`` is the D-efficiency);
- ``i_criterion = trace(Mom M^-1)``, the average relative prediction variance over the design region
  (``Mom`` the region's moment matrix, :func:`doe.region.moment_matrix`).

:func:`split_plot_design` finds D- or I-optimal designs by coordinate exchange without a candidate
list (Jones & Goos 2007): a whole-plot factor's coordinate is one value per whole plot (changed for
all the plot's runs at once), a subplot factor's one value per subplot, any other factor's one value
per run. Every candidate value is scored by updating ``M`` for the rows it changes; a random start is
improved until a full pass changes nothing; the best of several random starts is kept. Candidate
values and constraints follow :mod:`doe.optimal` (every run of the design satisfies the study's
constraints).

:func:`split_plot_power` gives the power of each term's F test under that covariance, with the
noncentrality ``b' [L M^-1 L']^-1 b`` and the denominator degrees of freedom of the term's stratum, as
Design-Expert and JMP report them for split plots: whole-plot terms (only whole-plot factors, and the
intercept) ``W - p_wp``; subplot terms ``N - W - p_sp`` (split-plot), ``S - W - p_sp`` and
``N - S - p_run`` (split-split-plot), where ``p_*`` counts the model columns of the stratum.

References
----------
Goos, P. & Vandebroek, M. (2001). D-optimal response surface designs in the presence of random block
effects. Computational Statistics & Data Analysis 37, 433-453; and Optimal split-plot designs. Journal
of Quality Technology 33(4), 436-450.

Jones, B. & Goos, P. (2007). A candidate-set-free algorithm for generating D-optimal split-plot
designs. Journal of the Royal Statistical Society C 56(3), 347-364.

Jones, B. & Goos, P. (2009). D-optimal design of split-split-plot experiments. Biometrika 96(1), 67-82.

Jones, B. & Goos, P. (2012). I-optimal versus D-optimal split-plot response surface designs. Journal
of Quality Technology 44(2), 85-101.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import special  # F quantile and noncentral F (scipy.stats would add about 1 s to the import)

from doe.errors import DesignError, did_you_mean, quoted_list
from doe.model import ModelMatrix, Term, actual_frame
from doe.optimal import LevelRows, candidate_levels, check_estimable
from doe.region import moment_matrix

if TYPE_CHECKING:
    from doe.study import Study

__all__ = [
    "STRATA", "PlotStructure", "SplitPlotResult", "default_whole_plots", "factor_tiers", "information_matrix",
    "plot_structure", "run_order", "split_plot_criteria", "split_plot_design", "split_plot_power", "strata_df",
    "term_strata",
]

#: Safety cap on the search time (seconds) when ``time_limit`` is not given.
DEFAULT_TIME_CAP = 60.0
#: Random starts when ``starts`` is not given.
DEFAULT_STARTS = 12
#: Perturbation rounds per start (iterated local search, as doe.optimal) when ``rounds`` is not given.
DEFAULT_ROUNDS = 4
#: Largest candidate grid (points x model columns) held in memory; beyond it rows are built on demand.
GRID_MAX_CELLS = 4_000_000
_MAX_PASSES = 50
_TOL = 1e-9
STRATA = ("whole plot", "subplot", "sub-subplot")


# -- the covariance structure --------------------------------------------------------------------
@dataclass(frozen=True)
class PlotStructure:
    """Which runs share a whole plot (and a subplot), and the variance ratios.

    Attributes
    ----------
    whole_plot : ndarray
        Whole plot (or donor block) 0..W-1 of each run.
    subplot : ndarray or None
        Subplot 0..S-1 of each run (split-split-plot), each subplot inside one whole plot.
    variance_ratio : float
        Whole-plot (donor) variance / residual variance, ``eta`` (``eta1``).
    subplot_ratio : float
        Subplot variance / residual variance, ``eta2`` (split-split-plot only).
    """

    whole_plot: np.ndarray
    subplot: np.ndarray | None = None
    variance_ratio: float = 1.0
    subplot_ratio: float = 1.0

    @property
    def runs(self) -> int:
        """The number of runs."""
        return len(self.whole_plot)

    @property
    def n_whole_plots(self) -> int:
        """W, the number of whole plots."""
        return int(self.whole_plot.max()) + 1 if len(self.whole_plot) else 0

    @property
    def n_subplots(self) -> int | None:
        """S, the number of subplots (None for one tier)."""
        return None if self.subplot is None else int(self.subplot.max()) + 1

    def covariance(self) -> np.ndarray:
        """``V = I + eta1 Z1 Z1' + eta2 Z2 Z2'`` (N x N), the covariance in units of the residual variance."""
        V: np.ndarray = np.eye(self.runs)
        V += self.variance_ratio * (self.whole_plot[:, None] == self.whole_plot[None, :])
        if self.subplot is not None:
            V += self.subplot_ratio * (self.subplot[:, None] == self.subplot[None, :])
        return V

    def inverse_covariance(self) -> np.ndarray:
        """``V^-1`` (symmetric)."""
        Vi = np.linalg.inv(self.covariance())
        out: np.ndarray = (Vi + Vi.T) / 2.0
        return out


def _sizes(total: int, parts: int) -> np.ndarray:
    """``total`` items in ``parts`` groups as even as possible (larger groups first)."""
    return np.array([total // parts + (1 if i < total % parts else 0) for i in range(parts)], dtype=int)


def plot_structure(runs: int, whole_plots: int, subplots: int | None = None, *, variance_ratio: float = 1.0,
                   subplot_ratio: float | None = None) -> PlotStructure:
    """Runs split as evenly as possible into whole plots (and the subplots nested in them).

    Parameters
    ----------
    runs : int
        N, the number of runs.
    whole_plots : int
        W, the number of whole plots (or donor blocks), 1 <= W <= N.
    subplots : int, optional
        S, the total number of subplots (split-split-plot), W <= S <= N: each whole plot gets
        S // W subplots or one more, and its runs are split evenly over its subplots.
    variance_ratio, subplot_ratio : float
        ``eta1`` and ``eta2`` (``subplot_ratio`` defaults to ``variance_ratio``), each >= 0.

    Returns
    -------
    PlotStructure
        Runs in standard order: whole plot 0 first.

    Examples
    --------
    >>> plot_structure(7, 3).whole_plot.tolist()
    [0, 0, 0, 1, 1, 2, 2]
    """
    runs, W = int(runs), int(whole_plots)
    if W < 1 or W > runs:
        raise DesignError(f"The number of whole plots must be between 1 and the number of runs ({runs}); "
                          f"got {whole_plots}.")
    ratios = [variance_ratio] + ([] if subplot_ratio is None else [subplot_ratio])
    for r in ratios:
        if not isinstance(r, (int, float, np.integer, np.floating)) or not math.isfinite(float(r)) or r < 0:
            raise DesignError(f"A variance ratio must be a number >= 0 (whole-plot or donor variance over the "
                              f"residual variance; 1 if unsure); got {r!r}.")
    eta1 = float(variance_ratio)
    eta2 = eta1 if subplot_ratio is None else float(subplot_ratio)
    if subplots is None:
        return PlotStructure(np.repeat(np.arange(W), _sizes(runs, W)), None, eta1, eta2)
    S = int(subplots)
    if S < W or S > runs:
        raise DesignError(f"The number of subplots must be between the number of whole plots ({W}) and the "
                          f"number of runs ({runs}); got {subplots}.")
    per_wp = _sizes(S, W)                      # subplots of each whole plot
    wp_runs = _sizes(runs, W)                  # runs of each whole plot, as even as possible
    if np.any(wp_runs < per_wp):
        raise DesignError(f"{S} subplots in {W} whole plots of {runs} runs leave a subplot without runs: ask for "
                          "fewer subplots or more runs.")
    sizes = np.concatenate([_sizes(int(n), int(k)) for n, k in zip(wp_runs, per_wp)])
    sub_of_wp = np.repeat(np.arange(W), per_wp)  # whole plot of each subplot
    subplot = np.repeat(np.arange(S), sizes)
    return PlotStructure(sub_of_wp[subplot], subplot, eta1, eta2)


def information_matrix(X: np.ndarray, structure: PlotStructure) -> np.ndarray:
    """``M = X' V^-1 X``, the GLS information matrix in units of ``1 / sigma^2`` (residual variance)."""
    M = X.T @ structure.inverse_covariance() @ X
    return np.asarray((M + M.T) / 2.0)


def split_plot_criteria(study: Study, mm: ModelMatrix, U: np.ndarray, structure: PlotStructure,
                        moments: np.ndarray | None = None) -> tuple[float, float]:
    """D and I criteria of a coded design under the split-plot covariance, from scratch.

    Returns
    -------
    (float, float)
        ``det(M/N)^(1/p)`` and ``trace(Mom M^-1)`` with ``M = X' V^-1 X``; (0, inf) when singular.
    """
    X = mm.build(U)
    M = information_matrix(X, structure)
    w = np.linalg.eigvalsh(M)
    if w[0] <= 1e-10 * max(w[-1], 1.0):
        return 0.0, math.inf
    Mom = moment_matrix(study, mm) if moments is None else moments
    logdet = float(np.linalg.slogdet(M)[1])
    d = math.exp(logdet / mm.p - math.log(len(X)))
    return d, float(np.sum(Mom * np.linalg.inv(M)))


# -- factor tiers and strata ------------------------------------------------------------------------
def _check_names(study: Study, names: list[str], what: str) -> list[str]:
    out = []
    for name in names:
        if name not in study.factor_names:
            raise DesignError(f"{what} names '{name}', which is not a factor.{did_you_mean(str(name), study.factor_names)}"
                              f" Factors: {quoted_list(study.factor_names)}.")
        out.append(name)
    return out


def factor_tiers(study: Study, two_tiers: bool, whole_plot_factors: list[str] | None = None,
                 subplot_factors: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Whole-plot and subplot factors: given, or read from the study's ``hard_to_change`` marks.

    One tier: every hard-to-change factor (True or "very") is a whole-plot factor. Two tiers
    (split-split-plot): the "very" ones are whole-plot factors, the True ones subplot factors.
    """
    if whole_plot_factors is None:
        whole_plot_factors = (list(study.very_hard_to_change_factors) if two_tiers
                              else list(study.hard_to_change_factors))
    if subplot_factors is None:
        subplot_factors = ([n for n in study.hard_to_change_factors if n not in study.very_hard_to_change_factors]
                           if two_tiers else [])
    wp = _check_names(study, list(whole_plot_factors), "The whole-plot factor list")
    sp = _check_names(study, list(subplot_factors), "The subplot factor list")
    both = sorted(set(wp) & set(sp))
    if both:
        raise DesignError(f"{quoted_list(both)} cannot be both whole-plot and subplot factors.")
    if sp and not two_tiers:
        raise DesignError("Subplot factors need subplots: give the number of subplots (--subplots) for a "
                          "split-split-plot design.")
    return wp, sp


def term_strata(mm: ModelMatrix, whole_plot_factors: list[str], subplot_factors: list[str],
                two_tiers: bool) -> list[str]:
    """Stratum of each model column: "whole plot", "subplot" or (two tiers) "sub-subplot".

    A column is in the whole-plot stratum when its term involves whole-plot factors only (the intercept
    too); in the subplot stratum of a split-split-plot when it involves whole-plot and subplot factors
    only; otherwise in the lowest stratum ("subplot" for one tier, "sub-subplot" for two).
    """
    wp, sp = set(whole_plot_factors), set(subplot_factors)
    terms = {t.name: set(t.factors) for t in mm.terms}
    out = []
    for term in mm.column_term:
        names = terms.get(term, set())
        if term == "Block":
            out.append(STRATA[2] if two_tiers else STRATA[1])
        elif names <= wp:
            out.append(STRATA[0])
        elif two_tiers and names <= wp | sp:
            out.append(STRATA[1])
        else:
            out.append(STRATA[2] if two_tiers else STRATA[1])
    return out


def strata_df(strata: list[str], structure: PlotStructure) -> dict[str, int]:
    """Denominator degrees of freedom of each stratum (see the module docstring)."""
    count = {s: strata.count(s) for s in STRATA}
    N, W, S = structure.runs, structure.n_whole_plots, structure.n_subplots
    if S is None:
        return {STRATA[0]: W - count[STRATA[0]], STRATA[1]: N - W - count[STRATA[1]]}
    return {STRATA[0]: W - count[STRATA[0]], STRATA[1]: S - W - count[STRATA[1]],
            STRATA[2]: N - S - count[STRATA[2]]}


def split_plot_power(mm: ModelMatrix, X: np.ndarray, structure: PlotStructure, whole_plot_factors: list[str],
                     subplot_factors: list[str], snr: float = 1.0, alpha: float = 0.05) -> pd.DataFrame:
    """Power of each term's F test under the split-plot covariance (GLS), at level ``alpha``.

    Anticipated coefficients ``b = snr * (+1, -1, +1, ...)`` over the term's columns (in units of the
    residual standard deviation), noncentrality ``lambda = b' [L M^-1 L']^-1 b`` with
    ``M = X' V^-1 X``; numerator df the term's columns, denominator df those of the term's stratum
    (:func:`strata_df`).

    Returns
    -------
    DataFrame
        Columns ``term, columns, df, power, noncentrality, reason, df_den, stratum`` (the rows of
        :func:`doe.evaluate.evaluate_design`'s power table plus the last two).
    """
    two = structure.subplot is not None
    strata = term_strata(mm, whole_plot_factors, subplot_factors, two)
    dfs = strata_df(strata, structure)
    M = information_matrix(X, structure)
    w = np.linalg.eigvalsh(M)
    singular = bool(w[0] <= 1e-10 * max(w[-1], 1.0))
    Minv = None if singular else np.linalg.inv(M)
    rows = []
    for term in dict.fromkeys(mm.column_term):
        if term == "Block":
            continue
        idx = [j for j, t in enumerate(mm.column_term) if t == term]
        stratum = strata[idx[0]]
        dfd = dfs[stratum]
        row: dict[str, Any] = {"term": term, "columns": ", ".join(mm.columns[j] for j in idx), "df": len(idx),
                               "power": math.nan, "noncentrality": math.nan, "reason": "", "df_den": dfd,
                               "stratum": stratum}
        if Minv is None:
            row["reason"] = "not estimable"
        elif dfd <= 0:
            row["reason"] = (f"no {stratum} degrees of freedom for error; add "
                             f"{'whole plots' if stratum == STRATA[0] else 'subplots' if stratum == STRATA[1] and two else 'runs'}")
        else:
            b = snr * np.where(np.arange(len(idx)) % 2 == 0, 1.0, -1.0)
            lam = float(b @ np.linalg.solve(Minv[np.ix_(idx, idx)], b))
            crit = special.fdtri(len(idx), dfd, 1.0 - alpha)
            row["power"] = float(1.0 - special.ncfdtr(len(idx), dfd, lam, crit))
            row["noncentrality"] = lam
        rows.append(row)
    return pd.DataFrame(rows, columns=["term", "columns", "df", "power", "noncentrality", "reason", "df_den",
                                       "stratum"])


class _Rows:
    """Model rows and feasibility of grid points given as level indices (a grid in memory when small)."""

    def __init__(self, study: Study, mm: ModelMatrix, values: list[np.ndarray]):
        self.study, self.mm, self.values = study, mm, values
        self.shape = tuple(len(v) for v in values)
        size = math.prod(self.shape)
        self.strides = np.array([math.prod(self.shape[j + 1:]) for j in range(len(values))], dtype=np.int64)
        self.X: np.ndarray | None = None
        self.ok: np.ndarray | None = None
        #: model rows from level indices (the same numbers as mm.build) when the grid is not held
        self.level_rows: LevelRows | None = None
        if size * mm.p <= GRID_MAX_CELLS:
            K = np.indices(self.shape).reshape(len(values), -1).T
            U = self.coded(K)
            self.X = mm.build(U)
            self.ok = self._feasible(U)
        elif mm.n_blocks == 1:
            self.level_rows = LevelRows(mm, values)

    def coded(self, K: np.ndarray) -> np.ndarray:
        """Coded settings of level indices K (rows x factors)."""
        return np.column_stack([v[K[:, j]] for j, v in enumerate(self.values)])

    def _feasible(self, U: np.ndarray) -> np.ndarray:
        if not self.study.constraints:
            return np.ones(len(U), dtype=bool)
        return np.asarray(self.study.feasible(actual_frame(self.study, U)), dtype=bool)

    def get(self, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model rows and feasibility of the rows of K."""
        if self.X is not None and self.ok is not None:
            idx = K @ self.strides
            return self.X[idx], self.ok[idx]
        U = self.coded(K)
        X = self.mm.build(U) if self.level_rows is None else self.level_rows.rows(K)
        return X, self._feasible(U)


# -- the search ------------------------------------------------------------------------------------------
@dataclass
class SplitPlotResult:
    """An optimal split-plot (split-split-plot, random-block) design in coded units and its criteria.

    Attributes
    ----------
    U : ndarray
        Coded array, runs x factors, in standard order (whole plot 0 first).
    structure : PlotStructure
        Whole plot (and subplot) of each run, and the variance ratios.
    criterion : str
        "D" or "I", the criterion optimised.
    d_criterion, i_criterion : float
        ``det(M/N)^(1/p)`` and ``trace(Mom M^-1)`` with ``M = X' V^-1 X``, computed from scratch.
    whole_plot_factors, subplot_factors : list of str
        The factors held constant within whole plots and within subplots.
    starts : int
        Random starts completed.
    seconds : float
        Wall-clock time of the search.
    """

    U: np.ndarray
    structure: PlotStructure
    criterion: str
    d_criterion: float
    i_criterion: float
    whole_plot_factors: list[str]
    subplot_factors: list[str]
    starts: int
    seconds: float
    columns: list[str] = field(default_factory=list)
    stopped_by_time: bool = False

    @property
    def d_efficiency(self) -> float:
        """D-efficiency in percent under the split-plot covariance: ``100 * d_criterion``."""
        return 100.0 * self.d_criterion


class _Search:
    """The state of one coordinate-exchange search (level indices K, model rows X, M, V^-1 X)."""

    def __init__(self, mm: ModelMatrix, rows: _Rows, Vi: np.ndarray, groups: list[tuple[int, np.ndarray]],
                 crit: str, Mom: np.ndarray):
        self.mm, self.rows, self.Vi, self.groups, self.crit, self.Mom = mm, rows, Vi, groups, crit, Mom

    def score(self, M: np.ndarray, ridge: float) -> np.ndarray:
        """Criterion (larger is better) of a stack of information matrices ``(..., p, p)``.

        While the design is singular (``ridge > 0``) both criteria score ``log det(M + ridge I)``:
        the exchange first makes the design estimable, then optimises the criterion asked for.
        """
        A = M + ridge * np.eye(M.shape[-1]) if ridge else M
        if self.crit == "D" or ridge:
            sign, logdet = np.linalg.slogdet(A)
            return np.where(sign > 0, logdet, -np.inf)
        # trace(Mom A^-1) = sum_k v_k' Mom v_k / w_k from A's eigenvectors; a (nearly) singular A scores -inf
        w, vecs = np.linalg.eigh(A)
        regular = w[..., 0] > 1e-10 * np.maximum(w[..., -1], 1.0)
        quad = np.einsum("...ik,ij,...jk->...k", vecs, self.Mom, vecs)
        with np.errstate(divide="ignore", invalid="ignore"):
            trace = np.sum(quad / w, axis=-1)
        return np.where(regular, -trace, -np.inf)

    def exchange(self, K: np.ndarray, deadline: float) -> tuple[np.ndarray, float]:
        """Coordinate exchange from K to a local optimum; returns (K, score without ridge).

        Changing the rows R of X by ``D`` (candidates x |R| x p) changes ``M = X'V^-1X`` by
        ``D'B + B'D + D'V_RR^-1 D`` with ``B = (V^-1X)_R``: a rank-2|R| update ``U C U'`` with
        ``U = [D' B']`` and ``C = [[V_RR^-1, I], [I, 0]]``. While the design is regular each candidate is
        scored through the 2|R| x 2|R| matrix ``K = C^-1 + U'M^-1U`` (the determinant lemma and the
        Woodbury identity: ``det M_new = det M det C det K``; ``trace(Mom M_new^-1) = trace(Mom M^-1) -
        trace(K^-1 U'M^-1 Mom M^-1 U)``); while it is singular, by ``log det(M_new + ridge I)``.
        """
        X, _ = self.rows.get(K)
        X = X.copy()
        Vi = self.Vi
        for _ in range(_MAX_PASSES):
            VX = Vi @ X
            M = X.T @ VX
            M = (M + M.T) / 2.0
            w = np.linalg.eigvalsh(M)
            regular = bool(w[0] > 1e-9 * max(w[-1], 1.0))
            ridge = 0.0 if regular else 1e-6 * max(float(np.trace(M)) / len(M), 1.0)
            state = _Regular(M, self.Mom, self.crit) if regular else None
            current = state.value if state is not None else float(self.score(M, ridge))
            changed = False
            for j, R in self.groups:
                n_lv = self.rows.shape[j]
                if n_lv < 2:
                    continue
                Kc = np.repeat(K[R][None, :, :], n_lv, axis=0)
                Kc[:, :, j] = np.arange(n_lv)[:, None]
                Xc, ok = self.rows.get(Kc.reshape(-1, K.shape[1]))
                Xc = Xc.reshape(n_lv, len(R), -1)
                feasible = ok.reshape(n_lv, len(R)).all(axis=1)
                D = Xc - X[R][None]
                B = VX[R]
                Vrr = Vi[np.ix_(R, R)]
                if state is not None:
                    s = state.scores(D, B, Vrr)
                else:
                    DB = np.einsum("lgp,gq->lpq", D, B)
                    s = self.score(M + DB + DB.transpose(0, 2, 1) + np.einsum("lgp,gh,lhq->lpq", D, Vrr, D), ridge)
                s[~feasible] = -np.inf
                best = int(np.argmax(s))
                if s[best] > current + _TOL * max(1.0, abs(current)) and best != K[R[0], j]:
                    d = D[best]
                    DB1 = d.T @ B
                    M = M + DB1 + DB1.T + d.T @ Vrr @ d
                    M = (M + M.T) / 2.0
                    K[R, j] = best
                    X[R] = Xc[best]
                    VX += Vi[:, R] @ d
                    if state is not None:
                        state = _Regular(M, self.Mom, self.crit)
                        current = state.value
                    else:
                        current = float(s[best])
                    changed = True
            if not changed or time.perf_counter() > deadline:
                break
        M = X.T @ Vi @ X
        return K, float(self.score((M + M.T) / 2.0, 0.0))


class _Regular:
    """A regular information matrix M with what the low-rank scores need: M^-1, M^-1 Mom M^-1, the criterion."""

    def __init__(self, M: np.ndarray, Mom: np.ndarray, crit: str):
        self.crit = crit
        self.Minv = np.linalg.inv(M)
        self.logdet = float(np.linalg.slogdet(M)[1])
        if crit == "D":
            self.value = self.logdet
        else:
            self.MM = self.Minv @ Mom @ self.Minv
            self.value = -float(np.sum(Mom * self.Minv))

    def scores(self, D: np.ndarray, B: np.ndarray, Vrr: np.ndarray) -> np.ndarray:
        """Criterion (larger is better) after each candidate change D (candidates x g x p) of rows with
        ``B = (V^-1X)_R`` and ``Vrr = (V^-1)_RR``; -inf where the new M would be (nearly) singular."""
        L, g, p = D.shape
        Ut = np.concatenate([D, np.broadcast_to(B, (L, g, p))], axis=1)  # (L, 2g, p) = U'
        P = Ut @ self.Minv
        Kmat = P @ Ut.transpose(0, 2, 1)
        Kmat[:, :g, g:] += np.eye(g)
        Kmat[:, g:, :g] += np.eye(g)
        Kmat[:, g:, g:] -= Vrr
        sign, logk = np.linalg.slogdet(Kmat)
        # det M_new / det M = det C det K, det C = (-1)^g; a ratio below 1e-10 counts as singular
        ok = (sign * (-1.0) ** g > 0) & (logk > math.log(1e-10))
        if self.crit == "D":
            return np.where(ok, self.logdet + logk, -np.inf)
        out = np.full(L, -np.inf)
        if np.any(ok):
            T = (Ut[ok] @ self.MM) @ Ut[ok].transpose(0, 2, 1)
            drop = np.trace(np.linalg.solve(Kmat[ok], T), axis1=1, axis2=2)
            out[ok] = self.value + drop
        return out


def _groups(structure: PlotStructure, tier_of: list[int]) -> list[tuple[int, np.ndarray]]:
    """The coordinates: (factor, runs that share its value), whole-plot factors first."""
    out: list[tuple[int, np.ndarray]] = []
    plots = structure.whole_plot
    subs = structure.subplot
    n = structure.runs
    for tier in (0, 1, 2):
        factors = [j for j, t in enumerate(tier_of) if t == tier]
        if not factors:
            continue
        if tier == 0:
            units = [np.flatnonzero(plots == w) for w in range(structure.n_whole_plots)]
        elif tier == 1 and subs is not None:
            units = [np.flatnonzero(subs == s) for s in range(int(subs.max()) + 1)]
        else:
            units = [np.array([i]) for i in range(n)]
        out += [(j, R) for R in units for j in factors]
    return out


def _random_start(rows: _Rows, structure: PlotStructure, tier_of: list[int], rng: np.random.Generator,
                  K: np.ndarray | None = None, plots: Any = None) -> np.ndarray:
    """Random feasible level indices: one value per whole plot / subplot / run for each factor's tier.

    With ``K`` and ``plots``, only those whole plots of K are drawn again (in place).
    """
    n, k = structure.runs, len(tier_of)
    if K is None:
        K = np.zeros((n, k), dtype=int)
    subs = structure.subplot if structure.subplot is not None else np.arange(n)
    for w in (range(structure.n_whole_plots) if plots is None else plots):
        R = np.flatnonzero(structure.whole_plot == w)
        for _ in range(200):
            for j, tier in enumerate(tier_of):
                c = rows.shape[j]
                if tier == 0:
                    K[R, j] = rng.integers(c)
                elif tier == 1:
                    ids = subs[R]
                    _, inv = np.unique(ids, return_inverse=True)
                    K[R, j] = rng.integers(c, size=inv.max() + 1)[inv]
                else:
                    K[R, j] = rng.integers(c, size=len(R))
            if rows.get(K[R])[1].all():
                break
        else:
            raise DesignError("No random setting of a whole plot satisfies the study's constraints: relax a "
                              "constraint, or make fewer factors hard to change.")
    return K


def split_plot_design(
    study: Study,
    terms: list[Term],
    runs: int,
    whole_plots: int,
    criterion: str = "D",
    *,
    subplots: int | None = None,
    variance_ratio: float = 1.0,
    subplot_ratio: float | None = None,
    whole_plot_factors: list[str] | None = None,
    subplot_factors: list[str] | None = None,
    seed: int | None = None,
    starts: int | None = None,
    time_limit: float | None = None,
    levels: dict[str, Any] | int | None = None,
    rounds: int | None = None,
) -> SplitPlotResult:
    """D- or I-optimal split-plot, split-split-plot or random-block design by coordinate exchange.

    Parameters
    ----------
    study : Study
        Factors (their ``hard_to_change`` marks) and constraints; every run satisfies the constraints.
    terms : list of Term
        Model terms (the intercept is always included).
    runs : int
        N, the number of runs.
    whole_plots : int
        W, the number of whole plots (donor blocks for a random-block design), runs split evenly.
    criterion : {"D", "I"}
        Maximise ``det(X'V^-1X)`` or minimise ``trace(Mom (X'V^-1X)^-1)``.
    subplots : int, optional
        S, the total number of subplots (split-split-plot): the study's "very" hard-to-change factors
        change between whole plots, the others marked hard to change between subplots.
    variance_ratio : float
        ``eta``: whole-plot (or donor) variance over the residual variance (JMP's default 1).
    subplot_ratio : float, optional
        ``eta2`` of the subplots (default ``variance_ratio``).
    whole_plot_factors, subplot_factors : list of str, optional
        Override the study's ``hard_to_change`` marks. ``whole_plot_factors=[]`` with no subplots gives
        the D-optimal design with W random blocks (Goos & Vandebroek 2001): donors.
    seed : int, optional
        Seed of the random starts; the same seed and ``starts`` give the same design.
    starts : int, optional
        Random starts (default :data:`DEFAULT_STARTS`).
    time_limit : float, optional
        Safety cap in seconds (default :data:`DEFAULT_TIME_CAP`).
    levels : dict or int, optional
        Candidate coded values per continuous factor, or a number of grid points (as doe.optimal).
    rounds : int, optional
        Perturbation rounds per start (default :data:`DEFAULT_ROUNDS`): about a fifth of the whole plots
        are drawn again at random and the exchange re-run, keeping improvements; 0 gives the plain
        coordinate exchange of Jones & Goos (2007).

    Returns
    -------
    SplitPlotResult

    Raises
    ------
    DesignError
        Too few runs or whole plots for the model, a bad factor list or ratio, no feasible setting, or a
        singular best design.
    """
    t0 = time.perf_counter()
    crit = str(criterion).strip().upper()
    if crit not in ("D", "I"):
        raise DesignError(f"The optimality criterion must be 'D' or 'I'; got '{criterion}'.")
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise DesignError(f"The seed must be a whole number >= 0; got {seed!r}.")
    structure = plot_structure(runs, whole_plots, subplots, variance_ratio=variance_ratio,
                               subplot_ratio=subplot_ratio)
    two = subplots is not None
    wp, sp = factor_tiers(study, two, whole_plot_factors, subplot_factors)
    mm = ModelMatrix(study, list(terms))
    _check_size(mm, structure, wp, sp)
    values = candidate_levels(study, list(terms), levels)
    check_estimable(study, list(terms), values)
    tier_of = [0 if f.name in wp else 1 if f.name in sp else 2 for f in study.factors]
    rows = _Rows(study, mm, values)
    Mom = moment_matrix(study, mm)
    search = _Search(mm, rows, structure.inverse_covariance(), _groups(structure, tier_of), crit, Mom)
    n_starts = DEFAULT_STARTS if starts is None else max(1, int(starts))
    n_rounds = DEFAULT_ROUNDS if rounds is None else max(0, int(rounds))
    deadline = t0 + (DEFAULT_TIME_CAP if time_limit is None else float(time_limit))
    root = np.random.SeedSequence(seed)
    best_K, best, done, stopped = None, -np.inf, 0, False
    for _ in range(n_starts):
        if done and time.perf_counter() > deadline:
            stopped = True
            break
        rng = np.random.default_rng(root.spawn(1)[0])
        K, score = search.exchange(_random_start(rows, structure, tier_of, rng), deadline)
        # iterated local search (as doe.optimal): redraw about a fifth of the whole plots, exchange again,
        # keep the result when it is better
        m = max(1, round(structure.n_whole_plots / 5))
        for _ in range(n_rounds):
            if time.perf_counter() > deadline:
                break
            redrawn = rng.choice(structure.n_whole_plots, size=m, replace=False)
            trial, value = search.exchange(_random_start(rows, structure, tier_of, rng, K.copy(), redrawn), deadline)
            if value > score:
                K, score = trial, value
        done += 1
        if best_K is None or score > best:
            best_K, best = K.copy(), score
    assert best_K is not None
    U = rows.coded(best_K)
    d, i = split_plot_criteria(study, mm, U, structure, Mom)
    if d <= 0.0:
        raise DesignError("The best split-plot design found is singular: it cannot estimate every model term. "
                          "Add runs or whole plots, relax the constraints, or remove terms from the model.")
    return SplitPlotResult(U, structure, crit, d, i, wp, sp, done, time.perf_counter() - t0, list(mm.columns),
                           stopped)


def _check_size(mm: ModelMatrix, structure: PlotStructure, wp: list[str], sp: list[str]) -> None:
    """Enough runs for the model, enough whole plots (subplots) for the terms of their strata."""
    N, W = structure.runs, structure.n_whole_plots
    if N < mm.p:
        raise DesignError(f"The model has {mm.p} terms; a design needs at least {mm.p} runs ({mm.p + 5} "
                          f"recommended); you asked for {N}.")
    strata = term_strata(mm, wp, sp, structure.subplot is not None)
    p_wp = strata.count(STRATA[0])
    if W < p_wp:
        raise DesignError(f"The model has {p_wp} whole-plot columns (the intercept and the terms of "
                          f"{quoted_list(wp) if wp else 'no factor'} alone); a design needs at least {p_wp} whole "
                          f"plots ({p_wp + 2} or more to test them). You asked for {W}.")
    S = structure.n_subplots
    if S is not None:
        p_sp = p_wp + strata.count(STRATA[1])
        if S < p_sp:
            raise DesignError(f"The model has {p_sp} whole-plot and subplot columns; a split-split-plot design "
                              f"needs at least {p_sp} subplots. You asked for {S}.")


def default_whole_plots(study: Study, terms: list[Term], runs: int) -> int:
    """A default number of whole plots: enough to test the whole-plot terms, about 4 runs each.

    ``max(p_wp + 2, round(N / 4))``, at most N, with ``p_wp`` the whole-plot model columns (intercept
    included).
    """
    mm = ModelMatrix(study, list(terms))
    wp, sp = factor_tiers(study, False)
    p_wp = term_strata(mm, wp, sp, False).count(STRATA[0])
    return int(min(int(runs), max(p_wp + 2, round(int(runs) / 4))))


def run_order(structure: PlotStructure, seed: int | None) -> np.ndarray:
    """A randomised run order: whole plots in random order, subplots random within them, runs random within.

    Returns the standard-order index of each run in run order (the bench order).
    """
    rng = np.random.default_rng(seed)
    order: list[int] = []
    subs = structure.subplot if structure.subplot is not None else np.arange(structure.runs)
    for w in rng.permutation(structure.n_whole_plots):
        R = np.flatnonzero(structure.whole_plot == w)
        for s in rng.permutation(np.unique(subs[R])):
            order += rng.permutation(R[subs[R] == s]).tolist()
    return np.array(order, dtype=int)
