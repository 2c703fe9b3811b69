"""Least squares through a QR factorisation (Golub & Van Loan, *Matrix Computations*, sec. 5.3):
the model columns' bookkeeping (:class:`ModelColumn`), the full-rank fit (:class:`LeastSquares`),
estimability checks worded for the scientist, pure error, and the F and t tails."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy import linalg, special

from doe.errors import ModelError, quoted_list
from doe.model import ModelMatrix, Term
from doe.study import Study

__all__ = ["RANK_TOL", "LeastSquares", "ModelColumn", "term_contains"]

#: A column whose part orthogonal to earlier columns is below this fraction of its norm is aliased.
RANK_TOL = 1e-8


# -- model matrix bookkeeping -----------------------------------------------------------
@dataclass(frozen=True)
class ModelColumn:
    """What one model column is: its term, categorical basis indices and numeric parts."""

    name: str
    term: str
    cat: tuple[tuple[str, int], ...] = ()
    num: tuple[tuple[str, int], ...] = ()

    @property
    def is_block(self) -> bool:
        """True for a block column (averaged out in predictions)."""
        return self.term == "Block"


def column_info(study: Study, mm: ModelMatrix) -> list[ModelColumn]:
    cols = [ModelColumn("Intercept", "Intercept")]
    cols += [ModelColumn(mm.columns[j], "Block") for j in range(1, mm.n_blocks)]
    for t in mm.terms:
        bases = []
        for f, _ in t.parts:
            fac = study.factor(f)
            bases.append([(f, k) for k in range(len(fac.levels) - 1)] if fac.is_categorical else [None])
        num = tuple((f, p) for f, p in t.parts if not study.factor(f).is_categorical)
        for combo in itertools.product(*bases):
            cols.append(ModelColumn("", t.name, tuple(c for c in combo if c is not None), num))
    if len(cols) != mm.p:  # pragma: no cover - guards against a change in ModelMatrix
        raise RuntimeError("model column bookkeeping out of step with ModelMatrix")
    return [c if c.name else ModelColumn(name, c.term, c.cat, c.num) for c, name in zip(cols, mm.columns)]


def term_contains(big: Term, small: Term) -> bool:
    """True if ``big`` contains ``small`` (A in A:B, A^2, A^2:B; marginality rule)."""
    if big == small:
        return False
    powers = dict(big.parts)
    return all(f in powers and powers[f] >= p for f, p in small.parts)


# -- least squares ----------------------------------------------------------------------
class LeastSquares:
    """Full-rank least squares through X = QR."""

    X: np.ndarray
    y: np.ndarray
    n: int
    p: int
    Q: np.ndarray
    R: np.ndarray
    coef: np.ndarray
    fitted: np.ndarray
    df: int
    resid: np.ndarray
    sse: float
    mse: float
    #: Q'y: the response's coordinates on the columns of Q.
    qty: np.ndarray

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X, self.y = X, y
        self.n, self.p = X.shape
        self.Q, self.R = linalg.qr(X, mode="economic", check_finite=False)
        self.qty = qty = self.Q.T @ y
        self.coef = linalg.solve_triangular(self.R, qty, check_finite=False)
        self.fitted = self.Q @ qty
        self.df = self.n - self.p
        if self.df == 0:  # saturated: the fit is exact; drop round-off
            self.fitted = y.astype(float).copy()
        self.resid = y - self.fitted
        self.sse = float(self.resid @ self.resid)
        self.mse = self.sse / self.df if self.df > 0 else math.nan

    @cached_property
    def r_inv(self) -> np.ndarray:
        """R^-1 of X = QR."""
        # LAPACK's triangular inverse (solve_triangular against the identity does far more work).
        inv, info = linalg.lapack.dtrtri(self.R, lower=0)
        return inv if info == 0 else np.linalg.pinv(self.R)

    @cached_property
    def cov_unscaled(self) -> np.ndarray:
        """(X'X)^-1."""
        out: np.ndarray = self.r_inv @ self.r_inv.T
        return out

    @cached_property
    def leverage(self) -> np.ndarray:
        """Diagonal of the hat matrix, one per run."""
        out: np.ndarray = np.einsum("ij,ij->i", self.Q, self.Q)
        return out

    def pred_var(self, F: np.ndarray) -> np.ndarray:
        """x'(X'X)^-1 x for each row x of F."""
        z = F @ self.r_inv
        out: np.ndarray = np.einsum("ij,ij->i", z, z)
        return out

    @cached_property
    def subsets(self) -> SubsetFits:
        """Sums of squares of fits to subsets of X's columns, from this fit's R factor (:class:`SubsetFits`)."""
        return SubsetFits(self)


class SubsetFits:
    """Least squares of y on any subset of X's columns, without going back to the n runs.

    With X = QR and y's part outside X's span of length s = ||y - QQ'y||, [X y] = [Q q] T where
    T = [[R, Q'y], [0, s]] is (p+1) x (p+1) and [Q q] has orthonormal columns, so for every subset S of
    columns and every b, ||y - X_S b|| = ||t - T_S b|| with t T's last column: the fit of y on X_S (its
    coefficients, residual SS, (X_S'X_S)^-1) is the fit of t on T_S, a (p+1)-row problem (Golub & Van Loan,
    *Matrix Computations*, sec. 5.3 and 6.2: updating least squares). One QR of X serves every ANOVA row and
    every step of a backward elimination, and the memory stays O(n p) (only T is added).
    """

    def __init__(self, ls: LeastSquares) -> None:
        p = ls.p
        T = np.zeros((p + 1, p + 1))
        T[:p, :p] = ls.R
        T[:p, p] = ls.qty
        T[p, p] = math.sqrt(max(ls.sse, 0.0))
        self.n = ls.n
        self.T = T[:, :p]
        self.t = T[:, p]

    def residual_ss(self, cols: list[int]) -> float:
        """Residual SS of y on the columns ``cols`` of X (in that order); y'y for no column."""
        if self.n <= len(cols):
            return 0.0
        return residual_ss(self.T[:, cols], self.t)

    def added_ss(self, base: list[int], new: list[int]) -> float:
        """Extra SS of the columns ``new`` fitted after ``base``: SSE(base) - SSE(base + new), computed directly
        as the squared length of y's part along the part of X_new orthogonal to X_base (no difference of
        two residual sums of squares, so no cancellation when the term's SS is small)."""
        if not new:
            return 0.0
        R = np.asarray(np.linalg.qr(np.column_stack([self.T[:, base + new], self.t]), mode="r"))
        k = len(base)
        part = R[k:k + len(new), -1]
        return float(part @ part)

    def fit(self, cols: list[int]) -> LeastSquares:
        """The least-squares fit of y on the columns ``cols`` of X: ``coef``, ``sse`` and ``cov_unscaled`` as
        :class:`LeastSquares` on X[:, cols] would give them; its ``n``, ``df`` and ``mse`` are those of the
        (p+1)-row problem, so take the residual df as ``n - len(cols)`` of the runs."""
        return LeastSquares(self.T[:, cols], self.t)


def residual_ss(X: np.ndarray, y: np.ndarray) -> float:
    """Residual sum of squares of a full-rank fit: the last diagonal of R of [X y], squared."""
    n, k = X.shape
    if k == 0:
        return float(y @ y)
    if n <= k:
        return 0.0
    R = np.asarray(np.linalg.qr(np.column_stack([X, y]), mode="r"))  # numpy's stubs type mode "r" as a tuple
    return float(R[k, k] ** 2)


def rank_fit(X: np.ndarray, y: np.ndarray) -> tuple[float, int, np.ndarray, np.ndarray]:
    """SSE, rank, residuals and leverages of a possibly rank-deficient fit (pivoted QR)."""
    Q, R, _ = linalg.qr(X, mode="economic", pivoting=True, check_finite=False)
    d = np.abs(np.diag(R))
    rank = int(np.sum(d > RANK_TOL * max(d[0], 1e-300))) if len(d) else 0
    Qr = Q[:, :rank]
    resid = y - Qr @ (Qr.T @ y)
    return float(resid @ resid), rank, resid, np.einsum("ij,ij->i", Qr, Qr)


def _inestimable(X: np.ndarray) -> list[int]:
    """Columns (in model order) spanned by earlier columns (Gram-Schmidt, twice)."""
    n = X.shape[0]
    basis = np.zeros((n, 0))
    out = []
    for j in range(X.shape[1]):
        x = X[:, j]
        norm = float(np.linalg.norm(x))
        r = x - basis @ (basis.T @ x)
        r -= basis @ (basis.T @ r)
        rn = float(np.linalg.norm(r))
        if norm > 1e-10 * math.sqrt(n) and rn > RANK_TOL * norm:
            basis = np.hstack([basis, (r / rn)[:, None]])
        else:
            out.append(j)
    return out


def check_estimable(study: Study, mm: ModelMatrix, cols: list[ModelColumn], X: np.ndarray,
                     U: np.ndarray, response: str) -> None:
    n, p = X.shape
    if n < p:
        raise ModelError(
            f"{response} has results for {n} runs, but the model has {p} coefficients "
            f"({_describe_columns(mm)}): drop terms such as {suggest_drop(mm.terms)}, or add runs."
        )
    # Householder QR in model order: |R_jj| is the part of column j orthogonal to earlier columns.
    r = np.abs(np.diag(np.linalg.qr(X, mode="r")))
    norms = np.linalg.norm(X, axis=0)
    if np.all(r > RANK_TOL * np.maximum(norms, 1e-300)):
        return
    dependent = _inestimable(X) or [int(np.argmin(r / np.maximum(norms, 1e-300)))]
    j = dependent[0]
    col = cols[j]
    reason = _reason(study, mm, cols, X, U, j)
    raise ModelError(
        f"The model cannot be fitted to {response}: {col.name} cannot be estimated from these "
        f"runs: {reason}." + (" Drop the blocks from the model, or add runs that separate them from "
                             "the other terms." if col.is_block else "")
    )


def _reason(study: Study, mm: ModelMatrix, cols: list[ModelColumn], X: np.ndarray, U: np.ndarray, j: int) -> str:
    """Why column j cannot be estimated, in words (no linear combination of columns)."""
    from doe.evaluate import aliasing_words, plain_reason

    col = cols[j]
    term = next((t for t in mm.terms if t.name == col.term), None)
    words = plain_reason(study, term, U, "among the runs with a result")
    if words:
        return words
    coef = np.linalg.lstsq(X[:, :j], X[:, j], rcond=None)[0]
    return aliasing_words(col.name, {cols[k].name: c for k, c in enumerate(coef)})


def _describe_columns(mm: ModelMatrix) -> str:
    k = len(mm.terms)
    text = f"intercept and {k} term{'s' if k != 1 else ''}"
    if mm.n_blocks > 1:
        text += f" plus {mm.n_blocks - 1} block column{'s' if mm.n_blocks > 2 else ''}"
    return text


def suggest_drop(terms: list[Term]) -> str:
    high = sorted(terms, key=lambda t: -t.degree)
    picks = [t.name for t in high if t.degree > 1][:3] or [t.name for t in terms][-2:]
    return quoted_list(picks) if picks else "some terms"


def is_two_level(study: Study, terms: list[Term], U: np.ndarray) -> bool:
    """All model terms are products of distinct factors at two levels (centre points allowed)."""
    if not terms or any(p > 1 for t in terms for _, p in t.parts):
        return False
    for name in {f for t in terms for f in t.factors}:
        fac = study.factor(name)
        values = np.unique(np.round(U[:, study.factor_names.index(name)], 9))
        if fac.is_categorical:
            if len(fac.levels) != 2:
                return False
        elif not (set(values) <= {-1.0, 0.0, 1.0} and {-1.0, 1.0} <= set(values)):
            return False
    return True


def pure_error(U: np.ndarray, blocks: np.ndarray | None, y: np.ndarray) -> tuple[float, int, np.ndarray]:
    """Pure-error SS and df from runs with identical settings in the same block; group ids."""
    key = np.round(U, 9)
    if blocks is not None:
        key = np.column_stack([key, blocks])
    _, groups = np.unique(key, axis=0, return_inverse=True)
    groups = groups.ravel()
    sums = np.bincount(groups, weights=y)
    counts = np.bincount(groups)
    means = sums / counts
    ss = float(np.sum((y - means[groups]) ** 2))
    return ss, int(len(y) - len(counts)), groups



def f_sf(F: float, d1: float, d2: float) -> float:
    """Upper tail of F(d1, d2), from scipy.special directly (stats.f.sf validates and broadcasts on every call)."""
    return float(special.fdtrc(d1, d2, F)) if np.isfinite(F) else (0.0 if F > 0 else math.nan)


def t_two_sided(t: Any, df: float) -> np.ndarray:
    """Two-sided p-value of Student's t."""
    p: np.ndarray = 2.0 * special.stdtr(df, -np.abs(np.asarray(t, dtype=float)))
    return p

