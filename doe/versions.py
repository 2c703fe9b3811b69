"""Analysis versions: re-run the saved analysis on the newest data and compare two versions.

:func:`rerun_analysis` appends a batch of runs (a new data version), refits
every CQA with the model choices of the latest saved analysis, stores the
result as a new analysis version (choices + data version + a JSON summary of
the fits and the design space) and compares it with the previous version.
:func:`compare_analyses` compares any two stored summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from doe._format import json_number, json_value
from doe.analysis import Analysis, CQAFit, ModelChoice, default_choice, fit_all
from doe.decision import DEFAULT_THRESHOLD, latest_decision
from doe.errors import DoeError, ModelError

if TYPE_CHECKING:
    from doe.store import Store, User
    from doe.study import Study

ALPHA = 0.05  # significance level of "became / stopped being significant"
STATS = ("r2", "adj_r2", "pred_r2", "rmse")
COEF_FIELDS = ("estimate", "std_error", "ci_low", "ci_high", "p")
GRID_N = 25  # points per axis of the design-space map whose fraction is stored


# -- summaries ----------------------------------------------------------------------------
def analysis_summary(fits: Mapping[str, CQAFit]) -> dict[str, Any]:
    """JSON-ready summary per CQA: model, transform, n, fit statistics and coefficients.

    A CQA whose fit failed is ``{"error": message, ...}`` with no statistics.
    """
    out: dict[str, Any] = {}
    for name, fit in fits.items():
        fm = fit.model
        entry: dict[str, Any] = {"choice": fit.choice.to_dict() if fit.choice else None, "error": fit.error}
        if fm is None:
            out[name] = entry
            continue
        coefs = []
        for row in _coefficient_rows(fm):
            coefs.append({"term": str(row["term"]), **{k: json_number(row.get(k)) for k in COEF_FIELDS}})
        entry.update({
            "model": fm.model_spec, "transform": fm.transform, "transform_label": fm.transform_label,
            "n": int(fm.n), "p": int(fm.p), "df_resid": int(fm.df_resid),
            **{k: json_number(getattr(fm, k)) for k in STATS},
            "coefficients": coefs, "method": fm.method,
        })
        if fm.mixed is not None:
            entry["variance_components"] = {k: json_number(v) for k, v in fm.mixed.components.items()}
        out[name] = entry
    return out


def _coefficient_rows(fm: Any) -> list[dict[str, Any]]:
    """The coefficients a version keeps: the mixed model's (GLS, its own df, 95 % intervals) for a CQA with random
    effects, else the least-squares table."""
    if fm.mixed is None:
        rows: list[dict[str, Any]] = fm.coefficients.to_dict(orient="records")
        return rows
    from scipy import stats

    out = []
    for r in fm.mixed.coefficients().to_dict(orient="records"):
        half = float(stats.t.ppf(0.975, r["df"])) * r["se"]
        out.append({"term": r["name"], "estimate": r["estimate"], "std_error": r["se"], "ci_low": r["estimate"] - half,
                    "ci_high": r["estimate"] + half, "p": r["p"]})
    return out


def _design_space(store: Store, study_name: str, study: Study, fits: Analysis, *, draws: int | None,
                  seed: int) -> dict[str, Any]:
    """Design-space figures of the fits: set-point probability and the map's fraction inside."""
    from dataclasses import replace

    from doe.space import DesignSpace, probability

    models = fits.models
    out: dict[str, Any] = {"threshold": DEFAULT_THRESHOLD, "set_point": None, "set_point_source": None,
                           "probability_at_set_point": None, "fraction_inside": None, "grid": None,
                           "draws": draws, "seed": seed, "warnings": [], "error": None}
    try:
        ds = DesignSpace.of(study, models, seed=seed, draws=draws)
    except ModelError as exc:
        out["error"] = str(exc)
        return out
    pm = ds.pm
    out["warnings"] = list(pm.warnings)
    decision = latest_decision(store, study_name)
    set_point: dict[str, Any] | None = None
    if decision is not None:  # its threshold and assurance (set-point variation is not applied to re-runs)
        ds = replace(ds, threshold=decision.threshold, assurance=decision.assurance,
                     assurance_kind=decision.assurance_kind)
        out["threshold"] = decision.threshold
        set_point, out["set_point_source"] = dict(decision.set_point), f"decision {decision.id}"
    frame = None
    if set_point is not None:
        try:
            frame = pd.DataFrame([{f: set_point[f] for f in study.factor_names}])
            probability(pm, frame, draws=draws, seed=seed)
        except (KeyError, ModelError) as exc:
            out["warnings"].append(f"The saved decision's set point cannot be used ({exc}); "
                                   "the robust set point is used instead.")
            frame = None
    if frame is None or set_point is None:  # set_point is None only when frame is
        rsp = ds.robust_set_point()
        set_point, out["set_point_source"] = dict(rsp["settings"]), "robust (maximum probability)"
        frame = pd.DataFrame([{f: set_point[f] for f in study.factor_names}])
    res = probability(pm, frame, draws=draws, seed=seed)
    out["set_point"] = {k: json_value(v) for k, v in set_point.items()}
    out["probability_at_set_point"] = json_number(res.joint[0])
    out["per_cqa_at_set_point"] = {k: json_number(v[0]) for k, v in res.per_cqa.items()}
    out["draws"] = int(res.draws)
    if ds.assurance is not None:
        out.update(assurance=ds.assurance, assurance_kind=ds.assurance_kind,
                   probability_lower_bound_at_set_point=json_number(ds.lower_bound(set_point)))
    if len(pm.numeric) >= 2:
        x, y = pm.numeric[:2]
        fixed = {k: v for k, v in set_point.items() if k not in (x, y)}
        g = ds.grid(x, y, fixed, n=GRID_N)
        out["fraction_inside"] = json_number(g.fraction_inside)
        out["grid"] = {"x": x, "y": y, "fixed": {k: json_value(v) for k, v in g.fixed.items()}, "n": GRID_N}
    return out


