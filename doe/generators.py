"""Design generators: classical designs via pydoe, optimal designs via doe.optimal.

Every generator returns a :class:`doe.design.Design` in actual units with
standard order, run order (randomised within blocks with a recorded seed),
block and point type. :func:`generate` is the single entry point used by the
pages and the CLI.

References: Montgomery, *Design and Analysis of Experiments* (8th ed.) ch. 6-8,
11; Box, Hunter & Hunter (2005); Jones & Nachtsheim (2011) for definitive
screening designs; Myers, Montgomery & Anderson-Cook (2016) for CCD/BBD.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from doe import fractional, limits
from doe.design import Design, make_design
from doe.errors import DesignError
from doe.model import DEFAULT_MODEL, ModelMatrix, Term, default_model, parse_model
from doe.study import SUBPLOT, WHOLE_PLOT, Factor, Study

DESIGN_TYPES = ("full", "fractional", "pb", "dsd", "ccd", "bbd", "lhs", "optimal")
TYPE_LABELS = {
    "full": "Full factorial",
    "fractional": "Fractional factorial (2-level)",
    "pb": "Plackett-Burman screening",
    "dsd": "Definitive screening",
    "ccd": "Central composite (response surface)",
    "bbd": "Box-Behnken (response surface)",
    "lhs": "Latin hypercube (space-filling)",
    "optimal": "D- or I-optimal (custom)",
}
ALPHAS = ("rotatable", "orthogonal", "face", "inscribed")
#: The options each design type takes (besides ``seed``), in the order a form shows them; a form
#: offers these and no others for the type (:func:`generate` ignores options a type does not take).
TYPE_OPTIONS = {
    "full": ("model", "center", "replicates", "blocks"),
    "fractional": ("model", "resolution", "center", "replicates", "blocks"),
    "pb": ("model", "center", "replicates", "blocks"),
    "dsd": ("model", "center", "replicates", "blocks"),
    "ccd": ("model", "alpha", "center", "replicates", "blocks"),
    "bbd": ("model", "center", "replicates", "blocks"),
    "lhs": ("model", "runs", "replicates", "blocks"),
    "optimal": ("model", "runs", "criterion", "center", "replicates", "blocks"),
}
# Centre points Design-Expert suggests for CCDs and BBDs, by number of continuous factors; for BBDs of
# 9-12 and 16 factors, Box & Behnken's (1960) own number of centre points.
_CCD_CENTRES = {1: 3, 2: 5, 3: 6, 4: 7, 5: 6, 6: 9}
_BBD_CENTRES = {3: 5, 4: 5, 5: 6, 6: 6, 7: 6, 9: 10, 10: 10, 11: 12, 12: 12, 16: 12}


def new_seed() -> int:
    """A fresh seed to record with a design when the user gives none."""
    return secrets.randbelow(2**31 - 1)


def type_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` that design type ``kind`` takes (:data:`TYPE_OPTIONS`, plus the seed)."""
    keep = (*TYPE_OPTIONS[str(kind).strip().lower()], "seed")
    return {k: v for k, v in options.items() if k in keep}


def generate(study: Study, kind: str, **options: Any) -> Design:
    """Generate a design of ``kind`` (one of DESIGN_TYPES) for the study.

    Options (all optional): model, runs, criterion, resolution, alpha, center,
    replicates, blocks, seed, randomize, levels (for full factorials of
    continuous factors), starts.
    """
    kind = str(kind).strip().lower()
    if kind not in DESIGN_TYPES:
        raise DesignError(f"Unknown design type '{kind}'. Types are {', '.join(DESIGN_TYPES)}.")
    seed = options.get("seed")
    options["seed"] = new_seed() if seed is None else _whole(seed, "seed", 0)
    for key, low in (("center", 0), ("replicates", 1), ("blocks", 1), ("runs", 1)):
        if options.get(key) is not None:
            options[key] = _whole(options[key], key, low)
    limits.check_design_work(study, kind, options)  # before anything is allocated
    if study.split_plot and kind in _CLASSICAL:
        return _classical_split_plot(study, kind, **options)
    builder = {
        "full": full_factorial, "fractional": fractional_factorial, "pb": plackett_burman,
        "dsd": definitive_screening, "ccd": central_composite, "bbd": box_behnken,
        "lhs": latin_hypercube, "optimal": optimal,
    }[kind]
    design = builder(study, **{k: v for k, v in options.items() if v is not None})
    if study.split_plot and kind != "optimal":
        design.warnings.append(
            f"{', '.join(study.hard_to_change_factors)} {'is' if len(study.hard_to_change_factors) == 1 else 'are'} "
            f"marked hard to change, but a {TYPE_LABELS.get(kind, kind)} design has no split-plot form here: its runs "
            "are completely randomised, so the hard-to-change settings change from run to run. For whole plots "
            "choose the optimal type, a fractional or full factorial, or a central composite design.")
    return design


def _whole(value: Any, name: str, low: int) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise DesignError(f"{name} must be a whole number; got '{value}'.") from None
    if out != float(value) or out < low:
        raise DesignError(f"{name} must be a whole number >= {low}; got '{value}'.")
    return out


# -- shared finishing steps -------------------------------------------------------
def _centre_rows(study: Study, n: int) -> np.ndarray:
    """Centre runs: numeric factors at the middle, categorical levels in turn."""
    rows = np.zeros((n, len(study.factors)))
    for j, f in enumerate(study.factors):
        if f.is_categorical:
            rows[:, j] = np.arange(n) % len(f.levels)
        elif f.kind == "discrete":
            rows[:, j] = _snap(f, np.zeros(n))
    return rows


def _snap(f: Factor, coded: np.ndarray) -> np.ndarray:
    """Coded values of a discrete factor moved to its nearest level."""
    levels = f.to_coded(f.levels)
    snapped: np.ndarray = levels[np.argmin(np.abs(np.asarray(coded)[:, None] - levels[None, :]), axis=1)]
    return snapped


