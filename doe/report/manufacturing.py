"""The report's continued-process-verification section: lots, control charts, capability, the design space.

What the Manufacturing page shows, laid out for review (ICH Q10; FDA process validation stage 3): the lots
(their data version and checksum), an individuals / moving-range chart of every CQA with the run rules that
fired, each CQA's capability with confidence intervals and a normal tolerance interval, and every lot against
the saved design-space decision (its PARs/NOR and the predicted probability at the lot's actual settings).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from doe.errors import DoeError
from doe.present import format_number, format_percent


@dataclass
class LotsInputs:
    """What the section reports: the lots table (one row per lot, in time order), its data version and hash."""

    lots: pd.DataFrame
    version: int | None = None
    content_hash: str = ""


def _index(iv: Any) -> str:
    """A capability index to 2 decimals, with its interval when it has one; blank when not defined."""
    value = getattr(iv, "value", iv)
    if value is None:
        return ""
    low, high = getattr(iv, "ci_low", None), getattr(iv, "ci_high", None)
    return f"{value:.2f}" + ("" if low is None or high is None else f" ({low:.2f} to {high:.2f})")


def _percent(value: float | None) -> str:
    """A share of lots in %: '< 0.001' for a tiny non-zero share, else 3 significant digits."""
    return format_percent(value).removesuffix(" %")


def _interval(ti: Any) -> str:
    """A tolerance interval: 'a to b', or '>= a' / '<= b' when one-sided."""
    if ti is None:
        return ""
    if ti.low is not None and ti.high is not None:
        return f"{format_number(ti.low)} to {format_number(ti.high)}"
    return f">= {format_number(ti.low)}" if ti.low is not None else f"<= {format_number(ti.high)}"


def capability_frame(study: Any, lots: pd.DataFrame, *, space: Any = None,
                     decision: Any = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per CQA with spec limits and results: lots, Cp, Cpk (with 95 % CIs), Ppk, % out (expected,
    observed) and the 99 %/95 % tolerance interval; and the notes of CQAs left out. With a design space and
    its decision, the Ppk the fitted models predict at the decision's set point (with its set-point
    variation: :func:`doe.lots.predicted_capability`) stands beside the observed one."""
    from doe.capability import capability
    from doe.lots import predicted_capability

    rows, notes = [], []
    for r in study.responses:
        if r.name not in lots or (r.lower is None and r.upper is None):
            continue
        values = pd.to_numeric(lots[r.name], errors="coerce").dropna()
        if len(values) < 2:
            notes.append(f"{r.name}: fewer than 2 lots measured, no capability.")
            continue
        try:
            c = capability(values.tolist(), lower=r.lower, upper=r.upper, response=r.name)
        except DoeError as exc:
            notes.append(f"{r.name}: {exc}")
            continue
        ti = c.tolerance_interval

        predicted: Any = None
        if space is not None and decision is not None:
            try:
                predicted = predicted_capability(space, study, decision.set_point, decision.setpoint_sd,
                                                 r.name)["ppk"]
            except DoeError as exc:
                notes.append(f"{r.name}: no predicted Ppk ({exc})")
        row = {"CQA": f"{r.name} ({r.units})" if r.units else r.name, "Spec": r.spec_text(), "Lots": c.n,
               "Cp (95 % CI)": _index(c.cp), "Cpk (95 % CI)": _index(c.cpk), "Ppk observed": _index(c.ppk)}
        if space is not None and decision is not None:
            row["Ppk predicted at the set point"] = _index(predicted)
        rows.append({**row,
                     "Expected out of spec (%)": _percent(c.expected_out_percent),
                     "Observed out of spec (%)": _percent(c.observed_out_percent),
                     "99 % of lots within (95 % confidence)": _interval(ti)})
    return pd.DataFrame(rows), notes


