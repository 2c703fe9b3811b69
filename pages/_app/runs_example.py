"""Runs page: load the example results, entered against the example's own design (doe.example)."""

from __future__ import annotations

import streamlit as st

from doe.errors import DoeError
from doe.example import load_example_results
from pages._app.db import store
from pages._app.persist import editor, save_study
from pages._app.state import state


def load_example(study) -> None:
    """Save the example design as a named design, enter the simulated results against it, open that design."""
    user = editor()
    if user is None or save_study(study, user) is None:
        return
    try:
        design_id, version = load_example_results(store(), study, user)
        design = store().load_design(design_id)
        name = store().design_record(design_id).name
    except DoeError as exc:
        st.error(f"Not saved: {exc}")
        return
    state.design, state.design_id = design, design_id
    state.runs_saved = (version, f"Example results: saved as data version {version}, run on "
                                                f"design {design_id} \"{name}\" (now the study's current design).")
    state.new_runs_editor()
    st.rerun()
