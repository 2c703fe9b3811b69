"""Bundles that cannot be forged and bundle inputs that cannot take a server down (issue 15).

A bundle's manifest is signed with the exporting site's key; import checks the data against the
bundle's own audit trail, then the signature. A forger who has this software can recompute every
checksum, hash and row digest, but not the signature. Sizes, counts, JSON nesting and CSV cells
are bounded before (or while) anything is read; every CSV cell in a bundle is neutralised against
spreadsheet formulas and read back exactly.
"""

# ruff: noqa: F811  (the fixtures source and target come from tests.test_bundle)
from __future__ import annotations

import csv
import io
import json
import struct
import time
import tracemalloc
import zipfile

import pandas as pd
import pytest

from doe.cli import main
from doe.errors import DoeError
from doe.store import Store, User, export_bundle, import_bundle
from doe.store import _bundle as B
from doe.store import _values as V
from doe.store._bundle import CHECKSUMS, MANIFEST, SIGNATURE
from doe.store._signing import new_key_file, verify_signature
from doe.study import Study
from tests.test_bundle import (  # noqa: F401
    NAME,
    RAW,
    assert_same_study,
    forge,
    members,
    open_store,
    refused,
    rezip,
    source,
    table,
    target,
)

FORGED = 99.3


def bundle_record(store: Store, name: str = NAME) -> dict:
    """What the import's audit record says about the bundle (counts, signature status, ...)."""
    trail = store.audit_trail(name)
    return json.loads(trail[trail["entity"] == "bundle"].iloc[-1]["new_value"])


# -- forging a result -----------------------------------------------------------------------------
def _edit_result(csvs: dict, docs: dict, others: dict) -> None:
    """Run 10's Viability 30.000000000000004 -> 99.3 in runs.csv and revisions.csv, data version hashes
    recomputed from the revisions (as the import checks them)."""
    _, runs = csvs["runs/runs.csv"]
    for r in runs:
        if r["Run"] == "10":
            values = {**json.loads(r["values_json"]), "Viability": FORGED}
            r["values_json"], r["Viability"] = V.dumps(values), str(FORGED)
    _, revisions = csvs["runs/revisions.csv"]
    for r in revisions:
        if r["Run"] == "10":
            r["values_json"] = V.dumps({**json.loads(r["values_json"]), "Viability": FORGED})
    _, versions = csvs["runs/data_versions.csv"]
    state: dict = {}
    for v in versions:
        for r in revisions:
            if r["data_version"] == v["version"]:
                state[r["Run"]] = None if r["deleted"] == "true" else json.loads(r["values_json"])
        v["content_hash"] = V.content_hash({k: x for k, x in state.items() if x is not None})


def _edit_result_and_audit(csvs: dict, docs: dict, others: dict) -> None:
    """The result edited as above, and the audit trail told the same story (its records' new values)."""
    _edit_result(csvs, docs, others)
    hashes = {v["version"]: v["content_hash"] for v in csvs["runs/data_versions.csv"][1]}
    for r in csvs["audit/audit_trail.csv"][1]:
        if r["entity"] == "run" and r["field"] == "Run 10" and r["action"] == "create":
            r["new_value"] = json.dumps({**json.loads(r["new_value"]), "Viability": FORGED}, sort_keys=True)
        if r["entity"] == "data_version" and r["field"] == "content_hash":
            r["new_value"] = json.dumps(hashes[r["entity_id"].split(":")[1]])


def test_forge_alone_changes_nothing(source, target):
    """The test's forger rebuilds a bundle byte for byte when it edits nothing (so what it edits is all that differs)."""
    data = export_bundle(source, NAME)
    again = members(forge(data))
    assert {p: b for p, b in again.items()} == members(data)
    assert import_bundle(target, forge(data), "carol").signature.startswith("signed by this site")


def test_forged_result_with_recomputed_checksums_disagrees_with_the_audit_trail(source, target):
    data = export_bundle(source, NAME)
    refused(target, forge(data, _edit_result),
            r"disagree with its own audit trail: run 10: Viability is 99\.3 in the runs but 30\.000000000000004 "
            r"in the audit trail")


