"""Random effects (donors, lots, whole plots) in the design-space probability (doe.space._random).

Every expected number here is computed independently of the code under test: the closed-form normal
probability of a new run (scipy.stats.norm / multivariate_normal) with the GLS covariance
(X'V^-1X)^-1 built from the explicit V = s2 I + s2_d Z Z', and, for the uncertainty of the variance
components, a deterministic quadrature over their scaled inverse-chi-square posteriors
(scipy.stats.invgamma quantiles). The mixed fits fed to the design space are built here from known
variance components (a stand-in with the fields of doe.mixed.MixedFit), so these tests do not depend
on the REML engine; the end-to-end tests with doe.mixed.fit_mixed are at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from doe.errors import ModelError
from doe.fit import fit_model
from doe.space import (
    DesignSpace,
    build_predictive,
    check_random_effects,
    component_draws,
    describe_random_effects,
    probability,
    shrunk_correlation,
)
from doe.study import Study

DONORS = 6
UPPER = 12.0  # Y <= 12
LOWER2 = 3.0  # Y2 >= 3


@dataclass(frozen=True)
class FakeMixed:
    """The fields of doe.mixed.MixedFit that the design space reads, at KNOWN variance components."""

    coef: np.ndarray
    cov_beta: np.ndarray
    components: dict[str, float]
    component_df: dict[str, float]
    blups: dict[str, pd.Series]
    levels: dict[str, list[Any]]
    groups: dict[str, np.ndarray]
    W: np.ndarray
    conditional_residuals: np.ndarray

    def predictive_variance(self, X: np.ndarray, *, new_levels: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As MixedFit's, at known components: x'Cx (+ the components a new run adds), infinite df."""
        var = np.einsum("ip,pq,iq->i", X, self.cov_beta, X)
        if new_levels is not None:
            var = var + (sum(self.components.values()) if new_levels else self.components["Residual"])
        return var, np.full(len(var), np.inf)


def _study(two: bool = False) -> Study:
    responses = [{"name": "Y", "goal": "minimize", "upper": UPPER}]
    if two:
        responses.append({"name": "Y2", "goal": "maximize", "lower": LOWER2})
    return Study.from_dict({"name": "Donor study",
                            "factors": [{"name": "A", "low": -1, "high": 1}, {"name": "B", "low": -1, "high": 1}],
                            "responses": responses})


def _runs(donors: int = DONORS) -> tuple[pd.DataFrame, np.ndarray]:
    """A 2^2 + centre (5 runs) per donor: 30 runs for 6 donors, donor index per run."""
    pts = [(-1, -1), (1, -1), (-1, 1), (1, 1), (0, 0)]
    rows = [(a, b) for _ in range(donors) for a, b in pts]
    donor = np.repeat(np.arange(donors), len(pts))
    return pd.DataFrame(rows, columns=["A", "B"], dtype=float), donor


def _mixed(X: np.ndarray, y: np.ndarray, donor: np.ndarray, s2d: float, s2: float, df: float = 1e12) -> FakeMixed:
    """GLS at known components: V = s2 I + s2d Z Z', W = (X'V^-1X)^-1 X'V^-1, BLUP u = s2d Z' V^-1 (y - Xb)."""
    Z = (donor[:, None] == np.arange(DONORS)[None, :]).astype(float)
    V = s2 * np.eye(len(y)) + s2d * Z @ Z.T
    Vi = np.linalg.inv(V)
    C = np.linalg.inv(X.T @ Vi @ X)
    W = C @ X.T @ Vi
    b = W @ y
    u = s2d * Z.T @ Vi @ (y - X @ b)
    labels = [f"D{k}" for k in range(DONORS)]
    return FakeMixed(b, C, {"Donor": s2d, "Residual": s2}, {"Donor": df, "Residual": df},
                     {"Donor": pd.Series(u, index=labels)}, {"Donor": labels}, {"Donor": donor.copy()}, W,
                     y - X @ b - Z @ u)


