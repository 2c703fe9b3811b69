"""Model specifications and model matrices in coded units.

A model is a list of :class:`Term` over the study's factors. It is written as a
preset or a Wilkinson-style term list:

- ``linear``: intercept + main effects;
- ``interactions``: linear + all two-factor interactions;
- ``quadratic``: interactions + squares of continuous and discrete factors;
- ``full``: all interactions of every order (squares excluded);
- a term list such as ``Agitation + Medium + Agitation:Medium + Agitation^2``;
  ``A*B`` expands to ``A + B + A:B``; a preset may start the list and ``- term``
  removes a term: ``quadratic - Seeding density^2``.

Term names: the factor name for a main effect, ``A:B`` for an interaction,
``A^2`` for a square. Model-matrix columns of a categorical factor are named
``Medium[hPL 5%]``; categorical factors use effect (sum-to-zero) coding with
the last level as the one coded -1 in every column. Continuous and discrete
factors are coded to -1..+1 over the study's range.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from doe.errors import ModelError, did_you_mean, quoted_list

if TYPE_CHECKING:
    from doe.study import Study

PRESETS = ("linear", "interactions", "quadratic", "full")
_PRESET_ALIASES = {
    "linear": "linear", "main": "linear", "main effects": "linear", "1": "linear",
    "interactions": "interactions", "interaction": "interactions", "2fi": "interactions",
    "quadratic": "quadratic", "rsm": "quadratic", "response surface": "quadratic",
    "full": "full", "full factorial": "full",
}


@dataclass(frozen=True, order=True)
class Term:
    """A model term: factors with powers, e.g. (('Agitation', 2),) is Agitation^2."""

    parts: tuple[tuple[str, int], ...]

    @property
    def name(self) -> str:
        """The term as written in a model spec: 'A', 'A^2', 'A:B'."""
        return ":".join(f if p == 1 else f"{f}^{p}" for f, p in self.parts)

    @property
    def factors(self) -> tuple[str, ...]:
        """The factor names of the term, in order."""
        return tuple(f for f, _ in self.parts)

    @property
    def degree(self) -> int:
        """The sum of the powers (1 for a main effect, 2 for a square or a two-factor interaction)."""
        return sum(p for _, p in self.parts)

    @property
    def is_main(self) -> bool:
        """True for a main effect (one factor, power 1)."""
        return len(self.parts) == 1 and self.parts[0][1] == 1

    def __str__(self) -> str:
        return self.name


def _term(study: Study, parts: dict[str, int]) -> Term:
    order = {n: i for i, n in enumerate(study.factor_names)}
    return Term(tuple(sorted(parts.items(), key=lambda kv: order[kv[0]])))


def _sort_terms(study: Study, terms: list[Term]) -> list[Term]:
    order = {n: i for i, n in enumerate(study.factor_names)}

    def key(t: Term) -> tuple[int, int, list[int], list[int]]:
        kind = 0 if t.is_main else (2 if len(t.parts) == 1 else 1)
        return (kind if t.degree <= 2 else 3, t.degree, [order[f] for f in t.factors], [p for _, p in t.parts])

    return sorted(dict.fromkeys(terms), key=key)


def preset_terms(study: Study, preset: str) -> list[Term]:
    """Terms of a preset model over the study's factors."""
    names = study.factor_names
    terms = [_term(study, {n: 1}) for n in names]
    if preset in ("interactions", "quadratic"):
        terms += [_term(study, {a: 1, b: 1}) for a, b in itertools.combinations(names, 2)]
    if preset == "quadratic":
        terms += [_term(study, {f.name: 2}) for f in study.factors if not f.is_categorical]
    if preset == "full":
        for k in range(2, len(names) + 1):
            terms += [_term(study, dict.fromkeys(c, 1)) for c in itertools.combinations(names, k)]
    return _sort_terms(study, terms)


