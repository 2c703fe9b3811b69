"""The design space as one object: the posterior predictive of an analysis and the terms it is judged on.

:class:`DesignSpace` holds a :class:`~doe.space.PredictiveModel` with the threshold, Monte Carlo
draws and seed, set-point variation and assurance, and answers every design-space question on
those terms: the robust set point, one point, a map, the PARs, a NOR check, the CLI summary.
The CLI, re-runs, the report and the pages build one instead of passing the same five options
to each function of :mod:`doe.space`; the defaults live here and in :mod:`doe.decision`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from doe.decision import DEFAULT_ASSURANCE_KIND, DEFAULT_THRESHOLD, Decision

from ._grid import SpaceGrid, space_grid
from ._posterior import PredictiveModel, build_predictive
from ._ranges import PARResult, check_nor, lower_bound_at, proven_acceptable_ranges
from ._search import robust_set_point, set_point_report
from ._summary import summary_and_grid, summary_json

__all__ = ["DesignSpace"]

@dataclass(frozen=True)
class DesignSpace:
    """A design space: the predictive model and the terms it is judged on.

    ``assurance`` (gamma, or None for the point estimate) and ``assurance_kind`` ("simultaneous" or
    "pointwise") are as :func:`doe.space.space_grid`; ``setpoint_sd`` is factor -> SD in actual units.
    """

    pm: PredictiveModel
    threshold: float = DEFAULT_THRESHOLD
    draws: int | None = None
    seed: int = 0
    setpoint_sd: dict[str, float] = field(default_factory=dict)
    assurance: float | None = None
    assurance_kind: str = DEFAULT_ASSURANCE_KIND

    @classmethod
    def of(cls, study: Any, models: Mapping[str, Any], *, seed: int = 0, draws: int | None = None,
           random_effects: str | None = None, **terms: Any) -> DesignSpace:
        """Build the predictive model of ``models`` and the design space on ``terms``.

        ``models`` is CQA -> FittedModel or CQAFit, or an analysis (:class:`doe.analysis.Analysis`, or
        any object with ``.models``): its fitted models are used, the CQAs whose fit failed left out.
        ``random_effects`` ("new", the default when a CQA with a spec has random effects, or "average"):
        the probability for a run with a new donor, lot and whole plot, or for the average ones
        (:func:`doe.space.build_predictive`).
        """
        fitted = getattr(models, "models", None)
        return cls(build_predictive(study, models if fitted is None else fitted, seed=seed, draws=draws,
                                    random_effects=random_effects), draws=draws, seed=seed, **terms)

    @property
    def random_effects(self) -> str | None:
        """"new" or "average" when CQAs have random effects (which run the probability is about), else None."""
        return self.pm.random_effects

    def on_decision(self, decision: Decision) -> DesignSpace:
        """The same predictive judged on a saved decision's terms (threshold, set-point variation, assurance)."""
        return replace(self, threshold=decision.threshold, setpoint_sd=dict(decision.setpoint_sd),
                       assurance=decision.assurance, assurance_kind=decision.assurance_kind)

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments :mod:`doe.space`'s functions take for these terms (without assurance)."""
        return {"threshold": self.threshold, "draws": self.draws, "seed": self.seed,
                "setpoint_sd": dict(self.setpoint_sd) or None}

    @property
    def method(self) -> str:
        """One sentence naming the method (:meth:`doe.space.PredictiveModel.describe`)."""
        return self.pm.describe()

    def robust_set_point(self, fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The settings of maximum (point-estimate) probability: :func:`doe.space.robust_set_point`."""
        return robust_set_point(self.pm, fixed=fixed, **self.options)

    def at(self, point: Mapping[str, Any], *, level: float | None = None) -> dict[str, Any]:
        """Everything about one set point: :func:`doe.space.set_point_report` (``level``: the pointwise
        credible level of an assured design space, e.g. ``SpaceGrid.assurance_level``)."""
        return set_point_report(self.pm, point, **self.options, assurance=level)

    def lower_bound(self, point: Mapping[str, Any]) -> float:
        """The lower ``assurance`` credible bound of the probability at one point."""
        if self.assurance is None:
            raise ValueError("This design space has no assurance level.")
        return lower_bound_at(self.pm, point, self.assurance, draws=self.draws, seed=self.seed)

    def grid(self, x: str, y: str, fixed: Mapping[str, Any] | None = None, *, n: int = 50,
             interval: Any = None) -> SpaceGrid:
        """A map over ``x`` and ``y``: :func:`doe.space.space_grid` with these terms."""
        return space_grid(self.pm, x, y, fixed, n=n, interval=interval, **self.options, assurance=self.assurance,
                          assurance_kind=self.assurance_kind)

    def par(self, point: Mapping[str, Any], *, level: float | None = None) -> PARResult:
        """Proven acceptable ranges at ``point`` (``level`` as :meth:`at`)."""
        return proven_acceptable_ranges(self.pm, point, **self.options, assurance=level)

    def check_nor(self, point: Mapping[str, Any], nor: Mapping[str, tuple[float, float]], *,
                  level: float | None = None) -> dict[str, Any]:
        """Whether a normal operating range lies inside (``level`` as :meth:`at`)."""
        return check_nor(self.pm, point, nor, **self.options, assurance=level)

    def summary(self, point: Mapping[str, Any] | None = None, *, x: str | None = None, y: str | None = None,
                n: int = 50) -> dict[str, Any]:
        """The JSON summary of ``python -m doe space``: :func:`doe.space.summary_json` with these terms."""
        return summary_json(self.pm, set_point=point, x=x, y=y, n=n, **self.options, assurance=self.assurance,
                            assurance_kind=self.assurance_kind)

    def summary_and_grid(self, point: Mapping[str, Any] | None = None, *, x: str | None = None,
                         y: str | None = None, n: int = 50) -> tuple[dict[str, Any], SpaceGrid | None]:
        """:meth:`summary` and the map it summarises (``n`` points per axis), computed once."""
        return summary_and_grid(self.pm, set_point=point, x=x, y=y, n=n, **self.options, assurance=self.assurance,
                                assurance_kind=self.assurance_kind)
