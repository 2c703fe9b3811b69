"""The bundled example: our fitting engine recovers the simulation's true coefficients.

The example results are simulated (data/simulate_example.py) from the coded
coefficients in data/msc_example_truth.json. Fitting the full quadratic with
doe.fit, the 95 % confidence intervals should cover the true coefficients at
about the nominal rate; we require at least 85 % over all 252 coefficients of
the 7 CQAs (measured: 96 %, the same as an independent statsmodels OLS in
tests/test_runs.py). Only 4 residual degrees of freedom: the rate is noisy.
"""

import json

import numpy as np
import pytest

from doe.fit import fit_model
from doe.runs import read_results
from tests.conftest import EXAMPLE, ROOT


@pytest.fixture(scope="module")
def example():
    from doe.study import Study

    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    truth = json.loads((ROOT / "data" / "msc_example_truth.json").read_text())["cqas"]
    return study, runs, truth


def test_true_coefficients_inside_95pc_intervals(example):
    study, runs, truth = example
    covered = total = 0
    for name, spec in truth.items():
        fm = fit_model(study, runs, name, "quadratic")
        table = fm.coefficients.set_index("term")
        for column, true in spec["coefficients"].items():
            row = table.loc[column]
            covered += row.ci_low <= true <= row.ci_high
            total += 1
    assert total == 7 * 36
    assert covered / total >= 0.85


def test_residual_sd_near_simulation_noise(example):
    study, runs, truth = example
    ratios = [fit_model(study, runs, n, "quadratic").rmse / s["noise_sd"] for n, s in truth.items()]
    # RMSE has 4 df: chi-square(4)/4 puts 95 % of sqrt-ratios in about 0.35..1.7
    assert all(0.3 < r < 1.9 for r in ratios), ratios
    assert 0.6 < float(np.median(ratios)) < 1.4
