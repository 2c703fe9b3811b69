"""Who is using the workbench and what they may do: editors change data, viewers only read.

Identity comes from a sign-in (OpenID Connect through ``st.login``) when it is
configured, else from a name the user types once per session; such a name is
recorded in the audit trail as *unauthenticated*. Roles come from a simple
list in the configuration (``[roles]`` in ``.streamlit/secrets.toml``, or the
``DOE_EDITORS`` / ``DOE_VIEWERS`` environment variables, comma-separated).

With sign-in, the role lists are matched only against an e-mail address the
identity provider says it verified (the OIDC claim ``email_verified``):

>>> access(roles={"viewers": ["qa@site.org"]}, auth_configured=True,
...        claims={"email": "qa@site.org", "email_verified": True}).role
'viewer'
>>> access(roles={"editors": ["ana@site.org"]}, auth_configured=True,
...        claims={"email": "ana@site.org", "email_verified": False}).can_edit
False
>>> access(roles={"editors": ["ana@site.org"]}, auth_configured=True,
...        claims={"email": "bob@site.org", "email_verified": True}).can_edit
False

Without sign-in anyone can type any name, so the role lists only guard against
mistakes; the sidebar says so, and ``require_sign_in`` switches editing off:

>>> access(roles={}, entered_name="Ana").user
User(name='Ana', authenticated=False)
>>> access(roles={"editors": ["ana"]}, entered_name="ana").warning.startswith("Names are typed in")
True
>>> access(roles={"editors": ["ana"]}, entered_name="ana", require_sign_in=True).can_edit
False
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doe.errors import DoeError

if TYPE_CHECKING:  # the store (SQLAlchemy, pandas) is imported only when a user is made: the start-up
    from doe.store import User  # check (deployment_problem) runs before the server answers

EDITOR, VIEWER = "editor", "viewer"

#: Where ``streamlit run`` looks for secrets by default (its option ``secrets.files``); the
#: command line reads the same files to know whether sign-in is configured.
SECRETS_FILES = (Path.home() / ".streamlit" / "secrets.toml", Path(".streamlit") / "secrets.toml")

HOW_TO_SIGN_IN = ("configure OpenID Connect sign-in as an [auth] section in .streamlit/secrets.toml "
                  "(deploy/secrets.toml in the compose deployment; see docs/DEPLOY.md)")


@dataclass(frozen=True)
class Access:
    """The current user (None until known), their role, a sentence explaining both, and a warning
    about the configuration that every user should see (empty when there is none)."""

    user: User | None
    role: str
    why: str
    warning: str = ""

    @property
    def can_edit(self) -> bool:
        """True when this person may save changes now (an editor whose name is known)."""
        return self.role == EDITOR and self.user is not None


def _user(name: str, authenticated: bool) -> User:
    from doe.store import User

    return User(name, authenticated=authenticated)


def flag(value: Any) -> bool:
    """A yes/no setting from the environment or secrets.toml.

    >>> [flag(v) for v in (True, "1", "true", " Yes ", "on")]
    [True, True, True, True, True]
    >>> [flag(v) for v in (None, False, "", "0", "false", "no")]
    [False, False, False, False, False, False]
    """
    if isinstance(value, bool):
        return value
    return str(value or "").strip().casefold() in ("1", "true", "yes", "on")


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


def has_roles(roles: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True when an editors or a viewers list is configured (secrets or environment).

    >>> has_roles({}, env={}), has_roles({"viewers": ["qa"]}, env={}), has_roles(None, env={"DOE_EDITORS": "a,b"})
    (False, True, True)
    """
    return any(role_lists(roles, env).values())


