"""Faults: a writer killed mid-batch (SQLite and PostgreSQL) leaves the whole batch or none of it;
a damaged database file is refused with a clear message.

The writer is a real process (``python -c``) killed with SIGKILL, so nothing in it gets to
clean up: the database alone must keep its promise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from doe.errors import DoeError
from doe.store import Store, User
from doe.store import _values as V
from doe.study import Study

ROOT = Path(__file__).resolve().parent.parent
NAME = "MSC expansion"
BATCH = 1000  # runs per batch of the writer killed at an arbitrary moment
SMALL = 300  # runs per batch of the writer stalled inside its transaction
ALICE = User("alice", authenticated=True)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

# The writer: opens the store, appends batches of BATCH runs; optionally stalls inside the
# transaction (writing READY to a file) at the first flush or just before COMMIT.
WRITER = r"""
import sys, time
import pandas as pd
from sqlalchemy import event
from sqlalchemy.orm import Session
from doe.store import Store, User

url, signal_file, stall, first, batches, size = sys.argv[1:7]
first, batches, size = int(first), int(batches), int(size)
store = Store.open(url)

def ready(text):
    with open(signal_file, "a") as fh:
        fh.write(text + "\n")

def stall_here(*_args):
    ready("READY")
    time.sleep(120)

if stall == "flush":  # the runs are inserted, no audit record or data version yet
    event.listen(Session, "after_flush", stall_here)
elif stall == "commit":  # every row written, COMMIT not yet sent
    event.listen(store.engine, "commit", stall_here)

for b in range(batches):
    start = first + b * size
    runs = range(start, start + size)
    df = pd.DataFrame({"Run": list(runs), "Agitation": [30.0 + (i % 7) * 10 for i in runs],
                       "Medium": ["FBS 10%" if i % 2 else "hPL 5%" for i in runs],
                       "Viability": [80.0 + (i % 10) for i in runs]})
    version = store.append_runs("MSC expansion", df, User(f"writer-{b}"))
    ready(f"COMMITTED {version}")
"""


def small_study() -> Study:
    return Study.from_dict({
        "name": NAME,
        "factors": [{"name": "Agitation", "low": 30, "high": 90, "units": "rpm"},
                    {"name": "Medium", "kind": "categorical", "levels": ["FBS 10%", "hPL 5%"]}],
        "responses": [{"name": "Viability", "units": "%", "goal": "maximize", "lower": 80}],
    })


def batch(first: int, n: int) -> pd.DataFrame:
    runs = range(first, first + n)
    return pd.DataFrame({"Run": list(runs), "Agitation": [30.0 + (i % 7) * 10 for i in runs],
                         "Medium": ["FBS 10%" if i % 2 else "hPL 5%" for i in runs],
                         "Viability": [80.0 + (i % 10) for i in runs]})


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'doe.sqlite'}"
    return request.getfixturevalue("pg_url")


def start_writer(url: str, signal_file: Path, stall: str, first: int, batches: int,
                 size: int = BATCH) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, url, str(signal_file), stall, str(first),
                             str(batches), str(size)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for(proc: subprocess.Popen, signal_file: Path, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if signal_file.exists() and word in signal_file.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the writer ended early ({proc.returncode}): {proc.stderr.read().decode()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"the writer never wrote {word!r} within {timeout} s")


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()


def check_consistent(url: str, batch_size: int, expected_batches: set[int]) -> int:
    """Reopen the store: whole batches only, data versions match the runs, chain intact; return #runs."""
    store = Store.open(url)
    try:
        runs = store.runs(NAME)
        n = len(runs)
        assert n % batch_size == 0 and n // batch_size in expected_batches, \
            f"{n} runs is not a whole number of {batch_size}-run batches {sorted(expected_batches)}"
        assert runs["Run"].is_unique
        versions = store.data_versions(NAME)
        assert versions["version"].tolist() == list(range(1, len(versions) + 1))
        assert versions["n_runs"].tolist() == [batch_size * (k + 1) for k in range(len(versions))]
        current = {str(r.Run): {"Agitation": r.Agitation, "Medium": r.Medium, "Viability": r.Viability}
                   for r in runs.itertuples()}
        assert versions["content_hash"].iloc[-1] == V.content_hash(current)
        trail = store.audit_trail(NAME)
        assert (trail["entity"] == "run").sum() == n  # one create record per run, none orphaned
        assert (trail["entity"] == "data_version").sum() == len(versions)
        assert trail["seq"].is_monotonic_increasing
        assert store.verify_audit().ok, str(store.verify_audit())
        # No stale lock: the next writer gets in at once (SQLite: the WAL was recovered).
        t = time.perf_counter()
        version = store.append_runs(NAME, batch(10**6, 3), ALICE)
        assert time.perf_counter() - t < 5
        assert version == len(versions) + 1
        assert len(store.runs(NAME)) == n + 3
        assert store.verify_audit().ok
        return n
    finally:
        store.close()


