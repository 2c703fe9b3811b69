"""Study file: schema, validation messages, round trip, constraints."""

import numpy as np
import pandas as pd
import pytest

from doe.errors import StudyError
from doe.study import Study
from tests.conftest import make_study

ISSUE_EXAMPLE = """
schema: 1
name: MSC expansion
factors:
  - {name: Medium, kind: categorical, levels: [FBS 10%, hPL 5%, SFM-XF]}
  - {name: Surface, kind: categorical, levels: [Standard TC, CellBIND, ULA]}
  - {name: Agitation, kind: continuous, low: 30, high: 90, units: rpm}
responses:
  - {name: Viability, units: "%", goal: maximize, lower: 80}
  - {name: HLA-DR, units: "%", goal: minimize, upper: 2}
  - {name: Potency, goal: target, lower: 20, upper: 60, target: 40}
blocks: Block
constraints:
  - "Surface == 'ULA' and Agitation > 60"
"""


def test_issue_schema_loads_and_round_trips():
    s = Study.from_yaml(ISSUE_EXAMPLE)
    assert s.factor_names == ["Medium", "Surface", "Agitation"]
    assert s.blocks == "Block"
    assert s.response("Potency").target == 40
    again = Study.from_yaml(s.to_yaml())
    assert again.to_dict() == s.to_dict()


def test_example_study_is_valid(example_study):
    assert len(example_study.factors) == 5
    assert {f.kind for f in example_study.factors} == {"categorical", "continuous"}
    assert example_study.response("HLA-DR").upper == 2
    assert example_study.response("CD73/CD90/CD105").lower == 95


def test_coding_continuous():
    s = make_study([{"name": "A", "low": 30, "high": 90}])
    f = s.factor("A")
    assert np.allclose(f.to_coded([30, 60, 90]), [-1, 0, 1])
    assert np.allclose(f.to_actual([-1, 0, 1]), [30, 60, 90])


@pytest.mark.parametrize("factors, message", [
    ([{"name": "A", "low": 1, "high": 1}], r"low \(1\) must be less than high \(1\)"),
    ([{"name": "A", "low": 5, "high": 1}], "must be less than high"),
    ([{"name": "A", "low": 0, "high": 1}, {"name": "a", "low": 0, "high": 1}], "Duplicate factor name"),
    ([{"name": "", "low": 0, "high": 1}], "empty name"),
    ([{"name": "M", "kind": "categorical", "levels": ["x"]}], "at least 2 levels"),
    ([{"name": "M", "kind": "categorial", "levels": ["x", "y"]}], "Did you mean 'categorical'"),
    ([{"name": "A", "low": 0, "hi": 1}], "Unknown key 'hi'"),
    ([{"name": "A:B", "low": 0, "high": 1}], "contains"),
    ([{"name": "A", "low": "abc", "high": 1}], "must be a number"),
])
def test_factor_validation_messages(factors, message):
    with pytest.raises(StudyError, match=message):
        make_study(factors)


def test_unknown_key_lists_allowed():
    with pytest.raises(StudyError) as exc:
        make_study([{"name": "A", "low": 0, "high": 1, "unit": "rpm"}])
    assert "Unknown key 'unit'" in str(exc.value)
    assert "units" in str(exc.value)


@pytest.mark.parametrize("response, message", [
    ({"name": "Y", "lower": 5, "upper": 1}, "lower spec"),
    ({"name": "Y", "goal": "maximise"}, "Did you mean 'maximize'"),
    ({"name": "Y", "goal": "target", "lower": 1, "upper": 3}, "no 'target'"),
])
def test_response_validation(response, message):
    with pytest.raises(StudyError, match=message):
        make_study([{"name": "A", "low": 0, "high": 1}], [response])


def test_constraint_unknown_factor_and_level():
    f = [{"name": "Surface", "kind": "categorical", "levels": ["TC", "ULA"]},
         {"name": "Agitation", "low": 30, "high": 90}]
    with pytest.raises(StudyError, match="unknown factor 'Agitaton'.*Did you mean 'Agitation'"):
        make_study(f, constraints=["Agitaton > 60"])
    with pytest.raises(StudyError, match="'ULA2' is not a level of Surface"):
        make_study(f, constraints=["Surface == 'ULA2'"])


def test_constraint_excluding_everything():
    with pytest.raises(StudyError, match="exclude every combination"):
        make_study([{"name": "A", "low": 0, "high": 10}], constraints=["A >= 0"])


def test_constraint_evaluation_with_spaces_and_require():
    s = make_study(
        [{"name": "Seeding density", "low": 1000, "high": 5000}, {"name": "Agitation", "low": 30, "high": 90}],
        constraints=[{"require": "Agitation + 0.01 * Seeding density <= 100"},
                     "`Seeding density` < 1500 and Agitation > 80"],
    )
    runs = pd.DataFrame({"Seeding density": [1000, 5000, 1000, 3000], "Agitation": [85, 60, 30, 65]})
    # row 0: 85+10 = 95 ok but excluded (1000 < 1500 and 85 > 80); row 1: 60+50 = 110 > 100
    assert s.feasible(runs).tolist() == [False, False, True, True]


def test_constraint_rejects_code():
    with pytest.raises(StudyError, match="not allowed"):
        make_study([{"name": "A", "low": 0, "high": 1}], constraints=["__import__('os')"])


def test_yaml_aliases_refused_and_syntax_error_located():
    bomb = "a: &x [1,2]\nb: *x\n"
    with pytest.raises(StudyError, match="aliases"):
        Study.from_yaml(bomb)
    with pytest.raises(StudyError, match="not valid YAML at line 3"):
        Study.from_yaml("name: x\nfactors: [\n")


def test_newer_schema_refused():
    with pytest.raises(StudyError, match="schema 2 is not supported"):
        Study.from_yaml("schema: 2\nname: x\nfactors: [{name: A, low: 0, high: 1}]\n")


def test_discrete_levels_sorted_and_coded():
    s = make_study([{"name": "D", "kind": "discrete", "levels": [8, 2, 4]}])
    f = s.factor("D")
    assert f.levels == [2, 4, 8] and (f.low, f.high) == (2, 8)
    assert np.allclose(f.to_coded([2, 5, 8]), [-1, 0, 1])
