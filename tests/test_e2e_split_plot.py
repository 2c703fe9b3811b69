"""A split-plot study from scratch in headless Chromium: a hard-to-change surface factor and a donor column.

Open the app, open the bundled split-plot study file (Surface hard to change, Donor a random effect) on the
Study page, generate a 32-run split-plot D-optimal design in 8 whole plots, check that the run sheet downloaded
holds Surface constant in every whole plot, save it, upload the (simulated) results with their Donor column,
and check that Models fits the mixed model (variance components, Kenward-Roger df, the fully randomised
analysis beside it in words), that the design space says it is for a run with a new donor and whole plot and
changes when the average donor is chosen, and that the report states the error structure. Screenshots go to
``artifacts/e2e-split-plot/`` (DOE_E2E_ARTIFACTS overrides the parent folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from pypdf import PdfReader

from doe.example import SPLIT_RESULTS_FILE, SPLIT_STUDY_FILE
from doe.store import Store
from doe.study import WHOLE_PLOT
from tests.conftest import ROOT
from tests.test_e2e_journey import MAP_DRAWN_JS, Journey
from tests.test_e2e_store import NAME_BOX, Server, browser  # noqa: F401  (browser is a fixture)

ARTIFACTS = Path(os.environ.get("DOE_E2E_ARTIFACTS", ROOT / "artifacts")) / "e2e-split-plot"
SEED = 20261207  # data/simulate_split_plot.py: the seed of the example's design


def test_split_plot_study_from_scratch(browser, tmp_path):  # noqa: F811
    server = Server(tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
    j = Journey(page, server.url, {})
    j.page.set_default_timeout(120_000)
    try:
        import tests.test_e2e_journey as journey
        journey.ARTIFACTS = ARTIFACTS  # this journey's screenshots in their own folder
        j.step("open the app", lambda: page.goto(server.url), wait_for="QbD design-of-experiments workbench")
        j.step("enter a name", lambda: (page.get_by_role("textbox", name=NAME_BOX).fill("Ana Lopez"),
                                        page.keyboard.press("Enter")), wait_for="Ana Lopez (editor")
        j.step("open Study", lambda: j.nav("Study"), wait_for="Open a study file (YAML)")
        j.step("open the split-plot study", lambda: j.upload(SPLIT_STUDY_FILE), wait_for="MSC split-plot example")
        assert page.get_by_role("textbox", name="Random effects (optional, ';'-separated)").input_value() == "Donor"

        j.step("open Design", lambda: j.nav("Design"), wait_for="Restricted randomisation")
        assert page.get_by_text("hard to change: Surface (constant within each whole plot)").first.is_visible()
        j.step("generate a split-plot design", lambda: (
            page.get_by_role("spinbutton", name="Whole plots (0: the default)").fill("8"),
            page.get_by_role("spinbutton", name="Runs (0: the default)").fill("32"),
            page.get_by_role("textbox", name="Seed (blank: random, recorded)").fill(str(SEED)),
            page.get_by_role("button", name="Generate design").click()), wait_for="32 runs in 8 whole plots")
        assert page.get_by_text("under the split-plot covariance").first.is_visible()
        sheet = pd.read_csv(j.download("Download run sheet (CSV)", tmp_path))
        assert sheet[WHOLE_PLOT].nunique() == 8 and sheet.groupby(WHOLE_PLOT)["Surface"].nunique().max() == 1
        assert (sheet[WHOLE_PLOT].diff().fillna(0) != 0).sum() == 7  # sorted by whole plot for the bench
        j.step("save the design", lambda: page.get_by_role("button", name="Save this design").click(),
               wait_for="Saved in the database as design")
        j.step("see power by stratum", lambda: page.get_by_role("tab", name="Power").click(),
               wait_for="Signal-to-noise ratio for power")
        # the power table's stratum column (a canvas table: its hidden header cells carry the names)
        page.locator('th:has-text("Error stratum")').first.wait_for(state="attached", timeout=60_000)

        j.step("open Runs", lambda: j.nav("Runs"), wait_for="Runs and results")
        j.step("upload results with donors", lambda: j.upload(SPLIT_RESULTS_FILE), wait_for="32 new or changed runs")
        j.step("save the upload", lambda: page.get_by_role("button", name="Save the upload").click(),
               wait_for="saved as data version 1")

        j.step("fit the mixed models", lambda: j.nav("Models"), wait_for="Mixed model (REML, Kenward-Roger df)")
        assert page.get_by_text("Variance components").first.is_visible()
        assert page.get_by_text("the runs share whole plots and donors").first.is_visible()
        j.step("compare with the randomised analysis", lambda: page.get_by_role("tab", name="Error structure").click(),
               wait_for="hid it in the residual")
        j.step("save the analysis", lambda: page.get_by_role("button", name="Save analysis version").click(),
               wait_for="Saved as analysis version 1")

        j.step("open the design space", lambda: j.nav("Design space"), wait_for="In the design space",
               until=f"() => ({MAP_DRAWN_JS})() >= 1")
        caption = page.locator(".doe-live-plot").inner_text()
        assert "a run with a new whole plot and a new donor" in caption
        metric = page.locator('[data-testid="stMetricValue"]').first  # P(all CQAs in spec) at the set point
        new_p = float(metric.inner_text())
        drawn = page.evaluate(MAP_DRAWN_JS)
        j.step("probability for the average donor", lambda: page.get_by_text("the average donor").click(),
               until=f"() => ({MAP_DRAWN_JS})() > {drawn}")
        assert "the average" in page.locator(".doe-live-plot").inner_text()
        assert float(metric.inner_text()) > new_p  # the average donor ignores donor-to-donor variation

        j.step("open Report", lambda: j.nav("Report"), wait_for="Report on")
        j.step("build the report", lambda: page.get_by_role("button", name="Build the report").click(),
               wait_for="Built:", timeout=300_000)
        pdf = j.download("Download the PDF (for submission)", tmp_path)
        text = " ".join(" ".join(pg.extract_text().split()) for pg in PdfReader(str(pdf)).pages)
        assert "Error structure: Surface changes only between whole plots" in text
        assert "Type III tests of the mixed model" in text and "variance components (REML)" in text
    finally:
        page.close()
        server.kill()

    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        runs = store.runs("MSC split-plot example")
        assert len(runs) == 32 and set(runs["Donor"]) == {f"D{k}" for k in range(1, 7)}
        assert store.verify_audit().ok
    finally:
        store.close()
