"""Explore: profiler, contour and surface plots, main effects and interactions of a fitted CQA."""

import streamlit as st

from doe.analysis import responses_with_results
from doe.plots import model as mf
from pages._app.common import current_fit, current_runs, require_study

study = require_study()
runs = current_runs()
st.title("Explore the fitted models")
if runs is None or not responses_with_results(study, runs):
    st.info("No fitted models yet: enter results on the Runs page, then fit them on the Models page.")
    st.stop()

names = responses_with_results(study, runs)
cqa = st.selectbox("CQA", names, key="explore_cqa",
                   format_func=lambda n: study.response(n).described())
res = current_fit(study, runs, cqa)
if res.error:
    st.error(f"{cqa} has no usable model: {res.error} Change the model on the Models page.")
    st.stop()
fm = res.model
st.caption(f"Model: {fm.model_spec} ({fm.transform_label}); predictions in actual units with 95 % "
           "confidence intervals; blocks averaged out.")

with st.sidebar:
    st.markdown("**Factor settings**")
    settings = {}
    for f in study.factors:
        if f.kind == "continuous":
            step = (f.high - f.low) / 100
            settings[f.name] = st.slider(f.label(), float(f.low), float(f.high), float(f.center), step,
                                         key=f"set_{f.name}")
        elif f.kind == "discrete":
            settings[f.name] = st.select_slider(f.label(), f.levels, f.levels[len(f.levels) // 2],
                                                key=f"set_{f.name}")
        else:
            settings[f.name] = st.selectbox(f.label(), f.levels, key=f"set_{f.name}")

continuous = [f.name for f in study.factors if f.kind != "categorical"]
view = st.radio("View", ["Profiler", "Contour", "3D surface", "Main effects", "Interaction"],
                horizontal=True, key="explore_view")
if view == "Profiler":
    st.plotly_chart(mf.profiler(fm, settings), width="stretch")
elif view in ("Contour", "3D surface"):
    if len(continuous) < 2:
        st.info("Contour and surface plots need two numeric factors.")
        st.stop()
    c1, c2 = st.columns(2)
    x = c1.selectbox("X axis", continuous, 0, key="explore_x")
    y = c2.selectbox("Y axis", [c for c in continuous if c != x], 0, key="explore_y")
    fig = (mf.contour_plot if view == "Contour" else mf.surface_plot)(fm, x, y, settings, runs=runs)
    st.plotly_chart(fig, width="stretch")
elif view == "Main effects":
    st.plotly_chart(mf.main_effects_plot(fm, settings), width="stretch")
else:
    c1, c2 = st.columns(2)
    a = c1.selectbox("Factor on the axis", study.factor_names, key="explore_a")
    b = c2.selectbox("One line per level of", [n for n in study.factor_names if n != a], key="explore_b")
    st.plotly_chart(mf.interaction_plot(fm, a, b, settings), width="stretch")
