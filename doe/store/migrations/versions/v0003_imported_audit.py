"""Study bundles: a table for the audit records a bundle brings from its source store.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``imported_audit``: source audit records kept verbatim, per study and bundle."""
    op.create_table("imported_audit", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False,
                              index=True),
                    sa.Column("bundle", sa.String(64), nullable=False),
                    sa.Column("seq", sa.Integer, nullable=False),
                    sa.Column("ts", sa.String(32), nullable=False),
                    sa.Column("user_name", sa.String(200), nullable=False),
                    sa.Column("authenticated", sa.Boolean, nullable=False),
                    sa.Column("action", sa.String(10), nullable=False),
                    sa.Column("entity", sa.String(40), nullable=False),
                    sa.Column("entity_id", sa.String(64), nullable=False),
                    sa.Column("study", sa.String(200), nullable=True),
                    sa.Column("field", sa.String(200), nullable=True),
                    sa.Column("old_value", sa.Text, nullable=True),
                    sa.Column("new_value", sa.Text, nullable=True),
                    sa.Column("reason", sa.Text, nullable=True),
                    sa.Column("prev_hash", sa.String(64), nullable=False),
                    sa.Column("hash", sa.String(64), nullable=False))


def downgrade() -> None:
    """Drop the table (imported audit records would be lost: for development only)."""
    op.drop_table("imported_audit")
