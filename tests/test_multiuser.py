"""Many users: two Streamlit servers on loopback ports share one PostgreSQL while four writer
processes append batches and edit the same run through the library API.

Checks: no lost or duplicated runs, every data version number unique and contiguous, refused
concurrent edits refused (never silently lost), audit sequence contiguous and its hash chain
intact, both servers healthy, and (with Playwright and Chromium) both serve the app's pages.
Needs DOE_TEST_POSTGRES_URL (see tests/conftest.py); .ci/run provides it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from doe.store import Store, User
from doe.study import Study
from tests.conftest import fresh_pg_schema, postgres_test_url, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TITLE = "QbD design-of-experiments workbench"
WRITERS, BATCHES, RUNS_PER_BATCH, EDIT_EVERY = 4, 25, 4, 5
SEED_RUNS = 4

pytestmark = pytest.mark.postgres

# One writer process: BATCHES appends of RUNS_PER_BATCH runs with its own Run ids, and every
# EDIT_EVERY batches an edit of run 1's result from a row version read a moment earlier.
WRITER = r"""
import json, os, random, sys, time
import pandas as pd
from doe.store import ConcurrentEditError, Store, User

url, name, barrier, k, batches, size, every = *sys.argv[1:4], *map(int, sys.argv[4:8])
store = Store.open(url)
open(f"{barrier}/ready-{k}", "w").close()  # start together: wait for the others
while not os.path.exists(f"{barrier}/go"):
    time.sleep(0.01)
user = User(f"writer-{k}")
rng = random.Random(k)
out = {"versions": [], "labels": [], "edits": [], "refused": 0}
for b in range(batches):
    labels = [100000 + 10000 * k + 100 * b + i for i in range(size)]
    df = pd.DataFrame({"Run": labels, "Agitation": [30.0 + (i % 7) * 10 for i in labels],
                       "Medium": ["FBS 10%" if i % 2 else "hPL 5%" for i in labels],
                       "Viability": [80.0 + (i % 10) for i in labels]})
    out["versions"].append(store.append_runs(name, df, user))
    out["labels"] += [str(x) for x in labels]
    if b % every == 0:
        runs = store.runs(name)
        run1 = runs[runs["Run"].astype(str) == "1"].iloc[0]
        value = round(50 + k + b / 100, 2)  # unique per writer and batch: every edit is a change
        time.sleep(rng.uniform(0.01, 0.08))  # let another writer get in between read and save
        try:
            version = store.update_result(int(run1.run_id), "Viability", value, int(run1.row_version),
                                          user, reason=f"re-read by writer {k}")
            out["edits"].append({"value": value, "version": version})
            out["versions"].append(version)
        except ConcurrentEditError:
            out["refused"] += 1
store.close()
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as resp:
            return resp.read().decode().strip()
    except OSError:
        return ""


