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


def _split_study() -> Study:
    return Study.from_yaml(BASE % "true" + "random_effects: [Donor]\n")


def test_run_sheet_sorted_by_whole_plot_randomised_within() -> None:
    import numpy as np

    from doe.design import make_design, read_design

    study = _split_study()
    U = np.array([[0, -1], [0, 1], [0, 0], [1, -1], [1, 1], [1, 0]] * 3, float)
    plots = np.repeat(np.arange(6), 3)
    d = make_design(study, U, "optimal", ["optimal"] * 18, plots={WHOLE_PLOT: plots}, seed=11)
    wp = d.table[WHOLE_PLOT].to_numpy()
    assert (np.diff(np.flatnonzero(np.diff(wp) != 0)) == 3).all() and len(set(wp)) == 6  # contiguous groups
    assert d.table.groupby(WHOLE_PLOT)["Surface"].nunique().max() == 1
    assert list(wp[::3]) != sorted(wp[::3]) or list(d.table["StdOrder"]) != sorted(d.table["StdOrder"])
    again = read_design(study, d.to_csv().encode(), "sheet.csv")
    assert again.plot_columns == [WHOLE_PLOT] and again.n_whole_plots == 6
    assert (again.table[WHOLE_PLOT].to_numpy() == wp).all()


def test_results_upload_warns_about_random_effect_columns() -> None:
    import numpy as np
    import pandas as pd

    from doe.runs import read_results

    study = _split_study()
    table = pd.DataFrame({"Run": [1, 2, 3, 4], WHOLE_PLOT: [1, 1, 2, 2],
                          "Surface": ["Standard TC", "CellBIND", "CellBIND", "CellBIND"],
                          "Agitation": [30, 90, 30, 90], "Viability": [85.0, 88.0, np.nan, 90.0]})
    text = read_results(study, table).summary()
    assert "No column for random effect 'Donor'" in text
    assert "'Surface' changes inside whole plot 1" in text
    table["Donor"] = ["D1", None, "D2", "D2"]
    text = read_results(study, table).summary()
    assert "1 run with results has no 'Donor' (row 2)" in text


def test_study_editor_tables_carry_both_keys() -> None:
    from doe.tables import factors_table, responses_table, study_from_tables

    study = Study.from_yaml(BASE % "true" + "random_effects: [Donor, hPL lot]\n")
    f = factors_table(study)
    assert list(f["changes"]) == ["between whole plots", "every run"]
    again = study_from_tables(study.name, f, responses_table(study), None, None, "", "Donor; hPL lot")
    assert again.hard_to_change_factors == ["Surface"] and again.random_effects == ["Donor", "hPL lot"]
    f.loc[0, "changes"] = "sometimes"
    with pytest.raises(StudyError, match="'changes' must be one of every run, between whole plots"):
        study_from_tables(study.name, f, responses_table(study))
