"""Regular two-level fractions against the published catalogues (issue 16, in part).

Sources:

- D. C. Montgomery, Design and Analysis of Experiments (Wiley, 8th ed. 2013), Table 8.14 "Selected
  2^(k-p) fractional factorial designs" (minimum-aberration designs, Chen, Sun & Wu 1993).
- J. Chen, D. X. Sun & C. F. J. Wu (1993), "A catalogue of two-level and three-level fractional factorial
  designs with small runs", Int. Stat. Rev. 61, 131-145, Tables 2-4 (16, 32, 64 runs), and H. Xu (2009),
  "Algorithmic construction of efficient fractional factorial designs with large run sizes",
  Technometrics 51, 262-277 (128-4096 runs): the rank-1 (minimum-aberration) designs' word-length
  patterns, in tests/data/fraction_catalogue_published.csv (transcribed by A. Bohyn, csw93 0.6).
- The even design with N/2 factors in N runs (the foldover of the saturated resolution III design) has
  C(N/2, 3)/4 words of length 4 and only even words: any three of its columns (x, 1), x in F_2^(b-1),
  determine a fourth, (x1 + x2 + x3, 1) (derived here; Block & Mee 2005, J. Qual. Technol. 37:282-293).

Two designs with the same word-length pattern are equally good by minimum aberration, so each design is
compared with the catalogue's by its resolution and word-length pattern. The word-length pattern of a
design is computed by the MacWilliams identity (doe.fractional.wlp_of); that is checked against a direct
count of the 2^p - 1 words of the defining relation for every catalogue design with p <= 10.
"""

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from doe import fractional

DATA = Path(__file__).parent / "data" / "fraction_catalogue_published.csv"

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
def test_the_design_matches_montgomery_by_resolution_and_word_length_pattern(k, runs):
    frac = fractional.fraction(k, runs=runs)
    resolution, pattern = _pattern(k, CATALOGUE[(k, runs)])
    assert len(frac.matrix) == runs
    assert (frac.resolution, frac.word_length_pattern) == (resolution, pattern)


def _published():
    lines = [line for line in DATA.read_text().splitlines() if not line.startswith("#")]
    return [(int(r["runs"]), int(r["k"]), r["name"], int(r["wlp_from"]), [int(x) for x in r["wlp"].split()])
            for r in csv.DictReader(lines)]


@pytest.mark.parametrize(("runs", "k", "name", "start", "published"), _published(),
                         ids=lambda v: str(v) if not isinstance(v, list) else "")
def test_the_design_matches_chen_sun_wu_and_xu(runs, k, name, start, published):
    """Each published minimum-aberration design (rank 1), 16-4096 runs: the design for k factors in
    that many runs has its word-length pattern (and nothing shorter than where the paper starts)."""
    frac = fractional.fraction(k, runs=runs)
    a = [0, 0, *frac.word_length_pattern] + [0] * len(published)  # A1, A2, A3, ...
    assert len(frac.matrix) == runs and frac.search == "catalogue"
    assert a[start - 1:start - 1 + len(published)] == published
    assert not any(a[: start - 1])


def _entries():
    return sorted(fractional.catalogue().values(), key=lambda e: (e.runs, e.k))


def test_every_catalogue_design_has_its_published_word_length_pattern_and_resolution():
    """All 548 lines: the pattern recomputed from the generators equals the published one (FrF2's catlg),
    and the resolution is that of the first non-zero count."""
    for e in _entries():
        b = fractional._log2(e.runs)
        assert len(e.generators) == e.k - b and len(set(e.generators)) == len(e.generators)
        assert all(1 < g < e.runs and bin(g).count("1") >= 2 for g in e.generators)
        a = fractional.wlp_of([1 << i for i in range(b)] + list(e.generators), b)
        assert a[:2] == [0, 0] and a[2:2 + len(e.wlp)] == list(e.wlp), e.name
        assert next(j + 1 for j, x in enumerate(a) if x) == e.resolution, e.name


def test_the_macwilliams_word_length_pattern_is_the_direct_count_of_the_words():
    checked = 0
    for e in _entries():
        b, p = fractional._log2(e.runs), e.k - fractional._log2(e.runs)
        if p > 10:
            continue
        columns = [1 << i for i in range(b)] + list(e.generators)
        lengths = [bin(w).count("1") for w in fractional._all_words(columns, b)]
        assert len(lengths) == 2 ** p - 1
        assert fractional.wlp_of(columns, b) == [lengths.count(j) for j in range(1, e.k + 1)], e.name
        checked += 1
    assert checked > 90


