"""Who is editing, saving every change at once, and the honest saved state of the open study (sidebar, panels)."""

from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from doe.errors import DoeError
from doe.identity import Access, access, sign_in_required
from doe.store import User
from doe.study import Study
from pages._app.db import read, store
from pages._app.state import DECISION_NOTE, USER_NAME_INPUT, state


def secret(key: str) -> Any:
    """The app secret ``key`` (.streamlit/secrets.toml), or None when it is not configured."""
    try:
        return st.secrets.get(key)
    except (FileNotFoundError, StreamlitSecretNotFoundError):  # no secrets.toml: nothing configured
        return None


def current_access() -> Access:
    """Who is using the app and whether they may save changes (doe.identity.access: with sign-in, the
    role lists are matched only against an e-mail address the identity provider verified)."""
    auth = bool(secret("auth"))
    claims = st.user.to_dict() if auth and st.user.get("is_logged_in") else None
    return access(roles=secret("roles"), auth_configured=auth, claims=claims,
                  entered_name=state.user_name,
                  require_sign_in=sign_in_required(secret("require_sign_in")))


def _remember_name() -> None:
    """Keep the typed name for this session; with no study open, open the study this person last changed."""
    name = state.user_name_input.strip()
    state.user_name = name
    if name and state.study is None:
        from pages._app.first_visit import open_last_study

        open_last_study(name)


def identity_sidebar() -> None:
    """Sign in/out (OIDC) or the name typed once per session, and the saved state of the open study."""
    auth = bool(secret("auth"))
    with st.sidebar:
        if auth:
            if st.user.get("is_logged_in"):
                st.button("Sign out", key="logout", on_click=st.logout)
            else:
                st.button("Sign in", key="login", type="primary", on_click=st.login)
        elif not sign_in_required(secret("require_sign_in")):  # else nobody may edit: no name to ask for
            st.text_input("Your name (recorded with every change)", value=state.user_name or "",
                          key=USER_NAME_INPUT, on_change=_remember_name,
                          help="Without sign-in the name is recorded as unauthenticated in the audit trail.")
        acc = current_access()
        (st.caption if acc.user else st.warning)(acc.why)
        if acc.warning:
            st.warning(acc.warning)
        saved_state_panel(acc)


def editor() -> User | None:
    """The user who may save now, or None after showing why not (nothing is saved then)."""
    acc = current_access()
    if acc.can_edit:
        return acc.user
    st.error(f"Not saved. {acc.why}")
    return None


# -- the open study in the store -------------------------------------------------------------
def stored_version(study: Study | None) -> int | None:
    """The store's version of ``study`` when its latest saved text is exactly this study, else None."""
    if study is None:
        return None
    try:
        versions = read("study_versions", study.name)
    except DoeError:
        return None
    last = versions.iloc[-1]
    return int(last["version"]) if last["content_hash"] == study.digest else None


def save_study(study: Study, user: User) -> int | None:
    """Save ``study`` if this session changed it, on the version it was made from (unchanged: nothing
    written); a stale copy is refused with who changed what and an offer to reload (pages/_app/study_sync.py)."""
    from pages._app.study_sync import save_on_base

    return save_on_base(study, user)


def save_sheet(study: Study, sheet: str, table: Any, what: str, reason: str | None = None) -> str | None:
    """Save ``table`` as the study's ``sheet`` ("passages" or "lots": Store.save_passages / save_lots), the
    study first if this session changed it; the message to show, or None after showing why nothing was saved."""
    user = editor()
    if user is None:
        return None
    noun = {"passages": "passage", "lots": "lot"}[sheet]
    try:
        if save_study(study, user) is None:
            return None
        before = len(read(f"{noun}_versions", study.name))
        version = getattr(store(), f"save_{sheet}")(study.name, table, user, reason or None)
    except DoeError as exc:
        st.error(f"Not saved: {exc}")
        return None
    return (f"{what}: saved as {noun} data version {version}." if version > before
            else f"{what}: nothing new - every {noun} is already saved.")


def stored_runs(study: Study):
    """The study's runs in the store (with run_id and row_version), or None when none are stored."""
    if stored_version(study) is None and not _known(study.name):
        return None
    try:
        runs = read("runs", study.name)
    except DoeError:
        return None
    return runs if len(runs) else None


def stored_data_version(study: Study) -> int:
    """The newest data version of the study in the store (0 when none)."""
    row = latest("data_versions", study.name)
    return 0 if row is None else int(row["version"])


def data_version_label(study: Study, runs) -> str:
    """How figures name the data they show: 'N (first 12 of its SHA-256)' for the newest stored data version,
    as the Versions page and the report list it; the runs' own short content hash while they are not saved."""
    from doe.analysis import data_version

    row = latest("data_versions", study.name)
    return data_version(runs) if row is None else f"{int(row['version'])} ({str(row['content_hash'])[:12]})"


def _known(name: str) -> bool:
    return name in set(read("list_studies")["name"])


