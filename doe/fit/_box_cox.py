"""Box-Cox: the profile log-likelihood of lambda (Box & Cox 1964), its interval and the recommended
power (Design-Expert's rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from doe._format import fmt_sig
from doe.errors import ModelError
from doe.fit._data import as_terms, prepare, response_units
from doe.fit._least_squares import check_estimable, column_info
from doe.fit._transforms import parse_transform
from doe.model import ModelMatrix
from doe.study import Study

if TYPE_CHECKING:
    from doe.fit._results import FittedModel

__all__ = ["CONVENTIONAL_LAMBDAS", "LAMBDA_GRID", "LAMBDA_NAMES", "box_cox", "box_cox_advice", "box_cox_profile"]

#: Box-Cox search grid (Box & Cox 1964; Design-Expert's -3..3).
LAMBDA_GRID = np.round(np.linspace(-3.0, 3.0, 121), 10)
#: Conventional powers the Box-Cox suggestion snaps to when inside the confidence interval.
CONVENTIONAL_LAMBDAS = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)


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
        llf: np.ndarray = -n * lgm - n / 2 * np.log(sse / n)
    return llf


def box_cox_search(X: np.ndarray, y: np.ndarray, run_ids: list[Any], response: str,
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
    terms = as_terms(study, model)
    data = prepare(study, runs, response, block_col, exclude)
    mm = ModelMatrix(study, terms, len(data.block_labels) if data.blocks is not None else 1)
    X = mm.build(data.U, data.blocks)
    check_estimable(study, mm, column_info(study, mm), X, data.U, response)
    tf = parse_transform(transform, response_units(study, response))
    current = None if tf is None else tf.lam
    return box_cox_search(X, data.y, data.run_ids, response, alpha, current)


def box_cox_profile(fm: FittedModel, runs: pd.DataFrame) -> dict[str, Any]:
    """:func:`box_cox` of a fitted model: its study, response, terms and transform, on ``runs`` without the
    runs its user excluded (the Models page's Box-Cox plot of the model on screen)."""
    excluded = [e["run"] for e in fm.excluded if e["reason"] == "excluded by user"]
    return box_cox(fm.study, runs, fm.response, fm.model_terms, transform=fm.transform, exclude=excluded or None)
