"""Changing a recorded passage sheet: an upload added to (or replacing) the recorded passages, and what changed.

Passages are matched by donor, passage number and vessel; parallel vessels of one passage (the same three
values) by their order in the sheet - as the store matches them (doe.store.Store.save_passages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from doe.errors import DoeError

KEY = ("Donor", "Passage", "Vessel")


def _key_frame(table: pd.DataFrame) -> list[tuple[str, int, str, int]]:
    """(donor, passage, vessel, k) of every row, k counting the repeats of the first three in sheet order."""
    seen: dict[tuple[str, int, str], int] = {}
    out = []
    for donor, passage, vessel in zip(table["Donor"], table["Passage"], table["Vessel"], strict=True):
        base = (str(donor).strip(), int(passage), str(vessel).strip())
        seen[base] = seen.get(base, 0) + 1
        out.append((*base, seen[base]))
    return out


def _same(a: Any, b: Any) -> bool:
    blank_a = a is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(a, str) and not a.strip())
    blank_b = b is None or (isinstance(b, float) and math.isnan(b)) or (isinstance(b, str) and not b.strip())
    if blank_a or blank_b:
        return blank_a and blank_b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a).strip() == str(b).strip()


def _rows(table: pd.DataFrame) -> dict[tuple[str, int, str, int], dict[str, Any]]:
    records = table.to_dict("records")
    return {k: {str(c): v for c, v in r.items()} for k, r in zip(_key_frame(table), records, strict=True)}


@dataclass
class PassageChange:
    """The sheet to save and what it changes against the recorded one."""

    table: pd.DataFrame
    new: int
    changed: int
    removed: int
    unchanged: int

    @property
    def changes(self) -> int:
        """New, changed and removed passages together (0: nothing to save)."""
        return self.new + self.changed + self.removed

    def describe(self, what: str = "The sheet") -> str:
        """One sentence: what saving would do."""
        if not self.changes:
            return f"{what}: nothing new - every passage is already recorded."
        parts = [f"{n} {label}" for n, label in ((self.new, "new"), (self.changed, "changed"),
                                                 (self.removed, "removed")) if n]
        return (f"{what}: {', '.join(parts)} passage{'s' if self.changes != 1 else ''}; {self.unchanged} unchanged. "
                + ("Changing or removing a recorded passage needs a reason." if self.changed or self.removed else ""))


def compare_passages(recorded: pd.DataFrame, table: pd.DataFrame) -> PassageChange:
    """What saving ``table`` as the whole sheet changes against ``recorded`` (both canonical passage tables)."""
    old, new = _rows(recorded) if len(recorded) else {}, _rows(table) if len(table) else {}
    columns = [str(c) for c in table.columns]
    changed = sum(1 for k, row in new.items() if k in old
                  and not all(_same(row.get(c), old[k].get(c)) for c in columns))
    added = sum(1 for k in new if k not in old)
    removed = sum(1 for k in old if k not in new)
    return PassageChange(table.reset_index(drop=True), added, changed, removed, len(new) - added - changed)


def merge_passages(recorded: pd.DataFrame, upload: pd.DataFrame, *, replace: bool = False) -> PassageChange:
    """The sheet after an upload: the recorded passages with the upload's added (a passage with the same donor,
    passage number and vessel - and, for parallel vessels, position - replaces the recorded one), or with
    ``replace`` the upload alone. Both are canonical passage tables (doe.growth.read_passages)."""
    for name, frame in (("recorded passages", recorded), ("upload", upload)):
        missing = [c for c in KEY if c not in frame.columns] if len(frame) else []
        if missing:
            raise DoeError(f"The {name} have no column {', '.join(missing)}: read them with doe.growth.read_passages.")
    if replace or not len(recorded):
        return compare_passages(recorded, upload)
    uploaded = _rows(upload)
    rows = []
    for key, row in _rows(recorded).items():
        rows.append(uploaded.pop(key, row))
    rows.extend(uploaded.values())
    merged = pd.DataFrame(rows, columns=list(recorded.columns))
    for c in recorded.columns:
        try:
            merged[c] = merged[c].astype(recorded[c].dtype)
        except (TypeError, ValueError):
            pass
    return compare_passages(recorded, merged)


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
