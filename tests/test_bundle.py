"""Study bundles: export a whole study, import it elsewhere, every stored number back exactly."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable

import pandas as pd
import pytest

from doe.cli import main
from doe.errors import DoeError
from doe.store import Store, User, export_bundle, import_bundle
from doe.store import _bundle as B
from doe.store._audit import record_hash
from doe.store._bundle import CHECKSUMS, MANIFEST, SIGNATURE
from doe.study import Study
from doe.versions import rerun_analysis

NAME = "MSC expansion"
ALICE = User("alice", authenticated=True)
TRICKY = 0.1 + 0.2  # 0.30000000000000004: must come back bit-identical
DATA_FILES = ("study/", "designs/", "runs/", "analyses/", "decisions/")


def small_study(high: float = 90) -> Study:
    return Study.from_dict({
        "name": NAME,
        "factors": [{"name": "Agitation", "low": 30, "high": high, "units": "rpm"},
                    {"name": "Medium", "kind": "categorical", "levels": ["FBS 10%", "hPL 5%"]}],
        "responses": [{"name": "Viability", "units": "%", "goal": "maximize", "lower": 80}],
    })


def first_runs() -> pd.DataFrame:
    runs = range(1, 11)
    return pd.DataFrame({"Run": list(runs), "Agitation": [30.0 + (i % 7) * 10 for i in runs],
                         "Medium": ["FBS 10%" if i % 2 else "hPL 5%" for i in runs],
                         "Viability": [80.0 + i / 3 for i in runs[:-1]] + [100 * TRICKY]})


def open_store(tmp_path, name: str) -> Store:
    return Store.open(f"sqlite:///{tmp_path / name}")


@pytest.fixture
def source(tmp_path):
    """Two study versions, a design, three data versions (an edit, a deletion), two analyses, a decision."""
    from doe.generators import full_factorial

    store = open_store(tmp_path, "source.sqlite")
    store.save_study(small_study(), ALICE)
    store.save_study(small_study(high=120), "bob")
    store.save_design(NAME, full_factorial(small_study(high=120), seed=3), ALICE)
    rerun_analysis(store, NAME, ALICE, new_runs=first_runs(), draws=400)  # data version 1, analysis 1
    run = store.runs(NAME).iloc[2]
    store.update_result(int(run.run_id), "Viability", 1 / 3, int(run.row_version), "bob", reason="re-counted")
    gone = store.runs(NAME).iloc[4]
    store.delete_run(int(gone.run_id), int(gone.row_version), ALICE, reason="flask contaminated")
    store.save_analysis(NAME, {"Viability": {"model": "linear"}},
                        {"r2": TRICKY, "tiny": 5e-324, "big": 1.7976931348623157e308, "n": 9, "text": "ü"},
                        "bob", data_version=2)
    store.save_decision(NAME, 0.9, {"Agitation": 48.000000000000014, "Medium": "FBS 10%"},
                        {"Agitation": {"par": [41.5, TRICKY * 200]}}, ALICE, analysis_version=1, note="pilot")
    yield store
    store.close()


@pytest.fixture
def target(tmp_path):
    store = open_store(tmp_path, "target.sqlite")
    yield store
    store.close()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def rezip(data: bytes, changes: dict[str, bytes], fix_checksums: bool = False) -> bytes:
    """The bundle with some files replaced; optionally with its checksums recomputed to match."""
    files = {**members(data), **changes}
    if fix_checksums:
        manifest = json.loads(files[MANIFEST])
        for entry in manifest["files"]:
            entry["sha256"] = hashlib.sha256(files[entry["path"]]).hexdigest()
        files[MANIFEST] = json.dumps(manifest).encode()
        signed = [SIGNATURE] if SIGNATURE in files else []  # kept: it no longer matches the manifest
        files[CHECKSUMS] = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n"
                                   for p in [MANIFEST, *signed, *(e["path"] for e in manifest["files"])]).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def forge(data: bytes, edit: Callable[[dict, dict, dict], None] | None = None, *, digests: bool = True,
          drop_signature: bool = False, old_format: bool = False) -> bytes:
    """The bundle after ``edit(csvs, docs, others)`` with everything one who has this software can recompute
    recomputed: the audit records' row digests (``digests``) and hashes (re-chained), the designs' CSV copies,
    the manifest and the checksums. The signature is kept (it no longer matches) or dropped.

    ``csvs``: {path: (header, rows as dicts, cells as stored)}; ``docs``: {path: JSON document};
    ``others``: {path: bytes} (study YAML). ``old_format``: written as bundle schema 1 (cells as they are,
    LF line ends, run sheets only in the CSV files, no signature and no row digests), as the software
    before signed bundles wrote them.
    """
    files = members(data)
    csvs = {}
    for path, body in files.items():
        if path.endswith(".csv") and not path.startswith("designs/"):
            rows = [[B._restore(c) for c in row] for row in B._csv_rows(body.decode(), path) if row]
            csvs[path] = (rows[0], [dict(zip(rows[0], row)) for row in rows[1:]])
    docs = {p: json.loads(b) for p, b in files.items() if p.endswith(".json") and p not in (MANIFEST, SIGNATURE)}
    others = {p: b for p, b in files.items() if p.startswith("study/v")}
    if edit is not None:
        edit(csvs, docs, others)
    trail_header, trail = csvs["audit/audit_trail.csv"]
    if old_format:
        for path, (header, rows) in list(csvs.items()):
            csvs[path] = ([h for h in header if h != "row_hash"], [{k: v for k, v in r.items() if k != "row_hash"}
                                                                   for r in rows])
        trail_header, trail = csvs["audit/audit_trail.csv"]
    elif digests:
        _recompute_digests(csvs, docs, others)
    prev = trail[0]["prev_hash"] if trail else ""
    for r in trail:  # one study in the store: its records are consecutive
        r["prev_hash"] = prev
        r["hash"] = prev = record_hash(prev, B._audit_record(r))
    out = {**others}
    for path, (header, rows) in csvs.items():
        cells = ([r[h] for h in header] for r in rows)
        if old_format:
            buf = io.StringIO(newline="")
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(cells)
            out[path] = buf.getvalue().encode()
        else:
            out[path] = B._csv(header, cells)
    for d in docs["designs/designs.json"]:
        out[d["file"]] = d["run_sheet"].encode() if old_format else B._sheet_csv(d["run_sheet"])
        if old_format:
            del d["run_sheet"]
    out.update({p: B._json_file(doc) for p, doc in docs.items()})
    manifest = json.loads(files[MANIFEST])
    manifest["files"] = [{"path": p, "sha256": hashlib.sha256(out[p]).hexdigest(), "bytes": len(out[p])}
                         for p in sorted(out)]
    if old_format:
        manifest["bundle_schema"], manifest["store_schema_revision"] = 1, "0004"
    listed = [(MANIFEST, B._json_file(manifest))]
    if not (drop_signature or old_format):
        listed.append((SIGNATURE, files[SIGNATURE]))
    listed += sorted(out.items())
    checksums = "".join(f"{hashlib.sha256(b).hexdigest()}  {p}\n" for p, b in listed).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, body in [listed[0], (CHECKSUMS, checksums), *listed[1:]]:
            z.writestr(path, body)
    return buf.getvalue()


def _recompute_digests(csvs: dict, docs: dict, others: dict) -> None:
    """Set each row's newest audit record's row_hash to the digest of the row as the files now hold it."""
    files = {p: B._csv(h, ([r[c] for c in h] for r in rows)) for p, (h, rows) in csvs.items()}
    files.update({p: B._json_file(doc) for p, doc in docs.items()})
    files.update(others)
    for d in docs["designs/designs.json"]:
        files[d["file"]] = B._sheet_csv(d["run_sheet"])
    content = B._parse(files, B.SCHEMA)
    newest = {}
    _, trail = csvs["audit/audit_trail.csv"]
    for r in trail:
        if r.get("row_hash"):
            newest[(r["entity"], r["entity_id"])] = r
    for entity, eid, _, digest in B.row_digests(content, B._replay(content.audit)):
        if (entity, eid) in newest:
            newest[(entity, eid)]["row_hash"] = digest


def assert_same_study(a: Store, b: Store) -> None:
    """Every stored table of the study is identical in both stores (store ids aside)."""
    pd.testing.assert_frame_equal(a.study_versions(NAME), b.study_versions(NAME))
    for v in a.study_versions(NAME)["version"]:
        assert a.load_study(NAME, int(v)).to_yaml() == b.load_study(NAME, int(v)).to_yaml()
    da, db = a.designs(NAME), b.designs(NAME)
    pd.testing.assert_frame_equal(da.drop(columns="id"), db.drop(columns="id"))
    for ia, ib in zip(da["id"], db["id"], strict=True):
        pd.testing.assert_frame_equal(a.load_design(int(ia)).table, b.load_design(int(ib)).table)
    versions = a.data_versions(NAME)
    pd.testing.assert_frame_equal(versions, b.data_versions(NAME))
    for v in [None, *versions["version"]]:
        ra, rb = a.runs(NAME, v), b.runs(NAME, v)
        pd.testing.assert_frame_equal(ra.drop(columns="run_id"), rb.drop(columns="run_id"))
    pd.testing.assert_frame_equal(a.analyses(NAME), b.analyses(NAME))
    pd.testing.assert_frame_equal(a.decisions(NAME).drop(columns="id"), b.decisions(NAME).drop(columns="id"))


def table(store: Store, sql: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


RAW = {"runs": "SELECT label, values_json, row_version, deleted FROM runs ORDER BY id",
       "revisions": "SELECT r.label, v.data_version, v.row_version, v.values_json, v.deleted "
                    "FROM run_revisions v JOIN runs r ON r.id = v.run_id ORDER BY v.data_version, r.label",
       "analyses": "SELECT version, data_version, choices_json, summary_json, created_at, created_by "
                   "FROM analyses",
       "decisions": "SELECT analysis_version, threshold, set_point_json, ranges_json, note, created_at "
                    "FROM decisions"}


# -- round trip ---------------------------------------------------------------------------
def test_round_trip_reproduces_every_table(source, target):
    data = export_bundle(source, NAME, ALICE)
    assert import_bundle(target, data, User("carol", authenticated=True)) == NAME
    assert_same_study(source, target)
    for sql in RAW.values():  # stored text itself, not just equal values
        assert table(source, sql) == table(target, sql)
    assert target.runs(NAME, 2).set_index("Run").loc[3, "Viability"] == 1 / 3
    assert target.runs(NAME, 1).set_index("Run").loc[10, "Viability"] == 30.000000000000004
    assert 5 not in set(target.runs(NAME)["Run"]) and 5 in set(target.runs(NAME, 2)["Run"])
    assert target.analyses(NAME).iloc[1]["summary"]["r2"] == TRICKY
    assert target.verify_audit().ok


def test_import_audit_records_and_original_trail_kept(source, target):
    data = export_bundle(source, NAME, ALICE)
    digest = hashlib.sha256(members(data)[MANIFEST]).hexdigest()
    import_bundle(target, data, "carol")
    trail = target.audit_trail(NAME)
    assert set(trail["user_name"]) == {"carol"}
    deleted = trail[trail["action"] == "delete"]  # the deleted run: created, then its deletion recorded
    assert set(trail["action"]) == {"create", "delete"} and deleted["field"].tolist() == ["Run 5"]
    assert set(trail["reason"]) == {f"imported from bundle {digest}"}
    assert {"bundle", "study", "study_version", "design", "run", "data_version", "analysis",
            "decision"} <= set(trail["entity"])
    again = members(export_bundle(target, NAME))
    kept = pd.read_csv(io.BytesIO(again["audit/imported_audit_trail.csv"]), dtype=str, keep_default_na=False)
    original = pd.read_csv(io.BytesIO(members(data)["audit/audit_trail.csv"]), dtype=str,
                           keep_default_na=False)
    assert set(kept["bundle"]) == {digest}
    pd.testing.assert_frame_equal(kept.drop(columns="bundle"), original)
    assert len(original) == len(source.audit_trail(NAME))


def test_export_import_export_gives_the_same_data_files(source, target, tmp_path):
    first = members(export_bundle(source, NAME))
    import_bundle(target, export_bundle(source, NAME), "carol")
    second = members(export_bundle(target, NAME))
    data_files = [p for p in first if p.startswith(DATA_FILES)]
    assert len(data_files) == 11 and set(data_files) == {p for p in second if p.startswith(DATA_FILES)}
    for path in data_files:
        assert first[path] == second[path], path
    third_store = open_store(tmp_path, "third.sqlite")  # a second hop keeps both earlier trails
    try:
        import_bundle(third_store, export_bundle(target, NAME), "dave")
        third = members(export_bundle(third_store, NAME))
        assert all(third[p] == first[p] for p in data_files)
        kept = third["audit/imported_audit_trail.csv"].decode().splitlines()
        assert len(kept) == 1 + len(source.audit_trail(NAME)) + len(target.audit_trail(NAME))
        assert third_store.verify_audit().ok
    finally:
        third_store.close()


def test_bundle_layout_and_sha256sum_checksums(source):
    files = members(export_bundle(source, NAME, ALICE))
    manifest = json.loads(files[MANIFEST])
    assert manifest["format"] == "doe-workbench-study-bundle" and manifest["bundle_schema"] == 2
    assert manifest["study"] == NAME and manifest["exported_by"] == "alice"
    assert manifest["store_schema_revision"] == table(source, "SELECT version_num FROM alembic_version")[0][0] and manifest["exported_at"].endswith("Z")
    for name in ("study/v0001.yaml", "study/v0002.yaml", "designs/design_0001.csv", "designs/designs.json",
                 "runs/runs.csv", "runs/revisions.csv", "runs/data_versions.csv",
                 "analyses/analysis_v0001.json", "analyses/analysis_v0002.json", "decisions/decisions.json",
                 "audit/audit_trail.csv", "audit/imported_audit_trail.csv"):
        assert name in files
    for line in files[CHECKSUMS].decode().splitlines():
        digest, path = line.split("  ")
        assert hashlib.sha256(files[path]).hexdigest() == digest
    runs = pd.read_csv(io.BytesIO(files["runs/runs.csv"]))
    assert runs.set_index("Run").loc[5, "deleted"]  # deleted runs stay in the bundle
    assert len(pd.read_csv(io.BytesIO(files["runs/revisions.csv"]))) == 12


# -- refused bundles: a clear message and nothing written ------------------------------------
def refused(store: Store, data: bytes, match: str) -> None:
    before = len(store.audit_trail())
    with pytest.raises(DoeError, match=match):
        import_bundle(store, data, "carol")
    assert len(store.audit_trail()) == before and NAME not in set(store.list_studies()["name"])


def test_edited_file_fails_its_checksum(source, target):
    data = export_bundle(source, NAME)
    edited = members(data)["runs/runs.csv"].replace(b"30.000000000000004", b"30.0")
    refused(target, rezip(data, {"runs/runs.csv": edited}), "'runs/runs.csv' does not match its SHA-256")


def test_edit_with_recomputed_checksums_is_still_caught(source, target):
    data = export_bundle(source, NAME)
    revisions = members(data)["runs/revisions.csv"].replace(b"30.000000000000004", b"30.0", 1)
    refused(target, rezip(data, {"runs/revisions.csv": revisions}, fix_checksums=True),
            "Data version 1 in the bundle does not match its recorded hash")
    runs = members(data)["runs/runs.csv"].replace(b"30.000000000000004", b"30.0")
    refused(target, rezip(data, {"runs/runs.csv": runs}, fix_checksums=True),
            "Run 10 in the bundle's runs/runs.csv differs from its last revision")
    refused(target, rezip(data, {"designs/designs.json": b"[{}]"}, fix_checksums=True),
            "content cannot be read")
    trail = members(data)["audit/audit_trail.csv"].replace(b"bob", b"eve", 1)
    refused(target, rezip(data, {"audit/audit_trail.csv": trail}, fix_checksums=True),
            r"Audit record \d+ in the bundle does not match its hash")


def test_truncated_non_zip_and_foreign_zip_refused(source, target):
    data = export_bundle(source, NAME)
    refused(target, data[: len(data) // 2], "not a zip file, or it was cut short")
    refused(target, b"Run,Viability\n1,80\n", "not a zip file")
    foreign = io.BytesIO()
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("notes.txt", "lab notes")
    refused(target, foreign.getvalue(), "not a DoE workbench study bundle.*no manifest.json")


def test_missing_or_extra_file_refused(source, target):
    data = export_bundle(source, NAME)
    files = members(data)
    del files["decisions/decisions.json"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    refused(target, buf.getvalue(), "'decisions/decisions.json' is listed in its checksums but missing")
    refused(target, rezip(data, {"runs/extra.csv": b"x\n"}),
            "'runs/extra.csv', which is not in its checksums")


def test_newer_bundle_schema_refused(source, target):
    data = export_bundle(source, NAME)
    manifest = json.loads(members(data)[MANIFEST])
    manifest["bundle_schema"] = 3
    refused(target, rezip(data, {MANIFEST: json.dumps(manifest).encode()}, fix_checksums=True),
            "bundle schema 3, newer than this software reads.*Upgrade the software")


def test_existing_study_name_refused(source, target):
    data = export_bundle(source, NAME)
    import_bundle(target, data, "carol")
    before = (len(target.audit_trail()), table(target, "SELECT count(*) FROM imported_audit"))
    with pytest.raises(DoeError, match="study named 'MSC expansion' is already in this database"):
        import_bundle(target, data, "carol")
    assert (len(target.audit_trail()), table(target, "SELECT count(*) FROM imported_audit")) == before
    assert len(target.list_studies()) == 1 and target.verify_audit().ok


def test_export_unknown_study(source):
    with pytest.raises(DoeError, match="No study named 'MSC expansoin'.*Did you mean"):
        export_bundle(source, "MSC expansoin")


# -- command line ------------------------------------------------------------------------------
def test_cli_export_and_import_bundle(source, tmp_path, capsys):
    out = tmp_path / "msc bundle.zip"
    assert main(["export", "--db", source.url, "--study", NAME, "--out", str(out), "--user", "alice"]) == 0
    assert f"exported to {out}" in capsys.readouterr().out
    url = f"sqlite:///{tmp_path / 'cli target.sqlite'}"
    assert main(["import-bundle", str(out), "--db", url, "--user", "carol"]) == 0
    assert f"study '{NAME}' imported from {out}" in capsys.readouterr().out
    target = Store.open(url)
    try:
        assert_same_study(source, target)
        assert set(target.audit_trail(NAME)["user_name"]) == {"carol"}
    finally:
        target.close()
    assert main(["import-bundle", str(out), "--db", url, "--user", "carol"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: A study named 'MSC expansion' is already in this database")
    assert err.count("\n") == 1
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    assert main(["import-bundle", str(tmp_path / "bad.zip"), "--db", url]) == 2
    assert "not a zip file" in capsys.readouterr().err
    assert main(["export", "--db", source.url, "--study", "Nope", "--out", str(tmp_path / "n.zip")]) == 2
    assert "No study named 'Nope'" in capsys.readouterr().err and not (tmp_path / "n.zip").exists()


# -- PostgreSQL ----------------------------------------------------------------------------------
def test_postgres_import_and_export(source, pg_url):
    """Import into PostgreSQL and export again (conftest: skipped without DOE_TEST_POSTGRES_URL)."""
    data = export_bundle(source, NAME)
    pg = Store.open(pg_url)
    try:
        import_bundle(pg, data, "carol")
        assert_same_study(source, pg)
        again = members(export_bundle(pg, NAME))
        assert all(again[p] == b for p, b in members(data).items() if p.startswith(DATA_FILES))
        assert pg.verify_audit().ok
    finally:
        pg.close()
