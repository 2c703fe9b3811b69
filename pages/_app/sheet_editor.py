"""A versioned sheet on a page (the Seed train's passages, Manufacturing's lots): an upload added to or
replacing the recorded rows, the rows typed or changed in an editor, what a save would change, the reason a
change or removal needs, and the save (a new data version with the audit trail).

The library does the work: ``read`` checks a file or the edited table (doe.growth.read_passages,
doe.lots.read_lots), ``merge`` / ``compare`` say what changes (doe.sheet_change).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from doe.errors import DoeError
from doe.sheet_change import SheetChange
from pages._app.persist import current_access, save_sheet
from pages._app.state import state


@dataclass(frozen=True)
class Sheet:
    """One kind of sheet: ``sheet`` is the store's name ("passages", "lots"), ``noun`` one row ("passage")."""

    sheet: str
    noun: str
    read: Callable[[Any, str], Any]
    merge: Callable[..., SheetChange]
    compare: Callable[[pd.DataFrame, pd.DataFrame], SheetChange]
    column_config: dict[str, Any] = field(default_factory=dict)

    @property
    def saved(self) -> str:
        """The session attribute holding the last save's message."""
        return f"{self.sheet}_saved"

    @property
    def gen(self) -> str:
        """The session attribute counting saves: a new, empty upload box and editor after each."""
        return f"{self.sheet}_editor_gen"


def save(spec: Sheet, study: Any, table: pd.DataFrame, what: str, reason: str | None = None) -> None:
    """Save ``table`` as the study's sheet and rerun with the message (pages/_app/persist.save_sheet)."""
    message = save_sheet(study, spec.sheet, table, what, reason)
    if message is not None:
        setattr(state, spec.saved, message)
        setattr(state, spec.gen, getattr(state, spec.gen) + 1)
        st.rerun()


def show_saved(spec: Sheet) -> None:
    """The message of the save that caused this run, once."""
    message = getattr(state, spec.saved)
    if message is not None:
        st.success(message)
        setattr(state, spec.saved, None)


def upload(spec: Sheet, study: Any, stored: pd.DataFrame) -> None:
    """The upload box: the file checked, added to the recorded rows or replacing them, and saved."""
    gen = getattr(state, spec.gen)
    nouns = f"{spec.noun}s"
    upload_file = st.file_uploader(f"Upload {nouns} (CSV or Excel)", type=["csv", "txt", "xlsx"],
                                   key=f"{spec.sheet}_upload_{gen}")  # a new, empty one after a save
    if upload_file is None:
        return
    checked = spec.read(upload_file.getvalue(), upload_file.name)
    if not checked.ok:
        st.error(f"**{upload_file.name} was not loaded** - fix these and upload again:")
        st.dataframe([{"row": p.row, "column": p.column, "problem": p.message} for p in checked.errors],
                     hide_index=True, width="stretch")
        return
    for p in checked.warnings:
        st.warning(p.message)
    how = st.radio(f"The file's {nouns}", [f"Add them to the recorded {nouns}",
                                          f"Replace the recorded {nouns} with the file"],
                   horizontal=True, key=f"{spec.sheet}_upload_mode",
                   help=f"Adding keeps every recorded {spec.noun}; a {spec.noun} of the file that is already "
                        "recorded (same key) replaces the recorded one (a reason is needed).")
    try:
        merged = spec.merge(stored, checked.table, replace=how.startswith("Replace"))
    except DoeError as exc:
        st.error(str(exc))
        return
    st.info(merged.describe(upload_file.name))
    reason = st.text_input(f"Reason (needed when the file changes or removes recorded {nouns})",
                           key=f"{spec.sheet}_upload_reason")
    if merged.changes and st.button("Save the upload", type="primary", key=f"save_{spec.sheet}_upload"):
        save(spec, study, merged.table, upload_file.name, reason)


def editor(spec: Sheet, study: Any, stored: pd.DataFrame, reason_key: str) -> None:
    """The recorded rows in an editor (rows can be added, changed and removed): the edits checked, what a save
    would change, and the save with the reason a change or removal needs."""
    acc = current_access()
    edited = st.data_editor(stored, key=f"{spec.sheet}_editor_{getattr(state, spec.gen)}", num_rows="dynamic",
                            hide_index=True, width="stretch", disabled=not acc.can_edit,
                            column_config=spec.column_config)
    checked = spec.read(edited, "The edited sheet") if not edited.equals(stored) else None
    change = spec.compare(stored, checked.table) if checked is not None and checked.ok else None
    if checked is None or (change is not None and not change.changes):
        return
    for p in checked.problems:
        (st.error if p.severity == "error" else st.warning)(p.message)
    st.markdown(f":orange[**Edited {spec.noun}s not saved yet.**]" + (f" {change.describe('Edits')}" if change else ""))
    if not checked.ok:
        st.error("Edits with errors are not saved; fix them first.")
        return
    reason = st.text_input(f"Reason for the change (needed when you change or remove a saved {spec.noun})",
                           key=reason_key)
    if st.button("Save edits", type="primary", key=f"save_{spec.noun}_edits"):
        save(spec, study, checked.table, "Edits", reason)
