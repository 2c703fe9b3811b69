"""Box-Behnken designs as published (issue 16, the designs for 3 to 7 factors).

Source: G. E. P. Box and D. W. Behnken (1960), "Some new three level designs for the study of quantitative
variables", Technometrics 2(4), 455-475. Each design is written there as rows of (+-1, +-1, 0, ...): every
row stands for the 2^m points with the +-1 entries at all sign combinations and the 0 entries at 0. The
designs for 4 and 7 factors are rotatable; the 6-factor design is not.
"""

from itertools import product

import numpy as np
import pytest

from doe.generators import generate
from doe.model import parse_model
from doe.study import Study

#: Box & Behnken (1960): the published rows ("1" = +-1, "0" = 0) of the designs for 6 and 7 factors.
PUBLISHED = {
    6: ["110100", "011010", "001101", "100110", "010011", "101001"],
    7: ["0001110", "1000011", "0100101", "1101000", "0011001", "1010100", "0110010"],
}
#: Runs without centre points: 3, 4, 5 factors use every pair of factors (12, 24, 40 runs).
RUNS = {3: 12, 4: 24, 5: 40, 6: 48, 7: 56}


def _study(k: int) -> Study:
    return Study.from_dict({"name": "bbd", "factors": [{"name": f"X{i + 1}", "low": -1, "high": 1}
                                                      for i in range(k)],
                            "responses": [{"name": "y", "goal": "maximize", "lower": 1}]})


def _points(k: int, center: int = 0) -> np.ndarray:
    design = generate(_study(k), "bbd", center=center, seed=1)
    return design.coded()


def _expand(rows: list[str]) -> set[tuple[float, ...]]:
    out = set()
    for row in rows:
        where = [i for i, c in enumerate(row) if c == "1"]
        for signs in product((-1.0, 1.0), repeat=len(where)):
            point = [0.0] * len(row)
            for i, s in zip(where, signs):
                point[i] = s
            out.add(tuple(point))
    return out


@pytest.mark.parametrize("k", sorted(PUBLISHED))
def test_the_points_are_the_published_design(k):
    points = _points(k)
    assert len(points) == RUNS[k]  # 6 factors: 48 runs, 7 factors: 56 runs, plus centres
    assert {tuple(float(v) for v in p) for p in np.round(points, 9)} == _expand(PUBLISHED[k])
    assert len({tuple(p) for p in points}) == len(points)  # no point twice


@pytest.mark.parametrize("k", sorted(RUNS))
def test_run_counts_and_centre_points(k):
    points = _points(k, center=4)
    assert len(points) == RUNS[k] + 4 and (np.abs(points).sum(axis=1) == 0).sum() == 4


def _rotatable(points: np.ndarray) -> bool:
    """Second-order rotatability (Box & Hunter 1957): pure fourth moments = 3 x mixed ones, all equal, odd ones 0."""
    k = points.shape[1]
    m4 = (points**4).sum(axis=0)
    m22 = [(points[:, i] ** 2 * points[:, j] ** 2).sum() for i in range(k) for j in range(i + 1, k)]
    odd = [(points[:, i] ** 3 * points[:, j]).sum() for i in range(k) for j in range(k) if i != j]
    return np.allclose(m4, 3 * m22[0]) and np.allclose(m22, m22[0]) and np.allclose(odd, 0)


@pytest.mark.parametrize(("k", "rotatable"), [(3, False), (4, True), (5, False), (6, False), (7, True)])
def test_rotatable_where_the_paper_says_so(k, rotatable):
    assert _rotatable(_points(k)) is rotatable


@pytest.mark.parametrize("k", [6, 7])
def test_the_full_quadratic_model_is_estimable(k):
    study = _study(k)
    design = generate(study, "bbd", center=6, seed=1)
    from doe.model import ModelMatrix

    X = ModelMatrix(study, parse_model(study, "quadratic")).build(design.coded())
    assert np.linalg.matrix_rank(X) == X.shape[1] == 1 + 2 * k + k * (k - 1) // 2


def test_more_factors_than_the_published_designs_say_what_the_design_is():
    design = generate(_study(8), "bbd", seed=1)
    assert any("Box & Behnken (1960) published no design for 8 factors" in w for w in design.warnings)
