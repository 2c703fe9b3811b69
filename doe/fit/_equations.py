"""The fitted equation in coded and in actual units (one per categorical level combination), and the
stationary point with the canonical analysis of the quadratic part."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from doe._format import fmt_sig
from doe.fit._least_squares import ModelColumn
from doe.fit._transforms import Transform
from doe.model import Term, effect_codes
from doe.study import Study

__all__ = ["MAX_EQUATIONS"]

#: At most this many categorical level combinations get an equation in actual units.
MAX_EQUATIONS = 30
#: Eigenvalues of B below this fraction of the largest make B singular (a ridge).
_SINGULAR_TOL = 1e-8


def coded_equation(lhs: str, cols: list[ModelColumn], coef: np.ndarray) -> str:
    pairs = [(c.name, b) for c, b in zip(cols, coef) if not c.is_block]
    return _equation(lhs, pairs)


def _equation(lhs: str, pairs: list[tuple[str, float]]) -> str:
    text = f"{lhs} ="
    for i, (name, b) in enumerate(pairs):
        sign = "-" if b < 0 else "+"
        body = fmt_sig(abs(b)) if name == "Intercept" else f"{fmt_sig(abs(b))} * {name}"
        text += f" {'-' if b < 0 else ''}{body}" if i == 0 else f" {sign} {body}"
    return text


def actual_equations(study: Study, cols: list[ModelColumn], coef: np.ndarray, lhs: str
                      ) -> tuple[list[dict[str, Any]], pd.DataFrame, str]:
    """Expand the coded model into actual units, one equation per categorical level combination.

    Each coded column is prod ((X - centre) / half range)^p over its numeric parts
    times its effect codes; blocks are averaged out (0).
    """
    numeric = [f.name for f in study.factors if not f.is_categorical
               and any(f.name == g for c in cols for g, _ in c.num)]
    cats = [f.name for f in study.factors if f.is_categorical
            and any(f.name == g for c in cols for g, _ in c.cat)]
    index = {f: i for i, f in enumerate(numeric)}
    combos = list(itertools.product(*[range(len(study.factor(f).levels)) for f in cats]))
    note = ""
    if len(combos) > MAX_EQUATIONS:
        note = (f"{len(combos)} combinations of {', '.join(cats)}: equations in actual units are "
                f"given for the first {MAX_EQUATIONS} only.")
        combos = combos[:MAX_EQUATIONS]
    polys = [{} if c.is_block else _actual_poly(study, c.num, index, len(numeric)) for c in cols]
    monos = sorted({m for poly in polys for m in poly}, key=_mono_key)
    where = {m: i for i, m in enumerate(monos)}
    M = np.zeros((len(cols), len(monos)))  # column j in actual-unit monomials
    for j, poly in enumerate(polys):
        for m, v in poly.items():
            M[j, where[m]] = v
    codes = {f: effect_codes(len(study.factor(f).levels)) for f in cats}
    mult = np.ones((len(combos), len(cols)))  # effect-code multiplier of each column per combination
    for j, c in enumerate(cols):
        for f, k in c.cat:
            mult[:, j] *= codes[f][[combo[cats.index(f)] for combo in combos], k]
    values = (mult * coef[None, :]) @ M
    names = [_mono_name(m, numeric) for m in monos]
    labels, equations = [], []
    for combo, row in zip(combos, values):
        levels = {f: study.factor(f).levels[i] for f, i in zip(cats, combo)}
        label = ", ".join(f"{f} = {v}" for f, v in levels.items())
        labels.append(label or "coefficient")
        pairs = [(n.replace(":", " * "), float(v)) for n, v in zip(names, row)]
        equations.append({"label": label, "levels": levels, "equation": _equation(lhs, pairs),
                          "coefficients": dict(zip(names, row.tolist()))})
    frame = pd.DataFrame(values.T, index=pd.Index(names, name="term"), columns=labels)
    return equations, frame, note


def _actual_poly(study: Study, parts: tuple[tuple[str, int], ...], index: dict[str, int], k: int
                 ) -> dict[tuple[int, ...], float]:
    poly = {(0,) * k: 1.0}
    for f, p in parts:
        fac = study.factor(f)
        a, d = 1.0 / fac.half_range, -fac.center / fac.half_range  # x = a X + d
        term: dict[tuple[int, ...], float] = {}
        for j in range(p + 1):
            e = [0] * k
            e[index[f]] = j
            term[tuple(e)] = math.comb(p, j) * a ** j * d ** (p - j)
        new: dict[tuple[int, ...], float] = {}
        for m1, v1 in poly.items():
            for m2, v2 in term.items():
                m = tuple(x + y for x, y in zip(m1, m2))
                new[m] = new.get(m, 0.0) + v1 * v2
        poly = new
    return poly


def _mono_key(m: tuple[int, ...]) -> tuple[Any, ...]:
    deg = sum(m)
    used = [i for i, e in enumerate(m) if e]
    kind = 0 if deg == 1 else (2 if len(used) == 1 else 1)
    return (-1 if deg == 0 else (kind if deg <= 2 else 3), deg, used, [m[i] for i in used])


def _mono_name(m: tuple[int, ...], names: list[str]) -> str:
    parts = [f if e == 1 else f"{f}^{e}" for f, e in zip(names, m) if e]
    return ":".join(parts) if parts else "Intercept"


# -- canonical analysis ------------------------------------------------------------------------
def stationary_point_analysis(study: Study, terms: list[Term], cols: list[ModelColumn], coef: np.ndarray,
                      tf: Transform) -> tuple[dict[str, Any] | None, list[str]]:
    """Stationary point and canonical analysis of the numeric quadratic part.

    x_s = -B^-1 b / 2 with b the linear and B the second-order coefficients
    (off-diagonals half the interaction coefficients); categorical factors and
    blocks at their average effect (0 in effect coding). Eigenvalues in
    decreasing order, as R's ``eigen`` (Myers, Montgomery & Anderson-Cook, sec. 6.3).
    """
    numeric_terms = [t for t in terms if not any(study.factor(f).is_categorical for f in t.factors)]
    if not any(len(t.parts) == 1 and t.parts[0][1] == 2 for t in numeric_terms):
        return None, []
    if any(t.degree > 2 for t in numeric_terms):
        return None, ["The model has terms above second order, so no canonical analysis is given."]
    names = [f.name for f in study.factors if any(f.name in t.factors for t in numeric_terms)]
    idx = {f: i for i, f in enumerate(names)}
    k = len(names)
    b, B, b0 = np.zeros(k), np.zeros((k, k)), float(coef[0])
    for c, v in zip(cols, coef):
        if c.is_block or c.cat or not c.num:
            continue
        if len(c.num) == 1 and c.num[0][1] == 1:
            b[idx[c.num[0][0]]] = v
        elif len(c.num) == 1:
            B[idx[c.num[0][0]], idx[c.num[0][0]]] = v
        else:
            i, j = idx[c.num[0][0]], idx[c.num[1][0]]
            B[i, j] = B[j, i] = v / 2
    vals, vecs = np.linalg.eigh(B)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    if np.min(np.abs(vals)) <= _SINGULAR_TOL * max(1.0, float(np.max(np.abs(vals)))):
        return None, ["The second-order part is singular (a ridge, or a factor without a square or "
                      "interaction): there is no unique stationary point."]
    xs = -0.5 * np.linalg.solve(B, b)
    z = b0 + float(b @ xs) + float(xs @ B @ xs)
    kind = "maximum" if np.all(vals < 0) else "minimum" if np.all(vals > 0) else "saddle"
    if tf.kind == "power" and tf.power < 0:
        kind = {"maximum": "minimum", "minimum": "maximum"}.get(kind, kind)
    inside = bool(np.all(np.abs(xs) <= 1 + 1e-9))
    sp = {
        "factors": names,
        "coded": dict(zip(names, xs.tolist())),
        "actual": {f: float(study.factor(f).to_actual(x)) for f, x in zip(names, xs)},
        "eigenvalues": vals.tolist(),
        "eigenvectors": vecs.T.tolist(),  # eigenvectors[i] belongs to eigenvalues[i] (a column of rsm's matrix)
        "kind": kind,
        "predicted": float(tf.inverse(np.array([z]))[0]),
        "predicted_fitted_scale": z,
        "inside_region": inside,
        "b": b.tolist(),
        "B": B.tolist(),
    }
    warn = [] if inside else [
        f"The stationary point ({kind}) lies outside the study ranges (coded "
        + ", ".join(f"{f} {x:.2f}" for f, x in zip(names, xs)) + "): it is an extrapolation."]
    return sp, warn

