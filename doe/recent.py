"""A small memo of recent results, safe to share between the app's session threads."""

from __future__ import annotations

import threading
from typing import Any


class Recent:
    """The last ``size`` values by key; the oldest is dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        """The value kept for ``key``, or None."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: Any, value: Any) -> None:
        """Keep ``value`` for ``key``, dropping the oldest beyond ``size``."""
        with self._lock:
            self._put(key, value)

    def add(self, key: Any) -> bool:
        """Remember ``key``; True when it was not there yet (to do something once per key)."""
        with self._lock:
            if key in self._items:
                return False
            self._put(key, True)
            return True

    def _put(self, key: Any, value: Any) -> None:
        self._items[key] = value
        while len(self._items) > self._size:
            self._items.pop(next(iter(self._items)))

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._items.clear()
