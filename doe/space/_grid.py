"""The probability map: :class:`SpaceGrid`, one panel of the design space over two numeric factors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from doe.decision import DEFAULT_THRESHOLD
from doe.errors import ModelError

from . import _assurance
from ._assurance import check_assurance_options, describe_assurance
from ._kernels import interval_bounds, interval_spec, probability, within
from ._posterior import PredictiveModel
from ._settings import factor_range, fixed_settings, numeric_factor, settings_arrays

__all__ = ["SpaceGrid", "space_grid"]

# -- the probability map --------------------------------------------------------------------------
@dataclass
class SpaceGrid:
    """A probability map over two numeric factors, the others fixed (one panel of the design space).

    Arrays are (len(ys), len(xs)): rows follow ``ys``, columns ``xs``. Axes
    span the study range only (a design space never extrapolates).
    """

    x: str
    y: str
    fixed: dict[str, Any]
    xs: np.ndarray
    ys: np.ndarray
    probability: np.ndarray
    per_cqa: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    lower: dict[str, np.ndarray] | None
    upper: dict[str, np.ndarray] | None
    interval: dict[str, Any] | None
    feasible: np.ndarray
    threshold: float
    draws: int
    seed: int
    mc_se: float
    setpoint_sd: dict[str, Any] | None
    method: str
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: Assurance level gamma, or None (the design space is then probability >= threshold).
    assurance: float | None = None
    #: With an assurance level: the lower credible bound of P(all in spec | parameters) per point, at
    #: the pointwise level ``assurance_level``.
    lower_bound: np.ndarray | None = None
    #: Parameter draws the bound is taken over (see :func:`doe.space.lower_bound`).
    assurance_draws: int = 0
    #: "simultaneous" (every point of the region at once, over this map's points) or "pointwise".
    assurance_kind: str = "simultaneous"
    #: The pointwise credible level the region uses (>= ``assurance``; equal for "pointwise").
    assurance_level: float | None = None

    @property
    def inside(self) -> np.ndarray:
        """Design space at feasible settings: joint probability >= threshold, or, with an assurance
        level gamma, its lower gamma credible bound >= threshold."""
        if self.assurance is not None and self.lower_bound is not None:
            return cast(np.ndarray, (self.lower_bound >= self.threshold) & self.feasible)  # the bound is at assurance_level
        return cast(np.ndarray, (self.probability >= self.threshold) & self.feasible)

    @property
    def point_estimate_inside(self) -> np.ndarray:
        """Where the posterior predictive probability (the point estimate) is >= threshold (and feasible)."""
        return cast(np.ndarray, (self.probability >= self.threshold) & self.feasible)

    @property
    def definition(self) -> str:
        """Which design space is shown, in one sentence."""
        return describe_assurance(self.assurance, self.threshold, self.assurance_kind, self.assurance_level,
                                  int(self.feasible.sum()))

    @property
    def fraction_inside(self) -> float:
        """Share of the feasible grid points inside the design space."""
        n = int(self.feasible.sum())
        return float(self.inside.sum() / n) if n else 0.0

    @property
    def overlay_inside(self) -> np.ndarray:
        """Overlapping means: every CQA's predicted mean within its limits (and feasible)."""
        ok = self.feasible.copy()
        for name, (lo, hi) in self.limits.items():
            ok &= within(self.mean[name], lo, hi)
        return ok

    @property
    def interval_inside(self) -> np.ndarray | None:
        """Every CQA's interval bound(s) within its limits (and feasible); None without an interval."""
        if self.lower is None or self.upper is None:
            return None
        ok = self.feasible.copy()
        for name, (lo, hi) in self.limits.items():
            if lo is not None:
                ok &= self.lower[name] >= lo
            if hi is not None:
                ok &= self.upper[name] <= hi
        return ok


