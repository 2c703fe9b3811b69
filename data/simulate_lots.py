"""Simulate manufacturing lots of the bundled MSC expansion example. THE DATA ARE SIMULATED.

Run from the repository root::

    python data/simulate_lots.py

It writes ``msc_lots.csv`` next to this script: 30 lots of the example process, one row per lot in time
order - ``Lot`` (L01 ... L30), ``Date`` (one lot every 7 days from 2026-01-05), ``Donor`` (8 donors, each
giving 3 or 4 lots), the process parameters as run (``Medium``, ``Surface``, ``Harvest reagent``,
``Agitation``, ``Seeding density``), the 7 CQAs of data/msc_expansion.yaml and ``Notes``.

Model:

- The set point is the grid point (11 levels per continuous factor, every level combination; continuous
  factors at least 20 % of their range from either end) where the smallest standardised margin of the true CQA means to their spec limits is largest (the true model of
  data/msc_example_truth.json, made by data/simulate_example.py); the categorical settings are those of
  that point for every lot but one.
- Each lot's Agitation and Seeding density are the set point plus Normal(0, 2 % of the factor's range),
  rounded to the setting resolution (1 rpm, 10 cells/cm²): normal operating variation.
- Each CQA = the true mean at the lot's actual settings + a donor effect Normal(0, noise SD) shared by the
  donor's lots + Normal(0, noise SD), rounded to the CQA's reported decimals.
- Two deliberate excursions, said in their Notes: lot L19 ran at 20 % of the Agitation range above the set
  point (a controller fault), lot L26 was harvested with Trypsin-EDTA (a deviation; the example's true model
  makes it fail CD73/CD90/CD105).

Random numbers: ``numpy.random.default_rng(SEED)``; every row's Notes says the lot is simulated.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from doe.model import ModelMatrix, parse_model  # noqa: E402
from doe.study import Study  # noqa: E402

SEED = 20261208
LOTS = 30
DONORS = 8
OUT = HERE / "msc_lots.csv"
NOTE = f"SIMULATED lot (data/simulate_lots.py, seed {SEED}): not measured"
EXCURSIONS = {19: "Agitation 20 % of its range above the set point (controller fault)",
              26: "harvested with Trypsin-EDTA (deviation)"}


def _truth() -> dict[str, Any]:
    return json.loads((HERE / "msc_example_truth.json").read_text(encoding="utf-8"))


def true_means(study: Study, settings: pd.DataFrame, truth: dict[str, Any] | None = None) -> pd.DataFrame:
    """The true CQA means (data/msc_example_truth.json) at each row of ``settings`` (factor columns)."""
    truth = truth or _truth()
    mm = ModelMatrix(study, parse_model(study, truth["model"]))
    X = mm.from_frame(settings)
    return pd.DataFrame({r.name: X @ np.array([truth["cqas"][r.name]["coefficients"][c] for c in mm.columns])
                         for r in study.responses}, index=settings.index)


def set_point(study: Study, truth: dict[str, Any] | None = None) -> dict[str, Any]:
    """The grid point whose smallest standardised margin (true mean to spec, in noise SDs) is largest."""
    truth = truth or _truth()
    grid = study.grid(levels=11)
    inside = study.feasible(grid)
    for f in study.factors:  # away from the edges: the lots' normal variation stays inside the tested ranges
        if not f.is_categorical:
            margin = 0.2 * (f.high - f.low)
            inside &= (grid[f.name] >= f.low + margin - 1e-9) & (grid[f.name] <= f.high - margin + 1e-9)
    grid = grid[inside].reset_index(drop=True)
    means = true_means(study, grid, truth)
    margin = np.full(len(grid), np.inf)
    for r in study.responses:
        sd = truth["cqas"][r.name]["noise_sd"]
        if r.lower is not None:
            margin = np.minimum(margin, (means[r.name] - r.lower) / sd)
        if r.upper is not None:
            margin = np.minimum(margin, (r.upper - means[r.name]) / sd)
    best = grid.iloc[int(np.argmax(margin))]
    return {f.name: best[f.name] for f in study.factors}


def generate_lots(seed: int = SEED) -> pd.DataFrame:
    """The simulated lots table (deterministic for a given seed)."""
    study = Study.load(HERE / "msc_expansion.yaml")
    truth = _truth()
    sp = set_point(study, truth)
    rng = np.random.default_rng(seed)
    donors = [f"D{i + 1}" for i in range(DONORS)]
    donor_of = [donors[i] for i in itertools.islice(itertools.cycle(range(DONORS)), LOTS)]
    rows = []
    for k in range(LOTS):
        row: dict[str, Any] = {"Lot": f"L{k + 1:02d}",
                               "Date": (dt.date(2026, 1, 5) + dt.timedelta(days=7 * k)).isoformat(),
                               "Donor": donor_of[k]}
        for f in study.factors:
            if f.is_categorical:
                row[f.name] = sp[f.name]
            else:
                step = 1.0 if f.name == "Agitation" else 10.0
                value = float(sp[f.name]) + rng.normal(0.0, 0.02 * (f.high - f.low))
                row[f.name] = round(value / step) * step
        rows.append(row)
    lots = pd.DataFrame(rows)
    agitation = next(f for f in study.factors if f.name == "Agitation")
    lots.loc[18, "Agitation"] = round(float(sp["Agitation"]) + 0.2 * (agitation.high - agitation.low))
    lots.loc[25, "Harvest reagent"] = "Trypsin-EDTA"
    means = true_means(study, lots[[f.name for f in study.factors]], truth)
    donor_effect = {r.name: {d: rng.normal(0.0, truth["cqas"][r.name]["noise_sd"]) for d in donors}
                    for r in study.responses}
    for r in study.responses:
        spec = truth["cqas"][r.name]
        noise = rng.normal(0.0, spec["noise_sd"], size=LOTS)
        value = means[r.name] + lots["Donor"].map(donor_effect[r.name]).to_numpy(float) + noise
        lots[r.name] = np.round(value, spec["decimals"])
    lots["Notes"] = [NOTE + (f"; excursion: {EXCURSIONS[k + 1]}" if k + 1 in EXCURSIONS else "")
                     for k in range(LOTS)]
    return lots


def csv_text(frame: pd.DataFrame) -> str:
    """The CSV text written for a frame (no index, '\\n' line ends)."""
    return frame.to_csv(index=False, lineterminator="\n")


def main() -> None:
    """Write msc_lots.csv next to this script."""
    OUT.write_text(csv_text(generate_lots()), encoding="utf-8")
    print(f"wrote {OUT.name}")


if __name__ == "__main__":
    main()
