"""Design evaluation in coded units, like JMP's *Evaluate Design* and Design-Expert's
design evaluation.

Everything here is computed in **coded units**: continuous and discrete factors
at -1..+1, categorical factors in effect (sum-to-zero) coding, blocks as fixed
effects in effect coding (see :mod:`doe.model`). One call,
:func:`evaluate_design`, returns a :class:`DesignEvaluation` that pages,
figures (:mod:`doe.plots.design`), reports and the CLI read; none of them
recompute statistics.

Conventions (JMP documentation, "Design Diagnostics" and "Evaluate Design";
Atkinson, Donev & Tobias 2007, *Optimum Experimental Designs, with SAS*,
chapters 10-11):

- D-efficiency = 100 det(X'X)^(1/p) / N; D-criterion = det(X'X/N)^(1/p)
  (AlgDesign's ``D``, here in coded units).
- A-efficiency = 100 p / trace(N (X'X)^-1).
- G-efficiency = 100 p / (N max_x x'(X'X)^-1 x), the maximum over the design
  region (a candidate grid with vertices, every categorical level and the
  design's own points, feasible points only).
- Average prediction variance I = trace(M (X'X)^-1) with M the moment matrix of
  the region (uniform over the region; unit error variance).
- Prediction variances average, and are maximised, over blocks too.
- Split-plot, split-split-plot and donor-block designs (a ``Whole plot`` / ``Subplot`` column, or the
  donor column) are also evaluated under ``V = I + eta Z Z'`` (:mod:`doe.split_plot`): D-criterion
  ``det(X'V^-1X/N)^(1/p)``, I-criterion ``trace(M (X'V^-1X)^-1)`` and GLS power with each term's
  stratum degrees of freedom (``df_den``, ``stratum`` in the power table).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import pandas as pd

# scipy.special, not scipy.stats: the F quantile and the noncentral F without scipy.stats' 1 s import
from scipy import linalg, special

from doe._format import fmt_rounded
from doe.design import Design
from doe.errors import DesignError, quoted_list
from doe.jsonable import json_ready
from doe.model import (
    ModelMatrix,
    Term,
    actual_frame,
    coded_array,
    parse_model,
    settings_shortfall,
)
from doe.region import moment_matrix, sample_region
from doe.split_plot import (
    PlotStructure,
    factor_tiers,
    plot_structure,
    split_plot_criteria,
    split_plot_power,
)
from doe.study import SUBPLOT, WHOLE_PLOT, Study

__all__ = ["DesignEvaluation", "alias_structure", "evaluate_design"]

#: Relative size below which a column's part orthogonal to earlier columns counts as zero.
RANK_TOL = 1e-8
#: Random feasible points for Monte Carlo moments and the fraction-of-design-space plot.
MC_POINTS = 20_000
#: Largest candidate grid searched for the G-efficiency maximum (a random sample beyond).
GRID_LIMIT = 5_000
_FDS_FRACTIONS = np.linspace(0.0, 1.0, 101)


@dataclass
class DesignEvaluation:
    """Everything a page, figure, report or CLI shows about a design (coded units).

    Efficiencies are ``None`` when the model is not estimable; ``warnings`` says why.
    """

    runs: int
    terms: list[str]
    columns: list[str]
    rank: int
    p: int
    estimable: bool
    inestimable: list[dict[str, str]]
    d_efficiency: float | None
    d_criterion: float | None
    a_efficiency: float | None
    g_efficiency: float | None
    avg_prediction_variance: float | None
    vif: dict[str, float]
    aliases: list[dict[str, Any]]
    correlation: pd.DataFrame
    power: pd.DataFrame
    fds: dict[str, list[float]]
    warnings: list[str] = field(default_factory=list)
    snr: float = 1.0
    alpha: float = 0.05
    n_blocks: int = 1
    region: dict[str, Any] = field(default_factory=dict)
    #: Split-plot / donor-block evaluation (:func:`_split_plot_metrics`): whole plots, variance ratio,
    #: criteria under ``V = I + eta Z Z'``; empty for a completely randomised design.
    split_plot: dict[str, Any] = field(default_factory=dict)

    def randomisation_note(self) -> str:
        """The design's restricted randomisation in words (markdown), for the Design page: whole plots or donor
        blocks, how the run sheet is ordered, the D-efficiency under the covariance they imply; "" when the runs
        are completely randomised."""
        sp = self.split_plot
        if not sp:
            return ""
        d_eff = "n/a" if sp.get("d_efficiency_split_plot") is None else f"{sp['d_efficiency_split_plot']:.1f} %"
        column = str(sp["plot_column"]).lower()
        if sp.get("donors"):
            text = (f"**Donor blocks:** {sp['whole_plots']} blocks, one {column} each, every block a subset of the "
                    f"runs. The run sheet is sorted by {column} (their order random, runs randomised within). The "
                    f"efficiencies above treat the runs as independent; with the {column} as a random effect (its "
                    f"variance {sp['variance_ratio']:g} x the run-to-run variance) the D-efficiency is {d_eff}.")
        else:
            held = sp.get("whole_plot_factors") or []
            text = (f"**Restricted randomisation:** {sp['whole_plots']} whole plots"
                    + (f" ({sp['subplots']} subplots)" if sp.get("subplots") else "")
                    + f"; {', '.join(held)} {'is' if len(held) == 1 else 'are'} set once per whole plot. The run "
                    "sheet is sorted by whole plot for the bench (whole plots in random order, runs randomised "
                    "within). The efficiencies above treat the runs as independent; under the split-plot covariance "
                    f"(whole-plot variance {sp['variance_ratio']:g} x the run-to-run variance) the D-efficiency is "
                    f"{d_eff}.")
        if sp.get("crossed_random_effects"):
            both = sp.get("d_efficiency_all_random_effects")
            text += (f" With {', '.join(sp['crossed_random_effects'])} as a random effect too (crossed, the same "
                     f"variance ratio) it is {'n/a' if both is None else f'{both:.1f} %'}; the power by stratum "
                     "counts the whole plots only.")
        return text + " The Power tab tests each term against the error of its own stratum."

    @property
    def error_df(self) -> int:
        """Residual degrees of freedom N - rank."""
        return self.runs - self.rank

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinity become None)."""
        corr = self.correlation
        out = {
            "runs": self.runs, "terms": list(self.terms), "columns": list(self.columns),
            "rank": self.rank, "p": self.p, "estimable": bool(self.estimable),
            "error_df": self.error_df, "n_blocks": self.n_blocks,
            "inestimable": [dict(d) for d in self.inestimable],
            "d_efficiency": self.d_efficiency, "d_criterion": self.d_criterion,
            "a_efficiency": self.a_efficiency, "g_efficiency": self.g_efficiency,
            "avg_prediction_variance": self.avg_prediction_variance,
            "vif": dict(self.vif),
            "aliases": [{"term": a["term"], "aliased_with": dict(a["aliased_with"])}
                        for a in self.aliases],
            "correlation": {"columns": list(corr.columns), "values": corr.to_numpy().tolist()},
            "power": self.power.to_dict(orient="records"),
            "snr": self.snr, "alpha": self.alpha,
            "fds": {k: list(v) for k, v in self.fds.items()},
            "region": dict(self.region),
            "warnings": list(self.warnings),
        }
        out.update(self.split_plot)
        ready: dict[str, Any] = json_ready(out)
        return ready


