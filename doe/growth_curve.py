"""Maximum growth rate and lag from a growth curve: the "easy linear" method.

Hall, Acar, Nandipati & Barlow (2014), "Growth rates made easy", Mol. Biol. Evol. 31:232-238
(doi:10.1093/molbev/mst187), as implemented by ``fit_easylinear(time, y, h = 5, quota = 0.95)`` in the R
package growthrates (Petzoldt, https://github.com/tpetzoldt/growthrates, R/fit_easylinear.R):

1. Regress ``log(y)`` on time over windows of ``h`` consecutive points starting at the 1st, 2nd, ...,
   ``(N - h)``-th point (growthrates starts windows up to ``N - h``, so the window ending at the last point
   is not among them; kept here so the numbers agree).
2. The windows whose slope is at least ``quota`` x the largest slope are the candidates; the final window
   runs from the first point of the first candidate to the last point of the last candidate (windows in
   between are included even if their slope is lower).
3. One regression over the final window gives ``mumax`` (slope), ``y0_lm = exp(intercept)`` and R²; the lag
   is where the fitted line crosses ``log(y0)``, ``y0`` being the first observation:
   ``lag = (log(y0) - log(y0_lm)) / mumax``.

Least squares is :func:`scipy.stats.linregress`. Times must be increasing (growthrates needs distinct
times; sorted times make the windows consecutive in time as the method intends).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from doe._format import json_number
from doe.cells import blank_cell
from doe.errors import DoeError, did_you_mean, quoted_list
from doe.runs import read_table, source_bytes

__all__ = ["GrowthCurve", "GrowthCurveError", "fit_growth_curve", "read_growth_curve"]

METHOD = "easy linear (Hall et al. 2014; growthrates::fit_easylinear)"


class GrowthCurveError(DoeError):
    """A growth curve cannot be read or fitted as given."""


@dataclass
class GrowthCurve:
    """An easy-linear fit of one growth curve (time units as given; ``mumax`` per time unit).

    ``window`` holds the 0-based indices of the points of the final regression, ``times`` their times.
    ``y0`` is the first observation, ``y0_lm`` the fitted line's value at time 0 (original scale).
    """

    mumax: float
    lag: float
    doubling_time: float
    r2: float
    y0: float
    y0_lm: float
    window: list[int]
    times: list[float]
    n: int
    h: int
    quota: float
    observed_time: list[float] = field(default_factory=list)

    def fitted_line(self) -> tuple[list[float], list[float]]:
        """Times and fitted values ``y0_lm exp(mumax t)`` on the original scale over the observed time range.

        101 evenly spaced times from the first to the last observation (the window's times when the
        observed times are not known).
        """
        span = self.observed_time or self.times
        t = np.linspace(min(span), max(span), 101)
        y = self.y0_lm * np.exp(self.mumax * t)
        return [float(v) for v in t], [float(v) for v in y]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN as null): mumax, lag, doubling_time, r2, y0, y0_lm, window, window_times,
        n, h, quota, method."""
        return {
            "mumax": json_number(self.mumax),
            "lag": json_number(self.lag),
            "doubling_time": json_number(self.doubling_time),
            "r2": json_number(self.r2),
            "y0": json_number(self.y0),
            "y0_lm": json_number(self.y0_lm),
            "window": [int(i) for i in self.window],
            "window_times": [json_number(t) for t in self.times],
            "n": int(self.n),
            "h": int(self.h),
            "quota": float(self.quota),
            "method": METHOD,
        }


def fit_growth_curve(time: Sequence[float] | np.ndarray, value: Sequence[float] | np.ndarray, h: int = 5, quota: float = 0.95) -> GrowthCurve:
    """Fit the easy-linear growth model (see the module docstring for the rule, as growthrates applies it).

    Parameters
    ----------
    time : sequence of float
        Observation times, increasing (e.g. days or hours).
    value : sequence of float
        Cell counts or densities, all > 0.
    h : int, default 5
        Points per window (at least 2, at most ``len(time) - 1``).
    quota : float, default 0.95
        Windows with a slope of at least ``quota`` x the largest slope make up the final window (0 < quota <= 1).

    Returns
    -------
    GrowthCurve
        ``mumax`` and ``lag`` are NaN (doubling time too) when no window has a positive slope.

    Raises
    ------
    GrowthCurveError
        On mismatched lengths, non-finite or non-positive values, times not increasing, or a bad ``h``/``quota``.
    """
    t = np.asarray(time, dtype=float).ravel()
    y = np.asarray(value, dtype=float).ravel()
    _check_series(t, y, h, quota)
    ly = np.log(y)
    n = t.size
    slopes = np.array([stats.linregress(t[i:i + h], ly[i:i + h]).slope for i in range(n - h)])
    best = float(np.max(slopes))
    candidates = np.flatnonzero(slopes >= quota * best) if best > 0 else np.array([], dtype=int)
    y0 = float(y[0])
    if candidates.size == 0:
        return GrowthCurve(math.nan, math.nan, math.nan, math.nan, y0, float(np.mean(y)), list(range(n)),
                           [float(v) for v in t], n, h, float(quota), [float(v) for v in t])
    window = list(range(int(candidates.min()), int(candidates.max()) + h))
    fit = stats.linregress(t[window], ly[window])
    mumax = float(fit.slope)
    y0_lm = float(math.exp(fit.intercept))
    lag = (math.log(y0) - math.log(y0_lm)) / mumax
    doubling = math.log(2.0) / mumax if mumax > 0 else math.nan
    return GrowthCurve(mumax, lag, doubling, float(fit.rvalue) ** 2, y0, y0_lm, window,
                       [float(t[i]) for i in window], n, h, float(quota), [float(v) for v in t])


