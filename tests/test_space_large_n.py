"""Large studies without an n x n matrix (issue 21): Zellner's denominators by the trace identity.

The residual correlation of :mod:`doe.space` divides each cross product of own-model residuals on the
shared runs by D_ij = tr(M_i M_j), M_i = I - Q_i Q_i' (Zellner, A. (1962) An efficient method of
estimating seemingly unrelated regressions and tests for aggregation bias. JASA 57:348-368, eq. 2.9
and the unbiased version of sec. 5). The old code formed every M_i as a dense n x n matrix; the new
one uses tr(M_i M_j) = n - ||Q_i||_F^2 - ||Q_j||_F^2 + ||Q_i' Q_j||_F^2. Every test here compares
the new path with that dense computation, written out below (``_dense_denominators``), on small cases:
the same runs and model, different models, and CQAs with different runs (missing results), where Q
restricted to the shared rows is no longer orthonormal. On the bundled example the correlation and
residual df that :func:`doe.space.build_predictive` reports are recomputed with the dense formula.

The coefficient draws of the posterior predictive are now drawn from a P x P root of the OLS maps'
cross products instead of run-by-run pseudo-errors; the last test compares their means and covariances
with the old run-by-run algorithm (written out here, ``_old_coefficient_errors``) given the same
covariance draws, within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from doe.fit import fit_model
from doe.runs import read_results
from doe.space import build_predictive
from doe.space._posterior import zellner_denominators
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT, make_study


def _dense_denominators(Qs: list[np.ndarray]) -> np.ndarray:
    """The old algorithm: M_i = I - Q_i Q_i' as dense n x n matrices, D_ij = sum of M_i * M_j."""
    n = Qs[0].shape[0]
    Ms = [np.eye(n) - Q @ Q.T for Q in Qs]
    return np.array([[float(np.sum(Mi * Mj)) for Mj in Ms] for Mi in Ms])


def _orthonormal(X: np.ndarray) -> np.ndarray:
    return np.linalg.qr(X)[0]


def _quadratic(u: np.ndarray) -> np.ndarray:
    k = u.shape[1]
    cols = [np.ones(len(u))] + [u[:, i] for i in range(k)] + [u[:, i] ** 2 for i in range(k)]
    cols += [u[:, i] * u[:, j] for i in range(k) for j in range(i + 1, k)]
    return np.column_stack(cols)


