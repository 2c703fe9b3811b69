"""Seed-train scale planner: hand-computed cases, warnings, validation, models, CLI and page."""

import json
import math

import pandas as pd
import pytest

from doe.cli import main
from doe.errors import DoeError
from doe.scale import (
    CATALOGUE,
    Demand,
    PlanFile,
    Supply,
    Vessel,
    area_needed,
    catalogue_frame,
    cells_needed,
    find_vessel,
    plan_frame,
    plan_seed_train,
    read_catalogue,
    run_plan,
    supply_from_models,
    vessels_for,
)
from tests.conftest import ROOT

PLAN = ROOT / "data" / "example_plan.yaml"
RESULTS = ROOT / "data" / "msc_example_results.csv"
STUDY = ROOT / "data" / "msc_expansion.yaml"

# Issue 6: 70 kg x 2e6 cells/kg x 8 doses; harvest 1.3e4 cells/cm2 after 4 days from 2,000 cells/cm2 (docs/domain.md)
ISSUE = Demand(dose_cells_per_kg=2e6, patient_weight_kg=70, doses_per_patient=8, patients_per_batch=1)


def supply(**kw):
    args = {"seeding_density_cells_per_cm2": 2000, "fold_expansion_per_passage": 6.5, "days_per_passage": 4,
            "starting_cells": 1e6, "harvest_density_cells_per_cm2": 13000}
    args.update(kw)
    return Supply(**args)


@pytest.fixture(scope="module")
def catalogue():
    return read_catalogue()


# -- hand-computed arithmetic ------------------------------------------------------------------------
def test_issue_case_cells_area_and_final_vessels(catalogue):
    assert cells_needed(ISSUE) == pytest.approx(1.12e9)
    area = area_needed(1.12e9, 1.3e4)
    assert round(area) == 86154  # 1.12e9 / 1.3e4 = 86,153.8
    assert vessels_for(area, find_vessel(catalogue, "CellCube-100")) == 2  # 86,154 > 85,000
    assert vessels_for(area, find_vessel(catalogue, "CellSTACK-40")) == 4  # 3 x 25,440 = 76,320 < 86,154
    out = plan_seed_train(ISSUE, supply(), catalogue, "scale-out")
    up = plan_seed_train(ISSUE, supply(), catalogue, "scale-up")
    assert (out.final.vessel, out.final.vessels) == ("CellSTACK-40", 4)
    assert (up.final.vessel, up.final.vessels) == ("CellCube-100", 2)
    assert out.final.area_cm2 == 4 * 25440 and up.final.area_cm2 == 2 * 85000
    # every vessel seeded at 2,000 and harvested at 13,000 cells/cm2
    assert up.final.cells_in == pytest.approx(170000 * 2000)
    assert up.final.cells_out == pytest.approx(170000 * 13000)


def test_catalogue_areas_are_those_of_domain_md(catalogue):
    areas = {v.name: v.area_cm2 for v in catalogue}
    assert areas == {"T-75": 75, "T-175": 175, "T-225": 225, "HYPERFlask": 1720, "CellSTACK-1": 636,
                     "CellSTACK-2": 1272, "CellSTACK-5": 3180, "CellSTACK-10": 6360, "CellSTACK-40": 25440,
                     "HYPERStack-12": 6000, "HYPERStack-36": 18000, "CellCube-10": 8500,
                     "CellCube-25": 21250, "CellCube-100": 85000}
    assert all("docs/domain.md" in v.source for v in catalogue)
    assert {v.mode for v in catalogue if v.family == "CellCube"} == {"scale-up"}


def test_overage_and_patients_multiply():
    d = Demand(1e6, 50, 2, 3, overage=0.25)  # 1e6 x 50 x 2 x 3 = 3e8, + 25 % = 3.75e8
    assert cells_needed(d) == pytest.approx(3.75e8)


