"""Manufacturing lots checked against the design space (ICH Q8/Q10; FDA process validation stage 3).

Every lot ran at actual settings of the process parameters. :func:`check_lots` says for each lot, against
a saved design-space decision (:class:`doe.decision.Decision`) and its design space
(:class:`doe.space.DesignSpace` on the decision's terms):

- whether each process parameter was inside the tested range, its proven acceptable range (PAR) and its
  normal operating range (NOR) as saved with the decision (a categorical parameter: its PAR levels, or the
  set point's level when no PAR was saved);
- the predicted joint probability that a run at the lot's actual settings meets every CQA spec
  (:func:`doe.space.probability`, the same draws as the design space);
- whether the lot ran inside the design space - every parameter inside its PAR and the probability at
  least the decision's threshold - and, when not, the factor(s) that took it out: those outside their
  PAR, else the factor whose move alone from the set point to the lot's value lowers the probability most.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from doe.errors import DoeError, did_you_mean, quoted_list
from doe.runs import Problem, RunsUpload, canonical_names, read_number, read_table, source_bytes
from doe.sheet_change import SheetChange, compare_sheets, merge_sheets


@dataclass
class LotCheck:
    """One lot against the design space."""

    lot: str
    settings: dict[str, Any]
    probability: float
    in_space: bool
    in_par: bool
    in_nor: bool | None
    left_by: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: lot, settings, probability, in_space, in_par, in_nor, left_by, reasons."""
        return {"lot": self.lot, "settings": dict(self.settings), "probability": self.probability,
                "in_space": self.in_space, "in_par": self.in_par, "in_nor": self.in_nor,
                "left_by": list(self.left_by), "reasons": list(self.reasons)}


def _range(value: Any) -> tuple[float, float] | None:
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        try:
            low, high = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
        return (low, high) if math.isfinite(low) and math.isfinite(high) else None
    return None


def _number(value: Any) -> str:
    return f"{float(value):.4g}"


