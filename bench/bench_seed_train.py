"""Benchmark of the measured seed train: what the Seed train, Scale comparison and Scale planner pages compute.

Run from the repository root::

    python bench/bench_seed_train.py [--json OUT.json]

Cases (median wall-clock of 7 repeats, after one warm-up):

1. The bundled example (data/msc_passages.csv, 36 passages of 6 donors): read and check the sheet
   (``read_passages``), growth kinetics per vessel family (``growth_summary``: one REML mixed model per family
   and statistic), the paired TOST of CellCube-25 against CellSTACK-40 (``tost``), its sample size
   (``equivalence_sample_size``, the exact power integrated and solved for n), the easy-linear growth curve
   (``fit_growth_curve``) and the plan from the measured growth (``doe.report.seed_train.measured_plan``: both
   strategies, equivalence checked, predicted vs recorded). Target: each under 0.3 s, so a page reacts
   within a fraction of a second.
2. A large sheet: 200 donors x the example's seed train (1,200 passages): ``read_passages`` and
   ``growth_summary`` (16 REML fits with Kenward-Roger df, whose cost grows with the cube of the passages
   per family). Target: under 10 s; real seed-train sheets have tens to a few hundred rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from _timing import timed  # noqa: E402  (bench/ is the script's folder)

from doe.equivalence import equivalence_sample_size, tost  # noqa: E402
from doe.growth import GROWTH_CURVE_FILE, PASSAGES_FILE, growth_summary, passage_kinetics, read_passages  # noqa: E402
from doe.growth_curve import fit_growth_curve, read_growth_curve  # noqa: E402
from doe.report.seed_train import measured_plan  # noqa: E402


def main() -> None:
    """Run both cases and print (and optionally write) the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the timings as JSON")
    args = parser.parse_args()
    data = PASSAGES_FILE.read_bytes()
    table = read_passages(data, PASSAGES_FILE.name).table
    kinetics = passage_kinetics(table)
    t, y = read_growth_curve(GROWTH_CURVE_FILE, "Day", "Cells per cm2")
    example = {
        "read_passages": timed(lambda: read_passages(data, PASSAGES_FILE.name)),
        "growth_summary": timed(lambda: growth_summary(table)),
        "tost_paired_log": timed(lambda: tost(kinetics, "Fold expansion", "Vessel", "CellSTACK-40", "CellCube-25",
                                              (0.8, 1.25), paired=True, id="Donor", log=True)),
        "equivalence_sample_size": timed(lambda: equivalence_sample_size(0.1, (0.8, 1.25), 1.0, 0.05, 0.8, log=True)),
        "fit_growth_curve": timed(lambda: fit_growth_curve(t, y)),
        "measured_plan": timed(lambda: measured_plan(table)),
    }
    big = pd.concat([table.assign(Donor=table["Donor"] + f"-{k}") for k in range(200 // 6 + 1)],
                    ignore_index=True)
    big = big[big["Donor"].isin(list(dict.fromkeys(big["Donor"]))[:200])].reset_index(drop=True)
    big_bytes = big.to_csv(index=False).encode("utf-8")
    large = {"passages": len(big),
             "read_passages": timed(lambda: read_passages(big_bytes, "big.csv"), 3),
             "growth_summary": timed(lambda: growth_summary(big), 3)}
    out = {"python": platform.python_version(), "machine": platform.machine(), "example": example, "large": large}
    for name, sec in example.items():
        print(f"example  {name:<25} {sec * 1000:8.1f} ms  {'ok' if sec < 0.3 else 'SLOW (target 0.3 s)'}")
    for name in ("read_passages", "growth_summary"):
        sec = large[name]
        print(f"{large['passages']} passages {name:<17} {sec * 1000:8.1f} ms  {'ok' if sec < 10 else 'SLOW (target 10 s)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
