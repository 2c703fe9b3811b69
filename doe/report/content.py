"""What the regulatory report says, independent of how it is rendered (HTML or PDF).

:func:`build_report` gathers everything once: the study, the design, the
runs, every CQA's fitted model, the design space at the decided (or robust)
set point, the comparison with the previous analysis version, the audit
trail and the inputs with their checksums. Renderers (``doe.report.html``,
``doe.report.pdf``) only lay out what is here; they never recompute
statistics.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import plotly.graph_objects as go

from doe.analysis import Analysis, CQAFit, ModelChoice, data_version, default_choice, fit_all
from doe.decision import DEFAULT_ASSURANCE_KIND, DEFAULT_THRESHOLD
from doe.errors import DoeError
from doe.study import Study

if TYPE_CHECKING:
    from doe.store import Store

DRAWS = 4000  # posterior draws: Monte Carlo SE of any probability <= 0.008
SEED = 0
GRID_N = 50  # map points per axis: the map `python -m doe space` summarises, so the appendix command reproduces it
PACKAGES = ("numpy", "scipy", "pandas", "statsmodels", "plotly", "pydoe", "sqlalchemy", "kaleido", "weasyprint")


# -- the content model --------------------------------------------------------------------------
@dataclass
class Paragraph:
    """A paragraph of plain text."""

    text: str


@dataclass
class Table:
    """A table, formatted as the pages show it, with its caption."""

    frame: pd.DataFrame
    caption: str = ""


@dataclass
class Figure:
    """A plotly figure with its caption and the size it is rendered at (pixels)."""

    figure: go.Figure
    caption: str
    width: int = 1000
    height: int = 600


@dataclass
class Code:
    """Preformatted text: a command or a file, shown verbatim."""

    text: str


@dataclass
class Notice:
    """A highlighted note: something the reader must not miss (simulated data, a missing part)."""

    text: str


Block = Paragraph | Table | Figure | Code | Notice


@dataclass
class Section:
    """A numbered section: its heading, its blocks in order and its heading level."""

    heading: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2

    def add(self, *blocks: Block) -> Section:
        """Append ``blocks`` and return the section (so a builder can ``return sec.add(...)``)."""
        self.blocks.extend(blocks)
        return self


@dataclass
class ReportContent:
    """A renderer-neutral report: title, header text, ordered sections and the embedded inputs."""

    title: str
    study_name: str
    analysis_version: int | None
    date: str
    sections: list[Section]
    study_yaml: str
    runs_csv: str
    set_point: dict[str, Any]
    probability_at_set_point: float | None
    numbers: dict[str, Any] = field(default_factory=dict)  # for checks: coefficients, space summary

    @property
    def header(self) -> str:
        """The running header: study, analysis version (or 'from files') and date."""
        version = f"analysis v{self.analysis_version}" if self.analysis_version is not None else "from files"
        return f"{self.study_name} · {version} · {self.date}"

    @property
    def figures(self) -> list[Figure]:
        """Every figure of the report, in order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


# -- formatting ---------------------------------------------------------------------------------
def fmt(x: Any, digits: int = 4) -> str:
    """A number as the report prints it: as the pages show it (doe.present.format_number)."""
    from doe.present import format_number

    return format_number(x, digits)


