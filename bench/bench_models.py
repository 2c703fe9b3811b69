"""Benchmark of model fitting on the bundled example and of the Models page rerun.

Run from the repository root::

    python bench/bench_models.py

Cases
-----
1. Fit all 7 CQAs of the example (40 runs; full quadratic, 36 model columns;
   and the page default, hierarchical backward reduction), with ANOVA,
   diagnostics, stationary point: median wall-clock of 7 repeats.
   Target: under 0.5 s for all CQAs.
2. The Models page (Streamlit AppTest, no browser): rerun time when the user
   changes the displayed CQA, after every CQA has been fitted once (cached).
   Target: under 0.3 s median.
3. Every model figure of the example (Viability, full quadratic): best of 3
   after a warm-up. Targets: each figure under 0.15 s; a 50 x 50 contour under
   0.3 s.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import timed  # noqa: E402  (bench/ is the script's folder)

from doe.analysis import ModelChoice, fit_all  # noqa: E402
from doe.runs import read_results  # noqa: E402
from doe.study import Study  # noqa: E402


def page_rerun_times() -> list[float]:
    import tempfile

    from streamlit.testing.v1 import AppTest

    os.environ["DOE_DATA_DIR"] = tempfile.mkdtemp(prefix="doe-bench-")  # an empty database
    os.environ.pop("DATABASE_URL", None)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["_user_name"] = "bench"
    at.run()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    at.switch_page("pages/models.py").run()
    names = list(at.selectbox(key="cqa").options)
    for name in names:  # visit each CQA once so its fit is cached
        at.selectbox(key="cqa").set_value(name).run()
    times = []
    for _ in range(2):
        for name in names:
            t = time.perf_counter()
            at.selectbox(key="cqa").set_value(name).run()
            times.append(time.perf_counter() - t)
            assert not at.exception, at.exception
    return times


def figure_times(study, runs) -> list[tuple[str, float, float]]:
    """Best-of-3 time of every model figure of the example's Viability model."""
    from doe.fit import fit_model
    from doe.plots import model as mf

    fm = fit_model(study, runs, "Viability", "quadratic")
    cases = {
        "residual plots": lambda: mf.residual_plots(fm), "influence plot": lambda: mf.influence_plot(fm),
        "main effects": lambda: mf.main_effects_plot(fm),
        "main effects (categoricals averaged)": lambda: mf.main_effects_plot(fm, average_categoricals=True),
        "interaction plot": lambda: mf.interaction_plot(fm, "Agitation", "Medium"),
        "contour": lambda: mf.contour_plot(fm, "Agitation", "Seeding density"),
        "3D surface": lambda: mf.surface_plot(fm, "Agitation", "Seeding density"),
        "profiler": lambda: mf.profiler(fm, None), "steepest ascent": lambda: mf.steepest_ascent_plot(fm),
    }
    out = []
    for label, fn in cases.items():
        fn()  # warm-up
        out.append((f"Figure: {label}", min(timed(fn, 1, warm_up=False) for _ in range(3)), 0.15))
    contour50 = lambda: mf.contour_plot(fm, "Agitation", "Seeding density", n=50)  # noqa: E731
    contour50()
    out.append(("Figure: contour on a 50 x 50 grid", min(timed(contour50, 1, warm_up=False) for _ in range(3)), 0.3))
    return out


def main() -> int:
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    rows = []
    t_full = timed(lambda: fit_all(study, runs, default=ModelChoice(model="quadratic")), warm_up=False)
    rows.append(("Fit 7 CQAs, full quadratic (36 columns, 40 runs)", t_full, 0.5))
    t_red = timed(lambda: fit_all(study, runs, default=ModelChoice(model="quadratic", reduce=True)), warm_up=False)
    rows.append(("Fit 7 CQAs, backward reduction from quadratic (page default)", t_red, 0.5))
    rows += figure_times(study, runs)
    reruns = page_rerun_times()
    rows.append(("Models page rerun on changing the CQA (cached fits), median", statistics.median(reruns), 0.3))
    print("# Model-fitting benchmark\n")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"- page reruns measured with Streamlit AppTest: {len(reruns)} changes, "
          f"max {max(reruns):.3f} s\n")
    print("| Case | Time (s) | Target (s) | Status |\n|---|---|---|---|")
    ok = True
    for label, seconds, target in rows:
        passed = seconds < target
        ok &= passed
        print(f"| {label} | {seconds:.3f} | < {target} | {'PASS' if passed else 'FAIL'} |")
    print(f"\nOverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
