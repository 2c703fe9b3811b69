"""Scale comparison: is a CQA equivalent between two vessel families or scales? Two one-sided tests (TOST)."""

import pandas as pd
import streamlit as st

from doe.equivalence import MARGIN_HINT, equivalence_sample_size, tost
from doe.errors import DoeError
from doe.growth import passage_kinetics
from doe.passage_sheet import scale_order
from doe.plots.equivalence import equivalence_figure
from doe.report.seed_train import equivalence_frame
from pages._app.common import require_study, show_table
from pages._app.db import read, store
from pages._app.persist import editor
from pages._app.state import state

study = require_study()
st.title("Scale comparison")
st.caption("Scale-down model qualification: is a CQA the same, within margins that matter, between two vessel "
           "families or scales (T-flask, CellSTACK, HYPERStack, CellCube)? Two one-sided tests (TOST, Schuirmann "
           "1987): equivalence is shown when the (1 - 2α) confidence interval of the difference (or of the ratio "
           "of geometric means) lies inside the margins. A non-significant t test is not evidence of equivalence.")

try:
    passages = read("passages", study.name)
except DoeError:
    passages = pd.DataFrame()
if not len(passages):
    st.info("No passages recorded yet: record them on the **Seed train** page (or load the example passages "
            "there), then compare scales here.")
    st.stop()
data = passage_kinetics(passages)
responses = [c for c in ("Fold expansion", "Harvest density (cells/cm2)", "Doubling time (h)",
                         "Population doublings", "Viability") if c in data and data[c].notna().sum() >= 4]
c = st.columns(4)
response = c[0].selectbox("CQA", responses, key="eq_response")
group = c[1].selectbox("Compare", ["Family", "Vessel"], key="eq_group",
                       format_func=lambda g: {"Family": "Vessel families", "Vessel": "Vessels"}[g])
levels = scale_order(data, group)
if len(levels) < 2:
    st.info(f"The passages have one {group.lower()} only ({levels[0]}): record passages in a second one to compare.")
    st.stop()
reference = c[2].selectbox("Reference (established scale)", levels, index=max(0, len(levels) - 2), key="eq_reference")
others = [v for v in levels if v != reference]
test = c[3].selectbox("Test (new scale)", others, index=len(others) - 1, key="eq_test")

c = st.columns(4)
log = c[0].toggle("Ratio (log scale)", response in ("Fold expansion", "Harvest density (cells/cm2)"),
                  key=f"eq_log_{response}",
                  help="Log-normal response: the ratio of geometric means. For a response that grows multiplicatively (fold expansion, cell density): the test is on the "
                       "log scale and the margins are ratios test / reference.")
donors = {g: set(data.loc[data[group].astype(str) == g, "Donor"].astype(str)) for g in (reference, test)}
common = donors[reference] & donors[test]
paired = c[1].toggle(f"Paired by donor ({len(common)})", len(common) >= 3, key="eq_paired",
                     disabled=len(common) < 2,
                     help=f"{len(common)} donors ran both scales. When the same donors ran both scales, the donor-to-donor variation cancels: each "
                          "donor's mean at one scale is compared with its mean at the other.")
alpha = c[2].number_input("α of each one-sided test", 0.001, 0.25, 0.05, 0.005, format="%.3f", key="eq_alpha",
                          help="0.05 gives a 90 % confidence interval.")
var_equal = c[3].toggle("Pooled variance (off: Welch)", False, key="eq_var_equal", disabled=paired)

st.markdown("**Equivalence margins**")
st.caption(MARGIN_HINT)
c = st.columns(2)
if log:
    low = c[0].number_input("Lower margin (ratio test / reference)", 0.01, 0.999, 0.80, 0.01, key=f"eq_low_r_{response}")
    high = c[1].number_input("Upper margin (ratio)", 1.001, 100.0, 1.25, 0.01, key=f"eq_high_r_{response}")
else:
    ref_values = data.loc[data[group].astype(str) == reference, response].astype(float)
    step = float(abs(ref_values.mean()) * 0.2) or 1.0
    low = c[0].number_input(f"Lower margin (difference in {response})", value=-round(step, 3), max_value=-1e-9,
                            key=f"eq_low_d_{response}")
    high = c[1].number_input(f"Upper margin (difference in {response})", value=round(step, 3), min_value=1e-9,
                             key=f"eq_high_d_{response}")

