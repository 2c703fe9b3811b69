"""doe.space.DesignSpace: one object holding the predictive model and the terms it is judged on; each
method gives exactly what the doe.space function gives with those terms."""

import numpy as np

from doe.decision import Decision
from doe.space import DesignSpace, proven_acceptable_ranges, set_point_report, space_grid, summary_json
from tests.test_assurance import _two_cqas


def test_methods_are_the_space_functions_on_its_terms():
    study, runs, fits, _ = _two_cqas(sd=0.3)
    ds = DesignSpace.of(study, fits, seed=3, draws=1000, threshold=0.8)
    opts = {"threshold": 0.8, "draws": 1000, "seed": 3, "setpoint_sd": None}
    g = ds.grid("A", "B", n=9)
    ref = space_grid(ds.pm, "A", "B", n=9, **opts)
    np.testing.assert_array_equal(g.probability, ref.probability)
    point = {"A": 5.0, "B": 5.0}
    assert ds.at(point)["probability"] == set_point_report(ds.pm, point, **opts)["probability"]
    assert dict(ds.par(point)) == dict(proven_acceptable_ranges(ds.pm, point, **opts))
    assert ds.summary(point, x="A", y="B", n=9) == summary_json(ds.pm, set_point=point, x="A", y="B", n=9, **opts)


def test_on_a_decision_takes_its_terms():
    study, runs, fits, _ = _two_cqas(sd=0.3)
    ds = DesignSpace.of(study, fits, draws=1000)
    decision = Decision(0.85, {"A": 5.0, "B": 5.0}, {"setpoint_sd": {"A": 0.2},
                                                     "assurance": {"level": 0.9, "kind": "pointwise"}})
    on = ds.on_decision(decision)
    assert (on.threshold, on.setpoint_sd, on.assurance, on.assurance_kind) == (0.85, {"A": 0.2}, 0.9, "pointwise")
    assert on.pm is ds.pm and ds.threshold == 0.9  # the original is unchanged (frozen)
