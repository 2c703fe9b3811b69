"""In a real browser: what the user saw as saved survives a killed server; the second of two
conflicting saves is refused with the other person's change; a newer database is refused.

Needs Playwright and Chromium (/usr/bin/chromium, or CHROMIUM=...): skipped with a reason on a
machine without them, and failed instead under DOE_REQUIRE_POSTGRES=1 (CI, see .ci/run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from doe.store import Store
from tests.conftest import ROOT, skip_or_fail

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NAME_BOX = "Your name (recorded with every change)"
IDLE_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')
               && !document.querySelector('[data-stale="true"]')"""


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free loopback port with its own data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        env = {**os.environ, "DOE_DATA_DIR": str(data_dir)}
        env.pop("DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise AssertionError("the Streamlit server did not start within 60 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, as when a machine loses power."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def idle(page, timeout: float = 120_000) -> None:
    page.wait_for_timeout(100)
    page.wait_for_function(IDLE_JS, timeout=timeout)


def open_app(browser, server: Server, path: str = "", name: str | None = None):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server.url}/{path}")
    page.wait_for_selector("h1, [data-testid=stAlert]", timeout=60_000)
    idle(page)
    if name:
        page.get_by_role("textbox", name=NAME_BOX).fill(name)
        page.keyboard.press("Enter")
        idle(page)
    return page


def test_saved_results_survive_a_killed_server(browser, tmp_path):
    server = Server(tmp_path)
    try:
        page = open_app(browser, server, "runs", name="Ana Lopez")
        page.get_by_role("button", name="Load the example results (simulated)").click()
        idle(page)
        page.get_by_text("Example results: saved as data version 1, run on design 1 \"Example D-optimal design, 40 runs\"").wait_for(timeout=30_000)
        page.close()
    finally:
        server.kill()
    restarted = Server(tmp_path)
    try:
        page = open_app(browser, restarted, "runs?study=MSC+expansion")  # a new session opens no one's study
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("MSC expansion: saved").wait_for(timeout=30_000)
        assert "data version 1, 40 runs" in sidebar.inner_text()
        page.locator("main").get_by_text("40 runs saved", exact=False).wait_for(timeout=30_000)  # drawn after the sidebar
    finally:
        restarted.kill()
    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        assert len(store.runs("MSC expansion")) == 40 and store.verify_audit().ok
        assert set(store.audit_trail()["user_name"]) == {"Ana Lopez"}
    finally:
        store.close()


def test_newer_database_is_refused_with_a_clear_message(browser, tmp_path):
    Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}").close()
    import sqlite3

    with sqlite3.connect(tmp_path / "doe.sqlite") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    server = Server(tmp_path)
    try:
        page = open_app(browser, server)
        text = page.locator("main").inner_text()
        assert "The database cannot be used" in text and "newer than this software" in text
        assert "Traceback" not in text
    finally:
        server.kill()
