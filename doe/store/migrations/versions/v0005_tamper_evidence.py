"""Tamper evidence: row digests in the audit trail, a signed audit head, append-only audit tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Adds ``row_hash`` to ``audit_trail`` and ``imported_audit`` and the site key's signature
(``key_id``, ``signature``, ``signed_at``) to ``audit_head``. A database that already holds data
gets one audit record per stored row (user "system", action "modify", field "row_hash") with
the row's digest, so rows saved before this revision are covered too; then the head is signed
with the site key. Triggers then refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the
audit tables; with DOE_APP_ROLE set (PostgreSQL) that role may only read and add audit records.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.orm import Session

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REASON = "content hash of a row saved before tamper evidence (schema 0005)"


def upgrade() -> None:
    """Add the columns, cover every existing row with an audit record, sign the head, add the triggers."""
    from doe.errors import DoeError
    from doe.store._audit import AuditWriter, User, sign_head
    from doe.store._engine import append_only, grant_app_role
    from doe.store._integrity import ENTITIES_0005, all_rows

    key = context.config.attributes.get("site_key")
    if key is None:
        raise DoeError("Upgrading to schema 0005 needs the site key (it signs the audit trail): open the "
                       "database with the application (python -m doe health --db URL).")
    for table in ("audit_trail", "imported_audit"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("row_hash", sa.String(64), nullable=True))
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("signature", sa.Text, nullable=True))
        batch.add_column(sa.Column("signed_at", sa.String(32), nullable=True))
    conn = op.get_bind()
    session = Session(bind=conn)
    try:
        writer = AuditWriter(session, User("system"))
        rows_of = all_rows(session)
        for entity in ENTITIES_0005:
            for row in rows_of(entity):
                writer.add("modify", entity, row.entity_id, row.study, field="row_hash", reason=REASON)
        writer.finish()
        sign_head(writer.head, key)
        session.flush()
    finally:
        session.close()
    append_only(conn)
    grant_app_role(conn)


def downgrade() -> None:
    """Drop the triggers and columns (the tamper evidence would be lost: for development only)."""
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for table in ("audit_trail", "imported_audit"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS doe_append_only()")
    else:
        for table in ("audit_trail", "imported_audit"):
            for event_name in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{event_name}")
    with op.batch_alter_table("audit_head") as batch:
        for column in ("signed_at", "signature", "key_id"):
            batch.drop_column(column)
    for table in ("imported_audit", "audit_trail"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("row_hash")
