"""The Store: studies, designs, runs, analyses and decisions with a hash-chained audit trail.

Every write method runs in one transaction that also writes its audit
records and takes the audit-head lock, so a failure leaves nothing behind
and concurrent writers (several app processes on one PostgreSQL) queue
instead of forking the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from doe.cells import same_value, stored_cell
from doe.design import Design, read_design
from doe.errors import DoeError, did_you_mean, quoted_list
from doe.store import _lots as L
from doe.store import _passages as P
from doe.store import _values as V
from doe.store._audit import AuditCheck, AuditWriter, User, as_user, verify_chain
from doe.store._designs import DesignRecord, count_runs
from doe.store._engine import WRITE_OPTION, default_url, make_engine, shown, upgrade
from doe.store._models import (
    AnalysisRow,
    AuditHeadRow,
    AuditRow,
    DataVersionRow,
    DecisionRow,
    DesignRow,
    RunRevisionRow,
    RunRow,
    StudyRow,
    StudyVersionRow,
    study_row,
)
from doe.store._signing import SiteKey, load_site_key
from doe.study import Study


def study_digest(study: Study) -> str:
    """The content hash a study version is saved with (SHA-256 of its YAML): equal when the text is."""
    return study.digest


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ConcurrentEditError(DoeError):
    """Someone else saved the same run since it was read; the message shows their change."""


class StudyConflictError(ConcurrentEditError):
    """Someone saved a newer version of the study than the one the edit was made on.

    ``latest_version`` is the version now stored; the message names who saved what since.
    """

    def __init__(self, message: str, latest_version: int | None) -> None:
        super().__init__(message)
        self.latest_version = latest_version


#: ``save_study(expected_version=ANY_VERSION)``: save whatever version is stored (no conflict check).
ANY_VERSION = object()


class Store:
    """A DoE workbench database. Open with :meth:`Store.open`; every method is one transaction."""

    def __init__(self, engine: Engine, url: str, key: SiteKey) -> None:
        self.engine = engine
        self.url = url
        #: The site key that signs the audit head at every write (doe.store._signing).
        self.key = key
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}),
                                            expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, *, data_dir: str | None = None) -> Store:
        """Open (creating and migrating to the newest schema) the store at ``url`` or the default.

        The site key (doe.store._signing.load_site_key: DOE_SITE_KEY, DOE_SITE_KEY_FILE, or
        site-key.pem next to an SQLite file / in the data folder, created on first use) is loaded
        first; a key that cannot be used is a DoeError saying how to fix it.
        """
        url = url or default_url(data_dir)
        key = load_site_key(url, data_dir)
        engine = make_engine(url)
        try:
            upgrade(engine, url, key)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, url, key)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({shown(self.url)!r})"

    # -- transactions ------------------------------------------------------------
    @contextmanager
    def _write(self, user: User | str) -> Iterator[tuple[Session, AuditWriter]]:
        """One write transaction with the audit head locked; rolled back on any error."""
        who = as_user(user)
        try:
            with self._write_sessions() as session, session.begin():
                audit = AuditWriter(session, who, self.key)
                yield session, audit
                audit.finish()  # the records with their rows' digests, and the head signed
        except DBAPIError as exc:
            raise DoeError(f"The database refused the change ({_first_line(exc)}); nothing was saved. "
                           "Reload and try again.") from None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._read() as session, session.begin():
                yield session
        except DBAPIError as exc:
            raise DoeError(f"Could not read the database '{shown(self.url)}' ({_first_line(exc)}).") from None

    def change_mark(self) -> int:
        """A number that moves on with every saved change (the last audit record's sequence number).

        Every write that changes anything appends to the audit trail, so reads made at the same
        mark are still current: the app keeps them instead of querying again on every rerun.
        """
        with self._session() as s:
            return int(s.execute(select(AuditHeadRow.last_seq)).scalar() or 0)

    # -- studies -----------------------------------------------------------------
    def save_study(self, study: Study, user: User | str, *, expected_version: int | None | object = ANY_VERSION) -> int:
        """Save ``study`` as its next version and return the version (unchanged text: the latest).

        ``expected_version`` is the version the edit was made on (None: a study that is not stored
        yet). When someone saved a newer version since, the save is refused with
        :class:`StudyConflictError` naming who changed what; nothing is written. Without it the
        study is saved whatever was stored before (the command line's explicit import).
        """
        with self._write(user) as (s, audit):
            return _save_study(s, audit, study, expected_version)

    def import_study(self, study: Study, runs_df: pd.DataFrame | None, user: User | str,
                     reason: str | None = None, *, design_id: int | None = None,
                     expected_version: int | None | object = ANY_VERSION) -> tuple[int, int | None]:
        """Save the study and append its runs in ONE transaction: (study version, data version or None).

        A failure at any point (a refused run, a kill) leaves neither the study version nor the runs.
        """
        with self._write(user) as (s, audit):
            version = _save_study(s, audit, study, expected_version)
            if runs_df is None:
                return version, None
            return version, self._append(s, audit, study.name, runs_df, reason, design_id)

    def last_study_of(self, user_name: str) -> str | None:
        """The name of the (still stored) study ``user_name`` last changed, from the audit trail, or None."""
        who = (user_name or "").strip()
        if not who:
            return None
        with self._session() as s:
            names = s.execute(select(AuditRow.study).where(AuditRow.user_name == who, AuditRow.study.is_not(None))
                              .order_by(AuditRow.seq.desc()).limit(50)).scalars().all()
            stored = set(s.execute(select(StudyRow.name).where(StudyRow.name.in_(set(names)))).scalars())
        return next((n for n in names if n in stored), None)

    def list_studies(self) -> pd.DataFrame:
        """One row per study: name, latest version, created at/by."""
        with self._session() as s:
            latest = (select(StudyVersionRow.study_id, func.max(StudyVersionRow.version).label("v"))
                      .group_by(StudyVersionRow.study_id).subquery())
            rows = s.execute(select(StudyRow.name, latest.c.v, StudyRow.created_at, StudyRow.created_by)
                             .join(latest, latest.c.study_id == StudyRow.id).order_by(StudyRow.name)).all()
        return pd.DataFrame(rows, columns=["name", "latest_version", "created_at", "created_by"])

    def study_versions(self, name: str) -> pd.DataFrame:
        """Every saved version of a study: version, content hash, saved at/by."""
        with self._session() as s:
            sid = self._study_id(s, name)
            rows = s.execute(select(StudyVersionRow.version, StudyVersionRow.content_hash,
                                    StudyVersionRow.created_at, StudyVersionRow.created_by)
                             .where(StudyVersionRow.study_id == sid).order_by(StudyVersionRow.version)).all()
        return pd.DataFrame(rows, columns=["version", "content_hash", "saved_at", "saved_by"])

    def load_study(self, name: str, version: int | None = None) -> Study:
        """The study as saved in ``version`` (default: the latest)."""
        return Study.from_yaml(self._study_yaml(name, version))

    def _study_yaml(self, name: str, version: int | None) -> str:
        with self._session() as s:
            sid = self._study_id(s, name)
            row = _latest_version(s, sid) if version is None else s.execute(
                select(StudyVersionRow).where(StudyVersionRow.study_id == sid,
                                              StudyVersionRow.version == version)).scalar_one_or_none()
        if row is None:
            raise DoeError(f"Study '{name}' has no version {version}.")
        return row.yaml

    def _study_id(self, s: Session, name: str) -> int:
        sid = s.execute(select(StudyRow.id).where(StudyRow.name == name)).scalar_one_or_none()
        if sid is None:
            names = list(s.execute(select(StudyRow.name)).scalars())
            raise DoeError(f"No study named '{name}' in the store.{did_you_mean(name, names)} "
                           f"Studies: {quoted_list(names) or 'none yet'}.")
        return sid

    # -- designs -----------------------------------------------------------------
    def save_design(self, study_name: str, design: Design, user: User | str, name: str | None = None,
                    *, current: bool = True) -> int:
        """Store a design's run sheet against the study's latest version under ``name``; return its id.

        Without a name it is saved as e.g. 'D-optimal, 40 runs' (with ' (2)' etc. when a design of
        the study already has that name). A saved design becomes the study's current one unless
        ``current`` is False. A name another design of the study has is refused.
        """
        from doe.store._designs import default_design_name

        sheet = design.table.to_csv(index=False)
        given = (name or "").strip()
        with self._write(user) as (s, audit):
            sid = self._study_id(s, study_name)
            taken = _design_names(s, sid)
            if given:
                _check_free_name(given, taken, study_name)
                final = given
            else:
                final = default_design_name(design.kind, design.n_runs, taken, design.info.get("criterion"))
            row = DesignRow(study_id=sid, study_version=_current_version(s, sid).version, kind=design.kind,
                            seed=design.seed, model=design.model, run_sheet=sheet, frozen=False,
                            created_at=audit.ts, created_by=audit.user.name, name=final, current=False,
                            deleted=False)
            s.add(row)
            s.flush()
            audit.add("create", "design", row.id, study_name, field="run_sheet", new=sheet)
            audit.add("create", "design", row.id, study_name, field="name", new=final)
            if current:
                _make_current(s, audit, study_name, sid, row)
            return row.id

    def designs(self, study_name: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """The study's designs: id, study version, kind, seed, model, frozen, created at/by, name, runs,
        current, deleted (deleted ones only with ``include_deleted``)."""
        from doe.store._designs import COLUMNS

        cols = ["id", "study_version", "kind", "seed", "model", "frozen", "created_at", "created_by",
                "name", "runs", "current", "deleted"]
        with self._session() as s:
            sid = self._study_id(s, study_name)
            query = select(DesignRow).where(DesignRow.study_id == sid).order_by(DesignRow.id)
            if not include_deleted:
                query = query.where(DesignRow.deleted.is_(False))
            records = [_record(r).to_dict() for r in s.execute(query).scalars()]
        frame = pd.DataFrame(records, columns=COLUMNS)
        frame["seed"] = frame["seed"].astype("Int64")
        return frame[cols]

    def design_record(self, design_id: int) -> DesignRecord:
        """One stored design's record (name, type, runs, seed, state), deleted ones included."""
        with self._session() as s:
            return _record(_design_row(s, design_id))

    def load_design(self, design_id: int) -> Design:
        """A stored design, read against the study version it was made for."""
        with self._session() as s:
            row = _design_row(s, design_id)
            name = study_row(s, row.study_id).name
            label = row.name or f"design {design_id}"
        design = read_design(self.load_study(name, row.study_version), row.run_sheet.encode("utf-8"),
                             name=label)
        design.kind, design.seed, design.model = row.kind, row.seed, row.model
        return design

    def current_design(self, study_name: str) -> int | None:
        """The id of the study's current design (the one it opens with), or None."""
        with self._session() as s:
            sid = self._study_id(s, study_name)
            return s.execute(select(DesignRow.id).where(DesignRow.study_id == sid, DesignRow.current.is_(True),
                                                        DesignRow.deleted.is_(False))).scalar_one_or_none()

    def design_of_data_version(self, study_name: str, data_version: int | None = None) -> int | None:
        """The id of the design the runs of ``data_version`` (default: the newest) were made from.

        This is the one rule for "which design do these data belong to" (report, pages, CLI): the
        design recorded with the data version, never the newest design saved. None when the
        data version records no design (runs uploaded without one, or a database from before
        designs were recorded).
        """
        with self._session() as s:
            sid = self._study_id(s, study_name)
            version = _last_data_version(s, sid) if data_version is None else int(data_version)
            if version == 0:
                return None
            _check_data_version(s, sid, study_name, version)
            return s.execute(select(DataVersionRow.design_id).where(
                DataVersionRow.study_id == sid, DataVersionRow.version == version)).scalar_one_or_none()

    def rename_design(self, design_id: int, name: str, user: User | str) -> None:
        """Rename a design (frozen ones too: the name is not part of the data); audit-trailed."""
        new = (name or "").strip()
        if not new:
            raise DoeError("A design needs a name: type one (e.g. 'D-optimal, 40 runs').")
        with self._write(user) as (s, audit):
            row, study = _live_design(s, design_id)
            if row.name == new:
                return
            _check_free_name(new, _design_names(s, row.study_id) - {row.name}, study)
            audit.add("modify", "design", row.id, study, field="name", old=row.name, new=new)
            row.name = new

    def set_current_design(self, design_id: int, user: User | str) -> None:
        """Make a design the study's current one (the one it opens with); audit-trailed."""
        with self._write(user) as (s, audit):
            row, study = _live_design(s, design_id)
            _make_current(s, audit, study, row.study_id, row)

    def delete_design(self, design_id: int, user: User | str, reason: str | None = None) -> None:
        """Delete an unused design: it leaves the list and stays in the record (audit trail, bundles).

        A frozen design (results were entered against it) or one a data version records is
        refused with the reason.
        """
        with self._write(user) as (s, audit):
            row, study = _live_design(s, design_id)
            if row.frozen:
                raise DoeError(f"Design {design_id} \"{row.name}\" is frozen: results were entered against it, "
                               "so it stays in the record and cannot be deleted. Rename it or mark another "
                               "design current instead.")
            used = s.execute(select(func.min(DataVersionRow.version)).where(
                DataVersionRow.study_id == row.study_id, DataVersionRow.design_id == row.id)).scalar()
            if used is not None:
                raise DoeError(f"Design {design_id} \"{row.name}\" cannot be deleted: data version {used} "
                               "records runs made from it.")
            audit.add("delete", "design", row.id, study, field="deleted", old=False, new=True, reason=reason)
            row.deleted = True
            if row.current:
                audit.add("modify", "design", row.id, study, field="current", old=True, new=False, reason=reason)
                row.current = False

    # -- runs and data versions ------------------------------------------------------
    def append_runs(self, study_name: str, runs_df: pd.DataFrame, user: User | str,
                    reason: str | None = None, *, design_id: int | None = None) -> int:
        """Add new runs and apply edits in one transaction; return the new data version.

        Runs are matched by ``Run``. A blank cell keeps the stored value. Changing a
        value that was already saved needs a ``reason``. A batch that changes
        nothing returns the current data version and writes nothing. With a
        ``row_version`` column (as :meth:`runs` returns it), a run that someone
        else changed since it was read is refused with ConcurrentEditError.
        ``design_id`` records the (stored, not deleted) design the runs were made from with the new
        data version; without it the data version keeps the design of the one before.
        """
        with self._write(user) as (s, audit):
            return self._append(s, audit, study_name, runs_df, reason, design_id)

    def _append(self, s: Session, audit: AuditWriter, study_name: str, runs_df: pd.DataFrame,
                reason: str | None, design_id: int | None) -> int:
        """The body of :meth:`append_runs` inside an open write transaction."""
        batch = V.batch_rows(runs_df)
        expected = V.expected_versions(runs_df)
        sid = self._study_id(s, study_name)
        if design_id is not None:
            design_row, _ = _live_design(s, design_id)
            if design_row.study_id != sid:
                raise DoeError(f"Design {design_id} belongs to another study, not to '{study_name}'.")
        existing = {r.label: r for r in s.execute(select(RunRow).where(RunRow.study_id == sid)).scalars()}
        for label, version in expected.items():
            if label in existing and existing[label].row_version != version:
                raise ConcurrentEditError(_conflict_message(s, existing[label], version))
        touched = self._apply_batch(s, audit, study_name, sid, existing, batch, reason)
        if not touched:
            return _last_data_version(s, sid)
        version = self._new_data_version(s, audit, study_name, sid, touched, reason, design_id)
        self._freeze_designs(s, audit, study_name, sid, batch)
        return version

    def _apply_batch(self, s: Session, audit: AuditWriter, study: str, sid: int,
                     existing: dict[str, RunRow], batch: dict[str, dict[str, Any]],
                     reason: str | None) -> list[RunRow]:
        """Create new runs and edit changed ones; return the runs touched."""
        gone = [label for label in batch if label in existing and existing[label].deleted]
        if gone:
            raise DoeError(f"Run {quoted_list(gone)} was deleted earlier; a deleted run stays in the record "
                           "under its id. Give the new run another Run id.")
        created = [RunRow(study_id=sid, label=label, values_json=V.dumps(values), row_version=1, deleted=False)
                   for label, values in batch.items() if label not in existing]
        s.add_all(created)
        s.flush()
        for row in created:
            audit.add("create", "run", row.id, study, field=f"Run {row.label}", new=json.loads(row.values_json))
        edited = [existing[label] for label, values in batch.items() if label in existing
                  if _edit_run(audit, study, existing[label], values, reason)]
        return created + edited

    def _new_data_version(self, s: Session, audit: AuditWriter, study: str, sid: int,
                          touched: list[RunRow], reason: str | None, design_id: int | None = None) -> int:
        """Record a data version (hash over all runs now, its design) and the touched runs' revisions."""
        s.flush()
        current = {r.label: json.loads(r.values_json)
                   for r in s.execute(select(RunRow).where(RunRow.study_id == sid,
                                                           RunRow.deleted.is_(False))).scalars()}
        version = _last_data_version(s, sid) + 1
        digest = V.content_hash(current)
        if design_id is None and version > 1:  # edits keep the design the runs were made from
            design_id = s.execute(select(DataVersionRow.design_id).where(
                DataVersionRow.study_id == sid, DataVersionRow.version == version - 1)).scalar_one_or_none()
        s.add(DataVersionRow(study_id=sid, version=version, content_hash=digest, n_runs=len(current),
                             reason=reason or None, created_at=audit.ts, created_by=audit.user.name,
                             design_id=design_id))
        s.add_all(RunRevisionRow(run_id=r.id, data_version=version, row_version=r.row_version,
                                 values_json=r.values_json, deleted=bool(r.deleted)) for r in touched)
        audit.add("create", "data_version", f"{sid}:{version}", study, field="content_hash", new=digest,
                  reason=reason)
        if design_id is not None:
            audit.add("create", "data_version", f"{sid}:{version}", study, field="design_id", new=design_id)
        return version

    def _freeze_designs(self, s: Session, audit: AuditWriter, study: str, sid: int,
                        batch: dict[str, dict[str, Any]]) -> None:
        """Freeze the design the data were made from once any CQA result has been entered.

        When the data version records no design, every design of the study is frozen (as before
        designs were recorded with the data).
        """
        cqas = _response_names(_current_version(s, sid).yaml)
        if not any(values.get(c) is not None for values in batch.values() for c in cqas):
            return
        design_id = s.execute(select(DataVersionRow.design_id).where(
            DataVersionRow.study_id == sid, DataVersionRow.version == _last_data_version(s, sid))).scalar()
        query = select(DesignRow).where(DesignRow.study_id == sid, DesignRow.frozen.is_(False))
        if design_id is not None:
            query = query.where(DesignRow.id == design_id)
        for row in s.execute(query).scalars():
            row.frozen = True
            audit.add("modify", "design", row.id, study, field="frozen", old=False, new=True)

    def runs(self, study_name: str, data_version: int | None = None) -> pd.DataFrame:
        """The runs as of ``data_version`` (default: now), with ``run_id`` and ``row_version`` columns."""
        with self._session() as s:
            sid = self._study_id(s, study_name)
            if data_version is None:
                rows = s.execute(select(RunRow).where(RunRow.study_id == sid, RunRow.deleted.is_(False))
                                 .order_by(RunRow.id)).scalars()
                return V.frame([(r.id, r.label, r.row_version, json.loads(r.values_json)) for r in rows])
            return V.frame(_runs_as_of(s, sid, study_name, data_version))

    def data_versions(self, study_name: str) -> pd.DataFrame:
        """Every data version: version, content hash, number of runs, reason, created at/by, design id."""
        cols = ["version", "content_hash", "n_runs", "reason", "created_at", "created_by", "design_id"]
        with self._session() as s:
            sid = self._study_id(s, study_name)
            rows = s.execute(select(*(getattr(DataVersionRow, c) for c in cols))
                             .where(DataVersionRow.study_id == sid).order_by(DataVersionRow.version)).all()
        frame = pd.DataFrame(rows, columns=cols)
        frame["design_id"] = frame["design_id"].astype("Int64")
        return frame

    def update_result(self, run_id: int, cqa: str, value: Any, expected_row_version: int,
                      user: User | str, reason: str | None = None) -> int:
        """Set one result of one run if nobody changed the run since ``expected_row_version``.

        Returns the new data version (the current one when the value is unchanged).
        Raises ConcurrentEditError, naming the other change, when the row moved on.
        """
        with self._write(user) as (s, audit):
            row, study = _live_run(s, run_id, expected_row_version)
            cqas = _response_names(_current_version(s, row.study_id).yaml)
            if cqa not in cqas:
                raise DoeError(f"'{cqa}' is not a CQA of study '{study}'.{did_you_mean(cqa, cqas)} "
                               f"CQAs: {quoted_list(cqas)}.")
            if not _edit_run(audit, study, row, {cqa: stored_cell(value)}, reason):
                return _last_data_version(s, row.study_id)
            return self._new_data_version(s, audit, study, row.study_id, [row], reason)

    def delete_run(self, run_id: int, expected_row_version: int, user: User | str, reason: str) -> int:
        """Delete a run (kept in the record, marked deleted) with a reason; return the new data version.

        The run leaves the current data and every later data version; earlier
        data versions still hold it, and the audit trail keeps its values.
        """
        if not (reason or "").strip():
            raise DoeError("Deleting a run needs a reason (it is kept in the audit trail).")
        with self._write(user) as (s, audit):
            row, study = _live_run(s, run_id, expected_row_version)
            audit.add("delete", "run", row.id, study, field=f"Run {row.label}", old=json.loads(row.values_json),
                      reason=reason)
            row.deleted, row.row_version = True, row.row_version + 1
            return self._new_data_version(s, audit, study, row.study_id, [row], reason)

    # -- seed train: passage sheets and equivalence tests (doe.store._passages) -----------
    def save_passages(self, study_name: str, table: pd.DataFrame, user: User | str,
                      reason: str | None = None) -> int:
        """Save ``table`` (the whole passage sheet) as the study's next passage data version; its number.

        A sheet identical to the saved one writes nothing and returns the current version (0 when
        none). Changing or removing a saved row needs a ``reason``; every created row, changed
        value and removed row gets an audit record (see :mod:`doe.store._passages`).
        """
        rows = P.sheet_rows(table)
        with self._write(user) as (s, audit):
            return P.save_sheet(s, audit, self._study_id(s, study_name), study_name, rows, reason)

    def passages(self, study_name: str, version: int | None = None) -> pd.DataFrame:
        """The passage sheet as of ``version`` (default: the newest); empty, with its columns, when none is saved."""
        with self._session() as s:
            return P.sheet(s, self._study_id(s, study_name), study_name, version)

    def passage_versions(self, study_name: str) -> pd.DataFrame:
        """Every passage data version: version, content_hash, n_passages, reason, created_at, created_by."""
        with self._session() as s:
            return P.versions_frame(s, self._study_id(s, study_name))

    def save_equivalence(self, study_name: str, result: Mapping[str, Any], user: User | str, note: str = "") -> int:
        """Keep an equivalence test (``EquivalenceResult.to_json()``) with the newest passage data version; its id."""
        plain = P.plain_result(result)
        with self._write(user) as (s, audit):
            return P.save_equivalence(s, audit, self._study_id(s, study_name), study_name, plain, note)

    def equivalence_tests(self, study_name: str) -> pd.DataFrame:
        """The study's equivalence tests, oldest first: id, passage_version, response, reference, test,
        equivalent, result (dict), note, created_at, created_by."""
        with self._session() as s:
            return P.equivalence_frame(s, self._study_id(s, study_name))

    # -- manufacturing lots (doe.store._lots) --------------------------------------------
    def save_lots(self, study_name: str, table: pd.DataFrame, user: User | str, reason: str | None = None) -> int:
        """Save ``table`` (the whole lot sheet, one row per ``Lot``) as the study's next lot data version; its number.

        A sheet identical to the saved one writes nothing and returns the current version (0 when
        none). Changing a saved value or removing a saved lot needs a ``reason``; every created lot,
        changed value and removed lot gets an audit record (see :mod:`doe.store._lots`).
        """
        columns, rows = L.sheet_rows(table)
        with self._write(user) as (s, audit):
            return L.save_sheet(s, audit, self._study_id(s, study_name), study_name, columns, rows, reason)

    def lots(self, study_name: str, version: int | None = None) -> pd.DataFrame:
        """The lot sheet as of ``version`` (default: the newest), as saved; an empty DataFrame when none is saved."""
        with self._session() as s:
            return L.sheet(s, self._study_id(s, study_name), study_name, version)

    def lot_versions(self, study_name: str) -> pd.DataFrame:
        """Every lot data version: version, content_hash, n_lots, reason, created_at, created_by."""
        with self._session() as s:
            return L.versions_frame(s, self._study_id(s, study_name))

    # -- analyses and decisions -------------------------------------------------------
    def save_analysis(self, study_name: str, choices: dict[str, Any], summary: dict[str, Any],
                      user: User | str, data_version: int | None = None) -> int:
        """Store an analysis version (model choices per CQA, fitted summary); return its version.

        ``choices`` values may be ModelChoice objects or dicts; ``data_version``
        defaults to the newest. Both must be JSON-serialisable.
        """
        plain = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in choices.items()}
        choices_json, summary_json = _json(plain, "model choices"), _json(summary, "analysis summary")
        with self._write(user) as (s, audit):
            sid = self._study_id(s, study_name)
            dv = _last_data_version(s, sid) if data_version is None else data_version
            _check_data_version(s, sid, study_name, dv)
            version = (s.execute(select(func.max(AnalysisRow.version)).where(AnalysisRow.study_id == sid))
                       .scalar() or 0) + 1
            s.add(AnalysisRow(study_id=sid, version=version, data_version=dv, choices_json=choices_json,
                              summary_json=summary_json, created_at=audit.ts, created_by=audit.user.name))
            audit.add("create", "analysis", f"{sid}:{version}", study_name, field="choices",
                      new={"data_version": dv, "choices": plain})
            return version

    def analyses(self, study_name: str) -> pd.DataFrame:
        """Every analysis version: version, data_version, choices (dict), summary (dict), created at/by."""
        with self._session() as s:
            sid = self._study_id(s, study_name)
            rows = s.execute(select(AnalysisRow).where(AnalysisRow.study_id == sid)
                             .order_by(AnalysisRow.version)).scalars().all()
        return pd.DataFrame([(r.version, r.data_version, json.loads(r.choices_json), json.loads(r.summary_json),
                              r.created_at, r.created_by) for r in rows],
                            columns=["version", "data_version", "choices", "summary", "created_at",
                                     "created_by"])

    def latest_analysis(self, study_name: str) -> pd.Series | None:
        """The newest analysis version as one row (as in :meth:`analyses`), or None; reads only that row."""
        with self._session() as s:
            sid = self._study_id(s, study_name)
            r = s.execute(select(AnalysisRow).where(AnalysisRow.study_id == sid)
                          .order_by(AnalysisRow.version.desc()).limit(1)).scalar_one_or_none()
        if r is None:
            return None
        return pd.Series({"version": r.version, "data_version": r.data_version,
                          "choices": json.loads(r.choices_json), "summary": json.loads(r.summary_json),
                          "created_at": r.created_at, "created_by": r.created_by})

    def save_decision(self, study_name: str, threshold: float, set_point: dict[str, Any],
                      ranges: dict[str, Any], user: User | str, *, analysis_version: int | None = None,
                      note: str = "") -> int:
        """Store a design-space decision (threshold, set point, PAR/NOR ranges); return its id."""
        set_json, ranges_json = _json(set_point, "set point"), _json(ranges, "PAR/NOR ranges")
        with self._write(user) as (s, audit):
            sid = self._study_id(s, study_name)
            row = DecisionRow(study_id=sid, analysis_version=analysis_version, threshold=float(threshold),
                              set_point_json=set_json, ranges_json=ranges_json, note=note,
                              created_at=audit.ts, created_by=audit.user.name)
            s.add(row)
            s.flush()
            audit.add("create", "decision", row.id, study_name, field="decision",
                      new={"threshold": float(threshold), "set_point": set_point, "ranges": ranges,
                           "analysis_version": analysis_version, "note": note})
            return row.id

    def decisions(self, study_name: str) -> pd.DataFrame:
        """Every design-space decision: id, analysis version, threshold, set point, ranges, note."""
        with self._session() as s:
            sid = self._study_id(s, study_name)
            rows = s.execute(select(DecisionRow).where(DecisionRow.study_id == sid)
                             .order_by(DecisionRow.id)).scalars().all()
        return pd.DataFrame([(r.id, r.analysis_version, r.threshold, json.loads(r.set_point_json),
                              json.loads(r.ranges_json), r.note, r.created_at, r.created_by) for r in rows],
                            columns=["id", "analysis_version", "threshold", "set_point", "ranges", "note",
                                     "created_at", "created_by"])

    # -- audit ---------------------------------------------------------------------
    def audit_trail(self, study_name: str | None = None) -> pd.DataFrame:
        """The audit records (all, or one study's) in order; old/new values as JSON text."""
        cols = ["seq", "ts", "user_name", "authenticated", "action", "entity", "entity_id", "study",
                "field", "old_value", "new_value", "reason", "prev_hash", "hash", "row_hash"]
        query = select(*(getattr(AuditRow, c) for c in cols)).order_by(AuditRow.seq)
        if study_name is not None:
            query = query.where(AuditRow.study == study_name)
        with self._session() as s:
            rows = s.execute(query).all()
        return pd.DataFrame(rows, columns=cols)

    def verify_audit(self) -> AuditCheck:
        """Verify the trail: every hash link, the head's signature by the site key, every row's digest.

        The result names the first problem (a broken record, an unsigned or wrongly signed head, a
        stored row whose content no longer matches the trail, a row added or deleted outside the
        application) and carries the signed head (``check.head``) to write down or compare.
        """
        with self._session() as s:
            return verify_chain(s, {self.key.key_id: self.key.public}, self.key.key_id)


def verify_audit(store: Store) -> AuditCheck:
    """Verify the audit trail's hash chain of ``store`` (see :meth:`Store.verify_audit`)."""
    return store.verify_audit()


# -- helpers ------------------------------------------------------------------------
def _save_study(s: Session, audit: AuditWriter, study: Study, expected: int | None | object) -> int:
    """Write ``study`` as its next version inside an open transaction (see :meth:`Store.save_study`)."""
    text = study.to_yaml()
    digest = _text_digest(text)
    row = s.execute(select(StudyRow).where(StudyRow.name == study.name)).scalar_one_or_none()
    last = None if row is None else _latest_version(s, row.id)
    if last is not None and last.content_hash == digest:
        return last.version
    now = None if last is None else last.version
    if expected is not ANY_VERSION and expected != now:
        raise StudyConflictError(_study_conflict(s, study.name, row, expected, last), now)
    if row is None:
        row = StudyRow(name=study.name, created_at=audit.ts, created_by=audit.user.name)
        s.add(row)
        s.flush()
        audit.add("create", "study", row.id, study.name, field="name", new=study.name)
    version = 1 if last is None else last.version + 1
    s.add(StudyVersionRow(study_id=row.id, version=version, yaml=text, content_hash=digest,
                          created_at=audit.ts, created_by=audit.user.name))
    audit.add("create" if last is None else "modify", "study_version", f"{row.id}:{version}",
              study.name, field="yaml", old=None if last is None else last.yaml, new=text)
    return version


def _study_conflict(s: Session, name: str, row: StudyRow | None, expected: Any,
                    last: StudyVersionRow | None) -> str:
    """Who saved which versions of the study since ``expected``, and what they changed."""
    from doe.store._study_changes import study_changes

    if last is None or row is None:  # row is None only when last is
        return (f"Study '{name}' is no longer in the database (it was expected at version {expected}). "
                "Your change was not saved.")
    if expected is None:
        return (f"A study named '{name}' was saved by {last.created_by} at {last.created_at[:16].replace('T', ' ')} "
                f"UTC (now version {last.version}) while you were editing yours. Your change was not saved: "
                "open that study, or give yours another name.")
    newer = s.execute(select(StudyVersionRow).where(StudyVersionRow.study_id == row.id,
                                                    StudyVersionRow.version > int(expected))
                      .order_by(StudyVersionRow.version)).scalars().all()
    base = s.execute(select(StudyVersionRow.yaml).where(StudyVersionRow.study_id == row.id,
                                                        StudyVersionRow.version == int(expected))).scalar()
    who = "; ".join(f"version {v.version} by {v.created_by} at {v.created_at[:16].replace('T', ' ')} UTC"
                    for v in newer[-3:])
    changes = study_changes(base or "", last.yaml)
    what = (" They changed: " + "; ".join(changes) + ".") if changes else ""
    return (f"Study '{name}' was changed by someone else since you opened version {expected} "
            f"(now version {last.version}: {who}).{what} Your change was not saved: load the newest version "
            "and apply your change again.")


def _latest_version(s: Session, sid: int) -> StudyVersionRow | None:
    return s.execute(select(StudyVersionRow).where(StudyVersionRow.study_id == sid)
                     .order_by(StudyVersionRow.version.desc()).limit(1)).scalar_one_or_none()


def _current_version(s: Session, sid: int) -> StudyVersionRow:
    """The latest version of a stored study (a study is saved with its first version, in one transaction)."""
    row = _latest_version(s, sid)
    if row is None:  # only a database edited outside the workbench gets here
        raise DoeError(f"The store has no version of the study with id {sid}: the database was changed "
                       "outside the workbench.")
    return row


def _last_data_version(s: Session, sid: int) -> int:
    return s.execute(select(func.max(DataVersionRow.version))
                     .where(DataVersionRow.study_id == sid)).scalar() or 0


def _design_row(s: Session, design_id: int) -> DesignRow:
    row = s.get(DesignRow, int(design_id))
    if row is None:
        raise DoeError(f"There is no design {design_id} in the store.")
    return row


def _live_design(s: Session, design_id: int) -> tuple[DesignRow, str]:
    """A design to change or use and its study's name; refused when missing or deleted."""
    row = _design_row(s, design_id)
    if row.deleted:
        raise DoeError(f"Design {design_id} \"{row.name}\" was deleted; choose another design.")
    return row, study_row(s, row.study_id).name


def _record(row: DesignRow) -> DesignRecord:
    return DesignRecord(id=row.id, name=row.name, kind=row.kind, runs=count_runs(row.run_sheet), seed=row.seed,
                        model=row.model, study_version=row.study_version, frozen=bool(row.frozen),
                        current=bool(row.current), deleted=bool(row.deleted), created_at=row.created_at,
                        created_by=row.created_by)


def _design_names(s: Session, sid: int) -> set[str]:
    return set(s.execute(select(DesignRow.name).where(DesignRow.study_id == sid,
                                                      DesignRow.deleted.is_(False))).scalars())


def _check_free_name(name: str, taken: set[str], study: str) -> None:
    from doe.limits import MAX_STUDY_NAME_CHARS, bad_character

    if len(name) > MAX_STUDY_NAME_CHARS:
        raise DoeError(f"A design name has at most {MAX_STUDY_NAME_CHARS} characters (this one has {len(name)}): "
                       "shorten it.")
    odd = bad_character(name)
    if odd:
        raise DoeError(f"The design name contains {odd}: type the name without it.")
    if name in taken:
        raise DoeError(f"Study '{study}' already has a design named '{name}': choose another name.")


def _make_current(s: Session, audit: AuditWriter, study: str, sid: int, row: DesignRow) -> None:
    """Mark ``row`` the study's current design (the previous one unmarked), with audit records."""
    if row.current:
        return
    for other in s.execute(select(DesignRow).where(DesignRow.study_id == sid, DesignRow.current.is_(True))).scalars():
        other.current = False
        audit.add("modify", "design", other.id, study, field="current", old=True, new=False)
    row.current = True
    audit.add("modify", "design", row.id, study, field="current", old=False, new=True)


def _check_data_version(s: Session, sid: int, study: str, version: int) -> None:
    last = _last_data_version(s, sid)
    if not 1 <= version <= last:
        raise DoeError(f"Study '{study}' has no data version {version}; "
                       + (f"versions run from 1 to {last}." if last else "no runs are stored yet."))


def _runs_as_of(s: Session, sid: int, study: str, version: int) -> list[tuple[int, str, int, dict[str, Any]]]:
    """Each run's latest revision at or before ``version`` (runs deleted by then left out)."""
    _check_data_version(s, sid, study, version)
    rows = s.execute(select(RunRow.id, RunRow.label, RunRevisionRow.row_version, RunRevisionRow.values_json,
                            RunRevisionRow.deleted)
                     .join(RunRevisionRow, RunRevisionRow.run_id == RunRow.id)
                     .where(RunRow.study_id == sid, RunRevisionRow.data_version <= version)
                     .order_by(RunRow.id, RunRevisionRow.data_version)).all()
    latest = {rid: (rid, label, rv, json.loads(vj), gone) for rid, label, rv, vj, gone in rows}
    return [rec[:4] for rec in latest.values() if not rec[4]]


def _live_run(s: Session, run_id: int, expected_row_version: int) -> tuple[RunRow, str]:
    """The run to change and its study's name; refused if missing, deleted or changed meanwhile."""
    row = s.get(RunRow, run_id)
    if row is None:
        raise DoeError(f"There is no run with id {run_id}: reload the runs.")
    if row.row_version != expected_row_version:
        raise ConcurrentEditError(_conflict_message(s, row, expected_row_version))
    if row.deleted:
        raise DoeError(f"Run {row.label} was deleted: reload the runs.")
    return row, study_row(s, row.study_id).name


def _edit_run(audit: AuditWriter, study: str, row: RunRow, new: dict[str, Any], reason: str | None) -> bool:
    """Apply non-blank changed values to a run with one audit record each; True if anything changed."""
    values = json.loads(row.values_json)
    changes = {k: v for k, v in new.items() if v is not None and not same_value(values.get(k), v)}
    if not changes:
        return False
    saved = [k for k in changes if values.get(k) is not None]
    if saved and not (reason or "").strip():
        raise DoeError(f"Run {row.label}: {quoted_list(saved)} already had a saved value; give a reason "
                       "for changing it (it is kept in the audit trail).")
    for key, value in changes.items():
        audit.add("modify", "run", row.id, study, field=key, old=values.get(key), new=value,
                  reason=reason)
        values[key] = value
    row.values_json, row.row_version = V.dumps(values), row.row_version + 1
    return True


def _conflict_message(s: Session, row: RunRow, expected: int) -> str:
    """Who changed the run last, when, and what (old -> new), for a refused save."""
    last = s.execute(select(AuditRow).where(AuditRow.entity == "run", AuditRow.entity_id == str(row.id))
                     .order_by(AuditRow.seq.desc()).limit(1)).scalar_one_or_none()
    other = ""
    if last is not None:
        other = (f" {last.user_name} changed it at {last.ts}: {last.field} "
                 f"{_show(last.old_value)} → {_show(last.new_value)}.")
    return (f"Run {row.label} was changed by someone else since you loaded it (row version {expected}, "
            f"now {row.row_version}).{other} Your change was not saved: reload the run and apply it again.")


def _first_line(exc: DBAPIError) -> str:
    return (str(exc.orig).strip().splitlines() or ["unknown error"])[0]


def _show(text: str | None) -> str:
    if text is None:
        return "(empty)"
    value = json.loads(text)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _response_names(yaml_text: str) -> list[str]:
    data = yaml.safe_load(yaml_text) or {}
    return [str(r.get("name")) for r in data.get("responses") or [] if isinstance(r, dict)]


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise DoeError(f"The {what} cannot be stored as JSON ({exc}): use numbers, text, lists and "
                       "mappings.") from None