# -- public functions ---------------------------------------------------------------
def evaluate_design(
    study: Study,
    U_or_design: np.ndarray | Design,
    terms: list[Term] | str | list[str] | None,
    *,
    blocks: np.ndarray | None = None,
    n_blocks: int | None = None,
    snr: float = 1.0,
    alpha: float = 0.05,
    seed: int = 0,
    plots: PlotStructure | None = None,
    variance_ratio: float | None = None,
) -> DesignEvaluation:
    """Evaluate a design for a model, in coded units.

    Parameters
    ----------
    study : Study
        Factors (ranges, levels) and constraints that define the design region.
    U_or_design : ndarray or Design
        Coded array (runs x factors; numeric factors -1..+1, categorical as level
        index) or a :class:`~doe.design.Design` (its blocks are used).
    terms : list of Term, or a model spec for :func:`doe.model.parse_model`
        Model terms without the intercept.
    blocks, n_blocks : optional
        Block index 0..B-1 of each run and the number of blocks (arrays only).
    snr : float
        Anticipated coefficient / sigma for the power analysis (JMP's
        "anticipated coefficients" all equal to ``snr``).
    alpha : float
        Significance level of the power analysis.
    seed : int
        Seed of the Monte Carlo sample of the region (fixed: same answer every call).
    plots : PlotStructure, optional
        Whole plot (subplot) of each run for an array (a Design's ``Whole plot`` / ``Subplot`` column,
        or its donor column -- the study's first random effect or ``Donor`` -- is read). The evaluation
        then adds the criteria under ``V = I + eta Z Z'`` and gives power by GLS with the degrees of
        freedom of each term's stratum (:mod:`doe.split_plot`).
    variance_ratio : float, optional
        ``eta``, whole-plot (donor) variance over residual variance: default the Design's recorded
        ratio, else 1.

    Returns
    -------
    DesignEvaluation

    Notes
    -----
    Estimability follows the column order of the model matrix (intercept,
    blocks, main effects, interactions, powers): each column that is a linear
    combination of earlier ones is reported with the reason. Efficiencies follow
    the JMP conventions; the power analysis is JMP's: an F test of each term
    with noncentrality b'(L (X'X)^-1 L')^-1 b (Atkinson, Donev & Tobias 2007,
    ch. 10-11; JMP *Design of Experiments Guide*, "Power Analysis").

    Examples
    --------
    >>> import itertools, numpy as np
    >>> from doe.study import Study, Factor
    >>> s = Study("x", [Factor(n, low=-1, high=1) for n in "ABC"])
    >>> U = np.array(list(itertools.product([-1, 1], repeat=3)), dtype=float)
    >>> round(evaluate_design(s, U, "linear").d_efficiency, 6)
    100.0
    """
    U, blocks, n_blocks = _inputs(study, U_or_design, blocks, n_blocks)
    plots, plot_column = _plots(study, U_or_design, plots, variance_ratio, len(U))
    if not 0.0 < alpha < 1.0:
        raise DesignError(f"The significance level alpha must be between 0 and 1; got {alpha}.")
    if not math.isfinite(snr) or snr < 0:
        raise DesignError(f"The signal-to-noise ratio must be a number >= 0; got {snr}.")
    terms = _as_terms(study, terms)
    mm = ModelMatrix(study, terms, n_blocks)
    X = mm.build(U, blocks)
    n, p = X.shape
    keep, inestimable = _estimability(study, mm, U, X)
    fit = _Fit(X[:, keep])
    estimable = not inestimable
    warnings = _estimability_warnings(n, p, inestimable) + _outside_warnings(study, U)
    d_crit = math.exp(fit.logdet / p) / n if estimable else None
    a_eff = 100.0 * p / (n * fit.trace_inverse) if estimable else None
    g_eff, avg_var, fds, region = _region_metrics(study, mm, fit, U, blocks, seed, estimable)
    omitted = ModelMatrix(study, _omitted_interactions(study, terms, 2))
    X2 = omitted.build(U)[:, 1:]
    dropped = [i for i in range(p) if i not in set(keep)]
    aliases = _alias_list(fit, [mm.columns[i] for i in keep], np.hstack([X2, X[:, dropped]]),
                          omitted.columns[1:] + [mm.columns[i] for i in dropped])
    vif = _vif(mm, fit, keep, X)
    power = _power(mm, fit, keep, n, snr, alpha)
    split: dict[str, Any] = {}
    if plots is not None:
        split, power, split_warnings = _split_plot_metrics(study, mm, U, plots, plot_column, snr, alpha)
        warnings += split_warnings
        if isinstance(U_or_design, Design):
            split.update(_crossed_random_effects(study, U_or_design, plot_column, mm.build(U), plots.variance_ratio))
    else:
        warnings += _power_warnings(n, fit.rank)
    warnings += _vif_warnings(vif)
    return DesignEvaluation(
        runs=n, terms=["Intercept"] + [t.name for t in terms], columns=list(mm.columns),
        rank=fit.rank, p=p, estimable=estimable, inestimable=inestimable,
        d_efficiency=None if d_crit is None else 100.0 * d_crit, d_criterion=d_crit,
        a_efficiency=a_eff, g_efficiency=g_eff, avg_prediction_variance=avg_var, vif=vif,
        aliases=aliases, correlation=_correlation(X[:, 1:], mm.columns[1:], X2, omitted.columns[1:]),
        power=power, fds=fds, warnings=warnings,
        snr=float(snr), alpha=float(alpha), n_blocks=n_blocks, region=region, split_plot=split,
    )


