"""The whole journey of a new user, in headless Chromium against ``streamlit run app.py``.

Open the app, load the example study, generate the default design and download its run sheet,
upload results, fit every CQA, change a model, save the analysis, open the design space and move
the set point, export a figure, build and download the report, add a batch of new runs, re-run the
analysis and open the comparison, and check the audit trail holds each step. A screenshot of each
page and the time of each step (seconds; a list, as the set point is moved five times) are written
to ``artifacts/e2e/`` (override with DOE_E2E_ARTIFACTS); ``start the server`` is the time from
launching ``streamlit run`` until it answers, before the browser opens the app; ``open the app`` runs
from the browser being sent to the app until the first frame it drew with the Home page usable (main
button shown, app idle), read from the browser's clock (USABLE_JS).

Needs Playwright and Chromium (/usr/bin/chromium or CHROMIUM=...): skipped with a reason on a
machine without them, failed instead under DOE_REQUIRE_POSTGRES=1 (CI, see .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pandas as pd
from pypdf import PdfReader

from doe.store import Store
from tests.conftest import ROOT
from tests.test_e2e_store import NAME_BOX, Server, browser  # noqa: F401  (browser is a fixture)

#: The seed that made the example data's design (data/simulate_example.py: SEED).
EXAMPLE_SEED = 20261128
ARTIFACTS = Path(os.environ.get("DOE_E2E_ARTIFACTS", ROOT / "artifacts" / "e2e"))
#: Streamlit's own e2e tests wait for these: connected, and the script not running.
IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
             && app.getAttribute('data-test-script-state') === 'notRunning'
             && !document.querySelector('[data-stale="true"]')
             && !document.querySelector('[data-doe-drawing="1"]');  // the design-space map: drawn
}"""
#: Marks, in the browser's own clock, the first frame drawn with the Home page usable: its main button
#: there and the app idle (IDLE_JS). Checked once per frame from the first script on, so the cold start
#: is timed to the frame, without the test's polling.
USABLE_JS = """(() => {
  const check = () => {
    const button = [...document.querySelectorAll('button')].some(b => b.textContent.includes('Load the MSC example study'));
    if (button && (""" + IDLE_JS + """)()) { window.__doeUsableAt = Date.now(); return; }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})()"""
#: How many figures the design-space map (pages/_app/live_plot.js) has drawn so far.
MAP_DRAWN_JS = "() => Number(document.querySelector('.doe-live-plot')?.dataset.doeDrawn || 0)"


