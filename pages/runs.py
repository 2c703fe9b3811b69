"""Runs: the run sheet with results, entered by hand or uploaded (CSV or Excel)."""

import streamlit as st

from doe.runs import merge_results, read_results, results_template, validate_runs
from pages._common import EXAMPLE_RESULTS, current_runs, is_example, require_study, set_runs

study = require_study()
st.title("Runs and results")
st.caption("One row per run: factor settings and one column per CQA. Partial results are fine: "
           "leave a cell empty until the CQA is measured. Nothing is dropped silently: problems "
           "are listed by row and column, and a file with an error changes nothing.")

runs = current_runs()
design = st.session_state.get("design")
c1, c2 = st.columns(2)
if design is not None and c1.button("Start from the current design's run sheet", key="from_design"):
    set_runs(results_template(design))
    st.rerun()
if is_example(study) and c2.button(
        "Load the example results (simulated)", key="load_example_results"):
    upload = read_results(study, EXAMPLE_RESULTS)
    set_runs(upload.table)
    st.rerun()

upload_file = st.file_uploader("Upload results (CSV or Excel)", type=["csv", "txt", "xlsx"],
                               key="results_upload")
if upload_file is not None and st.session_state.get("_results_file") != upload_file.file_id:
    upload = read_results(study, upload_file.getvalue(), upload_file.name)
    if not upload.ok:
        st.error(f"**{upload_file.name} was not loaded** - fix these and upload again:")
        st.dataframe([{"row": p.row, "column": p.column, "problem": p.message} for p in upload.errors],
                     hide_index=True, width="stretch")
    else:
        merged, problems = (upload.table, []) if runs is None else merge_results(runs, upload)
        if any(p.severity == "error" for p in problems):
            st.error("The upload conflicts with the results so far; nothing was changed.")
        else:
            st.session_state["_results_file"] = upload_file.file_id
            set_runs(merged)
            runs = merged
            st.success(upload.summary(limit=0).splitlines()[0])
        for p in upload.warnings + problems:
            st.warning(p.message)

if runs is None:
    st.info("No runs yet. Generate a design and start from its run sheet, upload a results file, "
            "or load the example results.")
    st.stop()

if is_example(study):
    st.warning("The example results are **simulated** from a documented true model "
               "(data/simulate_example.py), not measured.")
locked = [c for c in runs.columns if c not in study.response_names and c != "Notes"]
edited = st.data_editor(
    runs, key=f"runs_editor_{st.session_state.get('runs_version', 0)}", hide_index=True,
    width="stretch", disabled=locked,
    column_config={**{f.name: st.column_config.Column(f.label()) for f in study.factors},
                   **{r.name: st.column_config.NumberColumn(f"{r.name} ({r.units})" if r.units else r.name)
                      for r in study.responses}},
)
problems = validate_runs(study, edited)
for p in problems:
    (st.error if p.severity == "error" else st.warning)(p.message)
if not edited.equals(runs):
    if any(p.severity == "error" for p in problems):
        st.error("Edits with errors are not saved; fix them first.")
    elif st.button("Save edits", type="primary", key="save_edits"):
        set_runs(edited)
        st.rerun()

filled = {r.name: int(runs[r.name].notna().sum()) for r in study.responses if r.name in runs}
st.caption(f"{len(runs)} runs; results entered: " + ", ".join(f"{k} {v}" for k, v in filled.items()))
st.download_button("Download results (CSV)", runs.to_csv(index=False), file_name="results.csv",
                   mime="text/csv")