def check_lots(space: Any, decision: Any, lots: pd.DataFrame, *, lot_column: str = "Lot") -> list[LotCheck]:
    """Each lot of ``lots`` (one row per lot, a column per process parameter) against the design space.

    ``space`` is a :class:`doe.space.DesignSpace` (judged on the decision's terms:
    ``DesignSpace.on_decision``); ``decision`` the saved :class:`doe.decision.Decision` (its threshold, set
    point and ``ranges['par']`` / ``ranges['nor']``).
    """
    from doe.space import probability

    pm = space.pm
    study = pm.study
    factors = list(study.factors)
    missing = [f.name for f in factors if f.name not in lots.columns]
    if missing:
        raise DoeError(f"The lots have no column {quoted_list(missing)}: every process parameter's actual setting "
                       "is needed to check a lot against the design space.")
    if lot_column not in lots.columns:
        raise DoeError(f"The lots have no '{lot_column}' column naming each lot.")
    par = dict((decision.ranges or {}).get("par") or {})
    nor = dict((decision.ranges or {}).get("nor") or {})
    set_point = dict(decision.set_point)
    settings = lots[[f.name for f in factors]].reset_index(drop=True).copy()
    for f in factors:
        if f.is_categorical:
            settings[f.name] = settings[f.name].astype(str)
        else:
            values = pd.to_numeric(settings[f.name], errors="coerce")
            if values.isna().any():
                bad = lots[lot_column].astype(str)[values.isna().to_numpy()].tolist()
                raise DoeError(f"Lots {quoted_list(bad[:5])}: '{f.name}' is not a number; give the setting run.")
            settings[f.name] = values.astype(float)
    opts = {"draws": space.draws, "seed": space.seed, "setpoint_sd": dict(space.setpoint_sd) or None}
    joint = probability(pm, settings, **opts).joint
    # one factor at a time from the set point to the lot's value: which move costs the probability most
    single = []
    for i in range(len(settings)):
        for f in factors:
            point = {g.name: set_point.get(g.name) for g in factors}
            point[f.name] = settings.at[i, f.name]
            single.append(point)
    one_at_a_time = probability(pm, pd.DataFrame(single, columns=[f.name for f in factors]), **opts).joint
    out = []
    for i in range(len(settings)):
        row = settings.iloc[i]
        reasons: list[str] = []
        left: list[str] = []
        outside_nor = False
        for f in factors:
            value = row[f.name]
            if f.is_categorical:
                allowed = [str(v) for v in (par.get(f.name) or [set_point.get(f.name)])]
                if str(value) not in allowed:
                    left.append(f.name)
                    reasons.append(f"{f.name} {value} is not {'a PAR level' if f.name in par else 'the set point'} "
                                   f"({quoted_list(allowed)}).")
                continue
            if not f.low <= value <= f.high:
                left.append(f.name)
                reasons.append(f"{f.name} {_number(value)} is outside the tested range {_number(f.low)} to "
                               f"{_number(f.high)}: the models do not know it there.")
                continue
            pr = _range(par.get(f.name))
            if pr is not None and not pr[0] <= value <= pr[1]:
                left.append(f.name)
                reasons.append(f"{f.name} {_number(value)} is outside its PAR {_number(pr[0])} to {_number(pr[1])}.")
            nr = _range(nor.get(f.name))
            if nr is not None and not nr[0] <= value <= nr[1]:
                outside_nor = True
                reasons.append(f"{f.name} {_number(value)} is outside its NOR {_number(nr[0])} to {_number(nr[1])}.")
        p = float(joint[i])
        in_par = not left
        in_space = in_par and p >= decision.threshold
        if in_par and not in_space:
            k = len(factors)
            worst = min(range(k), key=lambda j: float(one_at_a_time[i * k + j]))
            left.append(factors[worst].name)
            reasons.append(f"P(all CQAs in spec) {p:.3f} is below the threshold {decision.threshold:g}; moving "
                           f"{factors[worst].name} alone from the set point to this lot's value costs the most.")
        out.append(LotCheck(str(lots[lot_column].iloc[i]), {f.name: row[f.name] for f in factors}, p, in_space,
                            in_par, None if not nor else not outside_nor, left, reasons))
    return out


def lots_frame(checks: Sequence[LotCheck]) -> pd.DataFrame:
    """The checks as a table: lot, probability, inside, PAR/NOR, the factor(s) that left, and why."""
    return pd.DataFrame([{"Lot": c.lot, "P(all CQAs in spec)": c.probability,
                          "In the design space": "yes" if c.in_space else "no",
                          "Inside every PAR": "yes" if c.in_par else "no",
                          "Inside every NOR": "" if c.in_nor is None else ("yes" if c.in_nor else "no"),
                          "Left by": ", ".join(c.left_by), "Why": " ".join(c.reasons)} for c in checks])


def summary(checks: Sequence[LotCheck]) -> Mapping[str, Any]:
    """How many lots ran inside, and which did not."""
    outside = [c.lot for c in checks if not c.in_space]
    return {"lots": len(checks), "inside": len(checks) - len(outside), "outside": outside}


# -- the lots sheet ---------------------------------------------------------------------------------------
#: The bundled example's lots (simulated by data/simulate_lots.py).
LOTS_FILE = Path(__file__).resolve().parent.parent / "data" / "msc_lots.csv"
_OPTIONAL = ("Date", "Donor", "Subgroup", "Notes")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y", "%d %B %Y",
                 "%b %d %Y", "%b %d, %Y", "%B %d %Y", "%B %d, %Y", "%Y%m%d")


@dataclass
class LotsUpload(RunsUpload):
    """A lots sheet read from a file or a table, with its problems (:func:`read_lots`).

    ``table`` columns, in order: Lot, Date (ISO 'YYYY-MM-DD'), Donor, the factors (the settings run), the
    CQAs (float, NaN = not measured), Subgroup, Notes - the optional ones only when the sheet had them -
    then any unknown columns of the sheet. Rows are in the sheet's order (time order).
    """

    unit: ClassVar[str] = "lot"
    default_name: ClassVar[str] = "The lots sheet"


