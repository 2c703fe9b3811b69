"""Alembic environment: run on the connection the store passes in ``config.attributes``.

The store calls ``alembic.command.upgrade`` itself (see ``doe.store._engine``);
there is no alembic.ini and no set-up step.
"""

from __future__ import annotations

from alembic import context


def run_migrations_online() -> None:
    """Migrate on the store's open connection, inside its transaction."""
    connection = context.config.attributes["connection"]
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(connection=connection, target_metadata=None, render_as_batch=is_sqlite)
    with context.begin_transaction():
        context.run_migrations()


# Only when Alembic runs this file (doctest collection imports it too).
if hasattr(context, "config"):
    run_migrations_online()
