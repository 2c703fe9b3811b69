"""Benchmark of the design space (doe.space) on the bundled example, and its calibration.

Run from the repository root::

    python bench/bench_space.py                 # timings (about 10 s)
    python bench/bench_space.py --calibration   # + calibration against the simulation truth (~1-2 min)

Cases
-----
1. Build the posterior predictive of the 6 CQAs with specs (full quadratic
   models, 40 runs) including the default 4000 draws. Informational.
2. One probability map: 50 x 50 grid of Agitation x Seeding density, all CQAs,
   default draws, categorical factors fixed. Target: under 1 s.
3. Nine panels: every Surface x Medium combination (Harvest reagent fixed).
   Target: under 5 s.
4. PARs at a set point plus its report (what a set-point slider move recomputes).
   Target: under 0.1 s.
5. The robust set point (27 level combinations x 21 x 21 grid, then pattern
   search; run when the Design space page first opens). Target: under 0.3 s.
6. The probability-map figure of one panel (plotly, with hover for every cell).
   Target: under 0.1 s.

Times are medians of 5 repeats with the draws cached, as the page reuses them.
The calibration simulates the example design 40 times from
data/msc_example_truth.json, refits, and reports the average TRUE probability
of meeting every spec over the settings declared inside the design space
(threshold 0.9), with its standard error over replicates.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from doe.fit import fit_model  # noqa: E402
from doe.plots.space import probability_map  # noqa: E402
from doe.runs import read_results  # noqa: E402
from doe.space import (  # noqa: E402
    build_predictive,
    proven_acceptable_ranges,
    robust_set_point,
    set_point_report,
    space_grid,
)
from doe.study import Study  # noqa: E402

PANEL = {"Medium": "hPL 5%", "Surface": "CellBIND", "Harvest reagent": "Accutase"}


def timed(fn, repeats: int = 5) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def nine_panels(pm, study: Study) -> list:
    return [space_grid(pm, "Agitation", "Seeding density",
                       {"Medium": m, "Surface": s, "Harvest reagent": "Accutase"})
            for s in study.factor("Surface").levels for m in study.factor("Medium").levels]


def timings() -> bool:
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    fits = {r: fit_model(study, runs, r, "quadratic") for r in study.response_names}
    t_build, pm = timed(lambda: build_predictive(study, fits))
    t_one, grid = timed(lambda: space_grid(pm, "Agitation", "Seeding density", PANEL))
    t_nine, panels = timed(lambda: nine_panels(pm, study))
    set_point = {"Medium": "FBS 10%", "Surface": "ULA", "Harvest reagent": "Accutase",
                 "Agitation": 42.0, "Seeding density": 1400.0}
    t_par, par = timed(lambda: (proven_acceptable_ranges(pm, set_point), set_point_report(pm, set_point)))
    t_robust, best = timed(lambda: robust_set_point(pm))
    box = {f: par[0][f] for f in ("Agitation", "Seeding density") if f in par[0]}
    t_fig, _ = timed(lambda: probability_map(grid, study, set_point=set_point, par=box))
    mc = max(g.mc_se for g in panels)
    rows = [
        ("Build predictive model (6 CQAs with specs, 4000 draws)", t_build, None),
        ("Probability map 50 x 50, all CQAs, one panel", t_one, 1.0),
        ("Nine Surface x Medium panels (50 x 50 each)", t_nine, 5.0),
        ("PARs + set-point report (5 factors, 201-point scans + refinement)", t_par, 0.1),
        ("Robust set point (27 combinations x 21 x 21, then pattern search)", t_robust, 0.3),
        ("Probability-map figure, one panel (50 x 50, hover per cell)", t_fig, 0.1),
    ]
    print("# Design-space benchmark\n")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"- draws: {grid.draws}; max Monte Carlo SE over the nine panels: {mc:.4f} "
          f"(bound 0.5/sqrt({grid.draws}) = {0.5 / grid.draws ** 0.5:.4f}; target < 0.01)")
    print(f"- one panel ({', '.join(PANEL.values())}): {grid.fraction_inside:.1%} of the feasible "
          f"grid inside at P >= 0.9; residual correlation from {pm.shared_runs} shared runs, "
          f"{pm.residual_df:g} residual df")
    print(f"- robust set point: {best['settings']} with P = {best['probability']:.3f}\n")
    print("| Case | Time (s) | Target (s) | Status |\n|---|---|---|---|")
    ok = mc < 0.01
    for name, t, target in rows:
        status = "info" if target is None else ("PASS" if t < target else "FAIL")
        ok &= status != "FAIL"
        print(f"| {name} | {t:.3f} | {'-' if target is None else f'< {target:g}'} | {status} |")
    print(f"| Max Monte Carlo SE of the joint probability | {mc:.4f} | < 0.01 | {'PASS' if mc < 0.01 else 'FAIL'} |")
    return ok


def calibration() -> bool:
    from tests.test_space import calibration_study

    print("\n# Calibration against the simulation truth (threshold 0.9)\n")
    print("| Models | Reps | Mean true P inside (SE) | Pooled | True P at the edge (0.90 <= P-hat < 0.95) | "
          "Share inside with true P < 0.9 | Declared / true share inside | Status |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for model in ("quadratic", "reduced"):
        t = time.perf_counter()
        out = calibration_study(reps=40, model=model, draws=4000)
        passed = out["mean_true_probability_inside"] >= out["threshold"] - 2 * out["se"]
        ok &= passed
        print(f"| {model} ({time.perf_counter() - t:.0f} s) | {out['reps']} | "
              f"{out['mean_true_probability_inside']:.4f} ({out['se']:.4f}) | "
              f"{out['pooled_true_probability_inside']:.4f} | "
              f"{out['mean_true_probability_at_edge']:.4f} ({out['edge_points']} points) | "
              f"{out['share_inside_with_true_p_below_threshold']:.3f} | "
              f"{out['declared_fraction']:.3f} / {out['true_fraction']:.3f} | {'PASS' if passed else 'FAIL'} |")
    print(f"\n{out['grid_points']} feasible grid points (11 levels per numeric factor x 27 level "
          "combinations); PASS: mean true probability >= 0.9 - 2 SE.")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", action="store_true", help="also run the 40-replicate calibration")
    args = parser.parse_args()
    ok = timings()
    if args.calibration:
        ok &= calibration()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
