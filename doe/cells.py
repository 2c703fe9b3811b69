"""One cell of a table: how its value is stored and compared, and how text is kept safe in spreadsheets.

The run sheet, results uploads, the store and bundles all read and write cells; these rules live here
once so that a value typed, downloaded, uploaded again and stored is the same value.

- :func:`stored_cell` / :func:`same_value`: a cell as a JSON value, and equality as stored data.
- :func:`blank_cell`: an empty cell (None, NaN, blank text or a "no value" mark such as ``n/a``).
- :func:`safe_text` / :func:`unquote_formula`: the apostrophe our downloads put before text a spreadsheet
  would run as a formula (OWASP, "CSV Injection"), and reading it back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from doe.errors import DoeError

__all__ = ["EMPTY_TEXT", "FORMULA_START", "blank_cell", "safe_text", "same_value", "stored_cell", "unquote_formula"]

#: Cell texts that mean "no value" (case and surrounding spaces aside).
EMPTY_TEXT = frozenset({"", "na", "n/a", "nan", "none", "null", "-"})
#: First characters a spreadsheet reads as the start of a formula (or a new cell).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def stored_cell(value: Any) -> Any:
    """A cell as a JSON value: None for blank/NaN, Python int/float/bool/str otherwise."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise DoeError(f"'{value}' is not a finite number: enter a measured value or leave it empty.")
        return value
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise DoeError(f"The value {value!r} cannot be stored: use numbers or text.")


def same_value(a: Any, b: Any) -> bool:
    """Equal as stored data: blanks equal; numbers by value (60 == 60.0); text exactly."""
    if a is None or b is None:
        return a is None and b is None
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return bool(a == b)


def safe_text(v: Any) -> Any:
    """Text a spreadsheet would run as a formula, marked with a leading apostrophe (line breaks as ``\\n``);
    anything that is not text is returned unchanged.

    >>> safe_text("=1+1"), safe_text("-80C"), safe_text(3)
    ("'=1+1", "'-80C", 3)
    """
    if not isinstance(v, str):
        return v
    if v[:1] in FORMULA_START:
        v = "'" + v
    return v.replace("\r\n", "\n").replace("\r", "\n")


def unquote_formula(v: Any) -> Any:
    """Text as it was before :func:`safe_text` marked it: a leading apostrophe before = + - @ or a
    tab is dropped (the mark our downloads put on text a spreadsheet would run as a formula), so the
    tool reads its own run sheets back: "'-80C" -> "-80C". Anything else is returned unchanged.
    Readers that know the expected values (levels, column names) try the text as it stands first.

    >>> unquote_formula("'-80C"), unquote_formula("'quoted"), unquote_formula(3)
    ('-80C', "'quoted", 3)
    """
    if isinstance(v, str) and v[:1] == "'" and v[1:2] in ("=", "+", "-", "@", "\t"):
        return v[1:]
    return v


def blank_cell(value: Any) -> bool:
    """True for an empty cell: None, NA, NaT, NaN, or text in :data:`EMPTY_TEXT` (a no-break space counts as one)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return isinstance(value, str) and value.replace("\u00a0", " ").strip().lower() in EMPTY_TEXT
