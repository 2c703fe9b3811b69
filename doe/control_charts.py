"""Shewhart control charts with run rules, for continued process verification of manufacturing lots.

:func:`control_chart` builds the chart pair (or single chart) of one type - ``"xbar-r"``, ``"xbar-s"``,
``"imr"`` (individuals and moving range), ``"p"`` or ``"np"`` - in phase I (limits estimated from the
data, optionally leaving some points out and revising the limits without them) or in phase II (limits
from a saved phase-I :meth:`ChartSet.limits`). Every point is checked against the limits and the chosen
run rules (Nelson's eight or the Western Electric four); the two checks of R's qcc ("beyond limits" and
"violating runs", a run of 7 on one side of the center) are always reported as well.

The estimates follow the defaults of R's qcc (Scrucca 2004, qcc 2.7 ``stats.*``/``sd.*``/``limits.*``):

- xbar: center the size-weighted grand mean; sigma ``"UWAVE-R"`` (xbar-r: the weighted average of
  R_i / d2(n_i) with weights d2(n_i)^2 / d3(n_i)^2, which is R-bar / d2 for equal sizes) or ``"UWAVE-SD"``
  (xbar-s: the weighted average of s_i / c4(n_i) with weights c4^2 / (1 - c4^2)); limits center
  +- 3 sigma / sqrt(n_i).
- R: center the size-weighted mean range; limits sigma (d2 +- 3 d3), the lower one at least 0.
- S: center the size-weighted mean standard deviation; limits sigma (c4 +- 3 sqrt(1 - c4^2)), at least 0.
- I (qcc's ``xbar.one``): center the mean; sigma ``"MR"``, the mean moving range of span 2 over d2(2).
  MR: center the mean moving range, limits sigma (d2(2) +- 3 d3(2)) (= D3, D4 times MR-bar).
- p: center sum(D) / sum(n); limits p +- 3 sqrt(p (1 - p) / n_i) inside [0, 1]. np: n_i p +- 3
  sqrt(n_i p (1 - p)) inside [0, n_i].

The constants d2, d3 (moments of the range of n standard normal values, by numerical integration with
scipy) and c4 (closed form through the gamma function) are computed for any n, not typed from a table;
:func:`chart_constants` gives them with A2, A3, B3, B4, D3 and D4 as in Montgomery, *Introduction to
Statistical Quality Control*, Appendix VI.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import integrate, special, stats

from doe._format import json_number
from doe.errors import DoeError, did_you_mean, quoted_list

__all__ = [
    "CHART_TYPES",
    "RULE_SETS",
    "Chart",
    "ChartError",
    "ChartSet",
    "c4",
    "chart_constants",
    "control_chart",
    "d2",
    "d3",
    "phased_charts",
    "signals_frame",
]

#: The chart types :func:`control_chart` makes.
CHART_TYPES = ("xbar-r", "xbar-s", "imr", "p", "np")

#: The run-rule sets :func:`control_chart` can check (qcc's two checks are always reported too).
RULE_SETS = ("nelson", "western-electric")

_QCC_RUN_LENGTH = 7  # qcc.options("run.length")


class ChartError(DoeError):
    """A control chart cannot be made from the input as given."""


# -- constants ---------------------------------------------------------------------------------------------

@functools.cache
def _range_moments(n: int) -> tuple[float, float]:
    """E(R) and E(R^2) of the range of n independent standard normal values.

    P(R <= r) = n * integral phi(x) (Phi(x + r) - Phi(x))^(n - 1) dx; E(R) = integral of P(R > r) and
    E(R^2) = 2 integral r P(R > r) over r > 0 (Simpson's rule on a fine grid; the integrands are smooth
    and negligible beyond |x| = 9 and r = 14).
    """
    x = np.linspace(-9.0, 9.0, 361)
    r = np.linspace(0.0, 14.0, 281)
    phi = stats.norm.pdf(x)
    cdf_x = stats.norm.cdf(x)
    inner = stats.norm.cdf(x[None, :] + r[:, None]) - cdf_x[None, :]
    cdf_r = n * integrate.simpson(phi[None, :] * inner ** (n - 1), x=x, axis=1)
    tail = np.clip(1.0 - cdf_r, 0.0, 1.0)
    mean = float(integrate.simpson(tail, x=r))
    second = float(2.0 * integrate.simpson(r * tail, x=r))
    return mean, second


def _check_n(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ChartError(f"A subgroup needs at least 2 values for a range or standard deviation; got size {n!r}.")
    return int(n)


#: Up to this subgroup size d2 is used as tabulated, to 3 decimals (Montgomery's Appendix VI; R's qcc).
D2_TABLE_MAX = 25


def d2(n: int, *, exact: bool = False) -> float:
    """d2(n): the mean range of n standard normal values (R-bar / d2 estimates sigma).

    Computed by numerical integration; for n <= 25 rounded to the 3 decimals of the published table, which
    qcc and Montgomery divide by (so sigma, limits and capability indices agree with their printed numbers);
    ``exact=True`` gives the unrounded value.

    >>> d2(2), d2(5), d2(25), round(d2(5, exact=True), 5)
    (1.128, 2.326, 3.931, 2.32593)
    """
    value = _range_moments(_check_n(n))[0]
    return value if exact or n > D2_TABLE_MAX else round(value, 3)


def d3(n: int) -> float:
    """d3(n): the standard deviation of the range of n standard normal values."""
    mean, second = _range_moments(_check_n(n))
    return math.sqrt(max(second - mean * mean, 0.0))


def c4(n: int) -> float:
    """c4(n) = sqrt(2 / (n - 1)) Gamma(n / 2) / Gamma((n - 1) / 2): E(s) / sigma for n normal values."""
    n = _check_n(n)
    return math.sqrt(2.0 / (n - 1)) * math.exp(special.gammaln(n / 2.0) - special.gammaln((n - 1) / 2.0))


def chart_constants(n: int) -> dict[str, float]:
    """The control-chart constants of Montgomery's Appendix VI for subgroup size n.

    Keys d2, d3, c4, A2 = 3 / (d2 sqrt n), A3 = 3 / (c4 sqrt n), B3 / B4 = 1 -+ 3 sqrt(1 - c4^2) / c4
    (B3 at least 0), D3 / D4 = 1 -+ 3 d3 / d2 (D3 at least 0).
    """
    dd2, dd3, cc4 = d2(n), d3(n), c4(n)
    b = 3.0 * math.sqrt(1.0 - cc4 * cc4) / cc4
    return {"d2": dd2, "d3": dd3, "c4": cc4, "A2": 3.0 / (dd2 * math.sqrt(n)), "A3": 3.0 / (cc4 * math.sqrt(n)),
            "B3": max(0.0, 1.0 - b), "B4": 1.0 + b, "D3": max(0.0, 1.0 - 3.0 * dd3 / dd2),
            "D4": 1.0 + 3.0 * dd3 / dd2}


# -- results -----------------------------------------------------------------------------------------------

def _num_or_list(v: float | list[float]) -> float | None | list[float | None]:
    if isinstance(v, list):
        return [json_number(x) for x in v]
    return json_number(v)


@dataclass
class Chart:
    """One chart of a chart set (e.g. the xbar part of xbar-r).

    ``statistic`` per point (the first moving range is NaN); ``center``/``lcl``/``ucl`` numbers, or lists
    per point when the subgroup size varies; ``sigma`` the process standard deviation the limits come
    from (for p and np sqrt(p (1 - p))); ``violations`` the run-rule findings, one dict per point and
    rule with ``rule``, ``index`` (0-based point) and ``lot`` (its label); ``excluded`` the phase-I points
    left out of the limits; ``qcc_beyond``/``qcc_runs`` the points qcc flags as beyond limits and as
    violating runs (7 in a row on one side of the center).
    """

    name: str
    statistic: list[float]
    center: float | list[float]
    lcl: float | list[float]
    ucl: float | list[float]
    sigma: float
    labels: list[str]
    violations: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    qcc_beyond: list[int] = field(default_factory=list)
    qcc_runs: list[int] = field(default_factory=list)

    def at(self, which: str, i: int) -> float:
        """The value of ``center``, ``lcl`` or ``ucl`` at point i (constant or per point)."""
        v = getattr(self, which)
        return float(v[i]) if isinstance(v, list) else float(v)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: center, lcl, ucl, sigma, violations, statistic, labels, excluded and qcc's checks."""
        return {"name": self.name, "center": _num_or_list(self.center), "lcl": _num_or_list(self.lcl),
                "ucl": _num_or_list(self.ucl), "sigma": json_number(self.sigma),
                "violations": [dict(v) for v in self.violations],
                "statistic": [json_number(s) for s in self.statistic], "labels": list(self.labels),
                "excluded": list(self.excluded), "qcc_beyond": list(self.qcc_beyond),
                "qcc_runs": list(self.qcc_runs)}


