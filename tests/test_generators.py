"""Classical generators: shape, balance, orthogonality, reproducibility, constraints."""

import math

import numpy as np
import pytest

from doe.design import read_design
from doe.errors import DesignError
from doe.generators import add_axial, ccd_alpha, fold_over, generate
from doe.model import ModelMatrix, parse_model
from tests.conftest import make_study


def cont(k, low=0, high=10):
    return make_study([{"name": n, "low": low, "high": high} for n in "ABCDEFGHJKL"[:k]])


def model_matrix(design, spec):
    mm = ModelMatrix(design.study, parse_model(design.study, spec))
    return mm.build(design.coded()), mm.columns


def test_full_factorial_mixed_levels_balanced(example_study):
    s = make_study([
        {"name": "M", "kind": "categorical", "levels": ["a", "b", "c"]},
        {"name": "D", "kind": "discrete", "levels": [1, 2, 4, 8]},
        {"name": "A", "low": 0, "high": 1},
    ])
    d = generate(s, "full", seed=1)
    assert d.n_runs == 3 * 4 * 2
    assert sorted(d.table["M"].value_counts().tolist()) == [8, 8, 8]
    assert sorted(d.table["D"].unique()) == [1, 2, 4, 8]
    combos = set(map(tuple, d.table[["M", "D", "A"]].astype(str).values))
    assert len(combos) == 24  # every combination exactly once


def test_full_factorial_two_level_is_orthogonal():
    d = generate(cont(3), "full", seed=0)
    X, _ = model_matrix(d, "full")
    assert np.allclose(X.T @ X, 8 * np.eye(8))


def test_full_factorial_three_levels_continuous():
    d = generate(cont(2), "full", levels=3, seed=0)
    assert d.n_runs == 9 and sorted(d.table["A"].unique()) == [0, 5, 10]


@pytest.mark.parametrize("k, res, runs", [(4, 4, 8), (5, 5, 16), (6, 4, 16), (7, 4, 16), (7, 3, 8), (5, 3, 8)])
def test_fractional_resolution_and_orthogonality(k, res, runs):
    d = generate(cont(k), "fractional", resolution=res, seed=2)
    assert d.n_runs == runs
    assert d.info["resolution"] >= res
    X, cols = model_matrix(d, "linear")
    assert np.allclose(X.T @ X, runs * np.eye(k + 1))  # main effects orthogonal
    if res >= 4:  # main effects clear of two-factor interactions
        Xi, coli = model_matrix(d, "interactions")
        mains = Xi[:, 1 : k + 1]
        twofi = Xi[:, k + 1 :]
        assert np.allclose(mains.T @ twofi, 0)


def test_fractional_generators_hold_in_the_matrix():
    d = generate(cont(5), "fractional", resolution=5, seed=0)
    assert d.info["generators"] == "E = ABCD"
    U = d.coded()
    assert np.allclose(U[:, 4], U[:, 0] * U[:, 1] * U[:, 2] * U[:, 3])
    assert "AB = CDE" in d.info["alias structure"]


def test_fractional_is_minimum_aberration_2_7_3():
    # Montgomery Table 8.14: 2^(7-3)_IV has 7 words of length 4 and nothing shorter.
    d = generate(cont(7), "fractional", resolution=4, seed=0)
    assert d.info["word length pattern"] == "[0, 7, 0, 0, 0]"


def test_fractional_rejects_three_level_factor(example_study):
    with pytest.raises(DesignError, match="Medium has 3 levels"):
        generate(example_study, "fractional")


def test_plackett_burman_12_runs_orthogonal():
    s = make_study([{"name": f"F{i}", "low": -1, "high": 1} for i in range(11)])
    d = generate(s, "pb", seed=0)
    assert d.n_runs == 12
    X, _ = model_matrix(d, "linear")
    assert np.allclose(X.T @ X, 12 * np.eye(12))


def test_definitive_screening_properties():
    k = 6
    d = generate(cont(k), "dsd", seed=0)
    assert d.n_runs == 2 * k + 1
    X, cols = model_matrix(d, "linear")
    Xq, colq = model_matrix(d, "quadratic")
    mains = Xq[:, 1 : k + 1]
    second = Xq[:, k + 1 :]
    # main effects orthogonal to each other, to 2FIs and (centred) squares
    assert np.allclose(mains.T @ mains, np.diag(np.diag(mains.T @ mains)))
    assert np.allclose(mains.T @ second, 0)
    for name in "ABCDEF":
        assert sorted(d.table[name].unique()) == [0, 5, 10]


def test_ccd_rotatable_runs_and_alpha():
    d = generate(cont(3), "ccd", alpha="rotatable", center=6, seed=0)
    assert d.n_runs == 8 + 6 + 6
    assert d.info["alpha"] == pytest.approx(8 ** 0.25, abs=1e-6)
    axial = d.table[d.table.PointType == "axial"]
    U = read_design(d.study, axial).coded()
    assert np.allclose(np.sort(np.abs(U).max(axis=1)), 8 ** 0.25)


