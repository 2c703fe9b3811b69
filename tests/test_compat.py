"""The Streamlit internals the pages rely on (pages/_app/streamlit_compat.py), each checked against the installed
Streamlit: a failure names the Streamlit version and the compat function to update (issue 17).

What each test expects is read from Streamlit's own source (checked on 1.67.0):
``streamlit/runtime/runtime.py`` (``Runtime.__init__`` stores the singleton in ``Runtime._instance``),
``streamlit/testing/v1/app_test.py`` (AppTest puts a ``MagicMock`` there for each run),
``streamlit/runtime/pages_manager.py`` and ``streamlit/commands/navigation.py`` (the legacy ``pages/``
flag), ``streamlit/delta_generator.py`` (the once-per-process direct-execution check) and
``streamlit/runtime/scriptrunner/script_runner.py`` with ``streamlit/config.py`` (the post-run
``gc.collect(2)`` under the hidden option ``runner.postScriptGC``).
"""

from __future__ import annotations

import ast
import gc
import inspect
import io
import logging
import tokenize
from pathlib import Path

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

import pages._app.streamlit_compat as compat
from tests.conftest import ROOT


def _changed(internal: str, function: str) -> str:
    return (f"Streamlit {streamlit.__version__} changed {internal}: pages/_app/streamlit_compat.py:{function} must be "
            f"updated (checked on Streamlit {', '.join(compat.CHECKED_ON)})")


@pytest.fixture
def fresh_log(monkeypatch, caplog):
    """Compat's once-only log starts empty; its warnings are captured."""
    monkeypatch.setattr(compat, "_reported", set())
    caplog.set_level(logging.WARNING, logger=compat.__name__)
    return caplog


def _warnings(caplog, function: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == compat.__name__ and function in r.getMessage()]


# -- Runtime._instance: served_by_streamlit_server --------------------------------------------------
def test_a_streamlit_server_runtime_counts_as_served(monkeypatch):
    """``streamlit run`` builds one ``Runtime`` (web/server/server.py); built the same way here."""
    from streamlit.runtime import Runtime, RuntimeConfig
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    function = "served_by_streamlit_server"
    assert hasattr(Runtime, "_instance"), _changed("Runtime._instance (gone)", function)
    monkeypatch.setattr(Runtime, "_instance", None)  # put back after the test
    assert not compat.served_by_streamlit_server(), _changed("Runtime._instance (no runtime yet)", function)
    Runtime(RuntimeConfig(script_path=str(ROOT / "app.py"), media_file_storage=MemoryMediaFileStorage("/m"),
                          uploaded_file_manager=MemoryUploadedFileManager("/u"),
                          cache_storage_manager=MemoryCacheStorageManager()))
    assert type(Runtime._instance) is Runtime, _changed("where Runtime() keeps its singleton", function)
    assert compat.served_by_streamlit_server(), _changed("Runtime._instance", function)


def test_apptest_does_not_count_as_served():
    """Under AppTest the pages start no background threads (tests stay deterministic)."""
    at = AppTest.from_string("import streamlit as st\nfrom pages._app.streamlit_compat import served_by_streamlit_server\n"
                             "st.session_state['served'] = served_by_streamlit_server()\n")
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["served"] is False, _changed("AppTest's mock Runtime._instance",
                                                         "served_by_streamlit_server")
    assert not compat.served_by_streamlit_server()  # after the run: no runtime at all


def test_served_degrades_without_the_singleton(monkeypatch, fresh_log):
    from streamlit.runtime import Runtime

    monkeypatch.delattr(Runtime, "_instance", raising=False)
    assert compat.served_by_streamlit_server() is False
    assert compat.served_by_streamlit_server() is False
    logged = _warnings(fresh_log, "served_by_streamlit_server")
    assert len(logged) == 1 and streamlit.__version__ in logged[0]  # once, naming the version


# -- PagesManager.uses_pages_directory: leave_legacy_pages_mode --------------------------------------
def _app_in(folder: Path, body: str) -> AppTest:
    (folder / "pages").mkdir(exist_ok=True)
    (folder / "main.py").write_text("import streamlit as st\n" + body, encoding="utf-8")
    return AppTest.from_file(str(folder / "main.py"))


