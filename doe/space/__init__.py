"""The design space (ICH Q8(R2)): where every CQA meets its spec with high probability.

A point of the factor space belongs to the design space when the posterior predictive probability
that a *new run* there meets every CQA specification is at least a threshold (e.g. 0.9), judged
within the tested region only (Peterson 2004; Peterson & Lief 2010). This package computes that
probability from the fitted CQA models (:class:`doe.fit.FittedModel`), draws probability maps,
the proven acceptable ranges (PAR), checks a normal operating range (NOR) and finds the most
robust set point. It is pure: no Streamlit, no files. :class:`DesignSpace` holds a predictive model
with the terms it is judged on and answers all of these questions.

Which module owns what (the implementation modules are private; import from ``doe.space``):

- ``_posterior``: the posterior predictive (:class:`PredictiveModel`, :func:`build_predictive`):
  the CQA models on a monomial basis, the residual correlation, the cached draws (exact
  matrix-variate t, Gibbs sampling of the SUR posterior or the SUR-style approximation).
- ``_random``: random effects (donors, hPL lots, whole plots) of CQAs fitted as mixed models
  (``fm.mixed``): the probability for a run with a new donor, lot and whole plot ("new") or the
  average ones ("average"); variance components drawn with their uncertainty, cross-CQA correlation
  from the BLUPs (:func:`random_draws`, :func:`random_structure`, :func:`component_draws`).
- ``_sur``: the Gibbs samplers of the seemingly-unrelated regression posterior
  (:func:`sur_draws`, :func:`sur_draws_collapsed`) and their convergence diagnostics.
- ``_settings``: set points checked and completed against the study, settings as coded arrays.
- ``_kernels``: the probability kernels (:func:`probability`, counting draws in spec),
  :func:`closed_form_probability`, :func:`tolerance_factor` and the interval overlays.
- ``_assurance``: the assured design space (lower credible bounds of the probability,
  :func:`lower_bound`, :func:`simultaneous_level`, :func:`bvn`).
- ``_grid``: the probability map (:class:`SpaceGrid`, :func:`space_grid`).
- ``_ranges``: :func:`proven_acceptable_ranges` (:class:`PARResult`), :func:`check_nor`,
  :func:`lower_bound_at`.
- ``_search``: :func:`robust_set_point` and :func:`set_point_report`.
- ``_view``: which slice to show first (:func:`opening_view`, :func:`view_axes`), which CQA limits
  the edge (:func:`edge_limits`), a saved decision's view (:func:`saved_view`), PAR tables.
- ``_summary``: the JSON summary of ``python -m doe space`` (:func:`summary_json`,
  :func:`summary_and_grid`).
- ``_design_space``: :class:`DesignSpace`, the result object.
- ``_calibration``: the frequentist check of both design-space definitions by simulation.
- :mod:`doe.space.compare` (public, imported on demand: it reads the store and refits): the design
  space of two saved analyses, before and after (its figure is :mod:`doe.plots.compare`).

The modules import each other in this order, at module level: ``_random``, ``_sur`` -> ``_posterior`` ->
``_settings`` -> ``_kernels`` -> ``_assurance`` -> ``_grid`` -> ``_ranges`` -> ``_search`` -> ``_view``
-> ``_summary`` -> ``_design_space``.
"""

from __future__ import annotations

from doe.decision import DEFAULT_THRESHOLD

from ._assurance import (
    ASSURANCE_DRAWS,
    INNER_POINTS,
    assurance_level,
    bvn,
    check_assurance,
    conditional_probability,
    describe_assurance,
    lower_bound,
    meets,
    parameter_draws,
    simultaneous_level,
)
from ._calibration import CalibrationResult, assurance_calibration, true_probability
from ._design_space import DesignSpace
from ._grid import SpaceGrid, space_grid
from ._kernels import (
    INTERVAL_KINDS,
    ProbabilityResult,
    closed_form_probability,
    probability,
    tolerance_factor,
)
from ._posterior import DEFAULT_DRAWS, GIBBS_MAX_SYSTEM, MIN_DRAWS, PredictiveModel, build_predictive
from ._random import (
    RANDOM_EFFECTS_MODES,
    RandomStructure,
    check_random_effects,
    component_draws,
    describe_random_effects,
    random_draws,
    random_effect_names,
    random_structure,
    shrunk_correlation,
)
from ._ranges import PARResult, check_nor, lower_bound_at, proven_acceptable_ranges
from ._search import robust_set_point, set_point_report
from ._summary import summary_and_grid, summary_json
from ._sur import drift_z, effective_sample_size, nested_rhat, sur_draws, sur_draws_collapsed, system_size
from ._view import (
    EdgeLimits,
    OpeningView,
    SavedView,
    decision_setpoint_sd,
    describe_setpoint_sd,
    edge_limits,
    limiting_cqa,
    limiting_map,
    opening_view,
    par_frame,
    par_limits,
    saved_view,
    set_point_frame,
    view_axes,
)

__all__ = [
    # posterior predictive
    "DEFAULT_DRAWS", "DEFAULT_THRESHOLD", "GIBBS_MAX_SYSTEM", "MIN_DRAWS", "PredictiveModel", "build_predictive",
    # random effects (donors, lots, whole plots)
    "RANDOM_EFFECTS_MODES", "RandomStructure", "check_random_effects", "component_draws", "describe_random_effects",
    "random_draws", "random_effect_names", "random_structure", "shrunk_correlation",
    # Gibbs sampling of the SUR posterior
    "drift_z", "effective_sample_size", "nested_rhat", "sur_draws", "sur_draws_collapsed", "system_size",
    # kernels
    "INTERVAL_KINDS", "ProbabilityResult", "closed_form_probability", "probability", "tolerance_factor",
    # assurance
    "ASSURANCE_DRAWS", "INNER_POINTS", "assurance_level", "bvn", "check_assurance", "conditional_probability",
    "describe_assurance", "lower_bound", "meets", "parameter_draws", "simultaneous_level",
    # maps, ranges, search, summary
    "SpaceGrid", "space_grid", "PARResult", "check_nor", "lower_bound_at", "proven_acceptable_ranges",
    "robust_set_point", "set_point_report", "summary_and_grid", "summary_json",
    # views
    "EdgeLimits", "OpeningView", "SavedView", "decision_setpoint_sd", "describe_setpoint_sd", "edge_limits",
    "limiting_cqa", "limiting_map", "opening_view", "par_frame", "par_limits", "saved_view", "set_point_frame",
    "view_axes",
    # the result object
    "DesignSpace",
    # calibration
    "CalibrationResult", "assurance_calibration", "true_probability",
]
