"""Regular two-level fractional factorials: generators, defining relation, aliases.

The run size for a requested resolution comes from ``pydoe.fracfact_by_res``
(smallest 2^b). Within that run size we search the generator words for a
minimum-aberration design (Fries & Hunter 1980): highest resolution, then the
fewest shortest words in the defining relation. Factors are lettered A, B, C, ...
in study order (I is skipped, as in Box, Hunter & Hunter).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from doe.errors import DesignError

LETTERS = [c for c in "ABCDEFGHJKLMNOPQRSTUVWXYZ"]
_MAX_COMBINATIONS = 70_000


def load_pydoe():
    """pydoe, imported on first use (here and in doe.generators): importing it loads scipy.stats
    (about a second), which the Design page does not need before a design is generated."""
    import pydoe

    return pydoe


@dataclass
class Fraction:
    """A regular 2^(k-p) fraction: coded matrix (standard order) and its structure."""

    matrix: np.ndarray          # runs x k, entries -1/+1
    base: int                   # b: the design has 2^b runs
    generators: list[str]       # e.g. ["E = ABCD"]
    words: list[str]            # defining relation words, e.g. ["ABCDE"]
    resolution: int             # length of the shortest word (k+1 notionally for a full factorial)
    search: str = "exhaustive"  # how the generators were chosen: "exhaustive" or "greedy"
    search_note: str = ""       # for a greedy search: what is and is not guaranteed

    @property
    def word_length_pattern(self) -> list[int]:
        """Counts of words of length 3, 4, 5, ... (aberration)."""
        k = self.matrix.shape[1]
        return [sum(len(w) == n for w in self.words) for n in range(3, k + 1)]


def _word(bits: int, letters: list[str]) -> str:
    return "".join(letters[i] for i in range(len(letters)) if bits >> i & 1)


def _relation(gen_bits: list[int], base: int) -> list[int]:
    """All words of the defining relation, as bit masks over all k letters."""
    words = []
    for i, g in enumerate(gen_bits):
        words.append(g | (1 << (base + i)))
    out = []
    for r in range(1, len(words) + 1):
        for combo in itertools.combinations(words, r):
            w = 0
            for c in combo:
                w ^= c
            out.append(w)
    return out


def _pattern(words: list[int], k: int) -> tuple[int, ...]:
    lengths = [bin(w).count("1") for w in words]
    return tuple(sum(1 for L in lengths if L == n) for n in range(1, k + 1))


def fraction(k: int, resolution: int | None = None, runs: int | None = None) -> Fraction:
    """Minimum-aberration 2^(k-p) fraction of the requested resolution (or run count)."""
    if k < 2:
        raise DesignError("A fractional factorial needs at least 2 two-level factors.")
    if k > len(LETTERS):
        raise DesignError(f"At most {len(LETTERS)} factors are supported in a fractional factorial.")
    if runs is not None:
        base = int(round(math.log2(runs)))
        if 2 ** base != runs or base < 2:
            raise DesignError(f"A regular fraction has a power of 2 runs; {runs} is not.")
        if runs < k + 1:
            raise DesignError(f"{runs} runs cannot hold {k} factors; use at least {2 ** math.ceil(math.log2(k + 1))}.")
    else:
        resolution = resolution or 4
        if resolution < 3:
            raise DesignError("Resolution must be 3 or more (III, IV, V, ...).")
        if resolution == 3:  # 2^b runs hold up to 2^b - 1 factors at resolution III
            base = math.ceil(math.log2(k + 1))
        elif resolution == 4:  # ... and up to 2^(b-1) at resolution IV (Box & Hunter 1961)
            base = math.ceil(math.log2(k)) + 1
        else:
            try:
                base = int(round(math.log2(load_pydoe().fracfact_by_res(k, resolution).shape[0])))
            except ValueError as exc:
                raise DesignError(f"No regular fraction for {k} factors at resolution {resolution}: {exc}.") from None
    base = min(base, k)
    p = k - base
    letters = LETTERS[:k]
    if p == 0:
        return Fraction(_full(k), k, [], [], k + 1)
    candidates = [m for m in range(1, 2 ** base) if bin(m).count("1") >= 2]
    best: tuple | None = None
    n_combos = math.comb(len(candidates), p)
    if n_combos <= _MAX_COMBINATIONS:
        for combo in itertools.combinations(candidates, p):
            pat = _pattern(_relation(list(combo), base), k)
            if best is None or pat < best[0]:
                best = (pat, list(combo))
    else:  # too many combinations to search: greedy, saying so
        chosen = _greedy(candidates, base, k, p, resolution)
        best = (_pattern(_relation(chosen, base), k), chosen)
    gen_bits = best[1]
    matrix = _full(base)
    cols = [matrix[:, i] for i in range(base)]
    for g in gen_bits:
        col = np.ones(2 ** base)
        for i in range(base):
            if g >> i & 1:
                col = col * matrix[:, i]
        cols.append(col)
    words = sorted((_word(w, letters) for w in _relation(gen_bits, base)), key=lambda w: (len(w), w))
    generators = [f"{letters[base + i]} = {_word(g, letters)}" for i, g in enumerate(gen_bits)]
    res = min(len(w) for w in words)
    greedy = n_combos > _MAX_COMBINATIONS
    if resolution and res < resolution and runs is None:
        if greedy:
            raise DesignError(f"A greedy search found no resolution {_roman(resolution)} fraction for {k} factors in "
                              f"{2 ** base} runs (all {n_combos:,} generator combinations are too many to search). "
                              "Ask for more runs, or for resolution IV.")
        raise DesignError(f"No regular fraction for {k} factors reaches resolution {resolution}.")
    if not greedy:
        return Fraction(np.column_stack(cols), base, generators, words, res)
    note = (f"The generators were chosen by a greedy search ({n_combos:,} generator combinations are too many "
            f"to search them all): the design has resolution {_roman(res)}, but it is not necessarily the "
            "minimum-aberration design of the published catalogues.")
    return Fraction(np.column_stack(cols), base, generators, words, res, "greedy", note)


def _roman(n: int) -> str:
    return {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(n, str(n))


def _greedy(candidates: list[int], base: int, k: int, p: int, resolution: int | None) -> list[int]:
    """Generators by a greedy search: resolution V or more if asked for and found, else resolution IV
    whenever 2^base runs hold it (generators that are products of an odd number of basic factors, at
    least three: every word of the defining relation then has even length, so at least 4), else III."""
    targets = [resolution] if resolution and resolution >= 5 else []
    if not resolution and 2 ** (base - 1) >= k:
        targets = [5]
    for target in targets:  # highest-order words first, each kept if the resolution still holds
        chosen: list[int] = []
        for m in sorted(candidates, key=lambda m: -bin(m).count("1")):
            if len(chosen) == p:
                break
            if min(bin(w).count("1") for w in _relation([*chosen, m], base)) >= target:
                chosen.append(m)
        if len(chosen) == p:
            return chosen
    if 2 ** (base - 1) >= k:
        odd = [m for m in candidates if bin(m).count("1") % 2 == 1]
        return sorted(odd, key=lambda m: (-bin(m).count("1"), m))[:p]
    chosen = []
    for m in sorted(candidates, key=lambda m: -bin(m).count("1")):
        if len(chosen) == p:
            break
        if min(bin(w).count("1") for w in _relation([*chosen, m], base)) >= 3:
            chosen.append(m)
    return (chosen + [m for m in candidates if m not in chosen])[:p]


def _full(k: int) -> np.ndarray:
    """2^k full factorial in standard (Yates) order, first factor changing fastest."""
    return load_pydoe().ff2n(k)[:, ::-1] if k > 1 else load_pydoe().ff2n(1)


def aliases(frac: Fraction, names: list[str], max_order: int = 2, show_order: int = 3) -> list[str]:
    """Alias chains of main effects and interactions up to ``max_order``.

    Each chain lists the effect and its aliases up to ``show_order`` factors,
    e.g. ``A = BCE`` or ``AB = CE``; returned with a legend-friendly letter form.
    """
    k = frac.matrix.shape[1]
    letters = LETTERS[:k]
    # only words of up to max_order + show_order letters alias an effect shown here with one shown
    word_bits = [sum(1 << letters.index(ch) for ch in w) for w in frac.words if len(w) <= max_order + show_order]
    seen: set[int] = set()
    chains = []
    for order in range(1, max_order + 1):
        for combo in itertools.combinations(range(k), order):
            e = sum(1 << i for i in combo)
            if e in seen:
                continue
            group = [e] + [e ^ w for w in word_bits]
            seen.update(group)
            shown = [g for g in group[1:] if bin(g).count("1") <= show_order]
            shown.sort(key=lambda g: (bin(g).count("1"), _word(g, letters)))
            chain = " = ".join([_word(e, letters)] + [_word(g, letters) for g in shown])
            chains.append(chain)
    return chains


def letter_legend(names: list[str]) -> dict[str, str]:
    """Letter -> factor name, for reading generators and aliases."""
    return {LETTERS[i]: n for i, n in enumerate(names)}
