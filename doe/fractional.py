"""Regular two-level fractional factorials: generators, defining relation, aliases.

The generators come from the published catalogue of minimum-aberration designs (doe._fraction_catalogue:
Chen, Sun & Wu 1993 for 4-64 runs; Xu 2009, Block & Mee 2005 and Mee 2009 for 128 runs; Xu 2009 and
Ryan & Bulutoglu 2010 for 256-4096 runs), as collected in the R package FrF2 (Groemping 2014).
Minimum aberration (Fries & Hunter 1980): highest resolution, then the fewest shortest words in the
defining relation. With ``runs``, the design is the catalogue's best for that run size (so the highest
resolution it allows); with ``resolution``, the smallest run size whose best design reaches it.
Outside the catalogue (more than 128 runs and more factors than it lists) the generators are searched
for: exhaustively when there are few combinations, else greedily -- and the result says so.

Factors are lettered as in FrF2: A..H, J..Z (I is skipped, as in Box, Hunter & Hunter), then a..h, j..z,
for up to 50 factors; with more than 50, F1, F2, ... with words written F1:F2:F5.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType

import numpy as np

from doe.errors import DesignError

LETTERS = [c for c in "ABCDEFGHJKLMNOPQRSTUVWXYZ"]
LOWER_LETTERS = [c.lower() for c in LETTERS]
_MAX_COMBINATIONS = 70_000
_MAX_LISTED_P = 12  # the defining relation is listed in full up to 2^12 - 1 words


def load_pydoe() -> ModuleType:
    """pydoe, imported on first use (here and in doe.generators): importing it loads scipy.stats,
    which the Design page does not need before a design is generated."""
    import pydoe

    module: ModuleType = pydoe
    return module


def factor_letters(k: int) -> list[str]:
    """Letters of k factors, FrF2's convention (Groemping 2014): A..H, J..Z, then a..h, j..z (up to
    50 factors); F1, F2, ..., Fk for more than 50."""
    if k <= 2 * len(LETTERS):
        return (LETTERS + LOWER_LETTERS)[:k]
    return [f"F{i + 1}" for i in range(k)]


@dataclass
class Fraction:
    """A regular 2^(k-p) fraction: coded matrix (standard order) and its structure."""

    matrix: np.ndarray          # runs x k, entries -1/+1
    base: int                   # b: the design has 2^b runs
    generators: list[str]       # e.g. ["E = ABCD"]
    words: list[str]            # defining relation words (all, or the shortest: see words_complete)
    resolution: int             # length of the shortest word (k+1 notionally for a full factorial)
    search: str = "exhaustive"  # "catalogue", "exhaustive" or "greedy"
    search_note: str = ""       # where the generators come from; for a greedy search what is not guaranteed
    columns: list[int] = field(default_factory=list)  # each factor's column as a mask over the base factors
    wlp: list[int] = field(default_factory=list)      # A3, A4, ..., Ak
    words_complete: bool = True  # False: ``words`` holds only the words of the shortest length

    @property
    def word_length_pattern(self) -> list[int]:
        """Counts of words of length 3, 4, 5, ... k (aberration)."""
        return list(self.wlp)

    @property
    def defining_relation(self) -> str:
        """``I = ABCE = ...``; for a relation too long to list, its shortest words and the count."""
        if not self.words:
            return ""
        text = "I = " + " = ".join(self.words)
        if not self.words_complete:
            p = len(self.columns) - self.base
            text += (f" (the {len(self.words):,} words of length {self.resolution} only; the relation has "
                     f"2^{p} - 1 words, word-length pattern {self.wlp})")
        return text


# --- the catalogue -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CatalogueEntry:
    """One design of doe._fraction_catalogue."""

    runs: int
    k: int
    name: str
    resolution: int
    status: str                 # "MA" or "good"
    source: str                 # key of doe._fraction_catalogue.SOURCES
    generators: tuple[int, ...]  # Yates column numbers of the added factors
    wlp: tuple[int, ...]        # published A3, A4, ... (possibly truncated)


@lru_cache(maxsize=1)
def catalogue() -> dict[tuple[int, int], CatalogueEntry]:
    """(runs, k) -> the catalogue's best design (parsed once)."""
    from doe._fraction_catalogue import TABLE

    out = {}
    for line in TABLE.splitlines():
        n, k, name, res, status, source, gen, wlp = line.split()
        out[(int(n), int(k))] = CatalogueEntry(
            int(n), int(k), name, int(res), status, source, tuple(int(g) for g in gen.split(",")),
            tuple(int(w) for w in wlp.split(",")) if wlp != "-" else ())
    return out


