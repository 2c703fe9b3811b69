"""Seed train: passage sheets as versioned data (passages, passage_revisions, passage_versions) and
equivalence tests between vessel scales (equivalence_tests).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

New tables only; no existing row changes, so no audit records are written. With DOE_APP_ROLE set
(PostgreSQL) the application's role gets the same rights on the new tables as on the others.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _stamp() -> list[sa.Column[Any]]:
    return [sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("created_by", sa.String(200), nullable=False)]


def _study_fk() -> sa.Column[Any]:
    return sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True)


def _deleted() -> sa.Column[Any]:
    return sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false())


def upgrade() -> None:
    """Create the four tables and grant the application's role its rights on them."""
    from doe.store._engine import grant_app_role

    op.create_table("passages", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("donor", sa.String(200), nullable=False),
                    sa.Column("passage", sa.Integer, nullable=False),
                    sa.Column("vessel", sa.String(200), nullable=False),
                    sa.Column("repeat", sa.Integer, nullable=False),
                    sa.Column("values_json", sa.Text, nullable=False),
                    sa.Column("row_version", sa.Integer, nullable=False), _deleted(),
                    sa.UniqueConstraint("study_id", "donor", "passage", "vessel", "repeat"))
    op.create_table("passage_revisions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("passage_id", sa.Integer, sa.ForeignKey("passages.id"), nullable=False, index=True),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("row_version", sa.Integer, nullable=False),
                    sa.Column("values_json", sa.Text, nullable=False), _deleted())
    op.create_table("passage_versions", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("content_hash", sa.String(64), nullable=False),
                    sa.Column("n_passages", sa.Integer, nullable=False),
                    sa.Column("reason", sa.Text, nullable=True),
                    sa.Column("order_json", sa.Text, nullable=False), *_stamp(),
                    sa.UniqueConstraint("study_id", "version"))
    op.create_table("equivalence_tests", sa.Column("id", sa.Integer, primary_key=True), _study_fk(),
                    sa.Column("passage_version", sa.Integer, nullable=True),
                    sa.Column("result_json", sa.Text, nullable=False),
                    sa.Column("note", sa.Text, nullable=False), *_stamp())
    grant_app_role(op.get_bind())


def downgrade() -> None:
    """Drop the tables (the seed-train data would be lost: for development only)."""
    for table in ("equivalence_tests", "passage_versions", "passage_revisions", "passages"):
        op.drop_table(table)
