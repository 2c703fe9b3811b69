"""Seed-train passage sheets and equivalence tests in the store: versions, audit records, tamper evidence.

Storage has no published numbers to compare with; every expected value here is derived independently
of the store's code:

- the content hash of a passage data version is recomputed in the test from its definition (SHA-256 of
  the canonical JSON - keys sorted, separators ``,`` and ``:``, UTF-8 - of the rows' values in sheet
  order), with the JSON text built by ``json.dumps`` here, not by the store;
- the floats are IEEE 754 doubles whose exact values are known (``0.1 + 0.2`` is 0.30000000000000004,
  5e-324 the smallest subnormal, 1.7976931348623157e308 the largest double): they must come back
  bit-identical (``==``), on SQLite and on PostgreSQL;
- the row keys of parallel vessels (the k-th row of the same donor, passage and vessel) are counted by
  hand in the sheets below.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from doe.errors import DoeError
from doe.store import Store, User, passage_label
from doe.study import Study
from tests.conftest import as_attacker

ALICE = User("alice", authenticated=True)
NAME = "MSC expansion"
COLUMNS = ["Donor", "Passage", "Vessel", "Seeded cells", "Harvested cells", "Hours", "Viability", "Area (cm2)",
           "Notes"]
TRICKY = 0.1 + 0.2


def study() -> Study:
    return Study.from_dict({"name": NAME, "factors": [{"name": "Agitation", "low": 30, "high": 90, "units": "rpm"}],
                            "responses": [{"name": "Viability", "units": "%", "goal": "maximize"}]})


def sheet() -> pd.DataFrame:
    """Donor D1 passage 3 in two parallel T-75 flasks (keys (D1, 3, T-75, 1) and (D1, 3, T-75, 2)), then
    D1 passage 4 in a CellSTACK-10 and D2 passage 3 in a T-75."""
    return pd.DataFrame({
        "Donor": ["D1", "D1", "D1", "D2"],
        "Passage": [3, 3, 4, 3],
        "Vessel": ["T-75", "T-75", "CellSTACK-10", "T-75"],
        "Seeded cells": [3.75e5, 3.75e5, 2.0e7, 3.75e5],
        "Harvested cells": [2.1e6, 1.9e6, 1.7976931348623157e308, 100 * TRICKY],
        "Hours": [96.0, 96.0, 120.0, 5e-324],
        "Viability": [94.5, np.nan, 96.0, 91.25],
        "Area (cm2)": [75.0, 75.0, 6360.0, np.nan],
        "Notes": ["", "second flask", "", "=SUM(A1)"],
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
    """Equal cell by cell, floats exactly (NaN where NaN), with the canonical dtypes."""
    assert list(got.columns) == COLUMNS
    assert got["Passage"].dtype == np.int64 and got["Donor"].dtype == object and got["Notes"].dtype == object
    assert all(got[c].dtype == np.float64 for c in COLUMNS[3:8])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_exact=True,
                                  check_dtype=False)
    for c in COLUMNS[3:8]:
        for a, b in zip(got[c], want[c], strict=True):
            assert (math.isnan(a) and math.isnan(b)) or a == b, (c, a, b)


def trail(s: Store) -> list[dict]:
    """The study's audit records, blanks as None."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in s.audit_trail(NAME).to_dict("records")]


def hand_hash(table: pd.DataFrame) -> str:
    """The content hash from its definition: the rows' values as JSON (NaN and blank notes as null)."""
    rows = []
    for r in table.to_dict("records"):
        rows.append({"Donor": r["Donor"], "Passage": int(r["Passage"]), "Vessel": r["Vessel"],
                     **{c: (None if math.isnan(r[c]) else float(r[c])) for c in COLUMNS[3:8]},
                     "Notes": r["Notes"] or None})
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- round trip, versions ---------------------------------------------------------------------------
def test_round_trip_is_exact_and_the_hash_is_the_defined_one(store):
    assert len(store.passages(NAME)) == 0 and list(store.passages(NAME).columns) == COLUMNS
    assert store.save_passages(NAME, sheet(), ALICE) == 1
    same_sheet(store.passages(NAME), sheet())
    same_sheet(store.passages(NAME, 1), sheet())
    assert store.passages(NAME)["Harvested cells"].iloc[3] == 30.000000000000004
    versions = store.passage_versions(NAME)
    assert list(versions.columns) == ["version", "content_hash", "n_passages", "reason", "created_at", "created_by"]
    row = versions.iloc[0]
    assert (row.version, row.n_passages, row.created_by) == (1, 4, "alice") and row.reason is None
    assert row.content_hash == hand_hash(sheet())
    assert store.verify_audit().ok


