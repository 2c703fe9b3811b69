"""Manufacturing: the lots as run, their control charts, capability, and each lot against the design space."""

import pandas as pd
import streamlit as st

from doe.capability import capability
from doe.control_charts import control_chart
from doe.decision import Decision
from doe.design import safe_csv
from doe.errors import DoeError
from doe.lots import LOTS_FILE, check_lots, compare_lots, lots_frame, lots_template, merge_lots, read_lots
from doe.plots.control import control_figure
from doe.plots.manufacturing import capability_figure, lots_on_map_figure
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
charts_tab, capability_tab, space_tab = lazy_tabs(["Control charts", "Capability", "Lots in the design space"],
                                                  key="manufacturing_tab")
if shown(charts_tab):
    with charts_tab:
        c = st.columns(3)
        cqa = c[0].selectbox("CQA", [r.name for r in cqas], key="chart_cqa")
        has_subgroups = "Subgroup" in lots
        kinds = (["xbar-r", "xbar-s"] if has_subgroups else []) + ["imr"]
        kind = c[1].selectbox("Chart", kinds, key="chart_type",
                              format_func=lambda k: {"imr": "Individuals and moving range", "xbar-r": "X-bar and R",
                                                     "xbar-s": "X-bar and S"}[k])
        exclude = c[2].multiselect("Leave out of the limits (assignable cause)", labels, key="chart_exclude")
        values = pd.to_numeric(lots[cqa], errors="coerce")
        keep = values.notna().to_numpy()
        if not keep.all():
            st.caption(f"{int((~keep).sum())} lots without a {cqa} result are not charted.")
        try:
            charts = control_chart(values[keep].tolist(), kind, labels=[x for x, k in zip(labels, keep, strict=True) if k],
                                   subgroups=lots.loc[keep, "Subgroup"].astype(str).tolist() if kind != "imr" else None,
                                   exclude=exclude)
        except DoeError as exc:
            st.error(f"No chart: {exc}")
        else:
            units = next(r.units for r in study.responses if r.name == cqa) or ""
            st.plotly_chart(control_figure(charts, units=units, note=study.name), width="stretch")
            rows = [{"Chart": name, "Lot": v["lot"], "Rule": v["rule"]}
                    for name, ch in charts.charts.items() for v in ch.violations]
            if rows:
                st.markdown("**Signals (Nelson rules)**")
                show_table(pd.DataFrame(rows))
            else:
                st.success("No point beyond the limits and no run rule fired.")
            for note in charts.notes:
                st.caption(note)
            st.caption(f"Headless: `python -m doe chart lots.csv --response \"{cqa}\" --type {kind} --json chart.json`.")

if shown(capability_tab):
    with capability_tab:
        specs = [r for r in cqas if r.lower is not None or r.upper is not None]
        if not specs:
            st.info("No CQA with results has spec limits.")
        else:
            cqa = st.selectbox("CQA", [r.name for r in specs], key="capability_cqa")
            r = next(x for x in specs if x.name == cqa)
            values = pd.to_numeric(lots[cqa], errors="coerce").dropna()
            try:
                cap = capability(values.tolist(), lower=r.lower, upper=r.upper, response=cqa)
            except DoeError as exc:
                st.error(f"No capability: {exc}")
            else:
                m = st.columns(4)
                m[0].metric("Cpk", "n/a" if cap.cpk is None else f"{cap.cpk.value:.2f}",
                            help=None if cap.cpk is None or cap.cpk.ci_low is None
                            else f"95 % CI {cap.cpk.ci_low:.2f} to {cap.cpk.ci_high:.2f}")
                m[1].metric("Ppk", "n/a" if cap.ppk is None else f"{cap.ppk:.2f}")
                m[2].metric("Expected out of spec", f"{cap.expected_out_percent:.2g} %")
                m[3].metric("Observed out of spec", f"{cap.observed_out_percent:.2g} %")
                st.plotly_chart(capability_figure(values.tolist(), cap, units=r.units or "", note=study.name),
                                width="stretch")
                if cap.tolerance_interval is not None:
                    st.markdown(cap.tolerance_interval.describe())
                for note in cap.notes:
                    st.caption(note)
                st.caption(f"Headless: `python -m doe capability lots.csv --response \"{cqa}\""
                           + (f" --lower {r.lower:g}" if r.lower is not None else "")
                           + (f" --upper {r.upper:g}" if r.upper is not None else "") + " --json capability.json`.")

if shown(space_tab):
    with space_tab:
        decision_row = latest("decisions", study.name)
        runs = current_runs()
        if decision_row is None or runs is None:
            st.info("No design-space decision saved yet: fit the models and save a decision on the Design space "
                    "page, then each lot is checked against it here.")
        else:
            decision = Decision.from_row(decision_row)
            analysis = current_analysis(study, runs)
            key = analysis.digest + ("" if decision.random_effects is None else f"|{decision.random_effects}")
            from doe.space import DesignSpace

            try:
                pm = predictive(study, analysis.models, key, decision.random_effects)
                space = DesignSpace(pm).on_decision(decision)
                checks = check_lots(space, decision, lots)
            except DoeError as exc:
                st.error(f"The lots cannot be checked: {exc}")
            else:
                outside = [c for c in checks if not c.in_space]
                (st.warning if outside else st.success)(
                    f"{len(checks) - len(outside)} of {len(checks)} lots ran inside the design space of "
                    f"{decision.source}" + (f"; outside: {', '.join(c.lot for c in outside)}." if outside else "."))
                show_table(lots_frame(checks))
                numeric = [f.name for f in study.factors if not f.is_categorical]
                if len(numeric) >= 2:
                    c = st.columns(2)
                    x = c[0].selectbox("Map: x axis", numeric, key="lots_map_x")
                    y = c[1].selectbox("Map: y axis", [n for n in numeric if n != x], key="lots_map_y")
                    fixed = {k: v for k, v in decision.set_point.items() if k not in (x, y)}
                    g = grid(pm, key, x, y, as_json(fixed), decision.threshold, as_json(decision.setpoint_sd), "null")
                    st.plotly_chart(lots_on_map_figure(g, checks, x, y, study=study, set_point=decision.set_point,
                                                       note=study.name), width="stretch")
                    st.caption("The map holds the other factors at the decision's set point; each lot is drawn at its "
                               "own settings of the two axes.")