def latest(frame_name: str, study_name: str):
    """The last row of a store listing (``analyses``, ``decisions``, ``data_versions``) or None."""
    try:
        if frame_name == "analyses":  # summaries are large: read only the newest
            return read("latest_analysis", study_name)
        frame = read(frame_name, study_name)
    except DoeError:
        return None
    return frame.iloc[-1] if len(frame) else None


def saved_state_panel(acc: Access) -> None:
    """Sidebar lines saying exactly what of the open study is in the database."""
    study = state.study
    if study is None:
        return
    from pages._app.study_sync import track

    track(study)  # the version a later save is made on
    version = stored_version(study)
    if version is None:
        known = _known(study.name)
        st.markdown(f":orange[**{study.name}: not saved**] - "
                    + ("the open study differs from its latest saved version." if known
                       else "not in the database yet."))
        if acc.can_edit and st.button("Save study now", key="save_study_sidebar"):
            if save_study(study, acc.user) is not None:
                st.rerun()
        return
    dv = latest("data_versions", study.name)
    an = latest("analyses", study.name)
    lines = [f":green[**{study.name}: saved**] as study version {version}"]
    lines.append(f"data version {int(dv['version'])}, {int(dv['n_runs'])} runs" if dv is not None
                 else "no runs stored yet")
    if an is not None:
        choices = state.model_choices
        changed = choices and any(choices.get(k) != v for k, v in (an["choices"] or {}).items())
        lines.append(f"analysis version {int(an['version'])} (data version {int(an['data_version'])})"
                     + (" - model choices changed since, not saved" if changed else ""))
    st.markdown("  \n".join(lines))


def _choices_changed(saved: dict | None, session: dict) -> bool:
    return saved is None or any((saved or {}).get(k) != v for k, v in session.items())


def analysis_panel(study: Study) -> None:
    """Whether the model choices are saved as an analysis version, and a button that saves them."""
    from doe.versions import rerun_analysis

    analysis = latest("analyses", study.name)
    session = state.model_choices or {}
    c1, c2 = st.columns([3, 1])
    if analysis is None or _choices_changed(analysis["choices"], session):
        c1.markdown(":orange[**These model choices are not saved as an analysis version yet.**] Saving refits "
                    "every CQA on the newest stored data and keeps the result (coefficients, fit statistics, "
                    "design space) as a version you can compare with later ones.")
    else:
        c1.caption(f":green[Saved as analysis version {int(analysis['version'])}] "
                   f"(data version {int(analysis['data_version'])}, {analysis['created_by']}, "
                   f"{analysis['created_at'][:16].replace('T', ' ')} UTC).")
    if c2.button("Save analysis version", key="save_analysis", width="stretch"):
        user = editor()
        if user is None or save_study(study, user) is None:
            return
        try:
            with st.spinner("Refitting every CQA and mapping the design space..."):
                out = rerun_analysis(store(), study.name, user, choices=session)
        except DoeError as exc:
            st.error(f"Not saved: {exc}")
            return
        state.model_choices = dict(latest("analyses", study.name)["choices"])
        st.toast(f"Saved as analysis version {out['analysis_version']}.")
        st.rerun()


def decision_panel(study: Study, threshold: float, set_point: dict, par: Any, nor: dict, probability: float,
                   setpoint_sd: dict | None = None, assurance: dict | None = None,
                   random_effects: str | None = None) -> None:
    """Save the design-space decision shown (threshold, set point, set-point variation, PAR and NOR, the
    assurance when one is used, and whether the probability is for a new or the average donor/lot) with a note."""
    from doe.jsonable import json_ready

    last = latest("decisions", study.name)
    with st.expander("Save this design-space decision" + (f" (last saved: decision {int(last['id'])})"
                                                           if last is not None else " (none saved yet)")):
        if state.decision_saved is not None:
            st.success(f"Saved as decision {state.take('decision_saved')}. Re-running the analysis "
                       "later evaluates this set point.")
        if last is not None:
            st.caption(f"Decision {int(last['id'])}: threshold {last['threshold']:.2f}, set point "
                       + ", ".join(f"{k} = {v}" for k, v in last["set_point"].items())
                       + f"; by {last['created_by']} at {last['created_at'][:16].replace('T', ' ')} UTC.")
        note = st.text_input("Note (why this set point and these ranges)", key=DECISION_NOTE)
        if st.button("Save decision", key="save_decision", type="primary"):
            user = editor()
            if user is None or save_study(study, user) is None:
                return
            analysis = latest("analyses", study.name)
            ranges = json_ready({"par": dict(par.items()) if par else {}, "nor": nor or {},
                                 "probability_at_set_point": probability, "setpoint_sd": setpoint_sd or {},
                                 **({"assurance": assurance} if assurance else {}),
                                 **({"random_effects": random_effects} if random_effects else {})})
            try:
                did = store().save_decision(study.name, threshold, json_ready(set_point), ranges, user,
                                            analysis_version=None if analysis is None
                                            else int(analysis["version"]), note=note)
            except DoeError as exc:
                st.error(f"Not saved: {exc}")
                return
            state.decision_saved = did  # shown after the rerun, which updates the expander's label
            st.rerun()
