"""Box-Cox advice follows Design-Expert's rule, checked against scipy's independent Box-Cox.

Design-Expert recommends no transform when the 95 % confidence interval of lambda contains 1;
otherwise the conventional power inside the interval nearest the best lambda. The lambda and
its interval are compared with ``scipy.stats.boxcox(y, alpha=0.05)`` (intercept-only model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from doe.fit import box_cox, box_cox_advice, fit_model
from doe.study import Factor, Response, Study


def _case(y: np.ndarray):
    study = Study("bc", [Factor("A", low=0, high=1)], [Response("Y")])
    runs = pd.DataFrame({"A": np.linspace(0, 1, len(y)), "Y": y})
    return study, runs


def test_interval_containing_one_recommends_no_transform():
    # normal data: scipy's best lambda is 0.12 with 95 % interval (-1.21, 1.47), so 1 is inside;
    # the nearest conventional power to the best lambda would be 0 (log), which is not the advice.
    y = np.random.default_rng(3).normal(20, 4, 15)
    _, lam, (lo, hi) = stats.boxcox(y, alpha=0.05)
    assert lo < 1 < hi and abs(lam - 0) < abs(lam - 1)
    study, runs = _case(y)
    out = box_cox(study, runs, "Y", model=[])
    assert out["best"] == pytest.approx(lam, abs=1e-4)
    assert out["ci"] == pytest.approx([lo, hi], abs=1e-4)
    assert out["suggested"] == 1.0 and out["one_in_ci"]
    assert out["advice"].startswith("No transform recommended")
    fm = fit_model(study, runs, "Y", "mean", transform="boxcox")
    assert fm.boxcox_lambda == 1.0


def test_lognormal_data_get_the_log():
    y = np.exp(np.random.default_rng(0).normal(1, 0.8, 30))
    _, lam, (lo, hi) = stats.boxcox(y, alpha=0.05)
    assert hi < 1 and lo < 0 < hi
    study, runs = _case(y)
    out = box_cox(study, runs, "Y", model=[])
    assert out["best"] == pytest.approx(lam, abs=1e-4)
    assert out["ci"] == pytest.approx([lo, hi], abs=1e-4)
    assert out["suggested"] == 0.0 and not out["one_in_ci"]
    assert "natural log" in out["advice"]


@pytest.mark.parametrize("best, lo, hi, expected", [
    (0.3, -0.4, 1.0, 1.0),      # 1 on the interval's edge: still no transform
    (0.3, -0.4, 0.9, 0.5),      # 0 and 0.5 inside, 0.5 nearer the best lambda
    (-0.8, -1.3, -0.2, -1.0),   # inverse
    (0.8, 0.6, 0.9, 0.8),       # no conventional power inside: the best lambda itself
])
def test_rule(best, lo, hi, expected):
    lam, text = box_cox_advice(best, lo, hi)
    assert lam == expected
    assert ("No transform" in text) == (expected == 1.0)


def test_open_interval_is_said_to_be_open():
    lam, text = box_cox_advice(-1.21, -3.0, 3.0, open_ends=(True, True))
    assert lam == 1.0 and "interval ≤ -3 to ≥ 3" in text