def _norm(text: Any) -> str:
    return " ".join(str(text).replace("\u00a0", " ").split()).lower()


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _cell_number(value: Any) -> tuple[float, str]:
    """(number, '') for a number or a blank cell (NaN); (NaN, what is wrong and the fix) otherwise: the results
    upload's reading of a cell (:func:`doe.runs.read_number`, a point as the decimal separator)."""
    return read_number(value)


def _iso_date(value: Any) -> str | None:
    """The date as 'YYYY-MM-DD', or None when it cannot be read (or a d/m m/d date is ambiguous)."""
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = " ".join(str(value).split())
    text = re.sub(r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "", text)  # a time of day is dropped
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).strftime("%Y-%m-%d")
        except ValueError:
            continue
    found = set()
    for fmt in ("%d/%m/%Y", "%m/%d/%Y", "%d/%m/%y", "%m/%d/%y"):
        try:
            found.add(dt.datetime.strptime(text, fmt).strftime("%Y-%m-%d"))
        except ValueError:
            continue
    return found.pop() if len(found) == 1 else None


def _lots_frame_from(source: bytes | str | Path | pd.DataFrame, name: str) -> tuple[pd.DataFrame, str]:
    if isinstance(source, pd.DataFrame):
        return source.copy(), name or "table"
    data, name = source_bytes(source, name)
    return read_table(data, name), name


