"""Fast all-CQA fits (issue 21): every ANOVA row and every backward-elimination step from one QR of X.

:class:`doe.fit._least_squares.SubsetFits` fits y to any subset of X's columns from the (p+1) x (p+1)
factor T of [X y] = [Q q] T instead of refitting the n runs. These tests compare the new path with
independent computations on the same data, never with what the code printed:

- explicit refits on the n runs (numpy's QR of X[:, cols], the algorithm used before issue 21, written
  out here as ``_old_anova``), to rtol 1e-10;
- statsmodels 0.14+ (``ols`` + ``anova_lm(typ=1/2)``, ``OLS.f_test``, ``get_influence``): Seabold, S.,
  Perktold, J. (2010) statsmodels: Econometric and statistical modeling with Python, Proc. 9th Python
  in Science Conf.; https://www.statsmodels.org/stable/anova.html. statsmodels' Type II does not apply
  the marginality rule to ``I(A**2)`` (see :mod:`doe.fit`), so it is compared on the two-factor
  interaction model, where both rules agree, and the quadratic is compared with explicit refits;
- a rank-deficient CQA and a CQA with missing results in the same :func:`doe.analysis.fit_all`;
- the BLAS thread limit of :mod:`doe._threads` (threadpoolctl's own report of the threads in use).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from doe._threads import blas_threads, one_blas_thread
from doe.analysis import ModelChoice, fit_all
from doe.fit import LeastSquares, fit_model, reduce_model, term_contains
from doe.fit._least_squares import SubsetFits
from doe.study import Factor, Response, Study

RTOL = 1e-10


def _study() -> Study:
    return Study("fast", [Factor(n, low=0, high=10) for n in "ABC"], [Response(f"Y{j}") for j in range(1, 4)])


def _runs(n: int = 30, seed: int = 7) -> pd.DataFrame:
    """``n`` runs of A, B, C on [0, 10] (the last 4 repeat the first 4: pure error), three responses."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, size=(n - 4, 3))
    u = np.vstack([u, u[:4]])
    runs = pd.DataFrame(5 + 5 * u, columns=list("ABC"))
    runs.insert(0, "Run", np.arange(1, n + 1))
    a, b, c = u.T
    runs["Y1"] = 50 + 3 * a - 2 * b + 0.5 * c + 1.5 * a * b - 2 * a ** 2 + rng.normal(0, 1, n)
    runs["Y2"] = 20 + 0.2 * a + 4 * c - c ** 2 + 0.8 * b * c + rng.normal(0, 0.5, n)
    runs["Y3"] = 10 + a + b + rng.normal(0, 1, n)  # terms with tiny SS: near-cancellation in a difference
    return runs


def _coded(runs: pd.DataFrame) -> pd.DataFrame:
    out = runs.copy()
    for f in "ABC":
        out[f] = (runs[f] - 5) / 5
    return out


def _old_residual_ss(X: np.ndarray, y: np.ndarray) -> float:
    """Residual SS of an explicit refit on the n runs (numpy's QR of [X y]): the algorithm before issue 21."""
    if X.shape[1] == 0:
        return float(y @ y)
    R = np.linalg.qr(np.column_stack([X, y]), mode="r")
    return float(R[X.shape[1], X.shape[1]] ** 2)


def _old_anova(fm, atype: int) -> dict[str, float]:
    """Term SS of the ANOVA by explicit refits (the pre-issue-21 anova_table, written out)."""
    ls, cols, terms = fm.least_squares, fm.model_columns, fm.model_terms
    X, y = ls.X, ls.y
    term_cols = [[j for j, c in enumerate(cols) if c.term == t.name] for t in terms]
    base = [j for j, c in enumerate(cols) if c.term in ("Intercept", "Block")]

    def sse(which: list[int]) -> float:
        return _old_residual_ss(X[:, sorted(base + [j for i in which for j in term_cols[i]])], y)

    out = {"Model": sse([]) - ls.sse}
    for i, t in enumerate(terms):
        if atype == 1:
            out[t.name] = sse(list(range(i))) - sse(list(range(i + 1)))
        else:
            others = [k for k, u in enumerate(terms) if k != i and not term_contains(u, t)]
            out[t.name] = sse(others) - sse(others + [i])
    return out