def _catalogue_note(entry: CatalogueEntry) -> str:
    from doe._fraction_catalogue import SOURCES

    what = ("the minimum-aberration design" if entry.status == "MA"
            else "the best published design (minimum aberration is not established)")
    return (f"Generators from the published catalogue: {what} 2^({entry.k}-{entry.k - _log2(entry.runs)}) "
            f"no. {entry.name} of {SOURCES[entry.source]}, as collected in the R package FrF2 (Groemping 2014).")


def _log2(n: int) -> int:
    return int(n).bit_length() - 1


# --- word-length pattern, resolution, words ----------------------------------------------------------

def wlp_of(columns: list[int], base: int) -> list[int]:
    """Word-length pattern A1..Ak of the regular design with these columns (masks over ``base`` basic
    factors), by the MacWilliams identity from the 2^base codewords of the row space (MacWilliams &
    Sloane 1977, ch. 5; Xu 2009 uses the same route): A_j = 2^-b sum_w B_w P_j(w; k)."""
    k = len(columns)
    u = np.arange(2 ** base, dtype=np.int64)[:, None] & np.asarray(columns, dtype=np.int64)[None, :]
    parity = np.zeros_like(u)
    for i in range(base):
        parity ^= (u >> i) & 1
    weights = np.bincount(parity.sum(axis=1), minlength=k + 1)
    out = []
    for j in range(1, k + 1):
        total = 0
        for w, bw in enumerate(weights):
            if bw:
                total += int(bw) * sum((-1) ** s * math.comb(w, s) * math.comb(k - w, j - s)
                                       for s in range(max(0, j - (k - w)), min(w, j) + 1))
        out.append(total >> base)
    return out


def _words_of_length(columns: list[int], length: int) -> list[int]:
    """All words of the defining relation with ``length`` letters (bit masks over the k factors):
    sets of columns whose product is the identity, found by meeting in the middle."""
    k = len(columns)
    half = length // 2
    by_xor: dict[int, list[int]] = {}
    for combo in itertools.combinations(range(k), half):
        x = 0
        for i in combo:
            x ^= columns[i]
        by_xor.setdefault(x, []).append(sum(1 << i for i in combo))
    found = set()
    for combo in itertools.combinations(range(k), length - half):
        x, m = 0, 0
        for i in combo:
            x ^= columns[i]
            m |= 1 << i
        for other in by_xor.get(x, ()):
            if not other & m:
                found.add(other | m)
    return sorted(found)


def _all_words(columns: list[int], base: int) -> list[int]:
    """The whole defining relation (2^p - 1 words), from the p generator words."""
    gens = [columns[base + i] | (1 << (base + i)) for i in range(len(columns) - base)]
    words = [0]
    for g in gens:
        words += [w ^ g for w in words]
    return words[1:]


def _pattern(columns: list[int], base: int) -> tuple[int, ...]:
    return tuple(wlp_of(columns, base))


# --- the design --------------------------------------------------------------------------------------

def fraction(k: int, resolution: int | None = None, runs: int | None = None) -> Fraction:
    """Minimum-aberration 2^(k-p) fraction of the requested resolution (or run count).

    Parameters
    ----------
    k : int
        Number of two-level factors.
    resolution : int, optional
        Smallest acceptable resolution (default IV when ``runs`` is not given): the design is the
        catalogue's best in the smallest run size whose best design reaches it.
    runs : int, optional
        Run size (a power of 2): the design is the catalogue's best for it, so it has the highest
        resolution that many runs allow, then minimum aberration.

    Returns
    -------
    Fraction
        ``search`` says where the generators come from ("catalogue", "exhaustive" or "greedy").
    """
    if k < 2:
        raise DesignError("A fractional factorial needs at least 2 two-level factors.")
    if runs is not None:
        base = _log2(runs) if runs > 0 else -1
        if runs <= 0 or 2 ** base != runs or base < 2:
            raise DesignError(f"A regular fraction has a power of 2 runs; {runs} is not.")
        if runs < k + 1:
            raise DesignError(f"{runs} runs cannot hold {k} factors; use at least {2 ** math.ceil(math.log2(k + 1))}.")
        resolution = None
    else:
        resolution = resolution or 4
        if resolution < 3:
            raise DesignError("Resolution must be 3 or more (III, IV, V, ...).")
        base = _base_for_resolution(k, resolution)
    base = min(base, k)
    if base == k:
        return _make([], k, k, "exhaustive", "")
    entry = catalogue().get((2 ** base, k))
    if entry is not None:
        return _make(list(entry.generators), base, k, "catalogue", _catalogue_note(entry))
    return _searched(k, base, resolution)


