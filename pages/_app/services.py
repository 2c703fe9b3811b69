"""Every cached computation of the app, in one place: what a page (or a background thread) asks for
twice is computed once per server.

Keys are content digests, never serialised study or data text: the study by :attr:`doe.study.Study.digest`
(SHA-256 of its YAML), a results table by :func:`doe.analysis.data_digest`, a design by
:attr:`doe.design.Design.digest`. A cached function takes the digests as hashed arguments and the objects as
``_underscore`` arguments, which Streamlit does not hash: equal digests mean equal content, so the
objects of the first call stand for those of any later one. No function here reads the session, so a
background thread (pages/_app/speed.py) asks for the same cache entries as the page.

``st.cache_resource`` results are shared between sessions and not copied: callers treat them as read
only (or copy them, as :func:`generate_design` does).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from doe.store import Store
from doe.study import Study

if TYPE_CHECKING:
    from doe.analysis import Analysis, CQAFit
    from doe.design import Design
    from doe.fit import FittedModel


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_digest(runs: pd.DataFrame) -> str:
    """The cache key of a results table: its content hash (doe.analysis.data_digest)."""
    from doe.analysis import data_digest as digest

    return digest(runs)


# -- the database --------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def open_store(url: str) -> Store:
    """The store at ``url``, opened once per server; without touching the session (so cached
    functions run in a thread may use it)."""
    return Store.open(url)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)  # reads at an old mark are never asked again
def read_at(url: str, mark: int, method: str, args: tuple[Any, ...]) -> Any:
    """``Store.<method>(*args)`` at the database's change ``mark`` (pages/_app/db.read copies it)."""
    return getattr(open_store(url), method)(*args)


# -- the study -------------------------------------------------------------------------------------
@st.cache_data(max_entries=1)
def example_digest(path: str) -> str:
    """The digest of the bundled example study at ``path``."""
    return Study.load(path).digest


# -- fits --------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner=False)
def _parsed(study_digest: str, data_digest: str, _study: Study, _runs: pd.DataFrame) -> tuple[Study, pd.DataFrame]:
    """The study and results behind a pair of digests, read back from their text once for all CQAs (the
    fits see exactly what a study file and a results CSV give, whoever asks first; read only)."""
    return Study.from_yaml(_study.to_yaml()), pd.read_csv(io.StringIO(_runs.to_csv(index=False)))


@st.cache_resource(max_entries=128, show_spinner=False)
def _fitted(study_digest: str, data_digest: str, response: str, choice_json: str, _study: Study,
            _runs: pd.DataFrame) -> CQAFit:
    from doe.analysis import ModelChoice, fit_choice

    study, runs = _parsed(study_digest, data_digest, _study, _runs)
    return fit_choice(study, runs, response, ModelChoice.from_dict(json.loads(choice_json)))


def clear_fits() -> None:
    """Forget every cached fit and analysis (tests start from an empty cache)."""
    _parsed.clear()
    _fitted.clear()
    _analysis.clear()


def choice_json(choices: dict[str, Any], cqa: str) -> str:
    """The cache-key form of a CQA's model choice in ``choices`` (default: reduced quadratic)."""
    from doe.analysis import default_choice

    return json.dumps(choices.get(cqa, default_choice().to_dict()))


def fit(study: Study, runs: pd.DataFrame, cqa: str, choice: dict[str, Any]) -> CQAFit:
    """One CQA's fit (doe.analysis.CQAFit) with ``choice`` (ModelChoice.to_dict()), once per study, data
    and choice: the one place the app fits a model."""
    return _fitted(study.digest, data_digest(runs), cqa, json.dumps(choice), study, runs)


def fits(study: Study, runs: pd.DataFrame, choices: dict[str, Any], cqas: Any) -> dict[str, CQAFit]:
    """The fit of each CQA with its choice in ``choices`` (default: reduced quadratic)."""
    s, d = study.digest, data_digest(runs)
    return {cqa: _fitted(s, d, cqa, choice_json(choices, cqa), study, runs) for cqa in cqas}


