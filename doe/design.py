"""The Design object: a run sheet in actual units plus how it was made.

``Design.table`` columns, in order:

- ``Run``: run order (1..N, randomised within blocks when asked);
- ``StdOrder``: standard order (1..N, the generator's order);
- the block column (``study.blocks`` or ``Block``) when the design has blocks;
- the plot columns of a design with hard-to-change factors or random blocks, outer to inner:
  ``Whole plot`` (and ``Subplot`` for a split-split-plot), or a random-effect column such as ``Donor``;
- ``PointType``: factorial, axial, centre, optimal, edge (Box-Behnken),
  space-filling, screening, augmented or existing;
- one column per factor in actual units (level names for categorical factors).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from doe.cells import safe_text
from doe.errors import DesignError, DoeError
from doe.model import actual_frame, coded_array
from doe.runs import canonical_names, read_table, unmark_levels
from doe.study import SUBPLOT, WHOLE_PLOT, Study

POINT_TYPES = (
    "factorial", "axial", "centre", "edge", "optimal", "space-filling", "screening",
    "augmented", "existing", "foldover",
)
META_COLUMNS = ("Run", "StdOrder", "PointType")
MAX_DESIGN_BYTES = 20 * 1024 * 1024


@dataclass
class Design:
    """A generated (or imported) design for a study."""

    study: Study
    table: pd.DataFrame
    kind: str
    model: str | None = None
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def block_column(self) -> str:
        """The name of the block column: the study's ``blocks`` name, else 'Block'."""
        return self.study.blocks or "Block"

    @property
    def n_runs(self) -> int:
        """The number of runs (rows of the table)."""
        return len(self.table)

    @property
    def digest(self) -> str:
        """SHA-256 of the design table as downloaded (:meth:`to_csv` without the empty response columns):
        equal when the tables are (the cache key of a design, as :attr:`doe.study.Study.digest` is a
        study's)."""
        return hashlib.sha256(self.to_csv(with_responses=False).encode("utf-8")).hexdigest()

    @property
    def n_blocks(self) -> int:
        """The number of distinct blocks (1 without a block column)."""
        if self.block_column not in self.table:
            return 1
        return int(self.table[self.block_column].nunique())

    @property
    def plot_columns(self) -> list[str]:
        """The design's grouping columns that the analysis treats as random effects, outer to inner:
        ``Whole plot``, ``Subplot`` and the study's random-effect columns present in the table."""
        return [c for c in (WHOLE_PLOT, SUBPLOT, *self.study.random_effects) if c in self.table]

    @property
    def n_whole_plots(self) -> int | None:
        """The number of whole plots, or None for a design without a ``Whole plot`` column."""
        return int(self.table[WHOLE_PLOT].nunique()) if WHOLE_PLOT in self.table else None

    def settings(self) -> pd.DataFrame:
        """Factor columns only, in actual units, in run order."""
        return self.table[self.study.factor_names].reset_index(drop=True)

    def coded(self) -> np.ndarray:
        """Runs x factors coded array (see doe.model.coded_array)."""
        return coded_array(self.study, self.table)

    def block_index(self) -> np.ndarray | None:
        """Block of each run as 0..B-1 in order of first appearance, or None."""
        if self.n_blocks <= 1:
            return None
        labels = self.table[self.block_column].astype(str)
        order = {lv: i for i, lv in enumerate(sorted(labels.unique(), key=_natural))}
        return labels.map(order).to_numpy()

    def run_sheet(self) -> pd.DataFrame:
        """The table with an empty column per CQA and a Notes column, for the lab."""
        sheet = self.table.copy()
        for r in self.study.responses:
            if r.name not in sheet:
                sheet[r.name] = np.nan
        if "Notes" not in sheet:
            sheet["Notes"] = ""
        return sheet

    def to_csv(self, path: str | Path | None = None, *, with_responses: bool = True) -> str:
        """The run sheet (or the design table alone) as CSV text for download, also written to ``path``.

        Text cells a spreadsheet would run as formulas are neutralised (see :func:`safe_csv`).
        """
        text = _safe_cells(self.run_sheet() if with_responses else self.table).to_csv(index=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_xlsx(self) -> bytes:
        """Run sheet and a 'Design info' sheet as an Excel workbook."""
        buf = io.BytesIO()
        info = pd.DataFrame(
            [("Study", self.study.name), ("Design type", self.kind), ("Runs", self.n_runs),
             ("Model", self.model or ""), ("Seed", "" if self.seed is None else self.seed)]
            + [(k, str(v)) for k, v in self.info.items()]
            + [("Warning", w) for w in self.warnings],
            columns=["Item", "Value"],
        )
        with pd.ExcelWriter(buf, engine="openpyxl") as xl:
            _safe_cells(self.run_sheet()).to_excel(xl, sheet_name="Run sheet", index=False)
            _safe_cells(info).to_excel(xl, sheet_name="Design info", index=False)
        return buf.getvalue()


def _natural(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _safe_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Neutralise spreadsheet formulas in text cells and in the column headers (=, +, -, @, tab, CR).

    A carriage return inside a cell becomes a line feed: pandas does not quote a
    cell with a bare CR, which a spreadsheet reads as a new row that could start
    with a formula; a cell with a line feed is quoted and stays one cell. Headers are
    written by the same writers as cells (a factor named '=cmd|...' would otherwise be a
    live formula in the header row); :func:`doe.cells.unquote_formula` reads either back.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(safe_text)
    out.columns = [safe_text(c) if isinstance(c, str) else c for c in out.columns]
    return out


def safe_csv(frame: pd.DataFrame) -> str:
    """CSV text of a table for download, with text cells and headers a spreadsheet would run as
    formulas neutralised.

    The same rule as the design run sheet (:func:`_safe_cells`): numbers stay numbers.
    """
    return _safe_cells(frame).to_csv(index=False)


def make_design(
    study: Study,
    U: np.ndarray,
    kind: str,
    point_types: list[str] | np.ndarray,
    *,
    blocks: np.ndarray | None = None,
    plots: dict[str, np.ndarray] | None = None,
    randomize: bool = True,
    seed: int | None = None,
    model: str | None = None,
    info: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> Design:
    """Assemble a Design from a coded array in standard order.

    Runs are randomised within blocks with ``numpy.random.default_rng(seed)``;
    the same seed gives the same run order. ``plots``: grouping columns, outer to inner (e.g.
    ``{"Whole plot": w, "Subplot": s}`` or ``{"Donor": d}``), labels 0-based and written 1-based; the run
    sheet is sorted by them for the bench, with the groups in random order and the runs randomised within
    (restricted randomisation: a whole plot's hard-to-change settings are made once).
    """
    U = np.asarray(U, dtype=float)
    n = U.shape[0]
    table = actual_frame(study, U)
    table.insert(0, "PointType", list(point_types))
    block_col = study.blocks or "Block"
    plot_items = list((plots or {}).items())
    for position, (col, labels) in enumerate(plot_items):
        table.insert(position, col, np.asarray(labels, dtype=int) + 1)
    if blocks is not None and len(np.unique(blocks)) > 1:
        table.insert(0, block_col, np.asarray(blocks, dtype=int) + 1)
    table.insert(0, "StdOrder", np.arange(1, n + 1))
    rng = np.random.default_rng(seed)
    if plot_items:
        order = _plot_order(table, [block_col] if block_col in table else [], [c for c, _ in plot_items],
                            rng if randomize else None)
    elif randomize:
        if block_col in table:
            order = np.concatenate(
                [rng.permutation(np.flatnonzero(table[block_col].to_numpy() == b))
                 for b in sorted(table[block_col].unique())]
            )
        else:
            order = rng.permutation(n)
    else:
        order = np.arange(n)
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "Run", np.arange(1, n + 1))
    return Design(study, table, kind, model=model, seed=seed, info=dict(info or {}),
                  warnings=list(warnings or []))


def _plot_order(table: pd.DataFrame, blocks: list[str], plots: list[str],
                rng: np.random.Generator | None) -> np.ndarray:
    """Run order sorted by block, then by each plot column (outer first), each group's position random
    (or by label without ``rng``), runs random within the innermost group."""
    keys = []
    for col in [*blocks, *plots]:
        labels = table[col].to_numpy()
        levels = np.unique(labels)
        rank = dict(zip(levels, rng.permutation(len(levels)) if rng is not None and col not in blocks
                        else np.arange(len(levels))))
        keys.append(np.array([rank[v] for v in labels]))
    keys.append(rng.permutation(len(table)) if rng is not None else np.arange(len(table)))
    return np.lexsort(keys[::-1])


def read_design(study: Study, source: str | Path | bytes | pd.DataFrame, name: str = "") -> Design:
    """Read a run sheet (CSV or XLSX), including one the app did not create.

    Factor columns must carry the study's factor names, matched as the results upload matches
    them (case and spacing aside, an optional '(units)' suffix: ``Agitation (rpm)``); ``Run``, ``StdOrder``,
    ``PointType`` and the block column are optional. Other columns (responses,
    notes) are kept in the table.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        name = name or "design"
    else:
        frame = _read_table(source, name)
    if frame.empty:
        raise DesignError(f"The design file '{name}' has no runs: it needs one row per run.")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.rename(columns=canonical_names(study, frame.columns))
    frame = unmark_levels(study, frame)
    dupes = frame.columns[frame.columns.duplicated()].tolist()
    if dupes:
        raise DesignError(f"The design file has duplicate column '{dupes[0]}': keep one.")
    U = coded_array(study, frame)  # validates factor columns, levels and numbers
    table = actual_frame(study, U)
    for f in study.factors:
        if not f.is_categorical:
            table[f.name] = pd.to_numeric(frame[f.name]).to_numpy(dtype=float)
    n = len(frame)
    block_col = study.blocks or "Block"
    plot_cols = [c for c in (WHOLE_PLOT, SUBPLOT, *study.random_effects) if c in frame]
    extra = [c for c in frame.columns
             if c not in study.factor_names and c not in (*META_COLUMNS, block_col, *plot_cols)]
    out = pd.DataFrame({
        "Run": frame["Run"].to_numpy() if "Run" in frame else np.arange(1, n + 1),
        "StdOrder": frame["StdOrder"].to_numpy() if "StdOrder" in frame else np.arange(1, n + 1),
    })
    if block_col in frame:
        out[block_col] = frame[block_col].to_numpy()
    for c in plot_cols:
        out[c] = frame[c].to_numpy()
    out["PointType"] = frame["PointType"].to_numpy() if "PointType" in frame else "existing"
    out = pd.concat([out, table.reset_index(drop=True), frame[extra].reset_index(drop=True)], axis=1)
    warnings = _range_warnings(study, table)
    return Design(study, out, kind="imported", info={"source": str(name)}, warnings=warnings)


def _read_table(source: str | Path | bytes, name: str) -> pd.DataFrame:
    """The run sheet's cells, read as results uploads are read (doe.runs.read_table): the same
    limits on size, rows, columns and cells, XLSX streamed after its zip sizes are checked."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise DesignError(f"Design file '{path}' does not exist.")
        if path.stat().st_size > MAX_DESIGN_BYTES:
            raise DesignError(f"Design file '{path.name}' is over {MAX_DESIGN_BYTES // 2**20} MB.")
        data = path.read_bytes()
    else:
        data = source
    if len(data) > MAX_DESIGN_BYTES:
        raise DesignError(f"Design file '{name}' is over {MAX_DESIGN_BYTES // 2**20} MB.")
    if not data.strip():
        raise DesignError(f"The design file '{name}' is empty.")

    try:
        return read_table(bytes(data), str(name or "design"))
    except DesignError:
        raise
    except DoeError as exc:
        raise DesignError(f"Could not read '{name}' as a run sheet: {exc}") from None


def _range_warnings(study: Study, table: pd.DataFrame) -> list[str]:
    out = []
    for f in study.factors:
        if f.is_categorical:
            continue
        values = table[f.name].astype(float)
        lo, hi = values.min(), values.max()
        low, high = cast(float, f.low), cast(float, f.high)  # a numeric factor: both bounds are set
        if lo < low - 1e-9 or hi > high + 1e-9:
            out.append(
                f"{f.name} runs from {lo:g} to {hi:g} {f.units}, outside the study range "
                f"{low:g} to {high:g}: coded values go beyond -1/+1."
            )
    return out