# -- re-run ---------------------------------------------------------------------------------
def model_choices(store: Store, study_name: str, study: Study, choices: Mapping[str, Any] | None) -> dict[str, ModelChoice]:
    """Given choices, else those of the latest analysis, else the default, for every CQA."""
    source: Mapping[str, Any] = choices or {}
    if not source:
        previous = store.analyses(study_name)
        if len(previous):
            source = previous.iloc[-1]["choices"] or {}
    out = {}
    for r in study.responses:
        c = source.get(r.name)
        out[r.name] = (c if isinstance(c, ModelChoice) else ModelChoice.from_dict(c)) if c else default_choice()
    return out


def rerun_analysis(store: Store, study_name: str, user: User | str, *, new_runs: pd.DataFrame | None = None,
                   reason: str | None = None, choices: Mapping[str, Any] | None = None,
                   draws: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Append ``new_runs`` (if any), refit every CQA and store a new analysis version.

    Model choices: ``choices`` if given, else those saved with the latest
    analysis, else :func:`~doe.analysis.default_choice`. The design space is
    evaluated at the latest saved decision's set point (else the robust set
    point). Returns ``study``, ``data_version``, ``analysis_version``,
    ``responses`` (per-CQA summary), ``design_space`` and ``comparison``
    (with the previous analysis version, or None for the first).
    """
    study = store.load_study(study_name)
    if new_runs is not None and len(new_runs):
        store.append_runs(study_name, new_runs, user, reason=reason)
    versions = store.data_versions(study_name)
    if not len(versions):
        raise DoeError(f"Study '{study_name}' has no runs stored yet: add runs before re-running the "
                       "analysis.")
    dv = int(versions["version"].iloc[-1])
    runs = store.runs(study_name, dv)
    chosen = model_choices(store, study_name, study, choices)
    fits = fit_all(study, runs, chosen, default=default_choice())
    if not fits:
        raise DoeError(f"Study '{study_name}' has no CQA results to analyse in data version {dv}.")
    responses = analysis_summary(fits)
    space = _design_space(store, study_name, study, fits, draws=draws, seed=seed)
    summary = {"responses": responses, "design_space": space, "data_version": dv, "n_runs": int(len(runs))}
    previous = store.analyses(study_name)
    old = previous.iloc[-1] if len(previous) else None
    version = store.save_analysis(study_name, {n: f.choice for n, f in fits.items()}, summary, user,
                                  data_version=dv)
    comparison = None
    if old is not None:
        comparison = compare_analyses(old["summary"], summary)
        comparison["old_version"], comparison["new_version"] = int(old["version"]), version
        comparison["old_data_version"], comparison["new_data_version"] = int(old["data_version"]), dv
    return {"study": study_name, "data_version": dv, "analysis_version": version, "responses": responses,
            "design_space": space, "comparison": comparison}


# -- comparison -------------------------------------------------------------------------------
def _before_after(old: Any, new: Any) -> dict[str, Any]:
    o, n = json_number(old), json_number(new)
    return {"old": o, "new": n, "change": None if o is None or n is None else n - o}


def _significance(old_p: float | None, new_p: float | None) -> str:
    was, now = old_p is not None and old_p < ALPHA, new_p is not None and new_p < ALPHA
    if now and not was:
        return "became significant"
    if was and not now:
        return "stopped being significant"
    return "significant" if now else "not significant"


def _compare_cqa(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    old, new = old or {}, new or {}
    status = ("both" if old.get("coefficients") is not None and new.get("coefficients") is not None
              else "new only" if new.get("coefficients") is not None
              else "old only" if old.get("coefficients") is not None else "neither")
    oc = {c["term"]: c for c in old.get("coefficients") or []}
    nc = {c["term"]: c for c in new.get("coefficients") or []}
    terms = list(oc) + [t for t in nc if t not in oc]
    rows = []
    for t in terms:
        o, n = oc.get(t, {}), nc.get(t, {})
        row: dict[str, Any] = {"term": t, "in_old": t in oc, "in_new": t in nc}
        for k in COEF_FIELDS:
            row[f"old_{k}"], row[f"new_{k}"] = json_number(o.get(k)), json_number(n.get(k))
        row["change"] = _before_after(o.get("estimate"), n.get("estimate"))["change"]
        row["significance"] = _significance(row["old_p"], row["new_p"])
        rows.append(row)
    return {
        "status": status,
        "model": {"old": old.get("model"), "new": new.get("model")},
        "transform": {"old": old.get("transform"), "new": new.get("transform")},
        "n": {"old": old.get("n"), "new": new.get("n")},
        "stats": {k: _before_after(old.get(k), new.get(k)) for k in STATS},
        "method": {"old": old.get("method"), "new": new.get("method")},
        "variance_components": {k: _before_after((old.get("variance_components") or {}).get(k),
                                                 (new.get("variance_components") or {}).get(k))
                                for k in dict.fromkeys([*(old.get("variance_components") or {}),
                                                        *(new.get("variance_components") or {})])},
        "coefficients": rows,
        "became_significant": [r["term"] for r in rows if r["significance"] == "became significant"],
        "stopped_being_significant": [r["term"] for r in rows
                                      if r["significance"] == "stopped being significant"],
        "error": {"old": old.get("error"), "new": new.get("error")},
    }


def compare_analyses(old_summary: Mapping[str, Any], new_summary: Mapping[str, Any]) -> dict[str, Any]:
    """Compare two analysis summaries (as stored by :func:`rerun_analysis`).

    Per CQA: coefficients side by side (estimates, CIs, p) with ``change`` =
    new - old, R^2 / adjusted R^2 / predicted R^2 / RMSE before and after, and
    the terms that became or stopped being significant (p < 0.05). Design
    space: fraction of the map inside and the set point's probability before
    and after.
    """
    old_r = old_summary.get("responses") or {}
    new_r = new_summary.get("responses") or {}
    names = list(old_r) + [n for n in new_r if n not in old_r]
    od, nd = old_summary.get("design_space") or {}, new_summary.get("design_space") or {}
    return {
        "responses": {n: _compare_cqa(old_r.get(n), new_r.get(n)) for n in names},
        "design_space": {
            "fraction_inside": _before_after(od.get("fraction_inside"), nd.get("fraction_inside")),
            "probability_at_set_point": _before_after(od.get("probability_at_set_point"),
                                                      nd.get("probability_at_set_point")),
            "set_point": {"old": od.get("set_point"), "new": nd.get("set_point")},
            "set_point_source": {"old": od.get("set_point_source"), "new": nd.get("set_point_source")},
            "threshold": {"old": od.get("threshold"), "new": nd.get("threshold")},
        },
        "data_version": {"old": old_summary.get("data_version"), "new": new_summary.get("data_version")},
    }


def comparison_frame(comparison: Mapping[str, Any]) -> pd.DataFrame:
    """The coefficient comparison as one table: a row per CQA and term."""
    cols = ["response", "term", "old_estimate", "new_estimate", "change", "old_ci_low", "old_ci_high",
            "new_ci_low", "new_ci_high", "old_p", "new_p", "significance", "in_old", "in_new"]
    rows = [{"response": name, **{k: r[k] for k in cols[1:]}}
            for name, cqa in (comparison.get("responses") or {}).items() for r in cqa["coefficients"]]
    return pd.DataFrame(rows, columns=cols)


def stats_frame(comparison: Mapping[str, Any]) -> pd.DataFrame:
    """Fit statistics before vs after: a row per CQA and statistic (a mixed model's variance components too,
    as "<component> variance")."""
    rows = [{"response": name, "statistic": k, **v}
            for name, cqa in (comparison.get("responses") or {}).items()
            for k, v in [*cqa["stats"].items(),
                         *((f"{c} variance", bv) for c, bv in (cqa.get("variance_components") or {}).items())]]
    return pd.DataFrame(rows, columns=["response", "statistic", "old", "new", "change"])


def significance_frame(comparison: Mapping[str, Any]) -> pd.DataFrame:
    """Only the terms that became or stopped being significant (p < 0.05), with both p-values."""
    frame = comparison_frame(comparison)
    moved = frame["significance"].isin(["became significant", "stopped being significant"])
    return frame.loc[moved, ["response", "term", "old_p", "new_p", "significance"]].reset_index(drop=True)