def _attach(fm: Any, mixed: FakeMixed) -> Any:
    """Give a least-squares fit a mixed model at known components (fit_model keeps doe.mixed's fit in ``_mixed``,
    read through the ``mixed`` property)."""
    object.__setattr__(fm, "_mixed" if isinstance(getattr(type(fm), "mixed", None), property) else "mixed", mixed)
    return fm


def _one_cqa(s2d: float = 1.0, s2: float = 0.25, df: float = 1e12, seed: int = 3) -> tuple[Study, Any, FakeMixed]:
    study = _study()
    design, donor = _runs()
    rng = np.random.default_rng(seed)
    u = rng.normal(0, math.sqrt(s2d), DONORS)
    y = 10 + 1.0 * design.A - 0.5 * design.B + u[donor] + rng.normal(0, math.sqrt(s2), len(design))
    fm = fit_model(study, design.assign(Y=y), "Y", "linear")
    mixed = _mixed(fm.least_squares.X, fm.least_squares.y, donor, s2d, s2, df)
    return study, _attach(fm, mixed), mixed


POINTS = pd.DataFrame({"A": [-1.0, 0.0, 0.5, 1.0], "B": [1.0, 0.0, -0.5, -1.0]})


# -- array level --------------------------------------------------------------------------------
def test_component_draws_are_scaled_inverse_chi_square() -> None:
    v, nu = np.array([[2.0, 0.5]]), np.array([[5.0, 40.0]])
    d = component_draws(v, nu, 100_000, np.random.default_rng(0))
    assert d.shape == (100_000, 1, 2)
    for j in range(2):  # scaled-inv-chi2(nu, v) = inverse-gamma(nu / 2, scale nu v / 2)
        ref = stats.invgamma(nu[0, j] / 2, scale=nu[0, j] * v[0, j] / 2)
        qs = np.quantile(d[:, 0, j], [0.1, 0.5, 0.9])
        assert np.allclose(qs, ref.ppf([0.1, 0.5, 0.9]), rtol=0.02)
    fixed = component_draws(np.array([0.0, 3.0]), np.array([4.0, np.inf]), 10, np.random.default_rng(0))
    assert np.all(fixed[:, 0] == 0) and np.all(fixed[:, 1] == 3.0)


def test_shrunk_correlation() -> None:
    a = np.array([1.0, -2.0, 0.5, 1.5, -1.0, 0.0])
    b = np.array([0.8, -1.5, 1.0, 1.0, -1.2, 0.3])
    R, d, few = shrunk_correlation([a, b])
    r = float(a @ b / math.sqrt((a @ a) * (b @ b)))  # uncentred: the effects have mean zero
    assert d == 6 and not few
    assert R[0, 1] == pytest.approx(r * 6 / 7)  # shrunk with k = max(1, m + 1 - d) = 1 pseudo-observation
    # too few shared levels: independent, and said
    c = np.array([1.0, 2.0, np.nan, np.nan, np.nan, np.nan])
    R, _, few = shrunk_correlation([a, c, None])
    assert few == [(0, 1)] and np.allclose(R, np.eye(3))
    # an indefinite pairwise matrix is made positive semi-definite
    x = np.array([1.0, -1.0, 1.0, -1.0, 2.0])
    R, _, _ = shrunk_correlation([x, -x, x])
    assert np.linalg.eigvalsh(R).min() > -1e-10


def test_mode_words_and_check() -> None:
    assert check_random_effects(None, True) == "new"
    assert check_random_effects("average", True) == "average"
    assert check_random_effects("new", False) is None
    with pytest.raises(ModelError, match="'new'.*'average'"):
        check_random_effects("typical", True)
    names = ["Donor", "hPL lot", "Whole plot"]
    assert describe_random_effects("new", names) == "a run with a new donor, a new hPL lot and a new whole plot"
    assert describe_random_effects("average", names) == "a run with the average donor, hPL lot and whole plot"


# -- one CQA, known components (huge df): closed-form normal probabilities ----------------------
def _closed_form(fm: Any, mixed: FakeMixed, settings: pd.DataFrame, extra: float) -> np.ndarray:
    X = fm.model_matrix(settings)
    mean = X @ mixed.coef
    var = np.einsum("ij,jk,ik->i", X, mixed.cov_beta, X) + extra
    return np.asarray(stats.norm.cdf((UPPER - mean) / np.sqrt(var)))