def seed_store(url: str, n: int = BATCH) -> None:
    store = Store.open(url)
    try:
        store.save_study(small_study(), ALICE)
        store.append_runs(NAME, batch(1, n), ALICE)
    finally:
        store.close()


@pytest.mark.parametrize("stall", ["flush", "commit"])
def test_writer_killed_inside_the_transaction_leaves_nothing(db_url, tmp_path, stall):
    """Killed after the runs were inserted, or with every row written but before COMMIT: none of it."""
    seed_store(db_url, SMALL)
    signal_file = tmp_path / "writer.signal"
    proc = start_writer(db_url, signal_file, stall, first=SMALL + 1, batches=1, size=SMALL)
    try:
        wait_for(proc, signal_file, "READY")
    finally:
        kill(proc)
    assert "COMMITTED" not in signal_file.read_text()
    assert check_consistent(db_url, SMALL, {1}) == SMALL
    if db_url.startswith("sqlite"):
        assert Path(db_url.removeprefix("sqlite:///")).is_file()


def test_writer_killed_at_any_moment_leaves_whole_batches(db_url, tmp_path):
    """A writer appending 1,000-run batches back to back, killed at an arbitrary moment."""
    seed_store(db_url)
    signal_file = tmp_path / "writer.signal"
    proc = start_writer(db_url, signal_file, "none", first=BATCH + 1, batches=50)
    try:
        wait_for(proc, signal_file, "COMMITTED")  # one batch is in; the next is being written
        time.sleep(0.6)
    finally:
        kill(proc)
    committed = signal_file.read_text().count("COMMITTED")
    # The kill may land between COMMIT and the child noting it: that batch is then whole.
    n = check_consistent(db_url, BATCH, {1 + committed, 2 + committed})
    assert n >= (1 + committed) * BATCH


# -- damaged or foreign files ----------------------------------------------------------------
def _written_store(path: Path, n: int = 1000) -> None:
    url = f"sqlite:///{path}"
    seed_store(url, n)
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def _open_and_read(path: Path) -> None:
    store = Store.open(f"sqlite:///{path}")
    try:
        store.runs(NAME)
        store.audit_trail()
        store.verify_audit()
    finally:
        store.close()


def test_corrupted_pages_give_a_clear_message(tmp_path):
    path = tmp_path / "doe.sqlite"
    _written_store(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8192] = b"\xde\xad\xbe\xef" * 2048  # two pages of garbage mid-file
    path.write_bytes(bytes(data))
    with pytest.raises(DoeError, match=r"damaged.*malformed.*restore it from a backup") as info:
        _open_and_read(path)
    assert str(path) in str(info.value)


def test_truncated_file_gives_a_clear_message(tmp_path):
    path = tmp_path / "doe.sqlite"
    _written_store(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DoeError, match=r"damaged.*restore it from a backup") as info:
        _open_and_read(path)
    assert str(path) in str(info.value)


def test_corrupted_header_gives_a_clear_message(tmp_path):
    path = tmp_path / "doe.sqlite"
    _written_store(path, 10)
    data = bytearray(path.read_bytes())
    data[0:16] = b"NOT A DATABASE!\0"
    path.write_bytes(bytes(data))
    with pytest.raises(DoeError, match=r"not a DoE workbench database or it is damaged"):
        _open_and_read(path)