def role_of(name: str, roles: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> str:
    """``viewer`` if listed as a viewer, or if an editor list exists without this name; else ``editor``."""
    lists = role_lists(roles, env)
    who = name.strip().casefold()
    if who in lists["viewers"]:
        return VIEWER
    if lists["editors"] and who not in lists["editors"]:
        return VIEWER
    return EDITOR


def sign_in_required(setting: Any = None, env: Mapping[str, str] | None = None) -> bool:
    """Whether editing needs sign-in: ``require_sign_in = true`` in secrets.toml or DOE_REQUIRE_SIGN_IN=1.

    >>> sign_in_required(None, env={}), sign_in_required(True, env={}), sign_in_required(None, env={"DOE_REQUIRE_SIGN_IN": "1"})
    (False, True, True)
    """
    env = os.environ if env is None else env
    return flag(setting) or flag(env.get("DOE_REQUIRE_SIGN_IN"))


def verified_email(claims: Mapping[str, Any] | None) -> str | None:
    """The signed-in e-mail address when the identity provider verified it (``email_verified``), else None.

    Some providers send the claim as the text ``"true"``; anything else (missing, false) is unverified.

    >>> verified_email({"email": "ana@site.org", "email_verified": True})
    'ana@site.org'
    >>> verified_email({"email": "ana@site.org", "email_verified": "true"})
    'ana@site.org'
    >>> verified_email({"email": "ana@site.org"}) is None, verified_email({"name": "Ana"}) is None
    (True, True)
    """
    email = str((claims or {}).get("email") or "").strip()
    verified = (claims or {}).get("email_verified")
    return email if email and (verified is True or str(verified).strip().casefold() == "true") else None


def _signed_in(claims: Mapping[str, Any] | None, roles: Mapping[str, Any] | None, env: Mapping[str, str]) -> Access:
    """Access of a user signed in through OpenID Connect (``claims``: the ID token's claims, as st.user)."""
    claims = claims or {}
    if not claims or claims.get("is_logged_in") is False:
        return Access(None, VIEWER, "Not signed in: you can look at everything; sign in to make changes.")
    email = verified_email(claims)
    if email:
        role = role_of(email, roles, env)
        return Access(_user(email, authenticated=True), role,
                      f"Signed in as {email} ({role})."
                      + (" Your address is not on the editors list: ask an administrator." if role == VIEWER else ""))
    unverified = str(claims.get("email") or "").strip()  # recorded as such: the audit trail must not vouch for it
    shown = f"{unverified} (e-mail not verified)" if unverified else str(claims.get("name") or claims.get("sub") or "").strip()
    if not shown:
        return Access(None, VIEWER, "Your sign-in gave neither an e-mail address nor a name, so changes could not "
                                    "say who made them: you can look but not change. Ask an administrator to "
                                    "have the identity provider send the e-mail address.")
    if has_roles(roles, env):
        return Access(_user(shown, authenticated=True), VIEWER,
                      f"Signed in as {shown} (viewer): the sign-in provider did not confirm an e-mail address "
                      "(email_verified), so you are not matched against the editors list and cannot make "
                      "changes. Ask an administrator to have the identity provider send verified addresses.")
    return Access(_user(shown, authenticated=True), EDITOR, f"Signed in as {shown} ({EDITOR}).")


def access(*, roles: Mapping[str, Any] | None = None, auth_configured: bool = False,
           claims: Mapping[str, Any] | None = None, entered_name: str | None = None,
           require_sign_in: bool = False, env: Mapping[str, str] | None = None) -> Access:
    """Who the user is and what they may do.

    With sign-in configured only a signed-in user can edit (an entered name is
    ignored: anyone could type someone else's name), and role lists are matched
    against a verified e-mail address only. Without sign-in the entered name is
    used and labelled unauthenticated; with role lists the access carries a
    warning that the names are not verified, and with ``require_sign_in``
    nobody may edit until sign-in is configured.
    """
    env = os.environ if env is None else env
    if auth_configured:
        return _signed_in(claims, roles, env)
    if require_sign_in:
        return Access(None, VIEWER, "Changes are switched off: this workbench requires sign-in "
                                    "(require_sign_in / DOE_REQUIRE_SIGN_IN) but sign-in is not configured. "
                                    f"An administrator must {HOW_TO_SIGN_IN}.")
    warning = ("Names are typed in, not verified: anyone can type an editor's name, so the editors and viewers "
               "lists prevent mistakes, not misuse. Sign-in ([auth] in secrets.toml, docs/DEPLOY.md) verifies "
               "who is who.") if has_roles(roles, env) else ""
    name = (entered_name or "").strip()
    if not name:
        return Access(None, EDITOR, "Enter your name to save changes: every saved change records who made it.",
                      warning)
    role = role_of(name, roles, env)
    return Access(_user(name, authenticated=False), role, f"{name} ({role}, not signed in: recorded as unauthenticated).",
                  warning)


# -- the deployment --------------------------------------------------------------------------
def read_secrets(paths: Iterable[Path] = SECRETS_FILES) -> dict[str, Any]:
    """The secrets of the files that exist, later files overriding earlier ones (as Streamlit merges them).

    A file that is not valid TOML is refused with its name, since the app would not start with it either.
    """
    out: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        try:
            out.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DoeError(f"Could not read the secrets file {path} ({exc}): fix its TOML syntax.") from None
    return out


def deployment_problem(*, auth_configured: bool, env: Mapping[str, str] | None = None) -> str | None:
    """Why this deployment must not start, or None.

    A site deployment (DOE_DEPLOYMENT=site, set by deploy/docker-compose.yml) serves many people,
    so it refuses to start without sign-in unless DOE_ALLOW_NO_SIGN_IN=1 accepts unverified names.

    >>> deployment_problem(auth_configured=False, env={}) is None
    True
    >>> deployment_problem(auth_configured=True, env={"DOE_DEPLOYMENT": "site"}) is None
    True
    >>> deployment_problem(auth_configured=False, env={"DOE_DEPLOYMENT": "site", "DOE_ALLOW_NO_SIGN_IN": "1"}) is None
    True
    >>> print(deployment_problem(auth_configured=False, env={"DOE_DEPLOYMENT": "site"}))  # doctest: +ELLIPSIS
    Refusing to start: this is a site deployment (DOE_DEPLOYMENT=site) but sign-in is not configured...
    """
    env = os.environ if env is None else env
    kind = str(env.get("DOE_DEPLOYMENT") or "").strip().casefold()
    if kind not in ("", "site"):
        return (f"Refusing to start: DOE_DEPLOYMENT is '{env.get('DOE_DEPLOYMENT')}'; set it to 'site' for a "
                "shared server, or leave it unset for one user.")
    if kind == "site" and not auth_configured and not flag(env.get("DOE_ALLOW_NO_SIGN_IN")):
        return ("Refusing to start: this is a site deployment (DOE_DEPLOYMENT=site) but sign-in is not "
                "configured, so anyone could type anyone's name and the audit trail could not say who changed "
                f"what. To fix it, {HOW_TO_SIGN_IN}; or, to accept names that nobody verifies, set "
                "DOE_ALLOW_NO_SIGN_IN=1 (deploy/.env).")
    return None


def startup_problem(paths: Iterable[Path] = SECRETS_FILES, env: Mapping[str, str] | None = None) -> str | None:
    """:func:`deployment_problem` with ``[auth]`` looked up in the secrets files, for a process that starts
    (the server, ``python -m doe health``); the files are read only when DOE_DEPLOYMENT is set."""
    env = os.environ if env is None else env
    if not str(env.get("DOE_DEPLOYMENT") or "").strip():
        return None
    try:
        auth = bool(read_secrets(paths).get("auth"))
    except DoeError as exc:
        return f"Refusing to start: {exc}"
    return deployment_problem(auth_configured=auth, env=env)
