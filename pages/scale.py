"""Scale planner: the seed train from the dose back to the cell-bank vial, scale-out against scale-up."""

import json

import streamlit as st

from doe.analysis import responses_with_results
from doe.errors import DoeError
from doe.jsonable import json_ready
from doe.plots.scale import plan_figure, recorded_figure
from doe.scale import (
    FROM_MODELS,
    FROM_PASSAGES,
    catalogue_csv,
    catalogue_frame,
    complete_set_point,
    plan_frame,
    read_catalogue,
    recorded_vs_predicted,
    supply_frame,
    supply_from_models,
)
from pages._app.common import current_analysis, current_runs, require_study, show_table
from pages._app.db import read
from pages._app.persist import latest
from pages._app.services import compute_plan, default_catalogue, default_plan, growth

study = require_study()
runs = current_runs()
base = default_plan()
st.title("Scale planner")
st.caption("From the dose to the vessels, stage by stage back to the master-cell-bank vial: scale-out (more "
           "CellSTACK / HYPERStack vessels) against scale-up (CellCube modules). Vessel areas are nominal "
           "(docs/domain.md); limits marked (inferred) in the catalogue are assumptions to change.")

st.subheader("Demand")
d, c = base["demand"], st.columns(5)
demand = {
    "dose_cells_per_kg": c[0].number_input("Dose (cells/kg)", 1.0, value=float(d["dose_cells_per_kg"]),
                                           format="%.3g", key="sc_dose"),
    "patient_weight_kg": c[1].number_input("Patient weight (kg)", 0.1, 500.0, float(d["patient_weight_kg"]),
                                           key="sc_weight"),
    "doses_per_patient": c[2].number_input("Doses per patient", 1, 1000, int(d["doses_per_patient"]), key="sc_doses"),
    "patients_per_batch": c[3].number_input("Patients (lots) per batch", 1, 100000, int(d["patients_per_batch"]),
                                            key="sc_patients"),
    "overage": c[4].number_input("Overage for QC and fill loss (%)", 0.0, 500.0, 100 * float(d["overage"]),
                                 key="sc_overage") / 100,
}

st.subheader("Supply")
s = dict(base["supply"])
has_models = runs is not None and any("fold" in n.lower() for n in responses_with_results(study, runs))
try:
    passages = read("passages", study.name)
except DoeError:
    passages = None
has_passages = passages is not None and len(passages) > 0
RECORDED, MODELS = "Recorded passages (Seed train page)", "The study's fitted models at a set point"
options = ([RECORDED] if has_passages else []) + ([MODELS] if has_models else []) + ["Typed values"]
source = st.radio("Growth numbers from", options, horizontal=True, key="sc_source")
if not has_models:
    st.caption("No fold-expansion results yet: enter results on the Runs page to take the growth numbers "
               "from the study's fitted models.")
if not has_passages:
    st.caption("No passages recorded yet: record them on the Seed train page to plan each vessel family with "
               "its measured fold expansion and days per passage.")
models, measured, summary = None, {}, None
if source == RECORDED:
    conservative = st.toggle("Conservative: lower 95 % bound of each family's mean fold expansion (off: the mean)",
                             True, key="sc_conservative_passages")
    summary = growth(passages, "Family")
    tests = read("equivalence_tests", study.name)
    measured = {"groups": summary.to_json()["groups"], "conservative": conservative,
                "equivalence": [dict(r) for r in tests["result"]] if len(tests) else []}
    s.update({"fold_expansion_per_passage": FROM_PASSAGES, "days_per_passage": FROM_PASSAGES,
              "harvest_density_cells_per_cm2": None})
    st.caption(f"Fold expansion and days per passage of each vessel family from {len(passages)} recorded passages; "
               f"{len(measured['equivalence'])} saved equivalence tests (Scale comparison page) are checked against "
               "every change of vessel family. Families without records use the pooled numbers (see the table "
               "of growth numbers below).")
if source == MODELS:
    decision = latest("decisions", study.name)
    try:  # a decision saved for an older version of the study may lie outside today's ranges
        start = complete_set_point(study, {k: v for k, v in (decision["set_point"] if decision is not None
                                                              else {}).items() if k in study.factor_names})
    except DoeError:
        decision, start = None, complete_set_point(study, {})
    st.caption("Set point: " + ("the last saved design-space decision" if decision is not None
                                else "the study centre and first levels (no design-space decision saved yet)")
               + "; change it here.")
    cols, sp = st.columns(len(study.factors)), {}
    for col, f in zip(cols, study.factors, strict=True):
        if f.is_categorical:
            sp[f.name] = col.selectbox(f.label(), f.levels, f.levels.index(start[f.name]), key=f"sc_sp_{f.name}")
        else:
            sp[f.name] = col.number_input(f.label(), float(f.low), float(f.high), float(start[f.name]),
                                          key=f"sc_sp_{f.name}")
    conservative = st.toggle("Conservative: lower 95 % prediction bound (off: predicted mean)", True,
                             key="sc_conservative")
    fits = current_analysis(study, runs)
    try:
        models = supply_from_models(study, fits, sp, conservative=conservative)
    except DoeError as exc:
        st.error(f"No supply from the models: {exc}")
        st.stop()
    s.update({"fold_expansion_per_passage": FROM_MODELS, "harvest_density_cells_per_cm2": FROM_MODELS
              if "harvest_density_cells_per_cm2" in models else None})
    fold = models["fold_expansion_per_passage"]
    st.caption(f"Fold expansion per passage {fold['value']:.3g} ({fold['source']}; mean {fold['mean']:.3g}, "
               f"95 % prediction interval {fold['lower_95pi']:.3g} to {fold['upper_95pi']:.3g}).")
