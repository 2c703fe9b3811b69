"""Runs: the run sheet with results, entered by hand or uploaded, saved to the database at once."""

import streamlit as st

from doe.design import safe_csv
from doe.errors import DoeError
from doe.example import DESIGN_NAME as EXAMPLE_DESIGN
from doe.runs import (
    changed_runs,
    merge_results,
    read_results,
    run_sheet_addition,
    runs_not_in_design,
    validate_runs,
)
from doe.store import RUN_META, ConcurrentEditError, StudyConflictError
from pages._app.common import is_example, require_study
from pages._app.db import read, store
from pages._app.persist import current_access, editor, stored_data_version, stored_runs
from pages._app.runs_example import load_example
from pages._app.speed import prefetch_fits
from pages._app.state import DELETE_REASON, DELETE_RUN, EDIT_REASON, SHEET_REASON, UPLOAD_REASON, state
from pages._app.study_sync import base_version, show_conflict

study = require_study()
st.title("Runs and results")
st.caption("One row per run: factor settings and one column per CQA. Partial results are fine: "
           "leave a cell empty until the CQA is measured. Every save goes to the database at once as a "
           "new data version; changing a result that was already saved asks for a reason, kept in the "
           "audit trail. Nothing is dropped silently: a file with an error changes nothing.")


def save(batch, what: str, reason: str | None = None, design_id: int | None = None) -> None:
    """Write new/changed runs as one data version (recording the design they were made from), or show why not."""
    user = editor()
    if user is None or not len(batch):
        return
    try:  # the study (if this session changed it) and the runs in one transaction
        _, version = store().import_study(study, batch, user, reason=reason or None, design_id=design_id,
                                          expected_version=base_version(study))
    except StudyConflictError as exc:
        show_conflict(study, exc)
        return
    except ConcurrentEditError as exc:
        st.error(f"**Not saved: somebody else changed these runs.** {exc}")
        st.button("Reload the runs (your edits are discarded)", key="reload_runs", on_click=_fresh_editor)
        return
    except DoeError as exc:
        st.error(f"Not saved: {exc}")
        return
    state.runs_saved = (version, f"{what}: saved as data version {version}.")
    _fresh_editor()
    st.rerun()


def _fresh_editor() -> None:
    """Start a new editing session on the newest stored runs (edits in progress are discarded)."""
    state.new_runs_editor()


stored = stored_runs(study)
view = None if stored is None else stored.drop(columns=list(RUN_META))
acc = current_access()
last_saved = state.runs_saved
if last_saved and stored is not None and int(stored_data_version(study)) == last_saved[0]:
    st.success(last_saved[1])  # shown until the data moves on

design, design_id = state.design, state.design_id
try:
    record = None if design_id is None else read("design_record", int(design_id))
except DoeError:  # removed from the database meanwhile
    record = None
if record is None or record.deleted:
    design_id = None
c1, c2 = st.columns(2)
if design is not None and design_id is None:
    c1.info("The design on the Design page is not saved: save it there under a name, then add its run sheet "
            "here (runs are entered against a saved design).")
elif design is not None:
    add = run_sheet_addition(stored, design)
    sheet_reason = c1.text_input("Reason for adding runs to results already measured (kept in the audit "
                                 "trail)", key=SHEET_REASON) if add.has_results and len(add.batch) else None
    if c1.button(f"Add the current design's run sheet: \"{record.name}\" ({record.runs} runs)", key="from_design",
                 help="Adds the design's runs (results empty) to the study; the data version records the design. "
                      "A stored run is never changed: a run id already taken gets the next free number."):
        if not len(add.batch):
            c1.info(f"Design \"{record.name}\": {add.describe()}.")
        elif add.has_results and not (sheet_reason or "").strip():
            c1.error(f"Not added: the study already has results, so adding {add.describe()} needs a reason (kept "
                     "in the audit trail). Type it in the box above and press the button again.")
        else:
            save(add.batch, f"Run sheet of design \"{record.name}\" added ({add.describe()})", sheet_reason,
                 design_id=int(design_id))
if is_example(study) and stored is None and c2.button("Load the example results (simulated)", key="load_example_results",
                                                      help=f"Saves the example's design as \"{EXAMPLE_DESIGN}\" and "
                                                           "enters the simulated results against it."):
    load_example(study)

upload_file = st.file_uploader("Upload results (CSV or Excel)", type=["csv", "txt", "xlsx"],
                               key="results_upload")
