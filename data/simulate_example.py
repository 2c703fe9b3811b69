"""Simulate results for the bundled MSC expansion example. THE DATA ARE SIMULATED.

Run from the repository root::

    python data/simulate_example.py

It writes, next to this script:

- ``msc_example_design.csv``: the example's default design,
  ``generate(study, 'optimal', model='quadratic', runs=40, seed=20261128)``;
- ``msc_example_results.csv``: that run sheet with the 7 CQA columns filled
  from the 'true' model below plus noise, and a Notes cell on every run
  saying the values are SIMULATED;
- ``msc_example_truth.json``: for each CQA the true coefficients in CODED
  units on the column names of ``doe.model.ModelMatrix`` for the quadratic
  model (most are zero), the noise SD and a one-line rationale for every
  nonzero coefficient.

The true model is additive on each CQA's own scale (not logit): response =
model-matrix row (coded units) x coefficients + Normal(0, SD), independent
across runs and CQAs, drawn with ``numpy.random.default_rng(20261128)``, then
rounded to the reported decimals (a rounding error far below the noise SD).
Effects are sized so percentages stay inside 0-100 without clipping; the
script stops if a simulated value leaves its physical range. Because the
truth lies inside the quadratic model, least squares recovers it without
bias. Effects come from docs/domain.md where a source exists and are
marked (inferred) otherwise. The specs of data/msc_expansion.yaml hold in
part of the factor space only: trypsin-EDTA fails CD73/CD90/CD105, ULA fails
Aggregates except at low agitation and density, and SFM-XF or high seeding
density fail Fold expansion on some surfaces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from doe.generators import generate  # noqa: E402
from doe.model import ModelMatrix, coded_array, parse_model  # noqa: E402
from doe.study import Study  # noqa: E402

SEED = 20261128
RUNS = 40
MODEL = "quadratic"
NOTE = f"SIMULATED data (data/simulate_example.py, seed {SEED}): not measured"
DECIMALS = {"Viability": 1, "Fold expansion": 2, "CD73/CD90/CD105": 1, "HLA-DR": 2,
            "Aggregates": 2, "Potency": 1, "EV yield": 2}
BOUNDS = {"%": (0.0, 100.0)}  # units starting with '%'; every other CQA must be > 0

# Effects, each (term, value, rationale). term is 'Intercept'; a factor name with
# {level: effect} (effects sum to zero: effect coding); a coded continuous term
# ('Agitation', 'Agitation^2', ...) with its coefficient; 'A:B' of two categorical
# factors with {(level A, level B): bump}; or 'Cat:Cont' with {level: extra slope}.
# Bumps are converted to effect-coded coefficients by exact projection.
TRUTH: dict[str, dict[str, Any]] = {
    "Viability": {"sd": 1.2, "effects": [
        ("Intercept", 90.0, "Expanded MSC release at ~90 % viability; published specs are >= 70-85 % "
                            "(docs/domain.md: EudraCT 2010-024041-78, PMC9289888, SCRT 2020)."),
        ("Harvest reagent", {"Trypsin-EDTA": -2.5, "TrypLE": 0.5, "Accutase": 2.0},
         "Accutase is the gentler reagent, trypsin-EDTA the harshest (Tsuji 2017, PMC5657749)."),
        ("Surface", {"Standard TC": 1.0, "CellBIND": 1.0, "ULA": -2.0},
         "Spheroids on ULA have less viable cores than monolayers (inferred)."),
        ("Agitation", -1.0, "Shear above the just-suspended speed costs viability (Jossen et al.; inferred size)."),
        ("Surface:Agitation", {"ULA": -1.5},
         "Spheroids on ULA shear apart at high agitation (study constraint reason; inferred)."),
    ]},
    "Fold expansion": {"sd": 0.35, "effects": [
        ("Intercept", 5.5, "~6.5x per 4-day passage from 2,000 cells/cm2 (Thermo poster, docs/domain.md)."),
        ("Medium", {"FBS 10%": -0.3, "hPL 5%": 1.0, "SFM-XF": -0.7},
         "hPL is at least as good as FBS for proliferation (Guiotto 2020, PMC7493356); SFM-XF lower (inferred)."),
        ("Seeding density", -1.0, "Lower seeding density favours expansion per cell (Fossett & Khan, PMC3289841)."),
        ("Agitation", 0.3, "Agitated beats static culture (Rafiq 2016, PMC4991290)."),
        ("Agitation^2", -0.9, "Optimum near the just-suspended speed, ~65 rpm (Jossen et al.)."),
        ("Surface", {"Standard TC": 0.4, "CellBIND": 0.4, "ULA": -0.8},
         "MSCs are adherent; spheroids on ULA proliferate less (docs/domain.md; size inferred)."),
        ("Medium:Surface", {("SFM-XF", "CellBIND"): 0.6},
         "CellBIND is the surface for serum-free media (BioProcess International 2026, docs/domain.md)."),
    ]},
    "CD73/CD90/CD105": {"sd": 0.5, "effects": [
        ("Intercept", 96.5, "ISCT positive markers >= 95 % (Dominici 2006)."),
        ("Harvest reagent", {"Trypsin-EDTA": -2.4, "TrypLE": 1.0, "Accutase": 1.4},
         "Trypsin-EDTA cleaves CD73/CD105 within 30 min; TrypLE and Accutase spare them (Tsuji 2017, PMC5657749)."),
    ]},
    "HLA-DR": {"sd": 0.12, "effects": [
        ("Intercept", 0.9, "HLA-DR low (~0.5-1.5 %), ISCT limit <= 2 % (Dominici 2006)."),
        ("Medium", {"FBS 10%": -0.1, "hPL 5%": 0.3, "SFM-XF": -0.2},
         "Platelet-lysate growth factors raise HLA-DR slightly (inferred)."),
        ("Seeding density", 0.2, "Denser, more confluent cultures express slightly more HLA-DR (inferred)."),
    ]},
    "Aggregates": {"sd": 0.25, "effects": [
        ("Intercept", 3.5, "Aggregates at harvest around a few % of events (inferred; spec <= 5 % inferred)."),
        ("Surface", {"Standard TC": -1.1, "CellBIND": -1.1, "ULA": 2.2},
         "ULA grows 3D spheroids, which leave aggregates at harvest (docs/domain.md: BioProcess International 2026)."),
        ("Agitation", 0.8, "Agitation drives aggregation (docs/domain.md: BioProcess International 2026)."),
        ("Seeding density", 0.4, "Confluency at harvest drives aggregation (docs/domain.md: BioProcess International 2026)."),
        ("Harvest reagent", {"Trypsin-EDTA": 0.3, "TrypLE": 0.0, "Accutase": -0.3},
         "Harvest reagent drives aggregation (docs/domain.md); gentler Accutase lyses fewer cells (direction inferred)."),
        ("Medium", {"FBS 10%": -0.15, "hPL 5%": 0.3, "SFM-XF": -0.15},
         "Media drive aggregation (docs/domain.md); hPL fibrinogen adds clumping (direction inferred)."),
    ]},
    "Potency": {"sd": 2.5, "effects": [
        ("Intercept", 31.0, "Inhibition of PHA-stimulated PBMC ~25-40 %, spec >= 20 % (PMC9289888)."),
        ("Medium", {"FBS 10%": 1.0, "hPL 5%": 2.0, "SFM-XF": -3.0}, "Medium changes immunomodulation (inferred)."),
        ("Surface", {"Standard TC": -2.0, "CellBIND": -2.0, "ULA": 4.0},
         "3D spheroids are more immunosuppressive than monolayers (inferred)."),
        ("Seeding density", -1.5, "Fewer doublings at high density leave less potent cells (inferred)."),
    ]},
    "EV yield": {"sd": 0.2, "effects": [
        ("Intercept", 2.0, "EV yield in 1e9 particles per 1e6 cells (scale inferred)."),
        ("Surface", {"Standard TC": -0.45, "CellBIND": -0.45, "ULA": 0.9},
         "ULA spheroids give roughly 2x the EV yield of 2D culture (Yuan 2022, PMC9206229)."),
        ("Agitation", 0.3, "Shear stimulates EV release (inferred)."),
    ]},
}


def effect_values(study: Study, term: str, value: Any, U: np.ndarray) -> np.ndarray:
    """The contribution of one effect to the mean at coded settings U (runs x factors)."""
    col = {f.name: U[:, j] for j, f in enumerate(study.factors)}
    if term == "Intercept":
        return np.full(len(U), float(value))
    if isinstance(value, dict):
        names = term.split(":")
        if len(names) == 1:
            levels = study.factor(term).levels
            assert abs(sum(value.values())) < 1e-12, f"{term} level effects must sum to zero"
            return np.array([value[levels[int(i)]] for i in col[term]])
        a, b = (study.factor(n) for n in names)
        ia = np.array([a.levels[int(i)] for i in col[a.name]], dtype=object)
        if b.is_categorical:
            ib = np.array([b.levels[int(i)] for i in col[b.name]], dtype=object)
            return np.array([value.get((x, y), 0.0) for x, y in zip(ia, ib)])
        return np.array([value.get(x, 0.0) for x in ia]) * col[b.name]
    out = np.ones(len(U))
    for part in term.split(":"):
        name, _, power = part.partition("^")
        out = out * col[name] ** int(power or 1)
    return float(value) * out


def reference_grid(study: Study) -> np.ndarray:
    """Coded full grid (3 levels per continuous factor) that identifies every quadratic term."""
    return coded_array(study, study.grid(levels=3))


def coefficients(study: Study, mm: ModelMatrix, effects: list) -> tuple[dict, dict]:
    """Exact projection of each effect on the model matrix: coefficients and rationale per column."""
    U = reference_grid(study)
    X = mm.build(U)
    total = np.zeros(mm.p)
    why: dict[str, list[str]] = {}
    for term, value, rationale in effects:
        y = effect_values(study, term, value, U)
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        assert np.allclose(X @ beta, y, atol=1e-9), f"{term} is outside the quadratic model"
        beta[np.abs(beta) < 1e-12] = 0.0
        total += beta
        for c, b in zip(mm.columns, beta):
            if b != 0.0:
                why.setdefault(c, []).append(rationale)
    coefs = {c: round(float(b), 12) + 0.0 for c, b in zip(mm.columns, total)}
    rationale = {c: " ".join(dict.fromkeys(why[c])) for c in mm.columns if coefs[c] != 0.0}
    return coefs, rationale


def in_bounds(units: str, values: np.ndarray) -> bool:
    low, high = BOUNDS["%"] if units.strip().startswith("%") else (0.0, np.inf)
    return bool(np.all((values > low) & (values < high)))


def design_space_fraction(study: Study, mm: ModelMatrix, truth: dict) -> float:
    """Share of feasible settings (11-level grid) where the true means meet every spec."""
    grid = study.grid(levels=11)
    grid = grid[study.feasible(grid)]
    X = mm.from_frame(grid)
    ok = np.ones(len(grid), dtype=bool)
    for r in study.responses:
        mean = X @ np.array([truth[r.name]["coefficients"][c] for c in mm.columns])
        if r.lower is not None:
            ok &= mean >= r.lower
        if r.upper is not None:
            ok &= mean <= r.upper
    return float(ok.mean())


def simulate(study: Study) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Design table, results table and the truth record."""
    design = generate(study, "optimal", model=MODEL, runs=RUNS, seed=SEED)
    mm = ModelMatrix(study, parse_model(study, MODEL))
    X = mm.from_frame(design.table)
    rng = np.random.default_rng(SEED)
    results = design.run_sheet()
    truth: dict[str, Any] = {}
    for r in study.responses:
        spec = TRUTH[r.name]
        coefs, rationale = coefficients(study, mm, spec["effects"])
        mean = X @ np.array([coefs[c] for c in mm.columns])
        values = np.round(mean + rng.normal(0.0, spec["sd"], size=len(mean)), DECIMALS[r.name])
        if not in_bounds(r.units, values):
            raise SystemExit(f"{r.name}: simulated values leave the physical range; shrink the effects.")
        results[r.name] = values
        truth[r.name] = {"units": r.units, "spec": r.spec_text(), "noise_sd": spec["sd"],
                         "decimals": DECIMALS[r.name], "coefficients": coefs, "rationale": rationale,
                         "effects": [_effect_record(e) for e in spec["effects"]]}
    results["Notes"] = NOTE
    return design.table, results, truth