def test_population_doublings_by_hand():
    # fold 8 per passage = 3 doublings; a 1 cm2 vessel: 1,000 cells in, 8,000 out per passage.
    cat = [Vessel("V1", "Test", "lab", 1, 1), Vessel("V8", "Test", "lab", 8, 1), Vessel("V64", "Test", "lab", 64, 1)]
    s = Supply(seeding_density_cells_per_cm2=1000, fold_expansion_per_passage=8, days_per_passage=3,
               starting_cells=1000, mcb_population_doublings=2)
    plan = plan_seed_train(64 * 8000, s, cat, "scale-out")  # 512,000 cells: 1 -> 8 -> 64 cm2
    assert [st.vessel for st in plan.stages] == ["V1", "V8", "V64"]
    assert [st.population_doublings for st in plan.stages] == [3, 3, 3]
    assert [st.cumulative_pdl for st in plan.stages] == [5, 8, 11]  # the vial's 2 + 3 per passage
    assert [st.cells_in for st in plan.stages] == [1000, 8000, 64000]
    assert plan.days == 9 and plan.total_vessels == 3 and plan.open_manipulations == 3
    assert plan.warnings == []


def test_train_grows_until_the_vial_can_seed_it(catalogue):
    plan = plan_seed_train(ISSUE, supply(), catalogue, "scale-out")
    assert plan.stages[0].cells_in <= 1e6 < plan.stages[1].cells_in
    for a, b in zip(plan.stages, plan.stages[1:], strict=False):
        assert a.cells_out >= b.cells_in  # each stage feeds the next
        assert b.day_start == a.day_end
    assert plan.final.cells_out >= 1.12e9


# -- warnings ------------------------------------------------------------------------------------------
def test_warnings_fire_only_when_limits_are_exceeded(catalogue):
    # the issue case: 5 passages of log2(6.5) = 2.70 doublings = 13.5 PDL
    ok = plan_seed_train(ISSUE, supply(max_population_doublings=15, max_passages=5), catalogue, "scale-out")
    assert len(ok.stages) == 5 and ok.cumulative_pdl == pytest.approx(5 * math.log2(6.5))
    assert ok.warnings == []
    tight = plan_seed_train(ISSUE, supply(max_population_doublings=13, max_passages=4), catalogue, "scale-out")
    assert any("population doublings 13.5 exceed the budget of 13" in w for w in tight.warnings)
    assert any("5 passages exceed the maximum of 4" in w for w in tight.warnings)
    few = [v if v.name != "CellSTACK-40" else Vessel(**{**v.__dict__, "max_practical_count": 3}) for v in catalogue]
    over = plan_seed_train(ISSUE, supply(), few, "scale-out")
    assert over.warnings == ["Stage 5: 4 x CellSTACK-40 exceeds the practical count of 3."]


def test_inconsistent_densities_warn(catalogue):
    plan = plan_seed_train(ISSUE, supply(seeding_density_cells_per_cm2=3000), catalogue, "scale-up")
    assert any("differs from the seeding density 3,000" in w for w in plan.warnings)


def test_vial_too_small_for_the_smallest_vessel(catalogue):
    # one T-75 seeded at 2,000 cells/cm2 needs 150,000 cells; a vial of 10,000 cannot seed it
    with pytest.raises(DoeError, match=r"cannot seed one T-75 \(75 cm\^2 at 2,000 cells/cm\^2 needs 1.5e\+05"):
        plan_seed_train(ISSUE, supply(starting_cells=1e4), catalogue)


def test_no_growth_is_an_error(catalogue):
    with pytest.raises(DoeError, match="fold expansion above 1"):
        plan_seed_train(ISSUE, supply(fold_expansion_per_passage=1.0), catalogue)
    with pytest.raises(DoeError, match="Unknown strategy 'scale-sideways'"):
        plan_seed_train(ISSUE, supply(), catalogue, "scale-sideways")