def read_lots(study: Any, source: bytes | str | Path | pd.DataFrame, name: str = "") -> LotsUpload:
    """Read and check a manufacturing lots sheet (CSV or XLSX file, CSV text, path or DataFrame).

    Columns: ``Lot`` (required, unique, non-blank), ``Date`` (optional; read to 'YYYY-MM-DD'), ``Donor``
    (optional), every factor of the study (required: the settings run; a categorical one a level, a
    continuous one a number - outside the tested range is a warning naming the lot), the CQAs (optional;
    numbers, blank = not measured), ``Subgroup`` and ``Notes`` (optional). Headers match ignoring case,
    spacing and a '(units)' suffix (:func:`doe.runs.canonical_names`); unknown columns are kept with a
    warning. Never raises for bad input: the problems are in the result.
    """
    factors = list(study.factors)
    cqas = list(study.response_names)
    try:
        frame, name = _lots_frame_from(source, name)
    except DoeError as exc:
        return LotsUpload(pd.DataFrame(columns=["Lot"]), [Problem("error", None, None, str(exc))], name or "upload",
                          list(study.factor_names), cqas)
    frame.columns = [str(c).replace("\u00a0", " ").strip() for c in frame.columns]
    problems: list[Problem] = []
    rename = dict(canonical_names(study, frame.columns))
    for c in frame.columns:
        for known in ("Lot", *_OPTIONAL):
            if c not in rename and _norm(c) == _norm(known):
                rename[c] = known
    seen: dict[str, str] = {}
    keep = []
    for c in frame.columns:
        target = rename.get(c, c)
        if _norm(target) in seen:
            problems.append(Problem("error", None, c, f"Column '{c}' appears twice (also as '{seen[_norm(target)]}'): "
                                                      "keep one."))
            continue
        seen[_norm(target)] = c
        keep.append(c)
    frame = frame[keep].rename(columns=rename)
    filled = [not all(_blank(v) for v in row) for row in frame.itertuples(index=False)]
    frame.index = list(range(1, len(frame) + 1))  # the 1-based data row of the sheet, kept past blank rows
    frame = frame.loc[filled]
    known_names = ["Lot", *_OPTIONAL, *study.factor_names, *cqas]
    if "Lot" not in frame:
        problems.append(Problem("error", None, "Lot", "The sheet has no 'Lot' column: add one naming each lot "
                                                      "(e.g. L01, L02, ...)."))
    for f in factors:
        if f.name not in frame:
            problems.append(Problem("error", None, f.name, f"No column for factor '{f.name}': every process "
                                                           "parameter's actual setting is needed for each lot."
                                                           f"{did_you_mean(f.name, list(frame.columns))}"))
    extra = [c for c in frame.columns if c not in known_names]
    for c in extra:
        problems.append(Problem("warning", None, c, f"Column '{c}' is not a lot column, factor or CQA of the "
                                                    f"study; it is kept as an extra column.{did_you_mean(c, known_names)}"))
    if frame.empty:
        problems.append(Problem("error", None, None, "The sheet has no lots: add one row per lot below the header."))
    cols: dict[str, list[Any]] = {}
    lot_ids = [lot_label(v) for v in frame["Lot"]] if "Lot" in frame else [str(i) for i in frame.index]
    if "Lot" in frame:
        first: dict[str, int] = {}
        for r, key in zip(frame.index, lot_ids, strict=True):
            if not key:
                problems.append(Problem("error", r, "Lot", f"Row {r}, column 'Lot': the lot id is empty; give every "
                                                           "lot an id."))
            elif key in first:
                problems.append(Problem("error", r, "Lot", f"Row {r}, column 'Lot': lot {key} is used again (first in "
                                                           f"row {first[key]}); each lot needs its own id."))
            else:
                first[key] = r
        cols["Lot"] = lot_ids
    if "Date" in frame:
        dates: list[Any] = []
        for r, v in zip(frame.index, frame["Date"], strict=True):
            iso = None if _blank(v) else _iso_date(v)
            if iso is None and not _blank(v):
                problems.append(Problem("error", r, "Date", f"Row {r}, column 'Date': '{v}' is not a date that can "
                                                            "be read unambiguously; write it as YYYY-MM-DD "
                                                            "(e.g. 2026-01-05)."))
            dates.append(iso)
        cols["Date"] = dates
    if "Donor" in frame:
        cols["Donor"] = [None if _blank(v) else lot_label(v) for v in frame["Donor"]]
    for f in factors:
        if f.name not in frame:
            continue
        values: list[Any] = []
        for r, lot, v in zip(frame.index, lot_ids, frame[f.name], strict=True):
            where = f"Row {r} (lot {lot}), column '{f.name}'"
            if _blank(v):
                problems.append(Problem("error", r, f.name, f"{where}: the setting is empty; every lot needs the "
                                                            f"{f.name} it ran at."))
                values.append(None if f.is_categorical else math.nan)
            elif f.is_categorical:
                level = next((lv for lv in f.levels if _norm(lv) == _norm(lot_label(v))), None)
                if level is None:
                    problems.append(Problem("error", r, f.name, f"{where}: '{v}' is not a level of {f.name}."
                                                                f"{did_you_mean(str(v), list(f.levels))} Levels are "
                                                                f"{quoted_list(f.levels)}."))
                values.append(level)
            else:
                x, message = _cell_number(v)
                units = f" {f.units}" if f.units else ""
                if message:
                    problems.append(Problem("error", r, f.name, f"{where}: {message} Enter {f.name} in "
                                                                f"{f.units or 'its units'} as a plain number."))
                elif not f.low <= x <= f.high:
                    problems.append(Problem("warning", r, f.name, (
                        f"Lot {lot} ran {f.name} at {_number(x)}{units}, outside the tested range {_number(f.low)} to "
                        f"{_number(f.high)}{units}: kept, but the models do not know the process there.")))
                values.append(x)
        cols[f.name] = values
    for c in cqas:
        if c not in frame:
            continue
        numbers: list[float] = []
        for r, lot, v in zip(frame.index, lot_ids, frame[c], strict=True):
            x, message = _cell_number(v)
            if message:
                problems.append(Problem("error", r, c, f"Row {r} (lot {lot}), column '{c}': {message}"))
            numbers.append(x)
        cols[c] = numbers
    for c in ("Subgroup", "Notes", *extra):
        if c in frame:
            cols[c] = [None if _blank(v) else (lot_label(v) if c == "Subgroup" else str(v)) for v in frame[c]]
    order = ["Lot", "Date", "Donor", *study.factor_names, *cqas, "Subgroup", "Notes", *extra]
    table = pd.DataFrame({c: cols[c] for c in order if c in cols})
    for c in cqas:
        if c in table:
            table[c] = table[c].astype(float)
    problems.sort(key=lambda p: p.row or 0)
    return LotsUpload(table.reset_index(drop=True), problems, name, list(study.factor_names), cqas)


