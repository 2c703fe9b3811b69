"""Speed a user feels along the whole journey, measured in headless Chromium by the e2e suite.

Run from the repository root (needs Playwright and Debian's chromium)::

    python bench/bench_journey.py

Runs ``tests/test_e2e_journey.py`` (a fresh server and database; every step waits until
Streamlit reports the script finished and the page connected), then prints each step's time
from ``artifacts/e2e/timings.json`` as a table against the targets: cold start to first page
under 5 s; every interaction under 1 s; the design-space slider under 0.5 s. Steps that
compute a whole analysis (the report, saving or re-running an analysis) have no interactive
target and are listed for information. Exits 1 when a target is missed.

To see where the server spends a step, set ``DOE_PROFILE_DIR=/some/empty/folder``: app.py
then writes one cProfile file per script run, named by page and duration (read them with
``python -m pstats``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ROOT / "artifacts" / "e2e" / "timings.json"
TARGETS = {"open the app": 5.0, "move the set point": 0.5}
NO_TARGET = {"build the report", "save the analysis", "re-run the analysis", "enter a name"}


def main() -> int:
    env = {**os.environ, "DOE_E2E_ARTIFACTS": str(TIMINGS.parent)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_e2e_journey.py"], cwd=ROOT, env=env)
    if run.returncode != 0 or not TIMINGS.exists():
        print("The journey did not complete: see the pytest output above.")
        return 1
    times = json.loads(TIMINGS.read_text(encoding="utf-8"))
    print(f"# The user's journey in headless Chromium ({os.cpu_count()} cores)\n")
    print("| Step | Time (s) | Target (s) | Status |\n|---|---|---|---|")
    ok = True
    for step, seconds in times.items():
        target = None if step in NO_TARGET else TARGETS.get(step, 1.0)
        passed = target is None or seconds < target
        ok &= passed
        print(f"| {step} | {seconds:.2f} | {'-' if target is None else f'< {target}'} | "
              f"{'info' if target is None else 'PASS' if passed else 'FAIL'} |")
    print(f"\nOverall: {'PASS' if ok else 'FAIL'} (screenshots in {TIMINGS.parent})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
