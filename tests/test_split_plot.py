"""Optimal split-plot, split-split-plot and donor-block designs (doe.split_plot), their evaluation and the CLI.

Published numbers: Jones & Goos (2012, JQT 44(2), Tables 2-3), kept in
tests/reference_cases/jones_goos_2012_split_plot (designs, relative variances, average prediction
variances, efficiencies). Independently derived numbers: the optimum of small split-split-plot and
donor-block problems by enumerating every design; the power of each term by a noncentral F computed
here from an explicitly built V and GLS covariance.
"""

import contextlib
import io
import itertools
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from doe.cli import main
from doe.errors import DesignError
from doe.evaluate import evaluate_design, power_at
from doe.generators import generate
from doe.model import ModelMatrix, parse_model
from doe.split_plot import (
    plot_structure,
    run_order,
    split_plot_criteria,
    split_plot_design,
    split_plot_power,
)
from doe.study import Factor, Study
from tests.conftest import REFERENCE, ROOT

CASE = REFERENCE / "jones_goos_2012_split_plot"


def _jg_study() -> Study:
    return Study("jg2012", [Factor("w", low=-1, high=1, hard_to_change=True), Factor("s", low=-1, high=1)])


def _published():
    data = pd.read_csv(CASE / "data.csv")
    expected = json.loads((CASE / "expected.json").read_text())["expected"]
    designs = {name: g.sort_values("whole_plot", kind="stable")[["w", "s"]].to_numpy(dtype=float)
               for name, g in data.groupby("design")}
    return designs, expected


def _moments_square() -> np.ndarray:
    """Moments of (1, w, s, ws, w^2, s^2) for w, s uniform on [-1, 1], by hand: E[x^2] = 1/3, E[x^4] = 1/5."""
    powers = [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2)]

    def e(k):
        return 0.0 if k % 2 else 1.0 / (k + 1)

    return np.array([[e(a[0] + b[0]) * e(a[1] + b[1]) for b in powers] for a in powers])


def _X(U: np.ndarray) -> np.ndarray:
    w, s = U[:, 0], U[:, 1]
    return np.column_stack([np.ones(len(U)), w, s, w * s, w ** 2, s ** 2])


def _V(groups: list[np.ndarray], ratios: list[float]) -> np.ndarray:
    n = len(groups[0])
    V = np.eye(n)
    for g, eta in zip(groups, ratios):
        Z = (g[:, None] == np.unique(g)[None, :]).astype(float)
        V += eta * Z @ Z.T
    return V


# -- published numbers ---------------------------------------------------------------------------------------
def test_published_designs_reproduce_printed_numbers():
    """Jones & Goos (2012) Tables 2-3: every printed number from the printed designs, by our criteria."""
    designs, exp = _published()
    study = _jg_study()
    terms = parse_model(study, "quadratic")
    mm = ModelMatrix(study, terms)
    assert mm.columns == ["Intercept", "w", "s", "w:s", "w^2", "s^2"]
    Mom = _moments_square()
    np.testing.assert_allclose(mm.build(designs["D-optimal"]), _X(designs["D-optimal"]))
    crit = {}
    for eta in (0.1, 1.0, 10.0):
        st = plot_structure(20, 4, variance_ratio=eta)
        for name, U in designs.items():
            crit[name, eta] = split_plot_criteria(study, mm, U, st)
            # the region's moment matrix is the one computed by hand
            Minv = np.linalg.inv(mm.build(U).T @ np.linalg.inv(st.covariance()) @ mm.build(U))
            assert crit[name, eta][1] == pytest.approx(float(np.trace(Mom @ Minv)), rel=1e-12)
            if eta == 1.0:
                np.testing.assert_allclose(np.diag(Minv), exp["relative_variances_eta1"][name], atol=5e-4)
        assert round(100 * crit["I-optimal", eta][0] / crit["D-optimal", eta][0], 1) == exp["i_optimal_d_efficiency_percent"]
        i_eff = 100 * crit["I-optimal", eta][1] / crit["D-optimal", eta][1]
        assert round(i_eff, 1) == exp["d_optimal_i_efficiency_percent"][f"{eta:g}"]
    for name in designs:
        assert round(crit[name, 1.0][1], 3) == exp["average_relative_prediction_variance_eta1"][name]


