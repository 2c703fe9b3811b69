"""Model choices per CQA and fitting every CQA with them.

A :class:`ModelChoice` is what the scientist decided for one CQA (model,
transform, reduction, ANOVA type, excluded runs). It is saved with an analysis
so that "re-run analysis" refits the same choices on new data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from doe._recent import Recent
from doe.errors import ModelError
from doe.fit import FittedModel, fit_model, reduce_model
from doe.study import Study

REDUCE_METHODS = ("p", "aicc")


@dataclass
class ModelChoice:
    """The analysis settings of one CQA."""

    model: str = "quadratic"
    transform: str = "none"
    reduce: bool = False
    reduce_method: str = "p"
    reduce_alpha: float = 0.1
    anova_type: int = 2
    exclude: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelChoice:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def default_choice() -> ModelChoice:
    """What the app starts each CQA with: the quadratic, reduced hierarchically by p-value."""
    return ModelChoice(reduce=True)


@dataclass
class CQAFit:
    """One CQA's fit: the model, the reduction steps, or the reason it could not be fitted."""

    response: str
    choice: ModelChoice
    model: FittedModel | None = None
    steps: list[dict] | None = None
    error: str | None = None


def fit_choice(study: Study, runs: pd.DataFrame, response: str, choice: ModelChoice, *,
               block_col: str | None = None, alpha: float = 0.05) -> CQAFit:
    """Fit one CQA with its choice; a model that cannot be fitted gives ``error``, not an exception."""
    try:
        spec, steps = choice.model, None
        if choice.reduce:
            spec, steps = reduce_model(study, runs, response, choice.model, method=choice.reduce_method,
                                       alpha=choice.reduce_alpha, transform=choice.transform,
                                       exclude=choice.exclude or None, block_col=block_col)
        fm = fit_model(study, runs, response, spec, transform=choice.transform, alpha=alpha,
                       anova_type=choice.anova_type, exclude=choice.exclude or None,
                       block_col=block_col)
    except ModelError as exc:
        return CQAFit(response, choice, error=str(exc))
    return CQAFit(response, choice, model=fm, steps=steps)


def responses_with_results(study: Study, runs: pd.DataFrame) -> list[str]:
    """CQAs that have at least one result in ``runs``."""
    return [r.name for r in study.responses
            if r.name in runs and pd.to_numeric(runs[r.name], errors="coerce").notna().any()]


def fit_all(study: Study, runs: pd.DataFrame, choices: dict[str, ModelChoice] | None = None,
            default: ModelChoice | None = None) -> dict[str, CQAFit]:
    """Fit every CQA with results, each with its own choice (or ``default``).

    The fits of the last few (study, data, choices) are kept: saving an analysis, comparing it
    with the one before and building the report refit the same data with the same choices.
    The fits returned are shared and must not be changed.
    """
    choices = choices or {}
    default = default or ModelChoice()
    names = responses_with_results(study, runs)
    wanted = {name: choices.get(name, default) for name in names}
    key = (study.to_yaml(), runs.to_csv(index=False), json.dumps({n: c.to_dict() for n, c in wanted.items()},
                                                                 sort_keys=True, default=str))
    kept = _RECENT_FITS.get(key)
    if kept is not None:
        return dict(kept)
    fits = {name: fit_choice(study, runs, name, choice) for name, choice in wanted.items()}
    _RECENT_FITS.put(key, fits)
    return dict(fits)


_RECENT_FITS = Recent(8)


def fitted_models(fits: Mapping[str, CQAFit]) -> dict[str, FittedModel]:
    """The fitted model (:class:`~doe.fit.FittedModel`) of every CQA whose fit succeeded, by CQA name:
    what the design space, desirability and comparisons use (CQAs whose fit failed keep their reason in
    ``fits``)."""
    return {n: f.model for n, f in fits.items() if f.model is not None}


def data_version(runs: pd.DataFrame) -> str:
    """Short content hash of a results table (same data, same version)."""
    import hashlib

    text = runs.sort_index(axis=1).to_csv(index=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
