"""Constraints on factor settings, as small safe expressions.

A constraint is a boolean expression over factor names, for example
``Surface == 'ULA' and Agitation > 60`` or ``Agitation + 0.01 * `Seeding density` <= 100``.
Factor names may be written plainly (spaces allowed) or in backticks. The
expression is parsed with :mod:`ast` and evaluated by a small interpreter over
numpy arrays: no ``eval``, no attribute access, no calls.

``exclude`` constraints name disallowed combinations (a run matching the
expression is not allowed); ``require`` constraints name what every run must
satisfy (linear limits such as ``A + B <= 100``).
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from doe.errors import StudyError, did_you_mean, quoted_list

if TYPE_CHECKING:
    from doe.study import Factor

KINDS = ("exclude", "require")

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


@dataclass
class Constraint:
    """One constraint: ``kind`` is 'exclude' (disallowed region) or 'require'."""

    expr: str
    kind: str = "exclude"
    reason: str = ""
    _tree: Any = field(default=None, repr=False, compare=False)
    _names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def to_yaml(self) -> str | dict[str, str]:
        """The constraint as written in a study file: the bare expression, or ``{kind: expr, reason: ...}``."""
        if self.kind == "exclude" and not self.reason:
            return self.expr
        out = {self.kind: self.expr}
        if self.reason:
            out["reason"] = self.reason
        return out

    def compile(self, factors: list[Factor]) -> Constraint:
        """Parse against the study's factors; raise StudyError naming the problem."""
        text, names = _substitute_names(self.expr, factors)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise StudyError(
                f"Constraint '{self.expr}' is not a valid expression ({exc.msg}). "
                "Write it like: Surface == 'ULA' and Agitation > 60"
            ) from None
        by_name = {f.name: f for f in factors}
        _check_tree(tree.body, self.expr, names, by_name)
        self._tree, self._names = tree.body, names
        return self

    def violated(self, settings: dict[str, np.ndarray]) -> np.ndarray:
        """Boolean array: True where a run breaks this constraint.

        ``settings`` maps factor name to an array of actual values (level
        strings for categorical factors).
        """
        if self._tree is None:
            raise RuntimeError("Constraint.compile() must be called first")
        env = {key: np.asarray(settings[name]) for key, name in self._names.items()}
        value = np.asarray(_evaluate(self._tree, env), dtype=bool)
        n = len(next(iter(settings.values()))) if settings else 1
        value = np.broadcast_to(value, (n,))
        return value if self.kind == "exclude" else ~value


