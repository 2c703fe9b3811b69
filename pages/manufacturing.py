"""Manufacturing: the lots as run, their control charts, capability, and each lot against the design space."""

import json
from typing import Any

import pandas as pd
import streamlit as st

from doe.capability import capability
from doe.control_charts import control_chart, phased_charts, signals_frame
from doe.decision import Decision
from doe.design import safe_csv
from doe.errors import DoeError
from doe.lots import (
    LOTS_FILE,
    check_lots,
    compare_lots,
    lots_frame,
    lots_template,
    merge_lots,
    predicted_capability,
    read_lots,
)
from doe.plots.control import control_figure
from doe.plots.manufacturing import capability_figure, lots_on_map_figure
from doe.present import format_number, format_percent
from pages._app.common import (
    current_analysis,
    current_runs,
    is_example,
    lazy_tabs,
    require_study,
    show_table,
    shown,
)
from pages._app.db import read
from pages._app.persist import latest
from pages._app.services import as_json, grid, predictive
from pages._app.sheet_editor import Sheet, editor, save, show_saved, upload
from pages._app.state import LOTS_REASON

study = require_study()
st.title("Manufacturing")
st.caption("Continued process verification (ICH Q10; FDA process validation stage 3): one row per lot, in time "
           "order - `Lot`, `Date`, optional `Donor`, the process parameters as actually run, the CQA results. "
           "Control charts say whether the process is stable, capability whether it meets its specs, and each lot "
           "is checked against the saved design-space decision. Every save is a new lot data version with the "
           "audit trail.")


def stored_lots() -> pd.DataFrame:
    """The study's recorded lots (an empty lots sheet when none or the study is not saved)."""
    try:
        recorded = read("lots", study.name)
    except DoeError:
        return lots_template(study)
    return recorded if len(recorded) else lots_template(study)


def column_config() -> dict:
    """The editor's columns: the factors' levels to choose from, units in the headers."""
    config = {"Lot": st.column_config.TextColumn("Lot", required=True),
              "Date": st.column_config.TextColumn("Date (YYYY-MM-DD)")}
    for f in study.factors:
        config[f.name] = (st.column_config.SelectboxColumn(f.name, options=list(f.levels)) if f.is_categorical
                          else st.column_config.NumberColumn(f"{f.name} ({f.units})" if f.units else f.name))
    for r in study.responses:
        config[r.name] = st.column_config.NumberColumn(f"{r.name} ({r.units})" if r.units else r.name)
    return config


SHEET = Sheet("lots", "lot", lambda source, name: read_lots(study, source, name), merge_lots, compare_lots,
              column_config=column_config())
lots = stored_lots()
show_saved(SHEET)
if is_example(study) and not len(lots) and st.button(
        "Load the example lots (simulated)", type="primary", key="load_example_lots",
        help="30 lots of the example process around an interior set point, with an Agitation excursion (L19) "
             "and a Trypsin-EDTA deviation (L26) (data/msc_lots.csv, simulated by data/simulate_lots.py)."):
    save(SHEET, study, read_lots(study, LOTS_FILE.read_bytes(), LOTS_FILE.name).table, "Example lots (simulated)")
upload(SHEET, study, lots)
with st.expander("Type or change lots", expanded=not len(lots)):
    st.caption("One row per lot; add rows at the bottom. A changed or removed saved lot needs a reason.")
    editor(SHEET, study, lots, LOTS_REASON)
if not len(lots):
    st.info("No lots recorded yet: upload a lots sheet or type the lots above"
            + (", or load the example lots." if is_example(study) else "."))
    st.stop()

versions = read("lot_versions", study.name)
last = versions.iloc[-1]
st.caption(f"{len(lots)} lots: lot data version {int(last['version'])} ({str(last['content_hash'])[:12]}), "
           f"{last['created_by']}, {str(last['created_at'])[:16]} UTC.")
if "Notes" in lots and lots["Notes"].astype(str).str.contains("simulated", case=False).any():
    st.warning("These lots are **simulated** (data/simulate_lots.py), not measured.")
with st.expander("Every lot"):
    show_table(lots)
    st.download_button("Download the lots (CSV)", safe_csv(lots), "lots.csv", "text/csv", key="download_lots")

cqas = [r for r in study.responses if r.name in lots and pd.to_numeric(lots[r.name], errors="coerce").notna().sum() >= 3]
if not cqas:
    st.info("No CQA has results for 3 or more lots yet.")
    st.stop()
labels = lots["Lot"].astype(str).tolist()


def saved_space() -> tuple[Decision, Any, Any] | None:
    """The saved decision, the fits' predictive and the design space on the decision's terms (None: no decision
    or no runs; the reason shown)."""
    decision_row = latest("decisions", study.name)
    runs = current_runs()
    if decision_row is None or runs is None:
        return None
    from doe.space import DesignSpace

    decision = Decision.from_row(decision_row)
    analysis = current_analysis(study, runs)
    key = analysis.digest + ("" if decision.random_effects is None else f"|{decision.random_effects}")
    pm = predictive(study, analysis.models, key, decision.random_effects)
    return decision, (pm, key), DesignSpace(pm).on_decision(decision)


