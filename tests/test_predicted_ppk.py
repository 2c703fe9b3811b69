"""Predicted Ppk at a set point (doe.lots.predicted_capability) against closed forms derived here.

One continuous factor X on 0..10, one CQA Y with LSL 4 and USL 16, a straight-line model fitted by least
squares to 12 fixed runs. Under the non-informative prior the posterior predictive of a new run at x0 is a
scaled Student t (Peterson 2004, eq. 2 with one response):

    y_new ~ b0 + b1 x0 + s sqrt(1 + h(x0)) t_df,   h(x0) = x0' (X'X)^-1 x0,   df = n - 2,

so its mean is b0 + b1 x0 and its SD s sqrt(1 + h) sqrt(df / (df - 2)); with set-point SD 0 the predicted
Ppk is min(USL - mean, mean - LSL) / (3 SD) and the fraction out of spec is the two t tails. Both are
computed below with numpy's own least squares and scipy's t, independent of doe.fit.

A CQA fitted as a mixed model (donors as a random effect): in the balanced one-way random-effects model REML
equals the ANOVA estimators, and a new run with a new donor has variance (1/(a n) + 1/n) MSA + (1 - 1/n) MSE
with Satterthwaite's (1946) df (c1 MSA + c2 MSE)^2 / ((c1 MSA)^2 / (a - 1) + (c2 MSE)^2 / (a (n - 1)))
(Searle, Casella & McCulloch, Variance Components, 1992, sec. 3.5), computed below from the mean squares.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from doe.errors import DoeError
from doe.fit import fit_model
from doe.lots import predicted_capability
from tests.conftest import make_study

XS = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
YS = np.array([6.1, 6.4, 7.9, 7.7, 9.2, 9.0, 10.6, 10.1, 11.8, 11.2, 13.4, 12.9])


@pytest.fixture(scope="module")
def case():
    study = make_study([{"name": "X", "low": 0, "high": 10, "units": "rpm"}],
                       [{"name": "Y", "lower": 4, "upper": 16}])
    fm = fit_model(study, pd.DataFrame({"X": XS, "Y": YS}), "Y", "linear")
    return study, fm


def closed_form(x0: float) -> tuple[float, float, float]:
    """Mean, SD and percent out of [4, 16] of the t predictive at x0, from numpy's least squares."""
    A = np.column_stack([np.ones_like(XS), XS])
    beta, *_ = np.linalg.lstsq(A, YS, rcond=None)
    df = len(XS) - 2
    s2 = float(np.sum((YS - A @ beta) ** 2)) / df
    a0 = np.array([1.0, x0])
    h = float(a0 @ np.linalg.inv(A.T @ A) @ a0)
    mean, scale = float(a0 @ beta), math.sqrt(s2 * (1 + h))
    sd = scale * math.sqrt(df / (df - 2))
    out = 100 * (stats.t.cdf((4 - mean) / scale, df) + stats.t.sf((16 - mean) / scale, df))
    return mean, sd, out


def test_no_setpoint_variation_is_the_scaled_t(case):
    study, fm = case
    mean, sd, out = closed_form(7.0)
    got = predicted_capability({"Y": fm}, study, {"X": 7.0}, None, "Y", draws=200_000, seed=3)
    assert got["mean"] == pytest.approx(mean, abs=0.01)
    assert got["sd"] == pytest.approx(sd, rel=0.02)
    assert got["ppk"] == pytest.approx(min(16 - mean, mean - 4) / (3 * sd), rel=0.02)
    assert got["expected_out_percent"] == pytest.approx(out, abs=0.05)
    assert got["draws"] == 200_000 and "Student-t" in got["method"]
    assert set(got) == {"ppk", "mean", "sd", "expected_out_percent", "draws", "method"}


