"""Control charts and run rules (doe.control_charts, doe.plots.control) against published numbers.

Published sources (data and citations in tests/reference_cases/qcc_*/README.md):

- Montgomery, D.C. *Introduction to Statistical Quality Control*, Appendix VI "Factors for constructing
  variables control charts" (d2, d3, c4, A2, A3, B3, B4, D3, D4 for n = 2..25; values below as printed).
- Piston rings (Montgomery 1991 pp. 206-213; qcc ``pistonrings``), as printed by R's qcc in the vignette
  "A quick tour of qcc" (Scrucca, qcc 2.7, 2017) and Scrucca (2004) R News 4/1 11-17: x-bar chart of the
  first 25 samples Center 74.00118, StdDev 0.009785039, LCL 73.98805, UCL 74.01431, 2-sigma warning limits
  73.99242 / 74.00993; R chart Center 0.02276, LCL 0, UCL 0.04812533.
- Orange juice (Montgomery 1991 pp. 152-155; qcc ``orangejuice``): p chart Center 0.2313333,
  LCL 0.05242755, UCL 0.4102391 (qcc); samples 15 and 23 beyond; revised limits without them
  p-bar 0.2150, UCL 0.3893, LCL 0.0407 (Montgomery).
- Viscosity (Montgomery 2005 pp. 232-235, Example 6.5; qcc ``viscosity`` phase I): x-bar 33.52,
  MR-bar 0.48, I chart UCL 34.80, LCL 32.24, MR chart UCL 1.57.
- NIST/SEMATECH e-Handbook of Statistical Methods, section 6.3.2.2 (individuals chart of 10 flow rates):
  center 50.81, UCL 55.8041, LCL 45.8159; MR-bar 1.8778, MR UCL 6.1349.

qcc (and Montgomery) divide by d2 = 2.326 from a 3-decimal table; this module computes d2 = 2.32593 by
integration, so qcc's printed sigma is matched to 5e-5 relative (and exactly when the table value is used,
checked by hand below). Run-rule tests use hand-built sequences whose signals are worked out in the test.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from doe.control_charts import (
    CHART_TYPES,
    ChartError,
    c4,
    chart_constants,
    control_chart,
    d2,
    d3,
    phased_charts,
    signals_frame,
)
from doe.plots.control import control_figure
from tests.conftest import ROOT

REF = ROOT / "tests" / "reference_cases"

# Montgomery, Appendix VI, as printed: n: (A2, A3, c4, B3, B4, d2, d3, D3, D4)
APPENDIX_VI = {
    2: (1.880, 2.659, 0.7979, 0.000, 3.267, 1.128, 0.853, 0.000, 3.267),
    3: (1.023, 1.954, 0.8862, 0.000, 2.568, 1.693, 0.888, 0.000, 2.574),
    4: (0.729, 1.628, 0.9213, 0.000, 2.266, 2.059, 0.880, 0.000, 2.282),
    5: (0.577, 1.427, 0.9400, 0.000, 2.089, 2.326, 0.864, 0.000, 2.114),
    6: (0.483, 1.287, 0.9515, 0.030, 1.970, 2.534, 0.848, 0.000, 2.004),
    7: (0.419, 1.182, 0.9594, 0.118, 1.882, 2.704, 0.833, 0.076, 1.924),
    8: (0.373, 1.099, 0.9650, 0.185, 1.815, 2.847, 0.820, 0.136, 1.864),
    9: (0.337, 1.032, 0.9693, 0.239, 1.761, 2.970, 0.808, 0.184, 1.816),
    10: (0.308, 0.975, 0.9727, 0.284, 1.716, 3.078, 0.797, 0.223, 1.777),
    25: (0.153, 0.606, 0.9896, 0.565, 1.435, 3.931, 0.708, 0.459, 1.541),
}
KEYS = ("A2", "A3", "c4", "B3", "B4", "d2", "d3", "D3", "D4")


@pytest.mark.parametrize("n", sorted(APPENDIX_VI))
def test_constants_match_montgomery_appendix_vi(n):
    got = chart_constants(n)
    for key, printed in zip(KEYS, APPENDIX_VI[n], strict=True):
        unit = 1e-4 if key == "c4" else 1e-3
        # printed values are rounded (D4, A2... from rounded d2, d3): one unit in the last printed digit
        assert got[key] == pytest.approx(printed, abs=unit * 1.01), (n, key, got[key], printed)


def test_range_moments_for_two_values_are_exact():
    # R = |X1 - X2| with X1 - X2 ~ N(0, 2): E R = 2 / sqrt(pi), E R^2 = 2
    assert d2(2, exact=True) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-7)
    assert d3(2) == pytest.approx(math.sqrt(2 - 4 / math.pi), rel=1e-6)
    assert c4(2) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-12)


def _pistonrings():
    df = pd.read_csv(REF / "qcc_pistonrings" / "data.csv")
    return df[df.trial], df[~df.trial]


def test_piston_rings_xbar_r_as_qcc_prints():
    trial, _ = _pistonrings()
    cs = control_chart(trial.diameter, "xbar-r", subgroups=trial["sample"])
    x, r = cs.charts["xbar"], cs.charts["r"]
    assert x.center == pytest.approx(74.00118, abs=5e-6)
    assert x.sigma == pytest.approx(0.009785039, rel=5e-5)
    assert x.lcl == pytest.approx(73.98805, abs=2e-5)
    assert x.ucl == pytest.approx(74.01431, abs=2e-5)
    # qcc's warning limits at 2 sigma
    assert x.center - 2 * x.sigma / math.sqrt(5) == pytest.approx(73.99242, abs=1e-5)
    assert x.center + 2 * x.sigma / math.sqrt(5) == pytest.approx(74.00993, abs=1e-5)
    # with qcc's table d2 = 2.326 the printed sigma comes out to every printed digit
    rbar = trial.groupby("sample").diameter.agg(lambda g: g.max() - g.min()).mean()
    assert rbar / 2.326 == pytest.approx(0.009785039, abs=5e-10)
    assert r.center == pytest.approx(0.02276, abs=5e-9)
    assert r.lcl == 0.0
    assert r.ucl == pytest.approx(0.04812533, abs=5e-6)
    assert cs.n_subgroups == 25 and cs.subgroup_sizes == [5] * 25
    assert x.qcc_beyond == [] and x.violations == [] and r.qcc_beyond == []


def test_piston_rings_s_chart_by_hand():
    trial, _ = _pistonrings()
    cs = control_chart(trial.diameter, "xbar-s", subgroups=trial["sample"])
    s = cs.charts["s"]
    sbar = trial.groupby("sample").diameter.std(ddof=1).mean()
    assert s.center == pytest.approx(sbar, rel=1e-12)
    assert s.sigma == pytest.approx(sbar / 0.9400, rel=1e-4)  # s-bar / c4(5), c4 as printed
    assert s.ucl == pytest.approx(2.089 * sbar, rel=5e-4)  # B4(5) as printed
    assert s.lcl == 0.0
    xbar = cs.charts["xbar"]
    assert xbar.ucl == pytest.approx(74.00118 + 1.427 * sbar, abs=2e-5)  # A3(5) as printed


def test_piston_rings_phase_two_flags_samples_37_to_39():
    trial, new = _pistonrings()
    phase1 = control_chart(trial.diameter, "xbar-r", subgroups=trial["sample"])
    saved = json.loads(json.dumps(phase1.limits()))
    cs = control_chart(new.diameter, "xbar-r", subgroups=new["sample"], limits=saved)
    x = cs.charts["xbar"]
    assert cs.phase == 2
    assert x.lcl == pytest.approx(phase1.charts["xbar"].lcl) and x.ucl == pytest.approx(phase1.charts["xbar"].ucl)
    means = new.groupby("sample").diameter.mean()
    beyond_printed = [str(s) for s, m in means.items() if m > 74.01431 or m < 73.98805]
    assert beyond_printed == ["37", "38", "39"]
    assert [x.labels[i] for i in x.qcc_beyond] == beyond_printed
    # qcc's runs rule: samples 34-40 all have means above the center, 33 below: the 7th (40) is flagged
    above = [s for s, m in means.items() if m > 74.00118]
    assert [34, 35, 36, 37, 38, 39, 40] == [s for s in above if s >= 34] and 33 not in above
    assert [x.labels[i] for i in x.qcc_runs] == ["40"]
    assert {v["lot"] for v in x.violations if v["rule"].startswith("1:")} == {"37", "38", "39"}


def test_orange_juice_p_chart_and_revised_limits():
    df = pd.read_csv(REF / "qcc_orangejuice" / "data.csv")
    trial = df[df.trial]
    cs = control_chart(trial.D, "p", size=trial["size"], labels=trial["sample"])
    p = cs.charts["p"]
    assert p.center == pytest.approx(0.2313333, abs=5e-8)
    assert p.lcl == pytest.approx(0.05242755, abs=5e-9)
    assert p.ucl == pytest.approx(0.4102391, abs=5e-8)
    assert [p.labels[i] for i in p.qcc_beyond] == ["15", "23"]
    rev = control_chart(trial.D, "p", size=50, labels=trial["sample"], exclude=["15", 22])
    q = rev.charts["p"]
    assert q.excluded == [14, 22]
    assert q.center == pytest.approx(0.2150, abs=5e-5)
    assert q.ucl == pytest.approx(0.3893, abs=5e-5)
    assert q.lcl == pytest.approx(0.0407, abs=5e-5)
    # excluded points are still checked; sample 21 (20 / 50 = 0.40) is above the revised UCL 0.3893
    assert [q.labels[i] for i in q.qcc_beyond] == ["15", "21", "23"]
    assert "Limits revised without 2 point(s): 15, 23." in rev.notes


def test_orange_juice_phase_two_after_a_baseline_as_montgomery():
    """Montgomery Example 7.1 continued: the 24 samples after the adjustment charted against the revised
    trial limits (0.2150, 0.0407, 0.3893); their fraction nonconforming is 0.1108 (printed). Sample 41
    (1 / 50 = 0.02) is below the LCL and the new samples sit in a long run below the centre (rule 2)."""
    df = pd.read_csv(REF / "qcc_orangejuice" / "data.csv")
    one, two = phased_charts(df.D, "p", "30", size=df["size"], labels=df["sample"], exclude=["15", "23"])
    assert one.phase == 1 and one.n_subgroups == 30 and two.phase == 2 and two.n_subgroups == 24
    p = two.charts["p"]
    assert (p.center, p.lcl, p.ucl) == pytest.approx((0.2150, 0.0407, 0.3893), abs=5e-5)
    assert p.labels[0] == "31" and sum(p.statistic) / 24 == pytest.approx(0.1108, abs=5e-5)
    assert [p.labels[i] for i in p.qcc_beyond] == ["41"]
    assert "41" in {v["lot"] for v in p.violations if v["rule"].startswith("1:")}
    assert any(v["rule"].startswith("2:") for v in p.violations)
    with pytest.raises(ChartError, match="last point"):
        phased_charts(df.D, "p", "54", size=50, labels=df["sample"])
    with pytest.raises(ChartError, match="not a point"):
        phased_charts(df.D, "p", "L30", size=50, labels=df["sample"])


def test_piston_rings_phased_by_subgroup_equals_a_saved_phase_one():
    trial, new = _pistonrings()
    both = pd.concat([trial, new])
    _, two = phased_charts(both.diameter, "xbar-r", str(trial["sample"].max()), subgroups=both["sample"])
    saved = control_chart(new.diameter, "xbar-r", subgroups=new["sample"],
                          limits=control_chart(trial.diameter, "xbar-r", subgroups=trial["sample"]).limits())
    assert two.charts["xbar"].ucl == pytest.approx(saved.charts["xbar"].ucl)
    assert [v["lot"] for v in two.charts["xbar"].violations] == [v["lot"] for v in saved.charts["xbar"].violations]


def test_np_chart_by_hand():
    df = pd.read_csv(REF / "qcc_orangejuice" / "data.csv")
    trial = df[df.trial]
    np_ = control_chart(trial.D, "np", size=50).charts["np"]
    # n p-bar = 347 / 30; limits n p-bar +- 3 sqrt(n p-bar (1 - p-bar))
    center = 347 / 30
    half = 3 * math.sqrt(center * (1 - 347 / 1500))
    assert np_.center == pytest.approx(center, rel=1e-12)
    assert np_.ucl == pytest.approx(center + half, rel=1e-12)
    assert np_.lcl == pytest.approx(center - half, rel=1e-12)
    assert np_.qcc_beyond == [14, 22]


def test_viscosity_individuals_chart_as_montgomery_prints():
    v = pd.read_csv(REF / "qcc_viscosity" / "data.csv").viscosity
    cs = control_chart(v, "imr")
    i, mr = cs.charts["i"], cs.charts["mr"]
    assert i.center == pytest.approx(33.52, abs=0.005)
    assert mr.center == pytest.approx(0.48, abs=0.005)
    assert i.ucl == pytest.approx(34.80, abs=0.01)
    assert i.lcl == pytest.approx(32.24, abs=0.01)
    assert mr.ucl == pytest.approx(1.57, abs=0.01)
    assert mr.lcl == 0.0
    assert math.isnan(mr.statistic[0])
    assert i.qcc_beyond == [] and mr.qcc_beyond == []


def test_nist_flowrate_individuals_chart():
    y = [49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]
    cs = control_chart(y, "imr")
    i, mr = cs.charts["i"], cs.charts["mr"]
    assert i.center == pytest.approx(50.81, abs=5e-5)
    assert mr.center == pytest.approx(1.8778, abs=5e-5)
    # NIST divides by d2 = 1.128 and multiplies by D4 = 3.267 (rounded); 3e-4 relative from the exact ones
    assert i.ucl == pytest.approx(55.8041, abs=2e-3)
    assert i.lcl == pytest.approx(45.8159, abs=2e-3)
    assert mr.ucl == pytest.approx(6.1349, abs=2e-3)


def _phase2_imr(values, rules=("nelson",)):
    """An I chart with center 0 and sigma 1 (limits +-3), so each value is its own z score."""
    return control_chart(values, "imr", limits={"type": "imr", "parameters": {"grand_mean": 0.0, "sigma": 1.0}},
                         rules=rules).charts["i"]


def _hits(chart, prefix):
    return [v["index"] for v in chart.violations if v["rule"].startswith(prefix)]


def test_nelson_rules_on_hand_built_sequences():
    # rule 1: 3.5 at index 2
    assert _hits(_phase2_imr([0.1, -0.2, 3.5, 0.3]), "1:") == [2]
    # rule 2: nine on one side: indices 1..9 above 0 -> the 9th of them (index 9) completes it
    seq = [-0.5] + [0.5] * 9 + [-0.5]
    assert _hits(_phase2_imr(seq), "2:") == [9]
    # rule 3: six increasing (indices 0..5) -> index 5; a 7th increasing point -> index 6 too
    assert _hits(_phase2_imr([-0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9]), "3:") == [5, 6]
    # rule 4: fourteen alternating up/down (indices 0..13) -> index 13
    alt = [0.5 if k % 2 else -0.5 for k in range(14)]
    assert _hits(_phase2_imr(alt), "4:") == [13]
    assert _hits(_phase2_imr(alt[:13]), "4:") == []
    # rule 5: two of three beyond 2 sigma on one side: 2.5, 0, 2.5 -> index 2
    assert _hits(_phase2_imr([2.5, 0.0, 2.5]), "5:") == [2]
    assert _hits(_phase2_imr([2.5, 0.0, -2.5]), "5:") == []
    # rule 6: four of five beyond 1 sigma on one side: 1.5, 1.5, 0, 1.5, 1.5 -> index 4
    assert _hits(_phase2_imr([1.5, 1.5, 0.0, 1.5, 1.5]), "6:") == [4]
    # rule 7: fifteen within 1 sigma (alternating sign so rule 2 stays quiet) -> index 14
    hug = [0.2 if k % 3 else -0.2 for k in range(15)]
    assert _hits(_phase2_imr(hug), "7:") == [14]
    # rule 8: eight beyond 1 sigma on either side -> index 7
    out = [1.5, -1.5, -1.5, 1.5, -1.5, 1.5, 1.5, -1.5]
    assert _hits(_phase2_imr(out), "8:") == [7]


def test_western_electric_rules_and_labels():
    ch = _phase2_imr([-0.5] + [0.5] * 8 + [3.2], rules=("western-electric",))
    assert _hits(ch, "WE4") == [8, 9]  # 8 in a row above: indices 1..8, and 9 continues the run
    assert _hits(ch, "WE1") == [9]
    assert all(v["lot"] == ch.labels[v["index"]] for v in ch.violations)
    assert not any(v["rule"][0].isdigit() for v in ch.violations)


def test_qcc_runs_rule_is_seven_in_a_row():
    ch = _phase2_imr([-0.5] + [0.5] * 7)
    assert ch.qcc_runs == [7]
    assert _phase2_imr([-0.5] + [0.5] * 6).qcc_runs == []


def test_variable_subgroup_sizes_give_limits_per_point():
    counts, sizes = [5, 8, 3, 6], [50, 80, 40, 60]
    p = control_chart(counts, "p", size=sizes).charts["p"]
    pbar = 22 / 230
    assert isinstance(p.ucl, list)
    for k, n in enumerate(sizes):
        assert p.ucl[k] == pytest.approx(pbar + 3 * math.sqrt(pbar * (1 - pbar) / n), rel=1e-12)
        assert p.lcl[k] == 0.0  # pbar - 3 se is negative for these sizes
    fig = control_figure(control_chart(counts, "p", size=sizes))
    ucl = next(t for t in fig.data if t.name == "p UCL")
    assert len(ucl.x) == 2 * len(sizes)  # a step line


def test_xbar_with_unequal_subgroups_uses_weighted_estimates():
    vals = [10.0, 11.0, 12.0, 9.0, 10.0, 11.0, 12.0, 13.0, 10.0]
    groups = ["a", "a", "a", "b", "b", "b", "b", "c", "c"]
    cs = control_chart(vals, "xbar-r", subgroups=groups)
    x = cs.charts["xbar"]
    assert x.center == pytest.approx(sum(vals) / len(vals))
    # UWAVE-R: sum(h R / d2) / sum(h), h = d2^2 / d3^2 (qcc's sd.xbar)
    rs, ns = [2.0, 3.0, 3.0], [3, 4, 2]
    h = [d2(n) ** 2 / d3(n) ** 2 for n in ns]
    sigma = sum(hh * r / d2(n) for hh, r, n in zip(h, rs, ns, strict=True)) / sum(h)
    assert x.sigma == pytest.approx(sigma)
    assert x.ucl == pytest.approx([x.center + 3 * sigma / math.sqrt(n) for n in ns])
    assert cs.subgroup_sizes == ns


def test_json_and_limits_are_plain_json():
    trial, _ = _pistonrings()
    cs = control_chart(trial.diameter, "xbar-r", subgroups=trial["sample"])
    data = json.loads(json.dumps(cs.to_json()))
    assert {"type", "phase", "notes", "xbar", "r"} <= set(data)
    assert {"center", "lcl", "ucl", "sigma", "violations", "statistic", "labels", "excluded"} <= set(data["xbar"])
    lim = json.loads(json.dumps(cs.limits()))
    assert lim["type"] == "xbar-r" and set(lim["parameters"]) == {"grand_mean", "sigma"}
    imr = control_chart([1.0, 2.0, 1.5, 1.8], "imr").to_json()
    assert imr["mr"]["statistic"][0] is None


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"values": [1, 2, 3], "type": "xbar-q"}, "Unknown chart type 'xbar-q'"),
    ({"values": [1, 2, 3], "type": "p"}, "needs `size`"),
    ({"values": [1, 2, 3], "type": "xbar-r"}, "needs subgroups"),
    ({"values": [1, 2, 3], "type": "imr", "exclude": ["9"]}, "Cannot exclude '9'"),
    ({"values": [1, 2, 3], "type": "imr", "rules": ("nelsen",)}, "Did you mean 'nelson'"),
    ({"values": [60, 2], "type": "p", "size": 50}, "between 0 and the number inspected"),
    ({"values": [1, 2], "type": "imr", "limits": {"type": "p", "parameters": {"p": 0.1}}}, "not 'imr'"),
])
def test_bad_input_says_what_to_fix(kwargs, words):
    with pytest.raises(ChartError, match=words.replace("(", r"\(").replace("`", "`")):
        control_chart(**kwargs)


def test_figure_has_one_panel_per_chart_and_red_signals():
    df = pd.read_csv(REF / "qcc_orangejuice" / "data.csv")
    trial = df[df.trial]
    cs = control_chart(trial.D, "p", size=50, labels=[f"L{k}" for k in trial["sample"]], exclude=["L15"])
    fig = control_figure(cs, note="Orange juice cans")
    names = [t.name for t in fig.data]
    assert {"p points", "p center", "p LCL", "p UCL", "p signals", "p excluded"} <= set(names)
    sig = next(t for t in fig.data if t.name == "p signals")
    assert 22 in list(sig.x)
    text = sig.customdata[list(sig.x).index(22)]
    assert "lot L23" in text and "beyond 3 sigma" in text
    assert sig.marker.color == "#D62728"
    trial_r, _ = _pistonrings()
    fig2 = control_figure(control_chart(trial_r.diameter, "xbar-r", subgroups=trial_r["sample"]), units="mm")
    assert fig2.layout.yaxis.title.text == "Subgroup mean (mm)"
    assert fig2.layout.yaxis2.title.text == "Range (mm)"
    assert fig2.layout.xaxis2.title.text == "Subgroup"
    _, two = phased_charts(df.D, "p", "30", size=50, labels=df["sample"])
    title = control_figure(two, response="Cans", limits_from="samples 1 to 30").layout.title.text
    assert title.startswith("Cans: p chart") and "phase II (limits from samples 1 to 30)" in title
    assert list(signals_frame(two).columns) == ["Chart", "Lot", "Rule"]
    assert set(signals_frame(two)["Chart"]) == {"Fraction nonconforming (p)"}
    assert set(CHART_TYPES) == {"xbar-r", "xbar-s", "imr", "p", "np"}


def test_d2_is_the_published_three_decimal_table_up_to_25():
    """d2 for n = 2..25 as Montgomery's Appendix VI and R's qcc (exp.R.unscaled) print it; the charts and the
    capability indices divide by these, so their sigma is qcc's to every printed digit."""
    from doe.control_charts import d2

    table = (1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078, 3.173, 3.258, 3.336, 3.407,
             3.472, 3.532, 3.588, 3.640, 3.689, 3.735, 3.778, 3.819, 3.858, 3.895, 3.931)
    assert [d2(n) for n in range(2, 26)] == list(table)
    assert abs(d2(5, exact=True) - 2.32593) < 5e-6 and d2(30) == d2(30, exact=True)
