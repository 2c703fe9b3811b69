"""D- and I-optimal designs by coordinate exchange.

The engine implements the coordinate-exchange algorithm of Meyer & Nachtsheim
(1995): starting from a random feasible design, the coordinates (one factor of
one run) are changed one at a time to the candidate value that most improves
the criterion, until a full pass over the design brings no improvement. Here
all coordinates of a run are scored together and the best single-coordinate
change is made, repeatedly, before moving to the next run. Each random start
is followed by a few perturbation rounds (about 10 % of the runs redrawn at
random, exchange re-run, kept if better: an iterated local search around the
start's optimum), and the best design over all starts is kept.

Candidate values per coordinate:

- categorical factor: its levels (level index 0..k-1);
- discrete factor: its levels, coded -1..+1;
- continuous factor: a grid whose size follows the highest power of the factor
  in the model -- power 1: {-1, 1}; power 2: {-1, -0.5, 0, 0.5, 1}; power 3 or a
  factor named in a study constraint: 21 points -- unless ``levels=`` overrides.

Every candidate row is checked against the study's constraints with
``study.feasible(actual_frame(study, rows))``, vectorised over the whole
candidate grid (or per coordinate when the grid is too large to hold).

Exchanges are scored with rank-one updates (Atkinson, Donev & Tobias 2007,
ch. 12): replacing model row x by y multiplies det(X'X) by Fedorov's delta
``(1 + y'Dy)(1 - x'Dx) + (x'Dy)^2`` with ``D = (X'X)^-1``, and changes the
average prediction variance ``trace(M D)`` through two Sherman-Morrison steps,
``trace(M D2) = trace(M D1) - u'Mu / (1 + y'u)`` with ``u = D1 y`` (and the
same with the sign flipped for the removal of x), vectorised over all
candidate values of a coordinate.

Criteria (coded units, ``N`` runs, ``p`` model columns):

- ``d_criterion = det(X'X / N)^(1/p)``; ``100 * d_criterion`` is the
  D-efficiency JMP reports. AlgDesign's ``D`` is the same quantity on its own
  (raw) coding: for a quadratic in factors coded -2..2 it is ``8x`` ours.
- ``i_criterion = trace(M (X'X)^-1)``, the average over the design region of
  the prediction variance ``f(x)'(X'X)^-1 f(x)`` in units of sigma^2, with ``M``
  the moment matrix of the region (:func:`moment_matrix`). AlgDesign's ``I``
  is ``N`` times this value, with ``M`` taken over its candidate list.

References
----------
Meyer, R. K. & Nachtsheim, C. J. (1995). The coordinate-exchange algorithm for
constructing exact optimal experimental designs. Technometrics 37(1), 60-69.

Atkinson, A. C., Donev, A. N. & Tobias, R. D. (2007). Optimum Experimental
Designs, with SAS. Oxford University Press.
"""

from __future__ import annotations

import importlib
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from doe.errors import DesignError, did_you_mean, quoted_list
from doe.model import ModelMatrix, Term, actual_frame, effect_codes, max_power
from doe.region import moment_matrix


def _c_einsum() -> Callable[..., np.ndarray]:
    """np.einsum without its Python wrapper (same routine, same numbers); np.einsum if it moved."""
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy >= 2, numpy < 2
        try:
            return cast("Callable[..., np.ndarray]", importlib.import_module(name).c_einsum)
        except (ImportError, AttributeError):  # pragma: no cover - another numpy layout
            continue
    return np.einsum  # pragma: no cover


_einsum = _c_einsum()

if TYPE_CHECKING:
    from doe.study import Factor, Study

#: Largest candidate grid (rows x model columns) held in memory (~100 MB of floats).
GRID_MAX_CELLS = 12_000_000
#: Safety cap on the search time (seconds) when ``time_limit`` is not given.
DEFAULT_TIME_CAP = 60.0
#: Points of the fine grid used for cubic terms and for factors named in constraints.
FINE_GRID = 21
_MAX_PASSES = 100
#: Perturbation rounds per random start (iterated coordinate exchange).
DEFAULT_ROUNDS = 10
_TOL = 1e-9
_DEFAULT_SEARCH_SECONDS = 2.0


@dataclass
class OptimalResult:
    """An optimal design in coded units and its criteria.

    Attributes
    ----------
    U : ndarray
        Coded array, runs x factors (fixed runs first, then new runs):
        numeric factors coded -1..+1, categorical factors as level index.
    blocks : ndarray or None
        Block index 0..B-1 of each run, or None without blocks.
    criterion : str
        "D" or "I", the criterion optimised.
    d_criterion : float
        ``det(X'X/N)^(1/p)`` in coded units, computed from scratch.
    i_criterion : float
        ``trace(M (X'X)^-1)``, the average prediction variance over the region.
    starts : int
        Random starts completed.
    seconds : float
        Wall-clock time of the search.
    """

    U: np.ndarray
    blocks: np.ndarray | None
    criterion: str
    d_criterion: float
    i_criterion: float
    starts: int
    seconds: float
    columns: list[str] = field(default_factory=list)
    levels: dict[str, list[float]] = field(default_factory=dict)
    stopped_by_time: bool = False

    @property
    def d_efficiency(self) -> float:
        """D-efficiency in percent: ``100 * d_criterion``."""
        return 100.0 * self.d_criterion


