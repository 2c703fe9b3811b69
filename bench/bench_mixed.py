"""Benchmark and library comparison of the mixed-model engine (doe.mixed).

Run from the repository root::

    python bench/bench_mixed.py

Cases
-----
1. Agreement with published numbers (tests/reference_cases): variance components and F tests of
   doe.mixed, and the variance components of statsmodels' MixedLM (REML) on the same data (MixedLM has no
   Kenward-Roger or Satterthwaite df; crossed or several random intercepts need ``vc_formula`` inside one
   all-encompassing group).
2. Speed on a 60-run MSC split-plot study: 5 donors (random) x 3 media (hard to change: whole plots, random
   whole-plot effect nested in donor) x 4 runs (2 seeding densities x 2 harvest days) per whole plot.
   Median wall-clock of 7 repeats of ``fit_mixed`` + both ANOVA tables, and of statsmodels' MixedLM fit.
   Target: doe.mixed fit + Kenward-Roger and Satterthwaite tables under 0.5 s.
3. Other PyPI packages, if installed in the environment (they are not dependencies): ``mixedlm`` (Rust
   backend, lme4-like API). Evaluated by hand (mixedlm 1.3.0, 2026-12): its ``anova_type3`` tests each
   coefficient separately (no joint F per term) and its Kenward-Roger option gives Satterthwaite's numbers
   (unbalanced shoes: F 5.9987 on 1 and 7.01 df, where pbkrtest prints 5.9893 on 7.0219); TVbo TVset ddf
   76.30 (lmerTest: 14). ``interlace-lme`` 0.3.2: its Type III table uses a harmonic mean of per-coefficient
   Satterthwaite df, not lmerTest's multi-df method. ``pymer4`` needs R. Hence doe.mixed's own REML and
   hand-written Kenward-Roger / Satterthwaite.

Set ``OMP_NUM_THREADS=1`` on a busy machine: the matrices are small and multi-threaded BLAS only adds
contention.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import timed  # noqa: E402  (bench/ is the script's folder)

from doe.mixed import fit_mixed  # noqa: E402

REF = ROOT / "tests" / "reference_cases"




def effect_matrix(df: pd.DataFrame, terms: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Effect-coded model matrix of categorical factors (intercept, then each term 'A' or 'A:B')."""
    blocks = {}
    for f in {f for t in terms for f in t.split(":")}:
        lev = sorted(df[f].astype(str).unique())
        codes = df[f].astype(str).map({v: i for i, v in enumerate(lev)}).to_numpy()
        k = len(lev)
        blocks[f] = np.column_stack([(codes == j) * 1.0 - (codes == k - 1) for j in range(k - 1)])
    cols, names, term_of = [np.ones(len(df))], ["(Intercept)"], ["Intercept"]
    for t in terms:
        fs = t.split(":")
        mats = [blocks[f] for f in fs]
        combos = np.array(np.meshgrid(*[np.arange(m.shape[1]) for m in mats], indexing="ij")).reshape(len(fs), -1).T
        for combo in combos:
            c = np.ones(len(df))
            for m, j in zip(mats, combo):
                c = c * m[:, j]
            cols.append(c)
            names.append(f"{t}[{','.join(map(str, combo))}]")
            term_of.append(t)
    return np.column_stack(cols), names, term_of


def labels(df: pd.DataFrame, effect: str) -> list[str]:
    return df[effect.split(":")].astype(str).agg("/".join, axis=1).tolist()


