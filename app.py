"""Entry point: declares the navigation over pages/. Run: streamlit run app.py

Each session runs this file as its script (``__name__ == "__main__"``): the navigation below.
``streamlit run app.py`` also finds the ``st.App`` at the end and serves the file through it, so
the server starts loading what the first page needs (pandas, SQLAlchemy, the database) while the
browser is still loading the app, instead of after it connects.
"""

from pathlib import Path

import streamlit as st

#: The tab icon, served by the app itself: a ``:material/...`` page icon makes the browser fetch an SVG
#: from fonts.gstatic.com on every page (no external request may leave an air-gapped network). It is
#: the Material Symbols "science" glyph (Apache-2.0) from the font Streamlit bundles, as a 64 px PNG.
PAGE_ICON = Path(__file__).resolve().parent / "pages" / "assets" / "favicon.png"

PAGES = [
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/study.py", "Study", ":material/tune:"),
    ("pages/design.py", "Design", ":material/grid_on:"),
    ("pages/runs.py", "Runs", ":material/table_edit:"),
    ("pages/models.py", "Models", ":material/functions:"),
    ("pages/explore.py", "Explore", ":material/insights:"),
    ("pages/space.py", "Design space", ":material/verified:"),
    ("pages/seed_train.py", "Seed train", ":material/science:"),
    ("pages/scale_compare.py", "Scale comparison", ":material/compare_arrows:"),
    ("pages/scale.py", "Scale planner", ":material/factory:"),
    ("pages/manufacturing.py", "Manufacturing", ":material/monitoring:"),
    ("pages/versions.py", "Versions", ":material/history:"),
    ("pages/audit.py", "Audit trail", ":material/fact_check:"),
    ("pages/report.py", "Report", ":material/description:"),
]
#: The navigation's sections: a heading and how many of the PAGES above (in order) it holds; every page is
#: listed (no "View more"), in the order of the work: plan and run, analyse, manufacture, record and report.
SECTIONS = [("Plan and run", 4), ("Analyse", 3), ("Manufacture", 4), ("Record and report", 3)]


def main() -> None:
    """One script run of a session: page config, navigation, the sidebar and the chosen page."""
    from pages._app.speed import profiled, script_run  # profiled: with DOE_PROFILE_DIR, a cProfile per run

    with script_run(), profiled("start") as run:
        from doe.identity import deployment_problem
        from pages._app.common import open_example_on_first_visit
        from pages._app.persist import identity_sidebar, secret
        from pages._app.speed import prefetch_default_design, warm_up_in_background

        st.set_page_config(page_title="QbD DoE workbench", page_icon=PAGE_ICON, layout="wide")
        refused = deployment_problem(auth_configured=bool(secret("auth")))  # also when the server starts (below)
        if refused:
            st.error(refused)
            st.stop()
        open_example_on_first_visit()
        pages = [st.Page(path, title=t, icon=icon, default=i == 0) for i, (path, t, icon) in enumerate(PAGES)]
        sections, start = {}, 0
        for heading, count in SECTIONS:
            sections[heading], start = pages[start:start + count], start + count
        page = st.navigation(sections, expanded=True)
        run.title = page.title
        identity_sidebar()
        if page.title in ("Home", "Design"):  # where the next step is pressing Generate design
            prefetch_default_design()  # before the page runs: a page may stop early (st.stop)
        page.run()
        warm_up_in_background()


if __name__ == "__main__":
    main()
else:  # imported by `streamlit run app.py` to serve it
    from streamlit import config as _config

    from doe.identity import startup_problem

    # a site deployment (DOE_DEPLOYMENT=site) without sign-in does not start: the message names the fix
    if (_refused := startup_problem(_config.get_option("secrets.files"))) is not None:
        import sys

        print(_refused, file=sys.stderr)
        raise SystemExit(2)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def _start(_app):
        import threading

        def prepare() -> None:  # importing pages._app.speed loads pandas: not before the server answers
            from pages._app.speed import prepare_first_page

            prepare_first_page()

        threading.Thread(target=prepare, name="doe-prepare", daemon=True).start()
        yield

    from starlette.responses import FileResponse
    from starlette.routing import Route

    from pages._app.plotly_asset import PLOTLY_FILE, PLOTLY_ROUTE

    async def _plotly_map_js(_request):
        """plotly.js for the design-space map (pages/_app/live_plot.py); versioned address: cached for good."""
        return FileResponse(PLOTLY_FILE, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})

    # also under server.baseUrlPath, when the app is served below a path prefix
    app = st.App(__file__, lifespan=_start, routes=[Route(PLOTLY_ROUTE, _plotly_map_js),
                                                    Route("/{prefix:path}" + PLOTLY_ROUTE, _plotly_map_js)])
