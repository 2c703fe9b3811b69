"""The one timer of the benchmarks: the median wall-clock seconds of a call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeats: int = 7, *, warm_up: bool = True) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call unless ``warm_up`` is False."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
