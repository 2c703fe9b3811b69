"""What every page does with the open study: open, change and require it, its runs and fits, and
the tables and tabs the pages show them in."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from doe.study import Study
from pages._app import services
from pages._app.state import state
from pages._app.streamlit_compat import leave_legacy_pages_mode

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "msc_expansion.yaml"


def _run_through_app() -> None:
    """Rerun via app.py when Streamlit ran a page file directly.

    Streamlit treats a folder named pages/ as a legacy multipage app until the
    first st.navigation call in the process; a deep link opened right after a
    server start would otherwise run the page without app.py's navigation
    (pages/_app/streamlit_compat.leave_legacy_pages_mode).
    """
    if leave_legacy_pages_mode():
        st.rerun()


def current_study() -> Study | None:
    _run_through_app()
    open_example_on_first_visit()
    return state.study


def set_study(study: Study) -> None:
    """Make ``study`` current; a design made for another study no longer applies, and opening another
    study forgets what the pages kept for the previous one (pages/_app/state.STUDY_STATE)."""
    old = state.study
    if old is not None and old.name == study.name:
        from pages._app.study_sync import base_version

        base_version(old)  # the stored version this edit is made on, noted before the study changes
    state.study = study
    if old is None or old.digest != study.digest:
        del state.design
        del state.design_id
    if old is not None and old.name != study.name:
        state.forget_study()


def is_example(study: Study) -> bool:
    """True while the open study is the unchanged bundled example."""
    return study.digest == services.example_digest(str(EXAMPLE))


def load_example() -> None:
    set_study(Study.load(EXAMPLE))


def open_example_on_first_visit() -> None:
    """A new session opens the study in the link (?study=NAME), else the user's own last study, else (empty
    database) the bundled example, else none; never the latest study of anyone (pages/_app/first_visit.py)."""
    from pages._app.first_visit import open_first_study

    open_first_study()


def open_stored(name: str, version: int | None = None) -> None:
    """Open a study from the database with its current design (not the newest saved) and the model
    choices of its latest analysis."""
    from pages._app.db import read
    from pages._app.persist import latest

    set_study(read("load_study", name, version))
    del state.runs
    design_id = read("current_design", name)
    if design_id is not None:
        state.design = read("load_design", int(design_id))
        state.design_id = int(design_id)
    analysis = latest("analyses", name)
    state.model_choices = dict(analysis["choices"] or {}) if analysis is not None else {}


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
    from pages._app.persist import stored_runs

    study = state.study
    runs = stored_runs(study) if study is not None else None
    if runs is not None:
        return runs.drop(columns=list(RUN_META))
    return state.runs


def current_fits(study: Study, runs, cqas) -> dict:
    """The fit of each CQA with the model choice saved on the Models page (default: reduced quadratic)."""
    return services.fits(study, runs, state.model_choices, cqas)


def current_analysis(study: Study, runs):
    """Every CQA with results fitted with the session's model choices (doe.analysis.Analysis: its
    ``models``, ``failures`` and data version)."""
    from doe.analysis import responses_with_results

    return services.analysis(study, runs, state.model_choices, responses_with_results(study, runs))


def current_fit(study: Study, runs, cqa: str):
    """The fit of one CQA (see current_fits)."""
    return current_fits(study, runs, [cqa])[cqa]


def lazy_tabs(labels: list[str], key: str) -> list:
    """Tabs whose content is run only while shown (test each with :func:`shown`).

    Opening a tab reruns the page (cached results make that quick), so the figures and tables
    of the hidden tabs are neither computed nor sent to the browser. Select one from code or a
    test with ``at.session_state[key] = label``.
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