def test_forged_result_and_audit_trail_fail_the_signature_even_when_unsigned_is_allowed(source, target):
    data = export_bundle(source, NAME)
    forged = forge(data, _edit_result_and_audit)  # consistent inside: checksums, hashes, row digests
    refused(target, forged, "signature \\(key [0-9a-f]{16}\\) does not match its content: the bundle was changed")
    before = len(target.audit_trail())
    with pytest.raises(DoeError, match="refused, also with allow_unsigned=True"):
        import_bundle(target, forged, "carol", allow_unsigned=True)
    assert len(target.audit_trail()) == before and target.list_studies().empty


def test_forged_bundle_without_signature_needs_the_flag_and_is_recorded_as_unsigned(source, target):
    data = export_bundle(source, NAME)
    forged = forge(data, _edit_result_and_audit, drop_signature=True)
    assert SIGNATURE not in members(forged)
    refused(target, forged, "The bundle is not signed, so this site cannot confirm where it comes from.*"
                            "import it anyway with allow_unsigned=True")
    imported = import_bundle(target, forged, User("carol", authenticated=True), allow_unsigned=True)
    assert imported == NAME and imported.signature == "unsigned, imported with allow_unsigned=True by carol"
    assert bundle_record(target)["signature"] == imported.signature
    assert target.runs(NAME).set_index("Run").loc[10, "Viability"] == FORGED  # in, but marked unsigned
    assert target.verify_audit().ok


@pytest.mark.parametrize("what", ["study yaml", "design name", "analysis", "decision", "deleted run", "summary"])
def test_other_edits_with_recomputed_checksums_are_caught(source, target, what):
    """Each kind of row edited (checksums recomputed): the audit replay or the row digests name it."""
    def edit(csvs, docs, others):
        if what == "study yaml":
            others["study/v0002.yaml"] = others["study/v0002.yaml"].replace(b"120", b"150")
            study = docs["study/study.json"]
            study["versions"][1]["content_hash"] = B._sha(others["study/v0002.yaml"])
        elif what == "design name":
            docs["designs/designs.json"][0]["name"] = "Renamed"
        elif what == "analysis":
            docs["analyses/analysis_v0002.json"]["data_version"] = 1
        elif what == "decision":
            docs["decisions/decisions.json"][0]["threshold"] = 0.5
        elif what == "deleted run":
            for path in ("runs/runs.csv", "runs/revisions.csv"):
                for r in csvs[path][1]:
                    r["deleted"] = "false"
            _, versions = csvs["runs/data_versions.csv"]
            versions[-1]["n_runs"] = "10"
        elif what == "summary":
            docs["analyses/analysis_v0002.json"]["summary"]["r2"] = 0.99
    expected = {"study yaml": "study version 2 .* is not the text its audit record holds",
                "design name": "design 1 is named \"Renamed\" in designs.json but",
                "analysis": "analysis version 2's data version or model choices are not those its audit record holds",
                "decision": "design-space decision 1 is not the one its audit record holds",
                "deleted run": "Data version 3 in the bundle does not match|run 5 is not deleted in the runs but "
                               "deleted in the audit trail",
                "summary": "the content of analysis version 2 does not match the digest"}[what]
    refused(target, forge(export_bundle(source, NAME), edit, digests=False), expected)


def test_a_bundle_of_an_imported_study_is_checked_against_the_import_records(source, target, tmp_path):
    """The importing store's own trail (create records, the deleted run's delete record) replays to the data."""
    import_bundle(target, export_bundle(source, NAME), "carol")
    data = export_bundle(target, NAME)
    third = open_store(tmp_path, "third.sqlite")
    try:
        refused(third, forge(data, _edit_result), "run 10: Viability is 99.3 in the runs")
        import_bundle(third, data, "dave")
        assert_same_study(source, third)
    finally:
        third.close()


# -- signatures of other sites ----------------------------------------------------------------------
@pytest.fixture
def other_site(tmp_path, monkeypatch):
    """A bundle exported by another site (its own key), and that key."""
    from doe.generators import full_factorial
    from tests.test_bundle import first_runs, small_study

    key = new_key_file(tmp_path / "other-site.pem")
    with monkeypatch.context() as m:
        m.setenv("DOE_SITE_KEY_FILE", str(key.source))
        store = open_store(tmp_path, "other-site.sqlite")
        try:
            store.save_study(small_study(), "olga")
            store.save_design(NAME, full_factorial(small_study(), seed=1), "olga")
            store.append_runs(NAME, first_runs(), "olga")
            data = export_bundle(store, NAME, "olga")
        finally:
            store.close()
    return data, key


