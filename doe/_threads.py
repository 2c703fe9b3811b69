"""One BLAS thread around the library's small dense algebra (issue 21: no thread oversubscription).

NumPy and SciPy call OpenBLAS (or MKL), which by default starts one thread per core for every matrix
product and factorisation. For the small matrices of a fit (tens to a few hundred columns) the threads
cost more than they save, and when other processes already use the cores (the app's other sessions, a
test run, a design search) each call waits for its threads to be scheduled: a 12-factor quadratic fit
took 30 s instead of 0.6 s under load. :func:`one_blas_thread` (a decorator) and :func:`blas_threads`
(a context manager) pin BLAS to one thread while the library works and restore the caller's setting
afterwards; threadpoolctl (https://github.com/joblib/threadpoolctl) does the pinning, on every BLAS
library loaded in the process.

The BLAS thread count is a setting of the whole process, not of a Python thread: the limit is taken when
the first pinned call starts and given back when the last one ends (a counter under a lock), so nested
and concurrent pinned calls (Streamlit runs each session in a thread) never restore it early. Without
threadpoolctl installed, or with ``DOE_BLAS_THREADS=default`` in the environment, nothing is pinned.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

__all__ = ["blas_threads", "one_blas_thread"]

_F = TypeVar("_F", bound=Callable[..., Any])

_lock = threading.Lock()
_depth = 0
_restore: Any = None  # what threadpoolctl's limit returned: its restore_original_limits() ends the limit
_controller: Any = None


def _pinning_wanted() -> bool:
    return os.environ.get("DOE_BLAS_THREADS", "1").strip().lower() not in ("default", "0", "")


def _limit(threads: int) -> Any:
    """Limit every loaded BLAS to ``threads`` threads; the object whose ``restore_original_limits`` undoes it
    (None when threadpoolctl is missing)."""
    global _controller
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - threadpoolctl is a requirement; without it nothing is pinned
        return None
    if _controller is None:
        _controller = ThreadpoolController()  # inspects the loaded libraries once (a few ms)
    return _controller.limit(limits=threads, user_api="blas")


@contextmanager
def blas_threads(threads: int = 1) -> Iterator[None]:
    """Run the ``with`` block with BLAS limited to ``threads`` threads (one by default), then restore.

    Nested and concurrent blocks share one limit: the outermost block to start sets it, the last to end
    restores the caller's setting.
    """
    global _depth, _restore
    if not _pinning_wanted():
        yield
        return
    with _lock:
        if _depth == 0:
            _restore = _limit(threads)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore is not None:
                _restore.restore_original_limits()
                _restore = None


def one_blas_thread(func: _F) -> _F:
    """Decorator: ``func`` runs with BLAS pinned to one thread (:func:`blas_threads`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with blas_threads(1):
            return func(*args, **kwargs)

    return cast(_F, wrapper)
