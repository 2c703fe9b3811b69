"""Benchmark of the report for regulatory review: PDF + HTML of the bundled example from a fresh store.

Run from the repository root::

    python bench/bench_report.py            # 3 trials
    python bench/bench_report.py --trials 1

Populates a fresh SQLite store in a temporary folder with the bundled MSC example
(study, 40 simulated runs in two batches, two analysis versions, a design-space
decision), then times, per trial, what the Report page's button (and
``python -m doe report --out r.pdf --out r.html``) does: ``warm_up`` (start the
figure-export browser in the background), ``build_report`` (refit every CQA,
map the design space, compare with the previous version), ``render_pdf``
(static figures with kaleido, WeasyPrint PDF/A-3b) and ``render_html``.
Target: the whole under 20 s. Prints a markdown table with PASS/FAIL and exits
1 if the target is missed (any trial). Times are wall clock (time.perf_counter)
in one process; the first trial includes starting the browser.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = 20.0


def populate(url: str) -> str:
    from doe.runs import read_results
    from doe.store import Store
    from doe.study import Study
    from doe.versions import rerun_analysis

    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    store = Store.open(url)
    try:
        store.save_study(study, "bench")
        store.append_runs(study.name, runs.iloc[:30], "bench")
        rerun_analysis(store, study.name, "bench")
        out = rerun_analysis(store, study.name, "bench", new_runs=runs.iloc[30:])
        store.save_decision(study.name, 0.9, out["design_space"]["set_point"], {"par": {}, "nor": {}}, "bench",
                            analysis_version=out["analysis_version"])
    finally:
        store.close()
    return study.name


def trial(url: str, name: str) -> dict[str, float]:
    from doe.report import build_report, render_html, render_pdf
    from doe.report.pdf import warm_up
    from doe.store import Store

    store = Store.open(url)
    try:
        t0 = time.perf_counter()
        warm_up()
        content = build_report(store, name)
        t1 = time.perf_counter()
        pdf = render_pdf(content)
        t2 = time.perf_counter()
        html = render_html(content)
        t3 = time.perf_counter()
    finally:
        store.close()
    return {"build": t1 - t0, "pdf": t2 - t1, "html": t3 - t2, "total": t3 - t0, "pdf_bytes": len(pdf),
            "html_bytes": len(html.encode("utf-8")), "figures": len(content.figures),
            "static": len(content.figures) - len(content.numbers.get("figures_only_in_html") or [])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        name = populate(url)
        results = [trial(url, name) for _ in range(args.trials)]
    print(f"Report of the bundled example ({platform.python_version()}, {os.cpu_count()} CPUs; "
          f"{results[0]['figures']} figures, {results[0]['static']} as static images)\n")
    print("| trial | build s | PDF s | HTML s | total s | target s | PDF kB | HTML kB | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for i, r in enumerate(results, start=1):
        passed = r["total"] < TARGET
        ok &= passed
        print(f"| {i} | {r['build']:.2f} | {r['pdf']:.2f} | {r['html']:.2f} | {r['total']:.2f} | {TARGET:g} | "
              f"{r['pdf_bytes'] / 1000:.0f} | {r['html_bytes'] / 1000:.0f} | {'PASS' if passed else 'FAIL'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
