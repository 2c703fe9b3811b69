"""Model rows from level indices (doe.optimal.LevelRows) are the model-matrix build, bit for bit, and the
optimal and split-plot searches that use them make the same designs as the full rebuild they replaced.

Independent references: ``ModelMatrix.build`` on the coded settings (the generic builder the engine
used before), a model row written out by hand, and the former candidate-row code written out below
(every candidate setting of a run coded, then the whole model matrix built again).
"""

from __future__ import annotations

import numpy as np
import pytest

from doe import optimal, split_plot
from doe.model import ModelMatrix, parse_model
from doe.optimal import LevelRows, candidate_levels
from doe.study import Factor, Study
from tests.test_optimal import _exclude, cube, msc


def _mixed(k: int = 4, constrained: bool = True) -> Study:
    """Continuous, discrete and categorical factors (the first k), with a constraint."""
    factors = [Factor("A", low=0, high=10), Factor("B", low=0, high=10),
               Factor("D", kind="discrete", levels=[1, 2, 4, 8]),
               Factor("C", kind="categorical", levels=["x", "y", "z"])]
    return Study("mixed", factors[:k], constraints=[_exclude("A + B > 15")] if constrained else [])


def _random_K(levels: list[np.ndarray], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, len(lv), size=n) for lv in levels])


MODELS = [
    (lambda: cube(3), "linear"),
    (lambda: cube(3), "interactions"),
    (lambda: cube(4), "quadratic"),
    (lambda: cube(4), "full"),  # three- and four-factor products
    (lambda: cube(3), "quadratic + A^3 + A^2:B + A:B:C^2"),
    (_mixed, "linear"),
    (_mixed, "interactions"),
    (_mixed, "quadratic"),
    (_mixed, "full"),
    (msc, "quadratic"),
]


@pytest.mark.parametrize("case", range(len(MODELS)))
def test_level_rows_equal_the_model_matrix_build(case):
    make, spec = MODELS[case]
    study = make()
    terms = parse_model(study, spec)
    mm = ModelMatrix(study, terms)
    levels = candidate_levels(study, terms, 21 if case % 2 else None)
    K = _random_K(levels, 300, case)
    rows = LevelRows(mm, levels)
    assert rows.p == mm.p
    np.testing.assert_array_equal(rows.rows(K), mm.build(optimal._values(levels, K)))


def test_a_quadratic_row_by_hand():
    study = cube(2)
    mm = ModelMatrix(study, parse_model(study, "quadratic"))
    levels = [np.array([-1.0, -0.5, 0.0, 0.5, 1.0])] * 2
    row = LevelRows(mm, levels).rows(np.array([[3, 0]]))[0]  # A = 0.5, B = -1
    by_hand = {"Intercept": 1.0, "A": 0.5, "B": -1.0, "A:B": -0.5, "A^2": 0.25, "B^2": 1.0}
    assert dict(zip(mm.columns, row.tolist(), strict=True)) == by_hand


def _old_candidates(space, krow):
    """The former lazy candidate rows: every move of the run coded, the whole model matrix rebuilt."""
    K = np.repeat(krow[None, :], len(space.cj), axis=0)
    K[np.arange(len(space.cj)), space.cj] = space.cl
    U = optimal._values(space.levels, K)
    return space.mm1.build(U), optimal._feasible(space.study, U)


@pytest.mark.parametrize("case", range(len(MODELS)))
def test_candidate_rows_equal_the_full_rebuild(case):
    make, spec = MODELS[case]
    study = make()
    terms = parse_model(study, spec)
    levels = candidate_levels(study, terms, None)
    space = optimal._LazySpace(study, ModelMatrix(study, terms), levels)
    K = _random_K(levels, 12, 100 + case)
    every = space.all_candidates(K)
    for i, krow in enumerate(K):
        Y_old, ok_old = _old_candidates(space, krow)
        Y, ok = space.candidates(krow)
        np.testing.assert_array_equal(Y, Y_old)
        np.testing.assert_array_equal(every[i], Y_old)
        np.testing.assert_array_equal(ok, np.asarray(ok_old, dtype=bool))


