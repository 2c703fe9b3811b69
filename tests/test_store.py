"""The store: versions, data versions, audit trail and its hash chain, concurrency, faults."""

from __future__ import annotations

import json
import os
import sqlite3

import pandas as pd
import pytest

from doe.errors import DoeError
from doe.store import ConcurrentEditError, Store, User, _audit, default_url, verify_audit
from doe.study import Study
from tests.conftest import ROOT, as_attacker

ALICE = User("alice", authenticated=True)


def small_study(high: float = 90) -> Study:
    return Study.from_dict({
        "name": "MSC expansion",
        "factors": [{"name": "Agitation", "low": 30, "high": high, "units": "rpm"},
                    {"name": "Medium", "kind": "categorical", "levels": ["FBS 10%", "hPL 5%"]}],
        "responses": [{"name": "Viability", "units": "%", "goal": "maximize", "lower": 80}],
    })


def batch(first: int, n: int, viability: bool = True) -> pd.DataFrame:
    runs = range(first, first + n)
    return pd.DataFrame({
        "Run": list(runs),
        "Agitation": [30.0 + (i % 7) * 10 for i in runs],
        "Medium": ["FBS 10%" if i % 2 else "hPL 5%" for i in runs],
        "Viability": [80.0 + (i % 10) if viability else float("nan") for i in runs],
    })


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    yield s
    s.close()


@pytest.fixture
def stocked(store):
    store.save_study(small_study(), ALICE)
    store.append_runs("MSC expansion", batch(1, 4), ALICE)
    return store


# -- opening --------------------------------------------------------------------
def test_default_url_uses_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DOE_DATA_DIR", str(tmp_path / "new folder"))
    url = default_url()
    assert url == f"sqlite:///{(tmp_path / 'new folder' / 'doe.sqlite').as_posix()}"
    store = Store.open()
    try:
        assert (tmp_path / "new folder" / "doe.sqlite").is_file()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert default_url() == "postgresql+psycopg://u@h/db"


def test_reopen_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'doe.sqlite'}"
    first = Store.open(url)
    first.save_study(small_study(), ALICE)
    first.close()
    again = Store.open(url)
    assert again.load_study("MSC expansion").to_yaml() == small_study().to_yaml()
    again.close()


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "doe.sqlite"
    Store.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(DoeError, match="newer than this software.*Upgrade the software"):
        Store.open(f"sqlite:///{path}")