@pytest.mark.parametrize("mode", ["new", "average"])
def test_one_cqa_matches_the_normal_probability(mode: str) -> None:
    s2d, s2 = 1.0, 0.25
    study, fm, mixed = _one_cqa(s2d, s2)
    pm = build_predictive(study, {"Y": fm}, random_effects=mode, draws=20_000)
    got = probability(pm, POINTS, draws=20_000).joint
    want = _closed_form(fm, mixed, POINTS, s2d + s2 if mode == "new" else s2)
    assert np.max(np.abs(got - want)) < 0.012  # 4 x the Monte Carlo SE (<= 0.0035 at 20,000 draws)
    assert pm.random_effects == mode
    # the centre of the map is the GLS prediction, not the least-squares one
    assert np.allclose(pm.cqas[0].beta, mixed.coef)


def test_new_donor_is_far_from_the_average_donor() -> None:
    study, fm, mixed = _one_cqa(4.0, 0.25)
    new = probability(build_predictive(study, {"Y": fm}), POINTS).joint  # default: "new"
    avg = probability(build_predictive(study, {"Y": fm}, random_effects="average"), POINTS).joint
    assert np.all(avg >= new - 0.01) and np.max(avg - new) > 0.15


def test_component_uncertainty_matches_quadrature() -> None:
    """Components with few df: P = E[Phi((U - x'b) / sqrt(x' W V(v) W' x + v_d + v_e))] over the independent
    scaled-inverse-chi-square posteriors of v_d and v_e (deterministic quadrature on their quantiles)."""
    s2d, s2, nu_d, nu_e = 1.0, 0.25, 4.0, 24.0
    study, fm, mixed = _one_cqa(s2d, s2, seed=5)
    mixed = FakeMixed(**{**mixed.__dict__, "component_df": {"Donor": nu_d, "Residual": nu_e}})
    _attach(fm, mixed)
    pm = build_predictive(study, {"Y": fm}, draws=40_000)
    got = probability(pm, POINTS, draws=40_000).joint
    _, donor = _runs()
    Z = (donor[:, None] == np.arange(DONORS)[None, :]).astype(float)
    X = fm.model_matrix(POINTS)
    a = X @ mixed.W  # x'W per point
    zz, ii = np.einsum("pi,ij,pj->p", a, Z @ Z.T, a), np.einsum("pi,pi->p", a, a)
    q = (np.arange(400) + 0.5) / 400
    vd = stats.invgamma(nu_d / 2, scale=nu_d * s2d / 2).ppf(q)
    ve = stats.invgamma(nu_e / 2, scale=nu_e * s2 / 2).ppf(q)
    VD, VE = np.meshgrid(vd, ve, indexing="ij")
    mean = X @ mixed.coef
    want = [float(np.mean(stats.norm.cdf((UPPER - mean[p]) / np.sqrt(zz[p] * VD + ii[p] * VE + VD + VE))))
            for p in range(len(POINTS))]
    assert np.max(np.abs(got - np.array(want))) < 0.01
    # and the uncertainty matters here: the fixed-component answer is clearly different somewhere
    fixed = _closed_form(fm, mixed, POINTS, s2d + s2)
    assert np.max(np.abs(fixed - np.array(want))) > 0.02


