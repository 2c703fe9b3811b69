"""Tamper evidence over the stored data: a content digest per row, covered by the audit chain.

Every stored data row has a *row digest*: SHA-256 (hex) of the canonical JSON (sorted keys,
separators ``,`` and ``:``, UTF-8, no ASCII escaping) of a document made of the entity's name
and its content fields, listed below. The digest uses no surrogate ids of other tables (a row's
study is its study's name, a data version's design is the design's number in its study), so
the same digest can be computed from a bundle's files. Columns whose name ends in ``_json``
enter as their parsed JSON value (so the same JSON written with other spacing gives the same
digest); booleans as ``true``/``false``; ``threshold`` as a float; the rest as stored.

===================  ======================================  =========================================
entity               audit ``entity_id``                     fields (``row_digest`` reads these keys)
===================  ======================================  =========================================
``study``            ``studies.id``                          name, created_at, created_by
``study_version``    ``"<studies.id>:<version>"``            study, version, yaml, content_hash,
                                                             created_at, created_by
``design``           ``designs.id``                          study, study_version, kind, seed, model,
                                                             run_sheet, frozen, created_at, created_by,
                                                             name, current, deleted
``run``              ``runs.id``                             study, label, values_json, row_version,
                                                             deleted
``data_version``     ``"<studies.id>:<version>"``            study, version, content_hash, n_runs,
                                                             reason, created_at, created_by, design,
                                                             revisions
``analysis``         ``"<studies.id>:<version>"``            study, version, data_version, choices_json,
                                                             summary_json, created_at, created_by
``decision``         ``decisions.id``                        study, analysis_version, threshold,
                                                             set_point_json, ranges_json, note,
                                                             created_at, created_by
``passage``          ``passages.id``                         study, donor, passage, vessel, repeat,
                                                             values_json, row_version, deleted
``passage_version``  ``"<studies.id>:<version>"``            study, version, content_hash, n_passages,
                                                             reason, order_json, created_at, created_by,
                                                             passage_revisions
``equivalence``      ``equivalence_tests.id``                study, passage_version, result_json, note,
                                                             created_at, created_by
``lot``              ``lots.id``                             study, lot, values_json, row_version, deleted
``lot_version``      ``"<studies.id>:<version>"``            study, version, content_hash, n_lots, reason,
                                                             columns_json, order_json, created_at,
                                                             created_by, lot_revisions
===================  ======================================  =========================================

``study`` is the study's name. A data version's ``design`` is the 1-based position of its design
among the study's designs in the order they were saved (``designs.id``; deleted ones counted), as
a bundle's ``runs/data_versions.csv`` numbers it, or None; its ``revisions`` are the run
revisions recorded with it (``run_revisions`` rows with that ``data_version``), each
``{label, row_version, deleted, values_json}`` with ``label`` the run's label, in label order.
A passage version's ``passage_revisions`` (schema 0006) are the ``passage_revisions`` rows recorded
with it, each ``{key, row_version, deleted, values_json}`` with ``key`` the row's
``[donor, passage, vessel, repeat]``, in the order of the keys' canonical JSON. A lot version's
``lot_revisions`` (schema 0007) are likewise the ``lot_revisions`` rows recorded with it, each
``{lot, row_version, deleted, values_json}``, in lot order.
A bundle's parsed rows (``doe.store._bundle``) carry these keys once ``study`` is added (and
``label``/``revisions`` as described), so :func:`row_digest` recomputes a source store's digests.

When a write transaction commits, the audit trail's new records get the digest of their row as
it is at that moment (``audit_trail.row_hash``); ``audit verify`` recomputes every row's digest
and compares it with the newest ``row_hash`` the chain holds for it. The chain's head (last
record number and hash) is signed with the site key (:mod:`doe.store._signing`) at every write,
over :func:`head_message`.

>>> row_digest("study", {"name": "S", "created_at": "2026-12-06T10:00:00.000000Z", "created_by": "ana"})[:16]
'60307fcd8616e024'
>>> a = {"study": "S", "label": "R1", "values_json": '{"Y": 1.5}', "row_version": 1, "deleted": False}
>>> row_digest("run", a) == row_digest("run", {**a, "values_json": '{ "Y" : 1.5 }'})
True
>>> row_digest("run", a) == row_digest("run", {**a, "values_json": '{"Y": 1.6}'})
False
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

#: The content fields of each entity, in the order shown in the module docstring.
FIELDS: dict[str, tuple[str, ...]] = {
    "study": ("name", "created_at", "created_by"),
    "study_version": ("study", "version", "yaml", "content_hash", "created_at", "created_by"),
    "design": ("study", "study_version", "kind", "seed", "model", "run_sheet", "frozen", "created_at",
               "created_by", "name", "current", "deleted"),
    "run": ("study", "label", "values_json", "row_version", "deleted"),
    "data_version": ("study", "version", "content_hash", "n_runs", "reason", "created_at", "created_by",
                     "design", "revisions"),
    "analysis": ("study", "version", "data_version", "choices_json", "summary_json", "created_at",
                 "created_by"),
    "decision": ("study", "analysis_version", "threshold", "set_point_json", "ranges_json", "note",
                 "created_at", "created_by"),
    "passage": ("study", "donor", "passage", "vessel", "repeat", "values_json", "row_version", "deleted"),
    "passage_version": ("study", "version", "content_hash", "n_passages", "reason", "order_json", "created_at",
                        "created_by", "passage_revisions"),
    "equivalence": ("study", "passage_version", "result_json", "note", "created_at", "created_by"),
    "lot": ("study", "lot", "values_json", "row_version", "deleted"),
    "lot_version": ("study", "version", "content_hash", "n_lots", "reason", "columns_json", "order_json",
                    "created_at", "created_by", "lot_revisions"),
}
#: Entities in the order ``audit verify`` checks them (and reports the first problem).
ENTITIES = tuple(FIELDS)
#: The entities schema 0005 knew (its migration covers their rows; later tables did not exist yet).
ENTITIES_0005 = ("study", "study_version", "design", "run", "data_version", "analysis", "decision")
_BOOL = {"frozen", "current", "deleted"}
_INT = {"version", "study_version", "row_version", "n_runs", "data_version", "seed", "analysis_version",
        "design", "passage", "repeat", "n_passages", "passage_version", "n_lots"}
REVISION_FIELDS = ("label", "row_version", "deleted", "values_json")
PASSAGE_REVISION_FIELDS = ("key", "row_version", "deleted", "values_json")
LOT_REVISION_FIELDS = ("lot", "row_version", "deleted", "values_json")


def canonical(doc: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8 (no ASCII escaping)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _value(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key.endswith("_json"):
        return json.loads(value)
    if key in _BOOL:
        return bool(value)
    if key in _INT:
        return int(value)
    if key == "threshold":
        return float(value)
    return value


def _revision(r: dict[str, Any]) -> dict[str, Any]:
    return {k: _value(k, r[k]) for k in REVISION_FIELDS}


def _passage_revision(r: dict[str, Any]) -> dict[str, Any]:
    return {"key": list(r["key"]), **{k: _value(k, r[k]) for k in PASSAGE_REVISION_FIELDS[1:]}}


def row_digest(entity: str, fields: dict[str, Any]) -> str:
    """The row digest of ``entity`` from a mapping holding its fields (see the module docstring).

    Keys beyond the entity's fields are ignored; a missing one is a ValueError.
    """
    try:
        names = FIELDS[entity]
    except KeyError:
        raise ValueError(f"no row digest for entity {entity!r}; entities: {', '.join(ENTITIES)}") from None
    missing = [k for k in names if k not in fields]
    if missing:
        raise ValueError(f"a {entity} row needs the fields {', '.join(missing)} for its digest")
    doc: dict[str, Any] = {"entity": entity}
    for key in names:
        if key == "revisions":
            doc[key] = sorted((_revision(r) for r in fields[key]), key=lambda r: r["label"])
        elif key == "passage_revisions":
            doc[key] = sorted((_passage_revision(r) for r in fields[key]),
                              key=lambda r: canonical(r["key"]))
        elif key == "lot_revisions":
            doc[key] = sorted(({k: _value(k, r[k]) for k in LOT_REVISION_FIELDS} for r in fields[key]),
                              key=lambda r: str(r["lot"]))
        else:
            doc[key] = _value(key, fields[key])
    return hashlib.sha256(canonical(doc)).hexdigest()


def passage_label(key: tuple[Any, ...] | list[Any]) -> str:
    """A passage row named for a person by its key (donor, passage, vessel, repeat): 'Donor D1, passage 3,
    T75', with ' (vessel 2)' for the second parallel vessel of that passage.

    >>> passage_label(("D1", 3, "T75", 2))
    'Donor D1, passage 3, T75 (vessel 2)'
    """
    donor, passage, vessel, repeat = key
    return f"Donor {donor}, passage {passage}, {vessel}" + (f" (vessel {repeat})" if int(repeat) > 1 else "")


def head_message(last_seq: int, last_hash: str, signed_at: str, key_id: str) -> bytes:
    """The bytes the site key signs for the audit head: record number, hash, time and key id."""
    return canonical({"purpose": "doe-workbench audit head", "last_seq": int(last_seq), "last_hash": last_hash,
                      "signed_at": signed_at, "key_id": key_id})


# -- reading rows from the store -----------------------------------------------------------------
@dataclass(frozen=True)
class StoredRow:
    """One stored row: its audit key, its digest and how to name it to a person."""

    entity: str
    entity_id: str
    digest: str
    label: str
    study: str | None = None


def describe(entity: str, entity_id: str, study: str | None, label: str | None = None) -> str:
    """A row named for a person, e.g. "run R07 of study 'X'"."""
    of = f" of study '{study}'" if study else ""
    tail = entity_id.split(":")[-1]
    return {"study": f"study '{study}'" if study else f"study {entity_id}",
            "study_version": f"version {tail}{of}",
            "design": f"design {entity_id}{' ' + repr(label) if label else ''}{of}",
            "run": f"run {label or entity_id}{of}",
            "data_version": f"data version {tail}{of}",
            "analysis": f"analysis version {tail}{of}",
            "decision": f"design-space decision {entity_id}{of}",
            "passage": f"seed-train passage {label or entity_id}{of}",
            "passage_version": f"passage data version {tail}{of}",
            "equivalence": f"equivalence test {entity_id}{of}",
            "lot": f"lot {label or entity_id}{of}",
            "lot_version": f"lot data version {tail}{of}"}.get(entity, f"{entity} {entity_id}{of}")


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class RowReader:
    """Reads rows of the store and computes their digests; ``wanted`` limits it to some audit keys.

    Without ``wanted`` every row of every entity is read (``audit verify``); with it only those
    rows (the rows a write transaction touched).
    """

    def __init__(self, session: Session, wanted: dict[str, set[str]] | None = None) -> None:
        from doe.store import _models as M

        self.M, self.s, self.wanted = M, session, wanted
        self._names: dict[int, str] = {}
        self._design_numbers: dict[int, dict[int, int]] = {}

    # studies' names and design numbers, read once
    def name(self, sid: int) -> str:
        if sid not in self._names:
            M = self.M
            self._names.update((i, n) for i, n in self.s.execute(select(M.StudyRow.id, M.StudyRow.name)
                                                                .where(M.StudyRow.id == sid)))
        return self._names.get(sid, f"(study {sid})")

    def design_number(self, sid: int, design_id: int | None) -> int | None:
        if design_id is None:
            return None
        if sid not in self._design_numbers:
            ids = self.s.execute(select(self.M.DesignRow.id).where(self.M.DesignRow.study_id == sid)
                                 .order_by(self.M.DesignRow.id)).scalars().all()
            self._design_numbers[sid] = {d: i for i, d in enumerate(ids, 1)}
        # a design id that is not one of the study's designs still changes the digest
        return self._design_numbers[sid].get(design_id, -int(design_id))

    def rows(self, entity: str) -> Iterator[StoredRow]:
        """The rows of ``entity`` (all, or the wanted ones) with their digests, in a fixed order."""
        if self.wanted is not None and not self.wanted.get(entity):
            return iter(())
        rows: Iterator[StoredRow] = getattr(self, f"_{entity}")()
        return rows

    def _select(self, model: Any, order: Iterable[Any], by_id: bool) -> Iterator[Any]:
        """Rows of ``model``: all, or the wanted ones by id or by (study_id, version)."""
        query = select(*model.__table__.c).order_by(*order)  # plain rows: no ORM objects to build
        if self.wanted is None:
            yield from self.s.execute(query.execution_options(yield_per=2000))
            return
        keys = sorted(self.wanted[_ENTITY_OF[model.__tablename__]])
        for part in _chunks(keys):
            if by_id:
                ids = [int(k) for k in part if k.isdigit()]
                cond = model.id.in_(ids)
            else:
                pairs = [tuple(int(x) for x in k.split(":")) for k in part if _pair(k)]
                cond = or_(*(and_(model.study_id == a, model.version == b) for a, b in pairs)) if pairs else None
            if cond is not None:
                yield from self.s.execute(query.where(cond))

    def _study(self) -> Iterator[StoredRow]:
        for r in self._select(self.M.StudyRow, [self.M.StudyRow.id], True):
            self._names[r.id] = r.name
            yield StoredRow("study", str(r.id), row_digest("study", _attrs(r, FIELDS["study"])),
                            describe("study", str(r.id), r.name), r.name)

    def _study_version(self) -> Iterator[StoredRow]:
        M = self.M
        for r in self._select(M.StudyVersionRow, [M.StudyVersionRow.study_id, M.StudyVersionRow.version], False):
            key, study = f"{r.study_id}:{r.version}", self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["study_version"][1:]), "study": study}
            yield StoredRow("study_version", key, row_digest("study_version", fields),
                            describe("study_version", key, study), study)

    def _design(self) -> Iterator[StoredRow]:
        for r in self._select(self.M.DesignRow, [self.M.DesignRow.id], True):
            study = self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["design"][1:]), "study": study}
            yield StoredRow("design", str(r.id), row_digest("design", fields),
                            describe("design", str(r.id), study, r.name), study)

    def _run(self) -> Iterator[StoredRow]:
        for r in self._select(self.M.RunRow, [self.M.RunRow.id], True):
            study = self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["run"][1:]), "study": study}
            yield StoredRow("run", str(r.id), row_digest("run", fields), describe("run", str(r.id), study, r.label),
                            study)

    def _data_version(self) -> Iterator[StoredRow]:
        M = self.M
        rows = list(self._select(M.DataVersionRow, [M.DataVersionRow.study_id, M.DataVersionRow.version], False))
        revisions = self._revisions({r.study_id for r in rows}, {(r.study_id, r.version) for r in rows})
        for r in rows:
            key, study = f"{r.study_id}:{r.version}", self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["data_version"][1:-2]), "study": study,
                      "design": self.design_number(r.study_id, r.design_id),
                      "revisions": revisions.get((r.study_id, r.version), [])}
            yield StoredRow("data_version", key, row_digest("data_version", fields),
                            describe("data_version", key, study), study)

    def _revisions(self, sids: set[int], keys: set[tuple[int, int]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
        """The run revisions of the given data versions, by (study id, data version)."""
        M = self.M
        out: dict[tuple[int, int], list[dict[str, Any]]] = {}
        query = (select(M.RunRow.study_id, M.RunRow.label, M.RunRevisionRow.data_version,
                        M.RunRevisionRow.row_version, M.RunRevisionRow.deleted, M.RunRevisionRow.values_json)
                 .join(M.RunRow, M.RunRow.id == M.RunRevisionRow.run_id))
        if self.wanted is None:
            results: Iterable[Any] = self.s.execute(query.execution_options(yield_per=5000))
        else:
            results = (row for part in _chunks(sorted(keys)) for row in self.s.execute(query.where(or_(
                *(and_(M.RunRow.study_id == a, M.RunRevisionRow.data_version == b) for a, b in part)))))
        for sid, label, dv, rv, deleted, values in results:
            if (sid, dv) in keys:
                out.setdefault((sid, dv), []).append({"label": label, "row_version": rv, "deleted": deleted,
                                                      "values_json": values})
        return out

    def _analysis(self) -> Iterator[StoredRow]:
        M = self.M
        for r in self._select(M.AnalysisRow, [M.AnalysisRow.study_id, M.AnalysisRow.version], False):
            key, study = f"{r.study_id}:{r.version}", self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["analysis"][1:]), "study": study}
            yield StoredRow("analysis", key, row_digest("analysis", fields), describe("analysis", key, study),
                            study)

    def _decision(self) -> Iterator[StoredRow]:
        for r in self._select(self.M.DecisionRow, [self.M.DecisionRow.id], True):
            study = self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["decision"][1:]), "study": study}
            yield StoredRow("decision", str(r.id), row_digest("decision", fields),
                            describe("decision", str(r.id), study), study)


    def _passage(self) -> Iterator[StoredRow]:
        for r in self._select(self.M.PassageRow, [self.M.PassageRow.id], True):
            study = self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["passage"][1:]), "study": study}
            yield StoredRow("passage", str(r.id), row_digest("passage", fields),
                            describe("passage", str(r.id), study, passage_label((r.donor, r.passage, r.vessel, r.repeat))),
                            study)

    def _passage_version(self) -> Iterator[StoredRow]:
        M = self.M
        rows = list(self._select(M.PassageVersionRow, [M.PassageVersionRow.study_id, M.PassageVersionRow.version],
                                 False))
        keys = {(r.study_id, r.version) for r in rows}
        revisions: dict[tuple[int, int], list[dict[str, Any]]] = {}
        query = (select(M.PassageRow.study_id, M.PassageRow.donor, M.PassageRow.passage, M.PassageRow.vessel,
                        M.PassageRow.repeat, M.PassageRevisionRow.version, M.PassageRevisionRow.row_version,
                        M.PassageRevisionRow.deleted, M.PassageRevisionRow.values_json)
                 .join(M.PassageRow, M.PassageRow.id == M.PassageRevisionRow.passage_id))
        for part in _chunks(sorted(keys)) if self.wanted is not None else [None]:
            where = query if part is None else query.where(or_(
                *(and_(M.PassageRow.study_id == a, M.PassageRevisionRow.version == b) for a, b in part)))
            for sid, donor, passage, vessel, repeat, version, rv, deleted, values in self.s.execute(where):
                if (sid, version) in keys:
                    revisions.setdefault((sid, version), []).append(
                        {"key": [donor, passage, vessel, repeat], "row_version": rv, "deleted": deleted,
                         "values_json": values})
        for r in rows:
            key, study = f"{r.study_id}:{r.version}", self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["passage_version"][1:-1]), "study": study,
                      "passage_revisions": revisions.get((r.study_id, r.version), [])}
            yield StoredRow("passage_version", key, row_digest("passage_version", fields),
                            describe("passage_version", key, study), study)

    def _equivalence(self) -> Iterator[StoredRow]:
        for r in self._select(self.M.EquivalenceTestRow, [self.M.EquivalenceTestRow.id], True):
            study = self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["equivalence"][1:]), "study": study}
            yield StoredRow("equivalence", str(r.id), row_digest("equivalence", fields),
                            describe("equivalence", str(r.id), study), study)

    def _lot(self) -> Iterator[StoredRow]:
        for r in self._select(self.M.LotRow, [self.M.LotRow.id], True):
            study = self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["lot"][1:]), "study": study}
            yield StoredRow("lot", str(r.id), row_digest("lot", fields), describe("lot", str(r.id), study, r.lot),
                            study)

    def _lot_version(self) -> Iterator[StoredRow]:
        M = self.M
        rows = list(self._select(M.LotVersionRow, [M.LotVersionRow.study_id, M.LotVersionRow.version], False))
        keys = {(r.study_id, r.version) for r in rows}
        revisions: dict[tuple[int, int], list[dict[str, Any]]] = {}
        query = (select(M.LotRow.study_id, M.LotRow.lot, M.LotRevisionRow.version, M.LotRevisionRow.row_version,
                        M.LotRevisionRow.deleted, M.LotRevisionRow.values_json)
                 .join(M.LotRow, M.LotRow.id == M.LotRevisionRow.lot_id))
        for part in _chunks(sorted(keys)) if self.wanted is not None else [None]:
            where = query if part is None else query.where(or_(
                *(and_(M.LotRow.study_id == a, M.LotRevisionRow.version == b) for a, b in part)))
            for sid, lot, version, rv, deleted, values in self.s.execute(where):
                if (sid, version) in keys:
                    revisions.setdefault((sid, version), []).append(
                        {"lot": lot, "row_version": rv, "deleted": deleted, "values_json": values})
        for r in rows:
            key, study = f"{r.study_id}:{r.version}", self.name(r.study_id)
            fields = {**_attrs(r, FIELDS["lot_version"][1:-1]), "study": study,
                      "lot_revisions": revisions.get((r.study_id, r.version), [])}
            yield StoredRow("lot_version", key, row_digest("lot_version", fields),
                            describe("lot_version", key, study), study)


_ENTITY_OF = {"studies": "study", "study_versions": "study_version", "designs": "design", "runs": "run",
              "data_versions": "data_version", "analyses": "analysis", "decisions": "decision",
              "passages": "passage", "passage_versions": "passage_version", "equivalence_tests": "equivalence",
              "lots": "lot", "lot_versions": "lot_version"}


def _pair(key: str) -> bool:
    parts = key.split(":")
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def _attrs(row: Any, names: Iterable[str]) -> dict[str, Any]:
    return {n: getattr(row, n) for n in names}


def digests_of(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The digests of the rows named by (entity, entity_id) as they are now in ``session``.

    Keys of entities that are not data rows (e.g. "bundle") or rows not found are left out.
    """
    wanted: dict[str, set[str]] = {}
    for entity, entity_id in keys:
        if entity in FIELDS:
            wanted.setdefault(entity, set()).add(entity_id)
    reader = RowReader(session, wanted)
    return {(r.entity, r.entity_id): r.digest for entity in ENTITIES for r in reader.rows(entity)}


def all_rows(session: Session) -> Callable[[str], Iterator[StoredRow]]:
    """Every stored row of an entity with its digest (for ``audit verify``), entity by entity."""
    return RowReader(session).rows