@pytest.mark.parametrize(("k", "runs"), [(9, 64), (12, 64), (15, 64), (10, 128), (15, 128), (20, 32)])
def test_the_matrix_is_the_generators_products(k, runs):
    frac = fractional.fraction(k, runs=runs)
    X = frac.matrix
    assert X.shape == (runs, k) and len({tuple(r) for r in X}) == runs
    assert np.allclose(X.T @ X, runs * np.eye(k))
    for g in frac.generators:
        left, right = (s.strip() for s in g.split("="))
        letters = fractional.factor_letters(k)
        assert np.array_equal(X[:, letters.index(left)], np.prod(X[:, [letters.index(c) for c in right]], axis=1))
    assert _resolution_of(X) == min(frac.resolution, 5)


def _resolution_of(matrix: np.ndarray, up_to: int = 4) -> int:
    """The resolution read off the design itself: the shortest product of columns that is constant."""
    k = matrix.shape[1]
    for length in range(1, up_to + 1):
        for combo in itertools.combinations(range(k), length):
            if abs(np.prod(matrix[:, combo], axis=1).sum()) == len(matrix):
                return length
    return up_to + 1


@pytest.mark.parametrize("k", [9, 10, 11, 16, 21, 25, 26, 31, 32])
def test_up_to_half_the_runs_in_factors_reach_resolution_iv_in_64_runs(k):
    """Before: 10-11 factors in 64 runs came out at resolution III and 21-25 were refused."""
    frac = fractional.fraction(k, runs=64)
    assert frac.resolution >= 4 and frac.search == "catalogue" and _resolution_of(frac.matrix, 3) >= 4
    assert len(frac.matrix) == 64 and len({tuple(r) for r in frac.matrix}) == 64


@pytest.mark.parametrize("k", [33, 40, 48, 50, 64])
def test_up_to_half_the_runs_in_factors_reach_resolution_iv_in_128_runs(k):
    frac = fractional.fraction(k, runs=128)
    assert frac.resolution == 4 and frac.search == "catalogue"
    assert np.allclose(frac.matrix.T @ frac.matrix, 128 * np.eye(k))


@pytest.mark.parametrize("runs", [16, 32, 64, 128])
def test_half_the_runs_in_factors_is_the_even_design(runs):
    n = runs // 2
    frac = fractional.fraction(n, runs=runs)
    a = frac.word_length_pattern  # A3, A4, ...
    assert a[1] == math.comb(n, 3) // 4 and not any(a[0::2])  # only even words, C(n,3)/4 of length 4
    assert fractional.fraction(n + 1, runs=runs).resolution == 3  # and no more factors fit at IV


@pytest.mark.parametrize(("k", "resolution", "runs"), [
    (12, 4, 32), (16, 4, 32), (17, 4, 64), (21, 4, 64), (25, 4, 64), (32, 4, 64), (33, 4, 128), (50, 4, 128),
    (64, 4, 128), (9, 3, 16), (15, 3, 16), (16, 3, 32), (40, 3, 64), (64, 3, 128)])
def test_resolution_asks_for_the_smallest_run_size_that_holds_it(k, resolution, runs):
    """Resolution IV holds up to N/2 factors in N runs, III up to N - 1 (Box & Hunter 1961)."""
    frac = fractional.fraction(k, resolution=resolution)
    assert len(frac.matrix) == runs and frac.resolution >= resolution


@pytest.mark.parametrize("resolution", [5, 6])
@pytest.mark.parametrize("k", range(6, 18))
def test_resolution_five_and_six_take_the_smallest_published_run_size(k, resolution):
    """The smallest run size whose published minimum-aberration design (Chen, Sun & Wu; Xu) has no
    word shorter than ``resolution``: e.g. V for 6 factors in 32 runs, 8 in 64, 11 in 128, 17 in 256."""
    runs = min(n for n, kk, _, start, wlp in _published()
               if kk == k and not any(([0] * (start - 1) + wlp)[: resolution - 1]))
    frac = fractional.fraction(k, resolution=resolution)
    assert len(frac.matrix) == runs and frac.resolution >= resolution and frac.search == "catalogue"


def test_with_runs_the_highest_resolution_comes_first():
    """Chen, Sun & Wu (1993) Table 4: 11 factors in 64 runs reach IV (11-5.1, A4 = 4), not III."""
    frac = fractional.fraction(11, runs=64)
    assert frac.resolution == 4 and frac.word_length_pattern[:2] == [0, 4]


