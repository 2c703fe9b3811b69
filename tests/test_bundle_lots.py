"""Study bundles with manufacturing lots: every lot data version moves exactly.

Expected values are derived independently of the bundle code: the sheets saved in the source store
are the reference (every version must be rebuilt from the imported store equal cell by cell, same
columns in the same order, floats bit-identical: 0.1 + 0.2 is 0.30000000000000004 and
1.7976931348623157e308 the largest IEEE 754 double), file checksums are recomputed here with hashlib,
and a bundle of a study without lots has no lots/ files.
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
NAME = "MSC lots"
LOTS = ("lots/lots.csv", "lots/lot_versions.csv", "lots/lot_revisions.csv")
COLUMNS = ["Lot", "Date", "Donor", "Agitation", "Viability", "Notes"]


def study() -> Study:
    return Study.from_dict({"name": NAME, "factors": [{"name": "Agitation", "low": 30, "high": 90, "units": "rpm"}],
                            "responses": [{"name": "Viability", "units": "%", "goal": "maximize"}]})


def sheets() -> list[pd.DataFrame]:
    """Three versions: the first sheet (L03 without Date and Donor); a recount, L02 removed and L04 added;
    L02 back, first, with a Subgroup column added."""
    v1 = pd.DataFrame({"Lot": ["L01", "L02", "L03"], "Date": ["2026-11-02", "2026-11-09", ""],
                       "Donor": ["D1", "-80C box", ""], "Agitation": [30.0, 90.0, 60.0],
                       "Viability": [0.1 + 0.2, 1.7976931348623157e308, np.nan], "Notes": ["", "=SUM(A1)", ""]},
                      columns=COLUMNS)
    v2 = v1.drop(index=1)
    v2.loc[0, "Viability"] = 93.5
    v2 = pd.concat([v2, pd.DataFrame([["L04", "2026-11-30", "D2", 45.0, 97.25, "'quoted"]], columns=COLUMNS)],
                   ignore_index=True)
    v3 = pd.concat([v1.iloc[[1]], v2], ignore_index=True)
    v3.insert(3, "Subgroup", ["A", "A", "B", "B"])
    return [v1, v2, v3]


@pytest.fixture
def source(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'source.sqlite'}")
    store.save_study(study(), ALICE)
    v1, v2, v3 = sheets()
    store.save_lots(NAME, v1, ALICE)
    store.save_lots(NAME, v2, "bob", reason="recount; L02 entered in error")
    store.save_lots(NAME, v3, ALICE, reason="L02 was right; subgroups added")
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
    """The bundle with files replaced (None: removed), its manifest and checksums recomputed to match."""
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


def test_lots_move_exactly(source, target):
    data = export_bundle(source, NAME, ALICE)
    assert import_bundle(target, data, "carol") == NAME
    for version, want in enumerate(sheets(), 1):
        got = target.lots(NAME, version)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got, source.lots(NAME, version), check_exact=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)
    first = target.lots(NAME, 1)
    assert first["Viability"].iloc[0] == 0.30000000000000004 and first["Viability"].iloc[1] == 1.7976931348623157e308
    assert first.loc[2, ["Date", "Donor"]].tolist() == ["", ""]
    pd.testing.assert_frame_equal(target.lot_versions(NAME), source.lot_versions(NAME), check_exact=True)
    assert target.verify_audit().ok
    trail = target.audit_trail(NAME)
    assert ((trail["entity"] == "lot") & (trail["action"] == "create")).sum() == 4
    assert (trail["entity"] == "lot_version").sum() == 3
    counts = json.loads(trail[trail["entity"] == "bundle"].iloc[0]["new_value"])["counts"]
    assert (counts["lots"], counts["lot_versions"]) == (4, 3)
    again = members(export_bundle(target, NAME))
    assert all(again[p] == members(data)[p] for p in LOTS)  # the lots files come back byte for byte
    target.save_lots(NAME, sheets()[0], "dave", reason="back to the first sheet")  # the imported study lives on
    assert len(target.lot_versions(NAME)) == 4 and target.verify_audit().ok


def test_layout_and_a_bundle_without_lots(source, tmp_path):
    files = members(export_bundle(source, NAME))
    listed = {e["path"]: e["sha256"] for e in json.loads(files[MANIFEST])["files"]}
    for path in LOTS:
        assert listed[path] == hashlib.sha256(files[path]).hexdigest()
    lots = pd.read_csv(io.BytesIO(files["lots/lots.csv"]), keep_default_na=False)
    assert lots["Lot"].tolist() == ["L01", "L02", "L03", "L04"] and lots["Donor"].tolist()[1] == "'-80C box"
    versions = pd.read_csv(io.BytesIO(files["lots/lot_versions.csv"]))
    assert versions["n_lots"].tolist() == [3, 3, 4]
    assert json.loads(versions["columns_json"].iloc[2]) == ["Lot", "Date", "Donor", "Subgroup", "Agitation",
                                                             "Viability", "Notes"]
    plain = Store.open(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    try:
        plain.save_study(study(), ALICE)
        data = export_bundle(plain, NAME)
    finally:
        plain.close()
    assert not any(p.startswith("lots/") for p in members(data))
    target = Store.open(f"sqlite:///{tmp_path / 'target.sqlite'}")
    try:
        import_bundle(target, data, "carol")
        assert target.lots(NAME).empty and len(target.lot_versions(NAME)) == 0 and target.verify_audit().ok
    finally:
        target.close()


def refused(store: Store, data: bytes, match: str) -> None:
    before = len(store.audit_trail())
    with pytest.raises(DoeError, match=match):
        import_bundle(store, data, "carol", allow_unsigned=True)
    assert len(store.audit_trail()) == before and NAME not in set(store.list_studies()["name"])


def test_edited_lots_files_are_refused(source, tmp_path):
    target = Store.open(f"sqlite:///{tmp_path / 'target.sqlite'}")
    try:
        data = export_bundle(source, NAME)
        files = members(data)
        revisions = files["lots/lot_revisions.csv"].replace(b"97.25", b"99.25")
        refused(target, rezip(data, {"lots/lot_revisions.csv": revisions}),
                "Lot data version 2 in the bundle does not match its recorded hash")
        rows = files["lots/lots.csv"].replace(b"97.25", b"99.25")
        refused(target, rezip(data, {"lots/lots.csv": rows}), "Lot L04 .* differs from its last revision")
        refused(target, rezip(data, {"lots/lot_versions.csv": None}),
                "lots/lots.csv but not lots/lot_versions.csv")
        assert target.verify_audit().ok
    finally:
        target.close()
