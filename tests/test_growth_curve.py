"""The easy-linear growth-curve fit (doe.growth_curve) against growthrates' published example.

Reference: R package growthrates (Petzoldt, https://github.com/tpetzoldt/growthrates), vignette
"Estimation of Growth Rates with Package growthrates, Part 1: Introduction", section "Easy Linear Method":
``fit_easylinear(dat$time, dat$value)`` on bactgrowth strain D, conc 0, replicate 1 prints
``y0 0.0180000, y0_lm 0.0123482, mumax 0.2048985, lag 1.8392607`` (tests/reference_cases/growthrates_easylinear,
with the data and the citation; method of Hall, Acar, Nandipati & Barlow 2014, Mol. Biol. Evol. 31:232-238).
R² is not printed: it is derived independently here (squared Pearson correlation of numpy over the window).
A second case is derived by hand: exact exponential growth after a flat lag.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from doe.errors import DoeError
from doe.growth import GROWTH_CURVE_FILE
from doe.growth_curve import GrowthCurveError, fit_growth_curve, read_growth_curve
from tests.conftest import ROOT

CASE = ROOT / "tests" / "reference_cases" / "growthrates_easylinear"


def _case() -> tuple[pd.DataFrame, dict]:
    return pd.read_csv(CASE / "data.csv"), json.loads((CASE / "expected.json").read_text(encoding="utf-8"))


def test_growthrates_vignette_example():
    data, ref = _case()
    fit = fit_growth_curve(data["time"], data["value"])
    expected = ref["expected"]
    for key in ("y0", "y0_lm", "mumax", "lag"):
        assert getattr(fit, key) == pytest.approx(expected[key], abs=5e-7), key
    assert fit.doubling_time == pytest.approx(math.log(2) / 0.2048985, rel=1e-6)


def test_window_and_r2_derived_independently():
    """The window the rule picks, read off the window slopes by hand: the largest slope (0.2217) is the window
    starting at point 3 (0-based 2); only the window starting at point 4 (0.2112) reaches 95 % of it, so the
    final fit uses points 3..8 (0-based 2..7). R² over them from numpy's correlation."""
    data, _ = _case()
    t, y = data["time"].to_numpy(float), data["value"].to_numpy(float)
    fit = fit_growth_curve(t, y)
    assert fit.window == [2, 3, 4, 5, 6, 7]
    assert fit.times == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    slope, intercept = np.polyfit(t[2:8], np.log(y[2:8]), 1)
    r = np.corrcoef(t[2:8], np.log(y[2:8]))[0, 1]
    assert fit.mumax == pytest.approx(slope, rel=1e-10)
    assert fit.y0_lm == pytest.approx(math.exp(intercept), rel=1e-10)
    assert fit.r2 == pytest.approx(r**2, rel=1e-10)
    assert (fit.n, fit.h, fit.quota) == (31, 5, 0.95)