def test_ccd_orthogonal_blocks_chemreact():
    # ChemReact (Myers et al. Table 7.6): 2 factors, 2 blocks, 3 centres each -> alpha = sqrt(2)
    d = generate(cont(2), "ccd", alpha="orthogonal", blocks=2, center=6, seed=0)
    assert d.info["alpha"] == pytest.approx(math.sqrt(2), abs=1e-6)
    U, blocks = d.coded(), d.block_index()
    # Orthogonal blocking: each block carries its share of sum x_i^2 (Box & Hunter 1957)
    for j in range(2):
        total = (U[:, j] ** 2).sum()
        for b in (0, 1):
            share = (U[blocks == b, j] ** 2).sum() / total
            assert share == pytest.approx((blocks == b).sum() / len(U), abs=1e-9)


def test_ccd_alpha_formulas():
    assert ccd_alpha(2, 4, "face", 5) == 1.0
    # orthogonal unblocked CCD for k=2, F=4, n0=1: alpha = 1.0 (Montgomery Table 11.x)
    assert ccd_alpha(2, 4, "orthogonal", 1) == pytest.approx(1.0, abs=1e-9)
    assert ccd_alpha(2, 4, "1.5", 1) == 1.5
    with pytest.raises(DesignError, match="Unknown alpha"):
        ccd_alpha(2, 4, "wide", 1)


def test_ccd_inscribed_stays_in_range():
    d = generate(cont(2), "ccd", alpha="inscribed", seed=0)
    assert d.table[["A", "B"]].min().min() >= 0 - 1e-9 and d.table[["A", "B"]].max().max() <= 10 + 1e-9
    assert not d.warnings


def test_box_behnken_structure():
    d = generate(cont(3), "bbd", center=3, seed=0)
    assert d.n_runs == 12 + 3
    U = d.coded()
    edges = U[(d.table.PointType == "edge").to_numpy()]
    assert ((edges == 0).sum(axis=1) == 1).all()


def test_latin_hypercube_strata():
    n = 12
    d = generate(cont(3), "lhs", runs=n, seed=5)
    U = d.coded()
    for j in range(3):
        strata = np.floor((U[:, j] + 1) / 2 * n).clip(0, n - 1)
        assert sorted(strata) == list(range(n))


@pytest.mark.parametrize("kind, kw", [("full", {}), ("lhs", {"runs": 10}), ("ccd", {})])
def test_same_seed_same_design(kind, kw):
    a = generate(cont(3), kind, seed=11, **kw)
    b = generate(cont(3), kind, seed=11, **kw)
    c = generate(cont(3), kind, seed=12, **kw)
    assert a.table.equals(b.table)
    assert not a.table.equals(c.table)


def test_constraints_honoured(example_study):
    d = generate(example_study, "full", seed=3)
    bad = d.table[(d.table.Surface == "ULA") & (d.table.Agitation > 75)]
    assert bad.empty
    assert any("broke the study's constraints" in w for w in d.warnings)


def test_blocking_2_3_factorial_confounds_abc():
    d = generate(cont(3), "full", blocks=2, seed=4)
    X, cols = model_matrix(d, "interactions")
    b = np.where(d.block_index() == 0, 1, -1)
    assert np.allclose(X[:, 1:].T @ b, 0)  # blocks orthogonal to mains and 2FIs
    assert sorted(d.table["Block"].value_counts().tolist()) == [4, 4]


def test_fold_over_resolution_iii_to_iv():
    d = generate(cont(7), "fractional", resolution=3, seed=0)
    f = fold_over(d)
    assert f.n_runs == 16
    Xi, _ = model_matrix(f, "interactions")
    assert np.allclose(Xi[:, 1:8].T @ Xi[:, 8:], 0)
    assert f.table["Run"].tolist()[:8] == d.table["Run"].tolist()


def test_add_axial_makes_ccd():
    d = generate(cont(2), "full", seed=0)
    c = add_axial(d, alpha="rotatable", center=3)
    assert c.n_runs == 4 + 4 + 3
    assert set(c.table.PointType) == {"factorial", "axial", "centre"}
    Xq, _ = model_matrix(c, "quadratic")
    assert np.linalg.matrix_rank(Xq) == 6


def test_centre_points_cycle_categorical_levels():
    s = make_study([{"name": "M", "kind": "categorical", "levels": ["a", "b"]}, {"name": "A", "low": 0, "high": 2}])
    d = generate(s, "full", center=4, seed=0)
    centres = d.table[d.table.PointType == "centre"]
    assert (centres["A"] == 1).all() and sorted(centres["M"]) == ["a", "a", "b", "b"]


def test_bad_options_messages(example_study):
    with pytest.raises(DesignError, match="Unknown design type"):
        generate(example_study, "taguchi")
    with pytest.raises(DesignError, match="whole number"):
        generate(cont(2), "full", center=-1)
    with pytest.raises(DesignError, match="at least 3 continuous"):
        generate(cont(2), "bbd")