def read_growth_curve(source: bytes | str | Path | pd.DataFrame, time: str, value: str,
                      name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The time and value columns of a growth-curve table (CSV/XLSX bytes, a path, CSV text or a DataFrame).

    Column names match case- and whitespace-insensitively. Fully blank rows are dropped.

    Raises
    ------
    GrowthCurveError
        A missing column (with the columns there are), a blank or non-number cell (naming the row), a value
        <= 0, times not increasing, fewer than 6 points (the default window of 5 needs one more).
    """
    frame = _load_frame(source, name)
    what = name or "The growth curve"
    cols = {_key(c): c for c in frame.columns}
    picked = []
    for want in (time, value):
        col = cols.get(_key(want))
        if col is None:
            raise GrowthCurveError(f"{what} has no column '{want}'.{did_you_mean(want, list(frame.columns))} "
                                   f"Columns: {quoted_list(frame.columns)}.")
        picked.append(col)
    rows = [i for i in range(len(frame)) if not all(blank_cell(v) for v in frame.iloc[i].tolist())]
    out: list[np.ndarray] = []
    for col, want in zip(picked, (time, value)):
        values = []
        for i in rows:
            cell = frame[col].iloc[i]
            if blank_cell(cell):
                raise GrowthCurveError(f"Row {i + 1}, column '{want}': the cell is blank; enter the "
                                       f"{'time' if want == time else 'count'} or delete the row.")
            x = _to_float(cell)
            if x is None:
                raise GrowthCurveError(f"Row {i + 1}, column '{want}': '{cell}' is not a number; enter a plain "
                                       "number (no units).")
            values.append(x)
        out.append(np.array(values, dtype=float))
    t, y = out
    for k, yi in enumerate(y):
        if yi <= 0:
            raise GrowthCurveError(f"Row {rows[k] + 1}, column '{value}': {yi:g} is not above 0; a growth curve "
                                   "needs positive counts (its logarithm is fitted). Remove the row or enter the "
                                   "count measured.")
    for k in range(1, t.size):
        if not t[k] > t[k - 1]:
            raise GrowthCurveError(f"Row {rows[k] + 1}, column '{time}': {t[k]:g} is not after the row above "
                                   f"({t[k - 1]:g}); sort the rows by time and give each time once.")
    if t.size < 6:
        raise GrowthCurveError(f"{what} has {t.size} points; the easy-linear fit needs at least 6 (windows of "
                               "5 points and one more). Add time points.")
    return t, y


def _check_series(t: np.ndarray, y: np.ndarray, h: int, quota: float) -> None:
    if t.size != y.size:
        raise GrowthCurveError(f"There are {t.size} times and {y.size} values; give one value per time.")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise GrowthCurveError("A time or value is missing or not finite; remove that point.")
    if np.any(y <= 0):
        raise GrowthCurveError("Every value must be above 0 (its logarithm is fitted); remove zero or "
                               "negative counts.")
    if np.any(np.diff(t) <= 0):
        raise GrowthCurveError("Times must be increasing with no repeats; sort the points by time.")
    if isinstance(h, bool) or int(h) != h or h < 2 or h > t.size - 1:
        raise GrowthCurveError(f"The window h = {h} must be a whole number from 2 to {t.size - 1} (one less "
                               f"than the {t.size} points).")
    if not 0 < quota <= 1:
        raise GrowthCurveError(f"quota = {quota:g} must be above 0 and at most 1 (e.g. 0.95).")


def _load_frame(source: bytes | str | Path | pd.DataFrame, name: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True)
    try:
        data, name = source_bytes(source, name)
        return read_table(data, name)
    except GrowthCurveError:
        raise
    except DoeError as exc:
        raise GrowthCurveError(str(exc)) from None


def _key(text: Any) -> str:
    return "".join(str(text).split()).lower()


def _to_float(cell: Any) -> float | None:
    if isinstance(cell, bool):
        return None
    try:
        x = float(str(cell).strip()) if isinstance(cell, str) else float(cell)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
