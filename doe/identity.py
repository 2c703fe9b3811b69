"""Who is using the workbench and what they may do: editors change data, viewers only read.

Identity comes from a sign-in (OpenID Connect through ``st.login``) when it is
configured, else from a name the user types once per session; such a name is
recorded in the audit trail as *unauthenticated*. Roles come from a simple
list in the configuration (``[roles]`` in ``.streamlit/secrets.toml``, or the
``DOE_EDITORS`` / ``DOE_VIEWERS`` environment variables, comma-separated):

>>> access(roles={"viewers": ["qa@site.org"]}, signed_in="qa@site.org", auth_configured=True).role
'viewer'
>>> access(roles={}, entered_name="Ana").user
User(name='Ana', authenticated=False)
>>> access(roles={"editors": ["ana@site.org"]}, signed_in="bob@site.org", auth_configured=True).can_edit
False
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from doe.store import User

EDITOR, VIEWER = "editor", "viewer"


@dataclass(frozen=True)
class Access:
    """The current user (None until known), their role, and a sentence explaining both."""

    user: User | None
    role: str
    why: str

    @property
    def can_edit(self) -> bool:
        """True when this person may save changes now (an editor whose name is known)."""
        return self.role == EDITOR and self.user is not None


def role_lists(roles: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """``editors`` and ``viewers`` lists from a config mapping, else from DOE_EDITORS / DOE_VIEWERS."""
    env = os.environ if env is None else env
    out: dict[str, list[str]] = {}
    for key in ("editors", "viewers"):
        value = (roles or {}).get(key)
        if value is None:
            value = [v for v in env.get(f"DOE_{key.upper()}", "").split(",")]
        if isinstance(value, str):
            value = value.split(",")
        out[key] = [str(v).strip().casefold() for v in value if str(v).strip()]
    return out


def role_of(name: str, roles: Mapping[str, Any] | None = None) -> str:
    """``viewer`` if listed as a viewer, or if an editor list exists without this name; else ``editor``."""
    lists = role_lists(roles)
    who = name.strip().casefold()
    if who in lists["viewers"]:
        return VIEWER
    if lists["editors"] and who not in lists["editors"]:
        return VIEWER
    return EDITOR


def access(*, roles: Mapping[str, Any] | None = None, auth_configured: bool = False,
           signed_in: str | None = None, entered_name: str | None = None) -> Access:
    """Who the user is and what they may do.

    With sign-in configured only a signed-in user can edit (an entered name is
    ignored: anyone could type someone else's name). Without sign-in the
    entered name is used and labelled unauthenticated.
    """
    if auth_configured:
        if not signed_in:
            return Access(None, VIEWER, "Not signed in: you can look at everything; sign in to make changes.")
        role = role_of(signed_in, roles)
        return Access(User(signed_in, authenticated=True), role,
                      f"Signed in as {signed_in} ({role})."
                      + (" Your name is not on the editors list: ask an administrator." if role == VIEWER else ""))
    name = (entered_name or "").strip()
    if not name:
        return Access(None, EDITOR, "Enter your name to save changes: every saved change records who made it.")
    role = role_of(name, roles)
    return Access(User(name, authenticated=False), role,
                  f"{name} ({role}, not signed in: recorded as unauthenticated).")
