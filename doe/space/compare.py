"""The design space before vs after: one map comparing two stored analysis versions.

:func:`space_before_after` rebuilds the CQA models of two analysis versions
from what the store holds (the data version and the model choices saved with
each analysis, and the study version in force when it was made), then maps
both design spaces over the *same* axes, other-factor settings, threshold,
draws and seed, so the two maps differ only because the models differ. With
the settings an analysis was stored with it reproduces that analysis's stored
``fraction_inside`` and ``probability_at_set_point`` exactly.

:func:`doe.plots.compare.before_after_figure` draws the new probability map with
both design space outlines; :func:`fraction_table` puts the numbers side by side;
:func:`comparison_report` adds the coefficient and fit-statistic comparison of
:func:`doe.versions.compare_analyses` (the JSON of ``python -m doe compare``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from doe._format import json_number as _num
from doe._format import json_value as _plain
from doe.analysis import Analysis, CQAFit, default_choice, fit_all
from doe.decision import DEFAULT_THRESHOLD
from doe.errors import DoeError, ModelError
from doe.model import actual_frame
from doe.region import sample_region
from doe.space import PredictiveModel, SpaceGrid, build_predictive, probability, robust_set_point, space_grid
from doe.study import Study
from doe.versions import compare_analyses, model_choices

if TYPE_CHECKING:
    from doe.store import Store

__all__ = ["RebuiltAnalysis", "SpaceComparison", "comparison_report",
           "fraction_table", "rebuild_analysis", "space_before_after", "volume_fraction"]

#: Points of the whole factor region sampled for :func:`volume_fraction`.
VOLUME_POINTS = 2000


# -- rebuilding one analysis version ---------------------------------------------------------------
@dataclass
class RebuiltAnalysis:
    """One stored analysis version refitted: its study, fits, predictive model and stored summary."""

    version: int
    data_version: int
    study: Study
    study_version: int | None
    fits: Analysis
    summary: dict[str, Any]
    pm: PredictiveModel | None = None
    warnings: list[str] = field(default_factory=list)


def _analysis_row(store: Store, study_name: str, version: int) -> pd.Series:
    """The stored analysis ``version``, or a DoeError naming the versions there are."""
    rows = store.analyses(study_name)
    if not len(rows):
        raise DoeError(f"Study '{study_name}' has no saved analysis yet: run "
                       "'python -m doe rerun --db URL --study NAME --json OUT.json' (or re-run the "
                       "analysis in the app) to make version 1.")
    match = rows[rows["version"] == int(version)]
    if not len(match):
        have = ", ".join(str(int(v)) for v in rows["version"])
        raise DoeError(f"Study '{study_name}' has no analysis version {version}; the versions available "
                       f"are {have}.")
    return match.iloc[0]


def _study_at(store: Store, study_name: str, created_at: str) -> tuple[Study, int | None, str | None]:
    """The study version saved last before the analysis (timestamps are ISO UTC text), else the latest."""
    versions = store.study_versions(study_name)
    before = versions[versions["saved_at"].astype(str) <= str(created_at)] if len(versions) else versions
    if len(before):
        v = int(before["version"].iloc[-1])
        return store.load_study(study_name, v), v, None
    latest = int(versions["version"].iloc[-1]) if len(versions) else None
    note = (f"The study version in force when this analysis was made cannot be recovered; the latest "
            f"study version ({latest}) is used.")
    return store.load_study(study_name), latest, note


def _model_changes(version: int, summary: Mapping[str, Any], fits: Mapping[str, CQAFit]) -> list[str]:
    """Warnings where a refitted CQA model differs from the one stored with the analysis."""
    out = []
    for name, stored in (summary.get("responses") or {}).items():
        fit = fits.get(name)
        now = fit.model.model_spec if fit is not None and fit.model is not None else None
        if stored.get("model") != now:
            out.append(f"Version {version}: {name} refits as {now or 'no model'} but was stored as "
                       f"{stored.get('model') or 'no model'}; its design space is not the one stored.")
    return out


def rebuild_analysis(store: Store, study_name: str, version: int) -> RebuiltAnalysis:
    """Refit every CQA of analysis ``version`` on its data version with its saved model choices.

    The study is the version saved last before the analysis (else the latest,
    with a warning). Raises DoeError when the version does not exist or has no
    saved model choices.
    """
    row = _analysis_row(store, study_name, version)
    study, sv, note = _study_at(store, study_name, row["created_at"])
    if not row["choices"]:
        raise DoeError(f"Analysis version {version} of '{study_name}' has no saved model choices, so its "
                       "models cannot be rebuilt; re-run the analysis to store a version that has them.")
    runs = store.runs(study_name, int(row["data_version"]))
    chosen = model_choices(store, study_name, study, row["choices"])
    fits = fit_all(study, runs, chosen, default=default_choice())
    summary = dict(row["summary"] or {})
    warnings = ([note] if note else []) + _model_changes(int(version), summary, fits)
    return RebuiltAnalysis(int(version), int(row["data_version"]), study, sv, fits, summary, warnings=warnings)


def _predictive(rebuilt: RebuiltAnalysis, study_name: str, draws: int | None, seed: int) -> PredictiveModel:
    """The posterior predictive of a rebuilt analysis, or a DoeError saying why there is none."""
    models = rebuilt.fits.models
    try:
        pm = build_predictive(rebuilt.study, models, seed=seed, draws=draws)
    except ModelError as exc:
        failed = "; ".join(f"{n}: {f.error}" for n, f in rebuilt.fits.items() if f.error)
        raise DoeError(
            f"The design space of analysis version {rebuilt.version} of '{study_name}' cannot be rebuilt "
            f"({exc}){' Fits: ' + failed if failed else ''}. Compare a version whose models were fitted "
            "(for example one made after more runs), or re-run the analysis with smaller models.") from None
    rebuilt.pm = pm
    return pm


# -- the comparison ------------------------------------------------------------------------------
@dataclass
class SpaceComparison:
    """Two design-space maps over the same axes, settings, threshold, draws and seed.

    ``old_grid`` / ``new_grid``: the maps; ``fraction_*``: share of the map's
    feasible points inside the design space; ``probability_*``: joint
    probability at ``set_point``; ``per_cqa_*``: each CQA's probability there;
    ``volume_*``: share of the whole factor region inside (None unless asked).
    """

    study_name: str
    study: Study
    old_version: int
    new_version: int
    old_data_version: int
    new_data_version: int
    old_study_version: int | None
    new_study_version: int | None
    x: str
    y: str
    fixed: dict[str, Any]
    set_point: dict[str, Any]
    set_point_source: str
    threshold: float
    draws: int
    seed: int
    n: int
    old_grid: SpaceGrid
    new_grid: SpaceGrid
    probability_old: float
    probability_new: float
    per_cqa_old: Mapping[str, float | None]
    per_cqa_new: Mapping[str, float | None]
    volume_old: float | None = None
    volume_new: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction_old(self) -> float:
        """Share of the old map's feasible points inside the old design space."""
        return self.old_grid.fraction_inside

    @property
    def fraction_new(self) -> float:
        """Share of the new map's feasible points inside the new design space."""
        return self.new_grid.fraction_inside

    @property
    def fraction_change(self) -> float:
        """New minus old share inside."""
        return self.fraction_new - self.fraction_old

    @property
    def probability_change(self) -> float:
        """New minus old probability at the set point."""
        return self.probability_new - self.probability_old

    def to_json(self) -> dict[str, Any]:
        """The ``design_space`` block of ``python -m doe compare``: settings, old, new and change."""
        names = list(self.per_cqa_old) + [k for k in self.per_cqa_new if k not in self.per_cqa_old]
        side: dict[str, dict[str, Any]] = {}
        for which in ("old", "new"):
            per = getattr(self, f"per_cqa_{which}")
            side[which] = {"version": getattr(self, f"{which}_version"),
                           "data_version": getattr(self, f"{which}_data_version"),
                           "study_version": getattr(self, f"{which}_study_version"),
                           "fraction_inside": _num(getattr(self, f"fraction_{which}")),
                           "probability_at_set_point": _num(getattr(self, f"probability_{which}")),
                           "per_cqa": {k: _num(per.get(k)) for k in names},
                           "volume_fraction": _num(getattr(self, f"volume_{which}"))}
        change: dict[str, Any] = {k: _diff(side["old"][k], side["new"][k])
                  for k in ("fraction_inside", "probability_at_set_point", "volume_fraction")}
        change["per_cqa"] = {k: _diff(side["old"]["per_cqa"][k], side["new"]["per_cqa"][k]) for k in names}
        return {"x": self.x, "y": self.y, "fixed": {k: _plain(v) for k, v in self.fixed.items()},
                "set_point": {k: _plain(v) for k, v in self.set_point.items()},
                "set_point_source": self.set_point_source, "threshold": self.threshold, "draws": self.draws,
                "seed": self.seed, "n": self.n, "old": side["old"], "new": side["new"], "change": change,
                "warnings": list(self.warnings)}


