"""ruff over the whole checkout (issue 17): ``ruff check .`` with pyproject.toml's ``[tool.ruff]`` passes,
including the docstring rules (D1) for the engine's public modules, classes, methods and functions.

CI runs the README's pytest command, so this is where CI enforces ruff.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_ruff_check_passes():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, "ruff check . failed:\n" + (out.stdout + out.stderr)[-20000:]
