"""The one typed view of a session's state (``st.session_state``): every key the pages keep, its type
and its default, in one place.

Pages and helpers read and write ``state.<name>`` (``from pages._app.state import state``), never
``st.session_state[...]`` (tests/test_pages.py greps for it). The key strings are unchanged, so AppTest
tests that set or read ``at.session_state["..."]`` keep working. Widget keys that the code also reads or
sets (a widget's value changed from code, a value dropped when another study opens) are the constants
below, used with ``key=`` by the widget and through the properties here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import pandas as pd
import streamlit as st

from doe.design import Design
from doe.study import Study

T = TypeVar("T")

# -- widget keys (the widget's ``key=``; read or set from code too) --------------------------------
#: The sidebar's name box (without sign-in).
USER_NAME_INPUT = "user_name_input"
#: Design space page: the probability threshold slider and the map's axes.
SPACE_THRESHOLD, SPACE_X, SPACE_Y = "space_threshold", "space_x", "space_y"
#: Design page: a CCD's axial distance, and the centre points and blocks the axial check reads.
DESIGN_ALPHA, DESIGN_CENTER, DESIGN_BLOCKS = "design_alpha", "design_center", "design_blocks"
#: Runs page: the reasons typed for a change, the run chosen for deleting.
SHEET_REASON, UPLOAD_REASON, EDIT_REASON = "sheet_reason", "upload_reason", "edit_reason"
DELETE_RUN, DELETE_REASON = "delete_run", "delete_reason"
#: Seed train and Manufacturing pages: the reason typed for an edit of saved passages or lots.
PASSAGES_REASON, LOTS_REASON = "passages_reason", "lots_reason"
#: Design space page: the note saved with a decision.
DECISION_NOTE = "decision_note"
#: The lazy tabs of the Models page (tests choose a tab by setting it).
MODEL_TAB = "model_tab"

#: Prefixes of per-name keys: the Design space page's set-point and set-point-SD widgets, its prepared
#: images, and the Runs page's snapshot of the stored runs per editor generation.
SET_POINT_PREFIX, SETPOINT_SD_PREFIX, IMAGE_PREFIX, RUNS_SNAPSHOT_PREFIX = "sp_", "sd_", "img_", "_runs_snapshot_"

#: Session keys holding what a page showed or computed for the open study: dropped when another study is
#: opened, so no page shows the previous study's runs, choices, set point or messages.
STUDY_STATE = ("runs", "_runs_saved", "_study_saved", "robust_result", "desirability_result", "_apply_set_point",
               "_space_opened", "_space_opened_note", SPACE_X, SPACE_Y, SPACE_THRESHOLD, "_compare",
               SHEET_REASON, UPLOAD_REASON, EDIT_REASON, DELETE_RUN, DELETE_REASON, DECISION_NOTE,
               "_passages_saved", PASSAGES_REASON, "_equivalence_saved", "_lots_saved", LOTS_REASON)
#: Prefixes of per-study keys: the Runs page's snapshot per editor generation, the set-point widgets.
STUDY_STATE_PREFIXES = (RUNS_SNAPSHOT_PREFIX, SET_POINT_PREFIX)


class _Key(Generic[T]):
    """One session key as a typed attribute of :class:`SessionState`: reading a key never set gives the
    default (``factory``: a new mutable value, stored on first read so that changing it in place
    changes the session's), assigning writes it, ``del`` drops it."""

    def __init__(self, key: str, default: T, factory: Callable[[], T] | None = None) -> None:
        self.key, self.default, self.factory = key, default, factory

    @overload
    def __get__(self, obj: None, owner: type) -> _Key[T]: ...

    @overload
    def __get__(self, obj: SessionState, owner: type) -> T: ...

    def __get__(self, obj: SessionState | None, owner: type) -> T | _Key[T]:
        if obj is None:
            return self
        if self.factory is not None:
            return st.session_state.setdefault(self.key, self.factory())
        return st.session_state.get(self.key, self.default)

    def __set__(self, obj: SessionState, value: T) -> None:
        st.session_state[self.key] = value

    def __delete__(self, obj: SessionState) -> None:
        st.session_state.pop(self.key, None)


def _dict() -> dict[str, Any]:
    return {}


class SessionState:
    """Everything a session keeps between script runs (one per session: Streamlit's session state)."""

    # -- the open study and what it is made of ----------------------------------------------------
    #: The open study (None: none open).
    study = _Key[Study | None]("study", None)
    #: The design on the Design page, and its stored id when it is saved.
    design = _Key[Design | None]("design", None)
    design_id = _Key[int | None]("design_id", None)
    #: Renewed with every new design on screen: the design-name box starts afresh.
    design_gen = _Key[int]("design_gen", 0)
    #: Results kept in the session only (a study not in the database); stored runs are read from it.
    runs = _Key[pd.DataFrame | None]("runs", None)
    #: The model choice per CQA (ModelChoice.to_dict()), changed in place by the Models page.
    model_choices = _Key[dict[str, Any]]("model_choices", {}, _dict)
    #: The stored version this session's copy of the study was made from: (study name, version).
    study_base = _Key[tuple[str, int] | None]("_study_base", None)

    # -- first visit, identity and the database --------------------------------------------------
    #: The first-visit rules ran for this session.
    started = _Key[bool]("_started", False)
    #: A study named in the link that is not in the database (Home says so).
    missing_link_study = _Key[str | None]("_link_study_missing", None)
    #: The name typed in the sidebar (without sign-in), kept for the session.
    user_name = _Key[str | None]("_user_name", None)
    user_name_input = _Key[str](USER_NAME_INPUT, "")
    #: The database's change mark this session read, and when (time.monotonic()).
    change_mark = _Key[tuple[int, float] | None]("_change_mark", None)

    # -- messages shown after a rerun -------------------------------------------------------------
    #: Seed train page: the message of the last save; the editor's generation.
    passages_saved = _Key[str | None]("_passages_saved", None)
    passages_editor_gen = _Key[int]("passages_editor_gen", 0)
    #: Manufacturing page: the message of the last save of the lots; the upload box's and editor's generation.
    lots_saved = _Key[str | None]("_lots_saved", None)
    lots_editor_gen = _Key[int]("lots_editor_gen", 0)
    #: Scale comparison page: the message of the equivalence test just saved.
    equivalence_saved = _Key[str | None]("_equivalence_saved", None)
    #: Runs page: (data version, message) of the last save.
    runs_saved = _Key[tuple[int, str] | None]("_runs_saved", None)
    #: Study page: ((study name, version), message) of the last save.
    study_saved = _Key[tuple[tuple[str, int], str] | None]("_study_saved", None)
    #: Study page: the uploaded file already opened (an upload opens once).
    study_upload_id = _Key[str | None]("_study_upload_id", None)
    #: Design page: what the last change of a stored design did.
    records_done = _Key[str | None]("_records_done", None)
    #: Design space page: the id of the decision just saved.
    decision_saved = _Key[int | None]("_decision_saved", None)
    #: Home: (study name, zip bytes) of the bundle prepared for download.
    bundle = _Key[tuple[str, bytes] | None]("_bundle", None)
    #: Versions page: (before, after) analysis versions to compare after a re-run.
    compare = _Key[tuple[int, int] | None]("_compare", None)

    # -- the Runs and Design pages ------------------------------------------------------------------
    #: Renewed to start a new run editor (a new widget, edits in progress discarded).
    runs_editor_gen = _Key[int]("runs_editor_gen", 0)
    #: Renewed whenever another study's runs are shown.
    runs_version = _Key[int]("runs_version", 0)
    #: The seed a blank seed field stands for, until a design is generated with it.
    next_seed = _Key[int | None]("_next_seed", None)
    design_alpha = _Key[str | None](DESIGN_ALPHA, None)
    design_center = _Key[int | None](DESIGN_CENTER, None)
    design_blocks = _Key[int](DESIGN_BLOCKS, 1)

    # -- the Design space page ----------------------------------------------------------------------
    robust_result = _Key[dict[str, Any] | None]("robust_result", None)
    desirability_result = _Key[dict[str, Any] | None]("desirability_result", None)
    #: A set point to put in the set-point widgets before they are drawn (next run).
    apply_set_point = _Key[dict[str, Any] | None]("_apply_set_point", None)
    #: The study the page last opened its view for, and the notes saying how.
    space_opened = _Key[str | None]("_space_opened", None)
    space_opened_note = _Key[list[str] | None]("_space_opened_note", None)
    space_threshold = _Key[float | None](SPACE_THRESHOLD, None)
    space_x = _Key[str | None](SPACE_X, None)
    space_y = _Key[str | None](SPACE_Y, None)

    # -- the Report page ----------------------------------------------------------------------------
    #: Reports built in this session, by what they were built from (the newest few).
    report_cache = _Key[dict[Any, Any]]("report_cache", {}, _dict)

    # -- keys by name ------------------------------------------------------------------------------
    @staticmethod
    def set_point_key(factor: str) -> str:
        """The key of a factor's set-point widget (Design space page)."""
        return SET_POINT_PREFIX + factor

    @staticmethod
    def setpoint_sd_key(factor: str) -> str:
        """The key of a factor's set-point SD widget (Design space page)."""
        return SETPOINT_SD_PREFIX + factor

    def set_point_value(self, factor: str, value: Any) -> None:
        """Put ``value`` in a factor's set-point widget (before it is drawn)."""
        st.session_state[self.set_point_key(factor)] = value

    def has_set_point(self, factor: str) -> bool:
        return self.set_point_key(factor) in st.session_state

    def default_set_point(self, factor: str, value: float) -> None:
        """A set-point widget not drawn yet starts at ``value``."""
        st.session_state.setdefault(self.set_point_key(factor), value)

    def set_setpoint_sd(self, factor: str, value: float) -> None:
        st.session_state[self.setpoint_sd_key(factor)] = value

    def image(self, fmt: str) -> tuple[str, bytes] | None:
        """(what was shown, bytes) of the figure prepared as ``fmt``."""
        return st.session_state.get(IMAGE_PREFIX + fmt)

    def set_image(self, fmt: str, made: tuple[str, bytes]) -> None:
        st.session_state[IMAGE_PREFIX + fmt] = made

    def runs_snapshot(self, gen: int) -> pd.DataFrame | None:
        """The stored runs the run editor of generation ``gen`` was opened on."""
        return st.session_state.get(RUNS_SNAPSHOT_PREFIX + str(gen))

    def set_runs_snapshot(self, gen: int, runs: pd.DataFrame) -> None:
        st.session_state[RUNS_SNAPSHOT_PREFIX + str(gen)] = runs

    def new_runs_editor(self) -> None:
        """Start a new run editor on the newest stored runs (edits in progress are discarded)."""
        gen = self.runs_editor_gen
        st.session_state.pop(RUNS_SNAPSHOT_PREFIX + str(gen), None)
        self.runs_editor_gen = gen + 1

    def take(self, name: str) -> Any:
        """Read the attribute ``name`` and drop its key (a one-time message or request)."""
        value = getattr(self, name)
        delattr(self, name)
        return value

    def forget_study(self) -> None:
        """Drop everything kept for the study that was open (:data:`STUDY_STATE`); no model choices; the
        Runs editor starts afresh."""
        for key in list(st.session_state):
            if key in STUDY_STATE or str(key).startswith(STUDY_STATE_PREFIXES):
                del st.session_state[key]
        self.model_choices = {}
        self.runs_editor_gen += 1  # a new editor widget
        self.runs_version += 1


#: The session state of the session running the script (Streamlit keeps one per session).
state = SessionState()
