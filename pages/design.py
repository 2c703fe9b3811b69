"""Design: choose a design type, generate it, see how good it is, download the run sheet."""

import pandas as pd
import streamlit as st

from doe.design import read_design
from doe.errors import DoeError
from doe.generators import ALPHAS, TYPE_LABELS, add_axial, augment, default_model, default_runs, fold_over
from pages._app.common import lazy_tabs, require_study, show_table, shown
from pages._app.design_records import designs_section, save_area
from pages._app.designs import (
    FORM_DEFAULTS,
    design_form,
    evaluation,
    evaluation_model,
    generate_design,
    next_seed,
    used_seed,
)
from pages._app.services import design_plot, evaluation_figure, power
from pages._app.state import state


def keep(new_design) -> None:
    """Show ``new_design``; it is not saved until the user names it and presses Save (pages/_app/design_records.py)."""
    state.design = new_design
    del state.design_id
    state.design_gen += 1


study = require_study()
st.title("Design")
st.caption(f"Study **{study.name}**: " + ", ".join(f"{f.name} ({f.describe_range()})" for f in study.factors))

kind, options, go = design_form(study)
failed = False
if go:
    blank_seed = options.get("seed") is None
    options["seed"] = next_seed() if blank_seed else options["seed"]
    try:
        with st.spinner("Generating the design..."):
            new_design = generate_design(study, kind, options)
        if blank_seed:
            used_seed()
        keep(new_design)
    except DoeError as exc:
        st.error(f"No design: {exc}")
        failed = True
model, criterion = options.get("model"), options.get("criterion", FORM_DEFAULTS["criterion"])

with st.expander("Import or augment an existing design"):
    upload = st.file_uploader("Existing run sheet (CSV or Excel), one column per factor (headers as the "
                              "factor names, units allowed: 'Agitation (rpm)')",
                              type=["csv", "xlsx", "txt"])
    if upload is not None and st.button("Use this design"):
        try:
            keep(read_design(study, upload.getvalue(), upload.name))
        except DoeError as exc:
            st.error(f"Could not read the design: {exc}")
    current = state.design
    if current is not None:
        c1, c2, c3 = st.columns(3)
        add_n = c1.number_input("Runs to add", min_value=1, value=4, step=1)
        alpha = c3.selectbox("Added star points: axial distance", ALPHAS, index=ALPHAS.index(FORM_DEFAULTS["alpha"]), key="augment_alpha")
        try:
            if c1.button("Add runs (optimal)"):
                keep(augment(current, add_n, model=model or None, criterion=criterion))
            if c2.button("Fold over (all factors)"):
                keep(fold_over(current))
            if c3.button("Add axial + centre points"):
                keep(add_axial(current, alpha=alpha))
        except DoeError as exc:
            st.error(f"Not augmented: {exc}")

designs_section(study)
design = state.design
if design is None:
    st.info(f"Press **Generate design**. The default is a D-optimal design for the model "
            f"'{default_model(study)}' in {default_runs(study)} runs.")
    st.stop()

st.subheader(f"{TYPE_LABELS.get(design.kind, design.kind)}: {design.n_runs} runs"
             + (f" in {design.n_blocks} blocks" if design.n_blocks > 1 else "")
             + (f" in {design.n_whole_plots} whole plots" if design.n_whole_plots else ""))
st.caption(f"Seed {design.seed} (recorded: the same seed gives the same design)."
           if design.seed is not None else "Imported design.")
save_area(study, design)
if failed:  # the warnings below are of the previous design: not shown as if they were the new one's
    st.info("No new design was made (see the error above). Below is the previous design, still the current one.")
else:
    for w in design.warnings:
        st.warning(w)

eval_model = st.text_input("Evaluate for model", evaluation_model(design))
try:
    design_key = design.digest
    ev = evaluation(study, design, eval_model)
    ev_key = f"{eval_model}|{design_key}"
except DoeError as exc:
    st.error(f"Cannot evaluate: {exc}")
    st.stop()

m = st.columns(5)
m[0].metric("Estimable", "yes" if ev.estimable else "no", help=f"rank {ev.rank} of {ev.p} model columns")
for col, label, value in [(m[1], "D-efficiency", ev.d_efficiency), (m[2], "A-efficiency", ev.a_efficiency),
                          (m[3], "G-efficiency", ev.g_efficiency)]:
    col.metric(label, "n/a" if value is None else f"{value:.1f} %")
m[4].metric("Avg prediction variance", "n/a" if ev.avg_prediction_variance is None
            else f"{ev.avg_prediction_variance:.3f}", help="relative to sigma^2, over the design region")
if ev.split_plot:
    st.info(ev.randomisation_note())
for w in [] if failed else ev.warnings:
    st.warning(w)

tabs = lazy_tabs(["Run sheet", "Design plot", "Correlations", "Prediction variance", "Power", "VIF",
                  "Aliases", "Design info"], key="design_tab")
with tabs[0]:
    if shown(tabs[0]):
        st.dataframe(design.table, width="stretch", hide_index=True,
                     column_config={f.name: st.column_config.Column(f.label()) for f in study.factors})
        c1, c2 = st.columns(2)
        c1.download_button("Download run sheet (CSV)", design.to_csv(), file_name="run_sheet.csv",
                           mime="text/csv", type="primary", width="stretch")
        c2.download_button("Download run sheet (Excel)", design.to_xlsx, file_name="run_sheet.xlsx",
                           width="stretch")  # the workbook is written when the button is pressed
with tabs[1]:
    if shown(tabs[1]):
        st.plotly_chart(design_plot(design, f"{design.kind}|{design.seed}|{design_key}"), width="stretch")
with tabs[2]:
    if shown(tabs[2]):
        st.plotly_chart(evaluation_figure(ev, ev_key, "corr"), width="stretch")
with tabs[3]:
    if shown(tabs[3]):
        st.plotly_chart(evaluation_figure(ev, ev_key, "fds"), width="stretch")
with tabs[4]:
    if shown(tabs[4]):
        snr = st.slider("Signal-to-noise ratio for power (effect / sigma)", 0.25, 3.0, 1.0, 0.25)
        power_table, power_fig = power(ev, ev_key, snr)
        st.plotly_chart(power_fig, width="stretch")
        show_table(power_table.drop(columns="noncentrality"))
with tabs[5]:
    if shown(tabs[5]):
        st.plotly_chart(evaluation_figure(ev, ev_key, "vif"), width="stretch")
with tabs[6]:
    if shown(tabs[6]):
        if design.info.get("alias structure"):
            st.markdown(f"**Generators:** {design.info['generators']}  \n"
                        f"**Defining relation:** {design.info['defining relation']}  \n"
                        f"**Letters:** {design.info['letters']}")
            st.dataframe(pd.DataFrame({"Alias chain": design.info["alias structure"].split("; ")}),
                         hide_index=True)
        rows = [{"Model term": a["term"], "Aliased with (omitted 2FI: coefficient)":
                 ", ".join(f"{k}: {v:+.3g}" for k, v in a["aliased_with"].items())}
                for a in ev.aliases if a["aliased_with"]]
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        else:
            st.success("No model term is biased by an omitted two-factor interaction.")
        if ev.inestimable:
            show_table(pd.DataFrame(ev.inestimable))
with tabs[7]:
    if shown(tabs[7]):
        info = {"Design type": TYPE_LABELS.get(design.kind, design.kind), "Runs": design.n_runs,
                "Model": design.model or "", "Seed": design.seed, **design.info}
        st.dataframe(pd.DataFrame({"Item": list(info), "Value": [str(v) for v in info.values()]}),
                     hide_index=True, width="stretch")