def test_same_runs_and_model_give_n_minus_p_and_the_dense_value():
    u = np.random.default_rng(1).uniform(-1, 1, (30, 3))
    Q = _orthonormal(_quadratic(u))
    D = zellner_denominators([Q, Q, Q])
    np.testing.assert_allclose(D, _dense_denominators([Q, Q, Q]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(D, np.full((3, 3), 30 - 10), rtol=0, atol=1e-9)  # M idempotent: tr M = n - p


def test_different_models_on_the_same_runs_match_the_dense_computation():
    u = np.random.default_rng(2).uniform(-1, 1, (25, 3))
    Qs = [_orthonormal(_quadratic(u)), _orthonormal(np.column_stack([np.ones(25), u])),
          _orthonormal(np.column_stack([np.ones(25), u[:, 0], u[:, 0] ** 2]))]
    D = zellner_denominators(Qs)
    np.testing.assert_allclose(D, _dense_denominators(Qs), rtol=0, atol=1e-9)
    assert D[0, 0] == pytest.approx(25 - 10) and D[1, 1] == pytest.approx(25 - 4)  # tr M_i = n - p_i


def test_different_runs_where_q_is_not_orthonormal_match_the_dense_computation():
    rng = np.random.default_rng(3)
    u = rng.uniform(-1, 1, (40, 2))
    rows = [np.arange(0, 34), np.arange(4, 40), np.delete(np.arange(40), [7, 11, 23])]  # missing results
    fulls = [_orthonormal(_quadratic(u[r])) for r in rows[:2]] + [
        _orthonormal(np.column_stack([np.ones(len(rows[2])), u[rows[2]]]))]
    shared = np.array(sorted(set(rows[0]) & set(rows[1]) & set(rows[2])))
    Qs = [Q[np.searchsorted(r, shared)] for Q, r in zip(fulls, rows)]
    assert not np.allclose(Qs[0].T @ Qs[0], np.eye(Qs[0].shape[1]))  # the restricted rows are not orthonormal
    np.testing.assert_allclose(zellner_denominators(Qs), _dense_denominators(Qs), rtol=0, atol=1e-9)


def _dense_correlation(pm, fits: dict) -> tuple[np.ndarray, float]:
    """Zellner's correlation and d = min_i tr(M_i M_i) on the shared runs, with dense n x n M_i."""
    ids = [[str(v) for v in fits[c].diagnostics["run"]] for c in pm.spec_names]
    shared = [r for r in ids[0] if all(r in other for other in ids[1:])]
    Qs, E = [], []
    for name, own in zip(pm.spec_names, ids):
        pick = [own.index(r) for r in shared]
        Qs.append(fits[name].least_squares.Q[pick])
        E.append(fits[name].least_squares.resid[pick])
    D = _dense_denominators(Qs)
    Ev = np.column_stack(E)
    S = Ev.T @ Ev / D
    R = S / np.sqrt(np.outer(np.diag(S), np.diag(S)))
    vals, vecs = np.linalg.eigh((R + R.T) / 2)  # nearest PSD correlation, as doe.space does
    R = (vecs * np.clip(vals, 0, None)) @ vecs.T
    s = np.sqrt(np.diag(R))
    R = R / np.outer(s, s)
    np.fill_diagonal(R, 1.0)
    return R, float(np.min(np.diag(D)))


@pytest.fixture(scope="module")
def example():
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    return study, runs


def test_the_example_correlation_and_df_equal_the_dense_formula(example):
    study, runs = example
    fits = {r: fit_model(study, runs, r, "quadratic") for r in study.response_names}
    pm = build_predictive(study, fits, draws=100)
    R, d = _dense_correlation(pm, fits)
    assert pm.correlation is not None
    np.testing.assert_allclose(pm.correlation.to_numpy(), R, rtol=0, atol=1e-10)
    # the same runs and model: D_ii = n - p; with fewer residual df than CQAs the exact posterior is improper,
    # so the reported df is Zellner's d (else the exact posterior's n - p, the same number)
    assert d == pytest.approx(len(runs) - fits[pm.spec_names[0]].least_squares.Q.shape[1], abs=1e-9)
    assert pm.residual_df == pytest.approx(d, abs=1e-9)
    assert pm.shared_runs == len(runs)


def test_the_example_with_missing_results_and_other_models_equals_the_dense_formula(example):
    study, runs = example
    runs = runs.copy()
    runs.loc[runs.index[[2, 9, 17]], "Viability"] = np.nan
    runs.loc[runs.index[[5, 30]], "Potency"] = np.nan
    models = {r: "linear" for r in study.response_names}  # the quadratic's 36 terms leave no df on 35 runs
    models["Fold expansion"] = "linear + Agitation^2 + Agitation*Seeding density"
    fits = {r: fit_model(study, runs, r, models[r]) for r in study.response_names}
    pm = build_predictive(study, fits, draws=100)
    R, d = _dense_correlation(pm, fits)
    assert not pm.exact and pm.shared_runs == len(runs) - 5
    assert pm.correlation is not None
    np.testing.assert_allclose(pm.correlation.to_numpy(), R, rtol=0, atol=1e-10)
    assert pm.residual_df == pytest.approx(d, abs=1e-9)


def test_a_larger_study_with_missing_results_equals_the_dense_formula():
    """A 500-run, 2-CQA study (one CQA missing 60 results, different models) against the dense formula."""
    rng = np.random.default_rng(5)
    n = 500
    study = make_study([{"name": "A", "low": 0, "high": 10}, {"name": "B", "low": 0, "high": 10}],
                       [{"name": "Y1", "lower": 0.0}, {"name": "Y2", "lower": 0.0}])
    runs = pd.DataFrame({"Run": np.arange(1, n + 1), "A": rng.uniform(0, 10, n), "B": rng.uniform(0, 10, n)})
    e = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], n)
    runs["Y1"] = 5 + runs.A - 0.1 * runs.B ** 2 + e[:, 0]
    runs["Y2"] = 3 + 0.5 * runs.B + e[:, 1]
    runs.loc[rng.choice(n, 60, replace=False), "Y2"] = np.nan
    fits = {"Y1": fit_model(study, runs, "Y1", "quadratic"), "Y2": fit_model(study, runs, "Y2", "linear")}
    pm = build_predictive(study, fits, draws=100)
    R, d = _dense_correlation(pm, fits)
    assert pm.shared_runs == n - 60 and not pm.exact
    assert pm.correlation is not None
    np.testing.assert_allclose(pm.correlation.to_numpy(), R, rtol=0, atol=1e-10)
    assert pm.residual_df == pytest.approx(d, abs=1e-8)


