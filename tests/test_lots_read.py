"""The manufacturing lots sheet reader (doe.lots.read_lots) on the bundled example and on small sheets.

Expected values are written out by hand from the sheets below (or read from data/msc_lots.csv with pandas,
independently of the reader): the canonical columns, the ISO dates, the levels, and which row and column
each problem names.
"""

from __future__ import annotations

import pandas as pd
import pytest

from doe.lots import LotsUpload, read_lots
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT

FACTORS = ["Medium", "Surface", "Harvest reagent", "Agitation", "Seeding density"]
CQAS = ["Viability", "Fold expansion", "CD73/CD90/CD105", "HLA-DR", "Aggregates", "Potency", "EV yield"]


@pytest.fixture(scope="module")
def study():
    return Study.load(EXAMPLE)


def sheet(rows: list[str], header: str = "Lot,Date,Medium,Surface,Harvest reagent,Agitation,Seeding density,"
                                         "Viability") -> str:
    return "\n".join([header, *rows]) + "\n"


GOOD = "hPL 5%,Standard TC,TrypLE,43,1700,94.6"


def messages(upload: LotsUpload, severity: str) -> list[str]:
    return [p.message for p in upload.problems if p.severity == severity]


def test_the_example_lots_read_clean_in_file_order(study):
    upload = read_lots(study, ROOT / "data" / "msc_lots.csv")
    raw = pd.read_csv(ROOT / "data" / "msc_lots.csv")
    assert upload.ok and not upload.warnings, upload.summary()
    assert list(upload.table.columns) == ["Lot", "Date", "Donor", *FACTORS, *CQAS, "Notes"]
    assert upload.table["Lot"].tolist() == raw["Lot"].tolist()
    assert upload.table["Date"].tolist() == raw["Date"].tolist()
    assert upload.table["Agitation"].tolist() == pytest.approx(raw["Agitation"].tolist())
    assert upload.name == "msc_lots.csv"
    assert upload.summary().startswith(f"msc_lots.csv: {len(raw)} lots, {len(raw) * len(CQAS)} of "
                                       f"{len(raw) * len(CQAS)} CQA results filled; 0 errors, 0 warnings.")


def test_headers_match_ignoring_case_spacing_and_units_and_order_is_canonical(study):
    text = sheet(["L1,2026-01-05,x,  trypLE ,hpl 5%,standard tc,43,1700"],
                 " notes ,LOT,SUBGROUP,Harvest  Reagent,medium,surface,AGITATION (rpm),Seeding density")
    upload = read_lots(study, text)
    assert upload.ok, upload.summary()
    assert list(upload.table.columns) == ["Lot", *FACTORS, "Subgroup", "Notes"]
    row = upload.table.iloc[0]
    assert (row["Medium"], row["Surface"], row["Harvest reagent"]) == ("hPL 5%", "Standard TC", "TrypLE")
    assert (row["Agitation"], row["Seeding density"], row["Subgroup"]) == (43.0, 1700.0, "x")


@pytest.mark.parametrize(("cell", "iso"), [("2026-01-05", "2026-01-05"), ("2026/01/07", "2026-01-07"),
                                           ("13/01/2026", "2026-01-13"), ("01/13/2026", "2026-01-13"),
                                           ("5 Jan 2026", "2026-01-05"), ("Jan 5, 2026", "2026-01-05"),
                                           ("05.01.2026", "2026-01-05"), ("2026-01-05 08:30", "2026-01-05")])
def test_common_date_formats_become_iso(study, cell, iso):
    upload = read_lots(study, sheet([f'L1,"{cell}",{GOOD}']))
    assert upload.ok, upload.summary()
    assert upload.table["Date"].tolist() == [iso]


@pytest.mark.parametrize("cell", ["soon", "05/01/2026", "2026-13-40"])
def test_unreadable_or_ambiguous_dates_are_errors_naming_row_and_column(study, cell):
    upload = read_lots(study, sheet([f"L1,2026-01-05,{GOOD}", f"L2,{cell},{GOOD}"]))
    (error,) = upload.errors
    assert (error.row, error.column) == (2, "Date")
    assert error.message.startswith("Row 2, column 'Date':") and "YYYY-MM-DD" in error.message