def small_study(name: str) -> Study:
    return Study.from_dict({
        "name": name,
        "factors": [{"name": "Agitation", "low": 30, "high": 90, "units": "rpm"},
                    {"name": "Medium", "kind": "categorical", "levels": ["FBS 10%", "hPL 5%"]}],
        "responses": [{"name": "Viability", "units": "%", "goal": "maximize", "lower": 80}],
    })


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Seeded study, two servers started and four writers run at the same time against one schema."""
    base = postgres_test_url()
    name = f"Shared MSC study {uuid.uuid4().hex[:6]}"
    with fresh_pg_schema(base) as url:
        store = Store.open(url)
        store.save_study(small_study(name), User("alice", authenticated=True))
        store.append_runs(name, pd.DataFrame({"Run": range(1, SEED_RUNS + 1), "Agitation": 60.0,
                                              "Medium": "FBS 10%", "Viability": 85.0}), "alice")
        store.close()
        env = {**os.environ, "DATABASE_URL": url, "DOE_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
        ports = [free_port(), free_port()]
        barrier = tmp_path_factory.mktemp("barrier")
        servers = [subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
        writers = []
        try:
            writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(barrier), str(k),
                                         str(BATCHES), str(RUNS_PER_BATCH), str(EDIT_EVERY)], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                       for k in range(WRITERS)]
            deadline, up, go = time.monotonic() + 120, set(), barrier / "go"
            while (len(up) < len(ports) or not go.exists()) and time.monotonic() < deadline:
                if not go.exists() and len(list(barrier.glob("ready-*"))) == WRITERS:
                    go.touch()  # all writers connected: let them go at once, servers starting meanwhile
                up |= {p for p in ports if health(p) == "ok"}
                time.sleep(0.1)
            go.touch()
            assert len(up) == len(ports), f"Streamlit servers on {sorted(set(ports) - up)} never became healthy"
            results = []
            for w in writers:
                out, err = w.communicate(timeout=180)
                assert w.returncode == 0, f"writer failed: {err[-3000:]}"
                results.append(json.loads(out.strip().splitlines()[-1]))
            yield {"url": url, "name": name, "ports": ports, "results": results}
        finally:
            for proc in writers + servers:
                stop(proc)


def test_concurrent_writers_and_two_servers_lose_nothing(cluster):
    name, results = cluster["name"], cluster["results"]
    store = Store.open(cluster["url"])
    try:
        runs = store.runs(name)
        written = [label for r in results for label in r["labels"]]
        assert len(written) == WRITERS * BATCHES * RUNS_PER_BATCH and len(set(written)) == len(written)
        assert len(runs) == SEED_RUNS + len(written), "runs were lost or duplicated"
        assert runs["Run"].astype(str).is_unique
        assert set(runs["Run"].astype(str)) == {str(i) for i in range(1, SEED_RUNS + 1)} | set(written)

        # Every data version number handed out once, contiguous, and each is in the table.
        returned = sorted([1] + [v for r in results for v in r["versions"]])
        assert returned == list(range(1, len(returned) + 1)), "a data version was handed out twice or skipped"
        versions = store.data_versions(name)
        assert versions["version"].tolist() == returned
        assert versions["n_runs"].is_monotonic_increasing and versions["n_runs"].iloc[-1] == len(runs)

        # Edits of run 1: some refused (stale row version), every accepted one kept, in order.
        edits = [e for r in results for e in r["edits"]]
        refused = sum(r["refused"] for r in results)
        assert len(edits) + refused == WRITERS * len(range(0, BATCHES, EDIT_EVERY))
        assert edits, "no edit of run 1 got through"
        assert refused, "no edit was refused: the writers did not overlap"
        run1 = runs[runs["Run"].astype(str) == "1"].iloc[0]
        assert int(run1.row_version) == 1 + len(edits)
        trail = store.audit_trail(name)
        changes = trail[(trail["entity"] == "run") & (trail["action"] == "modify")
                        & (trail["entity_id"] == str(int(run1.run_id)))]
        assert len(changes) == len(edits), "an accepted edit is missing from the audit trail"
        in_order = sorted(edits, key=lambda e: e["version"])
        assert [json.loads(v) for v in changes["new_value"]] == [e["value"] for e in in_order]
        assert run1.Viability == in_order[-1]["value"]
        olds = [json.loads(v) for v in changes["old_value"]]
        assert olds == [85.0] + [e["value"] for e in in_order[:-1]], "an edit overwrote one it never saw"

        # Audit: one record per run created, contiguous sequence, intact chain.
        full = store.audit_trail()
        assert full["seq"].tolist() == list(range(1, len(full) + 1))
        assert ((trail["entity"] == "run") & (trail["action"] == "create")).sum() == len(runs)
        check = store.verify_audit()
        assert check.ok, str(check)
    finally:
        store.close()
    for port in cluster["ports"]:
        assert health(port) == "ok", f"the server on port {port} is no longer healthy"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200


@pytest.mark.browser
def test_both_servers_render_the_app_in_a_browser(cluster):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright): no browser check")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium): no browser check")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for port in cluster["ports"]:
                page = browser.new_page()
                # a new session opens no one's study by itself (issue 15): open the shared one by its link
                page.goto(f"http://127.0.0.1:{port}/?study={quote(cluster['name'])}", timeout=60_000)
                page.wait_for_selector("h1", timeout=60_000)
                page.get_by_text(cluster["name"]).first.wait_for(timeout=60_000)
                text = page.inner_text("body")
                assert TITLE in text
                assert cluster["name"] in text, f"the server on port {port} does not list the study"
                page.close()
        finally:
            browser.close()
