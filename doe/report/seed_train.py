"""The report's seed-train section: growth kinetics per vessel family, equivalence between scales, the plan.

What the Seed train, Scale comparison and Scale planner pages show, laid out for review: the recorded
passages (their data version and checksum), the kinetics table per vessel family with how each interval
was computed, every saved equivalence test with its conclusion and the TOST picture, and the seed-train
plan computed from the measured growth (conservative: the lower 95 % bound of each family's mean fold
expansion), with its warnings and the predicted against the recorded cells per stage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from doe.errors import DoeError


@dataclass
class SeedTrainInputs:
    """What the seed-train section reports.

    ``passages`` is the canonical passage sheet (doe.growth.PASSAGE_COLUMNS); ``equivalence`` the saved
    equivalence results (``EquivalenceResult.to_json()``, optionally with ``created_at``/``created_by``);
    ``plan`` a :class:`doe.scale.PlanFile` (default: the bundled example plan with its fold expansion and days
    per passage taken from the passages).
    """

    passages: pd.DataFrame
    passage_version: int | None = None
    passage_hash: str = ""
    equivalence: list[dict[str, Any]] = field(default_factory=list)
    plan: Any = None
    plan_name: str = ""


def passages_digest(passages: pd.DataFrame) -> str:
    """SHA-256 of the passage sheet as CSV (the checksum the section prints when no stored hash is given)."""
    return hashlib.sha256(passages.to_csv(index=False).encode("utf-8")).hexdigest()


def measured_plan(passages: pd.DataFrame, plan: Any = None, equivalence: Sequence[Mapping[str, Any]] | None = None,
                  *, catalogue: Any = None, conservative: bool = True) -> dict[str, Any]:
    """The seed-train plan with fold expansion and days per passage of each vessel family from ``passages``.

    Returns ``{"summary": GrowthSummary, "measured": {family: FamilyGrowth}, "plan": run_plan result,
    "recorded": {strategy: DataFrame}}``. ``plan`` defaults to the bundled example plan
    (data/example_plan.yaml); its growth numbers become ``from_passages``.
    """
    from doe.growth import growth_summary
    from doe.scale import EXAMPLE_PLAN, PlanFile, read_catalogue, recorded_vs_predicted, run_plan
    from doe.scale import measured_growth as family_growth

    vessels = catalogue if catalogue is not None else read_catalogue()
    summary = growth_summary(passages, vessels)
    measured = family_growth(summary.to_json()["groups"], conservative=conservative)
    base = plan if plan is not None else PlanFile.load(EXAMPLE_PLAN)
    supply = dict(base.supply)
    supply.update({"fold_expansion_per_passage": "from_passages", "days_per_passage": "from_passages",
                   "harvest_density_cells_per_cm2": None})  # each family: seeding density x its own fold
    chosen = PlanFile(base.demand, supply, list(base.strategies), base.name, dict(base.set_point), base.min_fill,
                      dict(base.vessels))
    result = run_plan(chosen, vessels, None, measured=measured, equivalence=list(equivalence or []))
    recorded = {p.strategy: recorded_vs_predicted(p, summary.passages) for p in result["plans"]}
    return {"summary": summary, "measured": measured, "plan": result, "recorded": recorded}


def equivalence_frame(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per saved equivalence test, with human labels: what was compared, margins, estimate, interval,
    p-value and the verdict."""
    rows = []
    for r in results:
        ratio = bool(r.get("log"))
        ci = r.get("ci") or [None, None]
        margin = r.get("margin") or [None, None]
        rows.append({
            "CQA": r.get("response"), "Reference": r.get("reference"), "Test": r.get("test"),
            "Compared": "ratio of geometric means" if ratio else "difference of means",
            "Paired": "by " + str(r.get("id") or "donor") if r.get("paired") else "no",
            "Margin low": margin[0], "Margin high": margin[1], "Estimate": r.get("estimate"),
            f"{100 * (1 - 2 * float(r.get('alpha', 0.05))):g} % CI low": ci[0],
            f"{100 * (1 - 2 * float(r.get('alpha', 0.05))):g} % CI high": ci[1],
            "TOST p": r.get("p"), "Equivalent": "yes" if r.get("equivalent") else "no",
            "Saved by": r.get("created_by", ""), "Saved at (UTC)": r.get("created_at", "")})
    return pd.DataFrame(rows)


