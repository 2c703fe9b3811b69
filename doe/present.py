"""Tables as a reviewer reads them: one presentation layer for the pages, the report and the CLI.

The result objects keep their raw column names (``sum_sq``, ``ci_low``, ``p`` ...), which the
JSON, the store and other code use. :func:`present` turns any of those tables into the shown
one: human column labels with units, blank cells for missing values, numbers to 4 significant
digits, p-values as ``< 0.0001`` or 4 significant digits, yes/no for flags, and the row labels
(a table's named index) as its first column.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLUMN_LABELS", "LENTH_LABELS", "STATISTIC_LABELS", "format_number", "format_p", "format_time", "label",
           "lenth_table", "numeric_columns", "present"]

P_FLOOR = 1e-4  # p-values below this print as "< 0.0001"

#: Raw column name -> label shown. Names not listed are shown as they are.
COLUMN_LABELS: dict[str, str] = {
    # ANOVA, fit summary
    "source": "Source", "df": "Degrees of freedom", "sum_sq": "Sum of squares", "mean_sq": "Mean square",
    "F": "F value", "p": "p-value", "PR(>F)": "p-value", "order": "Model order",
    "lack_of_fit_df": "Lack-of-fit degrees of freedom", "lack_of_fit_F": "Lack-of-fit F value",
    "lack_of_fit_p": "Lack-of-fit p-value", "std_dev": "Standard deviation", "r2": "R²",
    "adj_r2": "Adjusted R²", "pred_r2": "Predicted R²", "press": "PRESS", "aliased": "Aliased",
    "residual_df": "Residual degrees of freedom", "suggested": "Suggested", "rmse": "RMSE",
    "cv_percent": "CV %", "adeq_precision": "Adequate precision",
    # coefficients, effects
    "term": "Term", "estimate": "Coefficient (coded units)", "std_error": "Standard error",
    "t": "t value", "ci_low": "95 % CI low", "ci_high": "95 % CI high", "vif": "VIF",
    "effect": "Effect",
    # diagnostics
    "run": "Run", "actual": "Observed", "predicted": "Predicted", "residual": "Residual",
    "leverage": "Leverage", "int_studentized": "Internally studentized residual",
    "ext_studentized": "Externally studentized residual", "cooks_d": "Cook's distance",
    "dffits": "DFFITS", "flag": "Flag",
    # comparisons of analysis versions
    "response": "CQA", "statistic": "Statistic", "old": "Before", "new": "After",
    "change": "Change (after - before)", "old_estimate": "Coefficient before",
    "new_estimate": "Coefficient after", "old_ci_low": "95 % CI low before",
    "old_ci_high": "95 % CI high before", "new_ci_low": "95 % CI low after",
    "new_ci_high": "95 % CI high after", "old_p": "p-value before", "new_p": "p-value after",
    "significance": "Significance (p < 0.05)", "in_old": "In model before", "in_new": "In model after",
    "quantity": "Quantity",
    # versions, records
    "version": "Version", "data_version": "Data version", "created_at": "Created at (UTC)",
    "created_by": "Created by", "content_hash": "Content (SHA-256, first 12)", "n_runs": "Runs",
    "note": "Note", "reason": "Reason", "column": "Model column", "combination": "Linear combination",
    "distance": "Distance (coded units)", "coded": "Coded", "factor": "Factor",
    "columns": "Model columns", "power": "Power", "noncentrality": "Noncentrality",
    # split plots, mixed models
    "df_den": "Denominator degrees of freedom", "stratum": "Error stratum",
}

#: Lenth's method (fm.lenth) -> labelled rows.
LENTH_LABELS: dict[str, str] = {"pse": "Pseudo standard error (PSE)", "s0": "Initial scale s0",
                                "me": "Margin of error (ME)", "sme": "Simultaneous margin of error (SME)",
                                "d": "Degrees of freedom (m / 3)", "m": "Number of effects",
                                "alpha": "Significance level"}


def lenth_table(lenth: dict[str, Any]) -> pd.DataFrame:
    """Lenth's PSE, ME and SME as a two-column table (quantity, value)."""
    rows = [(text, lenth[key]) for key, text in LENTH_LABELS.items() if key in lenth]
    return pd.DataFrame(rows, columns=["Quantity", "Value"])

