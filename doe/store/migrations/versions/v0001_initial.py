"""Initial schema: studies and versions, designs, runs and data versions, analyses,
decisions, hash-chained audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64


def _stamp() -> list[sa.Column[Any]]:
    return [sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("created_by", sa.String(200), nullable=False)]


def _study_fk() -> sa.Column[Any]:
    return sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True)


def upgrade() -> None:
    """Create every table and the audit head (sequence 0, genesis hash)."""
    op.create_table("studies", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(200), nullable=False, unique=True), *_stamp())
    op.create_table("study_versions", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("yaml", sa.Text, nullable=False),
                    sa.Column("content_hash", sa.String(64), nullable=False), *_stamp(),
                    sa.UniqueConstraint("study_id", "version"))
    op.create_table("designs", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("study_version", sa.Integer, nullable=False),
                    sa.Column("kind", sa.String(60), nullable=False),
                    sa.Column("seed", sa.Integer, nullable=True),
                    sa.Column("model", sa.Text, nullable=True),
                    sa.Column("run_sheet", sa.Text, nullable=False),
                    sa.Column("frozen", sa.Boolean, nullable=False), *_stamp())
    op.create_table("data_versions", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("content_hash", sa.String(64), nullable=False),
                    sa.Column("n_runs", sa.Integer, nullable=False),
                    sa.Column("reason", sa.Text, nullable=True), *_stamp(),
                    sa.UniqueConstraint("study_id", "version"))
    op.create_table("runs", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("label", sa.String(100), nullable=False),
                    sa.Column("values_json", sa.Text, nullable=False),
                    sa.Column("row_version", sa.Integer, nullable=False),
                    sa.UniqueConstraint("study_id", "label"))
    op.create_table("run_revisions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
                    sa.Column("data_version", sa.Integer, nullable=False),
                    sa.Column("row_version", sa.Integer, nullable=False),
                    sa.Column("values_json", sa.Text, nullable=False))
    op.create_table("analyses", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("data_version", sa.Integer, nullable=False),
                    sa.Column("choices_json", sa.Text, nullable=False),
                    sa.Column("summary_json", sa.Text, nullable=False), *_stamp(),
                    sa.UniqueConstraint("study_id", "version"))
    op.create_table("decisions", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("analysis_version", sa.Integer, nullable=True),
                    sa.Column("threshold", sa.Float, nullable=False),
                    sa.Column("set_point_json", sa.Text, nullable=False),
                    sa.Column("ranges_json", sa.Text, nullable=False),
                    sa.Column("note", sa.Text, nullable=False), *_stamp())
    op.create_table("audit_trail", sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("ts", sa.String(32), nullable=False),
                    sa.Column("user_name", sa.String(200), nullable=False),
                    sa.Column("authenticated", sa.Boolean, nullable=False),
                    sa.Column("action", sa.String(10), nullable=False),
                    sa.Column("entity", sa.String(40), nullable=False),
                    sa.Column("entity_id", sa.String(64), nullable=False),
                    sa.Column("study", sa.String(200), nullable=True, index=True),
                    sa.Column("field", sa.String(200), nullable=True),
                    sa.Column("old_value", sa.Text, nullable=True),
                    sa.Column("new_value", sa.Text, nullable=True),
                    sa.Column("reason", sa.Text, nullable=True),
                    sa.Column("prev_hash", sa.String(64), nullable=False),
                    sa.Column("hash", sa.String(64), nullable=False))
    head = op.create_table("audit_head", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                           sa.Column("last_seq", sa.Integer, nullable=False),
                           sa.Column("last_hash", sa.String(64), nullable=False))
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}])


def downgrade() -> None:
    """Drop every table (loses all data: for development only)."""
    for name in ("audit_head", "audit_trail", "decisions", "analyses", "run_revisions", "runs",
                 "data_versions", "designs", "study_versions", "studies"):
        op.drop_table(name)
