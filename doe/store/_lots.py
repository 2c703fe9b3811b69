"""Manufacturing lot sheets as versioned, audited data (one row per lot, keyed by ``Lot``).

A study's lot sheet has the columns ``Lot`` (the row key, unique), ``Date`` (ISO date or blank),
``Donor`` (or blank), then whatever else the study records: its factor and CQA columns, an optional
``Subgroup`` and ``Notes``. The columns are not fixed, so every row is stored as JSON (column ->
value) and every *lot data version* keeps its column order and its order of lots. :func:`save_sheet`
compares a sheet with the one saved last and writes a new version with one audit record per created
lot, per changed value and per removed lot, as :mod:`doe.store._passages` does for passage sheets
(it shares that module's JSON rules).

Values follow the store's cell rules (:func:`doe.cells.stored_cell`): numbers as JSON numbers
(Python's shortest round-trip repr, so floats come back equal), blanks and NaN as null, text as text.

>>> cols, rows = sheet_rows(pd.DataFrame({"Lot": ["L01", "L02"], "Date": ["2026-11-02", None],
...                                       "Donor": ["D1", ""], "Viability (%)": [94.5, float("nan")]}))
>>> cols
['Lot', 'Date', 'Donor', 'Viability (%)']
>>> rows[1]
('L02', {'Lot': 'L02', 'Date': None, 'Donor': None, 'Viability (%)': None})
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from doe.cells import blank_cell, same_value, stored_cell
from doe.errors import DoeError, quoted_list
from doe.store._audit import AuditWriter
from doe.store._integrity import canonical
from doe.store._models import LotRevisionRow, LotRow, LotVersionRow
from doe.store._passages import apply_rows, check_reason, dumps

#: The columns every lot sheet starts with, in this order (the study's own columns follow).
LOT_COLUMNS: tuple[str, ...] = ("Lot", "Date", "Donor")
#: Columns of :func:`versions_frame`.
VERSION_COLUMNS = ["version", "content_hash", "n_lots", "reason", "created_at", "created_by"]
_MAX_KEY_CHARS = 200
_TEXT = ("Lot", "Date", "Donor")


def lot_label(lot: str) -> str:
    """A lot named for a person: 'Lot L01'."""
    return f"Lot {lot}"


# -- reading a sheet -----------------------------------------------------------------------------
def sheet_rows(table: pd.DataFrame) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """The sheet's columns (in the table's order) and its rows as (lot, values), checked and normalised.

    Lot, Date and Donor are stored as text (blank Date/Donor: None); other cells as JSON values (numbers,
    text, None for blanks and NaN). Raises DoeError naming the row and column of anything that cannot
    be stored, a missing or repeated lot, or a column given twice.
    """
    if not isinstance(table, pd.DataFrame):
        raise DoeError("A lot sheet must be a table (a pandas DataFrame) whose first columns are "
                       f"{quoted_list(list(LOT_COLUMNS))}.")
    columns = [str(c).strip() for c in table.columns]
    if len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        raise DoeError(f"The lot sheet has the column {quoted_list(twice)} more than once: give each column once.")
    if "Lot" not in columns:
        raise DoeError("The lot sheet has no 'Lot' column: every row needs its lot number (e.g. L01).")
    order = columns  # kept as given, so the sheet read back has the same columns in the same order
    frame = table.set_axis(columns, axis=1)
    seen: dict[str, int] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    for n, record in enumerate(frame.to_dict("records"), 1):
        values = {c: _value(c, record.get(c), n) for c in order}
        lot = str(values["Lot"])
        if lot in seen:
            raise DoeError(f"Rows {seen[lot]} and {n} of the lot sheet are both lot '{lot}': give every lot "
                           "its own number.")
        seen[lot] = n
        out.append((lot, values))
    return order, out


def _value(column: str, raw: Any, n: int) -> Any:
    """One cell of row ``n`` as stored (see :func:`sheet_rows`)."""
    if blank_cell(raw):
        if column == "Lot":
            raise DoeError(f"Row {n} of the lot sheet has no Lot: every row needs its lot number (e.g. L01).")
        return None
    try:
        value = stored_cell(raw)
    except DoeError as e:
        raise DoeError(f"Row {n} of the lot sheet, column '{column}': {e}") from None
    if column in _TEXT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        if len(text) > _MAX_KEY_CHARS:
            raise DoeError(f"Row {n} of the lot sheet: the {column} has {len(text)} characters, more than "
                           f"{_MAX_KEY_CHARS}: shorten it.")
        return text or None
    return value


def content_hash(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical JSON (keys sorted, no spaces, UTF-8) of ``{"columns": the column names in
    order, "lots": the rows' values in sheet order}``, each row's values keyed by exactly those columns
    (blanks null), so the same sheet with its columns in another order has another hash."""
    return hashlib.sha256(canonical({"columns": list(columns),
                                     "lots": [{c: r.get(c) for c in columns} for r in rows]})).hexdigest()


