"""Property-based tests: random studies and designs never crash the library.

Every public step a user drives (study validation, design generation, design
evaluation, model fitting, the design-space probability) either succeeds or
raises :class:`doe.errors.DoeError` with a message; a fit that cannot be made
comes back as a :class:`doe.analysis.CQAFit` with ``error`` text. Anything else
(KeyError, IndexError, LinAlgError, ...) is a bug.

The default profile runs 25 examples per property (the normal suite). Set
``DOE_HYPOTHESIS=ci`` (100 examples) or ``DOE_HYPOTHESIS=thorough`` (500) for
longer runs, e.g. ``DOE_HYPOTHESIS=thorough python -m pytest -q tests/test_properties.py``.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from doe.analysis import CQAFit, ModelChoice, fit_all
from doe.errors import DoeError, ModelError, StudyError
from doe.evaluate import evaluate_design
from doe.fit import fit_model
from doe.generators import DESIGN_TYPES, generate
from doe.space import build_predictive, probability
from doe.study import _FORBIDDEN_CHARS, GOALS, RESERVED, Factor, Response, Study

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.filter_too_much])
settings.register_profile("default", max_examples=25, **_COMMON)
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("DOE_HYPOTHESIS", "default"))

# -- strategies ----------------------------------------------------------------------------
# Characters a factor or response name may hold (doe.study._check_names): letters, digits,
# spaces, unicode and symbols, never the formula characters in _FORBIDDEN_CHARS.
_NAME_CHARS = "ABCxyz019 _-/%.()#&'éµ°αβ€"
_LEVEL_CHARS = _NAME_CHARS + "+=@:*^[]<>\"~"  # level names are free text
assert not set(_NAME_CHARS) & _FORBIDDEN_CHARS

_name = (st.text(alphabet=_NAME_CHARS, min_size=1, max_size=10).map(str.strip)
         .filter(lambda s: s and s.lower() not in {r.lower() for r in RESERVED}))
_level = st.text(alphabet=_LEVEL_CHARS, min_size=1, max_size=8).map(str.strip).filter(bool)
_finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def factors(draw, name: str) -> Factor:
    kind = draw(st.sampled_from(("continuous", "continuous", "categorical", "discrete")))
    units = draw(st.sampled_from(("", "rpm", "%", "µL", "°C", "<b>x</b>")))
    if kind == "continuous":
        low = draw(_finite)
        width = draw(st.floats(min_value=1e-3, max_value=1e4, allow_nan=False))
        return Factor(name, "continuous", low=low, high=low + width, units=units)
    if kind == "categorical":
        levels = draw(st.lists(_level, min_size=2, max_size=4, unique_by=str.lower))
        return Factor(name, "categorical", levels=levels, units=units)
    levels = draw(st.lists(st.integers(-50, 50), min_size=2, max_size=4, unique=True))
    return Factor(name, "discrete", levels=levels, units=units)


@st.composite
def responses(draw, name: str) -> Response:
    goal = draw(st.sampled_from(GOALS))
    lower = draw(st.none() | _finite)
    upper = draw(st.none() | _finite)
    if lower is not None and upper is not None and lower > upper:
        lower, upper = upper, lower
    if goal == "range" and lower is None and upper is None:
        lower = 0.0
    target = None
    if goal == "target":
        lo = -1e4 if lower is None else lower
        hi = 1e4 if upper is None else upper
        target = draw(st.floats(min_value=lo, max_value=hi, allow_nan=False))
    return Response(name, goal=goal, lower=lower, upper=upper, target=target,
                    units=draw(st.sampled_from(("", "%", "cells/mL"))))


@st.composite
def studies(draw, max_factors: int = 5) -> Study:
    nf = draw(st.integers(1, max_factors))
    nr = draw(st.integers(1, 3))
    names = draw(st.lists(_name, min_size=nf + nr, max_size=nf + nr, unique_by=str.lower))
    fs = [draw(factors(n)) for n in names[:nf]]
    rs = [draw(responses(n)) for n in names[nf:]]
    return Study(draw(_name), fs, rs)


_MODELS = st.sampled_from((None, "linear", "interactions", "quadratic"))


@st.composite
def design_options(draw) -> tuple[str, dict]:
    kind = draw(st.sampled_from(DESIGN_TYPES))
    opts: dict = {"seed": draw(st.integers(0, 2**31 - 2)), "model": draw(_MODELS)}
    if draw(st.booleans()):
        opts["center"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        opts["replicates"] = draw(st.integers(1, 2))
    # Blocking a full factorial of a few hundred runs takes minutes (assign_blocks scales with the runs):
    # slow, not wrong, so full factorials are drawn without blocks here.
    if kind != "full" and draw(st.booleans()):
        opts["blocks"] = draw(st.integers(1, 3))
    if kind in ("lhs", "optimal", "fractional") and draw(st.booleans()):
        opts["runs"] = draw(st.integers(1, 30))
    if kind == "fractional" and draw(st.booleans()):
        opts["resolution"] = draw(st.integers(3, 5))
    if kind == "ccd":
        opts["alpha"] = draw(st.sampled_from(("rotatable", "orthogonal", "face", "inscribed", 1.5)))
    if kind == "optimal":
        opts["criterion"] = draw(st.sampled_from(("D", "I")))
        opts["starts"] = 2
    if kind == "full" and draw(st.booleans()):
        opts["levels"] = draw(st.integers(2, 3))
    return kind, opts


def _generate(study: Study, kind: str, opts: dict):
    """generate() or None when it refuses with a DoeError (with a message)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return generate(study, kind, **opts)
    except DoeError as exc:
        assert str(exc).strip(), "a DoeError must say why"
        return None


