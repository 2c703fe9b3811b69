"""Process capability of manufacturing lots, and normal tolerance intervals.

Quality units ask whether a process is *capable*: whether the lots it makes fall inside the specification
limits of a critical quality attribute with room to spare (ICH Q10; FDA process validation guidance, stage 3,
continued process verification). :func:`capability` answers with the usual indices, their confidence
intervals, the share of lots expected and observed outside the limits, and a normal tolerance interval.

- **Sigma within** (the short-term, "potential" spread behind Cp, Cpk, Cpm): with subgroup labels, the
  unweighted average of the subgroup ranges over d2 (mean of R_i / d2(n_i), which is R-bar / d2 when the
  subgroups are of equal size) - the default ``std.dev = "UWAVE-R"`` of R's qcc for an xbar chart
  (``sd.xbar``, Scrucca 2004); without subgroups the average moving range of successive lots over
  d2(2) = 1.128 - qcc's default ``"MR"`` for an individuals (xbar.one) chart, and JMP's. d2 for subgroup
  sizes 2 to 25 are the tabulated values qcc uses (Montgomery, *Introduction to Statistical Quality
  Control*, Appendix VI); larger subgroups get d2 by numerical integration of the expected range.
- **Sigma overall** is the sample standard deviation; Pp and Ppk use it.
- **Indices and intervals** follow qcc's ``processCapability`` (R/capability.R of github.com/luca-scr/qcc):
  Cp = (USL - LSL) / 6 sigma with the chi-square interval of Chou, Owen and Borrego (1990); Cp_l, Cp_u and
  Cpk = min(Cp_l, Cp_u) with Bissell's (1990) normal approximation (qcc takes z at the confidence level for
  Cp_l and Cp_u, and at 1 - alpha/2 for Cpk); Cpm = (USL - LSL) / 6 sqrt(sigma^2 + (mean - target)^2) with
  Boyles' (1991) chi-square approximation. Expected % out uses the normal with sigma within, as qcc's
  "Exp<LSL" and "Exp>USL"; observed % out counts the values strictly outside the limits.
- **Tolerance intervals** (:func:`tolerance_interval`, :func:`tolerance_factor`): mean +/- k s covering at
  least ``coverage`` of the population with ``confidence``. The one-sided factor is exact, from the
  noncentral t (scipy's ``nct``); the two-sided "exact" factor solves Odeh's (1978) integral equation (as
  R's ``tolerance::K.factor(method = "EXACT")`` and ISO 16269-6 Annex F) by Gauss-Legendre quadrature and
  a root search (scipy); ``method="howe"`` gives Howe's (1969) approximation (NIST/SEMATECH e-Handbook,
  section 7.2.6.3). The PyPI package ``toleranceinterval`` reproduces the same tables, but it would add
  sympy and setuptools as run-time dependencies for a one-dimensional integral.

All the indices assume a stable (in control), roughly normal process; the notes say when an index cannot be
computed (no limit on one side, no target) rather than raising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from doe._format import fmt_sig, json_number
from doe.errors import DoeError, did_you_mean, quoted_list

__all__ = [
    "Capability",
    "CapabilityError",
    "Interval",
    "ToleranceInterval",
    "TOLERANCE_METHODS",
    "capability",
    "d2_constant",
    "tolerance_factor",
    "tolerance_interval",
]

#: Methods of the two-sided tolerance factor: exact (Odeh 1978) or Howe's (1969) approximation.
TOLERANCE_METHODS = ("exact", "howe")

class CapabilityError(DoeError):
    """A capability or tolerance-interval input is invalid."""


# -- results -----------------------------------------------------------------------------------------------

@dataclass
class Interval:
    """A capability index and its two-sided confidence interval (``None`` ends when not available)."""

    value: float
    ci_low: float | None
    ci_high: float | None

    def to_json(self) -> dict[str, float | None]:
        """``{"value", "ci_low", "ci_high"}``, non-finite numbers as ``None``."""
        return {"value": json_number(self.value), "ci_low": json_number(self.ci_low),
                "ci_high": json_number(self.ci_high)}


@dataclass
class ToleranceInterval:
    """A normal tolerance interval mean +/- k s: at least ``coverage`` of the population lies in
    [low, high] with ``confidence``. One-sided intervals have ``None`` on the open side."""

    low: float | None
    high: float | None
    k: float
    coverage: float
    confidence: float
    sides: int
    method: str
    n: int

    def describe(self) -> str:
        """One sentence for a report: the interval, its coverage and confidence."""
        cov = f"{fmt_sig(100 * self.coverage, 4)} %"
        conf = f"{fmt_sig(100 * self.confidence, 4)} %"
        if self.low is not None and self.high is not None:
            where = f"between {fmt_sig(self.low, 4)} and {fmt_sig(self.high, 4)}"
        elif self.low is not None:
            where = f"above {fmt_sig(self.low, 4)}"
        else:
            where = f"below {fmt_sig(self.high, 4)}"
        return (f"With {conf} confidence at least {cov} of lots lie {where} (normal tolerance interval, "
                f"k = {fmt_sig(self.k, 4)}, n = {self.n}).")

    def to_json(self) -> dict[str, Any]:
        """``{"low", "high", "k", "coverage", "confidence", "sides", "method", "n"}``."""
        return {"low": json_number(self.low), "high": json_number(self.high), "k": json_number(self.k),
                "coverage": float(self.coverage), "confidence": float(self.confidence),
                "sides": int(self.sides), "method": self.method, "n": int(self.n)}


@dataclass
class Capability:
    """Capability of one response over a series of lots (see the module docstring for the formulas).

    Indices that need a limit (or both, or a target) that was not given are ``None``, with a note.
    ``expected_out_percent`` and ``observed_out_percent`` are the totals below LSL plus above USL; the
    ``*_below_percent`` / ``*_above_percent`` fields split them (``None`` for a side without a limit).
    """

    response: str
    n: int
    mean: float
    lower: float | None
    upper: float | None
    target: float | None
    sigma_within: float
    sigma_overall: float
    subgroup_size: float | None
    confidence: float
    cp: Interval | None
    cpk: Interval | None
    cpm: Interval | None
    cp_l: Interval | None
    cp_u: Interval | None
    pp: float | None
    ppk: float | None
    expected_out_percent: float
    observed_out_percent: float
    tolerance_interval: ToleranceInterval | None
    method: str
    notes: list[str] = field(default_factory=list)
    n_subgroups: int | None = None
    expected_below_percent: float | None = None
    expected_above_percent: float | None = None
    observed_below_percent: float | None = None
    observed_above_percent: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: indices as ``{value, ci_low, ci_high}`` or ``None``, numbers finite or ``None``."""
        def iv(x: Interval | None) -> dict[str, float | None] | None:
            return None if x is None else x.to_json()

        return {
            "response": self.response, "n": int(self.n), "mean": json_number(self.mean),
            "lower": json_number(self.lower), "upper": json_number(self.upper),
            "target": json_number(self.target), "confidence": float(self.confidence),
            "sigma_within": json_number(self.sigma_within), "sigma_overall": json_number(self.sigma_overall),
            "subgroup_size": json_number(self.subgroup_size),
            "n_subgroups": None if self.n_subgroups is None else int(self.n_subgroups),
            "cp": iv(self.cp), "cpk": iv(self.cpk), "cpm": iv(self.cpm), "cp_l": iv(self.cp_l),
            "cp_u": iv(self.cp_u), "pp": json_number(self.pp), "ppk": json_number(self.ppk),
            "expected_out_percent": json_number(self.expected_out_percent),
            "observed_out_percent": json_number(self.observed_out_percent),
            "expected_below_percent": json_number(self.expected_below_percent),
            "expected_above_percent": json_number(self.expected_above_percent),
            "observed_below_percent": json_number(self.observed_below_percent),
            "observed_above_percent": json_number(self.observed_above_percent),
            "tolerance_interval": None if self.tolerance_interval is None else self.tolerance_interval.to_json(),
            "method": self.method, "notes": list(self.notes),
        }