@st.cache_resource(max_entries=16, show_spinner=False)
def _analysis(digest: str, study_digest: str, data_digest: str, wanted: tuple[tuple[str, str], ...], _study: Study,
              _runs: pd.DataFrame) -> Analysis:
    from doe.analysis import Analysis

    study, runs = _parsed(study_digest, data_digest, _study, _runs)
    fitted = {cqa: _fitted(study_digest, data_digest, cqa, choice, _study, _runs) for cqa, choice in wanted}
    return Analysis(study, runs, fitted, digest)


def analysis(study: Study, runs: pd.DataFrame, choices: dict[str, Any], cqas: Any) -> Analysis:
    """Every CQA in ``cqas`` fitted with its choice in ``choices`` (default: reduced quadratic), as one
    doe.analysis.Analysis (its models, failures and data version) made of the cached fits of :func:`fit`;
    its digest is doe.analysis.analysis_digest, the same as fit_all gives the same analysis."""
    from doe.analysis import ModelChoice, analysis_digest

    s, d = study.digest, data_digest(runs)
    wanted = tuple((cqa, choice_json(choices, cqa)) for cqa in cqas)
    digest = analysis_digest(study, runs, {cqa: ModelChoice.from_dict(json.loads(c)) for cqa, c in wanted})
    return _analysis(digest, s, d, wanted, study, runs)


@st.cache_resource(max_entries=64, show_spinner=False)
def _summary_table(study_digest: str, data_digest: str, response: str, transform: str, _study: Study,
                   _runs: pd.DataFrame) -> pd.DataFrame:
    from doe.fit import fit_summary

    study, runs = _parsed(study_digest, data_digest, _study, _runs)
    return fit_summary(study, runs, response, transform=transform)


def summary_table(study: Study, runs: pd.DataFrame, fm: FittedModel) -> pd.DataFrame:
    """The fit summary (model orders tested in turn) of ``fm``'s CQA and transform."""
    return _summary_table(study.digest, data_digest(runs), fm.response, fm.transform, study, runs)


@st.cache_resource(max_entries=64, show_spinner=False)
def _diagnostic_figures(study_digest: str, data_digest: str, response: str, choice: str, _fm: FittedModel) -> Any:
    from doe.plots import model as mf

    return mf.residual_plots(_fm), mf.influence_plot(_fm)


def diagnostic_figures(study: Study, runs: pd.DataFrame, fm: FittedModel, choice: dict[str, Any]) -> Any:
    """Residual and influence figures, made once per fit."""
    return _diagnostic_figures(study.digest, data_digest(runs), fm.response, json.dumps(choice), fm)


@st.cache_resource(max_entries=64, show_spinner=False)
def _box_cox_figure(study_digest: str, data_digest: str, response: str, model_spec: str, transform: str,
                    _fm: FittedModel, _study: Study, _runs: pd.DataFrame) -> Any:
    from doe.errors import DoeError
    from doe.fit import box_cox_profile
    from doe.plots import model as mf

    _, runs = _parsed(study_digest, data_digest, _study, _runs)
    try:
        profile = box_cox_profile(_fm, runs)
    except DoeError as exc:
        return str(exc)
    return mf.box_cox_plot(profile), profile["advice"]


def box_cox_figure(study: Study, runs: pd.DataFrame, fm: FittedModel) -> Any:
    """Box-Cox profile of the current model and its advice (the message when it cannot be drawn)."""
    return _box_cox_figure(study.digest, data_digest(runs), fm.response, fm.model_spec, fm.transform, fm, study,
                           runs)


# -- the design space ----------------------------------------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner=False)
def predictive(_study: Study, _models: dict[str, Any], key: str, random_effects: str | None = None) -> Any:
    """The posterior predictive of the fits (doe.space.build_predictive), once per ``key``: analysis digest and mode."""
    from doe.space import build_predictive

    return build_predictive(_study, _models, random_effects=random_effects)


@st.cache_resource(max_entries=16, show_spinner=False)
def robust(_pm: Any, key: str, threshold: float) -> Any:
    """The robust set point (maximum probability over all factors) of a predictive, once per key."""
    from doe.space import robust_set_point

    return robust_set_point(_pm, threshold=threshold)


def as_json(value: Any) -> str:
    """The cache-key form of a set point, its fixed part or its SDs."""
    return json.dumps(value, sort_keys=True)