def _ss(fm) -> dict[str, float]:
    a = fm.anova
    return dict(zip(a["source"], a["sum_sq"].astype(float)))


def test_subset_residual_ss_equals_explicit_refits():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(50), rng.normal(size=(50, 7))])
    y = X @ rng.normal(size=8) + rng.normal(size=50)
    sub = SubsetFits(LeastSquares(X, y))
    for cols in ([0], [0, 3], [0, 2, 5, 7], [5, 0, 1], list(range(8)), [7, 6, 5, 4, 3, 2, 1, 0]):
        assert sub.residual_ss(cols) == pytest.approx(_old_residual_ss(X[:, cols], y), rel=RTOL)
    for base, new in (([0], [1, 2]), ([0, 4, 5], [1]), ([0, 1, 2, 3, 4, 5, 6], [7])):
        diff = _old_residual_ss(X[:, base], y) - _old_residual_ss(X[:, base + new], y)
        assert sub.added_ss(base, new) == pytest.approx(diff, rel=1e-9, abs=1e-12 * float(y @ y))
    # the fit on a subset: coefficients, residual SS and (X'X)^-1 of the explicit refit
    keep = [0, 2, 3, 6]
    small, full = sub.fit(keep), LeastSquares(X[:, keep], y)
    np.testing.assert_allclose(small.coef, full.coef, rtol=RTOL)
    np.testing.assert_allclose(small.cov_unscaled, full.cov_unscaled, rtol=RTOL)
    assert small.sse == pytest.approx(full.sse, rel=RTOL)


@pytest.mark.parametrize("atype", [1, 2])
def test_quadratic_anova_equals_explicit_refits(atype):
    study, runs = _study(), _runs()
    for response in ("Y1", "Y2", "Y3"):
        fm = fit_model(study, runs, response, "quadratic", anova_type=atype)
        new, old = _ss(fm), _old_anova(fm, atype)
        sst = float(fm.anova.set_index("source").loc["Total", "sum_sq"])
        for name, value in old.items():
            assert new[name] == pytest.approx(max(value, 0.0), rel=RTOL, abs=1e-12 * sst), (response, name)


@pytest.mark.parametrize("typ", [1, 2])
def test_interaction_anova_equals_statsmodels(typ):
    """Two-factor interaction model: Type I and II SS, df, F and p as statsmodels' anova_lm."""
    study, runs = _study(), _runs()
    coded = _coded(runs)
    for response in ("Y1", "Y2"):
        fm = fit_model(study, runs, response, "interactions", anova_type=typ)
        ref = sm.stats.anova_lm(smf.ols(f"{response} ~ A + B + C + A:B + A:C + B:C", data=coded).fit(), typ=typ)
        ours = fm.anova.set_index("source")
        for term in ("A", "B", "C", "A:B", "A:C", "B:C"):
            assert ours.loc[term, "sum_sq"] == pytest.approx(ref.loc[term, "sum_sq"], rel=1e-9)
            assert ours.loc[term, "df"] == ref.loc[term, "df"]
            assert ours.loc[term, "F"] == pytest.approx(ref.loc[term, "F"], rel=1e-9)
            assert ours.loc[term, "p"] == pytest.approx(ref.loc[term, "PR(>F)"], rel=1e-8, abs=1e-300)
        assert ours.loc["Residual", "sum_sq"] == pytest.approx(ref.loc["Residual", "sum_sq"], rel=1e-10)


def test_fit_statistics_equal_statsmodels():
    """R², adjusted R², PRESS and coefficients/SEs of the quadratic against statsmodels on the coded columns."""
    study, runs = _study(), _runs()
    fm = fit_model(study, runs, "Y1", "quadratic")
    res = sm.OLS(fm.least_squares.y, fm.least_squares.X).fit()
    h = res.get_influence().hat_matrix_diag
    assert fm.r2 == pytest.approx(res.rsquared, rel=RTOL)
    assert fm.adj_r2 == pytest.approx(res.rsquared_adj, rel=RTOL)
    assert fm.press == pytest.approx(float(np.sum((res.resid / (1 - h)) ** 2)), rel=1e-9)
    np.testing.assert_allclose(fm.coefficients["estimate"], res.params, rtol=1e-9)
    np.testing.assert_allclose(fm.coefficients["std_error"], res.bse, rtol=1e-9)


