"""Time to generate every regular fraction the Design page offers on demand, from the catalogue.

Run from the repository root::

    python bench/bench_fractions.py

For every k = 7..50 factors in 64 runs and k = 8..50 in 128 runs: the minimum-aberration design
(doe.fractional.fraction), its defining relation and its alias table, timed together (wall clock,
best of 3). Target: the slowest under 1 s, so the page answers at once. Correctness is tested in
tests/test_fraction_catalogue.py; this script only measures time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doe import fractional  # noqa: E402

TARGET_S = 1.0


def one(k: int, runs: int) -> float:
    """Best of 3 wall-clock seconds for one design, its defining relation and its aliases."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        frac = fractional.fraction(k, runs=runs)
        _ = frac.defining_relation, fractional.aliases(frac, [str(i) for i in range(k)])
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    cases = [(64, k) for k in range(7, 51)] + [(128, k) for k in range(8, 51)]
    times = {(runs, k): one(k, runs) for runs, k in cases}
    (runs, k), slowest = max(times.items(), key=lambda kv: kv[1])
    total = sum(times.values())
    print("| Designs | Slowest | Which | Total | Target | Status |\n|---|---|---|---|---|---|")
    status = "PASS" if slowest < TARGET_S else "FAIL"
    print(f"| {len(cases)} (64 and 128 runs, up to 50 factors) | {slowest:.3f} s | {k} factors in {runs} runs "
          f"| {total:.1f} s | < {TARGET_S:g} s each | {status} |")
    return 0 if status == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
