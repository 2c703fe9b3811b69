"""The shape of the package (issue 17): how the modules of ``doe`` import each other, and its packaging.

- No import cycles among ``doe`` modules at import time. A static scan of the import statements that
  run when a module is imported (module level, including ``if``/``try`` blocks and class bodies; not
  ``if TYPE_CHECKING:`` blocks, not function bodies). Importing ``doe.a.b`` also runs the
  ``__init__`` of ``doe.a``, so that edge is counted too.
- Function-level ("lazy") imports are allowed; those that stand in for a cycle (the imported module
  imports the importer back, at import time) are listed in :data:`LAZY_CYCLES`, which may only shrink.
- No ``_private`` name crosses the module that owns it: ``from doe.fit import _complete`` in
  ``doe/space.py`` is counted; a private module used inside its own package (``doe._format`` by any
  ``doe`` module, ``doe.store._values`` by ``doe.store._store``) is not. There are none
  (:data:`PRIVATE_IMPORTS` is empty since issue 17 made the ten of its first step public).
- ``doe`` never brings in ``streamlit``, even through another package: every module is imported in a
  fresh interpreter (tests/test_compat.py scans ``doe/`` for an ``import streamlit`` statement).
- pyproject.toml's dependencies are requirements.txt's (and its ``dev`` extra requirements-dev.txt's);
  tests edit no ``sys.path`` (pytest's ``pythonpath`` does it).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

DOE = ROOT / "doe"
#: Alembic scripts: loaded by Alembic from their folder, not imported as modules (env.py needs its context).
NOT_IMPORTABLE = ("doe.__main__", "doe.store.migrations")

#: Module-level import cycles known today (each a frozenset of module names). Issue 17 removes them;
#: none is known now, so a new cycle fails.
KNOWN_CYCLES: set[frozenset[str]] = set()

#: Function-level imports that would close a cycle at module level: (importer, imported module). Allowed
#: (the import runs when the function does, after both modules exist), listed so that the cycles are seen
#: and may be removed by issue 17's packages. Remove an entry when its import goes.
LAZY_CYCLES: set[tuple[str, str]] = set()

#: ``_private`` names imported from outside the module (or package) that owns them, as
#: (importer, imported path): none since issue 17 made them public; a new entry fails.
PRIVATE_IMPORTS: set[tuple[str, str]] = set()


# -- the scan --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Import:
    """One imported name: ``importer`` imports ``path`` (``a.b.c`` for ``import a.b.c`` or ``from a.b
    import c``) at ``line``, ``when`` it runs: "top" (on import), "function" or "type-checking"."""

    importer: str
    path: str
    line: int
    when: str


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def doe_modules() -> dict[str, Path]:
    """Every module of the ``doe`` package, by dotted name."""
    return {_module_name(p): p for p in sorted(DOE.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str, path: Path) -> list[Import]:
    """Every import statement of one module, with when it runs."""
    found: list[Import] = []
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, when: str) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(name, a.name, node.lineno, when) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, name, is_package)
            found.extend(Import(name, f"{base}.{a.name}", node.lineno, when) for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.iter_child_nodes(node):
                visit(child, "function")
            return
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and when == "top":
            for child in node.body:
                visit(child, "type-checking")
            for child in node.orelse:
                visit(child, when)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, when)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), "top")
    return found


def all_imports() -> list[Import]:
    return [imp for name, path in doe_modules().items() for imp in imports_of(name, path)]


def _target(path: str, modules: dict[str, Path]) -> str | None:
    """The ``doe`` module an imported path loads (the longest module prefix), or None outside ``doe``."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def _loaded(importer: str, target: str) -> set[str]:
    """The module and the packages above it whose ``__init__`` the import runs (not the importer's own)."""
    parts = target.split(".")
    chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {m for m in chain if m != importer and not importer.startswith(m + ".")}


def import_graph(when: str = "top") -> dict[str, set[str]]:
    """Module -> the ``doe`` modules its ``when`` imports load."""
    modules = doe_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in all_imports():
        target = _target(imp.path, modules)
        if imp.when == when and target is not None:
            graph[imp.importer] |= {m for m in _loaded(imp.importer, target) if m in modules}
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    reach = {m: _reach(graph, m) for m in graph}
    return {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in graph if m in reach[m]}


def lazy_cycles() -> set[tuple[str, str]]:
    """(importer, module) for each function-level import of a module that imports the importer back."""
    modules, top = doe_modules(), import_graph("top")
    out = set()
    for imp in all_imports():
        target = _target(imp.path, modules)
        if imp.when == "function" and target is not None and target != imp.importer:
            back = set().union(*(_reach(top, m) | {m} for m in _loaded(imp.importer, target) if m in modules))
            if imp.importer in back:
                out.add((imp.importer, target))
    return out


def _owner_allows(importer: str, path: str) -> bool:
    """True when every ``_private`` part of ``path`` is used inside the module or package owning it."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            if importer != owner and not importer.startswith(owner + "."):
                return False
    return True


def private_imports() -> set[tuple[str, str]]:
    """(importer, path) for each ``doe`` import of a ``_private`` name from outside the name's owner."""
    return {(imp.importer, imp.path) for imp in all_imports()
            if imp.path.split(".")[0] == "doe" and not _owner_allows(imp.importer, imp.path)}


# -- the checks ------------------------------------------------------------------------------------------

