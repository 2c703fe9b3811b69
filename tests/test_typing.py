"""mypy over the engine (issue 17): ``python -m mypy`` with pyproject.toml's ``[tool.mypy]`` (files = doe,
strict flags for the modules holding the public result objects) reports no error.

CI runs the README's pytest command, so this is where CI type-checks ``doe/``. The check starts cold (a
fresh cache directory, as on a clean clone) and writes nothing into the checkout.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_mypy_reports_no_error_in_doe(tmp_path):
    # No path arguments: the files to check come from the config, so `python -m mypy` run by hand in the
    # checkout checks exactly what this test checks.
    out = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"),
                          "--no-color-output", "--no-error-summary"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert out.returncode == 0, (f"mypy found {len(errors)} error(s) in doe/ (run `python -m mypy`):\n"
                                 + (out.stdout + out.stderr)[-20000:])
