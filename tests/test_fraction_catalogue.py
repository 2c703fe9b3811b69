"""Regular two-level fractions against the published catalogue (issue 16, in part).

Source: D. C. Montgomery, Design and Analysis of Experiments (Wiley, 8th ed. 2013), Table 8.14 "Selected
2^(k-p) fractional factorial designs" (minimum-aberration designs, Chen, Sun & Wu 1993). Two designs with
the same word-length pattern are equally good by the minimum-aberration criterion, so each design the
search returns is compared with the catalogue's by its resolution and word-length pattern.
"""

import itertools

import numpy as np
import pytest

from doe import fractional

#: Montgomery Table 8.14: (k, runs) -> the catalogue's generators (letters A, B, C, ... in order).
CATALOGUE = {
    (3, 4): ["C=AB"], (4, 8): ["D=ABC"], (5, 16): ["E=ABCD"], (5, 8): ["D=AB", "E=AC"],
    (6, 32): ["F=ABCDE"], (6, 16): ["E=ABC", "F=BCD"], (6, 8): ["D=AB", "E=AC", "F=BC"],
    (7, 64): ["G=ABCDEF"], (7, 32): ["F=ABCD", "G=ABDE"], (7, 16): ["E=ABC", "F=BCD", "G=ACD"],
    (7, 8): ["D=AB", "E=AC", "F=BC", "G=ABC"], (8, 64): ["G=ABCD", "H=ABEF"],
    (8, 32): ["F=ABC", "G=ABD", "H=BCDE"], (8, 16): ["E=BCD", "F=ACD", "G=ABC", "H=ABD"],
}


def _pattern(k: int, generators: list[str]) -> tuple[int, list[int]]:
    """Resolution and word-length pattern (A3, A4, ...) of the fraction the generators define."""
    words = []
    for g in generators:
        left, right = g.split("=")
        words.append(frozenset(right) | {left})
    relation = []
    for r in range(1, len(words) + 1):
        for combo in itertools.combinations(words, r):
            w = frozenset()
            for c in combo:
                w = w ^ c
            relation.append(w)
    lengths = [len(w) for w in relation]
    return min(lengths), [lengths.count(n) for n in range(3, k + 1)]


@pytest.mark.parametrize(("k", "runs"), sorted(CATALOGUE))
def test_the_search_matches_the_catalogue_by_resolution_and_word_length_pattern(k, runs):
    frac = fractional.fraction(k, runs=runs)
    resolution, pattern = _pattern(k, CATALOGUE[(k, runs)])
    assert len(frac.matrix) == runs
    assert (frac.resolution, frac.word_length_pattern) == (resolution, pattern)


def _resolution_of(matrix: np.ndarray, up_to: int = 4) -> int:
    """The resolution read off the design itself: the shortest product of columns that is constant."""
    k = matrix.shape[1]
    for length in range(1, up_to + 1):
        for combo in itertools.combinations(range(k), length):
            if abs(np.prod(matrix[:, combo], axis=1).sum()) == len(matrix):
                return length
    return up_to + 1


@pytest.mark.parametrize("k", [9, 10, 11, 16, 21, 25])
def test_up_to_half_the_runs_in_factors_reach_resolution_iv_in_64_runs(k):
    """Today: 10-11 factors in 64 runs came out at resolution III and 21-25 were refused."""
    frac = fractional.fraction(k, runs=64)
    assert frac.resolution >= 4 and _resolution_of(frac.matrix) >= 4
    assert len(frac.matrix) == 64 and len({tuple(r) for r in frac.matrix}) == 64


@pytest.mark.parametrize(("k", "runs"), [(12, 32), (16, 32), (17, 64), (21, 64), (25, 64)])
def test_resolution_iv_asks_for_the_smallest_run_size_that_holds_it(k, runs):
    frac = fractional.fraction(k, resolution=4)
    assert len(frac.matrix) == runs and frac.resolution >= 4 and _resolution_of(frac.matrix) >= 4


def test_a_search_cut_short_says_so():
    exhaustive = fractional.fraction(7, runs=16)
    assert exhaustive.search == "exhaustive"
    frac = fractional.fraction(21, runs=64)
    assert frac.search == "greedy" and "not necessarily the minimum-aberration design" in frac.search_note


def test_the_design_says_how_its_generators_were_chosen():
    from doe.generators import generate
    from doe.study import Study

    study = Study.from_dict({"name": "screen", "factors": [{"name": f"X{i + 1}", "low": 0, "high": 1} for i in range(10)],
                             "responses": [{"name": "y", "goal": "maximize", "lower": 1}]})
    design = generate(study, "fractional", runs=64, seed=1)
    assert design.info["resolution"] == 4
    assert any("greedy search" in w and "not necessarily the minimum-aberration" in w for w in design.warnings)
    assert "greedy search" in design.info["generator search"]
    small = generate(Study.from_dict({**study.to_dict(), "factors": study.to_dict()["factors"][:7]}),
                     "fractional", runs=16, seed=1)
    assert "generator search" not in small.info and not any("greedy" in w for w in small.warnings)
