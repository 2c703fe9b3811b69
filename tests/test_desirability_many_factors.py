"""The desirability optimum with many factors (issue 21): when the tensor grid of the polynomial surrogate
is too large (3^12 nodes for 12 factors, quadratic), the surrogate fits only the model's own monomials on
random nodes. Checked here against the tensor-grid surrogate (forced onto the same path by lowering its
cap) and against the fitted models' own predictions - an independent computation of the same polynomial."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import doe.desirability as desirability
from doe.analysis import ModelChoice, fit_all
from doe.runs import read_results
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT


@pytest.fixture(scope="module")
def example():
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    return study, fit_all(study, runs, default=ModelChoice(model="quadratic")).models


def test_monomial_surrogate_equals_the_model_and_the_tensor_surrogate(example, monkeypatch):
    study, models = example
    fixed = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE"}
    tensor = desirability.optimize_desirability(models, study, fixed=fixed, seed=3)
    space = desirability._Space(study, fixed, None, "cube", None)
    fm = models["Viability"]
    monkeypatch.setattr(desirability, "_MAX_TENSOR_ROWS", 8)  # 3 x 3 tensor nodes > 8: the monomial path
    sur = desirability._Surrogate(fm, space, np.random.default_rng(0))
    assert sorted(map(tuple, sur.E.astype(int))) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]
    X = np.random.default_rng(1).uniform(-1, 1, size=(50, 2))
    truth = fm.predict(space.frame(X, np.zeros(50, dtype=int)), interval=None)["mean"].to_numpy(float)
    np.testing.assert_allclose(sur(X, np.zeros(50, dtype=int)), truth, rtol=1e-10)
    monomials = desirability.optimize_desirability(models, study, fixed=fixed, seed=3)
    assert monomials["desirability"] == pytest.approx(tensor["desirability"], rel=1e-6)
    at = pd.DataFrame([monomials["settings"]])
    for name, value in monomials["predictions"].items():
        assert value == pytest.approx(float(models[name].predict(at, interval=None)["mean"].iloc[0]), rel=1e-10)
