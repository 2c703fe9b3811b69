"""Scale planner with growth per vessel family from recorded passages: hand-computed plans.

Every expected number below is worked out by hand in the comments (no published reference exists for
this planner's rules; the rules are those of the doe.scale module docstring). Per stage: cells in =
vessels x area x seeding density, cells out = cells in x the family's fold expansion, days = the
family's mean passage hours / 24, PD = log2(fold). The equivalence estimate, when a result gives none,
is the centre of the TOST interval on its analysis scale: sqrt(0.91 x 1.03) = sqrt(0.9373) = 0.968.
"""

import math

import pandas as pd
import pytest

from doe.errors import DoeError
from doe.scale import (
    EXAMPLE_PLAN,
    FamilyGrowth,
    PlanFile,
    Supply,
    Vessel,
    measured_growth,
    plan_seed_train,
    plans_json,
    recorded_vs_predicted,
    run_plan,
    supply_frame,
)

CAT = [Vessel("T-75", "T-flask", "lab", 75, 3), Vessel("CellSTACK-1", "CellSTACK", "scale-out", 636, 3),
       Vessel("CellSTACK-10", "CellSTACK", "scale-out", 6360, 3),
       Vessel("CellCube-10", "CellCube", "scale-up", 8500, 1)]


def _part(mean, ci_low=None, ci_high=None, sd=None):
    return {"mean": mean, "ci_low": ci_low, "ci_high": ci_high, "sd": sd}


# T-flask: mean fold 5.6, lower 95 % bound 5.0, 96 h = 4 days; CellSTACK: mean 7.2, bound 6.5, 108 h = 4.5 days
GROUPS = {
    "T-flask": {"group": "T-flask", "n": 4, "donors": 2, "method": "", "fold_expansion": _part(5.6, 5.0, 6.2, 0.4),
                "doubling_time_h": _part(38.6), "hours": _part(96.0), "harvest_density": _part(11200.0)},
    "CellSTACK": {"group": "CellSTACK", "n": 6, "donors": 3, "method": "", "fold_expansion": _part(7.2, 6.5, 7.9, 0.7),
                  "doubling_time_h": _part(37.9), "hours": _part(108.0), "harvest_density": _part(14400.0)},
}
NEED = 2 * 6360 * 13000  # two CellSTACK-10 harvested at 2,000 x 6.5 = 13,000 cells/cm2: 165,360,000 cells


def _supply(by_family, **kw):
    # the single numbers (fold 3, 7 days, harvest 20,000) are for families without records only
    args = {"seeding_density_cells_per_cm2": 2000, "fold_expansion_per_passage": 3, "days_per_passage": 7,
            "starting_cells": 1e6, "harvest_density_cells_per_cm2": 20000, "by_family": by_family}
    args.update(kw)
    return Supply(**args)


def test_measured_growth_conservative_uses_the_lower_bound():
    low = measured_growth(GROUPS)
    assert low["CellSTACK"].fold_expansion == 6.5 and low["T-flask"].fold_expansion == 5.0
    assert low["CellSTACK"].days_per_passage == 4.5 and low["T-flask"].days_per_passage == 4.0  # 108 / 24, 96 / 24
    assert low["CellSTACK"].source == ("recorded passages: CellSTACK, 6 passages, 3 donors; "
                                       "lower 95 % bound of the mean fold expansion")
    assert (low["CellSTACK"].fold_mean, low["CellSTACK"].fold_ci_low, low["CellSTACK"].doubling_time_h) == (
        7.2, 6.5, 37.9)
    mean = measured_growth(GROUPS, conservative=False)
    assert mean["CellSTACK"].fold_expansion == 7.2
    assert mean["CellSTACK"].source.endswith("; mean fold expansion")