@st.cache_resource(max_entries=64, show_spinner=False)
def grid(_pm: Any, key: str, x: str, y: str, fixed_json: str, threshold: float, sd_json: str, interval_json: str,
         assurance_json: str = "null") -> Any:
    """The map of ``x`` by ``y`` with the other factors fixed (doe.space.space_grid); ``assurance_json``:
    null, or {"level": gamma, "kind": "simultaneous" | "pointwise"}."""
    from doe.space import space_grid

    assure = json.loads(assurance_json) or {}
    return space_grid(_pm, x, y, json.loads(fixed_json), threshold=threshold,
                      setpoint_sd=json.loads(sd_json) or None, interval=json.loads(interval_json),
                      assurance=assure.get("level"), assurance_kind=assure.get("kind", "simultaneous"))


@st.cache_resource(max_entries=64, show_spinner=False)
def par_at(_pm: Any, key: str, sp_json: str, threshold: float, sd_json: str, level: float | None = None) -> Any:
    """Proven acceptable ranges at a set point (its box is drawn on the map); ``level``: the pointwise
    credible level of an assured design space (SpaceGrid.assurance_level), or None."""
    from doe.space import proven_acceptable_ranges

    return proven_acceptable_ranges(_pm, json.loads(sp_json), threshold=threshold,
                                    setpoint_sd=json.loads(sd_json) or None, assurance=level)


@st.cache_resource(max_entries=64, show_spinner=False)
def report_at(_pm: Any, key: str, sp_json: str, threshold: float, sd_json: str, nor_json: str,
              level: float | None = None) -> Any:
    """The set point's predictions and probabilities, and the NOR check (None without a NOR);
    ``level`` as :func:`par_at`."""
    from doe.space import check_nor, set_point_report

    sp, sd, nor = json.loads(sp_json), json.loads(sd_json) or None, json.loads(nor_json)
    nor_check = check_nor(_pm, sp, nor, threshold=threshold, setpoint_sd=sd, assurance=level) if nor else None
    return set_point_report(_pm, sp, threshold=threshold, setpoint_sd=sd, assurance=level), nor_check


@st.cache_resource(max_entries=64, show_spinner=False)
def bound_at(_pm: Any, key: str, sp_json: str, gamma: float) -> float:
    """The lower ``gamma`` credible bound of P(all in spec | parameters) at a set point."""
    from doe.space import lower_bound_at

    return float(lower_bound_at(_pm, json.loads(sp_json), gamma))


@st.cache_resource(max_entries=16, show_spinner=False)
def opening(_pm: Any, key: str, threshold: float) -> Any:
    """The informative first view (doe.space.opening_view) from the cached robust set point."""
    from doe.space import opening_view

    return opening_view(_pm, threshold=threshold, robust=robust(_pm, key, threshold))


@st.cache_resource(max_entries=64, show_spinner=False)
def par_ends(_pm: Any, key: str, sp_json: str, threshold: float, sd_json: str) -> Any:
    """Which CQA ends each PAR (doe.space.par_limits) at a set point."""
    from doe.space import par_limits

    par = par_at(_pm, key, sp_json, threshold, sd_json)
    return par_limits(_pm, par, threshold=threshold, setpoint_sd=json.loads(sd_json) or None)


@st.cache_resource(max_entries=16, show_spinner=False)
def space_comparison(url: str, study_name: str, old: int, new: int) -> Any:
    """Design space of two analysis versions on the same axes, set point and threshold (and its figure)."""
    from doe.plots.compare import before_after_figure
    from doe.space.compare import fraction_table, space_before_after

    comparison = space_before_after(open_store(url), study_name, old, new)  # no session: may run in a thread
    return comparison, before_after_figure(comparison), fraction_table(comparison)


# -- designs ---------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner=False)
def _generated(study_digest: str, kind: str, options_json: str, _study: Study) -> Design:
    from doe.generators import generate

    return generate(Study.from_yaml(_study.to_yaml()), kind, **json.loads(options_json))


def clear_designs() -> None:
    """Forget every cached design and evaluation (tests start from an empty cache)."""
    _generated.clear()
    _evaluation.clear()


def generated(study: Study, kind: str, options: dict[str, Any]) -> Design:
    """The design of ``kind`` with ``options`` (those the type takes, seed included), once per study (the
    cached object: read only)."""
    return _generated(study.digest, kind, json.dumps(options, sort_keys=True, default=str), study)


