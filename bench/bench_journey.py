"""Speed a user feels along the whole journey, measured in headless Chromium by the e2e suite.

Run from the repository root (needs Playwright and Debian's chromium)::

    python bench/bench_journey.py            # five journeys, each on a fresh server and database
    python bench/bench_journey.py --runs 1   # one journey (quicker, noisier)

Each run is ``tests/test_e2e_journey.py``: a fresh ``streamlit run app.py`` and database, every step
timed until Streamlit reports the script finished and the page connected (and, for the design-space
steps, until the map is drawn). The table shows each
step's median over the runs (the set point is moved five times per run) against the targets of
issue 7 on a 2-core machine:

- cold start: from launching ``streamlit run app.py`` to the first frame the browser draws with the
  Home page usable (its main button shown, the app idle), under 5 s;
- every interaction under 1 s (median);
- the design-space slider under 0.5 s (median).

Steps that compute a whole analysis (building the report, saving or re-running an analysis) have no
interactive target and are listed for information, as are the parts of the cold start. The last
run's screenshots and times are in ``artifacts/e2e/``. Exits 1 when a target is missed.

To see where the server spends a step, set ``DOE_PROFILE_DIR=/some/empty/folder``: app.py
then writes one cProfile file per script run, named by page and duration (read them with
``python -m pstats``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ROOT / "artifacts" / "e2e" / "timings.json"
COLD = "cold start (launch to first page)"
TARGETS = {COLD: 5.0, "move the set point": 0.5}
NO_TARGET = {"build the report", "save the analysis", "re-run the analysis", "enter a name",
             "start the server", "open the app"}


def one_journey() -> dict[str, list[float]] | None:
    env = {**os.environ, "DOE_E2E_ARTIFACTS": str(TIMINGS.parent)}
    TIMINGS.unlink(missing_ok=True)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_e2e_journey.py"], cwd=ROOT, env=env)
    if run.returncode != 0 or not TIMINGS.exists():
        return None
    times = json.loads(TIMINGS.read_text(encoding="utf-8"))
    times = {k: v if isinstance(v, list) else [v] for k, v in times.items()}
    cold = {COLD: [times["start the server"][0] + times["open the app"][0]]}
    return cold | times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="journeys to run (default 5: a steadier median)")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    for i in range(args.runs):
        times = one_journey()
        if times is None:
            print(f"Journey {i + 1} did not complete: see the pytest output above.")
            return 1
        for step, values in times.items():
            samples.setdefault(step, []).extend(values)
    print(f"# The user's journey in headless Chromium ({os.cpu_count()} cores, {args.runs} journeys)\n")
    print("| Step | Median (s) | Min - max (s) | n | Target (s) | Status |\n|---|---|---|---|---|---|")
    ok = True
    for step, values in samples.items():
        target = None if step in NO_TARGET else TARGETS.get(step, 1.0)
        median = statistics.median(values)
        passed = target is None or median < target
        ok &= passed
        print(f"| {step} | {median:.2f} | {min(values):.2f} - {max(values):.2f} | {len(values)} | "
              f"{'-' if target is None else f'< {target}'} | "
              f"{'info' if target is None else 'PASS' if passed else 'FAIL'} |")
    print(f"\nOverall: {'PASS' if ok else 'FAIL'} (last run's screenshots in {TIMINGS.parent})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