def test_measured_growth_one_passage_and_no_growth():
    one = {"HYPERFlask": {"n": 1, "donors": 1, "method": "", "fold_expansion": _part(6.0),
                          "hours": _part(120.0)}}
    g = measured_growth(one)["HYPERFlask"]
    assert g.fold_expansion == 6.0 and g.days_per_passage == 5.0
    assert g.source == "recorded passages: HYPERFlask, 1 passage, 1 donor; mean of 1 passage - no interval"
    flat = {"CellCube": {"n": 3, "donors": 3, "fold_expansion": _part(1.4, 0.9), "hours": _part(96.0)}}
    with pytest.raises(DoeError, match="Recorded passages of CellCube: the fold expansion used .* is 0.9"):
        measured_growth(flat)
    assert measured_growth(flat, conservative=False)["CellCube"].fold_expansion == 1.4
    with pytest.raises(DoeError, match="CellCube: no mean passage length"):
        measured_growth({"CellCube": {"n": 3, "fold_expansion": _part(4.0), "hours": _part(None)}})


def test_plan_with_a_fold_and_days_per_family_by_hand():
    plan = plan_seed_train(NEED, _supply(measured_growth(GROUPS)), CAT, "scale-out")
    # backwards: 165,360,000 / 13,000 = 12,720 cm2 -> 2 x CellSTACK-10 (fill 1.0), seeded 12,720 x 2,000 = 25,440,000
    # 25,440,000 / 13,000 = 1,957 cm2 -> 4 x CellSTACK-1 (2,544 cm2, fill 0.77; 1 CellSTACK-10 would be 0.31 full),
    #   seeded 2,544 x 2,000 = 5,088,000
    # 5,088,000 / 13,000 = 391 cm2 -> 1 x CellSTACK-1 (fill 0.62), seeded 636 x 2,000 = 1,272,000
    # 1,272,000 / 13,000 = 98 cm2 < 0.5 x 636: lab; T-flask harvest 2,000 x 5 = 10,000 cells/cm2: 127.2 cm2
    #   -> 2 x T-75 (fill 0.85), seeded 150 x 2,000 = 300,000 <= 1e6 vial cells: stop
    assert [(s.vessel, s.vessels) for s in plan.stages] == [("T-75", 2), ("CellSTACK-1", 1), ("CellSTACK-1", 4),
                                                            ("CellSTACK-10", 2)]
    assert [s.cells_in for s in plan.stages] == pytest.approx([300_000, 1_272_000, 5_088_000, 25_440_000])
    assert [s.cells_out for s in plan.stages] == pytest.approx([1_500_000, 8_268_000, 33_072_000, 165_360_000])
    assert [s.fold_expansion for s in plan.stages] == [5.0, 6.5, 6.5, 6.5]
    assert [s.day_start for s in plan.stages] == pytest.approx([0, 4, 8.5, 13])
    assert [s.day_end for s in plan.stages] == pytest.approx([4, 8.5, 13, 17.5])
    assert plan.days == pytest.approx(17.5)
    assert [s.population_doublings for s in plan.stages] == pytest.approx([math.log2(5)] + 3 * [math.log2(6.5)])
    assert plan.cumulative_pdl == pytest.approx(math.log2(5) + 3 * math.log2(6.5))
    assert plan.stages[-1].fill == pytest.approx(1.0) and plan.stages[0].fill == pytest.approx(127.2 / 150)
    assert plan.stages[0].source.startswith("recorded passages: T-flask, 4 passages, 2 donors")
    # every stage measured: the supply's harvest density 20,000 is not used, so no density warning
    assert plan.warnings == [] and not plan.equivalence_checked


def test_a_family_without_records_uses_the_supply_numbers():
    only = {"CellSTACK": measured_growth(GROUPS)["CellSTACK"]}
    plan = plan_seed_train(NEED, _supply(only, fold_expansion_per_passage=4, days_per_passage=3,
                                         harvest_density_cells_per_cm2=None), CAT, "scale-out")
    # the CellSTACK stages as above; T-flask harvests 2,000 x 4 = 8,000 cells/cm2: 1,272,000 / 8,000 = 159 cm2
    #   -> 3 x T-75 (225 cm2, fill 0.71), seeded 225 x 2,000 = 450,000, 3 days
    first = plan.stages[0]
    assert (first.vessel, first.vessels, first.fold_expansion) == ("T-75", 3, 4)
    assert (first.cells_in, first.cells_out) == pytest.approx((450_000, 1_800_000))
    assert first.source == "plan"
    assert [s.day_end for s in plan.stages] == pytest.approx([3, 7.5, 12, 16.5])
    assert plan.cumulative_pdl == pytest.approx(2 + 3 * math.log2(6.5))  # log2(4) = 2