def seed_train_section(number: int, inputs: SeedTrainInputs | None, *, catalogue: Any = None) -> Any:
    """The numbered report section "Seed train" (a :class:`doe.report.content.Section`)."""
    from doe.present import present as _formatted
    from doe.report.content import Figure, Notice, Paragraph, Section, Table

    sec = Section(f"{number}. Seed train: growth per vessel, equivalence between scales, plan")
    if inputs is None or not len(inputs.passages):
        return sec.add(Paragraph("No seed-train passages are recorded for this study, so growth per vessel family, "
                                 "equivalence between scales and a plan from measured growth are not reported. "
                                 "Record passages on the Seed train page or with 'python -m doe growth'."))
    from doe.plots.equivalence import equivalence_figure
    from doe.plots.scale import plan_figure, recorded_figure
    from doe.plots.seed_train import kinetics_figure, pdl_figure
    from doe.scale import plan_frame, supply_frame

    passages = inputs.passages
    donors = passages["Donor"].astype(str).nunique()
    where = (f"passage data version {inputs.passage_version}, content hash {inputs.passage_hash}"
             if inputs.passage_version is not None else f"SHA-256 {inputs.passage_hash or passages_digest(passages)}")
    sec.add(Paragraph(f"{len(passages)} passages of {donors} donor{'s' if donors != 1 else ''} in "
                      f"{passages['Vessel'].astype(str).nunique()} vessel types ({where}). Per passage: fold "
                      "expansion = harvested / seeded cells, population doublings PD = log2(fold expansion), "
                      "doubling time = hours / PD, harvest density = harvested cells / culture area; per donor the "
                      "cumulative population doubling level adds the PD of its passages in order."))
    if "Notes" in passages and passages["Notes"].astype(str).str.contains("simulated", case=False).any():
        sec.add(Notice("These passages are SIMULATED (see their Notes), not measured."))
    try:
        measured = measured_plan(passages, inputs.plan, inputs.equivalence, catalogue=catalogue)
    except DoeError as exc:
        return sec.add(Notice(f"The seed train cannot be summarised: {exc}"))
    summary = measured["summary"]
    sec.add(Table(_formatted(summary.groups), "Growth kinetics per vessel family: mean and 95 % confidence interval "
                  "of the mean (mixed model with the donor as a random effect when several donors ran the family, "
                  "else the t interval)."))
    for note in summary.notes:
        sec.add(Paragraph(note))
    sec.add(Figure(kinetics_figure(summary), "Fold expansion of every passage by vessel family, coloured by donor, "
                   "with the family's mean and 95 % confidence interval.", 1000, 520))
    sec.add(Figure(pdl_figure(summary), "Cumulative population doubling level of each donor by passage.", 1000, 480))

    sub = "Equivalence between scales (two one-sided tests)"
    if inputs.equivalence:
        sec.add(Paragraph(f"{sub}: each test shows equivalence when its (1 - 2 alpha) confidence interval lies inside "
                          "the margins set before the test (Schuirmann's TOST)."))
        sec.add(Table(_formatted(equivalence_frame(inputs.equivalence)), "Every saved equivalence test."))
        from doe.equivalence import EquivalenceResult

        sec.add(Figure(equivalence_figure([EquivalenceResult.from_json(r) for r in inputs.equivalence]),
                       "Confidence intervals against the equivalence margins.", 1000,
                       220 + 70 * len(inputs.equivalence)))
    else:
        sec.add(Paragraph(f"{sub}: none saved. A change of vessel family in the plan below has no equivalence "
                          "evidence."))

    result = measured["plan"]
    out = result["json"]
    sec.add(Paragraph(f"Seed-train plan '{out.get('plan_name') or 'example'}': {out['cells_needed']:.3g} cells per "
                      f"batch, fold expansion and days per passage of each vessel family from the passages "
                      "(conservative: the lower 95 % bound of the mean fold expansion)."))
    sec.add(Table(_formatted(supply_frame(out["supply"])), "Growth numbers the plan used, and where each came from."))
    for plan in result["plans"]:
        stages = plan_frame(plan).drop(columns=["Strategy", "Growth numbers from"], errors="ignore")
        sec.add(Table(_formatted(stages), f"Plan, {plan.strategy}: stages (where each growth number came from: the "
                                          "table of growth numbers above)."))
        for w in plan.warnings:
            sec.add(Notice(f"{plan.strategy}: {w}"))
        sec.add(Table(_formatted(measured["recorded"][plan.strategy]),
                      f"Plan, {plan.strategy}: predicted against recorded cells per vessel."))
    sec.add(Figure(plan_figure(result["plans"]), "Cells against day for each strategy.", 1000, 560))
    sec.add(Figure(recorded_figure(result["plans"], [measured["recorded"][p.strategy] for p in result["plans"]]),
                   "Predicted and recorded cells per vessel at each stage.", 1000, 520))
    return sec
