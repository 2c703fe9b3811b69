"""Box-Behnken designs as published (issue 16: the designs for 3-7, 9-12 and 16 factors).

Source: G. E. P. Box and D. W. Behnken (1960), "Some new three level designs for the study of quantitative
variables", Technometrics 2(4), 455-475. Each design is written there as rows of (+-1, +-1, 0, ...): every
row stands for the 2^m points with the +-1 entries at all sign combinations and the 0 entries at 0 (for 11
factors a half replicate 2^(5-1) of each row). The designs for 4 and 7 factors are rotatable; no other is.
The published rows and centre points are in tests/data/box_behnken_1960.txt, with the transcriptions they
were taken from (The MathWorks' bbdesign.m; Stat-Ease's dexpy design files, which agree for 6, 7, 9-12).

Independent checks, derived here from the table, not from the code: run counts; every factor at 0 in equally
many runs; the pairs of factors varied together form the balanced or partially balanced incomplete block
design the paper builds on (Bose, Clatworthy & Shrikhande 1954: group-divisible or triangular association
schemes); the moments of a second-order design (Box & Hunter 1957): odd moments zero, [ii] = [iiii] = r s and
[iijj] = lambda_ij s for blocks of s points, rotatable only where [iiii] = 3 [iijj] for every pair; the full
quadratic model estimable with the centre points; and D-criterion values from Stat-Ease's dexpy test suite.
"""

import itertools
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from doe.generators import generate
from doe.model import ModelMatrix, parse_model
from doe.study import Study

TABLE = Path(__file__).parent / "data" / "box_behnken_1960.txt"


def _read_table() -> dict[int, dict]:
    """The published designs: {k: {"rows": [...], "centre": n0, "half": +1 or None}}."""
    out, current = {}, None
    for line in TABLE.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        head = re.fullmatch(r"\[(\d+)\]\s*(.*)", line)
        if head:
            attrs = dict(a.split("=") for a in head.group(2).split())
            current = {"rows": [], "centre": int(attrs["centre"]),
                       "half": int(attrs["half"]) if "half" in attrs else None}
            out[int(head.group(1))] = current
        else:
            assert set(line) <= {"0", "1"}
            current["rows"].append(line)
    return out


PUBLISHED = _read_table()
#: Runs without centre points: 3, 4, 5 factors use every pair of factors (12, 24, 40 runs); Box & Behnken
#: (1960): 48, 56, 120, 160, 176, 192 and 384 for 6, 7, 9, 10, 11, 12 and 16 factors.
RUNS = {3: 12, 4: 24, 5: 40, 6: 48, 7: 56, 9: 120, 10: 160, 11: 176, 12: 192, 16: 384}
#: The paper's centre points for the designs this task added (Box & Behnken 1960, as in bbdesign.m).
PAPER_CENTRES = {9: 10, 10: 10, 11: 12, 12: 12, 16: 12}
#: Points in one block: 2^m, or 2^(m-1) for the half replicate (11 factors: 16 of 2^5).
BLOCK_POINTS = {6: 8, 7: 8, 9: 8, 10: 16, 11: 16, 12: 16, 16: 16}


def _study(k: int) -> Study:
    return Study.from_dict({"name": "bbd", "factors": [{"name": f"X{i + 1}", "low": -1, "high": 1}
                                                      for i in range(k)],
                            "responses": [{"name": "y", "goal": "maximize", "lower": 1}]})


def _points(k: int, center: int = 0) -> np.ndarray:
    design = generate(_study(k), "bbd", center=center, seed=1)
    return design.coded()


def _expand(rows: list[str], half: int | None = None) -> Counter:
    """The points the paper's rows stand for, with their multiplicities (the 9-factor design repeats rows)."""
    out = Counter()
    for row in rows:
        where = [i for i, c in enumerate(row) if c == "1"]
        for signs in itertools.product((-1.0, 1.0), repeat=len(where)):
            if half is not None and np.prod(signs) != half:
                continue
            point = [0.0] * len(row)
            for i, s in zip(where, signs):
                point[i] = s
            out[tuple(point)] += 1
    return out


def _blocks(k: int) -> list[set[int]]:
    return [{i for i, c in enumerate(row) if c == "1"} for row in PUBLISHED[k]["rows"]]


def _pair_counts(k: int) -> dict[tuple[int, int], int]:
    """lambda_ij: the number of published blocks in which factors i and j are varied together."""
    lam = Counter()
    for block in _blocks(k):
        lam.update(itertools.combinations(sorted(block), 2))
    return {p: lam[p] for p in itertools.combinations(range(k), 2)}


