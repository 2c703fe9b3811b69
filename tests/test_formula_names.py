"""Names and levels that a spreadsheet would read as formulas: neutralised in every header and cell
the tool writes (CSV and XLSX), and read back exactly from the tool's own run sheets, so levels
that legitimately begin with - + = @ (-80C, +4C) work from the study to evaluate and augment."""

import io
import subprocess
import sys

import openpyxl
import pandas as pd
import pytest

from doe.cells import safe_text, unquote_formula
from doe.design import read_design, safe_csv
from doe.generators import augment, generate
from doe.runs import read_results
from doe.study import Study
from tests.conftest import ROOT

STUDY = """schema: 1
name: cold chain
factors:
  - {name: Storage, kind: categorical, levels: ["-80C", "+4C", "=RT", "@bench", "'-20C"]}
  - {name: "=Temp", kind: continuous, low: -5, high: 5, units: "-C"}
  - {name: "-Dose", kind: discrete, levels: [-2, 0, 2]}
responses:
  - {name: "@Yield", units: "%"}
"""
LEVELS = ["-80C", "+4C", "=RT", "@bench", "'-20C"]
NAMES = ["Storage", "=Temp", "-Dose", "@Yield"]


@pytest.fixture(scope="module")
def study():
    return Study.from_yaml(STUDY)


@pytest.fixture(scope="module")
def design(study):
    return generate(study, "optimal", seed=3)


def _live(text) -> bool:
    """What a spreadsheet would run: text starting with = + - @ (a mark "'" before it is text)."""
    return isinstance(text, str) and text[:1] in ("=", "+", "-", "@")


def test_the_study_takes_such_names_and_levels(study, design):
    assert study.factor("Storage").levels == LEVELS
    assert set(design.table["Storage"]) <= set(LEVELS)


def test_csv_run_sheet_headers_and_cells_are_neutralised(design):
    frame = pd.read_csv(io.StringIO(design.to_csv()), dtype=str, keep_default_na=False)
    assert not [c for c in frame.columns if _live(c)], list(frame.columns)
    assert "'=Temp" in frame.columns and "'@Yield" in frame.columns
    assert not [v for v in frame["Storage"] if _live(v)]


def test_xlsx_run_sheet_has_no_formula_in_header_or_cells(design):
    wb = openpyxl.load_workbook(io.BytesIO(design.to_xlsx()))
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                assert not (cell.data_type == "s" and _live(cell.value)), (ws.title, cell.coordinate, cell.value)


def test_safe_csv_neutralises_headers():
    text = safe_csv(pd.DataFrame({"=HYPERLINK(\"http://x\")": ["a"], "ok": ["=1"]}))
    header = text.splitlines()[0]
    assert header.startswith("\"'=HYPERLINK") and ",ok" in header, header


def test_cli_design_out_xlsx_writes_no_live_formula(tmp_path):
    path, out = tmp_path / "s.yaml", tmp_path / "x.xlsx"
    path.write_text(STUDY, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "doe", "design", str(path), "--type", "optimal", "--seed", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ws = openpyxl.load_workbook(out).worksheets[0]
    header = [c for c in ws[1]]
    assert all(c.data_type != "f" for c in header), [(c.value, c.data_type) for c in header]
    assert "'=Temp" in [c.value for c in header]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_tools_run_sheet_reads_back_exactly(study, design, fmt):
    data = design.to_csv().encode() if fmt == "csv" else design.to_xlsx()
    up = read_results(study, data, f"run_sheet.{fmt}")
    assert up.ok, up.summary()
    assert not up.warnings, up.summary()  # every header is a known column again
    assert list(up.table["Storage"]) == list(design.table["Storage"])
    again = read_design(study, data, f"run_sheet.{fmt}")
    assert list(again.table["Storage"]) == list(design.table["Storage"])
    assert list(again.table["=Temp"]) == pytest.approx(list(design.table["=Temp"]))


def test_evaluate_and_augment_on_the_tools_own_run_sheet(study, design):
    again = read_design(study, design.to_csv(with_responses=False).encode(), "design.csv")
    bigger = augment(again, 3, seed=1)
    assert len(bigger.table) == len(design.table) + 3
    assert set(bigger.table["Storage"]) <= set(LEVELS)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_cli_evaluate_and_augment_read_the_tools_own_run_sheets(tmp_path, fmt):
    path = tmp_path / "s.yaml"
    path.write_text(STUDY, encoding="utf-8")
    sheet, more = tmp_path / f"d.{fmt}", tmp_path / f"a.{fmt}"

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "doe", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc

    run("design", str(path), "--type", "optimal", "--seed", "3", "--out", str(sheet))
    run("evaluate", str(path), str(sheet))
    run("augment", str(path), str(sheet), "--add", "3", "--seed", "1", "--out", str(more))
    up = read_results(Study.from_yaml(STUDY), more)
    assert up.ok and set(up.table["Storage"]) <= set(LEVELS), up.summary()


def test_results_with_formula_like_notes_read_back(study, design):
    sheet = design.run_sheet()
    sheet["@Yield"] = 50.0
    sheet["Notes"] = "-ish, redo"
    up = read_results(study, safe_csv(sheet).encode(), "results.csv")
    assert up.ok, up.summary()
    assert set(up.table["Notes"]) == {"-ish, redo"}


@pytest.mark.parametrize("text", ["-80C", "=1", "@a", "+4C", "\tx", "plain", "'plain", ""])
def test_unquote_reverses_the_mark(text):

    assert unquote_formula(safe_text(text)) == text


def test_a_level_that_starts_with_the_mark_reads_as_it_stands(study, design):
    """"'-20C" is written as it is (a leading apostrophe is text already) and read back as that
    level, not as "-20C"."""
    sheet = design.run_sheet()
    assert "'-20C" in set(pd.read_csv(io.StringIO(design.to_csv()), dtype=str)["Storage"])
    up = read_results(study, design.to_csv().encode(), "d.csv")
    assert list(up.table["Storage"]) == list(sheet["Storage"])


def test_the_vessel_catalogue_download_neutralises_formulas_and_reads_back(tmp_path):
    """A vessel named like a formula downloads marked (no live formula) and reads back as typed."""
    from doe.scale import catalogue_csv, catalogue_frame, read_catalogue

    table = catalogue_frame(read_catalogue())
    table.loc[0, "name"] = '=HYPERLINK("http://x","T-75")'
    text = catalogue_csv(table)
    cells = [c for line in text.splitlines() for c in line.split(",")]
    assert not any(c.lstrip('"').startswith("=") for c in cells) and any(c.lstrip('"').startswith("'=") for c in cells)
    path = tmp_path / "vessels.csv"
    path.write_text(text, encoding="utf-8")
    assert read_catalogue(path)[0].name == '=HYPERLINK("http://x","T-75")'