#: Count script runs from now on (an observer on the app's script-state attribute).
WATCH_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return false;
  window.__runs = 0;
  window.__since = performance.now();
  if (!window.__watcher) {  // each record is one change; a change away from 'running' ends a run
    window.__watcher = new MutationObserver(records => {
      for (const r of records) if (r.oldValue === 'running') window.__runs += 1;
    });
    window.__watcher.observe(app, {attributes: true, attributeOldValue: true,
                                   attributeFilter: ['data-test-script-state']});
  }
  return true;
}"""
#: Idle after at least one script run ended since WATCH_JS (or 3 s without one: an action that reruns nothing).
AFTER_RUN_JS = """() => (window.__runs > 0 || performance.now() - window.__since > 3000) && (""" + IDLE_JS + """)()"""


class Journey:
    """A browser page on the app, timing each step (a list of times when repeated) with a screenshot."""

    def __init__(self, page, url: str, times: dict[str, list[float]]) -> None:
        self.page, self.url, self.times = page, url, times
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def idle(self, timeout: float = 180_000) -> None:
        self.page.wait_for_timeout(150)
        self.page.wait_for_function(IDLE_JS, timeout=timeout)

    def after_rerun(self, timeout: float) -> None:
        """Wait until the script run the action started has finished, then for the next frame drawn."""
        self.page.wait_for_function(AFTER_RUN_JS, timeout=timeout)
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")

    def step(self, name: str, action, wait_for: str | None = None, timeout: float = 180_000,
             until: str | None = None) -> None:
        """Run ``action``, wait until the rerun it causes is done (and ``wait_for`` shows, and the JS
        predicate ``until`` holds), time it, screenshot.

        Timing starts just before the action and ends when the app has drawn the result: the script run
        the action started is seen to start and finish (no fixed sleep), then one animation frame.
        """
        watching = self.page.evaluate(WATCH_JS)  # False before the app's first page (the 'open' step)
        start = time.perf_counter()
        action()
        if watching:
            self.after_rerun(timeout)
        else:
            self.idle(timeout)
        if wait_for:
            self.page.get_by_text(wait_for).first.wait_for(timeout=timeout)
        if until:
            self.page.wait_for_function(until, timeout=timeout, polling="raf")
        self.times.setdefault(name, []).append(round(time.perf_counter() - start, 3))
        self.page.screenshot(path=str(ARTIFACTS / f"{list(self.times).index(name):02d}-{name}.png"),
                             full_page=True)

    def nav(self, title: str) -> None:
        self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()

    def upload(self, path: Path) -> None:
        self.page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))

    def download(self, button: str, folder: Path) -> Path:
        with self.page.expect_download(timeout=180_000) as info:
            self.page.get_by_role("button", name=button).click()
        target = folder / info.value.suggested_filename
        info.value.save_as(str(target))
        return target


def test_new_user_journey(browser, tmp_path):  # noqa: F811
    results = pd.read_csv(ROOT / "data" / "msc_example_results.csv")
    first, everything = tmp_path / "batch1.csv", tmp_path / "all.csv"
    results.iloc[:38].to_csv(first, index=False)  # 38 runs: enough for the reduced quadratic
    results.to_csv(everything, index=False)
    launched = time.perf_counter()
    server = Server(tmp_path)
    times = {"start the server": [round(time.perf_counter() - launched, 3)]}
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.add_init_script(USABLE_JS)
    j = Journey(page, server.url, times)
    try:
        opened = time.time()
        j.step("open the app", lambda: (page.goto(server.url),  # until its main button is drawn: usable
                                        page.get_by_role("button", name="Load the MSC example study").wait_for()),
               wait_for="QbD design-of-experiments workbench")
        times["open the app"] = [round(page.evaluate("() => window.__doeUsableAt") / 1000 - opened, 3)]
        j.step("enter a name", lambda: (page.get_by_role("textbox", name=NAME_BOX).fill("Ana Lopez"),
                                        page.keyboard.press("Enter")), wait_for="Ana Lopez (editor")
        j.step("load the example study", lambda: page.get_by_role("button", name="Load the MSC example study").click(),
               wait_for="Generate design")
        seed_box = page.get_by_role("textbox", name="Seed (blank: random, recorded)")
        # the seed that made the example data's design (data/simulate_example.py): the results uploaded
        # below are that design's runs, so the data version names this design
        j.step("generate the default design", lambda: (seed_box.fill(str(EXAMPLE_SEED)),
                                                       page.get_by_role("button", name="Generate design").click()),
               wait_for="Design not saved")
        j.step("save the design", lambda: page.get_by_role("button", name="Save this design").click(),
               wait_for="Saved in the database as design")
        assert "MSC expansion: saved" in page.locator('[data-testid="stSidebar"]').inner_text()  # not stale
        sheet = j.download("Download run sheet (CSV)", tmp_path)
        assert len(pd.read_csv(sheet)) == 40

        j.step("open Runs", lambda: j.nav("Runs"), wait_for="Runs and results")
        j.step("upload results", lambda: j.upload(first), wait_for="38 new or changed runs of 38")
        j.step("save the upload", lambda: page.get_by_role("button", name="Save the upload").click(),
               wait_for="saved as data version 1")

        # a trial design saved after the data: the newest design, but not the one the data were run on
        j.step("open Design again", lambda: j.nav("Design"), wait_for="Designs of this study")
        j.step("generate a trial design", lambda: (seed_box.fill("7"),
                                                   page.get_by_role("button", name="Generate design").click()),
               wait_for="Design not saved")
        j.step("save the trial design", lambda: page.get_by_role("button", name="Save this design").click(),
               wait_for="Saved in the database as design 2")

        j.step("fit all CQAs", lambda: j.nav("Models"), wait_for="Adj. R²")
        model_box = page.get_by_role("textbox", name="Model")
        j.step("change the model", lambda: (model_box.fill("linear"),
                                            page.get_by_text("Backward reduction (hierarchical)").click(),
                                            page.get_by_role("button", name="Fit model").click()),
               wait_for="model: Medium + Surface + Harvest reagent + Agitation + Seeding density; response")
        j.step("save the analysis", lambda: page.get_by_role("button", name="Save analysis version").click(),
               wait_for="Saved as analysis version 1")

        j.step("open the design space", lambda: j.nav("Design space"), wait_for="In the design space",
               until=f"() => ({MAP_DRAWN_JS})() >= 1")  # until the map is drawn
        # the map's footnote names the data version as the Versions page lists it: number and content hash
        assert re.search(r"data version 1 \([0-9a-f]{12}\)", page.locator(".doe-live-plot").inner_text())
        slider = page.get_by_role("slider").nth(1)  # after the probability threshold: the first set point
        slider.focus()
        for key in ("ArrowRight", "ArrowRight", "ArrowLeft", "ArrowLeft", "ArrowLeft"):  # five moves: a median
            drawn = page.evaluate(MAP_DRAWN_JS)  # until the map shows the moved set point
            j.step("move the set point", lambda key=key: page.keyboard.press(key),
                   until=f"() => ({MAP_DRAWN_JS})() > {drawn}")
        star = page.evaluate("() => document.querySelector('.doe-live-plot').data.find(t => t.name === 'Set point')")
        axis_value = float(slider.evaluate("e => e.value ?? e.getAttribute('aria-valuenow')"))
        assert axis_value in (star["x"][0], star["y"][0])  # the map's star is where the slider now is
        surface = page.evaluate("""() => { const t = document.querySelector('.doe-live-plot').data[0];
            const z = t.z.flatMap(r => Array.from(r)).filter(Number.isFinite);
            return [t.x.length, t.y.length, t.z.length, t.z[0].length, t.customdata[0][0].length,
                    Math.min(...z), Math.max(...z)]; }""")  # the decoded probability surface
        nx, ny, rows, cols, per_cell, low, high = surface
        assert (rows, cols) == (ny, nx) and per_cell == 1 + 2 * 6 and 0 <= low <= high <= 1
        page.get_by_role("tab", name="Export").click()
        html_figure = j.download("Figure as interactive HTML", tmp_path)
        assert "<html" in html_figure.read_text(encoding="utf-8")[:200].lower()

        j.step("open Report", lambda: j.nav("Report"), wait_for="Report on")
        j.step("build the report", lambda: page.get_by_role("button", name="Build the report").click(),
               wait_for="Built:", timeout=300_000)
        pdf = j.download("Download the PDF (for submission)", tmp_path)
        assert pdf.read_bytes().startswith(b"%PDF")
        # the report's design section describes the design the analysed data were run on (design 1, the
        # example's D-optimal design), not the trial design saved after it (design 2)
        text = " ".join(" ".join(pg.extract_text().split()) for pg in PdfReader(str(pdf)).pages)
        assert 'were run on the design "D-optimal, 40 runs" (stored design 1)' in text, text[:3000]
        assert f"seed {EXAMPLE_SEED}" in text and "stored design 2" not in text

        j.step("open Runs again", lambda: j.nav("Runs"), wait_for="38 runs saved")
        j.step("upload a new batch", lambda: j.upload(everything), wait_for="2 new or changed runs of 40")
        j.step("save the new batch", lambda: page.get_by_role("button", name="Save the upload").click(),
               wait_for="saved as data version 2")
        j.step("open Versions", lambda: j.nav("Versions"), wait_for="is newer")
        j.step("re-run the analysis", lambda: page.get_by_role("button", name="Re-run the analysis on the newest data")
               .click(), wait_for="Compare two analysis versions")
        j.step("compare the design space", lambda: page.get_by_role("tab", name="Design space").click(),
               until=f"() => ({MAP_DRAWN_JS})() >= 1")  # until the before/after map is drawn
        j.step("open the audit trail", lambda: j.nav("Audit trail"), wait_for="Audit trail intact")
    finally:
        (ARTIFACTS / "timings.json").write_text(json.dumps(j.times, indent=2), encoding="utf-8")
        page.close()
        server.kill()

    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        trail = store.audit_trail("MSC expansion")
        steps = set(zip(trail["action"], trail["entity"], strict=True))
        for step in [("create", "study"), ("create", "study_version"), ("create", "design"), ("create", "run"),
                     ("create", "data_version"), ("create", "analysis"), ("modify", "design")]:
            assert step in steps, step
        assert set(trail["user_name"]) == {"Ana Lopez"} and store.verify_audit().ok
        assert store.analyses("MSC expansion")["data_version"].tolist() == [1, 2]
        assert len(store.runs("MSC expansion")) == 40
    finally:
        store.close()