def lots_template(study: Any) -> pd.DataFrame:
    """An empty lots sheet of ``study``: Lot, Date, Donor, the factors, the CQAs, Subgroup, Notes."""
    columns: dict[str, Any] = {"Lot": pd.Series(dtype=object), "Date": pd.Series(dtype=object),
                               "Donor": pd.Series(dtype=object)}
    for f in study.factors:
        columns[f.name] = pd.Series(dtype=object if f.is_categorical else float)
    for c in study.response_names:
        columns[c] = pd.Series(dtype=float)
    columns["Subgroup"] = pd.Series(dtype=object)
    columns["Notes"] = pd.Series(dtype=object)
    return pd.DataFrame(columns)


def compare_lots(recorded: pd.DataFrame, table: pd.DataFrame) -> SheetChange:
    """What saving ``table`` as the whole lots sheet changes against ``recorded`` (lots matched by id):
    a :class:`doe.sheet_change.SheetChange`."""
    return compare_sheets(recorded, table, ("Lot",), noun="lot")


def merge_lots(recorded: pd.DataFrame, upload: pd.DataFrame, *, replace: bool = False) -> SheetChange:
    """The lots sheet after an upload: the recorded lots with the upload's added (a lot id already recorded
    replaces that lot, in its place), or with ``replace`` the upload alone. Both are canonical lots tables
    (:func:`read_lots`); the result is a :class:`doe.sheet_change.SheetChange`."""
    return merge_sheets(recorded, upload, ("Lot",), replace=replace, noun="lot", reader="doe.lots.read_lots")


def lot_label(value: Any) -> str:
    """A lot, donor or subgroup id as text: whole numbers without '.0' (3.0 -> '3'), text stripped."""
    if _blank(value):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


# -- predicted capability ---------------------------------------------------------------------------------
def _fitted_model(space_or_models: Any, cqa: str) -> Any:
    pm = getattr(space_or_models, "pm", None)
    if pm is not None:
        found = {c.name: c.fm for c in pm.cqas}
    else:
        fits = getattr(space_or_models, "models", space_or_models)
        if not isinstance(fits, Mapping):
            raise DoeError("Give a design space (doe.space.DesignSpace), an analysis or a mapping CQA -> fitted "
                           "model for the predicted capability.")
        found = {k: (v if hasattr(v, "least_squares") else getattr(v, "model", None)) for k, v in fits.items()}
        found = {k: v for k, v in found.items() if v is not None}
    if cqa not in found:
        raise DoeError(f"No fitted model of '{cqa}'.{did_you_mean(cqa, list(found))} Fitted CQAs: "
                       f"{quoted_list(list(found))}.")
    return found[cqa]


