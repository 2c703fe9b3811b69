"""Seed-train passage sheets as versioned, audited data, and the equivalence tests run on them.

A study's passage sheet (one row per passage of one donor's cells in one vessel; the columns
:data:`PASSAGE_COLUMNS`) is saved whole: :func:`save_sheet` compares it with the sheet saved last
and writes a new *passage data version* with one audit record per created row, per changed value
and per removed row, like runs and their data versions (``doe.store._store``). Rows are matched by
their key (donor, passage, vessel, repeat), where ``repeat`` counts the rows of the same donor,
passage and vessel in sheet order (parallel vessels), from 1. Every version is rebuilt exactly
from the rows' revisions and the version's order of keys.

Values are stored as JSON with the store's cell rules (:func:`doe.cells.stored_cell`): numbers as
JSON numbers written with Python's shortest round-trip repr, blanks and NaN as null, so a sheet
read back equals the one saved (float equality) on SQLite and PostgreSQL.

>>> rows = sheet_rows(pd.DataFrame({"Donor": ["D1", "D1"], "Passage": [3, 3], "Vessel": ["T75", "T75"],
...     "Seeded cells": [1e6, 1e6], "Harvested cells": [4.2e6, 3.9e6], "Hours": [96.0, 96.0]}))
>>> [passage_label(key) for key, _ in rows]
['Donor D1, passage 3, T75', 'Donor D1, passage 3, T75 (vessel 2)']
>>> rows[1][1]["Harvested cells"], rows[1][1]["Viability"], rows[1][1]["Notes"]
(3900000.0, None, None)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from doe.cells import blank_cell, same_value, stored_cell
from doe.errors import DoeError, did_you_mean, quoted_list
from doe.store._audit import AuditWriter
from doe.store._integrity import canonical, passage_label
from doe.store._models import EquivalenceTestRow, PassageRevisionRow, PassageRow, PassageVersionRow

#: The canonical columns of a passage sheet: the same as doe.growth.PASSAGE_COLUMNS (a test keeps them
#: equal; not imported from there, which would load SciPy and the mixed models with the store).
PASSAGE_COLUMNS: tuple[str, ...] = ("Donor", "Passage", "Vessel", "Seeded cells", "Harvested cells", "Hours",
                                    "Viability", "Area (cm2)", "Notes")

#: Columns every sheet must have; the others may be left out (blank).
REQUIRED = ("Donor", "Passage", "Vessel", "Seeded cells", "Harvested cells", "Hours")
_TEXT = ("Donor", "Vessel", "Notes")
_MAX_KEY_CHARS = 200
#: A row's key: donor, passage, vessel, repeat.
Key = tuple[str, int, str, int]
#: A row key of any versioned sheet (a passage key, a lot number).
K = TypeVar("K")
#: Columns of :func:`versions_frame` and of :func:`equivalence_frame`.
VERSION_COLUMNS = ["version", "content_hash", "n_passages", "reason", "created_at", "created_by"]
EQUIVALENCE_COLUMNS = ["id", "passage_version", "response", "reference", "test", "equivalent", "result", "note",
                       "created_at", "created_by"]
#: Keys an equivalence result must have (doe.equivalence.EquivalenceResult.to_json has these and more).
EQUIVALENCE_KEYS = ("response", "reference", "test", "equivalent")


# -- reading a sheet -----------------------------------------------------------------------------
def sheet_rows(table: pd.DataFrame) -> list[tuple[Key, dict[str, Any]]]:
    """The rows of a passage sheet as (key, values), in sheet order, checked and normalised.

    Only :data:`PASSAGE_COLUMNS` are kept (other columns, such as kinetics computed from them, are
    not stored). Values are keyed by :data:`PASSAGE_COLUMNS` (a missing optional column is blank): Donor,
    Vessel and Notes as text (blank Notes: None), Passage a whole number, the other columns
    floats or None. Raises DoeError naming the row and column of anything that cannot be stored.
    """
    if not isinstance(table, pd.DataFrame):
        raise DoeError("A passage sheet must be a table (a pandas DataFrame) with the columns "
                       f"{quoted_list(list(PASSAGE_COLUMNS))}.")
    columns = [str(c) for c in table.columns]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        extra = [c for c in columns if c not in PASSAGE_COLUMNS]
        hint = did_you_mean(missing[0], extra) if extra else ""
        raise DoeError(f"The passage sheet has no {quoted_list(missing)} column.{hint} Every passage needs "
                       f"{quoted_list(list(REQUIRED))}.")
    kept = [c for c in columns if c in PASSAGE_COLUMNS]
    if len(set(kept)) != len(kept):
        raise DoeError("The passage sheet has a column twice: give each column once.")
    frame = table.set_axis(columns, axis=1)[kept]  # other columns (e.g. computed kinetics) are not stored
    seen: dict[tuple[str, int, str], int] = {}
    out: list[tuple[Key, dict[str, Any]]] = []
    for n, record in enumerate(frame.to_dict("records"), 1):
        values = {c: _value(c, record.get(c), n) for c in PASSAGE_COLUMNS}
        triple = (values["Donor"], values["Passage"], values["Vessel"])
        seen[triple] = seen.get(triple, 0) + 1
        out.append(((*triple, seen[triple]), values))
    return out


def _value(column: str, raw: Any, n: int) -> Any:
    """One cell of row ``n`` as stored (see :func:`sheet_rows`)."""
    where = f"Row {n} of the passage sheet"
    if blank_cell(raw):
        if column in ("Donor", "Passage", "Vessel"):
            raise DoeError(f"{where} has no {column}: every passage needs a donor, a passage number and a vessel.")
        return None
    value = stored_cell(raw)
    if column in _TEXT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        if column != "Notes" and len(text) > _MAX_KEY_CHARS:
            raise DoeError(f"{where}: the {column} has {len(text)} characters, more than {_MAX_KEY_CHARS}: "
                           "shorten it.")
        return text or None
    number = _number(value)
    if number is None:
        raise DoeError(f"{where}: {column} '{value}' is not a number: enter a number or leave the cell empty.")
    if column == "Passage":
        if not number.is_integer():
            raise DoeError(f"{where}: Passage '{value}' is not a whole number: enter the passage number "
                           "(1, 2, 3, ...).")
        return int(number)
    return number


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def content_hash(rows: list[tuple[Key, dict[str, Any]]]) -> str:
    """SHA-256 over the sheet's rows in order (see :func:`values_hash`)."""
    return values_hash([values for _, values in rows])