# -- catalogue validation --------------------------------------------------------------------------------
def test_catalogue_errors_name_row_and_column(tmp_path):
    frame = catalogue_frame(read_catalogue()).astype(object)
    frame.loc[2, "area_cm2"] = "abc"
    with pytest.raises(DoeError, match=r"row 3 \('T-225'\), column 'area_cm2' must be a number; got 'abc'"):
        read_catalogue(frame)
    frame = catalogue_frame(read_catalogue()).astype(object)
    frame.loc[0, "mode"] = "scaleout"
    with pytest.raises(DoeError, match=r"row 1 \('T-75'\), column 'mode': 'scaleout' is not a mode. Did you mean "
                                       r"'scale-out'\?"):
        read_catalogue(frame)
    frame = catalogue_frame(read_catalogue()).astype(object)
    frame.loc[4, "max_practical_count"] = -2
    with pytest.raises(DoeError, match=r"row 5 \('CellSTACK-1'\), column 'max_practical_count' must be above 0"):
        read_catalogue(frame)
    frame = catalogue_frame(read_catalogue()).astype(object)
    frame.loc[1, "name"] = "T-75"
    with pytest.raises(DoeError, match="'T-75' is listed twice"):
        read_catalogue(frame)
    with pytest.raises(DoeError, match="no column 'area_cm2'"):
        read_catalogue(catalogue_frame(read_catalogue()).drop(columns=["area_cm2"]))
    bad = tmp_path / "v.csv"
    bad.write_text(CATALOGUE.read_text(encoding="utf-8").replace("max_practical_count", "max_count", 1),
                   encoding="utf-8")
    with pytest.raises(DoeError, match="unknown column 'max_count'. Did you mean 'max_practical_count'"):
        read_catalogue(bad)


def test_user_vessel_is_used(catalogue):
    frame = catalogue_frame(catalogue)
    mine = {c: None for c in frame.columns} | {"name": "MegaStack", "family": "Own", "mode": "scale-out",
                                                "area_cm2": 50000, "open_manipulations_per_passage": 1}
    vessels = read_catalogue(pd.concat([frame, pd.DataFrame([mine])], ignore_index=True))
    plan = plan_seed_train(ISSUE, supply(), vessels, "scale-out")
    assert (plan.final.vessel, plan.final.vessels) == ("MegaStack", 2)  # 86,154 cm2 / 50,000 -> 2


def test_unknown_vessel_in_plan_gets_did_you_mean():
    plan = PlanFile.load(PLAN)
    plan.vessels = {"CellStack-40": {"max_practical_count": 2}}
    with pytest.raises(DoeError, match="Unknown vessel 'CellStack-40'. Did you mean 'CellSTACK-40'"):
        run_plan(plan)
    plan.vessels = {"CellSTACK-40": {"max_practical_count": 2}}
    out = run_plan(plan)["json"]["strategies"]["scale-out"]
    assert "Stage 5: 4 x CellSTACK-40 exceeds the practical count of 2." in out["warnings"]


# -- plan file -------------------------------------------------------------------------------------------
def _plan_text(old: str, new: str) -> str:
    text = PLAN.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("old, new, message", [
    ("  overage: 0.0", "  overrage: 0.0", "Unknown key 'overrage' in 'demand'. Did you mean 'overage'"),
    ("  patient_weight_kg: 70", "  patient_weight_kg: -70", "demand: patient_weight_kg must be above 0"),
    ("  days_per_passage: 4", "  days_per_passage: four", "supply: days_per_passage must be a number; got 'four'"),
    ("  max_passages: 5 ", "  max_passages: 4.5 ", "supply: max_passages must be a whole number"),
    ("  starting_cells: 1.0e+6", "  starting_cells: from_models", "starting_cells cannot be 'from_models'"),
    ("strategies: [scale-out, scale-up]", "strategies: [scale-out, scaleup]",
     "Unknown strategy 'scaleup'. Did you mean 'scale-up'"),
    ("schema: 1", "schema: 1\ncolour: red", "Unknown key 'colour' in the plan file"),
])
def test_plan_file_validation(old, new, message):
    with pytest.raises(DoeError, match=message):
        PlanFile.from_yaml(_plan_text(old, new))