def test_reduction_equals_backward_elimination_with_statsmodels():
    """Hierarchical backward elimination by p-value: the same removals, in the same order, with the same
    p-values as refitting every step with statsmodels' OLS and its F test of the term's coefficients."""
    study, runs = _study(), _runs()
    for response in ("Y1", "Y2"):
        kept, steps = reduce_model(study, runs, response, "quadratic", alpha=0.1)
        fm = fit_model(study, runs, response, "quadratic")
        X, y, cols = fm.least_squares.X, fm.least_squares.y, fm.model_columns
        terms = list(fm.model_terms)
        ref_steps = []
        while len(terms) > 1:
            keep = [0] + [j for j, c in enumerate(cols) if c.term in {t.name for t in terms}]
            res = sm.OLS(y, X[:, keep]).fit()
            eligible = [t for t in terms if not any(term_contains(u, t) for u in terms)]
            pvals = {}
            for t in eligible:
                L = np.zeros((sum(cols[j].term == t.name for j in keep), len(keep)))
                for r, i in enumerate(i for i, j in enumerate(keep) if cols[j].term == t.name):
                    L[r, i] = 1.0
                pvals[t] = float(res.f_test(L).pvalue)
            worst = max(eligible, key=lambda t: pvals[t])
            if pvals[worst] <= 0.1:
                break
            terms.remove(worst)
            ref_steps.append((worst.name, pvals[worst]))
        assert [s["removed"] for s in steps] == [name for name, _ in ref_steps]
        np.testing.assert_allclose([s["p"] for s in steps], [p for _, p in ref_steps], rtol=1e-8)
        assert [t.name for t in kept] == [t.name for t in terms]


def test_aicc_reduction_equals_explicit_refits():
    study, runs = _study(), _runs()
    kept, steps = reduce_model(study, runs, "Y2", "quadratic", method="aicc")
    fm = fit_model(study, runs, "Y2", "quadratic")
    X, y, cols = fm.least_squares.X, fm.least_squares.y, fm.model_columns
    n = len(y)
    names = [t.name for t in kept]
    keep = [0] + [j for j, c in enumerate(cols) if c.term in names]
    k = len(keep) + 1
    sse = _old_residual_ss(X[:, keep], y)
    aicc = n * math.log(2 * math.pi * sse / n) + n + 2 * k + 2 * k * (k + 1) / (n - k - 1)
    assert steps and steps[-1]["aicc"] == pytest.approx(aicc, rel=RTOL)


def test_fit_all_with_missing_results_and_an_inestimable_cqa():
    """One fit_all: Y1 complete, Y2 with 6 runs without a result (fitted on the 24 others, as statsmodels
    fits the rows with data), Y3 with results only on 4 settings, each run twice (8 runs, rank 4 for 7
    coefficients: rank-deficient, an error for Y3 alone)."""
    study, runs = _study(), _runs()
    runs = runs.copy()
    runs.loc[[1, 4, 9, 12, 20, 25], "Y2"] = np.nan
    twice = [0, 1, 2, 3, 26, 27, 28, 29]  # runs 27-30 repeat runs 1-4
    runs["Y3"] = np.where(runs.index.isin(twice), runs["Y3"], np.nan)
    analysis = fit_all(study, runs, default=ModelChoice(model="interactions"))
    assert set(analysis.failures) == {"Y3"}
    assert "cannot be estimated" in analysis.failures["Y3"]
    fm = analysis["Y2"].model
    assert fm.n == 24
    coded = _coded(runs).dropna(subset=["Y2"])
    ref = sm.stats.anova_lm(smf.ols("Y2 ~ A + B + C + A:B + A:C + B:C", data=coded).fit(), typ=2)
    ours = fm.anova.set_index("source")
    for term in ("A", "B", "C", "A:B", "A:C", "B:C", "Residual"):
        assert ours.loc[term, "sum_sq"] == pytest.approx(ref.loc[term, "sum_sq"], rel=1e-9)
    new, old = _ss(fm), _old_anova(fm, 2)
    for name, value in old.items():
        assert new[name] == pytest.approx(value, rel=RTOL, abs=1e-12 * float(ours.loc["Total", "sum_sq"]))


