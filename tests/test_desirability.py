"""Desirability: Derringer & Suich functions, the overall D and its optimisation.

The published case (tests/reference_cases/desirability_myers_montgomery_conversion_activity)
gives two second-order models in coded units and the optimum D in the cube and
in the sphere of radius 1.682; every number compared is read from its
expected.json, never copied here. Shapes and importance weighting are checked
against values computed by hand from the formulas.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from doe.analysis import ModelChoice, fit_all
from doe.desirability import (
    Desirability,
    desirabilities,
    desirability_grid,
    individual,
    optimize_desirability,
    overall,
    quadratic_predictor,
)
from doe.errors import DoeError
from doe.runs import read_results
from tests.conftest import EXAMPLE, REFERENCE, ROOT, make_study

CASE = REFERENCE / "desirability_myers_montgomery_conversion_activity"


# -- the published case ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def chem():
    """Published models as predictors, a study whose actual units are the coded ones, the specs."""
    table = pd.read_csv(CASE / "data.csv")
    expected = json.loads((CASE / "expected.json").read_text())
    setup = expected["desirability_setup"]
    names = ["x1", "x2", "x3"]
    responses = [c for c in table.columns if c != "term"]
    coefs = {r: dict(zip(table["term"], table[r])) for r in responses}
    predict = quadratic_predictor(coefs, names)
    conv, act = setup["conversion"], setup["activity"]
    study = make_study(
        [{"name": n, "low": -1, "high": 1} for n in names],
        [{"name": "conversion", "goal": "maximize", "lower": conv["A_low"], "weight": conv["s"]},
         {"name": "activity", "goal": "target", "lower": act["A_low"], "target": act["target"],
          "upper": act["B_high"], "weight": act["s1"]}],
    )
    specs = [
        Desirability("conversion", "maximize", lower=conv["A_low"], upper=conv["B_high"], weight=conv["s"]),
        Desirability("activity", "target", lower=act["A_low"], target=act["target"], upper=act["B_high"],
                     weight=act["s1"], weight_upper=act["s2"]),
    ]
    axial = float(re.search(r"<=\s*([\d.]+)", setup["region_square"]).group(1))
    radius = float(re.search(r"<=\s*([\d.]+)", setup["region_circular"]).group(1))
    return {"predict": predict, "study": study, "specs": specs, "expected": expected,
            "axial": axial, "radius": radius, "names": names}


def test_published_desirabilities_at_the_centre(chem):
    centre = chem["expected"]["expected"]["at_centre"]
    frame = pd.DataFrame({n: [0.0] for n in chem["names"]})
    pred = chem["predict"](frame)
    assert pred["conversion"][0] == pytest.approx(centre["conversion"], abs=1e-9)
    assert pred["activity"][0] == pytest.approx(centre["activity"], abs=1e-9)
    d = individual(chem["specs"], pred)
    # printed to 8 decimals: half a unit in the last place
    assert d["conversion"][0] == pytest.approx(centre["d_conversion"], abs=5e-9)
    assert d["activity"][0] == pytest.approx(centre["d_activity"], abs=5e-9)
    # the vignette prints 0 here by mistake (caveat); the correct D is sqrt(d1 d2)
    D = overall(chem["specs"], pred)[0]
    assert D == pytest.approx(math.sqrt(centre["d_conversion"] * centre["d_activity"]), abs=1e-8)
    assert D == pytest.approx(chem["expected"]["refit_python"]["at_centre_D"], abs=5e-9)


def test_specs_from_the_study_with_limits_match_the_published_setup(chem):
    best = chem["expected"]["desirability_setup"]["conversion"]["B_high"]
    built = desirabilities(chem["study"], limits={"conversion": (None, best)})
    y = np.linspace(50, 100, 501)
    for mine, theirs in zip(built, chem["specs"]):
        assert mine.response == theirs.response and mine.goal == theirs.goal
        np.testing.assert_allclose(mine(y), theirs(y), atol=1e-15)
    assert "lower spec" in built[0].note and "given" in built[0].note


@pytest.mark.parametrize("region,key", [("cube", "optimum_square_region"), ("sphere", "optimum_circular_region")])
def test_published_optimum(chem, region, key):
    exp = chem["expected"]["expected"][key]
    tol = chem["expected"]["tolerance"]
    res = optimize_desirability(chem["predict"], chem["study"], chem["specs"], region=region,
                                bounds=(-chem["axial"], chem["axial"]),
                                radius=chem["radius"] if region == "sphere" else None)
    assert res["desirability"] == pytest.approx(exp["D"], abs=tol["D"])
    for n in chem["names"]:
        assert res["coded"][n] == pytest.approx(exp[n], abs=tol["x"])
        assert res["settings"][n] == pytest.approx(exp[n], abs=tol["x"])  # actual = coded here
    assert res["predictions"]["conversion"] == pytest.approx(exp["conversion"], abs=tol["responses"])
    assert res["predictions"]["activity"] == pytest.approx(exp["activity"], abs=tol["responses"])
    coded = np.array([res["coded"][n] for n in chem["names"]])
    assert np.all(np.abs(coded) <= chem["axial"] + 1e-12)
    if region == "sphere":
        assert np.linalg.norm(coded) <= chem["radius"] + 1e-9
    assert res["feasible"] and res["solutions"]["Desirability"].iloc[0] == res["desirability"]


def test_sphere_radius_defaults_to_the_largest_sphere_inside_the_bounds(chem):
    exp = chem["expected"]["expected"]["optimum_circular_region"]
    res = optimize_desirability(chem["predict"], chem["study"], chem["specs"], region="sphere",
                                bounds=(-chem["axial"], chem["axial"]))
    assert res["radius"] == chem["axial"]
    assert res["desirability"] == pytest.approx(exp["D"], abs=chem["expected"]["tolerance"]["D"])


# -- individual shapes, by hand ---------------------------------------------------------------
def test_maximize_linear_and_curved():
    y = np.array([70.0, 80.0, 84.0, 90.0, 100.0, 120.0, np.nan])
    lin = Desirability("Y", "maximize", lower=80, upper=100)
    np.testing.assert_allclose(lin(y), [0, 0, 0.2, 0.5, 1, 1, 0], atol=1e-15)
    steep = Desirability("Y", "maximize", lower=80, upper=100, weight=2)
    np.testing.assert_allclose(steep(y), [0, 0, 0.04, 0.25, 1, 1, 0], atol=1e-15)
    lenient = Desirability("Y", "maximize", lower=80, upper=100, weight=0.5)
    np.testing.assert_allclose(lenient(y), [0, 0, math.sqrt(0.2), math.sqrt(0.5), 1, 1, 0], atol=1e-15)


def test_minimize_mirrors_maximize():
    y = np.array([0.0, 1.0, 1.5, 2.0, 3.0])
    d = Desirability("HLA-DR", "minimize", lower=1, upper=2, weight=3)
    np.testing.assert_allclose(d(y), [1, 1, 0.125, 0, 0], atol=1e-15)


def test_target_two_sided_with_different_exponents():
    d = Desirability("pH", "target", lower=6, target=7, upper=9, weight=2, weight_upper=0.5)
    y = np.array([5.0, 6.0, 6.5, 7.0, 8.0, 8.5, 9.0, 10.0])
    np.testing.assert_allclose(d(y), [0, 0, 0.25, 1, math.sqrt(0.5), math.sqrt(0.25), 0, 0], atol=1e-15)


def test_range_is_a_step_and_one_sided_ranges():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(Desirability("Y", "range", lower=2, upper=4)(y), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(Desirability("Y", "range", upper=3)(y), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(Desirability("Y", "range", lower=3)(y), [0, 0, 1, 1, 1])


def test_degenerate_limits_give_a_step():
    d = Desirability("Y", "maximize", lower=5, upper=5)
    np.testing.assert_array_equal(d([4.9, 5.0, 6.0]), [0, 1, 1])
    t = Desirability("Y", "target", lower=5, target=5, upper=6)
    np.testing.assert_allclose(t([4.9, 5.0, 5.5, 6.0]), [0, 1, 0.5, 0], atol=1e-15)


@pytest.mark.parametrize("kwargs", [
    {"goal": "maximise", "lower": 0, "upper": 1},
    {"goal": "maximize", "lower": 2, "upper": 1},
    {"goal": "maximize", "lower": 0},
    {"goal": "target", "lower": 0, "upper": 1},
    {"goal": "target", "lower": 0, "target": 2, "upper": 1},
    {"goal": "range"},
    {"goal": "maximize", "lower": 0, "upper": 1, "weight": 0},
    {"goal": "maximize", "lower": 0, "upper": 1, "importance": -1},
    {"goal": "maximize", "lower": float("nan"), "upper": 1},
])
def test_invalid_desirabilities_are_refused(kwargs):
    with pytest.raises(DoeError):
        Desirability("Y", **kwargs)


# -- overall desirability ------------------------------------------------------------------------
def test_equal_importance_is_the_geometric_mean():
    specs = [Desirability("A", "maximize", 0, 10), Desirability("B", "maximize", 0, 10),
             Desirability("C", "minimize", 0, 10)]
    pred = {"A": [2.0, 5.0, 0.0], "B": [8.0, 10.0, 9.0], "C": [5.0, 0.0, 1.0]}
    expect = [(0.2 * 0.8 * 0.5) ** (1 / 3), (0.5 * 1.0 * 1.0) ** (1 / 3), 0.0]
    np.testing.assert_allclose(overall(specs, pred), expect, atol=1e-15)
    same = [Desirability(s.response, s.goal, s.lower, s.upper, importance=3) for s in specs]
    np.testing.assert_allclose(overall(same, pred), expect, atol=1e-15)


def test_importance_weights_the_geometric_mean():
    specs = [Desirability("A", "maximize", 0, 10, importance=1),
             Desirability("B", "maximize", 0, 10, importance=3)]
    pred = {"A": [2.0, 9.0], "B": [8.0, 1.0]}
    expect = [(0.2 ** 1 * 0.8 ** 3) ** (1 / 4), (0.9 ** 1 * 0.1 ** 3) ** (1 / 4)]
    np.testing.assert_allclose(overall(specs, pred), expect, atol=1e-15)
    # more importance on the better CQA raises D; on the worse one lowers it
    plain = overall([Desirability("A", "maximize", 0, 10), Desirability("B", "maximize", 0, 10)], pred)
    assert overall(specs, pred)[0] > plain[0] and overall(specs, pred)[1] < plain[1]


def test_range_multiplies_in_but_does_not_count():
    specs = [Desirability("A", "maximize", 0, 10), Desirability("B", "maximize", 0, 10),
             Desirability("R", "range", lower=0, upper=1, importance=5)]
    pred = {"A": [4.0, 4.0], "B": [9.0, 9.0], "R": [0.5, 2.0]}
    np.testing.assert_allclose(overall(specs, pred), [math.sqrt(0.4 * 0.9), 0.0], atol=1e-15)


# -- specs from the study --------------------------------------------------------------------------
def test_desirabilities_map_the_study_responses():
    study = make_study(
        [{"name": "x", "low": 0, "high": 1}],
        [{"name": "Viab", "goal": "maximize", "lower": 80, "weight": 2, "importance": 4},
         {"name": "Imp", "goal": "minimize", "upper": 5},
         {"name": "pH", "goal": "target", "lower": 6.8, "target": 7.2, "upper": 7.4},
         {"name": "Osm", "goal": "range", "lower": 280, "upper": 320},
         {"name": "Note", "goal": "none"}],
    )
    obs = {"Viab": [70, 85, 93], "Imp": [0.4, 3, 7]}
    specs = {s.response: s for s in desirabilities(study, observed=obs)}
    assert list(specs) == ["Viab", "Imp", "pH", "Osm"]
    v = specs["Viab"]
    assert (v.goal, v.lower, v.upper, v.weight, v.importance) == ("maximize", 80, 93, 2, 4)
    i = specs["Imp"]
    assert (i.lower, i.upper) == (0.4, 5)
    p = specs["pH"]
    assert (p.lower, p.target, p.upper) == (6.8, 7.2, 7.4)
    assert (specs["Osm"].lower, specs["Osm"].upper, specs["Osm"].counted) == (280, 320, False)
    # limits override; (A, T, B) for a target
    over = {s.response: s for s in desirabilities(study, limits={"Viab": (85, 99), "pH": (7, 7.1, 7.3)},
                                                   observed=obs)}
    assert (over["Viab"].lower, over["Viab"].upper) == (85, 99)
    assert (over["pH"].lower, over["pH"].target, over["pH"].upper) == (7, 7.1, 7.3)


def test_best_value_needs_observations_or_limits():
    study = make_study([{"name": "x", "low": 0, "high": 1}],
                       [{"name": "Y", "goal": "maximize", "lower": 1}])
    with pytest.raises(DoeError, match="limits="):
        desirabilities(study)
    assert desirabilities(study, limits={"Y": (1, 3)})[0].upper == 3
    # nothing observed reaches the spec: d becomes a step at the spec
    step = desirabilities(study, observed={"Y": [0.2, 0.5]})[0]
    assert step.lower == step.upper == 1


# -- constraints, regions, fixed factors ---------------------------------------------------------------
def _plane(frame):
    return {"Y": frame["x1"].to_numpy(dtype=float) + frame["x2"].to_numpy(dtype=float)}


def test_an_infeasible_optimum_moves_to_the_constraint():
    factors = [{"name": "x1", "low": 0, "high": 10}, {"name": "x2", "low": 0, "high": 10}]
    resp = [{"name": "Y", "goal": "maximize", "lower": 0}]
    specs = [Desirability("Y", "maximize", lower=0, upper=20)]
    free = optimize_desirability(_plane, make_study(factors, resp), specs)
    assert free["desirability"] == pytest.approx(1.0, abs=1e-9)
    assert free["settings"]["x1"] == pytest.approx(10, abs=1e-6)

    study = make_study(factors, resp, constraints=[{"exclude": "x1 > 6", "reason": "test"}])
    res = optimize_desirability(_plane, study, specs)
    s = res["settings"]
    assert study.feasible(pd.DataFrame({k: [v] for k, v in s.items()}))[0]
    assert s["x1"] == pytest.approx(6, abs=1e-6) and s["x2"] == pytest.approx(10, abs=1e-6)
    assert res["desirability"] == pytest.approx(16 / 20, abs=1e-6)
    assert res["feasible"]
    assert all(study.feasible(res["solutions"]))


def test_regions_and_fixed_factors():
    factors = [{"name": "x1", "low": 0, "high": 10}, {"name": "x2", "low": 0, "high": 10}]
    study = make_study(factors, [{"name": "Y", "goal": "maximize", "lower": 0}])
    specs = [Desirability("Y", "maximize", lower=0, upper=20)]
    # sphere of radius 1 (coded): the best of x1 + x2 is at (1, 1)/sqrt(2)
    res = optimize_desirability(_plane, study, specs, region="sphere")
    c = np.array([res["coded"]["x1"], res["coded"]["x2"]])
    assert np.linalg.norm(c) <= 1 + 1e-9
    np.testing.assert_allclose(c, [1 / math.sqrt(2)] * 2, atol=1e-4)
    # a custom region in coded units
    res = optimize_desirability(_plane, study, specs, region=lambda coded: coded["x1"] <= -0.5)
    assert res["settings"]["x1"] == pytest.approx(2.5, abs=1e-6)
    # fixed factor
    res = optimize_desirability(_plane, study, specs, fixed={"x2": 3.0})
    assert res["settings"]["x2"] == 3.0 and res["settings"]["x1"] == pytest.approx(10, abs=1e-6)
    assert res["desirability"] == pytest.approx(13 / 20, abs=1e-6)


def test_levels_of_categorical_and_discrete_factors_are_enumerated():
    study = make_study(
        [{"name": "A", "low": 0, "high": 10}, {"name": "N", "kind": "discrete", "levels": [1, 2, 4]},
         {"name": "C", "kind": "categorical", "levels": ["p", "q"]}],
        [{"name": "Y", "goal": "maximize", "lower": 0}, {"name": "Z", "goal": "minimize", "upper": 10}],
    )

    def predict(f):
        a, n = f["A"].to_numpy(dtype=float), f["N"].to_numpy(dtype=float)
        return {"Y": a + n + 3 * (f["C"] == "q").to_numpy(), "Z": np.abs(a - 5)}

    limits = {"Y": (0, 17), "Z": (0, 10)}
    res = optimize_desirability(predict, study, limits=limits)
    # by hand: D^2 = (A + 7)/17 (1 - |A - 5|/10) at N = 4, C = q is largest at A = 5
    assert (res["settings"]["N"], res["settings"]["C"]) == (4, "q")
    assert res["settings"]["A"] == pytest.approx(5, abs=1e-5)
    assert res["desirability"] == pytest.approx(math.sqrt(12 / 17), abs=1e-8)
    assert res["coded"] == pytest.approx({"A": 0.0, "N": 1.0}, abs=1e-5)
    with pytest.raises(DoeError, match="not a level"):
        optimize_desirability(predict, study, limits=limits, fixed={"C": "r"})


# -- the bundled MSC example ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def msc():
    from doe.study import Study

    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    fits = fit_all(study, runs, default=ModelChoice(reduce=True))
    return study, fits


def test_msc_example_optimises_to_feasible_settings(msc):  # its speed: bench/bench_space.py
    study, fits = msc
    res = optimize_desirability(fits, study)
    assert res["desirability"] > 0 and res["feasible"] and not res["warnings"]
    settings = pd.DataFrame({k: [v] for k, v in res["settings"].items()})
    assert study.feasible(settings)[0]
    for f in study.factors:
        v = res["settings"][f.name]
        assert (v in f.levels) if f.kind != "continuous" else (f.low - 1e-9 <= v <= f.high + 1e-9)
    # predictions, d's and D are those of the fitted models themselves
    for name, cf in fits.items():
        assert res["predictions"][name] == pytest.approx(
            cf.model.predict(settings, interval=None)["mean"].iloc[0], rel=1e-12)
    specs = res["specs"]
    assert {s.response for s in specs} == {r.name for r in study.responses if r.goal != "none"}
    D = overall(specs, {k: [v] for k, v in res["predictions"].items()})[0]
    assert res["desirability"] == pytest.approx(D, abs=1e-12)


def test_msc_optimum_beats_a_dense_grid(msc):
    """Independent check: D over a 41 x 41 grid of every level combination never exceeds the optimum."""
    study, fits = msc
    res = optimize_desirability(fits, study)
    cont = [f for f in study.factors if f.kind == "continuous"]
    cats = [f for f in study.factors if f.kind != "continuous"]
    axes = [np.linspace(f.low, f.high, 41) for f in cont]
    rows = [dict(zip([f.name for f in cats + cont], combo + pts))
            for combo in itertools.product(*[f.levels for f in cats])
            for pts in itertools.product(*axes)]
    grid = pd.DataFrame(rows)[study.factor_names]
    pred = {n: cf.model.predict(grid, interval=None)["mean"].to_numpy() for n, cf in fits.items()}
    D = np.where(study.feasible(grid), overall(res["specs"], pred), 0.0)
    assert D.max() <= res["desirability"] + 1e-9
    assert D.max() > res["desirability"] - 0.02


def test_msc_constraint_is_honoured_when_it_binds(msc):
    from doe.study import Study

    study, fits = msc
    # a goal that pushes agitation up on ULA, where the study excludes Agitation > 75 rpm
    specs = [Desirability("Aggregates", "maximize", lower=0, upper=100)]
    unconstrained = Study.from_dict({**study.to_dict(), "constraints": []})
    free = optimize_desirability(fits, unconstrained, specs, fixed={"Surface": "ULA"})
    assert free["settings"]["Agitation"] > 75
    res = optimize_desirability(fits, study, specs, fixed={"Surface": "ULA"})
    assert res["desirability"] < free["desirability"]
    assert res["settings"]["Surface"] == "ULA" and res["settings"]["Agitation"] <= 75 + 1e-9
    settings = pd.DataFrame({k: [v] for k, v in res["settings"].items()})
    assert study.feasible(settings)[0]


def test_desirability_grid_matches_overall(msc):
    study, fits = msc
    res = optimize_desirability(fits, study)
    g = desirability_grid(fits, study, res["specs"], "Agitation", "Seeding density", n=11,
                          fixed=res["settings"])
    assert len(g) == 121 and set(g["Medium"]) == {res["settings"]["Medium"]}
    pred = {n: g[n].to_numpy() for n in fits}
    expect = np.where(g["feasible"], overall(res["specs"], pred), 0.0)
    np.testing.assert_allclose(g["Desirability"], expect, atol=1e-15)
    assert g["Desirability"].max() <= res["desirability"] + 1e-9


# -- published models ------------------------------------------------------------------------------
def test_quadratic_predictor_term_spellings():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, -1.0]})
    f = quadratic_predictor({"(Intercept)": 1, "a": 2, "I(a^2)": 3, "b**2": -1, "a*b": 0.5}, ["a", "b"])
    np.testing.assert_allclose(f(frame), [1 + 2 + 3 - 9 + 1.5, 1 + 4 + 12 - 1 - 1.0])
    with pytest.raises(DoeError, match="not one of"):
        quadratic_predictor({"c": 1.0}, ["a", "b"])
    study = make_study([{"name": "a", "low": 0, "high": 10}, {"name": "b", "low": 0, "high": 2}])
    g = quadratic_predictor({"a": 1.0, "b": 1.0}, ["a", "b"], study=study)
    np.testing.assert_allclose(g(pd.DataFrame({"a": [10.0], "b": [1.0]})), [1.0])