def test_exact_exponential_after_a_lag_by_hand():
    """y = 100 up to t = 3, then 100 exp(0.5 (t - 3)): windows wholly in the exponential phase have slope 0.5
    exactly, windows reaching into the lag less (the window starting at t = 2 has slope 0.4 < 0.95 x 0.5).
    growthrates starts windows at points 1..N-h, so the final window is t = 3..10 (not the last point):
    mumax 0.5, y0_lm = 100 exp(-1.5), lag = (log 100 - log y0_lm) / 0.5 = 3."""
    t = np.arange(0.0, 12.0)
    y = np.where(t <= 3, 100.0, 100.0 * np.exp(0.5 * (t - 3)))
    fit = fit_growth_curve(t, y)
    assert fit.window == list(range(3, 11))
    assert fit.mumax == pytest.approx(0.5, rel=1e-12)
    assert fit.y0_lm == pytest.approx(100 * math.exp(-1.5), rel=1e-12)
    assert fit.lag == pytest.approx(3.0, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.doubling_time == pytest.approx(math.log(2) / 0.5)
    times, values = fit.fitted_line()
    assert times[0] == 0.0 and times[-1] == 11.0 and len(times) == len(values)
    assert values[-1] == pytest.approx(100 * math.exp(-1.5) * math.exp(0.5 * 11), rel=1e-12)


def test_to_json_keys_and_no_growth():
    data, _ = _case()
    out = fit_growth_curve(data["time"], data["value"]).to_json()
    for key in ("mumax", "lag", "doubling_time", "r2", "window", "y0", "y0_lm", "n", "h", "quota", "window_times"):
        assert key in out, key
    json.dumps(out)
    flat = fit_growth_curve(list(range(8)), [5.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.2, 1.0]).to_json()
    assert flat["mumax"] is None and flat["lag"] is None and flat["doubling_time"] is None


@pytest.mark.parametrize(("time", "value", "h", "quota", "match"), [
    ([0, 1, 2, 3, 4, 5], [1, 2, 0, 8, 16, 32], 5, 0.95, "above 0"),
    ([0, 1, 1, 3, 4, 5], [1, 2, 4, 8, 16, 32], 5, 0.95, "increasing"),
    ([0, 1, 2, 3, 4, 5], [1, 2, 4, 8, 16, 32], 6, 0.95, "from 2 to 5"),
    ([0, 1, 2, 3, 4, 5], [1, 2, 4, 8, 16, 32], 5, 1.5, "at most 1"),
    ([0, 1, 2, 3, 4], [1, 2, 4, 8, 16, 32], 3, 0.95, "one value per time"),
])
def test_fit_refuses_bad_input(time, value, h, quota, match):
    with pytest.raises(GrowthCurveError, match=match):
        fit_growth_curve(time, value, h=h, quota=quota)


def test_read_growth_curve_columns_and_errors():
    text = "Day, Cells per cm2 ,Notes\n0,2000,a\n1,2100,\n,,\n2,4000,\n3,8000,\n4,16000,\n5,30000,\n"
    t, y = read_growth_curve(text.encode(), "day", "cells per CM2", "curve.csv")
    assert t.tolist() == [0, 1, 2, 3, 4, 5] and y.tolist()[-1] == 30000
    with pytest.raises(GrowthCurveError, match="no column 'Hours'"):
        read_growth_curve(text, "Hours", "Cells per cm2")
    with pytest.raises(GrowthCurveError, match="Row 2, column 'Cells per cm2'.*not above 0"):
        read_growth_curve(text.replace("1,2100", "1,0"), "Day", "Cells per cm2")
    with pytest.raises(GrowthCurveError, match="Row 2, column 'Cells per cm2'.*blank"):
        read_growth_curve(text.replace("1,2100,", "1,,x"), "Day", "Cells per cm2")
    with pytest.raises(GrowthCurveError, match="Row 2, column 'Day'.*not a number"):
        read_growth_curve(text.replace("1,2100", "one,2100"), "Day", "Cells per cm2")
    with pytest.raises(GrowthCurveError, match="Row 5, column 'Day'.*not after"):
        read_growth_curve(text.replace("3,8000", "1.5,8000"), "Day", "Cells per cm2")
    with pytest.raises(GrowthCurveError, match="at least 6"):
        read_growth_curve("Day,N\n0,1\n1,2\n2,4\n", "Day", "N")
    frame = pd.DataFrame({"Day": [0, 1, 2, 3, 4, 5], "N": [1, 2, 4, 8, 16, 32]})
    assert read_growth_curve(frame, "Day", "N")[1].tolist() == [1, 2, 4, 8, 16, 32]
    assert issubclass(GrowthCurveError, DoeError)


def test_bundled_curve_recovers_the_simulated_lag_and_rate():
    """data/msc_growth_curve.csv is simulated (data/simulate_passages.py) with a 1-day lag and mumax 0.45/day
    followed by logistic slowing towards 40,000 cells/cm²: the easy-linear fit finds a lag near 1 day and a
    rate a little below 0.45/day (the logistic curve is never quite exponential)."""
    t, y = read_growth_curve(GROWTH_CURVE_FILE, "Day", "Cells per cm2")
    fit = fit_growth_curve(t, y)
    assert 0.7 < fit.lag < 1.3
    assert 0.35 < fit.mumax <= 0.47