def test_setpoint_variation_adds_slope_squared_times_variance(case):
    """With X ~ N(x0, tau^2), by the law of total variance Var(y) = E[Var(y | X)] + Var(E[y | X])
    = s^2 (1 + E h(X)) df / (df - 2) + b1^2 tau^2, and h is quadratic in x: E h(X) = h(x0) + tau^2 (X'X)^-1[1, 1]."""
    study, fm = case
    x0, tau = 5.0, 1.5
    A = np.column_stack([np.ones_like(XS), XS])
    beta, *_ = np.linalg.lstsq(A, YS, rcond=None)
    df = len(XS) - 2
    s2 = float(np.sum((YS - A @ beta) ** 2)) / df
    inv = np.linalg.inv(A.T @ A)
    a0 = np.array([1.0, x0])
    expected_h = float(a0 @ inv @ a0) + tau**2 * inv[1, 1]
    sd = math.sqrt(s2 * (1 + expected_h) * df / (df - 2) + beta[1] ** 2 * tau**2)
    got = predicted_capability({"Y": fm}, study, {"X": x0}, {"X": tau}, "Y", draws=200_000, seed=4)
    assert got["mean"] == pytest.approx(beta[0] + beta[1] * x0, abs=0.02)
    assert got["sd"] == pytest.approx(sd, rel=0.02)


def test_a_mixed_model_predicts_a_new_donor_from_the_mean_squares():
    a, n = 6, 4
    rng = np.random.default_rng(3)
    donor = np.repeat(np.arange(a), n)
    y = 50 + rng.normal(0, 2.0, a)[donor] + rng.normal(0, 1.0, a * n)
    study = make_study([{"name": "X", "low": 0, "high": 1}], [{"name": "Y", "lower": 46, "upper": 54}],
                       random_effects=["Donor"])
    runs = pd.DataFrame({"X": np.tile([0.0, 1.0], a * n // 2), "Donor": [f"D{d}" for d in donor], "Y": y})
    fm = fit_model(study, runs, "Y", "intercept")
    assert fm.mixed is not None
    means = pd.Series(y).groupby(donor).mean().to_numpy()
    msa = n * float(np.sum((means - y.mean()) ** 2)) / (a - 1)
    mse = float(np.sum((y - means[donor]) ** 2)) / (a * (n - 1))
    c1, c2 = 1 / (a * n) + 1 / n, 1 - 1 / n
    var = c1 * msa + c2 * mse
    df = var**2 / ((c1 * msa) ** 2 / (a - 1) + (c2 * mse) ** 2 / (a * (n - 1)))
    scale = math.sqrt(var)
    out = 100 * (stats.t.cdf((46 - y.mean()) / scale, df) + stats.t.sf((54 - y.mean()) / scale, df))
    got = predicted_capability({"Y": fm}, study, {"X": 0.5}, None, "Y", draws=200_000, seed=2)
    assert got["mean"] == pytest.approx(y.mean(), abs=0.05)
    assert got["expected_out_percent"] == pytest.approx(out, abs=0.5)
    assert got["sd"] == pytest.approx(scale * math.sqrt(df / (df - 2)), rel=0.03)
    assert "new level of every random effect" in got["method"]


def test_a_design_space_uses_its_own_fitted_model(case):
    from doe.space import DesignSpace

    study, fm = case
    space = DesignSpace.of(study, {"Y": fm}, draws=200)
    args = (study, {"X": 3.0}, {"X": 0.5}, "Y")
    assert predicted_capability(space, *args, draws=500) == predicted_capability({"Y": fm}, *args, draws=500)


def test_bad_input_is_refused_with_the_fix(case):
    study, fm = case
    with pytest.raises(DoeError, match="Unknown response 'Z'"):
        predicted_capability({"Y": fm}, study, {"X": 5.0}, None, "Z")
    with pytest.raises(DoeError, match="no value for 'X'"):
        predicted_capability({"Y": fm}, study, {}, None, "Y")
    with pytest.raises(DoeError, match="not a factor"):
        predicted_capability({"Y": fm}, study, {"X": 5.0}, {"Temp": 1.0}, "Y")