# -- two CQAs sharing the donors: bivariate normal ----------------------------------------------
def test_two_cqas_with_a_shared_donor_match_the_bivariate_normal() -> None:
    study = _study(two=True)
    design, donor = _runs()
    rng = np.random.default_rng(11)
    s2d, s2 = np.array([1.0, 0.6]), np.array([0.25, 0.16])
    rho_d, rho_e = 0.8, 0.3
    u = rng.multivariate_normal([0, 0], np.sqrt(np.outer(s2d, s2d)) * [[1, rho_d], [rho_d, 1]], DONORS)
    e = rng.multivariate_normal([0, 0], np.sqrt(np.outer(s2, s2)) * [[1, rho_e], [rho_e, 1]], len(design))
    y1 = 10 + 1.0 * design.A - 0.5 * design.B + u[donor, 0] + e[:, 0]
    y2 = 4 - 0.7 * design.A + 0.4 * design.B + u[donor, 1] + e[:, 1]
    runs = design.assign(Y=y1, Y2=y2)
    fms = {c: fit_model(study, runs, c, "linear") for c in ("Y", "Y2")}
    mixed = [_mixed(fms[c].least_squares.X, fms[c].least_squares.y, donor, s2d[i], s2[i])
             for i, c in enumerate(("Y", "Y2"))]
    for c, mf in zip(("Y", "Y2"), mixed):
        _attach(fms[c], mf)
    Z = (donor[:, None] == np.arange(DONORS)[None, :]).astype(float)
    for mode in ("new", "average"):
        pm = build_predictive(study, fms, random_effects=mode, draws=20_000)
        rs = pm.random
        assert rs is not None and rs.names == ["Donor"]
        rd, re = rs.corr[0][0, 1], rs.corr[1][0, 1]  # the correlations the design space estimated
        assert 0.3 < rd < 1 and -0.3 < re < 0.7  # estimated from 6 donors / 30 runs, shrunk
        got = probability(pm, POINTS, draws=20_000).joint
        # independent: Cov(y_i, y_j) over the runs, propagated through each CQA's W, plus the new run
        sd_d, sd_e = np.sqrt(s2d), np.sqrt(s2)
        Rd, Re = np.array([[1, rd], [rd, 1]]), np.array([[1, re], [re, 1]])
        want = []
        for _, row in POINTS.iterrows():
            x = [fms[c].model_matrix(row.to_frame().T) [0] for c in ("Y", "Y2")]
            mean = np.array([x[i] @ mixed[i].coef for i in range(2)])
            cov = np.zeros((2, 2))
            for i in range(2):
                for j in range(2):
                    vij = (Rd[i, j] * sd_d[i] * sd_d[j] * Z @ Z.T + Re[i, j] * sd_e[i] * sd_e[j] * np.eye(len(runs)))
                    cov[i, j] = x[i] @ mixed[i].W @ vij @ mixed[j].W.T @ x[j]
                    cov[i, j] += Re[i, j] * sd_e[i] * sd_e[j] + (Rd[i, j] * sd_d[i] * sd_d[j] if mode == "new" else 0)
            # Y <= 12 and Y2 >= 3  <=>  (Y - m1 <= 12 - m1) and (-(Y2 - m2) <= m2 - 3)
            flip = np.diag([1.0, -1.0])
            want.append(stats.multivariate_normal([0, 0], flip @ cov @ flip).cdf([UPPER - mean[0], mean[1] - LOWER2]))
        assert np.max(np.abs(got - np.array(want))) < 0.012, mode
        assert pm.correlated  # the joint carries the shared donor (the assurance kernel reads this)


def test_mixed_and_fully_randomised_cqas_coexist() -> None:
    study = _study(two=True)
    design, donor = _runs()
    rng = np.random.default_rng(2)
    runs = design.assign(Y=10 + design.A + rng.normal(0, 1, DONORS)[donor] + rng.normal(0, 0.5, len(design)),
                         Y2=4 + design.B + rng.normal(0, 0.4, len(design)))
    fms = {c: fit_model(study, runs, c, "linear") for c in ("Y", "Y2")}
    mixed = _mixed(fms["Y"].least_squares.X, fms["Y"].least_squares.y, donor, 1.0, 0.25)
    _attach(fms["Y"], mixed)
    ds = DesignSpace.of(study, fms, random_effects="new", draws=20_000)
    got = probability(ds.pm, POINTS, draws=20_000)
    # Y alone: normal with the donor; Y2 alone: today's Student t (its least-squares fit)
    want1 = _closed_form(fms["Y"], mixed, POINTS, 1.25)
    fm2 = fms["Y2"]
    X2 = fm2.model_matrix(POINTS)
    s2 = fm2.least_squares.mse * (1 + np.einsum("ij,jk,ik->i", X2, fm2.least_squares.cov_unscaled, X2))
    want2 = stats.t.sf((LOWER2 - X2 @ fm2.least_squares.coef) / np.sqrt(s2), fm2.df_resid)
    assert np.max(np.abs(got.per_cqa["Y"] - want1)) < 0.012
    assert np.max(np.abs(got.per_cqa["Y2"] - want2)) < 0.012
    out = ds.summary({"A": 0.0, "B": 0.0}, x="A", y="B", n=11)
    assert out["random_effects"]["mode"] == "new"
    assert out["random_effects"]["components"] == {"Y": {"Donor": 1.0, "Residual": 0.25}}
    assert "a run with a new donor" in out["method"]