def test_the_scan_sees_imports_where_they_run(tmp_path):
    """The scanner on a hand-written module: when each import runs, and relative imports resolved."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nimport doe.fit\nfrom . import _sur\n"
                     "if TYPE_CHECKING:\n    from doe.study import Study\nelse:\n    import doe.model\n"
                     "try:\n    from doe.space import x\nexcept ImportError:\n    pass\n"
                     "class C:\n    from doe.errors import DoeError\n"
                     "def f():\n    from doe.analysis import fit_all\n    return lambda: __import__('x')\n")
    got = {(i.path, i.when) for i in imports_of("doe.probe", probe)}
    assert got == {("typing.TYPE_CHECKING", "top"), ("doe.fit", "top"), ("doe._sur", "top"),
                   ("doe.study.Study", "type-checking"), ("doe.model", "top"), ("doe.space.x", "top"),
                   ("doe.errors.DoeError", "top"), ("doe.analysis.fit_all", "function")}


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == {frozenset("abc"), frozenset("e")}


def test_private_rule_allows_a_package_its_own_private_modules():
    assert _owner_allows("doe.store._store", "doe.store._values.META")
    assert _owner_allows("doe.space", "doe._sur")  # a private module of doe, used inside doe
    assert not _owner_allows("doe.runs", "doe.store._values")
    assert not _owner_allows("doe.space", "doe.fit._complete")
    assert _owner_allows("doe.fit", "doe.fit._complete") and _owner_allows("doe.space", "doe.fit.FittedModel")


def test_no_import_cycles_among_doe_modules():
    found = cycles(import_graph("top"))
    new = found - KNOWN_CYCLES
    assert not new, "import cycles at module level:\n" + "\n".join(" <-> ".join(sorted(c)) for c in new)
    gone = KNOWN_CYCLES - found
    assert not gone, f"cycles no longer there: remove them from KNOWN_CYCLES: {sorted(map(sorted, gone))}"


def test_function_level_imports_standing_in_for_cycles_are_the_known_ones():
    found = lazy_cycles()
    assert not found - LAZY_CYCLES, ("a function-level import now hides an import cycle (the module it imports "
                                     f"imports this one back): {sorted(found - LAZY_CYCLES)}")
    assert not LAZY_CYCLES - found, f"no longer a cycle: remove from LAZY_CYCLES: {sorted(LAZY_CYCLES - found)}"


def test_private_imports_across_modules_do_not_grow():
    found = private_imports()
    assert not found - PRIVATE_IMPORTS, (
        "a _private name is imported from outside the module that owns it; make it public (or move the "
        f"code): {sorted(found - PRIVATE_IMPORTS)}")
    assert not PRIVATE_IMPORTS - found, f"gone: remove from PRIVATE_IMPORTS: {sorted(PRIVATE_IMPORTS - found)}"


def private_doe_imports_of_the_app() -> list[str]:
    """Imports of a ``doe`` path with a ``_private`` part by app.py or pages/ (``file:line path``)."""
    found = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for imp in imports_of(name, path):
            parts = imp.path.split(".")
            if parts[0] == "doe" and any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
                found.append(f"{path.relative_to(ROOT)}:{imp.line} {imp.path}")
    return found


def test_the_app_uses_only_the_engines_public_names():
    """The pages are thin callers of the engine's public API: no ``doe._module`` or ``_name``."""
    assert private_doe_imports_of_the_app() == []


def test_importing_every_doe_module_never_imports_streamlit():
    names = sorted(m for m in doe_modules() if not m.startswith(NOT_IMPORTABLE))
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [], "importing doe loaded streamlit"


# -- packaging --------------------------------------------------------------------------------------------

def _requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return [s for s in (line.split("#")[0].strip() for line in lines) if s and not s.startswith("-r")]


def test_pyproject_dependencies_are_the_requirements_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["dependencies"] == _requirements("requirements.txt")
    assert project["optional-dependencies"]["dev"] == _requirements("requirements-dev.txt")
    assert project["requires-python"] == ">=3.11"
    module, _, func = project["scripts"]["doe"].partition(":")
    assert (module, func) == ("doe.cli", "main")
    from doe.cli import main

    assert callable(main)


def test_every_marker_used_is_registered_and_tests_leave_sys_path_alone():
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert {m.split(":")[0] for m in ini["markers"]} == {"slow", "browser", "postgres"}
    assert ini["pythonpath"] == ["."]
    edits = [p.name for p in sorted((ROOT / "tests").glob("*.py"))
             if "sys.path." + "insert" in p.read_text(encoding="utf-8")
             or "sys.path." + "append" in p.read_text(encoding="utf-8")]
    assert not edits, f"tests edit sys.path (pyproject's pythonpath does it): {edits}"


def _collected(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return {line.split("[")[0] for line in out.stdout.splitlines() if "::" in line}


def test_markers_select_the_postgres_and_browser_tests():
    """conftest marks by fixture and parameter; pytest -m selects (without PostgreSQL they would skip)."""
    files = ("tests/test_store.py", "tests/test_tamper.py", "tests/test_e2e_store.py")
    pg, web = _collected("-m", "postgres", *files), _collected("-m", "browser", *files)
    assert {"tests/test_store.py::test_postgres_round_trip_and_chain",  # usefixtures("pg_required")
            "tests/test_store.py::test_replicas_starting_together_migrate_once",  # pg_url
            "tests/test_store.py::test_an_empty_database_made_in_one_step_equals_running_every_revision",  # param
            "tests/test_tamper.py::test_a_deleted_run_is_named"} <= pg  # fixture parameter "postgresql"
    assert "tests/test_store.py::test_reopen_keeps_data" not in pg and not pg & web
    assert web == {"tests/test_e2e_store.py::test_saved_results_survive_a_killed_server",
                   "tests/test_e2e_store.py::test_newer_database_is_refused_with_a_clear_message"}
