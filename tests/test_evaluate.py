"""Design evaluation against theory and published numbers (coded units unless stated)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scipy import stats

from doe.design import make_design
from doe.evaluate import alias_structure, evaluate_design
from doe.model import ModelMatrix, parse_model
from doe.plots import design as figures
from doe.region import moment_matrix
from doe.study import Factor, Study

ROOT = Path(__file__).resolve().parents[1]
ALGDESIGN = ROOT / "tests" / "reference_cases" / "algdesign_vignette_optimal_design_benchmarks"


def _study(names: str) -> Study:
    return Study("test", [Factor(n, low=-1, high=1) for n in names])


def _full_factorial(k: int) -> np.ndarray:
    return np.array(list(itertools.product([-1.0, 1.0], repeat=k)))


def _half_fraction_iv() -> np.ndarray:
    """2^(4-1) with D = ABC, i.e. I = ABCD (resolution IV)."""
    base = _full_factorial(3)
    return np.column_stack([base, base.prod(axis=1)])


# -- efficiencies of orthogonal designs ------------------------------------------------
@pytest.mark.parametrize("model", ["linear", "interactions"])
def test_full_factorial_is_fully_efficient(model):
    ev = evaluate_design(_study("ABC"), _full_factorial(3), model)
    assert ev.estimable and ev.rank == ev.p
    assert ev.d_efficiency == pytest.approx(100.0, rel=1e-12)
    assert ev.d_criterion == pytest.approx(1.0, rel=1e-12)
    assert ev.a_efficiency == pytest.approx(100.0, rel=1e-12)
    assert ev.g_efficiency == pytest.approx(100.0, rel=1e-12)
    assert all(v == pytest.approx(1.0, rel=1e-12) for v in ev.vif.values())
    assert set(ev.vif) == set(ev.columns) - {"Intercept"}


def test_avg_prediction_variance_2x2_linear():
    # X'X = 4I, M = diag(1, 1/3, 1/3): I = trace(M (X'X)^-1) = (1 + 2/3) / 4 = 5/12.
    ev = evaluate_design(_study("AB"), _full_factorial(2), "linear")
    assert ev.avg_prediction_variance == pytest.approx(5.0 / 12.0, rel=1e-12)
    assert ev.region["moments"] == "exact"
    # Fraction-of-design-space median lies between the minimum 1/4 and maximum 3/4.
    v = np.array(ev.fds["variance"])
    assert np.all(np.diff(v) >= 0) and 0.25 <= v[0] and v[-1] <= 0.75 + 1e-12


def test_exact_moments_agree_with_theory_and_monte_carlo():
    s = Study("m", [
        Factor("A", low=0, high=10),
        Factor("B", kind="discrete", levels=[1, 2, 4]),
        Factor("C", kind="categorical", levels=["x", "y", "z"]),
    ])
    mm = ModelMatrix(s, parse_model(s, "quadratic"), n_blocks=2)
    exact = moment_matrix(s, mm, method="exact")
    mc = moment_matrix(s, mm, method="mc", n_mc=400_000, seed=3)
    assert np.allclose(exact, mc, atol=0.01)
    col = {c: i for i, c in enumerate(mm.columns)}
    a, a2 = col["A"], col["A^2"]
    assert exact[a, a] == pytest.approx(1 / 3) and exact[a2, a2] == pytest.approx(1 / 5)
    assert exact[col["Intercept"], a2] == pytest.approx(1 / 3) and exact[a, a2] == pytest.approx(0)
    b_coded = (np.array([1, 2, 4]) - 2.5) / 1.5
    assert exact[col["B"], col["B"]] == pytest.approx(np.mean(b_coded ** 2))
    # Effect coding over 3 equally likely levels: E[c1^2] = 2/3, E[c1 c2] = 1/3.
    assert exact[col["C[x]"], col["C[x]"]] == pytest.approx(2 / 3)
    assert exact[col["C[x]"], col["C[y]"]] == pytest.approx(1 / 3)
    assert exact[col["Block[1]"], col["Block[1]"]] == pytest.approx(1.0)


# -- estimability and aliasing ----------------------------------------------------------
def test_resolution_iv_interactions_not_estimable_and_aliased():
    s, U = _study("ABCD"), _half_fraction_iv()
    ev = evaluate_design(s, U, "interactions")
    assert not ev.estimable and ev.rank == 8 and ev.p == 11
    assert ev.d_efficiency is None and ev.a_efficiency is None and ev.g_efficiency is None
    flagged = {d["column"]: d["reason"] for d in ev.inestimable}
    assert set(flagged) == {"B:C", "B:D", "C:D"}
    assert "aliased with A:D" in flagged["B:C"]
    ab = next(a for a in ev.aliases if a["term"] == "A:B")
    assert ab["aliased_with"] == {"C:D": pytest.approx(1.0)}
    assert "A:B = A:B + 1.0 C:D" in alias_structure(s, U, "interactions")
    # Main effects are clear of two-factor interactions, aliased with three-factor ones.
    assert "A = A" in alias_structure(s, U, "linear")
    assert "A = A + 1.0 B:C:D" in alias_structure(s, U, "linear", max_order=3)
    assert ev.correlation.loc["A:B", "C:D"] == pytest.approx(1.0)
    json.dumps(ev.to_json())


def test_quadratic_on_two_levels_flags_squares():
    ev = evaluate_design(_study("AB"), np.vstack([_full_factorial(2)] * 2), "quadratic")
    assert not ev.estimable
    reason = {d["column"]: d["reason"] for d in ev.inestimable}
    assert set(reason) == {"A^2", "B^2"}
    assert "only 2 levels" in reason["A^2"]
    assert any(w.startswith("A^2 cannot be estimated: A has only 2 levels") for w in ev.warnings)
    assert ev.to_json()["d_efficiency"] is None


def test_too_few_runs_and_constant_column():
    s = _study("ABC")
    ev = evaluate_design(s, _full_factorial(3)[:4], "interactions")
    assert any("4 runs cannot estimate 7 model terms" in w for w in ev.warnings)
    U = _full_factorial(2)
    U = np.column_stack([U, np.zeros(4)])
    ev = evaluate_design(s, U, "linear")
    assert [d["column"] for d in ev.inestimable] == ["C"]
    assert "one setting" in ev.inestimable[0]["reason"]


# -- VIF and power -------------------------------------------------------------------
def test_vif_matches_independent_regression():
    rng = np.random.default_rng(7)
    s = _study("ABC")
    U = rng.uniform(-1, 1, size=(14, 3))
    ev = evaluate_design(s, U, "interactions")
    X = ModelMatrix(s, parse_model(s, "interactions")).build(U)
    for j, name in enumerate(ev.columns):
        if name == "Intercept":
            continue
        others = np.delete(X, j, axis=1)  # keeps the intercept
        fitted = others @ np.linalg.lstsq(others, X[:, j], rcond=None)[0]
        r2 = 1 - np.sum((X[:, j] - fitted) ** 2) / np.sum((X[:, j] - X[:, j].mean()) ** 2)
        assert ev.vif[name] == pytest.approx(1 / (1 - r2), rel=1e-9)


def test_power_matches_noncentral_f():
    ev = evaluate_design(_study("ABC"), _full_factorial(3), "linear", snr=1.0, alpha=0.05)
    crit = stats.f.ppf(0.95, 1, 4)
    expected = stats.ncf.sf(crit, 1, 4, 8.0)  # lambda = N * snr^2 = 8
    row = ev.power.set_index("term").loc["A"]
    assert row["df"] == 1 and row["power"] == pytest.approx(expected, rel=1e-10)
    assert 0.5 < expected < 0.6


def test_power_of_categorical_term_uses_alternating_coefficients():
    s = Study("c", [Factor("M", kind="categorical", levels=["a", "b", "c"]), Factor("T", low=0, high=1)])
    U = np.array([[m, t] for m in range(3) for t in (-1, 1)] * 2, dtype=float)
    ev = evaluate_design(s, U, "linear", snr=1.5, alpha=0.1)
    X = ModelMatrix(s, parse_model(s, "linear")).build(U)
    V = np.linalg.inv(X.T @ X)[1:3, 1:3]
    b = 1.5 * np.array([1.0, -1.0])
    lam = b @ np.linalg.solve(V, b)
    dfe = len(U) - X.shape[1]
    expected = stats.ncf.sf(stats.f.ppf(0.9, 2, dfe), 2, dfe, lam)
    row = ev.power.set_index("term").loc["M"]
    assert row["df"] == 2 and row["power"] == pytest.approx(expected, rel=1e-10)


def test_no_error_df_gives_nan_power_and_warning():
    ev = evaluate_design(_study("AB"), _full_factorial(2), "interactions")
    assert ev.power["power"].isna().all()
    assert any("No degrees of freedom are left for error" in w for w in ev.warnings)


# -- AlgDesign vignette (published numbers) ---------------------------------------------
def _algdesign() -> tuple[pd.DataFrame, dict]:
    data = pd.read_csv(ALGDESIGN / "data.csv")
    expected = json.loads((ALGDESIGN / "expected.json").read_text())["expected"]
    return data, expected


def _quad_raw(Xr: np.ndarray) -> np.ndarray:
    """AlgDesign's quad(.) on raw levels: 1, Xi, XiXj, Xi^2 (same order as our model)."""
    pairs = [Xr[:, i] * Xr[:, j] for i, j in itertools.combinations(range(3), 2)]
    return np.column_stack([np.ones(len(Xr)), Xr, *pairs, Xr ** 2])


