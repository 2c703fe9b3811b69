"""Seed-train scale planner: from a dose to the vessels, stage by stage, back to the cell-bank vial.

Demand gives the cells a batch needs; supply says how cells grow at the chosen
set point (seeding density, fold expansion per passage, harvest density, days
per passage) and what the cell bank allows (passages, population doublings).
:func:`plan_seed_train` works backwards from the final harvest to the
master-cell-bank vial for one strategy:

- **scale-out**: more multilayer vessels (catalogue ``mode`` 'scale-out':
  CellSTACK chambers, HYPERStack vessels);
- **scale-up**: bigger vessels (``mode`` 'scale-up': CellCube modules);

both start with laboratory vessels (``mode`` 'lab': T-flasks, HYPERFlask).

Rules (the same for every stage, stated once here):

0. A stage's growth numbers are those of its vessel family when passages in
   that family were recorded (``Supply.by_family``, from
   :func:`measured_growth`: fold expansion ``f`` and days per passage of the
   family), else the supply's single numbers. Each stage says which
   (``Stage.source``).
1. Every vessel of a stage is seeded at the seeding density ``s`` and
   harvested at the stage's harvest density ``h``, so a stage of ``n``
   vessels of area ``a`` takes in ``n a s_eff`` cells and gives ``n a h``
   cells, with ``s_eff = h / f`` (the set point the models describe is kept;
   surplus cells are discarded, and reported). For a measured family
   ``h = s f`` (so ``s_eff = s``); otherwise ``h`` is the supply's harvest
   density and ``f`` its fold expansion.
2. The area a stage needs in a vessel is the cells the next stage (or the
   batch) needs divided by that vessel's harvest density.
3. The vessel: the strategy's production vessels when the area would fill
   at least ``min_fill`` of the smallest of them, else laboratory vessels.
   Of those, the one needing the fewest vessels with the area used at least
   ``min_fill`` of the area provided; ties go to the least total area. When no
   vessel reaches ``min_fill``, the single smallest vessel.
4. Going backwards stops at the first stage whose seeding cells the vial
   (``starting_cells``) can provide. Population doublings of a passage are
   log2 of its fold expansion (PD = log2(N_harvest / N_seeded)); the
   cumulative level adds the vial's own doublings. Days add up stage by
   stage, each stage lasting its own days per passage.
5. With equivalence evidence (``plan_seed_train(..., equivalence=[...])``),
   every step between stages of different vessel families needs a result
   that shows the two families (or vessels of them) equivalent; otherwise
   the plan warns.

Numbers marked (inferred) in ``data/vessels.csv`` are assumptions to change.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, overload

import pandas as pd

from doe._format import fmt_sig
from doe.errors import DoeError, did_you_mean, quoted_list

CATALOGUE = Path(__file__).resolve().parent.parent / "data" / "vessels.csv"
EXAMPLE_PLAN = Path(__file__).resolve().parent.parent / "data" / "example_plan.yaml"
MODES = ("lab", "scale-out", "scale-up")
STRATEGIES = ("scale-out", "scale-up")
VESSEL_COLUMNS = ("name", "family", "mode", "area_cm2", "layers", "working_volume_ml", "footprint_cm2",
                  "open_manipulations_per_passage", "max_practical_count", "source")
_REQUIRED_COLUMNS = ("name", "family", "mode", "area_cm2", "open_manipulations_per_passage")
MAX_STAGES = 40


class ScaleError(DoeError):
    """A vessel catalogue, plan file or plan input is invalid."""


# -- data --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Vessel:
    """One culture vessel of the catalogue (areas nominal, in cm^2)."""

    name: str
    family: str
    mode: str
    area_cm2: float
    open_manipulations_per_passage: float
    layers: int | None = None
    working_volume_ml: float | None = None
    footprint_cm2: float | None = None
    max_practical_count: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Demand:
    """What one batch must deliver.

    ``overage`` is a fraction (0.2 = 20 % extra for QC samples and fill loss).
    """

    dose_cells_per_kg: float
    patient_weight_kg: float
    doses_per_patient: float = 1
    patients_per_batch: float = 1
    overage: float = 0.0


@dataclass(frozen=True)
class FamilyGrowth:
    """Growth of one vessel family from its recorded passages, as the planner uses it.

    ``fold_expansion`` and ``days_per_passage`` are the numbers used;
    ``source`` says where the fold expansion came from and ``days_source``
    where the days per passage came from. ``fold_mean``, ``fold_ci_low``,
    ``doubling_time_h`` and ``hours_mean`` are the recorded summary (means;
    ``fold_ci_low`` the lower 95 % bound of the mean fold expansion, None
    for one passage).
    """

    family: str
    fold_expansion: float
    days_per_passage: float
    source: str
    n: int
    donors: int
    fold_mean: float
    fold_ci_low: float | None
    doubling_time_h: float | None
    hours_mean: float
    days_source: str = ""

    @property
    def doublings_per_passage(self) -> float:
        """Population doublings in one passage: log2 of the fold expansion used."""
        return math.log2(self.fold_expansion)

    def describe(self) -> dict[str, Any]:
        """The numbers used and where they came from, for JSON and display."""
        return {"fold_expansion": self.fold_expansion, "days_per_passage": self.days_per_passage,
                "doubling_time_h": self.doubling_time_h, "n": self.n, "donors": self.donors,
                "source": self.source, "days_source": self.days_source}


def _summary_number(part: Any, key: str, what: str) -> float | None:
    """``part[key]`` of a growth summary as a finite float, None when blank."""
    if not isinstance(part, Mapping):
        raise ScaleError(f"{what} must be a mapping with keys mean, ci_low, ci_high and sd "
                         "(the 'groups' of the growth summary, python -m doe growth).")
    value = part.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ScaleError(f"{what}: {key} must be a number; got {value!r}.")
    if not math.isfinite(value):
        raise ScaleError(f"{what}: {key} must be a finite number; got {value!r}.")
    return float(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def measured_growth(groups: Mapping[str, Mapping[str, Any]], *,
                    conservative: bool = True) -> dict[str, FamilyGrowth]:
    """Fold expansion and days per passage of each vessel family from its recorded passages.

    Parameters
    ----------
    groups : mapping
        The ``groups`` part of the growth summary of recorded passages, keyed
        by vessel family (the catalogue's ``family`` column): per family
        ``n`` (passages), ``donors``, ``method`` and ``fold_expansion``,
        ``doubling_time_h``, ``hours`` and ``harvest_density`` as
        ``{mean, ci_low, ci_high, sd}``.
    conservative : bool
        Use the lower 95 % bound of the mean fold expansion (``ci_low``)
        instead of the mean. With one passage there is no bound: the mean is
        used and the source says so.

    Returns
    -------
    dict
        :class:`FamilyGrowth` by family; days per passage = mean hours / 24.
    """
    if not isinstance(groups, Mapping):
        raise ScaleError("The recorded growth must be a mapping of vessel family to its summary "
                         "(the 'groups' of the growth summary).")
    out: dict[str, FamilyGrowth] = {}
    for family, g in groups.items():
        family = str(family)
        what = f"Recorded passages of {family}"
        if not isinstance(g, Mapping):
            raise ScaleError(f"{what}: the summary must be a mapping with n, donors, fold_expansion and hours.")
        fold = g.get("fold_expansion")
        mean = _summary_number(fold, "mean", f"{what}: fold_expansion")
        ci_low = _summary_number(fold, "ci_low", f"{what}: fold_expansion")
        hours = _summary_number(g.get("hours"), "mean", f"{what}: hours")
        doubling = g.get("doubling_time_h")
        dt = _summary_number(doubling, "mean", f"{what}: doubling_time_h") if doubling is not None else None
        if mean is None:
            raise ScaleError(f"{what}: no mean fold expansion; record harvested and seeded cells of its passages.")
        if hours is None or hours <= 0:
            raise ScaleError(f"{what}: no mean passage length (hours above 0); record the hours of its passages.")
        n = int(g.get("n") or 0)
        donors = int(g.get("donors") or 0)
        method = str(g.get("method") or "").strip()
        head = f"recorded passages: {family}, {_plural(n, 'passage')}, {_plural(donors, 'donor')}"
        bound = conservative and ci_low is not None
        if bound:
            used, how = cast(float, ci_low), "lower 95 % bound of the mean fold expansion" + (
                f" ({method})" if method else "")
        elif conservative and n <= 1:
            used, how = mean, "mean of 1 passage - no interval"
        elif conservative:
            used, how = mean, "mean fold expansion (no interval could be computed)"
        else:
            used, how = mean, "mean fold expansion"
        if used <= 1:
            raise ScaleError(f"{what}: the fold expansion used ({how}) is {used:.3g}, not above 1, so the "
                             f"cells of {family} do not grow in a passage: check its records"
                             + (", or plan with the mean (conservative off)." if bound else "."))
        out[family] = FamilyGrowth(
            family=family, fold_expansion=used, days_per_passage=hours / 24, source=f"{head}; {how}",
            n=n, donors=donors, fold_mean=mean, fold_ci_low=ci_low, doubling_time_h=dt, hours_mean=hours,
            days_source=f"{head}; mean passage length {hours:.4g} h / 24")
    return out


@dataclass(frozen=True)
class Supply:
    """How cells grow at the set point, and what the cell bank allows.

    ``harvest_density_cells_per_cm2`` None means seeding density x fold
    expansion. ``sources`` says where each number came from (plan, model, ...).
    ``by_family`` holds the growth of vessel families with recorded passages
    (:func:`measured_growth`); stages in those families use it instead of
    the single numbers (module rule 0).
    """

    seeding_density_cells_per_cm2: float
    fold_expansion_per_passage: float
    days_per_passage: float
    starting_cells: float
    harvest_density_cells_per_cm2: float | None = None
    max_passages: int | None = None
    max_population_doublings: float | None = None
    mcb_population_doublings: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)
    by_family: Mapping[str, FamilyGrowth] = field(default_factory=dict)

    @property
    def harvest_density(self) -> float:
        """Cells per cm^2 at harvest: the given density, else seeding density x fold expansion."""
        if self.harvest_density_cells_per_cm2 is not None:
            return self.harvest_density_cells_per_cm2
        return self.seeding_density_cells_per_cm2 * self.fold_expansion_per_passage

    @property
    def doublings_per_passage(self) -> float:
        """Population doublings in one passage: log2 of the fold expansion."""
        return math.log2(self.fold_expansion_per_passage)

    def describe(self) -> dict[str, Any]:
        """Values with their source, for JSON and display."""
        src = dict(self.sources)
        src.setdefault("harvest_density_cells_per_cm2", "plan" if self.harvest_density_cells_per_cm2
                       is not None else "seeding density x fold expansion")
        values = {"seeding_density_cells_per_cm2": self.seeding_density_cells_per_cm2,
                  "fold_expansion_per_passage": self.fold_expansion_per_passage,
                  "harvest_density_cells_per_cm2": self.harvest_density,
                  "population_doublings_per_passage": self.doublings_per_passage,
                  "days_per_passage": self.days_per_passage, "starting_cells": self.starting_cells,
                  "max_passages": self.max_passages, "max_population_doublings": self.max_population_doublings,
                  "mcb_population_doublings": self.mcb_population_doublings}
        src["population_doublings_per_passage"] = "log2(fold expansion)"
        out: dict[str, Any] = {k: {"value": v, "source": src.get(k, "plan")} for k, v in values.items()}
        out["by_family"] = {"value": {f: g.describe() for f, g in self.by_family.items()},
                            "source": "recorded passages" if self.by_family else "no passage records used"}
        return out

    def growth_for(self, family: str) -> tuple[float, float, float, str]:
        """Fold expansion, harvest density, days per passage and source of a stage in ``family`` (rule 0)."""
        g = self.by_family.get(family)
        if g is not None:
            return (g.fold_expansion, self.seeding_density_cells_per_cm2 * g.fold_expansion, g.days_per_passage,
                    g.source)
        return (self.fold_expansion_per_passage, self.harvest_density, self.days_per_passage,
                self.sources.get("fold_expansion_per_passage", "plan"))


#: The growth numbers of a plan (:meth:`Supply.describe` keys) as a table shows them.
SUPPLY_LABELS: dict[str, str] = {
    "seeding_density_cells_per_cm2": "Seeding density (cells/cm²)",
    "fold_expansion_per_passage": "Fold expansion per passage (harvested / seeded)",
    "harvest_density_cells_per_cm2": "Harvest density (cells/cm²)",
    "population_doublings_per_passage": "Population doublings per passage",
    "days_per_passage": "Days per passage", "starting_cells": "Cells in the master-cell-bank vial",
    "max_passages": "Most passages allowed", "max_population_doublings": "Most cumulative population doublings",
    "mcb_population_doublings": "Population doublings of the vial before thaw",
}


def supply_frame(supply: dict[str, Any]) -> pd.DataFrame:
    """The growth numbers a plan used (the ``supply`` of its JSON), one row each: what, number, source.

    Families with recorded passages (``by_family``) get their own rows, e.g.
    "Fold expansion per passage - CellSTACK", with the records they came from.
    """
    rows = [{"Growth number": SUPPLY_LABELS.get(k, k.replace("_", " ")), "Number": v["value"], "Source": v["source"]}
            for k, v in supply.items() if not isinstance(v["value"], dict)]
    by_family = supply.get("by_family", {}).get("value", {})
    for family, g in by_family.items():
        rows.append({"Growth number": f"Fold expansion per passage - {family}", "Number": g["fold_expansion"],
                     "Source": g["source"]})
        rows.append({"Growth number": f"Days per passage - {family}", "Number": g["days_per_passage"],
                     "Source": g.get("days_source") or g["source"]})
        if g.get("doubling_time_h") is not None:
            rows.append({"Growth number": f"Doubling time (h) - {family}", "Number": g["doubling_time_h"],
                         "Source": f"recorded passages: {family}, mean"})
    return pd.DataFrame(rows, columns=["Growth number", "Number", "Source"])


@dataclass(frozen=True)
class Stage:
    """One passage of the seed train (cells in actual counts, days from the vial thaw).

    ``fold_expansion`` is the fold the stage was planned with (0 when a
    stage is built by hand without it) and ``source``
    where it came from (the recorded passages of its family, or the supply's
    number); ``evidence`` the equivalence results that back the step into
    this stage's vessel family ("" when none were checked or needed).
    """

    number: int
    vessel: str
    family: str
    vessels: int
    area_cm2: float
    fill: float
    cells_in: float
    cells_out: float
    cells_needed_out: float
    day_start: float
    day_end: float
    population_doublings: float
    cumulative_pdl: float
    open_manipulations: float
    footprint_cm2: float | None
    fold_expansion: float = 0.0
    source: str = ""
    evidence: str = ""


@dataclass
class ScalePlan:
    """A seed train for one strategy, with its totals and warnings."""

    strategy: str
    cells_needed: float
    stages: list[Stage]
    supply: Supply
    warnings: list[str] = field(default_factory=list)
    equivalence_checked: bool = False

    @property
    def final(self) -> Stage:
        """The last stage (the harvest)."""
        return self.stages[-1]

    @property
    def total_vessels(self) -> int:
        """Vessels over all stages."""
        return sum(s.vessels for s in self.stages)

    @property
    def open_manipulations(self) -> float:
        """Open manipulations over all stages."""
        return sum(s.open_manipulations for s in self.stages)

    @property
    def days(self) -> float:
        """Days from thawing the vial to the harvest (0 without stages)."""
        return self.stages[-1].day_end if self.stages else 0.0

    @property
    def cumulative_pdl(self) -> float:
        """Population doublings at harvest, counted from the master cell bank."""
        return self.stages[-1].cumulative_pdl if self.stages else self.supply.mcb_population_doublings

    @property
    def vial_cells_used(self) -> float:
        """Cells seeded into the first stage (0 without stages)."""
        return self.stages[0].cells_in if self.stages else 0.0

    @property
    def footprint_cm2(self) -> float | None:
        """Largest stage footprint (vessels in the incubator at once), None when any is unknown."""
        prints = [s.footprint_cm2 for s in self.stages]
        known = [p for p in prints if p is not None]
        return None if not prints or len(known) < len(prints) else max(known)

    def totals(self) -> dict[str, Any]:
        """The plan's totals (stages, vessels, manipulations, days, doublings, cells), for JSON and display."""
        return {"stages": len(self.stages), "vessels": self.total_vessels,
                "final_stage_vessels": self.final.vessels if self.stages else 0,
                "final_stage_vessel": self.final.vessel if self.stages else None,
                "open_manipulations": self.open_manipulations, "days": self.days,
                "cumulative_pdl": self.cumulative_pdl, "cells_harvested": self.final.cells_out,
                "vial_cells_used": self.vial_cells_used, "footprint_cm2": self.footprint_cm2}

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready values: strategy, totals, every stage and the warnings."""
        return {"strategy": self.strategy, "totals": self.totals(),
                "stages": [asdict(s) for s in self.stages], "warnings": list(self.warnings)}


# -- arithmetic --------------------------------------------------------------------------------------
def cells_needed(demand: Demand) -> float:
    """Cells one batch needs: dose x weight x doses x patients x (1 + overage).

    >>> cells_needed(Demand(2e6, 70, 8, 1, 0.0))
    1120000000.0
    """
    return (demand.dose_cells_per_kg * demand.patient_weight_kg * demand.doses_per_patient
            * demand.patients_per_batch * (1 + demand.overage))


def area_needed(cells: float, harvest_density: float) -> float:
    """Culture area (cm^2) that yields ``cells`` at ``harvest_density`` cells/cm^2.

    >>> round(area_needed(1.12e9, 1.3e4))
    86154
    """
    if harvest_density <= 0:
        raise ScaleError(f"The harvest density must be above 0 cells/cm^2; got {harvest_density:g}.")
    return cells / harvest_density


def vessels_for(area: float, vessel: Vessel) -> int:
    """Vessels of one type to provide ``area`` cm^2 (rounded up; at least one).

    >>> vessels_for(86154, Vessel("CellCube-100", "CellCube", "scale-up", 85000, 1))
    2
    """
    return max(1, math.ceil(area / vessel.area_cm2 - 1e-9))


def _choose(area: float | Mapping[str, float], candidates: Sequence[Vessel], min_fill: float) -> Vessel:
    """Rule 3: fewest vessels with fill >= min_fill, ties to least area; else the smallest vessel.

    ``area`` is the area needed, one number or one per vessel name (each
    vessel's own harvest density, rule 2).
    """
    def need(v: Vessel) -> float:
        return area[v.name] if isinstance(area, Mapping) else area

    ok = [v for v in candidates if need(v) / (vessels_for(need(v), v) * v.area_cm2) >= min_fill - 1e-12]
    if not ok:
        return min(candidates, key=lambda v: v.area_cm2)
    return min(ok, key=lambda v: (vessels_for(need(v), v), vessels_for(need(v), v) * v.area_cm2, v.name))


def plan_seed_train(demand: Demand | float, supply: Supply, catalogue: Sequence[Vessel],
                    strategy: str = "scale-out", *, min_fill: float = 0.5,
                    equivalence: Sequence[Mapping[str, Any]] | None = None) -> ScalePlan:
    """The seed train of one strategy, worked backwards from the batch to the vial (module rules 0-5).

    Parameters
    ----------
    demand : Demand or float
        What the batch needs (or the number of cells directly).
    supply : Supply
        Growth at the set point (per vessel family where passages were
        recorded, ``supply.by_family``) and the cell-bank limits.
    catalogue : list of Vessel
        Vessels to choose from (``mode`` says which strategy may use them).
    strategy : {'scale-out', 'scale-up'}
    min_fill : float
        Least share of a stage's vessel area the stage must use (rule 3).
    equivalence : list of mapping, optional
        Equivalence results (``response``, ``group``, ``reference``, ``test``,
        ``equivalent``, ``ci``, ``margin``, ``log``; reference and test are
        vessel families or vessel names). None: not checked. Given (even
        empty): every change of vessel family between stages without a
        result showing equivalence is a warning (rule 5).
    """
    if strategy not in STRATEGIES:
        raise ScaleError(f"Unknown strategy '{strategy}'.{did_you_mean(strategy, STRATEGIES)} "
                         f"Strategies: {quoted_list(STRATEGIES)}.")
    if not 0 < min_fill <= 1:
        raise ScaleError(f"min_fill must be above 0 and at most 1; got {min_fill:g}.")
    _check_supply(supply)
    need = cells_needed(demand) if isinstance(demand, Demand) else float(demand)
    if need <= 0:
        raise ScaleError("The batch needs no cells: check the dose, weight, doses and patients.")
    production = [v for v in catalogue if v.mode == strategy]
    lab = [v for v in catalogue if v.mode == "lab"]
    if not production and not lab:
        raise ScaleError(f"The vessel catalogue has no '{strategy}' or 'lab' vessels.")
    growth = {v.family: supply.growth_for(v.family) for v in catalogue}
    backwards: list[tuple[Vessel, int, float]] = []
    required = need
    while True:
        areas = {v.name: area_needed(required, growth[v.family][1]) for v in catalogue}
        smallest = min(production, key=lambda v: v.area_cm2) if production else None
        group = (production if smallest is not None and areas[smallest.name] >= min_fill * smallest.area_cm2
                 else (lab or production))
        vessel = _choose(areas, group, min_fill)
        fold, h, _, _ = growth[vessel.family]
        s_eff = h / fold
        area = areas[vessel.name]
        n = vessels_for(area, vessel)
        backwards.append((vessel, n, required))
        required, before = n * vessel.area_cm2 * s_eff, required
        if required >= before and required > supply.starting_cells and n > 1:
            raise ScaleError(f"Filling {n} x {vessel.name} at {s_eff:,.0f} cells/cm^2 takes more cells than the "
                             f"stage must deliver (fold expansion {fold:.3g} x area "
                             f"used {area / (n * vessel.area_cm2):.0%} < 1), so no vial is ever enough: raise "
                             "the least vessel area used (min_fill) or the fold expansion.")
        if required >= before and required > supply.starting_cells:
            raise ScaleError(f"The vial's {supply.starting_cells:.3g} cells cannot seed one {vessel.name} "
                             f"({vessel.area_cm2:g} cm^2 at {s_eff:,.0f} cells/cm^2 needs {required:.3g} cells): "
                             "add a smaller vessel to the catalogue or start from more cells.")
        if required <= supply.starting_cells * (1 + 1e-9):
            break
        if len(backwards) >= MAX_STAGES:
            raise ScaleError(f"More than {MAX_STAGES} passages would be needed from {supply.starting_cells:.3g} "
                             f"vial cells to {need:.3g} cells: check the fold expansion and starting cells.")
    stages = []
    day, pdl = 0.0, supply.mcb_population_doublings
    for i, (vessel, n, needed_out) in enumerate(reversed(backwards)):
        fold, h, days, source = growth[vessel.family]
        area = n * vessel.area_cm2
        pd_step = math.log2(fold)
        pdl += pd_step
        stages.append(Stage(
            number=i + 1, vessel=vessel.name, family=vessel.family, vessels=n, area_cm2=area,
            fill=area_needed(needed_out, h) / area, cells_in=area * h / fold, cells_out=area * h,
            cells_needed_out=needed_out, day_start=day, day_end=day + days, population_doublings=pd_step,
            cumulative_pdl=pdl, open_manipulations=n * vessel.open_manipulations_per_passage,
            footprint_cm2=None if vessel.footprint_cm2 is None else n * vessel.footprint_cm2,
            fold_expansion=fold, source=source))
        day += days
    plan = ScalePlan(strategy, need, stages, supply)
    plan.warnings = _warnings(plan, catalogue, supply.harvest_density / supply.fold_expansion_per_passage)
    if equivalence is not None:
        plan.equivalence_checked = True
        plan.warnings += _check_equivalence(plan, catalogue, equivalence)
    return plan


def _family_of(name: str, catalogue: Sequence[Vessel]) -> str:
    """The vessel family ``name`` stands for: itself when it is a family, else the family of that vessel."""
    low = str(name).strip().lower()
    for v in catalogue:
        if v.family.lower() == low:
            return v.family.lower()
    for v in catalogue:
        if v.name.lower() == low:
            return v.family.lower()
    return low


def _interval(r: Mapping[str, Any], what: str) -> tuple[float, float] | None:
    """``r[what]`` as two finite numbers, None when missing (a test with too few data has no interval)."""
    values: Any = r.get(what)
    try:
        lo, hi = (float(x) for x in values)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _describe_result(r: Mapping[str, Any]) -> tuple[str, str]:
    """Response and "ratio 0.97, 90 % CI 0.91 to 1.03 in 0.80 to 1.25" of one equivalence result."""
    ci = _interval(r, "ci")
    margin = _interval(r, "margin")
    log = bool(r.get("log"))
    level = r.get("confidence")
    if level is None:  # TOST at level alpha is judged on the 1 - 2 alpha interval
        level = 1 - 2 * float(r.get("alpha", 0.05))
    estimate = r.get("estimate")
    if estimate is None and ci is not None:  # the TOST interval is symmetric about the estimate (analysis scale)
        lo, hi = ci
        estimate = math.sqrt(lo * hi) if log and lo > 0 and hi > 0 else (lo + hi) / 2

    def num(x: float) -> str:
        return f"{x:.2f}" if log else fmt_sig(x, 3)

    what = "ratio" if log else "difference"
    parts = [f"{what} {num(float(estimate))}" if estimate is not None else f"{what} not estimated",
             f"{100 * float(level):g} % CI {num(ci[0])} to {num(ci[1])}" if ci is not None
             else f"{100 * float(level):g} % CI not computed"]
    bounds = f"{num(margin[0])} to {num(margin[1])}" if margin is not None else "not given"
    text = ", ".join(parts) + (f" in {bounds}" if ci is not None and margin is not None else f" (margin {bounds})")
    return str(r.get("response") or "the response"), text


def _check_equivalence(plan: ScalePlan, catalogue: Sequence[Vessel],
                       equivalence: Sequence[Mapping[str, Any]]) -> list[str]:
    """Rule 5: a warning for each change of vessel family without a result showing equivalence."""
    modes = {v.name: v.mode for v in catalogue}
    out: list[str] = []
    for a, b in zip(plan.stages, plan.stages[1:], strict=False):
        if a.family.lower() == b.family.lower():
            continue
        pair = {a.family.lower(), b.family.lower()}
        found = []
        for r in equivalence:
            if not isinstance(r, Mapping):
                raise ScaleError("Each equivalence result must be a mapping with response, reference, test, "
                                 "equivalent, ci, margin and log.")
            if {_family_of(str(r.get("reference", "")), catalogue), _family_of(str(r.get("test", "")),
                                                                                catalogue)} == pair:
                found.append(r)
        kind = "scale-up" if modes.get(b.vessel) == "scale-up" else "scale-out"
        step = f"Stage {a.number} -> {b.number} ({a.family} -> {b.family})"
        ok = [r for r in found if not isinstance(r.get("equivalent"), str) and bool(r.get("equivalent"))]
        if ok:
            text = "; ".join(f"{resp} equivalent ({detail})" for resp, detail in map(_describe_result, ok))
            plan.stages[b.number - 1] = replace(b, evidence=text)
        elif found:
            details = "; ".join(f"{resp}: {detail} - not shown equivalent"
                                for resp, detail in map(_describe_result, found))
            out.append(f"{step}: the equivalence tests between {a.family} and {b.family} do not show this "
                       f"{kind} step equivalent ({details}); do not rely on this step until a test shows it "
                       "equivalent (python -m doe equivalence).")
        else:
            out.append(f"{step}: no equivalence evidence between {a.family} and {b.family} for this {kind} "
                       "step; test it on the Scale comparison page (python -m doe equivalence) before relying "
                       "on this step.")
    return out


def _warnings(plan: ScalePlan, catalogue: Sequence[Vessel], s_eff: float) -> list[str]:
    supply, out = plan.supply, []
    by_name = {v.name: v for v in catalogue}
    if supply.max_population_doublings is not None and plan.cumulative_pdl > supply.max_population_doublings + 1e-9:
        out.append(f"Cumulative population doublings {plan.cumulative_pdl:.1f} exceed the budget of "
                   f"{supply.max_population_doublings:g} from the master cell bank.")
    if supply.max_passages is not None and len(plan.stages) > supply.max_passages:
        out.append(f"{len(plan.stages)} passages exceed the maximum of {supply.max_passages} allowed.")
    for s in plan.stages:
        limit = by_name[s.vessel].max_practical_count
        if limit is not None and s.vessels > limit:
            out.append(f"Stage {s.number}: {s.vessels} x {s.vessel} exceeds the practical count of {limit}.")
    seeding = supply.seeding_density_cells_per_cm2
    uses_single = any(s.family not in supply.by_family for s in plan.stages)
    if (uses_single and supply.harvest_density_cells_per_cm2 is not None
            and abs(s_eff - seeding) > 0.1 * seeding):
        out.append(f"Harvest density / fold expansion = {s_eff:,.0f} cells/cm^2 differs from the seeding "
                   f"density {seeding:,.0f} cells/cm^2 by more than 10 %: the plan seeds at {s_eff:,.0f}"
                   + (" (in vessel families without passage records)." if supply.by_family else "."))
    return out


def _check_supply(supply: Supply) -> None:
    if supply.fold_expansion_per_passage <= 1:
        raise ScaleError(f"The fold expansion per passage is {supply.fold_expansion_per_passage:.3g}: the cells "
                         "must grow (fold expansion above 1) to plan a seed train.")
    for name in ("seeding_density_cells_per_cm2", "days_per_passage", "starting_cells"):
        if getattr(supply, name) <= 0:
            raise ScaleError(f"{name} must be above 0; got {getattr(supply, name):g}.")
    if supply.harvest_density <= 0:
        raise ScaleError("The harvest density must be above 0 cells/cm^2.")


def plan_frame(plan: ScalePlan) -> pd.DataFrame:
    """The stages as a table (one row per passage, units in the column names), with the fold expansion
    of each stage, where its growth numbers came from and the equivalence evidence of the step into it."""
    rows = [{"Strategy": plan.strategy, "Stage": s.number, "Vessel": s.vessel, "Family": s.family,
             "Vessels": s.vessels, "Area (cm²)": s.area_cm2, "Area used (%)": 100 * s.fill,
             "Cells in": s.cells_in, "Cells out": s.cells_out, "Day start": s.day_start, "Day end": s.day_end,
             "PD this passage": s.population_doublings, "Cumulative PDL": s.cumulative_pdl,
             "Open manipulations": s.open_manipulations, "Footprint (cm²)": s.footprint_cm2,
             "Fold expansion": s.fold_expansion, "Growth numbers from": s.source,
             "Equivalence evidence": s.evidence}
            for s in plan.stages]
    return pd.DataFrame(rows)


#: Columns of :func:`recorded_vs_predicted`.
RECORDED_COLUMNS = ("Stage", "Vessel", "Family", "Predicted cells per vessel", "Recorded cells per vessel (mean)",
                    "Recorded min", "Recorded max", "Passages recorded", "Recorded from", "Predicted / recorded")
_KINETICS_NEEDED = ("Vessel", "Family", "Harvested cells")


def recorded_vs_predicted(plan: ScalePlan, kinetics: pd.DataFrame) -> pd.DataFrame:
    """Cells per vessel at harvest of each stage: the plan's prediction against the recorded passages.

    Parameters
    ----------
    plan : ScalePlan
    kinetics : DataFrame
        One row per recorded passage with ``Vessel``, ``Family``,
        ``Harvested cells`` and ``Harvest density (cells/cm2)`` (or
        ``Area (cm2)`` to compute it), as the growth summary gives them.

    Returns
    -------
    DataFrame
        One row per stage (columns :data:`RECORDED_COLUMNS`). Predicted =
        the stage's cells out / its vessels. Recorded = mean, min and max of
        the harvested cells of passages in the same vessel; when there are
        none, the family's recorded harvest densities x the vessel's area
        ("Recorded from" says which); NaN and "no records" when neither.
        "Predicted / recorded" is the predicted over the recorded mean.
    """
    missing = [c for c in _KINETICS_NEEDED if c not in kinetics.columns]
    if missing:
        raise ScaleError(f"The passage kinetics have no column {quoted_list(missing)}; columns needed: "
                         f"{', '.join(_KINETICS_NEEDED)} and 'Harvest density (cells/cm2)' or 'Area (cm2)'.")
    harvested = pd.to_numeric(kinetics["Harvested cells"], errors="coerce")
    if "Harvest density (cells/cm2)" in kinetics.columns:
        density = pd.to_numeric(kinetics["Harvest density (cells/cm2)"], errors="coerce")
    else:
        density = pd.Series(math.nan, index=kinetics.index)
    if "Area (cm2)" in kinetics.columns:
        density = density.fillna(harvested / pd.to_numeric(kinetics["Area (cm2)"], errors="coerce"))
    vessel = kinetics["Vessel"].astype(str).str.strip()
    family = kinetics["Family"].astype(str).str.strip()
    rows = []
    for s in plan.stages:
        predicted = s.cells_out / s.vessels
        per_vessel = s.area_cm2 / s.vessels
        same = harvested[(vessel == s.vessel) & harvested.notna()]
        fam = density[(family == s.family) & density.notna()]
        if len(same):
            values, n, where = same, len(same), f"{s.vessel}: {_plural(len(same), 'passage')}"
        elif len(fam):
            values, n = fam * per_vessel, len(fam)
            where = (f"{s.family} harvest density x {per_vessel:,.0f} cm² ({_plural(len(fam), 'passage')} in "
                     f"other {s.family} vessels; none in {s.vessel})")
        else:
            values, n, where = pd.Series(dtype=float), 0, "no records"
        mean = float(values.mean()) if n else math.nan
        rows.append({"Stage": s.number, "Vessel": s.vessel, "Family": s.family,
                     "Predicted cells per vessel": predicted, "Recorded cells per vessel (mean)": mean,
                     "Recorded min": float(values.min()) if n else math.nan,
                     "Recorded max": float(values.max()) if n else math.nan, "Passages recorded": n,
                     "Recorded from": where, "Predicted / recorded": predicted / mean if n and mean > 0 else math.nan})
    return pd.DataFrame(rows, columns=list(RECORDED_COLUMNS))


def plans_json(demand: Demand | None, plans: Sequence[ScalePlan]) -> dict[str, Any]:
    """JSON-ready result of :func:`plan_seed_train` for one or more strategies."""
    first = plans[0]
    return {"cells_needed": first.cells_needed,
            "area_needed_cm2": area_needed(first.cells_needed, first.supply.harvest_density),
            "demand": asdict(demand) if demand is not None else None,
            "supply": first.supply.describe(),
            "strategies": {p.strategy: p.to_json() for p in plans},
            "equivalence_checked": any(p.equivalence_checked for p in plans)}


# -- vessel catalogue ----------------------------------------------------------------------------------
def read_catalogue(source: str | Path | pd.DataFrame | None = None) -> list[Vessel]:
    """The vessel catalogue from a CSV file (default ``data/vessels.csv``) or a table; every row checked."""
    if source is None:
        source = CATALOGUE
    if isinstance(source, pd.DataFrame):
        frame, where = source, "the vessel table"
    else:
        path = Path(source)
        if not path.is_file():
            raise ScaleError(f"Vessel catalogue '{path}' does not exist.")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ScaleError(f"Vessel catalogue '{path}' is not a readable UTF-8 CSV file ({exc}).") from None
        where = path.name
    from doe.cells import unquote_formula

    frame = frame.rename(columns=lambda c: str(unquote_formula(c)).strip()).map(unquote_formula)
    missing = [c for c in _REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ScaleError(f"{where} has no column {quoted_list(missing)}; columns needed: "
                         f"{', '.join(_REQUIRED_COLUMNS)} (optional: {', '.join(VESSEL_COLUMNS[4:])}).")
    unknown = [c for c in frame.columns if c not in VESSEL_COLUMNS]
    if unknown:
        c = unknown[0]
        raise ScaleError(f"{where}: unknown column '{c}'.{did_you_mean(c, VESSEL_COLUMNS)} "
                         f"Columns: {', '.join(VESSEL_COLUMNS)}.")
    vessels: list[Vessel] = []
    records = cast("list[dict[str, Any]]", frame.to_dict("records"))  # columns are the CSV's headers (text)
    for i, row in enumerate(records, start=1):
        if all(_blank(v) for v in row.values()):
            continue
        vessels.append(_vessel_from(row, f"{where} row {i}"))
    if not vessels:
        raise ScaleError(f"{where} lists no vessels.")
    seen: set[str] = set()
    for v in vessels:
        if v.name.lower() in seen:
            raise ScaleError(f"{where}: vessel '{v.name}' is listed twice; give each vessel its own name.")
        seen.add(v.name.lower())
    return vessels


def catalogue_csv(table: pd.DataFrame) -> str:
    """The catalogue table as CSV for download: text a spreadsheet would run as a formula (a vessel
    named '=HYPERLINK(...)') gets a leading apostrophe, which :func:`read_catalogue` removes again."""
    from doe.design import safe_csv

    return safe_csv(table)


def catalogue_frame(vessels: Sequence[Vessel]) -> pd.DataFrame:
    """The catalogue as a table with the CSV's columns (for display, editing and download)."""
    return pd.DataFrame([{c: getattr(v, c) for c in VESSEL_COLUMNS} for v in vessels], columns=list(VESSEL_COLUMNS))


def find_vessel(catalogue: Sequence[Vessel], name: str) -> Vessel:
    """The vessel called ``name``; a ScaleError naming the close matches when there is none."""
    names = [v.name for v in catalogue]
    for v in catalogue:
        if v.name == name:
            return v
    raise ScaleError(f"Unknown vessel '{name}'.{did_you_mean(name, names)} Vessels: {quoted_list(names)}.")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _vessel_from(row: Mapping[str, Any], where: str) -> Vessel:
    name = "" if _blank(row.get("name")) else str(row["name"]).strip()
    if not name:
        raise ScaleError(f"{where}, column 'name': every vessel needs a name.")
    at = f"{where} ('{name}')"
    family = "" if _blank(row.get("family")) else str(row["family"]).strip()
    if not family:
        raise ScaleError(f"{at}, column 'family': give the vessel family, e.g. CellSTACK.")
    mode = "" if _blank(row.get("mode")) else str(row["mode"]).strip()
    if mode not in MODES:
        raise ScaleError(f"{at}, column 'mode': '{mode}' is not a mode.{did_you_mean(mode, MODES)} "
                         f"Modes: {quoted_list(MODES)}.")
    area = _number(row.get("area_cm2"), f"{at}, column 'area_cm2'", required=True, positive=True)
    manip = _number(row.get("open_manipulations_per_passage"),
                    f"{at}, column 'open_manipulations_per_passage'", required=True)
    layers = _number(row.get("layers"), f"{at}, column 'layers'", positive=True, whole=True)
    volume = _number(row.get("working_volume_ml"), f"{at}, column 'working_volume_ml'", positive=True)
    footprint = _number(row.get("footprint_cm2"), f"{at}, column 'footprint_cm2'", positive=True)
    count = _number(row.get("max_practical_count"), f"{at}, column 'max_practical_count'", positive=True,
                    whole=True)
    source = "" if _blank(row.get("source")) else str(row["source"]).strip()
    return Vessel(name, family, mode, float(area), float(manip), None if layers is None else int(layers),
                  volume, footprint, None if count is None else int(count), source)


@overload
def _number(value: Any, what: str, *, required: Literal[True], positive: bool = False,
            whole: bool = False) -> float: ...


@overload
def _number(value: Any, what: str, *, required: bool = False, positive: bool = False,
            whole: bool = False) -> float | None: ...


def _number(value: Any, what: str, *, required: bool = False, positive: bool = False,
            whole: bool = False) -> float | None:
    """A finite number >= 0 (> 0 with ``positive``), None for a blank unless ``required``."""
    if _blank(value):
        if required:
            raise ScaleError(f"{what}: a number is needed.")
        return None
    if isinstance(value, bool):
        raise ScaleError(f"{what} must be a number, not {value}.")
    try:
        x = float(str(value).strip().replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ScaleError(f"{what} must be a number; got '{value}'.") from None
    if not math.isfinite(x):
        raise ScaleError(f"{what} must be a finite number; got '{value}'.")
    if x < 0 or (positive and x == 0):
        raise ScaleError(f"{what} must be {'above' if positive else 'at least'} 0; got {x:g}.")
    if whole and not x.is_integer():
        raise ScaleError(f"{what} must be a whole number; got {x:g}.")
    return x


def apply_overrides(catalogue: Sequence[Vessel], overrides: Mapping[str, Mapping[str, Any]] | None) -> list[Vessel]:
    """Catalogue with some fields of named vessels changed (plan file ``vessels:``)."""
    out = list(catalogue)
    for name, fields in (overrides or {}).items():
        vessel = find_vessel(out, str(name))
        if not isinstance(fields, Mapping):
            raise ScaleError(f"vessels: '{name}' must be a mapping like {{max_practical_count: 2}}.")
        row = {c: getattr(vessel, c) for c in VESSEL_COLUMNS}
        for key, value in fields.items():
            if key not in VESSEL_COLUMNS or key == "name":
                allowed = [c for c in VESSEL_COLUMNS if c != "name"]
                raise ScaleError(f"vessels: '{name}': unknown field '{key}'.{did_you_mean(str(key), allowed)} "
                                 f"Fields: {', '.join(allowed)}.")
            row[key] = value
        out[out.index(vessel)] = replace(_vessel_from(row, f"vessels: '{name}'"))
    return out


# -- supply from the fitted models ---------------------------------------------------------------------
FROM_MODELS = "from_models"


def _find(names: Sequence[str], *words: str) -> str | None:
    for n in names:
        low = n.lower()
        if all(w in low for w in words):
            return n
    return None


def complete_set_point(study: Any, set_point: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every factor's setting: the given ones (checked), else the centre or the first level."""
    set_point = dict(set_point or {})
    for name in set_point:
        if name not in study.factor_names:
            raise ScaleError(f"Set point: unknown factor '{name}'.{did_you_mean(name, study.factor_names)} "
                             f"Factors are {quoted_list(study.factor_names)}.")
    out: dict[str, Any] = {}
    for f in study.factors:
        value = set_point.get(f.name, f.levels[0] if f.is_categorical else f.center)
        if f.is_categorical:
            if str(value) not in [str(lv) for lv in f.levels]:
                raise ScaleError(f"Set point: '{value}' is not a level of {f.name}."
                                 f"{did_you_mean(str(value), [str(lv) for lv in f.levels])} "
                                 f"Levels: {quoted_list(f.levels)}.")
            value = f.levels[[str(lv) for lv in f.levels].index(str(value))]
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ScaleError(f"Set point: {f.name} must be a number; got '{value}'.") from None
            if not f.low - 1e-9 * (f.high - f.low) <= value <= f.high + 1e-9 * (f.high - f.low):
                raise ScaleError(f"Set point: {f.name} = {value:g} is outside the tested range "
                                 f"{f.describe_range()}; the models are only known inside it.")
        out[f.name] = value
    return out


def supply_from_models(study: Any, runs_or_fits: Any, set_point: Mapping[str, Any] | None = None, *,
                       conservative: bool = True) -> dict[str, dict[str, Any]]:
    """Fold expansion (and harvest density, seeding density) at the set point from the fitted models.

    Parameters
    ----------
    study : Study
    runs_or_fits : DataFrame or mapping
        Results to fit (each CQA with :func:`doe.analysis.default_choice`), or
        fits by CQA name (:class:`~doe.analysis.CQAFit` or
        :class:`~doe.fit.FittedModel`).
    set_point : mapping, optional
        Factor settings; missing factors at their centre or first level.
    conservative : bool
        Use the lower 95 % prediction bound of one new run (original scale
        for transformed CQAs) instead of the predicted mean.

    Returns
    -------
    dict
        Per supply key (``fold_expansion_per_passage``, and when the study has
        them ``harvest_density_cells_per_cm2`` from a CQA named like 'harvest
        density', ``seeding_density_cells_per_cm2`` from a factor named like
        'seeding density'): ``value``, ``mean``, ``lower_95pi``, ``upper_95pi``
        and ``source``.
    """
    sp = complete_set_point(study, set_point)
    fits = runs_or_fits
    if isinstance(runs_or_fits, pd.DataFrame):
        from doe.analysis import default_choice, fit_all

        fits = fit_all(study, runs_or_fits, default=default_choice())
    found = {n: getattr(f, "model", f) for n, f in dict(fits).items()}
    models: dict[str, Any] = {n: m for n, m in found.items() if m is not None and hasattr(m, "predict")}
    frame = pd.DataFrame([sp])
    out: dict[str, dict[str, Any]] = {}
    fold = _find(list(models), "fold")
    if fold is None:
        raise ScaleError("The study has no fitted CQA named like 'Fold expansion'; give "
                         "fold_expansion_per_passage as a number in the plan."
                         + (f" Fitted CQAs: {quoted_list(models)}." if models else ""))
    harvest = _find(list(models), "harvest", "density")
    case = "lower 95 % prediction bound" if conservative else "predicted mean"
    for key, name in (("fold_expansion_per_passage", fold), ("harvest_density_cells_per_cm2", harvest)):
        if name is None:
            continue
        pred = models[name].predict(frame, "prediction", 0.95).iloc[0]
        lower = float(pred["lower"])
        value = lower if conservative and math.isfinite(lower) else float(pred["mean"])
        out[key] = {"value": value, "mean": float(pred["mean"]), "lower_95pi": lower,
                    "upper_95pi": float(pred["upper"]), "source": f"model '{name}' at the set point ({case})"}
    seeding = _find([f.name for f in study.factors if not f.is_categorical], "seeding")
    if seeding is not None:
        out["seeding_density_cells_per_cm2"] = {"value": float(sp[seeding]), "mean": None, "lower_95pi": None,
                                                "upper_95pi": None, "source": f"set point ('{seeding}')"}
    out["set_point"] = {"value": sp, "source": "given" if set_point else "study centre / first levels"}
    return out


# -- plan file ---------------------------------------------------------------------------------------
FROM_PASSAGES = "from_passages"
_PASSAGE_KEYS = ("fold_expansion_per_passage", "days_per_passage")
_PLAN_KEYS = ("schema", "name", "description", "demand", "supply", "strategies", "set_point", "min_fill", "vessels")
_DEMAND_KEYS = ("dose_cells_per_kg", "patient_weight_kg", "doses_per_patient", "patients_per_batch", "overage")
_SUPPLY_KEYS = ("seeding_density_cells_per_cm2", "harvest_density_cells_per_cm2", "fold_expansion_per_passage",
                "days_per_passage", "max_passages", "max_population_doublings", "mcb_population_doublings",
                "starting_cells")


@dataclass
class PlanFile:
    """A plan file: demand, supply (numbers or 'from_models'), strategies and options."""

    demand: Demand
    supply: dict[str, Any]
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    name: str = ""
    set_point: dict[str, Any] = field(default_factory=dict)
    min_fill: float = 0.5
    vessels: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def uses_models(self) -> bool:
        """True when a supply value is to be predicted from the study's fitted models."""
        return FROM_MODELS in self.supply.values()

    @property
    def uses_passages(self) -> bool:
        """True when a supply value is to be taken per vessel family from recorded passages."""
        return FROM_PASSAGES in self.supply.values()

    @classmethod
    def load(cls, path: str | Path) -> PlanFile:
        """Read a plan file (YAML) from ``path``."""
        from doe.study import read_yaml_file

        return cls.from_yaml(read_yaml_file(path, "Plan file", ScaleError))

    @classmethod
    def from_yaml(cls, text: str) -> PlanFile:
        """Read a plan from YAML text."""
        from doe.study import safe_yaml_load

        try:
            data = safe_yaml_load(text)
        except DoeError as exc:
            raise ScaleError(str(exc).replace("study file", "plan file")) from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> PlanFile:
        """Read and check a plan from parsed YAML; a ScaleError names the first problem."""
        data = _mapping(data, "The plan file", "schema: 1, demand: {...}, supply: {...}")
        _keys(data, _PLAN_KEYS, "the plan file")
        if data.get("schema", 1) != 1:
            raise ScaleError(f"Plan schema {data.get('schema')!r} is not supported; this version reads schema: 1.")
        d = _mapping(data.get("demand"), "'demand'", "{dose_cells_per_kg: 2e6, patient_weight_kg: 70}")
        _keys(d, _DEMAND_KEYS, "'demand'")
        num = {k: _number(d.get(k), f"demand: {k}", required=k in _DEMAND_KEYS[:2], positive=k != "overage")
               for k in _DEMAND_KEYS}
        demand = Demand(cast(float, num["dose_cells_per_kg"]), cast(float, num["patient_weight_kg"]),  # required
                        num["doses_per_patient"] if num["doses_per_patient"] is not None else 1,
                        num["patients_per_batch"] if num["patients_per_batch"] is not None else 1,
                        num["overage"] or 0.0)
        s = _mapping(data.get("supply"), "'supply'", "{fold_expansion_per_passage: 6.5, days_per_passage: 4}")
        _keys(s, _SUPPLY_KEYS, "'supply'")
        supply: dict[str, Any] = {}
        for k in _SUPPLY_KEYS:
            v = s.get(k)
            if isinstance(v, str) and v.strip() == FROM_PASSAGES:
                if k not in _PASSAGE_KEYS:
                    raise ScaleError(f"supply: {k} cannot be '{FROM_PASSAGES}'; only "
                                     f"{' and '.join(_PASSAGE_KEYS)} can (give a number).")
                supply[k] = FROM_PASSAGES
            elif isinstance(v, str) and v.strip() == FROM_MODELS:
                if k not in ("fold_expansion_per_passage", "harvest_density_cells_per_cm2",
                             "seeding_density_cells_per_cm2"):
                    raise ScaleError(f"supply: {k} cannot be '{FROM_MODELS}'; give a number.")
                supply[k] = FROM_MODELS
            else:
                whole = k == "max_passages"
                supply[k] = _number(v, f"supply: {k}", positive=k not in ("mcb_population_doublings",),
                                    whole=whole)
        for k in ("days_per_passage", "starting_cells", "fold_expansion_per_passage",
                  "seeding_density_cells_per_cm2"):
            if supply[k] is None:
                raise ScaleError(f"supply: {k} is needed"
                                 + (f" (a number or '{FROM_MODELS}')." if "density" in k or "fold" in k else
                                    f" (a number or '{FROM_PASSAGES}')." if k in _PASSAGE_KEYS else "."))
        strategies = data.get("strategies", list(STRATEGIES))
        if isinstance(strategies, str):
            strategies = [strategies]
        if not isinstance(strategies, list) or not strategies:
            raise ScaleError("'strategies' must be a list such as [scale-out, scale-up].")
        for st_ in strategies:
            if st_ not in STRATEGIES:
                raise ScaleError(f"Unknown strategy '{st_}'.{did_you_mean(str(st_), STRATEGIES)} "
                                 f"Strategies: {quoted_list(STRATEGIES)}.")
        set_point = _mapping(data.get("set_point") or {}, "'set_point'", "{Agitation: 60}")
        min_fill = _number(data.get("min_fill"), "min_fill", positive=True)
        if min_fill is not None and min_fill > 1:
            raise ScaleError(f"min_fill must be at most 1 (a share of the vessel area); got {min_fill:g}.")
        vessels = _mapping(data.get("vessels") or {}, "'vessels'", "{CellSTACK-40: {max_practical_count: 2}}")
        return cls(demand, supply, list(dict.fromkeys(strategies)), str(data.get("name") or ""),
                   dict(set_point), 0.5 if min_fill is None else min_fill,
                   {str(k): dict(v) if isinstance(v, Mapping) else v for k, v in vessels.items()})

    def resolve_supply(self, models: Mapping[str, Mapping[str, Any]] | None = None, *,
                       measured: Mapping[str, FamilyGrowth] | None = None) -> Supply:
        """The supply, with 'from_models' values (and the set point's seeding density) from ``models``
        and 'from_passages' values from ``measured``.

        ``models`` is what :func:`supply_from_models` returns, ``measured``
        what :func:`measured_growth` returns.
        """
        return resolve_supply(self.supply, models, measured=measured)


def _pooled(measured: Mapping[str, FamilyGrowth], key: str) -> tuple[float, str]:
    """Passage-weighted mean over the measured families of the numbers they use, and its source."""
    groups = list(measured.values())
    weights = [max(g.n, 1) for g in groups]
    value = sum(w * getattr(g, key) for w, g in zip(weights, groups, strict=True)) / sum(weights)
    what = "fold expansions" if key == "fold_expansion" else "days per passage"
    return value, (f"recorded passages pooled over {', '.join(measured)} ({sum(g.n for g in groups)} passages): "
                   f"passage-weighted mean of the families' {what}, for families without records")


def resolve_supply(spec: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]] | None = None, *,
                   measured: Mapping[str, FamilyGrowth] | None = None) -> Supply:
    """A :class:`Supply` from plan values, model values (:func:`supply_from_models`) and recorded
    passages (:func:`measured_growth`), sources kept.

    A number in the plan wins over the models; 'from_models' takes the model
    value (an error when there is none). When the fold expansion comes from
    the models and the study has a seeding-density factor, the seeding density
    is the set point's (the prediction holds at that density).

    'from_passages' (fold expansion, days per passage) takes each vessel
    family's number from ``measured`` (``Supply.by_family``); vessel families
    without records then use the passage-weighted mean over the measured
    families (the source says so). A key the plan gives as a number keeps
    that number for every family.
    """
    models = dict(models or {})
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    fold_from_models = spec.get("fold_expansion_per_passage") == FROM_MODELS
    passages = [k for k in _PASSAGE_KEYS if spec.get(k) == FROM_PASSAGES]
    by_family: dict[str, FamilyGrowth] = {}
    if passages:
        if measured is None:
            raise ScaleError(f"supply: {' and '.join(passages)} {'is' if len(passages) == 1 else 'are'} "
                             f"'{FROM_PASSAGES}': give the passage records (--passages PASSAGES.csv on the "
                             "command line, or the Seed train page).")
        if not measured:
            raise ScaleError(f"supply: '{FROM_PASSAGES}' but the passage records have no vessel family with "
                             "passages: record passages or give numbers in the plan.")
        for family, g in measured.items():
            if "fold_expansion_per_passage" not in passages:
                g = replace(g, fold_expansion=float(spec["fold_expansion_per_passage"]), source="plan")
            if "days_per_passage" not in passages:
                g = replace(g, days_per_passage=float(spec["days_per_passage"]), days_source="plan")
            by_family[family] = g
    for k in _SUPPLY_KEYS:
        v = spec.get(k)
        model = models.get(k)
        if v == FROM_PASSAGES:
            values[k], sources[k] = _pooled(by_family, "fold_expansion" if k.startswith("fold") else
                                            "days_per_passage")
        elif v == FROM_MODELS or (k == "seeding_density_cells_per_cm2" and fold_from_models and model is not None):
            if model is None:
                raise ScaleError(f"supply: {k} is '{FROM_MODELS}' but no fitted model gives it: open a study "
                                 "with results (--study and --runs) or give a number in the plan.")
            values[k], sources[k] = float(model["value"]), model["source"]
        elif v is not None:
            values[k], sources[k] = v, "plan"
    if values.get("harvest_density_cells_per_cm2") is None:
        sources["harvest_density_cells_per_cm2"] = "seeding density x fold expansion"
    return Supply(seeding_density_cells_per_cm2=values["seeding_density_cells_per_cm2"],
                  fold_expansion_per_passage=values["fold_expansion_per_passage"],
                  days_per_passage=values["days_per_passage"], starting_cells=values["starting_cells"],
                  harvest_density_cells_per_cm2=values.get("harvest_density_cells_per_cm2"),
                  max_passages=None if values.get("max_passages") is None else int(values["max_passages"]),
                  max_population_doublings=values.get("max_population_doublings"),
                  mcb_population_doublings=values.get("mcb_population_doublings") or 0.0, sources=sources,
                  by_family=by_family)


def _mapping(value: Any, what: str, example: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ScaleError(f"{what} must be a mapping like {example}.")
    return dict(value)


def _keys(data: Mapping[str, Any], allowed: Sequence[str], what: str) -> None:
    for key in data:
        if key not in allowed:
            raise ScaleError(f"Unknown key '{key}' in {what}.{did_you_mean(str(key), allowed)} "
                             f"Allowed keys: {', '.join(allowed)}.")


def run_plan(plan: PlanFile, catalogue: Sequence[Vessel] | None = None,
             models: Mapping[str, Mapping[str, Any]] | None = None, *,
             measured: Mapping[str, FamilyGrowth] | None = None,
             equivalence: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Every strategy of a plan file: JSON-ready result and the plans (``{'json': ..., 'plans': [...]}``).

    ``measured`` (:func:`measured_growth`) gives the plan's 'from_passages'
    values per vessel family; ``equivalence`` (a list of equivalence results,
    None: not checked) is passed to :func:`plan_seed_train`. The JSON gains
    ``measured`` (the recorded growth used, by family, with its sources; empty
    when the plan uses no passage records) and ``equivalence_checked``.
    """
    vessels = apply_overrides(catalogue if catalogue is not None else read_catalogue(), plan.vessels)
    supply = plan.resolve_supply(models, measured=measured)
    plans = [plan_seed_train(plan.demand, supply, vessels, s, min_fill=plan.min_fill, equivalence=equivalence)
             for s in plan.strategies]
    out = plans_json(plan.demand, plans)
    out["plan_name"] = plan.name
    out["measured"] = {f: asdict(g) for f, g in supply.by_family.items()}
    out["equivalence_checked"] = equivalence is not None
    out["notes"] = [f"The plan gives {k} as a number; the model value ({m['value']:.4g}, {m['source']}) "
                    "is not used (write from_models to use it)."
                    for k, m in (models or {}).items()
                    if k in plan.supply and plan.supply[k] not in (FROM_MODELS, None)
                    and not (k == "seeding_density_cells_per_cm2" and plan.supply.get(
                        "fold_expansion_per_passage") == FROM_MODELS)]
    if measured and not plan.uses_passages:
        out["notes"].append(f"Passage records of {', '.join(measured)} were given but the plan gives the fold "
                            f"expansion and days per passage as numbers; write {FROM_PASSAGES} to use them.")
    unknown = [f for f in supply.by_family if f not in {v.family for v in vessels}]
    if unknown:
        out["notes"].append(f"Passage records of {quoted_list(unknown)} match no vessel family of the catalogue "
                            f"({quoted_list(sorted({v.family for v in vessels}))}); they are not used.")
    out["min_fill"] = plan.min_fill
    if models and "set_point" in models:
        out["set_point"] = models["set_point"]
    return {"json": out, "plans": plans}