def test_letters_follow_frf2_beyond_25_factors():
    """FrF2 (Groemping 2014): A..H, J..Z, then a..h, j..z up to 50 factors; F1, F2, ... beyond."""
    assert fractional.factor_letters(25)[-1] == "Z" and "I" not in fractional.factor_letters(25)
    letters = fractional.factor_letters(50)
    assert letters[25:27] == ["a", "b"] and letters[-1] == "z" and "i" not in letters and len(set(letters)) == 50
    assert fractional.factor_letters(51)[:2] == ["F1", "F2"] and fractional.factor_letters(51)[-1] == "F51"
    frac = fractional.fraction(30, runs=64)
    assert frac.generators[-1].startswith("e = ") and all(len(w) == 4 for w in frac.words[:10])
    assert fractional.letter_legend([f"X{i}" for i in range(30)])["e"] == "X29"
    chains = fractional.aliases(frac, [f"X{i}" for i in range(30)])
    assert chains[0].startswith("A = BC") and all(len(w) == 3 for w in chains[0].split(" = ")[1:])  # IV
    big = fractional.fraction(60, runs=128)
    assert big.generators[0].startswith("F8 = F") and ":" in big.generators[0]
    assert all(len(w.split(":")) == 4 for w in big.words)


def test_aliases_of_a_resolution_v_half_fraction():
    frac = fractional.fraction(5, resolution=5)
    assert frac.generators == ["E = ABCD"]
    assert fractional.aliases(frac, list("abcde"))[5:7] == ["AB = CDE", "AC = BDE"]


def test_the_defining_relation_lists_the_shortest_words_when_too_long_to_list():
    frac = fractional.fraction(32, runs=64)
    assert not frac.words_complete and len(frac.words) == 1240
    assert "1,240 words of length 4 only" in frac.defining_relation and "2^26 - 1" in frac.defining_relation
    small = fractional.fraction(7, runs=16)
    assert small.words_complete and small.defining_relation == "I = " + " = ".join(small.words)
    assert len(small.words) == 7


def test_the_design_says_which_catalogue_it_comes_from():
    frac = fractional.fraction(21, runs=64)
    assert frac.search == "catalogue" and "Chen, Sun & Wu (1993)" in frac.search_note
    assert "minimum-aberration design" in frac.search_note
    assert "Block & Mee (2005)" in fractional.fraction(40, runs=128).search_note
    assert "Xu (2009)" in fractional.fraction(15, runs=128).search_note
    good = fractional.fraction(40, runs=256)
    assert good.search == "catalogue" and "minimum aberration is not established" in good.search_note


def test_a_search_outside_the_catalogue_says_it_is_greedy():
    frac = fractional.fraction(100, resolution=4)
    assert len(frac.matrix) == 256 and frac.resolution == 4 and frac.search == "greedy"
    assert "not necessarily the minimum-aberration design" in frac.search_note
    assert np.allclose(frac.matrix.T @ frac.matrix, 256 * np.eye(100))


def test_every_design_up_to_50_factors_in_up_to_128_runs_is_generated_with_its_aliases():
    """The Design page generates them on demand: the design, its defining relation and aliases (the time
    it takes is measured by bench/bench_fractions.py, target under 1 s each)."""
    for (runs, k) in [(64, k) for k in range(7, 51)] + [(128, k) for k in range(8, 51)]:
        frac = fractional.fraction(k, runs=runs)
        assert frac.matrix.shape == (runs, k)
        assert np.allclose(frac.matrix.T @ frac.matrix, runs * np.eye(k))  # orthogonal columns
        assert frac.defining_relation and fractional.aliases(frac, [str(i) for i in range(k)]) is not None


def test_the_design_says_how_its_generators_were_chosen():
    from doe.generators import generate
    from doe.study import Study

    study = Study.from_dict({"name": "screen", "factors": [{"name": f"X{i + 1}", "low": 0, "high": 1} for i in range(10)],
                             "responses": [{"name": "y", "goal": "maximize", "lower": 1}]})
    design = generate(study, "fractional", runs=64, seed=1)
    assert design.info["resolution"] == 4 and design.info["word length pattern"].startswith("[0, 2, ")
    assert "Chen, Sun & Wu (1993)" in design.info["generator search"]
    assert not any("greedy" in w or "catalogue" in w for w in design.warnings)
    wide = generate(Study.from_dict({**study.to_dict(), "factors": [
        {"name": f"X{i + 1}", "low": 0, "high": 1} for i in range(30)]}), "fractional", runs=64, seed=1)
    assert wide.info["resolution"] == 4 and "a = X26" in wide.info["letters"]
    assert "words of length 4 only" in wide.info["defining relation"]
