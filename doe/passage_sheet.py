"""Changing a recorded passage sheet: an upload added to (or replacing) the recorded passages, and what changed.

Passages are matched by donor, passage number and vessel; parallel vessels of one passage (the same three
values) by their order in the sheet - as the store matches them (doe.store.Store.save_passages).
"""

from __future__ import annotations

import pandas as pd

from doe.errors import DoeError
from doe.sheet_change import SheetChange, compare_sheets, merge_sheets

KEY = ("Donor", "Passage", "Vessel")

#: What saving a passage sheet changes (doe.sheet_change.SheetChange; the name kept for callers).
PassageChange = SheetChange


def compare_passages(recorded: pd.DataFrame, table: pd.DataFrame) -> SheetChange:
    """What saving ``table`` as the whole sheet changes against ``recorded`` (both canonical passage tables)."""
    return compare_sheets(recorded, table, KEY, noun="passage")


def merge_passages(recorded: pd.DataFrame, upload: pd.DataFrame, *, replace: bool = False) -> SheetChange:
    """The sheet after an upload: the recorded passages with the upload's added (a passage with the same donor,
    passage number and vessel - and, for parallel vessels, position - replaces the recorded one), or with
    ``replace`` the upload alone. Both are canonical passage tables (doe.growth.read_passages)."""
    return merge_sheets(recorded, upload, KEY, replace=replace, noun="passage", reader="doe.growth.read_passages")


def scale_order(kinetics: pd.DataFrame, column: str = "Family") -> list[str]:
    """The levels of ``column`` (vessel families or vessels) in seed-train order: by the mean passage number
    they were used at, then by their mean culture area (the smaller vessel first)."""
    if column not in kinetics.columns:
        raise DoeError(f"The passages have no column '{column}'.")
    frame = kinetics.assign(_level=kinetics[column].astype(str))
    keys = frame.groupby("_level", sort=False).agg(
        passage=("Passage", "mean"), area=("Area (cm2)", "mean")) if "Area (cm2)" in frame else \
        frame.groupby("_level", sort=False).agg(passage=("Passage", "mean")).assign(area=0.0)
    return [str(i) for i in keys.sort_values(["passage", "area"], kind="stable").index]
