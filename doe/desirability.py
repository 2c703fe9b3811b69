"""Several CQAs at once: Derringer & Suich desirability and its optimisation.

Each CQA's prediction y (original scale) is mapped to an individual
desirability d in [0, 1]; the d's combine into the overall desirability

    D = (d_1^r_1 * d_2^r_2 * ... * d_m^r_m) ^ (1 / (r_1 + ... + r_m))

where r_i is the CQA's ``importance`` (Design-Expert's weighted geometric
mean; equal importances give the plain geometric mean of Derringer & Suich).
D is 0 as soon as one d is 0.

Individual desirabilities (A lower limit, T target, B upper limit, s ``weight``)
--------------------------------------------------------------------------
- ``maximize``: d = 0 for y <= A, ((y - A)/(B - A))^s between, 1 for y >= B.
- ``minimize``: d = 1 for y <= A, ((B - y)/(B - A))^s between, 0 for y >= B.
- ``target``: d = ((y - A)/(T - A))^s1 on [A, T], ((B - y)/(B - T))^s2 on
  [T, B], 0 outside [A, B] (s1 = ``weight``, s2 = ``weight_upper``).
- ``range``: d = 1 inside [A, B] (either side may be open), 0 outside. As in
  Design-Expert, it multiplies into D but does not count in the exponent's
  denominator: it acts as a constraint.
- ``none``: the CQA is not used.

Where the limits come from (:func:`desirabilities`)
----------------------------------------------------
A CQA in a study has spec limits (``lower``, ``upper``) and a ``target`` but
no "best" value. Per CQA, ``limits={name: (A, B)}`` (or ``(A, T, B)`` for a
target) overrides everything. Otherwise: maximize uses A = lower spec and
B = the highest observed value (capped at the upper spec, if any); minimize
uses B = upper spec and A = the lowest observed value; target uses lower,
target and upper specs; a missing spec limit is replaced by the lowest or
highest observed value. Design-Expert's default limits are likewise the
observed range of the data. "Observed" means the results the models were
fitted to (for :class:`~doe.fit.FittedModel`), values passed as ``observed``,
or else the predictions over the search's starting points. Response
``weight`` is the shape exponent s and ``importance`` the exponent r.

The search (:func:`optimize_desirability`)
------------------------------------------
D is not smooth (kinks at the limits and at a target), so gradient methods do
not apply. Every allowed combination of categorical and discrete levels is
enumerated; for each, a Latin hypercube sample plus a grid over the
continuous factors (coded units) is evaluated. The best starting points (and
the best of every level combination) are refined by Nelder-Mead simplices run
in lockstep (one prediction call per step for all of them); the best distinct
optima are then restarted twice with smaller simplices, which polishes optima
lying on ridges (a target met exactly, a bound). Outside the acceptable limits the search climbs a
penalty (how far each prediction lies outside its limits), so it finds its way
out of regions where D = 0, as Design-Expert's optimiser does. Points outside
the region or violating the study's constraints have D = 0.

Coded units: ``bounds``, ``radius``, the ``coded`` settings of the result and
the argument of a ``region`` callable are coded (-1..+1 over each factor's
low..high); ``settings`` and ``fixed`` are in actual units.

References
----------
Derringer, G., Suich, R. (1980) Simultaneous optimization of several response
variables. J. Quality Technology 12:214-219.
Myers, R.H., Montgomery, D.C., Anderson-Cook, C.M. (2016) Response Surface
Methodology, 4th ed., Wiley, sec. 7.3.
Kuhn, M. desirability: Function Optimization and Ranking via Desirability
Functions (R package vignette).
Lagarias, J.C. et al. (1998) Convergence properties of the Nelder-Mead simplex
method in low dimensions. SIAM J. Optim. 9:112-147.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy.stats import qmc

from doe._format import plain
from doe.errors import DoeError, did_you_mean, quoted_list
from doe.fit import parse_transform
from doe.study import Study

__all__ = [
    "Desirability", "desirabilities", "desirability_grid", "individual", "optimize_desirability",
    "overall", "quadratic_predictor",
]

GOALS = ("maximize", "minimize", "target", "range")
#: Objective of a point outside the region or the constraints: below every allowed point.
_EXCLUDED = -1e6
#: Above this many level combinations x surrogate nodes a fitted model is predicted directly.
_MAX_SURROGATE_ROWS = 200_000
#: Above this many tensor-grid rows the surrogate fits only the model's own monomials (many factors).
_MAX_TENSOR_ROWS = _MAX_SURROGATE_ROWS
#: Simplex sizes (fraction of each factor's coded width) of the first run and the two restarts.
_SIMPLEX_STEPS = (0.1, 0.01, 0.001)


# -- individual desirabilities -----------------------------------------------------------
@dataclass(frozen=True)
class Desirability:
    """The desirability function of one CQA (Derringer & Suich 1980).

    Parameters
    ----------
    response : str
        The CQA's name.
    goal : {'maximize', 'minimize', 'target', 'range'}
    lower, upper : float or None
        A and B on the response's scale. Maximize: d = 0 at or below A, 1 at or
        above B. Minimize: d = 1 at or below A, 0 at or above B. Target: d = 0
        outside [A, B]. Range: either may be None (one-sided).
    target : float or None
        T, where a target's d is 1.
    weight : float
        Shape exponent s (s1 below a target); 1 is a straight ramp, above 1
        demands values closer to the goal, below 1 is more lenient.
    weight_upper : float or None
        Shape exponent s2 above a target; None uses ``weight``.
    importance : float
        Exponent r in the overall desirability (Design-Expert's 1..5 "+").
    note : str
        Where the limits came from, for reports.

    Examples
    --------
    >>> d = Desirability("Yield", "maximize", lower=80, upper=97)
    >>> d([70, 80, 88.5, 97, 99]).round(3).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    >>> Desirability("pH", "target", lower=6, target=7, upper=9)([6.5, 7, 8]).tolist()
    [0.5, 1.0, 0.5]
    """

    response: str
    goal: str
    lower: float | None = None
    upper: float | None = None
    target: float | None = None
    weight: float = 1.0
    weight_upper: float | None = None
    importance: float = 1.0
    note: str = ""

    def __post_init__(self) -> None:
        name = self.response
        if self.goal not in GOALS:
            raise DoeError(f"CQA '{name}': desirability goal '{self.goal}' is unknown."
                           f"{did_you_mean(str(self.goal), GOALS)} Goals are {', '.join(GOALS)}.")
        for key in ("lower", "upper", "target", "weight", "weight_upper", "importance"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, (int, float, np.number))
                                          and math.isfinite(value)):
                raise DoeError(f"CQA '{name}': {key} must be a finite number; got {value!r}.")
        if self.weight <= 0 or (self.weight_upper is not None and self.weight_upper <= 0):
            raise DoeError(f"CQA '{name}': the weight (shape exponent) must be positive.")
        if self.importance <= 0:
            raise DoeError(f"CQA '{name}': the importance must be positive.")
        lo, hi, t = self.lower, self.upper, self.target
        if self.goal in ("maximize", "minimize", "target") and (lo is None or hi is None):
            raise DoeError(f"CQA '{name}': goal '{self.goal}' needs both a lower and an upper limit.")
        if self.goal == "target" and t is None:
            raise DoeError(f"CQA '{name}': goal 'target' needs a target value.")
        if self.goal == "range" and lo is None and hi is None:
            raise DoeError(f"CQA '{name}': goal 'range' needs a lower or an upper limit.")
        if lo is not None and hi is not None and lo > hi:
            raise DoeError(f"CQA '{name}': the lower limit {lo:g} is above the upper limit {hi:g}.")
        if self.goal == "target" and lo is not None and hi is not None and t is not None and not lo <= t <= hi:
            raise DoeError(f"CQA '{name}': the target {t:g} lies outside the limits {lo:g} to {hi:g}.")

    @property
    def counted(self) -> bool:
        """True when the CQA counts in the exponent of D (every goal but 'range')."""
        return self.goal != "range"

    def __call__(self, y: Any) -> np.ndarray:
        """Individual desirability d of each value of y (NaN gives 0)."""
        y = np.asarray(y, dtype=float)
        lo, hi, t, s = self.lower, self.upper, self.target, self.weight
        with np.errstate(invalid="ignore"):
            if self.goal in ("maximize", "minimize", "target"):
                # __post_init__ requires both limits for these goals (and a target for 'target')
                a, b = cast(float, lo), cast(float, hi)
                if self.goal == "maximize":
                    d = _ramp(y, a, b) ** s
                elif self.goal == "minimize":
                    d = _ramp(-y, -b, -a) ** s
                else:
                    m = cast(float, t)
                    s2 = s if self.weight_upper is None else self.weight_upper
                    d = np.where(y <= m, _ramp(y, a, m) ** s, _ramp(-y, -b, -m) ** s2)
            else:
                inside = np.ones(y.shape, dtype=bool)
                if lo is not None:
                    inside &= y >= lo
                if hi is not None:
                    inside &= y <= hi
                d = inside.astype(float)
        return np.where(np.isnan(y), 0.0, d)

    def shortfall(self, y: Any) -> np.ndarray:
        """How far y lies outside the limits where d > 0, in units of the limits' span (0 inside)."""
        y = np.asarray(y, dtype=float)
        lo = -np.inf if self.lower is None else self.lower
        hi = np.inf if self.upper is None else self.upper
        if self.goal == "maximize":
            hi = np.inf
        elif self.goal == "minimize":
            lo = -np.inf
        finite = [v for v in (self.lower, self.upper) if v is not None]
        span = (max(finite) - min(finite)) or max(max(abs(v) for v in finite), 1.0)
        out = (np.maximum(lo - y, 0.0) + np.maximum(y - hi, 0.0)) / span
        return np.where(np.isnan(y), np.inf, out)

    def describe(self) -> str:
        """The function in words, e.g. 'maximize: d = 0 at 80, 1 at 97 (s = 1)'."""
        if self.goal == "maximize":
            text = f"maximize: d = 0 at {self.lower:g}, 1 at {self.upper:g} (s = {self.weight:g})"
        elif self.goal == "minimize":
            text = f"minimize: d = 1 at {self.lower:g}, 0 at {self.upper:g} (s = {self.weight:g})"
        elif self.goal == "target":
            s2 = self.weight if self.weight_upper is None else self.weight_upper
            text = (f"target {self.target:g}: d = 0 at {self.lower:g} and {self.upper:g} "
                    f"(s1 = {self.weight:g}, s2 = {s2:g})")
        else:
            lo = "-inf" if self.lower is None else f"{self.lower:g}"
            hi = "inf" if self.upper is None else f"{self.upper:g}"
            text = f"in range {lo} to {hi}"
        return f"{self.response}: {text}, importance {self.importance:g}"


def _ramp(y: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 at or below a, 1 at or above b, linear between (a step at b when a == b)."""
    if b > a:
        return np.clip((y - a) / (b - a), 0.0, 1.0)
    return (y >= b).astype(float)


def individual(specs: Sequence[Desirability], predictions: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Individual desirability of each CQA: ``{response: d}`` at every point of ``predictions``.

    ``predictions`` maps each response to its predicted values (a dict or a
    DataFrame with one column per response, original scale).
    """
    out = {}
    for spec in specs:
        if spec.response not in predictions:
            raise DoeError(f"There are no predictions of '{spec.response}' to compute its desirability.")
        out[spec.response] = spec(np.asarray(predictions[spec.response], dtype=float))
    return out


def overall(specs: Sequence[Desirability], predictions: Mapping[str, Any]) -> np.ndarray:
    """Overall desirability D = (prod d_i^r_i)^(1/sum r_i) at every point, vectorised.

    'range' CQAs multiply in (d is 0 or 1) without counting in sum r_i, as in
    Design-Expert.

    Examples
    --------
    >>> specs = [Desirability("Y1", "maximize", 0, 10), Desirability("Y2", "minimize", 0, 10)]
    >>> overall(specs, {"Y1": [5.0, 10.0, 0.0], "Y2": [5.0, 0.0, 0.0]}).round(6).tolist()
    [0.5, 1.0, 0.0]
    """
    return _combine(specs, individual(specs, predictions))


def _combine(specs: Sequence[Desirability], d: Mapping[str, np.ndarray]) -> np.ndarray:
    if not specs:
        raise DoeError("No CQA has a goal: give at least one CQA a goal to compute a desirability.")
    first = np.asarray(d[specs[0].response])
    zero = np.zeros(first.shape, dtype=bool)
    log_d = np.zeros(first.shape)
    total = 0.0
    for spec in specs:
        di = d[spec.response]
        zero |= ~(di > 0)
        if spec.counted:
            log_d += spec.importance * np.log(np.where(di > 0, di, 1.0))
            total += spec.importance
    return np.where(zero, 0.0, np.exp(log_d / total) if total > 0 else 1.0)


# -- limits from the study -----------------------------------------------------------------
def desirabilities(study: Study, *, limits: Mapping[str, Sequence[float | None]] | None = None,
                   observed: Mapping[str, Any] | None = None,
                   responses: Sequence[str] | None = None) -> list[Desirability]:
    """Desirability functions of the study's CQAs from their goals and spec limits.

    Parameters
    ----------
    study : Study
    limits : dict, optional
        Per CQA ``(A, B)``, or ``(A, T, B)`` for a target: overrides the specs.
        An entry may be None to keep the default for that limit.
    observed : mapping, optional
        Observed (or predicted) values per CQA; their lowest and highest value
        stand in for a limit the spec does not give (maximize: B; minimize: A;
        target and maximize/minimize without a spec limit: the missing side).
    responses : list of str, optional
        Only these CQAs (default: every CQA whose goal is not 'none').

    Returns
    -------
    list of Desirability, each with a ``note`` saying where its limits came from.

    Examples
    --------
    >>> from doe.study import Study
    >>> st = Study.from_dict({"name": "s", "factors": [{"name": "x", "low": 0, "high": 1}],
    ...     "responses": [{"name": "Yield", "goal": "maximize", "lower": 80}]})
    >>> desirabilities(st, observed={"Yield": [78, 91, 95]})[0].describe()
    'Yield: maximize: d = 0 at 80, 1 at 95 (s = 1), importance 1'
    """
    limits = dict(limits or {})
    for name in limits:
        study.response(name)
    chosen = [study.response(n) for n in responses] if responses is not None else [
        r for r in study.responses if r.goal != "none"]
    return [_spec_of(r, limits.get(r.name), observed) for r in chosen]


def _spec_of(r: Any, lim: Sequence[float | None] | None, observed: Mapping[str, Any] | None) -> Desirability:
    """One CQA's desirability from its goal, specs, optional limits and observed values."""
    if r.goal == "none":
        raise DoeError(f"CQA '{r.name}' has goal 'none': give it a goal to optimise it.")
    a = t = b = None
    if lim is not None:
        lim = tuple(lim)
        if len(lim) == 2:
            a, b = lim
        elif len(lim) == 3 and r.goal == "target":
            a, t, b = lim
        else:
            raise DoeError(f"Limits of '{r.name}' must be (A, B)" +
                           (" or (A, T, B)." if r.goal == "target" else f" for goal '{r.goal}'."))
    lo_obs, hi_obs = _observed_range(r.name, observed)
    has_obs = observed is not None and r.name in observed
    notes: list[str] = []

    def pick(what: str, given: float | None, spec: float | None, spec_word: str,
             fallback: Callable[[], float], fallback_word: str) -> float:
        if given is not None:
            value, word = float(given), "given"
        elif spec is not None:
            value, word = float(spec), spec_word
        else:
            value, word = fallback(), fallback_word
        notes.append(f"{what} = {value:g} ({word})")
        return value

    kwargs: dict[str, Any]
    if r.goal == "maximize":
        A = pick("A", a, r.lower, "lower spec", lo_obs, "lowest observed")
        if b is None and r.upper is not None and has_obs:
            B = pick("B", None, min(hi_obs(), r.upper), "highest observed, at most the upper spec", hi_obs, "")
        else:
            B = pick("B", b, None, "", hi_obs, "highest observed")
        if B < A:
            notes.append(f"nothing observed reaches A: d steps from 0 to 1 at {A:g}")
            B = A
        kwargs = {"lower": A, "upper": B}
    elif r.goal == "minimize":
        B = pick("B", b, r.upper, "upper spec", hi_obs, "highest observed")
        if a is None and r.lower is not None and has_obs:
            A = pick("A", None, max(lo_obs(), r.lower), "lowest observed, at least the lower spec", lo_obs, "")
        else:
            A = pick("A", a, None, "", lo_obs, "lowest observed")
        if A > B:
            notes.append(f"nothing observed reaches B: d steps from 1 to 0 at {B:g}")
            A = B
        kwargs = {"lower": A, "upper": B}
    elif r.goal == "target":
        T = pick("T", t, r.target, "target", lambda: math.nan, "")
        A = pick("A", a, r.lower, "lower spec", lambda: min(lo_obs(), T), "lowest observed")
        B = pick("B", b, r.upper, "upper spec", lambda: max(hi_obs(), T), "highest observed")
        kwargs = {"lower": A, "target": T, "upper": B}
    else:
        A = float(a) if a is not None else r.lower
        B = float(b) if b is not None else r.upper
        notes.append(f"in range {'-inf' if A is None else f'{A:g}'} to {'inf' if B is None else f'{B:g}'}")
        kwargs = {"lower": A, "upper": B}
    return Desirability(r.name, r.goal, weight=float(r.weight), importance=float(r.importance),
                        note="; ".join(notes), **kwargs)


def _observed_range(name: str, observed: Mapping[str, Any] | None) -> tuple[Callable[[], float],
                                                                            Callable[[], float]]:
    """Lazy lowest and highest observed value of a CQA (an error only when one is needed)."""

    def values() -> np.ndarray:
        if observed is None or name not in observed:
            raise DoeError(
                f"CQA '{name}' has no spec limit on one side and there are no observed values to take "
                f"it from: give limits={{'{name}': (A, B)}} or its results."
            )
        v = pd.to_numeric(pd.Series(np.ravel(np.asarray(observed[name], dtype=object))), errors="coerce")
        v = v[np.isfinite(v)]
        if v.empty:
            raise DoeError(f"CQA '{name}' has no finite observed values to take its limits from.")
        out: np.ndarray = v.to_numpy(dtype=float)
        return out

    return (lambda: float(values().min())), (lambda: float(values().max()))


# -- published models ---------------------------------------------------------------------
def quadratic_predictor(coefs: Mapping[str, float] | Mapping[str, Mapping[str, float]],
                        names: Sequence[str], *, study: Study | None = None) -> Callable[[pd.DataFrame], Any]:
    """A published polynomial model (coded units) as a prediction function.

    Parameters
    ----------
    coefs : dict
        ``{term: coefficient}`` with terms ``Intercept``, ``x1``, ``x1^2`` (or
        ``x1**2``, ``I(x1^2)``), ``x1:x2`` (or ``x1*x2``); or
        ``{response: {term: coefficient}}`` for several responses.
    names : list of str
        The factor names the terms use (the DataFrame's columns).
    study : Study, optional
        Without it the DataFrame's columns are coded values; with it they are
        actual values, coded with the study's factors.

    Returns
    -------
    A function of a DataFrame returning an array (one model) or a dict of
    arrays (several), usable by :func:`optimize_desirability`.

    Examples
    --------
    >>> f = quadratic_predictor({"Intercept": 1.0, "x1": 2.0, "x1^2": -1.0, "x1:x2": 0.5}, ["x1", "x2"])
    >>> f(pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.0, 2.0]})).tolist()
    [1.0, 3.0]
    """
    names = list(names)
    several = bool(coefs) and all(isinstance(v, Mapping) for v in coefs.values())
    groups = (cast(Mapping[str, Mapping[str, float]], coefs) if several
              else {"": cast(Mapping[str, float], coefs)})
    models = {resp: [(_parse_term(str(t), names), float(b)) for t, b in c.items()]
              for resp, c in groups.items()}

    def predict(frame: pd.DataFrame) -> Any:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise DoeError(f"The settings have no column for {quoted_list(missing)}.")
        x = {n: frame[n].to_numpy(dtype=float) if study is None
             else study.factor(n).to_coded(frame[n].to_numpy(dtype=float)) for n in names}
        out = {}
        for resp, terms in models.items():
            y = np.zeros(len(frame))
            for parts, b in terms:
                col = np.ones(len(frame))
                for n, p in parts:
                    col = col * x[n] ** p
                y += b * col
            out[resp] = y
        return out if several else out[""]

    return predict


def _parse_term(term: str, names: list[str]) -> tuple[tuple[str, int], ...]:
    text = term.strip()
    if text.lower() in ("intercept", "(intercept)", "1", "const", "constant"):
        return ()
    text = text.replace("**", "^")
    m = re.fullmatch(r"I\((.*)\)", text)
    if m:
        text = m.group(1)
    parts = []
    for piece in re.split(r"[:*]", text):
        name, _, power = piece.strip().partition("^")
        name = name.strip()
        if name not in names:
            raise DoeError(f"Term '{term}' uses '{name}', which is not one of {quoted_list(names)}."
                           f"{did_you_mean(name, names)}")
        try:
            p = int(power) if power.strip() else 1
        except ValueError:
            raise DoeError(f"Term '{term}': the power must be a whole number.") from None
        parts.append((name, p))
    return tuple(parts)


# -- models ----------------------------------------------------------------------------------
class _Models:
    """Predictions of every CQA at settings in actual units (one call per batch of points)."""

    def __init__(self, models: Any, study: Study):
        self.study = study
        self.fits: dict[str, Any] = {}
        self.functions: dict[str, Callable[..., Any]] = {}
        self.joint: Callable[..., Any] | None = None
        self.unusable: dict[str, str] = {}
        if callable(models) and not isinstance(models, Mapping):
            self.joint = models
        elif isinstance(models, Mapping):
            for name, m in models.items():
                if hasattr(m, "choice") and hasattr(m, "error"):  # a CQAFit from doe.analysis
                    if m.model is None:
                        self.unusable[name] = m.error or "no model"
                        continue
                    m = m.model
                if hasattr(m, "model_terms") and hasattr(m, "predict"):
                    self.fits[name] = m
                elif callable(m):
                    self.functions[name] = m
                else:
                    raise DoeError(f"The model of '{name}' is neither a fitted model nor a function.")
        else:
            raise DoeError("Give the models as a prediction function or a dict of fitted models per CQA.")

    def check(self, names: Sequence[str]) -> None:
        if self.joint is not None:
            return
        known = list(self.fits) + list(self.functions)
        for n in names:
            if n in self.unusable:
                raise DoeError(f"CQA '{n}' has no usable model ({self.unusable[n]}): fit it or drop its goal.")
            if n not in known:
                raise DoeError(f"There is no model for CQA '{n}'.{did_you_mean(n, known)} "
                               f"Models are given for {quoted_list(known)}.")

    def usable(self, names: Sequence[str], warnings: list[str]) -> list[str]:
        """The CQAs among ``names`` that have a model; a warning for each that has none."""
        if self.joint is not None:
            return list(names)
        out = []
        for n in names:
            if n in self.fits or n in self.functions:
                out.append(n)
            else:
                why = self.unusable.get(n, "no model was given")
                warnings.append(f"CQA '{n}' is left out of the desirability: {why}.")
        return out

    def predict(self, frame: pd.DataFrame, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Predictions (original scale) of ``names`` (default: every CQA with a model)."""
        if self.joint is not None:
            got = self.joint(frame)
            keys = list(got.keys()) if names is None else list(names)
            missing = [n for n in keys if n not in got]
            if missing:
                raise DoeError(f"The prediction function returned no {quoted_list(missing)}.")
            return {n: np.asarray(got[n], dtype=float).reshape(len(frame)) for n in keys}
        keys = list(self.fits) + list(self.functions) if names is None else list(names)
        out = {}
        for n in keys:
            if n in self.fits:
                out[n] = self.fits[n].predict(frame, interval=None)["mean"].to_numpy(dtype=float)
            else:
                out[n] = np.asarray(self.functions[n](frame), dtype=float).reshape(len(frame))
        return out

    def observed(self) -> dict[str, np.ndarray]:
        """The results each fitted model was fitted to (original scale)."""
        return {n: fm.diagnostics["actual"].to_numpy(dtype=float) for n, fm in self.fits.items()
                if fm.diagnostics is not None and "actual" in fm.diagnostics}


# -- the search space --------------------------------------------------------------------------
class _Space:
    """Free continuous factors (coded) x enumerated level combinations, with region and constraints."""

    def __init__(self, study: Study, fixed: Mapping[str, Any] | None, bounds: Any, region: Any,
                 radius: float | None):
        self.study = study
        fixed = dict(fixed or {})
        for name in fixed:
            f = study.factor(name)
            if f.kind != "continuous":
                fixed[name] = _level_of(f, fixed[name])
            elif not isinstance(fixed[name], (int, float, np.number)) or not math.isfinite(fixed[name]):
                raise DoeError(f"Fixed value of {name} must be a number in {f.units or 'its units'}; "
                               f"got {fixed[name]!r}.")
        self.fixed = fixed
        self.continuous = [f for f in study.factors if f.kind == "continuous"]
        self.free = [f for f in self.continuous if f.name not in fixed]
        self.fixed_coded = {f.name: float(f.to_coded(float(fixed[f.name]))) for f in self.continuous
                            if f.name in fixed}
        self.enumerated = [f for f in study.factors if f.kind != "continuous"]
        self.combos = list(itertools.product(*[[fixed[f.name]] if f.name in fixed else list(f.levels)
                                               for f in self.enumerated]))
        self._table = np.empty((len(self.combos), len(self.enumerated)), dtype=object)
        for i, combo in enumerate(self.combos):
            self._table[i, :] = combo
        self.lo, self.hi = self._bounds(bounds)
        if not (region in ("cube", "sphere") or callable(region)):
            raise DoeError(f"The region must be 'cube', 'sphere' or a function; got {region!r}.")
        self.region = region
        all_lo, all_hi = self._bounds(bounds, every=True)
        self.radius = float(radius) if radius is not None else (
            float(np.min(np.minimum(np.abs(all_lo), np.abs(all_hi)))) if len(all_lo) else 1.0)
        if region == "sphere" and self.radius <= 0:
            raise DoeError("The radius of a spherical region must be positive.")
        rest = self.radius ** 2 - sum(v ** 2 for v in self.fixed_coded.values())
        self.free_radius = math.sqrt(rest) if rest > 0 else 0.0

    @property
    def k(self) -> int:
        return len(self.free)

    def _bounds(self, bounds: Any, every: bool = False) -> tuple[np.ndarray, np.ndarray]:
        factors = self.continuous if every else self.free
        lo, hi = np.full(len(factors), -1.0), np.full(len(factors), 1.0)
        if bounds is None:
            return lo, hi
        if isinstance(bounds, Mapping):
            for name in bounds:
                self.study.factor(name)
            pairs = {n: tuple(b) for n, b in bounds.items()}
        else:
            pair = tuple(bounds)
            pairs = {f.name: pair for f in factors}
        for j, f in enumerate(factors):
            if f.name in pairs:
                a, b = (float(v) for v in pairs[f.name])
                if not a < b:
                    raise DoeError(f"Coded bounds of {f.name} must be (low, high) with low < high; got {pairs[f.name]}.")
                lo[j], hi[j] = a, b
        return lo, hi

    def project(self, X: np.ndarray) -> np.ndarray:
        """Clip to the bounds and, for a sphere, pull points outside back onto it (coded)."""
        X = np.clip(X, self.lo, self.hi)
        if self.region == "sphere" and self.k:
            norm = np.linalg.norm(X, axis=1)
            over = norm > self.free_radius
            X[over] *= (self.free_radius / np.maximum(norm[over], 1e-300))[:, None]
            X = np.clip(X, self.lo, self.hi)
        return X

    def frame(self, X: np.ndarray, ci: np.ndarray) -> pd.DataFrame:
        """Settings in actual units, one column per factor in study order."""
        n = len(ci)
        cols: dict[str, Any] = {}
        free = {f.name: j for j, f in enumerate(self.free)}
        enum = {f.name: j for j, f in enumerate(self.enumerated)}
        table = self._table
        for f in self.study.factors:
            if f.name in free:
                cols[f.name] = f.center + X[:, free[f.name]] * f.half_range
            elif f.kind == "continuous":
                cols[f.name] = np.full(n, float(self.fixed[f.name]))
            else:
                values = table[ci, enum[f.name]]
                cols[f.name] = values.astype(float) if f.kind == "discrete" else values
        return pd.DataFrame(cols)

    def allowed(self, X: np.ndarray, ci: np.ndarray, frame: pd.DataFrame | None) -> np.ndarray:
        ok = np.ones(len(ci), dtype=bool)
        if self.region == "sphere":
            fixed2 = sum(v ** 2 for v in self.fixed_coded.values())
            ok &= np.sum(X ** 2, axis=1) + fixed2 <= self.radius ** 2 * (1 + 1e-12) + 1e-12
        needs_frame = callable(self.region) or self.study.constraints
        if needs_frame:
            frame = self.frame(X, ci) if frame is None else frame
            if callable(self.region):
                ok &= np.asarray(self.region(_coded_frame(self.study, frame)), dtype=bool).reshape(len(ci))
            ok &= self.study.feasible(frame)
        return ok


def _coded_frame(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric factors coded -1..+1; categorical factors keep their level names."""
    return pd.DataFrame({f.name: frame[f.name].to_numpy() if f.is_categorical
                         else f.to_coded(frame[f.name].to_numpy(dtype=float)) for f in study.factors},
                        index=frame.index)


def _level_of(f: Any, value: Any) -> Any:
    """The level of a categorical or discrete factor that ``value`` names."""
    for level in f.levels:
        if str(level).strip().lower() == str(value).strip().lower():
            return level
        if f.kind == "discrete":
            try:
                if float(level) == float(value):
                    return level
            except (TypeError, ValueError):
                pass
    raise DoeError(f"'{value}' is not a level of {f.name}.{did_you_mean(str(value), map(str, f.levels))} "
                   f"Levels are {quoted_list(f.levels)}.")


def _nearest_level(levels: list[Any], value: Any) -> Any:
    arr = np.asarray(levels, dtype=float)
    return levels[int(np.argmin(np.abs(arr - float(value))))]


# -- exact polynomial form of a fitted model ------------------------------------------------------
class _Surrogate:
    """A fitted model as a polynomial in the free continuous factors (coded), per level combination.

    A fitted model is a polynomial on its fitted scale, so interpolating its
    own predictions on a tensor grid of (degree + 1) points per factor gives
    its coefficients exactly; the back-transform is the model's. Predicting
    this way costs microseconds instead of a DataFrame round trip per step.
    The result is checked against the model's predictions at random points.
    """

    def __init__(self, fm: Any, space: _Space, rng: np.random.Generator):
        self.space = space
        degrees = [max((p for t in fm.model_terms for name, p in t.parts if name == f.name), default=0)
                   for f in space.free]
        n_c = len(space.combos)
        if n_c * math.prod(d + 1 for d in degrees) <= _MAX_TENSOR_ROWS:
            axes = [np.cos(np.pi * np.arange(d + 1) / d) if d else np.zeros(1) for d in degrees]
            self.E = np.array(list(itertools.product(*[range(d + 1) for d in degrees])), dtype=float)
            self.E = self.E.reshape(len(self.E), space.k)
            nodes = np.array(list(itertools.product(*axes)), dtype=float).reshape(len(self.E), space.k)
        else:  # many factors: the tensor grid is too large, so only the model's own monomials are fitted
            self.E = self._monomials(fm, space)
            nodes = rng.uniform(-1.0, 1.0, size=(2 * len(self.E), space.k))
            if n_c * len(nodes) > _MAX_SURROGATE_ROWS:
                raise _NoSurrogate
        M = len(nodes)
        X = np.tile(nodes, (n_c, 1))
        ci = np.repeat(np.arange(n_c), M)
        pred = fm.predict(space.frame(X, ci), interval=None)
        Z = pred["fitted_scale"].to_numpy(dtype=float).reshape(n_c, M)
        basis = self._basis(nodes)
        self.C = (np.linalg.solve(basis, Z.T) if len(nodes) == len(self.E)
                  else np.linalg.lstsq(basis, Z.T, rcond=None)[0]).T
        spec = f"power:{fm.boxcox_lambda!r}" if fm.boxcox_lambda is not None else fm.transform
        units = space.study.response(fm.response).units if fm.response in space.study.response_names else ""
        tf = parse_transform(spec, units)
        if tf is None:  # "boxcox" without its estimated lambda: no fitted model is left like that
            raise _NoSurrogate
        self.tf = tf
        mean = pred["mean"].to_numpy(dtype=float)
        if not np.allclose(self.tf.inverse(Z.ravel()), mean, rtol=1e-9, atol=1e-12, equal_nan=True):
            raise _NoSurrogate
        lo, hi = space.lo, space.hi
        Xt = lo + rng.random((2 * n_c, space.k)) * (hi - lo)
        ct = np.repeat(np.arange(n_c), 2)
        truth = fm.predict(space.frame(Xt, ct), interval=None)["mean"].to_numpy(dtype=float)
        scale = max(float(np.nanmax(np.abs(mean))) if np.isfinite(mean).any() else 1.0, 1.0)
        if not np.allclose(self(Xt, ct), truth, rtol=1e-8, atol=1e-10 * scale, equal_nan=True):
            raise _NoSurrogate

    @staticmethod
    def _monomials(fm: Any, space: _Space) -> np.ndarray:
        """The exponents (one row per monomial of the free factors) of the model's terms with the other
        factors left out, and the constant: the polynomial's own terms, 91 for 12 factors quadratic
        instead of the 3^12 of the tensor grid."""
        where = {f.name: j for j, f in enumerate(space.free)}
        found = {tuple([0] * space.k)}
        for t in fm.model_terms:
            e = [0] * space.k
            for name, power in t.parts:
                if name in where:
                    e[where[name]] += power
            found.add(tuple(e))
        return np.array(sorted(found), dtype=float).reshape(len(found), space.k)

    def _basis(self, X: np.ndarray) -> np.ndarray:
        basis: np.ndarray = np.prod(X[:, None, :] ** self.E[None, :, :], axis=2)
        return basis

    def __call__(self, X: np.ndarray, ci: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
        """The model's predictions at coded points ``X`` of level combinations ``ci``; ``basis`` is
        ``self._basis(X)`` when already computed (surrogates with the same monomials share it)."""
        z = np.einsum("nm,nm->n", self._basis(X) if basis is None else basis, self.C[ci])
        return self.tf.inverse(z)


class _NoSurrogate(Exception):
    """The model is predicted directly instead."""


# -- the objective ----------------------------------------------------------------------------------
class _Objective:
    """D where allowed, a climbable penalty where D = 0, far below both outside the region/constraints."""

    def __init__(self, space: _Space, models: _Models, specs: list[Desirability],
                 surrogates: dict[str, _Surrogate]):
        self.space, self.models, self.specs = space, models, specs
        self.surrogates = surrogates
        self.names = [s.response for s in specs]
        self.evaluations = 0

    def predictions(self, X: np.ndarray, ci: np.ndarray, frame: pd.DataFrame | None) -> dict[str, np.ndarray]:
        bases: dict[bytes, np.ndarray] = {}  # one basis per set of monomials, shared by the CQAs
        out = {}
        for n in self.names:
            if n in self.surrogates:
                sur = self.surrogates[n]
                key = sur.E.tobytes()
                if key not in bases:
                    bases[key] = sur._basis(X)
                out[n] = sur(X, ci, bases[key])
        rest = [n for n in self.names if n not in out]
        if rest:
            out.update(self.models.predict(self.space.frame(X, ci) if frame is None else frame, rest))
        return out

    def __call__(self, X: np.ndarray, ci: np.ndarray) -> np.ndarray:
        """Objective to maximise at coded points X of level combinations ci."""
        self.evaluations += len(ci)
        need_frame = (len(self.surrogates) < len(self.names) or callable(self.space.region)
                      or bool(self.space.study.constraints))
        frame = self.space.frame(X, ci) if need_frame else None
        pred = self.predictions(X, ci, frame)
        D = _combine(self.specs, individual(self.specs, pred))
        short = sum(s.shortfall(pred[s.response]) for s in self.specs)
        obj = np.where(D > 0, D, -np.nan_to_num(short, nan=1e5, posinf=1e5))
        ok = self.space.allowed(X, ci, frame)
        return np.where(ok, obj, _EXCLUDED)


# -- Nelder-Mead in lockstep ----------------------------------------------------------------------------
def _nelder_mead(fun: Callable[[np.ndarray, np.ndarray], np.ndarray], X0: np.ndarray, ci: np.ndarray,
                 step: np.ndarray, space: _Space, *, xatol: float, fatol: float, max_iter: int,
                 stall: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Minimise fun from each row of X0 by Nelder-Mead (scipy's coefficients), all simplices in lockstep.

    Points are projected into the bounds (and sphere) as scipy clips to bounds.
    A simplex also stops when its best value improved by at most ``stall`` over
    the last 25 (k + 1) iterations. Returns the best vertex of each simplex and its value.
    """
    m, k = X0.shape
    S = np.repeat(X0[:, None, :], k + 1, axis=1)
    for j in range(k):
        up = X0[:, j] + step[j] <= space.hi[j]
        S[:, j + 1, j] += np.where(up, step[j], -step[j])
    S = space.project(S.reshape(-1, k)).reshape(m, k + 1, k)
    F = fun(S.reshape(-1, k), np.repeat(ci, k + 1)).reshape(m, k + 1)
    rho, chi, psi, sigma = 1.0, 2.0, 0.5, 0.5
    window = 25 * (k + 1)
    stalled = np.zeros(m, dtype=bool)
    previous = F.min(axis=1)
    for it in range(1, max_iter + 1):
        order = np.argsort(F, axis=1, kind="stable")
        S = np.take_along_axis(S, order[:, :, None], axis=1)
        F = np.take_along_axis(F, order, axis=1)
        if it % window == 0:  # creeping along a ridge: leave it to the restart
            stalled |= previous - F[:, 0] <= stall
            previous = F[:, 0].copy()
        done = stalled | ((np.max(np.abs(S[:, 1:] - S[:, :1]), axis=(1, 2)) <= xatol)
                          & (np.max(np.abs(F[:, 1:] - F[:, :1]), axis=1) <= fatol))
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        Sa, Fa, ca = S[act], F[act], ci[act]
        xbar, xw = Sa[:, :-1].mean(axis=1), Sa[:, -1]
        xr = space.project(xbar + rho * (xbar - xw))
        fr = fun(xr, ca)
        f_best, f_second, f_worst = Fa[:, 0], Fa[:, -2], Fa[:, -1]
        expand = fr < f_best
        accept = (fr >= f_best) & (fr < f_second)
        outside = (fr >= f_second) & (fr < f_worst)
        x2 = np.where(expand[:, None], xbar + rho * chi * (xbar - xw),
                      np.where(outside[:, None], xbar + psi * rho * (xbar - xw), xbar - psi * (xbar - xw)))
        x2 = space.project(x2)
        f2 = np.full(len(act), np.inf)
        need = np.flatnonzero(~accept)
        if need.size:
            f2[need] = fun(x2[need], ca[need])
        take2 = (expand & (f2 < fr)) | (outside & (f2 <= fr)) | (~expand & ~accept & ~outside & (f2 < f_worst))
        shrink = ~expand & ~accept & ~take2
        new_x = np.where(take2[:, None], x2, xr)
        new_f = np.where(take2, f2, fr)
        keep = ~shrink
        Sa[keep, -1], Fa[keep, -1] = new_x[keep], new_f[keep]
        s = np.flatnonzero(shrink)
        if s.size:
            shrunk = Sa[s, :1] + sigma * (Sa[s, 1:] - Sa[s, :1])
            shrunk = space.project(shrunk.reshape(-1, k)).reshape(len(s), k, k)
            Sa[s, 1:] = shrunk
            Fa[s, 1:] = fun(shrunk.reshape(-1, k), np.repeat(ca[s], k)).reshape(len(s), k)
        S[act], F[act] = Sa, Fa
    best = np.argmin(F, axis=1)
    return S[np.arange(m), best], F[np.arange(m), best]


# -- optimisation -------------------------------------------------------------------------------------
def optimize_desirability(
    models: Any,
    study: Study,
    specs: Sequence[Desirability] | Mapping[str, Desirability] | None = None,
    *,
    limits: Mapping[str, Sequence[float | None]] | None = None,
    observed: Mapping[str, Any] | None = None,
    region: str | Callable[[pd.DataFrame], Any] = "cube",
    radius: float | None = None,
    bounds: Any = None,
    starts: int = 200,
    grid: int | None = None,
    n_local: int = 20,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    xatol: float = 1e-8,
    max_iter: int | None = None,
    n_solutions: int = 10,
) -> dict[str, Any]:
    """Settings that maximise the overall desirability D of several CQAs.

    Parameters
    ----------
    models : callable or dict
        ``predict(frame) -> {response: array}`` taking settings in actual units
        (one column per factor), or ``{response: FittedModel | CQAFit | callable}``
        (e.g. the result of :func:`doe.analysis.fit_all`, or
        :func:`quadratic_predictor` functions).
    study : Study
    specs : list of Desirability, optional
        Default :func:`desirabilities` of the study with ``limits`` and the
        observed values (``observed``; else the results the fitted models were
        fitted to; else predictions over the starting points).
    region : {'cube', 'sphere'} or callable
        'cube': each continuous factor within ``bounds``. 'sphere': also
        ||x|| <= ``radius`` over the continuous factors (coded), D = 0 outside.
        A callable gets the settings with numeric factors coded (categorical
        factors as level names) and returns True where allowed.
    radius : float, optional
        Radius of the sphere (coded); default the largest sphere inside ``bounds``.
    bounds : (low, high) or dict, optional
        Coded limits of the continuous factors, for all or per factor; default (-1, 1).
    starts : int
        Latin hypercube starting points per level combination (plus a grid of
        ``grid`` levels per factor; default 5 up to 3 factors, 3 up to 6, none beyond).
    n_local : int
        The best starting points refined by Nelder-Mead, besides the best of
        each level combination.
    seed : int
        Seed of the Latin hypercube (results are reproducible).
    fixed : dict, optional
        Factors held at a value (actual units) or a level.
    xatol : float
        Nelder-Mead convergence tolerance on the coded settings.
    n_solutions : int
        Distinct local optima listed in ``solutions``.

    Returns
    -------
    dict with ``settings`` (actual units, every factor), ``coded`` (numeric
    factors), ``desirability`` (D), ``individual`` (d per CQA), ``predictions``
    (every CQA with a model, original scale), ``feasible``, ``solutions`` (a
    DataFrame of distinct local optima, best first), ``specs``, ``warnings``,
    ``evaluations`` and ``seconds``. Predictions of fitted models in the
    result come from :meth:`FittedModel.predict` itself.
    """
    t0 = time.perf_counter()
    space = _Space(study, fixed, bounds, region, radius)
    model_set = _Models(models, study)
    rng = np.random.default_rng(seed)
    k, n_c = space.k, len(space.combos)
    warnings: list[str] = []

    U = _starting_points(space, starts, grid, seed)
    X0 = np.tile(U, (n_c, 1))
    c0 = np.repeat(np.arange(n_c), len(U))

    if specs is None:
        names = model_set.usable([r.name for r in study.responses if r.goal != "none"], warnings)
        obs = {n: v for n, v in (observed or {}).items()}
        for n, v in model_set.observed().items():
            obs.setdefault(n, v)
        lacking = [n for n in names if n not in obs]
        if lacking:
            frame0 = space.frame(X0, c0)
            ok0 = space.allowed(X0, c0, frame0)
            obs.update(model_set.predict(frame0[ok0] if ok0.any() else frame0, lacking))
        specs = desirabilities(study, limits=limits, observed=obs, responses=names)
    elif isinstance(specs, Mapping):
        specs = list(specs.values())
    specs = list(specs)
    if not specs:
        raise DoeError("No CQA has a goal: set a goal (maximize, minimize, target or range) for at "
                       "least one CQA.")
    model_set.check([s.response for s in specs])

    surrogates: dict[str, _Surrogate] = {}
    if k:
        for s in specs:
            if s.response in model_set.fits and s.response not in surrogates:
                try:
                    surrogates[s.response] = _Surrogate(model_set.fits[s.response], space, rng)
                except _NoSurrogate:
                    pass
    objective = _Objective(space, model_set, specs, surrogates)

    f0 = objective(X0, c0)
    if not (f0 > _EXCLUDED).any():
        raise DoeError("No starting point lies inside the region and satisfies the study's constraints: "
                       "check the constraints, bounds and fixed settings.")
    pick = set(np.argsort(-f0, kind="stable")[:n_local].tolist())
    for c in range(n_c):
        rows = np.flatnonzero((c0 == c) & (f0 > _EXCLUDED))
        if rows.size:
            pick.add(int(rows[np.argmax(f0[rows])]))
    cand = np.array(sorted(pick))
    Xc, cc, fc = X0[cand].copy(), c0[cand].copy(), f0[cand].copy()

    if k:
        width = space.hi - space.lo
        iters = max_iter or 200 * (k + 1)
        neg = lambda X, ci: -objective(X, ci)  # noqa: E731 - minimised by Nelder-Mead
        # a coarse run finds the basins; restarts with small simplices polish the best distinct ones
        Xn, fn = _nelder_mead(neg, Xc, cc, _SIMPLEX_STEPS[0] * width, space, xatol=1e-4,
                              fatol=1e-8, max_iter=iters)
        better = -fn > fc
        Xc[better], fc[better] = Xn[better], -fn[better]
        keep = _distinct(Xc, cc, fc, n_solutions, 1e-2)
        Xc, cc, fc = Xc[keep], cc[keep], fc[keep]
        for frac in _SIMPLEX_STEPS[1:]:
            Xn, fn = _nelder_mead(neg, Xc, cc, frac * width, space, xatol=xatol, fatol=1e-12,
                                  max_iter=iters // 2)
            better = -fn > fc
            Xc[better], fc[better] = Xn[better], -fn[better]

    kept = _distinct(Xc, cc, fc, n_solutions, 1e-3)
    Xs, cs = Xc[kept], cc[kept]
    frame = space.frame(Xs, cs)
    pred = model_set.predict(frame)
    d = individual(specs, pred)
    D = _combine(specs, d)
    ok = space.allowed(Xs, cs, frame)
    D = np.where(ok, D, 0.0)
    solutions = frame.copy()
    for n, v in pred.items():
        solutions[n] = v
    for n, v in d.items():
        solutions[f"d({n})"] = v
    solutions["Desirability"] = D
    solutions = solutions.sort_values("Desirability", ascending=False, kind="stable").reset_index(drop=True)
    best = int(np.argmax(D))
    if D[best] == 0:
        warnings.append("No settings found where every CQA is within its limits: D = 0 everywhere "
                        "searched. Relax the limits or check the models.")
    settings = {f: plain(frame[f].iloc[best]) for f in study.factor_names}
    coded = {f.name: float(f.to_coded(float(settings[f.name]))) for f in study.factors
             if not f.is_categorical}
    return {
        "settings": settings,
        "coded": coded,
        "desirability": float(D[best]),
        "individual": {n: float(v[best]) for n, v in d.items()},
        "predictions": {n: float(v[best]) for n, v in pred.items()},
        "feasible": bool(ok[best]),
        "solutions": solutions,
        "specs": specs,
        "region": region if isinstance(region, str) else "custom",
        "radius": space.radius if region == "sphere" else None,
        "warnings": warnings,
        "evaluations": objective.evaluations,
        "seconds": time.perf_counter() - t0,
    }


def _distinct(X: np.ndarray, ci: np.ndarray, f: np.ndarray, n: int, tol: float) -> np.ndarray:
    """Rows of the n best allowed points that differ in level combination or by > tol (coded)."""
    kept: list[int] = []
    for i in np.argsort(-f, kind="stable"):
        if f[i] <= _EXCLUDED:
            continue
        if any(ci[i] == ci[j] and np.max(np.abs(X[i] - X[j]), initial=0.0) < tol for j in kept):
            continue
        kept.append(int(i))
        if len(kept) >= n:
            break
    return np.array(kept, dtype=int)


def _starting_points(space: _Space, starts: int, grid: int | None, seed: int) -> np.ndarray:
    """Latin hypercube plus grid over the free continuous factors (coded), projected into the region."""
    k = space.k
    if k == 0:
        return np.zeros((1, 0))
    if starts < 0:
        raise DoeError("The number of starting points must be 0 or more.")
    parts = []
    if starts:
        lhs = qmc.LatinHypercube(d=k, seed=seed).random(int(starts))
        parts.append(space.lo + lhs * (space.hi - space.lo))
    levels = grid if grid is not None else (5 if k <= 3 else 3 if k <= 6 else 0)
    if levels:
        axes = [np.linspace(a, b, levels) if levels > 1 else np.array([(a + b) / 2])
                for a, b in zip(space.lo, space.hi)]
        parts.append(np.array(list(itertools.product(*axes)), dtype=float).reshape(-1, k))
    if not parts:
        raise DoeError("Give at least one starting point (starts > 0 or a grid).")
    return space.project(np.vstack(parts))


# -- D over two factors, for contour plots -----------------------------------------------------------
def desirability_grid(
    models: Any,
    study: Study,
    specs: Sequence[Desirability] | Mapping[str, Desirability] | None = None,
    x: str | None = None,
    y: str | None = None,
    *,
    n: int = 41,
    fixed: Mapping[str, Any] | None = None,
    bounds: Any = None,
    region: str | Callable[[pd.DataFrame], Any] = "cube",
    radius: float | None = None,
    limits: Mapping[str, Sequence[float | None]] | None = None,
    observed: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Overall and individual desirability on an n x n grid of two numeric factors.

    The other factors are held at ``fixed`` (actual units or levels; pass an
    optimum's ``settings`` to plot around it), else continuous factors at
    their centre, discrete ones at the level nearest the centre, categorical
    ones at their first level (Design-Expert's defaults). The grid spans the
    coded ``bounds`` (default -1..+1; a discrete factor uses its levels).
    Points outside the region or the constraints have D = 0.

    Returns
    -------
    DataFrame with every factor (actual units), each CQA's prediction,
    ``d(<CQA>)``, ``Desirability`` and ``feasible``; one row per grid point
    (x varying fastest). CQAs left out for want of a model are named in
    ``.attrs["warnings"]``.
    """
    names = [f.name for f in study.factors if not f.is_categorical]
    if x is None or y is None:
        if len(names) < 2:
            raise DoeError("A desirability grid needs two numeric factors.")
        x, y = x or names[0], y or next(nm for nm in names if nm != x)
    for axis in (x, y):
        if study.factor(axis).is_categorical:
            raise DoeError(f"'{axis}' is categorical: pick numeric factors for the grid axes.")
    if x == y:
        raise DoeError("Pick two different factors for the grid axes.")
    fixed = dict(fixed or {})
    space = _Space(study, {k: v for k, v in fixed.items() if k not in (x, y)}, bounds, region, radius)
    model_set = _Models(models, study)
    lo_all, hi_all = space._bounds(bounds, every=True)
    edges = {f.name: (a, b) for f, a, b in zip(space.continuous, lo_all, hi_all)}
    axes = []
    for axis in (x, y):
        f = study.factor(axis)
        if f.kind == "discrete":
            axes.append(np.asarray(f.levels, dtype=float))
        else:
            a, b = edges[axis]
            axes.append(f.to_actual(np.linspace(a, b, n)))
    gx, gy = np.meshgrid(axes[0], axes[1], indexing="xy")
    data: dict[str, Any] = {}
    for f in study.factors:
        if f.name == x:
            data[f.name] = gx.ravel()
        elif f.name == y:
            data[f.name] = gy.ravel()
        elif f.name in space.fixed:
            data[f.name] = np.repeat(np.array([space.fixed[f.name]], dtype=object), gx.size)
            if not f.is_categorical:
                data[f.name] = data[f.name].astype(float)
        elif f.kind == "continuous":
            data[f.name] = np.full(gx.size, f.center)
        elif f.kind == "discrete":
            data[f.name] = np.full(gx.size, float(_nearest_level(f.levels, f.center)))
        else:
            data[f.name] = np.repeat(np.array([f.levels[0]], dtype=object), gx.size)
    frame = pd.DataFrame(data)
    pred = model_set.predict(frame)
    warnings: list[str] = []
    if specs is None:
        names = model_set.usable([r.name for r in study.responses if r.goal != "none"], warnings)
        obs = dict(observed or {})
        for nm, v in model_set.observed().items():
            obs.setdefault(nm, v)
        for nm, v in pred.items():
            obs.setdefault(nm, v)
        specs = desirabilities(study, limits=limits, observed=obs, responses=names)
    elif isinstance(specs, Mapping):
        specs = list(specs.values())
    specs = list(specs)
    model_set.check([s.response for s in specs])
    coded = _coded_frame(study, frame)
    ok = study.feasible(frame)
    cont = [f.name for f in space.continuous]
    if region == "sphere":
        ok &= np.sum(coded[cont].to_numpy(dtype=float) ** 2, axis=1) <= space.radius ** 2 * (1 + 1e-12)
    elif callable(region):
        ok &= np.asarray(region(coded), dtype=bool).reshape(len(frame))
    d = individual(specs, pred)
    out = frame.copy()
    for nm, v in pred.items():
        out[nm] = v
    for nm, v in d.items():
        out[f"d({nm})"] = np.where(ok, v, 0.0)
    out["Desirability"] = np.where(ok, _combine(specs, d), 0.0)
    out["feasible"] = ok
    out.attrs["warnings"] = warnings
    return out
