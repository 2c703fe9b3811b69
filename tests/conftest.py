from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # importable: pyproject.toml sets pytest's pythonpath = ["."]
REFERENCE = ROOT / "tests" / "reference_cases"
EXAMPLE = ROOT / "data" / "msc_expansion.yaml"


@pytest.fixture
def example_study():
    from doe.study import Study

    return Study.load(EXAMPLE)


@pytest.fixture
def cont_study():
    """Five continuous factors A..E on 0..10 and one response."""
    from doe.study import Study

    return Study.from_dict({
        "name": "five", "factors": [{"name": n, "low": 0, "high": 10} for n in "ABCDE"],
        "responses": [{"name": "Y"}],
    })


def make_study(factors, responses=None, **kw):
    from doe.study import Study

    return Study.from_dict({"name": "t", "factors": factors,
                            "responses": responses or [{"name": "Y"}], **kw})


# -- PostgreSQL ---------------------------------------------------------------------------
# Tests that need PostgreSQL use the fixture ``pg_url`` (a fresh schema per test) or
# ``pg_required`` (just the server URL). Without DOE_TEST_POSTGRES_URL they skip, saying
# why; with DOE_REQUIRE_POSTGRES=1 (set by .ci/run) they fail instead of skipping.
PG_SKIP_REASON = ("DOE_TEST_POSTGRES_URL is not set: no PostgreSQL to test against (set it to e.g. "
                  "postgresql+psycopg://user:password@127.0.0.1:5432/doe_test; .ci/run does)")

from contextlib import contextmanager  # noqa: E402  (this section was appended)


def postgres_required() -> bool:
    """True when a missing PostgreSQL (or browser) must fail the run instead of skipping (CI)."""
    import os

    return os.environ.get("DOE_REQUIRE_POSTGRES", "").strip() not in ("", "0")


def skip_or_fail(reason: str) -> None:
    """Skip the test with ``reason``, or fail it when DOE_REQUIRE_POSTGRES=1."""
    if postgres_required():
        pytest.fail(f"DOE_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def postgres_test_url() -> str:
    """DOE_TEST_POSTGRES_URL, or skip (fail under DOE_REQUIRE_POSTGRES=1) when it is not set."""
    import os

    url = os.environ.get("DOE_TEST_POSTGRES_URL", "").strip()
    if not url:
        skip_or_fail(PG_SKIP_REASON)
    return url


@contextmanager
def fresh_pg_schema(base_url: str):
    """A URL to a new, empty schema of the test PostgreSQL database; the schema is dropped after.

    The schema is selected with libpq's ``options=-csearch_path=...``, so every
    process given the URL (a writer, a Streamlit server) works in it alone.
    """
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(base_url)
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    schema = f"doe_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_required() -> str:
    """The test PostgreSQL URL (DOE_TEST_POSTGRES_URL); skip, or fail under DOE_REQUIRE_POSTGRES=1."""
    return postgres_test_url()


@pytest.fixture
def pg_url(pg_required):
    """A URL to a fresh, empty schema of the test PostgreSQL database, dropped after the test."""
    with fresh_pg_schema(pg_required) as url:
        yield url


# -- markers (registered in pyproject.toml) ---------------------------------------------------
#: Fixtures that need PostgreSQL, and parameter values that select it (test_tamper's ``store``,
#: test_store_faults' ``db_url``, test_store's ``backend``).
POSTGRES_FIXTURES = {"pg_url", "pg_required"}
POSTGRES_PARAMS = {"postgres", "postgresql"}


def pytest_collection_modifyitems(config, items):
    """Mark ``postgres`` every test that uses a PostgreSQL fixture or parameter, and ``browser`` every
    test that uses the ``browser`` fixture (tests/test_e2e_store.py); tests that start Playwright
    themselves carry ``@pytest.mark.browser``. Marking selects (``-m "not browser"``), never skips."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if names & POSTGRES_FIXTURES or any(isinstance(v, str) and v in POSTGRES_PARAMS for v in params.values()):
            item.add_marker(pytest.mark.postgres)
        if "browser" in names:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session", autouse=True)
def site_key_file(tmp_path_factory):
    """One site key for the whole run, in a temporary folder (the suite never writes a key into ~),
    set as DOE_SITE_KEY_FILE before any fixture opens a store (module fixtures included)."""
    import os

    from doe.store._signing import new_key_file

    path = tmp_path_factory.mktemp("site-key") / "site-key.pem"
    new_key_file(path)
    before = os.environ.get("DOE_SITE_KEY_FILE")
    os.environ["DOE_SITE_KEY_FILE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("DOE_SITE_KEY_FILE", None)
    else:
        os.environ["DOE_SITE_KEY_FILE"] = before


@pytest.fixture(autouse=True)
def _own_database(tmp_path_factory, monkeypatch, site_key_file):
    """Every test gets its own empty local database (never the user's ~/.doe-workbench), and the
    run's site key (DOE_SITE_KEY_FILE; a test of where keys are found unsets it)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DOE_SITE_KEY", raising=False)
    monkeypatch.delenv("DOE_TRUSTED_KEYS", raising=False)
    monkeypatch.setenv("DOE_DATA_DIR", str(tmp_path_factory.mktemp("doe-data")))
    monkeypatch.setenv("DOE_SITE_KEY_FILE", str(site_key_file))


def app_with_example_results(timeout: float = 180):
    """The app in AppTest with a user name, the example study and its results loaded (Runs page: Load
    the example results), so the study, its design and data version 1 are in the test's database."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    assert not at.exception, at.exception
    return at


def as_attacker(engine, *statements) -> None:
    """Run SQL on the store's database as someone with full database access would: drop the audit
    tables' append-only triggers, run ``statements`` (SQL text, or (SQL, parameters) for
    ``sqlalchemy.text``), put the triggers back (one transaction)."""
    from sqlalchemy import text

    from doe.store._engine import APPEND_ONLY, append_only

    with engine.begin() as conn:
        for table in APPEND_ONLY:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            else:
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        for sql in statements:
            if isinstance(sql, str):
                conn.exec_driver_sql(sql)
            else:
                conn.execute(text(sql[0]), sql[1])
        append_only(conn)
