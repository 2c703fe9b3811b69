"""Where the store lives, how to connect, and bringing its schema to the newest revision."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from doe.store._signing import SiteKey

from doe.errors import DoeError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The newest schema revision (the last file in migrations/versions; a test keeps the two equal).
#: A database already there opens without loading Alembic, which takes a while to import.
HEAD_REVISION = "0007"
DB_FILE = "doe.sqlite"
#: Execution option that makes an SQLite transaction take the write lock at BEGIN.
WRITE_OPTION = "doe_write"
#: PostgreSQL advisory lock key held while checking and upgrading the schema.
MIGRATION_LOCK = 727_050_001


def default_url(data_dir: str | Path | None = None) -> str:
    """``DATABASE_URL`` if set, else an SQLite file in ``data_dir`` / ``DOE_DATA_DIR`` / ~/.doe-workbench."""
    if data_dir is None and os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    folder = Path(data_dir or os.environ.get("DOE_DATA_DIR") or Path.home() / ".doe-workbench")
    return f"sqlite:///{(folder.expanduser() / DB_FILE).as_posix()}"


def shown(url: str) -> str:
    """The URL for messages, with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unreadable URL)"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; an SQLite file gets its folder, WAL, foreign keys and a busy timeout."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DoeError(f"'{url}' is not a database URL, e.g. sqlite:///data/doe.sqlite or "
                       "postgresql+psycopg://user@host/db.") from None
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, pool_pre_ping=True)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
    except (NoSuchModuleError, ImportError) as exc:
        raise DoeError(f"No database driver for '{shown(url)}': {exc}. For PostgreSQL install "
                       "psycopg (3) and use postgresql+psycopg://.") from None
    _sqlite_events(engine)
    return engine


def _sqlite_events(engine: Engine) -> None:
    """WAL and foreign keys on every connection; BEGIN IMMEDIATE for writers (documented recipe)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        """A damaged file found on any read or write: say so, not just 'could not read'."""
        detail = str(context.original_exception)
        if isinstance(context.sqlalchemy_exception, DBAPIError) and (
                "malformed" in detail or "not a database" in detail):
            raise DoeError(_unreadable(engine.url.render_as_string(hide_password=False),
                                       context.sqlalchemy_exception))


def alembic_config(conn: Connection, key: SiteKey | None = None) -> Config:
    """An Alembic config pointing at doe/store/migrations, the open connection and the site key."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["site_key"] = key
    return cfg


def at_head(engine: Engine) -> bool:
    """Whether the database already has the newest schema (read without Alembic)."""
    try:
        with engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return False
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]
    except DBAPIError:
        return False  # the full check below says what is wrong


def create_fresh(conn: Connection, key: SiteKey) -> None:
    """Create the newest schema in an empty database in one step and record it as at HEAD_REVISION.

    The same tables, columns, keys, indexes, triggers and first audit-head row (signed with the
    site ``key``) as running every revision (tests/test_store.py compares the two), without
    loading Alembic: a first start is quicker.
    """
    from sqlalchemy import Column, MetaData, String, Table, insert

    from doe.store._audit import sign_head
    from doe.store._models import GENESIS_HASH, AuditHeadRow, Base

    Base.metadata.create_all(conn)
    head = AuditHeadRow(id=1, last_seq=0, last_hash=GENESIS_HASH)
    sign_head(head, key)
    conn.execute(insert(AuditHeadRow).values(id=1, last_seq=0, last_hash=GENESIS_HASH, key_id=head.key_id,
                                             signature=head.signature, signed_at=head.signed_at))
    version = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))
    version.create(conn)
    conn.execute(insert(version).values(version_num=HEAD_REVISION))
    append_only(conn)
    grant_app_role(conn)


#: Tables no one may change or empty once written (a trigger refuses UPDATE, DELETE, TRUNCATE).
APPEND_ONLY = ("audit_trail", "imported_audit")
#: What the application's role may do elsewhere (DOE_APP_ROLE, PostgreSQL): read, add, change rows.
APP_TABLES = ("studies", "study_versions", "designs", "runs", "run_revisions", "data_versions", "analyses",
              "decisions", "passages", "passage_revisions", "passage_versions", "equivalence_tests", "lots",
              "lot_revisions", "lot_versions", "audit_head")
_REFUSED = "is append-only: its records cannot be changed or deleted"