def predicted_capability(space_or_models: Any, study: Any, set_point: Mapping[str, Any],
                         setpoint_sd: Mapping[str, float] | None, cqa: str, *, draws: int = 4000,
                         seed: int = 0) -> dict[str, Any]:
    """The predicted Ppk of ``cqa`` for lots run at ``set_point`` with set-point variation ``setpoint_sd``.

    Each simulated lot runs at settings drawn around the set point (normal, SD per continuous factor in actual
    units; categorical factors fixed) and its CQA is a draw of the fitted model's Student-t posterior
    predictive there: ``z = x'b + s sqrt(1 + x'(X'X)^-1 x) t_df`` on the fitted scale, back-transformed (a mixed
    model, ``fm.mixed``: the GLS mean and a new level of every random effect, with Satterthwaite's df).
    Ppk = min(USL - mean, mean - LSL) / (3 sd) of the draws (the one side with a limit when only one is set).
    Returns ``{"ppk", "mean", "sd", "expected_out_percent", "draws", "method"}``; ``ppk`` and
    ``expected_out_percent`` are None when the CQA has no spec limit.
    """
    from doe.fit import complete_settings

    if draws < 100:
        raise DoeError(f"draws is {draws}: use at least 100 simulated lots (e.g. 4000).")
    response = study.response(cqa)
    fm = _fitted_model(space_or_models, cqa)
    if fm.mixed is None and fm.df_resid < 1:
        raise DoeError(f"The model of {cqa} has no residual degrees of freedom, so its prediction uncertainty is "
                       "unknown: drop terms or add runs.")
    sds = dict(setpoint_sd or {})
    names = [f.name for f in study.factors]
    unknown = [k for k in sds if k not in names]
    if unknown:
        raise DoeError(f"Set-point SD given for {quoted_list(unknown)}, which is not a factor."
                       f"{did_you_mean(unknown[0], names)}")
    missing = [n for n in names if n not in set_point]
    if missing:
        raise DoeError(f"The set point has no value for {quoted_list(missing)}: give every factor's setting.")
    rng = np.random.default_rng(seed)
    settings: dict[str, Any] = {}
    for f in study.factors:
        if f.is_categorical:
            if f.name in sds and sds[f.name]:
                raise DoeError(f"{f.name} is categorical: it has no set-point SD; leave it out of setpoint_sd.")
            settings[f.name] = [set_point[f.name]] * draws
        else:
            sd = float(sds.get(f.name, 0.0) or 0.0)
            if not math.isfinite(sd) or sd < 0:
                raise DoeError(f"The set-point SD of {f.name} is {sd:g}: give a non-negative number.")
            settings[f.name] = float(set_point[f.name]) + sd * rng.standard_normal(draws)
    frame = pd.DataFrame(settings)
    X = fm.model_matrix(complete_settings(fm.study, fm.model_terms, frame))
    z = X @ np.asarray(fm.coef, dtype=float)
    if fm.mixed is not None:  # a new run has a new donor, lot and whole plot: every variance component counts
        var, df = fm.mixed.predictive_variance(X, new_levels=True)
        df = np.asarray(df, dtype=float)
        t = np.where(np.isfinite(df) & (df < 1e6), rng.standard_t(np.clip(np.nan_to_num(df, nan=1e6), 1e-3, 1e6)),
                     rng.standard_normal(draws))
        noise, df_text = np.sqrt(np.asarray(var, dtype=float)) * t, "Satterthwaite df, a new level of every random effect"
    else:
        ls = fm.least_squares
        noise = np.sqrt(ls.mse * (1.0 + ls.pred_var(X))) * rng.standard_t(fm.df_resid, draws)
        df_text = f"df {fm.df_resid}"
    y = np.asarray(fm.fitted_transform.inverse(z + noise), dtype=float)
    mean, sd_y = float(np.mean(y)), float(np.std(y, ddof=1))
    lower, upper = response.lower, response.upper
    sides = [v for v in ((upper - mean) if upper is not None else None,
                         (mean - lower) if lower is not None else None) if v is not None]
    ppk = min(sides) / (3 * sd_y) if sides and sd_y > 0 else None
    out = None
    if lower is not None or upper is not None:
        bad = np.zeros(draws, dtype=bool)
        if lower is not None:
            bad |= y < lower
        if upper is not None:
            bad |= y > upper
        out = 100.0 * float(bad.mean())
    varied = ", ".join(f"{k} SD {v:g}" for k, v in sds.items() if v) or "no set-point variation"
    method = (f"{draws:,} simulated lots at the set point ({varied}); {cqa} drawn from the fitted model's "
              f"Student-t predictive ({df_text}); Ppk = min(USL - mean, mean - LSL) / (3 SD) of the draws.")
    return {"ppk": ppk, "mean": mean, "sd": sd_y, "expected_out_percent": out, "draws": draws, "method": method}
