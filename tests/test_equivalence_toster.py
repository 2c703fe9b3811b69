"""TOST against the TOSTER package's vignette (Lakens, Caldwell): Welch and paired t_TOST on R's sleep data.

Source: TOSTER vignette "IntroTOSTt" (vignettes/IntroTOSTt.html of https://github.com/Lakens/TOSTER, rendered
with its printed output), sections "Viewing Results" (``t_TOST(extra ~ group, data = sleep, eqb = .5)`` and
``simple_htest(..., mu = .5, alternative = "e")``) and "Paired Samples Analysis". Data: R's ``sleep`` data set
(Cushny & Peebles 1905, as in Student 1908), extra hours of sleep of 10 patients under two drugs.
TOSTER's x is group 1 and y group 2, difference x - y; here the reference is group 2 and the test group 1, so
the estimate test - reference is the same difference.
"""

from __future__ import annotations

import pytest

from doe.equivalence import tost_arrays

GROUP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
GROUP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_t_tost_on_the_sleep_data():
    r = tost_arrays(GROUP_2, GROUP_1, (-0.5, 0.5))
    # simple_htest: t = -1.2719, df = 17.776, p-value = 0.8901; 90 % CI -3.0533815 -0.1066185; difference -1.58
    assert r.estimate == pytest.approx(-1.58, abs=1e-12)
    assert r.t_lower == pytest.approx(-1.2719, abs=5e-5)
    assert r.df == pytest.approx(17.776, abs=5e-4)
    assert r.p_lower == pytest.approx(0.8901, abs=5e-5)
    assert r.ci == pytest.approx((-3.0533815, -0.1066185), abs=5e-8)
    # t_TOST's table: TOST Upper t -2.450, p 0.012; the TOST p is the larger one, 0.89: not equivalent
    assert r.t_upper == pytest.approx(-2.450, abs=5e-4)
    assert r.p_upper == pytest.approx(0.012, abs=5e-4)
    assert r.p == pytest.approx(0.8901, abs=5e-5) and not r.equivalent


def test_paired_t_tost_on_the_sleep_data():
    r = tost_arrays(GROUP_2, GROUP_1, (-0.5, 0.5), paired=True)
    # simple_htest paired: t = -2.7766, df = 9, p-value = 0.9892; 90 % CI -2.2930053 -0.8669947
    assert r.estimate == pytest.approx(-1.58, abs=1e-12)
    assert r.t_lower == pytest.approx(-2.7766, abs=5e-5)
    assert r.df == 9
    assert r.p_lower == pytest.approx(0.9892, abs=5e-5)
    assert r.ci == pytest.approx((-2.2930053, -0.8669947), abs=5e-8)
    assert r.t_upper == pytest.approx(-5.348, abs=5e-4)  # TOST Upper, p < 0.001
    assert r.p_upper < 0.001 and not r.equivalent


def test_planning_sd_is_the_sd_of_differences_or_the_pooled_sd():
    """The SD a sample-size calculation takes, recovered from the interval, equals the SD computed directly."""
    import statistics

    paired = tost_arrays(GROUP_2, GROUP_1, (-0.5, 0.5), paired=True)
    assert paired.planning_sd == pytest.approx(statistics.stdev(a - b for a, b in zip(GROUP_1, GROUP_2)), rel=1e-12)
    pooled = tost_arrays(GROUP_2, GROUP_1, (-0.5, 0.5), var_equal=True)
    expected = ((statistics.variance(GROUP_1) + statistics.variance(GROUP_2)) / 2) ** 0.5  # equal n
    assert pooled.planning_sd == pytest.approx(expected, rel=1e-12)