try:
    result = tost(data, response, group, reference, test, (float(low), float(high)), paired=paired,
                  id="Donor" if paired else None, log=log, var_equal=var_equal, alpha=float(alpha))
except DoeError as exc:
    st.error(f"No test: {exc}")
    st.stop()
(st.success if result.equivalent else st.warning)(result.conclusion())
st.plotly_chart(equivalence_figure(result, note=study.name), width="stretch")
j = result.to_json()
show_table(pd.DataFrame([{
    "Estimate (ratio)" if log else "Estimate (difference)": j["estimate"],
    f"{100 * (1 - 2 * alpha):g} % CI low": j["ci"][0], f"{100 * (1 - 2 * alpha):g} % CI high": j["ci"][1],
    "t lower": j["t_lower"], "t upper": j["t_upper"], "df": j["df"], "p lower": j["p_lower"],
    "p upper": j["p_upper"], "TOST p": j["p"], "Method": j["method"]}]))
for note in result.notes:
    st.caption(note)

with st.expander("Sample size for an equivalence study", expanded=not result.equivalent):
    st.caption("How many " + ("donors (pairs)" if paired else "passages per scale") + " a study needs to show "
               "equivalence with the chosen power, for a true " + ("ratio" if log else "difference") + " you "
               "assume, at the SD seen here" + (" (of log values)" if log else "") + ".")
    sd_seen = result.planning_sd
    c = st.columns(3)
    sd = c[0].number_input("SD" + (" of log values" if log else "") + (" of differences" if paired else ""),
                           1e-6, value=max(sd_seen, 1e-6), format="%.4g", key="eq_n_sd")
    true = c[1].number_input("True ratio" if log else "True difference", value=1.0 if log else 0.0, format="%.4g",
                             key=f"eq_n_true_{log}")
    power = c[2].number_input("Power", 0.5, 0.99, 0.8, 0.05, key="eq_n_power")
    try:
        n = equivalence_sample_size(float(sd), (float(low), float(high)), float(true), float(alpha), float(power),
                                    paired=paired, log=log)
        st.metric("Needed " + ("pairs" if paired else "per scale"), n["n_rounded"],
                  help=f"Exact n {n['n_per_group']:.2f}; power at {n['n_rounded']}: {n['power_at_n_rounded']:.3f}")
        have = result.n_pairs if paired else min(result.n_reference, result.n_test)
        st.caption(f"This comparison has {have}. Exact n {n['n_per_group']:.2f}, rounded up to {n['n_rounded']} "
                   f"(power {n['power_at_n_rounded']:.3f}). Headless: `python -m doe equivalence-n --sd {float(sd):.4g} "
                   f"--margin {float(low):g} {float(high):g} --true-difference {float(true):g} --alpha {float(alpha):g} "
                   f"--power {float(power):g}{' --paired' if paired else ''}{' --log' if log else ''}`.")
    except DoeError as exc:
        st.error(f"No sample size: {exc}")

if st.button("Save this test (kept with the study for the planner and the report)", type="primary",
             key="save_equivalence"):
    user = editor()
    if user is not None:
        try:
            test_id = store().save_equivalence(study.name, j, user)
            state.equivalence_saved = f"Equivalence test {test_id} saved."
            st.rerun()
        except DoeError as exc:
            st.error(f"Not saved: {exc}")
if state.equivalence_saved:
    st.success(state.equivalence_saved)
    state.equivalence_saved = None
saved = read("equivalence_tests", study.name)
if len(saved):
    st.subheader("Saved equivalence tests")
    show_table(equivalence_frame([{**dict(r["result"]), "created_at": r["created_at"], "created_by": r["created_by"]}
                                  for _, r in saved.iterrows()]))
st.caption(f"Headless: `python -m doe equivalence passages.csv --response \"{response}\" --group {group} "
           f"--reference \"{reference}\" --test \"{test}\" --margin {float(low):g} {float(high):g}"
           f"{' --paired --id Donor' if paired else ''}{' --log' if log else ''}{' --var-equal' if var_equal else ''}"
           f" --alpha {float(alpha):g} --json equivalence.json`.")