def test_an_identical_sheet_writes_nothing(store):
    assert store.save_passages(NAME, sheet().iloc[:0], ALICE) == 0  # nothing saved yet, nothing to save
    store.save_passages(NAME, sheet(), ALICE)
    mark, n = store.change_mark(), len(store.audit_trail())
    again = sheet().astype({"Passage": float})  # 3.0 is passage 3
    assert store.save_passages(NAME, again, "bob") == 1
    assert store.change_mark() == mark and len(store.audit_trail()) == n and len(store.passage_versions(NAME)) == 1


def test_every_version_is_rebuilt_exactly(store):
    v1 = sheet()
    v2 = sheet().drop(index=2)  # CellSTACK row removed
    v2.loc[1, "Harvested cells"] = 1.95e6  # second T-75 flask recounted
    v2 = pd.concat([v2, pd.DataFrame([["D3", 2, "T-175", 8.75e5, 5.1e6, 100.0, 97.0, 175.0, ""]],
                                     columns=COLUMNS)], ignore_index=True)
    v3 = pd.concat([v1.iloc[[3, 2]], v2.iloc[[0, 1, 3]]], ignore_index=True)  # reordered, the removed row back
    assert store.save_passages(NAME, v1, ALICE) == 1
    assert store.save_passages(NAME, v2, "bob", reason="flask 2 recounted; CellSTACK entered in error") == 2
    assert store.save_passages(NAME, v3, ALICE, reason="CellSTACK was right after all") == 3
    for version, want in ((1, v1), (2, v2), (3, v3)):
        same_sheet(store.passages(NAME, version), want)
        assert store.passage_versions(NAME).iloc[version - 1].content_hash == hand_hash(want)
    same_sheet(store.passages(NAME), v3)
    assert store.passage_versions(NAME)["n_passages"].tolist() == [4, 4, 5]
    with pytest.raises(DoeError, match="has no passage data version 4; versions run from 1 to 3"):
        store.passages(NAME, 4)
    assert store.verify_audit().ok


# -- audit records ----------------------------------------------------------------------------------
def test_audit_records_each_created_changed_and_removed_row(store):
    store.save_passages(NAME, sheet(), ALICE)
    created = [r for r in trail(store) if r["entity"] == "passage"]
    assert [r["field"] for r in created] == ["Donor D1, passage 3, T-75", "Donor D1, passage 3, T-75 (vessel 2)",
                                             "Donor D1, passage 4, CellSTACK-10", "Donor D2, passage 3, T-75"]
    assert {r["action"] for r in created} == {"create"}
    new = json.loads(created[1]["new_value"])
    assert new == {"Donor": "D1", "Passage": 3, "Vessel": "T-75", "Seeded cells": 375000.0,
                   "Harvested cells": 1900000.0, "Hours": 96.0, "Viability": None, "Area (cm2)": 75.0,
                   "Notes": "second flask"}
    version = [r for r in trail(store) if r["entity"] == "passage_version"]
    assert len(version) == 1 and json.loads(version[0]["new_value"]) == hand_hash(sheet())
    ids = {r["field"]: r["entity_id"] for r in created}

    edited = sheet().drop(index=3)
    edited.loc[1, ["Harvested cells", "Viability"]] = [1.95e6, 93.0]  # a change and a blank filled
    store.save_passages(NAME, edited, "bob", reason="recount")
    later = [r for r in trail(store) if r["entity"] == "passage"][4:]
    changes = {(r["action"], r["entity_id"], r["field"], r["old_value"], r["new_value"], r["reason"]) for r in later}
    second, d2 = ids["Donor D1, passage 3, T-75 (vessel 2)"], ids["Donor D2, passage 3, T-75"]
    assert ("modify", second, "Harvested cells", "1900000.0", "1950000.0", "recount") in changes
    assert ("modify", second, "Viability", None, "93.0", "recount") in changes
    removed = [r for r in later if r["action"] == "delete"]
    assert len(later) == 3 and len(removed) == 1 and removed[0]["entity_id"] == d2
    assert removed[0]["field"] == "Donor D2, passage 3, T-75"
    assert json.loads(removed[0]["old_value"])["Harvested cells"] == 30.000000000000004


