"""Design space (ICH Q8): where every CQA meets its spec with high probability; PAR, NOR, set point."""

import json

import pandas as pd
import streamlit as st

from doe.analysis import responses_with_results
from doe.errors import DoeError
from doe.plots import space as sf
from doe.space import (
    RANDOM_EFFECTS_MODES,
    describe_random_effects,
    edge_limits,
    par_frame,
    random_effect_names,
    robust_set_point,
    set_point_frame,
    set_point_report,
)
from pages._app.common import (
    current_analysis,
    current_runs,
    lazy_tabs,
    require_study,
    show_table,
    shown,
)
from pages._app.live_plot import live_chart
from pages._app.persist import data_version_label, decision_panel
from pages._app.services import as_json, bound_at, grid, par_at, par_ends, predictive, report_at
from pages._app.spaces import DEFAULT_THRESHOLD, assurance_controls, metrics, open_view, opened_note
from pages._app.speed import profiled, script_run
from pages._app.state import SPACE_THRESHOLD, SPACE_X, SPACE_Y, state

VIEWS = ("Probability map", "Panels by level", "Overlay (means)", "Interval overlay")


study = require_study()
runs = current_runs()
st.title("Design space")
if runs is None or not responses_with_results(study, runs):
    st.info("No fitted models yet: enter results on the Runs page and check the models first.")
    st.stop()
analysis = current_analysis(study, runs)
for n, err in analysis.failures.items():
    st.warning(f"{n} is left out: its model cannot be fitted ({err}).")
models = analysis.models
key = analysis.digest  # the design space of these fits: study, data and model choices
random_effects = random_effect_names(models)
mode = None
if random_effects:
    mode = st.radio(
        "Probability for", RANDOM_EFFECTS_MODES, horizontal=True, key="space_random_effects",
        format_func=lambda m: describe_random_effects(m, random_effects) + (" (default)" if m == "new" else ""),
        help=f"The CQA models have random effects ({', '.join(random_effects)}). 'New': the probability that a "
             "future run, with levels not seen in the study, meets every spec: their variances (with their "
             "uncertainty) widen the predictive. 'Average': conditional on the average levels, which ignores that "
             "variation and is optimistic for manufacturing.")
    key = f"{key}|{mode}"
try:
    with st.spinner("Drawing from the posterior of every CQA model..."):
        pm = predictive(study, models, key, mode)
except DoeError as exc:
    st.error(f"No design space: {exc}")
    st.stop()
st.caption(pm.describe())


def _use(settings: dict) -> None:
    for name, value in settings.items():
        state.set_point_value(name, value)


@st.fragment
def explore(study, pm, key: str, models: dict, runs) -> None:
    """Everything that follows the set point and the view: a widget here reruns only this part of the
    page (the fits, the predictive and the sidebar's saved state are not read again)."""
    with script_run(), profiled("Design space set point"):  # profiled: with DOE_PROFILE_DIR, a file per run
        _explore(study, pm, key, models, runs)


