"""Every use of a Streamlit internal, in one place (issue 17).

The pages need four things Streamlit has no public API for; each lives behind one small function
here, and tests/test_compat.py checks that the internal still exists and behaves as assumed (a
failure names the Streamlit version and the function to update). At run time a missing or renamed
internal costs only the optimisation it served: the function logs once (``logging``, never a
traceback in the browser) and the app goes on without it.

Each function, the internal it uses, and the Streamlit versions it was checked on (``CHECKED_ON``):

- ``served_by_streamlit_server``: ``streamlit.runtime.Runtime._instance`` (the process singleton);
- ``leave_legacy_pages_mode``: ``streamlit.runtime.pages_manager.PagesManager.uses_pages_directory``
  (a class attribute, written);
- ``run_direct_execution_check``: ``streamlit.delta_generator._maybe_print_use_warning``;
- ``exclude_from_post_run_gc``: Streamlit's ``gc.collect(2)`` after every script run (hidden config
  option ``runner.postScriptGC``).

Nothing else in pages/ or app.py touches Streamlit internals (tests/test_compat.py checks the
source).
"""

from __future__ import annotations

import logging

#: The Streamlit versions these internals were checked on (``streamlit.__version__``).
CHECKED_ON = ("1.67.0",)

_log = logging.getLogger(__name__)
_reported: set[str] = set()


def _streamlit_version() -> str:
    try:
        import streamlit

        return str(streamlit.__version__)
    except Exception:  # noqa: BLE001 - only for the log message
        return "unknown"


def _degraded(function: str, internal: str, error: BaseException) -> None:
    """Log once per function that ``internal`` is unavailable and the app runs without it."""
    if function in _reported:
        return
    _reported.add(function)
    _log.warning("Streamlit %s changed %s (%s: %s): the app runs without this optimisation; "
                 "pages/_app/streamlit_compat.py:%s must be updated (checked on Streamlit %s)", _streamlit_version(),
                 internal, type(error).__name__, error, function, ", ".join(CHECKED_ON))


def served_by_streamlit_server() -> bool:
    """True in a real Streamlit server (``streamlit run``); False under AppTest or plain Python.

    Background work (pages/_app/speed.py) and the legacy-mode rerun (``leave_legacy_pages_mode``) run
    only in a server: under ``streamlit.testing.v1.AppTest`` the page tests stay deterministic,
    without threads.

    Returns
    -------
    bool
        Whether the process-wide ``Runtime`` singleton is a real ``Runtime``. ``Runtime.__init__``
        stores itself in the class attribute ``Runtime._instance``; AppTest puts a ``MagicMock`` there
        for each run and ``None`` after it. False (logged once) when the internal is missing.

    Notes
    -----
    Internal: ``streamlit.runtime.Runtime._instance``; checked on Streamlit 1.67.0.
    """
    try:
        from streamlit.runtime import Runtime

        return type(Runtime._instance) is Runtime
    except (ImportError, AttributeError, TypeError) as error:
        _degraded("served_by_streamlit_server", "streamlit.runtime.Runtime._instance", error)
        return False


def leave_legacy_pages_mode() -> bool:
    """In a server, switch off Streamlit's legacy ``pages/`` mode; True when it was on.

    Streamlit treats a folder named ``pages/`` next to the main script as a legacy multipage app
    (class attribute ``PagesManager.uses_pages_directory``) until the first ``st.navigation`` call in
    the process sets it to False; a deep link opened right after a server start would otherwise run
    the page file without app.py's navigation. The caller reruns (``st.rerun()``) when this returns
    True, and the rerun goes through app.py.

    Returns
    -------
    bool
        True when the flag was set and is now False. False outside a server (AppTest resets the flag
        on every run), when the flag is already off, or (logged once) when the internal is missing.

    Notes
    -----
    Internal: ``streamlit.runtime.pages_manager.PagesManager.uses_pages_directory``, read by the
    script runner on every run and written by ``st.navigation``; checked on Streamlit 1.67.0.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager

        if not served_by_streamlit_server() or not PagesManager.uses_pages_directory:
            return False
        PagesManager.uses_pages_directory = False
        return True
    except (ImportError, AttributeError, TypeError) as error:
        _degraded("leave_legacy_pages_mode", "PagesManager.uses_pages_directory", error)
        return False


def run_direct_execution_check() -> None:
    """Run Streamlit's once-per-process "not run with ``streamlit run``" check now.

    Streamlit checks on the first element any page sends whether it runs in a REPL:
    ``inspect.stack()``, which resolves the file of every loaded module. Called in a
    background thread at server start (pages/_app/speed.py), the first page a user opens does not wait
    for it. It prints nothing under ``streamlit run``.

    Notes
    -----
    Internal: ``streamlit.delta_generator._maybe_print_use_warning`` (once per process, through the
    module flag ``_use_warning_has_been_displayed``); checked on Streamlit 1.67.0. Any error is
    logged once and ignored: the check then runs on the first page, as without this function.
    """
    try:
        from streamlit import delta_generator

        delta_generator._maybe_print_use_warning()
    except Exception as error:  # noqa: BLE001 - only an optimisation: never stop the server start
        _degraded("run_direct_execution_check", "streamlit.delta_generator._maybe_print_use_warning", error)


def exclude_from_post_run_gc(collect_first: bool = False) -> None:
    """Take every object alive now out of the garbage collector's scans (``gc.freeze``).

    Streamlit runs a full garbage collection after every script run (hidden config option
    ``runner.postScriptGC``, default True) and holds up the "finished" message while it runs: with
    scipy, statsmodels and plotly loaded, that scan of ~200,000 long-lived objects is a noticeable
    part of every interaction. Freezing what exists (modules, classes: kept for the life of the
    process) leaves only the objects made later to scan.

    Parameters
    ----------
    collect_first : bool
        Collect garbage before freezing, so no garbage is frozen with the long-lived objects.

    Notes
    -----
    Relies on Streamlit's post-run ``gc.collect(2)`` (``ScriptRunner._run_script``, when
    ``runner.postScriptGC`` is set); checked on Streamlit 1.67.0. Without that collection the freeze
    is harmless and merely unneeded; without ``gc.freeze`` (not CPython) nothing is done.
    """
    import gc

    try:
        if collect_first:
            gc.collect()
        gc.freeze()
    except AttributeError as error:
        _degraded("exclude_from_post_run_gc", "gc.freeze", error)