@dataclass
class ChartSet:
    """The charts of one type for one series of lots (xbar and r for ``"xbar-r"``, i and mr for ``"imr"``...).

    ``phase`` 1 (limits from these data) or 2 (limits from a saved phase I); ``subgroup_sizes`` per point
    (1 for individuals; the inspected number for p and np); ``notes`` sentences for the reader.
    """

    type: str
    phase: int
    charts: dict[str, Chart]
    n_subgroups: int
    subgroup_sizes: list[int]
    notes: list[str] = field(default_factory=list)
    parameters: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"type", "phase", "notes", "n_subgroups", "subgroup_sizes", "<chart name>": Chart.to_json(), ...}``."""
        out: dict[str, Any] = {"type": self.type, "phase": self.phase, "notes": list(self.notes),
                               "n_subgroups": self.n_subgroups, "subgroup_sizes": list(self.subgroup_sizes)}
        for name, chart in self.charts.items():
            out[name] = chart.to_json()
        return out

    def limits(self) -> dict[str, Any]:
        """What phase II needs, as JSON: the type, the process parameters and each chart's center and sigma.

        ``{"type", "parameters": {...}, "<chart name>": {"center", "sigma"}}``; ``parameters`` holds
        ``grand_mean`` and ``sigma`` (xbar-r, xbar-s, imr) or ``p`` (p, np), which fix every limit.
        """
        out: dict[str, Any] = {"type": self.type,
                               "parameters": {k: json_number(v) for k, v in self.parameters.items()}}
        for name, chart in self.charts.items():
            c = chart.center
            out[name] = {"center": json_number(c) if not isinstance(c, list) else None,
                         "sigma": json_number(chart.sigma)}
        return out


# -- run rules ---------------------------------------------------------------------------------------------

_NELSON = {1: "1: beyond 3 sigma", 2: "2: 9 in a row on one side", 3: "3: 6 in a row increasing or decreasing",
           4: "4: 14 in a row alternating up and down", 5: "5: 2 of 3 beyond 2 sigma on one side",
           6: "6: 4 of 5 beyond 1 sigma on one side", 7: "7: 15 in a row within 1 sigma",
           8: "8: 8 in a row beyond 1 sigma on either side"}
_WE = {1: "WE1: beyond 3 sigma", 2: "WE2: 2 of 3 beyond 2 sigma on one side",
       3: "WE3: 4 of 5 beyond 1 sigma on one side", 4: "WE4: 8 in a row on one side"}


def _k_of_m(flags: np.ndarray, k: int, m: int) -> list[int]:
    """Points i at which at least k of the m points ending at i are flagged, the point i itself flagged."""
    hits = []
    for i in range(len(flags)):
        if i >= m - 1 and flags[i] and int(flags[i - m + 1:i + 1].sum()) >= k:
            hits.append(i)
    return hits


def _run(flags: np.ndarray, length: int) -> list[int]:
    """Points i ending a run of at least ``length`` consecutive flagged points."""
    hits, count = [], 0
    for i, f in enumerate(flags):
        count = count + 1 if f else 0
        if count >= length:
            hits.append(i)
    return hits


def _trend(x: np.ndarray, length: int) -> list[int]:
    """Points ending ``length`` points steadily increasing or decreasing."""
    d = np.sign(np.diff(x))
    hits = set(_run(d > 0, length - 1)) | set(_run(d < 0, length - 1))
    return sorted(i + 1 for i in hits)


def _alternating(x: np.ndarray, length: int) -> list[int]:
    """Points ending ``length`` points alternating up and down."""
    d = np.sign(np.diff(x))
    alt = np.zeros(len(d), dtype=bool)
    alt[1:] = (d[1:] * d[:-1] < 0)
    # a run of (length - 2) alternations among the differences spans `length` points
    return sorted(i + 1 for i in _run(alt, length - 2))


def _rule_hits(x: np.ndarray, z: np.ndarray, beyond: np.ndarray, rule_set: str) -> list[tuple[str, int]]:
    ok = np.isfinite(z)
    zz = np.where(ok, z, 0.0)
    above, below = ok & (zz > 0), ok & (zz < 0)
    out: list[tuple[str, int]] = []
    if rule_set == "nelson":
        r = _NELSON
        out += [(r[1], int(i)) for i in np.flatnonzero(beyond)]
        out += [(r[2], i) for i in sorted(set(_run(above, 9)) | set(_run(below, 9)))]
        xf = np.where(ok, x, np.nan)
        out += [(r[3], i) for i in _trend(xf, 6) if ok[i]]
        out += [(r[4], i) for i in _alternating(xf, 14) if ok[i]]
        out += [(r[5], i) for i in sorted(set(_k_of_m(ok & (zz > 2), 2, 3)) | set(_k_of_m(ok & (zz < -2), 2, 3)))]
        out += [(r[6], i) for i in sorted(set(_k_of_m(ok & (zz > 1), 4, 5)) | set(_k_of_m(ok & (zz < -1), 4, 5)))]
        out += [(r[7], i) for i in _run(ok & (np.abs(zz) < 1), 15)]
        out += [(r[8], i) for i in _run(ok & (np.abs(zz) > 1), 8)]
    else:
        r = _WE
        out += [(r[1], int(i)) for i in np.flatnonzero(beyond)]
        out += [(r[2], i) for i in sorted(set(_k_of_m(ok & (zz > 2), 2, 3)) | set(_k_of_m(ok & (zz < -2), 2, 3)))]
        out += [(r[3], i) for i in sorted(set(_k_of_m(ok & (zz > 1), 4, 5)) | set(_k_of_m(ok & (zz < -1), 4, 5)))]
        out += [(r[4], i) for i in sorted(set(_run(above, 8)) | set(_run(below, 8)))]
    return out


def _qcc_runs(x: np.ndarray, center: np.ndarray) -> list[int]:
    """qcc's ``violating.runs``: from the 7th point on of a run on one side of the center (ties break a run)."""
    diff = np.sign(np.where(np.isfinite(x), x - center, 0.0))
    return sorted(set(_run(diff > 0, _QCC_RUN_LENGTH)) | set(_run(diff < 0, _QCC_RUN_LENGTH)))


