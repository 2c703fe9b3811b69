"""ANOVA tables (Type I, II, III), the coefficient table, lack of fit and pure error, the grouped
sequential ANOVA, residual diagnostics and the warnings about a fit's statistics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from doe._format import fmt_sig
from doe.errors import ModelError
from doe.fit._data import format_ids
from doe.fit._least_squares import LeastSquares, ModelColumn, f_sf, t_two_sided, term_contains
from doe.fit._transforms import Transform
from doe.model import Term

__all__ = ["EXT_STUDENT_LIMIT"]

#: Externally studentized residuals beyond this are flagged (Design-Expert's default limit).
EXT_STUDENT_LIMIT = 3.5


def pred_r2_without_blocks(y: np.ndarray, blocks: np.ndarray | None, press: float, sst: float) -> float | None:
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


def anova_type_number(value: Any) -> int:
    text = str(value).strip().upper()
    mapping = {"1": 1, "I": 1, "2": 2, "II": 2, "3": 3, "III": 3}
    if text not in mapping:
        raise ModelError(f"anova_type must be 1, 2 or 3 (sequential, hierarchical, partial); got {value!r}.")
    return mapping[text]



# -- tables ----------------------------------------------------------------------------------
def coefficient_table(cols: list[ModelColumn], X: np.ndarray, ls: LeastSquares, alpha: float) -> pd.DataFrame:
    C = ls.cov_unscaled
    diag = np.diag(C)
    se = np.sqrt(diag * ls.mse) if ls.df > 0 else np.full(ls.p, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ls.coef / se
    p = t_two_sided(t, ls.df) if ls.df > 0 else np.full(ls.p, np.nan)
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
        p = f_sf(F, df, df_resid)
    else:
        F = p = math.nan
    return {"source": source, "df": int(df), "sum_sq": float(ss), "mean_sq": ms, "F": F, "p": p}


def anova_table(cols: list[ModelColumn], terms: list[Term], X: np.ndarray, y: np.ndarray, ls: LeastSquares,
                 atype: int, sst: float, lof: dict[str, float] | None) -> pd.DataFrame:
    names = [t.name for t in terms]
    term_cols = [[j for j, c in enumerate(cols) if c.term == name] for name in names]
    block_cols = [j for j, c in enumerate(cols) if c.is_block]
    base = [0] + block_cols
    rows = []
    sub = ls.subsets  # every subset's sums of squares from the one QR of X (no refit on the n runs)
    sse_base = sub.residual_ss(base)
    if block_cols:
        rows.append(_anova_row("Block", len(block_cols), sst - sse_base, ls.mse, ls.df))
    if terms:
        rows.append(_anova_row("Model", ls.p - len(base), sse_base - ls.sse, ls.mse, ls.df))

    def columns_of(which: list[int]) -> list[int]:
        return sorted(base + [j for i in which for j in term_cols[i]])

    if atype == 1:
        for i in range(len(terms)):
            ss = sub.added_ss(columns_of(list(range(i))), term_cols[i])
            rows.append(_anova_row(names[i], len(term_cols[i]), ss, ls.mse, ls.df))
    elif atype == 2:
        for i, t in enumerate(terms):
            others = [k for k, u in enumerate(terms) if k != i and not term_contains(u, t)]
            ss = sub.added_ss(columns_of(others), term_cols[i])
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


def diagnostics_table(run_ids: list[Any], y0: np.ndarray, y: np.ndarray, ls: LeastSquares, tf: Transform,
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
    flags = [""] * n
    outliers = []
    with np.errstate(invalid="ignore"):  # NaN compares False, as the tests below skip non-finite values
        maybe = ((np.abs(t_ext) > min(EXT_STUDENT_LIMIT, bonf if np.isfinite(bonf) else EXT_STUDENT_LIMIT))
                 | (h > lev_lim + 1e-12) | (cook > cook_4n) | (np.isfinite(cook_f) & (cook > cook_f))
                 | (np.abs(dffits) > dffits_lim))
    for i in np.flatnonzero(maybe).tolist():  # only the runs that may carry a flag (the others' flag is "")
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
        flags[i] = "; ".join(f)
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
            f"Run(s) {format_ids([run_ids[i] for i in outliers])} may be outliers: externally studentized "
            f"residual beyond the Bonferroni limit ±{bonf:.2f}. Check the records for these runs "
            "before excluding them."
        )
    return table, warn


def fit_warnings(response: str, ls: LeastSquares, lof: dict[str, float] | None, r2: float, adj_r2: float, pred_r2: float,
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



def lack_of_fit_test(ls: LeastSquares, pe_ss: float, pe_df: int) -> dict[str, float] | None:
    """Lack-of-fit F test against pure error (Myers, Montgomery & Anderson-Cook, sec. 2.7); None without
    pure error or without lack-of-fit degrees of freedom."""
    if not (pe_df > 0 and ls.df - pe_df > 0):
        return None
    lof_ss = max(ls.sse - pe_ss, 0.0)
    lof_df = ls.df - pe_df
    f_lof = (lof_ss / lof_df) / (pe_ss / pe_df) if pe_ss > 0 else math.inf
    return {"F": f_lof, "p": f_sf(f_lof, lof_df, pe_df) if math.isfinite(f_lof) else 0.0,
            "df": lof_df, "pure_error_df": pe_df, "ss": lof_ss, "pure_error_ss": pe_ss}


def grouped_anova_table(cols: list[ModelColumn], model_terms: list[Term], ls: LeastSquares,
                   lack_of_fit: dict[str, float] | None) -> pd.DataFrame:
    """rsm-style sequential ANOVA (see :meth:`doe.fit.FittedModel.grouped_anova`)."""
    kinds: dict[str, list[int]] = {"Block": [], "FO": [], "TWI": [], "PQ": [], "Higher order": []}
    for j, c in enumerate(cols):
        if c.term == "Intercept":
            continue
        term = next((t for t in model_terms if t.name == c.term), None)
        if c.is_block or term is None:
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
    sub = ls.subsets
    rows, used = [], [0]
    prev = sub.residual_ss(used)
    for name, idx in groups:
        used = used + idx
        sse = sub.residual_ss(used)
        rows.append(_anova_row(name, len(idx), prev - sse, ls.mse, ls.df))
        prev = sse
    rows.append({"source": "Residuals", "df": ls.df, "sum_sq": ls.sse,
                 "mean_sq": ls.mse, "F": math.nan, "p": math.nan})
    if lack_of_fit is not None:
        lof = lack_of_fit
        rows.append({"source": "Lack of fit", "df": lof["df"], "sum_sq": lof["ss"],
                     "mean_sq": lof["ss"] / lof["df"], "F": lof["F"], "p": lof["p"]})
        rows.append({"source": "Pure error", "df": lof["pure_error_df"], "sum_sq": lof["pure_error_ss"],
                     "mean_sq": lof["pure_error_ss"] / lof["pure_error_df"], "F": math.nan, "p": math.nan})
    return pd.DataFrame(rows, columns=["source", "df", "sum_sq", "mean_sq", "F", "p"])