def test_example_plan_reads_as_written():
    plan = PlanFile.load(PLAN)
    assert plan.demand == ISSUE
    assert plan.strategies == ["scale-out", "scale-up"] and not plan.uses_models
    assert plan.supply["harvest_density_cells_per_cm2"] == 13000


# -- supply from the fitted models --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example_runs():
    from doe.runs import read_results
    from doe.study import Study

    study = Study.load(STUDY)
    return study, read_results(study, RESULTS).table


def test_supply_from_models_is_the_prediction_and_conservative_is_lower(example_runs):
    from doe.analysis import default_choice, fit_all

    study, runs = example_runs
    sp = {"Medium": "hPL 5%", "Surface": "Standard TC", "Agitation": 60, "Seeding density": 3000}
    low = supply_from_models(study, runs, sp)
    mean = supply_from_models(study, runs, sp, conservative=False)
    fm = fit_all(study, runs, default=default_choice())["Fold expansion"].model
    pred = fm.predict(pd.DataFrame([{**sp, "Harvest reagent": "Trypsin-EDTA"}]), "prediction", 0.95).iloc[0]
    assert mean["fold_expansion_per_passage"]["value"] == pytest.approx(pred["mean"])
    assert low["fold_expansion_per_passage"]["value"] == pytest.approx(pred["lower"])
    assert low["fold_expansion_per_passage"]["value"] < mean["fold_expansion_per_passage"]["value"]
    assert "lower 95 % prediction bound" in low["fold_expansion_per_passage"]["source"]
    assert low["seeding_density_cells_per_cm2"]["value"] == 3000  # the set point's
    assert "harvest_density_cells_per_cm2" not in low  # the example has no harvest-density CQA

    plan = PlanFile.from_yaml(_plan_text("  fold_expansion_per_passage: 6.5 ", "  fold_expansion_per_passage: "
                                         "from_models ").replace("harvest_density_cells_per_cm2: 13000", ""))
    out = run_plan(plan, models=low)["json"]["supply"]
    f = low["fold_expansion_per_passage"]["value"]
    assert out["fold_expansion_per_passage"]["value"] == pytest.approx(f)
    assert out["seeding_density_cells_per_cm2"] == {"value": 3000, "source": "set point ('Seeding density')"}
    assert out["harvest_density_cells_per_cm2"]["value"] == pytest.approx(3000 * f)
    assert out["harvest_density_cells_per_cm2"]["source"] == "seeding density x fold expansion"


def test_set_point_outside_the_tested_range(example_runs):
    study, runs = example_runs
    with pytest.raises(DoeError, match="Seeding density = 9000 is outside the tested range"):
        supply_from_models(study, runs, {"Seeding density": 9000})
    with pytest.raises(DoeError, match="Did you mean 'hPL 5%'"):
        supply_from_models(study, runs, {"Medium": "hpl 5%"})


# -- CLI --------------------------------------------------------------------------------------------------
def test_cli_round_trip(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["scale", "--plan", str(PLAN), "--json", str(out), "--figure", str(tmp_path / "p.html")]) == 0
    data = json.loads(out.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(c))
    assert data["cells_needed"] == pytest.approx(1.12e9)
    assert round(data["area_needed_cm2"]) == 86154
    so, su = data["strategies"]["scale-out"], data["strategies"]["scale-up"]
    assert (so["totals"]["final_stage_vessels"], so["totals"]["final_stage_vessel"]) == (4, "CellSTACK-40")
    assert (su["totals"]["final_stage_vessels"], su["totals"]["final_stage_vessel"]) == (2, "CellCube-100")
    assert so["totals"]["cumulative_pdl"] == pytest.approx(5 * math.log2(6.5))
    assert so["stages"][-1]["vessels"] == 4 and so["warnings"] == []
    assert data["supply"]["fold_expansion_per_passage"] == {"value": 6.5, "source": "plan"}
    assert (tmp_path / "p.html").stat().st_size > 1000
    assert "4 x CellSTACK-40" in capsys.readouterr().out


