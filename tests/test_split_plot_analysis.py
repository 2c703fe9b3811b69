"""A split-plot study analysed end to end: study keys -> run sheet with whole plots -> ``python -m doe analyze``
-> the mixed model's published numbers, with the fully randomised analysis beside it.

Data and printed numbers: Box, Hunter & Hunter (2005) *Statistics for Experimenters*, 2nd ed., ch. 9, corrosion
resistance of steel bars: 6 furnace heats (whole plots) at 3 temperatures, 4 coatings within each heat;
``lmer(resistance ~ heats * coating + (1 | run))`` with lmerTest's Type III tables (Satterthwaite and
Kenward-Roger), printed in J. Faraway, rexamples ``mixed/steelfreq.md`` (tests/reference_cases/
bhh_steel_bars_split_plot). The least-squares comparison is checked against statsmodels' OLS ANOVA of the same
data (an independent implementation).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from doe.error_structure import comparison_words, randomisation_comparison, variance_components_table
from doe.fit import fit_model
from doe.study import WHOLE_PLOT, Study
from tests.conftest import ROOT

CASE = ROOT / "tests" / "reference_cases" / "bhh_steel_bars_split_plot"
STUDY = """name: Steel bars (BHH 2005, ch. 9)
factors:
  - {name: Temperature, kind: categorical, levels: [T360, T370, T380], hard_to_change: true}
  - {name: Coating, kind: categorical, levels: [C1, C2, C3, C4]}
responses: [{name: Resistance}]
"""
MODEL = "Temperature + Coating + Temperature:Coating"
#: lmerTest's Type III table, printed (both df methods give these for this balanced split plot).
PRINTED = {"Temperature": (2, 3, 2.75, 0.209), "Coating": (3, 9, 11.48, 0.002),
           "Temperature:Coating": (6, 9, 4.38, 0.024)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("steel")
    data = pd.read_csv(CASE / "data.csv")
    runs = pd.DataFrame({"Run": range(1, len(data) + 1), WHOLE_PLOT: data["run"], "Temperature": data["heats"],
                         "Coating": data["coating"], "Resistance": data["resistance"]})
    (folder / "study.yaml").write_text(STUDY, encoding="utf-8")
    runs.to_csv(folder / "runs.csv", index=False)
    return str(folder / "study.yaml"), str(folder / "runs.csv")


@pytest.mark.parametrize("ddf, label", [("kr", "Kenward-Roger"), ("satterthwaite", "Satterthwaite")])
def test_cli_analyze_reproduces_lmertest(files: tuple[str, str], tmp_path, ddf: str, label: str) -> None:
    out = tmp_path / "analysis.json"
    done = subprocess.run([sys.executable, "-m", "doe", "analyze", *files, "--model", MODEL, "--ddf", ddf,
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())["responses"]["Resistance"]
    assert r["method"] == "REML" and r["df_method"] == label
    assert round(r["variance_components"][WHOLE_PLOT]) == 1172 and round(r["variance_components"]["Residual"]) == 125
    rows = {a["term"]: a for a in r["anova"]}
    for term, (df, df_den, f, p) in PRINTED.items():
        assert rows[term]["df"] == df and rows[term]["df_den"] == pytest.approx(df_den, abs=1e-6)
        assert round(rows[term]["F"], 2) == f and round(rows[term]["p"], 3) == p
    assert all("df" in c for c in r["coefficients"])
    assert r["icc"][WHOLE_PLOT] == pytest.approx(1172 / (1172 + 125), abs=5e-4)
    assert "mixed model by REML" in done.stdout


def test_fully_randomised_analysis_matches_statsmodels_ols(files: tuple[str, str]) -> None:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    study = Study.load(files[0])
    runs = pd.read_csv(files[1])
    fm = fit_model(study, runs, "Resistance", MODEL)
    ols = smf.ols("Resistance ~ C(Temperature, Sum) * C(Coating, Sum)", data=runs).fit()
    table = sm.stats.anova_lm(ols, typ=2)
    compared = randomisation_comparison(fm).set_index("Term")
    assert compared.loc["Temperature", "p-value (as if randomised)"] == pytest.approx(
        table.loc["C(Temperature, Sum)", "PR(>F)"], rel=1e-9)
    assert compared.loc["Temperature", "Denominator df (as if randomised)"] == table.loc["Residual", "df"] == 12
    assert compared.loc["Temperature", "p-value (mixed model)"] == pytest.approx(0.209, abs=5e-4)
    assert compared.loc["Temperature", "Stratum"] == "whole plot" and compared.loc["Coating", "Stratum"] == "subplot"
    # as if randomised, temperature looks significant; against the whole-plot error it is not
    words = " ".join(comparison_words(fm))
    assert "Temperature (whole plot term): significant only if the runs are wrongly treated as independent" in words
    components = variance_components_table(fm).set_index("Component")
    assert components.loc[WHOLE_PLOT, "Levels"] == 6 and components.loc["Residual (run to run)", "Levels"] == 24
    assert components["Share of total variance (%)"].sum() == pytest.approx(100)


def test_random_effects_off_gives_todays_analysis(files: tuple[str, str]) -> None:
    study = Study.load(files[0])
    runs = pd.read_csv(files[1])
    fm = fit_model(study, runs, "Resistance", MODEL, random_effects=False)
    assert fm.mixed is None and fm.method == "OLS" and "fully_randomised" not in fm.to_json()
    plain = fit_model(study, runs.drop(columns=[WHOLE_PLOT]), "Resistance", MODEL)
    assert plain.mixed is None and plain.to_json()["anova"] == fm.to_json()["anova"]


def test_unusable_random_columns_are_left_out_with_a_note(files: tuple[str, str]) -> None:
    study = Study.load(files[0])
    runs = pd.read_csv(files[1])
    runs[WHOLE_PLOT] = range(len(runs))  # every run its own whole plot: a completely randomised design
    fm = fit_model(study, runs, "Resistance", MODEL)
    assert fm.mixed is None and any("its own 'Whole plot'" in w for w in fm.warnings)
    runs = pd.read_csv(files[1])
    runs.loc[3, WHOLE_PLOT] = None
    fm = fit_model(study, runs, "Resistance", MODEL)
    assert fm.mixed is not None and fm.n == 23
    assert {"run": 4, "reason": f"no {WHOLE_PLOT}"} in fm.excluded


def test_split_split_plot_from_design_to_mixed_model() -> None:
    import numpy as np

    import doe
    from doe.study import SUBPLOT

    study = Study.from_yaml("""name: Split-split plot
