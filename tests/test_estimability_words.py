"""Estimability messages in words (issue 14): the factor, why, and what to add; no linear combinations.

Each design below is built so that the reason is known in advance.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from doe.errors import ModelError
from doe.evaluate import evaluate_design
from doe.fit import fit_model
from doe.study import Factor, Response, Study

EQUATION = re.compile(r"[=]|\s[+-]\s|\d\.\d")  # an equation, a sum of columns or a coefficient


def _numeric(names: str) -> Study:
    return Study("w", [Factor(n, low=0, high=1) for n in names], [Response("Y")])


def _reasons(ev) -> dict[str, str]:
    return {d["column"]: d["reason"] for d in ev.inestimable}


def test_square_on_two_levels_says_add_centre_or_axial_points():
    U = np.array(list(itertools.product([-1.0, 1.0], repeat=2)) * 2)
    ev = evaluate_design(_numeric("AB"), U, "quadratic")
    reason = _reasons(ev)
    assert set(reason) == {"A^2", "B^2"}
    assert reason["A^2"].startswith("A has only 2 levels in the design")
    assert "add centre or axial points" in reason["A^2"]
    assert not EQUATION.search(reason["A^2"])
    assert any(w.startswith("A^2 cannot be estimated: A has only 2 levels") and "centre or axial" in w
               for w in ev.warnings)


def test_resolution_iv_pair_named_without_an_equation():
    # 2^(4-1) with D = ABC: B:C and A:D have identical columns (B*C = A*A*B*C = A*D)
    base = np.array(list(itertools.product([-1.0, 1.0], repeat=3)))
    U = np.column_stack([base, base.prod(axis=1)])
    ev = evaluate_design(_numeric("ABCD"), U, "interactions")
    d = next(d for d in ev.inestimable if d["column"] == "B:C")
    assert d["reason"].startswith("aliased with A:D: B:C equals A:D in every run")
    assert "fold-over" in d["reason"] and not EQUATION.search(d["reason"].replace("B:C equals A:D", ""))
    assert d["combination"] == "B:C = A:D"  # the technical statement, kept separately


def test_column_fixed_by_two_others_lists_them_in_words():
    # C is set halfway between A and B in every run, so C = (A + B) / 2 in coded units too
    rng = np.random.default_rng(1)
    A, B = rng.uniform(-1, 1, 10), rng.uniform(-1, 1, 10)
    U = np.column_stack([A, B, (A + B) / 2])
    ev = evaluate_design(_numeric("ABC"), U, "linear")
    d = next(d for d in ev.inestimable if d["column"] == "C")
    assert d["reason"].startswith("aliased with A and B together")
    assert not EQUATION.search(d["reason"])
    assert d["combination"] == "C = 0.5 A + 0.5 B"


def _cat_study() -> Study:
    return Study("c", [Factor("Agitation", low=30, high=90, units="rpm"),
                       Factor("Medium", "categorical", levels=["Serum", "Xeno-free"]),
                       Factor("Surface", "categorical", levels=["Flask", "Carrier"])],
                 [Response("Y")])


def test_categorical_combination_that_never_occurs():
    # Xeno-free medium is never run on carriers: three of the four combinations appear
    combos = [(0, 0), (0, 1), (1, 0)]
    U = np.array([[a, m, s] for (m, s) in combos for a in (-1.0, 1.0)])
    ev = evaluate_design(_cat_study(), U, "Agitation + Medium + Surface + Medium:Surface")
    reason = _reasons(ev)
    assert list(reason) == ["Medium[Serum]:Surface[Flask]"]
    text = reason["Medium[Serum]:Surface[Flask]"]
    assert text.startswith("these combinations of Medium and Surface never occur in the design: "
                           "Medium = Xeno-free, Surface = Carrier")
    assert "add runs with them" in text


def test_numeric_factor_fixed_within_a_level():
    # Agitation varies with serum medium but is always 30 rpm with xeno-free medium
    U = np.array([[-1.0, 0, 0], [1.0, 0, 1], [0.0, 0, 0], [-1.0, 1, 1], [-1.0, 1, 0], [-1.0, 1, 1]])
    ev = evaluate_design(_cat_study(), U, "Agitation + Medium + Surface + Agitation:Medium")
    text = _reasons(ev)["Agitation:Medium[Serum]"]
    assert text.startswith("Agitation is at one setting in every run with Medium = Xeno-free")


def test_fit_error_in_words():
    study = _numeric("AB")
    runs = pd.DataFrame({"A": [0, 1, 0, 1, 0.5], "B": [0, 1, 0, 1, 0.5], "Y": [1.0, 2, 3, 4, 5]})
    with pytest.raises(ModelError) as info:
        fit_model(study, runs, "Y", "A + B")
    text = str(info.value)
    assert "B cannot be estimated from these runs: aliased with A: B equals A in every run" in text
    assert not EQUATION.search(text.replace("B equals A", ""))