def _finish(
    study: Study, U: np.ndarray, types: list[str], kind: str, *, seed: int,
    center: int = 0, replicates: int = 1, blocks: int = 1, randomize: bool = True,
    block_of: np.ndarray | None = None, model_terms: list[Term] | None = None,
    info: dict[str, Any] | None = None, warnings: list[str] | None = None, model: str | None = None,
    **_: Any,
) -> Design:
    """Replicate, add centre points, drop infeasible runs (with a warning), block, randomise."""
    info, warnings = dict(info or {}), list(warnings or [])
    U = np.tile(U, (replicates, 1))
    types = list(types) * replicates
    rep = np.repeat(np.arange(replicates), len(U) // replicates)
    if block_of is not None:
        block_of = np.tile(block_of, replicates)
    if center:
        if not any(not f.is_categorical for f in study.factors):
            warnings.append("Centre points were not added: the study has no numeric factors.")
        else:
            U = np.vstack([U, _centre_rows(study, center)])
            types += ["centre"] * center
            rep = np.concatenate([rep, np.arange(center) % replicates])
            if block_of is not None:
                block_of = np.concatenate([block_of, np.arange(center) % (block_of.max() + 1)])
    U, types, rep, block_of = _drop_infeasible(study, U, types, rep, block_of, warnings)
    if block_of is None and blocks > 1:
        if blocks > len(U) // 2:
            raise DesignError(f"{blocks} blocks for {len(U)} runs leaves fewer than 2 runs a block.")
        if replicates == blocks:
            block_of = rep
            info["blocking"] = "one block per replicate"
        else:
            block_of = assign_blocks(study, U, blocks, model_terms or parse_model(study, "linear"), seed)
            info["blocking"] = "runs assigned to blocks by D-optimal exchange (block effects fixed)"
    if replicates > 1:
        info["replicates"] = replicates
    if center:
        info["centre points"] = center
    return make_design(study, U, kind, types, blocks=block_of, randomize=randomize, seed=seed,
                       model=model, info=info, warnings=warnings)


def _drop_infeasible(study: Study, U: np.ndarray, types: list[str], rep: np.ndarray, block_of: np.ndarray | None,
                     warnings: list[str]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray | None]:
    from doe.model import actual_frame

    if not study.constraints:
        return U, types, rep, block_of
    ok = study.feasible(actual_frame(study, U))
    if ok.all():
        return U, types, rep, block_of
    dropped = int((~ok).sum())
    warnings.append(
        f"{dropped} of {len(U)} runs broke the study's constraints and were removed; "
        "the design is no longer balanced or orthogonal. Use the optimal design type to "
        "build a design inside the constrained region."
    )
    if not ok.any():
        raise DesignError("Every run of this design breaks the constraints; use the optimal design type.")
    keep = np.flatnonzero(ok)
    return U[keep], [types[i] for i in keep], rep[keep], None if block_of is None else block_of[keep]


def assign_blocks(study: Study, U: np.ndarray, n_blocks: int, terms: list[Term],
                  seed: int) -> np.ndarray | None:
    """Assign runs to equal-size blocks maximising det(X'X) with block effects.

    Pairwise-swap exchange (Cook & Nachtsheim 1989) from a few random balanced
    starts; finds the orthogonal blocking of 2-level factorials when one exists.
    None when X'X is singular at every start (the runs cannot estimate the model with blocks).
    """
    n = len(U)
    mm = ModelMatrix(study, terms, n_blocks=n_blocks)
    rng = np.random.default_rng(seed)
    best, best_val = None, -np.inf
    for _ in range(4):
        b = rng.permutation(np.arange(n) % n_blocks)
        val = _logdet(mm.build(U, b))
        improved = True
        while improved:
            improved = False
            for i in range(n):
                for k in range(i + 1, n):
                    if b[i] == b[k]:
                        continue
                    b[i], b[k] = b[k], b[i]
                    v = _logdet(mm.build(U, b))
                    if v > val + 1e-9:
                        val, improved = v, True
                    else:
                        b[i], b[k] = b[k], b[i]
        if val > best_val:
            best, best_val = b.copy(), val
    return best


def _logdet(X: np.ndarray) -> float:
    sign, val = np.linalg.slogdet(X.T @ X + 1e-9 * np.eye(X.shape[1]))
    return val if sign > 0 else -np.inf


def _two_level(study: Study, design_name: str) -> None:
    bad = [f for f in study.factors if f.n_levels not in (None, 2)]
    if bad:
        f = bad[0]
        raise DesignError(
            f"A {design_name} needs two-level factors; {f.name} has {f.n_levels} levels. "
            "Use a full factorial, a definitive screening design (3-level numeric factors) or "
            "an optimal design instead."
        )


def _from_pm1(study: Study, H: np.ndarray) -> np.ndarray:
    """A -1/+1 matrix (one column per factor) -> coded array (categorical as level index)."""
    U = np.array(H, dtype=float)
    for j, f in enumerate(study.factors):
        if f.is_categorical:
            U[:, j] = (U[:, j] > 0).astype(float)
    return U


# -- classical designs ---------------------------------------------------------------
def full_factorial(study: Study, *, levels: int = 2, model: str | None = None, **opts: Any) -> Design:
    """Full factorial over all levels: categorical and discrete levels as given,
    continuous factors at ``levels`` equally spaced settings (2 by default)."""
    levels = _whole(levels, "levels", 2)
    counts, values = [], []
    for f in study.factors:
        if f.kind == "continuous":
            counts.append(levels)
            values.append(np.linspace(-1, 1, levels))
        elif f.is_categorical:
            counts.append(len(f.levels))
            values.append(np.arange(len(f.levels), dtype=float))
        else:
            counts.append(len(f.levels))
            values.append(f.to_coded(f.levels))
    total = math.prod(counts) * opts.get("replicates", 1)
    if total > 20_000:
        raise DesignError(
            f"The full factorial has {total:,} runs; use a fractional, screening or optimal design."
        )
    idx = fractional.load_pydoe().fullfact(counts).astype(int)
    U = np.column_stack([values[j][idx[:, j]] for j in range(len(counts))])
    model = model or DEFAULT_MODEL["full"]
    terms = parse_model(study, model)
    info = {"levels per factor": " x ".join(str(c) for c in counts)}
    block_of = _confounded_blocks(study, U, counts, opts, info)
    return _finish(study, U, ["factorial"] * len(U), "full", model_terms=terms, info=info,
                   model=model, block_of=block_of, **opts)


def _confounded_blocks(study: Study, U: np.ndarray, counts: list[int], opts: dict[str, Any],
                       info: dict[str, Any]) -> np.ndarray | None:
    """Blocks of a 2^k full factorial from the published confounding scheme (doe.blocking), or None."""
    from doe import blocking

    k, blocks = len(counts), int(opts.get("blocks", 1) or 1)
    if blocks <= 1 or set(counts) != {2} or opts.get("replicates", 1) != 1 or not blocking.has_scheme(k, blocks):
        return None
    signs = np.where(U == U.max(axis=0), 1.0, -1.0)
    info["blocking"] = blocking.describe(k, blocks, study.factor_names)
    return np.asarray(blocking.block_numbers(signs, blocks))


def fractional_factorial(study: Study, *, resolution: int | None = None, runs: int | None = None,
                         model: str | None = None, **opts: Any) -> Design:
    """Regular 2^(k-p) minimum-aberration fraction of the requested resolution."""
    _two_level(study, "fractional factorial")
    frac = fractional.fraction(len(study.factors), resolution=resolution, runs=runs)
    legend = fractional.letter_legend(study.factor_names)
    info = {
        "resolution": frac.resolution if frac.words else "full factorial (no aliasing)",
        "generators": "; ".join(frac.generators) or "none (full factorial)",
        "defining relation": frac.defining_relation,
        "letters": ", ".join(f"{k} = {v}" for k, v in legend.items()),
        "alias structure": "; ".join(fractional.aliases(frac, study.factor_names)),
        "word length pattern": str(frac.word_length_pattern),
    }
    warnings = []
    if frac.search_note:  # the published catalogue it comes from, or what a greedy search does not guarantee
        info["generator search"] = frac.search_note
    if frac.search == "greedy":
        warnings.append(frac.search_note)
    if frac.words and frac.resolution == 3:
        warnings.append("Resolution III: main effects are aliased with two-factor interactions.")
    elif frac.words and frac.resolution == 4:
        warnings.append("Resolution IV: two-factor interactions are aliased with each other.")
    model = model or ("interactions" if frac.resolution >= 5 else "linear")
    terms = parse_model(study, model)
    return _finish(study, _from_pm1(study, frac.matrix), ["factorial"] * len(frac.matrix),
                   "fractional", model_terms=terms, info=info, warnings=warnings,
                   model=model, **opts)


def plackett_burman(study: Study, *, model: str | None = None, **opts: Any) -> Design:
    """Plackett-Burman screening design (runs: next multiple of 4 above the factor count)."""
    _two_level(study, "Plackett-Burman design")
    H = fractional.load_pydoe().pbdesign(len(study.factors))
    info = {"note": "Main effects are partially aliased with two-factor interactions."}
    model = model or "linear"
    terms = parse_model(study, model)
    return _finish(study, _from_pm1(study, H), ["screening"] * len(H), "pb", model_terms=terms,
                   info=info, model=model, **opts)


def definitive_screening(study: Study, *, model: str | None = None, **opts: Any) -> Design:
    """Definitive screening design (Jones & Nachtsheim 2011): numeric factors at 3 levels,
    two-level categorical factors de-aliased from two-factor interactions."""
    numeric = [f for f in study.factors if not f.is_categorical]
    cats = [f for f in study.factors if f.is_categorical]
    bad = [f for f in cats if len(f.levels) != 2] + [
        f for f in numeric if f.kind == "discrete" and len(f.levels) not in (2, 3)
    ]
    if bad:
        raise DesignError(
            f"A definitive screening design takes numeric factors and two-level categorical "
            f"factors; {bad[0].name} has {len(bad[0].levels)} levels. Use an optimal design."
        )
    if not numeric:
        raise DesignError("A definitive screening design needs at least one numeric factor.")
    H = fractional.load_pydoe().definitive_screening_design(len(numeric), len(cats))
    U = np.zeros((len(H), len(study.factors)))
    order = numeric + cats
    for col, f in enumerate(order):
        j = study.factor_names.index(f.name)
        if f.is_categorical:
            U[:, j] = (H[:, col] > 0).astype(float)
        elif f.kind == "discrete":
            U[:, j] = _snap(f, H[:, col])
        else:
            U[:, j] = H[:, col]
    types = ["centre" if not np.any(row[[study.factor_names.index(f.name) for f in numeric]]) else "screening"
             for row in U]
    model = model or "linear"
    terms = parse_model(study, model)
    return _finish(study, U, types, "dsd", model_terms=terms, model=model,
                   info={"note": "Main effects are orthogonal to two-factor interactions and squares."},
                   **opts)


def _numeric_only(study: Study, design_name: str) -> tuple[list[int], list[int]]:
    """Indices of continuous factors and of categorical factors (crossed)."""
    cont = [j for j, f in enumerate(study.factors) if f.kind == "continuous"]
    disc = [f for f in study.factors if f.kind == "discrete"]
    if disc:
        raise DesignError(
            f"A {design_name} needs continuous factors; {disc[0].name} is discrete. Make it "
            "continuous or use an optimal design."
        )
    cats = [j for j, f in enumerate(study.factors) if f.is_categorical]
    return cont, cats


def _cross(study: Study, D: np.ndarray, cont: list[int], cats: list[int]) -> tuple[np.ndarray, int]:
    """Cross a design in the continuous factors with every combination of categorical levels."""
    if not cats:
        U = np.zeros((len(D), len(study.factors)))
        U[:, cont] = D
        return U, 1
    combos = fractional.load_pydoe().fullfact([len(study.factors[j].levels) for j in cats]).astype(int)
    blocks = []
    for combo in combos:
        U = np.zeros((len(D), len(study.factors)))
        U[:, cont] = D
        U[:, cats] = combo
        blocks.append(U)
    return np.vstack(blocks), len(combos)


def ccd_alpha(k: int, n_factorial: int, alpha: str | float, n_centre: int,
              blocked: bool = False, n_centre_axial: int = 0) -> float:
    """Axial distance of a CCD (coded units).

    rotatable: F^(1/4); orthogonal (unblocked): orthogonal quadratic terms,
    alpha = [F (sqrt(F + 2k + n0) - sqrt(F))^2 / 4]^(1/4); orthogonal (two blocks):
    orthogonal blocking, alpha = sqrt(F (2k + n0a) / (2 (F + n0f))); face: 1.
    """
    F = n_factorial
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        value = float(alpha)
    else:
        a = str(alpha).strip().lower()
        try:
            value = float(a)
        except ValueError:
            if a in ("rotatable", "r", "inscribed", "cci"):
                value = F ** 0.25
            elif a in ("orthogonal", "o"):
                if blocked:
                    value = math.sqrt(F * (2 * k + n_centre_axial) / (2 * (F + n_centre)))
                else:
                    value = (F * (math.sqrt(F + 2 * k + n_centre) - math.sqrt(F)) ** 2 / 4) ** 0.25
            elif a in ("face", "faced", "ccf", "f"):
                value = 1.0
            else:
                raise DesignError(
                    f"Unknown alpha '{alpha}'. Use rotatable, orthogonal, face, inscribed or a number."
                ) from None
    if not 0 < value <= 10:
        raise DesignError(f"Alpha must be a positive number up to 10; got {value:g}.")
    return value


@dataclass
class AxialCheck:
    """Where a CCD's axial points fall against the study ranges, known before the design is made.

    ``outside`` has one row per continuous factor whose axial points leave its low-high range:
    factor, units, low, high and the axial settings (actual units) ``axial_low`` / ``axial_high``.
    """

    alpha: float
    rule: str
    outside: list[dict[str, Any]]

    @property
    def message(self) -> str:
        """The finding in words, naming each factor and its axial settings ('' when inside)."""
        if not self.outside:
            return ""
        where = "; ".join(
            f"{r['factor']} {r['axial_low']:.4g} and {r['axial_high']:.4g}{' ' + r['units'] if r['units'] else ''}"
            f" (study range {r['low']:.4g} to {r['high']:.4g})" for r in self.outside
        )
        return (f"The axial points of this CCD (alpha = {self.alpha:.3f}, {self.rule}) lie outside the "
                f"study ranges: {where}. If the ranges are hard limits, use face-centred (alpha = 1: "
                "axial points on the limits, 3 levels) or inscribed (the whole design shrunk inside the "
                "limits, 5 levels).")


def _ccd_layout(study: Study, alpha: str | float, center: int | None,
                blocks: int) -> tuple[list[int], list[int], np.ndarray, tuple[int, int, int], float]:
    """Continuous and categorical factor indices, factorial part, centre points (all, factorial
    block, axial block) and the axial distance of a CCD for the study."""
    cont, cats = _numeric_only(study, "central composite design")
    k = len(cont)
    if k < 2:
        raise DesignError("A central composite design needs at least 2 continuous factors.")
    if blocks not in (1, 2):
        raise DesignError("A central composite design takes 1 or 2 blocks (factorial, axial).")
    fact = fractional.fraction(k, resolution=5).matrix if k >= 5 else fractional.full_matrix(k)
    n0 = _CCD_CENTRES.get(k, 6) if center is None else _whole(center, "center", 0)
    n0f, n0a = (n0 - n0 // 2, n0 // 2) if blocks == 2 else (n0, 0)
    a_value = ccd_alpha(k, len(fact), alpha, n0f if blocks == 2 else n0, blocks == 2, n0a)
    return cont, cats, fact, (n0, n0f, n0a), a_value


def ccd_axial_check(study: Study, alpha: str | float = "rotatable", center: int | None = None,
                    blocks: int = 1) -> AxialCheck:
    """Whether the CCD :func:`central_composite` would make puts axial points outside the study
    ranges (before making it). An inscribed CCD never does: its axial points are the limits."""
    cont, _, _, _, a_value = _ccd_layout(study, alpha, center, blocks)
    inscribed = str(alpha).strip().lower() in ("inscribed", "cci")
    outside = []
    if not inscribed and a_value > 1 + 1e-9:
        for j in cont:
            f = study.factors[j]
            outside.append({"factor": f.name, "units": f.units, "low": f.low, "high": f.high,
                            "axial_low": float(f.to_actual(-a_value)),
                            "axial_high": float(f.to_actual(a_value))})
    return AxialCheck(a_value, str(alpha), outside)


def central_composite(study: Study, *, alpha: str | float = "rotatable", center: int | None = None,
                      blocks: int = 1, model: str | None = None, **opts: Any) -> Design:
    """Central composite design: 2^k (or resolution V fraction for k >= 5), 2k axial points
    at +/-alpha and centre points; categorical factors crossed. With 2 blocks the factorial
    and axial portions are separate blocks, each with its own centre points."""
    cont, cats, fact, (n0, n0f, n0a), a_value = _ccd_layout(study, alpha, center, blocks)
    k, F = len(cont), len(fact)
    axial = np.vstack([v * a_value * np.eye(k)[i] for i in range(k) for v in (-1, 1)])
    D = np.vstack([fact, axial, np.zeros((n0, k))])
    types = ["factorial"] * F + ["axial"] * (2 * k) + ["centre"] * n0
    halves = np.array([0] * F + [1] * (2 * k) + [0] * n0f + [1] * n0a)
    inscribed = str(alpha).lower() in ("inscribed", "cci")
    if inscribed:
        D = D / a_value
    U, n_cross = _cross(study, D, cont, cats)
    types = types * n_cross
    block_of = np.tile(halves, n_cross) if blocks == 2 else None
    info = {"alpha": round(a_value, 6), "alpha rule": str(alpha), "factorial points": F,
            "axial points": 2 * k, "centre points": n0}
    warnings = []
    check = ccd_axial_check(study, alpha, n0, blocks)
    if check.outside:
        warnings.append(check.message)
    if n_cross > 1:
        warnings.append(
            f"The CCD is repeated at all {n_cross} combinations of categorical levels "
            f"({len(U)} runs); an optimal design reaches the same model with far fewer runs."
        )
    model = model or default_model(study, "ccd")
    terms = parse_model(study, model)
    return _finish(study, U, types, "ccd", block_of=block_of, model_terms=terms, info=info,
                   warnings=warnings, model=model, blocks=blocks, **opts)


#: Box & Behnken (1960), Technometrics 2(4), 455-475: the factors varied together in each incomplete
#: block of their designs for 6, 7, 9-12 and 16 factors (numbered from 1). Each
#: block is a 2^m factorial at +-1 in its m factors with every other factor at 0 (m = 3 for 6, 7 and 9
#: factors, 4 for 10, 12 and 16, 5 for 11, see :data:`BBD_HALF`). The blocks form a balanced (7, 11
#: factors) or partially balanced incomplete block design, so every factor is varied in equally many
#: blocks and every pair of factors together in at least one. For 3 to 5 factors the blocks are every
#: pair of factors. The 9-factor design repeats its first three blocks (a group-divisible design: 15
#: blocks, 120 runs), as both transcriptions used here give it (MathWorks' bbdesign, Stat-Ease's dexpy).
BBD_BLOCKS: dict[int, tuple[tuple[int, ...], ...]] = {
    6: ((1, 2, 4), (2, 3, 5), (3, 4, 6), (1, 4, 5), (2, 5, 6), (1, 3, 6)),
    7: ((4, 5, 6), (1, 6, 7), (2, 5, 7), (1, 2, 4), (3, 4, 7), (1, 3, 5), (2, 3, 6)),
    9: ((1, 4, 7), (2, 5, 8), (3, 6, 9), (1, 2, 3), (4, 5, 6), (7, 8, 9), (1, 5, 9), (3, 4, 8),
        (2, 6, 7), (1, 6, 8), (2, 4, 9), (3, 5, 7), (1, 4, 7), (2, 5, 8), (3, 6, 9)),
    10: ((2, 6, 7, 10), (1, 2, 5, 10), (2, 3, 7, 8), (2, 4, 6, 9), (1, 8, 9, 10), (3, 4, 5, 10),
         (1, 4, 7, 8), (3, 5, 7, 9), (1, 3, 6, 9), (4, 5, 6, 8)),
    11: ((3, 7, 8, 9, 11), (1, 4, 8, 9, 10), (2, 5, 9, 10, 11), (1, 3, 6, 10, 11), (1, 2, 4, 7, 11),
         (1, 2, 3, 5, 8), (2, 3, 4, 6, 9), (3, 4, 5, 7, 10), (4, 5, 6, 8, 11), (1, 5, 6, 7, 9),
         (2, 6, 7, 8, 10)),
    12: ((1, 2, 5, 7), (2, 3, 6, 8), (3, 4, 7, 9), (4, 5, 8, 10), (5, 6, 9, 11), (6, 7, 10, 12),
         (1, 7, 8, 11), (2, 8, 9, 12), (1, 3, 9, 10), (2, 4, 10, 11), (3, 5, 11, 12), (1, 4, 6, 12)),
    16: ((1, 2, 6, 9), (3, 4, 8, 11), (5, 10, 13, 14), (7, 12, 15, 16), (2, 3, 7, 10), (1, 4, 5, 12),
         (6, 11, 14, 15), (8, 9, 13, 16), (2, 5, 6, 13), (4, 7, 8, 15), (1, 9, 10, 14), (3, 11, 12, 16),
         (3, 6, 7, 14), (1, 5, 8, 16), (2, 10, 11, 15), (4, 9, 12, 13), (1, 3, 13, 15), (2, 4, 14, 16),
         (5, 7, 9, 11), (6, 8, 10, 12), (4, 6, 10, 16), (3, 5, 9, 15), (1, 7, 11, 13), (2, 8, 12, 14)),
}
#: Designs whose blocks are a half replicate, not the full 2^m: the sign the product of a point's m
#: signs must have. Box & Behnken's 11-factor design runs the 2^(5-1) with I = +ABCDE in each block
#: (16 of the 32 sign combinations, resolution V).
BBD_HALF: dict[int, int] = {11: 1}


def bbd_points(k: int) -> np.ndarray:
    """The non-centre points of Box & Behnken's (1960) design for ``k`` factors.

    Parameters
    ----------
    k : int
        Number of factors; a key of :data:`BBD_BLOCKS` (6, 7, 9, 10, 11, 12 or 16).

    Returns
    -------
    numpy.ndarray
        Points coded -1, 0, +1, block by block, one row a run: 48, 56, 120,
        160, 176, 192 and 384 rows for 6, 7, 9, 10, 11, 12 and 16 factors.

    References
    ----------
    Box, G. E. P. and Behnken, D. W. (1960). Some new three level designs for the study of
    quantitative variables. Technometrics 2(4), 455-475.
    """
    import itertools

    half = BBD_HALF.get(k)
    rows = []
    for block in BBD_BLOCKS[k]:
        for signs in itertools.product((-1.0, 1.0), repeat=len(block)):
            if half is not None and np.prod(signs) != half:
                continue
            row = np.zeros(k)
            row[[f - 1 for f in block]] = signs
            rows.append(row)
    return np.array(rows)


def box_behnken(study: Study, *, center: int | None = None, model: str | None = None,
                **opts: Any) -> Design:
    """Box-Behnken design: edge midpoints of the cube plus centre points (k >= 3).

    Box & Behnken's (1960) published designs for 3-7, 9-12 and 16 factors; for 8 and for 13-15 or
    more than 16 factors (none published) every pair of factors in a 2^2, with a warning.
    """
    cont, cats = _numeric_only(study, "Box-Behnken design")
    k = len(cont)
    if k < 3:
        raise DesignError("A Box-Behnken design needs at least 3 continuous factors; use a CCD for 2.")
    n0 = _BBD_CENTRES.get(k, 6) if center is None else center
    warnings: list[str] = []
    if k in BBD_BLOCKS:
        D = bbd_points(k)
    else:
        D = fractional.load_pydoe().bbdesign(k, center=1)[:-1]
        if k > 5:
            warnings.append(f"Box & Behnken (1960) published no design for {k} factors (only for 3-7, 9-12 "
                            "and 16): this is a three-level design on every pair of factors (edge midpoints), "
                            f"with {len(D)} runs plus centres. Consider a D- or I-optimal design for a "
                            "quadratic model.")
    D = np.vstack([D, np.zeros((n0, k))])
    types = ["edge"] * (len(D) - n0) + ["centre"] * n0
    U, n_cross = _cross(study, D, cont, cats)
    if n_cross > 1:
        warnings.append(f"The Box-Behnken design is repeated at all {n_cross} categorical combinations.")
    model = model or default_model(study, "bbd")
    terms = parse_model(study, model)
    return _finish(study, U, types * n_cross, "bbd", model_terms=terms, warnings=warnings,
                   info={"centre points": n0}, model=model, **opts)


def latin_hypercube(study: Study, *, runs: int | None = None, model: str | None = None,
                    seed: int = 0, **opts: Any) -> Design:
    """Maximin Latin hypercube in the numeric factors; categorical levels balanced at random.

    With constraints, a larger hypercube is drawn and a maximin subset of feasible
    points is kept.
    """
    from doe.model import actual_frame

    runs = runs or max(10, 2 * len(study.factors) + 2)
    if runs < 2:
        raise DesignError(f"A Latin hypercube needs at least 2 runs; {runs} was asked for.")
    rng = np.random.default_rng(seed)
    numeric = [j for j, f in enumerate(study.factors) if not f.is_categorical]
    pool_size = runs if not study.constraints else runs * 8
    U = np.zeros((pool_size, len(study.factors)))
    if numeric:
        H = fractional.load_pydoe().lhs(len(numeric), samples=pool_size, criterion="maximin", iterations=20,
                                        seed=int(rng.integers(2**31)))
        U[:, numeric] = 2 * H - 1
    for j, f in enumerate(study.factors):
        if f.is_categorical:
            U[:, j] = rng.permutation(np.arange(pool_size) % len(f.levels))
        elif f.kind == "discrete":
            U[:, j] = _snap(f, U[:, j])
    if study.constraints:
        ok = study.feasible(actual_frame(study, U))
        pool = U[ok]
        if len(pool) < runs:
            raise DesignError("The constraints leave too little room for a space-filling design; "
                              "use fewer runs or the optimal design type.")
        U = _maximin_subset(pool, runs, numeric, rng)
    model = model or default_model(study, "lhs")
    terms = parse_model(study, model)
    return _finish(study, U, ["space-filling"] * len(U), "lhs", model_terms=terms, seed=seed,
                   model=model, **opts)


def _maximin_subset(pool: np.ndarray, runs: int, numeric: list[int], rng: np.random.Generator) -> np.ndarray:
    """Greedy maximin selection of ``runs`` points from a pool (numeric coordinates)."""
    P = pool[:, numeric] if numeric else pool
    chosen = [int(rng.integers(len(P)))]
    dist = np.linalg.norm(P - P[chosen[0]], axis=1)
    while len(chosen) < runs:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(P - P[nxt], axis=1))
    return pool[chosen]


def default_runs(study: Study, model: str | None = None, blocks: int = 1) -> int:
    """Default run budget of an optimal design: model columns + 4 (error df)."""
    p = ModelMatrix(study, parse_model(study, model or default_model(study)), n_blocks=blocks).p
    return p + 4


def optimal(study: Study, *, model: str | None = None, runs: int | None = None,
            criterion: str = "D", seed: int = 0, blocks: int = 1, starts: int | None = None,
            whole_plots: int | None = None, subplots: int | None = None, donors: int | None = None,
            variance_ratio: float | None = None, **opts: Any) -> Design:
    """D- or I-optimal design by coordinate exchange (see doe.optimal).

    A study with hard-to-change factors, or ``whole_plots``, ``subplots`` or ``donors`` given, gets an
    optimal split-plot, split-split-plot or random-block design instead (:func:`split_plot_optimal`).
    """
    from doe.optimal import optimal_design

    criterion = str(criterion).strip().upper()
    if criterion not in ("D", "I"):
        raise DesignError(f"Criterion must be D or I; got '{criterion}'.")
    model = model or default_model(study, "optimal")
    terms = parse_model(study, model)
    runs = runs or default_runs(study, model, blocks)
    if study.split_plot or whole_plots is not None or subplots is not None or donors is not None:
        return split_plot_optimal(study, model=model, runs=runs, criterion=criterion, seed=seed, blocks=blocks,
                                  starts=starts, whole_plots=whole_plots, subplots=subplots, donors=donors,
                                  variance_ratio=variance_ratio, **opts)
    res = optimal_design(study, terms, runs, criterion, seed=seed, n_blocks=blocks, starts=starts)
    info = {"criterion": criterion, "random starts": res.starts,
            "D-efficiency (%)": round(100 * res.d_criterion, 3), "seconds": round(res.seconds, 2)}
    return _finish(study, res.U, ["optimal"] * len(res.U), "optimal", seed=seed,
                   block_of=res.blocks if blocks > 1 else None, info=info,
                   model=model, **opts)


def split_plot_optimal(study: Study, *, model: str | None = None, runs: int | None = None, criterion: str = "D",
                       seed: int = 0, blocks: int = 1, starts: int | None = None, whole_plots: int | None = None,
                       subplots: int | None = None, donors: int | None = None, variance_ratio: float | None = None,
                       center: int | None = None, replicates: int = 1, randomize: bool = True,
                       levels: Any = None, **_: Any) -> Design:
    """D- or I-optimal split-plot, split-split-plot or donor-block design (see :mod:`doe.split_plot`).

    - ``whole_plots`` W: the study's hard-to-change factors are constant within each whole plot
      (``V = I + eta Z Z'``); with hard-to-change factors and no W, a default W is chosen and a warning
      says so.
    - ``subplots`` S (with W): split-split-plot; the factors marked ``hard_to_change: very`` change
      between whole plots, those marked ``true`` between subplots.
    - ``donors`` D: D random blocks (the study's first random effect, else a ``Donor`` column); no
      factor is held constant within a donor.

    ``variance_ratio`` (default 1) is the whole-plot (donor, and subplot) variance over the residual
    variance. The run sheet has a ``Whole plot`` column (and ``Subplot``), or the donor column, sorted by
    whole plot in random order, runs random within.
    """
    from doe.split_plot import default_whole_plots, split_plot_design

    model = model or default_model(study, "optimal")
    terms = parse_model(study, model)
    runs = runs or default_runs(study, model)
    warnings: list[str] = []
    if int(blocks) > 1:
        raise DesignError("Fixed blocks cannot be combined with whole plots or donors: leave blocks at 1 (use "
                          "donors for random donor blocks, whole plots for hard-to-change factors).")
    if center or int(replicates) > 1:
        raise DesignError("Centre points and replicates are not added to an optimal split-plot or donor design: "
                          "ask for more runs instead (the search places replicates where they help).")
    ratio = 1.0 if variance_ratio is None else variance_ratio
    plot_column = WHOLE_PLOT
    wp_factors: list[str] | None = None
    sp_factors: list[str] | None = None
    if donors is not None:
        if study.hard_to_change_factors:
            raise DesignError(f"Donor blocks with hard-to-change factors ({', '.join(study.hard_to_change_factors)}) "
                              "are not supported: give whole plots instead of donors, or unmark the factors.")
        if whole_plots is not None or subplots is not None:
            raise DesignError("Give either donors (random blocks) or whole plots (hard-to-change factors), not both.")
        whole_plots, wp_factors, sp_factors = _whole(donors, "donors", 1), [], []
        plot_column = study.random_effects[0] if study.random_effects else "Donor"
    elif subplots is not None:
        if not study.very_hard_to_change_factors:
            raise DesignError("Subplots (a split-split-plot) need factors marked 'hard_to_change: very' (changed "
                              "only between whole plots) besides those marked 'true' (changed between subplots).")
        if whole_plots is None:
            raise DesignError("A split-split-plot design needs the number of whole plots too (--whole-plots).")
    elif study.very_hard_to_change_factors:
        raise DesignError(f"{', '.join(study.very_hard_to_change_factors)} "
                          f"{'is' if len(study.very_hard_to_change_factors) == 1 else 'are'} 'very' hard to change: "
                          "give the number of subplots (--subplots) for the split-split-plot design.")
    if whole_plots is None:
        whole_plots = default_whole_plots(study, terms, runs)
        warnings.append(f"No number of whole plots was given: the {runs} runs were put in {whole_plots} whole plots "
                        f"(about {runs / whole_plots:.3g} runs each, enough to test the whole-plot terms). Give "
                        "the number of whole plots (--whole-plots) to choose.")
    res = split_plot_design(study, terms, runs, _whole(whole_plots, "whole_plots", 1), criterion,
                            subplots=None if subplots is None else _whole(subplots, "subplots", 1),
                            variance_ratio=ratio, whole_plot_factors=wp_factors, subplot_factors=sp_factors,
                            seed=seed, starts=starts, levels=levels)
    st = res.structure
    info: dict[str, Any] = {"criterion": criterion, "random starts": res.starts,
                            "whole plots" if donors is None else "donors": st.n_whole_plots}
    if st.subplot is not None:
        info["subplots"] = st.n_subplots
    info.update({"variance ratio": ratio, "D-efficiency (%, split-plot covariance)": round(res.d_efficiency, 3),
                 "I-criterion (split-plot covariance)": round(res.i_criterion, 6), "seconds": round(res.seconds, 2)})
    if res.whole_plot_factors:
        info["whole-plot factors"] = ", ".join(res.whole_plot_factors)
    if res.subplot_factors:
        info["subplot factors"] = ", ".join(res.subplot_factors)
    return finish_split_plot(study, res.U, st.whole_plot, "optimal", ["optimal"] * len(res.U),
                             subplot=st.subplot, plot_column=plot_column, seed=seed, randomize=randomize,
                             model=model, info=info, warnings=warnings)


def finish_split_plot(study: Study, U: np.ndarray, whole_plot: np.ndarray, kind: str, point_types: list[str], *,
                      subplot: np.ndarray | None = None, plot_column: str = WHOLE_PLOT, seed: int | None = None,
                      randomize: bool = True, model: str | None = None, info: dict[str, Any] | None = None,
                      warnings: list[str] | None = None) -> Design:
    """A Design from a coded split-plot array in standard order and the whole plot (subplot) of each run.

    Columns ``Run, StdOrder, <plot_column>[, Subplot], PointType,`` factors. With ``randomize`` the rows
    are in the bench order of :func:`doe.split_plot.run_order` (whole plots in random order, subplots and
    runs random within); whole plots (subplots) are numbered 1.. in that order.
    """
    from doe.split_plot import PlotStructure, run_order

    U = np.asarray(U, dtype=float)
    wp = np.unique(np.asarray(whole_plot, dtype=int), return_inverse=True)[1]
    sp = None if subplot is None else np.unique(np.asarray(subplot, dtype=int), return_inverse=True)[1]
    n = len(U)
    order = run_order(PlotStructure(wp, sp), seed) if randomize else np.lexsort(
        (np.arange(n), np.zeros(n) if sp is None else sp, wp))
    table = make_design(study, U[order], kind, [point_types[i] for i in order], randomize=False, seed=seed,
                        model=model, info=info, warnings=warnings).table
    table["StdOrder"] = order + 1
    first: dict[int, int] = {}
    for w in wp[order]:
        first.setdefault(int(w), len(first) + 1)
    table.insert(2, plot_column, [first[int(w)] for w in wp[order]])
    if sp is not None:
        first_s: dict[int, int] = {}
        for s in sp[order]:
            first_s.setdefault(int(s), len(first_s) + 1)
        table.insert(3, SUBPLOT, [first_s[int(s)] for s in sp[order]])
    return Design(study, table, kind, model=model, seed=seed, info=dict(info or {}), warnings=list(warnings or []))


# -- classical split-plot designs ---------------------------------------------------
#: Design types that have a classical split-plot form (doe.split_classic) used when the study has hard-to-change
#: factors: a two-level fractional (or full) factorial split plot, an equivalent-estimation central composite.
_CLASSICAL = {"fractional": "fraction", "full": "fraction", "ccd": "ccd"}
#: What each classical split-plot form is, with its source (the Design form says it before generating).
CLASSICAL_SPLIT_PLOT_NOTES = {
    "fractional": "a minimum-aberration two-level split-plot fraction (Huang, Chen & Voelkel 1998; Bingham & "
                  "Sitter 1999): whole-plot generators use only the hard-to-change factors",
    "full": "the full factorial in whole plots: one whole plot per setting of the hard-to-change factors",
    "ccd": "an equivalent-estimation central composite split-plot design (Vining, Kowalski & Montgomery 2005): "
           "least squares gives the GLS estimates for any whole-plot variance",
}


def _classical_split_plot(study: Study, kind: str, *, seed: int, randomize: bool = True, model: str | None = None,
                          whole_plots: int | None = None, runs: int | None = None, resolution: int | None = None,
                          center: int | None = None, **opts: Any) -> Design:
    """The published split-plot form of ``kind`` (doe.split_classic) with the study's hard-to-change factors in
    the whole plots; options the form does not take (replicates, blocks) are refused with a message."""
    from doe.split_classic import classical_split_plot

    refused = [k for k in ("replicates", "blocks", "subplots", "donors") if opts.get(k) not in (None, 1, 0)]
    if very := study.very_hard_to_change_factors:
        raise DesignError(f"{', '.join(very)} {'is' if len(very) == 1 else 'are'} 'very' hard to change (split-split-"
                          "plot): only the optimal design type builds split-split-plot designs. Choose 'optimal' "
                          "with subplots.")
    if refused:
        raise DesignError(f"A classical split-plot {kind} design takes no {', '.join(refused)}: leave "
                          f"{'it' if len(refused) == 1 else 'them'} at the default, or choose the optimal type.")
    form = _CLASSICAL[kind]
    options: dict[str, Any] = {}
    if form == "fraction":
        if kind == "full":  # every combination: the fraction with no generator
            options["runs"] = 2 ** len(study.factors)
        elif runs is not None:
            options["runs"] = runs
        if resolution is not None and kind != "full":
            options["resolution"] = resolution
        if whole_plots is not None:
            options["whole_plots"] = whole_plots
    else:
        if center is not None:
            options["sp_center_runs"] = center
        alpha = str(opts.get("alpha", "rotatable")).strip().lower()
        options["wp_alpha"] = 1.0 if alpha in ("face", "ccf") else alpha if alpha in ("rotatable", "orthogonal") \
            else "rotatable"
    U, whole_plot, description = classical_split_plot(study, form, **options)
    numeric = np.array([not f.is_categorical for f in study.factors])
    types = ["factorial"] * len(U) if form == "fraction" else [
        "axial" if np.any(np.abs(row[numeric]) > 1 + 1e-9) else "centre" if not np.any(row[numeric]) else "factorial"
        for row in U]
    warnings = []
    outside = [f.name for j, f in enumerate(study.factors) if numeric[j] and np.any(np.abs(U[:, j]) > 1 + 1e-9)]
    if outside:
        warnings.append(f"Axial runs set {', '.join(outside)} beyond the study ranges (the split-plot CCD keeps OLS "
                        "equal to GLS only with its own axial distances): check that those settings can be run, or "
                        "choose the optimal design type with whole plots.")
    info = {"split-plot design": description, "whole plots": int(len(np.unique(whole_plot))),
            "hard-to-change factors": ", ".join(study.hard_to_change_factors)}
    return finish_split_plot(study, U, np.asarray(whole_plot) - 1, kind, types, seed=seed, randomize=randomize,
                             model=model or default_model(study, kind), info=info, warnings=warnings)


# -- augmentation -----------------------------------------------------------------
def augment(design: Design, add_runs: int, *, model: str | None = None, criterion: str = "D",
            seed: int | None = None) -> Design:
    """Add ``add_runs`` runs chosen optimally for ``model``, keeping every existing run."""
    from doe.optimal import augment_design

    study = design.study
    seed = new_seed() if seed is None else seed
    model = model or design.model or default_model(study, "optimal")
    limits.check_design_work(study, "augment", {"runs": add_runs, "model": model},
                             fixed_runs=len(design.table))  # before anything is allocated
    terms = parse_model(study, model)
    existing = design.coded()
    res = augment_design(study, terms, existing, _whole(add_runs, "add_runs", 1),
                         str(criterion).upper(), seed=seed)
    new = res.U[len(existing):]
    return _append(design, new, ["augmented"] * len(new), "augmented", seed,
                   {"added runs": len(new), "augment criterion": criterion},
                   model=model)


def fold_over(design: Design, factors: list[str] | None = None) -> Design:
    """Fold-over: add the mirror image of every run, switching the sign of the chosen
    factors (all factors by default), which de-aliases main effects from 2FIs."""
    study = design.study
    names = factors or study.factor_names
    U = design.coded()
    for name in names:
        f = study.factor(name)
        j = study.factor_names.index(name)
        if f.is_categorical:
            if len(f.levels) != 2:
                raise DesignError(f"Fold-over switches two-level factors; {name} has {len(f.levels)} levels.")
            U[:, j] = 1 - U[:, j]
        else:
            U[:, j] = -U[:, j]
    return _append(design, U, ["foldover"] * len(U), "foldover", design.seed or 0,
                   {"folded factors": ", ".join(names)})


def add_axial(design: Design, alpha: str | float = "rotatable", center: int = 2) -> Design:
    """Add axial (star) points and centre runs to a factorial, completing a CCD (in a new block)."""
    study = design.study
    cont = [j for j, f in enumerate(study.factors) if f.kind == "continuous"]
    if not cont:
        raise DesignError("Axial points need continuous factors.")
    n_fact = int((design.table["PointType"] == "factorial").sum()) or design.n_runs
    a_value = ccd_alpha(len(cont), n_fact, alpha, center)
    rows = []
    base = _centre_rows(study, 2 * len(cont))
    for i, j in enumerate(cont):
        for s, v in enumerate((-a_value, a_value)):
            r = base[2 * i + s].copy()
            r[j] = v
            rows.append(r)
    new = np.vstack([np.array(rows), _centre_rows(study, center)])
    types = ["axial"] * len(rows) + ["centre"] * center
    return _append(design, new, types, "ccd (augmented)", design.seed or 0,
                   {"alpha": round(a_value, 6), "added axial points": len(rows)}, new_block=True)


def _append(design: Design, new_U: np.ndarray, types: list[str], kind: str, seed: int,
            info: dict[str, Any], model: str | None = None, new_block: bool = True) -> Design:
    """Existing runs keep their run numbers; new runs follow in a new block, randomised."""
    import pandas as pd

    study = design.study
    added = make_design(study, new_U, kind, types, seed=seed)
    block_col = design.block_column
    old = design.table.copy()
    if new_block:
        if block_col not in old:
            old.insert(2, block_col, 1)
        last = pd.to_numeric(old[block_col], errors="coerce").max()
        next_block = int(last) + 1 if pd.notna(last) else f"{old[block_col].iloc[-1]}+"
        added.table.insert(2, block_col, next_block)
    table = added.table
    table["Run"] = table["Run"] + int(pd.to_numeric(old["Run"], errors="coerce").max())
    table["StdOrder"] = table["StdOrder"] + int(pd.to_numeric(old["StdOrder"], errors="coerce").max())
    combined = pd.concat([old, table], ignore_index=True)
    combined = combined[[c for c in old.columns] + [c for c in table.columns if c not in old.columns]]
    warnings = list(design.warnings)
    return Design(study, combined, kind, model=model or design.model, seed=seed,
                  info={**design.info, **info}, warnings=warnings)