def test_levels_numbers_and_the_tested_range(study):
    upload = read_lots(study, sheet([f"L1,2026-01-05,{GOOD}",
                                     "L2,2026-01-12,hPL 5%,Standard TC,Trypsin EDTA,43,1700,94",
                                     "L3,2026-01-19,hPL 5%,Standard TC,TrypLE,95,1700,93",
                                     "L4,2026-01-26,hPL 5%,Standard TC,TrypLE,43 rpm,1700,"]))
    errors = {(p.row, p.column): p.message for p in upload.errors}
    assert set(errors) == {(2, "Harvest reagent"), (4, "Agitation")}
    assert "'Trypsin EDTA' is not a level of Harvest reagent" in errors[2, "Harvest reagent"]
    assert "Trypsin-EDTA" in errors[2, "Harvest reagent"]  # did you mean
    assert "remove the unit ('rpm') and enter 43" in errors[4, "Agitation"]
    (warning,) = upload.warnings
    assert (warning.row, warning.column) == (3, "Agitation")
    assert "Lot L3" in warning.message and "outside the tested range 30 to 90" in warning.message
    assert upload.table.loc[2, "Agitation"] == 95.0  # kept
    assert pd.isna(upload.table.loc[3, "Viability"])  # blank = not measured


def test_a_decimal_comma_is_refused_with_the_fix(study):
    text = ("Lot;Medium;Surface;Harvest reagent;Agitation;Seeding density;Viability\n"
            "L1;hPL 5%;Standard TC;TrypLE;42,5;1700;94,6\n")
    upload = read_lots(study, text)
    by_column = {p.column: p.message for p in upload.errors}
    assert set(by_column) == {"Agitation", "Viability"}
    assert "use a point as the decimal separator (42.5)" in by_column["Agitation"]
    assert "(94.6)" in by_column["Viability"]


def test_lot_ids_must_be_unique_and_given(study):
    upload = read_lots(study, sheet([f"L1,2026-01-05,{GOOD}", f"L1,2026-01-12,{GOOD}", f",2026-01-19,{GOOD}"]))
    errors = {(p.row, p.column): p.message for p in upload.errors}
    assert set(errors) == {(2, "Lot"), (3, "Lot")}
    assert "lot L1 is used again (first in row 1)" in errors[2, "Lot"]
    assert "the lot id is empty" in errors[3, "Lot"]


def test_missing_columns_and_unknown_columns(study):
    upload = read_lots(study, pd.DataFrame({"Batch": ["L1"], "Medium": ["hPL 5%"], "Operator": ["AB"]}))
    errors = [p for p in upload.errors]
    assert {p.column for p in errors} == {"Lot", "Surface", "Harvest reagent", "Agitation", "Seeding density"}
    assert {p.column for p in upload.warnings} == {"Batch", "Operator"}
    assert upload.table["Operator"].tolist() == ["AB"]  # kept
    assert upload.name == "table"


def test_blank_rows_are_skipped_and_problems_name_the_sheet_s_row(study):
    upload = read_lots(study, sheet([f"L1,2026-01-05,{GOOD}", ",,,,,,,", f"L2,2026-01-12,{GOOD}",
                                     "L3,2026-01-19,hPL 5%,Standard TC,TrypLE,43,1700,9O"]))
    assert upload.table["Lot"].tolist() == ["L1", "L2", "L3"]
    (error,) = upload.errors
    assert (error.row, error.column) == (4, "Viability") and error.message.startswith("Row 4 (lot L3)")


def test_numeric_levels_match_as_written(study):
    numeric = Study.from_dict({"name": "t", "factors": [{"name": "Passage", "kind": "categorical",
                                                          "levels": ["3", "5"]}], "responses": [{"name": "Y"}]})
    upload = read_lots(numeric, "Lot,Passage,Y\n1,3,2.5\n2,5,2.7\n")
    assert upload.ok, upload.summary()
    assert upload.table["Passage"].tolist() == ["3", "5"] and upload.table["Lot"].tolist() == ["1", "2"]


def test_a_missing_file_is_an_error_not_an_exception(study, tmp_path):
    upload = read_lots(study, tmp_path / "nope.csv")
    assert not upload.ok and "does not exist" in upload.errors[0].message
