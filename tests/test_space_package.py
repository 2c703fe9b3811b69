"""The doe.space package (issue 17): its public names, what importing it loads, and DesignSpace.of an analysis."""

import json
import os
import subprocess
import sys

import numpy as np

import doe.space
from doe.analysis import ModelChoice, fit_all
from doe.space import DesignSpace
from tests.conftest import ROOT
from tests.test_assurance import _two_cqas


def test_every_public_name_is_exported_and_owned_by_the_package():
    for name in doe.space.__all__:
        obj = getattr(doe.space, name)
        owner = getattr(obj, "__module__", None)
        if owner is not None and callable(obj):
            assert owner.startswith("doe.space.") or name == "DEFAULT_THRESHOLD", (name, owner)
    assert not [n for n in doe.space.__all__ if n.startswith("_")]
    assert len(set(doe.space.__all__)) == len(doe.space.__all__)


def test_importing_the_package_loads_no_figures_and_no_store():
    """Figures live in doe.plots and the before/after comparison (which reads the store and refits) is
    the on-demand module doe.space.compare: the engine's import stays light."""
    code = ("import json, sys\nimport doe.space\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'sqlalchemy') "
            "or m in ('doe.space.compare', 'doe.versions', 'doe.store'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_design_space_of_an_analysis_uses_its_models():
    study, runs, fits, _ = _two_cqas(sd=0.3)
    analysis = fit_all(study, runs, default=ModelChoice(model="quadratic"))
    ds = DesignSpace.of(study, analysis, seed=3, draws=1000, threshold=0.8)
    direct = DesignSpace.of(study, fits, seed=3, draws=1000, threshold=0.8)  # fit_model called directly
    assert ds.pm.spec_names == direct.pm.spec_names == ["Y1", "Y2"]
    np.testing.assert_array_equal(ds.grid("A", "B", n=9).probability, direct.grid("A", "B", n=9).probability)
    assert ds.robust_set_point() == direct.robust_set_point()


def test_design_space_of_reads_models_not_the_items():
    """An object with ``.models`` is read through it (an analysis's items are CQAFits, failures included)."""
    study, runs, fits, _ = _two_cqas(sd=0.3)

    class WithModels(dict):
        models = fits

    ds = DesignSpace.of(study, WithModels(Y1="no model here"), draws=1000)
    direct = DesignSpace.of(study, fits, draws=1000)
    assert ds.robust_set_point() == direct.robust_set_point()