def parse_model(study: Study, spec: str | list[str] | None) -> list[Term]:
    """Parse a preset or term list into terms (without the intercept).

    >>> from doe.study import Study, Factor
    >>> s = Study("x", [Factor("A", low=0, high=1), Factor("B", low=0, high=1)])
    >>> [t.name for t in parse_model(s, "A*B + A^2")]
    ['A', 'B', 'A:B', 'A^2']
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        spec = "linear"
    if isinstance(spec, (list, tuple)):
        spec = " + ".join(str(s) for s in spec)
    spec = str(spec).strip()
    # '+' separates terms; ' - ' (with spaces, so hyphenated names survive) removes them.
    add: list[Term] = []
    remove: list[Term] = []
    for chunk in spec.split("+"):
        chunk = chunk.strip()
        if not chunk:
            continue
        if chunk.startswith("-"):
            chunk = " - " + chunk[1:]
        pieces = re.split(r"\s+-\s+", " " + chunk + " ")
        first, rest = pieces[0].strip(), [p.strip() for p in pieces[1:] if p.strip()]
        if first:
            add.extend(_parse_piece(study, first))
        for piece in rest:
            remove.extend(_parse_piece(study, piece))
    terms = [t for t in _sort_terms(study, add) if t not in set(remove)]
    if not terms:
        raise ModelError(f"The model '{spec}' has no terms: name at least one factor or a preset.")
    return terms


def _parse_piece(study: Study, piece: str) -> list[Term]:
    key = piece.strip().lower()
    if key in _PRESET_ALIASES:
        return preset_terms(study, _PRESET_ALIASES[key])
    if key in ("intercept", "1"):
        return []
    if "*" in piece:
        factors = [_factor_name(study, p, piece) for p in piece.split("*")]
        out = []
        for k in range(1, len(factors) + 1):
            out += [_term(study, dict.fromkeys(c, 1)) for c in itertools.combinations(factors, k)]
        return out
    parts: dict[str, int] = {}
    for raw in piece.split(":"):
        raw = raw.strip()
        m = re.fullmatch(r"I\((.+?)\s*\*\*\s*(\d+)\s*\)|(.+?)\s*\^\s*(\d+)", raw)
        if m:
            name = m.group(1) or m.group(3)
            power = int(m.group(2) or m.group(4))
        else:
            name, power = raw, 1
        name = _factor_name(study, name, piece)
        if name in parts:
            raise ModelError(f"Term '{piece}' names {name} twice; write a power instead, e.g. {name}^2.")
        f = study.factor(name)
        if power < 1 or power > 3:
            raise ModelError(f"Term '{piece}': powers 1 to 3 are supported.")
        if power > 1 and f.is_categorical:
            raise ModelError(
                f"Term '{piece}': {name} is categorical, so it has no square; "
                f"its main effect already covers all {len(f.levels)} levels."
            )
        parts[name] = power
    return [_term(study, parts)]


def _factor_name(study: Study, raw: str, piece: str) -> str:
    name = raw.strip().strip("`").strip()
    if name in study.factor_names:
        return name
    lowered = {n.lower(): n for n in study.factor_names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    raise ModelError(
        f"Model term '{piece.strip()}' names unknown factor '{name}'."
        f"{did_you_mean(name, study.factor_names)} Factors are {quoted_list(study.factor_names)}; "
        f"presets are {', '.join(PRESETS)}."
    )


def settings_shortfall(study: Study, term: Term | None, U: np.ndarray, where: str = "in the design") -> str | None:
    """Why a term cannot be estimated from the factor settings in ``U``, or None.

    A factor at one setting, a categorical level that never appears, or too
    few distinct settings for a power (a square needs 3).
    """
    for f, power in term.parts if term else ():
        factor = study.factor(f)
        values = U[:, study.factor_names.index(f)]
        n_levels = len(np.unique(np.round(values, 9)))
        if n_levels == 1:
            return f"{f} is at one setting in every run {where}"
        if factor.is_categorical and n_levels < len(factor.levels):
            used = set(values.astype(int).tolist())
            missing = [str(v) for i, v in enumerate(factor.levels) if i not in used]
            return f"level(s) {', '.join(missing)} of {f} never appear {where}"
        if n_levels <= power:
            need = "a square" if power == 2 else "a cube" if power == 3 else f"a power {power}"
            return f"{f} has only {n_levels} levels {where} ({need} needs at least {power + 1})"
    return None


def model_spec_text(terms: list[Term]) -> str:
    """The term list as a spec string that parse_model reads back."""
    return " + ".join(t.name for t in terms)


def max_power(terms: list[Term], factor: str) -> int:
    """The highest power of ``factor`` in any of the terms (0 when no term has it)."""
    return max((p for t in terms for f, p in t.parts if f == factor), default=0)


# -- model matrices -------------------------------------------------------------
def effect_codes(n_levels: int) -> np.ndarray:
    """Effect (sum-to-zero) coding: rows = levels, columns = first n-1 levels."""
    codes = np.vstack([np.eye(n_levels - 1), -np.ones((1, n_levels - 1))])
    return codes


class ModelMatrix:
    """Builds model matrices in coded units for a study, a term list and optional blocks.

    Designs are passed as a *coded array* ``U`` (runs x factors): continuous and
    discrete factors coded -1..+1, categorical factors as level index 0..k-1.
    This is what the optimal-design engine manipulates; :meth:`from_frame`
    converts a run sheet in actual units.
    """

    def __init__(self, study: Study, terms: list[Term], n_blocks: int = 1):
        self.study = study
        self.terms = list(terms)
        self.n_blocks = int(n_blocks)
        self._index = {n: i for i, n in enumerate(study.factor_names)}
        self._codes = {
            f.name: effect_codes(len(f.levels)) for f in study.factors if f.is_categorical
        }
        self.columns: list[str] = ["Intercept"]
        self.column_term: list[str] = ["Intercept"]
        if self.n_blocks > 1:
            for b in range(self.n_blocks - 1):
                self.columns.append(f"Block[{b + 1}]")
                self.column_term.append("Block")
        for t in self.terms:
            for col in self._term_column_names(t):
                self.columns.append(col)
                self.column_term.append(t.name)

    @property
    def p(self) -> int:
        """The number of model columns (intercept and block codes included)."""
        return len(self.columns)

    def _factor_labels(self, name: str, power: int) -> list[str]:
        f = self.study.factor(name)
        if f.is_categorical:
            return [f"{name}[{lv}]" for lv in f.levels[:-1]]
        return [name if power == 1 else f"{name}^{power}"]

    def _term_column_names(self, t: Term) -> list[str]:
        labels = [self._factor_labels(f, p) for f, p in t.parts]
        return [":".join(combo) for combo in itertools.product(*labels)]

    def _factor_basis(self, U: np.ndarray, name: str, power: int) -> np.ndarray:
        col = U[:, self._index[name]]
        if name in self._codes:
            codes: np.ndarray = self._codes[name][col.astype(int)]
            return codes
        return (col ** power)[:, None]

    def build(self, U: np.ndarray, blocks: np.ndarray | None = None) -> np.ndarray:
        """Model matrix (runs x p) for coded settings ``U`` and block indices 0..B-1."""
        U = np.atleast_2d(np.asarray(U, dtype=float))
        n = U.shape[0]
        cols = [np.ones((n, 1))]
        if self.n_blocks > 1:
            b = np.zeros(n, dtype=int) if blocks is None else np.asarray(blocks, dtype=int)
            cols.append(effect_codes(self.n_blocks)[b])
        for t in self.terms:
            (f0, p0), *rest = t.parts  # a term has at least one factor
            block = self._factor_basis(U, f0, p0)
            for f, p in rest:
                basis = self._factor_basis(U, f, p)
                block = (block[:, :, None] * basis[:, None, :]).reshape(n, -1)
            cols.append(block)
        return np.hstack(cols)

    def coded(self, frame: pd.DataFrame) -> np.ndarray:
        """Coded settings array from a run sheet in actual units (factor columns by name)."""
        return coded_array(self.study, frame)

    def from_frame(self, frame: pd.DataFrame, block_col: str | None = None) -> np.ndarray:
        """Model matrix of a run sheet in actual units; blocks numbered in order of first appearance."""
        blocks = None
        if self.n_blocks > 1 and block_col and block_col in frame:
            labels = list(dict.fromkeys(frame[block_col].astype(str)))
            blocks = frame[block_col].astype(str).map({lv: i for i, lv in enumerate(labels)}).to_numpy()
        return self.build(self.coded(frame), blocks)


def coded_array(study: Study, frame: pd.DataFrame) -> np.ndarray:
    """Runs x factors array: numeric factors coded -1..+1, categorical as level index.

    Raises ModelError naming the row and the column for a missing column, an
    unknown level or a non-numeric value.
    """
    missing = [n for n in study.factor_names if n not in frame.columns]
    if missing:
        raise ModelError(
            f"The design has no column for {quoted_list(missing)}. Columns must be named "
            f"exactly as the study's factors: {quoted_list(study.factor_names)}."
        )
    out = np.empty((len(frame), len(study.factors)))
    for j, f in enumerate(study.factors):
        col = frame[f.name]
        if f.is_categorical:
            index = {str(v).strip().lower(): i for i, v in enumerate(f.levels)}
            text = col.astype(str)
            mapped = text.str.strip().str.lower().map(index)
            if mapped.isna().any():
                r = int(np.flatnonzero(mapped.isna().to_numpy())[0])
                v = text.iloc[r]
                raise ModelError(
                    f"Row {r + 1}, column '{f.name}': '{v}' is not a level of {f.name}."
                    f"{did_you_mean(v, f.levels)} Levels are {quoted_list(f.levels)}."
                )
            out[:, j] = mapped.to_numpy(dtype=float)
        else:
            values = pd.to_numeric(col, errors="coerce")
            bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise ModelError(
                    f"Row {r + 1}, column '{f.name}': '{col.iloc[r]}' is not a number. "
                    f"Enter {f.name} in {f.units or 'its units'} as a plain number."
                )
            out[:, j] = (values.to_numpy(dtype=float) - f.center) / f.half_range
    return out


def actual_frame(study: Study, U: np.ndarray) -> pd.DataFrame:
    """Coded settings array -> DataFrame of actual settings (one column per factor)."""
    data = {}
    for j, f in enumerate(study.factors):
        values = f.to_actual(U[:, j])
        if f.kind == "discrete":
            values = np.array([_nearest(f.levels, v) for v in values], dtype=float)
        elif f.kind == "continuous":
            values = np.round(values.astype(float), 10)
        data[f.name] = values
    return pd.DataFrame(data)


def _nearest(levels: list[Any], value: float) -> float:
    arr = np.asarray(levels, dtype=float)
    return float(arr[np.argmin(np.abs(arr - value))])


#: The model each design type is evaluated with unless the user names one.
DEFAULT_MODEL = {
    "full": "interactions", "fractional": "linear", "pb": "linear", "dsd": "linear",
    "ccd": "quadratic", "bbd": "quadratic", "lhs": "quadratic", "optimal": "quadratic",
}


def default_model(study: Study, kind: str = "optimal") -> str:
    """The model a design of ``kind`` is built and evaluated for unless the user names one.

    :data:`DEFAULT_MODEL` for the type, except that the quadratic model leaves out the square of a
    discrete factor with fewer than 3 levels (a square needs 3 levels to be estimated), so the
    default design always estimates its default model.
    """
    model = DEFAULT_MODEL.get(str(kind).strip().lower(), "quadratic")
    if model != "quadratic":
        return model
    two = [f.name for f in study.factors if f.kind == "discrete" and len(set(f.levels)) < 3]
    return " - ".join([model, *(f"{name}^2" for name in two)])
