"""Predictions of a mixed model: the variance of the mean and of a new run (with a new donor, or at the donors'
average) and their Satterthwaite df, against the classical mean-square formulas of the balanced one-way
random-effects model (Satterthwaite 1946; Searle, Casella & McCulloch 1992, sec. 3.5): there REML equals the
ANOVA estimators, Var(grand mean) = MSA / (a n), and a sum of mean squares c1 MSA + c2 MSE has df
(c1 MSA + c2 MSE)^2 / ((c1 MSA)^2 / (a - 1) + (c2 MSE)^2 / (a (n - 1)))."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doe.fit import fit_model
from doe.mixed import fit_mixed
from doe.study import Study

A, N = 6, 4


def _data(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    donor = np.repeat(np.arange(A), N)
    y = 50 + rng.normal(0, 2.0, A)[donor] + rng.normal(0, 1.0, A * N)
    return y, donor


def _classical(y: np.ndarray, donor: np.ndarray) -> tuple[float, float]:
    means = pd.Series(y).groupby(donor).mean().to_numpy()
    msa = N * float(np.sum((means - y.mean()) ** 2)) / (A - 1)
    mse = float(np.sum((y - means[donor]) ** 2)) / (A * (N - 1))
    return msa, mse


def _satterthwaite(c1: float, c2: float, msa: float, mse: float) -> tuple[float, float]:
    v = c1 * msa + c2 * mse
    return v, v**2 / ((c1 * msa) ** 2 / (A - 1) + (c2 * mse) ** 2 / (A * (N - 1)))


@pytest.mark.parametrize("new_levels, c1, c2", [
    (None, 1 / (A * N), 0.0),                   # the grand mean: MSA / (a n), a - 1 df
    (True, 1 / (A * N) + 1 / N, 1 - 1 / N),     # + s2_donor + s2 = (MSA - MSE) / n + MSE
    (False, 1 / (A * N), 1.0),                  # + s2 only
])
def test_prediction_variance_and_df_match_mean_squares(new_levels, c1: float, c2: float) -> None:
    y, donor = _data()
    msa, mse = _classical(y, donor)
    assert msa > mse  # a positive donor component: REML = ANOVA estimators
    fit = fit_mixed(np.ones((A * N, 1)), y, ["Intercept"], ["Intercept"], {"Donor": donor})
    assert fit.components["Donor"] == pytest.approx((msa - mse) / N, rel=1e-6)
    var, df = fit.predictive_variance(np.ones((1, 1)), new_levels=new_levels)
    want_var, want_df = _satterthwaite(c1, c2, msa, mse)
    if new_levels is None:
        want_df = A - 1
    assert var[0] == pytest.approx(want_var, rel=1e-6)
    assert df[0] == pytest.approx(want_df, rel=1e-4)


def test_fitted_model_prediction_interval_uses_the_mixed_model() -> None:
    from scipy import stats

    y, donor = _data(5)
    study = Study.from_yaml("name: t\nfactors: [{name: A, low: 0, high: 1}]\nresponses: [{name: Y}]\n"
                            "random_effects: [Donor]\n")
    runs = pd.DataFrame({"A": np.tile([0.0, 1.0], A * N // 2), "Donor": [f"D{d}" for d in donor], "Y": y})
    fm = fit_model(study, runs, "Y", "linear")
    assert fm.mixed is not None
    row = pd.DataFrame({"A": [0.5]})
    pred = fm.predict(row, "prediction").iloc[0]
    var, df = fm.mixed.predictive_variance(np.array([[1.0, 0.0]]), new_levels=True)
    half = stats.t.ppf(0.975, df[0]) * np.sqrt(var[0])
    assert pred["mean"] == pytest.approx(fm.mixed.coef[0])
    assert (pred["lower"], pred["upper"]) == pytest.approx((fm.mixed.coef[0] - half, fm.mixed.coef[0] + half))
    ols = fit_model(study, runs.drop(columns="Donor"), "Y", "linear").predict(row, "prediction").iloc[0]
    assert pred["upper"] - pred["lower"] > ols["upper"] - ols["lower"]  # donor-to-donor variation widens it


def test_equations_and_predictions_use_the_gls_coefficients() -> None:
    y, donor = _data(7)
    keep = np.ones(A * N, dtype=bool)
    keep[[1, 2, 5]] = False  # unbalanced: GLS differs from least squares
    study = Study.from_yaml("name: t\nfactors: [{name: A, low: 0, high: 1}]\nresponses: [{name: Y}]\n"
                            "random_effects: [Donor]\n")
    a = np.tile([0.0, 1.0], A * N // 2)
    runs = pd.DataFrame({"A": a, "Donor": [f"D{d}" for d in donor], "Y": y + 2 * a})[keep]
    fm = fit_model(study, runs, "Y", "linear")
    assert fm.mixed is not None
    assert np.allclose(fm.coef, fm.mixed.coef) and not np.allclose(fm.coef, fm.least_squares.coef)
    assert f"{fm.mixed.coef[1]:.4g}"[:5] in fm.equation_coded
    assert fm.predict(pd.DataFrame({"A": [1.0]}), None)["mean"].iloc[0] == pytest.approx(
        fm.mixed.coef[0] + fm.mixed.coef[1])
