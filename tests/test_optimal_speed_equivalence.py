"""The batched coordinate exchange of doe.optimal makes the same exchanges as the
plain run-by-run algorithm it replaced (same seeded designs, bit for bit).

The reference below is the former implementation: every run scored on its own,
candidate rows rebuilt from the grid at each step, and the inverse always
checked by its eigenvalues.
"""

from __future__ import annotations

import numpy as np
import pytest

from doe import optimal
from doe.model import parse_model
from doe.study import Factor, Study
from tests.test_optimal import _exclude, cube, msc


def _reference_inverse(A):
    w = np.linalg.eigvalsh(A)
    top = max(w[-1], 1.0)
    if w[0] > 1e-9 * top:
        return np.linalg.inv(A)
    return np.linalg.inv(A + 1e-5 * top * np.eye(len(A)))


def _reference_candidates(problem, K, i):
    Y, ok = problem.space.candidates(K[i])
    if problem.bcodes is not None:
        Y = np.hstack([Y, np.broadcast_to(problem.bcodes[i], (len(Y), problem.bcodes.shape[1]))])
    return Y, ok


def _reference_d_gain(Ainv, x, Y):
    ax = Ainv @ x
    AY = Y @ Ainv
    dy = np.einsum("ij,ij->i", AY, Y)
    dxy = Y @ ax
    return (1.0 + dy) * (1.0 - x @ ax) + dxy * dxy - 1.0, AY, dy


def _reference_i_gain(Ainv, M, x, Y):
    ax = Ainv @ x
    AY = Y @ Ainv
    dy = np.einsum("ij,ij->i", AY, Y)
    dxy = Y @ ax
    delta = (1.0 + dy) * (1.0 - x @ ax) + dxy * dxy
    Max = M @ ax
    aMa = np.einsum("ij,ij->i", AY @ M, AY)
    r = dxy / (1.0 + dy)
    bMb = ax @ Max - 2.0 * r * (AY @ Max) + r * r * aMa
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = aMa / (1.0 + dy) - bMb * (1.0 + dy) / delta
    gain[~(delta > 1e-10)] = -np.inf
    return gain, AY, dy


def _reference_pass(problem, K, X, moves, Ainv):
    is_d, M = problem.criterion == "D", problem.M
    trace = 1.0 if is_d else float(np.sum(M * Ainv))
    cj, cl, constrained = problem.space.cj, problem.space.cl, problem.space.constrained
    changes = 0
    for i in range(problem.n_new):
        for _ in range(optimal._MAX_PASSES):
            Y, ok = _reference_candidates(problem, K, i)
            x = X[i]
            gain, AY, dy = (_reference_d_gain(Ainv, x, Y) if is_d
                            else _reference_i_gain(Ainv, M, x, Y))
            if constrained:
                gain[~ok] = -np.inf
            best = int(np.argmax(gain))
            if not gain[best] > optimal._TOL * trace:
                break
            Ainv -= np.outer(AY[best], AY[best]) / (1.0 + dy[best])
            b = Ainv @ x
            Ainv += np.outer(b, b) / (1.0 - x @ b)
            trace -= 0.0 if is_d else gain[best]
            X[i] = Y[best]
            K[i, cj[best]] = cl[best]
            changes += 1
    return changes


def _constrained3() -> Study:
    return Study("constrained", [Factor("A", low=0, high=10), Factor("B", low=0, high=10),
                                 Factor("C", low=0, high=1)],
                 constraints=[_exclude("A + B > 15")])


CASES = {
    "cube3 quadratic D": (lambda: cube(3), "quadratic", 15, "D", {"starts": 3}),
    "cube3 quadratic I": (lambda: cube(3), "quadratic", 15, "I", {"starts": 3}),
    "cube3 blocks D": (lambda: cube(3), "quadratic", 17, "D", {"starts": 2, "n_blocks": 3}),
    "cube3 blocks I": (lambda: cube(3), "quadratic", 17, "I", {"starts": 2, "n_blocks": 3}),
    "constrained D": (_constrained3, "quadratic", 14, "D", {"starts": 2}),
    "constrained I": (_constrained3, "quadratic", 14, "I", {"starts": 2}),
    "msc D": (msc, "quadratic", 40, "D", {"starts": 1, "rounds": 2}),
    "msc I blocks": (msc, "quadratic", 40, "I", {"starts": 1, "rounds": 1, "n_blocks": 2}),
}


def _design(monkeypatch, reference, make, model, runs, criterion, kw, seed):
    if reference:
        monkeypatch.setattr(optimal, "_exchange_pass", _reference_pass)
        monkeypatch.setattr(optimal, "_inverse", _reference_inverse)
    study = make()
    res = optimal.optimal_design(study, parse_model(study, model), runs, criterion, seed=seed,
                                 time_limit=1e9, **kw)
    monkeypatch.undo()
    return res


@pytest.mark.parametrize("name", list(CASES))
def test_same_design_as_run_by_run_exchange(monkeypatch, name):
    make, model, runs, criterion, kw = CASES[name]
    for seed in (0, 5):
        fast = _design(monkeypatch, False, make, model, runs, criterion, kw, seed)
        ref = _design(monkeypatch, True, make, model, runs, criterion, kw, seed)
        np.testing.assert_array_equal(fast.U, ref.U)
        assert fast.d_criterion == ref.d_criterion and fast.i_criterion == ref.i_criterion
        assert fast.starts == ref.starts


def test_same_design_on_lazy_candidates(monkeypatch):
    monkeypatch.setattr(optimal, "GRID_MAX_CELLS", 1)
    study = _constrained3()
    terms = parse_model(study, "quadratic")
    fast = optimal.optimal_design(study, terms, 12, "D", seed=0, starts=2, rounds=1)
    monkeypatch.setattr(optimal, "_exchange_pass", _reference_pass)
    monkeypatch.setattr(optimal, "_inverse", _reference_inverse)
    ref = optimal.optimal_design(study, terms, 12, "D", seed=0, starts=2, rounds=1)
    np.testing.assert_array_equal(fast.U, ref.U)


def test_augmentation_same_as_run_by_run(monkeypatch):
    study = cube(3)
    terms = parse_model(study, "quadratic")
    base = optimal.optimal_design(study, terms, 12, seed=0, starts=2)
    fast = optimal.augment_design(study, terms, base.U, 5, "I", seed=4, starts=2)
    monkeypatch.setattr(optimal, "_exchange_pass", _reference_pass)
    monkeypatch.setattr(optimal, "_inverse", _reference_inverse)
    ref = optimal.augment_design(study, terms, base.U, 5, "I", seed=4, starts=2)
    np.testing.assert_array_equal(fast.U, ref.U)


def test_inverse_shortcut_matches_eigenvalue_test():
    rng = np.random.default_rng(0)
    for scale in (1e-12, 1e-8, 1e-4, 1.0):
        X = rng.standard_normal((12, 6))
        X[:, -1] = X[:, 0] + scale * rng.standard_normal(12)  # nearly collinear column
        A = X.T @ X
        np.testing.assert_array_equal(optimal._inverse(A), _reference_inverse(A))
    A = np.zeros((4, 4))
    np.testing.assert_array_equal(optimal._inverse(A), _reference_inverse(A))
