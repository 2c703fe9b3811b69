"""Two one-sided tests (TOST) between scales: doe.equivalence.tost / tost_arrays and the TOST figure.

Published numbers reproduced:

1. R package ``equivalence`` (Robinson A., equivalence: Provides Tests and Graphics for Assessing Tests
   of Equivalence, CRAN), function ``tost``, and R's ``t.test``, on the ``clinic`` data (var1 and var2 of 30
   subjects, two groups of 15): printed output as quoted in statsmodels' test suite,
   statsmodels/stats/tests/test_tost.py (Perktold J., statsmodels 0.15, holders ``tost_clinic_indep_1``,
   ``tost_clinic_indep_1_pooled``, ``tost_clinic_indep``, ``tost_clinic_paired_1``, ``tost_clinic_paired``,
   ``tost_clinic_1_paired``, ``tost_clinic_1_indep``, ``tost_s_paired``;
   https://github.com/statsmodels/statsmodels/blob/main/statsmodels/stats/tests/test_tost.py). R's call
   ``tost(x, y, eps = 0.6)`` estimates mean(x) - mean(y): here ``test`` = x (rows 1-15) and ``reference`` = y
   (rows 16-30).
2. SAS Institute Inc., SAS/STAT 14.1 User's Guide, The TTEST Procedure, Example 119.5 "Equivalence Testing
   with Lognormal Data" (Wellek 2003 AUC data, paired, DIST=LOGNORMAL TOST(0.8, 1.25)): geometric mean ratio
   0.9412, 90 % confidence limits 0.8634 to 1.0260, equivalent
   (https://support.sas.com/documentation/cdl/en/statug/68162/HTML/default/statug_ttest_examples05.htm).
   The same data's R ``equivalence::tost(log(y), log(x), eps = log(1.25), paired = TRUE)`` output (p value
   0.003059338540563293, df 11) is the statsmodels holder ``tost_s_paired``.

The data-frame checks (unknown columns and levels, pairing by id, margins, log with non-positive values)
compare to hand-made tables, and the JSON round trip to the result itself.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from doe.equivalence import EquivalenceError, EquivalenceResult, tost, tost_arrays
from doe.errors import DoeError
from doe.plots.equivalence import equivalence_figure

# clinic data (statsmodels test_tost.py raw_clinic): id, group, var1, var2 (var3-var5 not used here)
CLINIC = np.array([
    [1, 1, 2.84, 4.00], [2, 1, 2.51, 3.26], [3, 1, 2.41, 4.14], [4, 1, 2.95, 3.42], [5, 1, 3.14, 3.25],
    [6, 1, 3.79, 4.34], [7, 1, 4.14, 4.97], [8, 1, 3.85, 4.31], [9, 1, 3.02, 3.11], [10, 1, 3.45, 3.41],
    [11, 1, 5.37, 5.02], [12, 1, 3.81, 4.21], [13, 1, 4.19, 4.59], [14, 1, 3.16, 5.30], [15, 1, 3.84, 4.32],
    [16, 2, 2.60, 3.76], [17, 2, 2.82, 3.66], [18, 2, 2.18, 3.65], [19, 2, 3.46, 3.60], [20, 2, 4.01, 3.48],
    [21, 2, 3.04, 2.87], [22, 2, 3.47, 3.24], [23, 2, 4.06, 3.92], [24, 2, 2.91, 3.99], [25, 2, 3.59, 4.21],
    [26, 2, 4.51, 4.21], [27, 2, 3.16, 3.31], [28, 2, 3.86, 3.61], [29, 2, 3.31, 2.97], [30, 2, 3.02, 2.73],
])
VAR1_X, VAR1_Y = CLINIC[:15, 2], CLINIC[15:, 2]
VAR2_X, VAR2_Y = CLINIC[:15, 3], CLINIC[15:, 3]

# SAS Example 119.5 (Wellek 2003, p. 212): TestAUC, RefAUC of 12 subjects
AUC_TEST = [103.4, 59.92, 68.17, 94.54, 69.48, 72.17, 74.37, 84.44, 96.74, 94.26, 48.52, 95.68]
AUC_REF = [90.11, 77.71, 77.71, 97.51, 58.21, 101.3, 79.84, 96.06, 89.30, 97.22, 61.62, 85.80]


# -- 1. R equivalence::tost, as quoted in statsmodels' tests -----------------------------------------------

def test_welch_tost_matches_r_equivalence_clinic_var1():
    # tost(clinic$var1[1:15], clinic$var1[16:30], eps=0.6): rejected (equivalent), Welch
    r = tost_arrays(VAR1_Y, VAR1_X, (-0.6, 0.6))
    assert r.estimate == pytest.approx(0.1646666666666667, abs=1e-13)
    assert r.df == pytest.approx(26.7484787582315, abs=1e-10)
    assert r.ci == pytest.approx((-0.2666862980722534, 0.596019631405587), abs=1e-12)
    assert r.p == pytest.approx(0.04853083976236974, abs=1e-12)
    assert r.equivalent and r.method == "Welch two one-sided t tests"
    # R t.test(var1[1:15], var1[16:30], mu = 1, alternative = "less") (ttest_clinic_indep_1_l_mu): t = -3.2996
    # is our upper one-sided test moved from 0.6 to 1: (0.16467 - 1) / se; se from R's 0.2531625991083627
    assert (r.estimate - 0.6) / 0.2531625991083627 == pytest.approx(r.t_upper, abs=1e-10)
    assert (r.estimate - 1.0) / 0.2531625991083627 == pytest.approx(-3.299592184135306, abs=1e-10)


def test_pooled_tost_matches_r_equivalence_clinic_var1():
    # tost(..., eps=0.6, var.equal = TRUE)
    r = tost_arrays(VAR1_Y, VAR1_X, (-0.6, 0.6), var_equal=True)
    assert r.df == 28
    assert r.ci == pytest.approx((-0.2659960620757337, 0.595329395409067), abs=1e-12)
    assert r.p == pytest.approx(0.04827315100761467, abs=1e-12)
    assert r.equivalent and "pooled" in r.method


def test_welch_tost_not_rejected_matches_r_clinic_var2():
    # tost(clinic$var2[1:15], clinic$var2[16:30], eps=0.6): "not rejected"
    r = tost_arrays(VAR2_Y, VAR2_X, (-0.6, 0.6))
    assert r.estimate == pytest.approx(0.562666666666666, abs=1e-12)
    assert r.df == pytest.approx(24.11000151062728, abs=1e-9)
    assert r.ci == pytest.approx((0.194916250699966, 0.930417082633366), abs=1e-12)
    assert r.p == pytest.approx(0.4317936812594803, abs=1e-12)
    assert not r.equivalent
    assert "not shown equivalent" in r.conclusion() and "above the upper margin" in r.conclusion()


def test_paired_tost_matches_r_equivalence_clinic():
    # tost(-clinic$var1[16:30] + clinic$var1[1:15], eps=0.6): rejected; var2: not rejected
    r = tost_arrays(VAR1_Y, VAR1_X, (-0.6, 0.6), paired=True)
    assert r.estimate == pytest.approx(0.1646666666666667, abs=1e-13)
    assert r.df == 14 and r.n_pairs == 15
    assert r.ci == pytest.approx((-0.0744336620516462, 0.4037669953849797), abs=1e-12)
    assert r.p == pytest.approx(0.003166881489265175, abs=1e-13)
    assert r.equivalent
    r2 = tost_arrays(VAR2_Y, VAR2_X, (-0.6, 0.6), paired=True)
    assert r2.ci == pytest.approx((0.1261653305099018, 0.999168002823431), abs=1e-12)
    assert r2.p == pytest.approx(0.4412034046017588, abs=1e-12)
    assert not r2.equivalent


def test_log_scale_tost_matches_r_equivalence_on_logs():
    # tost(log(var1[1:15]), log(var1[16:30]), eps=log(1.25), paired=TRUE / FALSE)
    r = tost_arrays(VAR1_Y, VAR1_X, (0.8, 1.25), paired=True, log=True)
    assert math.log(r.estimate) == pytest.approx(0.0431223318225235, abs=1e-13)
    assert [math.log(c) for c in r.ci] == pytest.approx([-0.02415225319362176, 0.1103969168386687], abs=1e-12)
    assert r.p == pytest.approx(0.0001664157928976468, abs=1e-14)
    ri = tost_arrays(VAR1_Y, VAR1_X, (0.8, 1.25), log=True)
    assert ri.df == pytest.approx(27.61177037646526, abs=1e-9)
    assert [math.log(c) for c in ri.ci] == pytest.approx([-0.0819851930203655, 0.1682298566654122], abs=1e-12)
    assert ri.p == pytest.approx(0.01047085593138891, abs=1e-12)
    assert ri.method.endswith("on log scale (ratio of geometric means)")
    # geometric means, log-scale SDs
    assert ri.mean_test == pytest.approx(math.exp(np.mean(np.log(VAR1_X))), rel=1e-12)
    assert ri.sd_reference == pytest.approx(float(np.std(np.log(VAR1_Y), ddof=1)), rel=1e-12)


# -- 2. SAS PROC TTEST Example 119.5 ------------------------------------------------------------------------

def test_sas_lognormal_paired_equivalence_example():
    data = pd.DataFrame({
        "Subject": [f"S{i:02d}" for i in range(1, 13)] * 2,
        "Drug": ["Test"] * 12 + ["Reference"] * 12,
        "AUC": AUC_TEST + AUC_REF,
    }).sample(frac=1.0, random_state=3)  # pairing is by subject, not by row order
    r = tost(data, "AUC", "Drug", "Reference", "Test", (0.8, 1.25), paired=True, id="Subject", log=True)
    assert round(r.estimate, 4) == 0.9412  # SAS: Geometric Mean ratio 0.9412
    assert (round(r.ci[0], 4), round(r.ci[1], 4)) == (0.8634, 1.0260)  # SAS: 90 % CL 0.8634 1.0260
    assert r.equivalent  # SAS: Assessment "Equivalent"
    # R equivalence::tost on the logs of the same data (statsmodels holder tost_s_paired), p and df
    assert r.p == pytest.approx(0.003059338540563293, abs=1e-13)
    assert r.df == 11 and r.n_pairs == 12
    assert r.method == "paired TOST (by Subject): two one-sided paired t tests on log scale (ratio of geometric means)"
    text = r.conclusion()
    assert text == ("Test is equivalent to Reference for AUC: the 90 % confidence interval of the ratio of "
                    "geometric means, 0.86 to 1.03, lies inside the margins 0.80 to 1.25 (TOST p = 0.003).")


# -- the data-frame interface and its checks --------------------------------------------------------------

def _scales() -> pd.DataFrame:
    return pd.DataFrame({
        "Vessel": ["CellSTACK-40"] * 4 + ["CellCube-25"] * 4,
        "Donor": ["D1", "D2", "D3", "D4"] * 2,
        "Fold expansion": [8.0, 7.5, 8.4, 7.9, 7.8, 7.7, 8.1, 8.2],
    })


def test_tost_by_group_equals_tost_on_arrays():
    d = _scales()
    r = tost(d, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (-1, 1))
    a = tost_arrays([8.0, 7.5, 8.4, 7.9], [7.8, 7.7, 8.1, 8.2], (-1, 1))
    assert (r.estimate, r.ci, r.p, r.df) == (a.estimate, a.ci, a.p, a.df)
    assert (r.reference, r.test, r.group, r.response) == ("CellSTACK-40", "CellCube-25", "Vessel", "Fold expansion")
    # hand computation: means 7.95 and 7.95, difference 0
    assert r.estimate == pytest.approx(0.0, abs=1e-12)
    assert (r.n_reference, r.n_test, r.n_pairs) == (4, 4, None)


def test_the_interval_decides_as_the_p_value():
    rng = np.random.default_rng(7)
    for _ in range(40):
        ref, test = rng.normal(10, 1, 6), rng.normal(10.3, 1.4, 5)
        for var_equal in (False, True):
            r = tost_arrays(ref, test, (-1.2, 1.0), var_equal=var_equal)
            assert r.equivalent == (-1.2 < r.ci[0] and r.ci[1] < 1.0)
            assert r.p == max(r.p_lower, r.p_upper)


def test_unknown_columns_and_levels_say_did_you_mean():
    d = _scales()
    with pytest.raises(EquivalenceError, match="no response column 'Fold expansoin'.*Did you mean 'Fold expansion'"):
        tost(d, "Fold expansoin", "Vessel", "CellSTACK-40", "CellCube-25", (-1, 1))
    with pytest.raises(EquivalenceError, match="no level 'CellCube 25'.*Did you mean 'CellCube-25'"):
        tost(d, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube 25", (-1, 1))
    with pytest.raises(DoeError, match="both 'CellCube-25'"):
        tost(d, "Fold expansion", "Vessel", "CellCube-25", "CellCube-25", (-1, 1))


@pytest.mark.parametrize(("margin", "log", "message"), [
    ((1, -1), False, "lower margin must be below"),
    ((0.2, 1.0), False, "do not contain 0"),
    ((0.8, 1.25), False, "do not contain 0.*log=True"),
    ((-0.2, 0.2), True, "ratios test / reference, above 0"),
    ((1.05, 1.25), True, "do not contain 1"),
    (("a", 1), False, "two numbers"),
])
def test_bad_margins(margin, log, message):
    with pytest.raises(EquivalenceError, match=message):
        tost_arrays([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], margin, log=log)


def test_bad_values_and_alpha():
    with pytest.raises(EquivalenceError, match="'Test' has 1 value: a t test needs at least 2"):
        tost_arrays([1.0, 2.0], [1.5], (-1, 1))
    with pytest.raises(EquivalenceError, match="at or below 0.*log scale"):
        tost_arrays([1.0, 2.0], [0.0, 1.5], (0.8, 1.25), log=True)
    with pytest.raises(EquivalenceError, match="alpha must be above 0 and below 0.5"):
        tost_arrays([1.0, 2.0], [1.5, 2.5], (-1, 1), alpha=0.5)
    with pytest.raises(EquivalenceError, match="no variability"):
        tost_arrays([2.0, 2.0], [3.0, 3.0], (-1, 1))
    with pytest.raises(EquivalenceError, match="same difference"):
        tost_arrays([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], (-1, 1), paired=True)


def test_missing_values_are_left_out_with_a_note():
    r = tost_arrays([8.0, 7.5, np.nan, 7.9], [7.8, 7.7, 8.1, 8.2], (-1, 1))
    assert r.n_reference == 3 and any("1 missing value(s) of 'Reference'" in n for n in r.notes)
    d = _scales()
    d.loc[(d["Vessel"] == "CellCube-25") & (d["Donor"] == "D2"), "Fold expansion"] = np.nan
    r = tost(d, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (-1, 1), paired=True, id="Donor")
    assert r.n_pairs == 3
    assert r.notes == ["1 pair(s) with a missing Fold expansion left out: Donor 'D2'."]
    # the same as pairing by hand, D1, D3, D4
    a = tost_arrays([8.0, 8.4, 7.9], [7.8, 8.1, 8.2], (-1, 1), paired=True)
    assert (r.estimate, *r.ci, r.p) == pytest.approx((a.estimate, *a.ci, a.p))


def test_paired_needs_matching_ids():
    d = _scales()
    with pytest.raises(EquivalenceError, match="needs the id column"):
        tost(d, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (-1, 1), paired=True)
    with pytest.raises(EquivalenceError, match="without paired=True"):
        tost(d, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (-1, 1), id="Donor")
    odd = d.copy()
    odd.loc[7, "Donor"] = "D9"
    with pytest.raises(EquivalenceError, match=r"do not pair: 'D4' only in 'CellSTACK-40'; 'D9' only in 'CellCube-25'"):
        tost(odd, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (-1, 1), paired=True, id="Donor")
    dup = d.copy()
    dup.loc[7, "Donor"] = "D1"
    with pytest.raises(EquivalenceError, match="'D1' appear\\(s\\) more than once in 'CellCube-25'"):
        tost(dup, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (-1, 1), paired=True, id="Donor",
             average_replicates=False)


def test_paired_replicates_of_a_donor_are_averaged_with_a_note():
    """Two seed trains of each donor at each scale: each donor's geometric mean per scale, then the paired test
    on those means (checked against tost_arrays on the means computed here by hand)."""
    d = _scales()
    twice = pd.concat([d, d.assign(**{"Fold expansion": d["Fold expansion"] * 1.1})], ignore_index=True)
    r = tost(twice, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (0.8, 1.25), paired=True,
             id="Donor", log=True)
    means = twice.assign(l=np.log(twice["Fold expansion"])).groupby(["Vessel", "Donor"], sort=False)["l"].mean()
    ref, test = np.exp(means["CellSTACK-40"]), np.exp(means["CellCube-25"][means["CellSTACK-40"].index])
    expected = tost_arrays(ref.to_numpy(), test.to_numpy(), (0.8, 1.25), paired=True, log=True)
    assert r.n_pairs == len(ref) and r.estimate == pytest.approx(expected.estimate, rel=1e-12)
    assert r.p == pytest.approx(expected.p, rel=1e-12)
    assert any("averaged (geometric mean)" in n for n in r.notes)


def test_json_has_the_agreed_keys_and_round_trips():
    r = tost(_scales(), "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25", (0.8, 1.25), log=True,
             paired=True, id="Donor")
    out = r.to_json()
    assert set(out) == {"estimate", "ci", "t_lower", "t_upper", "df", "p_lower", "p_upper", "p", "equivalent",
                        "margin", "response", "group", "reference", "test", "alpha", "paired", "log", "var_equal",
                        "n_reference", "n_test", "n_pairs", "mean_reference", "mean_test", "sd_reference",
                        "sd_test", "method", "notes", "conclusion"}
    assert json.loads(json.dumps(out)) == out
    assert out["ci"] == list(r.ci) and out["margin"] == [0.8, 1.25] and out["n_pairs"] == 4
    back = EquivalenceResult.from_json({**out, "created_at": "2026-12-07"})
    assert back == r
    with pytest.raises(EquivalenceError, match="lacks 'ci'"):
        EquivalenceResult.from_json({k: v for k, v in out.items() if k != "ci"})


# -- the figure --------------------------------------------------------------------------------------------

def test_figure_traces_carry_the_interval_and_the_margins():
    r1 = tost_arrays(VAR1_Y, VAR1_X, (0.8, 1.25), paired=True, log=True, response="Fold expansion",
                     reference_name="CellSTACK-40", test_name="CellCube-25")
    r2 = tost_arrays(VAR2_Y, VAR2_X, (0.9, 1.11), log=True, response="Viability",
                     reference_name="CellSTACK-40", test_name="CellCube-25")
    fig = equivalence_figure([r1, r2], note="clinic data")
    by_name = {t.name: t for t in fig.data}
    ci = by_name["CI CellCube-25 vs CellSTACK-40: Fold expansion"]
    assert list(ci.x) == pytest.approx([math.exp(-0.02415225319362176), math.exp(0.1103969168386687)], abs=1e-12)
    margins = by_name["Margins CellCube-25 vs CellSTACK-40: Viability"]
    assert [v for v in margins.x if v is not None] == [0.9, 0.9, 1.11, 1.11]
    est = by_name["Estimate CellCube-25 vs CellSTACK-40: Fold expansion"]
    assert list(est.x) == pytest.approx([math.exp(0.0431223318225235)])
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.xaxis.title.text == "Ratio of geometric means (CellCube-25 / CellSTACK-40, log scale)"
    labels = list(fig.layout.yaxis.ticktext)  # bottom to top: the second result, then the first
    assert "<b>not shown equivalent</b>" in labels[0] and "<b>equivalent</b>" in labels[1]
    assert any(s.x0 == 1.0 for s in fig.layout.shapes)  # the no-difference line


def test_figure_of_differences_and_bad_mixes():
    r = tost_arrays(VAR1_Y, VAR1_X, (-0.6, 0.6), response="Fold expansion", reference_name="T-flask",
                    test_name="CellSTACK")
    fig = equivalence_figure(r)
    assert fig.layout.xaxis.title.text == "Difference in Fold expansion (CellSTACK - T-flask)"
    assert fig.layout.xaxis.type == "linear"
    assert any(s.x0 == 0.0 for s in fig.layout.shapes)
    ratio = tost_arrays(VAR1_Y, VAR1_X, (0.8, 1.25), log=True)
    with pytest.raises(EquivalenceError, match="cannot share one axis"):
        equivalence_figure([r, ratio])
    with pytest.raises(EquivalenceError, match="no equivalence result"):
        equivalence_figure([])
