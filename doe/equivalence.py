"""Equivalence between scales: two one-sided t tests (TOST) and the runs they need.

Scale-down model qualification asks whether a critical quality attribute (fold expansion, viability, ...)
is *equivalent* between two vessel families or scales (T-flask, CellSTACK, CellCube): not "no difference
was found" but "the difference is shown to lie inside margins agreed beforehand". The two one-sided tests
of Schuirmann (1987) test H0: difference <= low and H0: difference >= high; both rejected at level
``alpha`` (the larger p below ``alpha``) is the same as the 1 - 2 alpha confidence interval lying inside
the margins.

- :func:`tost` (a data frame with a group column) and :func:`tost_arrays` (two arrays) run the test:
  Welch's unequal-variance t tests by default, pooled variance with ``var_equal=True``, paired by an id
  column (donor, batch) with ``paired=True``. ``log=True`` tests log(values) against log(margins) and
  reports the ratio of geometric means (test / reference) and its interval back on the ratio scale (the
  bioequivalence convention, margins such as 0.80 to 1.25). The tests are statsmodels'
  ``ttost_ind`` / ``ttost_paired`` and the interval ``CompareMeans.tconfint_diff`` /
  ``DescrStatsW.tconfint_mean`` at level 2 alpha.
- :func:`tost_power` and :func:`equivalence_sample_size` plan the comparison. The power is the exact
  power of TOST (the probability that both one-sided tests reject), integrated over the distribution of
  the sample standard deviation with scipy - the quantity PowerTOST's ``power.TOST(method = "exact")``
  computes through Owen's Q function (Owen 1965; Phillips 1990). The sample size is solved on a
  continuous n (scipy's ``brentq``) and then rounded up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import integrate, optimize, special, stats
from statsmodels.stats.weightstats import (  # type: ignore[import-untyped]
    CompareMeans,
    DescrStatsW,
    ttost_ind,
    ttost_paired,
)

from doe._format import fmt_sig, json_number
from doe.errors import DoeError, did_you_mean, quoted_list

__all__ = [
    "EquivalenceError",
    "EquivalenceResult",
    "equivalence_sample_size",
    "tost",
    "tost_arrays",
    "tost_power",
    "tost_power_se",
]


#: How to choose equivalence margins, in words for the Scale comparison page.
MARGIN_HINT = ("Set the margins before looking at the data, from the largest difference that would not matter for the "
               "product: a share of the CQA's specification range, the reference scale's own batch-to-batch "
               "variation (e.g. ±1.5 of its SD), or for a ratio the bioequivalence convention 0.80 to 1.25. Margins "
               "chosen after seeing the result do not qualify a scale-down model.")


class EquivalenceError(DoeError):
    """An equivalence test or sample-size input is invalid."""


# -- the result --------------------------------------------------------------------------------------------

@dataclass
class EquivalenceResult:
    """The outcome of a TOST comparison of ``test`` against ``reference`` for one response.

    ``estimate`` is the mean difference test - reference, or with ``log`` the ratio of geometric means
    test / reference; ``ci`` its 1 - 2 alpha confidence interval on the same scale; ``t_lower``/``p_lower``
    test H0: difference <= low margin, ``t_upper``/``p_upper`` H0: difference >= high margin; ``p`` is the
    larger p and ``equivalent`` is ``p < alpha``. With ``log`` the means are geometric means and the
    standard deviations are those of the logged values.
    """

    response: str
    group: str
    reference: str
    test: str
    estimate: float
    ci: tuple[float, float]
    t_lower: float
    t_upper: float
    df: float
    p_lower: float
    p_upper: float
    p: float
    equivalent: bool
    margin: tuple[float, float]
    alpha: float
    paired: bool
    log: bool
    var_equal: bool
    n_reference: int
    n_test: int
    n_pairs: int | None
    mean_reference: float
    mean_test: float
    sd_reference: float
    sd_test: float
    method: str
    notes: list[str] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        """The confidence level of ``ci``, 1 - 2 alpha (0.90 for alpha = 0.05)."""
        return 1.0 - 2.0 * self.alpha

    @property
    def quantity(self) -> str:
        """What ``estimate`` is, in words: the ratio of geometric means or the difference in means."""
        return ("ratio of geometric means" if self.log
                else "difference in means")

    @property
    def planning_sd(self) -> float:
        """The SD a sample-size calculation for a study like this one takes (:func:`equivalence_sample_size`):
        of the paired differences (paired), else the pooled SD of the runs - on the log scale with ``log``.

        Recovered from the interval: its half-width on the analysis scale is t(1 - alpha, df) x SE, and
        SE = SD / sqrt(pairs) (paired) or SD sqrt(1/n_reference + 1/n_test).
        """
        lo, hi = self.ci
        if self.log:
            lo, hi = math.log(lo), math.log(hi)
        se = (hi - lo) / 2.0 / float(stats.t.ppf(1.0 - self.alpha, self.df))
        if self.paired:
            return se * math.sqrt(self.n_pairs or 0)
        return se / math.sqrt(1.0 / self.n_reference + 1.0 / self.n_test)

    def conclusion(self) -> str:
        """One or two sentences for a scientist or a regulator: the verdict and the interval behind it."""
        level = f"{fmt_sig(100 * self.confidence, 3)} %"
        what = ("the ratio of geometric means" if self.log
                else f"the difference in means ({self.test} - {self.reference})")
        ci = f"{_fmt_num(self.ci[0])} to {_fmt_num(self.ci[1])}"
        margins = f"{_fmt_num(self.margin[0])} to {_fmt_num(self.margin[1])}"
        p = _fmt_p(self.p)
        if self.equivalent:
            return (f"{self.test} is equivalent to {self.reference} for {self.response}: the {level} "
                    f"confidence interval of {what}, {ci}, lies inside the margins {margins} (TOST {p}).")
        sides = []
        if self.ci[0] <= self.margin[0]:
            sides.append("below the lower margin")
        if self.ci[1] >= self.margin[1]:
            sides.append("above the upper margin")
        reach = " and ".join(sides) if sides else "the margins"
        return (f"{self.test} is not shown equivalent to {self.reference} for {self.response}: the {level} "
                f"confidence interval of {what}, {ci}, is not inside the margins {margins}: it reaches {reach} "
                f"(TOST {p}). "
                "More runs or less variability would narrow the interval; a true difference near a margin "
                "cannot be shown equivalent.")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: the numbers (non-finite ones as ``None``), the inputs and the conclusion in words."""
        return {
            "response": self.response, "group": self.group, "reference": self.reference, "test": self.test,
            "estimate": json_number(self.estimate),
            "ci": [json_number(self.ci[0]), json_number(self.ci[1])],
            "t_lower": json_number(self.t_lower), "t_upper": json_number(self.t_upper),
            "df": json_number(self.df),
            "p_lower": json_number(self.p_lower), "p_upper": json_number(self.p_upper),
            "p": json_number(self.p), "equivalent": bool(self.equivalent),
            "margin": [json_number(self.margin[0]), json_number(self.margin[1])],
            "alpha": float(self.alpha), "paired": bool(self.paired), "log": bool(self.log),
            "var_equal": bool(self.var_equal),
            "n_reference": int(self.n_reference), "n_test": int(self.n_test),
            "n_pairs": None if self.n_pairs is None else int(self.n_pairs),
            "mean_reference": json_number(self.mean_reference), "mean_test": json_number(self.mean_test),
            "sd_reference": json_number(self.sd_reference), "sd_test": json_number(self.sd_test),
            "method": self.method, "notes": list(self.notes), "conclusion": self.conclusion(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EquivalenceResult:
        """The result that :meth:`to_json` wrote (``conclusion`` and extra keys such as ``created_at`` are
        ignored; ``None`` numbers come back as NaN)."""
        def num(key: str) -> float:
            v = data.get(key)
            return float("nan") if v is None else float(v)

        def pair(key: str) -> tuple[float, float]:
            v = data.get(key)
            if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != 2:
                raise EquivalenceError(f"An equivalence result needs '{key}' as a list of two numbers; got {v!r}.")
            return (float("nan") if v[0] is None else float(v[0]), float("nan") if v[1] is None else float(v[1]))

        missing = [k for k in ("response", "reference", "test", "estimate", "ci", "margin", "equivalent")
                   if k not in data]
        if missing:
            raise EquivalenceError(f"This is not an equivalence result (EquivalenceResult.to_json): it lacks "
                                   f"{quoted_list(missing)}.")
        n_pairs = data.get("n_pairs")
        return cls(
            response=str(data["response"]), group=str(data.get("group", "")), reference=str(data["reference"]),
            test=str(data["test"]), estimate=num("estimate"), ci=pair("ci"), t_lower=num("t_lower"),
            t_upper=num("t_upper"), df=num("df"), p_lower=num("p_lower"), p_upper=num("p_upper"), p=num("p"),
            equivalent=bool(data["equivalent"]), margin=pair("margin"), alpha=float(data.get("alpha", 0.05)),
            paired=bool(data.get("paired", False)), log=bool(data.get("log", False)),
            var_equal=bool(data.get("var_equal", False)), n_reference=int(data.get("n_reference") or 0),
            n_test=int(data.get("n_test") or 0), n_pairs=None if n_pairs is None else int(n_pairs),
            mean_reference=num("mean_reference"), mean_test=num("mean_test"), sd_reference=num("sd_reference"),
            sd_test=num("sd_test"), method=str(data.get("method", "")), notes=[str(n) for n in data.get("notes", [])])


# -- input checks ------------------------------------------------------------------------------------------

def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 < a < 0.5:
        raise EquivalenceError(f"alpha must be above 0 and below 0.5 (each one-sided test runs at alpha; "
                               f"0.05 gives the usual 90 % interval); got {alpha!r}.")
    return a


def _check_margin(margin: Sequence[float], log: bool) -> tuple[float, float]:
    try:
        low, high = (float(m) for m in margin)
    except (TypeError, ValueError):
        raise EquivalenceError(f"The margin must be two numbers (low, high), e.g. (-0.5, 0.5), or ratios "
                               f"(0.8, 1.25) with log; got {margin!r}.") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise EquivalenceError(f"The margins must be finite numbers; got {low:g} and {high:g}.")
    if not low < high:
        raise EquivalenceError(f"The lower margin must be below the upper margin; got {low:g} and {high:g}.")
    if log:
        if low <= 0:
            raise EquivalenceError(f"With log the margins are ratios test / reference, above 0 "
                                   f"(e.g. 0.8 and 1.25); got {low:g} and {high:g}.")
        if not low < 1 < high:
            raise EquivalenceError(f"The ratio margins {low:g} to {high:g} do not contain 1 (no difference): "
                                   "give a lower margin below 1 and an upper margin above 1, e.g. 0.8 and 1.25.")
    elif not low < 0 < high:
        raise EquivalenceError(f"The margins {low:g} to {high:g} do not contain 0 (no difference): give a "
                               "negative lower margin and a positive upper margin, in the response's units "
                               "(e.g. -0.5 and 0.5); for ratios such as 0.8 and 1.25 use log=True.")
    return low, high


def _values(values: ArrayLike, label: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise EquivalenceError(f"The {label} values must be numbers.") from None
    return arr


def _check_group(arr: np.ndarray, name: str, log: bool) -> None:
    if arr.size < 2:
        raise EquivalenceError(f"'{name}' has {arr.size} value{'s' if arr.size != 1 else ''}: a t test needs "
                               "at least 2 values per group (more give a narrower interval).")
    if log and np.any(arr <= 0):
        raise EquivalenceError(f"'{name}' has values at or below 0 ({fmt_sig(float(arr.min()), 4)}): the log "
                               "scale (ratio of geometric means) needs positive values; use log=False and "
                               "margins as differences instead.")
    if not np.all(np.isfinite(arr)):
        raise EquivalenceError(f"'{name}' has values that are not finite numbers.")


# -- the test ----------------------------------------------------------------------------------------------

def tost_arrays(reference: ArrayLike, test: ArrayLike, margin: Sequence[float], *, paired: bool = False,
                log: bool = False, var_equal: bool = False, alpha: float = 0.05, response: str = "Response",
                group: str = "Group", reference_name: str = "Reference", test_name: str = "Test",
                id_name: str | None = None, notes: Sequence[str] = ()) -> EquivalenceResult:
    """TOST of ``test`` against ``reference`` on two arrays of values (paired by position with ``paired``).

    Parameters
    ----------
    reference, test : array-like
        The values of the two groups. Missing values (NaN) are left out, with a note; with ``paired`` a
        pair with a missing value is left out.
    margin : (low, high)
        The equivalence margins: differences test - reference in the response's units (low < 0 < high),
        or with ``log`` ratios test / reference (0 < low < 1 < high, e.g. 0.8 and 1.25).
    paired : bool
        Paired t tests on the differences of pairs (same donor or batch in both groups).
    log : bool
        Test the logged values; report the ratio of geometric means and its interval.
    var_equal : bool
        Pooled-variance t tests instead of Welch's (unpaired only).
    alpha : float
        Level of each one-sided test; the interval is the 1 - 2 alpha one.
    response, group, reference_name, test_name, id_name : str
        Names used in the result and its sentences.
    notes : sequence of str
        Notes to carry into the result (e.g. left-out rows).

    Returns
    -------
    EquivalenceResult
    """
    alpha = _check_alpha(alpha)
    low, high = _check_margin(margin, log)
    ref = _values(reference, reference_name)
    tst = _values(test, test_name)
    notes_out = list(notes)
    if paired:
        if ref.size != tst.size:
            raise EquivalenceError(f"Paired values must come in pairs: '{reference_name}' has {ref.size} values "
                                   f"and '{test_name}' has {tst.size}.")
        keep = ~(np.isnan(ref) | np.isnan(tst))
        if not keep.all():
            notes_out.append(f"{int((~keep).sum())} pair(s) with a missing value left out.")
        ref, tst = ref[keep], tst[keep]
    else:
        for arr_name, arr in ((reference_name, ref), (test_name, tst)):
            if np.isnan(arr).any():
                notes_out.append(f"{int(np.isnan(arr).sum())} missing value(s) of '{arr_name}' left out.")
        ref, tst = ref[~np.isnan(ref)], tst[~np.isnan(tst)]
    _check_group(ref, reference_name, log)
    _check_group(tst, test_name, log)
    x_ref = np.log(ref) if log else ref
    x_tst = np.log(tst) if log else tst
    lo_t, hi_t = (math.log(low), math.log(high)) if log else (low, high)
    if paired:
        diff = x_tst - x_ref
        if float(np.std(diff)) == 0.0:
            raise EquivalenceError(f"Every pair has the same difference {fmt_sig(float(diff[0]), 4)}: with no "
                                   "variability the t tests are undefined; check that the values are not "
                                   "copies of each other.")
        _, (t1, p1, df1), (t2, p2, _) = ttost_paired(x_tst, x_ref, lo_t, hi_t)
        ci_lo, ci_hi = DescrStatsW(diff).tconfint_mean(alpha=2 * alpha)
        est = float(np.mean(diff))
        by = f" (by {id_name})" if id_name else ""
        method = f"paired TOST{by}: two one-sided paired t tests"
        var_equal = False
    else:
        s_ref, s_tst = float(np.std(x_ref, ddof=1)), float(np.std(x_tst, ddof=1))
        if s_ref == 0.0 and s_tst == 0.0:
            raise EquivalenceError(f"'{reference_name}' and '{test_name}' each have a single repeated value: "
                                   "with no variability the t tests are undefined.")
        for arr_name, s in ((reference_name, s_ref), (test_name, s_tst)):
            if s == 0.0:
                notes_out.append(f"'{arr_name}' has no variability (all values equal): check the data.")
        usevar = "pooled" if var_equal else "unequal"
        _, (t1, p1, df1), (t2, p2, _) = ttost_ind(x_tst, x_ref, lo_t, hi_t, usevar=usevar)
        cm = CompareMeans(DescrStatsW(x_tst), DescrStatsW(x_ref))
        ci_lo, ci_hi = cm.tconfint_diff(alpha=2 * alpha, usevar=usevar)
        est = float(np.mean(x_tst) - np.mean(x_ref))
        method = ("two one-sided t tests (pooled variance)" if var_equal
                  else "Welch two one-sided t tests")
    if log:
        method += " on log scale (ratio of geometric means)"
    p1, p2 = float(p1), float(p2)
    p = max(p1, p2)
    equivalent = p < alpha
    ci_d = (float(ci_lo), float(ci_hi))
    inside = lo_t < ci_d[0] and ci_d[1] < hi_t
    if inside != equivalent:  # pragma: no cover - the duality of TOST and the 1 - 2 alpha interval
        notes_out.append("The interval and the p value disagree at the rounding level; the p value decides.")
    tr = (lambda v: float(np.exp(v))) if log else float
    mean_ref = float(np.exp(np.mean(x_ref))) if log else float(np.mean(ref))
    mean_tst = float(np.exp(np.mean(x_tst))) if log else float(np.mean(tst))
    return EquivalenceResult(
        response=response, group=group, reference=reference_name, test=test_name,
        estimate=tr(est), ci=(tr(ci_d[0]), tr(ci_d[1])), t_lower=float(t1), t_upper=float(t2), df=float(df1),
        p_lower=p1, p_upper=p2, p=p, equivalent=bool(equivalent), margin=(low, high), alpha=alpha,
        paired=paired, log=log, var_equal=var_equal, n_reference=int(ref.size), n_test=int(tst.size),
        n_pairs=int(ref.size) if paired else None, mean_reference=mean_ref, mean_test=mean_tst,
        sd_reference=float(np.std(x_ref, ddof=1)), sd_test=float(np.std(x_tst, ddof=1)), method=method,
        notes=notes_out)


def _column(data: pd.DataFrame, name: str, what: str) -> None:
    if name not in data.columns:
        raise EquivalenceError(f"There is no {what} column '{name}'.{did_you_mean(name, map(str, data.columns))} "
                               f"Columns: {quoted_list(data.columns)}.")


def _level(levels: Sequence[Any], name: str, group: str) -> Any:
    by_text = {str(v): v for v in levels}
    if name in by_text:
        return by_text[name]
    raise EquivalenceError(f"'{group}' has no level '{name}'.{did_you_mean(name, by_text)} "
                           f"Levels: {quoted_list(by_text)}.")


def tost(data: pd.DataFrame, response: str, group: str, reference: str, test: str, margin: Sequence[float], *,
         paired: bool = False, id: str | None = None, log: bool = False, var_equal: bool = False,
         alpha: float = 0.05, average_replicates: bool = True) -> EquivalenceResult:
    """TOST of the ``test`` level against the ``reference`` level of column ``group`` for ``response``.

    Paired: replicate runs of one id in a group (two seed trains of a donor at one scale) are averaged
    first (geometric mean with ``log``), with a note; ``average_replicates=False`` refuses them instead.

    Parameters
    ----------
    data : DataFrame
        One row per run (vessel, batch): the response, the group (scale, vessel family) and, for a paired
        comparison, the id that pairs runs (donor, batch).
    response, group : str
        Column names.
    reference, test : str
        Levels of ``group`` (compared as text); the estimate is test - reference (or test / reference).
    margin : (low, high)
        Differences in the response's units, or with ``log`` ratios (e.g. 0.8 and 1.25).
    paired, id : bool, str
        Pair the runs of the two levels by column ``id``: each id once in each level. Pairs with a missing
        response are left out with a note; an id found in only one level is an error.
    log, var_equal, alpha
        As :func:`tost_arrays`.

    Returns
    -------
    EquivalenceResult
    """
    if not isinstance(data, pd.DataFrame):
        raise EquivalenceError("The data must be a table (pandas DataFrame) with one row per run.")
    _column(data, response, "response")
    _column(data, group, "group")
    if reference == test:
        raise EquivalenceError(f"The reference and the test are both '{test}': name two different levels "
                               f"of '{group}'.")
    levels = list(pd.unique(data[group].dropna()))
    ref_level = _level(levels, str(reference), group)
    test_level = _level(levels, str(test), group)
    values = pd.to_numeric(data[response], errors="coerce")
    bad = data[response].notna() & values.isna()
    if bad.any():
        raise EquivalenceError(f"'{response}' has values that are not numbers "
                               f"({quoted_list(data.loc[bad, response].astype(str).unique()[:5])}): fix or blank them.")
    in_ref = data[group] == ref_level
    in_test = data[group] == test_level
    if not paired:
        if id is not None:
            raise EquivalenceError(f"An id column ('{id}') was given without paired=True: pass paired=True "
                                   "for a paired comparison, or leave id out.")
        return tost_arrays(values[in_ref].to_numpy(), values[in_test].to_numpy(), margin, log=log,
                           var_equal=var_equal, alpha=alpha, response=response, group=group,
                           reference_name=str(reference), test_name=str(test))
    if id is None:
        raise EquivalenceError("A paired comparison needs the id column that pairs the runs (e.g. id='Donor').")
    _column(data, id, "id")
    if var_equal:
        raise EquivalenceError("var_equal applies to unpaired groups only: a paired test uses the differences "
                               "within pairs; leave var_equal out.")
    pairs: dict[str, pd.Series] = {}
    averaged: list[str] = []
    for label, mask in ((str(reference), in_ref), (str(test), in_test)):
        ids = data.loc[mask, id]
        if ids.isna().any():
            raise EquivalenceError(f"'{label}' has rows without a '{id}': every run of a paired comparison "
                                   "needs its id.")
        dup = ids[ids.duplicated()].astype(str).unique()
        if len(dup) and not average_replicates:
            raise EquivalenceError(f"'{id}' {quoted_list(dup)} appear(s) more than once in '{label}': a paired "
                                   "comparison needs each id once per group (average replicates first).")
        v = pd.Series(values[mask].to_numpy(dtype=float), index=ids.astype(str).to_numpy())
        if len(dup):  # replicates of an id: their mean (geometric with log), so each id is one pair member
            if log and (v.dropna() <= 0).any():
                raise EquivalenceError(f"'{response}' has values <= 0 in '{label}': a log-scale comparison needs "
                                       "positive values.")
            counts = v.groupby(level=0, sort=False).count()
            averaged.append(f"'{label}': {', '.join(f'{i} {int(n)}' for i, n in counts.items() if n > 1)}")
            if log:
                means = pd.Series(np.log(v.to_numpy()), index=v.index).groupby(level=0, sort=False).mean()
                v = pd.Series(np.exp(means.to_numpy()), index=means.index)
            else:
                v = v.groupby(level=0, sort=False).mean()
        pairs[label] = v
    ref_s, test_s = pairs[str(reference)], pairs[str(test)]
    only_ref = sorted(set(ref_s.index) - set(test_s.index))
    only_test = sorted(set(test_s.index) - set(ref_s.index))
    if only_ref or only_test:
        parts = []
        if only_ref:
            parts.append(f"{quoted_list(only_ref)} only in '{reference}'")
        if only_test:
            parts.append(f"{quoted_list(only_test)} only in '{test}'")
        raise EquivalenceError(f"Some '{id}' values do not pair: {'; '.join(parts)}. Each id needs a run in "
                               "both groups: remove the unmatched runs or correct the ids.")
    order = list(ref_s.index)
    ref_v, test_v = ref_s[order].to_numpy(), test_s[order].to_numpy()
    missing = [i for i, a, b in zip(order, ref_v, test_v) if np.isnan(a) or np.isnan(b)]
    notes = []
    if averaged:
        notes.append(f"Replicate runs of one {id} were averaged ({'geometric' if log else 'arithmetic'} mean) so "
                     f"that each {id} is one pair: {'; '.join(averaged)} runs.")
    if missing:
        notes.append(f"{len(missing)} pair(s) with a missing {response} left out: "
                     f"{id} {quoted_list(missing)}.")
        keep = np.array([i not in missing for i in order])
        ref_v, test_v = ref_v[keep], test_v[keep]
    return tost_arrays(ref_v, test_v, margin, paired=True, log=log, alpha=alpha, id_name=id, notes=notes,
                       response=response, group=group, reference_name=str(reference), test_name=str(test))


# -- power and sample size ---------------------------------------------------------------------------------

def tost_power_se(true_difference: float, se: float, df: float, margin: Sequence[float],
                  alpha: float = 0.05) -> float:
    """Exact power of TOST for an estimate with standard error ``se`` (at sigma) and ``df`` degrees of freedom.

    Power = P(both one-sided tests reject) = E over the sample SD of [Phi((high - d)/se - t x/sqrt(df)) -
    Phi((low - d)/se + t x/sqrt(df))] for x = sqrt(df) s/sigma up to x = (high - low) sqrt(df) / (2 t se),
    where x follows the chi distribution with ``df`` degrees of freedom and t = t_{1 - alpha, df}. This is
    Owen's Q representation used by PowerTOST (Phillips 1990), integrated with scipy's ``quad``. Works for
    any design once its ``se`` factor and ``df`` are known (differences on the analysis scale: logs for
    ratios).
    """
    low, high = (float(m) for m in margin)
    if se <= 0 or df <= 0:
        raise EquivalenceError(f"The standard error and degrees of freedom must be above 0; got {se:g} and {df:g}.")
    tcrit = float(stats.t.ppf(1.0 - alpha, df))
    d = float(true_difference)
    x_max = (high - low) * math.sqrt(df) / (2.0 * tcrit * se)
    if x_max <= 0:
        return 0.0
    a, b = (high - d) / se, (low - d) / se
    k = tcrit / math.sqrt(df)

    log_norm = (df / 2.0 - 1.0) * math.log(2.0) + math.lgamma(df / 2.0)

    def integrand(x: float) -> float:  # Phi difference times the chi density, with plain math (fast in quad)
        if x <= 0.0:
            return 0.0
        inner = float(special.ndtr(a - k * x) - special.ndtr(b + k * x))
        return inner * math.exp((df - 1.0) * math.log(x) - x * x / 2.0 - log_norm)

    centre = math.sqrt(max(df - 1.0, 0.0))
    points = [p for p in (centre, centre - 4, centre + 4) if 0 < p < x_max]
    value, _ = integrate.quad(integrand, 0.0, x_max, points=points or None, limit=200,
                              epsabs=1e-12, epsrel=1e-10)
    return float(min(max(value, 0.0), 1.0))


def _design(n: float | Sequence[float], paired: bool) -> tuple[float, float]:
    """(se factor at sd = 1, df) for n per group (or (n_reference, n_test)) or n pairs."""
    if paired:
        if not isinstance(n, int | float):
            raise EquivalenceError("For a paired design n is the number of pairs (one number).")
        m = float(n)
        if m < 2:
            raise EquivalenceError(f"A paired design needs at least 2 pairs; got {m:g}.")
        return 1.0 / math.sqrt(m), m - 1.0
    if isinstance(n, int | float):
        n1 = n2 = float(n)
    else:
        n1, n2 = (float(v) for v in n)
    if min(n1, n2) < 2:
        raise EquivalenceError(f"Each group needs at least 2 runs; got {min(n1, n2):g}.")
    return math.sqrt(1.0 / n1 + 1.0 / n2), n1 + n2 - 2.0


def _planning_inputs(sd: float, margin: Sequence[float], true_difference: float | None, alpha: float,
                     log: bool) -> tuple[float, tuple[float, float], float]:
    alpha = _check_alpha(alpha)
    low, high = _check_margin(margin, log)
    sd = float(sd)
    if not (math.isfinite(sd) and sd > 0):
        raise EquivalenceError(f"The standard deviation must be above 0 (with log: the SD of the logged "
                               f"values, about the CV for CVs up to 0.3); got {sd!r}.")
    d = (1.0 if log else 0.0) if true_difference is None else float(true_difference)
    if log:
        if d <= 0:
            raise EquivalenceError(f"With log the true difference is a ratio test / reference, above 0; got {d:g}.")
        d, low, high = math.log(d), math.log(low), math.log(high)
    if not low < d < high:
        shown = math.exp(d) if log else d
        raise EquivalenceError(f"The assumed true {'ratio' if log else 'difference'} {fmt_sig(shown, 4)} is not "
                               f"inside the margins: equivalence cannot be shown however many runs; assume a "
                               "value between the margins.")
    return sd, (low, high), d


def tost_power(n: float | Sequence[float], sd: float, margin: Sequence[float], true_difference: float | None = None,
               alpha: float = 0.05, paired: bool = False, *, log: bool = False) -> float:
    """Exact power of TOST with ``n`` runs per group (or ``(n_reference, n_test)``), or ``n`` pairs.

    ``sd`` is the SD of single values (two groups, assumed equal; pooled-variance test, df = n1 + n2 - 2)
    or of the within-pair differences (paired, df = n - 1). With ``log`` ``sd`` is on the log scale,
    ``margin`` and ``true_difference`` are ratios (default 1). ``n`` may be fractional. See
    :func:`tost_power_se`.
    """
    sd, (low, high), d = _planning_inputs(sd, margin, true_difference, alpha, log)
    factor, df = _design(n, paired)
    return tost_power_se(d, sd * factor, df, (low, high), alpha)


def equivalence_sample_size(sd: float, margin: Sequence[float], true_difference: float | None = None,
                            alpha: float = 0.05, power: float = 0.8, paired: bool = False, *,
                            log: bool = False) -> dict[str, Any]:
    """Runs per group (or pairs) for TOST to reach ``power``: exact on a continuous n, then rounded up.

    Returns
    -------
    dict
        ``n_per_group`` (the real n at which the power equals the target, solved with ``brentq``; the
        number of pairs when ``paired``), ``n_rounded`` (its ceiling), ``power_at_n_rounded``, and the
        inputs ``sd``, ``margin``, ``true_difference`` (as given; with ``log`` ratios, default 1; without,
        default 0), ``alpha``, ``power``, ``paired``, ``log``, and ``method``.
    """
    target = float(power)
    if not 0.0 < target < 1.0:
        raise EquivalenceError(f"The target power must be above 0 and below 1 (e.g. 0.8); got {power!r}.")
    sd_v, (low, high), d = _planning_inputs(sd, margin, true_difference, alpha, log)
    alpha = float(alpha)

    def pw(n: float) -> float:
        factor, df = _design(n, paired)
        return tost_power_se(d, sd_v * factor, df, (low, high), alpha)

    n_lo = 2.0
    notes = []
    if pw(n_lo) >= target:
        n_exact = n_lo
        notes.append("The target power is reached with the smallest design (2 per group or 2 pairs).")
    else:
        n_hi = 4.0
        while pw(n_hi) < target:
            n_hi *= 2.0
            if n_hi > 1e7:
                raise EquivalenceError("More than ten million runs would be needed: widen the margins, reduce "
                                       "the variability or assume a true difference nearer no difference.")
        n_exact = float(optimize.brentq(lambda n: pw(n) - target, n_lo, n_hi, xtol=1e-10, rtol=1e-12))
    n_round = int(math.ceil(n_exact - 1e-9))
    n_round = max(n_round, 2)
    design = "pairs (paired t tests)" if paired else "runs per group (two groups, pooled variance)"
    scale = " on log scale (ratio of geometric means)" if log else ""
    return {
        "n_per_group": n_exact,
        "n_rounded": n_round,
        "power_at_n_rounded": pw(float(n_round)),
        "sd": sd_v,
        "margin": [float(m) for m in margin],
        "true_difference": (1.0 if log else 0.0) if true_difference is None else float(true_difference),
        "alpha": alpha,
        "power": target,
        "paired": bool(paired),
        "log": bool(log),
        "method": f"exact power of two one-sided t tests (Owen's Q integral){scale}, {design}",
        "notes": notes,
    }


# -- formatting --------------------------------------------------------------------------------------------

def _fmt_num(x: float) -> str:
    """Two decimals for numbers of ordinary size, three significant digits otherwise."""
    if x != 0 and (abs(x) < 0.01 or abs(x) >= 1e5):
        return fmt_sig(x, 3)
    return f"{x:.2f}"


def _fmt_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}"