def _explore(study, pm, key: str, models: dict, runs) -> None:
    numeric = [f.name for f in study.factors if not f.is_categorical]
    if len(numeric) < 2:
        st.info("A design-space map needs two numeric factors.")
        st.stop()
    open_view(study, pm, key)  # a study just opened: its saved decision, else the informative opening view
    opened_note()
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    view = c1.radio("View", VIEWS, horizontal=True, key="space_view")
    if state.space_threshold is None:
        state.space_threshold = DEFAULT_THRESHOLD
    threshold = c2.slider("Probability threshold", 0.5, 0.99, step=0.01, key=SPACE_THRESHOLD)
    x = c3.selectbox("X axis", numeric, 0, key=SPACE_X)
    y = c4.selectbox("Y axis", [n for n in numeric if n != x], 0, key=SPACE_Y)

    apply = state.take("apply_set_point")
    if apply is not None:  # applied before the set-point widgets exist
        _use(apply)
    with st.sidebar:
        st.markdown("**Set point** (the map shows the slice through it)")
        set_point = {}
        for f in study.factors:
            if f.is_categorical:
                set_point[f.name] = st.selectbox(f.label(), f.levels, key=state.set_point_key(f.name))
            else:
                state.default_set_point(f.name, float(f.center))
                set_point[f.name] = st.slider(f.label(), float(f.low), float(f.high), step=(f.high - f.low) / 200,
                                              key=state.set_point_key(f.name))
        if st.button("Find the robust set point", key="find_robust", help="Maximum probability over all factors"):
            with st.spinner("Searching every level combination..."):
                best = robust_set_point(pm, threshold=threshold)
            state.robust_result = best
            state.apply_set_point = best["settings"]
            st.rerun()
        with st.expander("Set-point variation"):
            sd = {f: st.number_input(f"SD of {study.factor(f).label()}", 0.0, float(study.factor(f).high -
                                     study.factor(f).low), key=state.setpoint_sd_key(f)) for f in numeric}
            sd = {k: v for k, v in sd.items() if v > 0}
        with st.expander("Normal operating ranges (NOR)"):
            nor = {}
            if st.checkbox("Check a NOR box", key="use_nor"):
                for f in (x, y):
                    fac = study.factor(f)
                    half = (fac.high - fac.low) / 20
                    lo, hi = st.slider(f"NOR of {fac.label()}", float(fac.low), float(fac.high),
                                       (max(fac.low, set_point[f] - half), min(fac.high, set_point[f] + half)),
                                       key=f"nor_{f}")
                    nor[f] = (lo, hi)
        assure = assurance_controls(sd)

    interval = None
    if view == "Interval overlay":
        c1, c2, c3 = st.columns(3)
        kind = c1.selectbox("Interval", ["prediction", "confidence", "tolerance"], key="iv_kind")
        level = c2.select_slider("Confidence", [0.80, 0.90, 0.95, 0.99], 0.95, key="iv_level")
        proportion = c3.select_slider("Proportion (tolerance)", [0.90, 0.95, 0.99], 0.99, key="iv_prop",
                                      disabled=kind != "tolerance")
        interval = {"kind": kind, "level": level, "proportion": proportion}

    categorical = [f.name for f in study.factors if f.is_categorical]
    if view == "Panels by level":
        if not categorical:
            st.info("Panels by level need a categorical factor.")
            st.stop()
        c1, c2 = st.columns(2)
        facet_col = c1.selectbox("One panel per level of", categorical, key="facet_col")
        facet_row = c2.selectbox("and rows by", ["(none)"] + [c for c in categorical if c != facet_col],
                                 key="facet_row")
        facet_row = None if facet_row == "(none)" else facet_row
    fixed = {k: v for k, v in set_point.items() if k not in (x, y)}
    sd_json, nor_json, sp_json = as_json(sd), as_json(nor), as_json(set_point)
    try:
        with st.spinner("Computing the design space with assurance..." if assure else "Computing the map..."):
            g = grid(pm, key, x, y, as_json(fixed), threshold, sd_json, json.dumps(interval), as_json(assure))
            level = g.assurance_level
            par = par_at(pm, key, sp_json, threshold, sd_json, level)
    except DoeError as exc:
        st.error(f"No design space: {exc}")
        st.stop()
    note = sf.footnote(study, data_version_label(study, runs))
    par_box = {f: par[f] for f in (x, y) if f in par and not isinstance(par[f], list)} if par else None
    if view == "Probability map":
        fig = sf.probability_map(g, study, set_point=set_point, par=par_box, nor=nor or None, note=note)
    elif view == "Panels by level":
        panels = {}
        for r in (study.factor(facet_row).levels if facet_row else [""]):
            for c in study.factor(facet_col).levels:
                panel_fixed = {**fixed, facet_col: c, **({facet_row: r} if facet_row else {})}
                panels[(r, c)] = grid(pm, key, x, y, json.dumps(panel_fixed, sort_keys=True), threshold,
                                      sd_json, json.dumps(None))
        fig = sf.probability_panels(panels, study, rows=facet_row, cols=facet_col, note=note)
    elif view == "Overlay (means)":
        fig = sf.overlay_plot(g, study, note=note)
    else:
        fig = sf.interval_overlay_plot(g, study, note=note)
    live_chart(fig, key="space_fig")
    if assure:
        st.caption(g.definition + ("" if view == "Probability map" else " This view shows the point estimate; "
                                   "the PARs and the set point use the assured design space."))

    try:  # after the map: the browser draws it while the set point's report is computed
        report, nor_check = report_at(pm, key, sp_json, threshold, sd_json, nor_json, level)
        bound = bound_at(pm, key, sp_json, assure["level"]) if assure else None
    except DoeError as exc:
        st.error(f"No set-point report: {exc}")
        st.stop()

    p = report["probability"]
    metrics(report, g, assure, bound)
    if par.reason:
        st.warning(par.reason)
    if nor_check is not None:
        (st.success if nor_check["inside"] else st.error)(nor_check["message"])
    decision_panel(study, threshold, set_point, par, nor, p, setpoint_sd=sd, assurance=None if not assure else
                   {**assure, "pointwise_level": level, "lower_bound_at_set_point": bound},
                   random_effects=pm.random_effects)

    tabs = lazy_tabs(["Set point", "Proven acceptable ranges", "Robust set point and desirability", "Export"],
                     key="space_tab")
    with tabs[0]:
        if shown(tabs[0]):
            show_table(set_point_frame(report))
            if view == "Probability map" and len(edges := edge_limits(g, study).table):
                st.markdown("**Which CQA ends the design space on this map** (along its edge)")
                show_table(edges)
    with tabs[1]:
        if shown(tabs[1]):
            show_table(par_frame(study, par, None if assure else par_ends(pm, key, sp_json, threshold, sd_json)))
            st.caption("One factor at a time, the others at the set point (ICH Q8(R2)); a PAR never extends "
                       "beyond the tested range. The design space is not the box of the PARs.")
    with tabs[2]:
        if shown(tabs[2]):
            best = state.robust_result
            if best:
                st.markdown(f"**Robust set point** (maximum probability {best['probability']:.3f}): " +
                            ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                      for k, v in best["settings"].items()))
                show_table(pd.DataFrame([{"CQA": k, "spec": v["spec"], "predicted": v["mean"], "95 % PI low":
                                          v["lower_95pi"], "95 % PI high": v["upper_95pi"]}
                                         for k, v in best["predictions"].items()]))
            if st.button("Find the desirability optimum (Derringer-Suich)", key="find_desirability"):
                from doe.desirability import optimize_desirability

                state.desirability_result = optimize_desirability(models, study)
            opt = state.desirability_result
            if opt:
                st.markdown(f"**Desirability optimum** D = {opt['desirability']:.3f}: " + ", ".join(
                    f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in opt["settings"].items()))
                at_opt = set_point_report(pm, opt["settings"], threshold=threshold)
                st.caption(f"P(all CQAs in spec) at the desirability optimum: {at_opt['probability']:.3f}")
                show_table(pd.DataFrame([{"CQA": k, "spec": v["spec"], "predicted": v["mean"], "95 % PI low":
                                          v["lower_95pi"], "95 % PI high": v["upper_95pi"],
                                          "d": opt["individual"].get(k)} for k, v in at_opt["predictions"].items()]))
                if st.button("Use it as the set point", key="use_desirability"):
                    state.apply_set_point = opt["settings"]
                    st.rerun()
    with tabs[3]:
        if shown(tabs[3]):
            st.download_button("Figure as interactive HTML", lambda: sf.export_figure(fig, "html"),
                               "design_space.html", mime="text/html", key="dl_html")  # written when pressed
            shown_now = json.dumps([view, x, y, set_point, threshold, sd, nor, assure], default=str)
            for fmt in ("png", "svg"):
                if st.button(f"Prepare {fmt.upper()}", key=f"prep_{fmt}"):
                    try:
                        state.set_image(fmt, (shown_now, sf.export_figure(fig, fmt)))
                    except sf.ExportError as exc:
                        st.error(str(exc))
                made = state.image(fmt)
                if made and made[0] == shown_now:  # an image of another view or set point is not offered
                    st.download_button(f"Download {fmt.upper()}", made[1], f"design_space.{fmt}", key=f"dl_{fmt}")


explore(study, pm, key, models, runs)
