"""Every CQA at once, JSON-ready: what ``python -m doe analyze`` prints (:func:`analyze`) and its
one-line status per CQA (:func:`analysis_status`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from doe._format import fmt_sig
from doe.errors import ModelError
from doe.fit._selection import ModelChoice, fit_choice, fit_summary
from doe.fit._transforms import power_transform
from doe.jsonable import json_ready
from doe.study import Study

__all__ = ["analysis_status", "analyze"]


def analyze(study: Study, runs: pd.DataFrame, responses: list[str] | None = None, *,
            model: Any = "quadratic", transform: Any = "none", reduce: bool = False,
            reduce_method: str = "p", anova_type: int | str = 2, block_col: str | None = None,
            alpha: float = 0.05, ddf: str = "kr") -> dict[str, Any]:
    """Fit every CQA that has at least one result; JSON-ready (used by ``python -m doe analyze``).

    ``model`` and ``transform`` may be dicts keyed by response name. Returns
    ``{"study", "responses": {name: fm.to_json() + {"fit_summary", "reduction"}}}``;
    a response whose model cannot be fitted gets ``{"error": message}`` instead,
    so one bad CQA does not hide the others. A CQA whose runs carry random effects (whole
    plots, donors, lots) is a mixed model fitted by REML: its ``method`` is "REML" and it has
    ``variance_components``, ``df_method`` (``ddf``: "kr" or "satterthwaite"), ``icc``, Type III
    ``anova`` rows with ``df_den`` and ``coefficients`` with ``df``; the least-squares analysis
    of the same runs, as if completely randomised, is kept under ``fully_randomised``.
    """
    if responses is None:
        names = [r for r in study.response_names if r in runs.columns
                 and pd.to_numeric(runs[r], errors="coerce").notna().any()]
    else:
        names = [responses] if isinstance(responses, str) else list(responses)
        for r in names:
            study.response(r)
    out: dict[str, Any] = {"study": study.name, "responses": {}}
    for name in names:
        spec = model.get(name, "quadratic") if isinstance(model, dict) else model
        tr = transform.get(name, "none") if isinstance(transform, dict) else transform
        choice = ModelChoice(model=spec, transform=tr, reduce=reduce, reduce_method=reduce_method,
                             anova_type=anova_type, ddf=ddf)
        result = fit_choice(study, runs, name, choice, block_col=block_col, alpha=alpha)
        fm, steps = result.model, result.steps
        if result.error or fm is None:
            out["responses"][name] = {"error": result.error}
            continue
        entry = fm.to_json()
        try:
            used = fm.transform if fm.boxcox_lambda is None else power_transform(fm.boxcox_lambda).spec
            entry["fit_summary"] = json_ready(fit_summary(
                study, runs, name, transform=used, block_col=block_col, alpha=alpha).to_dict(orient="records"))
        except ModelError as exc:
            entry["fit_summary"] = None
            entry["warnings"].append(f"Fit summary not available: {exc}")
        entry["reduction"] = json_ready(steps)
        entry["anova_sequential"] = json_ready(fm.grouped_anova().to_dict(orient="records"))
        entry["steepest_ascent"] = None
        if all(t.degree == 1 for t in fm.model_terms):
            try:
                entry["steepest_ascent"] = {
                    **fm.steepest_direction(),
                    "path": json_ready(fm.steepest_ascent().to_dict(orient="records")),
                }
            except ModelError:
                pass
        out["responses"][name] = entry
    return out


def analysis_status(result: Mapping[str, Any]) -> list[str]:
    """One line per CQA of :func:`analyze`'s result: fitted (model size, n, R^2) or why not.

    The lines ``python -m doe analyze`` prints; a result with no CQA says so.
    """
    lines = []
    for name, r in (result.get("responses") or {}).items():
        if r.get("error"):
            lines.append(f"{name}: not fitted - {r['error']}")
            continue
        k = len([t for t in r.get("terms") or [] if t != "Intercept"])
        stats_text = ", ".join(f"{label} = {fmt_sig(r[key], 4)}" for key, label in
                               (("r2", "R²"), ("adj_r2", "adjusted R²"), ("pred_r2", "predicted R²"))
                               if r.get(key) is not None)
        if r.get("method") == "REML":
            components = ", ".join(f"{k} {fmt_sig(v, 3)}" for k, v in (r.get("variance_components") or {}).items())
            stats_text = (f"mixed model by REML, {r.get('df_method')} df; variance components {components}"
                          + (f"; least squares as if randomised: {stats_text}" if stats_text else ""))
        transform = "" if r.get("transform") in (None, "none") else f", {r.get('transform_label')}"
        lines.append(f"{name}: fitted (intercept + {k} term{'s' if k != 1 else ''}{transform}, n = {r.get('n')}"
                     + (f", {stats_text}" if stats_text else "") + ")")
    if not lines:
        lines.append("No CQA has results to analyse: enter results in the run sheet's CQA columns.")
    return lines

