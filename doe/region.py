"""The design region: uniform random points and the moment matrix of a model over it.

The region is uniform on [-1, 1] for continuous factors and uniform over the
levels of discrete and categorical factors (and blocks), restricted to the
points that satisfy the study's constraints. Used by the optimal-design engine
(I-criterion) and by the design evaluation (average prediction variance, FDS).
"""

from __future__ import annotations

import numpy as np

from doe.errors import DesignError
from doe.model import ModelMatrix, actual_frame, effect_codes, max_power
from doe.recent import Recent
from doe.study import Factor, Study


def moment_matrix(study: Study, mm: ModelMatrix, n_mc: int = 20000, seed: int = 0, *,
                  method: str = "auto") -> np.ndarray:
    """Moment matrix ``M = E[f(x) f(x)']`` of the design region in coded units.

    The region is uniform on [-1, 1] for continuous factors and uniform over
    the levels of discrete and categorical factors (blocks: uniform over the
    blocks). Without constraints M is exact: model columns are products of
    per-factor functions, so M is the elementwise product of per-factor
    moment matrices (Gauss-Legendre quadrature, exact for polynomials, for
    continuous factors; E[x^k] = 1/(k+1) for even k, 0 for odd k). With
    constraints M is a Monte Carlo average over ``n_mc`` uniform points, of
    which the feasible ones are kept (Atkinson, Donev & Tobias 2007, sec. 10.6).

    Parameters
    ----------
    study : Study
    mm : ModelMatrix
    n_mc : int
        Monte Carlo sample size (constrained regions).
    seed : int
        Seed of the Monte Carlo sample.
    method : {"auto", "exact", "mc"}
        "auto": exact without constraints, Monte Carlo with them.

    Returns
    -------
    ndarray
        p x p symmetric matrix in the column order of ``mm``.
    """
    if method not in ("auto", "exact", "mc"):
        raise DesignError(f"Moment-matrix method must be auto, exact or mc; got '{method}'.")
    key = (study.to_yaml(), tuple(mm.columns), mm.n_blocks, int(n_mc), int(seed), method)
    M = _RECENT.get(key)
    if M is None:
        if method == "exact" or (method == "auto" and not study.constraints):
            M = _exact_moments(study, mm)
        else:
            U, blocks, _ = sample_region(study, mm.n_blocks, seed, int(n_mc))
            X = mm.build(U, blocks)
            M = X.T @ X / len(X)
            M = (M + M.T) / 2.0
        _RECENT.put(key, M)  # generating and evaluating a design need the same matrix: compute it once
    out: np.ndarray = M.copy()
    return out


_RECENT = Recent(16)


def sample_region(
    study: Study, n_blocks: int, seed: int, n: int = 20_000
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Uniform random feasible points of the region (and blocks); 'exact' if unconstrained."""
    rng = np.random.default_rng(seed)
    parts, have = [], 0
    for _ in range(50):
        draw = np.column_stack([_draw_factor(f, rng, n) for f in study.factors])
        if study.constraints:
            draw = draw[study.feasible(actual_frame(study, draw))]
        parts.append(draw)
        have += len(draw)
        if have >= n:
            break
    if have == 0:
        raise DesignError("No random point satisfies the constraints: relax a constraint.")
    sample = np.vstack(parts)[:n]
    b = rng.integers(0, n_blocks, size=len(sample)) if n_blocks > 1 else None
    return sample, b, ("monte carlo" if study.constraints else "exact")


def _draw_factor(f: Factor, rng: np.random.Generator, n: int) -> np.ndarray:
    if f.kind == "continuous":
        return rng.uniform(-1.0, 1.0, size=n)
    if f.is_categorical:
        return rng.integers(0, len(f.levels), size=n).astype(float)
    return rng.choice(f.to_coded(f.levels), size=n)


def _exact_moments(study: Study, mm: ModelMatrix) -> np.ndarray:
    """Elementwise product of per-factor moment matrices (independent uniform factors)."""
    M = np.ones((mm.p, mm.p))
    k = len(study.factors)
    for j, f in enumerate(study.factors):
        points, weights = _factor_rule(f, max_power(mm.terms, f.name))
        U = np.zeros((len(points), k))
        U[:, j] = points
        G = _contributions(mm, U, f.name)
        M *= (G * weights[:, None]).T @ G
    if mm.n_blocks > 1:
        G = np.ones((mm.n_blocks, mm.p))
        G[:, 1:mm.n_blocks] = effect_codes(mm.n_blocks)
        M *= G.T @ G / mm.n_blocks
    return (M + M.T) / 2.0


def _factor_rule(f: Factor, power: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights of the uniform distribution of one factor (exact quadrature)."""
    if f.is_categorical:
        n = len(f.levels)
        return np.arange(n, dtype=float), np.full(n, 1.0 / n)
    if f.kind == "discrete":
        values = f.to_coded(f.levels)
        return values, np.full(len(values), 1.0 / len(values))
    nodes, weights = np.polynomial.legendre.leggauss(max(power, 1) + 1)
    return nodes, weights / 2.0


def _contributions(mm: ModelMatrix, U: np.ndarray, name: str) -> np.ndarray:
    """Factor ``name``'s part of every model column (1 where a column does not involve it).

    Mirrors :meth:`ModelMatrix.build` column for column.
    """
    n = len(U)
    index = {f: i for i, f in enumerate(mm.study.factor_names)}
    cols = [np.ones((n, 1))] + ([np.ones((n, mm.n_blocks - 1))] if mm.n_blocks > 1 else [])
    for t in mm.terms:
        block = np.ones((n, 1))
        for f, p in t.parts:
            basis = _basis(mm.study.factor(f), U[:, index[f]], p)
            if f != name:
                basis = np.ones_like(basis)
            block = (block[:, :, None] * basis[:, None, :]).reshape(n, -1)
        cols.append(block)
    G = np.hstack(cols)
    if G.shape[1] != mm.p:
        raise RuntimeError("moment matrix columns do not match the model matrix")
    return G


def _basis(f: Factor, col: np.ndarray, power: int) -> np.ndarray:
    if f.is_categorical:
        codes: np.ndarray = effect_codes(len(f.levels))[col.astype(int)]
        return codes
    return (col ** power)[:, None]