if upload_file is not None:
    upload = read_results(study, upload_file.getvalue(), upload_file.name)
    if not upload.ok:
        st.error(f"**{upload_file.name} was not loaded** - fix these and upload again:")
        st.dataframe([{"row": p.row, "column": p.column, "problem": p.message} for p in upload.errors],
                     hide_index=True, width="stretch")
    else:
        merged, problems = (upload.table, []) if view is None else merge_results(view, upload)
        for p in upload.warnings + problems:
            (st.error if p.severity == "error" else st.warning)(p.message)
        if not any(p.severity == "error" for p in problems):
            batch = changed_runs(stored, merged)
            st.info(f"{upload_file.name}: {len(batch)} new or changed runs of {len(upload.table)}."
                    if len(batch) else f"{upload_file.name}: nothing new - every run is already saved.")
            off = [] if stored is not None or design_id is None else runs_not_in_design(upload.table, design)
            upload_design = design_id if stored is None and not off else None
            if off:
                st.warning(f"Runs {', '.join(off[:8])}{' ...' if len(off) > 8 else ''} of {upload_file.name} are not "
                           f"runs of the design \"{record.name}\" (another run id or other settings): the results "
                           "are saved without naming a design. To record the design they were run on, import its "
                           "run sheet on the Design page and save it first.")
            reason = st.text_input("Reason (needed when the file changes saved results)", key=UPLOAD_REASON)
            if len(batch) and st.button("Save the upload", type="primary", key="save_upload"):
                # the first runs of a study are recorded against the saved design on screen when they are its
                # runs; later batches keep the design of the data version before
                save(batch, f"{upload_file.name}", reason, design_id=upload_design)

if stored is None:
    st.info("No runs yet. Generate a design and add its run sheet, upload a results file, "
            "or load the example results.")
    st.stop()

if is_example(study):
    st.warning("The example results are **simulated** from a documented true model "
               "(data/simulate_example.py), not measured.")
# Edits apply to the runs as they were when this table was opened: a run somebody else changes meanwhile
# is refused on save (optimistic concurrency), never silently overwritten.
gen = state.runs_editor_gen
snapshot = state.runs_snapshot(gen)
if snapshot is None:
    snapshot = stored
    state.set_runs_snapshot(gen, stored)
elif not (snapshot["run_id"].tolist() == stored["run_id"].tolist()
          and snapshot["row_version"].tolist() == stored["row_version"].tolist()):
    c1, c2 = st.columns([3, 1])
    c1.info("Somebody saved changes to these runs since you opened this table. Reload to see them; "
            "saving an edit to a run they changed is refused.")
    c2.button("Reload the runs", key="reload_newer", on_click=_fresh_editor)
view = snapshot.drop(columns=list(RUN_META))
locked = [c for c in view.columns if c not in study.response_names and c != "Notes"]
if not acc.can_edit:
    locked = list(view.columns)
    st.info(f"Read-only: {acc.why}")
edited = st.data_editor(
    view, key=f"runs_editor_{gen}", hide_index=True,
    width="stretch", disabled=locked,
    column_config={**{f.name: st.column_config.Column(f.label()) for f in study.factors},
                   **{r.name: st.column_config.NumberColumn(f"{r.name} ({r.units})" if r.units else r.name)
                      for r in study.responses}},
)
problems = validate_runs(study, edited)
for p in problems:
    (st.error if p.severity == "error" else st.warning)(p.message)
batch = changed_runs(snapshot, edited.assign(row_version=snapshot["row_version"].to_numpy()))
if len(batch):
    st.markdown(f":orange[**{len(batch)} edited runs not saved yet.**]")
    if any(p.severity == "error" for p in problems):
        st.error("Edits with errors are not saved; fix them first.")
    else:
        reason = st.text_input("Reason for the change (needed when you change a saved result)",
                               key=EDIT_REASON)
        if st.button("Save edits", type="primary", key="save_edits"):
            save(batch, "Edits", reason)

prefetch_fits(study, stored.drop(columns=list(RUN_META)))  # the Models page then opens on ready fits
filled = {r.name: int(view[r.name].notna().sum()) for r in study.responses if r.name in view}
st.caption(f"{len(view)} runs saved; results entered: " + ", ".join(f"{k} {v}" for k, v in filled.items()))
st.download_button("Download results (CSV)", safe_csv(view), file_name="results.csv", mime="text/csv")

with st.expander("Delete a run"):
    st.caption("A deleted run leaves the data and later analyses; it stays in the record (earlier data "
               "versions and the audit trail keep its values).")
    label = st.selectbox("Run", stored["Run"].tolist(), key=DELETE_RUN)
    why = st.text_input("Reason (required)", key=DELETE_REASON)
    if st.button("Delete this run", key="delete_run_button", disabled=not acc.can_edit):
        row = stored[stored["Run"] == label].iloc[0]
        try:
            version = store().delete_run(int(row["run_id"]), int(row["row_version"]), acc.user, why)
            state.runs_saved = (version, f"Run {label} deleted: data version {version}.")
            st.rerun()
        except DoeError as exc:
            st.error(f"Not deleted: {exc}")
