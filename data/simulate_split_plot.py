"""Simulate results for the bundled split-plot example. THE DATA ARE SIMULATED.

Run from the repository root::

    python data/simulate_split_plot.py

It writes, next to this script:

- ``msc_split_plot_design.csv``: ``generate(study, 'optimal', model=MODEL, runs=32, whole_plots=8,
  seed=SEED)`` for data/msc_split_plot.yaml (Surface hard to change: constant within each whole plot of
  4 runs), with a ``Donor`` column: the 4 runs of every whole plot use 4 of the 6 donors, one each, at
  random (donors crossed with whole plots);
- ``msc_split_plot_results.csv``: that run sheet with Viability and Fold expansion from the true model
  below plus a donor effect, a whole-plot effect and a run error, and a Notes cell saying SIMULATED;
- ``msc_split_plot_truth.json``: the true coefficients (coded units), the variance components.

True model (coded units; Surface effect-coded +1 Standard TC, -1 CellBIND):

- Viability (%) = 88 + 1.0 Surface(Standard TC) + 1.5 hPL - 1.2 Seeding density - 1.0 Seeding density^2
  + donor N(0, 2.0^2) + whole plot N(0, 1.0^2) + run N(0, 1.0^2);
- Fold expansion = 6.0 - 0.6 Surface(Standard TC) + 0.8 hPL - 1.1 Seeding density + 0.4 hPL x Seeding density
  - 0.3 hPL^2 + donor N(0, 0.8^2) + whole plot N(0, 0.4^2) + run N(0, 0.35^2);
- the donor effects of the two CQAs are correlated (0.6): a donor that grows well also survives well.

Donor variation is the largest component, as in MSC manufacturing (docs/domain.md: donor and lot
variability); the values are rounded to 1 (Viability) and 2 (Fold expansion) decimals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from doe.generators import generate  # noqa: E402
from doe.model import coded_array  # noqa: E402
from doe.study import Study  # noqa: E402

SEED = 20261207
RUNS, WHOLE_PLOTS, DONORS = 32, 8, 6
MODEL = "quadratic"
NOTE = f"SIMULATED data (data/simulate_split_plot.py, seed {SEED}): not measured"
SD = {"Viability": {"Donor": 2.0, "Whole plot": 1.0, "Residual": 1.0},
      "Fold expansion": {"Donor": 0.8, "Whole plot": 0.4, "Residual": 0.35}}
DONOR_CORRELATION = 0.6


def truth(u: np.ndarray) -> dict[str, np.ndarray]:
    """Mean of each CQA at coded settings u = (Surface +1/-1, Seeding density, hPL)."""
    s, d, h = u[:, 0], u[:, 1], u[:, 2]
    return {"Viability": 88 + 1.0 * s + 1.5 * h - 1.2 * d - 1.0 * d ** 2,
            "Fold expansion": 6.0 - 0.6 * s + 0.8 * h - 1.1 * d + 0.4 * h * d - 0.3 * h ** 2}


def main() -> None:
    study = Study.load(HERE / "msc_split_plot.yaml")
    design = generate(study, "optimal", model=MODEL, runs=RUNS, whole_plots=WHOLE_PLOTS, seed=SEED)
    rng = np.random.default_rng(SEED)
    table = design.table.copy()
    donors = np.empty(len(table), dtype=object)
    for wp in table["Whole plot"].unique():
        rows = np.flatnonzero(table["Whole plot"].to_numpy() == wp)
        donors[rows] = [f"D{k + 1}" for k in rng.permutation(DONORS)[: len(rows)]]
    table.insert(table.columns.get_loc("Whole plot") + 1, "Donor", donors)
    design_csv = table.to_csv(index=False)
    (HERE / "msc_split_plot_design.csv").write_text(design_csv, encoding="utf-8")

    coded = coded_array(study, table)
    u = coded.copy()
    u[:, 0] = np.where(coded[:, 0] == 0, 1.0, -1.0)  # effect code of Surface: Standard TC +1, CellBIND -1
    means = truth(u)
    cov = np.array([[1.0, DONOR_CORRELATION], [DONOR_CORRELATION, 1.0]])
    donor_z = rng.multivariate_normal(np.zeros(2), cov, size=DONORS)
    donor_index = np.array([int(d[1:]) - 1 for d in donors])
    wp_labels = table["Whole plot"].to_numpy()
    wp_levels = sorted(set(wp_labels))
    out = table.copy()
    for j, (cqa, decimals) in enumerate((("Viability", 1), ("Fold expansion", 2))):
        sd = SD[cqa]
        wp_effect = dict(zip(wp_levels, rng.normal(0, sd["Whole plot"], len(wp_levels))))
        y = (means[cqa] + sd["Donor"] * donor_z[donor_index, j]
             + np.array([wp_effect[w] for w in wp_labels]) + rng.normal(0, sd["Residual"], len(out)))
        out[cqa] = np.round(y, decimals)
    out["Notes"] = NOTE
    out.to_csv(HERE / "msc_split_plot_results.csv", index=False)
    (HERE / "msc_split_plot_truth.json").write_text(json.dumps({
        "note": NOTE, "model": MODEL, "runs": RUNS, "whole_plots": WHOLE_PLOTS, "donors": DONORS,
        "standard_deviations": SD, "donor_correlation": DONOR_CORRELATION,
        "coefficients_coded": {
            "Viability": {"Intercept": 88, "Surface[Standard TC]": 1.0, "hPL": 1.5, "Seeding density": -1.2,
                          "Seeding density^2": -1.0},
            "Fold expansion": {"Intercept": 6.0, "Surface[Standard TC]": -0.6, "hPL": 0.8,
                               "Seeding density": -1.1, "Seeding density:hPL": 0.4, "hPL^2": -0.3}},
    }, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
