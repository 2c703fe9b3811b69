"""Power and sample size of two one-sided tests: doe.equivalence.tost_power(_se) and equivalence_sample_size.

Published numbers reproduced (R package PowerTOST: Labes D, Schütz H, Lang B. PowerTOST: Power and Sample
Size for (Bio)Equivalence Studies. CRAN; https://github.com/Detlew/PowerTOST, README.md and
data/data_parallel.rda at commit bc54622; default method "exact", Owen's Q):

- README, "Parallel Design": ``power.TOST(CV = 0.35, n = c(52, 49), design = "parallel")`` -> 0.8011186
  (theta0 0.95, limits 0.80 to 1.25, alpha 0.05; log scale, sd = sqrt(log(1 + CV^2))).
- README, "Crossover Design": ``sampleN.TOST(CV = 0.20)`` -> n 20, power 0.834680 (2x2 crossover,
  se = sd sqrt(2 / n), df = n - 2); ``sampleN.TOST(CV = 0.125, theta0 = 0.975, theta1 = 0.90)`` -> n 32,
  power 0.800218; ``sampleN.TOST(CV = 0.40, theta0 = 0.90, theta1 = 0.75, design = "2x2x4")`` -> n 30,
  power 0.822929 (se = sd sqrt(1 / n), df = 3 n - 4). PowerTOST rounds the total n up to balanced
  sequences (steps of 2), so n is the first even n whose power reaches 0.8.
- Data set ``ctCW.III`` ("Sample Size Tables for the Parallel Group Design", man/data_parallel.Rd: the
  additive model of Chow SC, Wang H. On Sample Size Calculation in Bioequivalence Trials. J Pharmacokinet
  Pharmacodyn 2001;28(2):155-69, Table III, recomputed exactly by PowerTOST's ``sampleN.TOST(...,
  logscale = FALSE, theta1 = -0.2, design = "parallel", method = "exact")``): total sample sizes for
  limits -0.20 to +0.20, SD (CV) 0.10 to 0.40, true difference 0 to 0.15, power 0.8 and 0.9. Total = 2 x
  runs per group.

The paired power is also checked against a Monte Carlo simulation of the mean and SD of the differences
(an independent route to the same probability).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from doe.equivalence import EquivalenceError, equivalence_sample_size, tost_power, tost_power_se


def _sd_log(cv: float) -> float:
    """PowerTOST's CV2se: the SD on the log scale of a lognormal response with coefficient of variation cv."""
    return math.sqrt(math.log(1.0 + cv * cv))


LOG_BE = (math.log(0.8), math.log(1.25))

# ctCW.III: rows SD 0.10, 0.12, ..., 0.40; columns true difference 0, 0.05, 0.10, 0.15; total n
CW_III_SD = [round(0.10 + 0.02 * i, 2) for i in range(16)]
CW_III_DIFF = [0.0, 0.05, 0.10, 0.15]
CW_III = {
    0.8: [[12, 14, 28, 102], [14, 18, 38, 144], [20, 24, 50, 196], [24, 32, 66, 256], [30, 38, 82, 322],
          [36, 48, 102, 398], [44, 56, 122, 482], [52, 66, 144, 572], [60, 78, 170, 672], [70, 90, 196, 778],
          [80, 102, 224, 892], [90, 116, 256, 1016], [102, 132, 288, 1146], [114, 148, 322, 1284],
          [126, 164, 360, 1430], [140, 182, 398, 1586]],
    0.9: [[14, 18, 36, 140], [18, 24, 52, 200], [24, 32, 70, 270], [30, 42, 90, 354], [38, 52, 114, 446],
          [46, 64, 140, 550], [54, 76, 168, 666], [64, 90, 200, 792], [76, 106, 234, 928], [88, 122, 270, 1076],
          [100, 140, 310, 1236], [114, 158, 354, 1406], [128, 178, 398, 1586], [142, 200, 446, 1778],
          [158, 222, 498, 1980], [176, 246, 550, 2194]],
}


def test_parallel_power_matches_powertost_readme():
    # power.TOST(CV = 0.35, n = c(52, 49), design = "parallel") -> 0.8011186
    p = tost_power((52, 49), _sd_log(0.35), (0.8, 1.25), 0.95, log=True)
    assert round(p, 7) == 0.8011186
    # the same through the log-scale inputs
    p2 = tost_power((49, 52), _sd_log(0.35), LOG_BE, math.log(0.95))
    assert p2 == pytest.approx(p, abs=1e-12)


@pytest.mark.parametrize(("cv", "theta0", "theta1", "n", "printed"), [
    (0.20, 0.95, 0.80, 20, 0.834680),
    (0.125, 0.975, 0.90, 32, 0.800218),
])
def test_crossover_sample_size_matches_powertost_readme(cv, theta0, theta1, n, printed):
    margin = (math.log(theta1), -math.log(theta1))

    def power(m: int) -> float:  # 2x2 crossover: se = sd sqrt(2 / n), df = n - 2
        return tost_power_se(math.log(theta0), _sd_log(cv) * math.sqrt(2.0 / m), m - 2, margin)

    assert round(power(n), 6) == printed
    assert power(n - 2) < 0.8 <= power(n)  # the first balanced n that reaches the target