def test_no_records_keeps_the_single_numbers():
    with_empty = plan_seed_train(NEED, _supply({}, fold_expansion_per_passage=6.5,
                                               harvest_density_cells_per_cm2=None), CAT)
    assert {s.fold_expansion for s in with_empty.stages} == {6.5}
    assert all(s.source == "plan" for s in with_empty.stages)
    assert [s.day_end for s in with_empty.stages] == [7 * (i + 1) for i in range(len(with_empty.stages))]


# -- equivalence -----------------------------------------------------------------------------------------
def _result(reference, test, equivalent, ci, response="Fold expansion", log=True, margin=(0.8, 1.25), **kw):
    return {"response": response, "group": "Family", "reference": reference, "test": test,
            "equivalent": equivalent, "ci": list(ci), "margin": list(margin), "log": log, **kw}


def _plan(equivalence, strategy="scale-out"):
    return plan_seed_train(NEED, _supply(measured_growth(GROUPS)), CAT, strategy, equivalence=equivalence)


def test_no_evidence_warns_for_the_step_between_families():
    plan = _plan([])
    assert plan.equivalence_checked
    assert plan.warnings == [
        "Stage 1 -> 2 (T-flask -> CellSTACK): no equivalence evidence between T-flask and CellSTACK for this "
        "scale-out step; test it on the Scale comparison page (python -m doe equivalence) before relying on this "
        "step."]
    # evidence about another pair of families does not count
    other = _plan([_result("CellSTACK", "CellCube", True, (0.91, 1.03))])
    assert len(other.warnings) == 1 and "no equivalence evidence between T-flask and CellSTACK" in other.warnings[0]


@pytest.mark.parametrize("reference, test", [("T-flask", "CellSTACK"), ("CellSTACK", "T-flask"),
                                             ("T-75", "CellSTACK-10"), ("cellstack-1", "T-flask")])
def test_equivalent_evidence_either_order_or_vessel_names(reference, test):
    plan = _plan([_result(reference, test, True, (0.91, 1.03))])
    assert plan.warnings == []
    assert plan.stages[1].evidence == "Fold expansion equivalent (ratio 0.97, 90 % CI 0.91 to 1.03 in 0.80 to 1.25)"
    assert plan.stages[0].evidence == plan.stages[2].evidence == ""


def test_evidence_that_is_not_equivalent_names_response_interval_and_margin():
    plan = _plan([_result("T-flask", "CellSTACK", False, (0.72, 1.02), estimate=0.85),
                  _result("CellSTACK", "T-flask", False, (-1.5, 0.5), response="Viability (%)", log=False,
                          margin=(-1, 1), alpha=0.025)])
    (w,) = plan.warnings
    assert w.startswith("Stage 1 -> 2 (T-flask -> CellSTACK): the equivalence tests between T-flask and CellSTACK "
                        "do not show this scale-out step equivalent")
    assert "Fold expansion: ratio 0.85, 90 % CI 0.72 to 1.02 in 0.80 to 1.25" in w
    # alpha 0.025: the 1 - 2 x 0.025 = 95 % interval; estimate (-1.5 + 0.5) / 2 = -0.5
    assert "Viability (%): difference -0.5, 95 % CI -1.5 to 0.5 in -1 to 1" in w
    # one equivalent result for the step is enough
    ok = _plan([_result("T-flask", "CellSTACK", False, (0.72, 1.02)), _result("T-75", "CellSTACK-1", True,
                                                                              (0.91, 1.03))])
    assert ok.warnings == [] and ok.stages[1].evidence.startswith("Fold expansion equivalent (ratio 0.97")