def test_non_database_file_refused(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("These are my lab notes, not a database.\n" * 50)
    with pytest.raises(DoeError, match="not a DoE workbench database or it is damaged"):
        Store.open(f"sqlite:///{path}")
    assert path.read_text().startswith("These are my lab notes")


def test_foreign_sqlite_database_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(DoeError, match="another application.*'invoices'"):
        Store.open(f"sqlite:///{path}")


def test_bad_url_refused():
    with pytest.raises(DoeError, match="not a database URL"):
        Store.open("this is not a url")


# -- studies ----------------------------------------------------------------------
def test_study_versions_increase_and_round_trip(store):
    assert store.save_study(small_study(), ALICE) == 1
    assert store.save_study(small_study(), ALICE) == 1  # same text: no new version
    assert store.save_study(small_study(high=120), "bob") == 2
    versions = store.study_versions("MSC expansion")
    assert versions["version"].tolist() == [1, 2]
    assert versions["saved_by"].tolist() == ["alice", "bob"]
    assert versions["content_hash"].nunique() == 2
    assert store.load_study("MSC expansion").factor("Agitation").high == 120
    assert store.load_study("MSC expansion", 1).to_yaml() == small_study().to_yaml()
    studies = store.list_studies()
    assert studies[["name", "latest_version"]].values.tolist() == [["MSC expansion", 2]]


def test_unknown_study_and_version(store):
    store.save_study(small_study(), ALICE)
    with pytest.raises(DoeError, match="No study named 'MSC expansoin'.*Did you mean 'MSC expansion'"):
        store.load_study("MSC expansoin")
    with pytest.raises(DoeError, match="no version 7"):
        store.load_study("MSC expansion", 7)


def test_empty_user_refused(store):
    with pytest.raises(DoeError, match="user name"):
        store.save_study(small_study(), " ")


# -- designs ----------------------------------------------------------------------
def test_design_round_trip_and_frozen_by_results(store):
    from doe.generators import full_factorial

    study = small_study()
    store.save_study(study, ALICE)
    design = full_factorial(study, seed=3)
    did = store.save_design("MSC expansion", design, ALICE)
    back = store.load_design(did)
    pd.testing.assert_frame_equal(back.table, design.table, check_dtype=False)
    assert (back.kind, back.seed) == (design.kind, design.seed)
    assert not store.designs("MSC expansion")["frozen"].any()
    store.append_runs("MSC expansion", batch(1, 2, viability=False), ALICE)
    assert not store.designs("MSC expansion")["frozen"].any()  # settings only: not yet
    store.append_runs("MSC expansion", batch(3, 2), ALICE)
    assert store.designs("MSC expansion")["frozen"].all()
    frozen = store.audit_trail("MSC expansion").query("entity == 'design' and field == 'frozen'")
    assert frozen[["old_value", "new_value"]].values.tolist() == [["false", "true"]]


# -- runs and data versions ---------------------------------------------------------
def test_runs_round_trip(stocked):
    runs = stocked.runs("MSC expansion")
    expected = batch(1, 4)
    pd.testing.assert_frame_equal(runs[expected.columns.tolist()], expected, check_dtype=False)
    assert runs["row_version"].tolist() == [1, 1, 1, 1]
    assert stocked.data_versions("MSC expansion")["version"].tolist() == [1]


def test_data_version_hash_changes_only_with_data(stocked):
    name = "MSC expansion"
    assert stocked.append_runs(name, batch(1, 4), ALICE) == 1  # same data: nothing new
    assert stocked.append_runs(name, batch(1, 4).astype({"Agitation": int}), ALICE) == 1  # 60 == 60.0
    v2 = stocked.append_runs(name, batch(5, 2), ALICE)
    assert v2 == 2
    run1 = stocked.runs(name).iloc[0]
    v3 = stocked.update_result(int(run1.run_id), "Viability", 99.0, 1, ALICE, reason="transcription error")
    v4 = stocked.update_result(int(run1.run_id), "Viability", run1.Viability, 2, ALICE, reason="undo")
    hashes = stocked.data_versions(name).set_index("version")["content_hash"]
    assert hashes.index.tolist() == [1, 2, 3, 4]
    assert hashes[1] != hashes[2] != hashes[3]
    assert hashes[4] == hashes[2]  # same data again, same hash
    assert (v3, v4) == (3, 4)


def test_old_data_versions_are_kept(stocked):
    name = "MSC expansion"
    stocked.append_runs(name, batch(5, 2), ALICE)
    run1 = stocked.runs(name).iloc[0]
    stocked.update_result(int(run1.run_id), "Viability", 50.0, 1, ALICE, reason="re-measured")
    assert len(stocked.runs(name, 1)) == 4
    assert stocked.runs(name, 1)["Viability"].iloc[0] == run1.Viability
    assert stocked.runs(name, 3)["Viability"].iloc[0] == 50.0
    assert stocked.runs(name, 3)["row_version"].iloc[0] == 2
    with pytest.raises(DoeError, match="no data version 9"):
        stocked.runs(name, 9)


def test_blank_cells_fill_without_reason_but_edits_need_one(store):
    name = "MSC expansion"
    store.save_study(small_study(), ALICE)
    store.append_runs(name, batch(1, 3, viability=False), ALICE)
    filled = batch(1, 3)
    assert store.append_runs(name, filled, ALICE) == 2  # first results: no reason needed
    edited = filled.assign(Viability=filled["Viability"] + 1)
    with pytest.raises(DoeError, match="already had a saved value; give a reason"):
        store.append_runs(name, edited, ALICE)
    with pytest.raises(DoeError, match="give a reason"):
        store.append_runs(name, edited, ALICE, reason="   ")
    assert store.append_runs(name, edited, ALICE, reason="plate reader recalibrated") == 3
    run1 = store.runs(name).iloc[0]
    with pytest.raises(DoeError, match="give a reason"):
        store.update_result(int(run1.run_id), "Viability", 1.0, int(run1.row_version), ALICE)


def test_deleted_run_leaves_later_versions_but_stays_in_the_record(stocked):
    name = "MSC expansion"
    run2 = stocked.runs(name).iloc[1]
    with pytest.raises(DoeError, match="needs a reason"):
        stocked.delete_run(int(run2.run_id), int(run2.row_version), ALICE, reason=" ")
    dv = stocked.delete_run(int(run2.run_id), int(run2.row_version), ALICE, reason="flask contaminated")
    assert dv == 2
    assert list(stocked.runs(name)["Run"]) == [1, 3, 4]
    assert list(stocked.runs(name, 2)["Run"]) == [1, 3, 4]
    assert list(stocked.runs(name, 1)["Run"]) == [1, 2, 3, 4]  # history is kept
    assert stocked.data_versions(name)["n_runs"].tolist() == [4, 3]
    trail = stocked.audit_trail(name)
    gone = trail[trail["action"] == "delete"].iloc[0]
    assert gone["field"] == "Run 2" and gone["reason"] == "flask contaminated"
    assert json.loads(gone["old_value"])["Viability"] == run2.Viability  # old values never obscured
    with pytest.raises(ConcurrentEditError):  # stale row version
        stocked.update_result(int(run2.run_id), "Viability", 1.0, int(run2.row_version), ALICE, reason="x")
    with pytest.raises(DoeError, match="was deleted"):
        stocked.delete_run(int(run2.run_id), int(run2.row_version) + 1, ALICE, reason="again")
    with pytest.raises(DoeError, match="another Run id"):
        stocked.append_runs(name, batch(2, 1), ALICE)
    assert stocked.verify_audit().ok


def test_batch_with_row_versions_refuses_a_stale_run(stocked):
    name = "MSC expansion"
    mine = stocked.runs(name).iloc[[0]].copy()
    other = mine.copy()
    other["Viability"] = 70.0
    stocked.append_runs(name, other, User("bob"), reason="re-counted")  # bob saves first
    mine["Viability"] = 99.0
    with pytest.raises(ConcurrentEditError, match="bob changed it"):
        stocked.append_runs(name, mine, ALICE, reason="typo")
    assert stocked.runs(name)["Viability"].iloc[0] == 70.0  # bob's value stays


def test_update_result_checks_the_cqa(stocked):
    run = stocked.runs("MSC expansion").iloc[0]
    with pytest.raises(DoeError, match="'Viabilty' is not a CQA.*Did you mean 'Viability'"):
        stocked.update_result(int(run.run_id), "Viabilty", 90.0, 1, ALICE, reason="x")


def test_batch_needs_run_ids(store):
    store.save_study(small_study(), ALICE)
    with pytest.raises(DoeError, match="no 'Run' column"):
        store.append_runs("MSC expansion", batch(1, 2).drop(columns="Run"), ALICE)
    with pytest.raises(DoeError, match="Run 1 appears twice"):
        store.append_runs("MSC expansion", pd.concat([batch(1, 1), batch(1, 1)]), ALICE)


# -- audit trail -----------------------------------------------------------------------
def test_audit_records_every_create_and_modify(stocked):
    name = "MSC expansion"
    stocked.save_study(small_study(high=100), User("bob"))
    run1 = stocked.runs(name).iloc[0]
    stocked.update_result(int(run1.run_id), "Viability", 77.5, 1, User("bob"), reason="typo")
    stocked.save_analysis(name, {"Viability": {"model": "linear"}}, {"r2": 0.9}, ALICE)
    stocked.save_decision(name, 0.9, {"Agitation": 60}, {"Agitation": {"PAR": [40, 80]}}, ALICE,
                          analysis_version=1)
    trail = stocked.audit_trail(name)
    assert trail["seq"].tolist() == list(range(1, len(trail) + 1))
    assert set(trail["action"]) == {"create", "modify"}
    runs_created = trail.query("entity == 'run' and action == 'create'")
    assert len(runs_created) == 4 and runs_created["new_value"].notna().all()
    study_edit = trail.query("entity == 'study_version' and action == 'modify'").iloc[0]
    assert "high: 90" in json.loads(study_edit.old_value) and "high: 100" in json.loads(study_edit.new_value)
    edit = trail.query("entity == 'run' and action == 'modify'").iloc[0]
    assert (edit.field, json.loads(edit.old_value), json.loads(edit.new_value)) == (
        "Viability", run1.Viability, 77.5)
    assert (edit.user_name, bool(edit.authenticated), edit.reason) == ("bob", False, "typo")
    assert bool(trail.iloc[0].authenticated) is True
    assert {"analysis", "decision", "data_version"} <= set(trail["entity"])
    assert trail["ts"].str.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$").all()
    assert verify_audit(stocked).ok


def test_tampered_audit_row_is_reported(stocked, tmp_path):
    trail = stocked.audit_trail()
    target = int(trail.query("entity == 'run'").iloc[1].seq)
    assert stocked.verify_audit().ok
    as_attacker(stocked.engine, f"UPDATE audit_trail SET new_value = '\"forged\"' WHERE seq = {target}")
    check = stocked.verify_audit()
    assert not check.ok
    assert check.bad_seq == target
    assert "altered" in check.problem and str(target) in str(check)


def test_deleted_audit_rows_are_reported(stocked):
    n = len(stocked.audit_trail())
    as_attacker(stocked.engine, "DELETE FROM audit_trail WHERE seq = 3")
    check = stocked.verify_audit()
    assert (check.ok, check.bad_seq) == (False, 3) and "deleted" in check.problem
    as_attacker(stocked.engine, f"DELETE FROM audit_trail WHERE seq >= 3 AND seq <= {n}")
    check = stocked.verify_audit()
    assert not check.ok and "deleted" in check.problem


# -- concurrency --------------------------------------------------------------------
def test_concurrent_edit_refused_with_other_change(stocked, tmp_path):
    other = Store.open(stocked.url)  # a second app process
    try:
        run = stocked.runs("MSC expansion").iloc[0]
        rid, version = int(run.run_id), int(run.row_version)
        other.update_result(rid, "Viability", 91.0, version, User("bob"), reason="re-read the vial")
        with pytest.raises(ConcurrentEditError) as info:
            stocked.update_result(rid, "Viability", 70.0, version, ALICE, reason="mine")
        message = str(info.value)
        assert "bob" in message and f"{run.Viability:g} → 91" in message
        assert "row version 1, now 2" in message
        assert isinstance(info.value, DoeError)
        assert stocked.runs("MSC expansion").iloc[0].Viability == 91.0  # never overwritten
    finally:
        other.close()


def _concurrent_writers(url: str) -> None:
    """Two 'processes' (stores) x 3 threads append batches at once: no lost runs, chain intact."""
    from concurrent.futures import ThreadPoolExecutor

    stores = [Store.open(url), Store.open(url)]
    try:
        stores[0].save_study(small_study(), ALICE)
        jobs = [(stores[k % 2], 1000 + 10 * k) for k in range(12)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            versions = list(pool.map(lambda job: job[0].append_runs("MSC expansion", batch(job[1], 5),
                                                                    User(f"w{job[1]}")), jobs))
        assert sorted(versions) == list(range(1, 13))
        runs = stores[1].runs("MSC expansion")
        assert len(runs) == 60 and runs["Run"].is_unique
        assert stores[1].verify_audit().ok
    finally:
        for s in stores:
            s.close()


def test_concurrent_writers_sqlite(tmp_path):
    _concurrent_writers(f"sqlite:///{tmp_path / 'doe.sqlite'}")


# -- faults and speed ------------------------------------------------------------------
def test_failed_batch_writes_nothing(stocked, monkeypatch):
    before_runs = stocked.runs("MSC expansion")
    before_trail = stocked.audit_trail()
    real_add, calls = _audit.AuditWriter.add, []

    def failing_add(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("disk unplugged")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(_audit.AuditWriter, "add", failing_add)
    with pytest.raises(RuntimeError, match="disk unplugged"):
        stocked.append_runs("MSC expansion", batch(5, 20), ALICE)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(stocked.runs("MSC expansion"), before_runs)
    pd.testing.assert_frame_equal(stocked.audit_trail(), before_trail)
    assert stocked.data_versions("MSC expansion")["version"].tolist() == [1]
    assert stocked.verify_audit().ok
    assert stocked.append_runs("MSC expansion", batch(5, 20), ALICE) == 2  # and the store still works


def test_bad_value_midway_writes_nothing(stocked):
    bad = batch(5, 6)
    bad["Viability"] = [80.0, 81.0, 82.0, {"not": "a number"}, 84.0, 85.0]
    with pytest.raises(DoeError, match="cannot be stored"):
        stocked.append_runs("MSC expansion", bad, ALICE)
    assert len(stocked.runs("MSC expansion")) == 4


def test_database_errors_are_doe_errors(stocked):
    with stocked.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE decisions")
    with pytest.raises(DoeError, match="refused the change.*nothing was saved"):
        stocked.save_decision("MSC expansion", 0.9, {}, {}, ALICE)
    with pytest.raises(DoeError, match="Could not read the database"):
        stocked.decisions("MSC expansion")
    with pytest.raises(DoeError, match="Could not read the database.*decisions"):  # verify reads every table
        stocked.verify_audit()


def test_append_50_runs_in_one_data_version(stocked):  # its speed: bench/bench_store.py
    assert stocked.append_runs("MSC expansion", batch(100, 50), ALICE) == 2
    assert len(stocked.runs("MSC expansion")) == 54
    assert stocked.data_versions("MSC expansion")["n_runs"].tolist() == [4, 54]


# -- PostgreSQL ------------------------------------------------------------------------
PG_URL = os.environ.get("DOE_TEST_POSTGRES_URL")


@pytest.mark.usefixtures("pg_required")  # conftest: skip, or fail under DOE_REQUIRE_POSTGRES=1
def test_postgres_round_trip_and_chain():
    _clean_postgres()
    store = Store.open(PG_URL)
    try:
        store.save_study(small_study(), ALICE)
        store.append_runs("MSC expansion", batch(1, 50), ALICE)
        run = store.runs("MSC expansion").iloc[0]
        store.update_result(int(run.run_id), "Viability", 1.5, 1, ALICE, reason="check")
        with pytest.raises(ConcurrentEditError, match="alice"):
            store.update_result(int(run.run_id), "Viability", 2.5, 1, User("bob"), reason="late")
        assert len(store.runs("MSC expansion")) == 50
        assert store.verify_audit().ok
    finally:
        store.close()


@pytest.mark.usefixtures("pg_required")  # conftest: skip, or fail under DOE_REQUIRE_POSTGRES=1
def test_concurrent_writers_postgres():
    _clean_postgres()
    _concurrent_writers(PG_URL)


def _clean_postgres() -> None:
    """Drop everything in the test database's public schema (the URL must name a test database)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def test_replicas_starting_together_migrate_once(pg_url):
    """Several app processes opening one new PostgreSQL database at once: one migrates, all start."""
    import subprocess
    import sys

    code = "import sys; from doe.store import Store; Store.open(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url], cwd=str(ROOT), stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    store = Store.open(pg_url)
    try:
        assert store.verify_audit().ok and store.list_studies().empty
    finally:
        store.close()


def test_latest_analysis_is_the_last_row_of_analyses(stocked):
    name = "MSC expansion"
    assert stocked.latest_analysis(name) is None
    stocked.save_analysis(name, {"Viability": {"model": "linear"}}, {"n_runs": 4}, ALICE)
    stocked.save_analysis(name, {"Viability": {"model": "quadratic"}}, {"n_runs": 4}, ALICE)
    last, every = stocked.latest_analysis(name), stocked.analyses(name).iloc[-1]
    assert last["version"] == 2 and last["choices"] == every["choices"] == {"Viability": {"model": "quadratic"}}
    assert last.to_dict() == every.to_dict()


# -- the change mark the app's read cache relies on --------------------------------------
def test_every_saved_change_moves_the_change_mark_and_nothing_else_does(stocked, tmp_path):
    from doe.generators import generate
    from doe.store import export_bundle, import_bundle

    s, seen = stocked, []

    def moved(action) -> None:
        before = s.change_mark()
        action()
        seen.append(s.change_mark())
        assert seen[-1] > before, action

    study = small_study()
    runs = s.runs("MSC expansion")
    moved(lambda: s.save_study(small_study(high=100), ALICE))
    moved(lambda: s.save_design("MSC expansion", generate(study, "full", seed=1), ALICE))
    moved(lambda: s.append_runs("MSC expansion", batch(5, 2), ALICE))
    moved(lambda: s.update_result(int(runs["run_id"][0]), "Viability", 99.0, int(runs["row_version"][0]),
                                  ALICE, reason="typo"))
    moved(lambda: s.delete_run(int(runs["run_id"][1]), int(runs["row_version"][1]), ALICE, reason="bad run"))
    moved(lambda: s.save_analysis("MSC expansion", {"Viability": {"model": "linear"}}, {"fits": {}}, ALICE))
    moved(lambda: s.save_decision("MSC expansion", 0.9, {"Agitation": 60.0, "Medium": "FBS 10%"}, {}, ALICE))
    bundle = export_bundle(s, "MSC expansion", user=ALICE)
    other = Store.open(f"sqlite:///{tmp_path / 'other.sqlite'}")
    try:
        before = other.change_mark()
        import_bundle(other, bundle, ALICE)
        assert other.change_mark() > before
    finally:
        other.close()
    # reads and writes that change nothing leave it where it is
    mark = s.change_mark()
    s.runs("MSC expansion"), s.analyses("MSC expansion"), s.audit_trail(), s.verify_audit()
    s.save_study(small_study(high=100), ALICE)  # the same text: no new version
    s.append_runs("MSC expansion", s.runs("MSC expansion"), ALICE)  # the same values: no new data version
    assert s.change_mark() == mark


def test_head_revision_constant_is_the_newest_migration(tmp_path):
    """The fast open path compares the database with HEAD_REVISION; it must name the newest migration."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from doe.store import _engine

    cfg = Config()
    cfg.set_main_option("script_location", str(_engine.MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == _engine.HEAD_REVISION
    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        assert _engine.at_head(store.engine)
    finally:
        store.close()


def _schema(engine) -> dict:
    """Tables, columns (type, nullability, server default), keys, indexes and the fixed rows of a store."""
    from sqlalchemy import inspect, text

    insp, out = inspect(engine), {}
    for t in sorted(insp.get_table_names()):
        out[t] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(t)],
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                          for f in insp.get_foreign_keys(t)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)),
        }
    with engine.connect() as conn:
        out["rows"] = {"alembic_version": conn.execute(text("SELECT * FROM alembic_version")).all(),
                       # the signature covers the time it was made: compared apart
                       "audit_head": conn.execute(text("SELECT id, last_seq, last_hash, key_id FROM audit_head")).all()}
        if engine.dialect.name == "sqlite":
            triggers = conn.execute(text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"))
        else:
            triggers = conn.execute(text("SELECT trigger_name, event_object_table, event_manipulation, action_timing "
                                         "FROM information_schema.triggers WHERE trigger_schema = current_schema()"))
        out["triggers"] = sorted(map(tuple, triggers))
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_empty_database_made_in_one_step_equals_running_every_revision(backend, tmp_path, request):
    """create_fresh (a first start without Alembic) builds exactly the schema the revisions build."""
    from doe.store import _engine

    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'revisions.sqlite'}", f"sqlite:///{tmp_path / 'fresh.sqlite'}"]
    else:
        from contextlib import ExitStack

        from tests.conftest import fresh_pg_schema, postgres_test_url

        base = postgres_test_url()
        stack = ExitStack()
        request.addfinalizer(stack.close)
        urls = [stack.enter_context(fresh_pg_schema(base)), stack.enter_context(fresh_pg_schema(base))]
    from doe.store._signing import load_site_key

    schemas, key = [], load_site_key()
    for url, revisions in zip(urls, (True, False), strict=True):
        engine = _engine.make_engine(url)
        try:
            _engine.upgrade(engine, url, key, revisions=revisions)
            assert _engine.at_head(engine)
            schemas.append(_schema(engine))
        finally:
            engine.dispose()
    assert schemas[0] == schemas[1]
    assert len(schemas[0]["triggers"]) >= 4 and schemas[0]["rows"]["audit_head"][0][3] == key.key_id
    # and the one-step store works like any other
    store = Store.open(urls[1])
    try:
        store.save_study(small_study(), ALICE)
        store.append_runs("MSC expansion", batch(1, 3), ALICE)
        assert store.verify_audit().ok and len(store.runs("MSC expansion")) == 3
    finally:
        store.close()


def test_study_digest_is_the_saved_content_hash(store):
    """The pages tell 'saved' from 'changed since' by comparing study_digest with the stored hash."""
    from doe.store import study_digest

    store.save_study(small_study(), ALICE)
    assert store.study_versions("MSC expansion")["content_hash"].iloc[-1] == study_digest(small_study())
    assert study_digest(small_study(high=100)) != study_digest(small_study())
