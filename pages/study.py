"""Study: edit factors, CQAs and constraints; save and load the study file."""

import streamlit as st

from doe.errors import DoeError
from doe.study import FACTOR_KINDS, GOALS, Study
from doe.tables import (
    CHANGES,
    FACTOR_NUMBERS,
    RESPONSE_NUMBERS,
    as_editor_text,
    constraints_table,
    factors_table,
    random_effects_text,
    responses_table,
    study_from_tables,
)
from pages._app.common import require_study, set_study
from pages._app.persist import current_access, save_study, stored_version
from pages._app.state import state


def _number(label: str, help: str = "") -> st.column_config.TextColumn:
    """A number cell kept exactly as typed (parsed on Apply; a decimal comma is refused with a message)."""
    return st.column_config.TextColumn(label, help=(help + " " if help else "")
                                       + "A number with a decimal point, e.g. 36.5; blank for none.")


study = require_study()
st.title("Study")
st.caption("Edit the tables, then press **Apply changes**: the study is saved to the database as a new "
           "version (earlier versions are kept; designs with results keep the version they were made "
           "for). Continuous factors are coded -1 (low) to +1 (high); levels are separated by ';'.")
last_saved = state.study_saved
if last_saved and last_saved[0] == (study.name, stored_version(study)):
    st.success(last_saved[1])  # shown while the open study is that saved version

with st.form("study_form"):
    c1, c2 = st.columns([2, 1])
    name = c1.text_input("Study name", study.name)
    blocks = c2.text_input("Block column (optional)", study.blocks or "",
                           help="Name of the column that holds the block of each run, e.g. Block.")
    random_effects = st.text_input(
        "Random effects (optional, ';'-separated)", random_effects_text(study),
        help="Run-sheet columns whose levels are random draws: donors, hPL or serum lots, incubators, e.g. "
             "'Donor; hPL lot'. Each is a random intercept in the analysis (REML), and its variance enters the "
             "design-space probability for a run with a new donor or lot.")
    description = st.text_area("Description", study.description, height=68)
    st.markdown("**Factors** (process parameters you vary)")
    factors = st.data_editor(
        as_editor_text(factors_table(study), FACTOR_NUMBERS), num_rows="dynamic", width="stretch", key="factors_editor",
        column_config={
            "name": st.column_config.TextColumn("Name", required=True),
            "kind": st.column_config.SelectboxColumn("Kind", options=FACTOR_KINDS, required=True),
            "low": _number("Low (continuous)"),
            "high": _number("High (continuous)"),
            "levels": st.column_config.TextColumn("Levels (categorical/discrete, ';'-separated)"),
            "units": st.column_config.TextColumn("Units"),
            "changes": st.column_config.SelectboxColumn(
                "Changes", options=list(CHANGES), required=True,
                help="How often the factor can be reset. 'between whole plots': hard to change (a vessel type, "
                     "surface or medium lot set once for several runs): designs group runs into whole plots "
                     "and the analysis tests it against the whole-plot error. 'very hard': split-split-plot."),
            "description": st.column_config.TextColumn("Description"),
        },
    )
    st.markdown("**Critical quality attributes** (responses) with spec limits")
    responses = st.data_editor(
        as_editor_text(responses_table(study), RESPONSE_NUMBERS), num_rows="dynamic", width="stretch", key="cqa_editor",
        column_config={
            "name": st.column_config.TextColumn("Name", required=True),
            "units": st.column_config.TextColumn("Units"),
            "goal": st.column_config.SelectboxColumn("Goal", options=GOALS, required=True),
            "lower": _number("Lower spec"),
            "upper": _number("Upper spec"),
            "target": _number("Target"),
            "weight": _number("Weight", "Desirability weight, 0.1 to 10 (1: linear)."),
            "importance": _number("Importance", "Relative importance of the CQA, 0.1 to 5."),
            "description": st.column_config.TextColumn("Rationale / source"),
        },
    )
    st.markdown("**Constraints** - *exclude*: combinations that cannot be run "
                "(e.g. `Surface == 'ULA' and Agitation > 75`); *require*: limits every run meets "
                "(e.g. `Agitation + 0.01 * Seeding density <= 120`)")
    constraints = st.data_editor(
        constraints_table(study), num_rows="dynamic", width="stretch", key="cons_editor",
        column_config={
            "kind": st.column_config.SelectboxColumn("Kind", options=["exclude", "require"]),
            "expression": st.column_config.TextColumn("Expression", width="large"),
            "reason": st.column_config.TextColumn("Reason"),
        },
    )
    applied = st.form_submit_button("Apply changes", type="primary", key="apply")

if applied:
    try:
        new = study_from_tables(name, factors, responses, constraints, blocks, description, random_effects)
    except DoeError as exc:
        st.error(f"Not applied: {exc}")
    else:
        set_study(new)
        study = new
        acc = current_access()
        version = save_study(new, acc.user) if acc.can_edit else None
        if version is not None:
            state.study_saved = ((new.name, version), f"Saved as version {version} of '{new.name}'.")
            st.rerun()
        st.warning("Applied in this session only, **not saved** (the reason is above)." if acc.can_edit
                   else f"Applied in this session only, **not saved**. {acc.why}")

c1, c2, c3 = st.columns(3)
c1.download_button("Download study file (YAML)", study.to_yaml(), file_name="study.yaml",
                   mime="application/x-yaml", width="stretch")
if c2.button("Next: generate a design", width="stretch"):
    st.switch_page("pages/design.py")
upload = c3.file_uploader("Open a study file (YAML)", type=["yaml", "yml"], key="study_upload")
if upload is not None and state.study_upload_id != upload.file_id:
    state.study_upload_id = upload.file_id
    try:
        set_study(Study.from_yaml(upload.getvalue().decode("utf-8-sig")))
        st.rerun()
    except UnicodeDecodeError:
        st.error("The file is not UTF-8 text: save the study as UTF-8 YAML.")
    except DoeError as exc:
        st.error(f"Could not open the study: {exc}")
