"""Home: what the workbench does and how to start."""

import streamlit as st

from doe.errors import DoeError
from doe.store import export_bundle, import_bundle, shown
from doe.study import Study
from doe.tables import blank_study
from pages._app.common import current_study, load_example, open_stored, set_study, show_table
from pages._app.db import read, store
from pages._app.persist import current_access, editor
from pages._app.state import state

st.title("QbD design-of-experiments workbench")
st.markdown(
    "Plan experiments for **mesenchymal stem/stromal cell (MSC) process development**: define "
    "the factors you can vary (medium, vessel surface, harvest reagent, agitation, seeding "
    "density, ...) and the critical quality attributes (CQAs) with their specification limits, "
    "then generate a design that fits your question and run budget, see how good it is, and "
    "download the run sheet. Enter results as they come in, fit the models and map the design space; "
    "then carry it into manufacturing: record the seed train's passages, compare scales for equivalence "
    "and plan the seed train from what was measured."
)

if current_study() is None:  # a new session opens no one else's study (pages/_app/first_visit.py)
    missing = state.missing_link_study
    if missing:
        st.warning(f"The link asks for the study '{missing}', which is not in this database: check its "
                   "spelling, or choose a study below.")
    who = current_access()
    st.info("**No study is open.** Open one of the studies in the database below, try the bundled example, "
            "or start a new study." + ("" if who.user is not None else " Signing in (or entering your name) "
                                       "in the sidebar reopens the study you last changed."))

st.subheader("Start")
c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**Try the bundled example**  \nMSC expansion: 5 factors, 7 CQAs with ISCT specs.")
    if st.button("Load the MSC example study", type="primary", width="stretch",
                 key="load_example"):
        load_example()
        st.switch_page("pages/design.py")
with c2:
    st.markdown("**Start from scratch**  \nTwo factors and one CQA to edit.")
    if st.button("New study", width="stretch", key="new_study"):
        set_study(blank_study())
        st.switch_page("pages/study.py")
with c3:
    upload = st.file_uploader("**Open a study file** (YAML)", type=["yaml", "yml"])
    if upload is not None:
        try:
            set_study(Study.from_yaml(upload.getvalue().decode("utf-8-sig")))
            st.success("Study loaded. Open the Study or Design page.")
        except UnicodeDecodeError:
            st.error("The file is not UTF-8 text: save the study as UTF-8 YAML.")
        except DoeError as exc:
            st.error(f"Could not open the study: {exc}")

st.subheader("Studies in the database")
stored = read("list_studies")
if len(stored):
    show_table(stored.rename(columns={"name": "Study", "latest_version": "Latest version"}))  # times as elsewhere
    c1, c2, c3 = st.columns([2, 1, 1])
    name = c1.selectbox("Study", stored["name"].tolist(), key="open_study_name", label_visibility="collapsed")
    if c2.button("Open this study", key="open_study", width="stretch"):
        open_stored(name)
        st.switch_page("pages/runs.py")
    c3.caption(f"Database: {shown(store().url)}")
    with st.expander("Export this study as a bundle (zip) for another database or for the record"):
        st.caption("Every study version (YAML), design run sheets, runs with every revision, analyses and "
                   "decisions (JSON), the audit trail (CSV) and SHA-256 checksums, signed with this site's key "
                   f"{store().key.key_id} (another site imports it when it trusts that key).")
        if st.button("Prepare the bundle", key="prepare_bundle"):
            state.bundle = (name, export_bundle(store(), name, user=current_access().user))
        ready = state.bundle
        if ready and ready[0] == name:
            st.download_button(f"Download {name}.zip", ready[1], file_name=f"{name}.zip",
                               mime="application/zip", key="download_bundle")
else:
    st.caption(f"No studies saved yet in {shown(store().url)}. A study is saved when you apply changes, "
               "save a design or enter results (with your name entered in the sidebar).")

UNSIGNED = "Import even if not signed by this site or a trusted site"
with st.expander("Import a study bundle (zip)"):
    bundle = st.file_uploader("Bundle exported from a workbench", type=["zip"], key="bundle_upload")
    anyway = st.checkbox(UNSIGNED, key="bundle_allow_unsigned")
    if anyway:
        st.warning("Only for a bundle whose origin you have confirmed another way: an unsigned bundle (older "
                   "software) or one signed by a site not listed in DOE_TRUSTED_KEYS could have been changed on "
                   "the way. The audit trail records that you imported it so. A bundle whose signature does not "
                   "match is refused anyway.")
    if bundle is not None and st.button("Import", key="import_bundle"):
        user = editor()
        if user is not None:
            try:
                imported = import_bundle(store(), bundle.getvalue(), user, allow_unsigned=anyway,
                                         flag=f"the box '{UNSIGNED}'")
                open_stored(str(imported))
                st.success(f"Imported '{imported}' with its versions, runs, analyses and audit trail "
                           f"({imported.signature}).")
            except DoeError as exc:
                st.error(f"Not imported: {exc}")

study = current_study()
if study is not None:
    c1, c2 = st.columns([3, 1])
    c1.info(f"Open now: **{study.name}**, {len(study.factors)} factors, "
            f"{len(study.responses)} CQAs. Review it on the Study page or go straight to a design.")
    if c2.button("Continue to Design", key="continue", width="stretch"):
        st.switch_page("pages/design.py")

st.subheader("How it works")
st.markdown(
    "1. **Study**: factors with units and ranges or levels, CQAs with goals and spec limits, "
    "constraints on combinations that cannot be run.\n"
    "2. **Design**: full or fractional factorial, Plackett-Burman, definitive screening, "
    "central composite, Box-Behnken, Latin hypercube, or a D-/I-optimal design for your model "
    "and run budget. The evaluation shows estimability, aliasing, efficiencies, VIFs, power "
    "and prediction variance; download the run sheet as CSV or Excel.\n"
    "3. **Runs**: enter or upload results as they come in; each batch is a new data version.\n"
    "4. **Models** and **Explore**: a response-surface model per CQA, with ANOVA, diagnostics "
    "and profiles; save the model choices as an analysis version.\n"
    "5. **Design space**: where every CQA meets its spec with high probability, proven "
    "acceptable ranges and a robust set point; save the decision.\n"
    "6. **Versions** and **Audit trail**: re-run the analysis on new runs, see what changed, and "
    "who changed what, when and why.\n\n"
    "Every change is saved to the database at once under your name (sidebar). "
    "Everything here is also available headless: `python -m doe --help`."
)
