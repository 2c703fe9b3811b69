"""Report: one click builds the PDF for submission and the interactive HTML companion."""

import streamlit as st

from doe.errors import DoeError
from pages._app.common import current_runs, require_study
from pages._app.db import read, store
from pages._app.persist import latest, stored_data_version
from pages._app.state import state

study = require_study()
st.title("Report")
st.caption("The report for regulatory review: purpose and summary, study definition, design, every run, each "
           "CQA's model with ANOVA and diagnostics, the design space with its method, PAR/NOR, the comparison "
           "with the previous analysis, the audit trail of the data used, software versions, checksums of the "
           "inputs and the commands that recompute the analysis. The PDF (PDF/A-3b, fonts embedded, no "
           "JavaScript) is for submission; the HTML companion is interactive and opens offline.")

try:
    analyses = read("analyses", study.name)
except DoeError:
    analyses = None
versions = [] if analyses is None else [int(v) for v in analyses["version"]]
session_runs = current_runs()
sources = [f"analysis version {v}" for v in reversed(versions)]
if session_runs is not None and len(session_runs):
    sources.append("the open study and its current runs (not a saved analysis)")
if not sources:
    st.info("Nothing to report yet: enter results on the Runs page, then save an analysis version on the Models "
            "page (the report of a saved analysis carries its versions and audit trail).")
    st.stop()
if not versions:
    st.info("This study has no saved analysis version: save one on the Models page for a report with versions "
            "and the audit trail, or build one from the current runs now.")
source = st.selectbox("Report on", sources, key="report_source")
version = int(source.split()[2]) if source.startswith("analysis version") else None


def _data_design() -> dict:
    """The design the current stored runs were run on (doe.store.Store.design_of_data_version), for the
    report's design section; nothing when the runs are not saved or name no design."""
    if not stored_data_version(study):
        return {}
    design_id = read("design_of_data_version", study.name)
    if design_id is None:
        return {}
    row = latest("data_versions", study.name)
    return {"design": read("load_design", int(design_id)), "design_record": read("design_record", int(design_id)),
            "data_version_no": int(row["version"]), "data_hash": str(row["content_hash"])}


def _content_key() -> tuple:
    """What the report is built from, so a cached report is shown only while that is unchanged: a saved
    analysis version with the decisions and design records it reports, or the open study's text, the
    content hash of its current runs and the model choices."""
    import hashlib
    import json

    from doe.analysis import data_version

    if version is not None:
        records = "".join(read(what, study.name).to_csv(index=False) for what in ("decisions", "designs"))
        return study.name, version, hashlib.sha256(records.encode("utf-8")).hexdigest()
    choices = json.dumps(state.model_choices or {}, sort_keys=True, default=str)
    design = _data_design().get("design_record")
    return study.name, study.digest, data_version(session_runs), choices, repr(design)


def _seed_train() -> dict:
    """The study's recorded passages and saved equivalence tests, for the report's seed-train section."""
    try:
        passages = read("passages", study.name)
        tests = read("equivalence_tests", study.name)
    except DoeError:
        return {}
    if not len(passages):
        return {}
    return {"passages": passages, "equivalence": [{**dict(r["result"]), "created_at": r["created_at"],
                                                   "created_by": r["created_by"]} for _, r in tests.iterrows()]}


def _lots() -> dict:
    """The study's recorded lots, for the report's continued-process-verification section."""
    try:
        lots = read("lots", study.name)
    except DoeError:
        return {}
    return {"lots": lots} if len(lots) else {}


def _seed_train_key() -> tuple:
    """What the seed-train section is built from: the newest passage data version and the saved tests."""
    try:
        versions, tests = read("passage_versions", study.name), read("equivalence_tests", study.name)
        lots = read("lot_versions", study.name)
    except DoeError:
        return ()
    return (str(versions["content_hash"].iloc[-1]) if len(versions) else "", len(tests),
            str(lots["content_hash"].iloc[-1]) if len(lots) else "")


key = (*_content_key(), *_seed_train_key())


def _build() -> dict:
    from doe.report import build_report, render_html, render_pdf
    from doe.report.pdf import warm_up

    warm_up()
    if version is not None:
        content = build_report(store(), study.name, version)
    else:
        content = build_report(study=study, runs=session_runs,
                               choices=state.model_choices or None, **_data_design(), **_seed_train(), **_lots())
    html = render_html(content)
    try:
        pdf, pdf_error = render_pdf(content), None
    except DoeError as exc:
        pdf, pdf_error = None, str(exc)
    return {"pdf": pdf, "pdf_error": pdf_error, "html": html.encode("utf-8"),
            "missing": content.numbers.get("figures_only_in_html") or [], "header": content.header}


cache = state.report_cache
if st.button("Build the report", type="primary", key="build_report"):
    try:
        with st.spinner("Refitting the models, mapping the design space and laying out the report "
                        "(about 20 seconds)..."):
            cache[key] = _build()
        for old in list(cache)[:-4]:  # the four newest reports are kept in the session
            del cache[old]
    except DoeError as exc:
        st.error(f"The report cannot be built: {exc}")

built = cache.get(key)
if built is None:
    st.caption("Press **Build the report**; the files stay here while the study, its runs and the model "
               "choices they were built from are unchanged.")
    st.stop()
st.success(f"Built: {built['header']}.")
stem = f"{study.name} report" + (f" v{version}" if version is not None else "")
stem = "".join(c if c.isalnum() or c in "-_ ." else "_" for c in stem).replace(" ", "_")
c1, c2 = st.columns(2)
if built["pdf"] is not None:
    c1.download_button("Download the PDF (for submission)", built["pdf"], file_name=f"{stem}.pdf",
                       mime="application/pdf", type="primary", key="download_pdf")
else:
    c1.error(f"No PDF: {built['pdf_error']}")
c2.download_button("Download the HTML companion (interactive, offline)", built["html"], file_name=f"{stem}.html",
                   mime="text/html", key="download_html")
if built["missing"]:
    st.warning("These figures are only in the HTML companion (no Chromium or Chrome here for static images; "
               "Debian: `apt-get install chromium`):\n\n" + "\n".join(f"- {m}" for m in built["missing"]))
st.caption("Recompute it headless: `python -m doe report --db URL --study NAME [--analysis VERSION] "
           "--out report.pdf --out report.html`.")