def test_the_table_holds_the_published_designs():
    assert sorted(PUBLISHED) == [6, 7, 9, 10, 11, 12, 16]
    # factors varied in each block: 3 for 6, 7, 9 factors; 4 for 10, 12, 16; 5 for 11 (Box & Behnken 1960)
    m = {6: 3, 7: 3, 9: 3, 10: 4, 11: 5, 12: 4, 16: 4}
    for k, design in PUBLISHED.items():
        assert all(len(row) == k and row.count("1") == m[k] for row in design["rows"])
    assert [k for k, d in PUBLISHED.items() if d["half"]] == [11]


@pytest.mark.parametrize("k", sorted(PUBLISHED))
def test_the_points_are_the_published_design(k):
    points = _points(k)
    assert len(points) == RUNS[k]  # e.g. 6 factors: 48 runs, 7: 56, 16: 384, plus centres
    got = Counter(tuple(float(v) for v in p) for p in np.round(points, 9))
    assert got == _expand(PUBLISHED[k]["rows"], PUBLISHED[k]["half"])
    if k != 9:
        assert max(got.values()) == 1  # no point twice; the 9-factor design repeats three blocks, as published


@pytest.mark.parametrize("k", sorted(RUNS))
def test_run_counts_and_centre_points(k):
    points = _points(k, center=4)
    assert len(points) == RUNS[k] + 4 and (np.abs(points).sum(axis=1) == 0).sum() == 4


@pytest.mark.parametrize("k", sorted(PAPER_CENTRES))
def test_default_centre_points_are_the_papers(k):
    design = generate(_study(k), "bbd", seed=1)
    points = design.coded()
    assert PUBLISHED[k]["centre"] == PAPER_CENTRES[k]
    assert len(points) == RUNS[k] + PAPER_CENTRES[k]  # 130, 170, 188, 204 and 396 runs
    assert (np.abs(points).sum(axis=1) == 0).sum() == PAPER_CENTRES[k]
    assert design.info["centre points"] == PAPER_CENTRES[k] and not design.warnings


@pytest.mark.parametrize("k", sorted(PUBLISHED))
def test_every_factor_is_at_zero_in_equally_many_runs(k):
    points = _points(k)
    r = {len([b for b in _blocks(k) if i in b]) for i in range(k)}
    assert len(r) == 1  # every factor varied in the same number r of blocks
    zeros = (points == 0).sum(axis=0)
    assert set(zeros) == {RUNS[k] - r.pop() * BLOCK_POINTS[k]}


#: The incomplete block design under each published design: a BIBD (one lambda for all pairs), or a
#: two-class PBIBD, group divisible (groups of factors with lambda_1 inside a group, lambda_2 across) or
#: triangular T(5) (10 factors as the pairs of 5 symbols; lambda_1 for pairs of factors sharing a symbol).
#: (scheme, group size, lambda_1, lambda_2); Bose, Clatworthy & Shrikhande (1954), Box & Behnken (1960).
SCHEMES = {6: ("GD", 2, 2, 1), 7: ("BIBD", None, 1, 1), 9: ("GD", 3, 2, 1), 10: ("T5", None, 1, 2),
           11: ("BIBD", None, 2, 2), 12: ("GD", 2, 2, 1), 16: ("GD", 4, 2, 1)}


@pytest.mark.parametrize("k", sorted(SCHEMES))
def test_pairs_of_factors_follow_the_association_scheme(k):
    lam = _pair_counts(k)
    scheme, size, lam1, lam2 = SCHEMES[k]
    first = np.zeros((k, k), dtype=int)  # first associates
    for (i, j), n in lam.items():
        assert n in (lam1, lam2)  # every pair varied together at least once: all 2fi estimable
        first[i, j] = first[j, i] = n == lam1
    if scheme == "BIBD":
        assert set(lam.values()) == {lam1}
    elif scheme == "GD":  # first associates: disjoint groups of `size` factors
        groups = {frozenset(np.flatnonzero(first[i]).tolist() + [i]) for i in range(k)}
        assert all(len(g) == size for g in groups) and sum(len(g) for g in groups) == k
    else:  # triangular T(5): strongly regular (10, 6, 3, 4)
        common = first @ first
        off = ~np.eye(k, dtype=bool)
        assert set(first.sum(axis=1)) == {6}
        assert set(common[(first == 1) & off]) == {3} and set(common[(first == 0) & off]) == {4}


