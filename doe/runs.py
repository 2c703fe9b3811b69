"""Results entry and upload: read a run sheet with measured CQAs, check it, merge it.

A results file is the design's run sheet with the CQA columns filled in: CSV
(any of ``,`` ``;`` tab ``|`` as delimiter; UTF-8, UTF-8 with BOM, UTF-16,
or Latin-1 with a warning; decimal commas when the delimiter is not ``,``) or
XLSX (first sheet; formulas read as their saved results).

Nothing here raises on bad input. Every problem becomes a :class:`Problem`
naming the data row (1 = the first row below the header) and the column, so
the page can list them next to the table:

>>> from doe.study import Study, Factor, Response
>>> s = Study("t", [Factor("Agitation", low=30, high=90, units="rpm")],
...           [Response("Viability", units="%")])
>>> up = read_results(s, b"Run,Agitation,Viability\\n1,60,91.5\\n2,90,5 %\\n")
>>> up.ok
False
>>> print(up.problems[0].message)
Row 2, column 'Viability': '5 %' is not a number: remove the unit ('%') and enter 5.

Errors block the upload (``ok`` is False); warnings are reported and the
values are kept. :func:`merge_results` adds an upload to the results entered
so far and changes nothing when the upload has an error.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import difflib
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import pandas as pd

from doe import limits
from doe._format import plain_whole
from doe.cells import blank_cell as _blank
from doe.cells import same_value, stored_cell, unquote_formula
from doe.errors import DoeError, did_you_mean, quoted_list
from doe.study import SUBPLOT, WHOLE_PLOT, Factor, Response, Study

if TYPE_CHECKING:
    from doe.design import Design

__all__ = [
    "MAX_BYTES", "MAX_ROWS", "Problem", "RunsUpload", "merge_results", "read_results",
    "results_template", "validate_runs",
]

MAX_BYTES = limits.MAX_UPLOAD_BYTES
MAX_ROWS = limits.MAX_ROWS
MAX_COLUMNS = limits.MAX_COLUMNS
SEVERITIES = ("error", "warning")
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_QUALIFIERS = ("<", ">", "~", "≈", "≤", "≥", "ca.")
_NUMBER = r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?"
_FLOAT = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


class _Fatal(Exception):
    """The file cannot be read at all; the message is for the user."""


@dataclass(frozen=True)
class Problem:
    """One problem with an upload or an edited results table.

    Parameters
    ----------
    severity : {'error', 'warning'}
        Errors block the upload; warnings are reported and the values kept.
    row : int or None
        1-based data row (1 = first row below the header), None for the file or a column.
    column : str or None
        Column the problem is in, None for the whole file or row.
    message : str
        One sentence for the user that names the row and column and says what to do.
    """

    severity: str
    row: int | None
    column: str | None
    message: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Problem severity must be one of {SEVERITIES}, not {self.severity!r}.")

    def __str__(self) -> str:
        return f"{self.severity.capitalize()}: {self.message}"


class ProblemList:
    """What an upload with a ``problems`` list (of :class:`Problem`) says about itself: errors, warnings, ok."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop the upload."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems reported without stopping the upload."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no problem is an error."""
        return not self.errors


@dataclass
class RunsUpload(ProblemList):
    """A results table read from a file or an editor, with its problems.

    ``table`` columns, in order: Run, StdOrder, the block column and PointType
    (when present), the factors in actual units, the CQAs as float (NaN =
    not measured), Notes, then any extra columns of the file.
    """

    table: pd.DataFrame
    problems: list[Problem]
    name: str = ""
    factors: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    #: What one row is, and what the upload is called without a name (a subclass's sheet: lots).
    unit: ClassVar[str] = "run"
    default_name: ClassVar[str] = "The upload"

    def summary(self, limit: int = 20) -> str:
        """A few lines for the user: rows, results filled, then the problems (errors first)."""
        what = self.name or self.default_name
        cqas = [c for c in self.responses if c in self.table]
        filled = int(self.table[cqas].notna().sum().sum()) if cqas else 0
        head = (f"{what}: {_count(len(self.table), self.unit)}, {filled} of {len(self.table) * len(cqas)} CQA "
                f"results filled; {_count(len(self.errors), 'error')}, "
                f"{_count(len(self.warnings), 'warning')}.")
        shown = (self.errors + self.warnings)[:limit]
        lines = [head] + [f"- {p}" for p in shown]
        if len(self.problems) > limit:
            lines.append(f"- ... and {len(self.problems) - limit} more.")
        return "\n".join(lines)


# -- public API ---------------------------------------------------------------
def read_results(study: Study, source: bytes | str | Path | pd.DataFrame, name: str = "") -> RunsUpload:
    """Read and check a results file (CSV or XLSX) or a DataFrame.

    Parameters
    ----------
    study : Study
        The study whose factors and CQAs the columns must carry.
    source : bytes, str, Path or DataFrame
        File contents, CSV text (a str with a line break), a path to a file, or a
        table (e.g. from an editor).
    name : str
        File name, used in messages and to recognise ``.xlsx``.

    Returns
    -------
    RunsUpload
        The tidy table (actual units) and every problem found; never raises for bad input.
    """
    problems: list[Problem]
    if isinstance(source, pd.DataFrame):
        frame, rows, decimal_comma, problems = source.copy(), None, False, []
        name = name or "table"
    else:
        try:
            data, name = _source_bytes(source, name)
            frame, rows, decimal_comma, problems = _load(data, name)
        except _Fatal as exc:
            return RunsUpload(pd.DataFrame(), [Problem("error", None, None, str(exc))], name,
                              study.factor_names, study.response_names)
    table, found = _check(study, frame, decimal_comma=decimal_comma, rows=rows)
    return RunsUpload(table, problems + found, name, study.factor_names, study.response_names)


def validate_runs(study: Study, table: pd.DataFrame) -> list[Problem]:
    """The problems of an edited results table (same checks as :func:`read_results`).

    Rows are numbered 1..n in the table's order.
    """
    return _check(study, table.copy(), decimal_comma=False, rows=None)[1]


def results_template(design: Design) -> pd.DataFrame:
    """The design's run sheet with an empty (NaN) float column per CQA and a Notes column."""
    sheet = design.run_sheet()
    for r in design.study.responses:
        sheet[r.name] = pd.to_numeric(sheet[r.name], errors="coerce").astype(float)
    sheet["Notes"] = sheet["Notes"].fillna("").astype(str)
    return sheet