def test_changing_or_removing_a_saved_row_needs_a_reason(store):
    store.save_passages(NAME, sheet(), ALICE)
    n = len(store.audit_trail())
    changed = sheet()
    changed.loc[0, "Hours"] = 97.0
    with pytest.raises(DoeError, match=r"changes saved values of Donor D1, passage 3, T-75 \(Hours\).*give a reason"):
        store.save_passages(NAME, changed, "bob")
    with pytest.raises(DoeError, match="removes the saved rows Donor D2, passage 3, T-75.*give a reason"):
        store.save_passages(NAME, sheet().iloc[:3], "bob", reason="  ")
    assert len(store.audit_trail()) == n and len(store.passage_versions(NAME)) == 1
    filled = sheet()
    filled.loc[1, "Viability"] = 92.5  # filling a blank is not a change of a saved value
    assert store.save_passages(NAME, filled, "bob") == 2
    assert store.passage_versions(NAME).iloc[1].reason is None


def test_parallel_vessels_are_matched_by_their_order(store):
    store.save_passages(NAME, sheet(), ALICE)
    swapped = sheet().iloc[[1, 0, 2, 3]]  # the two T-75 flasks of D1 passage 3 swap places
    assert store.save_passages(NAME, swapped, "bob", reason="flasks were listed the other way round") == 2
    changes = [r for r in trail(store) if r["action"] == "modify"]
    # the first T-75 row now holds the second flask's values and the other way round
    assert {(r["field"], r["old_value"], r["new_value"]) for r in changes} >= {
        ("Harvested cells", "2100000.0", "1900000.0"), ("Harvested cells", "1900000.0", "2100000.0")}
    same_sheet(store.passages(NAME), swapped)


def test_sheets_that_cannot_be_stored_are_refused(store):
    with pytest.raises(DoeError, match="has no 'Hours' column"):
        store.save_passages(NAME, sheet().drop(columns="Hours"), ALICE)
    bad = sheet().astype({"Passage": float})
    bad.loc[2, "Passage"] = 4.5
    with pytest.raises(DoeError, match="Row 3 of the passage sheet: Passage '4.5' is not a whole number"):
        store.save_passages(NAME, bad, ALICE)
    bad = sheet().astype({"Seeded cells": object})
    bad.loc[0, "Seeded cells"] = "many"
    with pytest.raises(DoeError, match="Row 1 of the passage sheet: Seeded cells 'many' is not a number"):
        store.save_passages(NAME, bad, ALICE)
    bad = sheet()
    bad.loc[3, "Donor"] = " "
    with pytest.raises(DoeError, match="Row 4 of the passage sheet has no Donor"):
        store.save_passages(NAME, bad, ALICE)
    with pytest.raises(DoeError, match="No study named 'Other'"):
        store.save_passages("Other", sheet(), ALICE)
    assert len(store.passage_versions(NAME)) == 0
    # optional columns may be left out; computed columns are not stored
    short = sheet().drop(columns=["Viability", "Area (cm2)", "Notes"]).assign(**{"Fold expansion": 5.6})
    store.save_passages(NAME, short, ALICE)
    got = store.passages(NAME)
    assert list(got.columns) == COLUMNS and got["Viability"].isna().all() and (got["Notes"] == "").all()


def test_the_store_keeps_the_readers_columns():
    from doe.growth import PASSAGE_COLUMNS
    from doe.store._passages import PASSAGE_COLUMNS as STORED

    assert tuple(PASSAGE_COLUMNS) == STORED == tuple(COLUMNS)
    assert passage_label(("D1", 3, "T-75", 1)) == "Donor D1, passage 3, T-75"


# -- equivalence tests ------------------------------------------------------------------------------
def result(equivalent: bool = True) -> dict:
    return {"response": "Doubling time (h)", "group": "Vessel", "reference": "T-75", "test": "CellSTACK-10",
            "margin": [-0.2231435513142097, 0.22314355131420976], "estimate": np.float64(TRICKY),
            "ci": [np.float64(-0.05), 0.11], "p": float("nan"), "equivalent": np.bool_(equivalent),
            "alpha": 0.05, "log": True, "paired": False, "notes": ()}