@pytest.mark.parametrize("name,key", [("desMC_optMonteCarlo", "desMC"), ("desAG_augmented", "desAG")])
def test_algdesign_printed_designs(name, key):
    data, expected = _algdesign()
    Xr = data.loc[data["design"] == name, ["X1", "X2", "X3"]].to_numpy(dtype=float)
    n, k = len(Xr), 10
    F = _quad_raw(Xr)
    Minv_raw = np.linalg.inv(F.T @ F / n)
    D_raw = np.linalg.det(F.T @ F / n) ** (1 / k)
    A_raw = np.trace(Minv_raw) / k
    assert D_raw == pytest.approx(expected[key]["D"], rel=1e-6)
    assert A_raw == pytest.approx(expected[key]["A"], rel=1e-6)

    s = Study("algdesign", [Factor(f"X{i}", low=-2, high=2) for i in (1, 2, 3)])
    ev = evaluate_design(s, Xr / 2.0, "quadratic")
    # Coding x = X/2 scales columns by S = diag(1, 2,2,2, 4,4,4, 4,4,4): det(S)^(2/k) = 2^3.
    assert ev.d_criterion == pytest.approx(expected[key]["D"] / 8.0, rel=1e-6)
    # (Xc'Xc)^-1 = S (Xr'Xr)^-1 S, so A_coded = sum_i s_i^2 [(X'X/N)^-1]_ii / k on raw levels.
    scale = np.array([1, 2, 2, 2, 4, 4, 4, 4, 4, 4], dtype=float)
    A_coded = np.sum(scale ** 2 * np.diag(Minv_raw)) / k
    assert ev.a_efficiency == pytest.approx(100.0 / A_coded, rel=1e-6)
    assert ev.d_efficiency == pytest.approx(100 * ev.d_criterion, rel=1e-12)
    # Our G maximum runs over a 17^3 grid that contains AlgDesign's 5^3 candidate grid.
    assert ev.g_efficiency <= 100.0
    if key == "desAG":  # desMC's published Ge used optMonteCarlo's random candidates
        assert ev.g_efficiency / 100 == pytest.approx(expected[key]["Ge"], abs=5e-4)