@pytest.mark.parametrize("criterion", ["D", "I"])
def test_exchange_reaches_published_optimum(criterion):
    """Our coordinate exchange finds designs as good as the published D- and I-optimal ones."""
    designs, exp = _published()
    study = _jg_study()
    terms = parse_model(study, "quadratic")
    mm = ModelMatrix(study, terms)
    st = plot_structure(20, 4)
    d_pub = split_plot_criteria(study, mm, designs["D-optimal"], st)[0]
    res = split_plot_design(study, terms, 20, 4, criterion, seed=11, starts=12)
    assert res.whole_plot_factors == ["w"]
    if criterion == "D":
        assert round(d_pub, 6) == 0.186400
        assert res.d_criterion >= d_pub - 1e-9
    else:
        assert round(res.i_criterion, 3) <= exp["average_relative_prediction_variance_eta1"]["I-optimal"]
    # w constant within every whole plot
    for w in range(4):
        assert np.ptp(res.U[res.structure.whole_plot == w, 0]) == 0


# -- independently derived optima (enumeration) ------------------------------------------------------------------
def _all_designs(levels_per_coordinate: int, n_coordinates: int) -> np.ndarray:
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n_coordinates)))


def test_split_split_plot_reaches_enumerated_optimum():
    """A, very hard to change; B, hard to change; C easy: 8 runs, 2 whole plots, 4 subplots; every design."""
    study = Study("ssp", [Factor("A", low=-1, high=1, hard_to_change="very"),
                          Factor("B", low=-1, high=1, hard_to_change=True), Factor("C", low=-1, high=1)])
    terms = parse_model(study, "interactions")
    st = plot_structure(8, 2, 4, variance_ratio=1.0)
    assert st.whole_plot.tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and st.subplot.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    Vi = np.linalg.inv(_V([st.whole_plot, st.subplot], [1.0, 1.0]))
    coords = _all_designs(2, 2 + 4 + 8)
    A = coords[:, st.whole_plot]            # one value per whole plot
    B = coords[:, 2 + st.subplot]           # one value per subplot
    C = coords[:, 6:]
    X = np.stack([np.ones_like(A), A, B, C, A * B, A * C, B * C], axis=-1)
    M = np.einsum("dnp,nm,dmq->dpq", X, Vi, X)
    sign, logdet = np.linalg.slogdet(M)
    best_d = float(np.exp(np.max(np.where(sign > 0, logdet, -np.inf)) / 7) / 8)
    Mom = np.diag([1, 1 / 3, 1 / 3, 1 / 3, 1 / 9, 1 / 9, 1 / 9])
    w = np.linalg.eigvalsh(M)
    ok = w[:, 0] > 1e-9 * w[:, -1]  # regular designs only
    best_i = float(np.min(np.einsum("ij,dji->d", Mom, np.linalg.inv(M[ok]))))
    res_d = split_plot_design(study, terms, 8, 2, "D", subplots=4, seed=2, starts=10)
    res_i = split_plot_design(study, terms, 8, 2, "I", subplots=4, seed=2, starts=10)
    assert res_d.whole_plot_factors == ["A"] and res_d.subplot_factors == ["B"]
    assert res_d.d_criterion == pytest.approx(best_d, rel=1e-9)
    assert res_i.i_criterion == pytest.approx(best_i, rel=1e-9)
    for res in (res_d, res_i):
        for g in range(2):
            assert np.ptp(res.U[res.structure.whole_plot == g, 0]) == 0
        for g in range(4):
            assert np.ptp(res.U[res.structure.subplot == g, 1]) == 0


