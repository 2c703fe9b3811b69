"""Which study a new session opens: the one in the link, or the user's own, never the latest of anyone.

A workbench shared by a lab holds everyone's studies; opening the newest one would put a colleague's
study in front of whoever opens the app next, where a save goes into the wrong study. So a new session
opens, in this order:

1. the study named in the link (``?study=NAME``);
2. when the user is known (signed in, or a name already given in this session), the study they last
   changed, from the audit trail (``Store.last_study_of``);
3. when the database holds no study at all, the bundled example: the first visit has something to explore;
4. else nothing: Home says so and lists the studies to open.

Typing a name in the sidebar later (pages/_app/persist._remember_name) opens that person's last study when
no study is open yet.
"""

from __future__ import annotations

import streamlit as st

from pages._app.state import state


def open_first_study() -> None:
    """Once per session: open the study the rules above choose (nothing when a study is open already)."""
    if state.started:
        return
    state.started = True
    if state.study is not None:
        return
    from pages._app.common import load_example, open_stored
    from pages._app.db import read
    from pages._app.persist import current_access

    names = set(read("list_studies")["name"])
    wanted = str(st.query_params.get("study") or "").strip()
    if wanted in names:
        open_stored(wanted)
        return
    if wanted:
        state.missing_link_study = wanted  # Home says so
    user = current_access().user
    if user is not None and open_last_study(user.name):
        return
    if not names:
        load_example()


def open_last_study(user_name: str) -> bool:
    """Open the study ``user_name`` last changed; False (nothing opened) when they changed none."""
    from pages._app.common import open_stored
    from pages._app.db import read

    name = read("last_study_of", user_name)
    if name is None:
        return False
    open_stored(name)
    return True