def test_bundle_of_an_untrusted_site_refused_then_trusted_or_allowed(other_site, tmp_path, monkeypatch):
    data, key = other_site
    assert json.loads(members(data)[SIGNATURE])["key_id"] == key.key_id
    here = open_store(tmp_path, "here.sqlite")
    try:
        assert here.key.key_id != key.key_id
        refused(here, data, f"signed with key {key.key_id} \\(ed25519:.*neither this site's key .*nor one listed in "
                            "DOE_TRUSTED_KEYS.*'python -m doe keys'.*import it anyway with allow_unsigned=True")
        allowed = import_bundle(here, data, "carol", allow_unsigned=True)
        assert allowed.signature == (f"signed by key {key.key_id}, which this site does not trust; imported with "
                                     "allow_unsigned=True by carol")
        assert bundle_record(here)["signature"] == allowed.signature
    finally:
        here.close()
    trusted = tmp_path / "trusted-keys.txt"
    trusted.write_text(f"# sites we take bundles from\n{key.public_text} other site\n", encoding="utf-8")
    monkeypatch.setenv("DOE_TRUSTED_KEYS", str(trusted))
    there = open_store(tmp_path, "there.sqlite")
    try:
        assert import_bundle(there, data, "carol").signature == f"signed by trusted key {key.key_id}"
        assert there.verify_audit().ok
    finally:
        there.close()


def test_bad_signatures_are_refused_even_when_unsigned_is_allowed(source, target, other_site):
    data = export_bundle(source, NAME)
    manifest = json.loads(members(data)[MANIFEST])
    manifest["exported_by"] = "mallory"
    cases = {"manifest edited": rezip(data, {MANIFEST: B._json_file(manifest)}, fix_checksums=True),
             "not a signature": rezip(data, {SIGNATURE: b"{}"}, fix_checksums=True),
             "deep JSON": rezip(data, {SIGNATURE: b"[" * 100_000}, fix_checksums=True)}
    other_data, other_key = other_site
    claimed = json.loads(members(data)[SIGNATURE])  # our signature claimed by the other site's key
    claimed.update(key_id=other_key.key_id, public_key=other_key.public_text)
    cases["untrusted key, wrong signature"] = rezip(data, {SIGNATURE: B._json_file(claimed)}, fix_checksums=True)
    for name, bad in cases.items():
        with pytest.raises(DoeError, match="does not match its content.*refused, also with allow_unsigned=True"):
            import_bundle(target, bad, "carol", allow_unsigned=True)
        assert target.list_studies().empty, name


def test_old_unsigned_bundle_imports_with_the_flag_exactly(source, target):
    old = forge(export_bundle(source, NAME), old_format=True)
    files = members(old)
    assert SIGNATURE not in files and json.loads(files[MANIFEST])["bundle_schema"] == 1
    assert b"\r\n" not in files["runs/runs.csv"] and "run_sheet" not in json.loads(files["designs/designs.json"])[0]
    refused(target, old, "The bundle is not signed")
    imported = import_bundle(target, old, "carol", allow_unsigned=True)
    assert imported.signature == "unsigned, imported with allow_unsigned=True by carol"
    assert_same_study(source, target)
    for sql in RAW.values():
        assert table(source, sql) == table(target, sql)


def test_checksums_list_the_signature_and_it_verifies(source):
    files = members(export_bundle(source, NAME))
    sig = json.loads(files[SIGNATURE])
    assert sig == {"algorithm": "Ed25519", "signed": "manifest.json", "key_id": source.key.key_id,
                   "public_key": source.key.public_text, "signature": sig["signature"]}
    assert verify_signature(files[MANIFEST], sig["signature"], sig["key_id"], {source.key.key_id: source.key.public}) == ""
    listed = dict(reversed(line.split("  ")) for line in files[CHECKSUMS].decode().splitlines())
    assert listed[SIGNATURE] == B._sha(files[SIGNATURE]) and set(listed) == set(files) - {CHECKSUMS}
    assert SIGNATURE not in {f["path"] for f in json.loads(files[MANIFEST])["files"]}