def _formatted(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The table as the pages show it (doe.present: labels, blanks, one number and p-value format)."""
    from doe.present import present

    return present(frame, digits)


def settings_text(settings: dict[str, Any]) -> str:
    """Factor settings as 'A = 1, B = 2' with numbers formatted as the report prints them."""
    return ", ".join(f"{k} = {fmt(v)}" for k, v in settings.items())


def sha256(text: str) -> str:
    """SHA-256 of the UTF-8 text, hex (the digests the report prints for its embedded inputs)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def runs_csv(runs: pd.DataFrame) -> str:
    """The runs as the CSV embedded in the report (store bookkeeping columns dropped, full precision).

    Text cells a spreadsheet would run as a formula get a leading apostrophe (numbers stay numbers);
    ``python -m doe analyze`` and ``space`` read such a level back as the level itself.
    """
    from doe.design import safe_csv

    return safe_csv(runs.drop(columns=[c for c in ("run_id", "row_version") if c in runs]))


# -- building -----------------------------------------------------------------------------------
@dataclass
class _Inputs:
    study: Study
    runs: pd.DataFrame
    fits: Analysis
    analysis_version: int | None = None
    data_version: int | None = None
    data_hash: str = ""
    created_at: str | None = None
    design: Any = None
    decision: pd.Series | None = None
    previous_version: int | None = None
    store: Any = None
    warnings: list[str] = field(default_factory=list)
    design_record: Any = None  # doe.store DesignRecord of ``design`` when it is a stored design
    assurance: dict[str, Any] | None = None  # {"level", "kind"}: the assured design space (overrides the decision's)
    random_effects: str | None = None  # "new" (default with random effects) or "average": doe.space.build_predictive
    seed_train: Any = None  # doe.report.seed_train.SeedTrainInputs: passages, equivalence tests, plan
    lots: Any = None  # doe.report.manufacturing.LotsInputs: the manufacturing lots


def build_report(store: Store | None = None, study_name: str | None = None, analysis_version: int | None = None, *,
                 study: Study | None = None, runs: pd.DataFrame | None = None,
                 choices: dict[str, Any] | None = None, draws: int = DRAWS, seed: int = SEED,
                 design: Any = None, design_record: Any = None, data_version_no: int | None = None,
                 data_hash: str | None = None, assurance: float | None = None,
                 assurance_kind: str = "simultaneous", random_effects: str | None = None,
                 passages: pd.DataFrame | None = None, equivalence: list[dict[str, Any]] | None = None,
                 plan: Any = None, lots: pd.DataFrame | None = None) -> ReportContent:
    """The report of a stored analysis version (default: the latest), or of a study and its runs.

    Store mode (``store`` + ``study_name``): the analysis's own data version
    and model choices are refitted, the latest design-space decision saved for
    that version gives the threshold and set point (else the robust set
    point), and the previous analysis version is compared. File mode
    (``study`` + ``runs``): every CQA gets ``choices`` (default: quadratic,
    hierarchical backward reduction) and there are no versions or audit trail; ``design`` (with its
    ``design_record``, the runs' ``data_version_no`` and the store's ``data_hash`` of it, when the runs
    are a stored data version) is
    the design the runs were run on (default: the runs as performed).

    ``assurance`` (gamma, with ``assurance_kind``): report the design space with stated confidence
    (doe.assurance); without it, the decision's assurance if it was saved with one, else the
    posterior predictive probability (the point estimate).

    The seed-train section reports the study's recorded passages and saved equivalence tests (store mode:
    the newest passage data version), or ``passages`` and ``equivalence`` (file mode), with the seed-train
    ``plan`` (a doe.scale.PlanFile; default the bundled example plan) fed by the measured growth.
    The continued-process-verification section reports the study's lots (store mode: the newest lot data
    version), or ``lots`` (file mode), against the design space of the report.
    """
    if store is not None:
        inputs = _store_inputs(store, study_name, analysis_version)
    elif study is not None and runs is not None:
        chosen = {k: v if isinstance(v, ModelChoice) else ModelChoice.from_dict(v)
                  for k, v in (choices or {}).items()}
        inputs = _Inputs(study, runs, fit_all(study, runs, chosen, default=default_choice()),
                         data_version=data_version_no, data_hash=data_hash or data_version(runs), design=design,
                         design_record=design_record if design is not None else None)
    else:
        raise DoeError("A report needs a store and a study name, or a study and its runs.")
    if assurance is not None:
        inputs.assurance = {"level": float(assurance), "kind": assurance_kind}
    inputs.random_effects = random_effects
    inputs.seed_train = _seed_train_inputs(store, inputs.study.name, passages, equivalence, plan)
    inputs.lots = _lots_inputs(store, inputs.study.name, lots)
    return _assemble(inputs, draws=draws, seed=seed)


def _lots_inputs(store: Store | None, study_name: str, lots: pd.DataFrame | None) -> Any:
    from doe.report.manufacturing import LotsInputs

    if store is None or lots is not None:
        return None if lots is None else LotsInputs(lots)
    versions = store.lot_versions(study_name)
    if not len(versions):
        return None
    last = versions.iloc[-1]
    return LotsInputs(store.lots(study_name), int(last["version"]), str(last["content_hash"]))


def _seed_train_inputs(store: Store | None, study_name: str, passages: pd.DataFrame | None,
                       equivalence: list[dict[str, Any]] | None, plan: Any) -> Any:
    from doe.report.seed_train import SeedTrainInputs, passages_digest

    if store is None or passages is not None:
        if passages is None:
            return None
        return SeedTrainInputs(passages, None, passages_digest(passages), list(equivalence or []), plan)
    versions = store.passage_versions(study_name)
    if not len(versions):
        return None
    last = versions.iloc[-1]
    tests = store.equivalence_tests(study_name)
    saved = [{**dict(r["result"]), "created_at": r["created_at"], "created_by": r["created_by"]}
             for _, r in tests.iterrows()]
    return SeedTrainInputs(store.passages(study_name), int(last["version"]), str(last["content_hash"]),
                           saved if equivalence is None else list(equivalence), plan)


def _store_inputs(store: Store, study_name: str | None, version: int | None) -> _Inputs:
    from doe.space.compare import rebuild_analysis

    if not study_name:
        raise DoeError("Name the study to report on.")
    analyses = store.analyses(study_name)
    if not len(analyses):
        raise DoeError(f"Study '{study_name}' has no saved analysis yet: save one on the Models page or run "
                       "'python -m doe rerun --db URL --study NAME --json OUT.json'; or report from files "
                       "with 'python -m doe report STUDY.yaml RUNS.csv --out report.pdf'.")
    version = int(analyses["version"].iloc[-1]) if version is None else int(version)
    rebuilt = rebuild_analysis(store, study_name, version)
    row = analyses[analyses["version"] == version].iloc[0]
    dvs = store.data_versions(study_name)
    dv_row = dvs[dvs["version"] == rebuilt.data_version]
    decisions = store.decisions(study_name)
    mine = decisions[decisions["analysis_version"] == version] if len(decisions) else decisions
    design, record = None, None
    design_id = store.design_of_data_version(study_name, rebuilt.data_version)  # the data's design, not the newest
    if design_id is not None:
        try:
            record = store.design_record(design_id)
            design = store.load_design(design_id)
        except DoeError as exc:
            rebuilt.warnings.append(f"The stored design cannot be read: {exc}")
            design, record = None, None
    earlier = analyses[analyses["version"] < version]
    return _Inputs(
        rebuilt.study, store.runs(study_name, rebuilt.data_version), rebuilt.fits, version,
        rebuilt.data_version, str(dv_row["content_hash"].iloc[0]) if len(dv_row) else "",
        str(row["created_at"]), design, mine.iloc[-1] if len(mine) else None,
        int(earlier["version"].iloc[-1]) if len(earlier) else None, store, list(rebuilt.warnings), record)


def _assemble(inp: _Inputs, *, draws: int, seed: int) -> ReportContent:
    study = inp.study
    csv_text = runs_csv(inp.runs)
    yaml_text = study.to_yaml()
    space = _design_space(inp, draws=draws, seed=seed)
    date = (inp.created_at or dt.datetime.now(dt.UTC).isoformat())[:10]
    sections = [
        _summary_section(inp, space),
        _study_section(study),
        _design_section(inp),
        _data_section(inp, csv_text),
        *_model_sections(inp),
        _space_section(inp, space),
        _par_section(inp, space),
        _comparison_section(inp, draws=draws, seed=seed),
        _audit_section(inp),
        _seed_train_section(inp),
        _cpv_section(inp, space),
        _appendix(inp, space, yaml_text, csv_text, draws=draws, seed=seed),
    ]
    numbers = {"coefficients": {n: dict(zip(m.coefficients["term"], m.coefficients["estimate"], strict=True))
                                for n, m in inp.fits.models.items()},
               "space": space["summary"]}
    return ReportContent(
        title=f"Design-space report: {study.name}", study_name=study.name, analysis_version=inp.analysis_version,
        date=date, sections=sections, study_yaml=yaml_text, runs_csv=csv_text,
        set_point=dict(space["set_point"]), probability_at_set_point=space["summary"].get(
            "probability_at_set_point"), numbers=numbers)


# -- design space (the same calls as 'python -m doe space', so its command reproduces the numbers) -----
def _design_space(inp: _Inputs, *, draws: int, seed: int) -> dict[str, Any]:
    from doe.decision import Decision
    from doe.errors import ModelError
    from doe.space import DesignSpace, opening_view

    models = inp.fits.models
    empty: dict[str, Any] = {"pm": None, "summary": {}, "set_point": {}, "source": "none", "threshold": DEFAULT_THRESHOLD,
             "draws": draws, "seed": seed, "grid": None, "ranges": {}}
    if not models:
        return {**empty, "error": "no CQA model could be fitted (see section 5)"}
    threshold, source, ranges = DEFAULT_THRESHOLD, "robust (maximum probability)", {}
    set_point, sd, axes = None, {}, {}
    level, kind = None, DEFAULT_ASSURANCE_KIND
    if inp.decision is not None:
        decision = Decision.from_row(inp.decision)
        threshold, set_point, ranges = decision.threshold, dict(decision.set_point), dict(decision.ranges)
        sd, source = decision.setpoint_sd, decision.source  # the set-point variation saved with the decision
        level, kind = decision.assurance, decision.assurance_kind
        if inp.random_effects is None:  # the decision's reading of donors and lots unless the caller says
            inp.random_effects = decision.random_effects
    if inp.assurance:  # report --assurance overrides the decision's
        level, kind = inp.assurance.get("level"), inp.assurance.get("kind", DEFAULT_ASSURANCE_KIND)
    try:
        ds = DesignSpace.of(inp.study, models, seed=seed, draws=draws, threshold=threshold, setpoint_sd=sd,
                            assurance=level, assurance_kind=kind, random_effects=inp.random_effects)
    except ModelError as exc:
        return {**empty, "error": str(exc)}
    if set_point is None:  # the page's opening view: the robust set point, the informative slice
        view = opening_view(ds.pm, robust=ds.robust_set_point(), **ds.options)
        if view is not None:
            set_point, source, axes = view.set_point, view.reason, {"x": view.x, "y": view.y}
        else:
            set_point = ds.robust_set_point()["settings"]
    try:
        summary, grid = ds.summary_and_grid(set_point, n=GRID_N, **axes)  # the map drawn is the one summarised
    except ModelError as exc:
        return {**empty, "error": str(exc)}
    return {"pm": ds.pm, "design_space": ds, "summary": summary, "set_point": summary["set_point"],
            "source": source, "setpoint_sd": sd, "threshold": threshold, "draws": draws, "seed": seed, "grid": grid,
            "ranges": ranges, "error": None, "assurance": level, "assurance_kind": kind,
            "random_effects": ds.random_effects}


def _par_frame(study: Study, par: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for f in study.factors:
        v = par.get(f.name)
        if v is None:
            continue
        if len(v) == 2 and not isinstance(v[0], str) and not f.is_categorical:
            rows.append({"factor": f.label(), "PAR": f"{fmt(v[0])} to {fmt(v[1])}"})
        else:
            rows.append({"factor": f.label(), "PAR": ", ".join(str(x) for x in v)})
    return pd.DataFrame(rows, columns=["factor", "PAR"])


# -- sections -----------------------------------------------------------------------------------
def _summary_section(inp: _Inputs, space: dict[str, Any]) -> Section:
    s = space["summary"]
    sp = space["set_point"]
    p = s.get("probability_at_set_point")
    where = (f"analysis version {inp.analysis_version} (data version {inp.data_version})"
             if inp.analysis_version is not None else "the study file and run sheet given")
    sec = Section("1. Purpose and summary")
    sec.add(Paragraph(
        f"This report documents the design space of the study '{inp.study.name}' for regulatory review "
        f"(ICH Q8(R2)): the study definition, the experimental design, every run, the model of each CQA, "
        f"the design space with its proven acceptable ranges, and how to recompute them. It is built from {where}."))
    if space["error"]:
        return sec.add(*[Notice(w) for w in inp.warnings],
                       Notice(f"There is no design space for this analysis: {space['error']}."))
    sec.add(Table(pd.DataFrame([{"factor": inp.study.factor(k).label(), "set point": fmt(v)}
                                for k, v in sp.items()]), f"Set point ({space['source']})."))
    g = s.get("grid") or {}
    inside = (f" In the map of {g['x']} by {g['y']} (other factors at the set point), "
              f"{100 * g['fraction_inside']:.0f} % of the feasible region is inside.") if g else ""
    if s.get("assurance") is not None:
        statement = (f"Design space statement (with stated confidence), within the tested ranges and levels: "
                     f"{s['definition']}")
        bound = (f" Lower {100 * s['assurance']:g} % credible bound of that probability at the set point: "
                 f"{s['probability_lower_bound_at_set_point']:.3f}; the region uses the pointwise level "
                 f"{s['assurance_level']:.3f}.")
        par_rule = "the lower credible bound stays at or above the threshold"
    else:
        statement = (f"Design space statement: the design space is the set of factor settings, within the tested "
                     f"ranges and levels, where the posterior predictive probability that a new run meets every "
                     f"CQA specification is at least {space['threshold']:g}.")
        bound, par_rule = "", "P stays at or above the threshold"
    sec.add(Paragraph(statement + inside))
    sec.add(Paragraph(f"Joint probability at the set point that every CQA meets its specification: "
                      f"P = {'n/a' if p is None else format(p, '.3f')} (threshold {space['threshold']:g}; "
                      f"{space['draws']:,} posterior draws, "
                      f"seed {space['seed']}); the set point is "
                      f"{'inside' if s.get('inside') else 'NOT inside'} the design space.{bound}"))
    sec.add(Table(_par_frame(inp.study, s.get("par") or {}),
                  f"Proven acceptable ranges: each factor moved alone from the set point while {par_rule}."))
    for w in inp.warnings + list(s.get("warnings") or []):
        sec.add(Notice(w))
    return sec


def _study_section(study: Study) -> Section:
    from doe.tables import constraints_table, factors_table, responses_table

    sec = Section("2. Study definition")
    if study.description:
        sec.add(Paragraph(study.description))
    f = factors_table(study)
    f["range or levels"] = [x.describe_range() for x in study.factors]
    shown = ["name", "kind", "units", "range or levels"] + (["changes"] if study.split_plot else []) + ["description"]
    sec.add(Table(f[shown], "Factors (actual units)" + ("; 'changes': how often a factor is reset (hard-to-change "
                                                        "factors only between whole plots)." if study.split_plot else ".")))
    r = responses_table(study)
    r["specification"] = [x.spec_text() for x in study.responses]
    sec.add(Table(r[["name", "units", "goal", "specification", "target", "description"]].rename(
        columns={"description": "rationale"}), "Critical quality attributes with specifications and rationale."))
    c = constraints_table(study)
    if len(c):
        sec.add(Table(c, "Constraints on the factor settings."))
    from doe.error_structure import error_structure_text

    sec.add(Paragraph(error_structure_text(study)))
    return sec


def _design_section(inp: _Inputs) -> Section:
    from doe.design import read_design
    from doe.evaluate import evaluate_design
    from doe.model import parse_model
    from doe.plots import design as figures

    sec = Section("3. Design")
    design, record = inp.design, inp.design_record
    if design is None:
        cols = [c for c in inp.runs.columns if c not in ("run_id", "row_version")]
        design = read_design(inp.study, inp.runs[cols].copy(), name="runs as performed")
        design.kind = "runs as performed (no stored design)"
        record = None
    model = design.model or "quadratic"
    if record is not None:
        lead = (f"The analysed data (data version {inp.data_version}) were run on the design \"{record.name}\" "
                f"(stored design {record.id}). Design type: {record.type_label}; {record.runs} runs")
    else:
        lead = f"Design type: {design.kind}; {design.n_runs} runs"
    sec.add(Paragraph(lead + (f"; seed {design.seed}" if design.seed is not None else "")
                      + f"; evaluated for the {model} model (coded units)."))
    try:
        ev = evaluate_design(inp.study, design, parse_model(inp.study, model))
        j = ev.to_json()
        sec.add(Table(pd.DataFrame([{"runs": j.get("runs"), "D-efficiency %": j.get("d_efficiency"),
                                     "A-efficiency": j.get("a_efficiency"), "G-efficiency": j.get("g_efficiency"),
                                     "average prediction variance": j.get("avg_prediction_variance")}]).pipe(
            _formatted), "Design evaluation."))
        sec.add(Figure(figures.fds_plot(ev), "Fraction of design space plot (prediction variance).", 900, 500))
        sec.add(Figure(figures.correlation_map(ev), "Correlation of the model terms.", 900, 700))
    except DoeError as exc:
        sec.add(Notice(f"The design cannot be evaluated for the {model} model: {exc}"))
    sheet = design.table.drop(columns=[c for c in design.table.columns
                                       if c in inp.study.response_names or c == "Notes"], errors="ignore")
    sec.add(Table(_formatted(sheet), "Run sheet (actual units)."))
    return sec


def _data_section(inp: _Inputs, csv_text: str) -> Section:
    sec = Section("4. Data")
    if inp.data_version is not None:
        sec.add(Paragraph(f"Data version {inp.data_version}, content hash {inp.data_hash} (SHA-256 of the stored "
                          f"runs); {len(inp.runs)} runs."))
    else:
        sec.add(Paragraph(f"{len(inp.runs)} runs; content hash {inp.data_hash} (first 12 hex digits of the "
                          "SHA-256 of the results table)."))
    sec.add(Paragraph(f"SHA-256 of the runs CSV embedded in the HTML companion: {sha256(csv_text)}."))
    shown = inp.runs.drop(columns=[c for c in ("run_id", "row_version", "Notes") if c in inp.runs])
    sec.add(Table(_formatted(shown), "Every run (actual units)."))
    if "Notes" in inp.runs and inp.runs["Notes"].astype(str).str.contains("SIMULATED", case=False).any():
        sec.add(Notice("These results are SIMULATED (see the Notes column of the runs), not measured."))
    rows = [{"CQA": n, "run": e["run"], "reason": e["reason"]}
            for n, m in inp.fits.models.items() for e in m.excluded]
    if rows:
        sec.add(Table(pd.DataFrame(rows), "Runs left out of a CQA's model, with the reason."))
    else:
        sec.add(Paragraph("No run was excluded from any CQA's model."))
    return sec


def _model_sections(inp: _Inputs) -> list[Section]:
    from doe.plots.model import residual_plots

    out = []
    for i, (name, fit) in enumerate(inp.fits.items(), start=1):
        sec = Section(f"5.{i} Model of {name}", level=3)
        c = fit.choice
        sec.add(Paragraph(f"Choice: {c.model}; transform {c.transform}; "
                          + (f"hierarchical backward reduction ({c.reduce_method}, alpha {c.reduce_alpha:g}); "
                             if c.reduce else "no reduction; ") + f"ANOVA type {c.anova_type}."))
        fm = fit.model
        if fm is None:
            sec.add(Notice(f"{name} could not be fitted: {fit.error}"))
            out.append(sec)
            continue
        sec.add(Paragraph(f"Terms: {fm.model_spec}. Transform: {fm.transform_label}. n = {fm.n}, "
                          f"p = {fm.p}, residual df = {fm.df_resid}."))
        if fm.mixed is not None:
            _mixed_model_tables(sec, name, fm)
        coefs = fm.coefficients[["term", "estimate", "std_error", "t", "p", "ci_low", "ci_high", "vif"]]
        sec.add(Table(_formatted(coefs), f"{name}: coefficients in coded units (-1..+1; effect coding)."))
        sec.add(Paragraph(f"Equation in actual units: {fm.equation_actual}"))
        sec.add(Table(_formatted(fm.anova), f"{name}: ANOVA (type {fm.anova_type})."))
        predicted = {"predicted R²": fm.pred_r2} if fm.pred_r2_excluding_blocks is None else {  # blocked data:
            "predicted R² (total SS with blocks)": fm.pred_r2,  # both conventions, each labelled
            "predicted R² (total SS without blocks, Design-Expert)": fm.pred_r2_excluding_blocks}
        stats = {"R²": fm.r2, "adjusted R²": fm.adj_r2, **predicted, "RMSE": fm.rmse,
                 "CV %": fm.cv_percent, "adequate precision": fm.adeq_precision, "PRESS": fm.press}
        sec.add(Table(_formatted(pd.DataFrame([stats])), f"{name}: fit statistics."))
        for w in fm.warnings:
            sec.add(Notice(w))
        sec.add(Figure(residual_plots(fm), f"{name}: residual diagnostics.", 1000, 650))
        out.append(sec)
    from doe.error_structure import error_structure_text

    intro = Section("5. Models, one per CQA").add(Paragraph(
        "Per CQA: the model choice, the terms kept, the coefficients in coded units, the equation in actual "
        "units, the ANOVA, the fit statistics and the residual diagnostics."))
    intro.add(Paragraph(error_structure_text(inp.study, inp.fits.models)))
    if any(fm.mixed is not None for fm in inp.fits.models.values()):
        intro.add(Paragraph("For a CQA fitted as a mixed model, its Type III tests, variance components and "
                            "fixed effects come first; the least-squares tables after them treat the runs as "
                            "completely randomised and are shown for comparison only."))
    return [intro, *out]


def _mixed_model_tables(sec: Section, name: str, fm: Any) -> None:
    """The mixed model of one CQA: Type III tests, variance components, fixed effects, and the comparison."""
    from doe.error_structure import (
        comparison_words,
        mixed_anova_table,
        mixed_coefficients_table,
        variance_components_table,
    )

    method = fm.mixed.df_label
    sec.add(Table(_formatted(mixed_anova_table(fm)),
                  f"{name}: Type III tests of the mixed model (REML; {method} denominator df)."))
    sec.add(Table(_formatted(variance_components_table(fm)), f"{name}: variance components (REML)."))
    sec.add(Table(_formatted(mixed_coefficients_table(fm)),
                  f"{name}: fixed effects of the mixed model, coded units (GLS at the REML variance components)."))
    for sentence in comparison_words(fm):
        sec.add(Paragraph(sentence))


def _space_section(inp: _Inputs, space: dict[str, Any]) -> Section:
    from doe.plots.space import footnote, probability_map

    s = space["summary"]
    sec = Section("6. Design space")
    if space["error"]:
        return sec.add(Notice(f"There is no design space for this analysis: {space['error']}."))
    from doe.space import describe_setpoint_sd, edge_limits

    sec.add(Paragraph(f"Method: {s.get('method')} {space['draws']:,} posterior draws, seed {space['seed']}; "
                      f"threshold P >= {space['threshold']:g}; set-point variation: "
                      f"{describe_setpoint_sd(inp.study, space.get('setpoint_sd'))}. Set point: {space['source']}."
                      + (f" {s['definition']} The assurance uses the first {space['grid'].assurance_draws:,} "
                         "posterior draws of the model parameters (doe.assurance; README, Statistics checked)."
                         if s.get("assurance") is not None and space["grid"] is not None else "")))
    grid = space["grid"]
    if grid is not None:
        par = {f: v for f, v in (s.get("par") or {}).items() if f in (grid.x, grid.y) and len(v) == 2
               and not isinstance(v[0], str)}
        nor = (space["ranges"] or {}).get("nor") or None
        nor = {k: v for k, v in nor.items() if k in (grid.x, grid.y)} if nor else None
        dv = f"{inp.data_version} ({inp.data_hash[:12]})" if inp.data_version is not None else inp.data_hash
        fig = probability_map(grid, inp.study, set_point=space["set_point"], par=par or None, nor=nor or None,
                              note=footnote(inp.study, dv, when=_report_time(inp)))
        sec.add(Figure(fig, f"Design-space figure: probability that every CQA meets its spec over {grid.x} and "
                            f"{grid.y}, other factors at the set point ({GRID_N} x {GRID_N} grid).", 1100, 720))
        edges = edge_limits(grid, inp.study).table
        if len(edges):
            sec.add(Table(edges, "The CQA that ends the design space along the edge of this map (lowest probability "
                                 "of meeting its spec just outside)."))
    per = s.get("per_cqa_at_set_point") or {}
    if per:
        sec.add(Table(pd.DataFrame([{"CQA": k, "P(in spec) at the set point": fmt(v, 3)} for k, v in per.items()]),
                      "Probability per CQA at the set point."))
    return sec


def _par_section(inp: _Inputs, space: dict[str, Any]) -> Section:
    s = space["summary"]
    sec = Section("7. PAR and NOR")
    if space["error"]:
        return sec.add(Notice("No PARs: there is no design space for this analysis."))
    frame = _par_frame(inp.study, s.get("par") or {})
    nor = (space["ranges"] or {}).get("nor") or {}
    saved_par = (space["ranges"] or {}).get("par") or {}
    by_label = {f.label(): f.name for f in inp.study.factors}
    frame["set point"] = [fmt(space["set_point"].get(by_label[lab])) for lab in frame["factor"]]
    frame["NOR (decision)"] = [" to ".join(fmt(x) for x in nor[by_label[lab]]) if by_label[lab] in nor else ""
                               for lab in frame["factor"]]
    frame["PAR (decision)"] = [", ".join(fmt(x) for x in saved_par[by_label[lab]])
                               if by_label[lab] in saved_par else "" for lab in frame["factor"]]
    ends = _par_ends(inp.study, space)
    for col in ("Low end limited by", "High end limited by"):
        frame[col] = [ends.get(lab, {}).get(col, "") for lab in frame["factor"]]
    sec.add(Table(frame, "Proven acceptable ranges (recomputed here), what ends each range (the CQA whose "
                         "probability of meeting its spec is lowest just beyond it, or the study range or a "
                         "constraint), and the ranges saved with the decision."))
    if s.get("par_reason"):
        sec.add(Paragraph(str(s["par_reason"])))
    return sec


def _par_ends(study: Study, space: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per factor label, what limits the low and the high end of its PAR (as the page's PAR table)."""
    from doe.space import PARResult, par_frame, par_limits

    s = space["summary"]
    par = PARResult({k: list(v) if study.factor(k).is_categorical else tuple(v) for k, v in (s.get("par") or {}).items()},
                    set_point=space["set_point"],
                    limited_by={k: tuple(v) for k, v in (s.get("par_limited_by") or {}).items()})
    ends = par_limits(space["pm"], par, threshold=space["threshold"], draws=space["draws"], seed=space["seed"],
                      setpoint_sd=space.get("setpoint_sd") or None)
    table = par_frame(study, par, ends)
    records = cast("list[dict[str, str]]", table.to_dict("records"))  # par_frame's columns and cells are text
    return {row["Factor"]: row for row in records}


def _comparison_section(inp: _Inputs, *, draws: int, seed: int) -> Section:
    from doe.plots.compare import before_after_figure
    from doe.space.compare import fraction_table, space_before_after
    from doe.versions import compare_analyses, significance_frame, stats_frame

    sec = Section("8. Comparison with the previous analysis version")
    if inp.store is None:
        return sec.add(Paragraph("Not applicable: this report was built from a study file and a run sheet, "
                                 "which carry no analysis versions."))
    if inp.previous_version is None or inp.analysis_version is None:  # a previous version implies this one
        return sec.add(Paragraph(f"Analysis version {inp.analysis_version} is the first; there is no previous "
                                 "version to compare with."))
    old, new = inp.previous_version, inp.analysis_version
    rows = inp.store.analyses(inp.study.name).set_index("version")
    comp = compare_analyses(rows.loc[old, "summary"], rows.loc[new, "summary"])
    sec.add(Paragraph(f"Version {old} (data version {int(rows.loc[old, 'data_version'])}) against version {new} "
                      f"(data version {int(rows.loc[new, 'data_version'])})."))
    sec.add(Table(_formatted(stats_frame(comp)), "Fit statistics before and after."))
    sig = significance_frame(comp)
    sec.add(Table(_formatted(sig), "Terms that became or stopped being significant (p < 0.05).") if len(sig)
            else Paragraph("No term became or stopped being significant (p < 0.05)."))
    try:
        c = space_before_after(inp.store, inp.study.name, old, new, draws=draws, seed=seed, n=GRID_N)
    except DoeError as exc:
        return sec.add(Notice(f"The design spaces cannot be compared: {exc}"))
    sec.add(Table(_formatted(fraction_table(c)), "Design space before and after."))
    sec.add(Figure(before_after_figure(c), f"Design space of version {old} and version {new} overlaid.", 1000, 650))
    return sec


def _audit_section(inp: _Inputs) -> Section:
    sec = Section("9. Audit trail of the data used")
    if inp.store is None:
        return sec.add(Paragraph("Not applicable: this report was built from files, which carry no audit trail."))
    trail = inp.store.audit_trail(inp.study.name)
    trail = trail[trail["ts"].astype(str) <= str(inp.created_at)]
    sec.add(Paragraph(f"{len(trail)} audit records of this study up to the analysis ({inp.created_at} UTC)."))
    if len(trail):
        counts = (trail.groupby(["action", "entity", "user_name"]).size().reset_index(name="records")
                  .rename(columns={"user_name": "user"}))
        sec.add(Table(counts, "Records by action, entity and user."))
    edits = trail[(trail["entity"] == "run") & (trail["action"].isin(["modify", "delete"]))]
    if len(edits):
        sec.add(Table(edits[["seq", "ts", "user_name", "action", "field", "old_value", "new_value", "reason"]]
                      .rename(columns={"user_name": "user"}), "Every change to a saved result, with its reason."))
    else:
        sec.add(Paragraph("No saved result was changed or deleted."))
    check = inp.store.verify_audit()
    if check.ok:
        sec.add(Paragraph(f"Verification when this report was made: intact. Every hash link of the whole audit "
                          f"trail ({check.checked} records), the site key's signature of its head, and the content "
                          f"of every stored row ({check.rows_checked} rows) match."))
    else:
        sec.add(Paragraph(f"Verification when this report was made: FAILED. {check} The data of this report "
                          "cannot be trusted until the incident is resolved (restore from a backup, report to QA)."))
    if check.head is not None:
        sec.add(Paragraph(f"Signed head of the audit trail: {check.head} (UTC). Keep it with this report: a later "
                          "verification that shows an earlier record number, or another hash at this record "
                          "number, means the trail was rolled back or rewritten since."))
    return sec


def _seed_train_section(inp: _Inputs) -> Section:
    from doe.report.seed_train import seed_train_section

    return cast(Section, seed_train_section(10, inp.seed_train))


def _report_time(inp: _Inputs) -> str:
    """When the reported analysis was made (stored analyses: its time to the minute; from files: today), as
    figures print it: the same analysis reports the same figures, so a report built again is the same
    document (and doe.report.pdf lays it out once)."""
    if inp.created_at:
        return str(inp.created_at)[:16].replace("T", " ") + " UTC"
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def _cpv_section(inp: _Inputs, space: dict[str, Any]) -> Section:
    from doe.decision import Decision
    from doe.report.manufacturing import cpv_section
    from doe.space import DesignSpace

    decision, design_space = None, None
    if space.get("pm") is not None and space.get("set_point"):
        design_space = DesignSpace(space["pm"], threshold=space["threshold"], draws=space["draws"], seed=space["seed"])
        if inp.decision is not None:
            decision = Decision.from_row(inp.decision)
            design_space = design_space.on_decision(decision)
    return cast(Section, cpv_section(11, inp.study, inp.lots, space=design_space, decision=decision))


# -- appendix ----------------------------------------------------------------------------------
def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, text=True,
                             capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def software_versions() -> pd.DataFrame:
    """Python, the doe git commit and the version of each package the results depend on, as a table."""
    rows = [{"software": "python", "version": platform.python_version()}, {"software": "doe (git commit)",
                                                                           "version": _commit()}]
    for name in PACKAGES:
        try:
            v = metadata.version(name)
        except metadata.PackageNotFoundError:
            v = "not installed"
        rows.append({"software": name, "version": v})
    return pd.DataFrame(rows)


def _uniform_choice(fits: Mapping[str, CQAFit]) -> ModelChoice | None:
    """The one choice every CQA shares, when 'python -m doe space' (one model for all CQAs) can repeat it."""
    choices = {json.dumps(f.choice.to_dict(), sort_keys=True, default=str) for f in fits.values()}
    if len(choices) != 1:
        return None
    c = next(iter(fits.values())).choice
    plain = ModelChoice(model=c.model, reduce=c.reduce)
    return c if c.to_dict() == plain.to_dict() else None


def recompute_commands(fits: Mapping[str, CQAFit], space: dict[str, Any], *, draws: int, seed: int) -> list[str]:
    """The commands that regenerate the models and the design space from the embedded study.yaml and runs.csv."""
    q = shlex.quote
    cmds = []
    for name, fit in fits.items():
        if fit.model is None:
            continue
        cmd = (f"python -m doe analyze study.yaml runs.csv --response {q(name)} --model {q(fit.model.model_spec)}"
               f" --transform {q(fit.choice.transform)} --anova-type {fit.choice.anova_type}"
               + (f" --ddf {fit.choice.ddf}" if fit.model.mixed is not None else "")
               + f" --json {q('analysis-' + name.replace('/', '_').replace(' ', '_') + '.json')}")
        cmds.append(cmd)
    c = _uniform_choice(fits)
    if space["error"]:
        return cmds
    g = space["summary"].get("grid") or {}
    sp = " ".join(q(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}") for k, v in space["set_point"].items())
    if c is not None:
        cmds.append(f"python -m doe space study.yaml runs.csv --model {q(c.model)}{' --reduce' if c.reduce else ''}"
                    f" --threshold {space['threshold']!r} --draws {draws} --seed {seed} --set-point {sp}"
                    + (f" --assurance {space['assurance']!r} --assurance-kind {space['assurance_kind']}"
                       if space.get("assurance") is not None else "")
                    + (f" --x {q(g['x'])} --y {q(g['y'])}" if g else "")
                    + ("".join([" --setpoint-sd"] + [f" {q(f'{k}={v!r}')}" for k, v in space["setpoint_sd"].items()])
                       if space.get("setpoint_sd") else "")
                    + (f" --random-effects {space['random_effects']}" if space.get("random_effects") else "")
                    + " --no-desirability --json space.json")
    return cmds


def _appendix(inp: _Inputs, space: dict[str, Any], yaml_text: str, csv_text: str, *, draws: int,
              seed: int) -> Section:
    sec = Section("Appendix: software, inputs and how to recompute")
    sec.add(Table(software_versions(), "Software and package versions."))
    sec.add(Table(pd.DataFrame([{"input": "study.yaml", "SHA-256": sha256(yaml_text)},
                                {"input": "runs.csv", "SHA-256": sha256(csv_text)}]),
                  "Checksums of the inputs (both embedded in the HTML companion as downloads)."))
    cmds = recompute_commands(inp.fits, space, draws=draws, seed=seed)
    sec.add(Paragraph("Save the two inputs from the HTML companion as study.yaml and runs.csv, check their "
                      "SHA-256 (sha256sum study.yaml runs.csv), then run:"))
    sec.add(Code("\n".join(cmds)))
    sec.add(Paragraph("The analyze commands give each CQA's final model (after any reduction), so the "
                      "coefficients and ANOVA are those of this report; the space command gives the set point's "
                      "probability (probability_at_set_point) and the PARs with the same draws and seed."))
    if _uniform_choice(inp.fits) is None:
        sec.add(Notice("The CQAs use different model choices, which 'python -m doe space' (one model for every "
                       "CQA) cannot take: the design space is reproduced by doe.report.build_report on these "
                       "inputs."))
    if any(f.choice.exclude for f in inp.fits.values()):
        sec.add(Notice("Some runs were excluded by the user (section 4); remove those rows from runs.csv for the "
                       "CQAs concerned before running analyze."))
    return sec
