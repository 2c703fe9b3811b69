"""Bad input and misuse (issue 7): every file of tests/bad_inputs/ and a few generated ones.

Each bad file gives a clear message in the library (a Problem or a StudyError), the CLI
(exit 2, one 'error:' line) and the app (an st.error, nothing stored). Files that are
actually fine (BOM, UTF-16, ';' with decimal commas, tab) are read correctly instead.
tests/bad_inputs/README.md lists the files and the expected message fragments.
"""

import csv
import io
import time
import tomllib
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from doe.cli import main
from doe.errors import DoeError
from doe.runs import MAX_BYTES, MAX_ROWS, read_results
from doe.store import Store, default_url
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT, app_with_example_results

BAD = ROOT / "tests" / "bad_inputs"
APP = str(ROOT / "app.py")
RESULTS = ROOT / "data" / "msc_example_results.csv"

# Results files for the example study: file -> a fragment of the first error.
BAD_RESULTS = {
    "empty.csv": "is empty: it needs a header row",
    "header_only.csv": "has a header row but no runs",
    "wrong_delimiter.csv": "the rows use another delimiter than the header",
    "unbalanced_quotes.csv": "opens a quote (\") that is never closed",
    "binary.csv": "does not look like a CSV or XLSX file",
    "units.csv": "remove the unit ('%') and enter 5",
    "decimal_comma.csv": "use a point as the decimal separator (89.3)",
    "inf.csv": "'inf' is not a finite number",
    "nan.csv": "column 'Agitation': the setting is empty",
    "duplicate_columns.csv": "Column 'Viability' appears twice",
    "near_miss_level.csv": "'Acutase' is not a level of Harvest reagent. Did you mean 'Accutase'?",
}
# Files that are fine: they are read as the first five runs of the example results.
GOOD_RESULTS = ["bom.csv", "utf16.csv", "semicolon_decimal_comma.csv", "tab_delimited.csv", "latin1.csv",
                "nan_result.csv"]
# Study files: file -> a fragment of the StudyError.
BAD_STUDIES = {
    "study_empty.yaml": "The study file is empty",
    "study_not_mapping.yaml": "must be a YAML mapping",
    "study_unknown_key.yaml": "Unknown key 'respones' in study. Did you mean 'responses'?",
    "study_unknown_factor_key.yaml": "Unknown key 'unit' in factor 4 (Agitation). Did you mean 'units'?",
    "study_levels_number.yaml": "'levels' must be a list",
    "study_low_text.yaml": "Factor 'Agitation' low must be a number; got 'thirty'",
    "study_name_list.yaml": "'name' must be text",
    "study_anchors.yaml": "YAML aliases ('*lo') are not allowed",
    "study_billion_laughs.yaml": "YAML aliases ('*a') are not allowed",
    "study_bad_yaml.yaml": "not valid YAML at line 23",
    "study_latin1.yaml": "not UTF-8",
    "study_newer_schema.yaml": "schema 2 is not supported",
}


@pytest.fixture(scope="module")
def study():
    return Study.load(EXAMPLE)


def _example_rows() -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(RESULTS.read_text(encoding="utf-8"))))
    return rows[0], rows[1:]


def _xlsx(edit) -> bytes:
    """The first five example runs as a workbook, changed by ``edit(ws)``."""
    header, body = _example_rows()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for r in body[:5]:
        ws.append([float(c) if c.replace(".", "", 1).isdigit() else c for c in r])
    edit(ws)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _formula(ws) -> None:
    ws["I3"] = "=I2*2"  # Viability of run 2: written by a script, so no saved result


def _merged(ws) -> None:
    ws.merge_cells("D2:D3")  # Medium of runs 1 and 2


# Workbooks built at test time: name -> (edit, fragment).
BAD_XLSX = {
    "formula.xlsx": (_formula, "holds the formula '=I2*2' but no saved result"),
    "merged.xlsx": (_merged, "hidden under the merged cells D2:D3"),
}


def _bad_result(name: str, tmp_path: Path) -> tuple[Path, str]:
    """(path of the bad results file, expected fragment), written to tmp_path for workbooks."""
    if name in BAD_XLSX:
        edit, fragment = BAD_XLSX[name]
        path = tmp_path / name
        path.write_bytes(_xlsx(edit))
        return path, fragment
    return BAD / name, BAD_RESULTS[name]