def _diff(old: float | None, new: float | None) -> float | None:
    return None if old is None or new is None else new - old


def _axes(new: RebuiltAnalysis, pm: PredictiveModel, x: str | None, y: str | None) -> tuple[str, str]:
    """Given axes, else those of the new analysis's stored map, else the first two numeric factors."""
    grid = (new.summary.get("design_space") or {}).get("grid") or {}
    if x is None and y is None and grid.get("x") and grid.get("y"):
        return grid["x"], grid["y"]
    numeric = [f for f in pm.numeric if f not in (x, y)]
    x = x or (numeric.pop(0) if numeric else None)
    y = y or (numeric.pop(0) if numeric else None)
    if x is None or y is None:
        raise DoeError("A design-space map needs two numeric factors; this study has fewer.")
    return x, y


def _set_point(new: RebuiltAnalysis, pm: PredictiveModel, fixed: Mapping[str, Any] | None, threshold: float,
               draws: int | None, seed: int) -> tuple[dict[str, Any], str]:
    """The new analysis's stored set point (``fixed`` overriding), else the robust set point."""
    stored = (new.summary.get("design_space") or {}).get("set_point")
    if stored:
        stored = {**{f: stored[f] for f in pm.study.factor_names if f in stored}, **stored}
        source = f"set point stored with version {new.version}"
        return {**stored, **dict(fixed or {})}, source + (" (with the given fixed settings)" if fixed else "")
    rsp = robust_set_point(pm, fixed=fixed or None, threshold=threshold, draws=draws, seed=seed)
    return dict(rsp["settings"]), f"robust set point of version {new.version} (maximum probability)"