def test_equivalence_tests_are_kept_with_their_passage_version(store):
    first = store.save_equivalence(NAME, result(), ALICE, note="before any passage sheet")
    store.save_passages(NAME, sheet(), ALICE)
    second = store.save_equivalence(NAME, result(False), "bob")
    tests = store.equivalence_tests(NAME)
    assert list(tests.columns) == ["id", "passage_version", "response", "reference", "test", "equivalent", "result",
                                   "note", "created_at", "created_by"]
    assert tests["id"].tolist() == [first, second]
    assert pd.isna(tests["passage_version"].iloc[0]) and tests["passage_version"].iloc[1] == 1
    assert tests["equivalent"].tolist() == [True, False] and tests["equivalent"].dtype == bool
    assert tests[["response", "reference", "test"]].iloc[0].tolist() == ["Doubling time (h)", "T-75", "CellSTACK-10"]
    kept = tests["result"].iloc[0]
    assert kept["estimate"] == 0.30000000000000004 and kept["margin"][1] == 0.22314355131420976
    assert kept["p"] is None and kept["notes"] == [] and tests["note"].tolist() == ["before any passage sheet", ""]
    records = [r for r in trail(store) if r["entity"] == "equivalence"]
    assert [(r["action"], r["entity_id"]) for r in records] == [("create", str(first)), ("create", str(second))]
    assert json.loads(records[1]["new_value"])["passage_version"] == 1
    with pytest.raises(DoeError, match="has no 'equivalent'"):
        store.save_equivalence(NAME, {k: v for k, v in result().items() if k != "equivalent"}, ALICE)
    assert store.verify_audit().ok


# -- tamper evidence --------------------------------------------------------------------------------
def test_a_passage_row_edited_outside_the_application_is_found(store):
    store.save_passages(NAME, sheet(), ALICE)
    store.save_equivalence(NAME, result(), ALICE)
    assert store.verify_audit().ok
    as_attacker(store.engine, "UPDATE passages SET values_json = replace(values_json, '1900000.0', '2900000.0')")
    check = store.verify_audit()
    assert not check.ok and check.entity == "passage"
    assert "seed-train passage Donor D1, passage 3, T-75 (vessel 2) of study 'MSC expansion'" in check.problem
    assert "does not match the audit trail" in check.problem


def test_an_old_version_or_an_equivalence_test_edited_outside_the_application_is_found(store):
    store.save_passages(NAME, sheet(), ALICE)
    store.save_equivalence(NAME, result(), ALICE)
    as_attacker(store.engine, "UPDATE passage_revisions SET values_json = replace(values_json, '94.5', '99.5')")
    check = store.verify_audit()
    assert not check.ok and check.entity == "passage_version" and "passage data version 1 of study" in check.problem
    as_attacker(store.engine, "UPDATE passage_revisions SET values_json = replace(values_json, '99.5', '94.5')",
                "UPDATE equivalence_tests SET result_json = replace(result_json, 'true', 'false')")
    check = store.verify_audit()
    assert not check.ok and check.entity == "equivalence" and "equivalence test 1 of study" in check.problem


def test_the_audit_page_names_the_new_entities():
    from doe.audit_view import audit_frame

    rows = [("passage", "Donor D1, passage 3, T-75"), ("passage_version", "content_hash"),
            ("equivalence", "equivalence")]
    frame = pd.DataFrame({"seq": [1, 2, 3], "ts": ["2026-12-07T10:00:00.000000Z"] * 3, "user_name": ["ana"] * 3,
                          "authenticated": [True] * 3, "action": ["create"] * 3, "entity": [e for e, _ in rows],
                          "entity_id": ["1", "1:1", "1"], "study": [NAME] * 3, "field": [f for _, f in rows],
                          "old_value": [None] * 3, "new_value": ["{}", '"ab"', "{}"], "reason": [None] * 3,
                          "prev_hash": ["0"] * 3, "hash": ["a"] * 3})
    shown = audit_frame(frame, entities=["passage_version", "equivalence"])
    assert shown["entity"].tolist() == ["equivalence test", "passage data version"]