def alias_structure(
    study: Study, U: np.ndarray, terms: list[Term] | str | list[str] | None, max_order: int = 2
) -> list[str]:
    """Alias structure as text lines, e.g. ``'A:B = A:B + 1.0 C:D'``.

    The alias matrix A = (X1'X1)^-1 X1'X2 of the estimable model columns X1
    against the interactions of order 2..``max_order`` that are not in the model
    (and any inestimable model columns) X2: if the omitted terms are active,
    E[b1] = beta1 + A beta2 (Atkinson, Donev & Tobias 2007, sec. 10.5;
    Design-Expert's alias list, JMP's alias matrix).
    """
    U = np.atleast_2d(np.asarray(U, dtype=float))
    terms = _as_terms(study, terms)
    mm = ModelMatrix(study, terms)
    X = mm.build(U)
    keep, _ = _estimability(study, mm, U, X)
    omitted = ModelMatrix(study, _omitted_interactions(study, terms, max_order))
    dropped = [i for i in range(mm.p) if i not in set(keep)]
    X2 = np.hstack([omitted.build(U)[:, 1:], X[:, dropped]])
    names = omitted.columns[1:] + [mm.columns[i] for i in dropped]
    aliases = _alias_list(_Fit(X[:, keep]), [mm.columns[i] for i in keep], X2, names)
    lines = []
    for a in aliases:
        rhs = "".join(f" {'-' if c < 0 else '+'} {fmt_rounded(abs(c))} {name}"
                      for name, c in a["aliased_with"].items())
        lines.append(f"{a['term']} = {a['term']}{rhs}")
    return lines