def test_donor_blocks_reach_enumerated_optimum():
    """Random blocks (Goos & Vandebroek 2001): 2 factors, interaction model, 8 runs in 2 donors of 4."""
    study = Study("donors", [Factor("A", low=-1, high=1), Factor("B", low=-1, high=1)])
    terms = parse_model(study, "interactions")
    eta = 2.0
    st = plot_structure(8, 2, variance_ratio=eta)
    Vi = np.linalg.inv(_V([st.whole_plot], [eta]))
    coords = _all_designs(2, 16)
    A, B = coords[:, :8], coords[:, 8:]
    X = np.stack([np.ones_like(A), A, B, A * B], axis=-1)
    M = np.einsum("dnp,nm,dmq->dpq", X, Vi, X)
    sign, logdet = np.linalg.slogdet(M)
    best = float(np.exp(np.max(np.where(sign > 0, logdet, -np.inf)) / 4) / 8)
    res = split_plot_design(study, terms, 8, 2, "D", variance_ratio=eta, whole_plot_factors=[], seed=0, starts=6)
    assert res.whole_plot_factors == []
    assert res.d_criterion == pytest.approx(best, rel=1e-9)


# -- power -----------------------------------------------------------------------------------------------------
def test_power_by_stratum_matches_noncentral_f_by_hand():
    """GLS power per term: noncentrality b^2 / Var(b_hat), df_den W - p_wp or N - W - p_sp, by hand."""
    designs, _ = _published()
    study = _jg_study()
    mm = ModelMatrix(study, parse_model(study, "quadratic"))
    U = designs["D-optimal"]
    st = plot_structure(20, 4, variance_ratio=1.0)
    table = split_plot_power(mm, mm.build(U), st, ["w"], [], snr=1.0, alpha=0.05).set_index("term")
    cov = np.linalg.inv(_X(U).T @ np.linalg.solve(_V([st.whole_plot], [1.0]), _X(U)))
    strata = {"Intercept": "whole plot", "w": "whole plot", "w^2": "whole plot",
              "s": "subplot", "w:s": "subplot", "s^2": "subplot"}
    for j, term in enumerate(["Intercept", "w", "s", "w:s", "w^2", "s^2"]):
        dfd = 4 - 3 if strata[term] == "whole plot" else 20 - 4 - 3
        lam = 1.0 / cov[j, j]
        power = stats.ncf.sf(stats.f.ppf(0.95, 1, dfd), 1, dfd, lam)
        row = table.loc[term]
        assert row["stratum"] == strata[term] and row["df_den"] == dfd and row["df"] == 1
        assert row["noncentrality"] == pytest.approx(lam, rel=1e-10)
        assert row["power"] == pytest.approx(power, rel=1e-10)
    # whole-plot terms are visibly weaker than subplot terms of the same size
    assert table.loc["w", "power"] < 0.5 * table.loc["s", "power"]
    assert table.loc["w^2", "power"] < table.loc["s^2", "power"]


def test_evaluation_json_keys_and_power_at():
    designs, _ = _published()
    study = _jg_study()
    st = plot_structure(20, 4)
    ev = evaluate_design(study, designs["I-optimal"], "quadratic", plots=st, variance_ratio=1.0)
    out = ev.to_json()
    assert out["whole_plots"] == 4 and out["variance_ratio"] == 1.0
    assert round(out["i_criterion_split_plot"], 3) == 0.717
    assert out["d_efficiency_split_plot"] == pytest.approx(100 * split_plot_criteria(
        study, ModelMatrix(study, parse_model(study, "quadratic")), designs["I-optimal"], st)[0])
    assert {"d_efficiency", "avg_prediction_variance", "power", "vif"} <= set(out)  # today's keys kept
    assert {"df_den", "stratum"} <= set(out["power"][0])
    # power at another signal-to-noise ratio uses each term's stratum df
    again = power_at(ev, 2.0).power.set_index("term")
    dfd, lam = again.loc["w", "df_den"], again.loc["w", "noncentrality"]
    assert again.loc["w", "power"] == pytest.approx(stats.ncf.sf(stats.f.ppf(0.95, 1, dfd), 1, dfd, lam))


