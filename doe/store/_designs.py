"""Designs as records: what the Design page, the report and ``python -m doe designs`` show of one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

#: Column labels for a table of designs (presentation: human words, units where there are any).
LABELS = {"id": "Id", "name": "Name", "type": "Type", "runs": "Runs", "seed": "Seed",
          "study_version": "Study version", "created_by": "Created by", "created_at": "Created (UTC)",
          "frozen": "Frozen (results entered)", "current": "Current"}


@dataclass(frozen=True)
class DesignRecord:
    """One stored design: its id, name, type, number of runs, seed and state."""

    id: int
    name: str
    kind: str
    runs: int
    seed: int | None
    model: str | None
    study_version: int
    frozen: bool
    current: bool
    deleted: bool
    created_at: str
    created_by: str

    @property
    def type_label(self) -> str:
        """The design type in words ("D-optimal", "Latin hypercube", ...)."""
        return type_label(self.kind)

    def describe(self) -> str:
        """'"Name" (D-optimal, 40 runs, seed 7)': how reports and messages name the design."""
        seed = f", seed {self.seed}" if self.seed is not None else ""
        return f"\"{self.name}\" ({self.type_label}, {self.runs} runs{seed})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = [f.name for f in fields(DesignRecord)]


def type_label(kind: str) -> str:
    """The design type in words; an unknown kind as it is."""
    from doe.generators import TYPE_LABELS

    return TYPE_LABELS.get(kind, kind)


def default_design_name(kind: str, n_runs: int, taken: Iterable[str] = (), criterion: str | None = None) -> str:
    """The name a design is saved under unless the user gives one: 'D-optimal, 40 runs', with ' (2)',
    ' (3)', ... when a design of the study (``taken``) already has that name. An optimal design is
    named by its ``criterion`` (its ``info["criterion"]``) when known."""
    label = f"{criterion}-optimal" if kind == "optimal" and criterion else type_label(kind)
    base = name = f"{label}, {n_runs} runs"
    names, n = set(taken), 1
    while name in names:
        n += 1
        name = f"{base} ({n})"
    return name


def count_runs(run_sheet: str) -> int:
    """Number of runs in a stored run sheet (CSV text with a header line)."""
    import io

    return len(pd.read_csv(io.StringIO(run_sheet), dtype=str, keep_default_na=False))


def designs_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A presentation table of designs (as :meth:`Store.designs` returns them): labelled columns, no blanks."""
    out = pd.DataFrame({
        LABELS["id"]: frame["id"].astype(int),
        LABELS["name"]: frame["name"],
        LABELS["type"]: [type_label(k) for k in frame["kind"]],
        LABELS["runs"]: frame["runs"].astype(int),
        LABELS["seed"]: ["" if pd.isna(s) else str(int(s)) for s in frame["seed"]],
        LABELS["created_by"]: frame["created_by"],
        LABELS["created_at"]: [str(t)[:19].replace("T", " ") for t in frame["created_at"]],
        LABELS["frozen"]: ["yes" if f else "no" for f in frame["frozen"]],
        LABELS["current"]: ["yes" if c else "" for c in frame["current"]],
    })
    return out.reset_index(drop=True)


def with_design_names(data_versions: pd.DataFrame, designs: pd.DataFrame) -> pd.DataFrame:
    """Data versions (as :meth:`Store.data_versions`) with a 'Design' column naming the design each was run on
    ('3: D-optimal, 40 runs'; blank when none was recorded) in place of ``design_id``."""
    names = {int(i): f"{int(i)}: {n}" for i, n in zip(designs["id"], designs["name"], strict=True)}
    out = data_versions.drop(columns=["design_id"], errors="ignore")
    ids = data_versions["design_id"] if "design_id" in data_versions else [None] * len(out)
    out["Design"] = ["" if pd.isna(i) else names.get(int(i), f"{int(i)}") for i in ids]
    return out