def _simulate(design, data) -> pd.DataFrame:
    """The run sheet with simulated results: random linear function + noise, maybe constant, maybe NaNs."""
    sheet = design.run_sheet()
    U = design.coded()
    for r in design.study.responses:
        shape = data.draw(st.sampled_from(("linear", "linear", "constant", "nans", "all-nan")))
        seed = data.draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        beta = rng.normal(0, 5, U.shape[1])
        y = 50 + U @ beta + rng.normal(0, 1, len(U))
        if shape == "constant":
            y = np.full(len(U), 7.0)
        elif shape == "nans":
            y[rng.random(len(U)) < 0.3] = np.nan
        elif shape == "all-nan":
            y[:] = np.nan
        sheet[r.name] = y
    return sheet


# -- properties -------------------------------------------------------------------------------
@given(studies())
def test_valid_studies_round_trip(study):
    again = Study.from_yaml(study.to_yaml())
    assert again.factor_names == study.factor_names
    assert again.response_names == study.response_names


@given(st.sampled_from(sorted(_FORBIDDEN_CHARS)), _name, st.booleans())
def test_names_with_formula_characters_are_refused(char, base, as_response):
    bad = base[:1] + char + base[1:]
    fs = [Factor("Temp", low=0, high=1)]
    rs = [Response("Yield")]
    if as_response:
        rs = [Response(bad)]
    else:
        fs = [Factor(bad, low=0, high=1)]
    with pytest.raises(StudyError):
        Study("s", fs, rs)


@given(st.sampled_from(RESERVED), st.booleans())
def test_reserved_and_duplicate_names_are_refused(reserved, upper):
    name = reserved.upper() if upper else reserved
    with pytest.raises(StudyError):
        Study("s", [Factor(name, low=0, high=1)])
    with pytest.raises(StudyError):
        Study("s", [Factor("Temp", low=0, high=1), Factor("TEMP", low=0, high=1)])
    with pytest.raises(StudyError):
        Study("s", [Factor("Temp", low=0, high=1)], [Response("temp")])