def space_grid(pm: PredictiveModel, x: str, y: str, fixed: Mapping[str, Any] | None = None, *,
               n: int = 50, threshold: float = DEFAULT_THRESHOLD, draws: int | None = None, seed: int = 0,
               setpoint_sd: dict[str, float] | None = None, interval: Any = None,
               assurance: float | None = None, assurance_kind: str = "simultaneous") -> SpaceGrid:
    """Probability map of the design space over ``x`` and ``y`` within their study ranges.

    Parameters
    ----------
    pm : PredictiveModel
    x, y : str
        Numeric factors on the axes.
    fixed : dict, optional
        Settings of the other factors (actual units; tested level names). A
        factor left out is at its centre (numeric) or first level (categorical);
        ``SpaceGrid.fixed`` says which.
    n : int
        Points per axis.
    threshold : float
        Design space: joint probability >= threshold (e.g. 0.9).
    draws, seed, setpoint_sd
        As :func:`probability`.
    interval : str or dict, optional
        'confidence', 'prediction' or 'tolerance', or ``{'kind', 'level',
        'proportion'}`` (defaults 0.95 and 0.99): interval bounds per CQA,
        one-sided for a one-sided spec, back-transformed.
    assurance : float, optional
        Assurance level gamma (e.g. 0.95): the design space is then where a lower credible bound of
        P(all in spec | parameters) is >= ``threshold`` (:func:`doe.space.lower_bound`), kept in
        ``SpaceGrid.lower_bound``.
    assurance_kind : {"simultaneous", "pointwise"}
        "simultaneous" (default): with posterior probability >= gamma every feasible point of the
        region meets the threshold at once (the pointwise level is raised to
        ``SpaceGrid.assurance_level`` by :func:`doe.space.simultaneous_level` over this map's
        points); "pointwise": the lower gamma bound at each point.

    Returns
    -------
    SpaceGrid

    Raises
    ------
    ModelError
        Unknown factor, categorical axis, an untested categorical level or a fixed
        setting outside the tested range.
    """
    fx, fy = numeric_factor(pm, x), numeric_factor(pm, y)
    if x == y:
        raise ModelError("Choose two different factors for the axes.")
    if not 0 < threshold < 1:
        raise ModelError(f"The probability threshold must be between 0 and 1; got {threshold}.")
    if n < 2:
        raise ModelError("Use at least 2 points per axis.")
    spec = interval_spec(interval)
    assurance = check_assurance_options(assurance, setpoint_sd)
    others = fixed_settings(pm, fixed, [x, y])
    xs, ys = np.linspace(*factor_range(fx), n), np.linspace(*factor_range(fy), n)
    gx, gy = np.meshgrid(xs, ys)
    frame = pd.DataFrame({x: gx.ravel(), y: gy.ravel(), **{k: [v] * gx.size for k, v in others.items()}})
    res = probability(pm, frame, draws=draws, seed=seed, setpoint_sd=setpoint_sd)
    shape = gx.shape
    bound, n_theta, level = None, 0, None
    feasible = pm.study.feasible(frame)
    if assurance is not None:
        level = _assurance.assurance_level(pm, frame[feasible], threshold, assurance, assurance_kind,
                                           draws=draws, seed=seed)
        bound = _assurance.lower_bound(pm, frame, level, draws=draws, seed=seed).reshape(shape)
        n_theta = _assurance.parameter_draws(pm, draws, seed)
    lower = upper = None
    if spec is not None:
        U, L = settings_arrays(pm, frame)
        lo, hi = interval_bounds(pm, U, L, spec)
        lower = {k: v.reshape(shape) for k, v in lo.items()}
        upper = {k: v.reshape(shape) for k, v in hi.items()}
    return SpaceGrid(
        x=x, y=y, fixed=others, xs=xs, ys=ys, probability=res.joint.reshape(shape),
        per_cqa={k: v.reshape(shape) for k, v in res.per_cqa.items()},
        mean={k: v.reshape(shape) for k, v in res.mean.items()}, lower=lower, upper=upper,
        interval=spec, feasible=feasible.reshape(shape), threshold=float(threshold),
        draws=res.draws, seed=int(seed), mc_se=res.mc_se, setpoint_sd=res.setpoint_sd, method=pm.describe() + ".",
        limits=pm.limits(), assurance=assurance, lower_bound=bound, assurance_draws=n_theta,
        assurance_kind=assurance_kind, assurance_level=level,
    )