# -- inputs -------------------------------------------------------------------------
def _inputs(
    study: Study, source: np.ndarray | Design, blocks: np.ndarray | None, n_blocks: int | None
) -> tuple[np.ndarray, np.ndarray | None, int]:
    if isinstance(source, Design):
        U, blocks, n_blocks = source.coded(), source.block_index(), source.n_blocks
    elif isinstance(source, pd.DataFrame):
        U = coded_array(study, source)
    else:
        U = np.atleast_2d(np.asarray(source, dtype=float))
    if U.shape[0] == 0:
        raise DesignError("The design has no runs: there is nothing to evaluate.")
    if U.shape[1] != len(study.factors):
        raise DesignError(
            f"The coded design has {U.shape[1]} columns but the study has "
            f"{len(study.factors)} factors ({', '.join(study.factor_names)})."
        )
    if blocks is not None:
        blocks = np.asarray(blocks, dtype=int)
        n_blocks = int(blocks.max()) + 1 if n_blocks is None else int(n_blocks)
    n_blocks = 1 if n_blocks is None else int(n_blocks)
    return U, (blocks if n_blocks > 1 else None), n_blocks


def _plots(study: Study, source: np.ndarray | Design, plots: PlotStructure | None, ratio: float | None,
           n: int) -> tuple[PlotStructure | None, str]:
    """The split-plot structure to evaluate under, and the name of its whole-plot (donor) column."""
    column = WHOLE_PLOT
    if plots is None and isinstance(source, Design):
        table = source.table
        # a donor column: a random effect of the study, or the Donor column of a donor design made here
        named = [*study.random_effects, *(["Donor"] if "donors" in source.info else [])]
        donor = next((c for c in named if c in table), None)
        column = WHOLE_PLOT if WHOLE_PLOT in table else donor or WHOLE_PLOT
        if column in table:
            wp = _labels(table[column], column)
            sp = _labels(table[SUBPLOT], SUBPLOT) if SUBPLOT in table and column == WHOLE_PLOT else None
            if ratio is None:
                ratio = float(source.info.get("variance ratio", 1.0))
            plots = PlotStructure(wp, sp, 1.0)
    if plots is None:
        return None, column
    if len(plots.whole_plot) != n:
        raise DesignError(f"Give one whole plot per run ({n}); got {len(plots.whole_plot)}.")
    if ratio is not None:
        checked = plot_structure(1, 1, variance_ratio=ratio)  # validates the ratio
        plots = replace(plots, variance_ratio=checked.variance_ratio, subplot_ratio=checked.variance_ratio)
    return plots, column


def _crossed_random_effects(study: Study, design: Design, plot_column: str, X: np.ndarray,
                            ratio: float) -> dict[str, Any]:
    """The D-criterion with every random-effect column of the run sheet (e.g. donors crossed with the whole
    plots), each with the same variance ratio: V = I + ratio * sum_k Z_k Z_k'; {} when there is none besides
    the plot column. The power by stratum above counts the plot column's strata only."""
    others = [c for c in study.random_effects if c in design.table and c != plot_column]
    if not others:
        return {}
    V = np.eye(len(X))
    for col in [plot_column, *others]:
        codes = _labels(design.table[col], col)
        Z = (codes[:, None] == np.unique(codes)[None, :]).astype(float)
        V += ratio * Z @ Z.T
    M = X.T @ np.linalg.solve(V, X)
    sign, logdet = np.linalg.slogdet(M)
    d = math.exp(logdet / X.shape[1] - math.log(len(X))) if sign > 0 else None
    return {"crossed_random_effects": others, "d_criterion_all_random_effects": d,
            "d_efficiency_all_random_effects": None if d is None else 100.0 * d}


def _labels(values: pd.Series, column: str) -> np.ndarray:
    """Whole plot (subplot) labels as 0.. in order of first appearance; DesignError on a blank cell."""
    if values.isna().any():
        raise DesignError(f"The '{column}' column has empty cells: give every run its {column.lower()}.")
    return np.unique(values.astype(str).to_numpy(), return_inverse=True)[1].astype(int)