# -- bounded inputs -------------------------------------------------------------------------------------
def declare_size(data: bytes, member: str, size: int) -> bytes:
    """The zip with ``member``'s uncompressed size rewritten to ``size`` in its local and central headers."""
    out = bytearray(data)
    name = member.encode()
    for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = out.find(signature)
        while at >= 0:
            if out[at + name_at:at + name_at + len(name)] == name:
                out[at + offset:at + offset + 4] = struct.pack("<I", size)
            at = out.find(signature, at + 4)
    return bytes(out)


def bounded(store: Store, data: bytes, match: str, seconds: float = 3.0, megabytes: float = 200) -> None:
    """Refused with ``match``, in under ``seconds`` and ``megabytes`` of peak Python memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        refused(store, data, match)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < seconds and peak < megabytes * 2**20, (time.perf_counter() - started, peak)


def test_member_listed_as_1_gib_refused_before_it_is_read(source, target):
    data = declare_size(export_bundle(source, NAME), "runs/runs.csv", 2**30)
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("runs/runs.csv").file_size == 2**30
    bounded(target, data, "'runs/runs.csv' would unpack to 1,024 MB, more than a bundle file may hold \\(128 MB\\)")


def test_members_together_over_the_total_refused(source, target):
    data = export_bundle(source, NAME)
    for member in ("runs/runs.csv", "runs/revisions.csv", "audit/audit_trail.csv"):
        data = declare_size(data, member, 100 * 2**20)
    bounded(target, data, "would unpack to 300 MB, more than a study bundle may hold \\(256 MB\\)")


def test_member_larger_than_it_declares_is_not_read_past_its_size(source, target):
    data = declare_size(export_bundle(source, NAME), "audit/audit_trail.csv", 100)
    bounded(target, data, "damaged and cannot be unpacked")


def test_too_many_members_refused_before_the_directory_is_read(target):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(B.MAX_MEMBERS + 1):
            z.writestr(f"f{i}", b"")
    bounded(target, buf.getvalue(), "holds 10,001 files; a study bundle has at most 10,000")


def test_deep_json_in_a_bundle_is_a_clear_message(source, target, tmp_path, capsys):
    data = export_bundle(source, NAME)
    deep = rezip(data, {"decisions/decisions.json": b"[" * 100_000 + b"]" * 100_000}, fix_checksums=True)
    bounded(target, deep, "decisions/decisions.json holds JSON nested more than 64 levels deep")
    runs = members(data)["runs/runs.csv"].decode()
    header, rows = B._csv_rows(runs, "runs")[0], B._csv_rows(runs, "runs")[1:]
    rows[0][-1] = "[" * 5000 + "]" * 5000
    deep_cell = rezip(data, {"runs/runs.csv": B._csv(header, rows)}, fix_checksums=True)
    refused(target, deep_cell, "runs/runs.csv holds JSON nested more than 64 levels deep")
    path = tmp_path / "deep.zip"
    path.write_bytes(deep)
    assert main(["import-bundle", str(path), "--db", target.url, "--user", "carol"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The bundle's decisions/decisions.json holds JSON nested") and err.count("\n") == 1


def test_csv_cell_over_the_limit_is_a_clear_message(source, target):
    data = export_bundle(source, NAME)
    huge = (",".join(B.REVISION_COLUMNS) + "\r\n1,1,1,false," + "x" * (B.MAX_CELL_CHARS + 1) + "\r\n").encode()
    bounded(target, rezip(data, {"runs/revisions.csv": huge}, fix_checksums=True),
            "A cell in the bundle's runs/revisions.csv \\(line 2\\) is longer than 16,777,216 characters")
    assert csv.field_size_limit() == 131_072  # the process-wide setting is restored


def test_cells_longer_than_the_csv_modules_default_import(tmp_path):
    """A note of 200,000 characters (over csv's default 131,072) travels: bundles are read with their own limit."""
    from tests.test_bundle import small_study

    a, b = open_store(tmp_path, "a.sqlite"), open_store(tmp_path, "b.sqlite")
    try:
        a.save_study(small_study(), "alice")
        note = "n" * 200_000
        a.append_runs(NAME, pd.DataFrame({"Run": [1], "Agitation": [30.0], "Medium": ["FBS 10%"],
                                          "Viability": [90.0], "Note": [note]}), "alice")
        import_bundle(b, export_bundle(a, NAME), "carol")
        assert b.runs(NAME)["Note"].tolist() == [note]
        assert csv.field_size_limit() == 131_072
    finally:
        a.close()
        b.close()


# -- formula cells neutralised, read back exactly ------------------------------------------------------
FORMULA_TEXT = ["-80C", "+4C", "=SUM(A1)", "@home", "\tTab", "'quoted", "''twice", "a\rb", "line\nbreak"]


def tricky_study() -> Study:
    return Study.from_dict({
        "name": NAME,
        "factors": [{"name": "Storage", "kind": "categorical", "levels": ["-80C", "+4C", "@home"]},
                    {"name": "Agitation", "low": -30, "high": 90, "units": "rpm"}],
        "responses": [{"name": "Viability", "units": "%", "goal": "maximize", "lower": 80}],
    })


def test_every_bundle_csv_is_neutralised_and_read_back_exactly(tmp_path):
    from doe.generators import full_factorial

    a, b = open_store(tmp_path, "a.sqlite"), open_store(tmp_path, "b.sqlite")
    try:
        study = tricky_study()
        a.save_study(study, "alice")
        a.save_design(NAME, full_factorial(study, seed=1), "alice", name="=SUM(A1)")
        n = len(FORMULA_TEXT)
        a.append_runs(NAME, pd.DataFrame({"Run": range(1, n + 1), "Storage": (["-80C", "+4C", "@home"] * n)[:n],
                                          "Agitation": [-30.0] * n, "Viability": [-1.5] * n,
                                          "=SUM(A1)": FORMULA_TEXT}), "alice", reason="-first batch")
        run = a.runs(NAME).iloc[0]
        a.update_result(int(run.run_id), "Viability", 85.0, int(run.row_version), "@bob", reason="=HYPERLINK(x)")
        data = export_bundle(a, NAME, "alice")
        files = members(data)
        for path, body in files.items():
            if not path.endswith(".csv"):
                continue
            for row in csv.reader(io.StringIO(body.decode(), newline="")):
                for cell in row:
                    live = cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not B._NUMBER.fullmatch(cell)
                    assert not live, (path, cell)
        assert "'=SUM(A1)" in files["runs/runs.csv"].decode().splitlines()[0]  # the header too
        assert "'-80C" in files["designs/design_0001.csv"].decode()
        import_bundle(b, data, "carol")
        for sql in [*RAW.values(), "SELECT name, run_sheet FROM designs"]:
            assert table(a, sql) == table(b, sql)
        assert b.runs(NAME)["=SUM(A1)"].tolist() == FORMULA_TEXT
        trail = b.audit_trail(NAME)
        again = members(export_bundle(b, NAME))
        assert all(again[p] == body for p, body in files.items() if p.startswith(("study/", "designs/", "runs/")))
        assert set(trail["user_name"]) == {"carol"}
        columns = "seq, user_name, action, field, old_value, new_value, reason, hash, row_hash"
        assert table(a, f"SELECT {columns} FROM audit_trail ORDER BY seq") == table(
            b, f"SELECT {columns} FROM imported_audit ORDER BY id")
    finally:
        a.close()
        b.close()


# -- command line ----------------------------------------------------------------------------------------
def test_cli_import_bundle_allow_unsigned(source, tmp_path, capsys):
    out = tmp_path / "signed.zip"
    assert main(["export", "--db", source.url, "--study", NAME, "--out", str(out)]) == 0
    assert f"signed with this site's key {source.key.key_id}" in capsys.readouterr().out
    unsigned = tmp_path / "unsigned.zip"
    unsigned.write_bytes(forge(out.read_bytes(), drop_signature=True))
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert main(["import-bundle", str(unsigned), "--db", url, "--user", "carol"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The bundle is not signed") and "--allow-unsigned" in err and err.count("\n") == 1
    assert main(["import-bundle", str(unsigned), "--db", url, "--user", "carol", "--allow-unsigned"]) == 0
    printed = capsys.readouterr().out
    assert f"study '{NAME}' imported from {unsigned}" in printed
    assert "unsigned, imported with --allow-unsigned by carol" in printed
    store = Store.open(url)
    try:
        assert bundle_record(store)["signature"] == "unsigned, imported with --allow-unsigned by carol"
    finally:
        store.close()


# -- the Home page ---------------------------------------------------------------------------------------
def test_home_page_refuses_an_unsigned_bundle_unless_the_box_is_ticked(source):
    from tests.test_pages_store import database, start

    unsigned = forge(export_bundle(source, NAME), drop_signature=True)
    at = start("tester")
    at.file_uploader(key="bundle_upload").set_value(("msc.zip", unsigned, "application/zip")).run()
    at.button(key="import_bundle").click().run()
    assert not at.exception, at.exception
    assert any("Not imported: The bundle is not signed" in e.value and "import it anyway with the box 'Import even "
               "if not signed by this site or a trusted site'" in e.value for e in at.error), [e.value for e in at.error]
    here = database()
    try:
        assert here.list_studies().empty
        at.checkbox(key="bundle_allow_unsigned").check().run()
        assert any("Only for a bundle whose origin you have confirmed" in w.value for w in at.warning)
        at.button(key="import_bundle").click().run()
        assert not at.exception, at.exception
        status = "unsigned, imported with the box 'Import even if not signed by this site or a trusted site' by tester"
        assert any(f"Imported '{NAME}'" in s.value and status in s.value for s in at.success), [e.value for e in at.error]
        assert bundle_record(here)["signature"] == status
    finally:
        here.close()


# -- PostgreSQL ------------------------------------------------------------------------------------------
def test_postgres_bundles_are_checked_both_ways(source, pg_url, tmp_path):
    """SQLite -> PostgreSQL -> SQLite: forged bundles refused on both, genuine ones imported exactly
    (conftest: skipped without DOE_TEST_POSTGRES_URL)."""
    data = export_bundle(source, NAME)
    pg = Store.open(pg_url)
    back = open_store(tmp_path, "back.sqlite")
    try:
        refused(pg, forge(data, _edit_result), "run 10: Viability is 99.3 in the runs")
        refused(pg, forge(data, _edit_result_and_audit), "does not match its content")
        assert import_bundle(pg, data, "carol").signature.startswith("signed by this site")
        again = export_bundle(pg, NAME)
        refused(back, forge(again, _edit_result), "run 10: Viability is 99.3 in the runs")
        refused(back, forge(again, _edit_result_and_audit), "does not match its content")
        import_bundle(back, again, "dave")
        assert_same_study(source, back)
        for sql in RAW.values():
            assert table(source, sql) == table(back, sql)
        assert pg.verify_audit().ok and back.verify_audit().ok
    finally:
        pg.close()
        back.close()


def test_a_study_imported_by_earlier_software_still_travels(source, target, tmp_path, monkeypatch):
    """An import made before imports recorded deleted runs (and the signature) leaves their deleted flag to the
    later records: the study's bundle still imports elsewhere."""
    from doe.store._audit import AuditWriter

    real_add = AuditWriter.add

    def earlier_add(self, action, entity, entity_id, study, **kw):
        if action == "delete" and (kw.get("reason") or "").startswith("imported from bundle"):
            return None
        if entity == "bundle":
            kw["new"] = {k: v for k, v in kw["new"].items() if k not in ("signature", "bundle_schema")}
        return real_add(self, action, entity, entity_id, study, **kw)

    with monkeypatch.context() as m:
        m.setattr(AuditWriter, "add", earlier_add)
        import_bundle(target, export_bundle(source, NAME), "carol")
    assert "delete" not in set(target.audit_trail(NAME)["action"])
    third = open_store(tmp_path, "third.sqlite")
    try:
        import_bundle(third, export_bundle(target, NAME), "dave")
        assert_same_study(source, third)
    finally:
        third.close()


def test_cli_refuses_a_file_over_the_total_before_reading_it(tmp_path, capsys, monkeypatch):
    big = tmp_path / "big.zip"
    big.write_bytes(b"PK" + b"\0" * 4096)
    monkeypatch.setattr(B, "MAX_TOTAL_BYTES", 1024)
    assert main(["import-bundle", str(big), "--db", f"sqlite:///{tmp_path / 'x.sqlite'}", "--user", "carol"]) == 2
    assert "more than a study bundle may be" in capsys.readouterr().err


def test_a_store_upgraded_to_row_digests_exports_bundles_that_import(tmp_path):
    """A database from before row digests (schema 0004) is upgraded (a row_hash record per row); its bundles
    carry those records and import (the replay skips them; every row has its digest)."""
    from alembic import command
    from sqlalchemy import text

    from doe.store import _engine
    from doe.store._audit import to_text
    from doe.store._models import GENESIS_HASH
    from tests.test_bundle import small_study

    url = f"sqlite:///{tmp_path / 'v0004.sqlite'}"
    yaml_text, values, ts = small_study().to_yaml(), {"Agitation": 30.0, "Medium": "FBS 10%", "Viability": 85.0}, \
        "2026-01-01T00:00:00.000000Z"
    engine = _engine.make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_engine.alembic_config(conn), "0004")
        sql = [("INSERT INTO studies (id, name, created_at, created_by) VALUES (1, :n, :t, 'olga')", {"n": NAME}),
               ("INSERT INTO study_versions (study_id, version, yaml, content_hash, created_at, created_by) "
                "VALUES (1, 1, :y, :h, :t, 'olga')", {"y": yaml_text, "h": B._sha(yaml_text.encode())}),
               ("INSERT INTO runs (id, study_id, label, values_json, row_version, deleted) VALUES (1, 1, '1', :v, 1, 0)",
                {"v": V.dumps(values)}),
               ("INSERT INTO run_revisions (run_id, data_version, row_version, values_json, deleted) "
                "VALUES (1, 1, 1, :v, 0)", {"v": V.dumps(values)}),
               ("INSERT INTO data_versions (study_id, version, content_hash, n_runs, reason, created_at, created_by) "
                "VALUES (1, 1, :h, 1, NULL, :t, 'olga')", {"h": V.content_hash({"1": values})})]
        for statement, params in sql:
            conn.execute(text(statement), {"t": ts, **params})
        prev = GENESIS_HASH
        for seq, (entity, eid, name, new) in enumerate([("study", "1", "name", NAME), ("study_version", "1:1", "yaml", yaml_text),
                                                         ("run", "1", "Run 1", values),
                                                         ("data_version", "1:1", "content_hash", V.content_hash({"1": values}))], 1):
            rec = {"seq": seq, "ts": ts, "user_name": "olga", "authenticated": False, "action": "create",
                   "entity": entity, "entity_id": eid, "study": NAME, "field": name, "old_value": None,
                   "new_value": to_text(new), "reason": None, "prev_hash": prev}
            rec["hash"] = prev = B.record_hash(prev, rec)
            conn.execute(text("INSERT INTO audit_trail (" + ", ".join(rec) + ") VALUES ("
                              + ", ".join(f":{k}" for k in rec) + ")"), rec)
        conn.execute(text("UPDATE audit_head SET last_seq = 4, last_hash = :h WHERE id = 1"), {"h": prev})
    engine.dispose()
    old, new, third = Store.open(url), open_store(tmp_path, "new.sqlite"), open_store(tmp_path, "third.sqlite")
    try:
        assert old.verify_audit().ok
        data = export_bundle(old, NAME)
        trail = members(data)["audit/audit_trail.csv"].decode()
        assert trail.count("row_hash") > 4  # the header and the upgrade's record per row
        import_bundle(new, data, "carol")
        assert new.runs(NAME).drop(columns="run_id").equals(old.runs(NAME).drop(columns="run_id"))
        refused(third, forge(data, _edit_result_one_run), "run 1: Viability is 99.3")
    finally:
        for store in (old, new, third):
            store.close()


def _edit_result_one_run(csvs: dict, docs: dict, others: dict) -> None:
    for path in ("runs/runs.csv", "runs/revisions.csv"):
        for r in csvs[path][1]:
            r["values_json"] = V.dumps({**json.loads(r["values_json"]), "Viability": FORGED})
    for v in csvs["runs/data_versions.csv"][1]:
        v["content_hash"] = V.content_hash({"1": json.loads(csvs["runs/runs.csv"][1][0]["values_json"])})


def test_a_zip_needing_a_newer_zip_format_is_refused_with_a_message(tmp_path):
    """Python's zipfile refuses a zip that needs a newer zip format version: a message, not an internal error."""
    import io
    import zipfile

    from doe.errors import DoeError
    from doe.store import Store, import_bundle

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", "{}")
    data = bytearray(buf.getvalue())
    central = data.rfind(b"PK\x01\x02")
    data[central + 6:central + 8] = (100).to_bytes(2, "little")  # version needed to extract: 10.0
    store = Store.open(data_dir=str(tmp_path))
    try:
        with pytest.raises(DoeError, match=r"cannot be unpacked \(zip file version 10.0\)"):
            import_bundle(store, bytes(data), "ana")
    finally:
        store.close()
