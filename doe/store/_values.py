"""Run values as JSON: normalising cells, hashing a data version, rebuilding a DataFrame."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np
import pandas as pd

from doe.cells import stored_cell as cell
from doe.errors import DoeError

RUN = "Run"
#: Columns runs() adds for editing; never stored as values.
META = ("run_id", "row_version")


def run_label(value: Any) -> str:
    """A run id as text: whole numbers without '.0' ('3', 3, 3.0 -> '3')."""
    value = cell(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DoeError("A run has no 'Run' id: every run needs one to be stored.")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def batch_rows(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{run label: {column: value}} for a batch; needs a unique 'Run' column."""
    if RUN not in frame.columns:
        raise DoeError("The runs have no 'Run' column: runs are stored and matched by their Run id.")
    columns = [str(c) for c in frame.columns if str(c) != RUN and str(c) not in META]
    out: dict[str, dict[str, Any]] = {}
    for rec in frame.to_dict("records"):
        label = run_label(rec[RUN])
        if label in out:
            raise DoeError(f"Run {label} appears twice in the batch: each run needs its own id.")
        out[label] = {c: cell(rec[c]) for c in columns}
    return out


def expected_versions(frame: pd.DataFrame) -> dict[str, int]:
    """{run label: row version} from a ``row_version`` column, where one is given."""
    if "row_version" not in frame.columns or RUN not in frame.columns:
        return {}
    out = {}
    for label, version in zip(frame[RUN], frame["row_version"], strict=True):
        version = cell(version)
        if version is not None:
            out[run_label(label)] = int(version)
    return out


def dumps(values: dict[str, Any]) -> str:
    """Stored JSON of one run's values (column order kept)."""
    return json.dumps(values, ensure_ascii=False, allow_nan=False)


def content_hash(runs: dict[str, dict[str, Any]]) -> str:
    """SHA-256 over every run's non-blank values (numbers as floats, keys sorted)."""
    canon = {label: {k: _canon(v) for k, v in values.items() if v is not None}
             for label, values in runs.items()}
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canon(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def frame(records: list[tuple[int, str, int, dict[str, Any]]]) -> pd.DataFrame:
    """DataFrame of (run_id, label, row_version, values): Run, value columns, run_id, row_version."""
    columns: dict[str, None] = {}
    for _, _, _, values in records:
        columns.update(dict.fromkeys(values))
    data = {RUN: [_label_value(label) for _, label, _, _ in records]}
    for c in columns:
        data[c] = [values.get(c) for _, _, _, values in records]
    data["run_id"] = [rid for rid, _, _, _ in records]
    data["row_version"] = [rv for _, _, rv, _ in records]
    out = pd.DataFrame(data, columns=[RUN, *columns, *META])
    for c in columns:
        out[c] = _typed(out[c])
    return out


def _label_value(label: str) -> Any:
    return int(label) if re.fullmatch(r"[-+]?\d+", label) else label


def _typed(col: pd.Series) -> pd.Series:
    """Numbers (with blanks as NaN) as a numeric column; anything else as object."""
    present = [v for v in col if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.to_numeric(col.astype(object).where(col.notna(), np.nan))
    if not present:
        return col.astype(float)
    return col
