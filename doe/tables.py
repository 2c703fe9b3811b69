"""A study as editable tables (the Study page) and back.

The page shows factors, CQAs and constraints as DataFrames in data editors;
:func:`study_from_tables` turns the edited tables back into a validated
:class:`~doe.study.Study`, with the same messages as the YAML loader.
"""

from __future__ import annotations

import math
from typing import Any, cast

import pandas as pd

from doe._format import blank_as_none
from doe.constraints import Constraint
from doe.errors import StudyError
from doe.study import Factor, Response, Study, number_or_none

FACTOR_COLUMNS = ["name", "kind", "low", "high", "levels", "units", "changes", "description"]
#: How often a factor can change (the factor table's ``changes`` column) -> its ``hard_to_change`` value.
CHANGES = {"every run": False, "between whole plots": True, "between whole plots (very hard)": "very"}
RESPONSE_COLUMNS = ["name", "units", "goal", "lower", "upper", "target", "weight", "importance",
                    "description"]
CONSTRAINT_COLUMNS = ["kind", "expression", "reason"]
#: The number columns of the factor and CQA tables: always float (an integer-typed column, e.g. from
#: the defaults 30 and 90, makes a browser's number cell drop the point: 36.5 -> 365).
FACTOR_NUMBERS = ["low", "high"]
RESPONSE_NUMBERS = ["lower", "upper", "target", "weight", "importance"]


