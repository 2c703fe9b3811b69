"""Which stored version of the open study this session's copy is based on, and saving it only on that base.

Every page run notes the version the open study matches (:func:`track`, from the sidebar). A save
then carries that version (:meth:`doe.store.Store.save_study` ``expected_version``): when someone
saved a newer version meanwhile, the save is refused with who changed what, and the page offers to
load the newest version. An unchanged study is never saved again: saving runs, analyses, decisions
or designs writes no study version unless this session changed the study.
"""

from __future__ import annotations

import streamlit as st

from doe.errors import DoeError
from doe.store import StudyConflictError, User
from doe.study import Study
from pages._app.db import read, store
from pages._app.state import state


def track(study: Study | None) -> int | None:
    """Note (and return) the newest stored version whose text is exactly ``study``; None when none is."""
    if study is None:
        return None
    try:
        versions = read("study_versions", study.name)
    except DoeError:  # not in the database
        return None
    same = versions[versions["content_hash"] == study.digest]
    if not len(same):
        return None
    version = int(same["version"].max())
    state.study_base = (study.name, version)
    return version


def base_version(study: Study) -> int | None:
    """The stored version this session's copy of ``study`` was made from (None: a study new to the database)."""
    kept = state.study_base
    if kept is not None and kept[0] == study.name:
        return int(kept[1])
    return track(study)


def save_on_base(study: Study, user: User) -> int | None:
    """Save ``study`` if this session changed it, on the version it was made from; show any refusal.

    Returns the stored version the study now is (nothing written when it is unchanged), or None
    after showing why it was not saved.
    """
    try:
        version = store().save_study(study, user, expected_version=base_version(study))
    except StudyConflictError as exc:
        show_conflict(study, exc)
        return None
    except DoeError as exc:
        st.error(f"Not saved: {exc}")
        return None
    state.study_base = (study.name, version)
    return version


def show_conflict(study: Study, exc: StudyConflictError) -> None:
    """The refusal, who changed what, and a button that loads the newest version."""
    st.error(f"**Not saved: the study was changed by someone else.** {exc}")
    if exc.latest_version is not None:
        st.button(f"Load the newest version (version {exc.latest_version}) - your unsaved study changes are "
                  "discarded", key="reload_study", on_click=_reload, args=(study.name,))


def _reload(name: str) -> None:
    from pages._app.common import open_stored

    open_stored(name)
    track(state.study)  # now made on the newest version