def statsmodels_components(df: pd.DataFrame, response: str, terms: list[str], random: list[str]) -> dict:
    """REML variance components from statsmodels MixedLM (one group; every random intercept a vc)."""
    import statsmodels.formula.api as smf

    d = df.copy()
    d["_y"] = d[response].astype(float)
    d["_all"] = 1
    vc = {}
    for r in random:
        col = "_" + r.replace(":", "_")
        d[col] = labels(d, r)
        vc[r] = f"0 + C({col})"
    formula = "_y ~ " + " + ".join(f"C({t})" if ":" not in t else ":".join(f"C({x})" for x in t.split(":"))
                                   for t in terms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm(formula, d, groups="_all", vc_formula=vc, re_formula="0")
        res = model.fit(reml=True)
    out = {name: float(v) for name, v in zip(model.exog_vc.names, res.vcomp)}  # statsmodels sorts them
    out = {r: out[r] for r in vc}
    out["Residual"] = float(res.scale)
    return out


CASES = [
    ("lme4_penicillin_rcbd_random_blend", "yield", ["treat"], ["blend"], None),
    ("bhh_steel_bars_split_plot", "resistance", ["heats", "coating", "heats:coating"], ["run"], None),
    ("pbkrtest_shoes_unbalanced", "wear", ["material"], ["boy"], [0, 11]),
    ("lmertest_tvbo_three_random_intercepts", "Sharpnessofmovement", ["TVset", "Picture", "TVset:Picture"],
     ["Assessor", "Assessor:TVset", "Assessor:Picture"], None),
]


def agreement() -> None:
    print("1. Agreement with published numbers (variance components; F, df, ddf of the last term)")
    for case, response, terms, random, drop in CASES:
        df = pd.read_csv(REF / case / "data.csv", dtype=str)
        if drop:
            df = df.drop(index=drop).reset_index(drop=True)
        X, names, term_of = effect_matrix(df, terms)
        y = df[response].astype(float).to_numpy()
        fit = fit_mixed(X, y, names, term_of, {r: labels(df, r) for r in random})
        kr = fit.anova("kr").iloc[-1]
        sat = fit.anova("satterthwaite").iloc[-1]
        t_sm = time.perf_counter()
        try:
            sm = statsmodels_components(df, response, terms, random)
        except Exception as exc:  # noqa: BLE001 - a comparison, not the product
            sm = {"error": str(exc)[:60]}
        t_sm = time.perf_counter() - t_sm
        expected = json.loads((REF / case / "expected.json").read_text())["expected"]
        print(f"  {case}")
        print("    doe.mixed    components: " + ", ".join(f"{k} {v:.6g}" for k, v in fit.components.items()))
        print("    statsmodels  components: " + ", ".join(
            f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in sm.items()) + f"  ({t_sm:.2f} s)")
        print(f"    doe.mixed    {kr['term']}: KR F {kr['F']:.5g} on {kr['df']} and {kr['df_den']:.6g} df, "
              f"p {kr['p']:.4g}; Satterthwaite F {sat['F']:.5g} on {sat['df_den']:.6g} df, p {sat['p']:.4g}")
        print(f"    published    {json.dumps(expected)[:300]}")


def msc_study(seed: int = 20261207) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    donor_eff = rng.normal(0, 3.0, 5)
    for d in range(5):
        for m, medium in enumerate(["hPL 5%", "hPL 10%", "FBS 10%"]):
            wp = rng.normal(0, 2.0)
            for seeding in (-1.0, 1.0):
                for day in (-1.0, 1.0):
                    y = 80 + 2.0 * (m - 1) + 1.5 * seeding - 1.0 * day + 0.8 * seeding * day
                    y += donor_eff[d] + wp + rng.normal(0, 1.5)
                    rows.append({"Donor": f"D{d + 1}", "Medium": medium, "Whole plot": f"D{d + 1}-{medium}",
                                 "Seeding": seeding, "Day": day, "Viability": y})
    return pd.DataFrame(rows)


def speed() -> None:
    print("2. Speed, 60-run MSC split plot (5 donors x 3 media whole plots x 4 runs)")
    df = msc_study()
    med = df["Medium"].map({"FBS 10%": -1.0, "hPL 10%": 0.0, "hPL 5%": 1.0})
    m1 = (df["Medium"] == "hPL 5%") * 1.0 - (df["Medium"] == "FBS 10%")
    m2 = (df["Medium"] == "hPL 10%") * 1.0 - (df["Medium"] == "FBS 10%")
    X = np.column_stack([np.ones(60), m1, m2, df["Seeding"], df["Day"], df["Seeding"] * df["Day"],
                         m1 * df["Seeding"], m2 * df["Seeding"]])
    names = ["Intercept", "Medium[hPL 5%]", "Medium[hPL 10%]", "Seeding", "Day", "Seeding*Day",
             "Medium[hPL 5%]*Seeding", "Medium[hPL 10%]*Seeding"]
    terms = ["Intercept", "Medium", "Medium", "Seeding", "Day", "Seeding*Day", "Medium*Seeding", "Medium*Seeding"]
    y = df["Viability"].to_numpy()
    random = {"Donor": df["Donor"].tolist(), "Whole plot": df["Whole plot"].tolist()}
    del med

    def ours() -> None:
        fit = fit_mixed(X, y, names, terms, random)
        fit.anova("kr")
        fit.anova("satterthwaite")
        fit.coefficients("kr")

    t_fit = timed(lambda: fit_mixed(X, y, names, terms, random), warm_up=False)
    t_all = timed(ours, warm_up=False)
    fit = fit_mixed(X, y, names, terms, random)
    print(f"  doe.mixed fit_mixed:                         {t_fit * 1000:7.1f} ms")
    print(f"  doe.mixed fit + KR and Satterthwaite tables:  {t_all * 1000:7.1f} ms   (target < 500 ms)")
    print("  components: " + ", ".join(f"{k} {v:.4g}" for k, v in fit.components.items()))
    print(fit.anova("kr").to_string(index=False))

    import statsmodels.formula.api as smf

    d = df.rename(columns={"Whole plot": "WP"}).copy()
    d["_all"] = 1

    def sm_fit() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            smf.mixedlm("Viability ~ C(Medium, Sum) * Seeding + Seeding:Day + Day", d, groups="_all",
                        re_formula="0", vc_formula={"Donor": "0 + C(Donor)", "WP": "0 + C(WP)"}).fit(reml=True)

    t_sm = timed(sm_fit, repeats=3, warm_up=False)
    print(f"  statsmodels MixedLM (REML, no ddf):          {t_sm * 1000:7.1f} ms")

    try:
        import mixedlm  # noqa: F401 - optional comparison only
    except ImportError:
        print("  mixedlm: not installed (see the module docstring for the hand evaluation)")


def main() -> None:
    print(f"python {platform.python_version()}, numpy {np.__version__}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} cpus")
    agreement()
    speed()


if __name__ == "__main__":
    main()
