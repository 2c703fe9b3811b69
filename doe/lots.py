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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from doe.errors import DoeError, quoted_list


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