def _at_set_point(pm: PredictiveModel, set_point: Mapping[str, Any], draws: int | None,
                  seed: int) -> tuple[float, dict[str, float]]:
    frame = pd.DataFrame([{f: set_point[f] for f in pm.study.factor_names}])
    res = probability(pm, frame, draws=draws, seed=seed)
    return float(res.joint[0]), {k: float(v[0]) for k, v in res.per_cqa.items()}


def _map(rebuilt: RebuiltAnalysis, study_name: str, x: str, y: str, set_point: Mapping[str, Any],
         opts: dict[str, Any], n: int) -> tuple[SpaceGrid, float, dict[str, float]]:
    """One version's map and set-point probabilities, a DoeError naming the version if the settings fail."""
    pm = rebuilt.pm
    assert pm is not None  # set by _predictive before the maps
    missing = [f for f in pm.study.factor_names if f not in set_point]
    if missing:
        raise DoeError(f"The set point has no setting for {', '.join(missing)} (factors of version "
                       f"{rebuilt.version}'s study); give them with fixed={{...}}.")
    try:
        fixed = {k: v for k, v in set_point.items() if k not in (x, y) and k in pm.study.factor_names}
        grid = space_grid(pm, x, y, fixed, n=n, **opts)
        joint, per = _at_set_point(pm, set_point, opts["draws"], opts["seed"])
    except ModelError as exc:
        raise DoeError(f"Analysis version {rebuilt.version} of '{study_name}': {exc}") from None
    return grid, joint, per


