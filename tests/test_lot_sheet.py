"""Adding an uploaded lots sheet to the recorded lots, and what a save would change (doe.lots.merge_lots)."""

from __future__ import annotations

import pandas as pd
import pytest

from doe.errors import DoeError
from doe.lots import LOTS_FILE, compare_lots, lots_template, merge_lots, read_lots
from doe.study import Study
from tests.conftest import EXAMPLE

STUDY = Study.load(EXAMPLE)
RECORDED = read_lots(STUDY, LOTS_FILE.read_bytes(), LOTS_FILE.name).table


def test_an_upload_adds_new_lots_and_replaces_a_recorded_one_in_place():
    upload = RECORDED.iloc[[4]].copy()
    upload["Viability"] = 80.5  # L05 re-measured
    new = RECORDED.iloc[[0]].copy()
    new["Lot"] = "L31"
    merged = merge_lots(RECORDED, pd.concat([upload, new], ignore_index=True))
    assert (merged.new, merged.changed, merged.removed, merged.unchanged) == (1, 1, 0, 29)
    assert list(merged.table["Lot"]) == [*RECORDED["Lot"], "L31"]
    assert merged.table.loc[4, "Viability"] == 80.5 and merged.table.loc[3, "Viability"] == RECORDED.loc[3, "Viability"]
    assert merged.describe("lots.csv") == ("lots.csv: 1 new, 1 changed lots; 29 unchanged. Changing or removing a "
                                           "recorded lot needs a reason.")


def test_replacing_removes_the_lots_the_file_does_not_have():
    out = merge_lots(RECORDED, RECORDED.iloc[:10], replace=True)
    assert (out.new, out.changed, out.removed, out.unchanged) == (0, 0, 20, 10)
    assert compare_lots(RECORDED, RECORDED.copy()).describe() == "The sheet: nothing new - every lot is already recorded."


def test_the_first_lots_typed_into_the_empty_sheet_are_new():
    empty = lots_template(STUDY)
    assert list(empty.columns[:3]) == ["Lot", "Date", "Donor"] and not len(empty)
    assert set(STUDY.factor_names) | set(STUDY.response_names) <= set(empty.columns)
    typed = read_lots(STUDY, RECORDED.iloc[:2].astype(object), "typed").table
    assert compare_lots(empty, typed).new == 2


def test_an_upload_without_a_lot_column_is_refused():
    with pytest.raises(DoeError, match="no column Lot"):
        merge_lots(RECORDED, pd.DataFrame({"Viability": [90.0]}))
