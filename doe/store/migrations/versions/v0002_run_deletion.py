"""Deleting a run: runs and run revisions get a ``deleted`` flag (rows are never removed).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``deleted`` (default false) to runs and run_revisions; existing rows stay live."""
    for table in ("runs", "run_revisions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop the flags (a deleted run would come back: for development only)."""
    for table in ("run_revisions", "runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted")