def _split_plot_metrics(study: Study, mm: ModelMatrix, U: np.ndarray, plots: PlotStructure, column: str,
                        snr: float, alpha: float) -> tuple[dict[str, Any], pd.DataFrame, list[str]]:
    """Criteria under the split-plot covariance, GLS power by stratum, and warnings (doe.split_plot)."""
    two = plots.subplot is not None
    donors = column != WHOLE_PLOT
    wp, sp = ([], []) if donors else factor_tiers(study, two)
    X = mm.build(U)
    d, i = split_plot_criteria(study, mm, U, plots)
    power = split_plot_power(mm, X, plots, wp, sp, snr, alpha)
    warnings = []
    index = {name: j for j, name in enumerate(study.factor_names)}
    for names, units, what in ((wp, plots.whole_plot, "whole plot"),
                               (sp, plots.subplot if two else None, "subplot")):
        if units is None:
            continue
        moving = [f for f in names if any(np.ptp(U[units == g, index[f]]) > 1e-9 for g in np.unique(units))]
        if moving:
            warnings.append(f"{quoted_list(moving)} change within a {what}: the design does not hold "
                            f"{'it' if len(moving) == 1 else 'them'} constant as a split-plot design should, "
                            "and the split-plot criteria and power assume it does.")
    short = power[(power["reason"] != "") & power["reason"].str.startswith("no ")]
    if len(short):
        warnings.append(f"No degrees of freedom are left for the {short['stratum'].iloc[0]} error "
                        f"({', '.join(short['term'])}): power cannot be computed for "
                        f"{'it' if len(short) == 1 else 'them'}; add {'whole plots' if short['stratum'].iloc[0] == 'whole plot' else 'runs'}.")
    out: dict[str, Any] = {
        "whole_plots": plots.n_whole_plots, "variance_ratio": plots.variance_ratio, "plot_column": column,
        "d_criterion_split_plot": d if d > 0 else None,
        "d_efficiency_split_plot": 100.0 * d if d > 0 else None,
        "i_criterion_split_plot": i if math.isfinite(i) else None,
        "whole_plot_factors": list(wp), "subplot_factors": list(sp),
    }
    if donors:
        out["donors"] = plots.n_whole_plots
    if two:
        out["subplots"] = plots.n_subplots
        out["subplot_variance_ratio"] = plots.subplot_ratio
    return out, power, warnings


def _as_terms(study: Study, terms: list[Term] | str | list[str] | None) -> list[Term]:
    if isinstance(terms, (list, tuple)) and terms and all(isinstance(t, Term) for t in terms):
        return list(cast("list[Term]", terms))
    return parse_model(study, cast("str | list[str] | None", terms))


# -- linear algebra -----------------------------------------------------------------
class _Fit:
    """QR factorisation X = QR of the estimable columns, cached once.

    Working from R rather than X'X keeps the condition number at cond(X), not its
    square (Golub & Van Loan, sec. 5.3).
    """

    def __init__(self, X: np.ndarray):
        self.X = X
        self.rank = X.shape[1]
        self.Q, self.R = linalg.qr(X, mode="economic")
        self._inv: np.ndarray | None = None

    @property
    def logdet(self) -> float:
        """log det(X'X)."""
        return float(2.0 * np.sum(np.log(np.abs(np.diag(self.R)))))

    @property
    def inverse(self) -> np.ndarray:
        """(X'X)^-1 = R^-1 R^-T."""
        if self._inv is None:
            r_inv = linalg.solve_triangular(self.R, np.eye(self.rank))
            self._inv = r_inv @ r_inv.T
        return self._inv

    @property
    def trace_inverse(self) -> float:
        return float(np.trace(self.inverse))

    def pred_var(self, F: np.ndarray) -> np.ndarray:
        """x'(X'X)^-1 x for each row x of F (columns as in X)."""
        z = linalg.solve_triangular(self.R, F.T, trans="T")
        var: np.ndarray = np.einsum("ij,ij->j", z, z)
        return var

    def project(self, Y: np.ndarray) -> np.ndarray:
        """Least-squares coefficients (X'X)^-1 X'Y."""
        coefs: np.ndarray = linalg.solve_triangular(self.R, self.Q.T @ Y)
        return coefs


# -- estimability -------------------------------------------------------------------
def _estimability(
    study: Study, mm: ModelMatrix, U: np.ndarray, X: np.ndarray
) -> tuple[list[int], list[dict[str, str]]]:
    """Walk the columns in model order; keep those not spanned by earlier kept columns."""
    n = X.shape[0]
    basis = np.zeros((n, 0))
    keep: list[int] = []
    inestimable: list[dict[str, str]] = []
    terms = {t.name: t for t in mm.terms}
    for j in range(X.shape[1]):
        x = X[:, j]
        norm = float(np.linalg.norm(x))
        resid = x - basis @ (basis.T @ x)
        resid -= basis @ (basis.T @ resid)  # re-orthogonalise (twice is enough)
        rnorm = float(np.linalg.norm(resid))
        if norm > 1e-10 * math.sqrt(n) and rnorm > RANK_TOL * norm:
            basis = np.hstack([basis, (resid / rnorm)[:, None]])
            keep.append(j)
            continue
        reason, combo = _reason(study, mm, U, X, j, keep, terms.get(mm.column_term[j]))
        inestimable.append({"term": mm.column_term[j], "column": mm.columns[j], "reason": reason,
                            "combination": combo})
    return keep, inestimable


