"""Strict JSON values: numpy scalars and arrays to Python, NaN and infinity to None (:func:`json_ready`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_ready(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts.

    >>> json_ready({"a": np.float64("nan"), "b": np.arange(2), 3: (np.bool_(True),)})
    {'a': None, 'b': [0, 1], '3': [True]}
    """
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
