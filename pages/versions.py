"""Versions: data and analysis versions of the open study, re-running the analysis, and what changed."""

import streamlit as st

from doe.errors import DoeError
from doe.store import with_design_names
from doe.versions import compare_analyses, comparison_frame, significance_frame, stats_frame
from pages._app.common import lazy_tabs, require_study, show_table, shown
from pages._app.db import read, store
from pages._app.live_plot import live_chart, preload_live_charts
from pages._app.persist import current_access, editor
from pages._app.services import space_comparison
from pages._app.speed import in_background
from pages._app.state import state

study = require_study()
st.title("Versions")
st.caption("Each batch of new or edited runs is a **data version** (with a content hash). Each saved analysis "
           "is an **analysis version**: the model choices, the data version and the fitted results. "
           "Re-running the analysis refits every CQA with the saved choices on the newest data.")
try:
    data_versions = read("data_versions", study.name)
    analyses = read("analyses", study.name)
except DoeError:
    st.info(f"'{study.name}' is not in the database yet: save it (enter your name in the sidebar and "
            "apply changes on the Study page, or enter results on the Runs page).")
    st.stop()

c1, c2 = st.columns(2)
with c1:
    st.subheader("Data versions")
    show_table(with_design_names(data_versions.assign(content_hash=data_versions["content_hash"].str.slice(0, 12)),
                                 read("designs", study.name)))  # the design each data version was run on
with c2:
    st.subheader("Analysis versions")
    show_table(analyses[["version", "data_version", "created_at", "created_by"]])

newest = int(data_versions["version"].iloc[-1]) if len(data_versions) else None
behind = len(analyses) and newest is not None and int(analyses["data_version"].iloc[-1]) < newest
if behind:
    st.warning(f"The latest analysis is on data version {int(analyses['data_version'].iloc[-1])}; "
               f"data version {newest} is newer. Re-run the analysis to see what the new runs change.")
if newest is not None and st.button("Re-run the analysis on the newest data", type="primary" if behind else
                                    "secondary", key="rerun", disabled=not current_access().can_edit):
    user = editor()
    if user is not None:
        from doe.versions import rerun_analysis

        try:
            with st.spinner("Refitting every CQA with the saved model choices..."):
                out = rerun_analysis(store(), study.name, user)
            state.model_choices = dict(read("analyses", study.name)["choices"].iloc[-1])
            state.compare = (out["analysis_version"] - 1, out["analysis_version"])
            st.rerun()
        except DoeError as exc:
            st.error(f"Not re-run: {exc}")

if len(analyses) < 2:
    st.info("Comparisons need two analysis versions: save an analysis on the Models page, add runs, "
            "then re-run it here.")
    st.stop()

st.subheader("Compare two analysis versions")
numbers = analyses["version"].astype(int).tolist()
old_default, new_default = state.take("compare") or (numbers[-2], numbers[-1])
c1, c2 = st.columns(2)
old = c1.selectbox("Before", numbers, numbers.index(max(old_default, numbers[0])), key="cmp_old")
new = c2.selectbox("After", numbers, numbers.index(new_default), key="cmp_new")
row = {int(r["version"]): r for _, r in analyses.iterrows()}
comparison = compare_analyses(row[old]["summary"], row[new]["summary"])
st.caption(f"Version {old}: data version {row[old]['data_version']} ({row[old]['summary'].get('n_runs')} runs); "
           f"version {new}: data version {row[new]['data_version']} ({row[new]['summary'].get('n_runs')} runs).")

url = store().url
in_background(("space_comparison", url, study.name, old, new),  # ready when the tab is opened
              lambda: space_comparison(url, study.name, old, new))
tabs = lazy_tabs(["Fit statistics", "Coefficients", "Significance changes", "Design space"],
                 key="versions_tab")
with tabs[0]:
    if shown(tabs[0]):
        show_table(stats_frame(comparison))
with tabs[1]:
    if shown(tabs[1]):
        show_table(comparison_frame(comparison))
        st.caption("Coded-unit coefficients; change = after - before; CI = 95 % confidence interval.")
with tabs[2]:
    if shown(tabs[2]):
        changes = significance_frame(comparison)
        if len(changes):
            show_table(changes)
        else:
            st.success("No term became or stopped being significant (p < 0.05).")
with tabs[3]:
    if shown(tabs[3]):
        try:
            with st.spinner("Rebuilding both design spaces from their stored data..."):
                space, fig, fractions = space_comparison(url, study.name, old, new)
        except DoeError as exc:
            st.error(f"No design-space comparison: {exc}")
        else:
            live_chart(fig, key="space_compare_fig")
            show_table(fractions)
            for w in space.warnings:
                st.caption(w)

preload_live_charts()  # last (takes no room): the comparison's map draws with this plotly.js
