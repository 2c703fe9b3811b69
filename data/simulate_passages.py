"""Simulate the bundled MSC seed-train passage records and one growth curve. THE DATA ARE SIMULATED.

Run from the repository root::

    python data/simulate_passages.py

It writes, next to this script:

- ``msc_passages.csv``: passage records (columns of ``doe.growth.PASSAGE_COLUMNS``) of 6 donors (D1 to D6),
  one seed train each; donors D1, D3, D5 follow layout 1, donors D2, D4, D6 layout 2:

  ========  ===========================  ===========================
  passage   layout 1                     layout 2
  ========  ===========================  ===========================
  1         T-175 x 1                    T-175 x 1
  2         T-225 x 2 (parallel)         HYPERFlask x 1
  3         CellSTACK-10 x 1             CellSTACK-10 x 2 (parallel, scale-out)
  4         CellSTACK-40 x 1 and CellCube-25 x 1, in parallel (scale-out vs scale-up, paired by donor)
  ========  ===========================  ===========================

- ``msc_growth_curve.csv``: 12-hourly counts (cells/cm²) of one T-175 flask over 7 days.

Model of a passage row (one vessel): seeded cells = area x Normal(2,000, 100) cells/cm² (rounded to
1,000 cells); fold expansion = exp(log 6.5 + u_donor + e), u_donor ~ N(0, 0.1²) per donor, e ~ N(0, 0.08²)
per vessel, the same mean in every vessel family (CellCube-25 x 0.98, equivalent to CellSTACK within
0.8-1.25); harvested = seeded x fold (rounded to 1,000 cells); hours ~ N(96, 3²) rounded to 0.5 h;
viability ~ Uniform(92, 97) % rounded to 0.1. Each vessel is seeded at the density drawn; the cells carried
from one passage to the next are not balanced (the example is for the kinetics, not a feasible plan).

Growth curve: logistic growth after a lag, y(t) = y0 for t <= lag, else
K / (1 + (K / y0 - 1) exp(-mumax (t - lag))), y0 = 2,000 cells/cm², lag = 1 day, mumax = 0.45 /day,
K = 40,000 cells/cm², times lognormal counting noise (sd 0.04 on log), rounded to 10 cells/cm².

Random numbers: ``numpy.random.default_rng(SEED)``; every row's Notes cell says the data are simulated.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from doe.scale import read_catalogue  # noqa: E402

SEED = 20261207
NOTE = "Simulated example (data/simulate_passages.py)"
PASSAGES_OUT = HERE / "msc_passages.csv"
CURVE_OUT = HERE / "msc_growth_curve.csv"
DONORS = ("D1", "D2", "D3", "D4", "D5", "D6")
TRAINS = {
    1: [(1, "T-175", 1), (2, "T-225", 2), (3, "CellSTACK-10", 1), (4, "CellSTACK-40", 1), (4, "CellCube-25", 1)],
    2: [(1, "T-175", 1), (2, "HYPERFlask", 1), (3, "CellSTACK-10", 2), (4, "CellSTACK-40", 1), (4, "CellCube-25", 1)],
}
FOLD = 6.5
FAMILY_RATIO = {"CellCube": 0.98}
DONOR_SD, RESIDUAL_SD = 0.10, 0.08


def generate_passages(seed: int = SEED) -> pd.DataFrame:
    """The simulated passage table (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    vessels = {v.name: v for v in read_catalogue()}
    donor_effect = {d: float(rng.normal(0.0, DONOR_SD)) for d in DONORS}
    rows = []
    for k, donor in enumerate(DONORS):
        for passage, name, count in TRAINS[1 + k % 2]:
            v = vessels[name]
            for _ in range(count):
                seeded = round(v.area_cm2 * rng.normal(2000.0, 100.0), -3)
                log_fold = np.log(FOLD * FAMILY_RATIO.get(v.family, 1.0)) + donor_effect[donor] \
                    + rng.normal(0.0, RESIDUAL_SD)
                harvested = round(seeded * float(np.exp(log_fold)), -3)
                hours = round(2 * rng.normal(96.0, 3.0)) / 2
                viability = round(float(rng.uniform(92.0, 97.0)), 1)
                rows.append({"Donor": donor, "Passage": passage, "Vessel": name, "Seeded cells": int(seeded),
                             "Harvested cells": int(harvested), "Hours": hours, "Viability": viability,
                             "Area (cm2)": v.area_cm2, "Notes": NOTE})
    return pd.DataFrame(rows)


def generate_growth_curve(seed: int = SEED) -> pd.DataFrame:
    """The simulated 12-hourly growth curve of one T-175 flask (deterministic for a given seed)."""
    rng = np.random.default_rng(seed + 1)
    y0, lag, mumax, K = 2000.0, 1.0, 0.45, 40000.0
    days = np.arange(0.0, 7.01, 0.5)
    grown = K / (1.0 + (K / y0 - 1.0) * np.exp(-mumax * (days - lag)))
    y = np.where(days <= lag, y0, grown) * np.exp(rng.normal(0.0, 0.04, days.size))
    return pd.DataFrame({"Day": days, "Cells per cm2": np.round(y, -1).astype(int), "Notes": NOTE})


def csv_text(frame: pd.DataFrame) -> str:
    """The CSV text written for a frame (no index, '\\n' line ends)."""
    return frame.to_csv(index=False, lineterminator="\n")


def main() -> None:
    """Write msc_passages.csv and msc_growth_curve.csv next to this script."""
    PASSAGES_OUT.write_text(csv_text(generate_passages()), encoding="utf-8")
    CURVE_OUT.write_text(csv_text(generate_growth_curve()), encoding="utf-8")
    print(f"wrote {PASSAGES_OUT.name} and {CURVE_OUT.name}")


if __name__ == "__main__":
    main()
