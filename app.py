"""Entry point: declares the navigation over pages/. Run: streamlit run app.py"""

import os
import time

_PROFILE = os.environ.get("DOE_PROFILE_DIR")  # diagnostics for bench/: one cProfile file per script run
if _PROFILE:
    import cProfile

    _prof, _start = cProfile.Profile(), time.perf_counter()
    _prof.enable()

import streamlit as st  # noqa: E402

from pages._common import open_example_on_first_visit, warm_up_in_background  # noqa: E402
from pages._persist import identity_sidebar  # noqa: E402

st.set_page_config(page_title="QbD DoE workbench", page_icon=":material/science:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/study.py", title="Study", icon=":material/tune:"),
    st.Page("pages/design.py", title="Design", icon=":material/grid_on:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_edit:"),
    st.Page("pages/models.py", title="Models", icon=":material/functions:"),
    st.Page("pages/explore.py", title="Explore", icon=":material/insights:"),
    st.Page("pages/space.py", title="Design space", icon=":material/verified:"),
    st.Page("pages/scale.py", title="Scale planner", icon=":material/factory:"),
    st.Page("pages/versions.py", title="Versions", icon=":material/history:"),
    st.Page("pages/audit.py", title="Audit trail", icon=":material/fact_check:"),
    st.Page("pages/report.py", title="Report", icon=":material/description:"),
]
try:
    open_example_on_first_visit()
    page = st.navigation(pages)
    identity_sidebar()
    page.run()
    warm_up_in_background()
finally:
    if _PROFILE:
        _prof.disable()
        _title = page.title if "page" in globals() else "start"
        _prof.dump_stats(os.path.join(_PROFILE, f"{len(os.listdir(_PROFILE)):03d}-{_title}-"
                                                f"{time.perf_counter() - _start:.2f}s.prof"))
