"""Seed-train passage records: read and check them, compute growth kinetics, summarise by vessel family.

An MSC seed train goes T-flask -> CellSTACK/HYPERStack (scale-out) -> CellCube (scale-up); each passage is
recorded as one row per vessel (:data:`PASSAGE_COLUMNS`). :func:`read_passages` reads a CSV/XLSX file or
an edited table and lists every problem (row, column and the fix) like the results upload
(:mod:`doe.runs`); :func:`passage_kinetics` adds, per row,

- fold expansion ``N_harvest / N_seeded``;
- population doublings ``PD = log2(N_harvest / N_seeded)``;
- doubling time ``t ln 2 / ln(N_harvest / N_seeded)`` (hours; not defined, NaN, when ``PD <= 0``);
- harvest density ``N_harvest / area`` (cells/cm², area from the vessel catalogue when not given);
- cumulative population doubling level per donor, passages in order of their number: the sum of the
  passages' PD up to this one, where parallel vessels of a passage count as one passage with
  ``PD = log2(sum harvested / sum seeded)``.

:func:`growth_summary` gives the mean and 95 % confidence interval of each kinetic per group (vessel
family by default), each row (one vessel's passage) one observation. A group with several donors, at
least one of them with two or more rows in the group, is fitted with an intercept-only linear mixed model with a random donor intercept
(:func:`doe.mixed.fit_mixed`: REML, Kenward-Roger df), so passages of one donor are not counted as
independent; otherwise the t interval of the passages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from doe._format import fmt_sig, json_number
from doe.cells import blank_cell
from doe.errors import DoeError, did_you_mean, quoted_list
from doe.mixed import MixedFit, fit_mixed
from doe.runs import Problem, ProblemList, read_table, source_bytes
from doe.scale import Vessel, read_catalogue

__all__ = [
    "GROUP_COLUMNS", "GROWTH_CURVE_FILE", "KINETIC_COLUMNS", "PASSAGES_FILE", "PASSAGE_COLUMNS", "GrowthSummary", "PassageError",
    "PassageUpload", "growth_summary", "passage_kinetics", "passage_template", "read_passages",
]

DATA = Path(__file__).resolve().parent.parent / "data"
#: The bundled simulated passage records (data/simulate_passages.py).
PASSAGES_FILE = DATA / "msc_passages.csv"
#: The bundled simulated growth curve of one T-175 flask (data/simulate_passages.py).
GROWTH_CURVE_FILE = DATA / "msc_growth_curve.csv"

#: Canonical passage-table columns, in order.
PASSAGE_COLUMNS: tuple[str, ...] = ("Donor", "Passage", "Vessel", "Seeded cells", "Harvested cells", "Hours",
                                    "Viability", "Area (cm2)", "Notes")
#: Columns :func:`passage_kinetics` adds (after ``Family``).
KINETIC_COLUMNS: tuple[str, ...] = ("Fold expansion", "Population doublings", "Doubling time (h)",
                                    "Harvest density (cells/cm2)", "Cumulative PDL")
_REQUIRED = ("Donor", "Passage", "Vessel", "Seeded cells", "Harvested cells")
_NUMBERS = ("Seeded cells", "Harvested cells", "Hours", "Viability", "Area (cm2)")
#: Columns of :attr:`GrowthSummary.groups` (labels for pages and the report).
GROUP_COLUMNS: tuple[str, ...] = (
    "Group", "Passages", "Donors", "Fold expansion mean", "Fold expansion 95 % CI low", "Fold expansion 95 % CI high",
    "Doubling time (h) mean", "Doubling time (h) 95 % CI low", "Doubling time (h) 95 % CI high",
    "Harvest density (cells/cm²) mean", "Harvest density (cells/cm²) 95 % CI low",
    "Harvest density (cells/cm²) 95 % CI high", "Hours mean", "Method")
MIXED_METHOD = "mixed model, donor as random effect (REML, Kenward-Roger df)"
T_METHOD = "t interval"
_STATS = (("fold_expansion", "Fold expansion"), ("doubling_time_h", "Doubling time (h)"), ("hours", "Hours"),
          ("harvest_density", "Harvest density (cells/cm²)"))
_JSON_KEYS = {"Donor": "donor", "Passage": "passage", "Vessel": "vessel", "Family": "family",
              "Seeded cells": "seeded_cells", "Harvested cells": "harvested_cells", "Hours": "hours",
              "Viability": "viability", "Area (cm2)": "area_cm2", "Notes": "notes",
              "Fold expansion": "fold_expansion", "Population doublings": "population_doublings",
              "Doubling time (h)": "doubling_time_h", "Harvest density (cells/cm2)": "harvest_density",
              "Cumulative PDL": "cumulative_pdl"}


class PassageError(DoeError):
    """Passage records cannot be read or summarised as given."""


@dataclass
class PassageUpload(ProblemList):
    """Passage records read from a file or an editor, with their problems.

    ``table`` has :data:`PASSAGE_COLUMNS` in order (Hours always filled, Days converted; Passage int,
    numbers float, Donor/Vessel/Notes text), then any extra columns of the file.
    """

    table: pd.DataFrame
    problems: list[Problem]
    name: str = ""

    def summary(self, limit: int = 20) -> str:
        """A few lines for the user: rows, donors, then the problems (errors first)."""
        what = self.name or "The passage records"
        donors = self.table["Donor"].nunique() if "Donor" in self.table and len(self.table) else 0
        head = (f"{what}: {_count(len(self.table), 'row')}, {_count(donors, 'donor')}; "
                f"{_count(len(self.errors), 'error')}, {_count(len(self.warnings), 'warning')}.")
        shown = (self.errors + self.warnings)[:limit]
        lines = [head] + [f"- {p}" for p in shown]
        if len(self.problems) > limit:
            lines.append(f"- ... and {len(self.problems) - limit} more.")
        return "\n".join(lines)


def passage_template() -> pd.DataFrame:
    """An empty passage table with :data:`PASSAGE_COLUMNS` (for an editor or a download)."""
    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in PASSAGE_COLUMNS})


# -- reading ----------------------------------------------------------------------------------------------
def read_passages(source: bytes | str | Path | pd.DataFrame, name: str = "",
                  catalogue: Sequence[Vessel] | None = None) -> PassageUpload:
    """Read and check passage records (CSV or XLSX bytes, a path, CSV text, or a table).

    Parameters
    ----------
    source : bytes, str, Path or DataFrame
        File contents, CSV text (a str with a line break), a path, or a table (e.g. from an editor).
    name : str
        File name, for messages and to recognise ``.xlsx``.
    catalogue : sequence of Vessel, optional
        Vessel catalogue (default ``data/vessels.csv``): vessel names are checked against it and a blank
        area is taken from it.

    Returns
    -------
    PassageUpload
        The canonical table and every problem found; never raises for bad input.
    """
    vessels = list(catalogue) if catalogue is not None else read_catalogue()
    if isinstance(source, pd.DataFrame):
        frame, name = source.reset_index(drop=True).copy(), name or "table"
    else:
        try:
            frame, name = _read_source(source, name)
        except DoeError as exc:
            return PassageUpload(passage_template(), [Problem("error", None, None, str(exc))], name)
    return _check(frame, vessels, name)


def _read_source(source: bytes | str | Path, name: str) -> tuple[pd.DataFrame, str]:
    data, name = source_bytes(source, name)
    return read_table(data, name), name


def _key(text: Any) -> str:
    return "".join(str(text).replace("²", "2").split()).lower()


_ALIASES = {_key(c): c for c in (*PASSAGE_COLUMNS, "Days")}


def _check(frame: pd.DataFrame, vessels: list[Vessel], name: str) -> PassageUpload:
    problems: list[Problem] = []
    columns: dict[str, Any] = {}  # canonical name -> column label in the frame
    extra: list[Any] = []
    for c in frame.columns:
        canon = _ALIASES.get(_key(c))
        if canon is None:
            extra.append(c)
            problems.append(Problem("warning", None, str(c),
                                    f"Column '{c}' is not a passage column; it is kept but not used.{did_you_mean(str(c), [*PASSAGE_COLUMNS, 'Days'])} "
                                    f"Passage columns: {quoted_list([*PASSAGE_COLUMNS, 'Days'])}."))
        elif canon in columns:
            problems.append(Problem("error", None, str(c),
                                    f"Columns '{columns[canon]}' and '{c}' are both '{canon}'; keep one of them."))
        else:
            columns[canon] = c
    for c in _REQUIRED:
        if c not in columns:
            problems.append(Problem("error", None, c, f"There is no '{c}' column; add it (columns needed: "
                                    f"{quoted_list(_REQUIRED)} and 'Hours' or 'Days')."))
    if "Hours" not in columns and "Days" not in columns:
        problems.append(Problem("error", None, "Hours", "There is neither an 'Hours' nor a 'Days' column; add "
                                "the time each passage was in culture, in hours (or days)."))
    keep = [i for i in range(len(frame)) if not all(blank_cell(v) for v in frame.iloc[i].tolist())]
    by_name = {v.name: v for v in vessels}
    by_lower = {v.name.lower(): v for v in vessels}
    rows: list[dict[str, Any]] = []
    for i in keep:
        r = i + 1
        raw = {canon: frame[col].iloc[i] for canon, col in columns.items()}
        row: dict[str, Any] = {c: math.nan for c in PASSAGE_COLUMNS}
        row["Donor"] = "" if blank_cell(raw.get("Donor")) else _text(raw.get("Donor"))
        if "Donor" in columns and not row["Donor"]:
            problems.append(_blank_problem(r, "Donor", "the donor (e.g. D1)"))
        row["Notes"] = "" if blank_cell(raw.get("Notes")) else _text(raw.get("Notes"))
        row["Vessel"] = ""
        if "Vessel" in columns:
            cell = raw.get("Vessel")
            if blank_cell(cell):
                problems.append(_blank_problem(r, "Vessel", "the vessel name from the catalogue"))
            else:
                typed = _text(cell)
                vessel = by_name.get(typed) or by_lower.get(typed.lower())
                if vessel is None:
                    names = list(by_name)
                    problems.append(Problem("error", r, "Vessel",
                                            f"Row {r}, column 'Vessel': '{typed}' is not in the vessel catalogue."
                                            f"{did_you_mean(typed, names)} Vessels: {quoted_list(names)}."))
                    row["Vessel"] = typed
                else:
                    row["Vessel"] = vessel.name
        if "Passage" in columns:
            cell = raw.get("Passage")
            p = _number(cell, r, "Passage", problems, "the passage number (0, 1, 2, ...)")
            if p is not None and (p < 0 or not float(p).is_integer()):
                problems.append(Problem("error", r, "Passage", f"Row {r}, column 'Passage': {fmt_sig(p)} is not "
                                        "a whole number of at least 0; enter the passage number (0, 1, 2, ...)."))
            else:
                row["Passage"] = p if p is not None else math.nan
        for col, what, rule in (("Seeded cells", "the number of cells seeded", "above"),
                                ("Harvested cells", "the number of cells harvested", "at least")):
            if col not in columns:
                continue
            x = _number(raw.get(col), r, col, problems, what)
            if x is None:
                continue
            if (rule == "above" and x <= 0) or (rule == "at least" and x < 0):
                problems.append(Problem("error", r, col, f"Row {r}, column '{col}': {fmt_sig(x)} must be {rule} 0; "
                                        f"enter {what}."))
            else:
                row[col] = x
        row["Hours"] = _hours(raw, columns, r, problems)
        if "Viability" in columns and not blank_cell(raw.get("Viability")):
            x = _number(raw.get("Viability"), r, "Viability", problems, "the viability in %")
            if x is not None:
                row["Viability"] = x
        if "Area (cm2)" in columns and not blank_cell(raw.get("Area (cm2)")):
            x = _number(raw.get("Area (cm2)"), r, "Area (cm2)", problems, "the growth area in cm²")
            if x is not None and x <= 0:
                problems.append(Problem("error", r, "Area (cm2)", f"Row {r}, column 'Area (cm2)': {fmt_sig(x)} "
                                        "must be above 0; enter the vessel's growth area in cm² or leave the cell "
                                        "empty to use the catalogue's."))
            elif x is not None:
                row["Area (cm2)"] = x
        if not _finite(row["Area (cm2)"]) and row["Vessel"] in by_name:
            row["Area (cm2)"] = by_name[row["Vessel"]].area_cm2
        for c in extra:
            row[c] = frame[c].iloc[i]
        row["_row"] = r
        rows.append(row)
    _viability(rows, problems)
    _row_warnings(rows, problems)
    table = pd.DataFrame(rows, columns=[*PASSAGE_COLUMNS, *extra, "_row"])
    table = table.drop(columns="_row")
    ok = not any(p.severity == "error" for p in problems)
    table = _typed(table, whole_passage=ok)
    return PassageUpload(table, _ordered(problems), name)


def _hours(raw: dict[str, Any], columns: dict[str, Any], r: int, problems: list[Problem]) -> float:
    """Hours of culture from 'Hours', or 'Days' x 24; both given must agree within 1 %. NaN after an error
    (blank cells are reported by :func:`_number`)."""
    hours: float | None = None
    days: float | None = None
    if "Hours" in columns:
        hours = _number(raw.get("Hours"), r, "Hours", problems, "the hours in culture",
                        required="Days" not in columns)
    if "Days" in columns:
        days = _number(raw.get("Days"), r, "Days", problems, "the days in culture",
                       required="Hours" not in columns or blank_cell(raw.get("Hours")))
    if hours is None and days is None:
        return math.nan
    value = hours if hours is not None else 24.0 * float(days or 0.0)
    col = "Hours" if hours is not None else "Days"
    if hours is not None and days is not None and abs(hours - 24.0 * days) > 0.01 * max(abs(hours), 24.0 * abs(days)):
        problems.append(Problem("error", r, "Days", f"Row {r}: 'Hours' ({fmt_sig(hours)}) and 'Days' "
                                f"({fmt_sig(days)} = {fmt_sig(24 * days)} h) disagree by more than 1 %; correct one "
                                "of them or leave 'Days' empty."))
        return math.nan
    if value <= 0:
        problems.append(Problem("error", r, col, f"Row {r}, column '{col}': {fmt_sig(hours if hours is not None else days)} "
                                "must be above 0; enter the time the passage was in culture."))
        return math.nan
    return float(value)


def _viability(rows: list[dict[str, Any]], problems: list[Problem]) -> None:
    values = [row["Viability"] for row in rows if _finite(row["Viability"])]
    if values and all(0 <= v <= 1 for v in values) and any(v > 0 for v in values):
        problems.append(Problem("warning", None, "Viability",
                                "Every viability is at most 1, so they were read as fractions and converted to % "
                                "(0.95 -> 95); enter percentages (0-100) to avoid this."))
        for row in rows:
            if _finite(row["Viability"]):
                row["Viability"] = 100.0 * row["Viability"]
    for row in rows:
        v = row["Viability"]
        if _finite(v) and not 0 <= v <= 100:
            r = row["_row"]
            problems.append(Problem("error", r, "Viability", f"Row {r}, column 'Viability': {fmt_sig(v)} is not a "
                                    "percentage from 0 to 100; enter the viability in %."))
            row["Viability"] = math.nan


def _row_warnings(rows: list[dict[str, Any]], problems: list[Problem]) -> None:
    for row in rows:
        s, h = row["Seeded cells"], row["Harvested cells"]
        if _finite(s) and _finite(h) and h < s:
            r = row["_row"]
            problems.append(Problem("warning", r, "Harvested cells",
                                    f"Row {r}, column 'Harvested cells': fewer cells were harvested ({fmt_sig(h)}) than "
                                    f"seeded ({fmt_sig(s)}), so the population doublings are negative and the doubling "
                                    "time is not defined; check the counts."))
    # Rows with the same donor, passage and vessel are parallel vessels of one passage (normal); only rows
    # that also have the same counts and hours look like a copy, and are warned about.
    sets: dict[tuple[Any, ...], list[int]] = {}
    for row in rows:
        if row["Donor"] and _finite(row["Passage"]) and row["Vessel"]:
            counts = tuple(row.get(c) if _finite(row.get(c)) else None
                           for c in ("Seeded cells", "Harvested cells", "Hours"))
            sets.setdefault((row["Donor"], float(row["Passage"]), row["Vessel"], *counts), []).append(row["_row"])
    parallel = [(k, r) for k, r in sets.items() if len(r) > 1]
    if parallel:
        shown = "; ".join(f"rows {', '.join(map(str, r))} ('{k[0]}', passage {fmt_sig(k[1])}, '{k[2]}')"
                          for k, r in parallel[:10])
        more = f"; and {len(parallel) - 10} more" if len(parallel) > 10 else ""
        problems.append(Problem("warning", parallel[0][1][1], None,
                                f"Rows with the same donor, passage, vessel, cells and hours: {shown}{more}. They "
                                "are read as parallel vessels of one passage (cells summed for the cumulative "
                                "population doubling level; each vessel is its own observation in the group "
                                "statistics). If a row is a copy, delete it."))
    donors: dict[str, list[int]] = {}
    for row in rows:
        if row["Donor"] and _finite(row["Passage"]):
            donors.setdefault(row["Donor"], []).append(int(row["Passage"]))
    for donor, numbers in donors.items():
        present = sorted(set(numbers))
        missing = [p for p in range(present[0], present[-1] + 1) if p not in present]
        if missing:
            problems.append(Problem("warning", None, "Passage",
                                    f"Donor '{donor}' has no row for passage {', '.join(map(str, missing))}; its "
                                    "cumulative population doubling level leaves out the doublings of the missing "
                                    "passage(s). Add them if they were recorded."))


def _number(cell: Any, r: int, col: str, problems: list[Problem], what: str, *, required: bool = True) -> float | None:
    if blank_cell(cell):
        if required:
            problems.append(_blank_problem(r, col, what))
        return None
    x = _to_float(cell)
    if x is None:
        text = str(cell)
        hint = " remove the unit and" if any(ch.isalpha() or ch == "%" for ch in text.replace("e", "")) else ""
        if "," in text and not hint:
            hint = " use a decimal point (3.5, not 3,5) and"
        problems.append(Problem("error", r, col, f"Row {r}, column '{col}': '{cell}' is not a number;{hint} enter "
                                f"{what} as a plain number (e.g. 350000 or 3.5e5)."))
    return x


def _blank_problem(r: int, col: str, what: str) -> Problem:
    return Problem("error", r, col, f"Row {r}, column '{col}' is empty; enter {what} (every filled row needs it) "
                   "or delete the row.")


_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def _to_float(cell: Any) -> float | None:
    """A finite number from a cell; text may group thousands with commas ("1,250,000") but a decimal comma
    ("3,5") is not a number (it would otherwise be read as 35)."""
    if isinstance(cell, (bool, np.bool_)):
        return None
    if isinstance(cell, str):
        text = cell.strip()
        if "," in text:
            if not _THOUSANDS.fullmatch(text):
                return None
            text = text.replace(",", "")
        try:
            x = float(text)
        except ValueError:
            return None
    else:
        try:
            x = float(cell)
        except (TypeError, ValueError):
            return None
    return x if math.isfinite(x) else None


def _text(cell: Any) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def _finite(x: Any) -> bool:
    """True for a finite int or float (numpy scalars included), False for bool, text, None and NaN."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(float(x))