elif source != RECORDED:
    c = st.columns(3)
    s["seeding_density_cells_per_cm2"] = c[0].number_input("Seeding density (cells/cm²)", 1.0, 1e6,
                                                           float(s["seeding_density_cells_per_cm2"]), key="sc_seed")
    s["fold_expansion_per_passage"] = c[1].number_input("Fold expansion per passage (x)", 1.01, 1000.0,
                                                        float(s["fold_expansion_per_passage"]), key="sc_fold")
    h = c[2].number_input("Harvest density (cells/cm²; 0 = seeding x fold)", 0.0, 1e7,
                          float(s.get("harvest_density_cells_per_cm2") or 0), key="sc_harvest")
    s["harvest_density_cells_per_cm2"] = h or None
c = st.columns(6)
if source != RECORDED:
    s["days_per_passage"] = c[0].number_input("Days per passage", 0.5, 60.0, float(s["days_per_passage"]),
                                              key="sc_days")
else:  # the days come from the passages; each family seeds at this density
    s["seeding_density_cells_per_cm2"] = c[0].number_input("Seeding density (cells/cm²)", 1.0, 1e6,
                                                           float(s["seeding_density_cells_per_cm2"]), key="sc_seed_p")
s["starting_cells"] = c[1].number_input("Cells in the MCB vial", 1.0, value=float(s["starting_cells"]),
                                        format="%.3g", key="sc_vial")
s["mcb_population_doublings"] = c[2].number_input("PDL of the vial", 0.0, 100.0,
                                                  float(s.get("mcb_population_doublings") or 0), key="sc_pdl0")
s["max_passages"] = c[3].number_input("Maximum passages", 1, 100, int(s["max_passages"]), key="sc_maxp")
s["max_population_doublings"] = c[4].number_input("Maximum cumulative PDL", 0.1, 200.0,
                                                  float(s["max_population_doublings"]), key="sc_maxpdl")
min_fill = c[5].number_input("Least vessel area used (%)", 1.0, 100.0, 100 * float(base.get("min_fill", 0.5)),
                             key="sc_fill", help="A stage's vessels must be at least this full (rule 3 of doe.scale)")

with st.expander("Vessel catalogue (add your own vessels for this session)"):
    table = st.data_editor(default_catalogue(), num_rows="dynamic", hide_index=True, width="stretch",
                           key="sc_vessels")
    st.download_button("Download the catalogue (CSV)", catalogue_csv(table), "vessels.csv", "text/csv")
try:
    catalogue = read_catalogue(table)
    plan = {"schema": 1, "name": study.name, "demand": demand, "supply": s,
            "strategies": ["scale-out", "scale-up"], "min_fill": min_fill / 100}
    result = compute_plan(json.dumps(plan, sort_keys=True), catalogue_frame(catalogue).to_csv(index=False),
                          json.dumps(json_ready(models or {}), sort_keys=True),
                          json.dumps(json_ready(measured), sort_keys=True))
except DoeError as exc:
    st.error(f"No plan: {exc}")
    st.stop()

out = result["json"]
st.subheader(f"{out['cells_needed']:.3g} cells per batch: {out['area_needed_cm2']:,.0f} cm² of final-stage surface")
for note in out["notes"]:
    st.caption(note)
for col, p in zip(st.columns(len(result["plans"])), result["plans"], strict=True):
    t = p.totals()
    col.markdown(f"**{p.strategy}**: final stage {t['final_stage_vessels']} x {t['final_stage_vessel']}; "
                 f"{t['stages']} passages; {t['vial_cells_used']:.3g} vial cells used")
    m = col.columns(2) + col.columns(2)
    m[0].metric("Vessels in the final stage", t["final_stage_vessels"])
    m[1].metric("Open manipulations (all stages)", f"{t['open_manipulations']:g}")
    m[2].metric("Days from thaw to harvest", f"{t['days']:.1f}")
    m[3].metric("Cumulative PDL", f"{t['cumulative_pdl']:.1f}")
    for w in p.warnings:
        col.warning(w)
    with col:
        show_table(plan_frame(p).drop(columns=["Strategy", "Growth numbers from"], errors="ignore"))
st.plotly_chart(plan_figure(result["plans"], note=f"Study: {study.name}"), width="stretch")
if summary is not None:
    st.markdown("**Predicted against recorded cells per vessel, stage by stage**")
    recorded = [recorded_vs_predicted(p, summary.passages) for p in result["plans"]]
    for col, p, table in zip(st.columns(len(result["plans"])), result["plans"], recorded, strict=True):
        with col:
            st.caption(p.strategy)
            show_table(table)
    st.plotly_chart(recorded_figure(result["plans"], recorded), width="stretch")
st.markdown("**Growth numbers used, and where each came from**")
show_table(supply_frame(out["supply"]))
st.download_button("Download the plan (JSON)", json.dumps(json_ready(out), indent=2, allow_nan=False),
                   "scale_plan.json", "application/json")
