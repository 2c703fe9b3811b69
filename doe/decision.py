"""A saved design-space decision: the one reading of what was decided.

A decision is a row of :meth:`doe.store.Store.decisions`: the threshold, the set point, and a
``ranges`` JSON holding the PARs and NOR shown when it was saved, the set-point variation and,
when the design space was shown with stated confidence, the assurance. Re-runs
(:mod:`doe.versions`), the report (:mod:`doe.report`) and the Design space page all read it
through :class:`Decision`, so the defaults (threshold, assurance kind) and the checks live here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_ASSURANCE_KIND", "DEFAULT_THRESHOLD", "Decision", "latest_decision"]

#: The probability that defines the design space when none is chosen (ICH Q8 practice; Peterson 2004 uses 0.9).
DEFAULT_THRESHOLD = 0.9
#: How an assured design space holds when a decision does not say ("simultaneous" or "pointwise").
DEFAULT_ASSURANCE_KIND = "simultaneous"


@dataclass(frozen=True)
class Decision:
    """What was decided: threshold, set point, the ranges shown, set-point variation and assurance."""

    threshold: float
    set_point: dict[str, Any]
    ranges: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    analysis_version: int | None = None
    note: str = ""
    created_by: str = ""
    created_at: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | pd.Series) -> Decision:
        """From a row of ``Store.decisions`` (a pandas Series or a dict); a missing threshold is the default."""
        def get(key: str, default: Any = None) -> Any:
            value = row.get(key, default) if hasattr(row, "get") else default
            return default if value is None else value

        did, version = get("id"), get("analysis_version")
        return cls(threshold=float(get("threshold") or DEFAULT_THRESHOLD), set_point=dict(get("set_point", {})),
                   ranges=dict(get("ranges", {})), id=None if did is None else int(did),
                   analysis_version=None if version is None or version != version else int(version),
                   note=str(get("note", "")), created_by=str(get("created_by", "")),
                   created_at=str(get("created_at", "")))

    @property
    def setpoint_sd(self) -> dict[str, float]:
        """The set-point variation saved with it (factor -> SD > 0); {} when none."""
        sd = self.ranges.get("setpoint_sd") or {}
        return {str(k): float(v) for k, v in sd.items() if v is not None and float(v) > 0}

    @property
    def assurance(self) -> float | None:
        """The assurance level of the design space it was saved with, or None (the point estimate)."""
        level = (self.ranges.get("assurance") or {}).get("level")
        return None if level is None else float(level)

    @property
    def assurance_kind(self) -> str:
        """How that assurance holds: "simultaneous" or "pointwise"."""
        return str((self.ranges.get("assurance") or {}).get("kind") or DEFAULT_ASSURANCE_KIND)

    @property
    def random_effects(self) -> str | None:
        """"new" or "average" (the donor/lot/whole plot the probability was for), or None (no random effects)."""
        mode = self.ranges.get("random_effects")
        return None if mode is None else str(mode)

    @property
    def source(self) -> str:
        """Where a set point came from, as reports say it: 'decision 3 by bob (2026-12-06)'."""
        return f"decision {self.id} by {self.created_by} ({self.created_at[:10]})"


def latest_decision(store: Any, study_name: str) -> Decision | None:
    """The study's latest saved decision, or None."""
    decisions = store.decisions(study_name)
    return Decision.from_row(decisions.iloc[-1]) if len(decisions) else None
