"""Scale-planner figure: no vessel label overlaps another label, the title or a line, measured in Chromium."""

import pytest
from playwright.sync_api import sync_playwright

from doe.plots.scale import plan_figure
from doe.scale import plan_seed_train, read_catalogue
from tests.test_scale import ISSUE, supply

#: The supply of the test suite's issue, and the example's (fold and densities from its models at the set point).
SUPPLIES = [supply(), supply(seeding_density_cells_per_cm2=3000, fold_expansion_per_passage=5.189,
                             harvest_density_cells_per_cm2=15570)]

pytestmark = pytest.mark.browser


def _overlap(a, b, pad=0.0):
    return (a["x"] < b["x"] + b["width"] - pad and b["x"] < a["x"] + a["width"] - pad
            and a["y"] < b["y"] + b["height"] - pad and b["y"] < a["y"] + a["height"] - pad)


@pytest.mark.parametrize("width", [1100, 640])
@pytest.mark.parametrize("which", [0, 1])
def test_vessel_labels_do_not_overlap(width, which):
    catalogue = read_catalogue()
    plans = [plan_seed_train(ISSUE, SUPPLIES[which], catalogue, s) for s in ("scale-out", "scale-up")]
    fig = plan_figure(plans, note="Study: MSC expansion")
    fig.update_layout(width=width)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": width + 40, "height": 900})
        page.set_content(fig.to_html(include_plotlyjs=True))
        page.wait_for_selector(".main-svg")
        labels = [(e.text_content(), e.bounding_box()) for e in page.query_selector_all("g.annotation-text-g text")]
        lines = [e.bounding_box() for e in page.query_selector_all("g.scatterlayer g.trace")]
        title = page.query_selector("g.g-gtitle").bounding_box()
        browser.close()
    vessels = [(t, b) for t, b in labels if "x " in t and "batch needs" not in t]
    assert len(vessels) == sum(len(p.stages) for p in plans)
    for i, (ta, a) in enumerate(labels):
        for tb, b in labels[i + 1:]:
            assert not _overlap(a, b, 1.0), (ta, tb)
    for t, b in vessels:
        assert not _overlap(b, title, 1.0), t
        for box in lines:  # a label is never on the plotted lines
            assert not _overlap(b, box, 1.0), t