factors:
  - {name: Medium lot, kind: categorical, levels: [L1, L2], hard_to_change: very}
  - {name: Temperature, low: 35, high: 39, units: degC, hard_to_change: true}
  - {name: Agitation, low: 30, high: 90, units: rpm}
responses: [{name: Yield}]
""")
    model = "Medium lot + Temperature + Agitation + Temperature:Agitation"
    design = doe.generate(study, "optimal", model=model, runs=24, whole_plots=4, subplots=8, seed=3)
    table = design.table
    assert table.groupby(WHOLE_PLOT)["Medium lot"].nunique().max() == 1
    assert table.groupby([WHOLE_PLOT, SUBPLOT])["Temperature"].nunique().max() == 1
    rng = np.random.default_rng(4)
    wp = {k: rng.normal(0, 1.0) for k in table[WHOLE_PLOT].unique()}
    sp = {k: rng.normal(0, 0.7) for k in zip(table[WHOLE_PLOT], table[SUBPLOT])}
    table = table.assign(Yield=10 + table[WHOLE_PLOT].map(wp) + [sp[k] for k in zip(table[WHOLE_PLOT], table[SUBPLOT])]
                         + 0.8 * (table["Agitation"] - 60) / 30 + rng.normal(0, 0.5, len(table)))
    upload = doe.read_results(study, table)
    assert not [p for p in upload.warnings if "changes inside" in p.message]  # the tiers are held as designed
    fm = fit_model(study, upload.table, "Yield", model)
    assert fm.mixed is not None and set(fm.mixed.components) == {WHOLE_PLOT, SUBPLOT, "Residual"}
    # subplots numbered 1, 2 within each whole plot name the same nested effect
    renumbered = upload.table.copy()
    renumbered[SUBPLOT] = renumbered.groupby(WHOLE_PLOT)[SUBPLOT].rank(method="dense").astype(int)
    again = fit_model(study, renumbered, "Yield", model)
    assert again.mixed is not None
    assert again.mixed.components == pytest.approx(fm.mixed.components, rel=1e-6)
    den = fm.mixed.anova().set_index("term")["df_den"]
    assert den["Medium lot"] < den["Temperature"] < den["Agitation"]  # whole plot < subplot < run strata