def test_without_random_effects_nothing_changes() -> None:
    study = _study()
    design, _ = _runs()
    rng = np.random.default_rng(0)
    fm = fit_model(study, design.assign(Y=10 + design.A + rng.normal(0, 0.5, len(design))), "Y", "linear")
    pm = build_predictive(study, {"Y": fm}, random_effects="new")
    assert pm.random is None and pm.random_effects is None
    assert "a new run meets" in pm.describe()
    out = DesignSpace(pm).summary({"A": 0.0, "B": 0.0}, x="A", y="B", n=11)
    assert out["random_effects"] == {"mode": None, "components": None}


# -- end to end: doe.mixed's REML fit, as fit_model makes it from a run sheet with a Donor column -------------
def _donor_study(upper: float = 11.5) -> Study:
    return Study.from_dict({"name": "Donor study", "random_effects": ["Donor"],
                            "factors": [{"name": "A", "low": -1, "high": 1}, {"name": "B", "low": -1, "high": 1}],
                            "responses": [{"name": "Y", "goal": "minimize", "upper": upper}]})


def _donor_runs(rng: np.random.Generator, s2d: float, s2: float, donors: int = DONORS) -> pd.DataFrame:
    design, donor = _runs(donors)
    u = rng.normal(0, math.sqrt(s2d), donors)
    y = 10 + 1.0 * design.A - 0.5 * design.B + u[donor] + rng.normal(0, math.sqrt(s2), len(design))
    return design.assign(Y=y, Donor=[f"Donor {k + 1}" for k in donor])


def test_end_to_end_reml_fit_matches_quadrature_over_its_components() -> None:
    """The REML fit's GLS coefficients centre the probability, and the 'new' probability equals the quadrature
    over the scaled-inverse-chi-square posteriors of its own components (its Satterthwaite df) computed here."""
    study = _donor_study()
    runs = _donor_runs(np.random.default_rng(8), 1.0, 0.25)
    fm = fit_model(study, runs, "Y", "linear")
    mf = fm.mixed
    assert mf is not None and set(mf.components) == {"Donor", "Residual"}
    pm = build_predictive(study, {"Y": fm}, draws=40_000)
    assert pm.random_effects == "new" and np.allclose(pm.cqas[0].beta, mf.coef)
    got = probability(pm, POINTS, draws=40_000).joint
    g = np.asarray(mf.groups["Donor"])
    Z = (g[:, None] == np.arange(len(mf.levels["Donor"]))[None, :]).astype(float)
    X = fm.model_matrix(POINTS)
    a = X @ mf.W
    zz, ii = np.einsum("pi,ij,pj->p", a, Z @ Z.T, a), np.einsum("pi,pi->p", a, a)
    q = (np.arange(400) + 0.5) / 400
    nd, ne = mf.component_df["Donor"], mf.component_df["Residual"]
    vd = stats.invgamma(nd / 2, scale=nd * mf.components["Donor"] / 2).ppf(q)
    ve = stats.invgamma(ne / 2, scale=ne * mf.components["Residual"] / 2).ppf(q)
    VD, VE = np.meshgrid(vd, ve, indexing="ij")
    mean = X @ mf.coef
    want = [float(np.mean(stats.norm.cdf((11.5 - mean[p]) / np.sqrt(zz[p] * VD + ii[p] * VE + VD + VE))))
            for p in range(len(POINTS))]
    assert np.max(np.abs(got - np.array(want))) < 0.01
    # fully randomised analysis of the same runs: today's path, untouched
    ols = build_predictive(study, {"Y": fit_model(study, runs, "Y", "linear", random_effects=False)})
    assert ols.random is None and ols.random_effects is None


