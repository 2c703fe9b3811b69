"""The rows of a run sheet one fit uses, coded: results read as numbers, runs left out (no result or
excluded by the user) with their reasons, the block column and its labels, and range warnings."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from doe._format import fmt_sig, plain_whole
from doe.cells import blank_cell
from doe.errors import ModelError, did_you_mean, quoted_list
from doe.model import Term, coded_array, parse_model
from doe.study import SUBPLOT, WHOLE_PLOT, Study

__all__ = ["complete_settings"]

#: Cell texts that mean "no result" in a results column (besides empty cells).
_MISSING_MARKS = ("", "na", "n/a", "nan", "none", "-", "missing")


@dataclass
class _Data:
    """Rows of the run sheet used in one fit, coded."""

    U: np.ndarray
    y: np.ndarray
    run_ids: list[Any]
    blocks: np.ndarray | None
    block_labels: list[str]
    block_col: str | None
    excluded: list[dict[str, Any]]
    warnings: list[str]
    #: Random-effect column -> label per used run (outer to inner; a subplot's label names its whole plot).
    groups: dict[str, list[str]]


def prepare(study: Study, runs: pd.DataFrame, response: str, block_col: str | None,
             exclude: Any) -> _Data:
    if not isinstance(runs, pd.DataFrame):
        raise ModelError("The runs must be a table (DataFrame) with one row per run.")
    if response not in runs.columns:
        raise ModelError(
            f"The run sheet has no column '{response}'.{did_you_mean(response, [str(c) for c in runs.columns])} "
            f"Add the results of {response} in a column named exactly '{response}'."
        )
    n_all = len(runs)
    run_ids = list(runs["Run"]) if "Run" in runs.columns else list(range(1, n_all + 1))
    run_ids = [plain_whole(r) for r in run_ids]
    y_all = _numeric_response(runs[response], run_ids, response)
    missing = ~np.isfinite(y_all)
    user = np.zeros(n_all, dtype=bool)
    if exclude is not None:
        wanted = [exclude] if isinstance(exclude, (str, int, float, np.integer)) else list(exclude)
        ids = {str(r): i for i, r in enumerate(run_ids)}
        unknown = [w for w in wanted if str(plain_whole(w)) not in ids]
        if unknown:
            raise ModelError(
                f"Run(s) {quoted_list(unknown)} to exclude are not in the run sheet; run ids are "
                f"{_id_range(run_ids)}."
            )
        for w in wanted:
            user[ids[str(plain_whole(w))]] = True
    excluded = [{"run": run_ids[i], "reason": "excluded by user"} for i in np.flatnonzero(user)]
    excluded += [{"run": run_ids[i], "reason": "no result"} for i in np.flatnonzero(missing & ~user)]
    used = ~missing & ~user
    random_cols = [c for c in (WHOLE_PLOT, SUBPLOT, *study.random_effects) if c in runs.columns]
    unlabelled = {}
    for c in random_cols:
        unlabelled[c] = np.array([blank_cell(v) for v in runs[c]], dtype=bool) & used
        excluded += [{"run": run_ids[i], "reason": f"no {c}"} for i in np.flatnonzero(unlabelled[c])]
        used &= ~unlabelled[c]
    if not used.any():
        raise ModelError(
            f"There are no results for {response} to fit: enter them in the run sheet column "
            f"'{response}'" + (" or exclude fewer runs." if user.any() else ".")
        )
    frame = runs
    if not used.all():  # unused rows may hold unfinished settings: neutral values keep row numbers right
        frame = runs.copy()
        for f in study.factors:
            if f.name in frame.columns:
                frame[f.name] = frame[f.name].astype(object)
                frame.loc[~used, f.name] = f.levels[0] if f.is_categorical else f.center
    U = code_settings(study, frame)[used]
    warnings = []
    n_missing = int((missing & ~user).sum())
    if n_missing:
        gone = [run_ids[i] for i in np.flatnonzero(missing & ~user)]
        warnings.append(f"{n_missing} run(s) have no result for {response} and were left out: {format_ids(gone)}.")
    if user.any():
        warnings.append(f"Run(s) {format_ids([d['run'] for d in excluded if d['reason'] == 'excluded by user'])} "
                        "excluded by the user.")
    for c, blank in unlabelled.items():
        if blank.any():
            warnings.append(f"{int(blank.sum())} run(s) with a result for {response} have no '{c}' and were left out: "
                            f"{format_ids([run_ids[i] for i in np.flatnonzero(blank)])}. Fill in '{c}' to use them.")
    warnings += _range_warnings(study, U)
    groups = _random_groups(runs, random_cols, used)
    bcol = _block_column(study, runs, block_col)
    blocks, labels = None, []
    if bcol is not None:
        raw = runs.loc[used, bcol]
        if raw.isna().any():
            i = int(np.flatnonzero(raw.isna().to_numpy())[0])
            raise ModelError(f"Run {run_ids[int(np.flatnonzero(used)[i])]} has no entry in the block "
                             f"column '{bcol}': give every run its block.")
        text = raw.map(block_text)
        labels = sorted(text.unique(), key=_natural)
        if len(labels) > 1:
            blocks = text.map({lv: i for i, lv in enumerate(labels)}).to_numpy(dtype=int)
        else:
            labels = []
    return _Data(U, y_all[used], [run_ids[i] for i in np.flatnonzero(used)], blocks, labels,
                 bcol if blocks is not None else None, excluded, warnings, groups)


def _random_groups(runs: pd.DataFrame, columns: list[str], used: np.ndarray) -> dict[str, list[str]]:
    """Labels per used run of each random-effect column; a subplot's label is prefixed by its whole plot's
    (subplots are nested in whole plots even when numbered 1, 2 in each)."""
    out = {c: [block_text(v) for v in runs.loc[used, c]] for c in columns}
    if SUBPLOT in out and WHOLE_PLOT in out:
        out[SUBPLOT] = [f"{w}/{s}" for w, s in zip(out[WHOLE_PLOT], out[SUBPLOT])]
    return out


def code_settings(study: Study, frame: pd.DataFrame) -> np.ndarray:
    """doe.model.coded_array with a fast path for clean sheets (coded_array words the errors)."""
    try:
        out = np.empty((len(frame), len(study.factors)))
        for j, f in enumerate(study.factors):
            values = frame[f.name].tolist()
            if f.is_categorical:
                index = {str(v).strip().lower(): i for i, v in enumerate(f.levels)}
                out[:, j] = [index[str(v).strip().lower()] for v in values]
            else:
                x = np.asarray(values, dtype=float)
                if not np.all(np.isfinite(x)):
                    raise ValueError
                out[:, j] = (x - f.center) / f.half_range
        return out
    except (KeyError, ValueError, TypeError):
        return coded_array(study, frame)


def _numeric_response(col: pd.Series, run_ids: list[Any], response: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(col):
        raise ModelError(f"Column '{response}' holds true/false values; enter results as numbers.")
    if pd.api.types.is_numeric_dtype(col):
        y = col.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = col.astype(object)
        blank = values.map(lambda v: v is None or (isinstance(v, float) and math.isnan(v))
                           or (isinstance(v, str) and v.strip().lower() in _MISSING_MARKS))
        cleaned = values.map(lambda v: v.strip() if isinstance(v, str) else v).where(~blank, np.nan)
        num = pd.to_numeric(cleaned, errors="coerce")
        bad = (~blank & num.isna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(
                f"Run {run_ids[i]} (row {i + 1}), column '{response}': '{values.iloc[i]}' is not a "
                "number. Enter results as plain numbers (no units or text); leave the cell empty "
                "when there is no result."
            )
        y = num.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(y)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise ModelError(f"Run {run_ids[i]}, column '{response}': the result is infinite; enter a finite number.")
    return y


def _block_column(study: Study, runs: pd.DataFrame, block_col: str | None) -> str | None:
    if block_col is not None:
        if block_col not in runs.columns:
            raise ModelError(f"The run sheet has no block column '{block_col}'."
                             f"{did_you_mean(block_col, [str(c) for c in runs.columns])}")
        return block_col
    for name in (study.blocks, "Block"):
        if name and name in runs.columns:
            return name
    return None


def block_text(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def _natural(label: str) -> tuple[Any, ...]:
    try:
        return (0, float(label), label)
    except ValueError:
        m = re.fullmatch(r"(.*?)(\d+)", label)
        return (1, m.group(1), int(m.group(2))) if m else (1, label, 0)


def _range_warnings(study: Study, U: np.ndarray) -> list[str]:
    out = []
    for j, f in enumerate(study.factors):
        if f.is_categorical:
            continue
        col = U[:, j]
        if np.any(np.abs(col) > 1 + 1e-9):
            lo, hi = f.to_actual(col.min()), f.to_actual(col.max())
            out.append(
                f"{f.name} runs from {fmt_sig(float(lo))} to {fmt_sig(float(hi))} {f.units}".rstrip()
                + f", beyond the study range {fmt_sig(f.low)} to {fmt_sig(f.high)} (coded beyond -1/+1, "
                "e.g. axial points); that is allowed, but predictions outside the range are extrapolation."
            )
    return out


def as_terms(study: Study, model: Any) -> list[Term]:
    if isinstance(model, (list, tuple)) and all(isinstance(t, Term) for t in model):
        for t in model:
            for f in t.factors:
                study.factor(f)
        return list(model)
    if isinstance(model, str) and model.strip().lower() in ("mean", "intercept", "1", "intercept only"):
        return []
    return parse_model(study, model)



def complete_settings(study: Study, terms: list[Term], frame: pd.DataFrame) -> pd.DataFrame:
    """Settings with the columns of factors the model's ``terms`` do not use filled in (at the centre, or
    the first level): they do not change the prediction, and model rows need every factor."""
    if not isinstance(frame, pd.DataFrame):
        raise ModelError("Settings to predict at must be a table with one column per factor.")
    used = {f for t in terms for f in t.factors}
    missing = [f for f in study.factor_names if f not in frame.columns]
    needed = [f for f in missing if f in used]
    if needed:
        raise ModelError(f"Give settings for {quoted_list(needed)} to predict: the model uses "
                         f"{'it' if len(needed) == 1 else 'them'}.")
    if not missing:
        return frame
    out = frame.copy()
    for f in missing:
        fac = study.factor(f)
        out[f] = fac.levels[0] if fac.is_categorical else fac.center
    return out




def response_units(study: Study, response: str) -> str:
    return next((r.units for r in study.responses if r.name == response), "")



def format_ids(ids: list[Any]) -> str:
    shown = ", ".join(str(i) for i in ids[:12])
    return shown + (f" and {len(ids) - 12} more" if len(ids) > 12 else "")


def _id_range(ids: list[Any]) -> str:
    return f"{ids[0]} to {ids[-1]}" if ids else "none"