def _check_rules(rules: Iterable[str]) -> list[str]:
    if isinstance(rules, str):
        rules = (rules,)
    out = []
    for r in rules:
        key = str(r).strip().lower().replace("_", "-").replace(" ", "-")
        if key in ("we", "western"):
            key = "western-electric"
        if key not in RULE_SETS:
            raise ChartError(f"Unknown run-rule set '{r}': choose {quoted_list(RULE_SETS)}."
                             + did_you_mean(str(r), RULE_SETS))
        out.append(key)
    return out


# -- building a chart ------------------------------------------------------------------------------------

def _collapse(v: np.ndarray) -> float | list[float]:
    finite = v[np.isfinite(v)]
    if len(finite) == 0 or np.allclose(finite, finite[0], rtol=0, atol=0):
        return float(finite[0]) if len(finite) else float("nan")
    return [float(a) for a in v]


def _make_chart(name: str, stat: np.ndarray, center: np.ndarray, se_lo: np.ndarray, se_hi: np.ndarray,
                lcl: np.ndarray, ucl: np.ndarray, sigma: float, labels: list[str], excluded: list[int],
                rules: list[str]) -> Chart:
    """A chart with its checks: z = (statistic - center) / the statistic's standard error on that side."""
    dev = stat - center
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(dev >= 0, dev / se_hi, dev / se_lo)
    finite = np.isfinite(stat)
    beyond = finite & ((stat > ucl) | (stat < lcl))
    violations: list[dict[str, Any]] = []
    for rule_set in rules:
        for rule, i in _rule_hits(stat, z, beyond, rule_set):
            violations.append({"rule": rule, "index": int(i), "lot": labels[i]})
    violations.sort(key=lambda v: (v["index"], v["rule"]))
    vary = not np.allclose(se_hi, se_hi[0], rtol=0, atol=0)  # the subgroup size varies: limits per point
    return Chart(name=name, statistic=[float(s) for s in stat], center=_collapse(center),
                 lcl=[float(a) for a in lcl] if vary else _collapse(lcl),
                 ucl=[float(a) for a in ucl] if vary else _collapse(ucl), sigma=float(sigma), labels=labels, violations=violations,
                 excluded=sorted(excluded), qcc_beyond=[int(i) for i in np.flatnonzero(beyond)],
                 qcc_runs=_qcc_runs(stat, center))