def test_grouped_anova_equals_explicit_refits():
    study, runs = _study(), _runs()
    fm = fit_model(study, runs, "Y1", "quadratic")
    g = fm.grouped_anova().set_index("source")
    X, y, cols = fm.least_squares.X, fm.least_squares.y, fm.model_columns
    fo = [j for j, c in enumerate(cols) if c.term in ("A", "B", "C")]
    twi = [j for j, c in enumerate(cols) if c.term in ("A:B", "A:C", "B:C")]
    ss_fo = _old_residual_ss(X[:, [0]], y) - _old_residual_ss(X[:, [0] + fo], y)
    ss_twi = _old_residual_ss(X[:, [0] + fo], y) - _old_residual_ss(X[:, [0] + fo + twi], y)
    assert g.loc["FO", "sum_sq"] == pytest.approx(ss_fo, rel=RTOL)
    assert g.loc["TWI", "sum_sq"] == pytest.approx(ss_twi, rel=RTOL)


def _blas_threads_in_use() -> list[int]:
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_is_pinned_to_one_thread_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv("DOE_BLAS_THREADS", raising=False)
    before = _blas_threads_in_use()
    assert before  # numpy's BLAS is loaded

    @one_blas_thread
    def inner() -> list[int]:
        """Report the threads from inside a decorated call."""
        return _blas_threads_in_use()

    with blas_threads(1):
        assert set(_blas_threads_in_use()) == {1}
        assert set(inner()) == {1}
        assert set(_blas_threads_in_use()) == {1}  # the nested call did not restore early
    assert _blas_threads_in_use() == before
    assert set(inner()) == {1}
    assert _blas_threads_in_use() == before


def test_pinning_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("DOE_BLAS_THREADS", "default")
    before = _blas_threads_in_use()
    with blas_threads(1):
        assert _blas_threads_in_use() == before


def test_diagnostic_flags_equal_the_per_run_rules():
    """The flags, checked only on the runs that may carry one, are those of every rule applied to every run
    (the pre-issue-21 loop, written out), on data with an outlier and a high-leverage run."""
    from scipy import stats

    study, runs = _study(), _runs()
    runs.loc[5, "Y1"] += 15.0  # an outlier
    fm = fit_model(study, runs, "Y1", "quadratic")
    d = fm.diagnostics
    n, p, df = fm.n, fm.p, fm.df_resid
    lev_lim, cook_4n, dffits_lim = 2 * p / n, 4 / n, 2 * math.sqrt(p / n)
    cook_f = float(stats.f.ppf(0.5, p, n - p))
    bonf = float(stats.t.ppf(1 - 0.05 / (2 * n), df - 1))
    expected = []
    for t, h, c, dff in zip(d["ext_studentized"], d["leverage"], d["cooks_d"], d["dffits"]):
        f = []
        if np.isfinite(t) and abs(t) > 3.5:
            f.append(f"|ext. studentized| {abs(t):.2f} > 3.5")
        if np.isfinite(t) and abs(t) > bonf:
            f.append(f"|ext. studentized| {abs(t):.2f} > {bonf:.2f} (Bonferroni outlier limit)")
        if h > lev_lim + 1e-12:
            f.append(f"leverage {h:.3f} > 2p/n = {lev_lim:.3f}")
        if np.isfinite(c) and c > cook_4n:
            f.append(f"Cook's D {c:.3f} > 4/n = {cook_4n:.3f}")
        if np.isfinite(c) and c > cook_f:
            f.append(f"Cook's D {c:.3f} > F(0.5; p, n-p) = {cook_f:.3f}")
        if np.isfinite(dff) and abs(dff) > dffits_lim:
            f.append(f"|DFFITS| {abs(dff):.3f} > 2 sqrt(p/n) = {dffits_lim:.3f}")
        expected.append("; ".join(f))
    assert list(d["flag"]) == expected
    assert "Bonferroni" in d["flag"].iloc[5] and sum(bool(x) for x in expected) >= 2
    assert any("Run(s) 6 may be outliers" in w for w in fm.warnings)