# -- public API ----------------------------------------------------------------------
def optimal_design(
    study: Study,
    terms: list[Term],
    runs: int,
    criterion: str = "D",
    *,
    seed: int | None = None,
    starts: int | None = None,
    time_limit: float | None = None,
    fixed: np.ndarray | None = None,
    fixed_blocks: np.ndarray | None = None,
    n_blocks: int = 1,
    levels: dict[str, Any] | int | None = None,
    new_blocks: np.ndarray | None = None,
    rounds: int | None = None,
) -> OptimalResult:
    """D- or I-optimal exact design by coordinate exchange (Meyer & Nachtsheim 1995).

    Parameters
    ----------
    study : Study
        Factors and constraints; every new run satisfies the constraints.
    terms : list of Term
        Model terms (the intercept is always included).
    runs : int
        Total number of runs of the design, fixed runs included.
    criterion : {"D", "I"}
        Maximise ``det(X'X)`` or minimise ``trace(M (X'X)^-1)``.
    seed : int, optional
        Seed of the random starts; the same seed and ``starts`` give the same design.
    starts : int, optional
        Number of random starts. By default a fixed number chosen from the
        problem size (deterministic), so a seeded call is reproducible.
    time_limit : float, optional
        Safety cap in seconds (default :data:`DEFAULT_TIME_CAP`); when it stops
        the search early the result depends on the machine's speed. To search
        "as long as T seconds allow", pass a large ``starts`` and ``time_limit=T``.
    fixed : ndarray, optional
        Coded runs that must be part of the design (kept unchanged, listed first).
    fixed_blocks : ndarray, optional
        Block index (0..n_blocks-1) of each fixed run; default block 0.
    n_blocks : int
        Number of blocks; block effects are model columns and runs are split
        as evenly as possible into blocks, membership fixed during the search.
    levels : dict or int, optional
        Candidate values in coded units per continuous factor name, or an
        integer number of equally spaced grid points for every continuous factor.
    new_blocks : ndarray, optional
        Explicit block index of each new run (overrides the even split).
    rounds : int, optional
        Perturbation rounds per start (default :data:`DEFAULT_ROUNDS`): after
        the exchange converges, about 10 % of the runs are redrawn at random and
        the exchange re-run, keeping improvements. 0 gives the plain
        Meyer-Nachtsheim algorithm (one local optimum per start).

    Returns
    -------
    OptimalResult

    Raises
    ------
    DesignError
        Too few runs for the model, no feasible candidate, a term that the
        candidate levels cannot estimate, or a singular best design.

    References
    ----------
    Meyer & Nachtsheim (1995), Technometrics 37, 60-69; Atkinson, Donev &
    Tobias (2007), Optimum Experimental Designs, with SAS, ch. 12.
    """
    t0 = time.perf_counter()
    crit = _check_criterion(criterion)
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise DesignError(f"The seed must be a whole number >= 0; got {seed!r}.")
    problem = _Problem.create(study, terms, runs, crit, fixed, fixed_blocks, n_blocks, levels,
                              new_blocks)
    n_rounds = DEFAULT_ROUNDS if rounds is None else max(0, int(rounds))
    n_starts = _default_starts(problem, n_rounds) if starts is None else max(1, int(starts))
    cap = DEFAULT_TIME_CAP if time_limit is None else float(time_limit)
    K, done, stopped = _search(problem, n_starts, n_rounds, seed, t0 + cap)
    return _result(problem, K, done, stopped, time.perf_counter() - t0)


def augment_design(
    study: Study,
    terms: list[Term],
    existing_U: np.ndarray,
    add_runs: int,
    criterion: str = "D",
    *,
    seed: int | None = None,
    **kw: Any,
) -> OptimalResult:
    """Add ``add_runs`` runs chosen optimally to an existing design.

    The existing rows are fixed (kept unchanged, listed first) and the new
    rows are chosen by coordinate exchange given them (Atkinson, Donev &
    Tobias 2007, sec. 19.2 "augmentation of designs").

    Parameters
    ----------
    study, terms, criterion, seed
        As for :func:`optimal_design`.
    existing_U : ndarray
        Coded array of the runs already made.
    add_runs : int
        Number of runs to add.
    **kw
        Further keyword arguments of :func:`optimal_design` (``starts``,
        ``fixed_blocks``, ``n_blocks``, ``levels``, ...).

    Returns
    -------
    OptimalResult
        ``U[:len(existing_U)]`` equals ``existing_U``.
    """
    existing = np.atleast_2d(np.asarray(existing_U, dtype=float))
    if int(add_runs) < 1:
        raise DesignError(f"Augmentation adds at least 1 run; got {add_runs}.")
    return optimal_design(study, terms, len(existing) + int(add_runs), criterion, seed=seed,
                          fixed=existing, **kw)


# -- the problem -------------------------------------------------------------------------
@dataclass
class _Problem:
    """Everything the exchange needs, in internal column order (blocks last)."""

    study: Study
    mm: ModelMatrix
    criterion: str
    space: _GridSpace | _LazySpace
    fixed_U: np.ndarray
    fixed_b: np.ndarray
    new_b: np.ndarray
    fixed_XtX: np.ndarray
    bcodes: np.ndarray | None
    moments: np.ndarray
    M: np.ndarray
    levels: list[np.ndarray]

    @classmethod
    def create(cls, study: Study, terms: list[Term], runs: int, crit: str, fixed: Any,
               fixed_blocks: Any, n_blocks: int, levels: Any, new_blocks: Any) -> _Problem:
        mm = ModelMatrix(study, terms, int(n_blocks))
        fixed_U, fixed_b = _fixed_rows(study, fixed, fixed_blocks, mm.n_blocks)
        n_new = _check_runs(mm, runs, len(fixed_U))
        new_b = _allocate_blocks(n_new, mm.n_blocks, fixed_b, new_blocks)
        cand = candidate_levels(study, terms, levels)
        check_estimable(study, terms, cand)
        perm = _internal_order(mm)
        M = moment_matrix(study, mm)
        nb = mm.n_blocks - 1
        bcodes = effect_codes(mm.n_blocks)[new_b] if nb else None
        fixed_X = mm.build(fixed_U, fixed_b)[:, perm] if len(fixed_U) else np.zeros((0, mm.p))
        fixed_XtX = fixed_X.T @ fixed_X
        space = _make_space(study, ModelMatrix(study, terms, 1), cand)
        return cls(study, mm, crit, space, fixed_U, fixed_b, new_b, fixed_XtX, bcodes, M,
                   M[np.ix_(perm, perm)], cand)

    @property
    def n_new(self) -> int:
        return len(self.new_b)

    def rows(self, K: np.ndarray) -> np.ndarray:
        """Model rows (internal order) of the new runs with level indices K."""
        X = self.space.rows(K)
        return X if self.bcodes is None else np.hstack([X, self.bcodes])