def _dtype(column: str) -> str:
    if column == "Passage":
        return "int64"
    return "float64" if column in _NUMBERS else "object"


def _typed(table: pd.DataFrame, *, whole_passage: bool) -> pd.DataFrame:
    out = table.copy()
    for c in _NUMBERS:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    passage = pd.to_numeric(out["Passage"], errors="coerce")
    out["Passage"] = passage.astype("int64") if whole_passage and passage.notna().all() else passage
    for c in ("Donor", "Vessel", "Notes"):
        out[c] = out[c].map(lambda v: "" if blank_cell(v) else str(v)).astype(object)
    return out


def _ordered(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.severity != "error", p.row or 0))


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- kinetics -------------------------------------------------------------------------------------------
def passage_kinetics(table: pd.DataFrame, catalogue: Sequence[Vessel] | None = None) -> pd.DataFrame:
    """Growth kinetics of every passage row (see the module docstring for the formulas).

    Parameters
    ----------
    table : DataFrame
        A canonical passage table (``PassageUpload.table`` of an upload without errors, or a stored copy).
    catalogue : sequence of Vessel, optional
        For each vessel's family and, where the area is blank, its area (default ``data/vessels.csv``).

    Returns
    -------
    DataFrame
        Same rows in the same order; columns :data:`PASSAGE_COLUMNS` with ``Family`` after ``Vessel``, then
        :data:`KINETIC_COLUMNS`.

    Raises
    ------
    PassageError
        A required column is missing or a vessel is not in the catalogue.
    """
    vessels = {v.name: v for v in (list(catalogue) if catalogue is not None else read_catalogue())}
    missing = [c for c in (*_REQUIRED, "Hours") if c not in table.columns]
    if missing:
        raise PassageError(f"The passage table has no column {quoted_list(missing)}; read it with "
                           "read_passages first.")
    out = table.reset_index(drop=True).copy()
    for c in PASSAGE_COLUMNS:
        if c not in out.columns:
            out[c] = "" if c == "Notes" else math.nan
    unknown = sorted({str(v) for v in out["Vessel"] if str(v) not in vessels})
    if unknown:
        names = list(vessels)
        raise PassageError(f"Vessel '{unknown[0]}' is not in the vessel catalogue.{did_you_mean(unknown[0], names)} "
                           f"Vessels: {quoted_list(names)}.")
    out["Donor"] = out["Donor"].astype(str)
    out["Vessel"] = out["Vessel"].astype(str)
    for c in _NUMBERS:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    area = out["Area (cm2)"].copy()
    out["Area (cm2)"] = area.where(area.notna(), out["Vessel"].map(lambda v: vessels[v].area_cm2)).astype(float)
    seeded, harvested, hours = out["Seeded cells"], out["Harvested cells"], out["Hours"]
    fold = harvested / seeded
    pd_ = np.log2(fold.where(fold > 0))
    out.insert(list(out.columns).index("Vessel") + 1, "Family", out["Vessel"].map(lambda v: vessels[v].family))
    out["Fold expansion"] = fold
    out["Population doublings"] = pd_
    out["Doubling time (h)"] = (hours / pd_).where(pd_ > 0)
    out["Harvest density (cells/cm2)"] = harvested / out["Area (cm2)"]
    out["Cumulative PDL"] = _cumulative_pdl(out)
    order = [*PASSAGE_COLUMNS[:3], "Family", *PASSAGE_COLUMNS[3:], *KINETIC_COLUMNS]
    rest = [c for c in out.columns if c not in order]
    return out[order + rest]


