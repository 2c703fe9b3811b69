"""The fit package's result objects (issue 17): FittedModel's statistics are computed on first reading,
read-only and carried by pickled copies; an Analysis is a read-only mapping of CQA fits with the models,
the failures and their reasons, the data version and a content digest."""

from __future__ import annotations

import copy
import itertools
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import doe.analysis
import doe.fit
from doe.analysis import Analysis, ModelChoice, data_version, default_choice, fit_all, fitted_models
from doe.errors import ModelError
from doe.fit import FittedModel, fit_choice, fit_model, reduce_model
from doe.runs import read_results
from doe.study import Factor, Response, Study
from tests.conftest import EXAMPLE, ROOT

#: Every statistic FittedModel computes from the least-squares solve.
STATISTICS = ("coefficients", "anova", "r2", "adj_r2", "pred_r2", "pred_r2_excluding_blocks", "press", "rmse",
              "cv_percent", "adeq_precision", "overall_f", "lack_of_fit", "equation_coded", "equation_actual",
              "equations_actual", "coefficients_actual", "diagnostics", "stationary_point", "effects", "lenth",
              "warnings", "terms", "columns")


def _equal(a, b) -> bool:
    """Equal values, NaN equal to NaN, frames compared exactly."""
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b) and list(a.columns) == list(b.columns)
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def example():
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    return study, runs


@pytest.fixture(scope="module")
def blocked():
    """A replicated 2^2 x categorical factorial in two blocks: blocks, effect coding, pure error."""
    rng = np.random.default_rng(7)
    study = Study("blocked", [Factor("A", low=0, high=10), Factor("B", low=1, high=3),
                              Factor("M", kind="categorical", levels=["x", "y"])], [Response("Y")])
    cells = pd.DataFrame(list(itertools.product([0, 10], [1, 3], ["x", "y"])), columns=["A", "B", "M"])
    runs = pd.concat([cells, cells], ignore_index=True)
    runs["Block"] = [1] * 8 + [2] * 8
    runs["Y"] = (5 + 0.3 * runs["A"] - runs["B"] + 2 * (runs["M"] == "x") + 0.5 * runs["Block"]
                 + rng.normal(0, 0.3, len(runs)))
    return study, runs


# -- FittedModel: lazy, read-only, picklable ------------------------------------------------------------

def test_statistics_are_computed_on_first_reading_and_kept(example):
    study, runs = example
    fm = fit_model(study, runs, study.response_names[0], "quadratic")
    assert not set(STATISTICS) & set(vars(fm)), "a fresh fit holds only the least squares"
    anova = fm.anova
    assert "anova" in vars(fm) and fm.anova is anova  # computed once, then the same object
    assert "diagnostics" not in vars(fm)


@pytest.mark.parametrize("name", STATISTICS)
def test_statistics_are_read_only(example, name):
    study, runs = example
    fm = fit_model(study, runs, study.response_names[0], "quadratic")
    with pytest.raises((AttributeError, TypeError)):
        setattr(fm, name, None)
    with pytest.raises((AttributeError, TypeError)):
        delattr(fm, name)


def test_reading_order_does_not_change_a_statistic(example):
    """Each statistic the same whether read first, last or through to_json (no hidden state)."""
    study, runs = example
    name = study.response_names[0]
    forward = fit_model(study, runs, name, "quadratic", transform="log")
    backward = fit_model(study, runs, name, "quadratic", transform="log")
    first = {s: getattr(forward, s) for s in STATISTICS}
    last = {s: getattr(backward, s) for s in reversed(STATISTICS)}
    assert all(_equal(first[s], last[s]) for s in STATISTICS)
    assert _equal(fit_model(study, runs, name, "quadratic", transform="log").to_json(), forward.to_json())


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_copies_carry_every_statistic(example, blocked, how):
    study, runs = example
    fits = [fit_model(study, runs, r, "quadratic", transform="boxcox") for r in study.response_names[:2]]
    fits.append(fit_model(*blocked, "Y", "A + B + M + A:B"))
    for fm in fits:
        dup = {"pickle": lambda m: pickle.loads(pickle.dumps(m)), "deepcopy": copy.deepcopy,
               "copy": copy.copy}[how](fm)
        assert set(STATISTICS) <= set(vars(dup)), "the copy carries the statistics, computed once"
        for s in STATISTICS:
            assert _equal(getattr(dup, s), getattr(fm, s)), s
        assert _equal(dup.to_json(), fm.to_json())
        frame = runs.head(4) if fm.study is study else blocked[1].head(4)
        pd.testing.assert_frame_equal(dup.predict(frame, "prediction"), fm.predict(frame, "prediction"))


