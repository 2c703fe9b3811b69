"""Manufacturing lot sheets in the store: versions, audit records, reasons, tamper evidence.

Storage has no published numbers to compare with; every expected value here is derived independently
of the store's code:

- the content hash of a lot data version is recomputed in the test from its definition (SHA-256 of the
  canonical JSON - keys sorted, separators ``,`` and ``:``, UTF-8 - of ``{"columns": the columns in order,
  "lots": the rows' values in sheet order}``, blanks and NaN as null), with the JSON text built by ``json.dumps`` here, not by the store;
- the floats are IEEE 754 doubles whose exact values are known (``0.1 + 0.2`` is 0.30000000000000004,
  5e-324 the smallest subnormal, 1.7976931348623157e308 the largest double): they must come back
  bit-identical (``==``), on SQLite and on PostgreSQL;
- the audit records expected for each edit are listed by hand below.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from doe.errors import DoeError
from doe.store import Store, User
from doe.study import Study
from tests.conftest import as_attacker

ALICE = User("alice", authenticated=True)
NAME = "MSC lots"
TRICKY = 0.1 + 0.2
COLUMNS = ["Lot", "Date", "Donor", "Agitation (rpm)", "Harvest density (cells/cm²)", "Viability (%)", "Subgroup",
           "Notes"]


def study() -> Study:
    return Study.from_dict({"name": NAME, "factors": [{"name": "Agitation", "low": 30, "high": 90, "units": "rpm"}],
                            "responses": [{"name": "Viability", "units": "%", "goal": "maximize"}]})


def sheet() -> pd.DataFrame:
    """Four lots; L03 has a blank Date and Donor, L04 a blank viability."""
    return pd.DataFrame({
        "Lot": ["L01", "L02", "L03", "L04"],
        "Date": ["2026-11-02", "2026-11-09", "", "2026-11-23"],
        "Donor": ["D1", "D1", "", "D2"],
        "Agitation (rpm)": [30.0, 90.0, 60.0, 60.0],
        "Harvest density (cells/cm²)": [2.1e4, 1.7976931348623157e308, 5e-324, 100 * TRICKY],
        "Viability (%)": [94.5, TRICKY, 96.0, np.nan],
        "Subgroup": ["A", "A", "B", "B"],
        "Notes": ["", "=SUM(A1)", "no donor record", ""],
    }, columns=COLUMNS)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'doe.sqlite'}"
        return
    from tests.conftest import fresh_pg_schema, postgres_test_url

    with fresh_pg_schema(postgres_test_url()) as pg:
        yield pg


@pytest.fixture
def store(url):
    s = Store.open(url)
    s.save_study(study(), ALICE)
    yield s
    s.close()


def same_sheet(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same columns in the same order, text equal, floats bit-identical (NaN where NaN)."""
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_exact=True,
                                  check_dtype=False)
    for c in want.columns:
        if want[c].dtype == np.float64:
            assert got[c].dtype == np.float64
            for a, b in zip(got[c], want[c], strict=True):
                assert (math.isnan(a) and math.isnan(b)) or a == b, (c, a, b)


