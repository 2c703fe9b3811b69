"""Lots checked against a design-space decision (doe.lots.check_lots) on the bundled example.

The PAR/NOR comparisons are recomputed here by hand from the decision's saved ranges; the probability of each
lot is the design space's own (doe.space.probability, same draws); the deviation lot (Trypsin-EDTA) and the
Agitation excursion are found with the factor that took them out.
"""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from doe.analysis import default_choice, fit_all
from doe.decision import Decision
from doe.errors import DoeError
from doe.lots import check_lots, lots_frame, summary
from doe.runs import read_results
from doe.space import DesignSpace, probability
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT


@pytest.fixture(scope="module")
def case():
    spec = importlib.util.spec_from_file_location("simulate_lots", ROOT / "data" / "simulate_lots.py")
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    space = DesignSpace.of(study, fit_all(study, runs, default=default_choice()), draws=2000, seed=1)
    sp = {k: (float(v) if not isinstance(v, str) else v) for k, v in sim.set_point(study).items()}
    par = space.par(sp)
    decision = Decision(threshold=0.5, set_point=sp,
                        ranges={"par": {k: list(v) for k, v in par.items()}, "nor": {"Agitation": [36.0, 48.0]}})
    lots = pd.read_csv(ROOT / "data" / "msc_lots.csv")
    return study, space, decision, lots, check_lots(space, decision, lots)


def test_par_and_nor_by_hand(case):
    study, _space, decision, lots, checks = case
    par = decision.ranges["par"]
    low, high = decision.ranges["nor"]["Agitation"]
    for check, (_, lot) in zip(checks, lots.iterrows(), strict=True):
        inside = True
        for f in study.factors:
            allowed = par.get(f.name)
            if f.is_categorical:
                inside &= str(lot[f.name]) in [str(v) for v in (allowed or [decision.set_point[f.name]])]
            elif allowed:
                inside &= allowed[0] <= lot[f.name] <= allowed[1]
        assert check.in_par == inside, check.lot
        assert check.in_nor == (low <= lot["Agitation"] <= high), check.lot


def test_probability_is_the_design_space_s_and_decides_inside(case):
    study, space, decision, lots, checks = case
    expected = probability(space.pm, lots[[f.name for f in study.factors]], draws=2000, seed=1).joint
    assert [c.probability for c in checks] == pytest.approx(list(expected), abs=1e-12)
    for c in checks:
        assert c.in_space == (c.in_par and c.probability >= decision.threshold)


def test_the_deviation_and_the_excursion_are_flagged_with_their_factor(case):
    *_, checks = case
    by_lot = {c.lot: c for c in checks}
    l26 = by_lot["L26"]  # harvested with Trypsin-EDTA
    assert not l26.in_space and "Harvest reagent" in l26.left_by
    assert l26.probability < 0.5
    l19 = by_lot["L19"]  # Agitation 20 % of the range above the set point
    assert l19.in_nor is False and any("Agitation" in r and "NOR" in r for r in l19.reasons)
    table = lots_frame(checks)
    assert list(table.columns[:3]) == ["Lot", "P(all CQAs in spec)", "In the design space"]
    assert "L26" in summary(checks)["outside"]


def test_a_lot_without_a_process_parameter_is_refused(case):
    _study, space, decision, lots, _ = case
    with pytest.raises(DoeError, match="no column 'Agitation'"):
        check_lots(space, decision, lots.drop(columns=["Agitation"]))