def test_the_legacy_pages_flag_behaves_as_assumed(monkeypatch, tmp_path):
    """A main script with a pages/ folder turns the class-wide flag on until st.navigation turns it
    off; Streamlit computes it only while it is None (so writing False sticks for the process) and
    the script runner reads it on every run."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import script_runner

    function = "leave_legacy_pages_mode"
    assert hasattr(PagesManager, "uses_pages_directory"), _changed("PagesManager.uses_pages_directory (gone)",
                                                                   function)
    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)  # put back after the test
    at = _app_in(tmp_path, "st.write('legacy')\n").run()
    assert not at.exception, at.exception
    assert PagesManager.uses_pages_directory is True, _changed("PagesManager.uses_pages_directory "
                                                               "(a pages/ folder no longer sets it)", function)
    at = _app_in(tmp_path, "def page():\n    st.write('page')\n\n\nst.navigation([st.Page(page)]).run()\n").run()
    assert not at.exception, at.exception
    assert PagesManager.uses_pages_directory is False, _changed("st.navigation's reset of "
                                                                "PagesManager.uses_pages_directory", function)
    PagesManager(str(tmp_path / "main.py"))
    assert PagesManager.uses_pages_directory is False, _changed("PagesManager.uses_pages_directory "
                                                                "(recomputed when already set)", function)
    assert "PagesManager.uses_pages_directory" in inspect.getsource(script_runner.ScriptRunner), \
        _changed("the script runner's reading of PagesManager.uses_pages_directory", function)


def test_leave_legacy_pages_mode_only_in_a_server(monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    assert compat.leave_legacy_pages_mode() is False  # under pytest: no server, flag untouched
    assert PagesManager.uses_pages_directory is True
    monkeypatch.setattr(compat, "served_by_streamlit_server", lambda: True)
    assert compat.leave_legacy_pages_mode() is True  # the caller reruns through app.py
    assert PagesManager.uses_pages_directory is False
    assert compat.leave_legacy_pages_mode() is False  # once only


def test_leave_legacy_pages_mode_degrades_without_the_flag(monkeypatch, fresh_log):
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.setattr(compat, "served_by_streamlit_server", lambda: True)
    monkeypatch.delattr(PagesManager, "uses_pages_directory", raising=False)
    assert compat.leave_legacy_pages_mode() is False
    assert compat.leave_legacy_pages_mode() is False
    assert len(_warnings(fresh_log, "leave_legacy_pages_mode")) == 1


# -- delta_generator._maybe_print_use_warning: run_direct_execution_check ----------------------------
def test_the_direct_execution_check_behaves_as_assumed(monkeypatch):
    """Streamlit runs the check when a page sends an element, does its costly part (env_util.is_repl:
    inspect.stack) once per process, and calling it ahead marks it done."""
    from streamlit import delta_generator, env_util

    function = "run_direct_execution_check"
    internal = "streamlit.delta_generator._maybe_print_use_warning"
    assert callable(getattr(delta_generator, "_maybe_print_use_warning", None)), _changed(f"{internal} (gone)",
                                                                                         function)
    assert hasattr(delta_generator, "_use_warning_has_been_displayed"), \
        _changed("streamlit.delta_generator._use_warning_has_been_displayed (gone)", function)
    real, sent = delta_generator._maybe_print_use_warning, []
    monkeypatch.setattr(delta_generator, "_maybe_print_use_warning", lambda: sent.append(True) or real())
    at = AppTest.from_string("import streamlit as st\nst.write('an element')\n").run()
    assert not at.exception, at.exception
    assert sent, _changed(f"{internal} (no longer called when a page sends an element)", function)

    monkeypatch.setattr(delta_generator, "_maybe_print_use_warning", real)
    monkeypatch.setattr(delta_generator, "_use_warning_has_been_displayed", False)
    stacks = []
    monkeypatch.setattr(env_util, "is_repl", lambda: stacks.append(True) or False)
    compat.run_direct_execution_check()
    assert delta_generator._use_warning_has_been_displayed, _changed(f"{internal} (once-per-process flag)",
                                                                     function)
    compat.run_direct_execution_check()
    delta_generator._maybe_print_use_warning()  # what the first page's first element calls
    assert stacks == [True], _changed(f"{internal} (its inspect.stack check, once per process)", function)


def test_the_direct_execution_check_degrades_without_it(monkeypatch, fresh_log):
    from streamlit import delta_generator

    monkeypatch.delattr(delta_generator, "_maybe_print_use_warning", raising=False)
    compat.run_direct_execution_check()  # nothing to do ahead, and no error
    compat.run_direct_execution_check()
    assert len(_warnings(fresh_log, "run_direct_execution_check")) == 1


# -- Streamlit's post-run garbage collection: exclude_from_post_run_gc -------------------------------
def test_streamlit_still_collects_garbage_after_every_script_run():
    """The freeze is worth doing only because Streamlit runs ``gc.collect(2)`` after each script run
    when the hidden option ``runner.postScriptGC`` is on (its default). AppTest's runner skips that
    step, so the real runner's code is read."""
    from streamlit import config
    from streamlit.runtime.scriptrunner import script_runner

    function = "exclude_from_post_run_gc"
    try:
        on = config.get_option("runner.postScriptGC")
    except Exception as error:  # noqa: BLE001 - an unknown option raises
        pytest.fail(_changed(f"the option runner.postScriptGC ({error})", function))
    assert on is True, _changed("the default of runner.postScriptGC", function)
    finished = inspect.getsource(script_runner.ScriptRunner._on_script_finished)
    assert 'config.get_option("runner.postScriptGC")' in finished and "gc.collect(2)" in finished, \
        _changed("the post-run garbage collection (ScriptRunner._on_script_finished)", function)