def frame(columns: list[str], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A sheet as a DataFrame: all-number columns as float64 (blanks NaN), others as text (blanks '')."""
    data: dict[str, Any] = {}
    for c in columns:
        cells = [r.get(c) for r in rows]
        numbers = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in cells)
        if c not in _TEXT and numbers and any(v is not None for v in cells):
            data[c] = pd.Series([np.nan if v is None else float(v) for v in cells], dtype="float64")
        else:
            data[c] = pd.Series(["" if v is None else v for v in cells], dtype=object)
    return pd.DataFrame(data, columns=columns)


# -- the store's side ----------------------------------------------------------------------------
def last_version(s: Session, sid: int) -> LotVersionRow | None:
    """The study's newest lot data version, or None."""
    return s.execute(select(LotVersionRow).where(LotVersionRow.study_id == sid)
                     .order_by(LotVersionRow.version.desc()).limit(1)).scalar_one_or_none()


def save_sheet(s: Session, audit: AuditWriter, sid: int, study: str, columns: list[str],
               rows: list[tuple[str, dict[str, Any]]], reason: str | None) -> int:
    """Replace the study's lot sheet with ``rows`` (see ``Store.save_lots``); the version number."""
    last = last_version(s, sid)
    existing = {r.lot: r for r in s.execute(select(LotRow).where(LotRow.study_id == sid)).scalars()}
    old_order: list[str] = [] if last is None else json.loads(last.order_json)
    old_columns: list[str] = [] if last is None else json.loads(last.columns_json)
    live = {k: json.loads(existing[k].values_json) for k in old_order}
    new = dict(rows)
    changed = {k: [c for c in dict.fromkeys([*live[k], *v]) if not same_value(live[k].get(c), v.get(c))]
               for k, v in rows if k in live}
    same_columns = columns == old_columns or (not rows and not old_order)
    if [k for k, _ in rows] == old_order and same_columns and not any(changed.values()):
        return 0 if last is None else last.version
    removed = [k for k in old_order if k not in new]
    check_reason(live, changed, removed, reason, lot_label, sheet="lot", rows="lots")
    touched = apply_rows(s, audit, study, "lot", rows, existing, live, changed, removed, reason,
                         lambda k, values: LotRow(study_id=sid, lot=k, values_json=dumps(values), row_version=1,
                                                  deleted=False),
                         lambda row: lot_label(row.lot), lot_label)
    version = 1 if last is None else last.version + 1
    digest = content_hash(columns, [values for _, values in rows])
    s.add(LotVersionRow(study_id=sid, version=version, content_hash=digest, n_lots=len(rows),
                        reason=(reason or "").strip() or None,
                        columns_json=json.dumps(columns, ensure_ascii=False),
                        order_json=json.dumps([k for k, _ in rows], ensure_ascii=False),
                        created_at=audit.ts, created_by=audit.user.name))
    s.add_all(LotRevisionRow(lot_id=r.id, version=version, row_version=r.row_version, values_json=r.values_json,
                             deleted=bool(r.deleted)) for r in touched)
    audit.add("create", "lot_version", f"{sid}:{version}", study, field="content_hash", new=digest, reason=reason)
    return version


def sheet(s: Session, sid: int, study: str, version: int | None) -> pd.DataFrame:
    """The study's lot sheet as of ``version`` (default: the newest); an empty DataFrame when none is saved."""
    last = last_version(s, sid)
    top = 0 if last is None else last.version
    if version is None:
        if last is None:
            return pd.DataFrame()
        version = top
    if not 1 <= int(version) <= top:
        raise DoeError(f"Study '{study}' has no lot data version {version}; "
                       + (f"versions run from 1 to {top}." if top else "no lot sheet is saved yet."))
    chosen = s.execute(select(LotVersionRow).where(LotVersionRow.study_id == sid,
                                                   LotVersionRow.version == int(version))).scalar_one()
    found = s.execute(select(LotRow.lot, LotRevisionRow.values_json)
                      .join(LotRevisionRow, LotRevisionRow.lot_id == LotRow.id)
                      .where(LotRow.study_id == sid, LotRevisionRow.version <= int(version))
                      .order_by(LotRevisionRow.version)).all()
    values = {lot: json.loads(j) for lot, j in found}  # the newest revision wins
    return frame(json.loads(chosen.columns_json), [values[k] for k in json.loads(chosen.order_json)])


def versions_frame(s: Session, sid: int) -> pd.DataFrame:
    """Every lot data version of the study (:data:`VERSION_COLUMNS`), oldest first."""
    rows = s.execute(select(*(getattr(LotVersionRow, c) for c in VERSION_COLUMNS))
                     .where(LotVersionRow.study_id == sid).order_by(LotVersionRow.version)).all()
    out = pd.DataFrame(rows, columns=VERSION_COLUMNS)
    return out.astype({"version": "int64", "n_lots": "int64"})