#: Values of a ``statistic`` column (fit statistics compared between versions) -> label shown.
STATISTIC_LABELS: dict[str, str] = {"r2": "R²", "adj_r2": "Adjusted R²", "pred_r2": "Predicted R²",
                                    "rmse": "RMSE", "press": "PRESS", "cv_percent": "CV %",
                                    "adeq_precision": "Adequate precision"}

_P_COLUMNS = {"p", "PR(>F)", "lack_of_fit_p", "old_p", "new_p", "p_value", "p-value"}


def label(name: Any, ci_level: float = 95) -> str:
    """The shown label of a raw column name (unknown names unchanged)."""
    text = COLUMN_LABELS.get(str(name), str(name))
    if str(name) not in COLUMN_LABELS and text[:1].islower():  # a plain name ('set point'): sentence case
        text = text[0].upper() + text[1:]
    return text.replace("95 % CI", f"{ci_level:g} % CI") if ci_level != 95 else text


def _missing(x: Any) -> bool:
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    try:
        return isinstance(x, (float, np.floating)) and not math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def format_number(x: Any, digits: int = 4) -> str:
    """A cell as shown: blank when missing, yes/no, integers whole, other numbers to 4 significant digits."""
    if _missing(x):
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        v = float(x)
        if v == int(v) and abs(v) < 1e15 and digits >= len(str(int(abs(v)))):
            return str(int(v))
        text = f"{v:.{digits}g}"
        return "0" if text in ("-0", "0") else text
    text = str(x)
    return "" if text.strip().lower() in ("none", "nan", "nat", "<na>") else text


def format_percent(x: Any) -> str:
    """A percentage as shown: ``< 0.001 %`` for a tiny non-zero share, else 3 significant digits and ``%``."""
    if _missing(x):
        return ""
    v = float(x)
    if 0 < abs(v) < 0.001:
        return "< 0.001 %"
    return f"{format_number(v, 3)} %"


def format_p(x: Any) -> str:
    """A p-value as shown: ``< 0.0001`` below 0.0001, else 4 significant digits; blank when missing."""
    if _missing(x):
        return ""
    v = float(x)
    return "< 0.0001" if v < P_FLOOR else f"{v:.4g}"


_TIME_COLUMNS = {"created_at", "ts", "timestamp"}


def format_time(x: Any) -> str:
    """A stored UTC time (ISO 8601, ``2026-11-28T15:10:00.123456Z``) as shown: ``2026-11-28 15:10:00``
    (the column label says UTC); anything else as :func:`format_number` shows it.

    >>> format_time("2026-11-28T15:10:00.123456Z")
    '2026-11-28 15:10:00'
    """
    text = format_number(x)
    if len(text) >= 19 and text[4] == "-" and text[10] == "T" and text.endswith("Z"):
        return f"{text[:10]} {text[11:19]}"
    return text


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Columns of :func:`present`'s input that hold numbers (shown right-aligned)."""
    return [c for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
            or (frame[c].dtype == object and len(frame[c].dropna())
                and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                        for v in frame[c].dropna()))]


def present(frame: pd.DataFrame, digits: int = 4, ci_level: float = 95) -> pd.DataFrame:
    """The table as shown: row labels as a column, human labels, text cells in one number format.

    A named or non-default index (row labels such as the quantity of a comparison) becomes the
    first column; a ``statistic`` column gets the statistics' names (R², adjusted R² ...).
    """
    out = frame.copy()
    if _labelled(out.index):
        out = out.reset_index()
        if "index" in out.columns and "index" not in frame.columns:
            out = out.rename(columns={"index": ""})
    shown = pd.DataFrame(index=range(len(out)))
    for c in out.columns:
        values = out[c].tolist()
        if str(c) in _P_COLUMNS or str(c).startswith("p-value ("):
            cells = [format_p(v) for v in values]
        elif str(c) in _TIME_COLUMNS:
            cells = [format_time(v) for v in values]
        elif str(c) == "statistic":
            cells = [STATISTIC_LABELS.get(str(v), format_number(v)) for v in values]
        else:
            cells = [format_number(v, digits) for v in values]
        shown[label(c, ci_level)] = cells
    return shown


def _labelled(index: pd.Index) -> bool:
    """An index that carries row labels (named, or not plain integers) rather than row numbers."""
    return any(n is not None for n in index.names) or not pd.api.types.is_integer_dtype(index)