def feasible(constraints: list[Constraint], settings: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean array: True where a run satisfies every constraint."""
    n = len(next(iter(settings.values()))) if settings else 0
    ok = np.ones(n, dtype=bool)
    for c in constraints:
        ok &= ~c.violated(settings)
    return ok


def _substitute_names(expr: str, factors: list[Factor]) -> tuple[str, dict[str, str]]:
    """Replace factor names (plain or in backticks) outside quotes by identifiers."""
    names: dict[str, str] = {}
    key_of: dict[str, str] = {}
    for i, f in enumerate(factors):
        key_of[f.name] = f"__f{i}"
    ordered = sorted(key_of, key=len, reverse=True)
    pieces = re.split(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", expr)
    out = []
    for idx, piece in enumerate(pieces):
        if idx % 2 == 1:  # a quoted string literal
            out.append(piece)
            continue

        def tick(m: re.Match[str]) -> str:
            name = m.group(1).strip()
            if name not in key_of:
                raise StudyError(
                    f"Constraint '{expr}' names unknown factor '{name}'."
                    f"{did_you_mean(name, key_of)} Factors are {quoted_list(key_of)}."
                )
            names[key_of[name]] = name
            return key_of[name]

        piece = re.sub(r"`([^`]*)`", tick, piece)
        for name in ordered:
            pattern = r"(?<![\w.])" + re.escape(name) + r"(?![\w])"
            if re.search(pattern, piece):
                names[key_of[name]] = name
                piece = re.sub(pattern, key_of[name], piece)
        out.append(piece)
    return "".join(out), names


def _check_tree(node: ast.AST, expr: str, names: dict[str, str], by_name: dict[str, Any]) -> None:
    """Allow only comparisons, boolean logic and arithmetic on factors and constants."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            if sub.id not in names:
                raise StudyError(
                    f"Constraint '{expr}' names unknown factor '{sub.id}'."
                    f"{did_you_mean(sub.id, by_name)} Factors are {quoted_list(by_name)}; "
                    "put names with spaces in backticks or write them exactly."
                )
        elif isinstance(
            sub,
            (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
             ast.BinOp, ast.Compare, ast.Load, ast.Tuple, ast.List, ast.In, ast.NotIn,
             ast.Constant, *_BINOPS, *_CMPOPS),
        ):
            if isinstance(sub, ast.Constant) and not isinstance(sub.value, (int, float, str)):
                raise StudyError(f"Constraint '{expr}': only numbers and quoted levels are allowed.")
        else:
            raise StudyError(
                f"Constraint '{expr}' uses '{type(sub).__name__}', which is not allowed: "
                "use factor names, numbers, quoted levels, + - * /, comparisons, and/or/not."
            )
    # A categorical factor compared with a level must name a real level.
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Compare):
            continue
        operands = [sub.left, *sub.comparators]
        factor_names = [names[o.id] for o in operands if isinstance(o, ast.Name)]
        literals: list[Any] = []
        for o in operands:
            if isinstance(o, ast.Constant):
                literals.append(o.value)
            elif isinstance(o, (ast.Tuple, ast.List)):
                literals.extend(e.value for e in o.elts if isinstance(e, ast.Constant))
        for fname in factor_names:
            f = by_name[fname]
            if f.kind != "categorical":
                continue
            for lit in literals:
                if str(lit) not in [str(v) for v in f.levels]:
                    raise StudyError(
                        f"Constraint '{expr}': '{lit}' is not a level of {f.name}."
                        f"{did_you_mean(str(lit), f.levels)} Levels are {quoted_list(f.levels)}."
                    )


def _evaluate(node: ast.AST, env: dict[str, np.ndarray]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_evaluate(e, env) for e in node.elts]
    if isinstance(node, ast.BoolOp):
        values = [np.asarray(_evaluate(v, env), dtype=bool) for v in node.values]
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = values[0]
        for v in values[1:]:
            out = fn(out, v)
        return out
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, env)
        if isinstance(node.op, ast.Not):
            return np.logical_not(value)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_as_number(_evaluate(node.left, env)),
                                      _as_number(_evaluate(node.right, env)))
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, env)
        result: Any = True
        for op, comp in zip(node.ops, node.comparators):
            right = _evaluate(comp, env)
            if isinstance(op, (ast.In, ast.NotIn)):
                part = np.isin(np.asarray(left).astype(str), [str(r) for r in right])
                part = part if isinstance(op, ast.In) else ~part
            elif isinstance(op, (ast.Eq, ast.NotEq)) and (_is_text(left) or _is_text(right)):
                part = np.asarray(left).astype(str) == np.asarray(right).astype(str)
                part = part if isinstance(op, ast.Eq) else ~part
            else:
                part = _CMPOPS[type(op)](_as_number(left), _as_number(right))
            result = np.logical_and(result, part)
            left = right
        return result
    raise StudyError(f"Unsupported expression element '{type(node).__name__}'.")


def _is_text(value: Any) -> bool:
    arr = np.asarray(value)
    return arr.dtype.kind in "USO"


def _as_number(value: Any) -> Any:
    arr = np.asarray(value)
    if arr.dtype.kind in "USO":
        try:
            return arr.astype(float)
        except ValueError:
            raise StudyError(
                "A constraint does arithmetic or an order comparison on a categorical "
                "factor; compare categorical factors with == or 'in' only."
            ) from None
    return arr
