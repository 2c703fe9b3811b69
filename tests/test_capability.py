"""Process capability (doe.capability.capability) against R's qcc and hand computations.

Published numbers:

- Piston rings (tests/reference_cases/qcc_pistonrings/): the printed output of qcc's
  ``processCapability`` in the vignette "A quick tour of qcc" (qcc 3.0,
  https://luca-s.github.io/qcc/articles/qcc.html; Scrucca 2004), data from Montgomery's *Introduction to
  Statistical Quality Control* (Table 6.3): ``q <- qcc(diameter[1:25,], type = "xbar", nsigmas = 3)``
  prints StdDev = 0.009785039 (R-bar / d2, qcc's default "UWAVE-R"), Center = 74.00118, 125 obs; the four
  ``processCapability`` calls print the indices and intervals typed below.
- Viscosity (individuals): same vignette, "Continuous one-at-time data":
  ``qcc(viscosity[trial], type = "xbar.one")`` prints Standard deviation = 0.5076521 (MR-bar / d2(2)),
  and 0.4117415 after batch 4 is removed; data from Montgomery (2005), 5th ed., pp. 232-235 (qcc's
  ``data/viscosity.txt``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from doe.capability import Capability, CapabilityError, capability, d2_constant, tolerance_factor

HERE = Path(__file__).parent / "reference_cases" / "qcc_pistonrings"

VISCOSITY = [34.05, 34.40, 33.59, 35.96, 34.70, 33.51, 33.79, 34.04, 34.52, 33.75, 33.27, 33.71, 34.03, 34.58,
             34.02, 33.97, 34.05, 34.04, 33.73, 34.05]

#: qcc vignette output: (spec limits, target) -> {index: (value, 2.5 %, 97.5 %)}, exp/obs % (<LSL, >USL).
QCC = [
    ((73.95, 74.05), None, 2, {"cp": (1.70, 1.49, 1.91), "cp_l": (1.74, 1.55, 1.93), "cp_u": (1.66, 1.48, 1.84),
                               "cpk": (1.66, 1.45, 1.88), "cpm": (1.69, 1.48, 1.90)}, (0, 0), (0, 0)),
    ((73.95, 74.05), 74.02, 3, {"cp": (1.703, 1.491, 1.915), "cp_l": (1.743, 1.555, 1.932),
                                "cp_u": (1.663, 1.483, 1.844), "cpk": (1.663, 1.448, 1.878),
                                "cpm": (0.786, 0.656, 0.915)}, (0, 0), (0, 0)),
    ((73.99, 74.01), None, 3, {"cp": (0.341, 0.298, 0.383), "cp_l": (0.381, 0.318, 0.444),
                               "cp_u": (0.301, 0.242, 0.359), "cpk": (0.301, 0.231, 0.370),
                               "cpm": (0.338, 0.296, 0.380)}, (13, 18), (12, 16)),
    ((73.99, 74.1), None, 3, {"cp": (1.874, 1.641, 2.106), "cp_l": (0.381, 0.318, 0.444),
                              "cp_u": (3.367, 3.011, 3.722), "cpk": (0.381, 0.305, 0.456),
                              "cpm": (0.408, 0.338, 0.479)}, (13, 0), (12, 0)),
]


@pytest.fixture(scope="module")
def rings() -> pd.DataFrame:
    data = pd.read_csv(HERE / "data.csv")
    return data[data["trial"]].reset_index(drop=True)


def _signif2(x: float) -> float:
    return 0.0 if x < 0.01 else float(f"{x:.2g}")  # qcc prints signif(x, 2) and shows < 0.01 % as 0


@pytest.mark.parametrize(("limits", "target", "decimals", "indices", "expected", "observed"), QCC)
def test_pistonrings_match_qcc_process_capability(rings: pd.DataFrame, limits: tuple[float, float],
                                                  target: float | None, decimals: int,
                                                  indices: dict[str, tuple[float, float, float]],
                                                  expected: tuple[float, float],
                                                  observed: tuple[float, float]) -> None:
    c = capability(rings["diameter"], lower=limits[0], upper=limits[1], target=target,
                   subgroups=rings["sample"], response="Diameter (mm)")
    assert c.n == 125 and c.n_subgroups == 25 and c.subgroup_size == 5
    assert c.sigma_within == pytest.approx(0.009785039, rel=1e-7)
    assert c.mean == pytest.approx(74.00118, abs=5e-6)
    assert c.target == pytest.approx(target if target is not None else sum(limits) / 2)
    tol = 0.5 * 10 ** -decimals + 1e-9
    for name, (value, low, high) in indices.items():
        got = getattr(c, name)
        assert got.value == pytest.approx(value, abs=tol), name
        assert got.ci_low == pytest.approx(low, abs=tol), name
        assert got.ci_high == pytest.approx(high, abs=tol), name
    assert (_signif2(c.expected_below_percent), _signif2(c.expected_above_percent)) == expected
    assert (_signif2(c.observed_below_percent), _signif2(c.observed_above_percent)) == observed
    assert c.expected_out_percent == pytest.approx(c.expected_below_percent + c.expected_above_percent)


def test_individuals_sigma_is_moving_range_over_d2_as_qcc_xbar_one() -> None:
    assert capability(VISCOSITY, lower=32.0).sigma_within == pytest.approx(0.5076521, rel=1e-7)
    without_batch_4 = VISCOSITY[:3] + VISCOSITY[4:]
    assert capability(without_batch_4, lower=32.0).sigma_within == pytest.approx(0.4117415, rel=1e-7)


def test_hand_computed_indices_one_sided_and_performance() -> None:
    x = [9.8, 10.1, 10.0, 9.9, 10.2, 10.0]
    mean = 60.0 / 6
    sigma = (0.3 + 0.1 + 0.1 + 0.3 + 0.2) / 5 / 1.128          # MR-bar / d2(2)
    sd = math.sqrt((0.04 + 0.01 + 0 + 0.01 + 0.04 + 0) / 5)      # sample SD
    c = capability(x, lower=9.5, upper=11.0)
    assert c.mean == pytest.approx(mean)
    assert c.sigma_within == pytest.approx(sigma)
    assert c.sigma_overall == pytest.approx(sd)
    assert c.cp_l.value == pytest.approx(0.5 / (3 * sigma))
    assert c.cp_u.value == pytest.approx(1.0 / (3 * sigma))
    assert c.cpk.value == pytest.approx(0.5 / (3 * sigma))
    assert c.pp == pytest.approx(1.5 / (6 * sd))
    assert c.ppk == pytest.approx(0.5 / (3 * sd))
    # Bissell's interval for Cpk (two-sided z), Chou's for Cp, written out.
    cpk, z, n = 0.5 / (3 * sigma), stats.norm.ppf(0.975), 6
    half = z * math.sqrt(1 / (9 * n * cpk ** 2) + 1 / (2 * (n - 1)))
    assert (c.cpk.ci_low, c.cpk.ci_high) == pytest.approx((cpk * (1 - half), cpk * (1 + half)))
    cp = 1.5 / (6 * sigma)
    assert c.cp.ci_low == pytest.approx(cp * math.sqrt(stats.chi2.ppf(0.025, 5) / 5))
    assert c.expected_below_percent == pytest.approx(100 * stats.norm.cdf((9.5 - mean) / sigma))
    assert any("Only 6 lots" in note for note in c.notes)

    upper_only = capability(x, upper=10.15)
    assert upper_only.cp is None and upper_only.cpm is None and upper_only.pp is None and upper_only.cp_l is None
    assert upper_only.cpk.value == pytest.approx((10.15 - mean) / (3 * sigma))
    assert upper_only.observed_out_percent == pytest.approx(100 / 6)  # 10.2 is above
    ti = upper_only.tolerance_interval
    assert ti is not None and ti.sides == 1 and ti.low is None
    assert ti.high == pytest.approx(mean + tolerance_factor(6, 0.99, 0.95, sides=1) * sd)
    assert any("Only an upper specification limit" in note for note in upper_only.notes)


def test_unequal_subgroups_average_range_over_d2() -> None:
    x = [1.0, 2.0, 4.0, 3.0, 3.5, 5.0, 6.0]
    labels = ["a", "a", "a", "b", "b", "c", "c"]
    c = capability(x, lower=0.0, upper=8.0, subgroups=labels)
    assert c.sigma_within == pytest.approx((3.0 / 1.693 + 0.5 / 1.128 + 1.0 / 1.128) / 3)
    assert c.subgroup_size == pytest.approx(7 / 3) and c.n_subgroups == 3


def test_no_limits_gives_notes_not_errors() -> None:
    c = capability([1.0, 2.0, 3.0, 2.5])
    assert c.cp is None and c.cpk is None and c.cpm is None and c.pp is None and c.ppk is None
    assert c.expected_out_percent == 0.0 and c.tolerance_interval is not None
    assert c.tolerance_interval.sides == 2
    assert any("No specification limits" in note for note in c.notes)


def test_d2_beyond_the_table_by_integration() -> None:
    # A different formula: d2(n) = E[max - min] = 2 E[max] by symmetry, E[max] = int x n phi(x) Phi(x)^(n-1).
    for n in (26, 30, 50):
        e_max, _ = integrate.quad(lambda x, n=n: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1),
                                  -np.inf, np.inf)
        assert d2_constant(n) == pytest.approx(2 * e_max, rel=1e-8)
    # and the tabulated values qcc uses stop at 25 (Montgomery, Appendix VI): d2(25) = 3.931.
    assert d2_constant(25) == 3.931


def test_to_json_keys_and_round_trip(rings: pd.DataFrame) -> None:
    c = capability(rings["diameter"], lower=73.95, upper=74.05, subgroups=rings["sample"].tolist())
    assert isinstance(c, Capability)
    out = json.loads(json.dumps(c.to_json()))
    for key in ("cp", "cpk", "cpm", "cp_l", "cp_u", "pp", "ppk", "sigma_within", "sigma_overall",
                "expected_out_percent", "observed_out_percent", "tolerance_interval", "n", "mean", "lower",
                "upper", "target", "confidence", "method", "notes"):
        assert key in out, key
    assert set(out["cp"]) == {"value", "ci_low", "ci_high"}
    assert {"low", "high", "k", "coverage", "confidence", "sides", "method"} <= set(out["tolerance_interval"])
    assert capability([1.0, 2.0, 3.0], upper=5.0).to_json()["cp"] is None


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ([1.0], {}, "at least 2"),
    ([1.0, float("nan"), 2.0], {}, "missing or non-finite"),
    ([1.0, 2.0, 3.0], {"lower": 5.0, "upper": 4.0}, "must be below the upper"),
    ([1.0, 2.0, 3.0], {"lower": 5.0, "upper": 5.0}, "must be below the upper"),
    ([1.0, 2.0, 3.0], {"subgroups": ["a", "a"]}, "2 subgroup labels for 3 values"),
    ([1.0, 2.0, 3.0], {"subgroups": ["a", "a", "b"]}, "single value"),
    ([1.0, 2.0, 3.0], {"confidence": 95}, "Did you mean 0.95"),
    ([1.0, 2.0, 3.0], {"coverage": 0.0}, "strictly between 0 and 1"),
    ([1.0, 2.0, 3.0], {"tolerance_confidence": 1.0}, "strictly between 0 and 1"),
    ([2.0, 2.0, 2.0], {"lower": 1.0}, "do not vary"),
    ([[1.0, 2.0], [3.0, 4.0]], {}, "one column"),
    ([1.0, 2.0, 3.0], {"tolerance_method": "odeh"}, "Unknown tolerance-factor method"),
])
def test_input_errors(args: list[float], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CapabilityError, match=message):
        capability(args, **kwargs)  # type: ignore[arg-type]


def test_numpy_input_and_sides_override() -> None:
    x = np.array([9.8, 10.1, 10.0, 9.9, 10.2, 10.0])
    c = capability(x, lower=9.5, upper=11.0, sides=1)
    ti = c.tolerance_interval
    assert ti is not None and ti.sides == 1 and ti.high is None  # nearer limit (Cpk side) is the lower one