def test_a_step_into_a_scale_up_vessel_is_a_scale_up_step():
    s = Supply(seeding_density_cells_per_cm2=2000, fold_expansion_per_passage=6.5, days_per_passage=4,
               starting_cells=1e6)
    # 2 x 8,500 cm2 x 13,000 = 2.21e8 cells -> 2 x CellCube-10; seeded 3.4e7 cells = 2,615 cm2 of T-75
    plan = plan_seed_train(2 * 8500 * 13000, s, CAT, "scale-up", equivalence=[])
    assert plan.final.vessel == "CellCube-10" and plan.stages[-2].family == "T-flask"
    n = plan.final.number
    assert plan.warnings[-1] == (f"Stage {n - 1} -> {n} (T-flask -> CellCube): no equivalence evidence between "
                                 "T-flask and CellCube for this scale-up step; test it on the Scale comparison page "
                                 "(python -m doe equivalence) before relying on this step.")
    assert plan_seed_train(2 * 8500 * 13000, s, CAT, "scale-up").warnings == []  # not checked: no warning


# -- plan file: from_passages ----------------------------------------------------------------------------------
def _passage_plan():
    text = EXAMPLE_PLAN.read_text(encoding="utf-8")
    text = text.replace("  fold_expansion_per_passage: 6.5 ", "  fold_expansion_per_passage: from_passages ", 1)
    text = text.replace("  days_per_passage: 4", "  days_per_passage: from_passages", 1)
    return PlanFile.from_yaml(text.replace("  harvest_density_cells_per_cm2: 13000", "", 1))


def test_from_passages_needs_the_records():
    plan = _passage_plan()
    assert plan.uses_passages and not plan.uses_models
    with pytest.raises(DoeError, match=r"give the passage records \(--passages PASSAGES.csv on the command line, "
                                       r"or the Seed train page\)"):
        run_plan(plan)
    with pytest.raises(DoeError, match="starting_cells cannot be 'from_passages'"):
        PlanFile.from_yaml(EXAMPLE_PLAN.read_text(encoding="utf-8").replace(
            "  starting_cells: 1.0e+6", "  starting_cells: from_passages", 1))


def test_from_passages_takes_each_family_and_pools_for_the_others():
    measured = measured_growth(GROUPS)
    out = run_plan(_passage_plan(), measured=measured, equivalence=[])
    data = out["json"]
    assert set(data["measured"]) == {"T-flask", "CellSTACK"} and data["equivalence_checked"] is True
    assert data["measured"]["CellSTACK"]["fold_expansion"] == 6.5
    supply = data["supply"]
    # families without records: passage-weighted mean (4 x 5.0 + 6 x 6.5) / 10 = 5.9; days (4 x 4 + 6 x 4.5) / 10 = 4.3
    assert supply["fold_expansion_per_passage"]["value"] == pytest.approx(5.9)
    assert supply["days_per_passage"]["value"] == pytest.approx(4.3)
    assert "pooled over T-flask, CellSTACK" in supply["fold_expansion_per_passage"]["source"]
    fam = supply["by_family"]["value"]["CellSTACK"]
    assert {k: fam[k] for k in ("fold_expansion", "days_per_passage", "doubling_time_h", "n", "donors")} == {
        "fold_expansion": 6.5, "days_per_passage": 4.5, "doubling_time_h": 37.9, "n": 6, "donors": 3}
    assert fam["source"] == measured["CellSTACK"].source
    # the scale-out train steps T-flask -> CellSTACK and is warned about (no evidence given)
    so = data["strategies"]["scale-out"]
    assert any("(T-flask -> CellSTACK): no equivalence evidence" in w for w in so["warnings"])
    assert so["stages"][-1]["fold_expansion"] == 6.5 and so["stages"][-1]["source"] == measured["CellSTACK"].source
    # the CellCube stages of scale-up have no records: the pooled 5.9 fold
    su = data["strategies"]["scale-up"]["stages"]
    assert su[-1]["family"] == "CellCube" and su[-1]["fold_expansion"] == pytest.approx(5.9)
    frame = supply_frame(supply)
    row = frame.loc[frame["Growth number"] == "Fold expansion per passage - CellSTACK"].iloc[0]
    assert row["Number"] == 6.5 and row["Source"] == measured["CellSTACK"].source
    days = frame.loc[frame["Growth number"] == "Days per passage - T-flask"].iloc[0]
    assert days["Number"] == 4.0 and "96 h / 24" in days["Source"]


