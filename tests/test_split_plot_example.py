"""The bundled split-plot example (data/msc_split_plot.yaml, simulated by data/simulate_split_plot.py):
the files are what the script makes, the design is a split plot, and the mixed-model analysis recovers the
simulation's truth where the completely randomised analysis cannot judge the whole-plot factor."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import doe
from doe.example import SPLIT_DESIGN_FILE, SPLIT_RESULTS_FILE, SPLIT_STUDY_FILE, SPLIT_TRUTH_FILE
from doe.study import WHOLE_PLOT


@pytest.fixture(scope="module")
def analysis() -> doe.Analysis:
    study = doe.Study.load(SPLIT_STUDY_FILE)
    runs = doe.read_results(study, SPLIT_RESULTS_FILE).table
    return doe.fit_all(study, runs, default=doe.ModelChoice(model="quadratic"))


def test_design_is_the_scripts_split_plot() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("simulate_split_plot", SPLIT_STUDY_FILE.parent / "simulate_split_plot.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    study = doe.Study.load(SPLIT_STUDY_FILE)
    made = doe.generate(study, "optimal", model=script.MODEL, runs=script.RUNS, whole_plots=script.WHOLE_PLOTS,
                        seed=script.SEED)
    saved = pd.read_csv(SPLIT_DESIGN_FILE)
    for col in ["Run", WHOLE_PLOT, *study.factor_names]:
        assert list(saved[col]) == list(made.table[col]), col
    assert saved.groupby(WHOLE_PLOT)["Surface"].nunique().max() == 1
    assert saved[WHOLE_PLOT].nunique() == script.WHOLE_PLOTS
    assert saved.groupby(WHOLE_PLOT)["Donor"].nunique().min() == 4  # four donors per whole plot, one each


def test_mixed_model_recovers_the_truth(analysis: doe.Analysis) -> None:
    truth = json.loads(SPLIT_TRUTH_FILE.read_text())
    for cqa in ("Viability", "Fold expansion"):
        fm = analysis.models[cqa]
        assert fm.method == "REML" and fm.mixed is not None
        assert set(fm.mixed.components) == {WHOLE_PLOT, "Donor", "Residual"}
        coefs = fm.mixed.coefficients().set_index("name")
        # the true hPL and Seeding density slopes (coded units) lie inside the 99.8 % Kenward-Roger intervals
        # (one simulated data set: four 95 % intervals would all cover it only 81 % of the time)
        from scipy import stats
        for name in ("hPL", "Seeding density"):
            row = coefs.loc[name]
            half = stats.t.ppf(0.999, row["df"]) * row["se"]
            assert abs(row["estimate"] - truth["coefficients_coded"][cqa][name]) < half, (cqa, name)
        # the whole-plot factor is tested against the whole-plot error: few denominator df
        anova = fm.mixed.anova().set_index("term")
        assert anova.loc["Surface", "df_den"] < truth["whole_plots"] - 1
        assert anova.loc["hPL", "df_den"] > anova.loc["Surface", "df_den"] + 4


def test_fully_randomised_analysis_is_kept_beside(analysis: doe.Analysis) -> None:
    fm = analysis.models["Viability"]
    out = fm.to_json()
    assert out["method"] == "REML" and out["fully_randomised"]["method"] == "OLS"
    ols = {r["source"]: r for r in out["fully_randomised"]["anova"]}
    assert ols["Surface"]["df"] == 1 and ols["Residual"]["df"] == fm.df_resid  # the residual df of least squares
    assert {r["term"] for r in out["anova"]} >= {"Surface", "hPL", "Seeding density"}
    assert set(out["icc"]) == {WHOLE_PLOT, "Donor"}
    assert np.isclose(sum(out["icc"].values()) + out["variance_components"]["Residual"]
                      / sum(out["variance_components"].values()), 1.0)


def test_decision_keeps_the_random_effects_reading_and_the_report_uses_it(tmp_path) -> None:
    from doe.decision import Decision
    from doe.report import build_report
    from doe.store import Store

    assert Decision.from_row({"threshold": 0.9, "set_point": {}, "ranges": {"random_effects": "average"}}
                             ).random_effects == "average"
    assert Decision.from_row({"threshold": 0.9, "set_point": {}, "ranges": {}}).random_effects is None
    study = doe.Study.load(SPLIT_STUDY_FILE)
    runs = doe.read_results(study, SPLIT_RESULTS_FILE).table
    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        store.save_study(study, "ana")
        store.append_runs(study.name, runs, "ana")
        choice = doe.ModelChoice(model="Surface + Seeding density + hPL")
        store.save_analysis(study.name, {c: choice.to_dict() for c in study.response_names}, {}, "ana")
        point = {"Surface": "Standard TC", "Seeding density": 2000.0, "hPL": 8.0}
        store.save_decision(study.name, 0.9, point, {"random_effects": "average"}, "ana", analysis_version=1)
        average = build_report(store, study.name, draws=1000).numbers["space"]
        new = build_report(store, study.name, draws=1000, random_effects="new").numbers["space"]
    finally:
        store.close()
    assert average["random_effects"]["mode"] == "average" and new["random_effects"]["mode"] == "new"
    assert average["probability_at_set_point"] > new["probability_at_set_point"]


def test_cli_evaluate_reads_whole_plots_and_takes_a_variance_ratio(tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = {}
    for ratio in ("1", "4"):
        target = tmp_path / f"eval{ratio}.json"
        done = subprocess.run([sys.executable, "-m", "doe", "evaluate", str(SPLIT_STUDY_FILE), str(SPLIT_DESIGN_FILE),
                               "--model", "quadratic", "--variance-ratio", ratio, "--json", str(target)],
                              capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        out[ratio] = json.loads(target.read_text())
    assert out["1"]["whole_plots"] == out["4"]["whole_plots"] == 8
    assert (out["1"]["variance_ratio"], out["4"]["variance_ratio"]) == (1.0, 4.0)
    assert out["1"]["d_criterion_split_plot"] != out["4"]["d_criterion_split_plot"]
    power = {r["term"]: r for r in out["4"]["power"]}
    assert power["Surface"]["stratum"] == "whole plot" and power["hPL"]["stratum"] == "subplot"
    assert power["Surface"]["power"] < power["hPL"]["power"]


def test_versions_compare_the_mixed_models(analysis: doe.Analysis) -> None:
    from doe.versions import analysis_summary, compare_analyses, stats_frame

    summary = analysis_summary(analysis)
    entry = summary["Viability"]
    assert entry["method"] == "REML" and set(entry["variance_components"]) == {WHOLE_PLOT, "Donor", "Residual"}
    mixed = analysis.models["Viability"].mixed.coefficients().set_index("name")
    kept = {c["term"]: c for c in entry["coefficients"]}
    assert kept["hPL"]["estimate"] == pytest.approx(mixed.loc["hPL", "estimate"])
    assert kept["hPL"]["p"] == pytest.approx(mixed.loc["hPL", "p"])  # significance judged by the mixed model
    study = doe.Study.load(SPLIT_STUDY_FILE)
    runs = doe.read_results(study, SPLIT_RESULTS_FILE).table
    fewer = doe.fit_all(study, runs.iloc[:28], default=doe.ModelChoice(model="quadratic"))
    comparison = compare_analyses({"responses": analysis_summary(fewer)}, {"responses": summary})
    frame = stats_frame(comparison)
    assert "Donor variance" in set(frame["statistic"])
    assert comparison["responses"]["Viability"]["method"] == {"old": "REML", "new": "REML"}


def test_evaluation_counts_donors_crossed_with_whole_plots() -> None:
    from doe.evaluate import evaluate_design
    from doe.model import ModelMatrix, parse_model

    study = doe.Study.load(SPLIT_STUDY_FILE)
    design = doe.read_design(study, SPLIT_DESIGN_FILE)
    ev = evaluate_design(study, design, "quadratic", variance_ratio=2.0)
    sp = ev.split_plot
    assert sp["crossed_random_effects"] == ["Donor"]
    X = ModelMatrix(study, parse_model(study, "quadratic")).build(design.coded())
    table = design.table
    Zw = pd.get_dummies(table[WHOLE_PLOT]).to_numpy(float)
    Zd = pd.get_dummies(table["Donor"]).to_numpy(float)
    V = np.eye(len(X)) + 2.0 * (Zw @ Zw.T + Zd @ Zd.T)  # by hand: both random effects, ratio 2
    M = X.T @ np.linalg.inv(V) @ X
    want = np.linalg.det(M / len(X)) ** (1 / X.shape[1])
    assert sp["d_criterion_all_random_effects"] == pytest.approx(want, rel=1e-9)
    assert sp["d_criterion_all_random_effects"] < sp["d_criterion_split_plot"]  # donors cost information
    plain = evaluate_design(study, doe.read_design(study, table.drop(columns="Donor")), "quadratic")
    assert "crossed_random_effects" not in plain.split_plot


def test_the_design_page_note_and_the_random_effect_names(analysis: doe.Analysis) -> None:
    from doe.evaluate import evaluate_design
    from doe.space import describe_random_effects, random_effect_names

    study = doe.Study.load(SPLIT_STUDY_FILE)
    ev = evaluate_design(study, doe.read_design(study, SPLIT_DESIGN_FILE), "quadratic")
    note = ev.randomisation_note()
    assert note.startswith("**Restricted randomisation:** 8 whole plots; Surface is set once per whole plot")
    assert f"the D-efficiency is {ev.split_plot['d_efficiency_split_plot']:.1f} %" in note
    assert "With Donor as a random effect too" in note
    assert evaluate_design(study, doe.read_design(study, pd.read_csv(SPLIT_DESIGN_FILE).drop(
        columns=[WHOLE_PLOT, "Donor"])), "quadratic").randomisation_note() == ""
    names = random_effect_names(analysis.models)
    assert names == ["Donor", WHOLE_PLOT]
    assert describe_random_effects("average", names) == "a run with the average donor and whole plot"
