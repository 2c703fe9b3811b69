"""Calibration of the design-space definitions by simulation from a known truth (issue 16).

Run from the repository root::

    python bench/bench_assurance.py                 # 200 data sets (a few minutes)
    python bench/bench_assurance.py --data-sets 500 --rho 0.3

Two correlated CQAs with known quadratic means, a face-centred central composite design
(4 corners, 4 face centres, 5 centre points: 13 runs), both fitted with the full quadratic model;
per data set the design space on a 21 x 21 map (see doe/space/_calibration.py). A data set succeeds for
a definition when the TRUE probability of meeting both specs is >= the threshold at every point of
the region it declares. Target (issue 16): the 95 % assured region succeeds in at least 90 % of
data sets. Also timed: the assured map of the bundled example (6 CQAs, 40 runs, 50 x 50).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from doe.space import assurance_calibration  # noqa: E402


def _time_example() -> str:
    import pandas as pd

    from doe.analysis import default_choice, fit_all, fitted_models
    from doe.space import build_predictive, opening_view, robust_set_point, space_grid
    from doe.study import Study

    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = pd.read_csv(ROOT / "data" / "msc_example_results.csv")
    fits = fit_all(study, runs, default=default_choice())  # as the pages fit
    pm = build_predictive(study, fitted_models(fits))
    view = opening_view(pm, robust=robust_set_point(pm))  # the slice the Design space page opens on
    fixed = {k: v for k, v in view.set_point.items() if k not in (view.x, view.y)}
    lines = [f"| Example map, 50 x 50 ({view.x} by {view.y}; {fixed}) | Seconds | Share of the map inside |",
             "|---|---|---|"]
    for label, opts in (("point estimate", {}), ("95 % pointwise", {"assurance": 0.95, "assurance_kind": "pointwise"}),
                        ("95 % simultaneous", {"assurance": 0.95})):
        t = time.perf_counter()
        g = space_grid(pm, view.x, view.y, fixed, n=50, **opts)
        lines.append(f"| {label} | {time.perf_counter() - t:.2f} | {100 * g.fraction_inside:.0f} % |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-sets", type=int, default=200)
    parser.add_argument("--rho", type=float, default=0.6, help="residual correlation of the two CQAs")
    parser.add_argument("--sd", type=float, default=0.5, help="residual SD of each CQA")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t = time.perf_counter()
    res = assurance_calibration(args.data_sets, rho=args.rho, sd=args.sd, seed=args.seed)
    print(f"# Design-space calibration: {res.data_sets} data sets, {res.runs}-run face-centred CCD, rho = "
          f"{res.rho:g}, residual SD {args.sd:g}, threshold {res.threshold:g}, {res.grid} x {res.grid} map "
          f"(truly >= threshold on {100 * res.true_size:.0f} % of it)\n")
    print(res.table())
    print(f"\n{time.perf_counter() - t:.0f} s\n")
    print(_time_example())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
