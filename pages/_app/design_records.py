"""The Design page's stored designs: save the design on screen under a name, and the study's designs
(a table, then open, rename, mark current or delete one). The rules are the store's (doe.store)."""

from __future__ import annotations

import streamlit as st

from doe.errors import DoeError
from doe.store import default_design_name, designs_table
from pages._app.db import read, store
from pages._app.persist import current_access, save_study
from pages._app.state import state


def save_area(study, design) -> None:
    """Whether the design on screen is saved (and as which); if not, a name box and a Save button."""
    design_id = state.design_id
    if design_id is not None:
        try:
            record = read("design_record", int(design_id))
        except DoeError:
            record = None
        if record is not None and not record.deleted:
            current = " It is the study's current design." if record.current else ""
            st.caption(f":green[Saved in the database as design {record.id} \"{record.name}\".]{current} "
                       "Add its run sheet on the **Runs** page to enter results against it.")
            return
        del state.design_id
    acc = current_access()
    st.markdown(f":orange[**Design not saved.**] Give it a name and press **Save this design**: runs and "
                f"results are entered against a saved design. {'' if acc.can_edit else acc.why}")
    gen = state.design_gen
    c1, c2 = st.columns([3, 1])
    try:
        taken = read("designs", study.name)["name"].tolist()
    except DoeError:  # the study is not in the database yet
        taken = []
    name = c1.text_input("Design name", default_design_name(design.kind, design.n_runs, taken, design.info.get("criterion")),
                         key=f"design_name_{gen}")
    if c2.button("Save this design", key="save_design", disabled=not acc.can_edit, type="primary"):
        if not name.strip():
            st.error("Not saved: type a name for the design (e.g. 'D-optimal, 40 runs').")
            return
        if save_study(study, acc.user) is None:
            return
        try:
            state.design_id = store().save_design(study.name, design, acc.user, name)
        except DoeError as exc:
            st.error(f"Design not saved: {exc}")
            return
        st.rerun()  # the sidebar, drawn before this page, then shows the study as saved


def designs_section(study) -> None:
    """'Designs of this study': the stored designs (deleted ones hidden) and what can be done with one."""
    try:
        frame = read("designs", study.name)
        data_design = read("design_of_data_version", study.name)
    except DoeError:  # the study is not in the database yet
        frame, data_design = None, None
    done = state.take("records_done")
    with st.expander("Designs of this study", expanded=done is not None):
        if done:
            st.success(done)
        if frame is None or not len(frame):
            st.caption("No design of this study is saved yet.")
            return
        st.dataframe(designs_table(frame), hide_index=True, width="stretch")
        if data_design is not None:
            names = dict(zip(frame["id"], frame["name"], strict=True))
            st.caption(f"The runs stored now were made from design {data_design} "
                       f"\"{names.get(data_design, '')}\"; reports and models describe that design.")
        labels = {int(i): f"{int(i)}: {n}" for i, n in zip(frame["id"], frame["name"], strict=True)}
        chosen = st.selectbox("Design", list(labels), format_func=labels.get, key="records_design")
        row = frame[frame["id"] == chosen].iloc[0]
        acc = current_access()
        c1, c2, c3 = st.columns(3)
        if c1.button("Open this design", key="records_open"):
            state.design = read("load_design", int(chosen))
            state.design_id = int(chosen)
            st.rerun()
        if c2.button("Mark as current", key="records_current", disabled=not acc.can_edit or bool(row["current"]),
                     help="The study opens with its current design."):
            _act(lambda: store().set_current_design(int(chosen), acc.user), f"Design {chosen} is now current.")
        new_name = c3.text_input("New name", row["name"], key=f"records_name_{chosen}")
        if c3.button("Rename", key="records_rename", disabled=not acc.can_edit):
            _act(lambda: store().rename_design(int(chosen), new_name, acc.user), f"Design {chosen} renamed.")
        if bool(row["frozen"]):
            st.caption(f"Design {chosen} is frozen (results were entered against it): it cannot be deleted.")
        else:
            why = st.text_input("Reason for deleting (kept in the audit trail)", key="records_reason")
            if st.button("Delete this design", key="records_delete", disabled=not acc.can_edit):
                _act(lambda: store().delete_design(int(chosen), acc.user, why or None), f"Design {chosen} deleted.")


def _act(change, done: str) -> None:
    """Run one store change; show why when refused, else note it and rerun."""
    try:
        change()
    except DoeError as exc:
        st.error(f"Not changed: {exc}")
        return
    state.records_done = done
    st.rerun()
