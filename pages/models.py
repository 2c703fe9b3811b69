"""Models: fit a response-surface model to each CQA; ANOVA, coefficients, diagnostics."""

import pandas as pd
import streamlit as st

from doe.analysis import REDUCE_METHODS, ModelChoice, default_choice, responses_with_results
from doe.error_structure import (
    comparison_words,
    mixed_anova_table,
    mixed_coefficients_table,
    randomisation_comparison,
    variance_components_table,
)
from doe.errors import DoeError
from doe.mixed import DDF_LABELS
from doe.model import preset_terms
from doe.plots import model as mf
from doe.present import lenth_table
from pages._app.common import current_runs, lazy_tabs, require_study, show_table, shown
from pages._app.live_plot import preload_live_charts
from pages._app.persist import analysis_panel
from pages._app.services import box_cox_figure, diagnostic_figures, fit, fits, summary_table
from pages._app.speed import prefetch_fits
from pages._app.state import MODEL_TAB, state

TRANSFORMS = ["none", "log", "log10", "sqrt", "logit", "boxcox"]


study = require_study()
runs = current_runs()
st.title("Models")
if runs is None or not responses_with_results(study, runs):
    st.info("No results yet: enter or upload results on the Runs page first.")
    if st.button("Go to Runs", key="to_runs"):
        st.switch_page("pages/runs.py")
    st.stop()

names = responses_with_results(study, runs)
choices = state.model_choices
default = default_choice()
cqa = st.selectbox("CQA", names, key="cqa",
                   format_func=lambda n: study.response(n).described())
choice = ModelChoice.from_dict(choices.get(cqa, default.to_dict()))
run_ids = runs["Run"].tolist() if "Run" in runs else list(range(1, len(runs) + 1))

with st.form(f"choice_{cqa}"):
    c1, c2, c3 = st.columns([3, 1, 1])
    model = c1.text_input("Model", choice.model, help="linear, interactions, quadratic, full, or terms "
                          "such as 'Agitation + Medium + Agitation:Medium + Agitation^2'")
    transform = c2.selectbox("Transform", TRANSFORMS, index=TRANSFORMS.index(choice.transform)
                             if choice.transform in TRANSFORMS else 0)
    anova_type = c3.selectbox("ANOVA sums of squares", [2, 1, 3], index=[2, 1, 3].index(choice.anova_type),
                              format_func=lambda t: {1: "Type I (sequential)", 2: "Type II (default)",
                                                     3: "Type III"}[t])
    c1, c2, c3, c4 = st.columns(4)
    reduce = c1.checkbox("Backward reduction (hierarchical)", choice.reduce)
    method = c2.selectbox("Reduce by", REDUCE_METHODS, index=REDUCE_METHODS.index(choice.reduce_method),
                          format_func=lambda m: {"p": "p-value", "aicc": "AICc"}[m])
    alpha_out = c3.number_input("p to remove", 0.01, 0.5, choice.reduce_alpha, 0.01)
    exclude = c4.multiselect("Exclude runs", run_ids, [r for r in choice.exclude if r in run_ids])
    ddf = choice.ddf
    if study.has_random_effects:
        ddf = st.radio("Mixed-model denominator df", list(DDF_LABELS), index=list(DDF_LABELS).index(choice.ddf),
                       format_func=DDF_LABELS.get, horizontal=True, key=f"ddf_{cqa}",
                       help="How the F and t tests of the mixed model (whole plots, donors, lots as random effects) "
                            "count the degrees of freedom of their error: Kenward-Roger (default; JMP, SAS) or "
                            "Satterthwaite (lmerTest's default).")
    if st.form_submit_button("Fit model", type="primary", key="fit"):
        choice = ModelChoice(model=model, transform=transform, reduce=reduce, reduce_method=method,
                             reduce_alpha=alpha_out, anova_type=anova_type, exclude=exclude, ddf=ddf)
        choices[cqa] = choice.to_dict()