@dataclass
class RunSheetAddition:
    """What adding a design's run sheet to the stored runs does (see :func:`run_sheet_addition`).

    ``batch``: the runs to add (results empty), as :func:`changed_runs` returns new runs;
    ``already``: how many of the design's runs are stored already with the same settings;
    ``renumbered``: design run id -> new run id, for runs whose id a stored run with other
    settings holds (never overwritten: measured results keep the settings they were run at);
    ``has_results``: whether any stored run has a result, so that adding runs now is a documented
    change to an analysed data set (the page asks for a reason).
    """

    batch: pd.DataFrame
    already: int
    renumbered: dict[str, str]
    has_results: bool

    def describe(self) -> str:
        """One sentence on what pressing the button adds."""
        if not len(self.batch):
            return "every run of this design is already stored: nothing to add"
        text = f"{len(self.batch)} new runs"
        if self.already:
            text += f" ({self.already} of the design's runs are already stored)"
        if self.renumbered:
            pairs = ", ".join(f"{a} as {b}" for a, b in list(self.renumbered.items())[:6])
            more = " ..." if len(self.renumbered) > 6 else ""
            text += (f"; {len(self.renumbered)} run ids are taken by stored runs with other settings, so these "
                     f"runs get new ids ({pairs}{more}) and no stored run is changed")
        return text


def run_sheet_addition(stored: pd.DataFrame | None, design: Design) -> RunSheetAddition:
    """The runs that adding ``design``'s run sheet to ``stored`` (as the store returns them) adds.

    A design run stored under its id with the same factor settings is already there. A design run
    whose id a stored run with other settings holds is added under the next free number instead
    of changing that run, so results are never moved to settings they were not measured at.
    """
    sheet = results_template(design)
    factors = [f.name for f in design.study.factors]
    cqas = [r.name for r in design.study.responses]
    stored_rows = {} if stored is None or not len(stored) else {
        _label(rec["Run"]): rec for rec in stored.to_dict("records")}
    has_results = stored is not None and any(
        c in stored.columns and stored[c].notna().any() for c in cqas)
    numbers = [int(k) for k in stored_rows if k.isdigit()] + [
        int(_label(v)) for v in sheet["Run"] if _label(v).isdigit()]
    next_id = max(numbers, default=0) + 1
    keep, renumbered, already = [], {}, 0
    for i, rec in enumerate(sheet.to_dict("records")):
        label = _label(rec["Run"])
        old = stored_rows.get(label)
        if old is None:
            keep.append(i)
        elif all(same_value(stored_cell(rec[f]), stored_cell(old.get(f))) for f in factors):
            already += 1
        else:
            renumbered[label] = str(next_id)
            sheet.at[sheet.index[i], "Run"] = next_id
            next_id += 1
            keep.append(i)
    batch = sheet.iloc[keep].copy()
    batch["row_version"] = np.nan
    return RunSheetAddition(batch, already, renumbered, has_results)


def runs_not_in_design(table: pd.DataFrame, design: Design) -> list[str]:
    """Run ids of ``table`` that are not runs of ``design``: an id the design lacks, or other factor
    settings than the design's run of that id. Empty when every run was run on the design."""

    sheet = {_label(rec["Run"]): rec for rec in design.run_sheet().to_dict("records")}
    factors = [f.name for f in design.study.factors]
    off = []
    for rec in table.to_dict("records"):
        label = _label(rec["Run"])
        mine = sheet.get(label)
        if mine is None or not all(same_value(stored_cell(rec.get(f)), stored_cell(mine[f])) for f in factors):
            off.append(label)
    return off


def merge_results(existing: pd.DataFrame, upload: pd.DataFrame | RunsUpload, *, key: str = "Run",
                  factors: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[Problem]]:
    """Merge uploaded results into the results so far: update runs by id, append new runs.

    Pure: returns a new frame and never changes ``existing``. When any error is
    found the returned frame equals ``existing``.

    Parameters
    ----------
    existing : DataFrame
        The results so far (e.g. :func:`results_template` or an earlier merge).
    upload : DataFrame or RunsUpload
        The new results; a RunsUpload with errors is refused as a whole.
    key : str
        The run-id column present in both tables.
    factors : sequence of str, optional
        Columns holding factor settings, which must agree for the same run id
        (default: the upload's study factors when it is a RunsUpload). Other
        columns are results: uploaded values fill or replace them (a replaced
        value is reported as a warning) and empty uploaded cells erase nothing.
        Without factors every shared column is treated as a setting, so only
        empty cells are filled.

    Returns
    -------
    merged : DataFrame
    problems : list of Problem
    """
    if isinstance(upload, RunsUpload):
        if not upload.ok:
            return existing.copy(), upload.errors
        factors = upload.factors if factors is None else factors
        upload = upload.table
    problems = _key_problems(existing, key, "results so far") + _key_problems(upload, key, "upload")
    if any(p.severity == "error" for p in problems):
        return existing.copy(), problems
    merged, found = _merge(existing, upload, key, None if factors is None else list(factors))
    problems += found
    if any(p.severity == "error" for p in problems):
        return existing.copy(), problems
    return merged, problems


def read_table(data: bytes, name: str) -> pd.DataFrame:
    """The cells of a CSV or XLSX file as a table, read with every upload limit (doe.limits) and
    columns whose filled cells are all numbers become numbers, empty cells NaN. The formula marks of
    our downloads ("'-80C") are left for :func:`canonical_names` and :func:`unmark_levels`, which
    know the names and levels. For reading a run
    sheet as a design (doe.design.read_design). Raises DoeError with the first problem that stops
    the file being read."""
    try:
        if len(data) > MAX_BYTES:
            raise _Fatal(_too_big(name))
        frame, _, _, problems = _load(data, name)
    except _Fatal as exc:
        raise DoeError(str(exc)) from None
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise DoeError(errors[0].message)
    cols = {}
    for j in range(frame.shape[1]):
        values = [np.nan if _empty_cell(v) else v for v in frame.iloc[:, j]]
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        filled = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
        cols[j] = numbers if numbers.notna().sum() == len(filled) else pd.Series(values, dtype=object)
    out = pd.DataFrame(cols)
    out.columns = [str(c) for c in frame.columns]
    return out


