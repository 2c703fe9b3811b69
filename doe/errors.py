"""Errors the user can act on.

Every problem with a user's study, design file or command is raised as a
:class:`DoeError` whose message says what is wrong and how to fix it. The CLI
prints the message on one line and exits non-zero; pages show it with
``st.error``. Anything else is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DoeError(ValueError):
    """A problem in the user's input, with a message meant for the user."""


class StudyError(DoeError):
    """The study definition is invalid."""


class DesignError(DoeError):
    """A design cannot be generated, read or evaluated as asked."""


class ModelError(DoeError):
    """A model specification is invalid for the study or the design."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or ''."""
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f" Did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f" Did you mean '{close[0]}'?" if close else ""


def quoted_list(items: Iterable[object]) -> str:
    """'a', 'b', 'c' for messages."""
    return ", ".join(f"'{i}'" for i in items)
