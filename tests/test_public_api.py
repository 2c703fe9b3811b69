"""The engine's public API (issue 17): ``doe/__init__.py`` re-exports the result objects and the calls
that make them (scikit-learn's convention), loading each on first use so that ``import doe`` stays cheap.

Independent checks: every public name is the very object its owning module defines; the names a type
checker sees (the ``if TYPE_CHECKING`` imports, read from the source) are exactly ``__all__``; a fresh
interpreter that imports ``doe`` has loaded none of the numerical or plotting libraries.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest

import doe
from tests.conftest import ROOT

INIT = ROOT / "doe" / "__init__.py"


def _type_checking_names() -> dict[str, str]:
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                names.update({a.asname or a.name: imp.module for a in imp.names})
    return names


def test_every_public_name_is_its_owners_object():
    owners = _type_checking_names()
    assert sorted(doe.__all__) == sorted(owners), "doe.__all__ and the TYPE_CHECKING imports differ"
    for name in doe.__all__:
        assert getattr(doe, name) is getattr(importlib.import_module(owners[name]), name), name
    assert set(doe.__all__) <= set(dir(doe))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fit_everything'"):
        doe.fit_everything  # noqa: B018


def test_importing_doe_loads_no_heavy_library():
    code = ("import sys, doe; heavy = ('numpy', 'pandas', 'scipy', 'statsmodels', 'plotly', 'sqlalchemy', "
            "'doe.fit', 'doe.space'); print(','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_result_objects_are_public():
    for name in ("Study", "Design", "FittedModel", "Analysis", "DesignSpace", "Decision"):
        assert isinstance(getattr(doe, name), type), name


def test_study_and_design_digests_follow_their_content():
    """The app's cache keys: SHA-256 of the study's YAML and of the design table's CSV, recomputed here with
    hashlib; a copy has the same digest, a changed setting another."""
    import hashlib

    from doe.example import DESIGN_FILE, STUDY_FILE

    study = doe.Study.load(STUDY_FILE)
    design = doe.read_design(study, DESIGN_FILE)
    assert study.digest == hashlib.sha256(study.to_yaml().encode()).hexdigest()
    assert design.digest == hashlib.sha256(design.to_csv(with_responses=False).encode()).hexdigest()
    assert doe.Design(study, design.table.copy(), design.kind).digest == design.digest
    changed = design.table.copy()
    changed.loc[0, "Agitation"] = float(changed.loc[0, "Agitation"]) + 1
    assert doe.Design(study, changed, design.kind).digest != design.digest
