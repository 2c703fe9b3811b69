"""Tests of the coordinate-exchange optimal-design engine (doe.optimal).

Reference values: AlgDesign vignette (Wheeler), reproduced in
tests/reference_cases/algdesign_vignette_optimal_design_benchmarks.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from doe import optimal
from doe.constraints import Constraint
from doe.errors import DesignError
from doe.model import ModelMatrix, actual_frame, parse_model
from doe.optimal import augment_design, design_criteria, moment_matrix, optimal_design
from doe.study import Factor, Study

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference_cases" / "algdesign_vignette_optimal_design_benchmarks"
BEST_KNOWN_D = 3.675919 / 8  # AlgDesign desDE on the -2..2 grid, in -1..+1 units: 0.45949


def cube(n: int = 3) -> Study:
    return Study("cube", [Factor(name, low=-1, high=1) for name in "ABCDEFG"[:n]])


def msc() -> Study:
    return Study.load(ROOT / "data" / "msc_expansion.yaml")


def _exclude(expr: str) -> Constraint:
    return Constraint(expr=expr)


# -- the engine --------------------------------------------------------------------------
def test_2cubed_main_effects_is_the_full_factorial():
    study = cube(3)
    res = optimal_design(study, parse_model(study, "linear"), 8, seed=0, starts=3)
    assert res.d_criterion == pytest.approx(1.0, abs=1e-12)
    assert res.d_efficiency == pytest.approx(100.0)
    corners = {tuple(r) for r in itertools.product([-1.0, 1.0], repeat=3)}
    assert {tuple(r) for r in res.U} == corners


def test_quadratic_15_runs_reaches_best_known_d():
    study = cube(3)
    res = optimal_design(study, parse_model(study, "quadratic"), 15, seed=1, starts=6)
    assert res.d_criterion >= BEST_KNOWN_D * (1 - 1e-4)
    assert res.criterion == "D" and res.starts == 6
    assert set(np.unique(res.U)) <= {-1.0, -0.5, 0.0, 0.5, 1.0}


def test_same_seed_same_design_default_starts():
    study = cube(3)
    terms = parse_model(study, "quadratic")
    a = optimal_design(study, terms, 12, seed=7, rounds=2)
    b = optimal_design(study, terms, 12, seed=7, rounds=2)
    assert a.starts == b.starts and not a.stopped_by_time
    np.testing.assert_array_equal(a.U, b.U)
    c = optimal_design(study, terms, 12, seed=8, starts=2, rounds=2)  # may differ; must be valid
    assert c.U.shape == a.U.shape and c.d_criterion > 0


def test_time_limit_is_a_cap():
    study = cube(3)
    res = optimal_design(study, parse_model(study, "quadratic"), 15, seed=0, starts=10**6,
                         time_limit=0.3)
    assert res.stopped_by_time and 1 <= res.starts < 10**6
    assert res.seconds < 5.0 and res.d_criterion > 0.4


def test_levels_override():
    study = cube(2)
    terms = parse_model(study, "quadratic")
    res = optimal_design(study, terms, 9, seed=0, starts=2, levels={"A": [-1, 0, 1]})
    assert set(res.U[:, 0]) <= {-1.0, 0.0, 1.0}
    assert res.levels["A"] == [-1.0, 0.0, 1.0]
    with pytest.raises(DesignError, match="not a continuous factor.*Did you mean 'A'"):
        optimal_design(study, terms, 9, seed=0, levels={"a": [-1, 0, 1]})


def test_criteria_are_computed_from_scratch():
    study = msc()
    terms = parse_model(study, "quadratic")
    res = optimal_design(study, terms, 40, seed=3, starts=1, rounds=1)
    mm = ModelMatrix(study, terms)
    X = mm.build(res.U)
    N, p = X.shape
    assert res.d_criterion == pytest.approx(np.linalg.det(X.T @ X / N) ** (1 / p), rel=1e-9)
    M = moment_matrix(study, mm)
    assert res.i_criterion == pytest.approx(np.trace(M @ np.linalg.inv(X.T @ X)), rel=1e-9)
    assert design_criteria(study, mm, res.U) == pytest.approx((res.d_criterion, res.i_criterion))


@pytest.mark.parametrize("criterion", ["D", "I"])
def test_msc_constraint_honoured_and_all_levels_used(criterion):
    study = msc()
    res = optimal_design(study, parse_model(study, "quadratic"), 40, criterion, seed=2, starts=1,
                         rounds=2)
    frame = actual_frame(study, res.U)
    assert study.feasible(frame).all()
    assert not ((frame["Surface"] == "ULA") & (frame["Agitation"] > 75)).any()
    for f in study.factors:
        if f.is_categorical:
            assert set(frame[f.name]) == set(f.levels)
    assert res.U.shape == (40, 5)


def test_constraint_honoured_on_lazy_candidates(monkeypatch):
    monkeypatch.setattr(optimal, "GRID_MAX_CELLS", 1)  # force rows built per coordinate
    study = Study("lazy", [Factor("A", low=0, high=10), Factor("B", low=0, high=10)],
                  constraints=[_exclude("A + B > 15")])
    res = optimal_design(study, parse_model(study, "quadratic"), 9, seed=0, starts=2, rounds=1)
    assert study.feasible(actual_frame(study, res.U)).all()
    assert (actual_frame(study, res.U).sum(axis=1) <= 15 + 1e-9).all()


def test_blocks_split_evenly_and_enter_the_model():
    study = cube(3)
    terms = parse_model(study, "quadratic")
    res = optimal_design(study, terms, 17, seed=0, starts=2, n_blocks=3)
    assert np.bincount(res.blocks).tolist() == [6, 6, 5]
    assert res.columns[1:3] == ["Block[1]", "Block[2]"]
    X = ModelMatrix(study, terms, 3).build(res.U, res.blocks)
    assert res.d_criterion == pytest.approx(np.linalg.det(X.T @ X / 17) ** (1 / 12), rel=1e-9)


def test_augmentation_keeps_rows_and_increases_det():
    study = cube(3)
    terms = parse_model(study, "quadratic")
    base = optimal_design(study, terms, 12, seed=0, starts=2)
    res = augment_design(study, terms, base.U, 4, seed=0, starts=2)
    np.testing.assert_array_equal(res.U[:12], base.U)
    mm = ModelMatrix(study, terms)
    before = np.linalg.slogdet(mm.build(base.U).T @ mm.build(base.U))[1]
    after = np.linalg.slogdet(mm.build(res.U).T @ mm.build(res.U))[1]
    assert res.U.shape == (16, 3) and after > before


def test_augmentation_in_a_new_block():
    study = cube(3)
    terms = parse_model(study, "linear")
    base = optimal_design(study, terms, 8, seed=0, starts=1)
    res = augment_design(study, parse_model(study, "interactions"), base.U, 6, seed=0, starts=2,
                         n_blocks=2, fixed_blocks=np.zeros(8), new_blocks=np.ones(6))
    assert res.blocks.tolist() == [0] * 8 + [1] * 6
    np.testing.assert_array_equal(res.U[:8], base.U)


def test_i_optimal_has_lower_average_variance_than_d_optimal():
    study = cube(3)
    terms = parse_model(study, "quadratic")
    d_opt = optimal_design(study, terms, 15, "D", seed=0, starts=4)
    i_opt = optimal_design(study, terms, 15, "I", seed=0, starts=4)
    assert i_opt.criterion == "I"
    assert i_opt.i_criterion <= d_opt.i_criterion
    assert d_opt.d_criterion >= i_opt.d_criterion


# -- moment matrix ---------------------------------------------------------------------
def test_moment_matrix_exact_single_factor():
    study = Study("one", [Factor("A", low=0, high=2)])
    M = moment_matrix(study, ModelMatrix(study, parse_model(study, "A + A^2")))
    np.testing.assert_allclose(M, [[1, 0, 1 / 3], [0, 1 / 3, 0], [1 / 3, 0, 1 / 5]], atol=1e-14)


def test_moment_matrix_exact_agrees_with_monte_carlo():
    study = Study("mixed", [
        Factor("Medium", kind="categorical", levels=["a", "b", "c"]),
        Factor("Dose", kind="discrete", levels=[1, 2, 5]),
        Factor("Speed", low=30, high=90),
        Factor("Temp", low=20, high=40),
    ])
    mm = ModelMatrix(study, parse_model(study, "quadratic + Speed^3"), n_blocks=2)
    exact = moment_matrix(study, mm)
    mc = moment_matrix(study, mm, n_mc=200_000, method="mc")
    assert exact.shape == (mm.p, mm.p)
    np.testing.assert_array_equal(exact, exact.T)
    assert np.abs(exact - mc).max() < 1e-2


def test_moment_matrix_uses_monte_carlo_under_constraints():
    study = msc()
    mm = ModelMatrix(study, parse_model(study, "linear"))
    col = mm.columns.index("Surface[CellBIND]")
    # ULA is excluded above 75 rpm (coded 0.5): P(ULA) = 0.25 / (11/12), P(CellBIND) = 1 / (11/3),
    # so E[Surface[CellBIND] effect code] = P(CellBIND) - P(ULA) = 1/11 (0 without the constraint).
    assert moment_matrix(study, mm, n_mc=100_000)[0, col] == pytest.approx(1 / 11, abs=0.01)
    assert moment_matrix(study, mm, method="exact")[0, col] == pytest.approx(0.0, abs=1e-14)


# -- errors -----------------------------------------------------------------------------
def test_too_few_runs_is_a_clear_error():
    study = cube(3)
    with pytest.raises(DesignError, match=r"model has 10 terms.*at least 10 runs.*15 recommended"):
        optimal_design(study, parse_model(study, "quadratic"), 9, seed=0)


def test_square_of_two_level_factor_is_named():
    study = Study("two", [Factor("A", kind="discrete", levels=[1, 2]), Factor("B", low=0, high=1)])
    with pytest.raises(DesignError, match=r"'A\^2' cannot be estimated.*only 2 levels"):
        optimal_design(study, parse_model(study, "quadratic"), 10, seed=0)


def test_no_feasible_candidate_is_a_clear_error():
    study = Study("tight", [Factor("A", low=0, high=10), Factor("B", low=0, high=10)],
                  constraints=[_exclude("A < 1 or A > 9")])
    with pytest.raises(DesignError, match="No candidate setting satisfies"):
        optimal_design(study, parse_model(study, "linear"), 4, seed=0, levels={"A": [-1, 1]})


def test_singular_best_design_names_the_terms():
    study = Study("flat", [Factor("S", kind="categorical", levels=["x", "y"]), Factor("A", low=0, high=1)],
                  constraints=[_exclude("S == 'y' and A > 0")])
    with pytest.raises(DesignError, match=r"singular.*'S:A'"):
        optimal_design(study, parse_model(study, "interactions"), 8, seed=0, starts=1, rounds=0)


def test_bad_criterion():
    with pytest.raises(DesignError, match="'D' or 'I'"):
        optimal_design(cube(2), parse_model(cube(2), "linear"), 4, "A")


# -- AlgDesign reference ---------------------------------------------------------------
def _quad(U: np.ndarray) -> np.ndarray:
    """AlgDesign quad(.) for 3 factors: 1, Xi, XiXj, Xi^2 on raw levels (no centering)."""
    x1, x2, x3 = U.T
    return np.column_stack([np.ones(len(U)), x1, x2, x3, x1 * x2, x1 * x3, x2 * x3,
                            x1 ** 2, x2 ** 2, x3 ** 2])


def _mixture(U: np.ndarray) -> np.ndarray:
    """~ -1 + .^2 for 3 mixture components: X1, X2, X3, X1X2, X1X3, X2X3 (no intercept)."""
    x1, x2, x3 = U.T
    return np.column_stack([x1, x2, x3, x1 * x2, x1 * x3, x2 * x3])


def _algdesign_d_a(X: np.ndarray) -> tuple[float, float]:
    """AlgDesign eval.design: D = det(X'X/N)^(1/k), A = trace((X'X/N)^-1)/k."""
    N, k = X.shape
    Z = X.T @ X / N
    return float(np.linalg.det(Z) ** (1 / k)), float(np.trace(np.linalg.inv(Z)) / k)


@pytest.fixture(scope="module")
def reference():
    data = pd.read_csv(REF / "data.csv")
    expected = json.loads((REF / "expected.json").read_text())["expected"]
    return data, expected


@pytest.mark.parametrize("name,prefix,builder", [
    ("desMC", "desMC", _quad), ("desAG", "desAG", _quad), ("desMix", "desMix", _mixture),
])
def test_algdesign_printed_designs_d_and_a(reference, name, prefix, builder):
    data, expected = reference
    U = data[data["design"].str.startswith(prefix)][["X1", "X2", "X3"]].to_numpy(float)
    assert len(U) == expected[name]["N"]
    d, a = _algdesign_d_a(builder(U))
    assert d == pytest.approx(expected[name]["D"], rel=1e-6)
    assert a == pytest.approx(expected[name]["A"], rel=1e-6)


def test_algdesign_desde_d_and_i_conventions(reference):
    """Our criteria vs AlgDesign's on the desDE-like 15-run design (-2..2 grid).

    d_criterion is AlgDesign's D in -1..+1 units (D / 2^3 for a 3-factor
    quadratic); i_criterion = trace(M (X'X)^-1) is AlgDesign's I divided by N,
    with M the uniform moments over the 5^3 candidate list (a discrete factor
    with levels -2..2 in our study).
    """
    data, expected = reference
    U_raw = data[data["design"].str.startswith("desDE")][["X1", "X2", "X3"]].to_numpy(float)
    study = Study("grid", [Factor(n, kind="discrete", levels=[-2, -1, 0, 1, 2]) for n in ("X1", "X2", "X3")])
    mm = ModelMatrix(study, parse_model(study, "quadratic"))
    d, i = design_criteria(study, mm, U_raw / 2.0)
    ref = expected["desDE_generator_benchmark"]
    N = len(U_raw)
    assert d * 8 == pytest.approx(ref["D"], rel=1e-6)
    assert i * N == pytest.approx(ref["I"], rel=1e-6)
    assert _algdesign_d_a(_quad(U_raw))[0] == pytest.approx(ref["D"], rel=1e-6)


def test_i_optimal_beats_algdesign_desie(reference):
    """AlgDesign's optFederov I-optimal design has I = 8.096772 (candidate-list moments)."""
    _, expected = reference
    study = Study("grid", [Factor(n, kind="discrete", levels=[-2, -1, 0, 1, 2]) for n in ("X1", "X2", "X3")])
    res = optimal_design(study, parse_model(study, "quadratic"), 15, "I", seed=0, starts=4)
    assert res.i_criterion * 15 <= expected["desIE_I_optimal_benchmark"]["I"] * (1 + 1e-6)