def test_numbers_in_the_plan_keep_records_unused_with_a_note():
    plan = PlanFile.load(EXAMPLE_PLAN)
    data = run_plan(plan, measured=measured_growth(GROUPS))["json"]
    assert data["measured"] == {} and data["equivalence_checked"] is False
    assert any("write from_passages to use them" in n for n in data["notes"])
    assert data["supply"]["fold_expansion_per_passage"] == {"value": 6.5, "source": "plan"}


def test_plans_json_of_a_plain_supply_has_an_empty_by_family():
    plan = _plan(None)
    out = plans_json(None, [plan])
    assert out["equivalence_checked"] is False
    empty = plans_json(None, [plan_seed_train(NEED, _supply({}), CAT)])
    assert empty["supply"]["by_family"]["value"] == {}


# -- predicted against recorded -----------------------------------------------------------------------------
def _kinetics(rows):
    frame = pd.DataFrame(rows, columns=["Donor", "Passage", "Vessel", "Family", "Seeded cells", "Harvested cells",
                                        "Hours", "Area (cm2)"])
    frame["Fold expansion"] = frame["Harvested cells"] / frame["Seeded cells"]
    frame["Harvest density (cells/cm2)"] = frame["Harvested cells"] / frame["Area (cm2)"]
    return frame


KINETICS = _kinetics([
    ("D1", 1, "T-75", "T-flask", 150_000, 700_000, 96, 75), ("D2", 1, "T-75", "T-flask", 150_000, 800_000, 96, 75),
    ("D1", 2, "CellSTACK-1", "CellSTACK", 1_272_000, 8_000_000, 108, 636),
    ("D2", 2, "CellSTACK-1", "CellSTACK", 1_272_000, 9_000_000, 108, 636),
    ("D3", 2, "CellSTACK-1", "CellSTACK", 1_272_000, 7_000_000, 108, 636),
])


def test_recorded_vs_predicted_by_hand():
    plan = _plan(None)
    table = recorded_vs_predicted(plan, KINETICS)
    assert list(table["Stage"]) == [1, 2, 3, 4]
    # predicted per vessel: 1,500,000 / 2; 8,268,000 / 1; 33,072,000 / 4; 165,360,000 / 2
    assert list(table["Predicted cells per vessel"]) == pytest.approx([750_000, 8_268_000, 8_268_000, 82_680_000])
    # T-75: mean (700,000 + 800,000) / 2 = 750,000; CellSTACK-1: (8 + 9 + 7) / 3 = 8e6
    assert list(table["Recorded cells per vessel (mean)"][:3]) == pytest.approx([750_000, 8e6, 8e6])
    assert list(table["Recorded min"][:3]) == pytest.approx([700_000, 7e6, 7e6])
    assert list(table["Recorded max"][:3]) == pytest.approx([800_000, 9e6, 9e6])
    assert list(table["Passages recorded"]) == [2, 3, 3, 3]
    # CellSTACK-10 has no records: CellSTACK densities 8e6 / 636 etc. x 6,360 cm2 = 8e7 (7e7 to 9e7)
    last = table.iloc[3]
    assert (last["Recorded cells per vessel (mean)"], last["Recorded min"], last["Recorded max"]) == pytest.approx(
        (8e7, 7e7, 9e7))
    assert last["Recorded from"].startswith("CellSTACK harvest density x 6,360 cm²")
    assert table.iloc[0]["Recorded from"] == "T-75: 2 passages"
    assert list(table["Predicted / recorded"]) == pytest.approx([1.0, 8.268 / 8, 8.268 / 8, 82.68 / 80])
    none = recorded_vs_predicted(plan, KINETICS[KINETICS["Family"] != "T-flask"]).iloc[0]
    assert none["Recorded from"] == "no records" and none["Passages recorded"] == 0
    assert math.isnan(none["Recorded cells per vessel (mean)"]) and math.isnan(none["Predicted / recorded"])
    with pytest.raises(DoeError, match="no column 'Harvested cells'"):
        recorded_vs_predicted(plan, KINETICS.drop(columns=["Harvested cells"]))


