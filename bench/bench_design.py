"""Benchmark of the optimal-design engine (doe.optimal) against published and library results.

Run from the repository root::

    python bench/bench_design.py           # reference search with 1,000 starts (minutes)
    python bench/bench_design.py --quick   # reference search with 100 starts

Prints a markdown table with a PASS/FAIL per target. Times are wall-clock
(time.perf_counter) on this machine; nothing is cached between runs.

Cases
-----
1. Exact D-optimal design, full quadratic in 3 continuous factors, 15 runs.
   Best known: AlgDesign desDE, D = 3.675919 on the -2..2 grid = 0.45949 in
   -1..+1 units (Wheeler, AlgDesign vignette; confirmed by a 400-start Fedorov
   exchange). Also solved with pydoe.optimal_design (5^3 candidate grid on
   [-1, 1]^3, degree 2), whose D is recomputed here on our model matrix.
   Target: ours matches 0.45949 to 4 significant figures in under 2 s.
2. Same problem, I-optimal, on the 5-level grid (moments over the candidate
   list, AlgDesign's convention): AlgDesign's optFederov desIE has I = 8.096772
   (= N x our i_criterion). Target: ours is no worse.
3. The bundled MSC example (3 three-level categorical + 2 continuous factors,
   one constraint), quadratic model, 40 runs, default settings.
   Target: under 5 s, and D within 1 % of the best D known: the best of a
   reference search of 1,000 random starts (100 with --quick) and our run.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doe.model import ModelMatrix, actual_frame, parse_model
from doe.optimal import DEFAULT_ROUNDS, design_criteria, optimal_design
from doe.study import Factor, Study

BEST_KNOWN_D_RAW = 3.675919  # AlgDesign desDE, factors on -2..2
BEST_KNOWN_D = BEST_KNOWN_D_RAW / 8  # 0.45949 in -1..+1 units (quadratic, 3 factors: 2^3)
ALGDESIGN_I = 8.096772  # AlgDesign desIE, I = N * trace(M (X'X)^-1), M over the 5^3 list
PYDOE_METHODS = ("sequential", "simple_exchange", "fedorov", "modified_fedorov", "detmax")


def main() -> int:
    args = _parse_args()
    rows: list[list[str]] = []
    ok = [
        _case_quadratic(rows, args.seed),
        _case_pydoe(rows),
        _case_i_optimal(rows, args.seed),
        _case_msc(rows, args.seed, 100 if args.quick else args.ref_starts),
    ]
    _print_header(args)
    _print_table(rows)
    print(f"\nOverall: {'PASS' if all(ok) else 'FAIL'}")
    return 0 if all(ok) else 1


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="reference search with 100 starts")
    p.add_argument("--ref-starts", type=int, default=1000, help="starts of the MSC reference search")
    p.add_argument("--seed", type=int, default=1, help="seed of our default-settings runs")
    return p.parse_args()


def cube3() -> Study:
    return Study("3-factor cube", [Factor(n, low=-1, high=1) for n in ("X1", "X2", "X3")])


def grid3() -> Study:
    levels = [-2, -1, 0, 1, 2]
    return Study("5^3 grid", [Factor(n, kind="discrete", levels=levels) for n in ("X1", "X2", "X3")])


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def _status(passed: bool | None) -> str:
    return "info" if passed is None else ("PASS" if passed else "FAIL")


# -- cases ----------------------------------------------------------------------------------
def _case_quadratic(rows: list[list[str]], seed: int) -> bool:
    study = cube3()
    res, secs = _timed(optimal_design, study, parse_model(study, "quadratic"), 15, "D", seed=seed)
    d = res.d_criterion
    passed = d >= BEST_KNOWN_D * (1 - 1e-4) and f"{d:.4g}" == f"{BEST_KNOWN_D:.4g}" and secs < 2.0
    passed = passed or (d > BEST_KNOWN_D and secs < 2.0)
    rows.append([
        "3-factor quadratic, N=15, D", f"ours, coordinate exchange ({res.starts} starts)",
        f"D = {d:.6f} (x8 = {8 * d:.6f})", f"best known {BEST_KNOWN_D:.5f} (x8 = {BEST_KNOWN_D_RAW})",
        f"{secs:.2f}", "4 sig. fig., < 2 s", _status(passed),
    ])
    return passed


def _case_pydoe(rows: list[list[str]]) -> bool:
    try:
        import pydoe
    except ImportError:
        rows.append(["3-factor quadratic, N=15, D", "pydoe", "not installed", "", "", "", "info"])
        return True
    study = cube3()
    mm = ModelMatrix(study, parse_model(study, "quadratic"))
    cand = np.array(list(itertools.product(np.linspace(-1, 1, 5), repeat=3)))
    results = []
    for method in PYDOE_METHODS:
        (design, _), secs = _timed(pydoe.optimal_design, cand, 15, 2, "D", method=method)
        results.append((round(design_criteria(study, mm, design)[0], 10), -secs, method))
    d, neg_secs, method = max(results)
    detail = ", ".join(f"{m} {v:.5f} in {-s:.2f} s" for v, s, m in results)
    rows.append([
        "3-factor quadratic, N=15, D", f"pydoe {pydoe.__version__} best: {method}",
        f"D = {d:.6f} (x8 = {8 * d:.6f})", f"all: {detail}", f"{-neg_secs:.2f}", "comparison",
        _status(None),
    ])
    return True


def _case_i_optimal(rows: list[list[str]], seed: int) -> bool:
    study = grid3()
    res, secs = _timed(optimal_design, study, parse_model(study, "quadratic"), 15, "I", seed=seed)
    value = 15 * res.i_criterion
    passed = value <= ALGDESIGN_I * (1 + 1e-6)
    rows.append([
        "3-factor quadratic, N=15, I (5^3 grid)", f"ours ({res.starts} starts)",
        f"N x I = {value:.6f}", f"AlgDesign desIE {ALGDESIGN_I}", f"{secs:.2f}", "<= AlgDesign",
        _status(passed),
    ])
    return passed


def _case_msc(rows: list[list[str]], seed: int, ref_starts: int) -> bool:
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    terms = parse_model(study, "quadratic")
    res, secs = _timed(optimal_design, study, terms, 40, "D", seed=seed)
    feasible = bool(study.feasible(actual_frame(study, res.U)).all())
    ref, ref_secs = _timed(optimal_design, study, terms, 40, "D", seed=10_000 + seed,
                           starts=ref_starts, time_limit=math.inf)
    best = max(ref.d_criterion, res.d_criterion)
    ratio = res.d_criterion / best
    passed = secs < 5.0 and ratio >= 0.99 and feasible
    rows.append([
        "MSC example, quadratic, N=40, D", f"ours, default settings ({res.starts} starts)",
        f"D-eff = {100 * res.d_criterion:.3f} % ({100 * ratio:.2f} % of best)",
        f"best of {ref.starts} starts: {100 * ref.d_criterion:.3f} % in {ref_secs:.0f} s",
        f"{secs:.2f}", "< 5 s, >= 99 % of best", _status(passed),
    ])
    if not feasible:
        rows.append(["MSC example", "constraint check", "a run breaks the constraint", "", "", "", "FAIL"])
    return passed


# -- output ------------------------------------------------------------------------------------
def _print_header(args: argparse.Namespace) -> None:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print("# Optimal-design benchmark\n")
    print(f"- machine: {platform.machine()} {platform.processor() or ''}".rstrip()
          + f", {os.cpu_count()} cores ({usable} usable), load average {load}")
    print(f"- Python {platform.python_version()}, numpy {np.__version__}; single process")
    print(f"- mode: {'--quick' if args.quick else 'full'}; our runs use seed {args.seed}, "
          f"default starts, {DEFAULT_ROUNDS} perturbation rounds per start")
    print("- D = det(X'X/N)^(1/p) in coded -1..+1 units (D-efficiency = 100 D); times are wall clock\n")


def _print_table(rows: list[list[str]]) -> None:
    head = ["Case", "Method", "Result", "Reference", "Time (s)", "Target", "Status"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
