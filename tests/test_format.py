"""doe._format: the one home of number formatting and parsing (issue 17).

Two kinds of check:

- each function against values derived by hand from the documented rules of Python and NumPy:
  ``numpy.generic.item`` returns "a standard Python scalar" (NumPy reference, ``numpy.ndarray.item``;
  ``datetime64[ns]`` gives an ``int`` of nanoseconds, ``datetime64[D]`` a ``datetime.date``), the
  ``g`` presentation type gives at most ``precision`` significant digits and removes trailing zeros
  (Python Library Reference, "Format Specification Mini-Language"), and JSON has no NaN or infinity
  (RFC 8259, section 6);
- each new function against the definition it replaced, copied below verbatim from the modules as of
  commit e2b2736 (``_plain`` in doe/fit.py, doe/study.py, doe/runs.py, doe/versions.py, doe/space.py,
  doe/desirability.py; ``_num`` in doe/fit.py, doe/tables.py, doe/versions.py, doe/evaluate.py), on
  the same inputs: outputs and their types must be identical, so the move changed no behaviour.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from doe._format import blank_as_none, fmt_rounded, fmt_sig, json_number, json_value, plain, plain_whole

# -- the replaced definitions, verbatim (commit e2b2736) -----------------------------------------------


def _old_plain_space(v: Any) -> Any:  # doe/space.py and doe/desirability.py
    if isinstance(v, np.generic):
        return v.item()
    return v


def _old_plain_fit(x: Any) -> Any:  # doe/fit.py and doe/study.py
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def _old_num_versions(value: Any) -> float | None:  # doe/versions.py
    """A finite float, or None (JSON-safe)."""
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _old_plain_versions(value: Any) -> Any:  # doe/versions.py
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _old_num_versions(value)
    return value


def _old_blank_tables(value: Any) -> bool:  # doe/tables.py
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip()
    )


def _old_num_tables(value: Any) -> float | None:  # doe/tables.py
    return None if _old_blank_tables(value) else value


def _old_num_fit(x: float, digits: int = 6) -> str:  # doe/fit.py
    """Short number: 6 significant digits, no '-0'."""
    if x is None or not math.isfinite(float(x)):
        return str(x)
    text = f"{float(x):.{digits}g}"
    return "0" if text in ("-0", "0") else text


def _old_num_evaluate(x: float) -> str:  # doe/evaluate.py
    """Short number for alias lines: 1.0, 0.5, -0.333."""
    r = round(float(x), 3)
    return f"{r:.1f}" if r == int(r) else f"{r:g}"


# -- inputs --------------------------------------------------------------------------------------------

TS = pd.Timestamp("2026-12-06 20:40")
VALUES = [
    None, True, False, np.bool_(True), np.bool_(False), 0, 3, -7, np.int8(-3), np.int32(4), np.int64(2**40),
    np.uint16(9), 0.0, -0.0, 3.0, 2.5, -1 / 3, 1e-300, 1e300, float("nan"), float("inf"), -math.inf,
    np.float64(3.0), np.float64(-2.25), np.float64("nan"), np.float64("-inf"), np.float32(0.1), np.float32(4.0),
    np.float32("nan"), np.float16(1.5), "36.5", "", "   ", "\t", "NA", "hPL 5%", np.str_("B1"), TS, pd.NaT,
    pd.NA, np.datetime64("2026-12-06", "D"), np.datetime64("2026-12-06T20:40", "ns"),
    np.timedelta64(5, "s"), [1, 2], (3.0,), {"a": 1}, datetime.date(2026, 12, 6), 1 + 2j,
]
NUMBERS = [0, 1, -1, 0.5, -0.5, 2.0, -2.0, 1 / 3, -1 / 3, 1e-4, -1e-4, 5e-4, -5e-4, 123456.789, 1234567.5,
           0.1 + 0.2, 1e-300, -1e-300, 1e20, np.float64(0.125), np.float32(0.1), np.int64(7), True, 2.0004,
           -0.0004, 0.9995, -0.9995]


def _key(x: Any) -> tuple:
    """Type and value, with NaN equal to NaN, so identical outputs compare equal."""
    if isinstance(x, float) and math.isnan(x):
        return type(x), "nan"
    return type(x), repr(x)


# -- the new functions equal the old definitions --------------------------------------------------------

@pytest.mark.parametrize("new, old", [(plain, _old_plain_space), (plain_whole, _old_plain_fit),
                                      (json_value, _old_plain_versions), (json_number, _old_num_versions),
                                      (blank_as_none, _old_num_tables)],
                         ids=["plain", "plain_whole", "json_value", "json_number", "blank_as_none"])
def test_each_new_function_equals_the_definition_it_replaced(new, old):
    for v in VALUES:
        assert _key(new(v)) == _key(old(v)), v


@pytest.mark.parametrize("digits", [3, 4, 6])
def test_fmt_sig_equals_fit_num(digits):
    for v in NUMBERS + [None, float("nan"), float("inf"), np.float64("-inf")]:
        assert fmt_sig(v, digits) == _old_num_fit(v, digits), v
    assert all(fmt_sig(v) == _old_num_fit(v) for v in NUMBERS)


def test_fmt_rounded_equals_evaluate_num():
    for v in NUMBERS:
        assert fmt_rounded(v) == _old_num_evaluate(v), v
    for bad in (float("nan"), float("inf")):
        with pytest.raises((ValueError, OverflowError)):
            _old_num_evaluate(bad)
        with pytest.raises((ValueError, OverflowError)):
            fmt_rounded(bad)


# -- the documented behaviour, derived by hand ----------------------------------------------------------

def test_plain_turns_numpy_scalars_into_python_scalars_and_leaves_the_rest():
    assert _key(plain(np.int64(5))) == (int, "5")
    assert _key(plain(np.float64(2.5))) == (float, "2.5")
    assert _key(plain(np.float32(0.5))) == (float, "0.5")  # 0.5 is exact in binary
    assert plain(np.bool_(True)) is True and plain(np.bool_(False)) is False
    assert _key(plain(np.str_("B1"))) == (str, "'B1'")
    assert math.isnan(plain(np.float64("nan"))) and type(plain(np.float64("nan"))) is float
    assert plain(np.datetime64("2026-12-06", "D")) == datetime.date(2026, 12, 6)
    # 2026-12-06T20:40Z in nanoseconds since 1970: 20793 days and 20 h 40 min
    assert plain(np.datetime64("2026-12-06T20:40", "ns")) == (20793 * 86400 + 20 * 3600 + 40 * 60) * 10**9
    assert plain(TS) is TS and plain(pd.NaT) is pd.NaT and plain(None) is None and plain(3.0) == 3.0
    assert type(plain(3.0)) is float


def test_plain_whole_makes_whole_floats_ints():
    assert _key(plain_whole(np.float64(3.0))) == (int, "3")
    assert _key(plain_whole(-0.0)) == (int, "0")
    assert _key(plain_whole(np.float32(4.0))) == (int, "4")
    assert _key(plain_whole(2.5)) == (float, "2.5")
    assert math.isnan(plain_whole(float("nan"))) and plain_whole(float("inf")) == math.inf
    assert plain_whole(True) is True and plain_whole(np.bool_(False)) is False  # a bool is not a float
    assert plain_whole("3.0") == "3.0" and plain_whole(TS) is TS


def test_json_number_is_a_finite_float_or_none():
    assert _key(json_number(np.int64(2))) == (float, "2.0")
    assert _key(json_number(True)) == (float, "1.0")
    assert _key(json_number(" 2.5 ")) == (float, "2.5")  # float() strips whitespace
    for v in (None, float("nan"), np.float64("inf"), -math.inf, "abc", "", pd.NA, pd.NaT, TS, [1], 1 + 2j):
        assert json_number(v) is None, v


def test_json_value_keeps_ints_bools_and_text():
    assert _key(json_value(np.int64(3))) == (int, "3")
    assert _key(json_value(3.0)) == (float, "3.0")  # unlike plain_whole
    assert json_value(np.bool_(True)) is True
    assert json_value(np.float64("nan")) is None and json_value(float("-inf")) is None
    assert json_value("hPL 5%") == "hPL 5%" and json_value(TS) is TS and json_value(None) is None


def test_blank_as_none_only_blanks_none_nan_and_empty_text():
    for v in (None, float("nan"), np.float64("nan"), "", "  ", "\t\n"):
        assert blank_as_none(v) is None, v
    for v in (0, 0.0, "0", "NA", "36.5", False, TS, np.float32("nan")):  # float32 is not a Python float
        assert blank_as_none(v) is v, v


def test_fmt_sig_by_hand():
    assert fmt_sig(0.1 + 0.2) == "0.3"  # 0.30000000000000004 to 6 significant digits
    assert fmt_sig(123456.789) == "123457" and fmt_sig(1234567.5) == "1.23457e+06"
    assert fmt_sig(2.0) == "2" and fmt_sig(np.int64(7)) == "7" and fmt_sig(-0.5) == "-0.5"
    assert fmt_sig(-0.0) == "0" and fmt_sig(0) == "0"
    assert fmt_sig(-1e-300) == "-1e-300"  # tiny but not zero: keeps its sign
    assert fmt_sig(1 / 3, 3) == "0.333" and fmt_sig(0.9995, 3) == "1"  # 0.9995 rounds up to 3 digits
    assert fmt_sig(None) == "None" and fmt_sig(float("nan")) == "nan" and fmt_sig(np.float64("-inf")) == "-inf"


def test_fmt_rounded_by_hand():
    assert fmt_rounded(1) == "1.0" and fmt_rounded(-2.0) == "-2.0" and fmt_rounded(True) == "1.0"
    assert fmt_rounded(0.5) == "0.5" and fmt_rounded(-1 / 3) == "-0.333" and fmt_rounded(2 / 3) == "0.667"
    assert fmt_rounded(2.0004) == "2.0" and fmt_rounded(0.9996) == "1.0"
    assert fmt_rounded(-0.0004) == "-0.0"  # round(-0.0004, 3) is -0.0: the old alias text kept the sign
    assert fmt_rounded(0.125, 2) == "0.12"  # round half to even on the binary value 0.125