class _OldMoves:
    """The former candidate rows of every run off the grid, rebuilt in full after every change."""

    def __init__(self, problem, K):
        self.problem, self.K = problem, K
        n, c, p = len(K), len(problem.space.cj), problem.mm.p
        self.p1 = p - (0 if problem.bcodes is None else problem.bcodes.shape[1])
        self.Y = np.empty((n, c, p))
        self.ok = np.zeros((n, c), dtype=bool) if problem.space.constrained else None
        if problem.bcodes is not None:
            self.Y[:, :, self.p1:] = problem.bcodes[:, None, :]
        for i in range(n):
            self.change(i, 0, 0)

    def change(self, i, f, step):
        Y, ok = _old_candidates(self.problem.space, self.K[i])
        self.Y[i, :, :self.p1] = Y
        if self.ok is not None:
            self.ok[i] = ok


def _old_lazy(monkeypatch):
    """Search with the former lazy candidate rows (full model-matrix rebuilds)."""
    def rows(self, K):
        return self.mm1.build(optimal._values(self.levels, K))

    monkeypatch.setattr(optimal, "_Moves", _OldMoves)
    monkeypatch.setattr(optimal._LazySpace, "rows", rows)


SEARCHES = {
    "k3 quadratic D": (lambda: cube(3), "quadratic", 14, "D", {"starts": 2, "rounds": 2}),
    "k4 quadratic D": (lambda: cube(4), "quadratic", 20, "D", {"starts": 1, "rounds": 2}),
    "k3 quadratic I blocks": (lambda: cube(3), "quadratic", 16, "I", {"starts": 1, "rounds": 1, "n_blocks": 2}),
    "mixed D": (lambda: _mixed(constrained=False), "quadratic", 22, "D", {"starts": 1, "rounds": 1}),
    "constrained D": (lambda: _mixed(k=2), "quadratic", 8, "D", {"starts": 1, "rounds": 0}),
}


@pytest.mark.parametrize("name", list(SEARCHES))
def test_same_design_as_the_full_rebuild(monkeypatch, name):
    make, spec, runs, criterion, kw = SEARCHES[name]
    study = make()
    terms = parse_model(study, spec)
    monkeypatch.setattr(optimal, "GRID_MAX_CELLS", 1)  # candidates built per run, not held as a grid
    fast = optimal.optimal_design(study, terms, runs, criterion, seed=3, time_limit=1e9, **kw)
    _old_lazy(monkeypatch)
    old = optimal.optimal_design(study, terms, runs, criterion, seed=3, time_limit=1e9, **kw)
    np.testing.assert_array_equal(fast.U, old.U)
    assert fast.d_criterion == old.d_criterion and fast.i_criterion == old.i_criterion
    assert fast.starts == old.starts


def test_split_plot_rows_off_the_grid_are_the_build(monkeypatch):
    """Split-plot search with rows from level indices: the same design as with ``ModelMatrix.build``."""
    study = Study("sp", [Factor("W", low=-1, high=1, hard_to_change=True), Factor("S", low=-1, high=1),
                         Factor("T", low=-1, high=1)])
    terms = parse_model(study, "quadratic")
    monkeypatch.setattr(split_plot, "GRID_MAX_CELLS", 1)
    fast = split_plot.split_plot_design(study, terms, 16, 4, "D", seed=2, starts=1, rounds=1, time_limit=1e9)

    def old_get(self, K):
        U = self.coded(K)
        return self.mm.build(U), self._feasible(U)

    monkeypatch.setattr(split_plot._Rows, "get", old_get)
    old = split_plot.split_plot_design(study, terms, 16, 4, "D", seed=2, starts=1, rounds=1, time_limit=1e9)
    np.testing.assert_array_equal(fast.U, old.U)
    assert fast.d_criterion == old.d_criterion


def test_level_rows_refuse_block_columns():
    study = cube(2)
    with pytest.raises(ValueError, match="without block columns"):
        LevelRows(ModelMatrix(study, parse_model(study, "linear"), 2), [np.array([-1.0, 1.0])] * 2)
