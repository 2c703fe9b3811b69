"""Classical split-plot designs (doe.split_classic) against published numbers and independent computations.

Published numbers are in tests/reference_cases/split_plot_classic/expected.json (with citations):
- Chen, Sun & Wu (1993)'s minimum-aberration word-length patterns bound every split-plot fraction (a
  split-plot fraction is a regular fraction); where the split-plot fraction reaches the bound it is the
  minimum-aberration split-plot fraction (Huang, Chen & Voelkel 1998; Bingham & Sitter 1999).
- For every 8- and 16-run case, a brute-force enumeration of every split-plot fraction (every choice of
  whole-plot columns in the whole-plot space and subplot columns outside it, word-length patterns by the
  MacWilliams identity of doe.fractional.wlp_of, not the generator-word count of the search) gives the
  minimum word-length pattern independently.
- The central composite split-plot designs are checked by their defining property (Vining, Kowalski &
  Montgomery 2005; Parker, Kowalski & Vining 2007): OLS and GLS estimates coincide,
  (X'V^-1 X)^-1 X'V^-1 = (X'X)^-1 X' for V = I + eta ZZ', computed here for several eta.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from doe import fractional
from doe.errors import DesignError
from doe.split_classic import classical_split_plot, split_plot_ccd, split_plot_fraction
from doe.study import Study
from tests.conftest import REFERENCE

EXPECTED = json.loads((REFERENCE / "split_plot_classic" / "expected.json").read_text())["expected"]
CSW93 = {tuple(int(x) for x in key.split(",")): wlp
         for key, wlp in EXPECTED["csw93_min_aberration_wlp"].items() if key != "comment"}
REACHES = [tuple(c) for c in EXPECTED["reaches_csw93"]["cases"]]
FORCED = [tuple(c) for c in EXPECTED["forced_whole_plot_word"]["cases"]]
SMALL = [(1, 2, 2, 8), (2, 2, 4, 8), (1, 3, 2, 8), (2, 3, 4, 16), (1, 4, 2, 16), (3, 2, 4, 16), (3, 3, 4, 16),
         (3, 3, 8, 16), (2, 4, 4, 16), (4, 2, 8, 16), (4, 3, 8, 16), (4, 4, 8, 16), (2, 5, 4, 16)]


# -- independent helpers ----------------------------------------------------------------------------

def brute_force_min_wlp(n1: int, n2: int, whole_plots: int, runs: int) -> tuple[int, ...]:
    """Smallest word-length pattern (A3, A4, ...) over every split-plot fraction: n1 distinct whole-plot
    columns in the whole-plot space (masks below 2^a) spanning it, n2 distinct subplot columns outside it,
    all columns spanning the 2^b runs."""
    a, b = int(math.log2(whole_plots)), int(math.log2(runs))

    def rank(cols: tuple[int, ...]) -> int:
        basis: list[int] = []
        for c in cols:
            for v in basis:
                c = min(c, c ^ v)
            if c:
                basis.append(c)
        return len(basis)

    wp_space = range(1, 2 ** a)
    sp_space = [m for m in range(1, 2 ** b) if m >> a]
    best = None
    for wp in itertools.combinations(wp_space, n1):
        if rank(wp) < a:
            continue
        for sp in itertools.combinations(sp_space, n2):
            cols = wp + sp
            if rank(cols) < b:
                continue
            w = tuple(fractional.wlp_of(list(cols), b)[2:])
            best = w if best is None or w < best else best
    assert best is not None
    return best


def columns_from_generators(design) -> np.ndarray:
    """Rebuild every added factor from its generator text ("r = ABpq") and the basic columns."""
    index = {letter: j for j, letter in enumerate(design.letters)}
    out = design.matrix.copy()
    for gen in design.generators:
        left, right = (s.strip() for s in gen.split("="))
        out[:, index[left]] = np.prod(design.matrix[:, [index[ch] for ch in right]], axis=1)
    return out


def quadratic_model(U: np.ndarray) -> np.ndarray:
    k = U.shape[1]
    cols = [np.ones(len(U))] + [U[:, i] for i in range(k)]
    cols += [U[:, i] * U[:, j] for i, j in itertools.combinations(range(k), 2)]
    cols += [U[:, i] ** 2 for i in range(k)]
    return np.column_stack(cols)


def ols_gls_gap(U: np.ndarray, whole_plot: np.ndarray, eta: float) -> float:
    X = quadratic_model(U)
    Z = (whole_plot[:, None] == np.unique(whole_plot)[None, :]).astype(float)
    V = np.eye(len(U)) + eta * Z @ Z.T
    Vi = np.linalg.inv(V)
    gls = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)
    ols = np.linalg.solve(X.T @ X, X.T)
    return float(np.abs(gls - ols).max())


def make_study(factors: list[dict]) -> Study:
    return Study.from_dict({"name": "split", "factors": factors, "responses": [{"name": "Y"}]})


# -- split-plot fractions ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", REACHES)
def test_fraction_reaches_published_minimum_aberration(case):
    n1, n2, W, N = case
    design = split_plot_fraction(n1, n2, W, N)
    published = CSW93[(N, n1 + n2)]
    assert list(design.word_length_pattern[:len(published)]) == published


@pytest.mark.parametrize("case", SMALL)
def test_fraction_is_minimum_aberration_by_brute_force(case):
    design = split_plot_fraction(*case)
    assert design.word_length_pattern == brute_force_min_wlp(*case)


@pytest.mark.parametrize("case", SMALL + REACHES)
def test_fraction_never_beats_published_bound(case):
    n1, n2, W, N = case
    published = CSW93.get((N, n1 + n2))
    if published is None:  # a full factorial in the runs: no words
        assert N == 2 ** (n1 + n2)
        return
    assert tuple(split_plot_fraction(*case).word_length_pattern[:len(published)]) >= tuple(published)


def test_fraction_is_no_worse_than_bingham_sitter_2003():
    """Bingham & Sitter (2003)'s printed design (via FrF2's documentation): a split-plot fraction with the
    whole-plot factors constant in 8 whole plots, whose word-length pattern (computed here from its
    generators) the minimum-aberration search must match or beat; here it matches."""
    case = EXPECTED["bingham_sitter_2003"]
    basic, added = case["basic"], case["added"]
    cols = [1 << i for i in range(len(basic))] + [sum(1 << basic.index(ch) for ch in word) for word in added.values()]
    letters = basic + list(added)
    runs = 2 ** len(basic)
    full = fractional.full_matrix(len(basic))
    M = np.column_stack([np.prod(full[:, [i for i in range(len(basic)) if c >> i & 1]], axis=1) for c in cols])
    wp = M[:, [letters.index(f) for f in case["whole_plot_factors"]]]
    assert len({tuple(r) for r in wp}) == 8                                  # 8 whole plots
    sp = M[:, [i for i, f in enumerate(letters) if f not in case["whole_plot_factors"]]]
    for setting in {tuple(r) for r in wp}:                                    # subplot factors vary in each
        assert (sp[(wp == setting).all(axis=1)].std(axis=0) > 0).all()
    published = tuple(fractional.wlp_of(cols, len(basic))[2:])
    ours = split_plot_fraction(*case["case"])
    assert len(ours.matrix) == runs
    assert ours.word_length_pattern <= published
    assert ours.word_length_pattern == published


@pytest.mark.parametrize("case", FORCED)
def test_three_whole_plot_factors_in_four_whole_plots_force_resolution_three(case):
    design = split_plot_fraction(*case)
    assert design.resolution == EXPECTED["forced_whole_plot_word"]["resolution"]
    assert "C = AB" in design.generators


@pytest.mark.parametrize("case", SMALL + REACHES)
def test_fraction_structure(case):
    n1, n2, W, N = case
    d = split_plot_fraction(n1, n2, W, N)
    M = d.matrix
    assert M.shape == (N, n1 + n2)
    assert set(np.unique(M)) == {-1.0, 1.0}
    assert np.allclose(M.T @ M, N * np.eye(n1 + n2))           # orthogonal, distinct columns
    assert d.n_whole_plots == W == 2 ** (n1 - sum(g[0].isupper() for g in d.generators))
    assert np.array_equal(np.bincount(d.whole_plot)[1:], np.full(W, N // W))
    wp = M[:, :n1]
    settings = set()
    for plot in range(1, W + 1):
        rows = d.whole_plot == plot
        assert (wp[rows] == wp[rows][0]).all()                  # whole-plot factors constant in a plot
        assert (M[rows, n1:].std(axis=0) > 0).all()             # every subplot factor changes in a plot
        settings.add(tuple(wp[rows][0]))
    assert len(settings) == W                                   # each whole plot a different setting
    assert np.array_equal(columns_from_generators(d), M)
    for gen in d.generators:                                     # WP generators only WP letters
        left, right = (s.strip() for s in gen.split("="))
        if left.isupper():
            assert right.isupper()
        else:
            assert re.search("[a-z]", right)
    assert len(d.words) == 2 ** (len(d.generators)) - 1
    lengths = [len(w) for w in d.words]
    assert [lengths.count(j) for j in range(3, n1 + n2 + 1)] == list(d.word_length_pattern)


MONTGOMERY = REFERENCE / "montgomery_plasma_etch_split_plot_fraction"


def test_fraction_is_montgomerys_plasma_etch_design():
    """Montgomery (2017) Example 14.3, Table 14.22: the 2^(5-1) split-plot fraction E = ABCD, whole-plot
    factors A, B, C in 8 whole plots of 2 runs (letters here: p = D, q = E)."""
    expected = json.loads((MONTGOMERY / "expected.json").read_text())["expected"]
    table = pd.read_csv(MONTGOMERY / "data.csv")
    d = split_plot_fraction(3, 2, expected["whole_plots"], expected["runs"])
    assert [g.translate(str.maketrans("pq", "DE")) for g in d.generators] == ["E = ABCD"]
    printed = {tuple(r): int(w) for r, w in zip(table[list("ABCDE")].to_numpy(float), table["WholePlot"])}
    ours = {tuple(r): int(w) for r, w in zip(d.matrix, d.whole_plot)}
    assert set(ours) == set(printed)                              # the same 16 runs
    pairs = {(ours[r], printed[r]) for r in ours}                  # the same grouping into whole plots
    assert len(pairs) == expected["whole_plots"] == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    strata = {k.translate(str.maketrans("pq", "DE")): v for k, v in d.effect_strata().items()}
    assert strata == expected["stratum"]


def test_montgomery_estimates_from_the_design_columns():
    """Least squares on the design's columns, in the design's run order, reproduces Table 14.23 (with the
    one datum Table 14.23 was computed from: see the erratum in expected.json)."""
    expected = json.loads((MONTGOMERY / "expected.json").read_text())["expected"]["estimates"]
    table = pd.read_csv(MONTGOMERY / "data.csv")
    d = split_plot_fraction(3, 2, 8, 16)
    y_of = {tuple(r): y for r, y in zip(table[list("ABCDE")].to_numpy(float), table["Uniformity"])}
    erratum = json.loads((MONTGOMERY / "expected.json").read_text())["erratum"]
    assert y_of[tuple(map(float, erratum["run"]))] == erratum["printed"]
    y_of[tuple(map(float, erratum["run"]))] = erratum["used_by_table_14_23"]   # see expected.json
    y = np.array([y_of[tuple(r)] for r in d.matrix])
    letters = "ABCDE"
    terms = ["Intercept"] + list(letters) + ["".join(c) for c in itertools.combinations(letters, 2)]
    X = np.column_stack([np.ones(16)] + [np.prod(d.matrix[:, [letters.index(ch) for ch in t]], axis=1)
                                         for t in terms[1:]])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    for term, b in zip(terms, beta):
        assert b == pytest.approx(expected[term], abs=1e-9)


def test_fraction_example_text():
    d = split_plot_fraction(2, 3, 4, 16)
    assert d.generators == ("r = ABpq",)
    assert d.defining_relation == "I = ABpqr"
    assert d.resolution == 5
    assert d.roles == ("whole-plot", "whole-plot", "subplot", "subplot", "subplot")


@pytest.mark.parametrize("args, words", [
    ((2, 2, 3, 8), "power of 2"),
    ((2, 2, 8, 16), "whole-plot factors"),
    ((4, 2, 4, 16), "at most 3 whole-plot factors"),
    ((2, 2, 4, 4), "no room"),
    ((1, 2, 2, 16), "at most 8 runs"),
    ((2, 2, 4, 128), "up to 64 runs"),
    ((0, 2, 2, 8), "at least one whole-plot"),
])
def test_fraction_bad_requests(args, words):
    with pytest.raises(DesignError, match=words):
        split_plot_fraction(*args)


def test_fraction_resolution_request():
    with pytest.raises(DesignError, match="below the V"):
        split_plot_fraction(3, 3, 8, 16, resolution=5)
    assert split_plot_fraction(3, 3, 8, 32, resolution=5).resolution >= 5


# -- central composite split-plot designs -----------------------------------------------------------

@pytest.mark.parametrize("k1, k2, options", [
    (1, 1, {}), (1, 2, {}), (2, 2, {}), (2, 3, {}), (3, 2, {}), (2, 2, {"sp_center_runs": 2}),
    (2, 2, {"wp_alpha": "face", "center_whole_plots": 3}), (3, 3, {"wp_alpha": 1.5}),
])
def test_ccd_equivalent_estimation(k1, k2, options):
    d = split_plot_ccd([f"W{i}" for i in range(k1)], [f"S{j}" for j in range(k2)], **options)
    for eta in (0.1, 1.0, 10.0, 100.0):
        assert ols_gls_gap(d.matrix, d.whole_plot, eta) < 1e-9


def test_ccd_equivalence_needs_the_subplot_axial_distance():
    """The check has teeth: the rotatable subplot alpha (8^(1/4) = 1.68 for three subplot factors, not
    sqrt(8/2) = 2) breaks equivalent estimation -- with face-centred whole plots. (With alpha_wp^2 = k1,
    as the rotatable 2^(1/2) for two whole-plot factors, the whole-plot quadratic terms absorb the centre
    whole plots' mean of the squared subplot columns, and any subplot alpha would do.)"""
    d = split_plot_ccd(["W1", "W2"], ["S1", "S2", "S3"], wp_alpha="face")
    assert d.alpha_sp == pytest.approx(EXPECTED["ccd_equivalent_estimation"]["alpha_sp"]["k2=3"])
    U = d.matrix.copy()
    axial = np.array([t == "sp_axial" for t in d.point_type])
    U[axial, 2:] *= 8 ** 0.25 / d.alpha_sp
    assert ols_gls_gap(U, d.whole_plot, 1.0) > 1e-3


@pytest.mark.parametrize("k1, k2", [(1, 1), (2, 2), (2, 3), (3, 2)])
def test_ccd_structure(k1, k2):
    n_center = 2
    d = split_plot_ccd([f"W{i}" for i in range(k1)], [f"S{j}" for j in range(k2)], center_whole_plots=n_center)
    F = 2 ** k2
    m = F + (1 if k2 <= 2 else 0)   # one or two subplot factors: a centre run per whole plot (see doc)
    assert d.alpha_sp == pytest.approx(EXPECTED["ccd_equivalent_estimation"]["alpha_sp"][f"k2={k2}"])
    assert d.alpha_wp == pytest.approx((2 ** k1) ** 0.25)
    W = 2 ** k1 + 2 * k1 + n_center
    assert d.n_whole_plots == W and d.whole_plot_size == m
    assert np.array_equal(np.bincount(d.whole_plot)[1:], np.full(W, m))
    types = np.array(d.point_type)
    wp = d.matrix[:, :k1]
    for plot in range(1, W + 1):
        rows = d.whole_plot == plot
        assert (wp[rows] == wp[rows][0]).all()
    # factorial whole plots: the WP factorial crossed with the SP factorial
    fact = types == "factorial"
    assert fact.sum() == 2 ** k1 * F
    assert set(map(tuple, d.matrix[fact])) == set(itertools.product((-1.0, 1.0), repeat=k1 + k2))
    # WP axial whole plots: +-alpha_wp on one WP factor, the SP factorial inside
    wpa = types == "wp_axial"
    assert wpa.sum() == 2 * k1 * F
    assert np.allclose(np.abs(wp[wpa]).sum(axis=1), d.alpha_wp)
    # SP axial runs only in the centre whole plots, each centre plot holding all 2 k2 of them
    spa = types == "sp_axial"
    assert spa.sum() == 2 * k2 * n_center
    assert np.allclose(wp[spa], 0) and np.allclose(np.abs(d.matrix[spa, k1:]).sum(axis=1), d.alpha_sp)
    for plot in np.unique(d.whole_plot[spa]):
        assert (spa & (d.whole_plot == plot)).sum() == 2 * k2


def test_ccd_bad_requests():
    with pytest.raises(DesignError, match="at least one whole-plot"):
        split_plot_ccd([], ["S"])
    with pytest.raises(DesignError, match="centre whole plot"):
        split_plot_ccd(["W"], ["S"], center_whole_plots=0)
    with pytest.raises(DesignError, match="sp_center_runs = 1"):
        split_plot_ccd(["W"], ["S1", "S2"], sp_center_runs=0)
    with pytest.raises(DesignError, match="whole-plot alpha"):
        split_plot_ccd(["W"], ["S"], wp_alpha="spherical")


# -- for a study ------------------------------------------------------------------------------------

FACTORS = [
    {"name": "Feed", "low": 1, "high": 2},
    {"name": "Temp", "low": 30, "high": 40, "hard_to_change": True},
    {"name": "pH", "low": 7.0, "high": 7.4},
    {"name": "Medium", "kind": "categorical", "levels": ["FBS", "hPL"], "hard_to_change": True},
    {"name": "Seed", "kind": "discrete", "levels": [2000, 5000]},
]


def test_study_fraction_puts_hard_to_change_factors_in_whole_plots():
    study = make_study(FACTORS)
    U, plots, text = classical_split_plot(study, "fraction", runs=16, whole_plots=4)
    assert U.shape == (16, 5)
    assert np.array_equal(np.bincount(plots)[1:], [4, 4, 4, 4])
    for plot in range(1, 5):
        rows = plots == plot
        assert (U[rows][:, [1, 3]] == U[rows][0, [1, 3]]).all()          # Temp, Medium constant
        assert (U[rows][:, [0, 2, 4]].std(axis=0) > 0).all()              # the others change
    assert set(np.unique(U[:, 3])) == {0.0, 1.0}                          # categorical as level index
    assert set(np.unique(U[:, 4])) == {-1.0, 1.0}
    assert set(np.unique(U[:, 0])) == {-1.0, 1.0}
    # same design as split_plot_fraction with the hard-to-change factors first
    d = split_plot_fraction(2, 3, 4, 16)
    reordered = U[:, [1, 3, 0, 2, 4]].copy()
    reordered[:, 1] = 2 * reordered[:, 1] - 1                             # Medium's level index back to -1/+1
    assert np.array_equal(reordered, d.matrix)
    assert "A = Temp" in text and "B = Medium" in text and "Huang, Chen & Voelkel" in text


def test_study_fraction_defaults():
    study = make_study(FACTORS)
    U, plots, text = classical_split_plot(study, "fraction")
    assert int(plots.max()) == 4                                           # 2^n1 whole plots
    assert len(U) == 16                                                    # fewest runs reaching resolution IV
    assert "resolution V" in text


def test_study_ccd():
    study = make_study([f for f in FACTORS if f.get("kind") is None])
    U, plots, text = classical_split_plot(study, "ccd", center_whole_plots=2)
    assert U.shape == ((2 + 2 + 2) * 5, 3)                                 # 6 whole plots of 4 + 1 runs
    for plot in np.unique(plots):
        rows = plots == plot
        assert (U[rows, 1] == U[rows, 1][0]).all()                         # Temp constant
    assert ols_gls_gap(U, plots, 5.0) < 1e-9
    assert "Vining, Kowalski & Montgomery" in text


@pytest.mark.parametrize("factors, kind, words", [
    ([{"name": "A", "low": 0, "high": 1}, {"name": "B", "low": 0, "high": 1}], "fraction",
     "hard_to_change: true"),
    ([{"name": "A", "low": 0, "high": 1, "hard_to_change": True},
      {"name": "B", "low": 0, "high": 1, "hard_to_change": True}], "fraction", "leave at least one"),
    ([{"name": "A", "low": 0, "high": 1, "hard_to_change": True},
      {"name": "M", "kind": "categorical", "levels": ["x", "y", "z"]}], "fraction", "M has 3 levels"),
    ([{"name": "A", "low": 0, "high": 1, "hard_to_change": True},
      {"name": "M", "kind": "categorical", "levels": ["x", "y"]}], "ccd", "needs continuous factors"),
    ([{"name": "A", "low": 0, "high": 1, "hard_to_change": True},
      {"name": "B", "low": 0, "high": 1}], "box", "Unknown classical split-plot kind"),
])
def test_study_bad_inputs(factors, kind, words):
    with pytest.raises(DesignError, match=words):
        classical_split_plot(make_study(factors), kind)


def test_study_bad_option_values():
    study = make_study(FACTORS)
    with pytest.raises(DesignError, match="'runs' must be a whole number"):
        classical_split_plot(study, "fraction", runs="many")
    with pytest.raises(DesignError, match="power of 2"):
        classical_split_plot(study, "fraction", runs=24)
    ccd_study = make_study([f for f in FACTORS if f.get("kind") is None])
    with pytest.raises(DesignError, match="'center_whole_plots' must be a whole number"):
        classical_split_plot(ccd_study, "ccd", center_whole_plots=1.5)


def test_study_too_many_whole_plots():
    study = make_study(FACTORS)
    with pytest.raises(DesignError, match="at most 4 whole plots"):
        classical_split_plot(study, "fraction", whole_plots=8, runs=32)