def _base_for_resolution(k: int, resolution: int) -> int:
    """log2 of the smallest run size whose best design has at least ``resolution`` (the catalogue's,
    while it lists k factors; beyond it Box & Hunter's bounds for III and IV, pydoe's for V+)."""
    cat = catalogue()
    for b in range(max(2, math.ceil(math.log2(k + 1))), k + 1):
        if b == k:
            return b
        entry = cat.get((2 ** b, k))
        if entry is None:
            break
        if entry.resolution >= resolution:
            return b
    if resolution == 3:  # 2^b runs hold up to 2^b - 1 factors at resolution III
        return math.ceil(math.log2(k + 1))
    if resolution == 4:  # ... and up to 2^(b-1) at resolution IV (Box & Hunter 1961)
        return math.ceil(math.log2(k)) + 1
    try:
        return _log2(load_pydoe().fracfact_by_res(k, resolution).shape[0])
    except ValueError as exc:
        raise DesignError(f"No regular fraction for {k} factors at resolution {resolution}: {exc}.") from None


def _searched(k: int, base: int, resolution: int | None) -> Fraction:
    """A design outside the catalogue: exhaustive search when the generator combinations are few,
    else a greedy search that says what it does not guarantee."""
    p = k - base
    candidates = [m for m in range(1, 2 ** base) if bin(m).count("1") >= 2]
    n_combos = math.comb(len(candidates), p)
    basic = [1 << i for i in range(base)]
    if n_combos <= _MAX_COMBINATIONS:
        best = min(itertools.combinations(candidates, p), key=lambda c: _pattern(basic + list(c), base))
        gens, search, note = list(best), "exhaustive", ""
    else:
        gens = _greedy(candidates, base, k, p, resolution)
        search = "greedy"
        note = (f"The generators were chosen by a greedy search ({n_combos:,} generator combinations are too "
                "many to search them all, and the published catalogue does not list "
                f"{k} factors in {2 ** base} runs): the design has resolution {{res}}, but it is not "
                "necessarily the minimum-aberration design.")
    frac = _make(gens, base, k, search, note)
    if search == "greedy":
        frac.search_note = note.format(res=_roman(frac.resolution))
    if resolution and frac.resolution < resolution:
        if search == "greedy":
            raise DesignError(f"A greedy search found no resolution {_roman(resolution)} fraction for {k} factors "
                              f"in {2 ** base} runs (all {n_combos:,} generator combinations are too many to "
                              "search). Ask for more runs, or for resolution IV.")
        raise DesignError(f"No regular fraction for {k} factors reaches resolution {resolution}.")
    return frac


def _make(gens: list[int], base: int, k: int, search: str, note: str) -> Fraction:
    """The Fraction from its generators (Yates column numbers of the added factors)."""
    columns = [1 << i for i in range(base)] + list(gens)
    letters = factor_letters(k)
    full = full_matrix(base)
    cols = [full[:, i] for i in range(base)]
    for g in gens:
        cols.append(np.prod(full[:, [i for i in range(base) if g >> i & 1]], axis=1))
    generators = [f"{letters[base + i]} = {_word(g, letters)}" for i, g in enumerate(gens)]
    if not gens:
        return Fraction(np.column_stack(cols), base, [], [], k + 1, search, note, columns, [0] * (k - 2))
    wlp = wlp_of(columns, base)
    res = next(j + 1 for j, a in enumerate(wlp) if a)
    p = len(gens)
    if p <= _MAX_LISTED_P:
        word_bits, complete = _all_words(columns, base), True
    else:
        word_bits, complete = _words_of_length(columns, res), False
    words = [_word(w, letters) for w in sorted(word_bits, key=lambda w: (bin(w).count("1"), _bit_key(w)))]
    return Fraction(np.column_stack(cols), base, generators, words, res, search, note, columns, wlp[2:],
                    complete)


def _bit_key(bits: int) -> list[int]:
    return [i for i in range(bits.bit_length()) if bits >> i & 1]


