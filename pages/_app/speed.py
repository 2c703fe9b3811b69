"""Work done before a page asks for it: loading modules at server start and after the first page,
and computing the fits and design spaces a page is likely to open next, in background threads.

Everything goes through the same cached functions the pages call (pages/_app/services.py), so a page that
needs a result still being computed waits for that computation instead of starting its own. Under
AppTest nothing runs in the background, so the page tests stay deterministic.
"""

from __future__ import annotations

import threading

from doe.recent import Recent
from doe.study import Study
from pages._app.services import analysis, predictive, robust
from pages._app.state import state
from pages._app.streamlit_compat import (
    exclude_from_post_run_gc,
    run_direct_execution_check,
    served_by_streamlit_server,
)

#: What the pages import and build on first use, in the order a new user meets them.
_WARM_UP = ("doe.tables", "doe.runs", "doe.evaluate", "doe.generators", "doe.plots.design", "doe.analysis",
            "doe.fit", "doe.plots.model", "doe.space", "doe.plots.space", "doe.versions",
            "doe.space.compare", "doe.audit_view", "doe.scale", "doe.plots.scale")
_warm = {"started": False, "first": []}  # first: jobs the warm-up runs before its imports
_profiling = {"on": False}
#: Seconds between the first page and the warm-up: the server stays free to serve the frontend's
#: widget code for that page (loaded on demand), so its buttons appear at once.
WARM_UP_DELAY = 1.0


def warm_up_in_background() -> None:
    """Once per server process, after the first page is shown: import the statistics and figure
    modules in a background thread, so the first visit to Design, Models or Design space does not
    wait for scipy, statsmodels and plotly to load; then take
    the long-lived objects out of the garbage collector's scans (see the comment in ``work``)."""
    if _warm["started"] or not _served():
        return
    _warm["started"] = True
    exclude_from_post_run_gc()  # the modules loaded for the first page: out of the after-run collection now

    def work() -> None:
        import importlib
        import time

        time.sleep(WARM_UP_DELAY)  # first let the browser fetch the widgets' code for the page it shows
        with _lock:
            first, _warm["first"] = _warm["first"], None  # from now on, jobs start in their own thread
        for job in first:  # what the first session is likely to ask for next (the default design)
            _quietly(job)
        for name in _WARM_UP:
            wait_for_no_script_run()  # a page a user is waiting for goes first
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a page reports its own import problem when opened
                return
        import plotly.graph_objects as go

        go.Figure(layout={"template": "plotly"})  # loads plotly's template JSON once
        # Streamlit's full garbage collection after every script run scans only the objects made
        # from now on (pages/_app/streamlit_compat.exclude_from_post_run_gc), not the long-lived modules.
        exclude_from_post_run_gc(collect_first=True)

    threading.Thread(target=work, name="doe-warm-up", daemon=True).start()


_prefetched = Recent(64)  # keys of the work started in the background
_lock = threading.Lock()
_runs = {"active": 0}  # script runs in progress (app.main, via script_run)
_no_run = threading.Condition()


class script_run:
    """Around each script run (app.main): while one is in progress, the warm-up waits between module
    imports (``wait_for_no_script_run``), so the page a user is waiting for has the interpreter."""

    def __enter__(self) -> None:
        with _no_run:
            _runs["active"] += 1

    def __exit__(self, *exc) -> None:
        with _no_run:
            _runs["active"] -= 1
            _no_run.notify_all()


def wait_for_no_script_run(longest: float = 3.0) -> bool:
    """Wait until no script run is in progress, for at most ``longest`` seconds (background work is
    held up, never stopped). True when none is."""
    with _no_run:
        return _no_run.wait_for(lambda: _runs["active"] == 0, timeout=longest)


def prepare_first_page() -> None:
    """At server start (app.py's st.App): load the modules of the first page, open the database and
    run Streamlit's once-per-process check in a background thread, while the browser loads the app.
    Whatever is not ready when the first session starts is waited for, never done twice (module
    imports and cached resources lock)."""
    def work() -> None:
        try:
            import doe.tables  # noqa: F401  (with pages._app.persist: what the Home page imports)
            import pages._app.persist  # noqa: F401
            from pages._app.db import default_url, open_store

            open_store(default_url())
        except Exception:  # noqa: BLE001 - the first page reports a database it cannot open
            return
        run_direct_execution_check()  # Streamlit's once-per-process check, ahead of the first page

    threading.Thread(target=work, name="doe-first-page", daemon=True).start()