def test_exclude_from_post_run_gc_freezes_what_exists():
    before = gc.get_freeze_count()
    try:
        compat.exclude_from_post_run_gc(collect_first=True)
        assert gc.get_freeze_count() > before
    finally:
        if before == 0:
            gc.unfreeze()  # the rest of the test session scans as before


def test_exclude_from_post_run_gc_degrades_without_freeze(monkeypatch, fresh_log):
    monkeypatch.delattr(gc, "freeze", raising=False)
    compat.exclude_from_post_run_gc()
    compat.exclude_from_post_run_gc(collect_first=True)
    assert len(_warnings(fresh_log, "exclude_from_post_run_gc")) == 1


# -- only pages/_app/streamlit_compat.py touches Streamlit internals; doe/ never imports streamlit -----------------
#: Streamlit modules the pages may import: the public API (``st``), its exceptions and its config
#: (``streamlit.config.get_option`` is ``st.get_option``). Anything else is an internal.
PUBLIC_MODULES = {"streamlit", "streamlit.errors", "streamlit.config", "streamlit.components.v1"}
PUBLIC_FROM_STREAMLIT = {"config", "errors", "components"}
#: Names that only the compat module may use: the internals it wraps, and the garbage collector.
INTERNAL_NAMES = {"Runtime", "PagesManager", "uses_pages_directory", "_instance", "_maybe_print_use_warning",
                  "_use_warning_has_been_displayed", "postScriptGC"}


def _app_sources() -> list[Path]:
    return [ROOT / "app.py", *sorted(p for p in (ROOT / "pages").rglob("*.py")
                                     if p != ROOT / "pages" / "_app" / "streamlit_compat.py")]


def _internal_uses(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT).as_posix()
    found = [f"{where}:{t.start[0]}: {t.string}" for t in tokenize.generate_tokens(io.StringIO(text).readline)
             if t.type == tokenize.NAME and t.string in INTERNAL_NAMES]
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name == "gc" or
                   (a.name.split(".")[0] == "streamlit" and a.name not in PUBLIC_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "gc":
                bad = ["gc"]
            elif node.module == "streamlit":
                bad = [f"streamlit.{a.name}" for a in node.names if a.name not in PUBLIC_FROM_STREAMLIT]
            else:
                bad = [node.module] if node.module.startswith("streamlit.") and node.module not in PUBLIC_MODULES \
                    else []
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            bad = [ast.unparse(node)] if isinstance(root, ast.Name) and root.id in ("st", "streamlit") else []
        else:
            bad = []
        found += [f"{where}:{node.lineno}: {b}" for b in bad]
    return found


def test_only_the_compat_module_touches_streamlit_internals():
    found = [hit for path in _app_sources() for hit in _internal_uses(path)]
    assert not found, ("Streamlit internals (or the garbage collector Streamlit runs after each script run) "
                       "outside pages/_app/streamlit_compat.py; move them behind a function there, with a test here:\n"
                       + "\n".join(found))


def test_the_source_check_sees_an_internal():
    probe = ROOT / "pages" / "_app" / "streamlit_compat.py"  # the one file allowed to: the check must flag it
    hits = _internal_uses(probe)
    assert any("Runtime" in h for h in hits) and any("PagesManager" in h for h in hits)
    assert any(": gc" in h for h in hits) and any("_maybe_print_use_warning" in h for h in hits)


def test_the_library_never_imports_streamlit():
    found = []
    for path in sorted((ROOT / "doe").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                      if n.split(".")[0] == "streamlit"]
    assert not found, "doe/ must not import streamlit (the pages do):\n" + "\n".join(found)