def values_hash(sheet: list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical JSON (keys sorted, no spaces, UTF-8) of the rows' values in sheet order."""
    return hashlib.sha256(canonical(sheet)).hexdigest()


def dumps(values: dict[str, Any]) -> str:
    """Stored JSON of one row's values (column order kept, no NaN)."""
    return json.dumps(values, ensure_ascii=False, allow_nan=False)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A sheet as a DataFrame: :data:`PASSAGE_COLUMNS` with their types (blank Notes as '', blank numbers NaN)."""
    data: dict[str, Any] = {}
    for c in PASSAGE_COLUMNS:
        cells: list[Any] = [r.get(c) for r in rows]
        if c in _TEXT:
            data[c] = pd.Series(["" if v is None else str(v) for v in cells], dtype=object)
        elif c == "Passage":
            data[c] = pd.Series([int(v) for v in cells], dtype="int64")
        else:
            data[c] = pd.Series([np.nan if v is None else float(v) for v in cells], dtype="float64")
    return pd.DataFrame(data, columns=list(PASSAGE_COLUMNS))


# -- the store's side ----------------------------------------------------------------------------
def _key(row: PassageRow) -> Key:
    return (row.donor, row.passage, row.vessel, row.repeat)


def order_of(order_json: str) -> list[Key]:
    """The keys of a passage version in sheet order, from its stored ``order_json``."""
    keys: list[list[Any]] = json.loads(order_json)
    return [(str(d), int(p), str(v), int(k)) for d, p, v, k in keys]


def last_version(s: Session, sid: int) -> PassageVersionRow | None:
    """The study's newest passage data version, or None."""
    return s.execute(select(PassageVersionRow).where(PassageVersionRow.study_id == sid)
                     .order_by(PassageVersionRow.version.desc()).limit(1)).scalar_one_or_none()


def save_sheet(s: Session, audit: AuditWriter, sid: int, study: str, rows: list[tuple[Key, dict[str, Any]]],
               reason: str | None) -> int:
    """Replace the study's passage sheet with ``rows`` (see ``Store.save_passages``); the version number."""
    last = last_version(s, sid)
    existing = {_key(r): r for r in s.execute(select(PassageRow).where(PassageRow.study_id == sid)).scalars()}
    old_order = [] if last is None else order_of(last.order_json)
    live = {k: json.loads(existing[k].values_json) for k in old_order}
    new = dict(rows)
    changed = {k: [c for c in PASSAGE_COLUMNS if not same_value(live[k].get(c), v.get(c))]
               for k, v in rows if k in live}
    if [k for k, _ in rows] == old_order and not any(changed.values()):
        return 0 if last is None else last.version
    removed = [k for k in old_order if k not in new]
    check_reason(live, changed, removed, reason, passage_label)
    touched = apply_rows(s, audit, study, "passage", rows, existing, live, changed, removed, reason,
                         lambda k, values: PassageRow(study_id=sid, donor=k[0], passage=k[1], vessel=k[2],
                                                      repeat=k[3], values_json=dumps(values), row_version=1,
                                                      deleted=False),
                         lambda row: passage_label(_key(row)), passage_label)
    version = 1 if last is None else last.version + 1
    digest = content_hash(rows)
    s.add(PassageVersionRow(study_id=sid, version=version, content_hash=digest, n_passages=len(rows),
                            reason=(reason or "").strip() or None,
                            order_json=json.dumps([list(k) for k, _ in rows], ensure_ascii=False),
                            created_at=audit.ts, created_by=audit.user.name))
    s.add_all(PassageRevisionRow(passage_id=r.id, version=version, row_version=r.row_version,
                                 values_json=r.values_json, deleted=bool(r.deleted)) for r in touched)
    audit.add("create", "passage_version", f"{sid}:{version}", study, field="content_hash", new=digest,
              reason=reason)
    return version


R = TypeVar("R")


def apply_rows(s: Session, audit: AuditWriter, study: str, entity: str, rows: list[tuple[K, dict[str, Any]]],
               existing: Mapping[K, R], live: Mapping[K, dict[str, Any]], changed: Mapping[K, list[str]],
               removed: list[K], reason: str | None, new_row: Callable[[K, dict[str, Any]], R],
               row_label: Callable[[R], str], label: Callable[[K], str]) -> list[R]:
    """Write a versioned sheet's rows (passages, lots) and their audit entries: a new key is a new row, a
    removed row entered again is revived, a changed row gets one "modify" per changed column, a removed row is
    marked deleted. Returns the rows touched (their revisions go into the new version)."""
    touched: list[Any] = []
    created: list[Any] = []
    for k, values in rows:
        row: Any = existing.get(k)
        if row is None:
            row = new_row(k, values)
            s.add(row)
            created.append(row)
        elif k not in live:  # a row removed earlier and entered again
            row.values_json, row.row_version, row.deleted = dumps(values), row.row_version + 1, False
            created.append(row)
        elif changed[k]:  # a row whose values are the same (columns moved or blank ones added) stays as it is
            for c in changed[k]:
                audit.add("modify", entity, row.id, study, field=c, old=live[k].get(c), new=values.get(c),
                          reason=reason)
            row.values_json, row.row_version = dumps(values), row.row_version + 1
        else:
            continue
        touched.append(row)
    s.flush()
    for row in created:
        audit.add("create", entity, row.id, study, field=row_label(row), new=json.loads(row.values_json),
                  reason=reason)
    for k in removed:
        row = existing[k]
        audit.add("delete", entity, row.id, study, field=label(k), old=live[k], reason=reason)
        row.deleted, row.row_version = True, row.row_version + 1
        touched.append(row)
    return touched


def check_reason(live: Mapping[K, dict[str, Any]], changed: Mapping[K, list[str]], removed: list[K],
                 reason: str | None, label: Callable[[K], str], sheet: str = "passage", rows: str = "rows") -> None:
    """A saved value changed or a saved row removed needs a reason; filling a blank does not.

    ``live``: the saved rows' values by key; ``changed``: the columns that differ, by key; ``label``
    names a row for a person; ``sheet`` and ``rows`` name the sheet and its rows in the message.
    Shared by the passage and lot sheets (:mod:`doe.store._lots`).
    """
    if (reason or "").strip():
        return
    edits = [f"{label(k)} ({', '.join(cols)})" for k, c in changed.items()
             if (cols := [x for x in c if live[k].get(x) is not None])]
    gone = [label(k) for k in removed]
    what = []
    if edits:
        what.append("changes saved values of " + "; ".join(edits[:3]) + (" ..." if len(edits) > 3 else ""))
    if gone:
        what.append(f"removes the saved {rows} " + "; ".join(gone[:3]) + (" ..." if len(gone) > 3 else ""))
    if what:
        raise DoeError(f"This {sheet} sheet {' and '.join(what)}: give a reason for the change (it is kept in the "
                       "audit trail). Nothing was saved.")


def check_version(s: Session, sid: int, study: str, version: int) -> None:
    """Refuse a passage data version the study does not have."""
    last = last_version(s, sid)
    top = 0 if last is None else last.version
    if not 1 <= version <= top:
        raise DoeError(f"Study '{study}' has no passage data version {version}; "
                       + (f"versions run from 1 to {top}." if top else "no passage sheet is saved yet."))


def sheet(s: Session, sid: int, study: str, version: int | None) -> pd.DataFrame:
    """The study's passage sheet as of ``version`` (default: the newest); empty when none is saved."""
    if version is None:
        last = last_version(s, sid)
        if last is None:
            return frame([])
        current = {_key(r): json.loads(r.values_json)
                   for r in s.execute(select(PassageRow).where(PassageRow.study_id == sid,
                                                               PassageRow.deleted.is_(False))).scalars()}
        return frame([current[k] for k in order_of(last.order_json)])
    check_version(s, sid, study, int(version))
    order = s.execute(select(PassageVersionRow.order_json).where(
        PassageVersionRow.study_id == sid, PassageVersionRow.version == int(version))).scalar_one()
    found = s.execute(select(PassageRow.donor, PassageRow.passage, PassageRow.vessel, PassageRow.repeat,
                             PassageRevisionRow.values_json)
                      .join(PassageRevisionRow, PassageRevisionRow.passage_id == PassageRow.id)
                      .where(PassageRow.study_id == sid, PassageRevisionRow.version <= int(version))
                      .order_by(PassageRevisionRow.version)).all()
    values = {(d, p, v, k): json.loads(j) for d, p, v, k, j in found}  # the newest revision wins
    return frame([values[k] for k in order_of(order)])


def versions_frame(s: Session, sid: int) -> pd.DataFrame:
    """Every passage data version of the study (:data:`VERSION_COLUMNS`), oldest first."""
    rows = s.execute(select(*(getattr(PassageVersionRow, c) for c in VERSION_COLUMNS))
                     .where(PassageVersionRow.study_id == sid).order_by(PassageVersionRow.version)).all()
    out = pd.DataFrame(rows, columns=VERSION_COLUMNS)
    return out.astype({"version": "int64", "n_passages": "int64"})


# -- equivalence tests ---------------------------------------------------------------------------
def plain_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """An equivalence result as plain JSON values (numpy scalars unwrapped, NaN as None), checked."""
    if not isinstance(result, Mapping):
        raise DoeError("An equivalence test is kept as its result's JSON (EquivalenceResult.to_json()): pass that "
                       "mapping.")
    plain: dict[str, Any] = _plain(dict(result))
    missing = [k for k in EQUIVALENCE_KEYS if k not in plain]
    if missing:
        raise DoeError(f"The equivalence result has no {quoted_list(missing)}: keep the whole result of "
                       "EquivalenceResult.to_json().")
    if not isinstance(plain["equivalent"], bool):
        raise DoeError(f"The equivalence result's 'equivalent' is {plain['equivalent']!r}, not true or false: keep "
                       "the whole result of EquivalenceResult.to_json().")
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise DoeError(f"The equivalence result holds {value!r}, which cannot be stored: use numbers, text, lists and "
                   "mappings.")


def result_text(plain: dict[str, Any]) -> str:
    """The stored JSON text of a result (sorted keys, no NaN)."""
    return json.dumps(plain, ensure_ascii=False, allow_nan=False, sort_keys=True)


def save_equivalence(s: Session, audit: AuditWriter, sid: int, study: str, plain: dict[str, Any],
                     note: str) -> int:
    """Keep one equivalence test with the newest passage data version (or None); its id."""
    last = last_version(s, sid)
    row = EquivalenceTestRow(study_id=sid, passage_version=None if last is None else last.version,
                             result_json=result_text(plain), note=str(note or ""), created_at=audit.ts,
                             created_by=audit.user.name)
    s.add(row)
    s.flush()
    audit.add("create", "equivalence", row.id, study, field="equivalence", new=audit_value(row))
    return row.id


def audit_value(row: EquivalenceTestRow | Mapping[str, Any]) -> dict[str, Any]:
    """What an equivalence test's "create" record holds: the result, its passage data version, the note."""
    fields = row if isinstance(row, Mapping) else {k: getattr(row, k) for k in ("result_json", "passage_version",
                                                                                "note")}
    return {"result": json.loads(fields["result_json"]), "passage_version": fields["passage_version"],
            "note": fields["note"]}


def equivalence_frame(s: Session, sid: int) -> pd.DataFrame:
    """The study's equivalence tests (:data:`EQUIVALENCE_COLUMNS`), oldest first."""
    rows = s.execute(select(EquivalenceTestRow).where(EquivalenceTestRow.study_id == sid)
                     .order_by(EquivalenceTestRow.id)).scalars().all()
    records = []
    for r in rows:
        result = json.loads(r.result_json)
        records.append((r.id, r.passage_version, result.get("response"), result.get("reference"), result.get("test"),
                        bool(result.get("equivalent")), result, r.note, r.created_at, r.created_by))
    out = pd.DataFrame(records, columns=EQUIVALENCE_COLUMNS)
    out["passage_version"] = out["passage_version"].astype("Int64")
    return out.astype({"equivalent": bool})

