"""The design space with many factors (issue 21, "Large studies without blow-ups", row 1).

The robust set point, the opening view and the NOR check used to build lattices whose size grows
exponentially with the number of factors k (3^k search points: 531,441 at k = 12). Above a cap they now
use bounded space-filling samples. Expected values are derived independently of the code under test:

- below the cap, the lattice written out here with ``itertools.product`` / ``numpy.linspace`` (the old
  algorithm), point for point;
- above the cap, counts of the points actually evaluated (bounded by the cap plus the pattern search's
  2k trials per step), and the probability at the found set point against the best point of the full
  3^10 lattice (the old algorithm, run with the cap raised) on the same posterior draws: the sample
  must be within Monte Carlo error (2 standard errors + 1/draws, the search's own tie rule) or better;
- the opening view's axes: a CQA that depends on two of the factors only, so those two are the pair
  over which the probability varies (the map over any other pair is flat);
- the NOR box: its corners listed with ``itertools.product``.

Synthetic studies (linear CQAs on [-1, 1]^k, few runs, 200 draws) keep each test well under 2 s.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from doe.fit import fit_model
from doe.space import _ranges, _search, _view, build_predictive, check_nor, proven_acceptable_ranges
from doe.space import robust_set_point as rsp
from tests.conftest import make_study

DRAWS = 200


def _linear_pm(k: int, *, seed: int = 1, active: tuple[int, ...] | None = None, noise: float = 1.0):
    """k factors X1..Xk on [-1, 1]; Y1 (lower spec 8) rises and Y2 (upper spec 12) rises with the
    active factors (all by default), so the best settings trade the two off; linear fits."""
    study = make_study([{"name": f"X{i + 1}", "low": -1, "high": 1} for i in range(k)],
                       [{"name": "Y1", "lower": 8}, {"name": "Y2", "upper": 12}])
    rng = np.random.default_rng(seed)
    n = 2 * k + 6
    runs = pd.DataFrame(rng.uniform(-1, 1, size=(n, k)), columns=[f"X{i + 1}" for i in range(k)])
    act = list(range(k)) if active is None else list(active)
    a = rng.uniform(0.5, 1.5, size=len(act))
    b = rng.uniform(0.5, 1.5, size=len(act))
    x = runs.to_numpy()[:, act]
    runs["Y1"] = 9 + x @ a + rng.normal(0, noise, n)
    runs["Y2"] = 11 + x @ b + rng.normal(0, noise, n)
    fits = {y: fit_model(study, runs, y, "linear") for y in ("Y1", "Y2")}
    return build_predictive(study, fits, draws=DRAWS)


def _counting(monkeypatch, module, name):
    """Wrap ``module.name`` (a function taking (pm, frame, ...)) to record the number of points of each call."""
    seen: list[int] = []
    real = getattr(module, name)

    def wrapped(pm, frame, *args, **kwargs):
        seen.append(len(frame))
        return real(pm, frame, *args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return seen


# -- (1) below the cap: exactly the old lattice ------------------------------------------------------
@pytest.mark.parametrize(("k", "per_axis"), [(2, 21), (9, 3)])
def test_below_the_cap_the_search_visits_the_old_lattice(monkeypatch, k, per_axis):
    """2 factors: 21^2 = 441 points; 9 factors: 20,000^(1/9) = 3.005 -> 3 per axis, 3^9 = 19,683 <= 20,000."""
    pm = _linear_pm(k)
    old = np.array(list(itertools.product(*[np.linspace(-1, 1, per_axis)] * k)))
    frame, coded = _search._search_grid(pm, {}, pm.numeric, [], 21)
    np.testing.assert_array_equal(coded, old)
    np.testing.assert_array_equal(frame[pm.numeric].to_numpy(), old)  # [-1, 1]: actual = coded
    seen = _counting(monkeypatch, _search, "_search_probability")
    rsp(pm, draws=DRAWS)
    assert seen == [len(old)]


# -- (2) above the cap: bounded, and as good as the old lattice ------------------------------------
@pytest.mark.parametrize("k", [12, 13, 14, 15, 16])
def test_above_the_cap_the_points_evaluated_are_bounded(monkeypatch, k):
    pm = _linear_pm(k)
    grid_points = _counting(monkeypatch, _search, "_search_probability")
    pattern_points = _counting(monkeypatch, _search, "meets_threshold")
    out = rsp(pm, draws=DRAWS)
    assert len(grid_points) == 1 and grid_points[0] <= _search.MAX_SEARCH_POINTS < 3 ** k
    steps = math.ceil(math.log2(_search.SAMPLED_START_STEP / 1e-3)) + 1  # halvings from 0.25 below 1e-3
    assert len(pattern_points) <= steps + DRAWS  # each accepted move gains more than 1/draws (<= 1 in all)
    assert all(n <= 2 * k for n in pattern_points)
    assert 0.0 <= out["probability"] <= 1.0 and set(out["settings"]) == set(pm.numeric)


def _tol(p: float) -> float:
    """The robust search's tie tolerance: 2 Monte Carlo standard errors + 1/draws."""
    return 2 * math.sqrt(p * (1 - p) / DRAWS) + 1 / DRAWS


