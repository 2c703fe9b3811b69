"""The fast paths of doe.space give the numbers and decisions of the plain computations.

Each test compares an optimised routine with the straightforward version it
replaced (written out here): the search grid of the robust set point with its
early stops, the word-wise counting of draws in spec, the grouping of points
by level combination, the candidates' edge distances and the DataFrame-free
points used by the PARs and the pattern search.
"""

import numpy as np
import pandas as pd
import pytest

from doe import space as S
from doe.fit import fit_model
from doe.runs import read_results
from doe.space import _kernels, _ranges, _search, _settings
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT

SET_POINT = {"Medium": "FBS 10%", "Surface": "ULA", "Harvest reagent": "Accutase",
             "Agitation": 42.0, "Seeding density": 1400.0}


@pytest.fixture(scope="module")
def example():
    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    fits = {r: fit_model(study, runs, r, "quadratic") for r in study.response_names}
    return study, S.build_predictive(study, fits)


def _plain_search_probability(pm, frame, feas, threshold, opts, coded=None):
    """What robust_set_point evaluated before: every point exactly (infeasible ones unused)."""
    return np.where(feas, S.probability(pm, frame, **opts).joint, 0.0)


def _plain_count_in_spec(mats, sides, n_points, n_draws):
    """The former counting: boolean sums per CQA and jointly, no early stop, no word-wise count."""
    joint = np.zeros(n_points)
    per = [np.ones(n_points) if s is None else np.zeros(n_points) for s in sides]
    ok = np.ones((n_points, n_draws), dtype=bool)
    for i, (Mi, cs) in enumerate(zip(mats, sides)):
        if cs is None:
            continue
        if not cs:
            ok[:] = False
            continue
        this = np.ones((n_points, n_draws), dtype=bool)
        for coef in cs:
            w = np.empty((n_points, n_draws), dtype=np.float32)
            np.einsum("pk,kn->pn", Mi, coef, out=w, optimize=False)
            this &= w >= 0.0
        per[i] = this.sum(axis=1) / n_draws
        ok &= this
    joint[:] = ok.sum(axis=1)
    return joint / n_draws, per


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0.9},
    {"threshold": 0.5},
    {"threshold": 0.99},
    {"threshold": 0.9, "fixed": {"Medium": "SFM-XF"}},
    {"threshold": 0.9, "fixed": {"Agitation": 45.0}, "grid": 11},
    {"threshold": 0.8, "setpoint_sd": {"Agitation": 2.0}, "grid": 9},
    {"threshold": 0.9, "draws": 1001, "seed": 3, "grid": 9},
])
def test_robust_set_point_equals_the_plain_search(example, monkeypatch, kwargs):
    study, pm = example
    fast = S.robust_set_point(pm, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(_search, "_search_probability", _plain_search_probability)
        plain = S.robust_set_point(pm, **kwargs)
    assert fast == plain


def test_search_probability_is_exact_where_it_matters(example):
    study, pm = example
    opts = {"draws": None, "seed": 0, "setpoint_sd": None}
    frame, coded = _search._search_grid(pm, {}, pm.numeric, pm.categorical, 21)
    feas = study.feasible(frame)
    fast = _search._search_probability(pm, frame, feas, 0.9, opts, coded)
    exact = _plain_search_probability(pm, frame, feas, 0.9, opts)
    stopped = fast != exact
    assert stopped.mean() > 0.3, "the early stops should save work on the example"
    assert (fast[stopped] > exact[stopped]).all()  # an upper bound where it stopped early
    best = exact[feas].max()
    tol = 2 * np.sqrt(best * (1 - best) / 4000) + 1 / 4000
    assert (fast[stopped] < best - tol).all()  # ... that is no tie with the best
    keys = frame.groupby(pm.categorical, sort=False).ngroup().to_numpy()
    tied = 0
    for k in np.unique(keys):
        mine = (keys == k) & feas
        assert fast[mine].max() == exact[mine].max()  # ... nor the best of its level combination
        ties = np.flatnonzero(mine & (exact >= best - tol))
        for i in ties:  # the edge is exact within each tie's distance to the study range
            tied += 1
            reach = np.min(1 - np.abs(coded[i]))
            near = mine & (np.linalg.norm(coded - coded[i], axis=1) <= reach)
            assert np.array_equal(fast[near] >= 0.9, exact[near] >= 0.9)
    assert tied >= 1


@pytest.mark.parametrize("draws", [100, 101, 1007, 2047, 2048, 4000])
def test_counts_equal_the_plain_counts(example, draws):
    study, pm = example
    frame = _settings.settings_frame(pm, SET_POINT, 37, Agitation=np.linspace(30, 60, 37))
    frame["Surface"] = (["ULA", "CellBIND", "Standard TC"] * 13)[:37]
    U, L = _settings.settings_arrays(pm, frame)
    dr = pm.draws(draws, 1)
    sizes = [len(study.factor(f).levels) for f in pm.categorical]
    for combo, rows in _kernels.level_groups(L):
        M = _kernels.monomials(U[rows], pm.exponents)
        mats = [np.ascontiguousarray(M[:, c.basis], dtype=np.float32) for c in pm.spec_cqas]
        sides = _kernels.group_margins(pm, dr, combo, sizes, None)
        joint, per = _kernels.count_in_spec(mats, sides, len(rows), draws)
        joint0, per0 = _plain_count_in_spec(mats, sides, len(rows), draws)
        assert np.array_equal(joint, joint0)
        assert all(np.array_equal(a, b) for a, b in zip(per, per0))
        only, _ = _kernels.count_in_spec(mats, sides, len(rows), draws, joint_only=True)
        assert np.array_equal(only, joint0)
        pruned, early = _search._pruned_joint(mats, sides, list(range(len(sides))), draws, None)  # no stop
        assert np.array_equal(pruned, joint0) and not early.any()


def test_row_counts_of_wide_rows():
    rng = np.random.default_rng(0)
    for width in (8, 2040, 2048, 4096, 8192, 40000):
        b = rng.random((5, width)) < rng.random((5, 1))
        b[0] = True
        assert np.array_equal(_kernels.row_counts(b), b.sum(axis=1))


def test_groups_match_unique_rows():
    rng = np.random.default_rng(1)
    for shape, high in (((200, 3), 3), ((50, 1), 5), ((10, 2), 1), ((0, 2), 2)):
        L = rng.integers(0, high, size=shape)
        combos, inverse = np.unique(L, axis=0, return_inverse=True) if len(L) else (np.zeros((0, 2)), [])
        plain = [(tuple(int(v) for v in c), np.flatnonzero(np.ravel(inverse) == i)) for i, c in enumerate(combos)]
        fast = _kernels.level_groups(L)
        assert [c for c, _ in fast] == [c for c, _ in plain]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(fast, plain))
    assert [c for c, _ in _kernels.level_groups(np.zeros((4, 0), dtype=int))] == [()]