def _by_passage(passages: pd.DataFrame) -> pd.DataFrame:
    """One row per (Donor, Passage): vessels joined, summed cells, merged PD and the cumulative PDL."""
    rows = []
    for (donor, number), grp in passages.groupby(["Donor", "Passage"], sort=False, dropna=False):
        s, h = float(grp["Seeded cells"].sum(min_count=1)), float(grp["Harvested cells"].sum(min_count=1))
        if grp["Seeded cells"].isna().any() or grp["Harvested cells"].isna().any():
            s = h = math.nan
        pd_ = math.log2(h / s) if s > 0 and h > 0 else math.nan
        vessels = list(dict.fromkeys(grp["Vessel"].astype(str)))
        rows.append({"Donor": donor, "Passage": number, "Vessel": ", ".join(vessels), "PD": pd_})
    out = pd.DataFrame(rows, columns=["Donor", "Passage", "Vessel", "PD"])
    out = out.sort_values(["Donor", "Passage"], kind="stable").reset_index(drop=True)
    out["Cumulative PDL"] = out.groupby("Donor", sort=False)["PD"].transform(lambda s: s.cumsum(skipna=False))
    return out


def _cumulative_pdl(passages: pd.DataFrame) -> pd.Series:
    merged = _by_passage(passages)
    lookup = {(d, p): c for d, p, c in zip(merged["Donor"], merged["Passage"], merged["Cumulative PDL"])}
    return pd.Series([lookup.get((d, p), math.nan) for d, p in zip(passages["Donor"], passages["Passage"])],
                     index=passages.index, dtype=float)


