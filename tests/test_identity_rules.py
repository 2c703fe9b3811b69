"""Identity and deployment defaults (issue 15): localhost by default, unverified names said so, sign-in
required on request, a site deployment that refuses to start without sign-in, roles from verified
e-mail addresses only, and pinned dependencies for the image."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from streamlit.testing.v1 import AppTest

from doe.identity import EDITOR, VIEWER, access, deployment_problem, sign_in_required, startup_problem
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
ROLES = {"editors": ["ana@site.org"], "viewers": ["qa@site.org"]}


# -- roles from sign-in: verified e-mail addresses only ------------------------------------------
def signed(claims: dict, roles: dict | None = ROLES):
    return access(roles=roles, auth_configured=True, claims={"is_logged_in": True, **claims}, env={})


def test_a_verified_email_gets_its_role():
    acc = signed({"email": "Ana@Site.org", "email_verified": True})
    assert acc.can_edit and acc.user.name == "Ana@Site.org" and acc.user.authenticated
    assert signed({"email": "qa@site.org", "email_verified": "true"}).role == VIEWER


@pytest.mark.parametrize("claims", [{"email": "ana@site.org", "email_verified": False},
                                    {"email": "ana@site.org"},  # the provider does not say
                                    {"email": "ana@site.org", "email_verified": "false"},
                                    {"name": "ana@site.org"},   # a display name is no address
                                    {"name": "Ana Lopez", "sub": "123"}])
def test_an_unverified_email_or_a_name_is_not_matched_against_the_role_lists(claims):
    acc = signed(claims)
    assert acc.role == VIEWER and not acc.can_edit
    assert "did not confirm an e-mail address" in acc.why and "cannot make changes" in acc.why


def test_without_role_lists_everyone_signed_in_edits_under_the_name_the_provider_gives():
    acc = signed({"name": "Ana Lopez"}, roles={})
    assert acc.role == EDITOR and acc.user.name == "Ana Lopez" and acc.user.authenticated
    acc = signed({"email": "ana@site.org", "name": "Ana"}, roles={})  # the audit trail does not vouch for it
    assert acc.can_edit and acc.user.name == "ana@site.org (e-mail not verified)"


def test_signed_in_without_any_name_cannot_edit():
    acc = signed({"sub": ""})
    assert acc.user is None and not acc.can_edit and "neither an e-mail address nor a name" in acc.why


def _signed_in_session(claims: dict) -> AppTest:
    """The app with sign-in and role lists in secrets.toml, for a user whose ID token has ``claims``."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["auth"] = {"redirect_uri": "https://doe.site.org/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "doe", "client_secret": "s",
                          "server_metadata_url": "https://login.site.org/.well-known/openid-configuration"}
    at.secrets["roles"] = ROLES
    at.user = {"is_logged_in": True, **claims}
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_app_matches_roles_against_the_verified_email_only():
    at = _signed_in_session({"email": "ana@site.org", "email_verified": False, "name": "Ana"})
    assert any("did not confirm an e-mail address" in c.value for c in at.caption)  # the sidebar says why
    at.switch_page("pages/study.py").run()
    at.button(key="apply").click().run()
    from doe.store import Store, default_url

    assert Store.open(default_url()).list_studies().empty  # nothing saved
    at = _signed_in_session({"email": "ana@site.org", "email_verified": True})
    assert any("Signed in as ana@site.org (editor)" in c.value for c in at.caption)
    at.switch_page("pages/study.py").run()
    at.button(key="apply").click().run()
    trail = Store.open(default_url()).audit_trail()
    assert set(trail["user_name"]) == {"ana@site.org"} and trail["authenticated"].all()
    assert _signed_in_session({"email": "ana@site.org", "email_verified": True}).session_state[
        "study"].name == "MSC expansion"  # a signed-in user's own last study opens


def test_not_signed_in_is_a_viewer_whatever_name_was_typed():
    acc = access(roles=ROLES, auth_configured=True, claims=None, entered_name="ana@site.org", env={})
    assert acc.user is None and not acc.can_edit