def _reason(
    study: Study, mm: ModelMatrix, U: np.ndarray, X: np.ndarray, j: int, keep: list[int],
    term: Term | None,
) -> tuple[str, str]:
    """Plain-words reason why column j is a combination of earlier columns, and that combination.

    The reason names the factors and says what to change; the combination (``B:C = A:D``) is the
    technical statement, kept separately.
    """
    n, col = X.shape[0], mm.columns[j]
    x = X[:, j]
    coef = np.linalg.lstsq(X[:, keep], x, rcond=None)[0] if keep else np.zeros(0)
    combo = f"{col} = {_combination({mm.columns[k]: c for k, c in zip(keep, coef)})}"
    words = plain_reason(study, term, U)
    if words:
        return words, combo
    if np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        what = "zero" if np.abs(x).max() <= 1e-12 else f"the constant {fmt_rounded(float(x[0]))}"
        return f"{col} is {what} in every run, so it cannot be separated from the intercept", combo
    if len(keep) >= n and np.sum(np.abs(coef) > 1e-6) > 3:
        return f"{n} runs cannot estimate {mm.p} model terms; add runs or drop terms", combo
    return aliasing_words(col, {mm.columns[k]: c for k, c in zip(keep, coef)}), combo


def plain_reason(study: Study, term: Term | None, U: np.ndarray, where: str = "in the design") -> str | None:
    """Why a term cannot be estimated, from the factor settings alone, with what to do; or None.

    A factor at one setting, a level that never appears, too few settings for a square or cube
    (add centre or axial points), categorical level combinations that never occur, or a numeric
    factor at one setting within a categorical level.
    """
    shortfall = settings_shortfall(study, term, U, where)
    if shortfall:
        if "a square needs" in shortfall or "a cube needs" in shortfall or "a power" in shortfall:
            return f"{shortfall}; add centre or axial points, or drop the term"
        if "never appear" in shortfall:
            return f"{shortfall}; add runs at those levels, or drop the term"
        return f"{shortfall}; vary it, or drop the terms that contain it"
    if term is None or len(term.parts) < 2:
        return None
    names = [f for f, _ in term.parts]
    col = {f: U[:, study.factor_names.index(f)] for f in names}
    cats = [f for f in names if study.factor(f).is_categorical]
    nums = [f for f in names if not study.factor(f).is_categorical]
    if len(cats) >= 2:
        seen = {tuple(int(col[f][i]) for f in cats) for i in range(U.shape[0])}
        missing = [c for c in itertools.product(*(range(len(study.factor(f).levels)) for f in cats))
                   if c not in seen]
        if missing:
            shown = "; ".join(", ".join(f"{f} = {study.factor(f).levels[k]}" for f, k in zip(cats, c))
                              for c in missing[:4])
            more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
            return (f"these combinations of {' and '.join(cats)} never occur {where}: {shown}{more}; "
                    "add runs with them, or drop the term")
    for f in cats:
        for k, level in enumerate(study.factor(f).levels):
            rows = col[f].astype(int) == k
            for g in nums:
                if rows.any() and len(np.unique(np.round(col[g][rows], 9))) == 1:
                    return (f"{g} is at one setting in every run with {f} = {level} {where}; "
                            f"vary {g} within that level, or drop the term")
    return None


def aliasing_words(col: str, coefs: dict[str, float]) -> str:
    """'B:C is aliased with A:D: ...' in words from the column's combination of earlier columns."""
    partners = [k for k, c in coefs.items() if abs(c) > 1e-6 and k != "Intercept"]
    if not partners:
        return f"{col} is constant in every run, so it cannot be separated from the intercept"
    fix = "add runs that vary them separately (for a fraction, its fold-over), or drop one of them"
    if len(partners) == 1:
        p, c = partners[0], coefs[partners[0]]
        shifted = abs(coefs.get("Intercept", 0.0)) > 1e-6
        how = ("moves in step with" if shifted or abs(abs(c) - 1) > 1e-6
               else "equals" if c > 0 else "is the mirror image of")
        return (f"aliased with {p}: {col} {how} {p} in every run, so the data cannot tell their effects "
                f"apart; {fix}")
    listed = ", ".join(partners[:-1]) + f" and {partners[-1]}" if len(partners) <= 6 else (
        ", ".join(partners[:6]) + f" and {len(partners) - 6} more")
    return (f"aliased with {listed} together: in every run {col} is fixed by their settings, so the data "
            f"cannot tell its effect from theirs; {fix}")


def _combination(coefs: dict[str, float]) -> str:
    """'A:B - 0.5 C' from {column: coefficient}, dropping coefficients below 1e-6."""
    parts = []
    for name, c in coefs.items():
        if abs(c) < 1e-6:
            continue
        sign = "-" if c < 0 else "+"
        size = "" if abs(abs(c) - 1) < 1e-6 else f"{fmt_rounded(abs(c))} "
        parts.append((sign, f"{size}{name}"))
    if not parts:
        return "zero"
    text = ("-" if parts[0][0] == "-" else "") + parts[0][1]
    return text + "".join(f" {s} {t}" for s, t in parts[1:])


def _estimability_warnings(n: int, p: int, inestimable: list[dict[str, str]]) -> list[str]:
    out = []
    if n < p:
        out.append(f"{n} runs cannot estimate {p} model terms; add runs or drop terms.")
    shown = [d for d in inestimable if not d["reason"].startswith(f"{n} runs cannot")]
    for d in shown[:10]:
        out.append(f"{d['column']} cannot be estimated: {d['reason']}.")
    if len(shown) > 10:
        out.append(f"... and {len(shown) - 10} more model columns cannot be estimated.")
    if inestimable:
        out.append(
            "D-, A- and G-efficiency, the average prediction variance and the fraction of "
            "design space plot need every model term to be estimable, so they are not shown. "
            "VIF, power and aliases are given for the estimable terms only."
        )
    return out


