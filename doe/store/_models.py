"""Tables of the store (SQLAlchemy 2 typed declarative).

The schema is changed only by the Alembic revisions in ``doe/store/migrations``;
these classes must match the newest revision exactly, because an empty database
is created from them in one step (``doe.store._engine.create_fresh``; a test
compares that schema with the one the revisions build).
Times are UTC ISO-8601 text (``2026-11-28T15:10:00.123456Z``) so they read
back identically on every database.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from doe.errors import DoeError

GENESIS_HASH = "0" * 64


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class StudyRow(Base):
    """A study, by name; its definitions are in :class:`StudyVersionRow`."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


def study_row(s: Session, sid: int) -> StudyRow:
    """The study with id ``sid``, which a stored row's ``study_id`` names (a foreign key: it exists)."""
    row = s.get(StudyRow, sid)
    if row is None:  # only a database edited outside the workbench gets here
        raise DoeError(f"The store has no study with id {sid}: the database was changed outside the workbench.")
    return row


class StudyVersionRow(Base):
    """One saved version of a study: its YAML text and SHA-256 of that text."""

    __tablename__ = "study_versions"
    __table_args__ = (UniqueConstraint("study_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    yaml: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


class DesignRow(Base):
    """A design's run sheet (CSV text), name and how it was made; frozen once results exist.

    ``current`` marks the design the study opens with (at most one per study); a deleted design
    stays here for the audit trail and is hidden from the list.
    """

    __tablename__ = "designs"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    study_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(60))
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_sheet: Mapped[str] = mapped_column(Text)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    current: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class DataVersionRow(Base):
    """One batch of new or edited runs; ``content_hash`` covers all runs after it; the design they were run on."""

    __tablename__ = "data_versions"
    __table_args__ = (UniqueConstraint("study_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    n_runs: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))
    #: The design (designs.id) the runs were made from; None when not recorded.
    design_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RunRow(Base):
    """The current values of one run (settings and results, JSON) with its row version."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("study_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    values_json: Mapped[str] = mapped_column(Text)
    row_version: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class RunRevisionRow(Base):
    """A run's values as of one data version (append-only; rebuilds old data versions)."""

    __tablename__ = "run_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    data_version: Mapped[int] = mapped_column(Integer)
    row_version: Mapped[int] = mapped_column(Integer)
    values_json: Mapped[str] = mapped_column(Text)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class AnalysisRow(Base):
    """An analysis version: model choices per CQA, the data version, the fitted summary."""

    __tablename__ = "analyses"
    __table_args__ = (UniqueConstraint("study_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    data_version: Mapped[int] = mapped_column(Integer)
    choices_json: Mapped[str] = mapped_column(Text)
    summary_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


class DecisionRow(Base):
    """A design-space decision: probability threshold, set point, PAR/NOR ranges."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    analysis_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    set_point_json: Mapped[str] = mapped_column(Text)
    ranges_json: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


class PassageRow(Base):
    """One row of a study's seed-train passage sheet now: its key, values (JSON) and row version.

    The key is (donor, passage, vessel, repeat): ``repeat`` counts rows of the same donor, passage
    and vessel in sheet order (parallel vessels), from 1. A removed row stays, marked deleted.
    """

    __tablename__ = "passages"
    __table_args__ = (UniqueConstraint("study_id", "donor", "passage", "vessel", "repeat"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    donor: Mapped[str] = mapped_column(String(200))
    passage: Mapped[int] = mapped_column(Integer)
    vessel: Mapped[str] = mapped_column(String(200))
    repeat: Mapped[int] = mapped_column(Integer)
    values_json: Mapped[str] = mapped_column(Text)
    row_version: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PassageRevisionRow(Base):
    """A passage row's values as of one passage data version (append-only; rebuilds old versions)."""

    __tablename__ = "passage_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    passage_id: Mapped[int] = mapped_column(ForeignKey("passages.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    row_version: Mapped[int] = mapped_column(Integer)
    values_json: Mapped[str] = mapped_column(Text)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PassageVersionRow(Base):
    """One saved passage sheet: its content hash, row count, reason, and the rows' keys in sheet order."""

    __tablename__ = "passage_versions"
    __table_args__ = (UniqueConstraint("study_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    n_passages: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: JSON list of the rows' keys [donor, passage, vessel, repeat] in sheet order.
    order_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


class EquivalenceTestRow(Base):
    """An equivalence test a scientist ran (the result's JSON), with the passage data version it used."""

    __tablename__ = "equivalence_tests"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    passage_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result_json: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


class LotRow(Base):
    """One manufacturing lot of a study's lot sheet now: its lot number, values (JSON) and row version.

    A removed lot stays, marked deleted.
    """

    __tablename__ = "lots"
    __table_args__ = (UniqueConstraint("study_id", "lot"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    lot: Mapped[str] = mapped_column(String(200))
    values_json: Mapped[str] = mapped_column(Text)
    row_version: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class LotRevisionRow(Base):
    """A lot's values as of one lot data version (append-only; rebuilds old versions)."""

    __tablename__ = "lot_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    row_version: Mapped[int] = mapped_column(Integer)
    values_json: Mapped[str] = mapped_column(Text)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class LotVersionRow(Base):
    """One saved lot sheet: its content hash, lot count, reason, column order and lots in sheet order."""

    __tablename__ = "lot_versions"
    __table_args__ = (UniqueConstraint("study_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    n_lots: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: JSON list of the sheet's column names in order.
    columns_json: Mapped[str] = mapped_column(Text)
    #: JSON list of the lots in sheet order.
    order_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(200))


class AuditRow(Base):
    """One audit record (append-only: triggers refuse UPDATE and DELETE), hash-chained to the one before."""

    __tablename__ = "audit_trail"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(32))
    user_name: Mapped[str] = mapped_column(String(200))
    authenticated: Mapped[bool] = mapped_column(Boolean)
    action: Mapped[str] = mapped_column(String(10))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    study: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    field: Mapped[str | None] = mapped_column(String(200), nullable=True)
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    #: The digest of the row the record is about as it was when the change was committed
    #: (doe.store._integrity); None for records from before schema 0005 and for non-row entities.
    row_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditHeadRow(Base):
    """The single row naming the last audit record; writers lock it, so the chain never forks."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    #: The site key's signature (base64 Ed25519) over doe.store._integrity.head_message, its key id
    #: and when it was made: the anchor someone with database access alone cannot forge.
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    signed_at: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ImportedAuditRow(Base):
    """An audit record brought in with a study bundle, kept verbatim (its hash links the source store).

    ``bundle`` is the SHA-256 of the manifest of the bundle that first brought
    the record into any store; ``seq`` is the record's number in its own store.
    """

    __tablename__ = "imported_audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    bundle: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[str] = mapped_column(String(32))
    user_name: Mapped[str] = mapped_column(String(200))
    authenticated: Mapped[bool] = mapped_column(Boolean)
    action: Mapped[str] = mapped_column(String(10))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    study: Mapped[str | None] = mapped_column(String(200), nullable=True)
    field: Mapped[str | None] = mapped_column(String(200), nullable=True)
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    #: The digest of the row the record is about as it was when the change was committed
    #: (doe.store._integrity); None for records from before schema 0005 and for non-row entities.
    row_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