def _as_floats(values: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ChartError(f"The {what} must be numbers; some could not be read as numbers.") from None
    if arr.size == 0:
        raise ChartError(f"There are no {what} to chart.")
    return arr


def _groups(values: np.ndarray, subgroups: Sequence[Any] | None, type_: str) -> tuple[list[np.ndarray], list[str]]:
    if subgroups is None:
        if values.ndim == 1:
            raise ChartError(f"An {type_} chart needs subgroups: give `subgroups` (one label per value, e.g. the "
                             "lot or day each measurement belongs to) or the values as rows of a table.")
        return [row[np.isfinite(row)] for row in values], [str(i + 1) for i in range(len(values))]
    flat = values.ravel()
    keys = list(subgroups)
    if len(keys) != len(flat):
        raise ChartError(f"`subgroups` has {len(keys)} labels for {len(flat)} values: give one subgroup label "
                         "per value.")
    order: dict[str, list[float]] = {}
    for k, v in zip(keys, flat, strict=True):
        if np.isfinite(v):
            order.setdefault(str(k), []).append(float(v))
    return [np.asarray(v) for v in order.values()], list(order)


def _resolve_excluded(exclude: Iterable[Any], labels: list[str]) -> list[int]:
    out = set()
    for e in exclude:
        if isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            i = int(e)
            if not 0 <= i < len(labels):
                raise ChartError(f"Cannot exclude point {i}: the points are numbered 0 to {len(labels) - 1} "
                                 "(or give the lot label).")
            out.add(i)
        elif str(e) in labels:
            out.add(labels.index(str(e)))
        else:
            raise ChartError(f"Cannot exclude '{e}': no point has that label." + did_you_mean(str(e), labels))
    if len(out) >= len(labels) - 1:
        raise ChartError("Excluding these points leaves fewer than 2 to estimate the limits from: exclude fewer.")
    return sorted(out)


def _saved(limits: Mapping[str, Any], type_: str, key: str) -> float:
    if limits.get("type") != type_:
        raise ChartError(f"The saved limits are for a '{limits.get('type')}' chart, not '{type_}': use limits "
                         "saved from a phase-I chart of the same type.")
    try:
        v = float(limits["parameters"][key])
    except (KeyError, TypeError, ValueError):
        raise ChartError(f"The saved limits lack the parameter '{key}': save them with ChartSet.limits() from a "
                         "phase-I chart.") from None
    if not math.isfinite(v):
        raise ChartError(f"The saved parameter '{key}' is not a finite number; re-save the phase-I limits.")
    return v


def control_chart(values: Any, type: str, *, subgroups: Sequence[Any] | None = None,  # noqa: A002
                  size: float | Sequence[float] | None = None, labels: Sequence[Any] | None = None,
                  exclude: Iterable[Any] = (), limits: Mapping[str, Any] | None = None,
                  rules: Iterable[str] = ("nelson",)) -> ChartSet:
    """Shewhart control charts of one type with run rules (phase I, or phase II with saved ``limits``).

    Parameters
    ----------
    values : array-like
        Measurements (xbar-r, xbar-s: a flat list with ``subgroups``, or a table with one subgroup per row
        and NaN for missing values; imr: one value per lot) or counts of nonconforming units (p, np).
    type : str
        One of :data:`CHART_TYPES`.
    subgroups : sequence, optional
        A subgroup label per value (xbar-r, xbar-s), in the order the subgroups were made.
    size : number or sequence, optional
        The number inspected per subgroup (p, np): one number or one per subgroup.
    labels : sequence, optional
        A lot label per point (default the subgroup labels, or 1, 2, ...).
    exclude : iterable
        Points (labels or 0-based indices) left out of the phase-I limits; they are still plotted and checked.
    limits : mapping, optional
        A saved phase-I :meth:`ChartSet.limits`: the chart is then phase II with those limits.
    rules : iterable of str
        Run-rule sets to check: ``"nelson"`` (8 rules) and/or ``"western-electric"`` (4 rules).
    """
    kind = str(type).strip().lower().replace("_", "-")
    if kind not in CHART_TYPES:
        raise ChartError(f"Unknown chart type '{type}': choose {quoted_list(CHART_TYPES)}."
                         + did_you_mean(str(type), CHART_TYPES))
    rule_sets = _check_rules(rules)
    raw = np.asarray(values, dtype=object)
    arr = _as_floats(values, "values") if raw.ndim < 2 else np.asarray(values, dtype=float)
    notes: list[str] = []
    if kind in ("xbar-r", "xbar-s"):
        groups, default_labels = _groups(arr, subgroups, kind)
        sizes = np.array([len(g) for g in groups])
        if (sizes < 2).any():
            bad = [default_labels[i] for i in np.flatnonzero(sizes < 2)]
            raise ChartError(f"Subgroups {quoted_list(bad)} have fewer than 2 values: an {kind} chart needs at least "
                             "2 per subgroup (use 'imr' for one value per lot).")
    elif kind == "imr":
        if np.isnan(arr).any():
            raise ChartError("Some individual values are missing (blank): remove those lots or fill them in.")
        groups = [np.array([v]) for v in arr]
        sizes = np.ones(len(arr), dtype=int)
        default_labels = [str(i + 1) for i in range(len(arr))]
    else:
        if size is None:
            raise ChartError(f"A {kind} chart needs `size`: the number of units inspected per subgroup (one "
                             "number, or one per subgroup).")
        sizes_f = np.broadcast_to(_as_floats(size, "sizes"), arr.shape).astype(float) if np.size(size) in (
            1, arr.size) else None
        if sizes_f is None:
            raise ChartError(f"`size` has {np.size(size)} numbers for {arr.size} subgroups: give one number, or one "
                             "per subgroup.")
        if (sizes_f <= 0).any() or (sizes_f != np.round(sizes_f)).any():
            raise ChartError("Each `size` must be a whole number of inspected units above 0.")
        if (arr < 0).any() or (arr > sizes_f).any() or np.isnan(arr).any():
            raise ChartError("Each count of nonconforming units must be between 0 and the number inspected.")
        groups = [np.array([v]) for v in arr]
        sizes = sizes_f.astype(int)
        default_labels = [str(i + 1) for i in range(len(arr))]
    m = len(groups)
    lot_labels = [str(x) for x in labels] if labels is not None else default_labels
    if len(lot_labels) != m:
        raise ChartError(f"`labels` has {len(lot_labels)} labels for {m} points: give one label per "
                         f"{'subgroup' if kind.startswith('xbar') else 'lot'}.")
    if len(set(lot_labels)) != m:
        raise ChartError("The point labels must be unique (one per lot or subgroup).")
    if m < 2:
        raise ChartError("A control chart needs at least 2 points.")
    phase = 1 if limits is None else 2
    excluded = _resolve_excluded(exclude, lot_labels) if phase == 1 else []
    if phase == 2 and list(exclude):
        notes.append("`exclude` is ignored in phase II: the limits come from the saved phase I.")
    keep = np.ones(m, dtype=bool)
    keep[excluded] = False
    if excluded:
        notes.append(f"Limits revised without {len(excluded)} point(s): {', '.join(lot_labels[i] for i in excluded)}.")
    n = sizes.astype(float)
    charts: dict[str, Chart] = {}
    params: dict[str, float] = {}
    if kind in ("xbar-r", "xbar-s", "imr"):
        if kind == "imr":
            x = arr.astype(float)
            mr = np.concatenate([[np.nan], np.abs(np.diff(x))])
            if phase == 1:
                # moving ranges that touch an excluded lot are left out too
                use = keep.copy()
                mr_use = np.concatenate([[False], keep[1:] & keep[:-1]])
                if mr_use.sum() < 1:
                    raise ChartError("Too few consecutive lots are left to estimate the moving range.")
                grand = float(x[use].mean())
                sigma = float(mr[mr_use].mean() / d2(2))
            else:
                assert limits is not None
                grand, sigma = _saved(limits, kind, "grand_mean"), _saved(limits, kind, "sigma")
            ones = np.ones(m)
            se = sigma * ones
            charts["i"] = _make_chart("i", x, grand * ones, se, se, grand - 3 * se, grand + 3 * se, sigma,
                                      lot_labels, excluded, rule_sets)
            c_mr = sigma * d2(2) * ones
            se_mr = sigma * d3(2) * ones
            charts["mr"] = _make_chart("mr", mr, c_mr, se_mr, se_mr, np.maximum(0.0, c_mr - 3 * se_mr),
                                       c_mr + 3 * se_mr, sigma, lot_labels, excluded, rule_sets)
            notes.append("Sigma from the mean moving range of span 2 (MR-bar / d2, qcc's 'MR').")
        else:
            means = np.array([g.mean() for g in groups])
            ranges = np.array([g.max() - g.min() for g in groups])
            sds = np.array([g.std(ddof=1) for g in groups])
            d2n, d3n = np.array([d2(int(k)) for k in sizes]), np.array([d3(int(k)) for k in sizes])
            c4n = np.array([c4(int(k)) for k in sizes])
            if phase == 1:
                grand = float((n * means)[keep].sum() / n[keep].sum())
                if kind == "xbar-r":
                    h = d2n ** 2 / d3n ** 2
                    sigma = float((h * ranges / d2n)[keep].sum() / h[keep].sum())
                    notes.append("Sigma 'UWAVE-R' (qcc's default for xbar and R charts): R-bar / d2 for equal sizes.")
                else:
                    h = c4n ** 2 / (1 - c4n ** 2)
                    sigma = float((h * sds / c4n)[keep].sum() / h[keep].sum())
                    notes.append("Sigma 'UWAVE-SD' (qcc's default for S charts): s-bar / c4 for equal sizes.")
            else:
                assert limits is not None
                grand, sigma = _saved(limits, kind, "grand_mean"), _saved(limits, kind, "sigma")
            se = sigma / np.sqrt(n)
            charts["xbar"] = _make_chart("xbar", means, grand * np.ones(m), se, se, grand - 3 * se, grand + 3 * se,
                                         sigma, lot_labels, excluded, rule_sets)
            if kind == "xbar-r":
                # center: qcc charts the size-weighted mean range (R-bar) in phase I, sigma d2 in phase II
                if phase == 1:
                    c_r = float((n * ranges)[keep].sum() / n[keep].sum()) * np.ones(m)
                else:
                    c_r = sigma * d2n
                if len(set(sizes)) > 1:
                    c_r = sigma * d2n
                se_r = sigma * d3n
                charts["r"] = _make_chart("r", ranges, c_r, se_r, se_r, np.maximum(0.0, sigma * d2n - 3 * se_r),
                                          sigma * d2n + 3 * se_r, sigma, lot_labels, excluded, rule_sets)
            else:
                if phase == 1 and len(set(sizes)) == 1:
                    c_s = float((n * sds)[keep].sum() / n[keep].sum()) * np.ones(m)
                else:
                    c_s = sigma * c4n
                se_s = sigma * np.sqrt(1 - c4n ** 2)
                charts["s"] = _make_chart("s", sds, c_s, se_s, se_s, np.maximum(0.0, sigma * c4n - 3 * se_s),
                                          sigma * c4n + 3 * se_s, sigma, lot_labels, excluded, rule_sets)
        params = {"grand_mean": grand, "sigma": sigma}
    else:
        d = arr.astype(float)
        if phase == 1:
            p = float(d[keep].sum() / n[keep].sum())
        else:
            assert limits is not None
            p = _saved(limits, kind, "p")
        if not 0.0 < p < 1.0:
            raise ChartError(f"The fraction nonconforming is {p:g}: a {kind} chart needs some but not all units "
                             "nonconforming to set limits.")
        sig = math.sqrt(p * (1 - p))
        if kind == "p":
            se = sig / np.sqrt(n)
            charts["p"] = _make_chart("p", d / n, p * np.ones(m), se, se, np.maximum(0.0, p - 3 * se),
                                      np.minimum(1.0, p + 3 * se), sig, lot_labels, excluded, rule_sets)
        else:
            se = sig * np.sqrt(n)
            charts["np"] = _make_chart("np", d, n * p, se, se, np.maximum(0.0, n * p - 3 * se),
                                       np.minimum(n, n * p + 3 * se), sig, lot_labels, excluded, rule_sets)
        params = {"p": p}
    return ChartSet(type=kind, phase=phase, charts=charts, n_subgroups=m, subgroup_sizes=[int(k) for k in sizes],
                    notes=notes, parameters=params)


def phased_charts(values: Any, type: str, baseline: Any, *, subgroups: Sequence[Any] | None = None,  # noqa: A002
                  size: float | Sequence[float] | None = None, labels: Sequence[Any] | None = None,
                  exclude: Iterable[Any] = (), rules: Iterable[str] = ("nelson",)) -> tuple[ChartSet, ChartSet]:
    """Phase I on the points up to and including ``baseline`` (a point's label: a lot, or for X-bar charts a
    subgroup), then phase II of the points after it against those limits (the baseline's
    :meth:`ChartSet.limits`, as a saved phase I). ``exclude`` leaves baseline points out of the limits.
    The other arguments are :func:`control_chart`'s. Returns ``(phase_one, phase_two)``.
    """
    kind = str(type).strip().lower().replace("_", "-")
    flat = list(np.asarray(values, dtype=object).ravel())
    if kind in ("xbar-r", "xbar-s"):
        if subgroups is None or len(list(subgroups)) != len(flat):
            raise ChartError("A phased X-bar chart needs `subgroups`: one subgroup label per value.")
        keys = [str(k) for k in subgroups]
        points = list(dict.fromkeys(keys))
        names = [str(x) for x in labels] if labels is not None else points
        if len(names) != len(points):
            raise ChartError(f"`labels` has {len(names)} labels for {len(points)} subgroups: give one per subgroup.")
        point_of = [points.index(k) for k in keys]
    else:
        names = [str(x) for x in labels] if labels is not None else [str(i + 1) for i in range(len(flat))]
        if len(names) != len(flat):
            raise ChartError(f"`labels` has {len(names)} labels for {len(flat)} points: give one label per lot.")
        point_of = list(range(len(flat)))
    where = str(baseline).strip()
    if where not in names:
        raise ChartError(f"The baseline ends at '{baseline}', which is not a point of the chart."
                         + did_you_mean(where, names) + " Give the label of the last lot (or subgroup) of phase I.")
    cut = names.index(where) + 1
    if cut >= len(names):
        raise ChartError(f"The baseline '{where}' is the last point: no lot is left for phase II. End the baseline "
                         "earlier.")

    def part(first: bool) -> dict[str, Any]:
        idx = [i for i, p in enumerate(point_of) if (p < cut) == first]
        pts = names[:cut] if first else names[cut:]
        out: dict[str, Any] = {"values": [flat[i] for i in idx], "labels": pts}
        if subgroups is not None and kind in ("xbar-r", "xbar-s"):
            out["subgroups"] = [list(subgroups)[i] for i in idx]
        if size is not None and np.size(size) > 1:
            out["size"] = [list(np.ravel(size))[i] for i in idx]
        elif size is not None:
            out["size"] = size
        return out

    first, second = part(True), part(False)
    phase_one = control_chart(first.pop("values"), kind, exclude=exclude, rules=rules, **first)
    phase_two = control_chart(second.pop("values"), kind, limits=phase_one.limits(), rules=rules, **second)
    return phase_one, phase_two


#: Human names of the charts of a :class:`ChartSet` (its ``charts`` keys).
CHART_NAMES = {"xbar": "X-bar", "r": "Range", "s": "Standard deviation", "i": "Individuals", "mr": "Moving range",
               "p": "Fraction nonconforming (p)", "np": "Number nonconforming (np)"}


def signals_frame(chart_set: ChartSet) -> Any:
    """Every signal of ``chart_set`` as a table: Chart (its human name), Lot (or subgroup) and Rule."""
    import pandas as pd

    return pd.DataFrame([{"Chart": CHART_NAMES.get(name, name), "Lot": v["lot"], "Rule": v["rule"]}
                         for name, ch in chart_set.charts.items() for v in ch.violations],
                        columns=["Chart", "Lot", "Rule"])