def _check_criterion(criterion: str) -> str:
    crit = str(criterion).strip().upper()
    if crit not in ("D", "I"):
        raise DesignError(f"The optimality criterion must be 'D' or 'I'; got '{criterion}'.")
    return crit


def _check_runs(mm: ModelMatrix, runs: int, n_fixed: int) -> int:
    """Number of new runs; DesignError when the design cannot estimate the model."""
    p = mm.p
    if int(runs) < p:
        raise DesignError(
            f"The model has {p} terms; a design needs at least {p} runs; ask for at least {p} "
            f"({p + 5} recommended for an error estimate). You asked for {int(runs)} runs."
        )
    if int(runs) < n_fixed:
        raise DesignError(f"The design has {n_fixed} fixed runs, more than the {int(runs)} runs asked for.")
    return int(runs) - n_fixed


def _fixed_rows(study: Study, fixed: Any, fixed_blocks: Any, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated fixed runs (coded) and their block indices."""
    k = len(study.factors)
    if fixed is None or len(fixed) == 0:
        return np.zeros((0, k)), np.zeros(0, dtype=int)
    U = np.atleast_2d(np.asarray(fixed, dtype=float))
    if U.shape[1] != k or not np.isfinite(U).all():
        raise DesignError(f"Fixed runs must be a finite coded array with {k} columns (one per factor).")
    for j, f in enumerate(study.factors):
        if f.is_categorical and not np.isin(U[:, j], np.arange(len(f.levels))).all():
            raise DesignError(
                f"Fixed runs: column '{f.name}' must hold level indices 0..{len(f.levels) - 1}."
            )
    b = np.zeros(len(U), dtype=int) if fixed_blocks is None else np.asarray(fixed_blocks, dtype=int)
    if len(b) != len(U) or (len(b) and (b.min() < 0 or b.max() >= n_blocks)):
        raise DesignError(f"Give one block index 0..{n_blocks - 1} per fixed run.")
    return U, b


def _allocate_blocks(n_new: int, n_blocks: int, fixed_b: np.ndarray, new_blocks: Any) -> np.ndarray:
    """Blocks of the new runs: explicit, or filling the smallest block first (even split)."""
    if new_blocks is not None:
        b = np.asarray(new_blocks, dtype=int)
        if len(b) != n_new or (n_new and (b.min() < 0 or b.max() >= n_blocks)):
            raise DesignError(f"Give one block index 0..{n_blocks - 1} per new run ({n_new}).")
        return np.sort(b, kind="stable")
    counts = np.bincount(fixed_b, minlength=n_blocks)
    out = np.empty(n_new, dtype=int)
    for i in range(n_new):
        out[i] = int(np.argmin(counts))
        counts[out[i]] += 1
    return np.sort(out, kind="stable")


def _internal_order(mm: ModelMatrix) -> np.ndarray:
    """Column permutation ModelMatrix order -> internal order (block columns last)."""
    nb = mm.n_blocks - 1
    order: np.ndarray = np.r_[0, np.arange(1 + nb, mm.p), np.arange(1, 1 + nb)].astype(int)
    return order


# -- candidate levels ---------------------------------------------------------------------
def candidate_levels(study: Study, terms: list[Term], levels: Any) -> list[np.ndarray]:
    """Candidate coded values of each factor (see the module docstring); shared with :mod:`doe.split_plot`.

    ``levels``: None (the rule by model power and constraints), a number of grid points, or a
    ``{factor: coded values}`` mapping for continuous factors.
    """
    constrained = {name for c in study.constraints for name in getattr(c, "_names", {}).values()}
    _check_level_keys(study, levels)
    out = []
    for f in study.factors:
        if f.is_categorical:
            out.append(np.arange(len(f.levels), dtype=float))
        elif f.kind == "discrete":
            out.append(np.unique(f.to_coded(f.levels)))
        else:
            out.append(_continuous_levels(f, max_power(terms, f.name), f.name in constrained, levels))
    return out


def _check_level_keys(study: Study, levels: Any) -> None:
    if not isinstance(levels, dict):
        return
    continuous = [f.name for f in study.factors if f.kind == "continuous"]
    for name in levels:
        if name not in continuous:
            raise DesignError(
                f"levels= names '{name}', which is not a continuous factor."
                f"{did_you_mean(str(name), continuous)} Continuous factors: {quoted_list(continuous)}."
            )


def _continuous_levels(f: Factor, power: int, constrained: bool, levels: Any) -> np.ndarray:
    if isinstance(levels, dict) and f.name in levels:
        values = np.unique(np.asarray(levels[f.name], dtype=float))
        if values.size == 0 or not np.isfinite(values).all() or np.abs(values).max() > 1 + 1e-12:
            raise DesignError(f"Candidate levels of '{f.name}' must be coded values in -1..+1.")
        return values
    if isinstance(levels, (int, np.integer)) and not isinstance(levels, bool):
        if levels < 2:
            raise DesignError(f"A candidate grid needs at least 2 points; got {levels}.")
        return np.round(np.linspace(-1.0, 1.0, int(levels)), 12)
    if levels is not None and not isinstance(levels, dict):
        raise DesignError("levels= must be a number of grid points or a {factor: coded values} mapping.")
    if power >= 3 or constrained:
        return np.round(np.linspace(-1.0, 1.0, FINE_GRID), 12)
    return np.linspace(-1.0, 1.0, 5) if power == 2 else np.array([-1.0, 1.0])


def check_estimable(study: Study, terms: list[Term], levels: list[np.ndarray]) -> None:
    """A power-m term needs at least m + 1 distinct levels of its factor (DesignError saying what to change);
    shared with :mod:`doe.split_plot`."""
    index = {n: i for i, n in enumerate(study.factor_names)}
    for t in terms:
        for name, power in t.parts:
            n_lv = len(levels[index[name]])
            if power >= n_lv:
                raise DesignError(
                    f"The term '{t.name}' cannot be estimated: {name} takes only {n_lv} level"
                    f"{'s' if n_lv != 1 else ''}, and a power-{power} term needs at least "
                    f"{power + 1}. Remove '{t.name}' from the model or give {name} more levels."
                )


# -- candidate spaces ------------------------------------------------------------------------
class LevelRows:
    """Model rows of grid points given as level indices, from per-factor tables of basis values.

    Every column of a model matrix is a product of one basis value per factor of its
    term (the factor's coded value to a power, or one effect code of a categorical
    factor). The basis values of every candidate level are computed once, by
    :meth:`ModelMatrix.build <doe.model.ModelMatrix.build>` itself on one-factor
    terms; a row is then the run's basis vector ``z`` gathered into the columns and
    multiplied factor by factor in the term's order, with 1.0 padding shorter terms:
    the same floating-point products as ``ModelMatrix.build``, so the same numbers
    bit for bit. The candidate rows of a run (one factor moved to each of its levels)
    are ``z`` with that factor's basis values replaced: one gather and a product per
    extra factor of the longest term, instead of a model-matrix build per run.
    Without blocks only (``mm.n_blocks == 1``).
    """

    def __init__(self, mm: ModelMatrix, levels: list[np.ndarray]):
        if mm.n_blocks != 1:
            raise ValueError("LevelRows builds model rows without block columns")
        study = mm.study
        k = len(levels)
        index = {n: i for i, n in enumerate(study.factor_names)}
        keys: list[list[tuple[str, int]]] = [[] for _ in range(k)]
        for t in mm.terms:
            for name, power in t.parts:
                if (name, power) not in keys[index[name]]:
                    keys[index[name]].append((name, power))
        flat: list[np.ndarray] = []
        base: list[int] = []
        fac: list[int] = []
        width: list[int] = []
        where: dict[tuple[str, int], int] = {}  # first component of each basis
        sizes: dict[tuple[str, int], int] = {}
        size = 0
        for j, lv in enumerate(levels):
            if not keys[j]:
                continue
            U = np.zeros((len(lv), k))
            U[:, j] = lv
            table = ModelMatrix(study, [Term((key,)) for key in keys[j]]).build(U)[:, 1:]
            w = table.shape[1]
            start = len(base)
            for key in keys[j]:
                sizes[key] = ModelMatrix(study, [Term((key,))]).p - 1
                where[key] = start + sum(sizes[q] for q in keys[j][: keys[j].index(key)])
            base += [size + c for c in range(w)]
            fac += [j] * w
            width += [w] * w
            flat.append(table.ravel())
            size += table.size
        one = len(base)  # the constant component 1.0, last
        flat.append(np.ones(1))
        base.append(size)
        fac.append(0)
        width.append(0)
        #: all basis values, and where component c of a run with level indices K sits in it
        self.table = np.concatenate(flat)
        self.base, self.fac, self.width = np.array(base), np.array(fac), np.array(width)
        degree = max([len(t.parts) for t in mm.terms] or [1])
        parts = [[one] * degree]  # the intercept
        for t in mm.terms:
            ranges = [range(where[key], where[key] + sizes[key]) for key in t.parts]
            parts += [list(combo) + [one] * (degree - len(combo)) for combo in itertools.product(*ranges)]
        #: component of each model column (rows) for each factor of its term (columns)
        self.parts = np.array(parts, dtype=np.intp).T.copy()
        self.p = len(parts)
        self.levels = levels

    def components(self, K: np.ndarray) -> np.ndarray:
        """Basis vectors ``z`` (last entry 1.0) of the grid points K (level indices, ``(..., k)``)."""
        Z: np.ndarray = self.table[self.base + K[..., self.fac] * self.width]
        return Z

    def multiply(self, Z: np.ndarray) -> np.ndarray:
        """Model rows from basis vectors: the products over each column's factors, in the term's order."""
        X: np.ndarray = Z[..., self.parts[0]]
        for cols in self.parts[1:]:
            X *= Z[..., cols]
        return X

    def rows(self, K: np.ndarray) -> np.ndarray:
        """Model rows of the grid points K (level indices), as ``ModelMatrix.build`` of their settings."""
        return self.multiply(self.components(np.asarray(K, dtype=np.intp)))

    def moves(self, cj: np.ndarray, cl: np.ndarray) -> _LevelMoves:
        """The single-coordinate moves (factor ``cj[c]`` to level ``cl[c]``) in basis terms."""
        return _LevelMoves(self, cj, cl)


class _LevelMoves:
    """Candidate rows of a run for fixed moves: the run's basis vector with one factor's values replaced.

    The basis values of the moved factor are constants of the move; each model column of
    each move reads every factor of its term either from the run's basis vector ``z``
    or from these constants, through index arrays ``source[d]`` (one per factor position
    d of the terms) into ``[z, constants]``.
    """

    def __init__(self, rows: LevelRows, cj: np.ndarray, cl: np.ndarray):
        self.rows = rows
        n_comp = len(rows.base)
        cand, comp = np.nonzero(rows.fac[None, :-1] == cj[:, None])
        #: basis value of the moved factor, per (move, component) replaced
        self.constants = rows.table[rows.base[comp] + cl[cand] * rows.width[comp]]
        slot = np.full((len(cj), n_comp), -1, dtype=np.intp)
        slot[cand, comp] = n_comp + np.arange(len(cand))
        self.source = np.empty((len(rows.parts), len(cj), rows.p), dtype=np.intp)
        for d, cols in enumerate(rows.parts):
            own = slot[:, cols]
            self.source[d] = np.where(own >= 0, own, cols[None, :])

    def extended(self, K: np.ndarray) -> np.ndarray:
        """``[z, constants]`` of every run (rows of K, level indices), ``(runs, components + constants)``."""
        Z = self.rows.components(np.asarray(K, dtype=np.intp))
        return np.concatenate([Z, np.broadcast_to(self.constants, (len(Z), len(self.constants)))], axis=1)

    def candidates(self, K: np.ndarray) -> np.ndarray:
        """Model rows of every move of every run, ``(runs, moves, p)``; K is ``(runs, k)`` level indices."""
        ext = self.extended(K)
        Y: np.ndarray = ext.take(self.source[0], axis=1)
        for src in self.source[1:]:
            Y *= ext.take(src, axis=1)
        return Y

    def update(self, ext: np.ndarray, krow: np.ndarray, out: np.ndarray) -> None:
        """Refresh one run's ``ext`` row for its level indices ``krow`` and write its candidate rows to ``out``.

        ``out`` is a C-contiguous ``(moves, p)`` array; the numbers are those of :meth:`candidates`.
        """
        rows = self.rows
        rows.table.take(rows.base + krow[rows.fac] * rows.width, out=ext[:len(rows.base)])
        ext.take(self.source[0], out=out)
        for src in self.source[1:]:
            np.multiply(out, ext.take(src), out=out)


class _Space:
    """Candidate levels of each factor and the single-coordinate moves of a run."""

    def __init__(self, study: Study, mm1: ModelMatrix, levels: list[np.ndarray]):
        self.study, self.mm1, self.levels = study, mm1, levels
        self.constrained = bool(study.constraints)
        self.shape = tuple(len(lv) for lv in levels)
        movable = [j for j, c in enumerate(self.shape) if c > 1]
        #: factor and level of each candidate move of a run (same for every run)
        self.cj = np.concatenate([np.full(self.shape[j], j) for j in movable] or [np.zeros(0, int)])
        self.cl = np.concatenate([np.arange(self.shape[j]) for j in movable] or [np.zeros(0, int)])


class _GridSpace(_Space):
    """The full candidate grid, its model rows and feasibility, held in memory."""

    def __init__(self, study: Study, mm1: ModelMatrix, levels: list[np.ndarray]):
        super().__init__(study, mm1, levels)
        self.strides = np.array([math.prod(self.shape[j + 1:]) for j in range(len(levels))])
        self.moves = self.cl * self.strides[self.cj]
        K = np.indices(self.shape).reshape(len(levels), -1).T
        U = _values(levels, K)
        self.X = np.ascontiguousarray(mm1.build(U))
        self.ok = np.asarray(_feasible(study, U), dtype=bool)
        self.feasible_index = np.flatnonzero(self.ok)
        #: grid-index step of each candidate move per level step of factor f (0 for f's own moves)
        self.shift = np.array([np.where(self.cj == j, 0, self.strides[j]) for j in range(len(levels))],
                              dtype=self.moves.dtype).reshape(len(levels), len(self.cj))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Level indices of n random feasible grid points."""
        if n == 0:
            return np.zeros((0, len(self.shape)), dtype=int)
        if self.feasible_index.size == 0:
            raise DesignError(_NO_FEASIBLE)
        pick = rng.choice(self.feasible_index, size=n)
        return np.array(np.unravel_index(pick, self.shape)).T.astype(int)

    def rows(self, K: np.ndarray) -> np.ndarray:
        """Model rows of the grid points K (level indices)."""
        rows: np.ndarray = self.X[K @ self.strides]
        return rows

    def candidates(self, krow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = krow * self.strides
        idx = (pos.sum() - pos[self.cj]) + self.moves
        return self.X[idx], self.ok[idx]

    def indices(self, K: np.ndarray) -> np.ndarray:
        """Grid index of every candidate move of every run (rows of K), ``(runs, candidates)``.

        Row i holds the indices of :meth:`candidates` of ``K[i]``.
        """
        pos = K * self.strides
        index: np.ndarray = (pos.sum(axis=1)[:, None] - pos[:, self.cj]) + self.moves
        return index


class _LazySpace(_Space):
    """Candidate rows built on demand, for grids too large to hold in memory.

    Model rows come from :class:`LevelRows` (the same numbers as the model-matrix
    build, without its per-term work); feasibility, with constraints only, from the study.
    """

    def __init__(self, study: Study, mm1: ModelMatrix, levels: list[np.ndarray]):
        super().__init__(study, mm1, levels)
        self.level_rows = LevelRows(mm1, levels)
        self.level_moves = self.level_rows.moves(self.cj, self.cl)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Rejection-sample n feasible points of the grid (level indices)."""
        found: list[np.ndarray] = []
        if n == 0:
            return np.zeros((0, len(self.shape)), dtype=int)
        for _ in range(200):
            K = np.column_stack([rng.integers(0, c, size=max(4 * n, 256)) for c in self.shape])
            found.extend(K[_feasible(self.study, _values(self.levels, K))])
            if len(found) >= n:
                return np.array(found[:n], dtype=int)
        raise DesignError(_NO_FEASIBLE)

    def rows(self, K: np.ndarray) -> np.ndarray:
        """Model rows of the grid points K (level indices)."""
        return self.level_rows.rows(K)

    def candidates(self, krow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model rows and feasibility of every single-coordinate move of the run ``krow``."""
        Y = self.level_moves.candidates(krow[None, :])[0]
        return Y, self.feasible_moves(krow)

    def all_candidates(self, K: np.ndarray) -> np.ndarray:
        """Model rows of every move of every run (rows of K), ``(runs, candidates, p)``."""
        return self.level_moves.candidates(K)

    def feasible_moves(self, krow: np.ndarray) -> np.ndarray:
        """Feasibility of every single-coordinate move of the run ``krow`` (all True without constraints)."""
        if not self.constrained:
            return np.ones(len(self.cj), dtype=bool)
        K = np.repeat(krow[None, :], len(self.cj), axis=0)
        K[np.arange(len(self.cj)), self.cj] = self.cl
        return np.asarray(_feasible(self.study, _values(self.levels, K)), dtype=bool)


class _Moves:
    """Candidate rows of every new run, ``Y[i]`` for run i, kept up to date as runs change.

    ``Y`` is ``(runs, candidates, p)`` (block codes included) and holds the
    same values as :meth:`_Space.candidates`; ``ok`` (True = feasible) is
    None without constraints. On the in-memory grid a change of factor f of
    run i moves the grid index of every candidate by the same step, except the
    candidates of factor f itself, so the rows are gathered again without
    recomputing the indices. Off the grid, a change of run i refreshes its basis
    vector and multiplies its candidate rows out again (:class:`LevelRows`), the
    same numbers as a model-matrix build of the candidate settings.
    """

    def __init__(self, problem: _Problem, K: np.ndarray):
        space = problem.space
        n, c, p = len(K), len(space.cj), problem.mm.p
        self.problem, self.K = problem, K
        self.p1 = p - (0 if problem.bcodes is None else problem.bcodes.shape[1])
        self.Y = np.empty((n, c, p))
        self.ok = np.zeros((n, c), dtype=bool) if space.constrained else None
        if problem.bcodes is not None:
            self.Y[:, :, self.p1:] = problem.bcodes[:, None, :]
        #: the in-memory grid, or None when candidates are built on demand
        self.grid: _GridSpace | None = space if isinstance(space, _GridSpace) else None
        if isinstance(space, _GridSpace):
            self.idx = space.indices(K)
            self.Y[:, :, :self.p1] = space.X[self.idx]
            if self.ok is not None:
                self.ok[:] = space.ok[self.idx]
            self.rows = self.Y if problem.bcodes is None else None
        else:
            self.lazy = space
            #: ``[z, constants]`` of every run, kept with K (see :class:`_LevelMoves`)
            self.ext = space.level_moves.extended(K)
            self.Y[:, :, :self.p1] = space.level_moves.candidates(K)
            if self.ok is not None:
                for i in range(n):
                    self.ok[i] = space.feasible_moves(K[i])

    def _build(self, K: np.ndarray, i: int) -> None:
        """Candidate rows (and feasibility) of run i, off the grid: only run i's basis vector is refreshed."""
        space = self.lazy
        if self.p1 == self.Y.shape[2]:
            space.level_moves.update(self.ext[i], K[i], self.Y[i])
        else:
            out = np.empty(self.Y.shape[1:2] + (self.p1,))
            space.level_moves.update(self.ext[i], K[i], out)
            self.Y[i, :, :self.p1] = out
        if self.ok is not None:
            self.ok[i] = space.feasible_moves(K[i])

    def change(self, i: int, f: int, step: int) -> None:
        """Factor f of run i moved by ``step`` level indices (``K`` updated): rebuild its candidates."""
        space = self.grid
        if space is None:
            self._build(self.K, i)
            return
        idx = self.idx[i]
        idx += step * space.shift[f]
        if self.rows is not None:
            space.X.take(idx, axis=0, out=self.rows[i], mode="clip")
        else:
            self.Y[i, :, :self.p1] = space.X[idx]
        if self.ok is not None:
            space.ok.take(idx, out=self.ok[i], mode="clip")


_NO_FEASIBLE = (
    "No candidate setting satisfies the study's constraints: relax a constraint, or give "
    "the constrained factors finer candidate levels."
)


def _make_space(study: Study, mm1: ModelMatrix, levels: list[np.ndarray]) -> _GridSpace | _LazySpace:
    size = math.prod(len(lv) for lv in levels)
    if size * mm1.p <= GRID_MAX_CELLS:
        return _GridSpace(study, mm1, levels)
    return _LazySpace(study, mm1, levels)


def _values(levels: list[np.ndarray], K: np.ndarray) -> np.ndarray:
    """Coded array from level indices."""
    return np.column_stack([lv[K[:, j]] for j, lv in enumerate(levels)])


def _feasible(study: Study, U: np.ndarray) -> np.ndarray:
    """Constraint check of coded rows, via the study on actual settings."""
    if not study.constraints:
        return np.ones(len(U), dtype=bool)
    return study.feasible(actual_frame(study, U))


# -- search ------------------------------------------------------------------------------------
def _default_starts(problem: _Problem, rounds: int) -> int:
    """Random starts from the problem size, for a search of about two seconds.

    One start (exchange plus perturbation rounds) costs roughly
    ``3 ms x runs x (1 + candidates x p^2 / 5e4)`` on one core (twice that for
    I); the count is clipped to 4..20. Deterministic: it depends on the problem
    only, so a seeded call is reproducible.
    """
    n_cand = len(problem.space.cj)
    cost = 3e-3 * max(problem.n_new, 1) * (1.0 + n_cand * problem.mm.p ** 2 / 5e4)
    cost *= (1 + rounds) / (1 + DEFAULT_ROUNDS) * (1.0 if problem.criterion == "D" else 2.0)
    return int(np.clip(round(_DEFAULT_SEARCH_SECONDS / cost), 4, 20))


def _search(problem: _Problem, n_starts: int, rounds: int, seed: int | None,
            deadline: float) -> tuple[np.ndarray, int, bool]:
    """Best level-index array over random starts; (K, starts done, stopped by time).

    Start s draws from its own generator (``SeedSequence(seed).spawn``), so
    the first s starts of a longer search are the same as those of a shorter one.
    """
    best_K: np.ndarray | None = None
    best_score, done, stopped = -np.inf, 0, False
    root = np.random.SeedSequence(seed)
    for _ in range(n_starts):
        if done and time.perf_counter() > deadline:
            stopped = True
            break
        K, score = _one_start(problem, np.random.default_rng(root.spawn(1)[0]), rounds, deadline)
        done += 1
        if best_K is None or score > best_score:
            best_K, best_score = K, score
    if best_K is None:  # only for n_starts < 1, which the callers never ask for
        raise ValueError("the search needs at least one start")
    return best_K, done, stopped


def _one_start(problem: _Problem, rng: np.random.Generator, rounds: int,
               deadline: float) -> tuple[np.ndarray, float]:
    """Coordinate exchange from a random feasible design, then perturbation rounds.

    Each round redraws about 10 % of the runs at random, re-runs the exchange
    and keeps the result when it is better (iterated local search around the
    start's local optimum; cheaper per improvement than a fresh start).
    """
    n = problem.n_new
    K, score = _coordinate_exchange(problem, problem.space.sample(rng, n), deadline)
    m = min(n, max(1, round(0.1 * n)))
    for _ in range(rounds if n else 0):
        if time.perf_counter() > deadline:
            break
        trial = K.copy()
        trial[rng.choice(n, size=m, replace=False)] = problem.space.sample(rng, m)
        trial, value = _coordinate_exchange(problem, trial, deadline)
        if value > score:
            K, score = trial, value
    return K, score


def _coordinate_exchange(problem: _Problem, K: np.ndarray, deadline: float) -> tuple[np.ndarray, float]:
    """Meyer & Nachtsheim's coordinate exchange from K to a local optimum; returns (K, score)."""
    X = problem.rows(K)
    moves = _Moves(problem, K)
    for _ in range(_MAX_PASSES):
        A = problem.fixed_XtX + X.T @ X
        if not _exchange_pass(problem, K, X, moves, _inverse(A)) or time.perf_counter() > deadline:
            break
    return K, _score(problem, X)


def _inverse(A: np.ndarray) -> np.ndarray:
    """Inverse of A, adding a small ridge when A is (nearly) singular.

    The ridge only lets a singular random start be improved by the rank-one
    formulae; the next pass recomputes the inverse without it once A is regular.
    """
    try:
        Ainv = np.linalg.inv(A)
    except np.linalg.LinAlgError:
        Ainv = None
    # Shortcut of the eigenvalue test below, same outcome: the smallest
    # eigenvalue is at least 1 / ||A^-1||_F and the largest at most ||A||_F, so
    # a condition bound 100 times below the 1e-9 cut-off (far above rounding
    # errors) means the test passes and the answer is inv(A).
    if Ainv is not None and np.linalg.norm(Ainv) * max(float(np.linalg.norm(A)), 1.0) < 1e7:
        return Ainv
    w = np.linalg.eigvalsh(A)
    top = max(w[-1], 1.0)
    if w[0] > 1e-9 * top:
        return np.linalg.inv(A)
    return np.linalg.inv(A + 1e-5 * top * np.eye(len(A)))


#: Runs scored together in one batch of :func:`_exchange_pass`: first and most.
_FIRST_BATCH, _MAX_BATCH = 3, 32


def _exchange_pass(problem: _Problem, K: np.ndarray, X: np.ndarray, moves: _Moves,
                   Ainv: np.ndarray) -> int:
    """One pass over the runs; updates K, X, moves and Ainv in place; returns the exchanges made.

    All candidate values of all coordinates of run i are scored at once; the
    best single-coordinate change is made and the run is scored again, until
    no coordinate of the run improves the criterion.

    To save per-call overhead, several consecutive runs are scored in one
    batch with the current inverse. Each run's scores are the same numbers as
    when it is scored on its own (the batched products make the same BLAS call
    on each run's block), so the runs of the batch before the first one that
    improves are left unchanged exactly as a run-by-run pass would, and the
    next batch starts at the improved run with the updated inverse: the
    exchanges made are the same, in the same order. The batch doubles while
    runs do not improve and starts again from a few runs after an exchange.
    """
    is_d, M = problem.criterion == "D", problem.M
    trace = 1.0 if is_d else float(np.sum(M * Ainv))
    cj_list, cl_list = problem.space.cj.tolist(), problem.space.cl.tolist()
    Y, ok = moves.Y, moves.ok
    X3, XT = X[:, :, None], X[:, None, :]
    n = problem.n_new
    work = np.empty_like(Ainv)
    matmul, take_max = np.matmul, np.maximum.reduce
    changes, i, size, run, tries = 0, 0, _FIRST_BATCH, -1, 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while i < n:
            hi = min(n, i + size)
            Yb = Y[i:hi]
            ax = matmul(Ainv, X3[i:hi])
            xax = matmul(XT[i:hi], ax)[:, 0]
            AY = matmul(Yb, Ainv)
            dy = _einsum("rij,rij->ri", AY, Yb)
            dxy = matmul(Yb, ax)[:, :, 0]
            if is_d:
                gain = _d_gain(dy, xax, dxy)
            else:
                gain = _i_gain(M, ax, xax, AY, dy, dxy)
            if ok is None:
                better = take_max(gain, axis=1) > _TOL * trace
            else:
                better = take_max(gain, axis=1, where=ok[i:hi], initial=-np.inf) > _TOL * trace
            r = int(better.argmax())
            if not better[r]:
                i, size = hi, min(2 * size, _MAX_BATCH)
                continue
            j = i + r
            row = gain[r]
            best = int(row.argmax())
            if ok is not None and not ok[j, best]:  # else the first maximum is feasible
                row[~ok[j]] = -np.inf
                best = int(row.argmax())
            if j != run:
                run, tries = j, 0
            _update_inverse(Ainv, X[j], AY[r, best], dy[r, best], work)
            if not is_d:
                trace -= row[best]
            X[j] = Y[j, best]
            f = cj_list[best]
            old = int(K[j, f])
            K[j, f] = cl_list[best]
            moves.change(j, f, cl_list[best] - old)
            changes += 1
            tries += 1
            i = j + 1 if tries >= _MAX_PASSES else j
            size = _FIRST_BATCH
    return changes


def _d_gain(dy: np.ndarray, xax: np.ndarray, dxy: np.ndarray) -> np.ndarray:
    """Fedorov's delta - 1 for replacing x by y: the det ratio minus one.

    ``det(A - xx' + yy') / det(A) = (1 + y'Dy)(1 - x'Dx) + (x'Dy)^2`` with
    ``D = A^-1``, from ``dy = y'Dy`` (runs x candidates), ``xax = x'Dx``
    (runs x 1) and ``dxy = x'Dy``; ``dxy`` is overwritten.
    """
    gain = dy + 1.0
    gain *= 1.0 - xax
    dxy *= dxy
    gain += dxy
    gain -= 1.0
    return gain


def _i_gain(M: np.ndarray, ax: np.ndarray, xax: np.ndarray, AY: np.ndarray, dy: np.ndarray,
            dxy: np.ndarray) -> np.ndarray:
    """Decrease of trace(M (X'X)^-1) for replacing x by y.

    With ``D = (X'X)^-1``, adding y gives ``trace(M D1) = trace(M D) - a'Ma / (1 + y'a)``,
    ``a = D y``; removing x then gives ``trace(M D2) = trace(M D1) + b'Mb / (1 - x'b)``,
    ``b = D1 x = D x - a (x'a) / (1 + y'a)`` (two Sherman-Morrison steps).
    ``ax = Dx`` is ``(runs, p, 1)``, ``AY = YD`` ``(runs, candidates, p)``, the others
    as for :func:`_d_gain`.
    """
    s = dy + 1.0
    delta = s * (1.0 - xax)
    delta += dxy * dxy
    Max = np.matmul(M, ax)
    aMa = _einsum("rij,rij->ri", np.matmul(AY, M), AY)
    r = dxy / s
    bMb = np.matmul(ax.transpose(0, 2, 1), Max)[:, 0] - 2.0 * r * np.matmul(AY, Max)[:, :, 0]
    r *= r
    r *= aMa
    bMb += r
    gain = aMa / s
    bMb *= s
    bMb /= delta
    gain -= bMb
    gain[~(delta > 1e-10)] = -np.inf
    return gain


def _update_inverse(Ainv: np.ndarray, x: np.ndarray, ay: np.ndarray, dy: float,
                    work: np.ndarray | None = None) -> None:
    """(A - xx' + yy')^-1 from A^-1 by two Sherman-Morrison steps (add y, then remove x).

    ``Ainv -= outer(ay, ay) / (1 + dy)``, then with ``b = Ainv x``,
    ``Ainv += outer(b, b) / (1 - x'b)``; ``work`` is scratch space of Ainv's shape.
    """
    T = np.multiply(ay[:, None], ay, out=work)
    T /= 1.0 + dy
    Ainv -= T
    b = Ainv @ x
    np.multiply(b[:, None], b, out=T)
    T /= 1.0 - x @ b
    Ainv += T


def _score(problem: _Problem, X: np.ndarray) -> float:
    """Criterion from scratch, larger is better: log det(X'X) or -trace(M (X'X)^-1)."""
    A = problem.fixed_XtX + X.T @ X
    sign, logdet = np.linalg.slogdet(A)
    if sign <= 0 or not _full_rank(A):
        return -np.inf
    if problem.criterion == "D":
        return float(logdet)
    return -float(np.trace(problem.M @ np.linalg.inv(A)))


def _full_rank(A: np.ndarray) -> bool:
    w = np.linalg.eigvalsh(A)
    return bool(w[0] > 1e-10 * max(w[-1], 1.0))


# -- result ------------------------------------------------------------------------------------
def design_criteria(study: Study, mm: ModelMatrix, U: np.ndarray, blocks: np.ndarray | None = None,
                    moments: np.ndarray | None = None) -> tuple[float, float]:
    """D and I criteria of a coded design, from scratch.

    Parameters
    ----------
    study : Study
    mm : ModelMatrix
    U : ndarray
        Coded array, runs x factors.
    blocks : ndarray, optional
        Block index of each run (with ``mm.n_blocks > 1``).
    moments : ndarray, optional
        Moment matrix of the region; default :func:`moment_matrix`.

    Returns
    -------
    (float, float)
        ``det(X'X/N)^(1/p)`` and ``trace(M (X'X)^-1)``; (0, inf) for a singular design.
    """
    X = mm.build(U, blocks)
    A = X.T @ X
    if not _full_rank(A):
        return 0.0, math.inf
    M = moment_matrix(study, mm) if moments is None else moments
    logdet = np.linalg.slogdet(A)[1]
    d = float(np.exp(logdet / mm.p - math.log(len(X))))
    return d, float(np.trace(M @ np.linalg.inv(A)))


def _result(problem: _Problem, K: np.ndarray, done: int, stopped: bool, seconds: float) -> OptimalResult:
    """Assemble the result, computing both criteria from scratch on the ModelMatrix."""
    mm = problem.mm
    U = np.vstack([problem.fixed_U, _values(problem.levels, K)])
    blocks = np.concatenate([problem.fixed_b, problem.new_b]) if mm.n_blocks > 1 else None
    d, i = design_criteria(problem.study, mm, U, blocks, problem.moments)
    if d <= 0.0:
        raise DesignError(_singular_message(mm, mm.build(U, blocks)))
    levels = {f.name: [float(v) for v in lv] for f, lv in zip(problem.study.factors, problem.levels, strict=True)
              if f.kind == "continuous"}
    return OptimalResult(U, blocks, problem.criterion, d, i, done, seconds, list(mm.columns), levels,
                         stopped)


def _singular_message(mm: ModelMatrix, X: np.ndarray) -> str:
    """Name the model terms whose columns the design cannot separate from earlier ones."""
    Xs = X / np.maximum(np.linalg.norm(X, axis=0), 1e-300)
    bad: list[str] = []
    rank = 0
    for c in range(mm.p):
        r = np.linalg.matrix_rank(Xs[:, : c + 1], tol=1e-8)
        if r > rank:
            rank = r
        elif mm.column_term[c] not in bad:
            bad.append(mm.column_term[c])
    return (
        f"The best design found is singular: it cannot estimate {quoted_list(bad)} separately "
        "from the other terms (the constraints or the candidate levels leave too few distinct "
        "settings). Add runs, relax the constraints, or remove these terms from the model."
    )