# -- without sign-in: typed names are unverified ---------------------------------------------------
def test_role_lists_without_sign_in_carry_a_warning():
    acc = access(roles={"editors": ["ana"]}, entered_name="ana", env={})
    assert acc.can_edit and "anyone can type an editor's name" in acc.warning and "[auth]" in acc.warning
    acc = access(roles=None, entered_name="ana", env={"DOE_VIEWERS": "qa"})  # lists from the environment
    assert acc.warning
    assert access(roles={}, entered_name="ana", env={}).warning == ""  # no lists: nothing to warn about


def test_require_sign_in_switches_editing_off_until_sign_in_is_configured():
    assert sign_in_required(True, env={}) and sign_in_required(None, env={"DOE_REQUIRE_SIGN_IN": "1"})
    assert not sign_in_required("false", env={"DOE_REQUIRE_SIGN_IN": "0"})
    acc = access(roles={"editors": ["ana"]}, entered_name="ana", require_sign_in=True, env={})
    assert not acc.can_edit and "requires sign-in" in acc.why and "[auth]" in acc.why
    signed_in = access(roles={"editors": ["ana@site.org"]}, auth_configured=True, require_sign_in=True, env={},
                       claims={"is_logged_in": True, "email": "ana@site.org", "email_verified": True})
    assert signed_in.can_edit  # with sign-in configured, the setting changes nothing


def _session(monkeypatch, **env) -> AppTest:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["_user_name"] = "ana"
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_sidebar_warns_that_typed_names_are_unverified(monkeypatch):
    at = _session(monkeypatch, DOE_EDITORS="ana")
    assert any("Names are typed in, not verified" in w.value for w in at.warning)
    monkeypatch.delenv("DOE_EDITORS")
    assert not any("not verified" in w.value for w in _session(monkeypatch).warning)


def test_required_sign_in_refuses_every_change_with_a_clear_message(monkeypatch):
    at = _session(monkeypatch, DOE_EDITORS="ana", DOE_REQUIRE_SIGN_IN="1")
    assert not [t for t in at.text_input if t.key == "user_name_input"]  # no name to type
    assert any("Changes are switched off" in w.value for w in at.warning)
    at.switch_page("pages/study.py").run()
    at.button(key="apply").click().run()
    assert not at.exception, at.exception
    assert not any("Saved as version" in s.value for s in at.success)
    from doe.store import Store, default_url

    assert Store.open(default_url()).list_studies().empty


# -- the site deployment refuses to start without sign-in ------------------------------------------
SITE = {"DOE_DEPLOYMENT": "site"}


def test_deployment_rules():
    assert deployment_problem(auth_configured=False, env={}) is None  # one user on a laptop
    assert deployment_problem(auth_configured=True, env=SITE) is None
    assert deployment_problem(auth_configured=False, env={**SITE, "DOE_ALLOW_NO_SIGN_IN": "1"}) is None
    problem = deployment_problem(auth_configured=False, env=SITE)
    assert "sign-in is not configured" in problem and "[auth]" in problem and "DOE_ALLOW_NO_SIGN_IN=1" in problem
    assert "'sit'" in deployment_problem(auth_configured=True, env={"DOE_DEPLOYMENT": "sit"})  # a typo


def test_startup_reads_auth_from_the_secrets_files(tmp_path):
    secrets = tmp_path / "secrets.toml"
    assert startup_problem([secrets], env=SITE)  # no file
    secrets.write_text('[roles]\neditors = ["ana@site.org"]\n')
    assert startup_problem([secrets], env=SITE)  # roles but no [auth]
    secrets.write_text('[auth]\nclient_id = "x"\n')
    assert startup_problem([secrets], env=SITE) is None
    secrets.write_text("[auth\n")
    assert "fix its TOML syntax" in startup_problem([secrets], env=SITE)
    assert startup_problem([secrets], env={}) is None  # not a site: the secrets are not even read