def unmark_levels(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the download's formula mark removed from the cells of its categorical factor
    columns ("'-80C" -> the level "-80C"; a cell that is a level as it stands is kept) and of its
    other text columns (numeric factor columns are left to the number checks)."""
    out = frame.copy()
    levels = {f.name: {_norm(v) for v in f.levels} for f in study.factors if f.is_categorical}
    numeric = {f.name for f in study.factors if not f.is_categorical}
    for c in out.columns:
        if c in numeric or out[c].dtype != object:
            continue
        known = levels.get(c)
        out[c] = [v if not isinstance(v, str) or (known is not None and _norm(v) in known)
                  else unquote_formula(v) for v in out[c]]
    return out


# -- reading files --------------------------------------------------------------
def _source_bytes(source: bytes | str | Path, name: str) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) and "\n" in source:  # CSV text rather than a path
        data = source.encode("utf-8")
    else:
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise _Fatal(f"The file '{path}' does not exist.")
        if path.stat().st_size > MAX_BYTES:
            raise _Fatal(_too_big(name))
        data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise _Fatal(_too_big(name))
    return data, name or "upload"


def source_bytes(source: bytes | str | Path, name: str = "") -> tuple[bytes, str]:
    """The bytes of an upload given as bytes, CSV text or a file path, and its name; a DoeError when the file
    does not exist or is over the upload size limit (doe.limits)."""
    try:
        return _source_bytes(source, name)
    except _Fatal as exc:
        raise DoeError(str(exc)) from None


def _too_big(name: str) -> str:
    return (f"The file '{name}' is larger than {MAX_BYTES // 2**20} MB; a results file is "
            f"usually a few kB. Upload the run sheet only (at most {MAX_ROWS:,} runs).")


def _load(data: bytes, name: str) -> tuple[pd.DataFrame, list[int], bool, list[Problem]]:
    """Raw cells (header and rows) as a frame of objects, data-row numbers, decimal-comma flag."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise _Fatal(f"The file '{name}' is empty: it needs a header row and one row per run.")
    if data[:4] == b"\xd0\xcf\x11\xe0":
        raise _Fatal(f"'{name}' is an old Excel 97-2003 (.xls) workbook: save it as .xlsx or CSV.")
    if data[:2] == b"PK" or name.lower().endswith((".xlsx", ".xlsm")):
        header, rows, problems = _read_xlsx(data, name)
        decimal_comma = False
    else:
        text, problems = _decode(data, name)
        delimiter = _sniff(text)
        header, rows = _split_csv(text, delimiter)
        decimal_comma = delimiter != ","
    frame, numbers, more = _frame(header, rows)
    return frame, numbers, decimal_comma, problems + more


def _decode(data: bytes, name: str) -> tuple[str, list[Problem]]:
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in data[:4096]:
        head = data[:4096]
        encoding = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
    else:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
        problems = []
    except UnicodeDecodeError:
        if encoding in ("utf-16-le", "utf-16-be"):  # guessed from NUL bytes: binary, not text
            raise _Fatal(f"'{name}' does not look like a CSV or XLSX file: upload the run sheet as "
                         "CSV or Excel (.xlsx).") from None
        if encoding != "utf-8":
            raise _Fatal(f"'{name}' looks like {encoding.upper()} text but cannot be decoded: "
                         "save it as UTF-8 CSV.") from None
        text = data.decode("cp1252", errors="strict") if _cp1252_ok(data) else data.decode("latin-1")
        problems = [Problem("warning", None, None,
                            f"'{name}' is not UTF-8; it was read as Latin-1 (Windows-1252). Check "
                            "special characters such as 'µ' or '°', or save the file as CSV UTF-8.")]
    if "\x00" in text or sum(not c.isprintable() and c not in "\r\n\t" for c in text[:4096]) > 20:
        raise _Fatal(f"'{name}' does not look like a CSV or XLSX file: upload the run sheet as "
                     "CSV or Excel (.xlsx).")
    return text, problems


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
        return True
    except UnicodeDecodeError:
        return False


def _sniff(text: str) -> str:
    """The delimiter that splits the first lines into the most, equally long, rows."""
    head = text[:65_536]  # the first lines only: splitting a whole 20 MB file would hold millions of lines
    lines = head.splitlines()[:50]
    if len(head) < len(text) and len(lines) > 1:
        lines = lines[:-1]  # the last may be cut short
    lines = [ln for ln in lines if ln.strip()]
    best, score = ",", (0.0, 1)
    for d in _DELIMITERS:
        try:
            counts = [len(r) for r in csv.reader(lines, delimiter=d)]
        except csv.Error:  # e.g. a field over the csv module's limit: _split_csv reports it
            continue
        if not counts or counts[0] < 2:
            continue
        s = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if s > score:
            best, score = d, s
    return best


def _split_csv(text: str, delimiter: str) -> tuple[list[Any], list[list[Any]]]:
    """Header and rows, read row by row and refused as soon as a row, column, cell or cell-length
    limit is passed (doe.limits), before any table is built."""
    rows: list[list[Any]] = []
    n_cells, done = 0, 0  # done: the line the last complete row ended on
    reader = csv.reader(_lines(text), delimiter=delimiter)
    try:
        for row in reader:
            n_cells += len(row)
            if len(row) > limits.MAX_COLUMNS:
                raise _Fatal(_too_wide(len(row), reader.line_num))
            if n_cells > limits.MAX_CELLS:
                total = len(rows) + 1 + sum(1 for _ in reader)  # counted, not kept, for the message
                if total > MAX_ROWS + 1:
                    raise _Fatal(_too_many(total - 1))
                raise _Fatal(f"The file has more than {limits.MAX_CELLS:,} cells; the limit is "
                             f"{limits.MAX_CELLS:,} (e.g. 10,000 runs x 100 columns). Upload the run "
                             "sheet alone.")
            long = next((j for j, v in enumerate(row) if len(v) > limits.MAX_CELL_CHARS), None)
            if long is not None:
                raise _Fatal(_too_long(len(row[long]), done + 1, long))
            rows.append(row)
            done = reader.line_num
            if len(rows) > MAX_ROWS + 1 and any(v.strip() for v in row):
                more = sum(1 for _ in reader)  # counted, not kept, for the message
                raise _Fatal(_too_many(len(rows) - 1 + more))
    except csv.Error as exc:
        if "field limit" in str(exc):
            raise _Fatal(_too_long(None, done + 1, None)) from None
        raise _Fatal(f"The file cannot be read as CSV: {exc}. Check the quotes (\").") from None
    del reader
    while rows and all(_blank(v) for v in rows[0]):
        rows.pop(0)
    if len(rows) > 1 and text.count('"') % 2 and _unclosed_quote(text, delimiter):
        raise _Fatal(f"Row {len(rows) - 1} opens a quote (\") that is never closed, so the rest of the "
                     "file was read into one cell: close the quote or remove it.")
    return (rows[0] if rows else []), rows[1:]


def _too_wide(n: int, line: int | None = None) -> str:
    where = f" (line {line})" if line else ""
    return (f"The file has {n:,} columns{where}; the limit is {limits.MAX_COLUMNS:,}. A run sheet has "
            "a column per factor and CQA: check the delimiter, or remove the extra columns.")


def _too_long(n: int | None, line: int, column: int | None) -> str:
    size = f"{n:,} characters" if n is not None else "more characters than can be read"
    col = f", column {column + 1}," if column is not None else ""
    return (f"A cell in the row on line {line}{col} has {size}; the limit is {limits.MAX_CELL_CHARS:,} per cell. "
            "Shorten the cell, or check for a quote (\") that is never closed.")


def _lines(text: str) -> Any:
    """The lines of ``text`` with their line ends, one at a time, for the csv reader (a StringIO of a
    20 MB file holds 80 MB): split at line feeds (CR LF included), or at carriage returns in a file
    without line feeds."""
    end_char = "\n" if "\n" in text else "\r"
    start, n = 0, len(text)
    while start < n:
        end = text.find(end_char, start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end + 1]
        start = end + 1


def _unclosed_quote(text: str, delimiter: str) -> bool:
    """True when the file ends inside a quoted field (the lenient reader swallows the rest)."""
    try:
        for _ in csv.reader(_lines(text), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _too_many(n: int) -> str:
    return f"The file has {n:,} rows; the limit is {MAX_ROWS:,} runs. Split it into smaller files."


def _read_xlsx(data: bytes, name: str) -> tuple[list[Any], list[list[Any]], list[Problem]]:
    """Header, rows and problems of the first sheet: the zip directory's declared sizes are checked
    first (doe.limits.check_xlsx_archive), then the sheet's XML is streamed once, stopping as soon as
    the rows, columns or cells pass their limits. A zip bomb, or a sheet claiming a million rows or
    columns, is refused without being unpacked or held."""
    try:
        limits.check_xlsx_archive(data, name)
    except DoeError as exc:
        raise _Fatal(str(exc)) from None
    try:
        wb = _open_workbook(data, data_only=True)
        if not wb.worksheets:
            raise _Fatal(f"'{name}' has no worksheet: put the run sheet on the first sheet.")
        cells, merged = _stream_rows(wb, name)
    except _Fatal:
        raise
    except Exception as exc:  # openpyxl and zipfile raise many types for broken workbooks
        raise _Fatal(f"'{name}' cannot be read as an Excel workbook ({exc}); save it again as "
                     ".xlsx or CSV.") from None
    top = next((i for i, r in enumerate(cells) if not all(_blank(v) for v in r)), None)
    if top is None:
        raise _Fatal(f"The first sheet of '{name}' is empty: it needs a header row and one row per run.")
    header, rows = cells[top], cells[top + 1:]
    problems = _merged_problems(merged, cells, header, top) + _formula_problems(data, cells, header, top)
    return header, rows, problems


def _open_workbook(data: bytes, data_only: bool) -> Any:
    """A read-only workbook whose sheets are opened without openpyxl's search for the stored
    dimension (which parses a whole sheet when the dimension is missing, and pads every row to
    whatever width it claims): rows are then read as stored, by :func:`_sheet_rows`."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    class Sheet(ReadOnlyWorksheet):  # type: ignore[misc]  # openpyxl has no type information
        def _get_size(self) -> None:
            return None

    class Reader(ExcelReader):  # type: ignore[misc]  # openpyxl has no type information
        def read_worksheets(self) -> None:
            for sheet, rel in self.parser.find_sheets():
                if rel.target in self.valid_files and "chartsheet" not in rel.Type:
                    self.wb._sheets.append(Sheet(self.wb, sheet.name, rel.target, self.shared_strings))

    reader = Reader(io.BytesIO(data), read_only=True, data_only=data_only)
    reader.read()
    return reader.wb


def _sheet_rows(wb: Any, data_only: bool) -> Any:
    """(row number, values up to the last filled cell, cells stored) of the first sheet, streamed;
    then, after the last row, (None, merged cell ranges, 0)."""
    from openpyxl.worksheet._reader import WorkSheetParser
    from openpyxl.worksheet.cell_range import CellRange

    ws = wb.worksheets[0]
    with ws._get_source() as src:
        parser = WorkSheetParser(src, ws._shared_strings, data_only=data_only, epoch=wb.epoch,
                                 date_formats=wb._date_formats, timedelta_formats=wb._timedelta_formats)
        for idx, stored in parser.parse():
            last = max((c["column"] for c in stored if not _empty_cell(c["value"])), default=0)
            values: list[Any] = [None] * min(last, limits.MAX_COLUMNS + 1)
            for c in stored:
                if c["column"] <= len(values):
                    values[c["column"] - 1] = c["value"]
            yield idx, values, max(last, len(stored))
        ranges = parser.merged_cells.mergeCell if parser.merged_cells is not None else []
        yield None, [CellRange(r.ref) for r in ranges[:limits.MAX_CELLS]], 0


def _stream_rows(wb: Any, name: str) -> tuple[list[list[Any]], list[Any]]:
    """The rows of the first sheet up to the last non-blank one (blank rows at the end, e.g.
    formatting, do not count as runs) and its merged ranges; refused once past the row, column,
    cell or cell-length limit."""
    out: list[list[Any]] = []
    n_cells, merged = 0, []
    for idx, values, stored in _sheet_rows(wb, data_only=True):
        if idx is None:
            merged = values
            break
        n_cells += stored
        if n_cells > limits.MAX_XLSX_CELLS:
            raise _Fatal(f"The first sheet of '{name}' has more than {limits.MAX_XLSX_CELLS:,} cells; the "
                         f"limit for an Excel file is {limits.MAX_XLSX_CELLS:,} (e.g. 10,000 runs x 25 "
                         "columns). Upload the run sheet alone, or save it as CSV.")
        if len(values) > limits.MAX_COLUMNS:
            raise _Fatal(_too_wide(stored))
        if not any(not _empty_cell(v) for v in values):
            continue
        if idx - 1 > limits.MAX_ROWS + 1:  # also a row stored far down (the rows between read as blank)
            raise _Fatal(f"The first sheet of '{name}' has more than {MAX_ROWS:,} rows; the limit is "
                         f"{MAX_ROWS:,} runs. Split it into smaller files.")
        long = next((j for j, v in enumerate(values) if isinstance(v, str) and len(v) > limits.MAX_CELL_CHARS),
                    None)
        if long is not None:
            raise _Fatal(_too_long(len(values[long]), idx, long).replace("the row on line", "row", 1))
        out.extend([] for _ in range(idx - 1 - len(out)))
        out.append(values)
    width = max((len(r) for r in out), default=0)
    return [r + [None] * (width - len(r)) for r in out], merged


def _empty_cell(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _merged_problems(merged: list[Any], cells: list[list[Any]], header: list[Any], top: int) -> list[Problem]:
    out = []
    for rng in sorted(merged, key=lambda r: (r.min_row, r.min_col)):
        col = _header_text(header, rng.min_col - 1)
        row_cells = cells[rng.min_row - 1] if rng.min_row - 1 < len(cells) else []
        first = row_cells[rng.min_col - 1] if rng.min_col - 1 < len(row_cells) else None
        if rng.min_row - 1 <= top:
            out.append(Problem("warning", None, col,
                               f"Header cells {rng.coord} are merged: unmerge them and give each "
                               "column its own name."))
            continue
        row = rng.min_row - 1 - top
        out.append(Problem("warning", row, col,
                           f"Row {row}, column '{col}': cells {rng.coord} are merged, so only the "
                           f"first holds the value ({first!r}). Unmerge them and enter the value "
                           "in each row."))
        for below in range(row + 1, min(row + rng.max_row - rng.min_row + 1, len(cells) - top)):
            out.append(Problem("error", below, col,
                               f"Row {below}, column '{col}': the cell is hidden under the merged "
                               f"cells {rng.coord}, so it reads as empty. Unmerge them and enter the "
                               "value in each row."))
    return out


def _formula_problems(data: bytes, cells: list[list[Any]], header: list[Any], top: int) -> list[Problem]:
    """Formulas whose result was never saved (e.g. files written by scripts) read as empty."""
    if not any(v is None for r in cells[top + 1:] for v in r):
        return []
    out = []
    for idx, values, _ in _sheet_rows(_open_workbook(data, data_only=False), data_only=False):
        i = (idx or 0) - 1
        if idx is None or i >= len(cells):
            break
        for j, v in enumerate(values[:len(cells[i])]):
            if i > top and isinstance(v, str) and v.startswith("=") and cells[i][j] is None:
                col = _header_text(header, j)
                out.append(Problem("error", i - top, col,
                                   f"Row {i - top}, column '{col}': the cell holds the formula "
                                   f"'{v}' but no saved result. Open and save the file in Excel, "
                                   "or type the value."))
    return out


def _one_unsplit_cell(row: list[Any]) -> bool:
    """A row read into its first cell that holds delimiters (e.g. ',' rows under a ';' header)."""
    filled = [v for v in row if not _blank(v)]
    return (len(filled) == 1 and bool(row) and filled[0] is row[0] and isinstance(row[0], str)
            and any(len(row[0].split(d)) >= 3 for d in _DELIMITERS))


def _header_text(header: list[Any], j: int) -> str:
    v = header[j] if j < len(header) else None
    return f"Column {j + 1}" if _blank(v) else str(v).strip()


def _frame(header: list[Any], rows: list[list[Any]]) -> tuple[pd.DataFrame, list[int], list[Problem]]:
    """Cells -> DataFrame of objects; unnamed columns, long rows and trailing blank rows handled."""
    problems: list[Problem] = []
    width = len(header)
    for i, r in enumerate(rows, start=1):
        if any(not _blank(v) for v in r[width:]):
            problems.append(Problem("error", i, None,
                                    f"Row {i} has {len(r)} values but the header has {width} "
                                    "columns: check the delimiter and the quotes."))
        elif width > 2 and _one_unsplit_cell(r):
            problems.append(Problem("error", i, None,
                                    f"Row {i} was read as one value but the header has {width} "
                                    "columns: the rows use another delimiter than the header. "
                                    "Save the file again with one delimiter."))
    keep = []
    for j, h in enumerate(header):
        if not _blank(h):
            keep.append(j)
        elif any(j < len(r) and not _blank(r[j]) for r in rows):
            problems.append(Problem("warning", None, f"Column {j + 1}",
                                    f"Column {j + 1} has values but no header; it is kept as "
                                    f"'Column {j + 1}'. Give it a name, or delete it."))
            keep.append(j)
    data = [[r[j] if j < len(r) else None for j in keep] for r in rows]
    while data and all(_blank(v) for v in data[-1]):
        data.pop()
    names = pd.Index([_header_text(header, j) for j in keep], dtype=object)
    return pd.DataFrame(data, columns=names, dtype=object), list(range(1, len(data) + 1)), problems


# -- checking a table -----------------------------------------------------------
def _check(study: Study, frame: pd.DataFrame, *, decimal_comma: bool,
           rows: list[int] | None) -> tuple[pd.DataFrame, list[Problem]]:
    """Tidy table and problems for a raw (file) or typed (editor) frame."""
    if frame.shape[1] == 0:
        return _empty_table(study), [Problem("error", None, None, "The file is empty: it needs a "
                                             "header row naming the factors and CQAs, and one row per run.")]
    frame = frame.copy()
    frame.columns = [str(c).replace("\u00a0", " ").strip() for c in frame.columns]
    rows = list(range(1, len(frame) + 1)) if rows is None else list(rows)
    frame.index = rows
    delimiter = _delimiter_problem(study, frame)
    if delimiter:
        return _empty_table(study), [delimiter]
    long = [c for c in frame.columns if len(c) > limits.MAX_HEADER_CHARS]
    if long:
        return _empty_table(study), [Problem("error", None, None, (
            f"The column header '{_short(long[0])}' has {len(long[0]):,} characters; the limit is "
            f"{limits.MAX_HEADER_CHARS}. Shorten the header."))]
    problems = _duplicate_columns(frame)
    frame = frame.loc[:, ~pd.Index([c.lower() for c in frame.columns]).duplicated()]
    frame = frame.rename(columns=canonical_names(study, frame.columns))
    problems += _column_problems(study, list(frame.columns))
    frame, blank = _drop_blank_rows(frame)
    problems += blank
    if frame.empty:
        problems.append(Problem("error", None, None, "The file has a header row but no runs: add "
                                "one row per run below the header."))
        return _empty_table(study), problems
    if len(frame) > MAX_ROWS:
        return _empty_table(study), problems + [Problem("error", None, None, _too_many(len(frame)))]
    table, found = _tidy(study, frame, decimal_comma)
    return table, problems + found + _plot_problems(study, table)


def random_columns(study: Study) -> list[str]:
    """Run-sheet columns whose levels are random draws: ``Whole plot``, ``Subplot`` (written by split-plot
    designs) and the study's ``random_effects`` (e.g. Donor, hPL lot)."""
    return [WHOLE_PLOT, SUBPLOT, *study.random_effects]


def _plot_problems(study: Study, table: pd.DataFrame) -> list[Problem]:
    """Warnings about the random-effect columns: a listed one missing, blank cells where results are,
    and hard-to-change factors that change inside a whole plot."""
    out = []
    measured = (table[study.response_names].notna().any(axis=1) if study.response_names and
                set(study.response_names) <= set(table.columns) else pd.Series(True, index=table.index))
    for name in study.random_effects:
        if name not in table:
            out.append(Problem("warning", None, name, (
                f"No column for random effect '{name}': add it (which {name.lower()} each run used), or the "
                f"analysis cannot separate {name.lower()}-to-{name.lower()} variation from the residual.")))
    for name in random_columns(study):
        if name not in table:
            continue
        flags = measured.to_numpy(dtype=bool)
        blank = [k + 1 for k, v in enumerate(table[name].tolist()) if _blank(v) and flags[k]]
        if blank:
            out.append(Problem("warning", None, name, (
                f"{_count(len(blank), 'run')} with results {'has' if len(blank) == 1 else 'have'} no "
                f"'{name}' (row{'s' if len(blank) > 1 else ''} {', '.join(map(str, blank[:10]))}"
                f"{', ...' if len(blank) > 10 else ''}): fill it in; the mixed-model analysis leaves such runs "
                "out and says so.")))
    very = set(study.very_hard_to_change_factors)
    for f in [f for f in study.hard_to_change_factors if f in table]:
        # split-split-plot: the 'true' tier is held within subplots, the 'very' tier within whole plots
        unit = SUBPLOT if very and f not in very and SUBPLOT in table else WHOLE_PLOT
        if unit not in table:
            continue
        keys = [WHOLE_PLOT, SUBPLOT] if unit == SUBPLOT and WHOLE_PLOT in table else [unit]
        counts = table.dropna(subset=keys).groupby(keys)[f].nunique(dropna=True)
        bad = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k, v in counts.items() if v > 1]
        if bad:
            what = "whole plot" if unit == WHOLE_PLOT else "subplot (whole plot / subplot)"
            out.append(Problem("warning", None, f, (
                f"Hard-to-change factor '{f}' changes inside {what}{'s' if len(bad) > 1 else ''} "
                f"{', '.join(bad[:10])}: a {unit.lower()} keeps one setting of it. Check the run sheet; the "
                "analysis uses the settings as entered.")))
    return out


def _empty_table(study: Study) -> pd.DataFrame:
    cols = ["Run", *study.factor_names, *study.response_names, "Notes"]
    return pd.DataFrame({c: pd.Series(dtype=float if c in study.response_names else object) for c in cols})


def _delimiter_problem(study: Study, frame: pd.DataFrame) -> Problem | None:
    if frame.shape[1] != 1 or len(study.factors) + len(study.responses) < 2:
        return None
    header = str(frame.columns[0])
    for d in (";", "\t", "|", ","):
        if d in header and len(header.split(d)) > 1:
            return Problem("error", None, header,
                           f"The file was read as one column named '{_short(header)}', which "
                           f"contains {_DELIMITER_NAMES[d]}: the delimiter looks like "
                           f"{_DELIMITER_NAMES[d]}. Check that every row has the same number of "
                           f"{_DELIMITER_NAMES[d]}-separated values, or save the file as CSV "
                           "with ',' as the delimiter.")
    return None


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _duplicate_columns(frame: pd.DataFrame) -> list[Problem]:
    seen: dict[str, int] = {}
    out = []
    for j, c in enumerate(frame.columns):
        if c.lower() in seen:
            out.append(Problem("error", None, c, f"Column '{c}' appears twice (columns "
                                                 f"{seen[c.lower()] + 1} and {j + 1}): keep one."))
        else:
            seen[c.lower()] = j
    return out


def canonical_names(study: Study, columns: Iterable[str]) -> dict[str, str]:
    """File header -> study name, ignoring case and spacing and a '(units)' suffix.

    The one header matcher for run sheets: results uploads here and design imports
    (:func:`doe.design.read_design`). A header two columns both match is left as it is.
    """
    known: dict[str, tuple[str, str]] = {_norm(n): (n, "") for n in ("Run", "StdOrder", "PointType", "Notes")}
    known[_norm(_block(study))] = (_block(study), "")
    for name in random_columns(study):
        known[_norm(name)] = (name, "")
    items: list[Factor | Response] = [*study.factors, *study.responses]
    for item in items:
        known[_norm(item.name)] = (item.name, item.units)
    out = {}
    for c in columns:
        if _norm(c) in known:
            out[c] = known[_norm(c)][0]
            continue
        if _norm(unquote_formula(c)) in known:  # a header our download marked: "'=Temp"
            out[c] = known[_norm(unquote_formula(c))][0]
            continue
        m = re.fullmatch(r"(.+?)\s*[(\[](.*)[)\]]", unquote_formula(c))
        if m and _norm(m.group(1)) in known and _norm(m.group(2)) == _norm(known[_norm(m.group(1))][1]):
            out[c] = known[_norm(m.group(1))][0]
    targets = list(out.values())
    return {c: n for c, n in out.items() if targets.count(n) == 1 or c == n}


def _column_problems(study: Study, columns: list[str]) -> list[Problem]:
    reserved = {"Run", "StdOrder", "PointType", "Notes", _block(study), *random_columns(study)}
    names = study.factor_names + study.response_names
    unknown = [c for c in columns if c not in names and c not in reserved]
    out = []
    for f in study.factor_names:
        if f not in columns:
            close = difflib.get_close_matches(f.lower(), [c.lower() for c in unknown], n=1, cutoff=0.6)
            hint = next((f" Column '{c}' may be it: rename it to '{f}'." for c in unknown
                         if close and c.lower() == close[0]), "")
            out.append(Problem("error", None, f, f"No column for factor '{f}': factor columns are "
                                                 f"required, named as in the study.{hint}"))
    missing = [r for r in study.response_names if r not in columns]
    if missing and len(missing) == len(study.response_names):
        out.append(Problem("warning", None, None, "The file has no CQA columns "
                                                  f"({quoted_list(missing)}): no results were read."))
    else:
        out += [Problem("warning", None, r, f"No column for CQA '{r}': its results are left empty.")
                for r in missing]
    for c in unknown:
        if c.startswith("Column ") and c[7:].isdigit():
            continue  # already reported as a column without a header
        out.append(Problem("warning", None, c, f"Column '{c}' is not a factor or CQA of the study; it "
                                               f"is kept as an extra column.{did_you_mean(c, names)}"))
    return out


def _drop_blank_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    blank = frame.apply(lambda r: all(_blank(v) for v in r), axis=1) if len(frame) else pd.Series([], dtype=bool)
    out = []
    mask = blank.to_numpy(dtype=bool)
    last = frame.index[~mask].max() if (~blank).any() else None
    for r in frame.index[mask]:
        if last is not None and r < last:
            out.append(Problem("warning", int(r), None, f"Row {r} is empty; it was skipped."))
    return frame.loc[~mask], out


def _tidy(study: Study, frame: pd.DataFrame, decimal_comma: bool) -> tuple[pd.DataFrame, list[Problem]]:
    problems: list[Problem] = []
    cols: dict[str, Any] = {}  # built first, made a table once: adding columns one by one is quadratic
    cols["Run"], found = _run_ids(frame)
    problems += found
    for c in ("StdOrder", _block(study), *random_columns(study), "PointType"):
        if c in frame:
            cols[c] = [_cell_value(v) for v in frame[c]]
    for f in study.factors:
        if f.name in frame:
            cols[f.name], found = _factor_column(f, frame[f.name], decimal_comma)
            problems += found
    for r in study.responses:
        cols[r.name], found = (_response_column(r, frame[r.name], decimal_comma) if r.name in frame
                               else (np.full(len(frame), np.nan), []))
        problems += found
    cols["Notes"] = ([("" if _blank(v) else str(unquote_formula(v))) for v in frame["Notes"]]
                     if "Notes" in frame else [""] * len(frame))
    for c in frame.columns:
        if c not in cols:
            cols[c] = [_cell_value(unquote_formula(v)) for v in frame[c]]
    out = pd.DataFrame(cols, index=frame.index)
    order: dict[Any, int] = {c: i for i, c in enumerate(frame.columns)}
    problems.sort(key=lambda p: (p.row or 0, order.get(p.column, -1)))
    return out.reset_index(drop=True), problems


def _run_ids(frame: pd.DataFrame) -> tuple[list[Any], list[Problem]]:
    if "Run" not in frame:
        return list(range(1, len(frame) + 1)), []
    ids: list[Any] = []
    problems: list[Problem] = []
    first: dict[Any, int] = {}
    for r, v in zip(frame.index, frame["Run"], strict=True):  # r: the 1-based data row
        key = _run_key(v)
        ids.append(key)
        if key is None:
            problems.append(Problem("error", r, "Run", f"Row {r}, column 'Run': the run id is empty; "
                                                       "give every run an id (e.g. 1, 2, 3)."))
        elif len(str(key)) > limits.MAX_RUN_ID_CHARS:
            problems.append(Problem("error", r, "Run", f"Row {r}, column 'Run': the run id has "
                                                       f"{len(str(key)):,} characters; the limit is "
                                                       f"{limits.MAX_RUN_ID_CHARS}. Use a short id."))
        elif key in first:
            problems.append(Problem("error", r, "Run", f"Row {r}, column 'Run': run {key} is used "
                                                       f"again (first in row {first[key]}); each run "
                                                       "needs its own id."))
        else:
            first[key] = r
    return ids, problems


def _run_key(value: Any) -> Any:
    """Run ids as int when whole numbers ('3', 3.0 -> 3), otherwise stripped text; None if empty."""
    if _blank(value):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else text


def _factor_column(f: Factor, col: pd.Series, decimal_comma: bool) -> tuple[list[Any], list[Problem]]:
    values, problems = [], []
    for r, v in zip(col.index, col, strict=True):  # r: the 1-based data row
        value, severity, message = _factor_cell(f, v, decimal_comma)
        values.append(value)
        if message:
            problems.append(Problem(severity, r, f.name, f"Row {r}, column '{f.name}': {message}"))
    return values, problems


def _factor_cell(f: Factor, v: Any, decimal_comma: bool) -> tuple[Any, str, str]:
    """(value, severity, message) of one factor setting; the message is '' when it is fine."""
    if f.is_categorical and not _empty(v):
        level, message = _level(f, v)
        if level is not None or not _blank(v):  # a level may be called 'None' or 'NA'
            return level, "error", message
    if _blank(v):
        return (None if f.is_categorical else np.nan), "error", (
            f"the setting is empty; every run needs a value for {f.name}.")
    x, message = _number(v, decimal_comma)
    if message:
        return x, "error", f"{message} Enter {f.name} in {f.units or 'its units'} as a plain number."
    return x, "warning", _range_warning(f, x)


def _response_column(r: Response, col: pd.Series, decimal_comma: bool) -> tuple[np.ndarray, list[Problem]]:
    values, problems = [], []
    percent = r.units.strip().startswith("%")
    for i, v in zip(col.index, col, strict=True):  # i: the 1-based data row
        where = f"Row {i}, column '{r.name}'"
        x, message = _number(v, decimal_comma)
        values.append(x)
        if message:
            problems.append(Problem("error", i, r.name, f"{where}: {message}"))
        elif percent and (x < 0 or x > 100):
            problems.append(Problem("warning", i, r.name, f"{where}: {_fmt(x)} {r.units} is outside "
                                                          "0-100 %, which a percentage cannot be; "
                                                          "check the entry (kept)."))
    return np.asarray(values, dtype=float), problems


def _level(f: Factor, value: Any) -> tuple[str | None, str]:
    """The study's level for a cell, ignoring case and spacing; or an error message.

    A leading apostrophe before = + - @ is the mark our downloads put on text that a
    spreadsheet would run as a formula: it is dropped, so a downloaded sheet reads back.
    """
    text = _text(value)
    if not any(_norm(lv) == _norm(text) for lv in f.levels):  # a level as it stands wins
        text = unquote_formula(text)
    for norm in (_norm, lambda s: re.sub(r"\s+", "", str(s)).lower()):
        match = [lv for lv in f.levels if norm(lv) == norm(text)]
        if len(match) == 1:
            return match[0], ""
    return None, (f"'{text}' is not a level of {f.name}.{did_you_mean(text, f.levels)} "
                  f"Levels are {quoted_list(f.levels)}.")


def _range_warning(f: Factor, x: float) -> str:
    u = f" {f.units}" if f.units else ""
    low, high = cast(float, f.low), cast(float, f.high)  # a numeric factor: both bounds are set
    if x < low - 1e-9 * max(1, abs(low)) or x > high + 1e-9 * max(1, abs(high)):
        coded = (x - f.center) / f.half_range
        return (f"{_fmt(x)}{u} is outside the study range {_fmt(low)} to {_fmt(high)}{u} "
                f"(coded {coded:+.2f}); kept, but models extrapolate there.")
    if f.kind == "discrete" and not any(math.isclose(x, float(lv), rel_tol=1e-9, abs_tol=1e-12)
                                        for lv in f.levels):
        return (f"{_fmt(x)}{u} is not one of the levels {', '.join(_fmt(float(lv)) for lv in f.levels)}"
                f"{u}; kept.")
    return ""


def read_number(value: Any, decimal_comma: bool = False) -> tuple[float, str]:
    """A sheet cell as a number: (value, '') for a number or an empty cell (NaN); (NaN, what is wrong and the
    fix) otherwise - the results upload's reading, also used for lots (doe.lots.read_lots)."""
    return _number(value, decimal_comma)


def _number(value: Any, decimal_comma: bool) -> tuple[float, str]:
    """(value, '') for a number or an empty cell (NaN); (NaN, message) otherwise."""
    if _blank(value):
        return np.nan, ""
    if isinstance(value, (bool, np.bool_)):
        return np.nan, f"'{value}' is TRUE/FALSE, not a number."
    if isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
        return (x, "") if math.isfinite(x) else (np.nan, f"'{value}' is not a finite number.")
    if isinstance(value, (dt.date, dt.time, pd.Timestamp)):
        return np.nan, f"'{value}' is a date or time, not a number: format the cell as a number."
    text = str(value).replace("\u00a0", " ").strip()
    if text.startswith("#"):
        return np.nan, f"'{text}' is a spreadsheet error: fix the formula or type the value."
    plain = text.replace(".", "").replace(",", ".") if decimal_comma and "," in text else text
    if re.fullmatch(_FLOAT, plain):
        return float(plain), ""
    if re.fullmatch(r"[-+]?(inf|infinity)", text.lower()):
        return np.nan, f"'{text}' is not a finite number."
    return np.nan, _not_a_number(text, decimal_comma)


def _not_a_number(text: str, decimal_comma: bool) -> str:
    if not decimal_comma and re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+", text):
        return f"'{text}' is not a number: write it without thousands separators ({text.replace(',', '')})."
    if not decimal_comma and re.fullmatch(r"[-+]?\d*,\d+", text):
        return f"'{text}' is not a number: use a point as the decimal separator ({text.replace(',', '.')})."
    if text.startswith(_QUALIFIERS):
        return (f"'{text}' is not a number: enter the number alone (e.g. the detection limit) and "
                "put the qualifier in Notes.")
    m = re.fullmatch(rf"({_NUMBER})\s*(\D.*)", text)
    if m:
        number = m.group(1).replace(",", ".") if decimal_comma or "." not in m.group(1) else m.group(1)
        return f"'{text}' is not a number: remove the unit ('{m.group(2).strip()}') and enter {number}."
    return f"'{text}' is text, not a number."


# -- merging --------------------------------------------------------------------
def _key_problems(frame: pd.DataFrame, key: str, what: str) -> list[Problem]:
    if key not in frame.columns:
        return [Problem("error", None, key, f"The {what} has no '{key}' column: runs are matched by it.")]
    out: list[Problem] = []
    first: dict[Any, int] = {}
    for i, v in enumerate(frame[key], start=1):
        k = _run_key(v)
        if k is None:
            out.append(Problem("error", i, key, f"Row {i} of the {what}, column '{key}': the run id is empty."))
        elif k in first:
            out.append(Problem("error", i, key, f"Row {i} of the {what}, column '{key}': run {k} is used "
                                                f"again (first in row {first[k]}); each run needs its own id."))
        else:
            first[k] = i
    return out


def _merge(existing: pd.DataFrame, upload: pd.DataFrame, key: str,
           factors: list[str] | None) -> tuple[pd.DataFrame, list[Problem]]:
    merged = existing.copy().astype(object)
    index = {_run_key(v): i for i, v in zip(merged.index, merged[key])}
    shared = [c for c in upload.columns if c in merged.columns and c != key]
    problems: list[Problem] = []
    new_rows = []
    for n, (_, row) in enumerate(upload.iterrows(), start=1):
        k = _run_key(row[key])
        if k not in index:
            new_rows.append(row)
            continue
        for c in shared:
            problems += _merge_cell(merged, index[k], (n, k), c, row[c], factors)
    added = [c for c in upload.columns if c not in merged.columns]
    for c in added:
        merged[c] = None
    if new_rows:
        extra = pd.DataFrame(new_rows).reindex(columns=merged.columns).astype(object)
        merged = pd.concat([merged, extra], ignore_index=True)
    return _restore_types(merged, existing), problems


def _merge_cell(merged: pd.DataFrame, i: Any, where: tuple[int, Any], col: str, new: Any,
                factors: list[str] | None) -> list[Problem]:
    """Fill or replace one cell of run ``where = (upload row, run id)``; settings must agree."""
    (row, run), old = where, merged.at[i, col]
    if _blank(new) or _same(old, new):
        return []
    if _blank(old):
        merged.at[i, col] = new
        return []
    if factors is None or col in factors:
        return [Problem("error", row, col, f"Run {run}, column '{col}': the upload has {_show(new)} "
                                            f"but the results so far have {_show(old)}. A run's settings "
                                            "cannot change: correct the upload or give the run a new id.")]
    merged.at[i, col] = new
    return [Problem("warning", row, col, f"Run {run}, column '{col}': {_show(old)} replaced by "
                                          f"{_show(new)}.")]


def _restore_types(merged: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    out = merged.infer_objects()
    for c in existing.columns:
        if pd.api.types.is_float_dtype(existing[c]):
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    if "Notes" in out:
        out["Notes"] = out["Notes"].map(lambda v: "" if _blank(v) else str(v))
    return out


def _same(a: Any, b: Any) -> bool:
    if _blank(a) and _blank(b):
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return _norm(a) == _norm(b)


# -- small helpers ----------------------------------------------------------------
def _empty(value: Any) -> bool:
    """Truly empty (None, NaN, blank text); unlike _blank, 'NA' or 'None' may be a level name."""
    return _blank(value) and not (isinstance(value, str) and value.strip())


def _norm(value: Any) -> str:
    return " ".join(_text(value).split()).lower()


def _text(value: Any) -> str:
    """Cell text; whole floats without '.0' so a level '1' matches the number 1."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).replace("\u00a0", " ").strip()


def _cell_value(value: Any) -> Any:
    """None for a blank cell (:func:`_blank`), else the cell as :func:`doe._format.plain_whole` gives it."""
    return None if _blank(value) else plain_whole(value)


def _show(value: Any) -> str:
    return _fmt(float(value)) if isinstance(value, (int, float, np.number)) else f"'{value}'"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _block(study: Study) -> str:
    return study.blocks or "Block"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def changed_runs(before: pd.DataFrame | None, after: pd.DataFrame, key: str = "Run") -> pd.DataFrame:
    """The rows of ``after`` that are new or differ from ``before``, matched by ``key``.

    Each changed row keeps every column of ``after`` and carries the
    ``row_version`` it had in ``before`` (blank for a new run), so a store can
    refuse it if somebody else changed the run meanwhile. Equal numbers
    (60 and 60.0) and two blanks count as unchanged.

    >>> old = pd.DataFrame({"Run": [1, 2], "Y": [1.0, None], "row_version": [1, 3]})
    >>> changed_runs(old, pd.DataFrame({"Run": [1, 2, 3], "Y": [1, 2.5, 4.0]}))
       Run    Y  row_version
    1    2  2.5          3.0
    2    3  4.0          NaN
    """

    versions: dict[str, Any] = {}
    old_rows: dict[str, dict[Any, Any]] = {}
    if before is not None and len(before):
        for rec in before.to_dict("records"):
            label = _label(rec[key])
            old_rows[label] = rec
            versions[label] = rec.get("row_version")
    keep, row_versions = [], []
    for i, rec in enumerate(after.to_dict("records")):
        label = _label(rec[key])
        old = old_rows.get(label)
        if old is None or any(not same_value(stored_cell(v), stored_cell(old.get(c))) for c, v in rec.items()
                              if c not in (key, "row_version", "run_id")):
            keep.append(i)
            row_versions.append(versions.get(label))
    out = after.iloc[keep].drop(columns=[c for c in ("row_version", "run_id") if c in after.columns])
    out["row_version"] = pd.to_numeric(pd.Series(row_versions, index=out.index, dtype=object), errors="coerce")
    return out


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
