"""Normal tolerance factors and intervals (doe.capability.tolerance_factor / tolerance_interval).

Published numbers:

- Two-sided, exact: ISO 16269-6:2014 *Statistical interpretation of data - Part 6: Determination of
  statistical tolerance intervals*, Annex F, Tables F.1-F.9, column m = 1 (one sample). The tables give k
  to 4 decimals rounded *up* (the standard's convention), so the test rounds up too. Transcribed from the
  ``toleranceinterval`` package's ``tests/test_twoside_normal_factor_iso.py``
  (github.com/cjekel/tolerance_interval_py).
- Two-sided, exact: Meeker, W. Q., Hahn, G. J. and Escobar, L. A. (2017), *Statistical Intervals: A Guide
  for Practitioners and Researchers*, 2nd ed., Wiley, Table J.5b (p. 535), 3 decimals.
- One-sided, exact: Montgomery, D. C. and Runger, G. C. (2018), *Applied Statistics and Probability for
  Engineers*, 7th ed., Table XII (tests/reference_cases/montgomery_runger_one_sided_tolerance/).
- Howe's approximation: NIST/SEMATECH e-Handbook of Statistical Methods, section 7.2.6.3 "Tolerance
  intervals for a normal distribution" (https://www.itl.nist.gov/div898/handbook/prc/section2/prc263.htm):
  n = 43, coverage 0.90, confidence 0.99, chi-square 23.650 and k2 = 2.2173 (Howe's method).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from doe.capability import CapabilityError, ToleranceInterval, tolerance_factor, tolerance_interval

HERE = Path(__file__).parent / "reference_cases" / "montgomery_runger_one_sided_tolerance"

#: ISO 16269-6:2014 Annex F, m = 1: (coverage, confidence) -> {n: k}.
ISO_F = {
    (0.90, 0.90): {2: 15.5124, 8: 2.7542, 16: 2.2537, 35: 1.9906, 100: 1.8232, 300: 1.7401, 1000: 1.6947},
    (0.95, 0.90): {3: 6.8233, 9: 3.1323, 15: 2.7196, 30: 2.4166, 90: 2.1862, 150: 2.1276, 400: 2.0569,
                   1000: 2.0193},
    (0.99, 0.90): {4: 6.3722, 8: 4.2707, 17: 3.4741, 28: 3.2023, 100: 2.8548, 300: 2.7249, 1000: 2.6538},
    (0.90, 0.95): {2: 31.0923, 8: 3.1561, 16: 2.4486, 35: 2.0943, 150: 1.8260, 500: 1.7374, 1000: 1.7088},
    (0.95, 0.95): {5: 5.0769, 10: 3.3935, 26: 2.6188, 90: 2.2519, 200: 2.1430, 1000: 2.0362},
    (0.99, 0.95): {3: 12.6472, 9: 4.6329, 17: 3.7606, 35: 3.2762, 100: 2.9356, 500: 2.7208},
    (0.90, 0.99): {4: 9.4162, 10: 3.6167, 22: 2.5979, 80: 2.0282, 200: 1.8657, 1000: 1.7359},
    (0.95, 0.99): {2: 182.7201, 9: 4.5810, 17: 3.3641, 40: 2.6836, 150: 2.2712, 500: 2.1175},
    (0.99, 0.99): {3: 28.5857, 7: 7.1908, 15: 4.6212, 28: 3.8042, 70: 3.2284, 200: 2.9215, 1000: 2.7184},
}

#: Meeker, Hahn & Escobar (2017) Table J.5b: (n, coverage, confidence, k).
MHE_J5B = [
    (2, 0.99, 0.99, 234.877), (5, 0.90, 0.95, 4.291), (10, 0.99, 0.95, 4.437), (10, 0.95, 0.95, 3.393),
    (20, 0.99, 0.99, 4.175), (30, 0.90, 0.50, 1.691), (60, 0.95, 0.90, 2.250), (480, 0.99, 0.95, 2.724),
]


def _ceil4(x: float) -> float:
    return math.ceil(x * 1e4) / 1e4


@pytest.mark.parametrize(("coverage", "confidence"), list(ISO_F))
def test_two_sided_exact_matches_iso_16269_6_annex_f(coverage: float, confidence: float) -> None:
    for n, k in ISO_F[(coverage, confidence)].items():
        got = tolerance_factor(n, coverage, confidence, sides=2, method="exact")
        assert _ceil4(got) == pytest.approx(k, abs=1e-9), (n, coverage, confidence, got)


@pytest.mark.parametrize(("n", "coverage", "confidence", "k"), MHE_J5B)
def test_two_sided_exact_matches_meeker_hahn_escobar_j5b(n: int, coverage: float, confidence: float,
                                                          k: float) -> None:
    assert tolerance_factor(n, coverage, confidence) == pytest.approx(k, abs=5e-4)


def test_one_sided_exact_matches_montgomery_runger_table_xii() -> None:
    table = pd.read_csv(HERE / "table.csv")
    assert len(table) == 288
    got = [tolerance_factor(int(r.n), r.coverage, r.confidence, sides=1) for r in table.itertuples()]
    np.testing.assert_allclose(got, table["k"], atol=5e-4 + 1e-12)


def test_howe_matches_nist_handbook_example() -> None:
    # NIST 7.2.6.3: n = 43, p = 0.90, gamma = 0.99 -> k2 = 2.2173 (Howe's method).
    assert tolerance_factor(43, 0.90, 0.99, sides=2, method="howe") == pytest.approx(2.2173, abs=5e-5)


def test_interval_is_mean_plus_minus_k_sd() -> None:
    x = np.array([8.0, 9.0, 10.0, 11.0, 12.0])  # mean 10, SD sqrt(10/4)
    sd = math.sqrt(2.5)
    ti = tolerance_interval(x, coverage=0.95, confidence=0.95)
    assert isinstance(ti, ToleranceInterval)
    # MHE Table J.5b: n = 5, p = 0.95, gamma = 0.95 -> k = 5.077.
    assert ti.k == pytest.approx(5.077, abs=5e-4)
    assert ti.low == pytest.approx(10 - ti.k * sd) and ti.high == pytest.approx(10 + ti.k * sd)
    lower = tolerance_interval(x, 0.95, 0.95, sides=1, bound="lower")
    upper = tolerance_interval(x, 0.95, 0.95, sides=1, bound="upper")
    # Montgomery & Runger Table XII: n = 5, p = 0.95, gamma = 0.95 -> k = 4.203.
    assert lower.k == pytest.approx(4.203, abs=5e-4)
    assert lower.high is None and lower.low == pytest.approx(10 - lower.k * sd)
    assert upper.low is None and upper.high == pytest.approx(10 + upper.k * sd)
    assert ti.to_json() == {"low": ti.low, "high": ti.high, "k": ti.k, "coverage": 0.95, "confidence": 0.95,
                            "sides": 2, "method": ti.method, "n": 5}
    assert "at least 95 %" in ti.describe()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 1}, "at least 2"),
    ({"n": 2.5}, "whole number"),
    ({"coverage": 1.0}, "strictly between 0 and 1"),
    ({"coverage": 99}, "Did you mean 0.99"),
    ({"confidence": 0.0}, "strictly between 0 and 1"),
    ({"sides": 3}, "sides must be 1"),
    ({"method": "hwe"}, "Did you mean 'howe'"),
    ({"sides": 1, "method": "howe"}, "two-sided"),
])
def test_factor_input_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"n": 10, **kwargs}
    with pytest.raises(CapabilityError, match=message):
        tolerance_factor(**args)  # type: ignore[arg-type]


def test_interval_input_errors() -> None:
    with pytest.raises(CapabilityError, match="at least 2"):
        tolerance_interval([1.0])
    with pytest.raises(CapabilityError, match="missing or non-finite"):
        tolerance_interval([1.0, float("nan"), 2.0])
    with pytest.raises(CapabilityError, match="'lower' or 'upper'"):
        tolerance_interval([1.0, 2.0, 3.0], sides=1, bound="left")