def _stored_defaults(new: RebuiltAnalysis, threshold: float | None, draws: int | None) -> tuple[float, int | None]:
    ds = new.summary.get("design_space") or {}
    if threshold is None:
        threshold = float(ds.get("threshold") or DEFAULT_THRESHOLD)
    if draws is None and ds.get("draws"):
        draws = int(ds["draws"])
    return threshold, draws


def _set_point_note(old: RebuiltAnalysis, set_point: Mapping[str, Any], new_version: int) -> list[str]:
    stored = (old.summary.get("design_space") or {}).get("set_point")
    if old.version == new_version or not stored or dict(stored) == dict(set_point):
        return []
    return [f"Version {old.version} was stored at another set point ({_settings_text(stored)}); here both "
            f"versions are judged at the same one ({_settings_text(set_point)})."]


def _settings_text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {_plain(v)}" for k, v in settings.items())


def space_before_after(store: Store, study_name: str, old_version: int, new_version: int, *, x: str | None = None,
                       y: str | None = None, fixed: Mapping[str, Any] | None = None,
                       threshold: float | None = None, n: int = 41, draws: int | None = None, seed: int = 0,
                       volume: bool = False) -> SpaceComparison:
    """Map the design spaces of analysis versions ``old_version`` and ``new_version`` on the same terms.

    Each version's CQA models are refitted from its stored data version and
    model choices (:func:`rebuild_analysis`). Defaults come from the new
    version's stored summary: axes ``x``/``y`` (else the first two numeric
    factors), the set point (else the robust set point; ``fixed`` overrides
    factors of it, and the map holds the other factors there), the threshold
    (else 0.9) and the draws (else 4,000). Both maps use the same ``seed``.
    ``volume=True`` also estimates the share of the whole factor region in the
    design space (:func:`volume_fraction`).

    Raises DoeError when a version does not exist or its design space cannot be rebuilt.
    """
    old = rebuild_analysis(store, study_name, old_version)
    new = old if int(old_version) == int(new_version) else rebuild_analysis(store, study_name, new_version)
    threshold, draws = _stored_defaults(new, threshold, draws)
    new_pm = _predictive(new, study_name, draws, seed)
    if old is not new:
        _predictive(old, study_name, draws, seed)
    x, y = _axes(new, new_pm, x, y)
    set_point, source = _set_point(new, new_pm, fixed, threshold, draws, seed)
    opts = {"threshold": threshold, "draws": draws, "seed": seed}
    new_grid, p_new, per_new = _map(new, study_name, x, y, set_point, opts, n)
    old_grid, p_old, per_old = (new_grid, p_new, per_new) if old is new else _map(
        old, study_name, x, y, set_point, opts, n)
    warnings = _warnings(old, new, set_point)
    assert old.pm is not None and new.pm is not None  # set by _predictive above
    vol = (volume_fraction(old.pm, threshold, draws, seed), volume_fraction(new.pm, threshold, draws, seed)) \
        if volume else (None, None)
    return SpaceComparison(
        study_name, new.study, old.version, new.version, old.data_version, new.data_version,
        old.study_version, new.study_version, x, y, dict(new_grid.fixed), dict(set_point), source,
        float(threshold), int(new_grid.draws), int(seed), int(n), old_grid, new_grid, p_old, p_new,
        per_old, per_new, vol[0], vol[1], warnings)


def _warnings(old: RebuiltAnalysis, new: RebuiltAnalysis, set_point: Mapping[str, Any]) -> list[str]:
    both = [old] if old is new else [old, new]
    out = [f"Version {r.version}: {w}" for r in both if r.pm is not None for w in r.pm.warnings]
    out += old.warnings + (new.warnings if new is not old else [])
    if old.study_version != new.study_version:
        out.append(f"The study changed between the versions (study version {old.study_version} -> "
                   f"{new.study_version}): ranges or spec limits may differ, so each map uses its own.")
    return out + _set_point_note(old, set_point, new.version)


