"""Calibration of the design space with random donors, by simulation from a known truth (task H4).

Run from the repository root::

    python bench/bench_random_effects.py            # 200 data sets (a few minutes)
    python bench/bench_random_effects.py --quick    # 40 data sets (about a minute)
    python bench/bench_random_effects.py --donors 8 --donor-var 2

An MSC-like study: two numeric factors A and B (coded -1..1), ``--donors`` donors with 5 runs each,
either crossed with the factors (every donor at the 4 corners and the centre) or as whole plots of A
(each donor at one level of A, B varied within the donor), one CQA
Y = 10 + 1.0 A - 0.5 B + u_donor + e with u ~ N(0, donor_var), e ~ N(0, resid_var), spec Y <= 11.5.
The TRUE probability that a run with a NEW donor meets the spec is Phi((11.5 - mu(x)) / sqrt(donor_var +
resid_var)) (closed form); for the average donor it is Phi((11.5 - mu(x)) / sqrt(resid_var)).

Per data set the CQA is analysed three ways at five settings:

- ``mixed, new``: REML fit with a random donor intercept (doe.mixed.fit_mixed) and the design-space
  probability for a new donor (doe.space, random_effects="new"), the question the process asks;
- ``mixed, average``: the same fit, the probability for the average donor ("average");
- ``OLS (donor ignored)``: the fully randomised analysis of today's path, donors pooled into the residual.

Printed per method and setting: the mean estimated probability against the true new-donor
probability (bias), the RMSE; the share of data sets whose 95 % lower credible bound (pointwise
assurance, doe.space.lower_bound_at) is at or below the truth (coverage, target >= 95 %); and the
decision "in the design space at threshold 0.9": among the data sets that declare a setting inside, the
share where the setting is truly inside for a new donor (the false-inside rate is 1 minus it). Last, the
calibration of the predictive distribution itself: a run with a new donor is simulated at each setting
and the share of data sets in which it falls below the predictive 90 / 95 / 99 % upper bound is printed
(a calibrated predictive gives 90 / 95 / 99 %).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from doe.fit import fit_model  # noqa: E402
from doe.space import build_predictive, lower_bound_at, probability  # noqa: E402
from doe.study import Study  # noqa: E402

UPPER = 11.5
SETTINGS = pd.DataFrame({"A": [-1.0, -0.5, 0.0, 0.5, 1.0], "B": [0.0, 0.0, 0.0, 0.0, 0.0]})
THRESHOLD = 0.9
ASSURANCE = 0.95


def _mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(10 + 1.0 * a - 0.5 * b)


def _study() -> Study:
    return Study.from_dict({"name": "Donor calibration", "random_effects": ["Donor"],
                            "factors": [{"name": "A", "low": -1, "high": 1}, {"name": "B", "low": -1, "high": 1}],
                            "responses": [{"name": "Y", "goal": "minimize", "upper": UPPER}]})


def _design(donors: int, layout: str) -> tuple[pd.DataFrame, np.ndarray]:
    """5 runs per donor. "crossed": every donor at the 4 corners and the centre (donors are blocks);
    "whole-plot": each donor at one level of A (-1, 1, 0 in turn, as a hard-to-change factor or a
    donor-specific condition), B over 5 levels within the donor."""
    if layout == "crossed":
        rows = [p for _ in range(donors) for p in [(-1, -1), (1, -1), (-1, 1), (1, 1), (0, 0)]]
    else:
        rows = [((-1.0, 1.0, 0.0)[d % 3], b) for d in range(donors) for b in (-1, -0.5, 0, 0.5, 1)]
    frame = pd.DataFrame(rows, columns=["A", "B"], dtype=float)
    return frame, np.repeat(np.arange(donors), 5)


def run(data_sets: int, donors: int, donor_var: float, resid_var: float, draws: int, seed: int,
        layout: str = "crossed") -> str:
    study = _study()
    design, donor = _design(donors, layout)
    labels = np.array([f"Donor {k + 1}" for k in donor])
    mu = _mean(SETTINGS.A.to_numpy(), SETTINGS.B.to_numpy())
    truth = stats.norm.cdf((UPPER - mu) / math.sqrt(donor_var + resid_var))  # a new donor
    truth_avg = stats.norm.cdf((UPPER - mu) / math.sqrt(resid_var))
    methods = ("mixed, new", "mixed, average", "OLS (donor ignored)")
    est = {k: np.empty((data_sets, len(SETTINGS))) for k in methods}
    low = {k: np.empty((data_sets, len(SETTINGS))) for k in methods}
    pit = {k: np.empty((data_sets, len(SETTINGS))) for k in methods}
    comps = np.empty((data_sets, 2))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for r in range(data_sets):
        u = rng.normal(0, math.sqrt(donor_var), donors)
        y = _mean(design.A.to_numpy(), design.B.to_numpy()) + u[donor] + rng.normal(0, math.sqrt(resid_var), len(design))
        runs = design.assign(Y=y, Donor=labels)
        fm = fit_model(study, runs, "Y", "linear")  # REML with a random donor (doe.mixed.fit_mixed)
        assert fm.mixed is not None, fm.notes if hasattr(fm, "notes") else "no mixed model"
        ols = build_predictive(study, {"Y": fit_model(study, runs, "Y", "linear", random_effects=False)}, seed=r,
                               draws=draws)
        comps[r] = fm.mixed.components["Donor"], fm.mixed.components["Residual"]
        pms = {"mixed, new": build_predictive(study, {"Y": fm}, seed=r, draws=draws, random_effects="new"),
               "mixed, average": build_predictive(study, {"Y": fm}, seed=r, draws=draws, random_effects="average"),
               "OLS (donor ignored)": ols}
        X = fm.model_matrix(SETTINGS)
        y_new = mu + rng.normal(0, math.sqrt(donor_var), len(SETTINGS)) + rng.normal(0, math.sqrt(resid_var),
                                                                                   len(SETTINGS))  # new donors
        for k, pm in pms.items():
            est[k][r] = probability(pm, SETTINGS, draws=draws, seed=r).joint
            dr = pm.draws(draws, r)
            pred = X @ dr.coef[0] + dr.noise[0][None, :]  # posterior predictive draws at each setting
            pit[k][r] = np.mean(pred <= y_new[:, None], axis=1)
            low[k][r] = [lower_bound_at(pm, dict(row), ASSURANCE, draws=draws, seed=r)
                         for row in SETTINGS.to_dict(orient="records")]
    elapsed = time.perf_counter() - t0
    lines = [f"{data_sets} data sets, {donors} donors x 5 runs ({layout}), donor variance {donor_var:g}, residual variance "
             f"{resid_var:g}, {draws} draws; {elapsed:.0f} s",
             f"REML estimates: donor variance mean {comps[:, 0].mean():.3f} (median {np.median(comps[:, 0]):.3f}, "
             f"{100 * np.mean(comps[:, 0] <= 1e-8):.0f} % at 0), residual {comps[:, 1].mean():.3f}", "",
             "| Setting (A, B) | True P, new donor | True P, average donor | Method | Mean estimate | Bias (vs new) "
             f"| RMSE | {ASSURANCE:g} lower bound <= truth | Declared inside (P >= {THRESHOLD:g}) | Truly inside "
             "when declared |", "|---|---|---|---|---|---|---|---|---|---|"]
    for j, row in SETTINGS.iterrows():
        for k in methods:
            e = est[k][:, j]
            inside = e >= THRESHOLD
            truly = "n/a" if not inside.any() else f"{100 * float(truth[j] >= THRESHOLD):.0f} %"
            lines.append(f"| ({row.A:g}, {row.B:g}) | {truth[j]:.3f} | {truth_avg[j]:.3f} | {k} | {e.mean():.3f} | "
                         f"{e.mean() - truth[j]:+.3f} | {math.sqrt(np.mean((e - truth[j]) ** 2)):.3f} | "
                         f"{100 * np.mean(low[k][:, j] <= truth[j]):.1f} % | {100 * inside.mean():.0f} % | {truly} |")
    lines.append("")
    lines.append("Summary over the settings (mean |bias| vs the new-donor truth; coverage of the lower bound):")
    for k in methods:
        bias = np.mean(np.abs(est[k].mean(axis=0) - truth))
        cover = np.mean(low[k] <= truth[None, :])
        wrong = np.mean((est[k] >= THRESHOLD) & (truth[None, :] < THRESHOLD))
        lines.append(f"- {k}: mean |bias| {bias:.3f}, lower-bound coverage {100 * cover:.1f} %, "
                     f"declared inside but truly not (share of data set x setting) {100 * wrong:.1f} %; a new-donor "
                     f"run below the predictive 90 / 95 / 99 % upper bound: {100 * np.mean(pit[k] < 0.9):.1f} / "
                     f"{100 * np.mean(pit[k] < 0.95):.1f} / {100 * np.mean(pit[k] < 0.99):.1f} %")
    own = np.mean(np.abs(est["mixed, average"].mean(axis=0) - truth_avg))
    lines.append(f"- (mixed, average against its own truth, the average donor: mean |bias| {own:.3f})")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-sets", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="40 data sets, 1000 draws (about a minute)")
    ap.add_argument("--donors", type=int, default=6)
    ap.add_argument("--donor-var", type=float, default=1.0)
    ap.add_argument("--resid-var", type=float, default=0.25)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=("crossed", "whole-plot", "both"), default="both",
                    help="donors crossed with the factors, donors as whole plots of A, or both (default)")
    args = ap.parse_args()
    n, draws = (40, 1000) if args.quick else (args.data_sets, args.draws)
    for layout in (("crossed", "whole-plot") if args.layout == "both" else (args.layout,)):
        print(run(n, args.donors, args.donor_var, args.resid_var, draws, args.seed, layout))
        print()


if __name__ == "__main__":
    main()
