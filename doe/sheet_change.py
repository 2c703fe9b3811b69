"""Changing a recorded sheet (passages, lots): an upload added to or replacing the recorded rows, and what a
save would change - new, changed, removed, unchanged rows.

Rows are matched by their key columns (a passage: donor, passage number and vessel; a lot: its id); rows
with the same key (parallel vessels of one passage) by their order in the sheet, as the store matches them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from doe.cells import blank_cell, stored_cell
from doe.cells import same_value as stored_same
from doe.errors import DoeError

Key = tuple[Any, ...]


def _key_part(value: Any) -> str:
    """A key cell as text: whole numbers without '.0' (3.0 and 3 match), text stripped."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)) \
            and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _keys(table: pd.DataFrame, key: Sequence[str]) -> list[Key]:
    """The key of every row, with a count of the key's repeats in sheet order last."""
    seen: dict[Key, int] = {}
    out = []
    for values in zip(*(table[c] for c in key), strict=True):
        base = tuple(_key_part(v) for v in values)
        seen[base] = seen.get(base, 0) + 1
        out.append((*base, seen[base]))
    return out


def same_value(a: Any, b: Any) -> bool:
    """Two cells hold the same value: both blank, or equal as stored (:func:`doe.cells.same_value`: numbers by
    value, 60 == 60.0), text compared without surrounding spaces."""
    if blank_cell(a) or blank_cell(b):
        return blank_cell(a) and blank_cell(b)
    try:
        x, y = stored_cell(a), stored_cell(b)
    except DoeError:  # not a storable cell (an infinity): compared as text
        return str(a).strip() == str(b).strip()
    if isinstance(x, str) and isinstance(y, str):
        return x.strip() == y.strip()
    return stored_same(x, y)


def _rows(table: pd.DataFrame, key: Sequence[str]) -> dict[Key, dict[str, Any]]:
    if not len(table):
        return {}
    records = table.to_dict("records")
    return {k: {str(c): v for c, v in r.items()} for k, r in zip(_keys(table, key), records, strict=True)}


@dataclass
class SheetChange:
    """The sheet to save and what it changes against the recorded one; ``noun`` names a row ("passage")."""

    table: pd.DataFrame
    new: int
    changed: int
    removed: int
    unchanged: int
    noun: str = "row"

    @property
    def changes(self) -> int:
        """New, changed and removed rows together (0: nothing to save)."""
        return self.new + self.changed + self.removed

    def describe(self, what: str = "The sheet") -> str:
        """One sentence: what saving would do."""
        if not self.changes:
            return f"{what}: nothing new - every {self.noun} is already recorded."
        parts = [f"{n} {label}" for n, label in ((self.new, "new"), (self.changed, "changed"),
                                                 (self.removed, "removed")) if n]
        plural = "s" if self.changes != 1 else ""
        return (f"{what}: {', '.join(parts)} {self.noun}{plural}; {self.unchanged} unchanged. "
                + (f"Changing or removing a recorded {self.noun} needs a reason."
                   if self.changed or self.removed else ""))


def compare_sheets(recorded: pd.DataFrame, table: pd.DataFrame, key: Sequence[str], *,
                   noun: str = "row") -> SheetChange:
    """What saving ``table`` as the whole sheet changes against ``recorded`` (rows matched by ``key``)."""
    old, new = _rows(recorded, key), _rows(table, key)
    columns = [str(c) for c in table.columns]
    changed = sum(1 for k, row in new.items() if k in old
                  and not all(same_value(row.get(c), old[k].get(c)) for c in columns))
    added = sum(1 for k in new if k not in old)
    removed = sum(1 for k in old if k not in new)
    return SheetChange(table.reset_index(drop=True), added, changed, removed, len(new) - added - changed, noun)


def merge_sheets(recorded: pd.DataFrame, upload: pd.DataFrame, key: Sequence[str], *, replace: bool = False,
                 noun: str = "row", reader: str = "") -> SheetChange:
    """The sheet after an upload: the recorded rows with the upload's added (an uploaded row with a recorded
    row's key replaces it, in its place), or with ``replace`` the upload alone. ``reader`` names the function
    that makes a canonical table, for the message when a key column is missing."""
    for name, frame in ((f"recorded {noun}s", recorded), ("upload", upload)):
        missing = [c for c in key if c not in frame.columns] if len(frame) else []
        if missing:
            raise DoeError(f"The {name} have no column {', '.join(missing)}"
                           + (f": read them with {reader}." if reader else "."))
    if replace or not len(recorded):
        return compare_sheets(recorded, upload, key, noun=noun)
    uploaded = _rows(upload, key)
    rows = [uploaded.pop(k, row) for k, row in _rows(recorded, key).items()]
    rows.extend(uploaded.values())
    columns = list(recorded.columns) + [c for c in upload.columns if c not in recorded.columns]
    merged = pd.DataFrame(rows, columns=columns)
    for c in recorded.columns:
        try:
            merged[c] = merged[c].astype(recorded[c].dtype)
        except (TypeError, ValueError):
            pass
    return compare_sheets(recorded, merged, key, noun=noun)
