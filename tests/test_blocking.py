"""Blocking a 2^k full factorial as published (issue 16): Montgomery's confounding schemes, checked against
an exhaustive search, and every main effect and two-factor interaction orthogonal to blocks where possible.

Source: D. C. Montgomery, Design and Analysis of Experiments (Wiley, 8th ed. 2013), Table 7.8
"Suggested blocking arrangements for the 2^k factorial design".
"""

from itertools import combinations, product

import numpy as np
import pytest

from doe import blocking
from doe.generators import generate
from doe.study import Study

#: Montgomery, Table 7.8, for 2, 4 and 8 blocks: (k, blocks) -> the interactions confounded with blocks.
PUBLISHED = {
    (3, 2): {"ABC"}, (3, 4): {"AB", "AC", "BC"},
    (4, 2): {"ABCD"}, (4, 4): {"ABC", "ACD", "BD"}, (4, 8): {"AB", "BC", "CD", "AC", "BD", "AD", "ABCD"},
    (5, 2): {"ABCDE"}, (5, 4): {"ABC", "CDE", "ABDE"}, (5, 8): {"ABE", "BCE", "CDE", "AC", "ABCD", "BD", "ADE"},
    (6, 2): {"ABCDEF"}, (6, 4): {"ABCF", "CDEF", "ABDE"},
    (6, 8): {"ABEF", "ABCD", "ACE", "BCF", "BDE", "CDEF", "ADF"},
    (7, 2): {"ABCDEFG"}, (7, 4): {"ABCFG", "CDEFG", "ABDE"},
    (7, 8): {"ABC", "DEF", "AFG", "ABCDEF", "BCFG", "ADEG", "BCDEG"},
}


@pytest.mark.parametrize(("k", "blocks"), sorted(PUBLISHED))
def test_the_confounded_interactions_are_the_published_ones(k, blocks):
    assert set(blocking.confounded(k, blocks)) == PUBLISHED[(k, blocks)]


def _best_shortest_word(k: int, q: int) -> int:
    """The longest shortest confounded effect any 2^k in 2^q blocks can have (exhaustive search)."""
    best = 0
    for gens in combinations(range(1, 2**k), q):
        words = []
        for r in range(1, q + 1):
            for combo in combinations(gens, r):
                m = 0
                for g in combo:
                    m ^= g
                words.append(m)
        if 0 in words:  # dependent generators: fewer than 2^q blocks
            continue
        best = max(best, min(bin(w).count("1") for w in words))
    return best


@pytest.mark.parametrize(("k", "blocks"), sorted(PUBLISHED))
def test_no_main_effect_and_no_two_factor_interaction_where_a_scheme_avoids_them(k, blocks):
    shortest = min(len(w) for w in blocking.confounded(k, blocks))
    q = blocks.bit_length() - 1
    assert shortest >= 2  # never a main effect
    assert shortest >= min(3, _best_shortest_word(k, q))  # 2FIs clear whenever any scheme keeps them clear


@pytest.mark.parametrize("k", range(3, 8))
def test_every_scheme_in_the_table_confounds_no_main_effect(k):
    for blocks in blocking.SCHEMES[k]:
        words = blocking.confounded(k, blocks)
        assert len(words) == blocks - 1 and min(len(w) for w in words) >= 2, (k, blocks)


def _study(k: int) -> Study:
    return Study.from_dict({"name": "blocked", "factors": [{"name": f"X{i + 1}", "low": 0, "high": 10}
                                                          for i in range(k)],
                            "responses": [{"name": "y", "goal": "maximize", "lower": 1}]})


@pytest.mark.parametrize(("k", "blocks"), [(6, 4), (6, 8), (7, 8), (5, 4), (4, 2)])
def test_generated_blocks_are_orthogonal_to_main_effects_and_two_factor_interactions(k, blocks):
    """Today's issue: a 2^6 in 4 or 8 blocks confounded E and its interactions with blocks."""
    design = generate(_study(k), "full", blocks=blocks, seed=3)
    table = design.table
    x = np.column_stack([np.where(table[f"X{i + 1}"] > 5, 1.0, -1.0) for i in range(k)])
    block = table["Block"].to_numpy()
    assert sorted(np.unique(block, return_counts=True)[1]) == [2**k // blocks] * blocks
    columns = [x[:, i] for i in range(k)] + [x[:, i] * x[:, j] for i, j in combinations(range(k), 2)]
    for col in columns:
        for b in np.unique(block):  # a column orthogonal to blocks sums to zero within every block
            assert col[block == b].sum() == 0
    assert "confounded with blocks" in design.info["blocking"] and "Table 7.8" in design.info["blocking"]


def test_the_blocks_confound_exactly_the_published_effects():
    k, blocks = 6, 8
    design = generate(_study(k), "full", blocks=blocks, seed=3)
    x = np.column_stack([np.where(design.table[f"X{i + 1}"] > 5, 1.0, -1.0) for i in range(k)])
    block = design.table["Block"].to_numpy()
    confounded = set()
    for bits in product((0, 1), repeat=k):
        if not any(bits):
            continue
        col = np.prod(x[:, [i for i in range(k) if bits[i]]], axis=1)
        if all(abs(col[block == b].sum()) == len(col[block == b]) for b in np.unique(block)):
            confounded.add("".join("ABCDEFG"[i] for i in range(k) if bits[i]))
    assert confounded == PUBLISHED[(k, blocks)]