def _effect_record(effect: tuple) -> dict:
    term, value, rationale = effect
    if isinstance(value, dict):
        value = {(" x ".join(k) if isinstance(k, tuple) else k): v for k, v in value.items()}
    return {"term": term, "value": value, "rationale": rationale}


def main() -> None:
    study = Study.load(HERE / "msc_expansion.yaml")
    design, results, truth = simulate(study)
    mm = ModelMatrix(study, parse_model(study, MODEL))
    record = {
        "note": "SIMULATED data: the 'true' model used by data/simulate_example.py, not measurements.",
        "study": "data/msc_expansion.yaml",
        "design": f"generate(study, 'optimal', model='{MODEL}', runs={RUNS}, seed={SEED})",
        "noise": f"independent Normal(0, noise_sd) per run and CQA, numpy default_rng({SEED}), "
                 "drawn in CQA order; values rounded to 'decimals'",
        "scale": "additive on each CQA's own units (no logit or log transform)",
        "coding": "coded units: continuous factors -1..+1 over the study range; categorical factors "
                  "effect (sum-to-zero) coded, the last level is -1 in every column (doe.model)",
        "model": MODEL,
        "columns": mm.columns,
        "design_space_fraction": round(design_space_fraction(study, mm, truth), 3),
        "cqas": truth,
    }
    design.to_csv(HERE / "msc_example_design.csv", index=False)
    results.to_csv(HERE / "msc_example_results.csv", index=False)
    (HERE / "msc_example_truth.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
    print(f"Wrote {RUNS}-run design, SIMULATED results and truth; the specs hold in "
          f"{record['design_space_fraction']:.0%} of the feasible factor space.")


if __name__ == "__main__":
    main()
