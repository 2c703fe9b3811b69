"""Number formatting and parsing helpers: the one home of the small conversions every module needs.

Each function has one behaviour, named for it (issue 17 found ``_plain`` defined six times with four
behaviours and ``_num`` four times, two formatting and two parsing):

====================  ==========================================================  ==========================
function              returns                                                     was
====================  ==========================================================  ==========================
:func:`plain`         a numpy scalar as the Python scalar, anything else as is    ``_plain`` in space,
                                                                                  desirability
:func:`plain_whole`   as :func:`plain`, then a whole float as ``int``             ``_plain`` in fit, study
                      (``3.0`` -> ``3``; tidy YAML, run ids)                      (and runs, after blanks)
:func:`json_number`   a finite ``float``, or ``None``                             ``_num`` in versions
:func:`json_value`    as :func:`plain`, then any float through :func:`json_number`  ``_plain`` in versions
:func:`blank_as_none` ``None`` for a blank cell, anything else as is              ``_num`` in tables
:func:`fmt_sig`       text with ``digits`` significant digits, never ``-0``       ``_num`` in fit
:func:`fmt_rounded`   text rounded to ``decimals`` places, whole numbers ``1.0``  ``_num`` in evaluate
====================  ==========================================================  ==========================

Python's own conversions do the work: ``numpy.generic.item`` (NumPy reference, "numpy.ndarray.item")
and the format mini-language's ``g`` presentation type (Python Library Reference, "Format
Specification Mini-Language"), which gives at most ``digits`` significant digits and drops trailing
zeros. JSON has no NaN or infinity (RFC 8259, section 6), hence ``None`` for them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["blank_as_none", "fmt_rounded", "fmt_sig", "json_number", "json_value", "plain", "plain_whole"]


def plain(value: Any) -> Any:
    """A numpy scalar as the equivalent Python scalar; any other value unchanged.

    Parameters
    ----------
    value : Any
        Typically a cell of a DataFrame or an element of an array.

    Returns
    -------
    Any
        ``value.item()`` for a ``numpy.generic`` (``np.int64`` -> ``int``, ``np.float64`` -> ``float``
        with NaN kept, ``np.bool_`` -> ``bool``, ``np.str_`` -> ``str``, ``np.datetime64[ns]`` -> ``int``
        nanoseconds, as NumPy does); everything else, pandas ``Timestamp`` and ``None`` included, as is.

    Examples
    --------
    >>> plain(np.int64(3)), plain(np.float64(2.5)), plain(np.bool_(True)), plain(3.0)
    (3, 2.5, True, 3.0)
    """
    if isinstance(value, np.generic):
        return value.item()
    return value


def plain_whole(value: Any) -> Any:
    """:func:`plain`, then a float with a whole value as ``int``; any other value unchanged.

    Parameters
    ----------
    value : Any
        A factor setting, a level, a run id.

    Returns
    -------
    Any
        ``int`` for a (numpy or Python) float whose value is whole (``3.0`` -> ``3``, ``-0.0`` -> ``0``);
        NaN and infinity stay floats; other values as :func:`plain` returns them (``True`` stays
        ``True``: a bool is not a float).

    Examples
    --------
    >>> plain_whole(np.float64(3.0)), plain_whole(2.5), plain_whole("R1"), plain_whole(np.int32(4))
    (3, 2.5, 'R1', 4)
    """
    value = plain(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def json_number(value: Any) -> float | None:
    """A finite ``float``, or ``None`` (JSON has no NaN or infinity).

    Parameters
    ----------
    value : Any
        Anything ``float()`` may accept.

    Returns
    -------
    float or None
        ``float(value)`` when that succeeds and is finite (``True`` -> ``1.0``, ``"2"`` -> ``2.0``);
        ``None`` for ``None``, NaN, infinity, and anything ``float()`` refuses (``"abc"``, ``pd.NA``,
        ``pd.Timestamp``).

    Examples
    --------
    >>> json_number(np.int64(2)), json_number(float("nan")), json_number(None), json_number("x")
    (2.0, None, None, None)
    """
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def json_value(value: Any) -> Any:
    """:func:`plain`, then any float through :func:`json_number`; other values unchanged.

    Parameters
    ----------
    value : Any
        A factor setting (number, level name, bool).

    Returns
    -------
    Any
        A finite ``float`` or ``None`` for a (numpy or Python) float; ``int``, ``bool``, ``str`` and
        other values as :func:`plain` returns them (a whole float stays a float: ``3.0``).

    Examples
    --------
    >>> json_value(np.float64("inf")), json_value(np.int64(3)), json_value(3.0), json_value("hPL 5%")
    (None, 3, 3.0, 'hPL 5%')
    """
    value = plain(value)
    if isinstance(value, float):
        return json_number(value)
    return value


def blank_as_none(value: Any) -> Any:
    """``None`` for a blank table cell; any other value unchanged (not converted to a number).

    Parameters
    ----------
    value : Any
        A cell of an edited table.

    Returns
    -------
    Any
        ``None`` when ``value`` is ``None``, a float NaN (``np.float64`` included: it is a ``float``)
        or text that is empty or only whitespace; otherwise ``value`` itself.

    Examples
    --------
    >>> blank_as_none(float("nan")), blank_as_none("  "), blank_as_none("36.5"), blank_as_none(0)
    (None, None, '36.5', 0)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def fmt_sig(x: Any, digits: int = 6) -> str:
    """Short text of a number: at most ``digits`` significant digits (format ``g``), never ``-0``.

    Parameters
    ----------
    x : float or None
        The number (anything ``float()`` accepts).
    digits : int, default 6
        Significant digits.

    Returns
    -------
    str
        ``f"{float(x):.{digits}g}"`` with ``"-0"`` written ``"0"``; ``str(x)`` for ``None``, NaN and
        infinity (``"None"``, ``"nan"``, ``"inf"``).

    Examples
    --------
    >>> fmt_sig(0.1 + 0.2), fmt_sig(-1e-9, 3), fmt_sig(-0.0), fmt_sig(123456789), fmt_sig(2.0)
    ('0.3', '-1e-09', '0', '1.23457e+08', '2')
    """
    if x is None or not math.isfinite(float(x)):
        return str(x)
    text = f"{float(x):.{digits}g}"
    return "0" if text in ("-0", "0") else text


def fmt_rounded(x: Any, decimals: int = 3) -> str:
    """Text of ``x`` rounded to ``decimals`` places: whole numbers with one decimal, others format ``g``.

    Parameters
    ----------
    x : float
        The number (an alias coefficient, a constant column).
    decimals : int, default 3
        Decimal places kept by ``round``.

    Returns
    -------
    str
        ``"1.0"``, ``"-2.0"`` for a rounded whole number (``"-0.0"`` when a small negative number
        rounds to zero), else the rounded number in format ``g`` (``"0.5"``, ``"-0.333"``). Raises for
        NaN and infinity, as ``round`` does.

    Examples
    --------
    >>> fmt_rounded(1), fmt_rounded(0.5), fmt_rounded(-1 / 3), fmt_rounded(2.00004)
    ('1.0', '0.5', '-0.333', '2.0')
    """
    r = round(float(x), decimals)
    return f"{r:.1f}" if r == int(r) else f"{r:g}"