def _floats(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with ``columns`` as float64 (blank cells NaN)."""
    for c in columns:
        frame[c] = frame[c].astype("float64")
    return frame


def number_text(value: Any) -> str:
    """A number as the editor shows it: every digit kept, no exponent below 1e15, blank for none
    (36.5 -> '36.5', 1000.0 -> '1000')."""
    if _blank(value):
        return ""
    return format(float(value), ".15g")


def as_editor_text(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with the number ``columns`` as text cells, so the editor keeps exactly what is typed
    (a browser's number cell reads '36,5' as 365 under an English locale); :func:`study_from_tables`
    parses them back and refuses a decimal comma with a message."""
    out = frame.copy()
    for c in columns:
        out[c] = [number_text(v) for v in out[c]]
    return out


def parse_number(value: Any, what: str) -> float | None:
    """A number typed in an editor cell: a float, None for a blank; a decimal comma or thousands
    separator is refused (never read as another number) with a StudyError saying what to type."""
    if isinstance(value, str) and "," in value:
        text = value.strip()
        raise StudyError(
            f"{what}: '{text}' contains a comma. Type numbers with a decimal point and no thousands "
            f"separator: '{text.replace(',', '.', 1)}' if the comma is a decimal comma, "
            f"'{text.replace(',', '')}' if it separates thousands.")
    return number_or_none(blank_as_none(value), what)


def factors_table(study: Study) -> pd.DataFrame:
    """The study's factors as the editable table (levels joined by '; '), one row per factor."""
    rows = []
    for f in study.factors:
        rows.append({
            "name": f.name, "kind": f.kind,
            "low": f.low if f.kind == "continuous" else None,
            "high": f.high if f.kind == "continuous" else None,
            "levels": "; ".join(str(v) for v in f.levels) if f.kind != "continuous" else "",
            "units": f.units, "changes": _changes_label(f.hard_to_change), "description": f.description,
        })
    return _floats(pd.DataFrame(rows, columns=FACTOR_COLUMNS), FACTOR_NUMBERS)


def responses_table(study: Study) -> pd.DataFrame:
    """The study's responses (CQAs) as the editable table, one row per response."""
    rows = [{c: getattr(r, c) for c in RESPONSE_COLUMNS} for r in study.responses]
    return _floats(pd.DataFrame(rows, columns=RESPONSE_COLUMNS), RESPONSE_NUMBERS)


def constraints_table(study: Study) -> pd.DataFrame:
    """The study's constraints as the editable table (kind, expression, reason)."""
    rows = [{"kind": c.kind, "expression": c.expr, "reason": c.reason} for c in study.constraints]
    return pd.DataFrame(rows, columns=CONSTRAINT_COLUMNS)


def _changes_label(value: bool | str) -> str:
    return next(label for label, v in CHANGES.items() if v == value and type(v) is type(value))


def _hard_to_change(value: Any, row: int) -> bool | str:
    if _blank(value):
        return False
    text = str(value).strip().lower()
    for label, v in CHANGES.items():
        if text == label:
            return cast("bool | str", v)
    raise StudyError(f"Factor row {row}: 'changes' must be one of {', '.join(CHANGES)}; got '{value}'.")


def random_effects_text(study: Study) -> str:
    """The study's random-effect columns as the editor shows them ('; '-separated)."""
    return "; ".join(study.random_effects)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip()
    )


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows with at least one filled cell (the editor's empty new rows are skipped)."""
    records = cast("list[dict[str, Any]]", frame.to_dict("records"))  # the editors' columns are text
    return [r for r in records if not all(_blank(v) for v in r.values())]


def study_from_tables(name: str, factors: pd.DataFrame, responses: pd.DataFrame,
                      constraints: pd.DataFrame | None = None, blocks: str | None = None,
                      description: str = "", random_effects: str | list[str] | None = None) -> Study:
    """Build and validate a Study from the three edited tables.

    Levels are separated by ';' (or ',' when no ';' is present); so are the random-effect columns
    (``random_effects``: e.g. 'Donor; hPL lot'). A factor's ``changes`` cell (see :data:`CHANGES`) sets
    whether it is hard to change.
    """
    fs = []
    for i, r in enumerate(_rows(factors)):
        kind = str(r.get("kind") or "continuous").strip().lower()
        text = "" if _blank(r.get("levels")) else str(r["levels"])
        sep = ";" if ";" in text else ","
        levels: list[Any] = [t.strip() for t in text.split(sep) if t.strip()]
        if kind == "discrete":
            try:
                levels = [float(t) for t in levels]
            except ValueError:
                raise StudyError(
                    f"Factor row {i + 1} ({r.get('name')}): discrete levels must be numbers "
                    "separated by ';'."
                ) from None
        fs.append(Factor(
            name=str(r.get("name") or "").strip(), kind=kind,
            low=parse_number(r.get("low"), f"Factor row {i + 1} low"),
            high=parse_number(r.get("high"), f"Factor row {i + 1} high"),
            levels=levels if kind != "continuous" else [],
            units="" if _blank(r.get("units")) else str(r["units"]),
            description="" if _blank(r.get("description")) else str(r["description"]),
            hard_to_change=_hard_to_change(r.get("changes"), i + 1),
        ))
    rs = []
    for i, r in enumerate(_rows(responses)):
        rs.append(Response(
            name=str(r.get("name") or "").strip(),
            units="" if _blank(r.get("units")) else str(r["units"]),
            goal=str(r.get("goal") or "none").strip().lower(),
            lower=parse_number(r.get("lower"), f"CQA row {i + 1} lower"),
            upper=parse_number(r.get("upper"), f"CQA row {i + 1} upper"),
            target=parse_number(r.get("target"), f"CQA row {i + 1} target"),
            weight=parse_number(r.get("weight"), f"CQA row {i + 1} weight") or 1.0,
            importance=parse_number(r.get("importance"), f"CQA row {i + 1} importance") or 1.0,
            description="" if _blank(r.get("description")) else str(r["description"]),
        ))
    cs = []
    if constraints is not None:
        for r in _rows(constraints):
            if _blank(r.get("expression")):
                continue
            cs.append(Constraint(expr=str(r["expression"]).strip(),
                                 kind=str(r.get("kind") or "exclude").strip().lower(),
                                 reason="" if _blank(r.get("reason")) else str(r["reason"])))
    if isinstance(random_effects, str):
        sep = ";" if ";" in random_effects else ","
        random_effects = [t.strip() for t in random_effects.split(sep) if t.strip()]
    return Study(name=str(name or "").strip(), factors=fs, responses=rs,
                 blocks=None if _blank(blocks) else str(blocks).strip(), constraints=cs,
                 description=description or "", random_effects=list(random_effects or []))


def blank_study() -> Study:
    """A minimal new study to start editing from."""
    return Study(
        name="New study",
        factors=[Factor("Agitation", "continuous", 30, 90, units="rpm"),
                 Factor("Seeding density", "continuous", 1000, 5000, units="cells/cm2")],
        responses=[Response("Viability", units="%", goal="maximize", lower=80)],
    )