def _moment(points: np.ndarray, powers: dict[int, int]) -> float:
    return float(np.prod([points[:, i] ** p for i, p in powers.items()], axis=0).sum())


@pytest.mark.parametrize("k", sorted(PUBLISHED))
def test_the_moments_of_a_second_order_design(k):
    """Odd moments up to order four vanish; [ii] = [iiii] = r s and [iijj] = lambda_ij s (s points a block)."""
    points = _points(k)
    s = BLOCK_POINTS[k]
    lam = _pair_counts(k)
    r = len([b for b in _blocks(k) if 0 in b])
    for i in range(k):
        assert _moment(points, {i: 1}) == 0 and _moment(points, {i: 3}) == 0
        assert _moment(points, {i: 2}) == _moment(points, {i: 4}) == r * s
    for i, j in itertools.combinations(range(k), 2):
        assert _moment(points, {i: 2, j: 2}) == lam[(i, j)] * s
        for pi, pj in [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1)]:
            assert _moment(points, {i: pi, j: pj}) == 0
    for trio in itertools.combinations(range(k), 3):
        for powers in [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2)]:
            assert _moment(points, dict(zip(trio, powers))) == 0
    for quad in itertools.combinations(range(k), 4):  # [ijkl] = 0: no 2fi aliased with another
        assert _moment(points, dict.fromkeys(quad, 1)) == 0


def _rotatable(points: np.ndarray) -> bool:
    """Second-order rotatability (Box & Hunter 1957): pure fourth moments = 3 x mixed ones, all equal, odd ones 0."""
    k = points.shape[1]
    m4 = (points**4).sum(axis=0)
    m22 = [(points[:, i] ** 2 * points[:, j] ** 2).sum() for i in range(k) for j in range(i + 1, k)]
    odd = [(points[:, i] ** 3 * points[:, j]).sum() for i in range(k) for j in range(k) if i != j]
    return np.allclose(m4, 3 * m22[0]) and np.allclose(m22, m22[0]) and np.allclose(odd, 0)


@pytest.mark.parametrize(("k", "rotatable"), [(3, False), (4, True), (5, False), (6, False), (7, True),
                                              (9, False), (10, False), (11, False), (12, False), (16, False)])
def test_rotatable_where_the_paper_says_so(k, rotatable):
    assert _rotatable(_points(k)) is rotatable


def test_the_eleven_factor_blocks_are_a_resolution_five_half_replicate():
    """Each 11-factor block: 16 runs, the product of its five signs +1 (I = +ABCDE), no 2fi aliased."""
    points = _points(11)
    for block in _blocks(11):
        cols = sorted(block)
        inside = points[np.all(points[:, [c for c in range(11) if c not in block]] == 0, axis=1)
                        & np.all(points[:, cols] != 0, axis=1)][:, cols]
        assert len(inside) == 16 and set(np.prod(inside, axis=1)) == {1.0}
        assert len({tuple(p) for p in inside}) == 16


@pytest.mark.parametrize("k", sorted(PUBLISHED))
def test_the_full_quadratic_model_is_estimable(k):
    study = _study(k)
    design = generate(study, "bbd", center=6, seed=1)
    X = ModelMatrix(study, parse_model(study, "quadratic")).build(design.coded())
    assert np.linalg.matrix_rank(X) == X.shape[1] == 1 + 2 * k + k * (k - 1) // 2


@pytest.mark.parametrize(("k", "log_det"), [(6, -70.8199239661506), (12, -285.7997819420118)])
def test_d_criterion_agrees_with_stat_ease_dexpy(k, log_det):
    """ln det (X'X)^-1 of the quadratic model with 5 centre points, from dexpy/tests/test_box_behnken.py
    (Stat-Ease, github.com/statease/dexpy): an independent implementation of the same published designs."""
    study = _study(k)
    X = ModelMatrix(study, parse_model(study, "quadratic")).build(_points(k, center=5))
    sign, value = np.linalg.slogdet(X.T @ X)
    assert sign > 0 and -value == pytest.approx(log_det, rel=1e-9)


@pytest.mark.parametrize("k", [8, 13])
def test_factor_counts_without_a_published_design_say_what_the_design_is(k):
    design = generate(_study(k), "bbd", seed=1)
    message = next(w for w in design.warnings if "Box & Behnken (1960) published no design" in w)
    assert f"no design for {k} factors" in message and "3-7, 9-12 and 16" in message
    assert len(design.coded()) == 4 * k * (k - 1) // 2 + 6  # every pair of factors in a 2^2, 6 centres
