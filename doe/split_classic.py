"""Classical split-plot designs for hard-to-change factors: two-level fractions and central composites.

A factor marked ``hard_to_change`` in the study changes only between whole plots; the others (subplot
factors) change from run to run within a whole plot. Besides optimal split-plot designs, two published
families of classical designs are built here, as coded tables with a whole-plot label per run:

- :func:`split_plot_fraction`: the minimum-aberration two-level fractional factorial split-plot (FFSP)
  design 2^((n1+n2)-(p1+p2)) of Huang, Chen & Voelkel (1998) and Bingham & Sitter (1999). Whole-plot
  (WP) factors are written A, B, C, ...; subplot (SP) factors p, q, r, ... (Bingham & Sitter's
  convention). The 2^(n1-p1) whole plots are the runs of the WP fraction; WP generators involve only WP
  factors, SP generators at least one SP basic factor -- which is what keeps every SP factor changing
  within whole plots (every word of the defining relation then has no SP letter or at least two).
  Among all designs with this structure, the one with minimum aberration (Fries & Hunter 1980: the
  lexicographically smallest word-length pattern A3, A4, ...) is found by exhaustive search over the
  generator choices (ties keep the first found, longest generators first). The reported word-length
  pattern is computed with :func:`doe.fractional.wlp_of`. The test suite checks the result against
  Chen, Sun & Wu's published minimum-aberration patterns, Montgomery's Example 14.3, Bingham & Sitter
  (2003)'s printed design and a brute-force enumeration; the printed FFSP catalogues themselves were
  not transcribed.
- :func:`split_plot_ccd`: a balanced equivalent-estimation central composite split-plot design in the
  manner of Vining, Kowalski & Montgomery (2005) (VKM) and Parker, Kowalski & Vining (2007): the
  whole plots form a central composite design in the WP factors (2^k1 factorial whole plots, 2 k1
  axial whole plots at +-alpha_wp, centre whole plots); every factorial and WP-axial whole plot holds
  the two-level factorial in the SP factors; each centre whole plot holds the SP axial runs at
  +-alpha_sp and SP centre runs, so that every whole plot has the same size m (with one or two SP
  factors every whole plot gets an SP centre run by default, else their squares are not estimable).
  With alpha_sp = sqrt(F/2) (F = SP factorial runs per whole plot) every whole plot has the same mean of
  each squared SP column, so the column space of ZZ'X lies in that of X (the condition of McLean &
  Anderson under which OLS is GLS, the equivalent-estimation condition of VKM 2005): ordinary least
  squares gives the generalised least squares estimates for every ratio of whole-plot to subplot
  variance, and the fit needs no variance components. The whole-plot axial distance is free. This
  layout is derived from that condition; it was not compared with VKM's printed tables.
- :func:`classical_split_plot`: either design for a study, its hard-to-change factors in the whole-plot
  roles, as a coded array in the study's factor order with whole-plot labels.

References
----------
Huang, P., Chen, D. and Voelkel, J. O. (1998). Minimum-aberration two-level split-plot designs.
Technometrics 40(4), 314-326.
Bingham, D. and Sitter, R. R. (1999). Minimum-aberration two-level fractional factorial split-plot
designs. Technometrics 41(1), 62-70.
Bisgaard, S. (2000). The design and analysis of 2^(k-p) x 2^(q-r) split plot experiments. Journal of
Quality Technology 32(1), 39-56.
Fries, A. and Hunter, W. G. (1980). Minimum aberration 2^(k-p) designs. Technometrics 22(4), 601-608.
Vining, G. G., Kowalski, S. M. and Montgomery, D. C. (2005). Response surface designs within a
split-plot structure. Journal of Quality Technology 37(2), 115-129.
Parker, P. A., Kowalski, S. M. and Vining, G. G. (2007). Construction of balanced equivalent estimation
second-order split-plot designs. Technometrics 49(1), 56-65.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from doe import fractional
from doe.errors import DesignError
from doe.study import Study

#: Whole-plot factor letters (Bingham & Sitter 1999 write WP factors in capitals, SP factors in lower case).
WP_LETTERS = "ABCDEFGHJKLMNO"
#: Subplot factor letters.
SP_LETTERS = "pqrstuvwxyzbcdefghjk"
#: Largest number of generator combinations the exhaustive search of :func:`split_plot_fraction` visits.
MAX_COMBINATIONS = 200_000  # about 4 s
#: Largest run size of a split-plot fraction (the published tables stop at 64 runs).
MAX_RUNS = 64

FRACTION_CITATION = (
    "Minimum-aberration fractional factorial split-plot design (Huang, Chen & Voelkel 1998, "
    "Technometrics 40:314-326; Bingham & Sitter 1999, Technometrics 41:62-70): minimum aberration "
    "among all regular 2-level split-plot fractions with these whole plots, by exhaustive search.")
CCD_CITATION = (
    "Equivalent-estimation central composite split-plot design (after Vining, Kowalski & Montgomery 2005, "
    "J. Qual. Technol. 37:115-129; Parker, Kowalski & Vining 2007, Technometrics 49:56-65): OLS "
    "estimates equal GLS estimates for any whole-plot variance.")


# -- two-level fractional factorial split-plot designs ----------------------------------------------

@dataclass(frozen=True)
class SplitPlotFraction:
    """A 2^((n1+n2)-(p1+p2)) fractional factorial split-plot design.

    ``matrix`` is runs x (n1 + n2) in -1/+1, whole-plot factors first, rows grouped by whole plot;
    ``whole_plot`` labels each run's whole plot 1..2^(n1-p1). ``generators`` are written like
    ``"C = AB"`` and ``"r = Apq"``; ``words`` is the whole defining relation; ``word_length_pattern``
    holds A3, A4, ... up to A(n1+n2).
    """

    matrix: np.ndarray
    letters: tuple[str, ...]
    roles: tuple[str, ...]          # "whole-plot" or "subplot", per column
    whole_plot: np.ndarray          # int labels 1..n_whole_plots, per run
    generators: tuple[str, ...]
    words: tuple[str, ...]
    word_length_pattern: tuple[int, ...]
    resolution: int
    citation: str
    columns: tuple[int, ...]        # each factor's column as a mask over the basic factors

    @property
    def n_whole_plots(self) -> int:
        """Number of whole plots, 2^(n1-p1)."""
        return int(self.whole_plot.max())

    @property
    def defining_relation(self) -> str:
        """``I = ABC = ...`` ('' for a full factorial)."""
        return "I = " + " = ".join(self.words) if self.words else ""

    def effect_strata(self, max_order: int = 2) -> dict[str, str]:
        """Stratum of each effect up to ``max_order`` factors: "whole-plot" when its column is constant
        within whole plots (the effect is aliased with an effect of whole-plot factors only, e.g. DE = ABC
        in Montgomery's Example 14.3), so it is judged against whole-plot variation; else "subplot"
        (Bisgaard 2000; Bingham & Sitter 1999)."""
        n_basic = len(self.matrix).bit_length() - 1
        a = self.n_whole_plots.bit_length() - 1
        wp_space = (1 << a) - 1            # WP basic factors are bits 0..a-1 of every column mask
        out = {}
        for order in range(1, max_order + 1):
            for combo in itertools.combinations(range(len(self.letters)), order):
                mask = 0
                for i in combo:
                    mask ^= self.columns[i]
                label = "".join(self.letters[i] for i in combo)
                out[label] = "whole-plot" if mask & ~wp_space & ((1 << n_basic) - 1) == 0 else "subplot"
        return out


def _log2_exact(n: int, what: str) -> int:
    if n < 1 or n & (n - 1):
        raise DesignError(f"The number of {what} must be a power of 2 (2, 4, 8, 16, ...); {n} is not.")
    return n.bit_length() - 1


def _popcount(x: int) -> int:
    return bin(x).count("1")


def _word_lengths(gen_words: list[int], k: int) -> tuple[int, ...]:
    """Counts of words of length 1..k in the group the generator words span (bit masks over factors)."""
    counts = [0] * (k + 1)
    words = [0]
    for g in gen_words:
        words += [w ^ g for w in words]
    for w in words[1:]:
        counts[_popcount(w)] += 1
    return tuple(counts[1:])


@lru_cache(maxsize=64)
def _search(n1: int, n2: int, a: int, b: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Minimum-aberration WP and SP generators (masks over the b basic factors: bits 0..a-1 the WP
    basic factors, bits a..b-1 the SP basic factors), by exhaustive search."""
    p1, c = n1 - a, b - a
    p2 = n2 - c
    wp_cand = [m for m in range(1, 2 ** a) if _popcount(m) >= 2]
    sp_cand = [m for m in range(1, 2 ** b) if m >> a and _popcount(m) >= 2]
    n_combos = math.comb(len(wp_cand), p1) * math.comb(len(sp_cand), p2)
    if n_combos > MAX_COMBINATIONS:
        raise DesignError(
            f"A split-plot fraction of {n1} whole-plot and {n2} subplot factors in {2 ** b} runs has "
            f"{n_combos:,} generator choices, too many to search; use fewer factors or fewer runs "
            "(or an optimal split-plot design).")
    k = n1 + n2
    basic = [1 << i for i in range(b)]
    best: tuple[int, ...] | None = None
    best_gens: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
    # higher-order generators first, so that ties keep the conventional (longest) generators
    wp_cand.sort(key=lambda m: (-_popcount(m), m))
    sp_cand.sort(key=lambda m: (-_popcount(m), m))
    for wp in itertools.combinations(wp_cand, p1):
        for sp in itertools.combinations(sp_cand, p2):
            cols = basic[:a] + list(wp) + basic[a:] + list(sp)
            gen_words = _generator_words(cols, a, n1, c)
            pattern = _word_lengths(gen_words, k)
            if best is None or pattern < best:
                best, best_gens = pattern, (wp, sp)
    return best_gens


def _generator_words(cols: list[int], a: int, n1: int, c: int) -> list[int]:
    """The generator words (masks over the k factors) of a design whose factor columns are ``cols``
    (WP basics, WP added, SP basics, SP added)."""
    index_of_basic = {}
    for i in range(a):
        index_of_basic[1 << i] = i
    for j in range(c):
        index_of_basic[1 << (a + j)] = n1 + j
    words = []
    for f, col in enumerate(cols):
        if col in index_of_basic and index_of_basic[col] == f:
            continue
        w = 1 << f
        for bit, idx in index_of_basic.items():
            if col & bit:
                w |= 1 << idx
        words.append(w)
    return words


def split_plot_fraction(n_wp_factors: int, n_sp_factors: int, whole_plots: int, runs: int, *,
                        resolution: int | None = None) -> SplitPlotFraction:
    """Minimum-aberration two-level fractional factorial split-plot design.

    Parameters
    ----------
    n_wp_factors : int
        n1, the whole-plot (hard-to-change) factors, at least 1.
    n_sp_factors : int
        n2, the subplot factors, at least 1.
    whole_plots : int
        2^(n1-p1), a power of 2 from 2 to 2^n1: the number of settings of the WP factors.
    runs : int
        2^(n1+n2-p1-p2), a power of 2 of at least twice ``whole_plots`` (up to :data:`MAX_RUNS`).
    resolution : int, optional
        Smallest acceptable resolution; a DesignError says what to change when the best design
        falls short.

    Returns
    -------
    SplitPlotFraction
        The design, rows grouped by whole plot (standard order, not randomised).
    """
    n1, n2 = int(n_wp_factors), int(n_sp_factors)
    if n1 < 1 or n2 < 1:
        raise DesignError("A split-plot fraction needs at least one whole-plot (hard-to-change) factor and "
                          f"one subplot factor; got {n1} and {n2}.")
    if n1 > len(WP_LETTERS) or n2 > len(SP_LETTERS):
        raise DesignError(f"A split-plot fraction takes up to {len(WP_LETTERS)} whole-plot and "
                          f"{len(SP_LETTERS)} subplot factors.")
    a = _log2_exact(int(whole_plots), "whole plots")
    b = _log2_exact(int(runs), "runs")
    if a < 1:
        raise DesignError("A split-plot design needs at least 2 whole plots.")
    if a > n1:
        raise DesignError(
            f"{whole_plots} whole plots need at least {a} whole-plot factors ({n1} two-level factors have "
            f"only {2 ** n1} settings); use at most {2 ** n1} whole plots.")
    if n1 > 2 ** a - 1:
        raise DesignError(f"{whole_plots} whole plots hold at most {2 ** a - 1} whole-plot factors; use at "
                          f"least {2 ** math.ceil(math.log2(n1 + 1))} whole plots.")
    if b <= a:
        raise DesignError(f"{runs} runs in {whole_plots} whole plots leave no room for subplot factors; use "
                          f"at least {2 * whole_plots} runs.")
    if b > math.log2(MAX_RUNS):
        raise DesignError(f"Split-plot fractions are built up to {MAX_RUNS} runs; {runs} were asked for.")
    c = b - a
    if c > n2:
        raise DesignError(
            f"{runs} runs in {whole_plots} whole plots means {2 ** c} runs per whole plot, more than the "
            f"{2 ** n2} settings of {n2} subplot factor(s); use at most {whole_plots * 2 ** n2} runs.")
    if n2 > 2 ** b - 2 ** a:
        raise DesignError(f"{runs} runs with {whole_plots} whole plots hold at most {2 ** b - 2 ** a} subplot "
                          "factors; use more runs.")
    wp_gens, sp_gens = _search(n1, n2, a, b)
    frac = _assemble(n1, n2, a, b, list(wp_gens), list(sp_gens))
    if resolution is not None and frac.resolution < int(resolution):
        raise DesignError(
            f"The best split-plot fraction of {n1} whole-plot and {n2} subplot factors in {runs} runs and "
            f"{whole_plots} whole plots has resolution {_roman(frac.resolution)}, below the {_roman(int(resolution))} "
            "asked for; use more runs, or more whole plots.")
    return frac


def _roman(n: int) -> str:
    return {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(n, str(n))


def _assemble(n1: int, n2: int, a: int, b: int, wp_gens: list[int], sp_gens: list[int]) -> SplitPlotFraction:
    """The design from its generators (masks over the basic factors, WP basics in bits 0..a-1)."""
    c = b - a
    letters = tuple(WP_LETTERS[:n1]) + tuple(SP_LETTERS[:n2])
    cols = [1 << i for i in range(a)] + wp_gens + [1 << (a + j) for j in range(c)] + sp_gens
    # basic factors in standard order with the WP basics changing slowest, so whole plots are contiguous
    full = fractional.full_matrix(b)                   # column 0 changes fastest
    basic_col = [c + i for i in range(a)] + [j for j in range(c)]   # basic bit -> column of ``full``
    matrix = np.column_stack([
        np.prod(full[:, [basic_col[i] for i in range(b) if col >> i & 1]], axis=1) for col in cols])
    whole_plot = np.repeat(np.arange(1, 2 ** a + 1), 2 ** c)
    basic_letter = {1 << i: letters[i] for i in range(a)}
    basic_letter.update({1 << (a + j): letters[n1 + j] for j in range(c)})

    def product(col: int) -> str:
        return "".join(basic_letter[1 << i] for i in range(b) if col >> i & 1)

    generators = tuple(f"{letters[a + i]} = {product(g)}" for i, g in enumerate(wp_gens)) + tuple(
        f"{letters[n1 + c + j]} = {product(g)}" for j, g in enumerate(sp_gens))
    k = n1 + n2
    gen_words = _generator_words(cols, a, n1, c)
    all_words = [0]
    for g in gen_words:
        all_words += [w ^ g for w in all_words]
    words = tuple("".join(letters[i] for i in range(k) if w >> i & 1)
                  for w in sorted(all_words[1:], key=lambda w: (_popcount(w), [i for i in range(k) if w >> i & 1])))
    wlp = fractional.wlp_of(cols, b)[2:] if gen_words else [0] * max(k - 2, 0)
    resolution = next((j + 3 for j, x in enumerate(wlp) if x), k + 1)
    return SplitPlotFraction(matrix, letters, ("whole-plot",) * n1 + ("subplot",) * n2, whole_plot,
                             generators, words, tuple(int(x) for x in wlp), resolution, FRACTION_CITATION,
                             tuple(cols))


# -- central composite split-plot designs -----------------------------------------------------------

@dataclass(frozen=True)
class SplitPlotCCD:
    """A balanced equivalent-estimation central composite split-plot design.

    ``matrix`` is runs x (k1 + k2), coded, WP factors first, rows grouped by whole plot; ``whole_plot``
    labels each run 1..W; ``point_type`` is "factorial", "wp_axial", "sp_axial" or "center" per run.
    """

    matrix: np.ndarray
    names: tuple[str, ...]
    roles: tuple[str, ...]
    whole_plot: np.ndarray
    point_type: tuple[str, ...]
    alpha_wp: float
    alpha_sp: float
    whole_plot_size: int
    citation: str

    @property
    def n_whole_plots(self) -> int:
        """Number of whole plots."""
        return int(self.whole_plot.max())


def _quadratic(U: np.ndarray) -> np.ndarray:
    """Full second-order model matrix: intercept, linear, two-factor interactions, squares."""
    k = U.shape[1]
    cols = [np.ones(len(U)), *(U[:, i] for i in range(k))]
    cols += [U[:, i] * U[:, j] for i, j in itertools.combinations(range(k), 2)]
    cols += [U[:, i] ** 2 for i in range(k)]
    return np.column_stack(cols)


def _two_level(k: int) -> np.ndarray:
    """The factorial part of a CCD in k factors: full 2^k up to 4 factors, else the resolution V fraction."""
    return fractional.fraction(k, resolution=5).matrix if k >= 5 else fractional.full_matrix(k)


def _alpha(rule: str | float, n_factorial: int, what: str) -> float:
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        value = float(rule)
    else:
        text = str(rule).strip().lower()
        if text in ("rotatable", "r"):
            value = n_factorial ** 0.25
        elif text in ("face", "faced", "f", "ccf"):
            value = 1.0
        else:
            try:
                value = float(text)
            except ValueError:
                raise DesignError(f"Unknown {what} '{rule}': use rotatable, face or a number.") from None
    if not 0 < value <= 10:
        raise DesignError(f"The {what} must be a positive number up to 10; got {value:g}.")
    return value


def split_plot_ccd(wp_factors: list[str], sp_factors: list[str], *, center_whole_plots: int = 2,
                   wp_alpha: str | float = "rotatable", sp_center_runs: int | None = None) -> SplitPlotCCD:
    """Balanced equivalent-estimation central composite design in a split-plot structure (VKM 2005).

    Parameters
    ----------
    wp_factors, sp_factors : list of str
        Names of the whole-plot (hard-to-change) and subplot factors (at least one of each).
    center_whole_plots : int
        Whole plots at the WP centre, each holding the SP axial runs and SP centre runs (at least 1).
    wp_alpha : "rotatable", "face" or a number
        Axial distance of the WP axial whole plots: rotatable in the WP factors, (2^k1)^(1/4), by
        default. Any value keeps equivalent estimation.
    sp_center_runs : int, optional
        SP centre runs added to every whole plot: by default 1 with one or two subplot factors, else 0.
        One or two subplot factors need them: without, the squares of the subplot factors add up to
        the same number in every run (one factor: alpha_sp = 1; two: s1^2 + s2^2 = 2), so their
        quadratic terms cannot be told from the intercept.

    Returns
    -------
    SplitPlotCCD
        Every whole plot has m = F + ``sp_center_runs`` runs, F the SP factorial runs; the SP axial
        distance is sqrt(F / 2), which makes OLS and GLS coincide.
    """
    k1, k2 = len(wp_factors), len(sp_factors)
    if k1 < 1 or k2 < 1:
        raise DesignError("A split-plot central composite design needs at least one whole-plot "
                          f"(hard-to-change) factor and one subplot factor; got {k1} and {k2}.")
    names = tuple(wp_factors) + tuple(sp_factors)
    if len(set(names)) != len(names):
        raise DesignError("A factor is named twice among the whole-plot and subplot factors.")
    n_center = int(center_whole_plots)
    if n_center < 1:
        raise DesignError("The design needs at least one centre whole plot (it holds the subplot axial runs).")
    extra = (1 if k2 <= 2 else 0) if sp_center_runs is None else int(sp_center_runs)
    if extra < 0:
        raise DesignError("sp_center_runs must be 0 or more.")
    wp_fact, sp_fact = _two_level(k1), _two_level(k2)
    F = len(sp_fact)
    m = F + extra
    if m < 2 * k2:
        raise DesignError(f"Whole plots of {m} runs cannot hold the {2 * k2} subplot axial runs; add "
                          f"{2 * k2 - m} subplot centre runs (sp_center_runs).")
    a_wp = _alpha(wp_alpha, len(wp_fact), "whole-plot alpha")
    a_sp = math.sqrt(F / 2.0)
    sp_block = np.vstack([sp_fact, np.zeros((extra, k2))])
    sp_types = ["factorial"] * F + ["center"] * extra
    sp_axial = np.vstack([s * a_sp * np.eye(k2)[j] for j in range(k2) for s in (-1.0, 1.0)])
    centre_block = np.vstack([sp_axial, np.zeros((m - 2 * k2, k2))])
    centre_types = ["sp_axial"] * (2 * k2) + ["center"] * (m - 2 * k2)
    wp_points = [(row, "factorial") for row in wp_fact]
    wp_points += [(s * a_wp * np.eye(k1)[i], "wp_axial") for i in range(k1) for s in (-1.0, 1.0)]
    rows, labels, types = [], [], []
    for plot, (w, kind) in enumerate(wp_points, start=1):
        rows.append(np.column_stack([np.tile(w, (m, 1)), sp_block]))
        labels += [plot] * m
        types += sp_types if kind == "factorial" else ["wp_axial" if t == "factorial" else t for t in sp_types]
    for j in range(n_center):
        rows.append(np.column_stack([np.zeros((m, k1)), centre_block]))
        labels += [len(wp_points) + j + 1] * m
        types += centre_types
    matrix = np.vstack(rows)
    if np.linalg.matrix_rank(_quadratic(matrix)) < _quadratic(matrix).shape[1]:
        raise DesignError(
            "This central composite split-plot design cannot estimate every quadratic term (a squared "
            "subplot factor is constant): add subplot centre runs (sp_center_runs = 1 or more).")
    return SplitPlotCCD(matrix, names, ("whole-plot",) * k1 + ("subplot",) * k2,
                        np.asarray(labels, dtype=int), tuple(types), a_wp, a_sp, m, CCD_CITATION)


# -- for a study ------------------------------------------------------------------------------------

#: Kinds :func:`classical_split_plot` builds.
CLASSICAL_KINDS = ("fraction", "ccd")


def _default_runs(n1: int, n2: int, whole_plots: int, resolution: int) -> int:
    """Smallest run size whose best split-plot fraction reaches ``resolution`` (else the largest tried)."""
    a = whole_plots.bit_length() - 1
    sizes: list[int] = [2 ** b for b in range(a + 1, min(a + n2, int(math.log2(MAX_RUNS))) + 1)
             if 2 ** b - 2 ** a >= n2]
    if not sizes:
        raise DesignError(f"No split-plot fraction of up to {MAX_RUNS} runs holds {n2} subplot factors in "
                          f"{whole_plots} whole plots.")
    for runs in sizes:
        try:
            if split_plot_fraction(n1, n2, whole_plots, runs).resolution >= resolution:
                return runs
        except DesignError:
            continue
    return sizes[-1]


def classical_split_plot(study: Study, kind: str, **options: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows of a classical split-plot design for a study, its hard-to-change factors as whole-plot factors.

    Parameters
    ----------
    study : Study
        Its factors marked ``hard_to_change`` are the whole-plot factors (at least one, not all).
    kind : "fraction" or "ccd"
        "fraction": :func:`split_plot_fraction` (two-level factors only); options ``whole_plots``
        (default 2^n1 up to 16, at most half the runs), ``runs`` (default: the fewest runs whose best
        design reaches ``resolution``, else the most tried) and ``resolution`` (default IV when
        ``runs`` is not given).
        "ccd": :func:`split_plot_ccd` (continuous factors only); options ``center_whole_plots``,
        ``wp_alpha``, ``sp_center_runs``.

    Returns
    -------
    (U, whole_plot, description)
        U is the coded array in the study's factor order (numeric factors in -1..+1 units, a two-level
        categorical factor as level index 0/1), whole_plot the label 1..W of each run, description
        the design's name, structure and citation.
    """
    kind = str(kind).strip().lower()
    if kind not in CLASSICAL_KINDS:
        raise DesignError(f"Unknown classical split-plot kind '{kind}'; use 'fraction' or 'ccd'.")
    names = study.factor_names
    htc = [f.name for f in study.factors if f.hard_to_change]
    if not htc:
        raise DesignError("A split-plot design needs hard-to-change factors: mark the factors that change only "
                          "between whole plots with 'hard_to_change: true' in the study.")
    etc = [n for n in names if n not in htc]
    if not etc:
        raise DesignError("Every factor is hard to change, so nothing varies within a whole plot: leave at "
                          "least one factor easy to change, or use an ordinary (completely randomised) design.")
    order = [names.index(n) for n in htc + etc]
    if kind == "fraction":
        return _fraction_for(study, htc, etc, order, options)
    return _ccd_for(study, htc, etc, order, options)


def _whole_number(value: Any, name: str) -> int:
    """An option that must be a whole number, or a DesignError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DesignError(f"'{name}' must be a whole number; got {value!r}.") from None
    if not number.is_integer():
        raise DesignError(f"'{name}' must be a whole number; got {value!r}.")
    return int(number)


def _fraction_for(study: Study, htc: list[str], etc: list[str], order: list[int],
                  options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    for f in study.factors:
        if f.n_levels not in (None, 2):
            raise DesignError(
                f"A two-level split-plot fraction needs two-level factors; {f.name} has {f.n_levels} levels. "
                "Give it two levels, or use an optimal split-plot design.")
    n1, n2 = len(htc), len(etc)
    given = {key: _whole_number(options[key], key) for key in ("resolution", "runs", "whole_plots")
             if options.get(key) is not None}
    resolution, runs = given.get("resolution"), given.get("runs")
    whole_plots = given.get("whole_plots")
    if whole_plots is None:  # every setting of up to 4 whole-plot factors; a 2^(n1-p1) fraction beyond
        whole_plots = 2 ** min(n1, 4)
        if runs is not None:
            whole_plots = min(whole_plots, max(2, runs // 2))
    if runs is None:
        runs = _default_runs(n1, n2, whole_plots, resolution or 4)
    frac = split_plot_fraction(n1, n2, whole_plots, runs, resolution=resolution)
    U = np.empty_like(frac.matrix)
    U[:, order] = frac.matrix
    for j, f in enumerate(study.factors):
        if f.is_categorical:
            U[:, j] = (U[:, j] > 0).astype(float)
        elif f.kind == "discrete":
            U[:, j] = np.where(U[:, j] > 0, f.to_coded([f.high])[0], f.to_coded([f.low])[0])
    legend = ", ".join(f"{letter} = {name}" for letter, name in zip(frac.letters, htc + etc))
    p1, p2 = n1 - (frac.n_whole_plots.bit_length() - 1), n1 + n2 - (len(frac.matrix).bit_length() - 1)
    p2 -= p1
    what = (f"resolution {_roman(frac.resolution)}, word-length pattern {list(frac.word_length_pattern)}; "
            f"generators {', '.join(frac.generators)}" if frac.generators else "a full factorial")
    description = (f"2^(({n1}+{n2})-({p1}+{p2})) split-plot fraction: {len(frac.matrix)} runs in "
                   f"{frac.n_whole_plots} whole plots of {len(frac.matrix) // frac.n_whole_plots}, {what}; "
                   f"{legend}. {frac.citation}")
    return U, frac.whole_plot.copy(), description


def _ccd_for(study: Study, htc: list[str], etc: list[str], order: list[int],
             options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    bad = [f for f in study.factors if f.kind != "continuous"]
    if bad:
        raise DesignError(
            f"A split-plot central composite design needs continuous factors; {bad[0].name} is {bad[0].kind}. "
            "Make it continuous, or use an optimal split-plot design.")
    kwargs: dict[str, Any] = {key: _whole_number(options[key], key)
                              for key in ("center_whole_plots", "sp_center_runs") if options.get(key) is not None}
    if options.get("wp_alpha") is not None:
        kwargs["wp_alpha"] = options["wp_alpha"]
    design = split_plot_ccd(htc, etc, **kwargs)
    U = np.empty_like(design.matrix)
    U[:, order] = design.matrix
    description = (f"Central composite split-plot design: {len(U)} runs in {design.n_whole_plots} whole plots "
                   f"of {design.whole_plot_size}; whole-plot factors {', '.join(htc)} (axial distance "
                   f"{design.alpha_wp:.4g}), subplot factors {', '.join(etc)} (axial distance "
                   f"{design.alpha_sp:.4g}). {design.citation}")
    return U, design.whole_plot.copy(), description