def _outside_warnings(study: Study, U: np.ndarray) -> list[str]:
    numeric = _numeric_mask(study)
    outside = int(np.sum(np.any(np.abs(U[:, numeric]) > 1 + 1e-9, axis=1)))
    if not outside:
        return []
    text = (f"{outside} run(s) lie outside the study ranges (coded beyond -1/+1, e.g. axial "
            "points); G-efficiency and prediction variances refer to the study ranges.")
    return [text]


# -- region: candidates, Monte Carlo sample, exact moments -------------------------------
def _region_metrics(
    study: Study, mm: ModelMatrix, fit: _Fit, U: np.ndarray, blocks: np.ndarray | None,
    seed: int, estimable: bool,
) -> tuple[float | None, float | None, dict[str, list[float]], dict[str, Any]]:
    """G-efficiency, average prediction variance I, FDS quantiles and how the region was used."""
    if not estimable:
        return None, None, {"fraction": [], "variance": []}, {}
    cand_U, cand_b = _candidates(study, mm.n_blocks, U, blocks)
    sample_U, sample_b, method = sample_region(study, mm.n_blocks, seed, MC_POINTS)
    g_max = float(fit.pred_var(mm.build(cand_U, cand_b)).max())
    g_eff = 100.0 * mm.p / (len(U) * g_max)
    sample_var = fit.pred_var(mm.build(sample_U, sample_b))
    if method == "exact":
        avg_var = float(np.sum(moment_matrix(study, mm) * fit.inverse))
    else:
        avg_var = float(sample_var.mean())
    region = {"moments": method, "n_points": len(sample_U), "g_candidates": len(cand_U),
              "max_prediction_variance": g_max}
    return g_eff, avg_var, _fds(sample_var), region


