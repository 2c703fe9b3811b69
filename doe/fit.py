"""Fitting a response-surface model to one CQA, like JMP's *Fit Least Squares* and
Design-Expert's analysis.

One call, :func:`fit_model`, returns a :class:`FittedModel` that every page,
plot, report and CLI command reads from; none of them recompute statistics.
Everything is estimated by ordinary least squares through a QR factorisation
of the model matrix (Golub & Van Loan, *Matrix Computations*, sec. 5.3).

Conventions
-----------
- **Coded units.** Coefficients, the coded equation, the stationary point
  (``coded``) and steepest-ascent directions are in coded units: continuous
  and discrete factors at -1..+1 over the study's low..high, categorical
  factors in effect (sum-to-zero) coding with columns ``Medium[hPL 5%]`` (see
  :mod:`doe.model`). ``equation_actual`` and ``coefficients_actual`` are in
  actual units.
- **Blocks** (a block column with more than one level among the runs used)
  are fixed effects in effect coding, columns ``Block[1]`` ... ``Block[B-1]``
  where ``Block[i]`` belongs to the i-th block label in natural sort order
  (``B1`` < ``B2``; ``2`` < ``10``); the last block is coded -1. Effect coding
  changes the intercept and the block coefficients relative to R's treatment
  coding, never the other estimates. Predictions, equations, the stationary
  point and the steepest-ascent path average the blocks out (block columns 0).
- **ANOVA** (Design-Expert's layout): ``Block`` first, its sum of squares
  sequential (blocks entered before the model, as Design-Expert and rsm do);
  its F and p are given for information (rsm and JMP test blocks; Design-Expert
  does not, blocks being a restriction on randomisation);
  then ``Model`` = SS(all terms | blocks); then one row per model term with its
  partial SS of the requested type; ``Residual``, ``Lack of fit``, ``Pure
  error``, ``Total`` (corrected). Type I is sequential in model order after the
  blocks; Type II adjusts each term for every term that does not contain it
  (A is contained in A:B, A^2 and A^2:B; A:B in A:B:C; blocks contain nothing
  and are in every reduced model) - the marginality rule of JMP and
  Design-Expert, which statsmodels does not apply to ``I(A**2)``; Type III
  adjusts each term for all others (meaningful with effect coding).
- **R², adjusted R², predicted R²** use the corrected total including the
  block variation (as R's ``summary.lm`` and JMP do; Design-Expert removes
  the block SS from the total for blocked designs, which gives lower values).
  ``overall_f`` is the whole-regression F against the intercept-only model,
  blocks included (R's ``summary.lm`` F).
- **Lack of fit** uses pure error from replicates: runs with identical
  settings of every study factor *in the same block* (Design-Expert; the
  reference case rsm_chemreact_ccd_two_blocks explains why pooling centre
  points across blocks is wrong).
- **Transforms** are applied before fitting; all statistics are on the
  transformed scale and :meth:`FittedModel.predict` back-transforms (the
  back-transformed mean is the median on the original scale when the errors
  are symmetric on the transformed scale).

References
----------
Montgomery, D.C. (2017) *Design and Analysis of Experiments*, 9th ed., Wiley.
Myers, R.H., Montgomery, D.C., Anderson-Cook, C.M. (2016) *Response Surface
Methodology*, 4th ed., Wiley (canonical analysis ch. 6, steepest ascent ch. 5,
lack of fit and pure error ch. 2-3, diagnostics ch. 2.7).
Lenth, R.V. (1989) Quick and easy analysis of unreplicated factorials.
Technometrics 31:469-473.
Box, G.E.P., Cox, D.R. (1964) An analysis of transformations. JRSS B 26:211-252.
Lenth, R.V. (2009) Response-surface methods in R, using rsm. J. Stat. Softw. 32(7).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize, special, stats

from doe._format import fmt_sig, plain_whole
from doe._json import json_ready
from doe.errors import ModelError, did_you_mean, quoted_list
from doe.model import (
    ModelMatrix,
    Term,
    coded_array,
    effect_codes,
    parse_model,
    preset_terms,
)
from doe.study import Study

__all__ = [
    "FittedModel", "Transform", "analysis_status", "analyze", "box_cox", "box_cox_advice", "effects_two_level", "fit_model",
    "fit_summary", "lenth", "parse_transform", "reduce_model", "sequential_anova",
]

#: A column whose part orthogonal to earlier columns is below this fraction of its norm is aliased.
RANK_TOL = 1e-8
#: Box-Cox search grid (Box & Cox 1964; Design-Expert's -3..3).
LAMBDA_GRID = np.round(np.linspace(-3.0, 3.0, 121), 10)
#: Conventional powers the Box-Cox suggestion snaps to when inside the confidence interval.
CONVENTIONAL_LAMBDAS = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)
#: At most this many categorical level combinations get an equation in actual units.
MAX_EQUATIONS = 30
#: Externally studentized residuals beyond this are flagged (Design-Expert's default limit).
EXT_STUDENT_LIMIT = 3.5
#: Cell texts that mean "no result" in a results column (besides empty cells).
_MISSING_MARKS = ("", "na", "n/a", "nan", "none", "-", "missing")
TRANSFORM_NAMES = ("none", "log", "log10", "sqrt", "logit", "boxcox", "power:L")
#: Eigenvalues of B below this fraction of the largest make B singular (a ridge).
_SINGULAR_TOL = 1e-8


# -- transforms -----------------------------------------------------------------------
@dataclass(frozen=True)
class Transform:
    """A monotone response transform y' = f(y) and its inverse.

    ``kind`` is ``none``, ``log`` (natural), ``log10``, ``power`` (y' = y^power, as
    Design-Expert writes powers; ``sqrt`` is power 0.5) or ``logit``
    (y' = ln((y - lower) / (upper - y))).
    """

    kind: str = "none"
    power: float = 1.0
    lower: float = 0.0
    upper: float = 1.0
    spec: str = "none"

    @property
    def is_identity(self) -> bool:
        return self.kind == "none"

    @property
    def lam(self) -> float | None:
        """Box-Cox lambda equivalent (1 none, 0 log), or None for logit."""
        return {"none": 1.0, "log": 0.0, "log10": 0.0, "power": self.power}.get(self.kind)

    def forward(self, y: Any) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "log":
                return np.log(y)
            if self.kind == "log10":
                return np.log10(y)
            if self.kind == "power":
                return y ** self.power
            if self.kind == "logit":
                return np.log((y - self.lower) / (self.upper - y))
        return y.copy()

    def inverse(self, z: Any) -> np.ndarray:
        z = np.asarray(z, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.kind == "log":
                return np.exp(z)
            if self.kind == "log10":
                return 10.0 ** z
            if self.kind == "power":
                if self.power > 0:
                    return np.maximum(z, 0.0) ** (1.0 / self.power)
                return np.where(z > 0, np.abs(z) ** (1.0 / self.power), np.inf)
            if self.kind == "logit":
                return self.lower + (self.upper - self.lower) / (1.0 + np.exp(-z))
        return z.copy()

    def label(self, name: str) -> str:
        """The transformed response as written on the left of an equation."""
        if self.kind == "log":
            return f"ln({name})"
        if self.kind == "log10":
            return f"log10({name})"
        if self.kind == "power":
            return f"sqrt({name})" if self.power == 0.5 else f"({name})^{fmt_sig(self.power)}"
        if self.kind == "logit":
            if self.lower == 0 and self.upper == 100:
                return f"logit({name}/100)"
            if self.lower == 0 and self.upper == 1:
                return f"logit({name})"
            return f"ln(({name} - {fmt_sig(self.lower)})/({fmt_sig(self.upper)} - {name}))"
        return name

    def check(self, y: np.ndarray, run_ids: list[Any], response: str) -> None:
        """Raise ModelError naming the first run whose result is outside the domain."""
        if self.kind in ("log", "log10") or (self.kind == "power" and self.power < 0):
            bad, need = y <= 0, "above 0"
        elif self.kind == "power":
            bad, need = y < 0, "0 or above"
        elif self.kind == "logit":
            bad = (y <= self.lower) | (y >= self.upper)
            need = f"strictly between {fmt_sig(self.lower)} and {fmt_sig(self.upper)}"
        else:
            return
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            hint = ("use 'sqrt' (allows 0) or no transform" if self.kind != "logit" else
                    "use 'logit:L:U' with bounds just outside the data, or another transform")
            raise ModelError(
                f"The {self.spec} transform needs every result of {response} {need}; run "
                f"{run_ids[i]} has {fmt_sig(float(y[i]))}. Check that result, or {hint}."
            )


def parse_transform(spec: str | None, units: str = "") -> Transform | None:
    """Parse a transform name; returns None for ``boxcox`` (lambda is estimated).

    ``logit`` reads the response as a percentage (bounds 0..100) when its units
    contain '%', otherwise as a fraction (0..1); ``logit:L:U`` gives the bounds.
    ``power:L`` is y^L (``power:0`` is ln y, ``power:1`` no transform).

    >>> parse_transform("power:-0.5").label("Y")
    '(Y)^-0.5'
    >>> parse_transform("logit", units="%").upper
    100.0
    """
    text = "none" if spec is None else str(spec).strip().lower().replace(" ", "")
    if text in ("", "none", "identity", "1"):
        return Transform("none", spec="none")
    if text in ("log", "ln", "loge"):
        return Transform("log", spec="log")
    if text == "log10":
        return Transform("log10", spec="log10")
    if text in ("sqrt", "squareroot"):
        return Transform("power", 0.5, spec="sqrt")
    if text in ("inverse", "reciprocal"):
        return Transform("power", -1.0, spec="power:-1")
    if text in ("boxcox", "box-cox"):
        return None
    if text.startswith("power:") or text.startswith("power="):
        try:
            lam = float(text[6:])
        except ValueError:
            raise ModelError(f"Transform '{spec}': write the power as a number, e.g. 'power:0.5'.") from None
        if not math.isfinite(lam):
            raise ModelError(f"Transform '{spec}': the power must be a finite number.")
        if lam == 0:
            return Transform("log", spec="power:0")
        if lam == 1:
            return Transform("none", spec="power:1")
        return Transform("power", lam, spec=f"power:{fmt_sig(lam)}")
    if text == "logit":
        upper = 100.0 if "%" in (units or "") else 1.0
        return Transform("logit", lower=0.0, upper=upper, spec="logit")
    m = re.fullmatch(r"logit:(-?[\d.e+-]+):(-?[\d.e+-]+)", text)
    if m:
        try:
            lo, hi = float(m.group(1)), float(m.group(2))
        except ValueError:
            lo, hi = math.nan, math.nan
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ModelError(f"Transform '{spec}': write 'logit:L:U' with numbers L < U, e.g. 'logit:0:100'.")
        return Transform("logit", lower=lo, upper=hi, spec=f"logit:{fmt_sig(lo)}:{fmt_sig(hi)}")
    raise ModelError(
        f"Unknown transform '{spec}'.{did_you_mean(str(spec), TRANSFORM_NAMES)} Transforms are "
        "none, log, log10, sqrt, logit (or logit:L:U), boxcox and power:L (e.g. power:-0.5)."
    )


def _power_transform(lam: float) -> Transform:
    if lam == 0:
        return Transform("log", spec="log")
    if lam == 1:
        return Transform("none", spec="none")
    if lam == 0.5:
        return Transform("power", 0.5, spec="sqrt")
    return Transform("power", float(lam), spec=f"power:{fmt_sig(lam)}")


# -- prepared data --------------------------------------------------------------------
@dataclass
class _Data:
    """Rows of the run sheet used in one fit, coded."""

    U: np.ndarray
    y: np.ndarray
    run_ids: list[Any]
    blocks: np.ndarray | None
    block_labels: list[str]
    block_col: str | None
    excluded: list[dict[str, Any]]
    warnings: list[str]


def _prepare(study: Study, runs: pd.DataFrame, response: str, block_col: str | None,
             exclude: Any) -> _Data:
    if not isinstance(runs, pd.DataFrame):
        raise ModelError("The runs must be a table (DataFrame) with one row per run.")
    if response not in runs.columns:
        raise ModelError(
            f"The run sheet has no column '{response}'.{did_you_mean(response, [str(c) for c in runs.columns])} "
            f"Add the results of {response} in a column named exactly '{response}'."
        )
    n_all = len(runs)
    run_ids = list(runs["Run"]) if "Run" in runs.columns else list(range(1, n_all + 1))
    run_ids = [plain_whole(r) for r in run_ids]
    y_all = _numeric_response(runs[response], run_ids, response)
    missing = ~np.isfinite(y_all)
    user = np.zeros(n_all, dtype=bool)
    if exclude is not None:
        wanted = [exclude] if isinstance(exclude, (str, int, float, np.integer)) else list(exclude)
        ids = {str(r): i for i, r in enumerate(run_ids)}
        unknown = [w for w in wanted if str(plain_whole(w)) not in ids]
        if unknown:
            raise ModelError(
                f"Run(s) {quoted_list(unknown)} to exclude are not in the run sheet; run ids are "
                f"{_id_range(run_ids)}."
            )
        for w in wanted:
            user[ids[str(plain_whole(w))]] = True
    excluded = [{"run": run_ids[i], "reason": "excluded by user"} for i in np.flatnonzero(user)]
    excluded += [{"run": run_ids[i], "reason": "no result"} for i in np.flatnonzero(missing & ~user)]
    used = ~missing & ~user
    if not used.any():
        raise ModelError(
            f"There are no results for {response} to fit: enter them in the run sheet column "
            f"'{response}'" + (" or exclude fewer runs." if user.any() else ".")
        )
    frame = runs
    if not used.all():  # unused rows may hold unfinished settings: neutral values keep row numbers right
        frame = runs.copy()
        for f in study.factors:
            if f.name in frame.columns:
                frame[f.name] = frame[f.name].astype(object)
                frame.loc[~used, f.name] = f.levels[0] if f.is_categorical else f.center
    U = _code(study, frame)[used]
    warnings = []
    n_missing = int((missing & ~user).sum())
    if n_missing:
        ids = [run_ids[i] for i in np.flatnonzero(missing & ~user)]
        warnings.append(f"{n_missing} run(s) have no result for {response} and were left out: {_ids(ids)}.")
    if user.any():
        warnings.append(f"Run(s) {_ids([d['run'] for d in excluded if d['reason'] == 'excluded by user'])} "
                        "excluded by the user.")
    warnings += _range_warnings(study, U)
    bcol = _block_column(study, runs, block_col)
    blocks, labels = None, []
    if bcol is not None:
        raw = runs.loc[used, bcol]
        if raw.isna().any():
            i = int(np.flatnonzero(raw.isna().to_numpy())[0])
            raise ModelError(f"Run {run_ids[int(np.flatnonzero(used)[i])]} has no entry in the block "
                             f"column '{bcol}': give every run its block.")
        text = raw.map(_block_text)
        labels = sorted(text.unique(), key=_natural)
        if len(labels) > 1:
            blocks = text.map({lv: i for i, lv in enumerate(labels)}).to_numpy(dtype=int)
        else:
            labels = []
    return _Data(U, y_all[used], [run_ids[i] for i in np.flatnonzero(used)], blocks, labels,
                 bcol if blocks is not None else None, excluded, warnings)


def _code(study: Study, frame: pd.DataFrame) -> np.ndarray:
    """doe.model.coded_array with a fast path for clean sheets (coded_array words the errors)."""
    try:
        out = np.empty((len(frame), len(study.factors)))
        for j, f in enumerate(study.factors):
            values = frame[f.name].tolist()
            if f.is_categorical:
                index = {str(v).strip().lower(): i for i, v in enumerate(f.levels)}
                out[:, j] = [index[str(v).strip().lower()] for v in values]
            else:
                x = np.asarray(values, dtype=float)
                if not np.all(np.isfinite(x)):
                    raise ValueError
                out[:, j] = (x - f.center) / f.half_range
        return out
    except (KeyError, ValueError, TypeError):
        return coded_array(study, frame)


def _numeric_response(col: pd.Series, run_ids: list[Any], response: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(col):
        raise ModelError(f"Column '{response}' holds true/false values; enter results as numbers.")
    if pd.api.types.is_numeric_dtype(col):
        y = col.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = col.astype(object)
        blank = values.map(lambda v: v is None or (isinstance(v, float) and math.isnan(v))
                           or (isinstance(v, str) and v.strip().lower() in _MISSING_MARKS))
        cleaned = values.map(lambda v: v.strip() if isinstance(v, str) else v).where(~blank, np.nan)
        num = pd.to_numeric(cleaned, errors="coerce")
        bad = (~blank & num.isna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(
                f"Run {run_ids[i]} (row {i + 1}), column '{response}': '{values.iloc[i]}' is not a "
                "number. Enter results as plain numbers (no units or text); leave the cell empty "
                "when there is no result."
            )
        y = num.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(y)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise ModelError(f"Run {run_ids[i]}, column '{response}': the result is infinite; enter a finite number.")
    return y


def _block_column(study: Study, runs: pd.DataFrame, block_col: str | None) -> str | None:
    if block_col is not None:
        if block_col not in runs.columns:
            raise ModelError(f"The run sheet has no block column '{block_col}'."
                             f"{did_you_mean(block_col, [str(c) for c in runs.columns])}")
        return block_col
    for name in (study.blocks, "Block"):
        if name and name in runs.columns:
            return name
    return None


def _block_text(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def _natural(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        m = re.fullmatch(r"(.*?)(\d+)", label)
        return (1, m.group(1), int(m.group(2))) if m else (1, label, 0)


def _range_warnings(study: Study, U: np.ndarray) -> list[str]:
    out = []
    for j, f in enumerate(study.factors):
        if f.is_categorical:
            continue
        col = U[:, j]
        if np.any(np.abs(col) > 1 + 1e-9):
            lo, hi = f.to_actual(col.min()), f.to_actual(col.max())
            out.append(
                f"{f.name} runs from {fmt_sig(float(lo))} to {fmt_sig(float(hi))} {f.units}".rstrip()
                + f", beyond the study range {fmt_sig(f.low)} to {fmt_sig(f.high)} (coded beyond -1/+1, "
                "e.g. axial points); that is allowed, but predictions outside the range are extrapolation."
            )
    return out


def _as_terms(study: Study, model: Any) -> list[Term]:
    if isinstance(model, (list, tuple)) and all(isinstance(t, Term) for t in model):
        for t in model:
            for f in t.factors:
                study.factor(f)
        return list(model)
    if isinstance(model, str) and model.strip().lower() in ("mean", "intercept", "1", "intercept only"):
        return []
    return parse_model(study, model)


# -- model matrix bookkeeping -----------------------------------------------------------
@dataclass(frozen=True)
class _Col:
    """What one model column is: its term, categorical basis indices and numeric parts."""

    name: str
    term: str
    cat: tuple[tuple[str, int], ...] = ()
    num: tuple[tuple[str, int], ...] = ()

    @property
    def is_block(self) -> bool:
        return self.term == "Block"


def _column_info(study: Study, mm: ModelMatrix) -> list[_Col]:
    cols = [_Col("Intercept", "Intercept")]
    cols += [_Col(mm.columns[j], "Block") for j in range(1, mm.n_blocks)]
    for t in mm.terms:
        bases = []
        for f, _ in t.parts:
            fac = study.factor(f)
            bases.append([(f, k) for k in range(len(fac.levels) - 1)] if fac.is_categorical else [None])
        num = tuple((f, p) for f, p in t.parts if not study.factor(f).is_categorical)
        for combo in itertools.product(*bases):
            cols.append(_Col("", t.name, tuple(c for c in combo if c is not None), num))
    if len(cols) != mm.p:  # pragma: no cover - guards against a change in ModelMatrix
        raise RuntimeError("model column bookkeeping out of step with ModelMatrix")
    return [c if c.name else _Col(name, c.term, c.cat, c.num) for c, name in zip(cols, mm.columns)]


def _contains(big: Term, small: Term) -> bool:
    """True if ``big`` contains ``small`` (A in A:B, A^2, A^2:B; marginality rule)."""
    if big == small:
        return False
    powers = dict(big.parts)
    return all(f in powers and powers[f] >= p for f, p in small.parts)


# -- least squares ----------------------------------------------------------------------
class _LS:
    """Full-rank least squares through X = QR."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X, self.y = X, y
        self.n, self.p = X.shape
        self.Q, self.R = linalg.qr(X, mode="economic", check_finite=False)
        qty = self.Q.T @ y
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
        # LAPACK's triangular inverse: solve_triangular against the identity is ~500x slower here.
        inv, info = linalg.lapack.dtrtri(self.R, lower=0)
        return inv if info == 0 else np.linalg.pinv(self.R)

    @cached_property
    def cov_unscaled(self) -> np.ndarray:
        """(X'X)^-1."""
        return self.r_inv @ self.r_inv.T

    @cached_property
    def leverage(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.Q, self.Q)

    def pred_var(self, F: np.ndarray) -> np.ndarray:
        """x'(X'X)^-1 x for each row x of F."""
        z = F @ self.r_inv
        return np.einsum("ij,ij->i", z, z)


def _sse(X: np.ndarray, y: np.ndarray) -> float:
    """Residual sum of squares of a full-rank fit: the last diagonal of R of [X y], squared."""
    n, k = X.shape
    if k == 0:
        return float(y @ y)
    if n <= k:
        return 0.0
    R = np.linalg.qr(np.column_stack([X, y]), mode="r")
    return float(R[k, k] ** 2)


def _rank_fit(X: np.ndarray, y: np.ndarray) -> tuple[float, int, np.ndarray, np.ndarray]:
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


def _check_estimable(study: Study, mm: ModelMatrix, cols: list[_Col], X: np.ndarray,
                     U: np.ndarray, response: str) -> None:
    n, p = X.shape
    if n < p:
        raise ModelError(
            f"{response} has results for {n} runs, but the model has {p} coefficients "
            f"({_describe_columns(mm)}): drop terms such as {_suggest_drop(mm.terms)}, or add runs."
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


def _reason(study: Study, mm: ModelMatrix, cols: list[_Col], X: np.ndarray, U: np.ndarray, j: int) -> str:
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


def _suggest_drop(terms: list[Term]) -> str:
    high = sorted(terms, key=lambda t: -t.degree)
    picks = [t.name for t in high if t.degree > 1][:3] or [t.name for t in terms][-2:]
    return quoted_list(picks) if picks else "some terms"


def _is_two_level(study: Study, terms: list[Term], U: np.ndarray) -> bool:
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


def _pure_error(U: np.ndarray, blocks: np.ndarray | None, y: np.ndarray) -> tuple[float, int, np.ndarray]:
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


# -- the fitted model ---------------------------------------------------------------------
@dataclass(eq=False)
class FittedModel:
    """Everything a page, plot, report or CLI shows about one fitted CQA.

    Statistics are on the fitted (transformed) scale; ``predict`` returns the
    original scale. Fields that need residual degrees of freedom are NaN for a
    saturated two-level model (``df_resid`` 0).
    """

    study: Study
    response: str
    model_terms: list[Term]
    terms: list[str]
    columns: list[str]
    transform: str
    transform_label: str
    boxcox_lambda: float | None
    n: int
    p: int
    df_resid: int
    coefficients: pd.DataFrame
    anova: pd.DataFrame
    anova_type: int
    r2: float
    adj_r2: float
    pred_r2: float
    press: float
    rmse: float
    cv_percent: float
    adeq_precision: float
    overall_f: dict[str, float]
    lack_of_fit: dict[str, float] | None
    equation_coded: str
    equation_actual: str
    equations_actual: list[dict[str, Any]]
    coefficients_actual: pd.DataFrame
    diagnostics: pd.DataFrame
    stationary_point: dict[str, Any] | None
    effects: pd.DataFrame | None
    lenth: dict[str, float] | None
    warnings: list[str]
    excluded: list[dict[str, Any]]
    block_column: str | None
    block_labels: list[str]
    box_cox: dict[str, Any] | None
    alpha: float
    #: Blocked data only: predicted R² as Design-Expert reports it, 1 - PRESS / (total SS - block SS);
    #: ``pred_r2`` divides by the total SS including the blocks. None without blocks.
    pred_r2_excluding_blocks: float | None = None
    _tf: Transform = field(default_factory=Transform, repr=False)
    _mm: ModelMatrix | None = field(default=None, repr=False)
    _cols: list[_Col] = field(default_factory=list, repr=False)
    _ls: _LS | None = field(default=None, repr=False)
    _U: np.ndarray | None = field(default=None, repr=False)
    _blocks: np.ndarray | None = field(default=None, repr=False)
    _pe: tuple[float, int] = field(default=(0.0, 0), repr=False)

    # -- look-ups ---------------------------------------------------------------------
    @property
    def model_spec(self) -> str:
        return " + ".join(t.name for t in self.model_terms) or "mean"

    @property
    def estimates(self) -> dict[str, float]:
        """Coefficient of each model column (coded units)."""
        return dict(zip(self.coefficients["term"], self.coefficients["estimate"]))

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values on the fitted (transformed) scale, runs used in order."""
        return self._ls.fitted

    @property
    def residuals(self) -> np.ndarray:
        return self._ls.resid

    # -- what the design space reads (public surface of the fit) ----------------------------
    @property
    def least_squares(self) -> _LS:
        """The least-squares fit on the fitted scale: ``X``, ``y`` (runs used, in order), ``Q`` and
        ``r_inv`` (X = QR), ``coef``, ``resid``, ``sse``, ``mse``, ``cov_unscaled`` ((X'X)^-1) and
        ``pred_var(F)`` (rows of F (X'X)^-1 F'). Read-only."""
        return self._ls

    @property
    def fitted_transform(self) -> Transform:
        """The response transform the model was fitted on (``forward``/``inverse``)."""
        return self._tf

    @property
    def model_columns(self) -> list[_Col]:
        """The model matrix's columns: numeric exponents, categorical codes, blocks."""
        return self._cols

    def model_matrix(self, frame: pd.DataFrame, block: Any = None) -> np.ndarray:
        """Model rows (coded) for settings in actual units, blocks averaged unless ``block`` is given."""
        return self._predict_matrix(frame, block)

    # -- prediction ---------------------------------------------------------------------
    def predict(self, frame: pd.DataFrame, interval: str | None = "confidence", level: float = 0.95,
                *, block: Any = None) -> pd.DataFrame:
        """Predicted mean and interval on the original scale at settings in actual units.

        Parameters
        ----------
        frame : DataFrame
            One column per factor in actual units (level names for categorical
            factors); columns of factors not in the model may be left out.
        interval : {'confidence', 'prediction', None}
            Confidence interval of the mean, or prediction interval of one new run.
        level : float
            Confidence level of the interval.
        block : optional
            A block label to predict for that block; by default blocks are
            averaged out (block columns 0).

        Returns
        -------
        DataFrame with ``mean``, ``lower``, ``upper`` (original scale) and
        ``fitted_scale`` (the prediction on the transformed scale). With a
        transform, ``mean`` is the back-transformed prediction: the median on
        the original scale (Myers, Montgomery & Anderson-Cook, sec. 2.8).
        """
        if interval not in ("confidence", "prediction", None):
            raise ModelError("interval must be 'confidence', 'prediction' or None.")
        if not 0 < level < 1:
            raise ModelError(f"The interval level must be between 0 and 1; got {level}.")
        X = self._predict_matrix(_complete(self.study, self.model_terms, frame), block)
        z = X @ self._ls.coef
        out = pd.DataFrame({"mean": self._tf.inverse(z)}, index=frame.index)
        lower = upper = np.full(len(z), np.nan)
        if interval is not None and self.df_resid > 0:
            var = self._ls.pred_var(X) + (1.0 if interval == "prediction" else 0.0)
            half = stats.t.ppf(0.5 + level / 2, self.df_resid) * np.sqrt(var * self._ls.mse)
            a, b = self._tf.inverse(z - half), self._tf.inverse(z + half)
            lower, upper = np.minimum(a, b), np.maximum(a, b)
        out["lower"], out["upper"], out["fitted_scale"] = lower, upper, z
        return out

    def _predict_matrix(self, frame: pd.DataFrame, block: Any = None) -> np.ndarray:
        U = _code(self.study, frame)
        X = self._mm.build(U)
        bcols = [j for j, c in enumerate(self._cols) if c.is_block]
        if bcols:
            if block is None:
                X[:, bcols] = 0.0
            else:
                label = _block_text(block)
                if label not in self.block_labels:
                    raise ModelError(f"Block '{block}' is not one of {quoted_list(self.block_labels)}.")
                X[:, bcols] = effect_codes(len(self.block_labels))[self.block_labels.index(label)]
        return X

    def _predict_averaged(self, coded: dict[str, np.ndarray]) -> np.ndarray:
        """Fitted-scale prediction at numeric coded settings, categorical factors and blocks averaged."""
        n = len(next(iter(coded.values()))) if coded else 1
        z = np.zeros(n)
        for c, b in zip(self._cols, self._ls.coef):
            if c.is_block or c.cat:
                continue  # effect-coded columns average to 0 over levels
            x = np.ones(n)
            for f, p in c.num:
                x = x * np.asarray(coded.get(f, np.zeros(n)), dtype=float) ** p
            z += b * x
        return z

    # -- steepest ascent ------------------------------------------------------------------
    def steepest_direction(self, descent: bool = False) -> dict[str, dict[str, float]]:
        """Unit direction of steepest ascent (coded) and the step per unit distance in actual units.

        The direction is the normalised vector of the linear coded coefficients
        of the numeric factors (Myers, Montgomery & Anderson-Cook, sec. 5.2).
        """
        lin = {c.num[0][0]: b for c, b in zip(self._cols, self._ls.coef)
               if not c.cat and not c.is_block and len(c.num) == 1 and c.num[0][1] == 1}
        if not lin:
            raise ModelError("Steepest ascent needs main effects of continuous factors in the model.")
        vec = np.array(list(lin.values()))
        norm = float(np.linalg.norm(vec))
        if norm == 0:
            raise ModelError("All linear coefficients are zero: there is no direction of steepest ascent.")
        d = (-1 if descent else 1) * vec / norm
        if self._tf.kind == "power" and self._tf.power < 0:
            d = -d  # y^L with L < 0 decreases as y increases
        names = list(lin)
        return {"coded": dict(zip(names, d.tolist())),
                "increment_actual": {f: float(u * self.study.factor(f).half_range) for f, u in zip(names, d)}}

    def steepest_ascent(self, distances: Any = None, *, descent: bool = False) -> pd.DataFrame:
        """Path of steepest ascent (or descent) from the design centre.

        Columns: ``dist`` (coded distance), ``<factor> (coded)``, ``<factor>``
        (actual units), ``yhat`` (original scale, categorical factors and blocks
        averaged). Default distances 0, 0.5, ..., 5 as rsm's ``steepest``. For a
        model with interactions or squares the direction is still the gradient
        at the centre; prefer the canonical analysis there.
        """
        dist = np.abs(np.asarray(np.arange(0, 5.01, 0.5) if distances is None else distances, dtype=float))
        direction = self.steepest_direction(descent)["coded"]
        data: dict[str, Any] = {"dist": dist}
        coded = {f: dist * u for f, u in direction.items()}
        for f, x in coded.items():
            data[f"{f} (coded)"] = x
        for f, x in coded.items():
            data[f] = self.study.factor(f).to_actual(x)
        data["yhat"] = self._tf.inverse(self._predict_averaged(coded))
        return pd.DataFrame(data)

    # -- grouped sequential ANOVA -----------------------------------------------------------
    def grouped_anova(self) -> pd.DataFrame:
        """rsm-style sequential ANOVA: Block, FO, TWI, PQ (and higher order), Residuals,
        Lack of fit, Pure error.

        Groups enter in that order; each F uses the full model's residual mean
        square (rsm's ``anova`` of an ``rsm`` fit; Lenth 2009).
        """
        groups: list[tuple[str, list[int]]] = []
        kinds = {"Block": [], "FO": [], "TWI": [], "PQ": [], "Higher order": []}
        for j, c in enumerate(self._cols):
            if c.term == "Intercept":
                continue
            term = next((t for t in self.model_terms if t.name == c.term), None)
            if c.is_block:
                kinds["Block"].append(j)
            elif term.degree == 1:
                kinds["FO"].append(j)
            elif term.degree == 2 and len(term.parts) == 2:
                kinds["TWI"].append(j)
            elif term.degree == 2:
                kinds["PQ"].append(j)
            else:
                kinds["Higher order"].append(j)
        groups = [(k, v) for k, v in kinds.items() if v]
        X, y, ls = self._ls.X, self._ls.y, self._ls
        rows, cols = [], [0]
        prev = _sse(X[:, cols], y)
        for name, idx in groups:
            cols = cols + idx
            sse = _sse(X[:, cols], y)
            rows.append(_anova_row(name, len(idx), prev - sse, ls.mse, ls.df))
            prev = sse
        rows.append({"source": "Residuals", "df": ls.df, "sum_sq": ls.sse,
                     "mean_sq": ls.mse, "F": math.nan, "p": math.nan})
        if self.lack_of_fit is not None:
            lof = self.lack_of_fit
            rows.append({"source": "Lack of fit", "df": lof["df"], "sum_sq": lof["ss"],
                         "mean_sq": lof["ss"] / lof["df"], "F": lof["F"], "p": lof["p"]})
            rows.append({"source": "Pure error", "df": lof["pure_error_df"], "sum_sq": lof["pure_error_ss"],
                         "mean_sq": lof["pure_error_ss"] / lof["pure_error_df"], "F": math.nan, "p": math.nan})
        return pd.DataFrame(rows, columns=["source", "df", "sum_sq", "mean_sq", "F", "p"])

    # -- serialisation ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinity become None)."""
        sp = self.stationary_point
        out = {
            "response": self.response,
            "model": self.model_spec,
            "terms": list(self.terms),
            "columns": list(self.columns),
            "transform": self.transform,
            "transform_label": self.transform_label,
            "boxcox_lambda": self.boxcox_lambda,
            "n": self.n, "p": self.p, "df_resid": self.df_resid,
            "excluded": [dict(d) for d in self.excluded],
            "coefficients": self.coefficients.to_dict(orient="records"),
            "equation_coded": self.equation_coded,
            "equation_actual": self.equation_actual,
            "equations_actual": self.equations_actual,
            "coefficients_actual": {c: self.coefficients_actual[c].to_dict()
                                    for c in self.coefficients_actual.columns},
            "anova_type": self.anova_type,
            "anova": self.anova.to_dict(orient="records"),
            "r2": self.r2, "adj_r2": self.adj_r2, "pred_r2": self.pred_r2, "press": self.press,
            "pred_r2_excluding_blocks": self.pred_r2_excluding_blocks,
            "rmse": self.rmse, "cv_percent": self.cv_percent, "adeq_precision": self.adeq_precision,
            "overall_f": dict(self.overall_f),
            "lack_of_fit": None if self.lack_of_fit is None else dict(self.lack_of_fit),
            "effects": None if self.effects is None else self.effects.to_dict(orient="records"),
            "lenth": None if self.lenth is None else dict(self.lenth),
            "stationary_point": None if sp is None else {
                k: sp[k] for k in ("coded", "actual", "eigenvalues", "eigenvectors", "kind",
                                   "predicted", "inside_region")},
            "diagnostics": self.diagnostics.to_dict(orient="records"),
            "block_column": self.block_column,
            "block_labels": list(self.block_labels),
            "box_cox": self.box_cox,
            "warnings": list(self.warnings),
        }
        return json_ready(out)


def _complete(study: Study, terms: list[Term], frame: pd.DataFrame) -> pd.DataFrame:
    """Fill columns of factors the model does not use (they do not change the prediction)."""
    if not isinstance(frame, pd.DataFrame):
        raise ModelError("Settings to predict at must be a table with one column per factor.")
    used = {f for t in terms for f in t.factors}
    missing = [f for f in study.factor_names if f not in frame.columns]
    needed = [f for f in missing if f in used]
    if needed:
        raise ModelError(f"Give settings for {quoted_list(needed)} to predict: the model uses "
                         f"{'it' if len(needed) == 1 else 'them'}.")
    if not missing:
        return frame
    out = frame.copy()
    for f in missing:
        fac = study.factor(f)
        out[f] = fac.levels[0] if fac.is_categorical else fac.center
    return out


#: Public name of :func:`_complete` (the design space builds model rows with it).
complete_settings = _complete


# -- fitting -------------------------------------------------------------------------------
def fit_model(
    study: Study,
    runs: pd.DataFrame,
    response: str,
    model: Any = "quadratic",
    *,
    transform: str | None = "none",
    anova_type: int | str = 2,
    alpha: float = 0.05,
    block_col: str | None = None,
    exclude: Any = None,
) -> FittedModel:
    """Fit a polynomial model to one CQA by least squares (coded units).

    Parameters
    ----------
    study : Study
        Factors (ranges, levels) and responses.
    runs : DataFrame
        Run sheet in actual units: a column per factor, optional ``Run`` ids,
        optional block column (``block_col``, else ``study.blocks`` or ``Block``
        when present), and response columns. Rows with no result for
        ``response`` are left out and listed in ``excluded`` ('no result').
    response : str
        The response column to fit.
    model : str, list of str or list of Term
        Preset (linear, interactions, quadratic, full), a term list for
        :func:`doe.model.parse_model`, a list of Term, or ``'mean'`` / ``[]`` for
        the intercept-only model.
    transform : str
        none, log, log10, sqrt, logit (or logit:L:U), boxcox, power:L; see
        :func:`parse_transform`. ``boxcox`` estimates lambda by maximum
        likelihood (:func:`box_cox`) and uses a conventional power inside the
        95 % interval when there is one.
    anova_type : {1, 2, 3}
        Sums of squares of the term rows: sequential, hierarchical (default,
        marginality as in JMP/Design-Expert) or fully partial.
    alpha : float
        Level of the confidence intervals (1 - alpha) and of the warnings.
    block_col : str, optional
        Name of the block column.
    exclude : list, optional
        Run ids to leave out; listed in ``excluded`` ('excluded by user').

    Returns
    -------
    FittedModel

    Raises
    ------
    ModelError
        Too few runs, aliased terms, no residual degrees of freedom (unless the
        model is a saturated two-level factorial: then effects and Lenth's
        method are reported and the statistics that need error df are NaN),
        a constant response, text in the response column, or results outside
        the transform's domain. The message says what to change.

    Notes
    -----
    Standard errors, t and p follow Montgomery (2017), ch. 10; lack of fit and
    pure error Myers, Montgomery & Anderson-Cook (2016), sec. 2.7 and 3.4;
    PRESS and predicted R² sec. 2.7; adequate precision is Design-Expert's
    (max ŷ - min ŷ) / sqrt(p MSE / n) over the runs; diagnostics are the
    internally and externally studentized residuals, leverage, Cook's distance
    and DFFITS (Montgomery, Peck & Vining, *Introduction to Linear Regression
    Analysis*, ch. 4 and 6).

    Examples
    --------
    >>> import pandas as pd
    >>> from doe.study import Study, Factor, Response
    >>> s = Study("x", [Factor("A", low=0, high=10)], [Response("Y")])
    >>> runs = pd.DataFrame({"A": [0, 0, 5, 10, 10], "Y": [1.0, 1.2, 2.1, 2.9, 3.1]})
    >>> fm = fit_model(s, runs, "Y", "linear")
    >>> round(fm.estimates["A"], 4), fm.df_resid
    (0.95, 3)
    """
    atype = _anova_type(anova_type)
    if not 0 < alpha < 1:
        raise ModelError(f"alpha must be between 0 and 1; got {alpha}.")
    terms = _as_terms(study, model)
    data = _prepare(study, runs, response, block_col, exclude)
    n_blocks = len(data.block_labels) if data.blocks is not None else 1
    mm = ModelMatrix(study, terms, n_blocks)
    cols = _column_info(study, mm)
    X = mm.build(data.U, data.blocks)
    y0 = data.y
    n, p = X.shape
    if np.ptp(y0) == 0:
        raise ModelError(
            f"Every result of {response} is {fmt_sig(float(y0[0]))} ({n} runs): a constant response "
            "has nothing to model. Check the results; if they are right, report them without a model."
        )
    _check_estimable(study, mm, cols, X, data.U, response)
    units = _response_units(study, response)
    tf = parse_transform(transform, units)
    warnings = list(data.warnings)
    bc_info = None
    bc_lambda = None
    if tf is None:
        bc_info = _box_cox_search(X, y0, data.run_ids, response)
        bc_lambda = bc_info["suggested"]
        tf = _power_transform(bc_lambda)
        warnings.append(
            f"Box-Cox: best lambda {fmt_sig(bc_info['best'], 3)} (95 % interval "
            f"{fmt_sig(bc_info['ci'][0], 3)} to {fmt_sig(bc_info['ci'][1], 3)}); fitted with lambda = "
            f"{fmt_sig(bc_lambda)}, i.e. {tf.label(response)}."
        )
    tf.check(y0, data.run_ids, response)
    y = tf.forward(y0)
    if np.ptp(y) == 0:  # pragma: no cover - a monotone transform keeps y non-constant
        raise ModelError(f"The transformed {response} is constant; choose another transform.")
    ls = _LS(X, y)
    two_level = _is_two_level(study, terms, data.U)
    if ls.df == 0 and not two_level:
        raise ModelError(
            f"{n} runs with a result for {response} and {p} model coefficients leave no degrees of "
            f"freedom for error, so nothing can be tested. Drop terms such as {_suggest_drop(terms)}, "
            "or add runs (e.g. replicated centre points). For an unreplicated two-level factorial, "
            "use terms of distinct factors only (no squares): the saturated model is then fitted and "
            "its effects judged with Lenth's method and the half-normal plot."
        )
    if ls.df == 0:
        warnings.append(
            "The model uses every degree of freedom (no residual): standard errors, p-values and "
            "R² statistics cannot be computed. Judge the effects with the half-normal plot and "
            "Lenth's margin of error (ME/SME), then refit without the inactive terms."
        )

    sst = float(np.sum((y - y.mean()) ** 2))
    pe_ss, pe_df, _ = _pure_error(data.U, data.blocks, y)
    lof = None
    if pe_df > 0 and ls.df - pe_df > 0:
        lof_ss = max(ls.sse - pe_ss, 0.0)
        lof_df = ls.df - pe_df
        f_lof = (lof_ss / lof_df) / (pe_ss / pe_df) if pe_ss > 0 else math.inf
        lof = {"F": f_lof, "p": _f_sf(f_lof, lof_df, pe_df) if math.isfinite(f_lof) else 0.0,
               "df": lof_df, "pure_error_df": pe_df, "ss": lof_ss, "pure_error_ss": pe_ss}
    coef_table = _coefficient_table(cols, X, ls, alpha)
    anova = _anova_table(cols, terms, X, y, ls, atype, sst, lof)
    diag, diag_warn = _diagnostics(data.run_ids, y0, y, ls, tf, alpha)
    warnings += diag_warn

    h = ls.leverage
    if ls.df > 0 and np.all(h < 1 - 1e-10):
        press = float(np.sum((ls.resid / (1 - h)) ** 2))
    else:
        press = math.nan
        if ls.df > 0:
            ones = [data.run_ids[i] for i in np.flatnonzero(h >= 1 - 1e-10)]
            warnings.append(f"Run(s) {_ids(ones)} have leverage 1 (the model passes through them): "
                            "PRESS and predicted R² cannot be computed.")
    r2 = 1 - ls.sse / sst if ls.df > 0 else math.nan
    adj_r2 = 1 - (ls.sse / ls.df) / (sst / (n - 1)) if ls.df > 0 else math.nan
    pred_r2 = 1 - press / sst if math.isfinite(press) else math.nan
    pred_r2_blocks = _pred_r2_excluding_blocks(y, data.blocks, press, sst)
    rmse = math.sqrt(ls.mse) if ls.df > 0 else math.nan
    mean_y = float(np.mean(y))
    cv = 100 * rmse / abs(mean_y) if mean_y != 0 else math.nan
    adeq = float(np.ptp(ls.fitted) / math.sqrt(p * ls.mse / n)) if ls.df > 0 and ls.mse > 0 else math.nan
    if p > 1 and ls.df > 0:
        f_all = ((sst - ls.sse) / (p - 1)) / ls.mse
        overall = {"F": f_all, "df_model": p - 1, "df_resid": ls.df,
                   "p": _f_sf(f_all, p - 1, ls.df)}
    else:
        overall = {"F": math.nan, "df_model": p - 1, "df_resid": ls.df, "p": math.nan}

    eq_coded = _coded_equation(tf.label(response), cols, ls.coef)
    equations, coef_actual, eq_note = _actual_equations(study, cols, ls.coef, tf.label(response))
    if eq_note:
        warnings.append(eq_note)
    sp, sp_warn = _stationary_point(study, terms, cols, ls.coef, tf)
    warnings += sp_warn
    effects = lenth_info = None
    if two_level:
        effects = _effects_table(cols, ls.coef)
        if len(effects) >= 2:
            lenth_info = lenth(effects["effect"].to_numpy())
            effects["lenth_t"] = effects["effect"] / lenth_info["pse"] if lenth_info["pse"] > 0 else math.nan
            effects["lenth_p"] = _t_two_sided(effects["lenth_t"].to_numpy(), lenth_info["d"])
            effects["active"] = np.abs(effects["effect"]) > lenth_info["me"]
    warnings += _fit_warnings(response, ls, lof, r2, adj_r2, pred_r2, adeq, coef_table, alpha)

    return FittedModel(
        study=study, response=response, model_terms=terms,
        terms=["Intercept"] + [t.name for t in terms], columns=list(mm.columns),
        transform=("boxcox" if bc_info is not None else tf.spec), transform_label=tf.label(response),
        boxcox_lambda=bc_lambda, n=n, p=p, df_resid=ls.df, coefficients=coef_table, anova=anova,
        anova_type=atype, r2=r2, adj_r2=adj_r2, pred_r2=pred_r2, press=press, rmse=rmse,
        cv_percent=cv, adeq_precision=adeq, overall_f=overall, lack_of_fit=lof,
        equation_coded=eq_coded,
        equation_actual="\n".join(
            (f"{e['label']}: " if e["label"] else "") + e["equation"] for e in equations),
        equations_actual=equations, coefficients_actual=coef_actual, diagnostics=diag,
        stationary_point=sp, effects=effects, lenth=lenth_info, warnings=warnings,
        excluded=data.excluded, block_column=data.block_col, block_labels=list(data.block_labels),
        box_cox=bc_info, alpha=alpha, _tf=tf, _mm=mm, _cols=cols, _ls=ls, _U=data.U,
        _blocks=data.blocks, _pe=(pe_ss, pe_df), pred_r2_excluding_blocks=pred_r2_blocks,
    )


def _pred_r2_excluding_blocks(y: np.ndarray, blocks: np.ndarray | None, press: float, sst: float) -> float | None:
    """Design-Expert's predicted R² for blocked data: 1 - PRESS / (total SS - block SS), the block SS being
    the between-block sum of squares of the response (blocks enter first). None without blocks."""
    if blocks is None or len(np.unique(blocks)) < 2:
        return None
    if not math.isfinite(press):
        return math.nan
    ss_block = sum(float((blocks == b).sum()) * (float(y[blocks == b].mean()) - float(y.mean())) ** 2
                   for b in np.unique(blocks))
    rest = sst - ss_block
    return 1 - press / rest if rest > 0 else math.nan


def _anova_type(value: Any) -> int:
    text = str(value).strip().upper()
    mapping = {"1": 1, "I": 1, "2": 2, "II": 2, "3": 3, "III": 3}
    if text not in mapping:
        raise ModelError(f"anova_type must be 1, 2 or 3 (sequential, hierarchical, partial); got {value!r}.")
    return mapping[text]


def _response_units(study: Study, response: str) -> str:
    return next((r.units for r in study.responses if r.name == response), "")


# -- tables ----------------------------------------------------------------------------------
def _coefficient_table(cols: list[_Col], X: np.ndarray, ls: _LS, alpha: float) -> pd.DataFrame:
    C = ls.cov_unscaled
    diag = np.diag(C)
    se = np.sqrt(diag * ls.mse) if ls.df > 0 else np.full(ls.p, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ls.coef / se
    p = _t_two_sided(t, ls.df) if ls.df > 0 else np.full(ls.p, np.nan)
    q = stats.t.ppf(1 - alpha / 2, ls.df) if ls.df > 0 else math.nan
    ss = np.sum((X - X.mean(axis=0)) ** 2, axis=0)
    vif = diag * ss  # VIF_j = C_jj * S_jj = 1 / (1 - R_j^2) (Montgomery, sec. 10.4)
    vif[0] = math.nan
    return pd.DataFrame({
        "term": [c.name for c in cols], "estimate": ls.coef, "std_error": se, "t": t, "p": p,
        "ci_low": ls.coef - q * se, "ci_high": ls.coef + q * se, "vif": vif,
    })


def _anova_row(source: str, df: int, ss: float, mse: float, df_resid: int) -> dict[str, Any]:
    ss = max(float(ss), 0.0)  # nested comparisons are >= 0; clip round-off
    ms = ss / df if df > 0 else math.nan
    if df_resid > 0 and df > 0 and mse > 0:
        F = ms / mse
        p = _f_sf(F, df, df_resid)
    else:
        F = p = math.nan
    return {"source": source, "df": int(df), "sum_sq": float(ss), "mean_sq": ms, "F": F, "p": p}


def _anova_table(cols: list[_Col], terms: list[Term], X: np.ndarray, y: np.ndarray, ls: _LS,
                 atype: int, sst: float, lof: dict[str, float] | None) -> pd.DataFrame:
    names = [t.name for t in terms]
    term_cols = [[j for j, c in enumerate(cols) if c.term == name] for name in names]
    block_cols = [j for j, c in enumerate(cols) if c.is_block]
    base = [0] + block_cols
    rows = []
    sse_base = _sse(X[:, base], y)
    if block_cols:
        rows.append(_anova_row("Block", len(block_cols), sst - sse_base, ls.mse, ls.df))
    if terms:
        rows.append(_anova_row("Model", ls.p - len(base), sse_base - ls.sse, ls.mse, ls.df))
    cache: dict[frozenset, float] = {frozenset(range(len(terms))): ls.sse}

    def sse_of(which: frozenset) -> float:
        if which not in cache:
            idx = base + [j for i in sorted(which) for j in term_cols[i]]
            cache[which] = _sse(X[:, sorted(idx)], y)
        return cache[which]

    if atype == 1:
        prev = sse_base
        for i in range(len(terms)):
            cur = sse_of(frozenset(range(i + 1)))
            rows.append(_anova_row(names[i], len(term_cols[i]), prev - cur, ls.mse, ls.df))
            prev = cur
    elif atype == 2:
        for i, t in enumerate(terms):
            others = frozenset(k for k, u in enumerate(terms) if k != i and not _contains(u, t))
            ss = sse_of(others) - sse_of(others | {i})
            rows.append(_anova_row(names[i], len(term_cols[i]), ss, ls.mse, ls.df))
    else:
        C = ls.cov_unscaled
        for i in range(len(terms)):
            idx = term_cols[i]
            b = ls.coef[idx]
            ss = float(b @ np.linalg.solve(C[np.ix_(idx, idx)], b))  # b_T' (C_TT)^-1 b_T
            rows.append(_anova_row(names[i], len(idx), ss, ls.mse, ls.df))
    rows.append({"source": "Residual", "df": ls.df, "sum_sq": ls.sse, "mean_sq": ls.mse,
                 "F": math.nan, "p": math.nan})
    if lof is not None:
        rows.append({"source": "Lack of fit", "df": lof["df"], "sum_sq": lof["ss"],
                     "mean_sq": lof["ss"] / lof["df"], "F": lof["F"], "p": lof["p"]})
        rows.append({"source": "Pure error", "df": lof["pure_error_df"], "sum_sq": lof["pure_error_ss"],
                     "mean_sq": lof["pure_error_ss"] / lof["pure_error_df"], "F": math.nan, "p": math.nan})
    rows.append({"source": "Total", "df": ls.n - 1, "sum_sq": sst, "mean_sq": math.nan,
                 "F": math.nan, "p": math.nan})
    return pd.DataFrame(rows, columns=["source", "df", "sum_sq", "mean_sq", "F", "p"])


def _diagnostics(run_ids: list[Any], y0: np.ndarray, y: np.ndarray, ls: _LS, tf: Transform,
                 alpha: float) -> tuple[pd.DataFrame, list[str]]:
    """Residual diagnostics per run (Montgomery, Peck & Vining, ch. 4 and 6)."""
    n, p, df = ls.n, ls.p, ls.df
    h = ls.leverage
    e = ls.resid
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (1 - h) > 1e-10
        r = np.where(ok, e / np.sqrt(ls.mse * (1 - h)), np.nan) if df > 0 else np.full(n, np.nan)
        if df > 1:
            t_ext = r * np.sqrt((df - 1) / np.maximum(df - r ** 2, 1e-300))
        else:
            t_ext = np.full(n, np.nan)
        cook = r ** 2 * h / (p * (1 - h))
        dffits = t_ext * np.sqrt(h / (1 - h))
    lev_lim = 2 * p / n
    cook_4n = 4 / n
    cook_f = float(stats.f.ppf(0.5, p, n - p)) if n > p else math.nan
    dffits_lim = 2 * math.sqrt(p / n)
    bonf = float(stats.t.ppf(1 - alpha / (2 * n), df - 1)) if df > 1 else math.nan
    flags = []
    outliers = []
    for i in range(n):
        f = []
        if np.isfinite(t_ext[i]) and abs(t_ext[i]) > EXT_STUDENT_LIMIT:
            f.append(f"|ext. studentized| {abs(t_ext[i]):.2f} > {EXT_STUDENT_LIMIT}")
        if np.isfinite(t_ext[i]) and abs(t_ext[i]) > bonf:
            f.append(f"|ext. studentized| {abs(t_ext[i]):.2f} > {bonf:.2f} (Bonferroni outlier limit)")
            outliers.append(i)
        if h[i] > lev_lim + 1e-12:
            f.append(f"leverage {h[i]:.3f} > 2p/n = {lev_lim:.3f}")
        if np.isfinite(cook[i]) and cook[i] > cook_4n:
            f.append(f"Cook's D {cook[i]:.3f} > 4/n = {cook_4n:.3f}")
        if np.isfinite(cook[i]) and np.isfinite(cook_f) and cook[i] > cook_f:
            f.append(f"Cook's D {cook[i]:.3f} > F(0.5; p, n-p) = {cook_f:.3f}")
        if np.isfinite(dffits[i]) and abs(dffits[i]) > dffits_lim:
            f.append(f"|DFFITS| {abs(dffits[i]):.3f} > 2 sqrt(p/n) = {dffits_lim:.3f}")
        flags.append("; ".join(f))
    table = pd.DataFrame({
        "run": run_ids, "actual": y0, "predicted": tf.inverse(ls.fitted), "residual": e,
        "leverage": h, "int_studentized": r, "ext_studentized": t_ext, "cooks_d": cook,
        "dffits": dffits, "flag": flags,
    })
    if not tf.is_identity:
        table.insert(3, "actual_transformed", y)
        table.insert(4, "predicted_transformed", ls.fitted)
    warn = []
    if outliers:
        warn.append(
            f"Run(s) {_ids([run_ids[i] for i in outliers])} may be outliers: externally studentized "
            f"residual beyond the Bonferroni limit ±{bonf:.2f}. Check the records for these runs "
            "before excluding them."
        )
    return table, warn


def _fit_warnings(response: str, ls: _LS, lof: dict | None, r2: float, adj_r2: float, pred_r2: float,
                  adeq: float, coef: pd.DataFrame, alpha: float) -> list[str]:
    out = []
    if lof is not None and lof["p"] < alpha:
        out.append(
            f"Lack of fit is significant (p = {fmt_sig(lof['p'], 3)}): the model misses structure the "
            "replicates show (curvature, interactions); try a higher-order model or a transform."
        )
    if math.isfinite(pred_r2) and pred_r2 < 0:
        out.append("Predicted R² is negative: the overall mean predicts new runs better than this model.")
    elif math.isfinite(pred_r2) and math.isfinite(adj_r2) and adj_r2 - pred_r2 > 0.2:
        out.append(
            f"Predicted R² ({pred_r2:.3f}) is more than 0.2 below adjusted R² ({adj_r2:.3f}): "
            "check for outliers, a block effect or terms that fit noise (try reducing the model)."
        )
    if math.isfinite(adeq) and adeq < 4:
        out.append(f"Adequate precision {adeq:.2f} is below 4: the signal is weak against the noise, "
                   "so do not use this model to navigate the design space.")
    vif = coef["vif"].to_numpy()
    high = [name for name, v in zip(coef["term"].tolist(), vif) if np.isfinite(v) and v > 10]
    if high:
        out.append(f"VIF above 10 for {', '.join(high[:6])}{' ...' if len(high) > 6 else ''}: these "
                   "estimates are inflated by correlation with other terms.")
    return out


# -- equations --------------------------------------------------------------------------------
def _coded_equation(lhs: str, cols: list[_Col], coef: np.ndarray) -> str:
    pairs = [(c.name, b) for c, b in zip(cols, coef) if not c.is_block]
    return _equation(lhs, pairs)


def _equation(lhs: str, pairs: list[tuple[str, float]]) -> str:
    text = f"{lhs} ="
    for i, (name, b) in enumerate(pairs):
        sign = "-" if b < 0 else "+"
        body = fmt_sig(abs(b)) if name == "Intercept" else f"{fmt_sig(abs(b))} * {name}"
        text += f" {'-' if b < 0 else ''}{body}" if i == 0 else f" {sign} {body}"
    return text


def _actual_equations(study: Study, cols: list[_Col], coef: np.ndarray, lhs: str
                      ) -> tuple[list[dict[str, Any]], pd.DataFrame, str]:
    """Expand the coded model into actual units, one equation per categorical level combination.

    Each coded column is prod ((X - centre) / half range)^p over its numeric parts
    times its effect codes; blocks are averaged out (0).
    """
    numeric = [f.name for f in study.factors if not f.is_categorical
               and any(f.name == g for c in cols for g, _ in c.num)]
    cats = [f.name for f in study.factors if f.is_categorical
            and any(f.name == g for c in cols for g, _ in c.cat)]
    index = {f: i for i, f in enumerate(numeric)}
    combos = list(itertools.product(*[range(len(study.factor(f).levels)) for f in cats]))
    note = ""
    if len(combos) > MAX_EQUATIONS:
        note = (f"{len(combos)} combinations of {', '.join(cats)}: equations in actual units are "
                f"given for the first {MAX_EQUATIONS} only.")
        combos = combos[:MAX_EQUATIONS]
    polys = [{} if c.is_block else _actual_poly(study, c.num, index, len(numeric)) for c in cols]
    monos = sorted({m for poly in polys for m in poly}, key=_mono_key)
    where = {m: i for i, m in enumerate(monos)}
    M = np.zeros((len(cols), len(monos)))  # column j in actual-unit monomials
    for j, poly in enumerate(polys):
        for m, v in poly.items():
            M[j, where[m]] = v
    codes = {f: effect_codes(len(study.factor(f).levels)) for f in cats}
    mult = np.ones((len(combos), len(cols)))  # effect-code multiplier of each column per combination
    for j, c in enumerate(cols):
        for f, k in c.cat:
            mult[:, j] *= codes[f][[combo[cats.index(f)] for combo in combos], k]
    values = (mult * coef[None, :]) @ M
    names = [_mono_name(m, numeric) for m in monos]
    labels, equations = [], []
    for combo, row in zip(combos, values):
        levels = {f: study.factor(f).levels[i] for f, i in zip(cats, combo)}
        label = ", ".join(f"{f} = {v}" for f, v in levels.items())
        labels.append(label or "coefficient")
        pairs = [(n.replace(":", " * "), float(v)) for n, v in zip(names, row)]
        equations.append({"label": label, "levels": levels, "equation": _equation(lhs, pairs),
                          "coefficients": dict(zip(names, row.tolist()))})
    frame = pd.DataFrame(values.T, index=pd.Index(names, name="term"), columns=labels)
    return equations, frame, note


def _actual_poly(study: Study, parts: tuple[tuple[str, int], ...], index: dict[str, int], k: int
                 ) -> dict[tuple[int, ...], float]:
    poly = {(0,) * k: 1.0}
    for f, p in parts:
        fac = study.factor(f)
        a, d = 1.0 / fac.half_range, -fac.center / fac.half_range  # x = a X + d
        term: dict[tuple[int, ...], float] = {}
        for j in range(p + 1):
            e = [0] * k
            e[index[f]] = j
            term[tuple(e)] = math.comb(p, j) * a ** j * d ** (p - j)
        new: dict[tuple[int, ...], float] = {}
        for m1, v1 in poly.items():
            for m2, v2 in term.items():
                m = tuple(x + y for x, y in zip(m1, m2))
                new[m] = new.get(m, 0.0) + v1 * v2
        poly = new
    return poly


def _mono_key(m: tuple[int, ...]) -> tuple:
    deg = sum(m)
    used = [i for i, e in enumerate(m) if e]
    kind = 0 if deg == 1 else (2 if len(used) == 1 else 1)
    return (-1 if deg == 0 else (kind if deg <= 2 else 3), deg, used, [m[i] for i in used])


def _mono_name(m: tuple[int, ...], names: list[str]) -> str:
    parts = [f if e == 1 else f"{f}^{e}" for f, e in zip(names, m) if e]
    return ":".join(parts) if parts else "Intercept"


# -- canonical analysis ------------------------------------------------------------------------
def _stationary_point(study: Study, terms: list[Term], cols: list[_Col], coef: np.ndarray,
                      tf: Transform) -> tuple[dict[str, Any] | None, list[str]]:
    """Stationary point and canonical analysis of the numeric quadratic part.

    x_s = -B^-1 b / 2 with b the linear and B the second-order coefficients
    (off-diagonals half the interaction coefficients); categorical factors and
    blocks at their average effect (0 in effect coding). Eigenvalues in
    decreasing order, as R's ``eigen`` (Myers, Montgomery & Anderson-Cook, sec. 6.3).
    """
    numeric_terms = [t for t in terms if not any(study.factor(f).is_categorical for f in t.factors)]
    if not any(len(t.parts) == 1 and t.parts[0][1] == 2 for t in numeric_terms):
        return None, []
    if any(t.degree > 2 for t in numeric_terms):
        return None, ["The model has terms above second order, so no canonical analysis is given."]
    names = [f.name for f in study.factors if any(f.name in t.factors for t in numeric_terms)]
    idx = {f: i for i, f in enumerate(names)}
    k = len(names)
    b, B, b0 = np.zeros(k), np.zeros((k, k)), float(coef[0])
    for c, v in zip(cols, coef):
        if c.is_block or c.cat or not c.num:
            continue
        if len(c.num) == 1 and c.num[0][1] == 1:
            b[idx[c.num[0][0]]] = v
        elif len(c.num) == 1:
            B[idx[c.num[0][0]], idx[c.num[0][0]]] = v
        else:
            i, j = idx[c.num[0][0]], idx[c.num[1][0]]
            B[i, j] = B[j, i] = v / 2
    vals, vecs = np.linalg.eigh(B)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    if np.min(np.abs(vals)) <= _SINGULAR_TOL * max(1.0, float(np.max(np.abs(vals)))):
        return None, ["The second-order part is singular (a ridge, or a factor without a square or "
                      "interaction): there is no unique stationary point."]
    xs = -0.5 * np.linalg.solve(B, b)
    z = b0 + float(b @ xs) + float(xs @ B @ xs)
    kind = "maximum" if np.all(vals < 0) else "minimum" if np.all(vals > 0) else "saddle"
    if tf.kind == "power" and tf.power < 0:
        kind = {"maximum": "minimum", "minimum": "maximum"}.get(kind, kind)
    inside = bool(np.all(np.abs(xs) <= 1 + 1e-9))
    sp = {
        "factors": names,
        "coded": dict(zip(names, xs.tolist())),
        "actual": {f: float(study.factor(f).to_actual(x)) for f, x in zip(names, xs)},
        "eigenvalues": vals.tolist(),
        "eigenvectors": vecs.T.tolist(),  # eigenvectors[i] belongs to eigenvalues[i] (a column of rsm's matrix)
        "kind": kind,
        "predicted": float(tf.inverse(np.array([z]))[0]),
        "predicted_fitted_scale": z,
        "inside_region": inside,
        "b": b.tolist(),
        "B": B.tolist(),
    }
    warn = [] if inside else [
        f"The stationary point ({kind}) lies outside the study ranges (coded "
        + ", ".join(f"{f} {x:.2f}" for f, x in zip(names, xs)) + "): it is an extrapolation."]
    return sp, warn


# -- two-level effects and Lenth's method ---------------------------------------------------------
def _effects_table(cols: list[_Col], coef: np.ndarray) -> pd.DataFrame:
    rows = [{"term": c.name, "effect": 2.0 * b} for c, b in zip(cols, coef)
            if c.term != "Intercept" and not c.is_block]
    out = pd.DataFrame(rows, columns=["term", "effect"])
    out["abs_effect"] = out["effect"].abs()
    return out


def lenth(effects: Any, alpha: float = 0.05) -> dict[str, float]:
    """Lenth's pseudo standard error and margins of error for unreplicated factorials.

    s0 = 1.5 median|c|; PSE = 1.5 median{|c| : |c| < 2.5 s0}; with d = m/3
    degrees of freedom, ME = t(1 - alpha/2, d) PSE and SME = t(gamma, d) PSE with
    gamma = (1 + (1 - alpha)^(1/m)) / 2 (Lenth 1989).

    >>> out = lenth([23, -5, 1.5, 1.5, 10, 0, 0.5])
    >>> round(out["pse"], 6), round(out["me"], 6), round(out["sme"], 6)
    (2.25, 8.469277, 20.268691)
    """
    c = np.abs(np.asarray(list(effects.values()) if isinstance(effects, dict) else effects, dtype=float))
    m = len(c)
    if m < 2:
        raise ModelError("Lenth's method needs at least two effects.")
    s0 = 1.5 * float(np.median(c))
    trimmed = c[c < 2.5 * s0]
    pse = 1.5 * float(np.median(trimmed)) if len(trimmed) else 0.0
    d = m / 3.0
    gamma = (1 + (1 - alpha) ** (1 / m)) / 2
    return {"pse": pse, "s0": s0, "me": float(stats.t.ppf(1 - alpha / 2, d) * pse),
            "sme": float(stats.t.ppf(gamma, d) * pse), "d": d, "m": m, "alpha": alpha, "gamma": gamma}


def effects_two_level(fm_or_study: FittedModel | Study, runs: pd.DataFrame | None = None,
                      response: str | None = None, model: Any = "full", **kwargs: Any) -> pd.DataFrame:
    """Effects (2 x coded coefficients) of a two-level model, with Lenth t and p.

    Pass a :class:`FittedModel`, or a study, runs, response and model (default
    the saturated ``full`` model) to fit first. Lenth's PSE, ME and SME are in
    ``result.attrs['lenth']``.
    """
    fm = fm_or_study if isinstance(fm_or_study, FittedModel) else fit_model(
        fm_or_study, runs, response, model, **kwargs)
    if fm.effects is None:
        raise ModelError(
            "Effects and Lenth's method apply to two-level designs with terms of distinct factors "
            "(no squares); this model or design is not one."
        )
    out = fm.effects.copy()
    out.attrs["lenth"] = fm.lenth
    return out


# -- Box-Cox --------------------------------------------------------------------------------------
def _box_cox_curve(Q: np.ndarray, y: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """Profile log-likelihood of lambda (Box & Cox 1964), computed on y / geometric mean.

    llf(lambda) = (lambda - 1) sum ln y - n/2 ln(SSE_lambda / n), which equals
    -n ln(gm) - n/2 ln(SSE(z^(lambda)) / n) with z = y / gm (scipy's boxcox_llf
    for the intercept-only model).
    """
    n = len(y)
    lz = np.log(y)
    lgm = float(lz.mean())
    z = lz - lgm
    lam = np.atleast_1d(np.asarray(lambdas, dtype=float))
    small = np.abs(lam) < 1e-12
    with np.errstate(over="ignore", invalid="ignore"):
        T = np.where(small[None, :], z[:, None],
                     np.expm1(np.outer(z, np.where(small, 1.0, lam))) / np.where(small, 1.0, lam)[None, :])
    resid = T - Q @ (Q.T @ T)
    sse = np.sum(resid ** 2, axis=0)
    with np.errstate(divide="ignore"):
        return -n * lgm - n / 2 * np.log(sse / n)


def _box_cox_search(X: np.ndarray, y: np.ndarray, run_ids: list[Any], response: str,
                    alpha: float = 0.05, current: float | None = None) -> dict[str, Any]:
    if np.any(y <= 0):
        i = int(np.flatnonzero(y <= 0)[0])
        raise ModelError(
            f"Box-Cox needs every result of {response} above 0; run {run_ids[i]} has "
            f"{fmt_sig(float(y[i]))}. Use 'sqrt' (allows 0) or no transform."
        )
    Q, _ = np.linalg.qr(X)
    llf = _box_cox_curve(Q, y, LAMBDA_GRID)
    if len(y) <= np.linalg.matrix_rank(X) or not np.isfinite(llf).any():
        raise ModelError(
            f"Box-Cox needs residuals: the model fits the {len(y)} results of {response} exactly, so "
            "no lambda can be chosen. Add runs, drop terms or use no transform."
        )
    i = int(np.nanargmax(llf))
    lo, hi = LAMBDA_GRID[max(i - 1, 0)], LAMBDA_GRID[min(i + 1, len(LAMBDA_GRID) - 1)]

    def f(lam: float) -> float:
        return float(_box_cox_curve(Q, y, np.array([lam]))[0])

    res = optimize.minimize_scalar(lambda v: -f(v), bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-9})
    best, top = (float(res.x), -float(res.fun)) if -res.fun >= llf[i] else (float(LAMBDA_GRID[i]), float(llf[i]))
    cut = top - stats.chi2.ppf(1 - alpha, 1) / 2
    g = LAMBDA_GRID
    ci_lo = float(g[0]) if f(g[0]) >= cut else optimize.brentq(lambda v: f(v) - cut, g[0], best, xtol=1e-10)
    ci_hi = float(g[-1]) if f(g[-1]) >= cut else optimize.brentq(lambda v: f(v) - cut, best, g[-1], xtol=1e-10)
    suggested, advice = box_cox_advice(best, ci_lo, ci_hi, alpha, open_ends=(ci_lo == g[0], ci_hi == g[-1]))
    return {"lambdas": LAMBDA_GRID.tolist(), "log_likelihood": llf.tolist(), "best": best,
            "ci": [ci_lo, ci_hi], "ci_open": [ci_lo == g[0], ci_hi == g[-1]], "threshold": cut,
            "suggested": float(suggested), "one_in_ci": bool(ci_lo <= 1 <= ci_hi),
            "current": current, "alpha": alpha, "advice": advice}


LAMBDA_NAMES = {-3.0: "inverse cube (y^-3)", -2.0: "inverse square (1/y^2)", -1.0: "inverse (1/y)",
                -0.5: "inverse square root (1/sqrt(y))", 0.0: "natural log (ln y)",
                0.5: "square root (sqrt(y))", 1.0: "none", 2.0: "square (y^2)", 3.0: "cube (y^3)"}


def box_cox_advice(best: float, ci_low: float, ci_high: float, alpha: float = 0.05,
                   open_ends: tuple[bool, bool] = (False, False)) -> tuple[float, str]:
    """The recommended lambda and the sentence saying why (Design-Expert's rule).

    No transform (lambda = 1) when the 1 - alpha interval of lambda contains 1; otherwise the
    conventional power (-3, -2, -1, -0.5, 0 = log, 0.5, 2, 3) inside the interval closest to the
    best lambda; if none lies inside, the best lambda to 2 decimals. ``open_ends`` marks an
    interval end at the searched range's edge (printed as ≤ / ≥).
    """
    ci = (f"{100 * (1 - alpha):.0f} % interval {'≤ ' if open_ends[0] else ''}{fmt_sig(ci_low, 3)} to "
          f"{'≥ ' if open_ends[1] else ''}{fmt_sig(ci_high, 3)}")
    if ci_low <= 1.0 <= ci_high:
        return 1.0, (f"No transform recommended: the {ci} of lambda contains 1 "
                     f"(best lambda {fmt_sig(best, 3)}).")
    inside = [v for v in CONVENTIONAL_LAMBDAS if ci_low <= v <= ci_high]
    if inside:
        lam = min(inside, key=lambda v: abs(v - best))
        return lam, (f"Recommended transform: {LAMBDA_NAMES[lam]}, lambda = {fmt_sig(lam)} (best lambda "
                     f"{fmt_sig(best, 3)}; {ci}, which excludes 1).")
    lam = round(best, 2)
    return lam, (f"Recommended transform: power lambda = {fmt_sig(lam)} (best lambda {fmt_sig(best, 3)}; {ci} "
                 "contains no conventional power and excludes 1).")


def box_cox(study: Study, runs: pd.DataFrame, response: str, model: Any = "quadratic", *,
            transform: str | None = "none", block_col: str | None = None, exclude: Any = None,
            alpha: float = 0.05) -> dict[str, Any]:
    """Box-Cox profile log-likelihood of lambda over -3..3 for the Box-Cox plot.

    Returns ``lambdas``, ``log_likelihood`` (same length), ``best`` (maximum
    likelihood lambda), ``ci`` (the 1 - alpha interval {lambda: llf >= max -
    chi2(1 - alpha, 1) / 2}; an end at -3 or 3 means open, see ``ci_open``),
    ``suggested`` (1 = no transform when the interval contains 1, Design-Expert's rule;
    otherwise the conventional power -3, -2, -1, -0.5, 0, 0.5, 2, 3 inside the interval
    closest to ``best``, else ``best`` to 2 decimals), ``advice`` (that recommendation
    in a sentence) and ``current``
    (lambda of ``transform``: 1 none, 0 log, 0.5 sqrt; None for logit). Blocks
    are in the model (Box & Cox 1964; Design-Expert's Box-Cox plot shows the
    same curve as ln(residual SS)).
    """
    terms = _as_terms(study, model)
    data = _prepare(study, runs, response, block_col, exclude)
    mm = ModelMatrix(study, terms, len(data.block_labels) if data.blocks is not None else 1)
    X = mm.build(data.U, data.blocks)
    _check_estimable(study, mm, _column_info(study, mm), X, data.U, response)
    tf = parse_transform(transform, _response_units(study, response))
    current = None if tf is None else tf.lam
    return _box_cox_search(X, data.y, data.run_ids, response, alpha, current)


# -- fit summary and sequential ANOVA ----------------------------------------------------------------
def _cubic_terms(study: Study) -> list[Term]:
    order = {n: i for i, n in enumerate(study.factor_names)}
    out = []
    for combo in itertools.combinations_with_replacement(study.factor_names, 3):
        counts: dict[str, int] = {}
        for f in combo:
            counts[f] = counts.get(f, 0) + 1
        if any(study.factor(f).is_categorical and p > 1 for f, p in counts.items()):
            continue
        out.append(Term(tuple(sorted(counts.items(), key=lambda kv: order[kv[0]]))))
    return out


def fit_summary(study: Study, runs: pd.DataFrame, response: str, *, transform: str | None = "none",
                block_col: str | None = None, exclude: Any = None, alpha: float = 0.05) -> pd.DataFrame:
    """Design-Expert's *Fit Summary*: sequential SS by model order, lack of fit and R² per order.

    Rows: ``Mean`` (vs total), ``Block`` (vs mean, when blocks), ``Linear``,
    ``2FI``, ``Quadratic`` and ``Cubic`` (orders that add no terms are left
    out). ``sum_sq`` / ``df`` are sequential (each order vs the previous); ``F``
    and ``p`` use the residual mean square of the *larger* model of each
    comparison, as Design-Expert does (rsm's grouped ANOVA uses the full
    model's residual instead: see :func:`sequential_anova`). Per order:
    lack-of-fit F and p (pure error within blocks), std. dev., R², adjusted
    and predicted R², PRESS, and ``aliased`` (some terms cannot be estimated;
    sums of squares then come from the estimable part).

    ``suggested`` marks one row: among the non-aliased orders whose added
    terms are significant (p < alpha), the highest one whose lack of fit is not
    significant; if every such order shows significant lack of fit, the
    highest significant order; if no order adds significant terms, ``Mean``.
    Design-Expert's rule in words: "the highest order polynomial where the
    additional terms are significant and the model is not aliased", with lack
    of fit as the tie-breaker.

    A ``boxcox`` transform uses the lambda chosen for the quadratic model
    (linear if the quadratic cannot be fitted).
    """
    data = _prepare(study, runs, response, block_col, exclude)
    y0 = data.y
    tf = parse_transform(transform, _response_units(study, response))
    nb = len(data.block_labels) if data.blocks is not None else 1
    if tf is None:
        lam = None
        for preset in ("quadratic", "linear"):
            mm = ModelMatrix(study, preset_terms(study, preset), nb)
            X = mm.build(data.U, data.blocks)
            if X.shape[0] > X.shape[1] and np.linalg.matrix_rank(X) == X.shape[1]:
                lam = _box_cox_search(X, y0, data.run_ids, response)["suggested"]
                break
        if lam is None:
            raise ModelError(f"Too few runs with a result for {response} to choose a Box-Cox lambda.")
        tf = _power_transform(lam)
    tf.check(y0, data.run_ids, response)
    y = tf.forward(y0)
    n = len(y)
    sst = float(np.sum((y - y.mean()) ** 2))
    pe_ss, pe_df, _ = _pure_error(data.U, data.blocks, y)
    seq: list[tuple[str, list[Term] | None]] = [("Mean", None)]
    if nb > 1:
        seq.append(("Block", []))
    seen: set[Term] = set()
    for name, terms in (("Linear", preset_terms(study, "linear")),
                        ("2FI", preset_terms(study, "interactions")),
                        ("Quadratic", preset_terms(study, "quadratic")),
                        ("Cubic", preset_terms(study, "quadratic") + _cubic_terms(study))):
        if set(terms) - seen:
            seq.append((name, terms))
            seen |= set(terms)
    rows = []
    prev_sse, prev_rank = float(y @ y), 0
    for name, terms in seq:
        if terms is None:
            X = np.ones((n, 1))
        else:
            mm = ModelMatrix(study, terms, nb)
            if mm.p > 4 * n:
                break
            X = mm.build(data.U, data.blocks)
        sse, rank, resid, h = _rank_fit(X, y)
        dfe = n - rank
        df = rank - prev_rank
        ss = prev_sse - sse
        row = {"order": name, "source": f"{name} vs {rows[-1]['order'] if rows else 'Total'}",
               "sum_sq": ss, "df": df, "mean_sq": ss / df if df > 0 else math.nan,
               "F": math.nan, "p": math.nan}
        if name not in ("Mean", "Block") and dfe > 0 and df > 0 and sse > 0:
            row["F"] = (ss / df) / (sse / dfe)
            row["p"] = _f_sf(row["F"], df, dfe)
        lof_df = dfe - pe_df
        row["lack_of_fit_df"] = lof_df if pe_df > 0 and lof_df > 0 else 0
        row["lack_of_fit_F"] = row["lack_of_fit_p"] = math.nan
        if pe_df > 0 and lof_df > 0 and pe_ss > 0:
            row["lack_of_fit_F"] = (max(sse - pe_ss, 0) / lof_df) / (pe_ss / pe_df)
            row["lack_of_fit_p"] = _f_sf(row["lack_of_fit_F"], lof_df, pe_df)
        press = float(np.sum((resid / (1 - h)) ** 2)) if dfe > 0 and np.all(h < 1 - 1e-10) else math.nan
        row.update({
            "std_dev": math.sqrt(sse / dfe) if dfe > 0 else math.nan,
            "r2": 1 - sse / sst if dfe > 0 and name != "Mean" else (0.0 if name == "Mean" else math.nan),
            "adj_r2": (0.0 if name == "Mean" else 1 - (sse / dfe) / (sst / (n - 1))) if dfe > 0 else math.nan,
            "pred_r2": 1 - press / sst if math.isfinite(press) else math.nan,
            "press": press, "aliased": bool(rank < X.shape[1]), "residual_df": dfe,
        })
        rows.append(row)
        prev_sse, prev_rank = sse, rank
    table = pd.DataFrame(rows)
    table["suggested"] = False
    cand = table[table["order"].isin(["Linear", "2FI", "Quadratic", "Cubic"]) & ~table["aliased"]
                 & (table["p"] < alpha)]
    if len(cand):
        good = cand[~(cand["lack_of_fit_p"] < alpha)]
        pick = (good if len(good) else cand).index[-1]
    else:
        pick = table.index[0]
    table.loc[pick, "suggested"] = True
    return table


def sequential_anova(study: Study, runs: pd.DataFrame, response: str, model: Any = "quadratic",
                     **kwargs: Any) -> pd.DataFrame:
    """rsm-style grouped sequential ANOVA (Block, FO, TWI, PQ, Residuals, Lack of fit,
    Pure error) of a fitted model; see :meth:`FittedModel.grouped_anova`."""
    return fit_model(study, runs, response, model, **kwargs).grouped_anova()


# -- model reduction ---------------------------------------------------------------------------------
def reduce_model(study: Study, runs: pd.DataFrame, response: str, model: Any = "quadratic", *,
                 method: str = "p", alpha: float = 0.1, transform: str | None = "none",
                 block_col: str | None = None, exclude: Any = None) -> tuple[list[Term], list[dict]]:
    """Backward elimination that keeps the model hierarchical.

    A term is eligible for removal only when no remaining term contains it
    (A stays while A:B or A^2 remains). ``method='p'``: remove the eligible
    term with the largest partial F-test p-value while it exceeds ``alpha``
    (for an eligible term, Type II and Type III coincide). ``method='aicc'``:
    remove the eligible term whose removal lowers AICc most, while AICc
    improves; AICc = n ln(2 pi SSE/n) + n + 2k + 2k(k+1)/(n-k-1) with k the
    number of coefficients plus one for the error variance (JMP's convention).
    Blocks are never removed; at least one term is kept. A ``boxcox`` transform
    is resolved once on the starting model.

    Returns the final terms and the steps ``{removed, p}`` or ``{removed, aicc}``.
    """
    if method not in ("p", "aicc"):
        raise ModelError(f"The reduction method must be 'p' or 'aicc'; got {method!r}.")
    start = fit_model(study, runs, response, model, transform=transform, block_col=block_col,
                      exclude=exclude)
    if start.df_resid == 0:
        raise ModelError(
            "The model has no residual degrees of freedom, so terms cannot be tested for removal: "
            "use the half-normal plot and Lenth's margin of error to pick the active effects."
        )
    X, y = start._ls.X, start._ls.y
    cols = start._cols
    terms = list(start.model_terms)
    n = len(y)
    base = [j for j, c in enumerate(cols) if c.term in ("Intercept", "Block")]
    term_cols = {t.name: [j for j, c in enumerate(cols) if c.term == t.name] for t in terms}
    steps: list[dict[str, Any]] = []

    def design(ts: list[Term]) -> np.ndarray:
        return X[:, sorted(base + [j for t in ts for j in term_cols[t.name]])]

    def aicc(ts: list[Term]) -> float:
        Xs = design(ts)
        k = Xs.shape[1] + 1
        if n - k - 1 <= 0:
            return math.inf
        sse = _sse(Xs, y)
        return n * math.log(2 * math.pi * sse / n) + n + 2 * k + 2 * k * (k + 1) / (n - k - 1)

    current = aicc(terms)
    while len(terms) > 1:
        eligible = [t for t in terms if not any(_contains(u, t) for u in terms)]
        if method == "p":
            Xs = design(terms)
            ls = _LS(Xs, y)
            if ls.df <= 0:
                break
            pos = {j: i for i, j in enumerate(sorted(base + [j for t in terms for j in term_cols[t.name]]))}
            pvals = {}
            for t in eligible:
                idx = [pos[j] for j in term_cols[t.name]]
                b = ls.coef[idx]
                ss = float(b @ np.linalg.solve(ls.cov_unscaled[np.ix_(idx, idx)], b))
                pvals[t] = _f_sf(ss / len(idx) / ls.mse, len(idx), ls.df) if ls.mse > 0 else 0.0
            worst = max(eligible, key=lambda t: pvals[t])
            if pvals[worst] <= alpha:
                break
            terms.remove(worst)
            steps.append({"removed": worst.name, "p": pvals[worst]})
        else:
            trial = {t: aicc([u for u in terms if u != t]) for t in eligible}
            best = min(eligible, key=lambda t: trial[t])
            if not trial[best] < current:
                break
            terms.remove(best)
            current = trial[best]
            steps.append({"removed": best.name, "aicc": current})
    return terms, steps


# -- several CQAs ----------------------------------------------------------------------------------
def analyze(study: Study, runs: pd.DataFrame, responses: list[str] | None = None, *,
            model: Any = "quadratic", transform: Any = "none", reduce: bool = False,
            reduce_method: str = "p", anova_type: int | str = 2, block_col: str | None = None,
            alpha: float = 0.05) -> dict[str, Any]:
    """Fit every CQA that has at least one result; JSON-ready (used by ``python -m doe analyze``).

    ``model`` and ``transform`` may be dicts keyed by response name. Returns
    ``{"study", "responses": {name: fm.to_json() + {"fit_summary", "reduction"}}}``;
    a response whose model cannot be fitted gets ``{"error": message}`` instead,
    so one bad CQA does not hide the others.
    """
    if responses is None:
        names = [r for r in study.response_names if r in runs.columns
                 and pd.to_numeric(runs[r], errors="coerce").notna().any()]
    else:
        names = [responses] if isinstance(responses, str) else list(responses)
        for r in names:
            study.response(r)
    out: dict[str, Any] = {"study": study.name, "responses": {}}
    from doe.analysis import ModelChoice, fit_choice

    for name in names:
        spec = model.get(name, "quadratic") if isinstance(model, dict) else model
        tr = transform.get(name, "none") if isinstance(transform, dict) else transform
        choice = ModelChoice(model=spec, transform=tr, reduce=reduce, reduce_method=reduce_method,
                             anova_type=anova_type)
        result = fit_choice(study, runs, name, choice, block_col=block_col, alpha=alpha)
        if result.error:
            out["responses"][name] = {"error": result.error}
            continue
        fm, steps = result.model, result.steps
        entry = fm.to_json()
        try:
            used = fm.transform if fm.boxcox_lambda is None else _power_transform(fm.boxcox_lambda).spec
            entry["fit_summary"] = json_ready(fit_summary(
                study, runs, name, transform=used, block_col=block_col, alpha=alpha).to_dict(orient="records"))
        except ModelError as exc:
            entry["fit_summary"] = None
            entry["warnings"].append(f"Fit summary not available: {exc}")
        entry["reduction"] = json_ready(steps)
        entry["anova_sequential"] = json_ready(fm.grouped_anova().to_dict(orient="records"))
        entry["steepest_ascent"] = None
        if all(t.degree == 1 for t in fm.model_terms):
            try:
                entry["steepest_ascent"] = {
                    **fm.steepest_direction(),
                    "path": json_ready(fm.steepest_ascent().to_dict(orient="records")),
                }
            except ModelError:
                pass
        out["responses"][name] = entry
    return out


# -- distributions -------------------------------------------------------------------------
def analysis_status(result: Mapping[str, Any]) -> list[str]:
    """One line per CQA of :func:`analyze`'s result: fitted (model size, n, R^2) or why not.

    The lines ``python -m doe analyze`` prints; a result with no CQA says so.
    """
    lines = []
    for name, r in (result.get("responses") or {}).items():
        if r.get("error"):
            lines.append(f"{name}: not fitted - {r['error']}")
            continue
        k = len([t for t in r.get("terms") or [] if t != "Intercept"])
        stats_text = ", ".join(f"{label} = {fmt_sig(r[key], 4)}" for key, label in
                               (("r2", "R²"), ("adj_r2", "adjusted R²"), ("pred_r2", "predicted R²"))
                               if r.get(key) is not None)
        transform = "" if r.get("transform") in (None, "none") else f", {r.get('transform_label')}"
        lines.append(f"{name}: fitted (intercept + {k} term{'s' if k != 1 else ''}{transform}, n = {r.get('n')}"
                     + (f", {stats_text}" if stats_text else "") + ")")
    if not lines:
        lines.append("No CQA has results to analyse: enter results in the run sheet's CQA columns.")
    return lines


def _f_sf(F: float, d1: float, d2: float) -> float:
    """Upper tail of F(d1, d2) (scipy.special directly: stats.f.sf is 100x slower per call)."""
    return float(special.fdtrc(d1, d2, F)) if np.isfinite(F) else (0.0 if F > 0 else math.nan)


def _t_two_sided(t: Any, df: float) -> np.ndarray:
    """Two-sided p-value of Student's t."""
    return 2.0 * special.stdtr(df, -np.abs(np.asarray(t, dtype=float)))


def _ids(ids: list[Any]) -> str:
    shown = ", ".join(str(i) for i in ids[:12])
    return shown + (f" and {len(ids) - 12} more" if len(ids) > 12 else "")


def _id_range(ids: list[Any]) -> str:
    return f"{ids[0]} to {ids[-1]}" if ids else "none"