def _word(bits: int, letters: list[str]) -> str:
    sep = "" if all(len(x) == 1 for x in letters) else ":"
    return sep.join(letters[i] for i in _bit_key(bits))


def _roman(n: int) -> str:
    return {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(n, str(n))


def _greedy(candidates: list[int], base: int, k: int, p: int, resolution: int | None) -> list[int]:
    """Generators by a greedy search: resolution V if asked for and found (each new column must not be
    the product of one, two or three columns already chosen), else resolution IV whenever 2^base runs
    hold it (columns that are products of an odd number of basic factors: every word of the defining
    relation then has even length, so at least 4; Box & Hunter 1961), else III (distinct columns)."""
    if resolution and resolution >= 5:
        chosen = _greedy_v(candidates, base, p)
        if chosen is not None:
            return chosen
    if 2 ** (base - 1) >= k:
        odd = [m for m in candidates if bin(m).count("1") % 2 == 1]
        return sorted(odd, key=lambda m: (-bin(m).count("1"), m))[:p]
    return sorted(candidates, key=lambda m: (-bin(m).count("1"), m))[:p]


def _greedy_v(candidates: list[int], base: int, p: int) -> list[int] | None:
    cols = [1 << i for i in range(base)]
    blocked = set(cols)
    pairs = {a ^ b for a, b in itertools.combinations(cols, 2)}
    triples = {a ^ b ^ c for a, b, c in itertools.combinations(cols, 3)}
    blocked |= pairs | triples
    chosen: list[int] = []
    for m in sorted(candidates, key=lambda m: -bin(m).count("1")):
        if len(chosen) == p:
            break
        if m in blocked:
            continue
        new_pairs = {m ^ c for c in cols}
        triples |= {m ^ x for x in pairs}
        pairs |= new_pairs
        cols.append(m)
        chosen.append(m)
        blocked |= {m} | pairs | triples
    return chosen if len(chosen) == p else None


def full_matrix(k: int) -> np.ndarray:
    """2^k full factorial in standard (Yates) order, first factor changing fastest, in -1/+1 coding.

    >>> full_matrix(2).tolist()
    [[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]
    """
    bits = np.arange(2 ** k)[:, None] >> np.arange(k)[None, :] & 1
    return 2.0 * bits - 1.0


def aliases(frac: Fraction, names: list[str], max_order: int = 2, show_order: int = 3) -> list[str]:
    """Alias chains of main effects and interactions up to ``max_order``.

    Each chain lists the effect and its aliases up to ``show_order`` factors,
    e.g. ``A = BCE`` or ``AB = CE``; returned with a legend-friendly letter form.
    Two effects are aliased when the products of their columns are the same column
    (the same mask over the basic factors).
    """
    k = frac.matrix.shape[1]
    letters = factor_letters(k)
    sep = "" if k <= 2 * len(LETTERS) else ":"
    columns = np.asarray(frac.columns or [1 << i for i in range(k)], dtype=np.int64)
    masks, labels, orders = [], [], []
    for order in range(1, max(max_order, show_order) + 1):
        combos = np.array(list(itertools.combinations(range(k), order)), dtype=np.int64).reshape(-1, order)
        m = np.zeros(len(combos), dtype=np.int64)
        for j in range(order):
            m ^= columns[combos[:, j]]
        masks.append(m)
        labels += [sep.join(letters[i] for i in c) for c in combos.tolist()]
        orders.append(np.full(len(combos), order))
    mask, order_of = np.concatenate(masks), np.concatenate(orders)
    # effects in (order, lexicographic) sequence; a stable sort by mask keeps that sequence in each group
    sequence = np.argsort(mask, kind="stable")
    starts = np.flatnonzero(np.r_[True, mask[sequence][1:] != mask[sequence][:-1]])
    group_of = np.empty(len(mask), dtype=np.int64)
    group_of[sequence] = np.cumsum(np.isin(np.arange(len(mask)), starts)) - 1
    members = np.split(sequence, starts[1:])
    seen: set[int] = set()
    chains = []
    for e in np.flatnonzero(order_of <= max_order).tolist():
        g = int(group_of[e])
        if g in seen:
            continue
        seen.add(g)
        shown = [labels[i] for i in members[g].tolist() if i != e and order_of[i] <= show_order]
        chains.append(" = ".join([labels[e], *shown]))
    return chains


def letter_legend(names: list[str]) -> dict[str, str]:
    """Letter -> factor name, for reading generators and aliases."""
    return dict(zip(factor_letters(len(names)), names))