def in_background(key, work) -> None:
    """Run ``work()`` once per ``key`` in a background thread (in a real server only): to compute a
    cached result a page is likely to ask for next."""
    if _served() and _prefetched.add(key):
        _thread(work, "doe-prefetch")


def _quietly(work) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - the page that shows the result reports any problem
        return


def _thread(work, name: str) -> threading.Thread:
    thread = threading.Thread(target=_quietly, args=(work,), name=name, daemon=True)
    thread.start()
    return thread


def prefetch_default_design() -> None:
    """While a study has no design yet: generate and evaluate the Design form's default design in the
    background, with the seed a blank seed field stands for (pages/_app/designs.py), so pressing
    **Generate design** finds it ready. Only for a study under doe.limits.PREFETCH_MAX_WORK: work
    nobody asked for never takes a server's memory. In a new server process the warm-up runs it after the first
    page's delay and before loading the other modules; later in its own thread."""
    study = state.study
    if study is None or state.design is not None or not _served():
        return
    from doe.limits import prefetch_allowed

    if not prefetch_allowed(study):  # a big study is designed only when asked (and checked then)
        return
    from pages._app.designs import default_design, next_seed

    seed = next_seed()
    if not _prefetched.add(("default design", study.digest, seed)):
        return

    def work() -> None:
        default_design(study, seed)

    with _lock:
        if _warm["first"] is not None:
            _warm["first"].append(work)
            return
    _thread(work, "doe-prefetch-design")


def _served() -> bool:
    """True in a real Streamlit server; False under AppTest (tests stay deterministic without threads)."""
    return served_by_streamlit_server()


def prefetch_fits(study: Study, runs):
    """Fit every CQA in a background thread as soon as results are saved, then draw the design-space
    predictive, find its robust set point and compute the Design space page's first view there, so
    the Models and Design space pages find them ready.
    Everything goes through the cached functions the pages call: a page that needs a result still
    being computed waits for that computation instead of starting its own. Returns the thread (None
    when there is nothing new to do)."""
    import json

    from pages._app.services import data_digest

    if runs is None or not _served():
        return None
    choices = dict(state.model_choices)
    if not _prefetched.add((study.digest, data_digest(runs), json.dumps(choices, sort_keys=True, default=str))):
        return None

    def work() -> None:  # the statistics modules are imported here, not in the page's script run
        from doe.analysis import responses_with_results
        from pages._app.spaces import DEFAULT_THRESHOLD, first_view

        fitted = analysis(study, runs, choices, responses_with_results(study, runs))
        models, key = fitted.models, fitted.digest
        if models:
            pm = predictive(study, models, key)
            first_view(study, pm, key, robust(pm, key, DEFAULT_THRESHOLD)["settings"])

    return _thread(work, "doe-prefetch-fits")


class profiled:
    """Diagnostics for bench/: with DOE_PROFILE_DIR set, write one cProfile file per script or fragment
    run into that folder, named by page and duration (read them with ``python -m pstats``). A fragment
    run inside a profiled script run is part of that script's file."""

    def __init__(self, title: str) -> None:
        import os

        self.folder, self.title, self.prof = os.environ.get("DOE_PROFILE_DIR"), title, None

    def __enter__(self) -> profiled:
        import cProfile
        import time

        if self.folder and not _profiling["on"]:
            _profiling["on"], self.start, self.prof = True, time.perf_counter(), cProfile.Profile()
            self.prof.enable()
        return self

    def __exit__(self, *exc) -> None:
        import os
        import time

        if self.prof is not None:
            self.prof.disable()
            _profiling["on"] = False
            self.prof.dump_stats(os.path.join(self.folder, f"{len(os.listdir(self.folder)):03d}-{self.title}-"
                                                           f"{time.perf_counter() - self.start:.2f}s.prof"))