def generate_design(study: Study, kind: str, options: dict[str, Any]) -> Design:
    """As :func:`generated`, a copy: the caller may keep it."""
    return copy.deepcopy(generated(study, kind, options))


@st.cache_resource(max_entries=32, show_spinner=False)
def _evaluation(study_digest: str, design_digest: str, model: str, _study: Study, _design: Design) -> Any:
    from doe.design import read_design
    from doe.evaluate import evaluate_design  # scipy: loaded once a design is there to evaluate
    from doe.model import parse_model

    study = Study.from_yaml(_study.to_yaml())
    design = read_design(study, _design.to_csv(with_responses=False).encode(), "design.csv")
    return evaluate_design(study, design, parse_model(study, model))


def evaluation(study: Study, design: Design, model: str) -> Any:
    """Evaluation (doe.evaluate.evaluate_design) of the design's run sheet for ``model``, once per design
    and model."""
    return _evaluation(study.digest, design.digest, model, study, design)


@st.cache_resource(max_entries=64, show_spinner=False)
def evaluation_figure(_ev: Any, key: str, which: str) -> Any:
    """One figure of an evaluation (correlations, FDS or VIF), made when its tab is first shown."""
    from doe.plots import design as figures

    return {"corr": figures.correlation_map, "fds": figures.fds_plot, "vif": figures.vif_chart}[which](_ev)


@st.cache_resource(max_entries=64, show_spinner=False)
def power(_ev: Any, key: str, snr: float) -> Any:
    """Power at another signal-to-noise ratio (rescaled noncentrality) and its chart."""
    from doe.evaluate import power_at
    from doe.plots import design as figures

    ev = power_at(_ev, snr, 0.05)
    return ev.power, figures.power_chart(ev, snr, 0.05)


@st.cache_resource(max_entries=16, show_spinner=False)
def design_plot(_design: Design, key: str) -> Any:
    """The design plot, made once per design."""
    from doe.plots import design as figures

    return figures.design_matrix_plot(_design)


# -- the scale planner -----------------------------------------------------------------------------------
@st.cache_data(max_entries=1)
def default_plan() -> dict[str, Any]:
    """The example plan (doe.scale.EXAMPLE_PLAN) the Scale planner's inputs start from."""
    import yaml

    from doe.scale import EXAMPLE_PLAN

    return yaml.safe_load(EXAMPLE_PLAN.read_text(encoding="utf-8"))


@st.cache_data(max_entries=1)
def default_catalogue() -> pd.DataFrame:
    """The bundled vessel catalogue as the editor shows it."""
    from doe.scale import catalogue_frame, read_catalogue

    return catalogue_frame(read_catalogue())


@st.cache_data(max_entries=32, show_spinner=False)
def _plan(key: str, _plan_json: str, _catalogue_csv: str, _models_json: str, _measured_json: str) -> Any:
    from doe.scale import PlanFile, measured_growth, read_catalogue, run_plan

    catalogue = read_catalogue(pd.read_csv(io.StringIO(_catalogue_csv), dtype=str, keep_default_na=False))
    m = json.loads(_measured_json) or {}
    measured = measured_growth(m["groups"], conservative=m["conservative"]) if m else None
    return run_plan(PlanFile.from_dict(json.loads(_plan_json)), catalogue, json.loads(_models_json) or None,
                    measured=measured, equivalence=m.get("equivalence"))


def compute_plan(plan_json: str, catalogue_csv: str, models_json: str, measured_json: str = "{}") -> Any:
    """The scale plan (doe.scale.run_plan) of a plan, a vessel catalogue, the fitted-model supply and the
    measured growth (``{"groups", "conservative", "equivalence"}``), once per content (their SHA-256)."""
    key = _sha256("\x00".join((plan_json, catalogue_csv, models_json, measured_json)))
    return _plan(key, plan_json, catalogue_csv, models_json, measured_json)


# -- the seed train ----------------------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner=False)
def _growth(key: str, by: str, _passages: pd.DataFrame) -> Any:
    from doe.growth import growth_summary

    return growth_summary(_passages, by=by)


def growth(passages: pd.DataFrame, by: str = "Family") -> Any:
    """The growth kinetics (doe.growth.GrowthSummary) of a passage sheet, once per content and grouping."""
    return _growth(_sha256(passages.to_csv(index=False)), by, passages)