def _candidates(
    study: Study, n_blocks: int, U: np.ndarray, blocks: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Feasible grid points (vertices included) plus the design's own in-region points."""
    n_cont = sum(f.kind == "continuous" for f in study.factors)
    fixed = math.prod(len(f.levels) for f in study.factors if f.kind != "continuous") * n_blocks
    # Nested grids (17 > 9 > 5 > 3 levels) so a finer grid always contains the coarser ones.
    levels = next((k for k in (17, 9, 5, 3) if fixed * k ** n_cont <= GRID_LIMIT), 3)
    grid = study.grid(levels=levels, limit=GRID_LIMIT // n_blocks)
    G = coded_array(study, grid[study.feasible(grid)])
    inside = np.all(np.abs(U[:, _numeric_mask(study)]) <= 1 + 1e-9, axis=1)
    inside &= study.feasible(actual_frame(study, U))
    if n_blocks > 1:
        own_b = np.zeros(int(inside.sum()), dtype=int) if blocks is None else blocks[inside]
        G_b = np.repeat(np.arange(n_blocks), len(G))
        G = np.tile(G, (n_blocks, 1))
        return np.vstack([G, U[inside]]), np.concatenate([G_b, own_b])
    return np.vstack([G, U[inside]]), None


def _numeric_mask(study: Study) -> np.ndarray:
    return np.array([not f.is_categorical for f in study.factors])


def _fds(variance: np.ndarray) -> dict[str, list[float]]:
    """Fraction of design space: quantiles of the relative prediction variance."""
    return {"fraction": _FDS_FRACTIONS.tolist(),
            "variance": np.quantile(variance, _FDS_FRACTIONS).tolist()}


# -- diagnostics --------------------------------------------------------------------
def _omitted_interactions(study: Study, terms: list[Term], max_order: int) -> list[Term]:
    """Interactions of order 2..max_order (distinct factors, power 1) not in the model."""
    present = set(terms)
    out = []
    for k in range(2, max_order + 1):
        for combo in itertools.combinations(study.factor_names, k):
            t = Term(tuple((f, 1) for f in combo))
            if t not in present:
                out.append(t)
    return out


def _alias_list(
    fit: _Fit, names: list[str], X2: np.ndarray, names2: list[str]
) -> list[dict[str, Any]]:
    """Rows of the alias matrix (X1'X1)^-1 X1'X2, keeping |coefficient| > 1e-8."""
    A = fit.project(X2) if X2.shape[1] else np.zeros((len(names), 0))
    out = []
    for name, row in zip(names, A):
        hits = {n2: float(np.round(c, 10)) for n2, c in zip(names2, row) if abs(c) > 1e-8}
        out.append({"term": name, "aliased_with": hits})
    return out


def _vif(mm: ModelMatrix, fit: _Fit, keep: list[int], X: np.ndarray) -> dict[str, float]:
    """VIF_j = [(X'X)^-1]_jj * sum (x_j - mean)^2 = 1 / (1 - R_j^2) (Montgomery, sec. 10.4)."""
    pos = {k: i for i, k in enumerate(keep)}
    diag = np.diag(fit.inverse)
    out = {}
    for j, col in enumerate(mm.columns):
        if mm.column_term[j] in ("Intercept", "Block"):
            continue
        if j not in pos:
            out[col] = math.inf
            continue
        ss = float(np.sum((X[:, j] - X[:, j].mean()) ** 2))
        out[col] = float(diag[pos[j]] * ss)
    return out


def _correlation(X: np.ndarray, names: list[str], X2: np.ndarray, names2: list[str]) -> pd.DataFrame:
    """|Pearson correlation| of model columns (no intercept) and omitted 2FI columns."""
    Z = np.hstack([X, X2])
    Zc = Z - Z.mean(axis=0)
    sd = np.sqrt(np.sum(Zc ** 2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        Zs = Zc / np.where(sd > 1e-12, sd, np.nan)
        R = np.abs(Zs.T @ Zs)
    R = np.clip(R, 0.0, 1.0)
    np.fill_diagonal(R, 1.0)
    cols = list(names) + list(names2)
    return pd.DataFrame(R, index=cols, columns=cols)


def _power(
    mm: ModelMatrix, fit: _Fit, keep: list[int], n: int, snr: float, alpha: float
) -> pd.DataFrame:
    """Power of the F test of each term at level alpha (JMP convention).

    Anticipated coefficients b = snr * (+1, -1, +1, ...) over the term's columns;
    noncentrality lambda = b'(L (X'X)^-1 L')^-1 b; df = (columns, N - rank).
    """
    pos = {k: i for i, k in enumerate(keep)}
    dfe = n - fit.rank
    rows = []
    for term in dict.fromkeys(mm.column_term):
        if term == "Block":
            continue
        idx = [j for j, t in enumerate(mm.column_term) if t == term]
        row = {"term": term, "columns": ", ".join(mm.columns[j] for j in idx),
               "df": len(idx), "power": math.nan, "noncentrality": math.nan, "reason": ""}
        if any(j not in pos for j in idx):
            row["reason"] = "not estimable"
        elif dfe <= 0:
            row["reason"] = "no error degrees of freedom (runs = estimated terms)"
        else:
            sub = [pos[j] for j in idx]
            b = snr * np.where(np.arange(len(sub)) % 2 == 0, 1.0, -1.0)
            lam = float(b @ np.linalg.solve(fit.inverse[np.ix_(sub, sub)], b))
            crit = special.fdtri(len(sub), dfe, 1.0 - alpha)
            row["power"] = float(1.0 - special.ncfdtr(len(sub), dfe, lam, crit))
            row["noncentrality"] = lam
        rows.append(row)
    return pd.DataFrame(rows, columns=["term", "columns", "df", "power", "noncentrality", "reason"])


def power_at(ev: DesignEvaluation, snr: float, alpha: float = 0.05) -> DesignEvaluation:
    """The same evaluation with power at another signal-to-noise ratio and alpha.

    The noncentrality scales with the square of the anticipated coefficients,
    lambda(snr) = lambda(snr0) (snr / snr0)^2, so nothing else is recomputed.
    """
    if snr <= 0 or not 0 < alpha < 1:
        raise DesignError("The signal-to-noise ratio must be positive and alpha between 0 and 1.")
    table = ev.power.copy()
    lam = table["noncentrality"] * (snr / ev.snr) ** 2
    # split-plot tables carry each term's stratum df; otherwise the residual df N - rank
    dfe = (table["df_den"].to_numpy(dtype=float) if "df_den" in table
           else np.full(len(table), float(ev.runs - ev.rank)))
    ok = lam.notna().to_numpy() & (dfe > 0)
    table["noncentrality"] = lam
    if ok.any():
        df1 = table.loc[ok, "df"].to_numpy(dtype=float)
        crit = special.fdtri(df1, dfe[ok], 1.0 - alpha)
        table.loc[ok, "power"] = 1.0 - special.ncfdtr(df1, dfe[ok], lam[ok].to_numpy(), crit)
    return replace(ev, power=table, snr=snr, alpha=alpha)


def _power_warnings(n: int, rank: int) -> list[str]:
    if n > rank:
        return []
    text = (f"No degrees of freedom are left for error ({n} runs, {rank} estimated terms): "
            "power cannot be computed; add runs (e.g. replicated centre points).")
    return [text]


def _vif_warnings(vif: dict[str, float]) -> list[str]:
    high = [c for c, v in vif.items() if math.isfinite(v) and v > 10]
    if not high:
        return []
    names = ", ".join(high[:8]) + (f" and {len(high) - 8} more" if len(high) > 8 else "")
    text = (f"VIF above 10 for {names}: these terms are strongly correlated with "
            "other terms, so their estimates will be imprecise.")
    return [text]
