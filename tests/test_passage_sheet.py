"""Adding an upload to the recorded passages, and what a save would change (doe.passage_sheet)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from doe.errors import DoeError
from doe.passage_sheet import compare_passages, merge_passages, scale_order

COLUMNS = ["Donor", "Passage", "Vessel", "Seeded cells", "Harvested cells", "Hours", "Viability", "Area (cm2)", "Notes"]


def sheet(*rows):
    return pd.DataFrame([list(r) for r in rows], columns=COLUMNS)


RECORDED = sheet(("D1", 1, "T-175", 3.5e5, 2.3e6, 96.0, 95.0, math.nan, ""),
                 ("D1", 2, "CellSTACK-10", 1.3e7, 8.0e7, 96.0, 94.0, math.nan, ""),
                 ("D1", 2, "CellSTACK-10", 1.3e7, 8.4e7, 96.0, 94.0, math.nan, "second vessel"))


def test_adding_new_passages_keeps_every_recorded_one():
    upload = sheet(("D2", 1, "T-175", 3.5e5, 2.1e6, 95.0, 96.0, math.nan, ""))
    out = merge_passages(RECORDED, upload)
    assert (out.new, out.changed, out.removed, out.unchanged) == (1, 0, 0, 3)
    assert len(out.table) == 4 and out.table["Donor"].tolist() == ["D1", "D1", "D1", "D2"]
    assert "1 new passage;" in out.describe("up.csv")


def test_a_passage_with_the_same_key_replaces_the_recorded_one_and_parallel_vessels_by_position():
    upload = sheet(("D1", 2, "CellSTACK-10", 1.3e7, 8.0e7, 96.0, 94.0, math.nan, ""),
                   ("D1", 2, "CellSTACK-10", 1.3e7, 8.5e7, 96.0, 94.0, math.nan, "recount"))
    out = merge_passages(RECORDED, upload)
    assert (out.new, out.changed, out.removed) == (0, 1, 0)
    assert out.table["Harvested cells"].tolist() == [2.3e6, 8.0e7, 8.5e7]
    assert "needs a reason" in out.describe()


def test_replace_counts_the_removed_passages():
    upload = sheet(("D1", 1, "T-175", 3.5e5, 2.3e6, 96.0, 95.0, math.nan, ""))
    out = merge_passages(RECORDED, upload, replace=True)
    assert (out.new, out.changed, out.removed, out.unchanged) == (0, 0, 2, 1)
    assert len(out.table) == 1


def test_the_same_sheet_changes_nothing_blank_and_nan_alike():
    again = RECORDED.copy()
    again["Notes"] = again["Notes"].replace("", None)
    out = compare_passages(RECORDED, again)
    assert out.changes == 0 and out.describe("x").endswith("already recorded.")


def test_an_upload_without_the_key_columns_is_refused():
    with pytest.raises(DoeError, match="no column Donor"):
        merge_passages(RECORDED, pd.DataFrame({"Seeded cells": [1.0]}))


def test_scale_order_is_the_seed_train_order():
    k = pd.DataFrame({"Family": ["CellCube", "T-flask", "CellSTACK", "CellSTACK", "T-flask"],
                      "Passage": [4, 1, 3, 4, 2], "Area (cm2)": [21250, 175, 6360, 25440, 225]})
    # mean passage: T-flask 1.5, CellSTACK 3.5, CellCube 4
    assert scale_order(k) == ["T-flask", "CellSTACK", "CellCube"]
    same = pd.DataFrame({"Vessel": ["CellSTACK-40", "CellCube-25"], "Passage": [4, 4], "Area (cm2)": [25440, 21250]})
    assert scale_order(same, "Vessel") == ["CellCube-25", "CellSTACK-40"]  # same passage: smaller area first
