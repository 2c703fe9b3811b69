"""Session state shared by the pages: the current study and design."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from doe.study import Study
from pages._compat import leave_legacy_pages_mode

EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "msc_expansion.yaml"


def _run_through_app() -> None:
    """Rerun via app.py when Streamlit ran a page file directly.

    Streamlit treats a folder named pages/ as a legacy multipage app until the
    first st.navigation call in the process; a deep link opened right after a
    server start would otherwise run the page without app.py's navigation
    (pages/_compat.leave_legacy_pages_mode).
    """
    if leave_legacy_pages_mode():
        st.rerun()


def current_study() -> Study | None:
    _run_through_app()
    open_example_on_first_visit()
    return st.session_state.get("study")


#: Session state that belongs to the open study (what a page showed or computed for it): dropped when
#: another study is opened, so no page shows the previous study's runs, choices, set point or messages.
STUDY_STATE = ("runs", "_runs_saved", "_study_saved", "robust_result", "desirability_result", "_apply_set_point",
               "_space_opened", "_space_opened_note", "space_x", "space_y", "space_threshold", "_compare",
               "sheet_reason", "upload_reason", "edit_reason", "delete_run", "delete_reason", "decision_note")
#: Prefixes of per-study keys: the Runs page's snapshot per editor generation, the set-point widgets.
STUDY_STATE_PREFIXES = ("_runs_snapshot_", "sp_")


def forget_study_state() -> None:
    """Drop everything the pages kept for the study that was open; the Runs editor starts afresh."""
    for key in list(st.session_state):
        if key in STUDY_STATE or str(key).startswith(STUDY_STATE_PREFIXES):
            del st.session_state[key]
    st.session_state["model_choices"] = {}
    st.session_state["runs_editor_gen"] = st.session_state.get("runs_editor_gen", 0) + 1  # new editor widget
    st.session_state["runs_version"] = st.session_state.get("runs_version", 0) + 1


def set_study(study: Study) -> None:
    """Make ``study`` current; a design made for another study no longer applies, and opening another
    study forgets what the pages kept for the previous one (:data:`STUDY_STATE`)."""
    old = st.session_state.get("study")
    if old is not None and old.name == study.name:
        from pages._study_sync import base_version

        base_version(old)  # the stored version this edit is made on, noted before the study changes
    st.session_state["study"] = study
    if old is None or old.to_yaml() != study.to_yaml():
        st.session_state.pop("design", None)
        st.session_state.pop("design_id", None)
    if old is not None and old.name != study.name:
        forget_study_state()


@st.cache_data(max_entries=1)
def _example_yaml() -> str:
    return Study.load(EXAMPLE).to_yaml()


def is_example(study: Study) -> bool:
    """True while the open study is the unchanged bundled example."""
    return study.to_yaml() == _example_yaml()


def load_example() -> None:
    set_study(Study.load(EXAMPLE))


def open_example_on_first_visit() -> None:
    """A new session opens the study in the link (?study=NAME), else the user's own last study, else (empty
    database) the bundled example, else none; never the latest study of anyone (pages/_first_visit.py)."""
    from pages._first_visit import open_first_study

    open_first_study()


def open_stored(name: str, version: int | None = None) -> None:
    """Open a study from the database with its current design (not the newest saved) and the model
    choices of its latest analysis."""
    from pages._db import read
    from pages._persist import latest

    set_study(read("load_study", name, version))
    st.session_state.pop("runs", None)
    design_id = read("current_design", name)
    if design_id is not None:
        st.session_state["design"] = read("load_design", int(design_id))
        st.session_state["design_id"] = int(design_id)
    analysis = latest("analyses", name)
    st.session_state["model_choices"] = dict(analysis["choices"] or {}) if analysis is not None else {}


def require_study() -> Study:
    """The current study, or a prompt to load one (and stop the page)."""
    study = current_study()
    if study is None:
        st.info("No study is open yet. Open a study from the database on Home, load the bundled MSC example, "
                "or start a new study.")
        c1, c2 = st.columns(2)
        if c1.button("Load the MSC example study", type="primary"):
            load_example()
            st.rerun()
        if c2.button("Go to Home"):
            st.switch_page("pages/home.py")
        st.stop()
    return study


EXAMPLE_RESULTS = EXAMPLE.parent / "msc_example_results.csv"


def current_runs():
    """The results so far (DataFrame, as stored in the database) or None."""
    from doe.store import RUN_META
    from pages._persist import stored_runs

    study = st.session_state.get("study")
    runs = stored_runs(study) if study is not None else None
    if runs is not None:
        return runs.drop(columns=list(RUN_META))
    return st.session_state.get("runs")


@st.cache_resource(max_entries=128, show_spinner=False)
def fitted(study_yaml: str, runs_csv: str, response: str, choice_json: str):
    """One CQA's fit (doe.analysis.CQAFit), computed once per study, data and model choice."""
    import json

    from doe.analysis import ModelChoice, fit_choice

    study, runs = _parsed(study_yaml, runs_csv)
    return fit_choice(study, runs, response, ModelChoice.from_dict(json.loads(choice_json)))