# -- structure, order, bad input --------------------------------------------------------------------------------
def test_plot_structure_and_run_order():
    st = plot_structure(10, 3, 5)
    assert np.bincount(st.whole_plot).tolist() == [4, 3, 3]
    assert np.bincount(st.subplot).tolist() == [2, 2, 2, 1, 3]
    for s in range(5):  # every subplot inside one whole plot
        assert len(set(st.whole_plot[st.subplot == s])) == 1
    order = run_order(st, seed=4)
    assert sorted(order.tolist()) == list(range(10))
    wp = st.whole_plot[order]
    assert all(len(set(wp[i] for i in range(len(wp)) if wp[i] == w)) == 1 for w in set(wp))
    changes = np.count_nonzero(np.diff(wp))
    assert changes == 2  # whole plots contiguous in run order
    assert run_order(st, seed=4).tolist() == order.tolist()


@pytest.mark.parametrize("kwargs, words", [
    (dict(whole_plots=2), "whole plots"),
    (dict(whole_plots=4, variance_ratio=-1.0), "variance ratio"),
    (dict(whole_plots=4, subplots=2), "subplots"),
])
def test_bad_split_plot_requests_say_what_to_do(kwargs, words):
    study = _jg_study()
    terms = parse_model(study, "quadratic")
    with pytest.raises(DesignError, match=words):
        split_plot_design(study, terms, 20, kwargs.pop("whole_plots"), **kwargs)


def test_generate_refuses_mixed_requests():
    study = _jg_study()
    with pytest.raises(DesignError, match="Donor blocks with hard-to-change"):
        generate(study, "optimal", model="quadratic", runs=12, donors=3, seed=1)
    with pytest.raises(DesignError, match="'hard_to_change: very'"):
        generate(study, "optimal", model="quadratic", runs=12, whole_plots=4, subplots=6, seed=1)
    ssp = Study("ssp", [Factor("A", low=0, high=1, hard_to_change="very"),
                        Factor("B", low=0, high=1, hard_to_change=True), Factor("C", low=0, high=1)])
    with pytest.raises(DesignError, match="--subplots"):
        generate(ssp, "optimal", model="linear", runs=12, whole_plots=4, seed=1)


# -- CLI ---------------------------------------------------------------------------------------------------------
def run(*args, check=True):
    """``python -m doe ARGS`` in this process (doe.cli.main): (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    proc = SimpleNamespace(returncode=code, stderr=err.getvalue())
    if check:
        assert code == 0, proc.stderr
    return proc


def test_cli_entry_point_runs_split_plot(tmp_path):
    """The real entry point once (the other CLI tests call doe.cli.main in-process)."""
    (tmp_path / "s.yaml").write_text(STUDY)
    args = ["design", tmp_path / "s.yaml", "--type", "optimal", "--model", "linear", "--runs", 12, "--whole-plots", 6,
            "--seed", 1, "--out", tmp_path / "d.csv"]
    proc = subprocess.run([sys.executable, "-m", "doe", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(tmp_path / "d.csv")["Whole plot"].nunique() == 6


STUDY = """schema: 1
name: MSC split plot
factors:
  - {name: Vessel, kind: categorical, levels: [T75, CS2], hard_to_change: true}
  - {name: Coating, low: 0, high: 10, units: ug/cm2, hard_to_change: true}
  - {name: Seeding, low: 1000, high: 5000, units: cells/cm2}
  - {name: O2, low: 2, high: 21, units: pct}
