"""Designs as records: a name, the study's current design, deletion; the design of each data version.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Existing designs are named "Design 1", "Design 2", ... in the order they were saved within their
study, the newest of each study becomes its current design (what the app opened before), and
existing data versions have no recorded design (reports then show the runs as performed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add designs.name/current/deleted and data_versions.design_id; name old designs, mark current."""
    with op.batch_alter_table("designs") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("current", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("data_versions") as batch:
        batch.add_column(sa.Column("design_id", sa.Integer, nullable=True))
    conn = op.get_bind()
    designs = sa.table("designs", sa.column("id", sa.Integer), sa.column("study_id", sa.Integer),
                       sa.column("name", sa.String), sa.column("current", sa.Boolean))
    rows = conn.execute(sa.select(designs.c.id, designs.c.study_id).order_by(designs.c.id)).all()
    number: dict[int, int] = {}
    newest: dict[int, int] = {}
    for design_id, study_id in rows:
        number[study_id] = number.get(study_id, 0) + 1
        newest[study_id] = design_id
        conn.execute(sa.update(designs).where(designs.c.id == design_id)
                     .values(name=f"Design {number[study_id]}"))
    for design_id in newest.values():
        conn.execute(sa.update(designs).where(designs.c.id == design_id).values(current=True))


def downgrade() -> None:
    """Drop the columns (names and the current mark would be lost: for development only)."""
    with op.batch_alter_table("data_versions") as batch:
        batch.drop_column("design_id")
    with op.batch_alter_table("designs") as batch:
        for column in ("deleted", "current", "name"):
            batch.drop_column(column)