# -- checks ------------------------------------------------------------------------------------------------

def _check_fraction(value: float, name: str, meaning: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise CapabilityError(f"{name} must be a number between 0 and 1 ({meaning}); got {value!r}.") from None
    if not 0.0 < x < 1.0:
        hint = f" Did you mean {fmt_sig(x / 100, 4)}?" if 1.0 < x < 100.0 else ""
        raise CapabilityError(f"{name} must lie strictly between 0 and 1 ({meaning}); got {fmt_sig(x)}.{hint}")
    return x


def _check_values(values: ArrayLike, what: str = "values") -> NDArray[np.float64]:
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise CapabilityError(f"The {what} must be numbers (one per lot); some could not be read as "
                              "numbers.") from None
    if x.ndim != 1:
        raise CapabilityError(f"The {what} must be one column of numbers (one per lot); got an array of "
                              f"shape {x.shape}.")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        where = ", ".join(str(i + 1) for i in bad[:5]) + (" ..." if bad.size > 5 else "")
        raise CapabilityError(f"The {what} have {bad.size} missing or non-finite value(s) (position(s) "
                              f"{where}); remove those lots or enter their result.")
    if x.size < 2:
        raise CapabilityError(f"Capability and tolerance intervals need at least 2 {what}; got {x.size}. "
                              "Enter more lots (25 or more give useful intervals).")
    return x


def _check_limit(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise CapabilityError(f"The {name} must be a number or left empty; got {value!r}.") from None
    if math.isnan(x):
        return None
    if not math.isfinite(x):
        raise CapabilityError(f"The {name} must be finite; leave it empty for no limit on that side.")
    return x


# -- constants and factors ---------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def d2_constant(size: int) -> float:
    """d2, the expected range of ``size`` independent standard normal values (sigma = R / d2):
    :func:`doe.control_charts.d2` (the 3-decimal table values qcc uses for 2 to 25, computed above).

    >>> d2_constant(2), d2_constant(5), round(d2_constant(30), 3)
    (1.128, 2.326, 4.086)
    """
    if size < 2:
        raise CapabilityError(f"A range needs a subgroup of at least 2 values; got {size}.")
    from doe.control_charts import d2

    return d2(size)


def _check_n(n: int) -> int:
    try:
        size = int(n)
    except (TypeError, ValueError):
        raise CapabilityError(f"The sample size n must be a whole number of at least 2; got {n!r}.") from None
    if size != n or size < 2:
        raise CapabilityError(f"The sample size n must be a whole number of at least 2; got {n!r}.")
    return size


@lru_cache(maxsize=1)
def _legendre_nodes() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss-Legendre nodes and weights on [0, 12] in two panels (the normal density beyond is < 1e-31)."""
    x, w = np.polynomial.legendre.leggauss(64)
    nodes, weights = [], []
    for a, b in ((0.0, 3.0), (3.0, 12.0)):
        nodes.append(0.5 * (b - a) * x + 0.5 * (b + a))
        weights.append(0.5 * (b - a) * w)
    return np.concatenate(nodes), np.concatenate(weights)


def _two_sided_exact(n: int, coverage: float, confidence: float) -> float:
    """Odeh's exact two-sided factor: solve 2 int_0^inf phi(u) P(chi2_{n-1} > (n-1) r^2 / k^2) du = gamma,
    where r = r(u / sqrt(n)) solves Phi(z + r) - Phi(z - r) = coverage, i.e. r^2 is the ``coverage``
    quantile of a noncentral chi-square with 1 df and noncentrality z^2."""
    u, w = _legendre_nodes()
    z = u / math.sqrt(n)
    r2 = np.asarray(stats.ncx2.ppf(coverage, 1, z ** 2), dtype=float)
    weight = 2.0 * w * np.asarray(stats.norm.pdf(u), dtype=float)
    df = n - 1

    def shortfall(k: float) -> float:
        return float(np.sum(weight * stats.chi2.sf(df * r2 / k ** 2, df))) - confidence

    hi = _howe(n, coverage, confidence) * 1.5 + 1.0
    while shortfall(hi) < 0:
        hi *= 2.0
    lo = float(stats.norm.ppf(0.5 + coverage / 2.0)) * 0.5
    while shortfall(lo) > 0:
        lo *= 0.5
    return float(optimize.brentq(shortfall, lo, hi, xtol=1e-12, rtol=1e-12))


def _howe(n: int, coverage: float, confidence: float) -> float:
    """Howe's (1969) two-sided approximation (NIST/SEMATECH e-Handbook 7.2.6.3)."""
    z = float(stats.norm.ppf(0.5 + coverage / 2.0))
    chi = float(stats.chi2.ppf(1.0 - confidence, n - 1))
    return z * math.sqrt((n - 1) * (1.0 + 1.0 / n) / chi)


def tolerance_factor(n: int, coverage: float = 0.99, confidence: float = 0.95, sides: int = 2,
                     method: str = "exact") -> float:
    """The normal tolerance factor k: mean +/- k s covers ``coverage`` of the population with ``confidence``.

    Parameters
    ----------
    n : int
        Sample size (at least 2); the standard deviation has n - 1 degrees of freedom.
    coverage, confidence : float
        Strictly between 0 and 1 (0.99 and 0.95: 99 % of lots, 95 % confidence).
    sides : int
        1 for a one-sided bound (mean - k s or mean + k s), 2 for a two-sided interval.
    method : str
        ``"exact"`` (default) or, for two sides, ``"howe"`` (Howe's approximation). One-sided factors are
        always exact: noncentral t quantile t'(confidence; n - 1, z_coverage sqrt(n)) / sqrt(n).

    Returns
    -------
    float
        The factor k.

    Examples
    --------
    >>> round(tolerance_factor(10, 0.95, 0.95, sides=1), 3), round(tolerance_factor(10, 0.99, 0.95), 3)
    (2.911, 4.437)
    """
    size = _check_n(n)
    p = _check_fraction(coverage, "coverage", "the share of the population the interval must cover")
    g = _check_fraction(confidence, "confidence", "the confidence level of the interval")
    if sides not in (1, 2):
        raise CapabilityError(f"sides must be 1 (a one-sided bound) or 2 (an interval); got {sides!r}.")
    if method not in TOLERANCE_METHODS:
        raise CapabilityError(f"Unknown tolerance-factor method '{method}'; use one of "
                              f"{quoted_list(TOLERANCE_METHODS)}.{did_you_mean(str(method), TOLERANCE_METHODS)}")
    if sides == 1:
        if method != "exact":
            raise CapabilityError("Howe's approximation is for two-sided intervals; the one-sided factor is "
                                  "computed exactly (noncentral t). Use method='exact' with sides=1.")
        delta = float(stats.norm.ppf(p)) * math.sqrt(size)
        return float(stats.nct.ppf(g, size - 1, delta)) / math.sqrt(size)
    if method == "howe":
        return _howe(size, p, g)
    return _two_sided_exact(size, p, g)


def tolerance_interval(values: ArrayLike, coverage: float = 0.99, confidence: float = 0.95, sides: int = 2,
                       method: str = "exact", *, bound: str = "lower") -> ToleranceInterval:
    """The normal tolerance interval of ``values``: mean +/- k s (k from :func:`tolerance_factor`).

    With ``sides=1``, ``bound`` says which side is bounded: ``"lower"`` (mean - k s, for a lower
    specification limit) or ``"upper"`` (mean + k s).

    Examples
    --------
    >>> ti = tolerance_interval([9.0, 10.0, 11.0, 10.0, 10.0], coverage=0.90, confidence=0.95)
    >>> round(ti.low, 3), round(ti.high, 3), ti.sides
    (6.966, 13.034, 2)
    """
    x = _check_values(values)
    k = tolerance_factor(x.size, coverage, confidence, sides, method)
    mean = float(np.mean(x))
    sd = float(np.std(x, ddof=1))
    if sides == 1:
        if bound not in ("lower", "upper"):
            raise CapabilityError(f"bound must be 'lower' or 'upper' for a one-sided interval; got {bound!r}."
                                  f"{did_you_mean(str(bound), ('lower', 'upper'))}")
        low = mean - k * sd if bound == "lower" else None
        high = mean + k * sd if bound == "upper" else None
    else:
        low, high = mean - k * sd, mean + k * sd
    name = ("exact (noncentral t)" if sides == 1 else
            "exact (Odeh 1978)" if method == "exact" else "Howe (1969) approximation")
    return ToleranceInterval(low=low, high=high, k=k, coverage=float(coverage), confidence=float(confidence),
                             sides=sides, method=name, n=int(x.size))


# -- capability --------------------------------------------------------------------------------------------

def _sigma_within(x: NDArray[np.float64], subgroups: Sequence[Any] | ArrayLike | None
                  ) -> tuple[float, float | None, int | None, str]:
    if subgroups is None:
        mr = np.abs(np.diff(x))
        return (float(np.mean(mr)) / d2_constant(2), None, None,
                "sigma within = average moving range / d2(2) (individuals, as qcc's xbar.one 'MR')")
    labels = list(np.asarray(subgroups, dtype=object).ravel())
    if len(labels) != x.size:
        raise CapabilityError(f"There are {len(labels)} subgroup labels for {x.size} values; give one label per "
                              "value (the lot's subgroup, e.g. campaign or batch of the same day), or none.")
    groups: dict[Any, list[float]] = {}
    for label, value in zip(labels, x):
        groups.setdefault(label, []).append(float(value))
    single = [str(k) for k, v in groups.items() if len(v) < 2]
    if single:
        raise CapabilityError(f"Subgroup(s) {quoted_list(single[:5])} have a single value: a range needs at "
                              "least 2 values per subgroup. Merge them into a neighbouring subgroup, or leave "
                              "out the subgroup labels to use moving ranges.")
    ratios = [(max(v) - min(v)) / d2_constant(len(v)) for v in groups.values()]
    sizes = [len(v) for v in groups.values()]
    return (float(np.mean(ratios)), float(np.mean(sizes)), len(groups),
            f"sigma within = average of subgroup range / d2 over {len(groups)} subgroups (qcc's 'UWAVE-R')")


def _wald(index: float, z: float, n: int) -> Interval:
    """Bissell's (1990) normal approximation, as qcc's ``.wald_limits_cpk_family``."""
    half = z * math.sqrt(1.0 / (9.0 * n * index ** 2) + 1.0 / (2.0 * (n - 1))) if index != 0 else math.inf
    return Interval(index, index * (1.0 - half), index * (1.0 + half))


def _chisq(index: float, df: float, alpha: float) -> Interval:
    """Chou et al. (1990) for Cp, Boyles (1991) for Cpm, as qcc's ``.chisq_limits_cp_family``."""
    lo, hi = stats.chi2.ppf([alpha / 2.0, 1.0 - alpha / 2.0], df)
    return Interval(index, index * math.sqrt(float(lo) / df), index * math.sqrt(float(hi) / df))


def capability(values: ArrayLike, *, lower: float | None = None, upper: float | None = None,
               target: float | None = None, subgroups: Sequence[Any] | ArrayLike | None = None,
               confidence: float = 0.95, coverage: float = 0.99, tolerance_confidence: float = 0.95,
               tolerance_method: str = "exact", response: str = "Y", sides: int | None = None) -> Capability:
    """Process capability of ``values`` (one result per lot, in time order) against specification limits.

    Parameters
    ----------
    values : array-like
        The lots' results, in production order (the moving ranges depend on it).
    lower, upper : float or None
        Specification limits; either may be missing (one-sided specification).
    target : float or None
        Target for Cpm; by default the midpoint of the limits when both are given (as qcc).
    subgroups : sequence or None
        One label per value (e.g. campaign); sigma within then comes from the subgroup ranges.
    confidence : float
        Level of the confidence intervals of the indices.
    coverage, tolerance_confidence, tolerance_method : float, float, str
        The tolerance interval reported alongside (see :func:`tolerance_interval`); one-sided when only one
        limit is given, on that limit's side.
    response : str
        The response's name, for the report.
    sides : int or None
        Sides of the tolerance interval: ``None`` (default) for one side when only one limit is given (on
        that limit's side) and two otherwise; 1 or 2 to choose. A one-sided bound with both limits (or none)
        is on the side of the nearer limit (the Cpk side; the lower side without limits).

    Returns
    -------
    Capability

    Examples
    --------
    >>> c = capability([9.8, 10.1, 10.0, 9.9, 10.2, 10.0], lower=9.0, upper=11.0)
    >>> round(c.sigma_within, 4), round(c.cp.value, 3), c.observed_out_percent
    (0.1773, 1.88, 0.0)
    """
    x = _check_values(values)
    conf = _check_fraction(confidence, "confidence", "the level of the confidence intervals")
    _check_fraction(coverage, "coverage", "the share of lots the tolerance interval must cover")
    _check_fraction(tolerance_confidence, "tolerance_confidence", "the confidence of the tolerance interval")
    lsl = _check_limit(lower, "lower specification limit")
    usl = _check_limit(upper, "upper specification limit")
    tgt = _check_limit(target, "target")
    if lsl is not None and usl is not None and lsl >= usl:
        raise CapabilityError(f"The lower specification limit ({fmt_sig(lsl)}) must be below the upper one "
                              f"({fmt_sig(usl)}); swap them or correct the one that is wrong.")
    n = int(x.size)
    mean = float(np.mean(x))
    sigma_overall = float(np.std(x, ddof=1))
    sigma, size, n_groups, sigma_how = _sigma_within(x, subgroups)
    if not sigma > 0 or not sigma_overall > 0:
        raise CapabilityError(f"The {response} values do not vary (within subgroups or from lot to lot), so "
                              "capability indices are undefined; check that the values are the lots' results "
                              "and are not rounded to a single value.")
    notes: list[str] = []
    alpha = 1.0 - conf
    z_one, z_two = float(stats.norm.ppf(conf)), float(stats.norm.ppf(1.0 - alpha / 2.0))
    cp_l = _wald((mean - lsl) / (3 * sigma), z_one, n) if lsl is not None else None
    cp_u = _wald((usl - mean) / (3 * sigma), z_one, n) if usl is not None else None
    one_sided = [c.value for c in (cp_l, cp_u) if c is not None]
    cpk = _wald(min(one_sided), z_two, n) if one_sided else None
    cp = cpm = None
    pp = ppk = None
    if lsl is not None and usl is not None:
        cp = _chisq((usl - lsl) / (6 * sigma), n - 1, alpha)
        pp = (usl - lsl) / (6 * sigma_overall)
        if tgt is None:
            tgt = (lsl + usl) / 2.0
            notes.append(f"No target given: Cpm uses the midpoint of the limits, {fmt_sig(tgt)} (as qcc); "
                         "it is optimistic if the real target is elsewhere.")
        if not lsl <= tgt <= usl:
            notes.append(f"The target {fmt_sig(tgt)} lies outside the specification limits.")
        d = (mean - tgt) / sigma
        df = n * (1 + d ** 2) / (1 + 2 * d ** 2)
        cpm = _chisq((usl - lsl) / (6 * math.sqrt(sigma ** 2 + (mean - tgt) ** 2)), df, alpha)
    elif lsl is None and usl is None:
        notes.append("No specification limits: Cp, Cpk, Cpm, Pp and Ppk are not computed (enter a lower "
                     "and/or upper limit for the response).")
    else:
        notes.append("Only " + ("a lower" if lsl is not None else "an upper") + " specification limit: Cp, Cpm "
                     "and Pp need both limits; Cpk is the one-sided index.")
    p_sides = [(mean - lsl) / (3 * sigma_overall)] if lsl is not None else []
    p_sides += [(usl - mean) / (3 * sigma_overall)] if usl is not None else []
    if p_sides:
        ppk = min(p_sides)
    exp_below = float(stats.norm.cdf((lsl - mean) / sigma)) * 100 if lsl is not None else None
    exp_above = float(stats.norm.sf((usl - mean) / sigma)) * 100 if usl is not None else None
    obs_below = float(np.mean(x < lsl)) * 100 if lsl is not None else None
    obs_above = float(np.mean(x > usl)) * 100 if usl is not None else None
    if sides not in (None, 1, 2):
        raise CapabilityError(f"sides must be 1 (a one-sided tolerance bound), 2 (an interval) or None (from "
                              f"the limits given); got {sides!r}.")
    tol_sides = sides if sides is not None else (1 if (lsl is None) != (usl is None) else 2)
    lower_side = lsl is not None and (usl is None or cp_l is None or cp_u is None or cp_l.value <= cp_u.value)
    if lsl is None and usl is None:
        lower_side = True
    tol_method = tolerance_method
    if tol_sides == 1 and tolerance_method != "exact":
        notes.append("One-sided tolerance bound: its factor is exact (noncentral t); Howe's approximation is "
                     "for two-sided intervals only.")
        tol_method = "exact"
    ti = tolerance_interval(x, coverage, tolerance_confidence, tol_sides, tol_method,
                            bound="lower" if lower_side else "upper")
    if n < 25:
        notes.append(f"Only {n} lots: the confidence intervals of the indices are wide and the normal "
                     "approximation behind the Cpk interval is rough; 25 or more lots are usual.")
    method = (f"{sigma_how}; sigma overall = sample SD. Intervals as qcc processCapability: Cp chi-square "
              "(Chou et al. 1990), Cp_l/Cp_u/Cpk normal approximation (Bissell 1990), Cpm chi-square "
              "(Boyles 1991). Assumes a stable, normally distributed process.")
    return Capability(
        response=response, n=n, mean=mean, lower=lsl, upper=usl, target=tgt,
        sigma_within=sigma, sigma_overall=sigma_overall, subgroup_size=size, confidence=conf,
        cp=cp, cpk=cpk, cpm=cpm, cp_l=cp_l, cp_u=cp_u, pp=pp, ppk=ppk,
        expected_out_percent=(exp_below or 0.0) + (exp_above or 0.0),
        observed_out_percent=(obs_below or 0.0) + (obs_above or 0.0),
        tolerance_interval=ti, method=method, notes=notes, n_subgroups=n_groups,
        expected_below_percent=exp_below, expected_above_percent=exp_above,
        observed_below_percent=obs_below, observed_above_percent=obs_above,
    )