# -- blocks, Design objects, the bundled MSC example ------------------------------------
def test_blocked_design_object():
    s = Study("b", [Factor("A", low=0, high=1), Factor("B", low=0, high=1)], blocks="Day")
    U = np.vstack([_full_factorial(2), [[0, 0]], _full_factorial(2), [[0, 0]]])
    blocks = np.repeat([0, 1], 5)
    design = make_design(s, U, "factorial", ["factorial"] * 4 + ["centre"] + ["factorial"] * 4 + ["centre"],
                         blocks=blocks, seed=1)
    ev = evaluate_design(s, design, "interactions")
    assert ev.n_blocks == 2 and "Block[1]" in ev.columns and "Block[1]" not in ev.vif
    assert ev.estimable and 0 < ev.g_efficiency <= 100.0 + 1e-9
    same = evaluate_design(s, U, "interactions", blocks=blocks)
    assert same.d_efficiency == pytest.approx(ev.d_efficiency, rel=1e-12)
    assert same.avg_prediction_variance == pytest.approx(ev.avg_prediction_variance, rel=1e-12)


def _msc_design() -> tuple[Study, np.ndarray]:
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    grid = study.grid(levels=3)
    from doe.model import coded_array

    cand = coded_array(study, grid[study.feasible(grid)])
    rng = np.random.default_rng(11)
    return study, cand[rng.choice(len(cand), size=40, replace=False)]


