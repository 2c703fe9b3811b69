"""The design-space summary of ``python -m doe space`` (JSON-ready) and the map it summarises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from doe._format import plain
from doe.decision import DEFAULT_THRESHOLD
from doe.jsonable import json_ready

from ._assurance import assurance_level, check_assurance_options, describe_assurance
from ._grid import SpaceGrid, space_grid
from ._posterior import PredictiveModel
from ._random import components_json, correlations_json
from ._ranges import lower_bound_at, proven_acceptable_ranges
from ._search import robust_set_point, set_point_report
from ._settings import factor_range, fixed_settings, settings_frame
from ._view import view_axes

__all__ = ["summary_and_grid", "summary_json"]

# -- summary for the CLI ----------------------------------------------------------------------------
def summary_json(pm: PredictiveModel, *, set_point: Mapping[str, Any] | None = None, threshold: float = DEFAULT_THRESHOLD,
                 draws: int | None = None, seed: int = 0, setpoint_sd: dict[str, float] | None = None,
                 x: str | None = None, y: str | None = None, n: int = 50,
                 assurance: float | None = None, assurance_kind: str = "simultaneous") -> dict[str, Any]:
    """JSON-ready design-space summary: set point, its probability, PARs and one map's share inside.

    Without ``set_point`` the robust set point (:func:`robust_set_point`) is used.
    The map is over ``x`` and ``y`` (default: :func:`doe.space.view_axes`, the pair of numeric
    factors over which the probability varies most through the set point)
    with the other factors at the set point; ``grid.fraction_inside`` is the
    share of its feasible points inside the design space.

    With ``assurance`` (gamma) the design space is the assured one (:func:`doe.space.lower_bound`): ``inside``,
    ``par`` and ``grid`` use a lower credible bound, and the output adds ``assurance``,
    ``assurance_kind``, ``assurance_level`` (the pointwise level used: gamma for "pointwise", raised so
    that the map's region holds simultaneously for "simultaneous", over the map's points, or over
    the PAR scan lines when there is no map), ``probability_lower_bound_at_set_point`` (the lower
    gamma bound) and ``definition``. The robust set point is still the maximum of the posterior
    predictive probability.
    """
    return summary_and_grid(pm, set_point=set_point, threshold=threshold, draws=draws, seed=seed,
                            setpoint_sd=setpoint_sd, x=x, y=y, n=n, assurance=assurance,
                            assurance_kind=assurance_kind)[0]


def summary_and_grid(pm: PredictiveModel, *, set_point: Mapping[str, Any] | None = None,
                     threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
                     setpoint_sd: dict[str, float] | None = None, x: str | None = None, y: str | None = None,
                     n: int = 50, assurance: float | None = None, assurance_kind: str = "simultaneous"
                     ) -> tuple[dict[str, Any], SpaceGrid | None]:
    """:func:`summary_json` and the map it summarises (None without two numeric factors), so a caller that
    draws the map (the report) does not compute it again."""
    opts: dict[str, Any] = {"threshold": threshold, "draws": draws, "seed": seed, "setpoint_sd": setpoint_sd}
    gamma = check_assurance_options(assurance, setpoint_sd)
    source = "given"
    if set_point is None:
        set_point, source = robust_set_point(pm, **opts)["settings"], "robust (maximum probability)"
    sp = fixed_settings(pm, set_point, [], complete=True)
    if x and y:
        axes = [x, y]
    else:  # the pair over which the probability varies most through the set point (as the page opens)
        axes = list(view_axes(pm, sp, **opts) or ())
    g = level = lines = None
    if len(axes) == 2:
        g = space_grid(pm, axes[0], axes[1], {k: v for k, v in sp.items() if k not in axes}, n=n, **opts,
                       assurance=gamma, assurance_kind=assurance_kind)
        level = g.assurance_level
    elif gamma is not None:
        lines = _par_lines(pm, sp)
        level = assurance_level(pm, lines, threshold, gamma, assurance_kind, draws=draws, seed=seed)
    par = proven_acceptable_ranges(pm, sp, **opts, assurance=level)
    report = set_point_report(pm, sp, **opts, assurance=level)
    out: dict[str, Any] = {
        "method": pm.describe(), "cqas_with_specs": pm.spec_names, "not_modelled": pm.not_modelled,
        "set_point": {k: plain(v) for k, v in sp.items()}, "set_point_source": source,
        "probability_at_set_point": par.probability, "per_cqa_at_set_point": report["per_cqa"],
        "predictions_at_set_point": report["predictions"], "inside": report["inside"], "threshold": threshold,
        "par": {k: list(v) for k, v in par.items()}, "par_limited_by": par.limited_by, "par_reason": par.reason,
        "correlation": None if pm.correlation is None else pm.correlation.round(4).to_dict(),
        "warnings": list(pm.warnings), "grid": None, "random_effects": _random_effects(pm),
    }
    if gamma is not None:
        if g is not None:
            points = int(g.feasible.sum())
        else:
            assert lines is not None  # without a map the PAR lines set the level
            points = len(lines)
        out.update(assurance=gamma, assurance_kind=assurance_kind, assurance_level=level,
                   probability_lower_bound_at_set_point=lower_bound_at(pm, sp, gamma, draws=draws, seed=seed),
                   definition=describe_assurance(gamma, threshold, assurance_kind, level, points))
    if g is not None:
        out["grid"] = {"x": g.x, "y": g.y, "fixed": g.fixed, "fraction_inside": g.fraction_inside, "n": n,
                       "threshold": threshold, "draws": g.draws, "mc_se": g.mc_se}
        if gamma is not None:
            out["grid"].update(assurance=gamma, assurance_kind=assurance_kind, assurance_level=level,
                               fraction_inside_point_estimate=float(
                                   g.point_estimate_inside.sum() / max(1, int(g.feasible.sum()))),
                               assurance_draws=g.assurance_draws)
    return json_ready(out), g


def _random_effects(pm: PredictiveModel) -> dict[str, Any]:
    """Which run the probability is about when CQAs have random effects ("new" or "average" donor, lot and
    whole plot), the variance components of each mixed CQA, and the cross-CQA correlations used."""
    out: dict[str, Any] = {"mode": pm.random_effects,
                           "components": components_json(pm.spec_names, [c.fm for c in pm.spec_cqas])}
    if pm.random is not None:
        out["description"] = pm.describe().split(" meets every CQA spec")[0].replace(
            "Posterior predictive probability that ", "")
        out["component_df"] = {c.name: {k: float(pm.random.df[i, j]) for j, k in
                                        enumerate([*pm.random.names, "Residual"]) if pm.random.variance[i, j] > 0}
                               for i, c in enumerate(pm.spec_cqas)}
        out["correlations"] = correlations_json(pm.random, pm.spec_names) if len(pm.spec_cqas) > 1 else None
    return out


def _par_lines(pm: PredictiveModel, sp: dict[str, Any], n: int = 201) -> pd.DataFrame:
    """The feasible settings of the PAR scans through ``sp``: each numeric factor over its range, the
    others at the set point (the reference of a simultaneous assurance level when there is no map)."""
    frames = [settings_frame(pm, sp)]
    for name in pm.numeric:
        f = pm.study.factor(name)
        if f.kind == "discrete":
            frames.append(settings_frame(pm, sp, len(f.levels), **{name: list(f.levels)}))
        else:
            frames.append(settings_frame(pm, sp, n, **{name: np.linspace(*factor_range(f), n)}))
    frame = pd.concat(frames, ignore_index=True)
    return frame[pm.study.feasible(frame)].reset_index(drop=True)
