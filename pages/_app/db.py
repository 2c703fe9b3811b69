"""The database of this app: one open store per server, and reads kept while nothing new is saved."""

from __future__ import annotations

import copy
import time
from typing import Any

import pandas as pd
import streamlit as st

from doe.errors import DoeError
from doe.store import Store, default_url
from pages._app.services import open_store, read_at
from pages._app.state import state

__all__ = ["MARK_SECONDS", "default_url", "open_store", "read", "store"]


def _store() -> Store:
    try:
        return open_store(default_url())
    except DoeError as exc:
        st.error(f"**The database cannot be used.** {exc}")
        st.stop()


def store() -> Store:
    """The store of this app (DATABASE_URL or the local SQLite file); a clear stop if it cannot be used.

    Use :func:`read` for reads: a caller of ``store()`` may write, so the reads after it look at the
    database's change mark again.
    """
    del state.change_mark
    return _store()


def read(method: str, *args: Any) -> Any:
    """``store().<method>(*args)`` for a read, kept while nothing new is saved (see Store.change_mark).

    Streamlit reruns the page on every widget change; the saved state is read again only when
    someone (this session or another) saved something since. Each caller gets its own copy.
    """
    s = _store()
    out = read_at(s.url, _mark(s), method, tuple(args))
    return out.copy() if isinstance(out, (pd.DataFrame, pd.Series)) else copy.deepcopy(out)


#: Seconds a session keeps the change mark it read: about one script run, so a rerun queries it
#: once, not once per read; another user's save shows at the next rerun after that.
MARK_SECONDS = 0.5


def _mark(s: Store) -> int:
    """The store's change mark, read at most once per MARK_SECONDS per session (and after any store())."""
    now = time.monotonic()
    kept = state.change_mark
    if kept is not None and now - kept[1] < MARK_SECONDS:
        return kept[0]
    mark = s.change_mark()
    state.change_mark = (mark, now)
    return mark
