"""Factor settings as the evaluation reads them: checked set points, frames and numpy columns.

:func:`fixed_settings` checks and completes a set point against the study; :func:`settings_arrays`
turns settings into coded numeric columns and level indices; :func:`settings_points` builds the
DataFrame-free :class:`Points` the PAR scans and the pattern search evaluate (as
:func:`settings_frame` would, without the cost of a DataFrame per evaluation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from doe.constraints import feasible as _constraints_feasible
from doe.errors import ModelError, did_you_mean, quoted_list
from doe.study import Factor, Study

from ._posterior import PredictiveModel

__all__ = ["Points", "checked_value", "factor_range", "feasible_at", "fixed_settings", "level_index", "numeric_factor",
           "settings_arrays", "settings_frame", "settings_points"]

# -- settings -------------------------------------------------------------------------------------
def level_index(f: Factor, value: Any) -> int:
    text = str(value).strip().lower()
    for i, lv in enumerate(f.levels):
        if str(lv).strip().lower() == text:
            return i
    raise ModelError(f"'{value}' is not a tested level of {f.name}.{did_you_mean(str(value), f.levels)} "
                     f"Levels are {quoted_list(f.levels)}.")


def settings_arrays(pm: PredictiveModel, settings: pd.DataFrame | Points) -> tuple[np.ndarray, np.ndarray]:
    """Coded numeric settings (points x numeric) and level indices (points x categorical)."""
    if not isinstance(settings, (pd.DataFrame, Points)):
        raise ModelError("Settings must be a table (DataFrame) with one column per factor, actual units.")
    used = {f for c in pm.cqas for t in c.fm.model_terms for f in t.factors}
    missing = [f for f in pm.study.factor_names if f not in settings.columns and f in used]
    if missing:
        raise ModelError(f"Give settings for {quoted_list(missing)}: the models use them.")
    n = len(settings)
    U = np.zeros((n, len(pm.numeric)))
    for j, name in enumerate(pm.numeric):
        f = pm.study.factor(name)
        if name in settings.columns:
            x = pd.to_numeric(settings[name], errors="coerce")
            x = x.to_numpy(dtype=float) if isinstance(x, pd.Series) else np.asarray(x, dtype=float)
            if not np.all(np.isfinite(x)):
                raise ModelError(f"{name}: every setting must be a number in {f.units or 'its units'}.")
            U[:, j] = (x - f.center) / f.half_range
    L = np.zeros((n, len(pm.categorical)), dtype=int)
    for j, name in enumerate(pm.categorical):
        if name in settings.columns:
            f = pm.study.factor(name)
            inv, uniq = pd.factorize(settings[name], use_na_sentinel=False)
            codes = np.array([level_index(f, v) for v in uniq], dtype=int)
            L[:, j] = codes[inv]
    return U, L


def fixed_settings(pm: PredictiveModel, fixed: Mapping[str, Any] | None, free: list[str],
                    *, complete: bool = False) -> dict[str, Any]:
    """Validated settings of the factors not in ``free`` (defaults: centre, first level)."""
    study = pm.study
    fixed = dict(fixed or {})
    for name in fixed:
        if name not in study.factor_names:
            raise ModelError(f"Unknown factor '{name}'.{did_you_mean(name, study.factor_names)} "
                             f"Factors are {quoted_list(study.factor_names)}.")
    missing = [f.name for f in study.factors if f.name not in free and f.name not in fixed]
    if complete and missing:
        raise ModelError(f"Give the set point of {quoted_list(missing)}.")
    out = {}
    for f in study.factors:
        if f.name in free:
            continue
        value = fixed.get(f.name, f.levels[0] if f.is_categorical else f.center)
        out[f.name] = checked_value(f, value)
    return out


def factor_range(f: Factor) -> tuple[float, float]:
    """(low, high) of a numeric factor (a categorical factor has none: TypeError)."""
    if f.low is None or f.high is None:
        raise TypeError(f"{f.name} has no numeric range.")
    return f.low, f.high


def checked_value(f: Factor, value: Any) -> Any:
    """``value`` of factor ``f`` checked: a level of a categorical factor, a number in a numeric
    factor's tested range (clipped to it within rounding)."""
    if f.is_categorical:
        return f.levels[level_index(f, value)]
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{f.name} must be a number in {f.units or 'its units'}; got {value!r}.") from None
    low, high = factor_range(f)
    tol = 1e-9 * (high - low)
    if not (low - tol <= x <= high + tol):
        raise ModelError(f"{f.name} = {x:g} is outside the tested range {f.describe_range()}: the design "
                         "space is only known inside the tested region.")
    return min(max(x, low), high)


def numeric_factor(pm: PredictiveModel, name: str) -> Factor:
    f = pm.study.factor(name) if name in pm.study.factor_names else None
    if f is None:
        raise ModelError(f"Unknown factor '{name}'.{did_you_mean(name, pm.study.factor_names)}")
    if f.is_categorical:
        raise ModelError(f"{name} is categorical: a probability map needs numeric factors on its axes.")
    return f


# -- single points ---------------------------------------------------------------------------------
def settings_frame(pm: PredictiveModel, base: dict[str, Any], n: int = 1, **columns: Any) -> pd.DataFrame:
    data = {f: [v] * n for f, v in base.items()}
    data.update(columns)
    return pd.DataFrame(data, columns=pm.study.factor_names)


class Points:
    """Settings as numpy columns, one per factor: what the evaluation and Study.feasible read of a DataFrame.

    Internal (PARs, pattern search): building a small DataFrame per evaluation
    costs more than the evaluation. Columns hold what ``DataFrame[c].to_numpy()``
    would: numbers as numbers, level names as an object array.
    """

    def __init__(self, data: dict[str, np.ndarray], n: int):
        self._data, self._n = data, n
        self.columns = list(data)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name]

    def feasible(self, study: Study) -> np.ndarray:
        """As :meth:`Study.feasible` on the same table."""
        if not study.constraints or self._n == 0:
            return np.ones(self._n, dtype=bool)
        return _constraints_feasible(study.constraints, {f.name: self._data[f.name] for f in study.factors})


def settings_points(pm: PredictiveModel, base: dict[str, Any], n: int = 1, **columns: Any) -> Points | pd.DataFrame:
    """:func:`settings_frame` as :class:`Points` (a DataFrame when a column is not plainly numbers or level names)."""
    values = {f: [v] * n for f, v in base.items()}
    values.update(columns)
    data = {}
    for f in pm.study.factors:
        if f.name not in values:
            return settings_frame(pm, base, n, **columns)
        v = values[f.name]
        if f.is_categorical:
            col = np.empty(n, dtype=object)
            col[:] = list(v)
            if not all(isinstance(x, str) for x in col):
                return settings_frame(pm, base, n, **columns)
        else:
            col = np.asarray(v)
            if col.dtype.kind not in "if" or col.shape != (n,):
                return settings_frame(pm, base, n, **columns)
        data[f.name] = col
    return Points(data, n)


def feasible_at(pm: PredictiveModel, settings: pd.DataFrame | Points) -> np.ndarray:
    return settings.feasible(pm.study) if isinstance(settings, Points) else pm.study.feasible(settings)