def trail(s: Store) -> list[dict]:
    """The study's audit records, blanks as None."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in s.audit_trail(NAME).to_dict("records")]


def hand_hash(table: pd.DataFrame) -> str:
    """The content hash from its definition: the columns in order and the rows' values as JSON (NaN and
    blank text as null)."""
    rows = []
    for r in table.to_dict("records"):
        rows.append({c: (None if (isinstance(v, float) and math.isnan(v)) or v == "" else v) for c, v in r.items()})
    doc = {"columns": [str(c) for c in table.columns], "lots": rows}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- round trip, versions ---------------------------------------------------------------------------
def test_round_trip_is_exact_with_blank_date_and_donor(store):
    empty = store.lots(NAME)
    assert empty.empty and list(empty.columns) == []
    assert store.save_lots(NAME, sheet(), ALICE) == 1
    same_sheet(store.lots(NAME), sheet())
    same_sheet(store.lots(NAME, 1), sheet())
    got = store.lots(NAME)
    assert got["Viability (%)"].iloc[1] == 0.30000000000000004 and got["Harvest density (cells/cm²)"].iloc[2] == 5e-324
    assert got.loc[2, ["Date", "Donor"]].tolist() == ["", ""]
    versions = store.lot_versions(NAME)
    assert list(versions.columns) == ["version", "content_hash", "n_lots", "reason", "created_at", "created_by"]
    row = versions.iloc[0]
    assert (row.version, row.n_lots, row.created_by) == (1, 4, "alice") and row.reason is None
    assert row.content_hash == hand_hash(sheet())
    assert store.verify_audit().ok


def test_an_identical_sheet_writes_nothing(store):
    assert store.save_lots(NAME, sheet().iloc[:0], ALICE) == 0
    store.save_lots(NAME, sheet(), ALICE)
    mark, n = store.change_mark(), len(store.audit_trail())
    assert store.save_lots(NAME, sheet(), "bob") == 1
    assert store.change_mark() == mark and len(store.audit_trail()) == n and len(store.lot_versions(NAME)) == 1


def test_every_version_is_rebuilt_exactly(store):
    v1 = sheet()
    v2 = sheet().drop(index=3)  # L04 entered in error
    v2.loc[1, "Viability (%)"] = 91.25
    v2 = pd.concat([v2, pd.DataFrame([["L05", "2026-11-30", "D3", 45.0, 1.9e4, 97.0, "C", ""]], columns=COLUMNS)],
                   ignore_index=True)
    v3 = pd.concat([v1.iloc[[3]], v2], ignore_index=True)[COLUMNS[:3] + COLUMNS[4:] + [COLUMNS[3]]]  # L04 back,
    # first, and the agitation column moved last
    assert store.save_lots(NAME, v1, ALICE) == 1
    assert store.save_lots(NAME, v2, "bob", reason="L02 viability recounted; L04 entered in error") == 2
    assert store.save_lots(NAME, v3, ALICE, reason="L04 was right after all") == 3
    for version, want in ((1, v1), (2, v2), (3, v3)):
        same_sheet(store.lots(NAME, version), want)
        assert store.lot_versions(NAME).iloc[version - 1].content_hash == hand_hash(want)
    same_sheet(store.lots(NAME), v3)
    assert store.lot_versions(NAME)["n_lots"].tolist() == [4, 4, 5]
    with pytest.raises(DoeError, match="has no lot data version 4; versions run from 1 to 3"):
        store.lots(NAME, 4)
    assert store.verify_audit().ok


def test_moving_a_column_is_a_new_version_without_lot_records(store):
    store.save_lots(NAME, sheet(), ALICE)
    n_lot_records = sum(r["entity"] == "lot" for r in trail(store))
    moved = sheet()[[*COLUMNS[:3], "Notes", *COLUMNS[3:7]]]
    assert store.save_lots(NAME, moved, "bob") == 2  # no saved value changes: no reason needed
    assert sum(r["entity"] == "lot" for r in trail(store)) == n_lot_records
    hashes = store.lot_versions(NAME)["content_hash"].tolist()
    assert hashes == [hand_hash(sheet()), hand_hash(moved)] and hashes[0] != hashes[1]
    same_sheet(store.lots(NAME), moved)
    same_sheet(store.lots(NAME, 1), sheet())
    assert store.verify_audit().ok


# -- audit records and reasons ----------------------------------------------------------------------
def test_audit_records_each_created_changed_and_removed_lot(store):
    store.save_lots(NAME, sheet(), ALICE)
    created = [r for r in trail(store) if r["entity"] == "lot"]
    assert [r["field"] for r in created] == ["Lot L01", "Lot L02", "Lot L03", "Lot L04"]
    assert {r["action"] for r in created} == {"create"}
    assert json.loads(created[2]["new_value"]) == {
        "Lot": "L03", "Date": None, "Donor": None, "Agitation (rpm)": 60.0, "Harvest density (cells/cm²)": 5e-324,
        "Viability (%)": 96.0, "Subgroup": "B", "Notes": "no donor record"}
    version = [r for r in trail(store) if r["entity"] == "lot_version"]
    assert len(version) == 1 and json.loads(version[0]["new_value"]) == hand_hash(sheet())
    ids = {r["field"]: r["entity_id"] for r in created}

    edited = sheet().drop(index=0)
    edited.loc[1, "Viability (%)"] = 93.0  # a saved value changed
    edited.loc[3, "Viability (%)"] = 90.5  # a blank filled
    store.save_lots(NAME, edited, "bob", reason="recount")
    later = [r for r in trail(store) if r["entity"] == "lot"][4:]
    got = {(r["action"], r["entity_id"], r["field"], r["old_value"], r["new_value"], r["reason"]) for r in later}
    assert ("modify", ids["Lot L02"], "Viability (%)", "0.30000000000000004", "93.0", "recount") in got
    assert ("modify", ids["Lot L04"], "Viability (%)", None, "90.5", "recount") in got
    removed = [r for r in later if r["action"] == "delete"]
    assert len(later) == 3 and len(removed) == 1 and removed[0]["entity_id"] == ids["Lot L01"]
    assert removed[0]["field"] == "Lot L01" and json.loads(removed[0]["old_value"])["Viability (%)"] == 94.5


def test_changing_or_removing_a_saved_lot_needs_a_reason(store):
    store.save_lots(NAME, sheet(), ALICE)
    n = len(store.audit_trail())
    changed = sheet()
    changed.loc[0, "Donor"] = "D9"
    with pytest.raises(DoeError, match=r"changes saved values of Lot L01 \(Donor\).*give a reason"):
        store.save_lots(NAME, changed, "bob")
    with pytest.raises(DoeError, match="removes the saved lots Lot L04.*give a reason"):
        store.save_lots(NAME, sheet().iloc[:3], "bob", reason="  ")
    assert len(store.audit_trail()) == n and len(store.lot_versions(NAME)) == 1
    filled = sheet()
    filled.loc[2, ["Date", "Donor"]] = ["2026-11-16", "D2"]  # filling blanks is not a change of a saved value
    assert store.save_lots(NAME, filled, "bob") == 2
    assert store.lot_versions(NAME).iloc[1].reason is None


def test_sheets_that_cannot_be_stored_are_refused(store):
    with pytest.raises(DoeError, match="has no 'Lot' column"):
        store.save_lots(NAME, sheet().drop(columns="Lot"), ALICE)
    bad = sheet()
    bad.loc[3, "Lot"] = "L01"
    with pytest.raises(DoeError, match="Rows 1 and 4 of the lot sheet are both lot 'L01'"):
        store.save_lots(NAME, bad, ALICE)
    bad = sheet()
    bad.loc[2, "Lot"] = " "
    with pytest.raises(DoeError, match="Row 3 of the lot sheet has no Lot"):
        store.save_lots(NAME, bad, ALICE)
    with pytest.raises(DoeError, match="No study named 'Other'"):
        store.save_lots("Other", sheet(), ALICE)
    assert len(store.lot_versions(NAME)) == 0


# -- tamper evidence --------------------------------------------------------------------------------
def test_a_lot_edited_outside_the_application_is_found(store):
    store.save_lots(NAME, sheet(), ALICE)
    assert store.verify_audit().ok
    as_attacker(store.engine, "UPDATE lots SET values_json = replace(values_json, '94.5', '99.5')")
    check = store.verify_audit()
    assert not check.ok and check.entity == "lot"
    assert "lot L01 of study 'MSC lots'" in check.problem and "does not match the audit trail" in check.problem


def test_an_old_lot_version_edited_outside_the_application_is_found(store):
    store.save_lots(NAME, sheet(), ALICE)
    as_attacker(store.engine, "UPDATE lot_revisions SET values_json = replace(values_json, '94.5', '99.5')")
    check = store.verify_audit()
    assert not check.ok and check.entity == "lot_version" and "lot data version 1 of study" in check.problem


def test_the_audit_page_names_the_new_entities():
    from doe.audit_view import entity_label

    assert (entity_label("lot"), entity_label("lot_version")) == ("lot", "lot data version")