# -- summary --------------------------------------------------------------------------------------------
@dataclass
class GrowthSummary:
    """Kinetics of every passage and their mean and 95 % CI per group.

    ``groups`` has one row per group with human labels (for pages and the report): Group, Passages, Donors,
    and for fold expansion, doubling time (h) and harvest density the mean and 95 % CI, the mean hours,
    and the Method of the fold-expansion interval.
    """

    by: str
    passages: pd.DataFrame
    groups: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: by, passages (one per row, input order), groups, donors, notes (NaN as null)."""
        passages = []
        for rec in self.passages.to_dict("records"):
            item: dict[str, Any] = {}
            for col, key in _JSON_KEYS.items():
                v = rec.get(col)
                if col == "Passage":
                    item[key] = int(float(v)) if v is not None and _finite(v) else None
                elif col in ("Donor", "Vessel", "Family", "Notes"):
                    item[key] = "" if blank_cell(v) else str(v)
                else:
                    item[key] = json_number(v)
            passages.append(item)
        donors: dict[str, list[dict[str, Any]]] = {}
        for rec in _by_passage(self.passages).to_dict("records"):
            donors.setdefault(str(rec["Donor"]), []).append({
                "passage": int(rec["Passage"]) if _finite(rec["Passage"]) else None,
                "vessel": str(rec["Vessel"]),
                "population_doublings": json_number(rec["PD"]),
                "cumulative_pdl": json_number(rec["Cumulative PDL"]),
            })
        return {"by": self.by, "passages": passages, "groups": {k: dict(v) for k, v in self.stats.items()},
                "donors": donors, "notes": list(self.notes)}


def growth_summary(table: pd.DataFrame, catalogue: Sequence[Vessel] | None = None, by: str = "Family") -> GrowthSummary:
    """Mean and 95 % CI of fold expansion, doubling time, hours and harvest density per group.

    Each row (one vessel's passage) is one observation; rows of one donor are alike, which the donor
    random intercept accounts for. Per statistic: with several donors and at least one donor with two or more passages, an
    intercept-only mixed model with a random donor intercept (REML; CI = estimate +- t(Kenward-Roger df) x
    SE); otherwise the t interval ``mean +- t(n-1) s / sqrt(n)`` (no CI for one passage). Doubling time uses
    only passages with positive doublings; every passage left out of a statistic is counted in ``notes``.

    Parameters
    ----------
    table : DataFrame
        A canonical passage table.
    catalogue : sequence of Vessel, optional
        The vessel catalogue (default ``data/vessels.csv``).
    by : str, default "Family"
        The grouping column of :func:`passage_kinetics`'s output: "Family", "Vessel", "Donor", "Passage", ...

    Raises
    ------
    PassageError
        ``by`` is not a column, or :func:`passage_kinetics` refuses the table.
    """
    passages = passage_kinetics(table, catalogue)
    if by not in passages.columns:
        names = [c for c in passages.columns if c not in KINETIC_COLUMNS]
        raise PassageError(f"Cannot group by '{by}': no such column.{did_you_mean(by, names)} "
                           f"Columns: {quoted_list(names)}.")
    notes: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    labels: list[dict[str, Any]] = []
    grouped = list(passages.groupby(by, sort=False, dropna=False))
    if by in ("Family", "Vessel") and len(passages):  # in seed-train order: T-flask before CellSTACK before CellCube
        from doe.passage_sheet import scale_order

        rank = {name: i for i, name in enumerate(scale_order(passages, by))}
        grouped.sort(key=lambda g: rank.get(str(g[0]), len(rank)))
    for group, rows in grouped:
        gname = _text(group) if not blank_cell(group) else "(blank)"
        obs = _observations(rows)
        entry: dict[str, Any] = {"group": gname, "n": int(len(obs)), "donors": int(obs["Donor"].nunique())}
        methods = {}
        for key, label in _STATS:
            values = obs[key]
            keep = values.notna() & np.isfinite(values)
            if key == "doubling_time_h":
                nonpos = int((obs["pd"].notna() & (obs["pd"] <= 0)).sum())
                if nonpos:
                    notes.append(f"{gname}: {_count(nonpos, 'passage')} with no net growth (population doublings <= 0) "
                                 "left out of the doubling time (not defined).")
                    keep &= ~(obs["pd"] <= 0)
                dropped = int((~keep).sum()) - nonpos
            else:
                dropped = int((~keep).sum())
            if dropped:
                notes.append(f"{gname}: {_count(dropped, 'passage')} with a missing or undefined value left out of "
                             f"'{label}'.")
            stat, note = _interval(values[keep].to_numpy(float), obs["Donor"][keep].tolist())
            if note:
                notes.append(f"{gname}, {label}: {note}")
            methods[key] = stat["method"]
            entry[key] = stat
        entry["method"] = methods["fold_expansion"]
        results[gname] = entry
        labels.append({
            "Group": gname, "Passages": entry["n"], "Donors": entry["donors"],
            "Fold expansion mean": entry["fold_expansion"]["mean"],
            "Fold expansion 95 % CI low": entry["fold_expansion"]["ci_low"],
            "Fold expansion 95 % CI high": entry["fold_expansion"]["ci_high"],
            "Doubling time (h) mean": entry["doubling_time_h"]["mean"],
            "Doubling time (h) 95 % CI low": entry["doubling_time_h"]["ci_low"],
            "Doubling time (h) 95 % CI high": entry["doubling_time_h"]["ci_high"],
            "Harvest density (cells/cm²) mean": entry["harvest_density"]["mean"],
            "Harvest density (cells/cm²) 95 % CI low": entry["harvest_density"]["ci_low"],
            "Harvest density (cells/cm²) 95 % CI high": entry["harvest_density"]["ci_high"],
            "Hours mean": entry["hours"]["mean"],
            "Method": entry["method"],
        })
    groups = pd.DataFrame(labels, columns=list(GROUP_COLUMNS))
    return GrowthSummary(by, passages, groups, notes, results)


def _observations(rows: pd.DataFrame) -> pd.DataFrame:
    """One observation per vessel row of a group, with the statistics' short names."""
    return pd.DataFrame({"Donor": rows["Donor"].astype(str).to_numpy(),
                         "fold_expansion": rows["Fold expansion"].to_numpy(float),
                         "pd": rows["Population doublings"].to_numpy(float),
                         "doubling_time_h": rows["Doubling time (h)"].to_numpy(float),
                         "hours": rows["Hours"].to_numpy(float),
                         "harvest_density": rows["Harvest density (cells/cm2)"].to_numpy(float)})


def _interval(y: np.ndarray, donors: list[str]) -> tuple[dict[str, Any], str]:
    """Mean, 95 % CI and SD of ``y``: donor mixed model or t interval; with a note when there is one."""
    n = y.size
    sd = float(np.std(y, ddof=1)) if n > 1 else math.nan
    out: dict[str, Any] = {"mean": None, "ci_low": None, "ci_high": None, "sd": json_number(sd), "n": int(n),
                           "method": T_METHOD}
    if n == 0:
        return out, "no passage to summarise."
    counts = pd.Series(donors).value_counts()
    note = ""
    centre, scale = float(np.mean(y)), sd if sd > 0 else 1.0
    if len(counts) >= 2 and (counts >= 2).any() and sd > 0:
        fit: MixedFit | None
        coef: pd.Series | None = None
        try:
            # Fitted on the standardised values (REML and the Kenward-Roger df are equivariant under
            # y -> (y - centre) / scale) so that cell densities of 1e4-1e6 do not strain the numerics.
            fit = fit_mixed(np.ones((n, 1)), (y - centre) / scale, ["Intercept"], ["Intercept"], {"Donor": donors})
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:  # DoeError is a ValueError
            fit, note = None, (f"the mixed model could not be fitted ({exc}); the t interval of the passages is "
                               "shown instead.")
        if fit is not None:
            try:
                coef = fit.coefficients().iloc[0]
            except (ArithmeticError, ValueError, np.linalg.LinAlgError):
                coef = None
                if fit.components.get("Donor", 0.0) <= 1e-8 * max(fit.components.get("Residual", 0.0), 1e-300):
                    note = ("the donor variance is estimated as 0 (donors differ no more than passages of one "
                            "donor), so the mixed model reduces to the t interval of the passages, shown here.")
                else:
                    note = ("the mixed model gave no Kenward-Roger df; the t interval of the passages is shown "
                            "instead.")
        if fit is not None and coef is not None:
            est = centre + scale * float(coef["estimate"])
            se, df = scale * float(coef["se"]), float(coef["df"])
            half = float(stats.t.ppf(0.975, df)) * se
            if math.isfinite(half):
                out.update(mean=json_number(est), ci_low=json_number(est - half), ci_high=json_number(est + half),
                           method=MIXED_METHOD, df=json_number(df), se=json_number(se))
                singular = fit.components.get("Donor", 0.0) <= 1e-8 * max(fit.components.get("Residual", 0.0), 1e-300)
                return out, ("the donor variance is estimated as 0 (a singular fit: donors differ no more than "
                             "passages of one donor); the interval keeps the mixed model's Kenward-Roger df."
                             if singular else "")
            note = "the mixed model gave no finite interval; the t interval of the passages is shown instead."
    mean = float(np.mean(y))
    out["mean"] = json_number(mean)
    if n == 1:
        return out, (note + " " if note else "") + "one passage only, so no confidence interval."
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    out.update(ci_low=json_number(mean - half), ci_high=json_number(mean + half), df=float(n - 1),
               se=json_number(sd / math.sqrt(n)))
    return out, note
