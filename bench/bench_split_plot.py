"""Benchmark of the optimal split-plot engine (doe.split_plot) against pyoptex and a published optimum.

Run from the repository root::

    python bench/bench_split_plot.py            # 12 random starts per engine and case
    python bench/bench_split_plot.py --starts 40

pyoptex (``pip install pyoptex``; its ``splitk_plot`` coordinate exchange, Born & Goos) is optional:
without it only our engine's rows are printed. Every design, ours or pyoptex's, is scored by the same
function (:func:`doe.split_plot.split_plot_criteria`): D = det(X'V^-1X / N)^(1/p) (larger is better),
I = trace(Mom (X'V^-1X)^-1) over the uniform region (smaller is better). Times are wall-clock
(time.perf_counter) on this machine after one warm-up call (pyoptex compiles with numba on first use).

Cases (coded -1..+1, quadratic models, variance ratio 1)
-----
1. Jones & Goos (2012, JQT 44(2), Tables 2-3): whole-plot factor w, subplot factor s, 4 whole plots of
   5 runs. Published D-optimal design: D = 0.186400 (its criterion computed here); I-optimal design:
   I = 0.717 (printed). Target: both engines reach them.
2. Two hard-to-change and three easy-to-change factors, 10 whole plots of 4 runs (40 runs, p = 21).
3. Split-split-plot: one very-hard-to-change, one hard-to-change and two easy factors, 4 whole plots x
   2 subplots x 3 runs (24 runs, p = 15).
4. Donor blocks: three factors in 4 random blocks of 5 runs (20 runs, p = 10), no whole-plot factor.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doe.model import ModelMatrix, parse_model  # noqa: E402
from doe.split_plot import plot_structure, split_plot_criteria, split_plot_design  # noqa: E402
from doe.study import Factor, Study  # noqa: E402

# (name, study factors {name: tier 0 whole plot / 1 subplot / 2 run}, runs, whole plots, subplots)
CASES = [
    ("JG2012 w|s 4x5", {"w": 0, "s": 2}, 20, 4, None),
    ("2 HTC + 3 ETC 10x4", {"A": 0, "B": 0, "C": 2, "D": 2, "E": 2}, 40, 10, None),
    ("split-split 4x2x3", {"A": 0, "B": 1, "C": 2, "D": 2}, 24, 4, 8),
    ("donors 4x5", {"A": 2, "B": 2, "C": 2}, 20, 4, None),
]
PUBLISHED = {("JG2012 w|s 4x5", "D"): 0.186400, ("JG2012 w|s 4x5", "I"): 0.717}


def _study(tiers: dict[str, int]) -> Study:
    marks = {0: True, 1: True, 2: False}
    very = any(t == 1 for t in tiers.values())
    return Study("bench", [Factor(n, low=-1, high=1, hard_to_change=("very" if very and t == 0 else marks[t]))
                           for n, t in tiers.items()])


def ours(study: Study, tiers: dict[str, int], runs: int, W: int, S: int | None, crit: str,
         starts: int) -> tuple[np.ndarray, float]:
    terms = parse_model(study, "quadratic")
    wp = [n for n, t in tiers.items() if t == 0]
    sp = [n for n, t in tiers.items() if t == 1]
    t0 = time.perf_counter()
    res = split_plot_design(study, terms, runs, W, crit, subplots=S, whole_plot_factors=wp, subplot_factors=sp,
                            seed=1, starts=starts)
    return res.U, time.perf_counter() - t0


def pyoptex_design(tiers: dict[str, int], runs: int, W: int, S: int | None, crit: str,
                   starts: int) -> tuple[np.ndarray, float] | str | None:
    try:
        from pyoptex._seed import set_seed
        from pyoptex.doe.fixed_structure import Factor as PFactor
        from pyoptex.doe.fixed_structure.splitk_plot import (
            Plot,
            create_parameters,
            create_splitk_plot_design,
            default_fn,
        )
        from pyoptex.doe.fixed_structure.splitk_plot.metric import Dopt, Iopt
        from pyoptex.utils.model import model2Y2X, partial_rsm_names
    except ImportError:
        return None
    set_seed(1)
    if all(t == 2 for t in tiers.values()):  # donors: pyoptex's fixed-structure random block effect
        from pyoptex.doe.fixed_structure import RandomEffect, create_fixed_structure_design
        from pyoptex.doe.fixed_structure import create_parameters as fixed_parameters
        from pyoptex.doe.fixed_structure import default_fn as fixed_fn
        from pyoptex.doe.fixed_structure.metric import Dopt as FDopt
        from pyoptex.doe.fixed_structure.metric import Iopt as FIopt

        block = RandomEffect(plot_structure(runs, W).whole_plot, ratio=1.0)
        fs = [PFactor(n, type="continuous") for n in tiers]
        Y2X = model2Y2X(partial_rsm_names({n: "quad" for n in tiers}), fs)
        fixed = fixed_parameters(fs, fixed_fn(fs, FDopt() if crit == "D" else FIopt(), Y2X), runs, [block])
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Y, _ = create_fixed_structure_design(fixed, n_tries=starts)
        return Y[list(tiers)].to_numpy(dtype=float), time.perf_counter() - t0
    if S is None:
        plots = [Plot(level=0, size=runs // W), Plot(level=1, size=W, ratio=1.0)]
        level = {0: plots[1], 2: plots[0]}
    else:
        plots = [Plot(level=0, size=runs // S), Plot(level=1, size=S // W, ratio=1.0),
                 Plot(level=2, size=W, ratio=1.0)]
        level = {0: plots[2], 1: plots[1], 2: plots[0]}
    factors = [PFactor(n, level[t], type="continuous") for n, t in tiers.items()]
    Y2X = model2Y2X(partial_rsm_names({n: "quad" for n in tiers}), factors)
    fn = default_fn(factors, Dopt() if crit == "D" else Iopt(), Y2X)
    params = create_parameters(factors, fn)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            Y, _ = create_splitk_plot_design(params, n_tries=starts)
        except ValueError as exc:  # pyoptex refuses some problems (its random start must be regular)
            return f"failed: {str(exc)[:60]}"
    # pyoptex lists runs with the lowest plot level fastest: whole plot = row // (runs / W), as ours
    return Y[list(tiers)].to_numpy(dtype=float), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=12)
    args = ap.parse_args()
    rows = ["| case | criterion | ours | s | pyoptex | s | published | better |", "|---|---|---|---|---|---|---|---|"]
    warm = True
    for name, tiers, runs, W, S in CASES:
        study = _study(tiers)
        terms = parse_model(study, "quadratic")
        mm = ModelMatrix(study, terms)
        structure = plot_structure(runs, W, S)
        for crit in ("D", "I"):
            if warm:  # compile pyoptex's numba code and warm our caches outside the timings
                pyoptex_design(tiers, runs, W, S, crit, 1)
                ours(study, tiers, runs, W, S, crit, 1)
                warm = False
            U, t_ours = ours(study, tiers, runs, W, S, crit, args.starts)
            v_ours = split_plot_criteria(study, mm, U, structure)[0 if crit == "D" else 1]
            po = pyoptex_design(tiers, runs, W, S, crit, args.starts)
            if po is None or isinstance(po, str):
                v_po, t_po, text_po = float("nan"), float("nan"), po or "not installed"
            else:
                v_po = split_plot_criteria(study, mm, po[0], structure)[0 if crit == "D" else 1]
                t_po, text_po = po[1], f"{v_po:.6f}"
            sign = 1 if crit == "D" else -1
            better = ("tie" if abs(v_ours - v_po) <= 1e-6 * abs(v_ours) else
                      "ours" if sign * (v_ours - v_po) > 0 else "pyoptex") if not isinstance(po, (str, type(None))) else ""
            pub = PUBLISHED.get((name, crit))
            rows.append(f"| {name} | {crit} | {v_ours:.6f} | {t_ours:.2f} | {text_po} | {t_po:.2f} | "
                        f"{'' if pub is None else pub} | {better} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