@given(_finite, st.floats(min_value=0, max_value=10, allow_nan=False))
def test_continuous_low_not_below_high_is_refused(low, drop):
    with pytest.raises(StudyError):
        Study("s", [Factor("A", low=low, high=low - drop)])


@given(st.sampled_from(("", "  ")))
def test_empty_names_are_refused(blank):
    with pytest.raises(StudyError):
        Study(blank, [Factor("A", low=0, high=1)])
    with pytest.raises(StudyError):
        Study("s", [Factor("A", "categorical", levels=["x", blank])])


@given(studies(max_factors=4), design_options())
def test_generate_returns_a_design_or_says_why(study, kind_opts):
    kind, opts = kind_opts
    design = _generate(study, kind, opts)
    if design is None:
        return
    assert design.n_runs >= 1
    assert list(design.settings().columns) == study.factor_names
    sheet = design.run_sheet()
    for f in study.factors:
        col = sheet[f.name]
        if f.is_categorical:
            assert set(col.astype(str)) <= set(f.levels)
        else:
            assert np.isfinite(col.astype(float)).all()


@given(studies(max_factors=4), design_options(), _MODELS)
def test_evaluate_succeeds_or_says_why(study, kind_opts, model):
    kind, opts = kind_opts
    design = _generate(study, kind, opts)
    assume(design is not None)
    try:
        ev = evaluate_design(study, design, model)
    except DoeError as exc:
        assert str(exc).strip()
        return
    assert ev.runs == design.n_runs
    if ev.d_efficiency is not None:
        assert math.isfinite(ev.d_efficiency) and ev.d_efficiency >= 0