def test_recorded_figure_carries_the_numbers():
    from doe.plots.scale import recorded_figure

    plan = _plan(None)
    table = recorded_vs_predicted(plan, KINETICS[KINETICS["Vessel"] != "T-75"])
    fig = recorded_figure(plan, table)
    predicted, recorded = fig.data
    assert list(predicted.x) == ["Stage 1: T-75", "Stage 2: CellSTACK-1", "Stage 3: CellSTACK-1",
                                 "Stage 4: CellSTACK-10"]
    assert list(predicted.y) == pytest.approx([750_000, 8_268_000, 8_268_000, 82_680_000])
    assert recorded.y[0] is None and list(recorded.y[1:]) == pytest.approx([8e6, 8e6, 8e7])
    assert list(recorded.error_y.array[1:]) == pytest.approx([1e6, 1e6, 1e7])  # max - mean
    assert list(recorded.error_y.arrayminus[1:]) == pytest.approx([1e6, 1e6, 1e7])  # mean - min
    assert fig.layout.yaxis.type == "log" and "Cells per vessel" in fig.layout.yaxis.title.text
    assert "no records" in recorded.text[0]
    both = [_plan(None), _plan(None, "scale-up")]
    fig2 = recorded_figure(both, [recorded_vs_predicted(p, KINETICS) for p in both])
    assert len(fig2.data) == 4 and list(fig2.data[2].x[0])[0] == "scale-up"
    with pytest.raises(DoeError, match="one table per plan"):
        recorded_figure(both, [table])


def test_family_growth_describe_keys():
    g = FamilyGrowth("CellSTACK", 6.5, 4.5, "recorded passages", 6, 3, 7.2, 6.5, 37.9, 108.0)
    assert set(g.describe()) == {"fold_expansion", "days_per_passage", "doubling_time_h", "n", "donors", "source",
                                 "days_source"}
    assert g.doublings_per_passage == pytest.approx(math.log2(6.5))


def test_equivalence_results_from_a_table_and_malformed_ones():
    import numpy as np

    # a verdict read from a DataFrame is a numpy bool; the text "False" is no verdict of equivalence
    assert _plan([_result("T-flask", "CellSTACK", np.bool_(True), (0.91, 1.03))]).warnings == []
    assert "do not show this scale-out step equivalent" in _plan(
        [_result("T-flask", "CellSTACK", "False", (0.91, 1.03))]).warnings[0]
    # a test with too few data has no interval (null in its JSON): the warning says so, the plan is still made
    (w,) = _plan([_result("T-flask", "CellSTACK", False, (None, None), estimate=1.1)]).warnings
    assert "Fold expansion: ratio 1.10, 90 % CI not computed (margin 0.80 to 1.25) - not shown equivalent" in w


def test_records_of_a_family_the_catalogue_lacks_are_noted():
    groups = {**GROUPS, "Bioreactor": {"n": 2, "donors": 2, "fold_expansion": _part(9.0, 8.0), "hours": _part(72.0)}}
    data = run_plan(_passage_plan(), measured=measured_growth(groups))["json"]
    assert any("Passage records of 'Bioreactor' match no vessel family of the catalogue" in n for n in data["notes"])
