"""Study keys of issue 18: ``hard_to_change`` on factors and ``random_effects`` on the study."""

from __future__ import annotations

import pytest

from doe.errors import StudyError
from doe.study import RESERVED, SUBPLOT, WHOLE_PLOT, Study

BASE = """name: Split plot
factors:
  - {name: Surface, kind: categorical, levels: [Standard TC, CellBIND], hard_to_change: %s}
  - {name: Agitation, low: 30, high: 90, units: rpm}
responses: [{name: Viability, units: '%%', lower: 80}]
"""


def test_keys_round_trip_through_the_study_file() -> None:
    s = Study.from_yaml(BASE % "true" + "random_effects: [Donor, hPL lot]\n")
    assert s.hard_to_change_factors == ["Surface"]
    assert s.random_effects == ["Donor", "hPL lot"]
    assert s.split_plot and s.has_random_effects
    again = Study.from_yaml(s.to_yaml())
    assert again == s and again.digest == s.digest
    assert "hard_to_change: true" in s.to_yaml()


def test_defaults_write_nothing_new() -> None:
    s = Study.from_yaml(BASE % "false")
    assert not s.split_plot and not s.has_random_effects
    assert "hard_to_change" not in s.to_yaml() and "random_effects" not in s.to_yaml()


def test_two_tiers_need_both() -> None:
    with pytest.raises(StudyError, match="split-split-plot needs both tiers"):
        Study.from_yaml(BASE % "very")
    s = Study.from_yaml(BASE.replace("units: rpm}", "units: rpm, hard_to_change: true}") % "very")
    assert s.very_hard_to_change_factors == ["Surface"] and s.hard_to_change_factors == ["Surface", "Agitation"]


@pytest.mark.parametrize("value, message", [
    ("maybe", "must be true, false or 'very'"),
    ("3", "must be true, false or 'very'"),
])
def test_bad_hard_to_change(value: str, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        Study.from_yaml(BASE % value)


@pytest.mark.parametrize("extra, message", [
    ("random_effects: [Donor, donor]\n", "listed twice"),
    ("random_effects: [Agitation]\n", "has the name of a factor"),
    ("random_effects: [Viability]\n", "has the name of a response"),
    ("random_effects: [Whole plot]\n", "need not be listed"),
    ("random_effects: {Donor: 1}\n", "must be a list of run-sheet column names"),
    ("blocks: Donor\nrandom_effects: [Donor]\n", "both the block column and a random effect"),
])
def test_bad_random_effects(extra: str, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        Study.from_yaml(BASE % "false" + extra)


def test_whole_plot_columns_are_reserved() -> None:
    assert WHOLE_PLOT in RESERVED and SUBPLOT in RESERVED
    with pytest.raises(StudyError):
        Study.from_yaml(BASE.replace("name: Agitation", "name: Whole plot") % "false")