responses: [{name: Yield}]
"""


def _constant_within(sheet: pd.DataFrame, unit: str, names: list[str]) -> bool:
    return all(sheet.groupby(unit)[n].nunique().max() == 1 for n in names)


def test_cli_split_plot_design_and_round_trip(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY)
    run("design", tmp_path / "s.yaml", "--type", "optimal", "--model", "interactions", "--runs", 24,
        "--whole-plots", 8, "--variance-ratio", 2, "--seed", 5, "--out", tmp_path / "d.csv", "--json", tmp_path / "e.json")
    sheet = pd.read_csv(tmp_path / "d.csv")
    assert list(sheet.columns[:4]) == ["Run", "StdOrder", "Whole plot", "PointType"]
    assert sheet["Run"].tolist() == list(range(1, 25))
    assert sheet["Whole plot"].tolist() == sorted(sheet["Whole plot"])  # sorted by whole plot, 1..W
    assert set(sheet["Whole plot"]) == set(range(1, 9))
    assert _constant_within(sheet, "Whole plot", ["Vessel", "Coating"])
    assert not _constant_within(sheet, "Whole plot", ["Seeding"])
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["whole_plots"] == 8 and ev["variance_ratio"] == 2.0
    assert ev["whole_plot_factors"] == ["Vessel", "Coating"]
    assert 0 < ev["d_efficiency_split_plot"] <= 100 and ev["i_criterion_split_plot"] > 0
    assert {"d_efficiency", "a_efficiency", "g_efficiency", "avg_prediction_variance"} <= set(ev)
    power = {r["term"]: r for r in ev["power"]}
    assert power["Coating"]["stratum"] == "whole plot" and power["Seeding"]["stratum"] == "subplot"
    assert power["Coating"]["df_den"] == 8 - 4  # Intercept, Vessel, Coating, Vessel:Coating
    assert power["Coating"]["power"] < power["Seeding"]["power"]
    # the same seed gives the same design
    run("design", tmp_path / "s.yaml", "--type", "optimal", "--model", "interactions", "--runs", 24,
        "--whole-plots", 8, "--variance-ratio", 2, "--seed", 5, "--out", tmp_path / "d2.csv")
    assert pd.read_csv(tmp_path / "d2.csv").equals(sheet)
    # the Whole plot column survives the round trip through the run sheet (evaluate assumes ratio 1)
    run("evaluate", tmp_path / "s.yaml", tmp_path / "d.csv", "--model", "interactions", "--json", tmp_path / "e2.json")
    again = json.loads((tmp_path / "e2.json").read_text())
    assert again["whole_plots"] == 8 and again["variance_ratio"] == 1.0
    assert [r["df_den"] for r in again["power"]] == [r["df_den"] for r in ev["power"]]


def test_cli_default_whole_plots_warns(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY)
    run("design", tmp_path / "s.yaml", "--type", "optimal", "--model", "linear", "--runs", 16, "--seed", 1,
        "--out", tmp_path / "d.csv", "--json", tmp_path / "e.json")
    ev = json.loads((tmp_path / "e.json").read_text())
    assert any("No number of whole plots was given" in w and "--whole-plots" in w for w in ev["warnings"])
    sheet = pd.read_csv(tmp_path / "d.csv")
    assert ev["whole_plots"] == sheet["Whole plot"].nunique() >= 3 + 2
    assert _constant_within(sheet, "Whole plot", ["Vessel", "Coating"])


def test_cli_split_split_plot(tmp_path):
    study = STUDY.replace("levels: [T75, CS2], hard_to_change: true", "levels: [T75, CS2], hard_to_change: very")
    (tmp_path / "s.yaml").write_text(study)
    run("design", tmp_path / "s.yaml", "--type", "optimal", "--model", "linear", "--runs", 24, "--whole-plots", 4,
        "--subplots", 8, "--seed", 3, "--out", tmp_path / "d.csv", "--json", tmp_path / "e.json")
    sheet = pd.read_csv(tmp_path / "d.csv")
    assert list(sheet.columns[:5]) == ["Run", "StdOrder", "Whole plot", "Subplot", "PointType"]
    assert sheet.groupby("Subplot")["Whole plot"].nunique().max() == 1  # subplots nested in whole plots
    assert sheet["Subplot"].nunique() == 8 and sheet["Whole plot"].nunique() == 4
    assert _constant_within(sheet, "Whole plot", ["Vessel"])
    assert _constant_within(sheet, "Subplot", ["Coating"])
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["subplots"] == 8 and ev["whole_plot_factors"] == ["Vessel"] and ev["subplot_factors"] == ["Coating"]
    strata = {r["term"]: (r["stratum"], r["df_den"]) for r in ev["power"]}
    assert strata["Vessel"] == ("whole plot", 4 - 2)
    assert strata["Coating"] == ("subplot", 8 - 4 - 1)
    assert strata["O2"] == ("sub-subplot", 24 - 8 - 2)


def test_cli_donor_blocks(tmp_path):
    study = STUDY.replace(", hard_to_change: true", "") + "random_effects: [Patient]\n"
    (tmp_path / "s.yaml").write_text(study)
    run("design", tmp_path / "s.yaml", "--type", "optimal", "--model", "linear", "--runs", 12, "--donors", 3,
        "--seed", 2, "--out", tmp_path / "d.csv", "--json", tmp_path / "e.json")
    sheet = pd.read_csv(tmp_path / "d.csv")
    assert list(sheet.columns[:3]) == ["Run", "StdOrder", "Patient"]
    assert sheet["Patient"].value_counts().to_dict() == {1: 4, 2: 4, 3: 4}
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["donors"] == 3 and ev["plot_column"] == "Patient"
    assert {r["term"]: r["df_den"] for r in ev["power"]}["Seeding"] == 12 - 3 - 4


@pytest.mark.parametrize("extra, words", [
    (["--whole-plots", 2], "at least 4 whole"),
    (["--whole-plots", 6, "--variance-ratio", -1], "variance ratio"),
    (["--whole-plots", 6, "--subplots", 8], "hard_to_change: very"),
    (["--donors", 3], "Donor blocks with hard-to-change"),
])
def test_cli_bad_split_plot_input(tmp_path, extra, words):
    (tmp_path / "s.yaml").write_text(STUDY)
    proc = run("design", tmp_path / "s.yaml", "--type", "optimal", "--model", "interactions", "--runs", 20,
               *extra, "--seed", 1, "--out", tmp_path / "d.csv", check=False)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_cli_split_options_need_optimal(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY)
    proc = run("design", tmp_path / "s.yaml", "--type", "full", "--whole-plots", 4, "--out", tmp_path / "d.csv",
               check=False)
    assert proc.returncode == 2 and "--whole-plots" in proc.stderr and "optimal" in proc.stderr


def test_constraints_and_categorical_whole_plot_factor():
    """Every run meets the study's constraint; the categorical hard-to-change factor is constant per whole plot."""
    study = Study.from_dict({"name": "c", "factors": [
        {"name": "Surface", "kind": "categorical", "levels": ["TC", "ULA", "CB"], "hard_to_change": True},
        {"name": "Agitation", "low": 0, "high": 100}, {"name": "Seed", "low": 1000, "high": 5000}],
        "responses": [{"name": "Y"}], "constraints": [{"exclude": "Surface == 'ULA' and Agitation > 75"}]})
    design = generate(study, "optimal", model="interactions", runs=18, whole_plots=6, seed=1, starts=3)
    table = design.table
    assert table.groupby("Whole plot")["Surface"].nunique().max() == 1
    assert not ((table["Surface"] == "ULA") & (table["Agitation"] > 75)).any()
    assert set(table["Surface"]) == {"TC", "ULA", "CB"}
