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

from doe.analysis import ModelChoice, fit_all  # noqa: E402
from doe.runs import read_results  # noqa: E402
from doe.study import Study  # noqa: E402


def timed(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def page_rerun_times() -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
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


def main() -> int:
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    rows = []
    t_full = timed(lambda: fit_all(study, runs, default=ModelChoice(model="quadratic")))
    rows.append(("Fit 7 CQAs, full quadratic (36 columns, 40 runs)", t_full, 0.5))
    t_red = timed(lambda: fit_all(study, runs, default=ModelChoice(model="quadratic", reduce=True)))
    rows.append(("Fit 7 CQAs, backward reduction from quadratic (page default)", t_red, 0.5))
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