fits(study, runs, choices, [n for n in names if n != cqa])  # every CQA once: switching the CQA reads cached fits
res = fit(study, runs, cqa, choice.to_dict())
if res.error:
    st.error(f"{cqa} cannot be fitted with this model: {res.error}")
    st.stop()
fm = res.model
st.caption(f"{fm.n} runs used; model: {fm.model_spec}; response {fm.transform_label}; coefficients in "
           "coded units (-1..+1; categorical factors effect-coded).")
if fm.excluded:
    st.caption("Left out of this fit: " + "; ".join(f"run {e['run']} ({e['reason']})" for e in fm.excluded))
lof = fm.lack_of_fit
ols_metrics = [("R²", fm.r2), ("Adj. R²", fm.adj_r2), ("Pred. R²", fm.pred_r2), ("RMSE", fm.rmse),
               ("CV %", fm.cv_percent), ("Adeq. precision", fm.adeq_precision),
               ("Lack of fit p", lof["p"] if lof else float("nan"))]
if fm.mixed is not None:  # the mixed model's own numbers first; the least-squares ones are for comparison
    components = variance_components_table(fm)
    mixed_metrics = [(f"SD {c.lower()}", sd) for c, sd in zip(components["Component"], components["Standard deviation"])]
    mixed_metrics += [(f"ICC {k.lower()}", v) for k, v in fm.mixed.icc.items()]
    m = st.columns(max(len(mixed_metrics), 4))
    for col, (label, value) in zip(m, mixed_metrics):
        col.metric(label, "n/a" if pd.isna(value) else f"{value:.3g}")
    with st.expander("Least-squares statistics, as if the runs were completely randomised (for comparison only)"):
        m = st.columns(7)
        for col, (label, value) in zip(m, ols_metrics):
            col.metric(label, "n/a" if pd.isna(value) else f"{value:.3g}")
else:
    m = st.columns(7)
    for col, (label, value) in zip(m, ols_metrics):
        col.metric(label, "n/a" if pd.isna(value) else f"{value:.3g}")
if fm.pred_r2_excluding_blocks is not None:
    blocked = fm.pred_r2_excluding_blocks
    st.caption("Blocked data: Pred. R² above is 1 − PRESS / total SS (blocks included in the total). Design-Expert's "
               "convention leaves the blocks' sum of squares out of the total: predicted R² (excluding blocks) = "
               + ("n/a" if pd.isna(blocked) else f"{blocked:.3g}") + ".")
for w in fm.warnings:
    st.warning(w)
if fm.mixed is not None:
    st.info(f"**Mixed model (REML, {fm.mixed.df_label} df)**: the runs share "
            + " and ".join(k.lower() + "s" for k in fm.mixed.components if k != "Residual")
            + ". The ANOVA and coefficients below test each term against the error of its own stratum; ICC: each "
              "random effect's share of the total variance. The least-squares statistics and the diagnostics treat "
              "the runs as completely randomised; the **Error structure** tab compares the two analyses.")
elif study.has_random_effects:
    st.warning(f"{cqa} is analysed as completely randomised: its runs have no usable "
               + " / ".join(["Whole plot"] * study.split_plot + study.random_effects)
               + " column (see the notes above). Add the column to the run sheet to fit the mixed model.")
analysis_panel(study)
prefetch_fits(study, runs)  # with these choices: the design space is drawn in the background

with st.expander("Add or remove terms by hand"):
    candidates = list(dict.fromkeys([t.name for t in preset_terms(study, "quadratic")] +
                                    [t.name for t in fm.model_terms]))
    keep = st.multiselect("Terms in the model", candidates, [t.name for t in fm.model_terms],
                          key=f"terms_{cqa}")
    if st.button("Refit with these terms", key="refit_terms") and keep:
        choices[cqa] = ModelChoice(model=" + ".join(keep), transform=choice.transform,
                                   anova_type=choice.anova_type, exclude=choice.exclude).to_dict()
        st.rerun()

tab_names = ["ANOVA", "Coefficients", "Equation", "Fit summary", "Diagnostics", "Effects", "Box-Cox",
             "Canonical analysis"] + (["Error structure"] if fm.mixed is not None else [])
