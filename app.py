"""Entry point: declares the navigation over pages/. Run: streamlit run app.py"""

import streamlit as st

from pages._common import open_example_on_first_visit
from pages._persist import identity_sidebar

st.set_page_config(page_title="QbD DoE workbench", page_icon=":material/science:", layout="wide")

open_example_on_first_visit()
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
page = st.navigation(pages)
identity_sidebar()
page.run()
