"""Cold start (issue 21): what the server imports before it answers the browser.

``streamlit run app.py`` imports app.py (for its ``st.App``) before the server answers; everything that
import loads delays the first page for every user. The heavy modules (pandas, SQLAlchemy, the store,
the statistics) are loaded by the first page's session or by app.py's start-up thread
(pages/_app/speed.prepare_first_page), while the browser is loading the frontend. Deterministic: each
check runs a fresh interpreter and reads ``sys.modules`` (no timing).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("pandas", "sqlalchemy", "scipy", "statsmodels", "doe.store", "doe.study", "doe.analysis", "kaleido",
         "weasyprint")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_module_the_server_imports_at_start_loads_no_heavy_module():
    loaded = _loaded_after("import app  # what `streamlit run app.py` imports before the server answers")
    assert "streamlit" in loaded  # the probe did import the app
    assert sorted(m for m in HEAVY if m in loaded) == []