def test_cli_with_models_and_errors(tmp_path, capsys):
    plan = tmp_path / "models.yaml"
    plan.write_text(_plan_text("  fold_expansion_per_passage: 6.5 ", "  fold_expansion_per_passage: from_models "),
                    encoding="utf-8")
    out = tmp_path / "o.json"
    args = ["scale", "--plan", str(plan), "--json", str(out)]
    assert main(args) == 2
    assert "give --study and --runs" in capsys.readouterr().err
    assert main(args + ["--study", str(STUDY), "--runs", str(RESULTS), "--set-point", "Medium=hPL 5%",
                        "--nominal"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert "predicted mean" in data["supply"]["fold_expansion_per_passage"]["source"]
    assert data["set_point"]["value"]["Medium"] == "hPL 5%"
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text(_plan_text("  dose_cells_per_kg", "  dose_per_kg"), encoding="utf-8")
    assert main(["scale", "--plan", str(bad), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean 'dose_cells_per_kg'" in err


def test_plan_frame_has_units(catalogue):
    frame = plan_frame(plan_seed_train(ISSUE, supply(), catalogue, "scale-up"))
    assert list(frame["Vessels"])[-1] == 2 and "Cumulative PDL" in frame and "Area (cm²)" in frame


def test_figure_has_both_strategies(catalogue):
    from doe.plots.scale import plan_figure

    plans = [plan_seed_train(ISSUE, supply(), catalogue, s) for s in ("scale-out", "scale-up")]
    fig = plan_figure(plans)
    assert [t.name.split(":")[0] for t in fig.data] == ["scale-out", "scale-up"]
    assert fig.layout.yaxis.type == "log" and "log scale" in fig.layout.yaxis.title.text
    assert "days" in fig.layout.xaxis.title.text


# -- page -----------------------------------------------------------------------------------------------
def _page(runs=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["_user_name"] = "tester"
    at.run()
    if runs is not None:
        at.session_state["runs"] = runs
    at.switch_page("pages/scale.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_page_renders_defaults():
    at = _page()
    assert at.title[0].value == "Scale planner"
    assert [m.value for m in at.metric if m.label == "Vessels in the final stage"] == ["4", "2"]
    assert any("final stage 4 x CellSTACK-40" in m.value for m in at.markdown)
    assert any("final stage 2 x CellCube-100" in m.value for m in at.markdown)
    assert not at.warning


def test_page_with_models(example_runs):
    at = _page(example_runs[1])
    assert at.radio(key="sc_source").value == "The study's fitted models at a set point"
    assert any("lower 95 % prediction bound" in c.value for c in at.caption)
    at.toggle(key="sc_conservative").set_value(False).run()
    assert not at.exception and not at.error
    assert any("predicted mean" in c.value for c in at.caption)


def test_page_uses_the_last_saved_decision(example_runs):
    from streamlit.testing.v1 import AppTest

    from doe.store import Store, default_url

    study, runs = example_runs
    db = Store.open(default_url())
    try:
        db.save_study(study, "tester")
        db.append_runs(study.name, runs, "tester")
        sp = {"Medium": "SFM-XF", "Surface": "CellBIND", "Harvest reagent": "TrypLE", "Agitation": 45.0,
              "Seeding density": 2500.0}
        db.save_decision(study.name, 0.9, sp, {}, "tester")
    finally:
        db.close()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.switch_page("pages/scale.py").run()
    assert not at.exception and not at.error
    assert any("the last saved design-space decision" in c.value for c in at.caption)
    assert at.selectbox(key="sc_sp_Medium").value == "SFM-XF"
    assert at.number_input(key="sc_sp_Seeding density").value == 2500
    supply_rows = at.dataframe[-1].value
    assert not supply_rows["Growth number"].str.contains("_").any()  # labels, not the plan file's keys
    seeding = supply_rows.loc[supply_rows["Growth number"] == "Seeding density (cells/cm²)"].iloc[0]
    assert seeding["Number"] == "2500" and seeding["Source"] == "set point ('Seeding density')"
