"""Manufacturing lots: lot sheets as versioned data (lots, lot_revisions, lot_versions).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

New tables only; no existing row changes, so no audit records are written. With DOE_APP_ROLE set
(PostgreSQL) the application's role gets the same rights on the new tables as on the others.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _deleted() -> sa.Column[Any]:
    return sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false())


def upgrade() -> None:
    """Create the three tables and grant the application's role its rights on them."""
    from doe.store._engine import grant_app_role

    op.create_table("lots", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
                    sa.Column("lot", sa.String(200), nullable=False),
                    sa.Column("values_json", sa.Text, nullable=False),
                    sa.Column("row_version", sa.Integer, nullable=False), _deleted(),
                    sa.UniqueConstraint("study_id", "lot"))
    op.create_table("lot_revisions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("lot_id", sa.Integer, sa.ForeignKey("lots.id"), nullable=False, index=True),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("row_version", sa.Integer, nullable=False),
                    sa.Column("values_json", sa.Text, nullable=False), _deleted())
    op.create_table("lot_versions", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
                    sa.Column("version", sa.Integer, nullable=False),
                    sa.Column("content_hash", sa.String(64), nullable=False),
                    sa.Column("n_lots", sa.Integer, nullable=False),
                    sa.Column("reason", sa.Text, nullable=True),
                    sa.Column("columns_json", sa.Text, nullable=False),
                    sa.Column("order_json", sa.Text, nullable=False),
                    sa.Column("created_at", sa.String(32), nullable=False),
                    sa.Column("created_by", sa.String(200), nullable=False),
                    sa.UniqueConstraint("study_id", "version"))
    grant_app_role(op.get_bind())


def downgrade() -> None:
    """Drop the tables (the lot data would be lost: for development only)."""
    for table in ("lot_versions", "lot_revisions", "lots"):
        op.drop_table(table)