def test_msc_example_is_consistent():  # its speed: bench/bench_design.py
    study, U = _msc_design()
    ev = evaluate_design(study, U, "quadratic")
    assert ev.runs == 40 and ev.p == 36 and ev.estimable
    assert ev.region["moments"] == "monte carlo"  # the ULA/agitation constraint
    assert 0 < ev.g_efficiency <= 100 and 0 < ev.d_efficiency <= 100
    payload = ev.to_json()
    json.dumps(payload)
    for key in ("runs", "terms", "d_efficiency", "d_criterion", "a_efficiency", "g_efficiency",
                "avg_prediction_variance", "vif", "estimable", "aliases"):
        assert key in payload


# -- figures -------------------------------------------------------------------------
def _axis_titles(fig: go.Figure) -> tuple[str, str]:
    return fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def test_evaluation_figures():
    study, U = _msc_design()
    ev = evaluate_design(study, U, "quadratic")
    made = [figures.correlation_map(ev), figures.fds_plot(ev),
            figures.power_chart(ev, 1.0, 0.05), figures.vif_chart(ev)]
    for fig in made:
        assert isinstance(fig, go.Figure) and len(fig.data) > 0
        assert all(_axis_titles(fig)) and fig.layout.title.text
        assert fig.layout.template.layout.font.size >= 13
    assert len(made[1].data[0].x) == len(ev.fds["fraction"])
    with pytest.raises(ValueError):
        figures.power_chart(ev, snr=2.0, alpha=0.05)


def test_design_matrix_plots():
    study, U = _msc_design()
    fig = figures.design_matrix_plot(make_design(study, U, "optimal", ["optimal"] * len(U), seed=2))
    assert len(fig.data) > 0 and _axis_titles(fig) == ("Agitation (rpm)", "Seeding density (cells/cm2)")
    s3 = Study("s", [Factor("A", low=0, high=1, units="h"), Factor("B", low=0, high=1),
                     Factor("C", low=0, high=1)])
    fig = figures.design_matrix_plot(make_design(s3, _full_factorial(3), "factorial", ["factorial"] * 8))
    assert len(fig.data) > 0 and fig.layout.xaxis.title.text == "A (h)"


def test_power_at_matches_direct_evaluation(example_study):
    from doe.evaluate import power_at
    from doe.generators import generate

    d = generate(example_study, "lhs", runs=30, seed=2)
    terms = parse_model(example_study, "interactions")
    base = evaluate_design(example_study, d, terms, snr=1.0)
    direct = evaluate_design(example_study, d, terms, snr=1.7, alpha=0.1)
    rescaled = power_at(base, 1.7, 0.1)
    assert np.allclose(rescaled.power["power"], direct.power["power"], rtol=1e-10, equal_nan=True)