@given(studies(max_factors=4), design_options(), st.data())
def test_fitting_succeeds_or_says_why(study, kind_opts, data):
    kind, opts = kind_opts
    design = _generate(study, kind, opts)
    assume(design is not None)
    runs = _simulate(design, data)
    response = study.responses[0].name
    model = data.draw(st.sampled_from(("linear", "interactions", "quadratic", "mean")))
    transform = data.draw(st.sampled_from(("none", "none", "log", "sqrt", "boxcox")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fm = fit_model(study, runs, response, model, transform=transform)
        except DoeError as exc:
            assert str(exc).strip()
        else:
            assert fm is not None
        choice = ModelChoice(model=model, transform=transform, reduce=data.draw(st.booleans()),
                             reduce_method=data.draw(st.sampled_from(("p", "aicc"))))
        fits = fit_all(study, runs, default=choice)
    for name, cf in fits.items():
        assert isinstance(cf, CQAFit)
        assert (cf.model is None) == (cf.error is not None), name
        if cf.error is not None:
            assert cf.error.strip()


@given(studies(max_factors=3), design_options(), st.data())
def test_design_space_probability_is_a_probability_or_says_why(study, kind_opts, data):
    kind, opts = kind_opts
    design = _generate(study, kind, opts)
    assume(design is not None)
    runs = _simulate(design, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = fit_all(study, runs, default=ModelChoice(model=data.draw(st.sampled_from(("linear", "mean")))))
        try:
            pm = build_predictive(study, fits, draws=500)
            centre = pd.DataFrame({f.name: [f.levels[0] if f.is_categorical else f.center]
                                   for f in study.factors})
            res = probability(pm, centre, draws=500)
        except DoeError as exc:
            assert str(exc).strip()
            return
    joint = np.asarray(res.joint, dtype=float)
    assert joint.shape == (1,)
    assert np.all((joint >= 0) & (joint <= 1))
    for p in res.per_cqa.values():
        assert np.all((np.asarray(p) >= 0) & (np.asarray(p) <= 1))


def test_design_space_of_only_categorical_factors():
    """Found by the properties above: build_predictive crashed (numpy reshape) with no numeric factor."""
    study = Study("cats", [Factor("Medium", "categorical", levels=["FBS 10%", "hPL 5%", "SFM"])],
                  [Response("Yield", goal="maximize", lower=40)])
    design = generate(study, "full", seed=1, replicates=3)
    runs = design.run_sheet()
    runs["Yield"] = np.random.default_rng(0).normal(50, 2, len(runs))
    pm = build_predictive(study, fit_all(study, runs, default=ModelChoice(model="linear")), draws=500)
    joint = probability(pm, pd.DataFrame({"Medium": ["FBS 10%", "SFM"]}), draws=500).joint
    assert np.all((joint >= 0) & (joint <= 1))


def test_latin_hypercube_of_one_run_is_refused():
    """Found by the properties above: pydoe's maximin search crashed on a 1-run hypercube."""
    study = Study("lhs", [Factor("A", low=0, high=1)])
    with pytest.raises(DoeError, match="at least 2 runs"):
        generate(study, "lhs", runs=1, seed=0)
    assert generate(study, "lhs", runs=2, seed=0).n_runs == 2


def test_box_cox_without_residuals_is_refused():
    """Found by the properties above: the Box-Cox interval search hit NaN (scipy ValueError) on an exact fit."""
    study = Study("bc", [Factor("A", low=0, high=1), Factor("B", low=0, high=1)], [Response("Y")])
    runs = generate(study, "full", seed=0, blocks=2).run_sheet()
    runs["Y"] = [44.5, np.nan, 65.2, np.nan]
    with pytest.raises(DoeError, match="Box-Cox needs residuals"):
        fit_model(study, runs, "Y", "mean", transform="boxcox")
    assert fit_all(study, runs, default=ModelChoice(model="mean", transform="boxcox"))["Y"].error


def _dependent_study_runs():
    study = Study("dep", [Factor("A", low=0, high=1), Factor("B", low=0, high=1)],
                  [Response("Y1", goal="maximize", lower=40), Response("Y2", goal="maximize", lower=40),
                   Response("Y3", goal="maximize", lower=80)])
    design = generate(study, "full", seed=0, replicates=2)
    runs, U = design.run_sheet(), design.coded()
    rng = np.random.default_rng(3)
    runs["Y1"] = 50 + U @ np.array([2.0, 1.0]) + rng.normal(0, 1, len(U))
    runs["Y2"] = 50 + U @ np.array([1.0, -1.0]) + rng.normal(0, 1, len(U))
    return study, runs


def test_perfectly_correlated_cqas_are_refused_with_a_reason():
    """Found by the properties above: two CQAs with the same residuals (the same results entered twice)
    made the exact posterior's inverse-Wishart draw fail with numpy's "Singular matrix"."""
    study, runs = _dependent_study_runs()
    runs["Y3"] = runs["Y1"] + 30.0  # the same residuals as Y1 under the same linear model
    fits = fit_all(study, runs, default=ModelChoice(model="linear"))
    with pytest.raises(ModelError, match="'Y1' and 'Y3' are perfectly correlated"):
        build_predictive(study, fits, draws=500)


def test_a_cqa_computed_from_others_is_refused_with_a_reason():
    study, runs = _dependent_study_runs()
    runs["Y3"] = runs["Y1"] + runs["Y2"] - 20.0  # residuals Y1 + Y2: linearly dependent, no pair at r = 1
    fits = fit_all(study, runs, default=ModelChoice(model="linear"))
    with pytest.raises(ModelError, match="linearly dependent"):
        build_predictive(study, fits, draws=500)


def test_strongly_but_not_perfectly_correlated_cqas_are_estimated():
    study, runs = _dependent_study_runs()
    runs["Y3"] = runs["Y1"] + 30.0 + np.random.default_rng(9).normal(0, 0.05, len(runs))
    pm = build_predictive(study, fit_all(study, runs, default=ModelChoice(model="linear")), draws=500)
    assert pm.correlation.loc["Y1", "Y3"] > 0.99