def test_replicate_design_power_matches_powertost_readme():
    # sampleN.TOST(CV = 0.40, theta0 = 0.90, theta1 = 0.75, design = "2x2x4") -> n 30, power 0.822929
    margin = (math.log(0.75), -math.log(0.75))

    def power(m: int) -> float:
        return tost_power_se(math.log(0.90), _sd_log(0.40) * math.sqrt(1.0 / m), 3 * m - 4, margin)

    assert round(power(30), 6) == 0.822929
    assert power(28) < 0.8


@pytest.mark.parametrize("target", [0.8, 0.9])
def test_parallel_sample_sizes_match_powertost_ctcw_iii(target):
    wrong = []
    for sd, row in zip(CW_III_SD, CW_III[target]):
        for diff, total in zip(CW_III_DIFF, row):
            out = equivalence_sample_size(sd, (-0.2, 0.2), diff, power=target)
            if 2 * out["n_rounded"] != total:
                wrong.append((sd, diff, total, 2 * out["n_rounded"]))
    assert wrong == []


def test_sample_size_output_and_continuous_n():
    out = equivalence_sample_size(0.2, (-0.2, 0.2), 0.05, alpha=0.05, power=0.8)
    assert set(out) >= {"n_per_group", "n_rounded", "power_at_n_rounded", "sd", "margin", "true_difference",
                        "alpha", "power", "paired", "method"}
    assert out["n_rounded"] == 24  # ctCW.III: 48 in total
    n = out["n_per_group"]
    assert 23 < n < 24 and not float(n).is_integer()
    # the exact n is where the power equals the target; one run fewer falls short
    assert tost_power(n, 0.2, (-0.2, 0.2), 0.05) == pytest.approx(0.8, abs=1e-9)
    assert tost_power(23, 0.2, (-0.2, 0.2), 0.05) < 0.8 <= out["power_at_n_rounded"]
    assert out["power_at_n_rounded"] == pytest.approx(tost_power(24, 0.2, (-0.2, 0.2), 0.05))
    assert (out["sd"], out["margin"], out["true_difference"], out["paired"]) == (0.2, [-0.2, 0.2], 0.05, False)


def test_log_sample_size_is_the_difference_one_on_logs():
    # ratios 0.8-1.25 with true ratio 0.95 = differences of logs with true difference log(0.95)
    a = equivalence_sample_size(_sd_log(0.35), (0.8, 1.25), 0.95, log=True)
    b = equivalence_sample_size(_sd_log(0.35), LOG_BE, math.log(0.95))
    assert a["n_per_group"] == pytest.approx(b["n_per_group"], rel=1e-9)
    assert a["true_difference"] == 0.95 and a["log"] is True
    # with n = (52, 49) the power is PowerTOST's 0.8011 (above): 51 per group reaches 0.8, 50 does not
    assert a["n_rounded"] == 51
    assert tost_power(50, _sd_log(0.35), (0.8, 1.25), 0.95, log=True) < 0.8
    # default true ratio 1 with log, default true difference 0 without
    assert equivalence_sample_size(0.1, (0.8, 1.25), log=True)["true_difference"] == 1.0
    assert equivalence_sample_size(0.1, (-0.2, 0.2))["true_difference"] == 0.0


def test_paired_power_agrees_with_a_simulation():
    n, sd, d, margin, alpha = 8, 0.15, 0.03, (-0.2, 0.2), 0.05
    exact = tost_power(n, sd, margin, d, alpha, paired=True)
    rng = np.random.default_rng(20261207)
    reps = 400_000
    mean = rng.normal(d, sd / math.sqrt(n), reps)
    s = sd * np.sqrt(rng.chisquare(n - 1, reps) / (n - 1))
    se = s / math.sqrt(n)
    t = stats.t.ppf(1 - alpha, n - 1)
    sim = float(np.mean(((mean - margin[0]) / se > t) & ((mean - margin[1]) / se < -t)))
    assert exact == pytest.approx(sim, abs=4 * math.sqrt(sim * (1 - sim) / reps))
    out = equivalence_sample_size(sd, margin, d, power=0.8, paired=True)
    assert "pairs" in out["method"] and out["paired"] is True
    assert tost_power(out["n_rounded"] - 1, sd, margin, d, paired=True) < 0.8 <= out["power_at_n_rounded"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sd": 0.2, "margin": (-0.2, 0.2), "true_difference": 0.25}, "not inside the margins"),
    ({"sd": 0.2, "margin": (-0.2, 0.2), "power": 1.0}, "target power must be above 0 and below 1"),
    ({"sd": 0.0, "margin": (-0.2, 0.2)}, "standard deviation must be above 0"),
    ({"sd": 0.2, "margin": (0.8, 1.25), "true_difference": -1.0, "log": True}, "ratio test / reference, above 0"),
    ({"sd": 0.2, "margin": (0.8, 1.25)}, "do not contain 0"),
    ({"sd": 0.2, "margin": (-0.2, 0.2), "alpha": 0.6}, "alpha must be above 0 and below 0.5"),
])
def test_bad_planning_inputs(kwargs, message):
    with pytest.raises(EquivalenceError, match=message):
        equivalence_sample_size(**kwargs)


def test_power_needs_at_least_two_per_group():
    with pytest.raises(EquivalenceError, match="at least 2 runs"):
        tost_power(1, 0.2, (-0.2, 0.2), 0.0)
    with pytest.raises(EquivalenceError, match="at least 2 pairs"):
        tost_power(1.5, 0.2, (-0.2, 0.2), 0.0, paired=True)