tabs = lazy_tabs(tab_names, key=MODEL_TAB)
with tabs[0]:
    if shown(tabs[0]):
        if fm.mixed is not None:
            st.markdown(f"**Type III tests of the mixed model** ({fm.mixed.df_label} denominator df)")
            show_table(mixed_anova_table(fm))
            st.markdown("**Variance components**")
            show_table(variance_components_table(fm))
            with st.expander("Least-squares ANOVA, as if the runs were completely randomised (for comparison only)"):
                show_table(fm.anova)
        else:
            show_table(fm.anova)
        if res.steps:
            st.caption("Backward reduction removed: " + ", ".join(
                f"{s['removed']}" for s in res.steps if s.get("removed")))
with tabs[1]:
    if shown(tabs[1]):
        if fm.mixed is not None:
            show_table(mixed_coefficients_table(fm))
            st.caption("Generalised least squares at the REML variance components; standard errors "
                       + ("Kenward-Roger adjusted." if fm.mixed.ddf == "kr" else "unadjusted (Satterthwaite)."))
        else:
            show_table(fm.coefficients)
with tabs[2]:
    if shown(tabs[2]):
        st.markdown("**Coded units**")
        st.code(fm.equation_coded, language=None)
        st.markdown("**Actual units**")
        st.code(fm.equation_actual, language=None)
with tabs[3]:
    if shown(tabs[3]):
        show_table(summary_table(study, runs, fm))
        st.caption("Each order is tested against the previous one; the suggested order has significant "
                   "added terms and, where it can be tested, no significant lack of fit.")
with tabs[4]:
    if shown(tabs[4]):
        residual_fig, influence_fig = diagnostic_figures(study, runs, fm, choice.to_dict())
        st.plotly_chart(residual_fig, width="stretch")
        st.plotly_chart(influence_fig, width="stretch")
        show_table(fm.diagnostics)
with tabs[5]:
    if shown(tabs[5]):
        if fm.effects is None:
            st.info("Effects, the half-normal plot and Lenth's method apply to two-level designs.")
        else:
            st.plotly_chart(mf.half_normal_plot(fm), width="stretch")
            st.plotly_chart(mf.pareto_chart(fm), width="stretch")
            show_table(lenth_table(fm.lenth))
with tabs[6]:
    if shown(tabs[6]):
        fig = box_cox_figure(study, runs, fm)
        if isinstance(fig, str):
            st.info(f"No Box-Cox plot: {fig}")
        else:
            st.plotly_chart(fig[0], width="stretch")
            st.markdown(fig[1])
with tabs[7]:
    if shown(tabs[7]):
        sp = fm.stationary_point
        if sp:
            st.markdown(f"Stationary point: **{sp['kind']}**, predicted {sp['predicted']:.4g}"
                        + ("" if sp["inside_region"] else " (outside the study ranges: an extrapolation)"))
            factors = pd.Index([fm.study.factor(k).label() for k in sp["coded"]], name="factor")
            show_table(pd.DataFrame({"coded": list(sp["coded"].values()), "Actual units": list(sp["actual"].values())},
                                    index=factors))
            show_table(pd.DataFrame(sp["eigenvectors"], index=factors,
                                    columns=[f"Eigenvector for λ = {v:.4g}" for v in sp["eigenvalues"]]))
        elif all(t.degree == 1 and len(t.parts) == 1 for t in fm.model_terms):
            try:
                st.markdown("**Path of steepest ascent** (first-order model, from the design centre)")
                show_table(fm.steepest_ascent())
            except DoeError as exc:
                st.info(f"No steepest-ascent path: {exc}")
        else:
            st.info("Canonical analysis needs a second-order model in the continuous factors; "
                    "the path of steepest ascent needs a first-order model.")

if fm.mixed is not None:
    with tabs[8]:
        if shown(tabs[8]):
            for sentence in comparison_words(fm):
                st.markdown(sentence)
            show_table(randomisation_comparison(fm))

preload_live_charts()  # last (takes no room): the browser loads the design-space map's plotly.js while idle
