"""Passage records and growth kinetics (doe.growth).

Independent numbers only:

- kinetics by hand: PD = log2(N_harvest / N_seeded), doubling time = t ln 2 / ln(N_harvest / N_seeded)
  (e.g. 1e5 -> 8e5 cells in 72 h: fold 8, 3 doublings, 24 h), harvest density = cells / catalogue area;
- the cumulative PDL of parallel vessels: log2(sum harvested / sum seeded), written out below;
- the mixed-model CI of a balanced design: with a donors x n passages and a between-donor mean square
  above the within one, the REML estimate of the intercept is the grand mean with variance MSB / (a n) and
  Kenward-Roger df a - 1 (Searle, Casella & McCulloch 1992, "Variance Components", ch. 3 - the balanced
  one-way classification), which is the t interval of the donor means with a - 1 df: computed here from
  the donor means with scipy;
- the t interval mean +- t(n-1) s / sqrt(n) with scipy's t quantile.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from doe.errors import DoeError
from doe.growth import (
    GROWTH_CURVE_FILE,
    KINETIC_COLUMNS,
    PASSAGE_COLUMNS,
    PASSAGES_FILE,
    GrowthSummary,
    PassageError,
    PassageUpload,
    growth_summary,
    passage_kinetics,
    passage_template,
    read_passages,
)
from tests.conftest import ROOT

HEADER = "Donor,Passage,Vessel,Seeded cells,Harvested cells,Hours,Viability,Notes\n"


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return (header + "\n".join(rows) + "\n").encode()


def _messages(up: PassageUpload, severity: str = "error") -> list[str]:
    return [p.message for p in up.problems if p.severity == severity]


# -- reading -----------------------------------------------------------------------------------------------
def test_a_clean_sheet_is_read_into_the_canonical_table():
    up = read_passages(_csv("D1,1,T-175,100000,800000,72,95,first", "D1,2,T-225,100000,600000,96,94.5,"),
                       "p.csv")
    assert up.ok and up.problems == [] and up.name == "p.csv"
    assert list(up.table.columns) == list(PASSAGE_COLUMNS)
    assert up.table["Passage"].dtype == np.int64 and up.table["Hours"].dtype == float
    assert up.table["Area (cm2)"].tolist() == [175.0, 225.0]  # from the catalogue
    assert up.table["Notes"].tolist() == ["first", ""]
    assert "2 rows, 1 donor; 0 errors, 0 warnings" in up.summary()


def test_headers_match_case_and_space_insensitively_and_days_become_hours():
    header = " donor ,PASSAGE,vessel,Seeded  Cells,harvested cells,Days,Area (cm²),Extra\n"
    up = read_passages(_csv("D1,0,T-75,1e5,4e5,3,70,x", header=header))
    assert up.ok, up.summary()
    assert up.table.loc[0, "Hours"] == 72.0 and up.table.loc[0, "Area (cm2)"] == 70.0
    assert list(up.table.columns) == [*PASSAGE_COLUMNS, "Extra"] and up.table.loc[0, "Extra"] == "x"
    assert any("'Extra' is not a passage column" in m for m in _messages(up, "warning"))


def test_hours_and_days_must_agree_within_one_percent():
    header = "Donor,Passage,Vessel,Seeded cells,Harvested cells,Hours,Days\n"
    assert read_passages(_csv("D1,1,T-175,1e5,4e5,72.5,3", header=header)).ok  # 0.7 %
    up = read_passages(_csv("D1,1,T-175,1e5,4e5,80,3", header=header))
    assert not up.ok and "disagree by more than 1 %" in _messages(up)[0]


def test_each_bad_cell_is_named_by_row_and_column():
    up = read_passages(_csv(
        "D1,1,T175,1e5,4e5,72,95,",         # 1 unknown vessel
        "D1,1.5,T-175,1e5,4e5,72,95,",      # 2 passage not whole
        "D1,2,T-175,0,4e5,72,95,",          # 3 seeded 0
        "D1,3,T-175,1e5,-1,72,95,",         # 4 harvested < 0
        "D1,4,T-175,1e5,4e5,0,95,",         # 5 hours 0
        ",,,,,,,",                          # 6 blank: dropped
        "D1,5,T-175,1e5,4e5 cells,72,95,",  # 7 not a number
        ",6,T-175,1e5,4e5,72,95,",          # 8 blank donor
        "D1,7,T-175,1e5,4e5,72,120,",       # 9 viability > 100
        "D1,-1,T-175,1e5,4e5,72,95,",       # 10 negative passage
    ))
    where = {(p.row, p.column) for p in up.errors}
    assert where == {(1, "Vessel"), (2, "Passage"), (3, "Seeded cells"), (4, "Harvested cells"), (5, "Hours"),
                     (7, "Harvested cells"), (8, "Donor"), (9, "Viability"), (10, "Passage")}
    text = "\n".join(_messages(up))
    assert "'T175' is not in the vessel catalogue. Did you mean 'T-175'?" in text and "'CellCube-25'" in text
    assert "'4e5 cells' is not a number; remove the unit" in text
    assert "Row 8, column 'Donor' is empty" in text
    assert len(up.table) == 9  # the blank row is dropped; no other row is


def test_thousands_separators_are_read_and_a_decimal_comma_is_refused():
    up = read_passages(_csv('D1,1,T-175,"100,000","1,250,000",72,95,', 'D1,2,T-175,100000,400000,"3,5",95,'))
    assert up.table.loc[0, "Harvested cells"] == 1_250_000
    assert [(p.row, p.column) for p in up.errors] == [(2, "Hours")]
    assert "'3,5' is not a number; use a decimal point" in up.errors[0].message


def test_missing_columns_are_errors():
    up = read_passages(_csv("D1,T-175,1e5", header="Donor,Vessel,Seeded cells\n"))
    cols = {p.column for p in up.errors}
    assert {"Passage", "Harvested cells", "Hours"} <= cols
    assert any("neither an 'Hours' nor a 'Days' column" in m for m in _messages(up))


def test_viability_fractions_are_converted_with_a_warning():
    up = read_passages(_csv("D1,1,T-175,1e5,4e5,72,0.95,", "D1,2,T-175,1e5,4e5,72,0.9,"))
    assert up.ok and up.table["Viability"].tolist() == [95.0, 90.0]
    assert any("read as fractions" in m for m in _messages(up, "warning"))


def test_warnings_for_cell_loss_parallel_vessels_and_gaps():
    up = read_passages(_csv("D1,1,T-175,1e5,5e4,72,95,", "D1,3,T-225,1e5,4e5,72,95,",
                            "D1,3,T-225,1e5,4e5,72,95,"))
    assert up.ok
    warnings = "\n".join(_messages(up, "warning"))
    assert "fewer cells were harvested (50000) than seeded (100000)" in warnings
    assert "rows 2, 3 ('D1', passage 3, 'T-225')" in warnings
    assert "no row for passage 2" in warnings


def test_unreadable_file_is_one_error_and_xlsx_is_read():
    up = read_passages(b"", "empty.csv")
    assert not up.ok and up.table.empty and "empty" in up.errors[0].message
    buf = io.BytesIO()
    pd.DataFrame({"Donor": ["D1"], "Passage": [1], "Vessel": ["T-175"], "Seeded cells": [1e5],
                  "Harvested cells": [8e5], "Hours": [72]}).to_excel(buf, index=False)
    up = read_passages(buf.getvalue(), "p.xlsx")
    assert up.ok, up.summary()
    assert up.table.loc[0, "Harvested cells"] == 8e5


def test_template_and_dataframe_source():
    assert list(passage_template().columns) == list(PASSAGE_COLUMNS) and passage_template().empty
    frame = pd.DataFrame({"Donor": ["D1"], "Passage": [1], "Vessel": ["cellcube-25"], "Seeded cells": [4.25e7],
                          "Harvested cells": [2.7e8], "Days": [4.0]})
    up = read_passages(frame)
    assert up.ok and up.table.loc[0, "Vessel"] == "CellCube-25" and up.table.loc[0, "Hours"] == 96.0
    assert issubclass(PassageError, DoeError)


# -- kinetics ----------------------------------------------------------------------------------------------
def test_kinetics_by_hand():
    up = read_passages(_csv("D1,1,T-175,100000,800000,72,95,", "D1,2,T-225,100000,50000,48,95,"))
    k = passage_kinetics(up.table)
    assert list(k.columns) == [*PASSAGE_COLUMNS[:3], "Family", *PASSAGE_COLUMNS[3:], *KINETIC_COLUMNS]
    first = k.iloc[0]
    assert first["Family"] == "T-flask"
    assert first["Fold expansion"] == pytest.approx(8.0)
    assert first["Population doublings"] == pytest.approx(3.0)
    assert first["Doubling time (h)"] == pytest.approx(72 * math.log(2) / math.log(8))  # 24 h
    assert first["Harvest density (cells/cm2)"] == pytest.approx(800000 / 175)
    second = k.iloc[1]
    assert second["Population doublings"] == pytest.approx(-1.0)
    assert math.isnan(second["Doubling time (h)"])
    assert second["Cumulative PDL"] == pytest.approx(3.0 - 1.0)


def test_cumulative_pdl_merges_parallel_vessels_and_follows_passage_numbers():
    """Rows out of order. D1: passage 1, 1e5 -> 4e5 (PD 2); passage 2 in two T-225 flasks, 1e5 + 1e5 seeded,
    8e5 + 4e5 harvested: PD = log2(12e5 / 2e5) = log2 6; cumulative 2 + log2 6 on both rows. D2 alone: 3."""
    up = read_passages(_csv("D1,2,T-225,100000,800000,96,95,", "D2,1,T-175,100000,800000,72,95,",
                            "D1,1,T-175,100000,400000,72,95,", "D1,2,T-225,100000,400000,96,95,"))
    k = passage_kinetics(up.table)
    assert k["Cumulative PDL"].tolist() == pytest.approx([2 + math.log2(6), 3.0, 2.0, 2 + math.log2(6)])
    assert k["Population doublings"].tolist() == pytest.approx([3.0, 3.0, 2.0, 2.0])  # each vessel's own
    donors = growth_summary(up.table).to_json()["donors"]
    assert donors["D1"] == [
        {"passage": 1, "vessel": "T-175", "population_doublings": pytest.approx(2.0),
         "cumulative_pdl": pytest.approx(2.0)},
        {"passage": 2, "vessel": "T-225", "population_doublings": pytest.approx(math.log2(6)),
         "cumulative_pdl": pytest.approx(2 + math.log2(6))}]


def test_kinetics_refuses_an_unknown_vessel():
    table = passage_template()
    table.loc[0] = ["D1", 1, "T-999", 1e5, 4e5, 72.0, 95.0, math.nan, ""]
    with pytest.raises(PassageError, match="'T-999' is not in the vessel catalogue"):
        passage_kinetics(table)


# -- summary -----------------------------------------------------------------------------------------------
def _balanced() -> tuple[pd.DataFrame, np.ndarray]:
    """3 donors x 3 CellSTACK-10 passages; donors differ much more than passages of a donor."""
    folds = np.array([[5.1, 5.4, 5.2], [6.3, 6.0, 6.4], [7.2, 7.5, 7.0]])
    rows = [{"Donor": f"D{i + 1}", "Passage": j + 1, "Vessel": "CellSTACK-10", "Seeded cells": 1e7,
             "Harvested cells": 1e7 * folds[i, j], "Hours": 90.0 + i + 2 * j} for i in range(3) for j in range(3)]
    return read_passages(pd.DataFrame(rows)).table, folds


def test_mixed_model_ci_of_a_balanced_design_is_the_t_interval_of_the_donor_means():
    table, folds = _balanced()
    means = folds.mean(axis=1)
    a = len(means)
    half = stats.t.ppf(0.975, a - 1) * means.std(ddof=1) / math.sqrt(a)
    summary = growth_summary(table)
    g = summary.to_json()["groups"]["CellSTACK"]
    assert g["method"] == "mixed model, donor as random effect (REML, Kenward-Roger df)"
    assert (g["n"], g["donors"]) == (9, 3)
    fe = g["fold_expansion"]
    assert fe["mean"] == pytest.approx(folds.mean(), rel=1e-9)
    assert fe["ci_low"] == pytest.approx(folds.mean() - half, rel=1e-5)
    assert fe["ci_high"] == pytest.approx(folds.mean() + half, rel=1e-5)
    assert fe["sd"] == pytest.approx(folds.ravel().std(ddof=1))
    row = summary.groups.iloc[0]
    assert row["Group"] == "CellSTACK" and row["Fold expansion 95 % CI low"] == pytest.approx(fe["ci_low"])


def test_equal_values_and_a_zero_donor_variance_do_not_break_the_summary():
    """Hours all 90: no spread, the interval is the single value (t interval, no model). Fold expansions whose
    donor means are closer than the passages of a donor (between mean square below the within one): REML puts
    the donor variance at 0 and the note says so; the estimate is then the plain mean."""
    folds = np.array([[5.1, 6.4, 5.8], [6.3, 5.0, 5.9], [5.2, 6.5, 5.9]])
    rows = [{"Donor": f"D{i + 1}", "Passage": j + 1, "Vessel": "CellSTACK-10", "Seeded cells": 1e7,
             "Harvested cells": 1e7 * folds[i, j], "Hours": 90.0} for i in range(3) for j in range(3)]
    s = growth_summary(read_passages(pd.DataFrame(rows)).table)
    g = s.to_json()["groups"]["CellSTACK"]
    assert (g["hours"]["mean"], g["hours"]["ci_low"], g["hours"]["ci_high"]) == (90.0, 90.0, 90.0)
    assert g["fold_expansion"]["mean"] == pytest.approx(folds.mean())
    assert any("donor variance is estimated as 0" in n for n in s.notes)


def test_one_donor_gets_the_t_interval_and_one_passage_no_interval():
    y = np.array([6.0, 6.5, 7.1, 5.9])
    rows = [{"Donor": "D1", "Passage": j + 1, "Vessel": "T-175", "Seeded cells": 1e5,
             "Harvested cells": 1e5 * f, "Hours": 96.0} for j, f in enumerate(y)]
    rows.append({"Donor": "D1", "Passage": 5, "Vessel": "CellCube-10", "Seeded cells": 1e7,
                 "Harvested cells": 6e7, "Hours": 96.0})
    s = growth_summary(read_passages(pd.DataFrame(rows)).table)
    out = s.to_json()
    t = out["groups"]["T-flask"]
    half = stats.t.ppf(0.975, 3) * y.std(ddof=1) / 2
    assert t["method"] == "t interval"
    assert t["fold_expansion"]["ci_low"] == pytest.approx(y.mean() - half)
    assert t["fold_expansion"]["ci_high"] == pytest.approx(y.mean() + half)
    cube = out["groups"]["CellCube"]
    assert cube["fold_expansion"]["mean"] == pytest.approx(6.0) and cube["fold_expansion"]["ci_low"] is None
    assert any("CellCube" in n and "one passage only" in n for n in s.notes)


def test_doubling_time_leaves_out_passages_without_growth_with_a_note():
    rows = [{"Donor": "D1", "Passage": j + 1, "Vessel": "T-175", "Seeded cells": 1e5, "Harvested cells": h,
             "Hours": 72.0} for j, h in enumerate([8e5, 4e5, 5e4])]
    s = growth_summary(read_passages(pd.DataFrame(rows)).table)
    dt = s.to_json()["groups"]["T-flask"]["doubling_time_h"]
    assert dt["n"] == 2 and dt["mean"] == pytest.approx((24.0 + 36.0) / 2)
    assert any("1 passage with no net growth" in n for n in s.notes)


def test_to_json_shape():
    table, _ = _balanced()
    out = growth_summary(table, by="Vessel").to_json()
    json.dumps(out)  # plain JSON: no NaN, numpy scalars
    assert set(out) >= {"by", "passages", "groups", "donors", "notes"} and out["by"] == "Vessel"
    assert len(out["passages"]) == 9
    keys = {"donor", "passage", "vessel", "family", "seeded_cells", "harvested_cells", "hours", "viability",
            "area_cm2", "notes", "fold_expansion", "population_doublings", "doubling_time_h", "harvest_density",
            "cumulative_pdl"}
    assert keys <= set(out["passages"][0])
    assert out["passages"][0]["viability"] is None and out["passages"][0]["area_cm2"] == 6360.0
    g = out["groups"]["CellSTACK-10"]
    assert {"group", "n", "donors", "method", "fold_expansion", "doubling_time_h", "hours", "harvest_density"} <= set(g)
    assert {"mean", "ci_low", "ci_high", "sd"} <= set(g["hours"])
    with pytest.raises(PassageError, match="Did you mean 'Vessel'"):
        growth_summary(table, by="vessels")
    assert isinstance(growth_summary(table), GrowthSummary)


# -- the bundled example -----------------------------------------------------------------------------------
def _simulator():
    spec = importlib.util.spec_from_file_location("simulate_passages", ROOT / "data" / "simulate_passages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_example_files_are_what_the_script_writes():
    sim = _simulator()
    assert PASSAGES_FILE.read_text(encoding="utf-8") == sim.csv_text(sim.generate_passages())
    assert GROWTH_CURVE_FILE.read_text(encoding="utf-8") == sim.csv_text(sim.generate_growth_curve())


def test_bundled_example_reads_cleanly_and_is_labelled_simulated():
    up = read_passages(PASSAGES_FILE)
    assert up.ok and len(up.errors) == 0 and not up.warnings  # parallel vessels differ in their counts: no warning
    assert sorted(up.table["Donor"].unique()) == ["D1", "D2", "D3", "D4", "D5", "D6"]
    assert up.table["Notes"].str.contains("Simulated example").all()
    assert pd.read_csv(GROWTH_CURVE_FILE)["Notes"].str.contains("Simulated example").all()
    out = growth_summary(up.table).to_json()
    stack, cube = out["groups"]["CellSTACK"], out["groups"]["CellCube"]
    assert stack["n"] >= 6 and cube["n"] >= 6 and cube["donors"] == 6
    ratio = cube["fold_expansion"]["mean"] / stack["fold_expansion"]["mean"]
    assert 0.8 < ratio < 1.25
    for g in out["groups"].values():
        assert g["fold_expansion"]["ci_low"] is not None