def test_edge_distances_match_one_at_a_time():
    rng = np.random.default_rng(2)
    coded = rng.uniform(-1, 1, size=(600, 3))
    edge = rng.random(600) < 0.3
    keys = rng.integers(0, 4, size=600)
    edge[keys == 3] = False  # a combination with no edge point: the study range decides
    cand = np.flatnonzero(rng.random(600) < 0.2)
    fast = _search._edge_distances(coded, edge, keys, cand)
    plain = np.array([_search._edge_distance(coded, edge, keys, i) for i in cand])
    assert np.array_equal(fast, plain)
    assert np.array_equal(_search._edge_distances(np.zeros((5, 0)), edge[:5], keys[:5], np.arange(5)), np.zeros(5))


def test_points_give_the_dataframe_results(example, monkeypatch):
    study, pm = example
    pts = _settings.settings_points(pm, SET_POINT, 5, Agitation=np.linspace(30, 60, 5))
    frame = _settings.settings_frame(pm, SET_POINT, 5, Agitation=np.linspace(30, 60, 5))
    assert isinstance(pts, _settings.Points)
    for a, b in zip(_settings.settings_arrays(pm, pts), _settings.settings_arrays(pm, frame)):
        assert np.array_equal(a, b)
    assert np.array_equal(pts.feasible(study), study.feasible(frame))
    level_pts = _settings.settings_points(pm, SET_POINT, 3, Surface=list(study.factor("Surface").levels))
    assert np.array_equal(level_pts.feasible(study), study.feasible(
        _settings.settings_frame(pm, SET_POINT, 3, Surface=list(study.factor("Surface").levels))))
    fast = S.proven_acceptable_ranges(pm, SET_POINT, threshold=0.8)
    with monkeypatch.context() as m:
        m.setattr(_ranges, "settings_points", _settings.settings_frame)
        plain = S.proven_acceptable_ranges(pm, SET_POINT, threshold=0.8)
    assert dict(fast) == dict(plain)
    assert fast.limited_by == plain.limited_by and fast.end_probability == plain.end_probability
    assert fast.probability == plain.probability


def test_probability_is_unchanged_by_the_margin_cache(example):
    study, pm = example
    frame = pd.DataFrame([SET_POINT] * 3)
    first = S.probability(pm, frame, draws=500, seed=9)
    pm.draws(500, 9).margins.clear()
    again = S.probability(pm, frame, draws=500, seed=9)
    assert np.array_equal(first.joint, again.joint)
    assert all(np.array_equal(first.per_cqa[k], again.per_cqa[k]) for k in first.per_cqa)