def test_the_sampled_search_is_as_good_as_the_old_lattice(monkeypatch):
    """10 factors: the full 3^10 = 59,049 lattice (the cap raised above it: the old algorithm) against a
    4,096-point cap (centre, 20 face centres, 1,024 corners, 512 lattice points, 2,048 Sobol points), on
    the same draws. The best probability the sample finds is within Monte Carlo error (the tie rule) of
    the lattice's best; the set point reported is, by the search's own tie rule, within that error of
    its best again (the tie farthest from the design-space edge), and never below the sample's best
    minus the tolerance."""
    pm = _linear_pm(10, seed=3, noise=1.5)
    best: list[float] = []
    real = _search._search_probability

    def spy(*args, **kwargs):
        p = real(*args, **kwargs)
        best.append(float(p.max()))
        return p

    monkeypatch.setattr(_search, "_search_probability", spy)
    old = rsp(pm, draws=DRAWS, max_points=60_000)
    new = rsp(pm, draws=DRAWS, max_points=4_096)
    old_best, new_best = best
    assert old_best == old["probability"] and 0.2 < old_best < 0.99  # a real trade-off, not a plateau at 1
    assert new_best >= old_best - _tol(old_best)
    assert new["probability"] >= new_best - _tol(new_best)


def test_search_points_are_bounded_and_fill_the_cube():
    """k = 20 (2^20 corners alone exceed the cap), 5,000 points: 41 centre and face centres, then 1,024
    corners, 1,024 points of {-1, 0, 1}^20 and 2,048 Sobol points of the cube (powers of two that fit
    in a quarter, a quarter and the rest); each tenth of every axis holds about 10 % of the Sobol part."""
    pts = _search.search_points([None] * 20, 5_000, seed=0)
    assert pts.shape == (41 + 1_024 + 1_024 + 2_048, 20)
    assert np.all(np.abs(pts) <= 1)
    assert (pts[0] == 0).all()
    np.testing.assert_array_equal(np.abs(pts[1:41]).sum(axis=1), np.ones(40))
    assert set(np.unique(pts[41:1065])) == {-1.0, 1.0}
    assert set(np.unique(pts[1065:2089])) == {-1.0, 0.0, 1.0}
    sobol = pts[2089:]
    for j in range(20):
        hist = np.histogram(sobol[:, j], bins=10, range=(-1, 1))[0]
        assert hist.min() > 0.08 * len(sobol)
    levels = np.array([-1.0, 0.0, 1.0])
    snapped = _search.search_points([levels] + [None] * 11, 3_000, seed=0)
    assert len(snapped) <= 3_000 and set(np.unique(snapped[:, 0])) == {-1.0, 0.0, 1.0}


# -- (3) PARs, NOR and the view with many factors ---------------------------------------------------
def test_pars_with_many_factors_scan_one_factor_at_a_time(monkeypatch):
    """14 factors: each PAR is a 1-D scan (201 points plus the set point) with 4 rounds of 17 points per
    refined end: at most 1 + 14 * (202 + 2 * 4 * 17) points, never a 14-dimensional lattice."""
    k = 14
    pm = _linear_pm(k)
    seen = _counting(monkeypatch, _ranges, "meets_threshold")
    centre = {f: 0.0 for f in pm.numeric}
    proven_acceptable_ranges(pm, centre, threshold=0.5, draws=DRAWS)
    assert max(seen) <= 202 and sum(seen) <= 1 + k * (202 + 2 * 4 * 17)


def test_nor_box_points_below_and_above_the_cap():
    axes = [np.linspace(0, 1, 5), np.linspace(2, 3, 5), np.linspace(-1, 1, 5)]
    np.testing.assert_array_equal(_ranges.box_points(axes, 20_000), np.array(list(itertools.product(*axes))))
    d = 12
    axes = [np.linspace(-0.1, 0.1, 5)] * d  # 5^12 = 244 million grid points
    pts = _ranges.box_points(axes, 20_000)
    assert len(pts) <= 20_000
    corners = {tuple(c) for c in itertools.product((-0.1, 0.1), repeat=d)}  # 4,096 <= 10,000: all of them
    assert corners <= {tuple(np.round(r, 12)) for r in pts}
    assert np.all((pts >= -0.1 - 1e-12) & (pts <= 0.1 + 1e-12))


def test_check_nor_with_many_factors_is_bounded(monkeypatch):
    k = 14
    pm = _linear_pm(k)
    seen = _counting(monkeypatch, _ranges, "meets_threshold")
    centre = {f: 0.0 for f in pm.numeric}
    out = check_nor(pm, centre, {f: (-0.05, 0.05) for f in pm.numeric}, threshold=0.01, draws=DRAWS, points=3)
    assert max(seen) <= _ranges.MAX_NOR_POINTS and out["n_points"] == seen[0]


def test_view_axes_with_many_factors_finds_the_active_pair(monkeypatch):
    """8 factors (28 pairs > 15): the CQAs depend on X7 and X8 only, so the view is X7 by X8, found by
    scoring 15 maps, not 28."""
    from doe.space import view_axes

    pm = _linear_pm(8, active=(6, 7), noise=0.5)
    seen: list[tuple[str, str]] = []
    real = _view.space_grid
    monkeypatch.setattr(_view, "space_grid", lambda pm, x, y, *a, **kw: seen.append((x, y)) or real(pm, x, y, *a, **kw))
    centre = {f: 0.0 for f in pm.numeric}
    assert view_axes(pm, centre, draws=DRAWS) == ("X7", "X8")
    assert len(seen) == _view.MAX_VIEW_PAIRS
    assert _view.candidate_pairs(_linear_pm(6), centre) == list(itertools.combinations(pm.numeric[:6], 2))
