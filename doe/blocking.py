"""Blocking a two-level full factorial by confounding chosen interactions with blocks.

The schemes are those of Montgomery, *Design and Analysis of Experiments* (Wiley), Table 7.8
"Suggested blocking arrangements for the 2^k factorial design" (k = 3 to 7; 2 to 64 blocks):
the effects whose signs define the blocks, and with them every generalised interaction
(product) of those effects is confounded with blocks. Each scheme confounds no main effect, and
no two-factor interaction where a scheme without one exists (tests/test_blocking.py checks both
against an exhaustive search).

Factors are lettered A, B, C ... in the study's order.

>>> confounded(4, 4)
['BD', 'ABC', 'ACD']
>>> block_numbers([[-1, -1, -1], [1, 1, 1], [1, -1, -1], [-1, 1, 1]], 2)
[0, 1, 1, 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

#: Montgomery, Design and Analysis of Experiments, Table 7.8: {k: {blocks: effects chosen to generate
#: the blocks}}.
SCHEMES: dict[int, dict[int, tuple[str, ...]]] = {
    3: {2: ("ABC",), 4: ("AB", "AC")},
    4: {2: ("ABCD",), 4: ("ABC", "ACD"), 8: ("AB", "BC", "CD")},
    5: {2: ("ABCDE",), 4: ("ABC", "CDE"), 8: ("ABE", "BCE", "CDE"), 16: ("AB", "AC", "CD", "DE")},
    6: {2: ("ABCDEF",), 4: ("ABCF", "CDEF"), 8: ("ABEF", "ABCD", "ACE"), 16: ("ABF", "ACF", "BDF", "DEF"),
        32: ("AB", "BC", "CD", "DE", "EF")},
    7: {2: ("ABCDEFG",), 4: ("ABCFG", "CDEFG"), 8: ("ABC", "DEF", "AFG"), 16: ("ABCD", "EFG", "CDE", "ADG"),
        32: ("ABG", "BCG", "CDG", "DEG", "EFG"), 64: ("AB", "BC", "CD", "DE", "EF", "FG")},
}
LETTERS = "ABCDEFG"


def _mask(word: str) -> int:
    return sum(1 << LETTERS.index(ch) for ch in word)


def _word(mask: int) -> str:
    return "".join(ch for i, ch in enumerate(LETTERS) if mask >> i & 1)


def has_scheme(k: int, blocks: int) -> bool:
    """Whether the table has a scheme for ``2^k`` in ``blocks`` blocks."""
    return blocks in SCHEMES.get(k, {})


def confounded(k: int, blocks: int) -> list[str]:
    """Every effect confounded with blocks: the generators and all their products, shortest first."""
    gens = [_mask(w) for w in SCHEMES[k][blocks]]
    words = set()
    for r in range(1, len(gens) + 1):
        for combo in combinations(gens, r):
            m = 0
            for g in combo:
                m ^= g
            words.add(m)
    return sorted((_word(m) for m in words), key=lambda w: (len(w), w))


def block_numbers(signs: Sequence[Sequence[float]] | np.ndarray, blocks: int) -> list[int]:
    """The block (0 .. blocks-1) of each run of a 2^k factorial given as -1/+1 rows (k = row length).

    A run's block is read off the signs of the generating effects: generator i contributes 2^i when
    its product of signs is +1.
    """
    x = np.asarray(signs, dtype=float)
    k = x.shape[1]
    out = np.zeros(len(x), dtype=int)
    for i, word in enumerate(SCHEMES[k][blocks]):
        cols = [LETTERS.index(ch) for ch in word]
        out += (np.prod(x[:, cols], axis=1) > 0).astype(int) << i
    return out.tolist()


def describe(k: int, blocks: int, names: Sequence[str]) -> str:
    """The blocking in words: what is confounded with blocks, with the factor letters explained."""
    legend = ", ".join(f"{LETTERS[i]} = {n}" for i, n in enumerate(names[:k]))
    return (f"{blocks} blocks; confounded with blocks: {', '.join(confounded(k, blocks))} "
            f"(Montgomery, Design and Analysis of Experiments, Table 7.8; {legend})")