def test_small_calibration_new_donor_is_far_closer_to_the_truth_than_the_average_donor() -> None:
    """A large donor variance (4, residual 0.25), 12 donors x 5 runs: over 6 simulated studies the 'new' probability
    is much nearer the TRUE probability for a new donor, Phi((11.5 - mu) / sqrt(4.25)) (0.89, 0.77, 0.60), and the
    'average' one (truth for the average donor 1.00, 1.00, 0.84) far from it (bench/bench_random_effects.py is the
    full calibration)."""
    study = _donor_study()
    rng = np.random.default_rng(2024)
    pts = pd.DataFrame({"A": [-1.0, 0.0, 1.0], "B": [0.0, 0.0, 0.0]})
    truth = stats.norm.cdf((11.5 - (10 + pts.A.to_numpy())) / math.sqrt(4.25))
    err_new, err_avg = [], []
    for r in range(6):
        fm = fit_model(study, _donor_runs(rng, 4.0, 0.25, donors=12), "Y", "linear")
        assert fm.mixed is not None
        for mode, err in (("new", err_new), ("average", err_avg)):
            pm = build_predictive(study, {"Y": fm}, random_effects=mode, draws=1000, seed=r)
            err.append(probability(pm, pts, draws=1000, seed=r).joint - truth)
    new, avg = np.array(err_new), np.array(err_avg)  # data sets x points, estimate - truth (new donor)
    assert np.mean(np.abs(new)) < 0.6 * np.mean(np.abs(avg))  # closer, data set by data set
    assert np.mean(avg) > np.mean(new) + 0.05  # and the average donor is optimistic for a new donor


def test_cli_space_random_effects(tmp_path: Any) -> None:
    import json
    import subprocess
    import sys

    study = tmp_path / "study.yaml"
    study.write_text("name: Donor study\nrandom_effects: [Donor]\nfactors:\n"
                     "  - {name: A, low: -1, high: 1}\n  - {name: B, low: -1, high: 1}\n"
                     "responses:\n  - {name: Y, goal: minimize, upper: 11.5}\n")
    runs = tmp_path / "runs.csv"
    _donor_runs(np.random.default_rng(1), 1.0, 0.25).to_csv(runs, index=False)
    out = tmp_path / "average.json"
    proc = subprocess.run([sys.executable, "-m", "doe", "space", str(study), str(runs), "--model", "linear",
                           "--set-point", "A=0.5", "B=0", "--no-desirability", "--draws", "1000",
                           "--random-effects", "average", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert got["random_effects"]["mode"] == "average"
    assert set(got["random_effects"]["components"]["Y"]) == {"Donor", "Residual"}
    assert "a run with the average donor" in got["method"]
    # the same analysis in the engine: the default is a new donor, and the average donor is the more optimistic
    fm = fit_model(_donor_study(), pd.read_csv(runs), "Y", "linear")
    new = DesignSpace.of(_donor_study(), {"Y": fm}, draws=1000).at({"A": 0.5, "B": 0.0})["probability"]
    assert got["probability_at_set_point"] > new


def test_a_donor_variance_at_zero_is_said_and_adds_nothing() -> None:
    study, fm, mixed = _one_cqa(0.0, 0.25)  # REML at the boundary: no donor spread estimated
    new = build_predictive(study, {"Y": fm}, random_effects="new", draws=4000)
    avg = build_predictive(study, {"Y": fm}, random_effects="average", draws=4000)
    assert any("Donor variance is estimated at 0" in w for w in new.warnings)
    np.testing.assert_allclose(probability(new, POINTS).joint, probability(avg, POINTS).joint)
    np.testing.assert_allclose(probability(new, POINTS, draws=20_000).joint,
                               _closed_form(fm, mixed, POINTS, 0.25), atol=0.012)