def test_public_surface_matches_statsmodels(blocked):
    """Coefficient covariance, scale and residual df: what the design space reads, checked independently."""
    study, runs = blocked
    fm = fit_model(study, runs, "Y", "A + B + M + A:B")
    ols = sm.OLS(fm.least_squares.y, fm.least_squares.X).fit()
    assert fm.df_resid == int(ols.df_resid) == fm.n - fm.p
    assert fm.scale == pytest.approx(ols.scale, rel=1e-12)
    np.testing.assert_allclose(fm.cov_params(), ols.cov_params(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fm.least_squares.coef, ols.params, rtol=1e-10)
    np.testing.assert_allclose(fm.coefficients["std_error"], ols.bse, rtol=1e-10)
    X = fm.model_matrix(runs.head(8), block=1)
    np.testing.assert_allclose(X, fm.least_squares.X[:8], atol=1e-12)  # block 1's rows, rebuilt from settings
    assert fm.fitted_transform.is_identity and [c.name for c in fm.model_columns] == fm.columns


def test_fit_errors_are_raised_when_fitting_not_when_reading(example):
    """What cannot be fitted fails in fit_model (the model never exists), as before the statistics were lazy."""
    study, runs = example
    with pytest.raises(ModelError, match="no degrees of freedom|cannot be estimated|coefficients"):
        fit_model(study, runs.head(6), study.response_names[0], "quadratic")


# -- the package: one home per concept, no cycle with doe.analysis -------------------------------------

def test_package_exports_and_the_names_analysis_re_exports():
    for name in doe.fit.__all__:
        assert getattr(doe.fit, name) is not None, name
        assert not name.startswith("_")
    for name in ("ModelChoice", "CQAFit", "fit_choice", "default_choice", "REDUCE_METHODS"):
        assert getattr(doe.analysis, name) is getattr(doe.fit, name)
    assert doe.fit.reduce_model is reduce_model and FittedModel.__module__ == "doe.fit._results"


# -- Analysis ------------------------------------------------------------------------------------------

def test_analysis_is_a_read_only_mapping_of_the_fits(example):
    study, runs = example
    choices = {study.response_names[0]: ModelChoice(model="linear")}
    analysis = fit_all(study, runs, choices, default=default_choice())
    assert isinstance(analysis, Analysis)
    assert list(analysis) == [r for r in study.response_names if r in runs]
    assert len(analysis) == len(list(analysis.items()))
    name = study.response_names[0]
    assert analysis[name].response == name and analysis.choices[name] == ModelChoice(model="linear")
    with pytest.raises(TypeError):
        analysis[name] = analysis[name]  # type: ignore[index]
    assert fit_all(study, runs, choices, default=default_choice()) is analysis  # kept, shared
    assert "Analysis(" in repr(analysis)


def test_analysis_models_equal_fits_made_directly(example):
    study, runs = example
    analysis = fit_all(study, runs, default=ModelChoice(model="quadratic", transform="log"))
    assert set(analysis.models) == set(analysis) and not analysis.failures
    for name, fm in analysis.models.items():
        direct = fit_model(study, runs, name, "quadratic", transform="log")
        assert _equal(fm.to_json(), direct.to_json())
    assert fitted_models(analysis) == analysis.models


def test_reduced_models_equal_reduction_then_fit(example):
    study, runs = example
    analysis = fit_all(study, runs, default=default_choice())
    for name, fit in analysis.items():
        terms, steps = reduce_model(study, runs, name, "quadratic", method="p", alpha=0.1)
        assert fit.steps == steps
        assert _equal(analysis.models[name].to_json(), fit_model(study, runs, name, terms).to_json())


def test_failures_name_the_model_error(example):
    study, runs = example
    few = runs.head(5)
    analysis = fit_all(study, few, default=ModelChoice(model="quadratic"))
    assert analysis.failures and not analysis.models
    for name, reason in analysis.failures.items():
        with pytest.raises(ModelError) as err:
            fit_model(study, few, name, "quadratic")
        assert reason == str(err.value) == analysis[name].error
        assert fit_choice(study, few, name, ModelChoice()).error == reason


def test_data_version_and_digest(example):
    study, runs = example
    doe.analysis._RECENT_ANALYSES.clear()  # an analysis of an equal study kept by an earlier test is returned
    a = fit_all(study, runs, default=ModelChoice())
    assert a.data_version == data_version(runs) and a.study is study
    assert a.runs.equals(runs) and a.runs is not runs  # a copy: a later edit of the caller's table changes nothing
    assert len(a.digest) == 64 and int(a.digest, 16) >= 0
    other_choice = fit_all(study, runs, default=ModelChoice(model="linear"))
    other_data = runs.copy()
    other_data.loc[0, study.response_names[0]] = float(other_data.loc[0, study.response_names[0]]) * 1.01
    other_runs = fit_all(study, other_data, default=ModelChoice())
    assert len({a.digest, other_choice.digest, other_runs.digest}) == 3
    assert other_runs.data_version != a.data_version and other_choice.data_version == a.data_version


def test_the_digest_is_one_formula_over_the_content(example):
    """Analysis.digest is analysis_digest: SHA-256 of the study digest, the data digest and the choices, in
    that order (recomputed here with hashlib); column order and the table's index do not change it."""
    import hashlib
    import json

    from doe.analysis import analysis_digest, data_digest

    study, runs = example
    a = fit_all(study, runs, default=ModelChoice())
    wanted = {n: ModelChoice() for n in a}
    text = "\0".join((study.digest, hashlib.sha256(runs.sort_index(axis=1).to_csv(index=False).encode()).hexdigest(),
                      json.dumps({n: c.to_dict() for n, c in wanted.items()}, sort_keys=True, default=str)))
    assert a.digest == analysis_digest(study, runs, wanted) == hashlib.sha256(text.encode()).hexdigest()
    shuffled = runs[list(reversed(runs.columns))].set_index(runs.index + 100)
    assert data_digest(shuffled) == data_digest(runs) and data_version(runs) == data_digest(runs)[:12]
    assert fit_all(study, shuffled, default=ModelChoice()).digest == a.digest


def test_box_cox_profile_of_a_fit_is_box_cox_of_its_model(example):
    """The Models page's Box-Cox plot: the fitted model's terms and transform, its user-excluded runs left
    out, the same profile as doe.fit.box_cox called by hand."""
    from doe.fit import box_cox, box_cox_profile

    study, runs = example
    fm = fit_model(study, runs, "Viability", "quadratic", exclude=[3, 17])
    by_hand = box_cox(study, runs, "Viability", fm.model_terms, transform="none", exclude=[3, 17])
    profile = box_cox_profile(fm, runs)
    assert profile["best"] == by_hand["best"] and profile["ci"] == by_hand["ci"]
    assert np.array_equal(profile["log_likelihood"], by_hand["log_likelihood"])
    assert not np.array_equal(profile["log_likelihood"],
                              box_cox(study, runs, "Viability", fm.model_terms)["log_likelihood"])