def _cli(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _assert_clear_cli_error(code: int, err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0], err
    assert "internal error" not in err and "Traceback" not in err


def test_corpus_readme_lists_every_file():
    readme = (BAD / "README.md").read_text(encoding="utf-8")
    for p in BAD.iterdir():
        if p.name != "README.md":
            assert f"`{p.name}`" in readme, p.name
    for name in [*BAD_RESULTS, *GOOD_RESULTS, *BAD_STUDIES, *BAD_XLSX]:
        assert f"`{name}`" in readme, name
    on_disk = {p.name for p in BAD.iterdir()} - {"README.md"}
    assert on_disk == set(BAD_RESULTS) | set(GOOD_RESULTS) | set(BAD_STUDIES)


# -- (a) library --------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*BAD_RESULTS, *BAD_XLSX])
def test_library_refuses_bad_results_with_a_clear_message(study, name, tmp_path):
    path, fragment = _bad_result(name, tmp_path)
    up = read_results(study, path.read_bytes(), name)
    assert not up.ok
    assert fragment in up.errors[0].message, [p.message for p in up.errors]


@pytest.mark.parametrize("name", GOOD_RESULTS)
def test_library_reads_acceptable_files_correctly(study, name):
    expected = read_results(study, "\n".join(RESULTS.read_text(encoding="utf-8").splitlines()[:6]) + "\n")
    up = read_results(study, (BAD / name).read_bytes(), name)
    assert up.ok, up.summary()
    assert len(up.table) == 5
    cols = [c for c in expected.table.columns if c != "Notes"]
    want = expected.table[cols].copy()
    if name == "nan_result.csv":  # 'NaN' in a CQA cell means not measured yet
        assert pd.isna(up.table.loc[1, "Viability"])
        want.loc[1, "Viability"] = float("nan")
    pd.testing.assert_frame_equal(up.table[cols], want, check_dtype=False)
    if name == "latin1.csv":
        assert "read as Latin-1" in up.warnings[0].message
        assert up.table.loc[0, "Notes"] == "37 °C, 5 % CO2 ok"
    else:
        assert not up.warnings, up.summary()


@pytest.mark.parametrize("name", BAD_STUDIES)
def test_library_refuses_bad_study_files(name):
    with pytest.raises(DoeError) as exc:
        Study.load(BAD / name)
    assert BAD_STUDIES[name] in str(exc.value)


def test_billion_laughs_is_refused_at_once():
    t = time.perf_counter()
    with pytest.raises(DoeError, match="aliases"):
        Study.from_yaml((BAD / "study_billion_laughs.yaml").read_text(encoding="utf-8"))
    assert time.perf_counter() - t < 1


def _big_file(tmp_path: Path, mb: int) -> Path:
    """A valid-looking results CSV of at least ``mb`` MB (the example runs repeated)."""
    header, body = _example_rows()
    chunk = "".join(",".join(r) + "\n" for r in body)
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(header) + "\n")
        for _ in range(mb * 2**20 // len(chunk) + 1):
            f.write(chunk)
    return path


def _many_rows(tmp_path: Path, n: int) -> Path:
    """``n`` runs (ids 1..n, settings of the example runs), short rows so the file stays small."""
    header, body = _example_rows()
    keep = header.index("Notes")
    path = tmp_path / "rows.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(header[:keep]) + "\n")
        for i in range(1, n + 1):
            f.write(",".join([str(i), *body[i % len(body)][1:keep]]) + "\n")
    return path


def test_100_mb_file_is_refused_quickly(study, tmp_path):
    path = _big_file(tmp_path, 100)
    assert path.stat().st_size > 100 * 2**20 > MAX_BYTES
    t = time.perf_counter()
    up = read_results(study, path)  # the path is checked by its size before it is read
    assert time.perf_counter() - t < 1
    assert not up.ok and f"larger than {MAX_BYTES // 2**20} MB" in up.errors[0].message
    up = read_results(study, path.read_bytes(), "big.csv")  # an upload's bytes: refused before parsing
    assert not up.ok and "larger than" in up.errors[0].message


def test_100000_rows_are_refused(study, tmp_path):
    path = _many_rows(tmp_path, 100_000)
    assert path.stat().st_size < MAX_BYTES  # the row limit, not the size limit, refuses it
    up = read_results(study, path)
    assert not up.ok
    assert f"The file has 100,000 rows; the limit is {MAX_ROWS:,} runs" in up.errors[0].message


def test_upload_size_limit_of_the_server_is_at_most_50_mb():
    for config in (ROOT / ".streamlit" / "config.toml", ROOT / "deploy" / "streamlit-config.toml"):
        limit = tomllib.loads(config.read_text(encoding="utf-8"))["server"]["maxUploadSize"]
        assert limit <= 50 and limit * 2**20 <= MAX_BYTES, config


# -- (b) CLI ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*BAD_RESULTS, *BAD_XLSX])
def test_cli_analyze_refuses_bad_results(capsys, name, tmp_path):
    path, fragment = _bad_result(name, tmp_path)
    out = tmp_path / "out.json"
    code, err = _cli(capsys, ["analyze", str(EXAMPLE), str(path), "--json", str(out)])
    _assert_clear_cli_error(code, err, fragment)
    assert not out.exists()


@pytest.mark.parametrize("make, fragment", [(lambda p: _big_file(p, 100), "larger than"),
                                            (lambda p: _many_rows(p, 100_000), "100,000 rows")],
                         ids=["100MB", "100000rows"])
def test_cli_analyze_refuses_big_files(capsys, tmp_path, make, fragment):
    code, err = _cli(capsys, ["analyze", str(EXAMPLE), str(make(tmp_path)), "--json", str(tmp_path / "o.json")])
    _assert_clear_cli_error(code, err, fragment)


@pytest.mark.parametrize("name", BAD_STUDIES)
def test_cli_validate_refuses_bad_study_files(capsys, name):
    code, err = _cli(capsys, ["validate", str(BAD / name)])
    _assert_clear_cli_error(code, err, BAD_STUDIES[name])


# -- (c) app ----------------------------------------------------------------------------------
NAME = "MSC expansion"
MIME = {".csv": "text/csv", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".yaml": "application/x-yaml"}


def _store_state() -> tuple[str, ...]:
    """Everything a bad upload must leave alone: studies, study versions, data versions, runs."""
    db = Store.open(default_url())
    studies = db.list_studies()
    if NAME not in set(studies["name"]):
        return (studies.to_json(),)
    return (studies.to_json(), db.study_versions(NAME).to_json(), db.data_versions(NAME).to_json(),
            db.runs(NAME).to_json())


def _app_with_stored_results() -> AppTest:
    at = app_with_example_results(180)
    assert len(Store.open(default_url()).runs(NAME)) == 40
    return at


@pytest.mark.parametrize("name", [*BAD_RESULTS, *BAD_XLSX])
def test_app_refuses_bad_results_and_stores_nothing(name, tmp_path):
    at = _app_with_stored_results()
    before = _store_state()
    path, fragment = _bad_result(name, tmp_path)
    at.file_uploader(key="results_upload").set_value((name, path.read_bytes(), MIME[path.suffix])).run()
    assert not at.exception, at.exception
    assert any(f"{name} was not loaded" in e.value for e in at.error), [e.value for e in at.error]
    shown = " ".join(str(df.value.to_dict()) for df in at.dataframe)
    assert fragment in shown, shown
    assert not [b for b in at.button if b.key == "save_upload"]
    assert _store_state() == before


@pytest.mark.parametrize("name", GOOD_RESULTS)
def test_app_reads_acceptable_files(name):
    at = _app_with_stored_results()
    before = _store_state()
    at.file_uploader(key="results_upload").set_value((name, (BAD / name).read_bytes(), "text/csv")).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # the five runs equal the stored ones ('NaN' erases nothing); latin1.csv has its own Notes for run 1
    expected = "1 new or changed runs of 5" if name == "latin1.csv" else "nothing new - every run is already saved"
    assert any(expected in i.value for i in at.info), [i.value for i in at.info]
    assert _store_state() == before


def test_app_refuses_a_big_upload_and_stores_nothing(tmp_path):
    at = _app_with_stored_results()
    before = _store_state()
    path = _many_rows(tmp_path, MAX_ROWS + 1)
    at.file_uploader(key="results_upload").set_value(("rows.csv", path.read_bytes(), "text/csv")).run()
    assert not at.exception, at.exception
    assert any("rows.csv was not loaded" in e.value for e in at.error)
    assert "the limit is" in " ".join(str(df.value.to_dict()) for df in at.dataframe)
    assert _store_state() == before


@pytest.mark.parametrize("name", BAD_STUDIES)
def test_app_study_upload_refuses_bad_files_and_keeps_the_study(name):
    at = _app_with_stored_results()  # the example study is stored (version 1) with its runs
    at.switch_page("pages/study.py").run()
    assert not at.exception, at.exception
    open_before = at.session_state["study"].to_dict()
    before = _store_state()
    at.file_uploader(key="study_upload").set_value((name, (BAD / name).read_bytes(), MIME[".yaml"])).run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    fragment = "not UTF-8" if name == "study_latin1.yaml" else BAD_STUDIES[name]
    assert fragment in errors, errors
    assert at.session_state["study"].to_dict() == open_before
    assert _store_state() == before


def test_a_row_with_only_notes_is_not_taken_for_a_delimiter_mix_up(study):
    header, body = _example_rows()
    rows = [",".join(header), ",".join(body[0]), "," * (len(header) - 1) + '"late, see log, page 2"']
    up = read_results(study, "\n".join(rows) + "\n", "notes.csv")
    assert not any("another delimiter" in p.message for p in up.problems), up.summary()