NO_DECISION = ("No design-space decision saved yet: fit the models and save a decision on the Design space page; "
               "then {what}.")
CHART_NAMES = {"imr": "Individuals and moving range", "xbar-r": "X-bar and R", "xbar-s": "X-bar and S"}
PHASES = {"one": "Phase I: limits from these lots", "baseline": "Phase II: limits from the first lots",
          "saved": "Phase II: limits from a saved file"}


def chart_section(cqa: str, kind: str) -> None:
    """The chart of ``cqa`` in the phase chosen, its signals and the limits to save."""
    values = pd.to_numeric(lots[cqa], errors="coerce")
    keep = values.notna().to_numpy()
    if not keep.all():
        st.caption(f"{int((~keep).sum())} lots without a {cqa} result are not charted.")
    xbar = kind != "imr"
    points = (list(dict.fromkeys(lots.loc[keep, "Subgroup"].astype(str))) if xbar
              else [x for x, k in zip(labels, keep, strict=True) if k])
    args: dict[str, Any] = {"subgroups": lots.loc[keep, "Subgroup"].astype(str).tolist() if xbar else None,
                            "labels": None if xbar else points}
    phase = st.radio("Control limits", list(PHASES), format_func=PHASES.get, horizontal=True, key="chart_phase",
                     help="Phase I sets the limits from the lots shown (leave out lots with an assignable cause). "
                          "Phase II charts new lots against limits set before: from the first lots (e.g. the "
                          "process performance qualification lots) or from a limits file saved from phase I.")
    baseline, end = None, None
    try:
        if phase == "one":
            exclude = st.multiselect("Leave out of the limits (assignable cause)", points, key="chart_exclude")
            charts = control_chart(values[keep].tolist(), kind, exclude=exclude, **args)
        elif phase == "baseline":
            c = st.columns(2)
            end = c[0].selectbox("Phase I ends at", points[:-1], index=max(0, min(len(points) - 2, len(points) * 2 // 3 - 1)),
                                 key="chart_baseline", help="The last lot (X-bar: subgroup) whose values set the limits.")
            exclude = c[1].multiselect("Leave out of the phase I limits", points[: points.index(end) + 1],
                                       key="chart_baseline_exclude")
            baseline, charts = phased_charts(values[keep].tolist(), kind, end, exclude=exclude, **args)
        else:
            saved = st.file_uploader("Phase I limits (JSON, from 'Download these limits')", type=["json"],
                                     key="chart_limits_file")
            if saved is None:
                st.info("Upload the limits saved from a phase I chart of the same type.")
                return
            try:
                limits = json.loads(saved.getvalue().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                st.error(f"{saved.name} is not a JSON file ({exc}); upload the file 'Download these limits' saved.")
                return
            charts = control_chart(values[keep].tolist(), kind,
                                   limits=limits.get("limits", limits) if isinstance(limits, dict) else limits, **args)
    except DoeError as exc:
        st.error(f"No chart: {exc}")
        return
    units = next(r.units for r in study.responses if r.name == cqa) or ""
    if baseline is not None:
        with st.expander(f"Phase I: lots {points[0]} to {end} set the limits"):
            st.plotly_chart(control_figure(baseline, units=units, note=study.name, response=cqa), width="stretch")
    limits_from = (f"lots {points[0]} to {end}" if phase == "baseline" else
                   "the saved file" if phase == "saved" else "")
    st.plotly_chart(control_figure(charts, units=units, note=study.name, response=cqa, limits_from=limits_from),
                    width="stretch")
    signals = signals_frame(charts)
    if len(signals):
        st.markdown("**Signals (Nelson rules)**")
        show_table(signals)
    else:
        st.success("No point beyond the limits and no run rule fired.")
    for note in charts.notes:
        st.caption(note)
    source = baseline or charts
    st.download_button("Download these limits (JSON, for phase II)", json.dumps(source.limits(), indent=1),
                       f"{cqa} {kind} limits.json".replace(" ", "_"), "application/json", key="download_limits")
    extra = {"baseline": f" --baseline {end}", "saved": " --limits limits.json"}
    st.caption(f"Headless: `python -m doe chart lots.csv --response \"{cqa}\" --type {kind}"
               + ("" if not xbar else " --subgroup Subgroup") + extra.get(phase, "") + " --json chart.json`.")


def capability_section(r: Any) -> None:
    """Capability of CQA ``r`` with its figure, the tolerance interval and the Ppk predicted at the set point."""
    values = pd.to_numeric(lots[r.name], errors="coerce").dropna()
    try:
        cap = capability(values.tolist(), lower=r.lower, upper=r.upper, response=r.name)
    except DoeError as exc:
        st.error(f"No capability: {exc}")
        return
    predicted = None
    try:
        found = saved_space()
        if found is not None:
            decision, _, space = found
            predicted = predicted_capability(space, study, decision.set_point, decision.setpoint_sd, r.name)
    except DoeError as exc:
        st.warning(f"No predicted Ppk: {exc}")
    m = st.columns(5)
    m[0].metric("Cpk", "n/a" if cap.cpk is None else f"{cap.cpk.value:.2f}",
                help=None if cap.cpk is None or cap.cpk.ci_low is None
                else f"95 % CI {cap.cpk.ci_low:.2f} to {cap.cpk.ci_high:.2f}")
    m[1].metric("Ppk observed", "n/a" if cap.ppk is None else f"{cap.ppk:.2f}",
                help=f"From the overall SD of the {cap.n} lots.")
    m[2].metric("Ppk predicted",
                "n/a" if predicted is None or predicted["ppk"] is None else f"{predicted['ppk']:.2f}",
                help="At the design-space decision's set point, from the fitted models"
                     + ("" if predicted is None else f": {predicted['method']}"))
    m[3].metric("Expected out of spec", format_percent(cap.expected_out_percent),
                help="From the normal distribution with the overall SD.")
    m[4].metric("Observed out of spec", format_percent(cap.observed_out_percent))
    if predicted is None:
        st.caption(NO_DECISION.format(what="the Ppk the models predict at its set point is shown beside the observed"))
    else:
        st.caption(f"Ppk predicted at the set point of {decision.source}: {predicted['method']} Mean "
                   f"{format_number(predicted['mean'])}, SD {format_number(predicted['sd'], 3)}, "
                   f"{format_percent(predicted['expected_out_percent'])} out of spec.")
    st.plotly_chart(capability_figure(values.tolist(), cap, units=r.units or "", note=study.name), width="stretch")
    if cap.tolerance_interval is not None:
        st.markdown(cap.tolerance_interval.describe())
    for note in cap.notes:
        st.caption(note)
    st.caption(f"Headless: `python -m doe capability lots.csv --response \"{r.name}\""
               + (f" --lower {r.lower:g}" if r.lower is not None else "")
               + (f" --upper {r.upper:g}" if r.upper is not None else "") + " --json capability.json`.")


def space_section() -> None:
    """Every lot against the saved decision: the table and the lots on the probability map."""
    try:
        found = saved_space()
        if found is None:
            st.info(NO_DECISION.format(what="each lot is checked against it here"))
            return
        decision, (pm, key), space = found
        checks = check_lots(space, decision, lots)
    except DoeError as exc:
        st.error(f"The lots cannot be checked: {exc}")
        return
    outside = [c for c in checks if not c.in_space]
    (st.warning if outside else st.success)(
        f"{len(checks) - len(outside)} of {len(checks)} lots ran inside the design space of {decision.source}"
        + (f"; outside: {', '.join(c.lot for c in outside)}." if outside else "."))
    show_table(lots_frame(checks))
    numeric = [f.name for f in study.factors if not f.is_categorical]
    if len(numeric) < 2:
        st.caption("The map needs two continuous factors; the table above checks every lot.")
        return
    c = st.columns(2)
    x = c[0].selectbox("Map: x axis", numeric, key="lots_map_x")
    y = c[1].selectbox("Map: y axis", [n for n in numeric if n != x], key="lots_map_y")
    fixed = {k: v for k, v in decision.set_point.items() if k not in (x, y)}
    g = grid(pm, key, x, y, as_json(fixed), decision.threshold, as_json(decision.setpoint_sd), "null")
    st.plotly_chart(lots_on_map_figure(g, checks, x, y, study=study, set_point=decision.set_point,
                                       note=study.name), width="stretch")
    st.caption("The map holds the other factors at the decision's set point; each lot is drawn at its own settings "
               "of the two axes.")


charts_tab, capability_tab, space_tab = lazy_tabs(["Control charts", "Capability", "Lots in the design space"],
                                                  key="manufacturing_tab")
if shown(charts_tab):
    with charts_tab:
        c = st.columns(2)
        cqa = c[0].selectbox("CQA", [r.name for r in cqas], key="chart_cqa")
        kinds = (["xbar-r", "xbar-s"] if "Subgroup" in lots and lots["Subgroup"].notna().any() else []) + ["imr"]
        kind = c[1].selectbox("Chart", kinds, key="chart_type", format_func=CHART_NAMES.get)
        chart_section(cqa, kind)

if shown(capability_tab):
    with capability_tab:
        specs = [r for r in cqas if r.lower is not None or r.upper is not None]
        if not specs:
            st.info("No CQA with results has spec limits: set them on the Study page.")
        else:
            name = st.selectbox("CQA", [r.name for r in specs], key="capability_cqa")
            capability_section(next(x for x in specs if x.name == name))

if shown(space_tab):
    with space_tab:
        space_section()