def volume_fraction(pm: PredictiveModel, threshold: float, draws: int | None = None, seed: int = 0,
                    n_points: int = VOLUME_POINTS) -> float:
    """Share of the whole feasible factor region (all factors vary) where P(all CQAs in spec) >= threshold.

    Uniform random points of the region (:func:`doe.region.sample_region`;
    continuous factors uniform, discrete and categorical levels equally
    likely, constraints honoured), the same points for the same ``seed``.
    """
    U, _, _ = sample_region(pm.study, 1, seed, int(n_points))
    res = probability(pm, actual_frame(pm.study, U), draws=draws, seed=seed)
    return float(np.mean(res.joint >= threshold))


# -- table and report ------------------------------------------------------------------------------
def fraction_table(comparison: SpaceComparison) -> pd.DataFrame:
    """Design space before vs after: rows for the map's share inside, the set-point probability and each CQA's.

    Columns: ``version OLD``, ``version NEW``, ``change`` (new - old).
    """
    c = comparison
    rows: list[tuple[str, float | None, float | None]] = [
        ("Share of the map inside the design space", c.fraction_old, c.fraction_new)]
    if c.volume_old is not None or c.volume_new is not None:
        rows.append(("Share of the whole factor region inside", c.volume_old, c.volume_new))
    rows.append(("P(all CQAs in spec) at the set point", c.probability_old, c.probability_new))
    names = list(c.per_cqa_old) + [k for k in c.per_cqa_new if k not in c.per_cqa_old]
    rows += [(f"P({k} in spec) at the set point", c.per_cqa_old.get(k), c.per_cqa_new.get(k)) for k in names]
    old_col, new_col = _version_columns(c)
    frame = pd.DataFrame([(label, _num(o), _num(n)) for label, o, n in rows],
                         columns=["quantity", old_col, new_col]).set_index("quantity")
    frame[[old_col, new_col]] = frame[[old_col, new_col]].astype(float)
    frame["change"] = frame[new_col] - frame[old_col]
    return frame


def _version_columns(c: SpaceComparison) -> tuple[str, str]:
    if c.old_version == c.new_version:
        return f"version {c.old_version}", f"version {c.new_version} (again)"
    return f"version {c.old_version}", f"version {c.new_version}"


def comparison_report(store: Store, study_name: str, old_version: int, new_version: int,
                      comparison: SpaceComparison | None = None, **space_options: Any) -> dict[str, Any]:
    """Everything ``python -m doe compare`` writes: coefficients, statistics, significance, design space.

    ``coefficients``, ``stats`` and ``significance`` (per CQA) come from
    :func:`doe.versions.compare_analyses` of the two stored summaries;
    ``stored_design_space`` is its comparison of the stored numbers (each
    version at its own set point); ``design_space`` is
    :meth:`SpaceComparison.to_json` (both versions on the same terms).
    """
    old_row = _analysis_row(store, study_name, old_version)
    new_row = _analysis_row(store, study_name, new_version)
    comp = compare_analyses(old_row["summary"] or {}, new_row["summary"] or {})
    if comparison is None:
        comparison = space_before_after(store, study_name, old_version, new_version, **space_options)
    responses = comp["responses"]
    return {
        "study": study_name, "old_version": int(old_version), "new_version": int(new_version),
        "data_version": {"old": int(old_row["data_version"]), "new": int(new_row["data_version"])},
        "coefficients": {k: v["coefficients"] for k, v in responses.items()},
        "stats": {k: v["stats"] for k, v in responses.items()},
        "significance": {k: {"became_significant": v["became_significant"],
                             "stopped_being_significant": v["stopped_being_significant"]}
                         for k, v in responses.items()},
        "models": {k: {"status": v["status"], "model": v["model"], "transform": v["transform"], "n": v["n"],
                       "error": v["error"]} for k, v in responses.items()},
        "stored_design_space": comp["design_space"],
        "design_space": comparison.to_json(),
    }
