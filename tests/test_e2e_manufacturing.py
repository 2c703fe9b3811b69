"""Manufacturing in headless Chromium: lots -> control charts -> capability -> lots on the design-space map.

The example study, its results and a design-space decision are in the database (saved as the Design space
page saves them); a first-time user opens the Manufacturing page, uploads the (simulated) example lots,
reads the individuals chart of CD73 with its signal at the Trypsin-EDTA lot, charts later lots against limits
from the first twenty (phase II), reads Viability's capability - Ppk observed as computed by hand from the
file, Ppk predicted at the decision's set point beside it - and sees every lot against the decision as a
table and as points on the probability map, the Trypsin-EDTA lot (harvest reagent outside its PAR) named. The stored lots are read back.
Screenshots go to ``artifacts/e2e-manufacturing/`` (DOE_E2E_ARTIFACTS overrides the parent folder).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pandas as pd

from doe.lots import LOTS_FILE
from doe.runs import read_results
from doe.store import Store
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT
from tests.test_e2e_journey import Journey
from tests.test_e2e_store import NAME_BOX, Server, browser  # noqa: F401  (browser is a fixture)

ARTIFACTS = Path(os.environ.get("DOE_E2E_ARTIFACTS", ROOT / "artifacts")) / "e2e-manufacturing"
SET_POINT = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE", "Agitation": 42.0,
             "Seeding density": 1800.0}


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def _tab(page, label: str):
    return page.get_by_role("tab", name=label)


def test_lots_charts_capability_and_the_map(browser, tmp_path):  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    study = Study.load(EXAMPLE)
    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        store.save_study(study, "Ana Lopez")
        store.append_runs(study.name, read_results(study, ROOT / "data" / "msc_example_results.csv").table,
                          "Ana Lopez")
        store.save_decision(study.name, 0.5, SET_POINT, {"par": {"Harvest reagent": ["TrypLE", "Accutase"]},
                                                         "nor": {}}, "Ana Lopez")
    finally:
        store.close()
    server = Server(tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    j = Journey(page, server.url, {})
    page.set_default_timeout(120_000)
    lots = pd.read_csv(LOTS_FILE)
    try:
        import tests.test_e2e_journey as journey
        journey.ARTIFACTS = ARTIFACTS
        j.step("open the app", lambda: page.goto(server.url), wait_for="QbD design-of-experiments workbench")
        j.step("enter a name", lambda: (page.get_by_role("textbox", name=NAME_BOX).fill("Ben Okafor"),
                                        page.keyboard.press("Enter")), wait_for="Ben Okafor (editor")

        j.step("open Manufacturing", lambda: j.nav("Manufacturing"), wait_for="No study is open yet")
        j.step("open the example study (saved with its decision)",
               lambda: page.get_by_role("button", name="Load the MSC example study").click(),
               wait_for="No lots recorded yet")
        j.step("upload the lots", lambda: j.upload(LOTS_FILE), wait_for=f"{len(lots)} new lots")
        j.step("save the upload", lambda: page.get_by_role("button", name="Save the upload").click(),
               wait_for="saved as lot data version 1")
        page.get_by_text("These lots are").first.wait_for()  # ... simulated

        j.step("chart CD73", lambda: (page.get_by_label("CQA").first.click(),
                                      page.get_by_role("option", name="CD73").click()),
               wait_for="Signals (Nelson rules)")
        page.locator('th:has-text("Rule")').first.wait_for(state="attached", timeout=60_000)
        assert page.locator(".js-plotly-plot").count() >= 1
        j.step("phase II after the first 20 lots",
               lambda: page.get_by_text("Phase II: limits from the first lots").click(),
               wait_for="set the limits")
        page.get_by_text("--baseline L20").first.wait_for()

        j.step("open Capability", lambda: _tab(page, "Capability").click(), wait_for="Ppk predicted at the set point")
        j.step("Viability", lambda: (page.get_by_label("CQA").first.click(),
                                     page.get_by_role("option", name="Viability").click(),
                                     page.mouse.move(5, 5)),  # no tooltip over the screenshot
               wait_for="normal tolerance interval")
        viability = lots["Viability"]
        ppk = (viability.mean() - 80.0) / (3 * statistics.stdev(viability))  # lower spec only: Ppk = Ppl
        page.wait_for_function("(v) => [...document.querySelectorAll('[data-testid=stMetricValue]')]"
                               ".some(e => e.innerText === v)", arg=f"{ppk:.2f}")
        assert _metric(page, "Ppk observed") == f"{ppk:.2f}"
        predicted = _metric(page, "Ppk predicted")
        assert predicted != "n/a" and float(predicted) > 0

        j.step("open Lots in the design space", lambda: _tab(page, "Lots in the design space").click(),
               wait_for="lots ran inside the design space")
        alert = page.locator('[data-testid="stAlert"]').filter(has_text="lots ran inside").first.inner_text()
        assert "29 of 30 lots" in alert and alert.endswith("outside: L26.")  # the Trypsin-EDTA lot
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        page.locator(".js-plotly-plot .legendtext").first.wait_for(state="attached")
        legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
        assert any("outside" in t for t in legend) and any("inside" in t for t in legend), legend
        j.step("the map", lambda: page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed())
    finally:
        page.close()
        server.kill()

    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        saved = store.lots(study.name)
        assert list(saved["Lot"]) == list(lots["Lot"])
        assert saved["Viability"].tolist() == lots["Viability"].tolist()
        assert store.verify_audit().ok
    finally:
        store.close()