def test_the_app_serves_nothing_in_a_site_deployment_without_sign_in(monkeypatch):
    at = _session(monkeypatch, DOE_DEPLOYMENT="site")
    assert any("Refusing to start" in e.value and "DOE_ALLOW_NO_SIGN_IN=1" in e.value for e in at.error)
    assert not at.title and "study" not in at.session_state
    at = _session(monkeypatch, DOE_ALLOW_NO_SIGN_IN="1")
    assert not at.error and at.title


def _env(tmp_path, **extra) -> dict:
    """The environment of a child process: an empty home (no personal secrets.toml) and data folder."""
    env = {**os.environ, "HOME": str(tmp_path), "DOE_DATA_DIR": str(tmp_path / "data"), **extra}
    for key in ("DATABASE_URL", "DOE_DEPLOYMENT", "DOE_ALLOW_NO_SIGN_IN"):
        if key not in extra:
            env.pop(key, None)
    return env


def test_health_refuses_a_site_deployment_without_sign_in(tmp_path):
    """The compose migrate step runs `python -m doe health`: without [auth] the replicas never start."""
    run = [sys.executable, "-m", "doe", "health"]
    env = _env(tmp_path, DOE_DEPLOYMENT="site", PYTHONPATH=str(ROOT))
    site = tmp_path / "site"
    (site / ".streamlit").mkdir(parents=True)
    proc = subprocess.run(run, cwd=site, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "sign-in is not configured" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()  # refused before the database is touched
    (site / ".streamlit" / "secrets.toml").write_text('[auth]\nclient_id = "x"\n')
    proc = subprocess.run(run, cwd=site, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: "), proc.stderr
    proc = subprocess.run(run, cwd=site, env={**env, "DOE_ALLOW_NO_SIGN_IN": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_server_refuses_to_start_in_a_site_deployment_without_sign_in(tmp_path):
    local = ROOT / ".streamlit" / "secrets.toml"
    if local.is_file() and "auth" in tomllib.loads(local.read_text(encoding="utf-8")):
        pytest.skip(f"{local} configures sign-in: the server would start")
    port = _free_port()
    proc = subprocess.run([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                           "--server.headless", "true"], cwd=ROOT, env=_env(tmp_path, DOE_DEPLOYMENT="site"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Refusing to start" in proc.stderr and "Traceback" not in proc.stderr


# -- streamlit run listens on this machine only ------------------------------------------------------
def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} list them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.append(local.rsplit(":", 1)[0])
    return found


def test_streamlit_run_listens_on_localhost_by_default(tmp_path):
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "localhost"
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("no /proc/net/tcp to read the listening address from (not Linux)")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not _listening(port) and time.time() < deadline:
            time.sleep(0.1)
        assert _listening(port) == ["0100007F"]  # 127.0.0.1 only: not 0.0.0.0, not ::
    finally:
        proc.kill()
        proc.wait(timeout=30)


# -- pinned dependencies ------------------------------------------------------------------------------
def _requirements(name: str) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / name).read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line), f"not an exact pin: {line}"
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_requirement_is_pinned_to_a_version_it_allows():
    pins = _pins()
    for req in _requirements("requirements.txt"):
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} is not pinned in requirements.lock (python deploy/lock.py)"
        assert req.specifier.contains(pins[key], prereleases=True), f"{req.name}=={pins[key]} breaks '{req}'"
    assert "authlib" in pins  # streamlit[auth]: st.login needs it


def test_the_lock_holds_the_whole_closure_of_what_is_installed_here():
    """Every dependency of a pinned package is pinned too (checked where the pinned version is installed)."""
    pins = _pins()
    for key, version in pins.items():
        try:
            dist = distribution(key)
        except PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        for dep in map(Requirement, dist.requires or []):
            if dep.marker is None or dep.marker.evaluate({"extra": ""}):
                assert canonicalize_name(dep.name) in pins, f"{dep.name} (needed by {key}) is not pinned"


def test_the_image_installs_the_pinned_versions():
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY requirements.txt requirements.lock ./" in docker
    assert "pip install -r requirements.txt -c requirements.lock" in docker
