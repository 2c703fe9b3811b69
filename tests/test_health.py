"""`python -m doe health`: one line and exit 0 for a good store, the clear error and exit 2 otherwise."""

import json
import os
import sqlite3
import subprocess
import sys

from tests.conftest import EXAMPLE, ROOT


def health(*args, env_db=None):
    env = None if env_db is None else {**os.environ, "DATABASE_URL": env_db}
    return subprocess.run([sys.executable, "-m", "doe", "health", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def test_ok_on_new_sqlite_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'doe.sqlite'}"
    proc = health("--db", url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ok: {url} schema ")
    assert lines[0].endswith(", 0 studies")
    assert (tmp_path / "doe.sqlite").exists()  # created and migrated on first open


def test_counts_studies_and_verifies_audit(tmp_path):
    url = f"sqlite:///{tmp_path / 'doe.sqlite'}"
    imp = subprocess.run([sys.executable, "-m", "doe", "import", "--db", url, str(EXAMPLE), "--user", "t"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0, imp.stderr
    proc = health(env_db=url)  # DATABASE_URL is the default, as in the container
    assert proc.returncode == 0, proc.stderr
    assert ", 1 studies" in proc.stdout
    proc = health("--db", url, "--verify-audit")
    assert proc.returncode == 0, proc.stderr
    assert "audit trail intact" in proc.stdout


def test_broken_audit_chain_exits_2(tmp_path):
    path = tmp_path / "doe.sqlite"
    url = f"sqlite:///{path}"
    imp = subprocess.run([sys.executable, "-m", "doe", "import", "--db", url, str(EXAMPLE), "--user", "t"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0, imp.stderr
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_trail_no_update")  # as someone with full access would
        conn.execute("UPDATE audit_trail SET user_name = 'mallory' WHERE seq = 1")
    assert health("--db", url).returncode == 0  # without --verify-audit the chain is not read
    proc = health("--db", url, "--verify-audit")
    assert proc.returncode == 2
    assert "audit trail broken" in proc.stderr and proc.stdout == ""


def test_edited_result_exits_2_naming_the_run(tmp_path):
    """A result changed in the runs table (the audit trail untouched) fails --verify-audit, naming the run."""
    path = tmp_path / "doe.sqlite"
    url = f"sqlite:///{path}"
    imp = subprocess.run([sys.executable, "-m", "doe", "import", "--db", url, str(EXAMPLE), "--user", "t",
                          "--runs", str(EXAMPLE.with_name("msc_example_results.csv"))],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0, imp.stderr
    assert health("--db", url, "--verify-audit").returncode == 0
    with sqlite3.connect(path) as conn:
        run_id, label, values = conn.execute("SELECT id, label, values_json FROM runs ORDER BY id").fetchone()
        edited = {k: (v + 10 if isinstance(v, float) else v) for k, v in json.loads(values).items()}
        conn.execute("UPDATE runs SET values_json = ? WHERE id = ?", (json.dumps(edited), run_id))
    proc = health("--db", url, "--verify-audit")
    assert proc.returncode == 2, proc.stdout
    assert f"run {label} of study" in proc.stderr and "does not match the audit trail" in proc.stderr


def test_newer_schema_exits_2_with_clear_message(tmp_path):
    path = tmp_path / "doe.sqlite"
    assert health("--db", f"sqlite:///{path}").returncode == 0
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    proc = health("--db", f"sqlite:///{path}")
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "newer than this software" in err[0] and "Upgrade the software" in err[0]


def test_foreign_file_exits_2(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    proc = health("--db", f"sqlite:///{path}")
    assert proc.returncode == 2
    assert "another application" in proc.stderr and "'invoices'" in proc.stderr


def test_postgres_unreachable_hides_password():
    # port 1 on loopback: refused at once; connect_timeout bounds it if a firewall drops instead
    url = "postgresql+psycopg://doe:Sup3rSecretPw@127.0.0.1:1/doe?connect_timeout=2"
    proc = health("--db", url)
    assert proc.returncode == 2
    assert "Sup3rSecretPw" not in proc.stderr + proc.stdout
    assert "doe:***@127.0.0.1:1/doe" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
