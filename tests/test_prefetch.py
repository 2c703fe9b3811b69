"""Background prefetch: the fits, the predictive and the robust set point a page will ask for are
computed once, in a thread (pages/_app/speed.py), into the same caches the pages read (pages/_app/services.py)."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

import doe.analysis
import doe.space
import pages._app.common as common
import pages._app.services as services
import pages._app.speed as speed
from doe.study import Study
from tests.conftest import ROOT


def _counted(monkeypatch, module, name: str, counts: Counter) -> None:
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        counts[name] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def test_prefetch_fills_the_caches_the_pages_read(monkeypatch):
    monkeypatch.setattr(speed, "_served", lambda: True)
    services.clear_fits()
    for cached in (services.predictive, services.robust, services.grid, services.par_at,
                   services.report_at, services.opening):
        cached.clear()  # other tests in this process may have filled them
    speed._prefetched.clear()
    counts: Counter = Counter()
    _counted(monkeypatch, doe.analysis, "fit_choice", counts)
    _counted(monkeypatch, doe.space, "build_predictive", counts)
    _counted(monkeypatch, doe.space, "robust_set_point", counts)
    for name in ("space_grid", "proven_acceptable_ranges", "set_point_report"):
        _counted(monkeypatch, doe.space, name, counts)
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = pd.read_csv(ROOT / "data" / "msc_example_results.csv")
    cqas = [r.name for r in study.responses if r.name in runs]

    thread = speed.prefetch_fits(study, runs)
    assert thread is not None
    thread.join(timeout=300)
    assert not thread.is_alive()
    # the opening view (doe.space_view.opening_view) scores coarse maps of the level combinations tied
    # with the robust set point and finds the robust set point within the winner: more grids, one more
    # robust search, each done once here and never again by the page
    once = {"fit_choice": len(cqas), "build_predictive": 1, "proven_acceptable_ranges": 1, "set_point_report": 1}
    assert {k: counts[k] for k in once} == once
    assert 1 <= counts["robust_set_point"] <= 2 and counts["space_grid"] >= 1
    once = dict(counts)
    assert speed.prefetch_fits(study, runs) is None  # the same data again: nothing new to do

    # What the pages then ask for is all in the cache: nothing is computed again.
    analysis = common.current_analysis(study, runs)  # as the Design space page asks
    models = analysis.models
    assert models == doe.analysis.fitted_models(common.current_fits(study, runs, cqas))
    key = analysis.digest
    pm = services.predictive(study, models, key)
    best = services.robust(pm, key, 0.9)
    # the Design space page's first view, asked for the way the page asks (pages/_app/spaces.open_view):
    # its set-point widgets hold the opening view's settings, the map shows the opening view's axes
    view = services.opening(pm, key, 0.9)
    set_point = {f.name: view.set_point[f.name] if f.is_categorical else float(view.set_point[f.name])
                 for f in study.factors}
    x, y = view.x, view.y
    fixed = {k: v for k, v in set_point.items() if k not in (x, y)}
    services.grid(pm, key, x, y, services.as_json(fixed), 0.9, services.as_json({}), "null")
    services.par_at(pm, key, services.as_json(set_point), 0.9, services.as_json({}))
    services.report_at(pm, key, services.as_json(set_point), 0.9, services.as_json({}), services.as_json({}))
    assert dict(counts) == once
    assert len(models) == len(cqas) and set(best["settings"]) == set(study.factor_names)


def test_no_prefetch_thread_outside_a_server():
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = pd.read_csv(ROOT / "data" / "msc_example_results.csv")
    assert speed.prefetch_fits(study, runs) is None


def test_server_start_does_the_first_pages_work_ahead(monkeypatch):
    """At server start (app.py), a background thread loads the Home page's modules, opens the
    database and runs Streamlit's once-per-process check (inspect.stack over every module), so the
    first page a user opens does none of it. That the check then is done for the
    process, in Streamlit's own terms, is tests/test_compat.py's business."""
    import types

    from pages._app.db import default_url, open_store

    checked = []
    monkeypatch.setattr(speed, "run_direct_execution_check", lambda: checked.append(True))
    started = []
    monkeypatch.setattr(speed.threading, "Thread",  # run the thread's work here, now
                        lambda target, **kw: types.SimpleNamespace(start=lambda: (started.append(kw), target())))
    from doe.store import Store

    opened = []
    real_open = Store.open
    monkeypatch.setattr(Store, "open", classmethod(lambda cls, url, *a, **kw: opened.append(url) or
                                                   real_open.__func__(cls, url, *a, **kw)))
    open_store.clear()
    speed.prepare_first_page()
    assert [kw["name"] for kw in started] == ["doe-first-page"]
    assert checked == [True]  # pages/_app/streamlit_compat.run_direct_execution_check: Streamlit does not check again
    assert opened == [default_url()]
    open_store(default_url())  # what the first page asks for: already open
    assert opened == [default_url()]
    open_store.clear()


def test_background_imports_wait_while_a_page_runs():
    """The warm-up's imports wait between modules while a script run is in progress (app.main and
    the design-space fragment mark theirs), and go on as soon as it ends; never wait for ever."""
    import threading
    import time

    assert speed.wait_for_no_script_run(longest=0.1) is True
    with speed.script_run():
        start = time.perf_counter()
        assert speed.wait_for_no_script_run(longest=0.2) is False  # held up, at most this long
        assert time.perf_counter() - start >= 0.2
        done = []
        waiting = threading.Thread(target=lambda: done.append(speed.wait_for_no_script_run(longest=10)))
        waiting.start()
        time.sleep(0.1)
        assert not done
    waiting.join(timeout=2)
    assert done == [True]


def test_a_failed_script_run_is_not_left_in_progress():
    with pytest.raises(RuntimeError), speed.script_run():
        raise RuntimeError("the page stopped")
    assert speed.wait_for_no_script_run(longest=0.1) is True