@st.cache_resource(max_entries=8, show_spinner=False)
def _parsed(study_yaml: str, runs_csv: str):
    """The study and results behind a cache key, parsed once for all CQAs (read only)."""
    import io

    import pandas as pd

    return Study.from_yaml(study_yaml), pd.read_csv(io.StringIO(runs_csv))


def current_fits(study: Study, runs, cqas) -> dict:
    """The fit of each CQA with the model choice saved on the Models page (default: reduced quadratic)."""
    return fits_with(study.to_yaml(), runs.to_csv(index=False), st.session_state.get("model_choices", {}), cqas)


def fits_with(study_yaml: str, runs_csv: str, choices: dict, cqas) -> dict:
    """The fit of each CQA with its choice in ``choices`` (default: reduced quadratic); no session
    state, so a background thread asks for the same cache entries as the pages."""
    import json

    from doe.analysis import default_choice

    return {cqa: fitted(study_yaml, runs_csv, cqa, json.dumps(choices.get(cqa, default_choice().to_dict())))
            for cqa in cqas}


@st.cache_resource(max_entries=8, show_spinner=False)
def predictive(_study: Study, _models: dict, key: str):
    """The posterior predictive of every fitted CQA (doe.space.build_predictive), once per :func:`space_key`."""
    from doe.space import build_predictive

    return build_predictive(_study, _models)


@st.cache_resource(max_entries=16, show_spinner=False)
def robust(_pm, key: str, threshold: float):
    """The robust set point (maximum probability over all factors) of a predictive, once per key."""
    from doe.space import robust_set_point

    return robust_set_point(_pm, threshold=threshold)


def space_key(study: Study, runs, models: dict, choices: dict | None = None) -> str:
    """Cache key of the design space of these fits: study, data and the model choices behind them
    (``choices``: the session's model choices unless given)."""
    import json

    from doe.analysis import data_version, default_choice

    choices = st.session_state.get("model_choices", {}) if choices is None else choices
    return study.to_yaml() + data_version(runs) + json.dumps(
        {n: choices.get(n, default_choice().to_dict()) for n in models}, sort_keys=True)


def current_fit(study: Study, runs, cqa: str):
    """The fit of one CQA (see current_fits)."""
    return current_fits(study, runs, [cqa])[cqa]


def lazy_tabs(labels: list[str], key: str) -> list:
    """Tabs whose content is run only while shown (test each with :func:`shown`).

    Opening a tab reruns the page (cached results make that quick), so the figures and tables
    of the hidden tabs are neither computed nor sent to the browser. Select one from code or a
    test with ``st.session_state[key] = label``.
    """
    return st.tabs(labels, key=key, on_change="rerun")


def shown(tab) -> bool:
    """Whether a tab from :func:`lazy_tabs` is the one shown."""
    return tab.open is not False


def show_table(frame, **kwargs) -> None:
    """A statistics table as :func:`doe.present.present` shows it: human labels, one number format,
    p-values as ``< 0.0001`` or 4 significant digits, blanks for n/a, row labels as a column; every
    row visible, numbers right-aligned."""
    from doe.present import label, numeric_columns, present

    shown = present(frame)
    config = {label(c): st.column_config.TextColumn(label(c), alignment="right")
              for c in numeric_columns(frame)}
    config.update(kwargs.pop("column_config", {}))
    height = min(35 * (len(shown) + 1) + 3, 1200)
    st.dataframe(shown, hide_index=True, width="stretch", height=height, column_config=config, **kwargs)