def _old_coefficient_errors(pm, L: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The old algorithm: pseudo-errors z_r = L xi_r on every run, delta_i = W_i' z_i (draws x P)."""
    W = [c.fm.least_squares.Q @ c.fm.least_squares.r_inv.T for c in pm.spec_cqas]
    xi = rng.standard_normal((len(L), len(pm._union_runs), len(W)))
    Z = np.einsum("nij,nrj->nri", L, xi)
    return np.column_stack([Z[:, rows, i] @ W[i] for i, rows in enumerate(pm._rows)])


@pytest.mark.parametrize("n_runs, model", [(24, "linear"), (14, "quadratic")])  # P < runs, and P >= runs
def test_coefficient_draws_have_the_old_algorithms_distribution(monkeypatch, n_runs, model):
    """The SUR-style approximation's coefficient draws (now drawn from the P x P root) against the old
    run-by-run draws given the same covariance draws: means and covariances agree within Monte Carlo error."""
    from doe.space import _posterior

    monkeypatch.setattr(_posterior, "GIBBS_MAX_SYSTEM", 0)  # force the approximation (no Gibbs sampler)
    rng = np.random.default_rng(11)
    study = make_study([{"name": "A", "low": 0, "high": 10}, {"name": "B", "low": 0, "high": 10}],
                       [{"name": f"Y{j}", "lower": 0.0} for j in (1, 2, 3)])
    runs = pd.DataFrame({"Run": np.arange(1, n_runs + 1), "A": rng.uniform(0, 10, n_runs),
                         "B": rng.uniform(0, 10, n_runs)})
    e = rng.multivariate_normal([0, 0, 0], [[1, 0.7, 0.3], [0.7, 1, 0.5], [0.3, 0.5, 1]], n_runs)
    for j in range(3):
        runs[f"Y{j + 1}"] = 5 + (j + 1) * runs.A - 0.1 * runs.B ** 2 + e[:, j]
    runs.loc[[1, 5], "Y2"] = np.nan
    fits = {"Y1": fit_model(study, runs, "Y1", "quadratic"), "Y2": fit_model(study, runs, "Y2", "linear"),
            "Y3": fit_model(study, runs, "Y3", model)}
    pm = build_predictive(study, fits, draws=100)
    assert pm.correlated and not pm.exact and not pm.gibbs
    dr = pm.draws(20_000, seed=3)
    new = np.column_stack([(dr.coef[i] - c.beta[:, None]).T for i, c in enumerate(pm.spec_cqas)])
    old = _old_coefficient_errors(pm, dr.chol, np.random.default_rng(4))
    scale = np.sqrt(np.outer(np.diag(np.cov(old.T)), np.diag(np.cov(old.T))))
    np.testing.assert_allclose(new.mean(axis=0) / np.sqrt(np.diag(scale)), 0, atol=0.035)  # 5 SE of a mean
    np.testing.assert_allclose(np.cov(new.T) / scale, np.cov(old.T) / scale, rtol=0, atol=0.05)
    cov = np.einsum("nij,nkj->ik", dr.chol, dr.chol) / len(dr.chol)  # E[Sigma] of the new run's error
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(np.cov(dr.noise) / np.outer(sd, sd), cov / np.outer(sd, sd), rtol=0, atol=0.05)