def cpv_section(number: int, study: Any, inputs: LotsInputs | None, *, space: Any = None, decision: Any = None) -> Any:
    """The numbered section "Continued process verification" (a :class:`doe.report.content.Section`)."""
    from doe.present import present
    from doe.report.content import Figure, Notice, Paragraph, Section, Table

    sec = Section(f"{number}. Continued process verification: lots, control charts, capability")
    if inputs is None or not len(inputs.lots):
        return sec.add(Paragraph("No manufacturing lots are recorded for this study, so control charts, capability "
                                 "and the lots' place in the design space are not reported."))
    from doe.control_charts import control_chart
    from doe.plots.control import control_figure

    lots = inputs.lots
    digest = inputs.content_hash or hashlib.sha256(lots.to_csv(index=False).encode("utf-8")).hexdigest()
    where = f"lot data version {inputs.version}, content hash {digest}" if inputs.version else f"SHA-256 {digest}"
    sec.add(Paragraph(f"{len(lots)} lots ({where}), in time order."))
    if "Notes" in lots and lots["Notes"].astype(str).str.contains("simulated", case=False).any():
        sec.add(Notice("These lots are SIMULATED (see their Notes), not measured."))
    judged = space is not None and decision is not None
    table, notes = capability_frame(study, lots, space=space if judged else None, decision=decision)
    if len(table):
        sec.add(Table(present(table), "Capability of each CQA with spec limits: within-lot-series sigma from the "
                                      "moving range (Cp, Cpk; qcc's processCapability intervals), overall SD "
                                      "(Ppk observed), and a normal tolerance interval"
                      + ("; beside the observed Ppk, the Ppk the fitted models predict for lots run at the "
                         "decision's set point with its set-point variation (Student-t predictive draws)."
                         if judged else ".")))
    for note in notes:
        sec.add(Paragraph(note))
    labels = lots["Lot"].astype(str).tolist() if "Lot" in lots else None
    for r in study.responses:
        if r.name not in lots:
            continue
        values = pd.to_numeric(lots[r.name], errors="coerce")
        if values.notna().sum() < 3 or values.isna().any():
            continue
        try:
            charts = control_chart(values.tolist(), "imr", labels=labels)
        except DoeError:
            continue
        flagged = sorted({v["lot"] for c in charts.charts.values() for v in c.violations})
        sec.add(Figure(control_figure(charts, units=r.units or "", response=r.name),
                       f"{r.name}: individuals and moving-range chart (phase I); "
                       + (f"signals at lots {', '.join(flagged)}." if flagged else "no run rule fired."), 1000, 520))
    if space is not None and decision is not None:
        from doe.lots import check_lots, lots_frame

        try:
            checks = check_lots(space, decision, lots)
        except DoeError as exc:
            return sec.add(Notice(f"The lots cannot be checked against the design space: {exc}"))
        sec.add(Table(present(lots_frame(checks)), f"Every lot against the design-space decision (threshold "
                                                   f"{decision.threshold:g}): PARs, NOR and the predicted "
                                                   "probability at the lot's actual settings."))
        figure = lots_map(study, space, decision, checks)
        if figure is not None:
            sec.add(figure)
    else:
        sec.add(Paragraph("No design-space decision is saved, so the lots are not checked against the design space."))
    return sec


def lots_map(study: Any, space: Any, decision: Any, checks: Any) -> Any:
    """The lots on the probability map of the first two continuous factors, the others at the decision's set
    point (a report Figure), or None when the study has fewer than two continuous factors."""
    from doe.plots.manufacturing import lots_on_map_figure
    from doe.report.content import Figure
    from doe.space import space_grid

    numeric = [f.name for f in study.factors if not f.is_categorical]
    if len(numeric) < 2:
        return None
    x, y = numeric[:2]
    fixed = {k: v for k, v in decision.set_point.items() if k not in (x, y)}
    grid = space_grid(space.pm, x, y, fixed, threshold=decision.threshold,
                      setpoint_sd=dict(decision.setpoint_sd) or None, draws=space.draws, seed=space.seed)
    outside = [c.lot for c in checks if not c.in_space]
    return Figure(lots_on_map_figure(grid, checks, x, y, study=study, set_point=decision.set_point),
                  f"The lots on the probability map of {x} by {y} (the other factors at the set point): green inside "
                  "the design space, red outside" + (f" ({', '.join(outside)})." if outside else "."), 1000, 620)
