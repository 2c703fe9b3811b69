"""Seed train: the passages as recorded (uploaded or typed), their growth kinetics per vessel family and
donor, and the growth rate of a time course of counts."""

import pandas as pd
import streamlit as st

from doe.design import safe_csv
from doe.errors import DoeError
from doe.growth import GROWTH_CURVE_FILE, PASSAGES_FILE, passage_template, read_passages
from doe.growth_curve import fit_growth_curve, read_growth_curve
from doe.passage_sheet import compare_passages, merge_passages
from doe.plots.seed_train import KINETICS, growth_curve_figure, kinetics_figure, pdl_figure
from pages._app.common import is_example, require_study, show_table
from pages._app.db import read
from pages._app.services import default_plan, growth
from pages._app.sheet_editor import Sheet, editor, save, show_saved, upload
from pages._app.state import PASSAGES_REASON

study = require_study()
st.title("Seed train")
st.caption("One row per vessel per passage: donor, passage number, vessel (from the vessel catalogue), cells "
           "seeded and harvested, hours in culture; viability, area and notes optional. From them: fold expansion, "
           "population doublings PD = log2(harvested / seeded), doubling time = hours / PD, harvest density and "
           "each donor's cumulative population doubling level. Every save is a new passage data version with the "
           "audit trail; changing a saved passage asks for a reason.")


def stored_passages() -> pd.DataFrame:
    """The study's recorded passages (empty when none or the study is not saved)."""
    try:
        return read("passages", study.name)
    except DoeError:
        return passage_template()


SHEET = Sheet("passages", "passage", read_passages, merge_passages, compare_passages, column_config={
    "Passage": st.column_config.NumberColumn("Passage", min_value=0, step=1, format="%d"),
    "Seeded cells": st.column_config.NumberColumn("Seeded cells", format="%.4g"),
    "Harvested cells": st.column_config.NumberColumn("Harvested cells", format="%.4g"),
    "Hours": st.column_config.NumberColumn("Hours in culture (h)"),
    "Viability": st.column_config.NumberColumn("Viability (%)"),
    "Area (cm2)": st.column_config.NumberColumn("Area (cm²; blank: catalogue)")})
stored = stored_passages()
versions = read("passage_versions", study.name) if len(stored) else None
show_saved(SHEET)

c1, c2 = st.columns(2)
if is_example(study) and not len(stored) and c1.button(
        "Load the example passages (simulated)", key="load_example_passages", type="primary",
        help="Three donors' seed trains from T-175 flasks to CellSTACK-40 and, in parallel, CellCube-25 "
             "(data/msc_passages.csv, simulated by data/simulate_passages.py)."):
    save(SHEET, study, read_passages(PASSAGES_FILE.read_bytes(), PASSAGES_FILE.name).table,
         "Example passages (simulated)")
c2.download_button("Download an empty passage sheet (CSV)", safe_csv(passage_template()), "passages_template.csv",
                   "text/csv", key="passage_template")
upload(SHEET, study, stored)
if not len(stored):
    st.info("No passages recorded yet: upload a passage sheet or type the passages below"
            + (", or load the example passages." if is_example(study) else "."))
editor(SHEET, study, stored, PASSAGES_REASON)


def kinetics_section() -> None:
    """The recorded passages' version line, downloads and growth kinetics."""
    last = versions.iloc[-1]
    st.caption(f"{len(stored)} passages saved: passage data version {int(last['version'])} "
               f"({str(last['content_hash'])[:12]}), {last['created_by']}, {str(last['created_at'])[:16]} UTC.")
    st.download_button("Download the passages (CSV)", safe_csv(stored), "passages.csv", "text/csv",
                       key="download_passages")
    if stored["Notes"].astype(str).str.contains("simulated", case=False).any():
        st.warning("These passages are **simulated** (data/simulate_passages.py), not measured.")

    st.header("Growth kinetics")
    by = st.radio("Group by", ["Family", "Vessel", "Donor"], horizontal=True, key="growth_by",
                  format_func=lambda b: {"Family": "Vessel family"}.get(b, b))
    try:
        summary = growth(stored, by)
    except DoeError as exc:
        st.error(f"No kinetics: {exc}")
        return
    show_table(summary.groups)
    for note in summary.notes:
        st.caption(note)
    quantity = st.selectbox("Show", list(KINETICS), key="growth_quantity")
    st.plotly_chart(kinetics_figure(summary, quantity, note=study.name), width="stretch")
    limit = default_plan()["supply"].get("max_population_doublings")
    st.plotly_chart(pdl_figure(summary, limit=limit), width="stretch")
    with st.expander("Every passage with its kinetics"):
        show_table(summary.passages)
    st.caption("Headless: `python -m doe growth passages.csv --json growth.json [--by Vessel]`. Next: compare two "
               "scales on the **Scale comparison** page, then plan from the measured growth on the **Scale planner**.")


if len(stored):
    kinetics_section()

st.header("Growth curve from counts")
st.caption("A vessel counted over time (e.g. daily): the maximum specific growth rate μmax and the lag by the "
           "\"easy linear\" method of Hall et al. (2014), as R's growthrates::fit_easylinear: the steepest "
           "regression of log(counts) over h consecutive points, widened to neighbouring windows whose slope is "
           "within the quota of it. Doubling time = ln 2 / μmax.")
curve_file = st.file_uploader("Upload a time course (CSV or Excel)", type=["csv", "txt", "xlsx"], key="curve_upload")
source = (curve_file.getvalue(), curve_file.name) if curve_file is not None else None
if source is None and st.toggle("Use the example time course (simulated T-175 flask)", key="curve_example"):
    source = (GROWTH_CURVE_FILE.read_bytes(), GROWTH_CURVE_FILE.name)
if source is not None:
    from doe.runs import read_table

    try:
        frame = read_table(*source)
    except DoeError as exc:
        st.error(f"{source[1]} was not loaded: {exc}")
        st.stop()
    cols = [str(c) for c in frame.columns]
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(frame[c])] or cols
    c = st.columns(4)
    tcol = c[0].selectbox("Time column", numeric, key="curve_time")
    vcol = c[1].selectbox("Count column", numeric, index=min(1, len(numeric) - 1), key="curve_value")
    h = c[2].number_input("Points per window (h)", 3, 50, 5, key="curve_h")
    quota = c[3].number_input("Quota", 0.5, 1.0, 0.95, 0.01, key="curve_quota")
    try:
        t, y = read_growth_curve(frame, tcol, vcol, source[1])
        curve = fit_growth_curve(t, y, h=int(h), quota=float(quota))
    except DoeError as exc:
        st.error(f"No growth rate: {exc}")
        st.stop()
    unit = tcol.split("(")[-1].rstrip(")") if "(" in tcol else tcol.lower().rstrip("s")
    m = st.columns(4)
    m[0].metric(f"μmax (per {unit})", f"{curve.mumax:.3g}")
    m[1].metric(f"Doubling time ({unit}s)", f"{curve.doubling_time:.3g}")
    m[2].metric(f"Lag ({unit}s)", f"{curve.lag:.3g}")
    m[3].metric("R² of the window", f"{curve.r2:.4f}")
    st.plotly_chart(growth_curve_figure(curve, t, y, time_label=tcol, value_label=vcol, time_unit=unit,
                                        note=source[1]), width="stretch")
    st.caption(f"Headless: `python -m doe growth-curve {source[1]} --time \"{tcol}\" --value \"{vcol}\" "
               f"--h {int(h)} --quota {float(quota):g} --json curve.json`.")
