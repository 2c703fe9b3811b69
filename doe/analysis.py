"""An analysis: every CQA of a study fitted with its model choice, as one result object.

:func:`fit_all` fits every CQA that has results with its :class:`ModelChoice` and returns an
:class:`Analysis`: the fit of each CQA (:class:`CQAFit`, read like a dict), the fitted models, the
failures with their reasons, the data version and a content digest. The choice and the fit of one CQA
(:class:`ModelChoice`, :class:`CQAFit`, :func:`fit_choice`) live in :mod:`doe.fit` and are re-exported
here, where the app and the CLI have always imported them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping

import pandas as pd

from doe._threads import one_blas_thread
from doe.fit import REDUCE_METHODS, CQAFit, FittedModel, ModelChoice, default_choice, fit_choice
from doe.recent import Recent
from doe.study import Study

__all__ = [
    "REDUCE_METHODS", "Analysis", "CQAFit", "ModelChoice", "analysis_digest", "data_digest", "data_version",
    "default_choice", "fit_all", "fit_choice", "fitted_models", "responses_with_results",
]


def responses_with_results(study: Study, runs: pd.DataFrame) -> list[str]:
    """CQAs that have at least one result in ``runs``."""
    return [r.name for r in study.responses
            if r.name in runs and pd.to_numeric(runs[r.name], errors="coerce").notna().any()]


class Analysis(Mapping[str, CQAFit]):
    """Every CQA with results fitted with its choice: a read-only mapping CQA name -> :class:`CQAFit`.

    Read like the dict it replaces (``analysis[name]``, ``.items()``, ``len``), in the study's CQA
    order, plus what every reader of an analysis needs:

    Attributes
    ----------
    study : Study
        The study fitted.
    runs : DataFrame
        The results fitted (a copy taken when fitting; shared between readers: do not change it).
    digest : str
        :func:`analysis_digest` of the study, the data and the choices: the same digest means the
        same fits.
    """

    def __init__(self, study: Study, runs: pd.DataFrame, fits: Mapping[str, CQAFit], digest: str,
                 data_version: str | None = None) -> None:
        self.study = study
        self.runs = runs
        self.digest = digest
        self._fits = dict(fits)
        # ``data_version``: :func:`data_version` of ``runs`` when the caller already knows it (fit_all does).
        self._data_version = data_version if data_version is not None else _data_version(runs)

    def __getitem__(self, name: str) -> CQAFit:
        return self._fits[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fits)

    def __len__(self) -> int:
        return len(self._fits)

    def __repr__(self) -> str:
        return (f"Analysis({self.study.name!r}, {len(self.models)} fitted"
                + (f", failed: {sorted(self.failures)}" if self.failures else "") + f", digest {self.digest[:12]})")

    @property
    def choices(self) -> dict[str, ModelChoice]:
        """The model choice each CQA was fitted with, by CQA name."""
        return {n: f.choice for n, f in self._fits.items()}

    @property
    def models(self) -> dict[str, FittedModel]:
        """The fitted model of every CQA whose fit succeeded, by CQA name: what the design space,
        desirability and comparisons use."""
        return {n: f.model for n, f in self._fits.items() if f.model is not None}

    @property
    def failures(self) -> dict[str, str]:
        """Why each CQA that could not be fitted was not (the :class:`~doe.errors.ModelError` text)."""
        return {n: f.error for n, f in self._fits.items() if f.error is not None}

    @property
    def data_version(self) -> str:
        """Short content hash of the results fitted (:func:`data_version`)."""
        return self._data_version


def analysis_digest(study: Study, runs: pd.DataFrame, choices: Mapping[str, ModelChoice]) -> str:
    """The content digest of an analysis: SHA-256 of the study's digest (:attr:`Study.digest`), the data's
    (:func:`data_digest`) and the choices per CQA. Equal digests, equal fits: the app's caches and
    :func:`fit_all`'s memo are keyed by it."""
    return _analysis_digest(study, data_digest(runs), choices)


def _analysis_digest(study: Study, data: str, choices: Mapping[str, ModelChoice]) -> str:
    """:func:`analysis_digest` with the data's digest already computed (``data``)."""
    text = "\0".join((study.digest, data,
                       json.dumps({n: c.to_dict() for n, c in choices.items()}, sort_keys=True, default=str)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@one_blas_thread
def fit_all(study: Study, runs: pd.DataFrame, choices: Mapping[str, ModelChoice] | None = None,
            default: ModelChoice | None = None) -> Analysis:
    """Fit every CQA with results, each with its own choice (or ``default``).

    The analyses of the last few (study, data, choices) are kept: saving an analysis, comparing it
    with the one before and building the report refit the same data with the same choices.
    The analysis returned is shared and read-only (its fits must not be changed).
    """
    choices = choices or {}
    default = default or ModelChoice()
    names = responses_with_results(study, runs)
    wanted = {name: choices.get(name, default) for name in names}
    data = data_digest(runs)  # once: the analysis digest and the data version both read it
    key = _analysis_digest(study, data, wanted)
    kept: Analysis | None = _RECENT_ANALYSES.get(key)
    if kept is not None:
        return kept
    fits = {name: fit_choice(study, runs, name, choice) for name, choice in wanted.items()}
    analysis = Analysis(study, runs.copy(), fits, key, data_version=data[:12])
    _RECENT_ANALYSES.put(key, analysis)
    return analysis


_RECENT_ANALYSES = Recent(8)


def fitted_models(fits: Mapping[str, CQAFit]) -> dict[str, FittedModel]:
    """The fitted model (:class:`~doe.fit.FittedModel`) of every CQA whose fit succeeded, by CQA name
    (:attr:`Analysis.models` for any mapping of fits; CQAs whose fit failed keep their reason in ``fits``)."""
    return {n: f.model for n, f in fits.items() if f.model is not None}


def data_digest(runs: pd.DataFrame) -> str:
    """SHA-256 of a results table's content (columns in name order, the index left out): same data, same
    digest."""
    text = runs.sort_index(axis=1).to_csv(index=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_version(runs: pd.DataFrame) -> str:
    """Short content hash of a results table (same data, same version): the first 12 characters of
    :func:`data_digest`, as analyses are saved with."""
    return data_digest(runs)[:12]


_data_version = data_version  # Analysis.__init__'s parameter of the same name hides the function