def append_only(conn: Connection) -> None:
    """Triggers that refuse UPDATE and DELETE (and on PostgreSQL TRUNCATE) on the audit tables.

    They stop accidents and the application's own role; someone who owns the tables can drop
    them, which is why the audit head is signed with a key kept outside the database.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION doe_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' {_REFUSED}'; END $$")
        for table in APPEND_ONLY:
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                                 "FOR EACH ROW EXECUTE FUNCTION doe_append_only()")
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION doe_append_only()")
        return
    for table in APPEND_ONLY:
        for event_name in ("update", "delete"):
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_no_{event_name} BEFORE {event_name.upper()} ON {table} "
                                 f"BEGIN SELECT RAISE(ABORT, '{table} {_REFUSED}'); END")


def grant_app_role(conn: Connection) -> None:
    """PostgreSQL, when DOE_APP_ROLE names the application's role: it may only read and add audit
    records (UPDATE, DELETE, TRUNCATE revoked), and read, add and change the other tables."""
    import re

    role = os.environ.get("DOE_APP_ROLE", "").strip()
    if conn.dialect.name != "postgresql" or not role:
        return
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]{0,62}", role):
        raise DoeError(f"DOE_APP_ROLE '{role[:70]}' is not a PostgreSQL role name (letters, digits, _ and $, "
                       "starting with a letter or _).")
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
    if not exists:
        raise DoeError(f"DOE_APP_ROLE names the role '{role}', which this PostgreSQL server does not have: "
                       "create it first (CREATE ROLE ... LOGIN), or unset DOE_APP_ROLE.")
    quoted = f'"{role}"'
    schema = '"' + conn.execute(text("SELECT current_schema()")).scalar_one().replace('"', '""') + '"'
    audit = ", ".join(APPEND_ONLY)
    present = set(inspect(conn).get_table_names())
    tables = [t for t in APP_TABLES if t in present]  # an earlier revision runs before later tables exist
    for sql in (f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
                f"REVOKE UPDATE, DELETE, TRUNCATE ON {audit} FROM {quoted}",
                f"GRANT SELECT, INSERT ON {audit} TO {quoted}",
                f"GRANT SELECT, INSERT, UPDATE ON {', '.join(tables)} TO {quoted}",
                f"REVOKE DELETE, TRUNCATE ON {', '.join(tables)} FROM {quoted}",
                f"GRANT SELECT ON alembic_version TO {quoted}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}"):
        conn.exec_driver_sql(sql)


def upgrade(engine: Engine, url: str, key: SiteKey, *, revisions: bool = False) -> None:
    """Check the database is ours and not newer, then upgrade it to head in one transaction.

    An empty database gets the newest schema at once (:func:`create_fresh`) unless ``revisions``
    asks for every Alembic revision to be run. ``key`` (the site key) signs the new audit head.
    """
    if at_head(engine):
        return
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            if conn.dialect.name == "postgresql":  # app replicas starting together migrate one at a time
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            if not revisions and not inspect(conn).get_table_names():
                create_fresh(conn, key)
                return
            from alembic import command
            from alembic.script import ScriptDirectory

            cfg = alembic_config(conn, key)
            _check_revision(conn, ScriptDirectory.from_config(cfg), url)
            command.upgrade(cfg, "head")
    except DBAPIError as exc:
        raise DoeError(_unreadable(url, exc)) from None


def _check_revision(conn: Connection, script: ScriptDirectory, url: str) -> None:
    """Refuse a foreign database and one written by a newer version of the software."""
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError

    current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        if tables:
            raise DoeError(f"'{shown(url)}' is a database of another application (it has tables such "
                           f"as '{sorted(tables)[0]}' but no DoE workbench schema): choose another "
                           "file or an empty database.")
        return
    try:
        script.get_revision(current)
    except CommandError:
        raise DoeError(f"The database '{shown(url)}' has schema revision '{current}', newer than this "
                       f"software knows (up to '{script.get_current_head()}'). Upgrade the software "
                       "to open it; it was not changed.") from None


def _unreadable(url: str, exc: DBAPIError) -> str:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if make_url(url).get_backend_name() == "sqlite":
        return (f"'{shown(url)}' is not a DoE workbench database or it is damaged ({detail}). "
                "Open another file, or restore it from a backup.")
    return f"Could not open the database '{shown(url)}' ({detail}). Check the URL and the server."
