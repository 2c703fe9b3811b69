"""Study bundles with the seed train: passage sheets (every version) and equivalence tests move exactly.

Expected values are derived independently of the bundle code: the sheets saved in the source store
are the reference (every version must be rebuilt from the imported store equal cell by cell, floats
bit-identical: 0.1 + 0.2 is 0.30000000000000004 and 1.7976931348623157e308 the largest IEEE 754
double), file checksums are recomputed here with hashlib, and a bundle of a study without seed-train
data is laid out exactly as bundles were before (no seed_train/ files, bundle schema 2).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from doe.errors import DoeError
from doe.store import Store, User, export_bundle, import_bundle
from doe.store._bundle import CHECKSUMS, MANIFEST
from doe.study import Study

ALICE = User("alice", authenticated=True)
NAME = "MSC expansion"
COLUMNS = ["Donor", "Passage", "Vessel", "Seeded cells", "Harvested cells", "Hours", "Viability", "Area (cm2)",
           "Notes"]
SEED_TRAIN = ("seed_train/passages.csv", "seed_train/passage_versions.csv", "seed_train/passage_revisions.csv",
              "seed_train/equivalence.json")


def study() -> Study:
    return Study.from_dict({"name": NAME, "factors": [{"name": "Agitation", "low": 30, "high": 90, "units": "rpm"}],
                            "responses": [{"name": "Viability", "units": "%", "goal": "maximize"}]})


def sheets() -> list[pd.DataFrame]:
    """Three versions: the first sheet; a recount, a row removed and one added; the removed row back,
    reordered."""
    v1 = pd.DataFrame({
        "Donor": ["D1", "D1", "D1", "D2"], "Passage": [3, 3, 4, 3],
        "Vessel": ["T-75", "T-75", "CellSTACK-10", "-80C box"],
        "Seeded cells": [3.75e5, 3.75e5, 2.0e7, 3.75e5],
        "Harvested cells": [2.1e6, 1.9e6, 1.7976931348623157e308, 100 * (0.1 + 0.2)],
        "Hours": [96.0, 96.0, 120.0, 5e-324], "Viability": [94.5, np.nan, 96.0, 91.25],
        "Area (cm2)": [75.0, 75.0, 6360.0, np.nan], "Notes": ["", "second flask", "", "=SUM(A1)"]}, columns=COLUMNS)
    v2 = v1.drop(index=2)
    v2.loc[1, "Harvested cells"] = 1.95e6
    v2 = pd.concat([v2, pd.DataFrame([["D3", 2, "T-175", 8.75e5, 5.1e6, 100.0, 97.0, 175.0, "'quoted"]],
                                     columns=COLUMNS)], ignore_index=True)
    v3 = pd.concat([v1.iloc[[3, 2]], v2.iloc[[0, 1, 3]]], ignore_index=True)
    return [v1, v2, v3]


RESULT = {"response": "Doubling time (h)", "group": "Vessel", "reference": "T-75", "test": "CellSTACK-10",
          "margin": [-0.2231435513142097, 0.22314355131420976], "estimate": 0.30000000000000004,
          "ci": [-0.05, 0.11], "p": None, "equivalent": True, "alpha": 0.05, "log": True, "paired": False}


@pytest.fixture
def source(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'source.sqlite'}")
    store.save_study(study(), ALICE)
    store.save_equivalence(NAME, RESULT, ALICE, note="before the sheet")
    v1, v2, v3 = sheets()
    store.save_passages(NAME, v1, ALICE)
    store.save_passages(NAME, v2, "bob", reason="recount; CellSTACK entered in error")
    store.save_equivalence(NAME, {**RESULT, "equivalent": False, "p": 0.21}, "bob")
    store.save_passages(NAME, v3, ALICE, reason="CellSTACK was right")
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    if request.param == "sqlite":
        store = Store.open(f"sqlite:///{tmp_path / 'target.sqlite'}")
        yield store
        store.close()
        return
    from tests.conftest import fresh_pg_schema, postgres_test_url

    with fresh_pg_schema(postgres_test_url()) as url:
        store = Store.open(url)
        yield store
        store.close()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def rezip(data: bytes, changes: dict[str, bytes | None]) -> bytes:
    """The bundle with files replaced (None: removed) and its manifest and checksums recomputed to match
    (the signature then no longer matches, but the content checks come first)."""
    files = {p: b for p, b in {**members(data), **changes}.items() if b is not None}
    manifest = json.loads(files[MANIFEST])
    manifest["files"] = [dict(e, sha256=hashlib.sha256(files[e["path"]]).hexdigest()) for e in manifest["files"]
                         if e["path"] in files]
    files[MANIFEST] = json.dumps(manifest).encode()
    listed = [MANIFEST, "signature.json", *(e["path"] for e in manifest["files"])]
    files[CHECKSUMS] = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in listed).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def test_passages_and_equivalence_tests_move_exactly(source, target):
    data = export_bundle(source, NAME, ALICE)
    assert import_bundle(target, data, "carol") == NAME
    for version, want in enumerate(sheets(), 1):
        got = target.passages(NAME, version)
        pd.testing.assert_frame_equal(got, source.passages(NAME, version), check_exact=True)
        pd.testing.assert_frame_equal(got, want.astype({"Passage": "int64", "Donor": object, "Vessel": object,
                                                        "Notes": object}), check_exact=True)
    assert got["Harvested cells"].iloc[0] == 30.000000000000004 and got["Harvested cells"].iloc[1] == 1.7976931348623157e308
    pd.testing.assert_frame_equal(target.passages(NAME), source.passages(NAME), check_exact=True)
    pd.testing.assert_frame_equal(target.passage_versions(NAME), source.passage_versions(NAME), check_exact=True)
    assert target.passage_versions(NAME)["created_by"].tolist() == ["alice", "bob", "alice"]
    mine, theirs = target.equivalence_tests(NAME), source.equivalence_tests(NAME)
    cols = ["passage_version", "response", "reference", "test", "equivalent", "note", "created_at", "created_by"]
    pd.testing.assert_frame_equal(mine[cols], theirs[cols])
    assert mine["result"].tolist() == theirs["result"].tolist() and mine["result"].iloc[0]["estimate"] == 0.30000000000000004
    assert target.verify_audit().ok
    trail = target.audit_trail(NAME)
    assert ((trail["entity"] == "passage") & (trail["action"] == "create")).sum() == 5
    assert (trail["entity"] == "passage_version").sum() == 3 and (trail["entity"] == "equivalence").sum() == 2
    counts = json.loads(trail[trail["entity"] == "bundle"].iloc[0]["new_value"])["counts"]
    assert (counts["passages"], counts["passage_versions"], counts["equivalence_tests"]) == (5, 3, 2)
    again = members(export_bundle(target, NAME))  # the seed-train files come back byte for byte
    first = members(data)
    assert all(again[p] == first[p] for p in SEED_TRAIN)
    target.save_passages(NAME, sheets()[0], "dave", reason="back to the first sheet")  # the imported study lives on
    assert len(target.passage_versions(NAME)) == 4 and target.verify_audit().ok


def test_layout_checksums_and_readable_files(source):
    files = members(export_bundle(source, NAME))
    manifest = json.loads(files[MANIFEST])
    listed = {e["path"]: e["sha256"] for e in manifest["files"]}
    for path in SEED_TRAIN:
        assert listed[path] == hashlib.sha256(files[path]).hexdigest()
        assert f"{listed[path]}  {path}" in files[CHECKSUMS].decode()
    assert manifest["bundle_schema"] == 2
    passages = pd.read_csv(io.BytesIO(files["seed_train/passages.csv"]), keep_default_na=False)
    assert len(passages) == 5 and passages["deleted"].tolist() == [False] * 5
    assert passages["Vessel"].tolist()[3] == "'-80C box"  # a spreadsheet would read -80C... as a formula
    versions = pd.read_csv(io.BytesIO(files["seed_train/passage_versions.csv"]))
    assert versions["n_passages"].tolist() == [4, 4, 5]
    assert json.loads(versions["order_json"].iloc[2])[0] == ["D2", 3, "-80C box", 1]
    tests = json.loads(files["seed_train/equivalence.json"])
    assert [t["passage_version"] for t in tests] == [None, 2] and tests[0]["result"] == RESULT


def test_a_bundle_without_seed_train_files_still_imports(tmp_path, target):
    plain = Store.open(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    try:
        plain.save_study(study(), ALICE)
        plain.append_runs(NAME, pd.DataFrame({"Run": [1, 2], "Agitation": [30.0, 90.0], "Viability": [91.0, 93.5]}),
                          ALICE)
        data = export_bundle(plain, NAME)
    finally:
        plain.close()
    files = members(data)
    assert not any(p.startswith("seed_train/") for p in files)  # laid out as before the seed train
    assert json.loads(files[MANIFEST])["bundle_schema"] == 2
    import_bundle(target, data, "carol")
    assert len(target.passages(NAME)) == 0 and list(target.passages(NAME).columns) == COLUMNS
    assert len(target.passage_versions(NAME)) == 0 and len(target.equivalence_tests(NAME)) == 0
    assert len(target.runs(NAME)) == 2 and target.verify_audit().ok


def refused(store: Store, data: bytes, match: str) -> None:
    before = len(store.audit_trail())
    with pytest.raises(DoeError, match=match):
        import_bundle(store, data, "carol", allow_unsigned=True)
    assert len(store.audit_trail()) == before and NAME not in set(store.list_studies()["name"])


def test_edited_seed_train_files_are_refused(source, tmp_path):
    target = Store.open(f"sqlite:///{tmp_path / 'target.sqlite'}")
    try:
        data = export_bundle(source, NAME)
        files = members(data)
        revisions = files["seed_train/passage_revisions.csv"].replace(b"94.5", b"99.5")
        refused(target, rezip(data, {"seed_train/passage_revisions.csv": revisions}),
                "Passage data version 1 in the bundle does not match its recorded hash")
        rows = files["seed_train/passages.csv"].replace(b"94.5", b"99.5")
        refused(target, rezip(data, {"seed_train/passages.csv": rows}),
                "passage .* seed_train/passages.csv differs from its last revision")
        tests = json.loads(files["seed_train/equivalence.json"])
        tests[1]["result"]["equivalent"] = True
        refused(target, rezip(data, {"seed_train/equivalence.json": json.dumps(tests).encode()}),
                "equivalence test 2 is not the one its audit record holds")
        refused(target, rezip(data, {"seed_train/equivalence.json": None}),
                "seed_train/passages.csv but not seed_train/equivalence.json")
        assert target.verify_audit().ok
    finally:
        target.close()
