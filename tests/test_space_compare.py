"""Design space before vs after between two stored analysis versions (library, figure, CLI)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import EXAMPLE, ROOT

RESULTS = ROOT / "data" / "msc_example_results.csv"
NAME = "MSC expansion"
DRAWS = 400
STORED_N = 25  # doe.versions.GRID_N: the map size behind the stored fraction


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Analysis version 1 (linear models, first 20 runs) and 2 (default choices, all 40 runs)."""
    from doe.analysis import ModelChoice, default_choice
    from doe.runs import read_results
    from doe.store import Store
    from doe.study import Study
    from doe.versions import rerun_analysis

    tmp = tmp_path_factory.mktemp("space_compare")
    url = f"sqlite:///{(tmp / 's.sqlite').as_posix()}"
    study = Study.load(EXAMPLE)
    store = Store.open(url)
    store.save_study(study, "alice")
    table = read_results(study, RESULTS).table
    linear = {r.name: ModelChoice(model="linear") for r in study.responses}
    rerun_analysis(store, NAME, "alice", new_runs=table.head(20), reason="batch 1", choices=linear, draws=DRAWS)
    defaults = {r.name: default_choice() for r in study.responses}
    rerun_analysis(store, NAME, "bob", new_runs=table.iloc[20:], reason="batch 2", choices=defaults, draws=DRAWS)
    yield {"store": store, "url": url, "tmp": tmp}
    store.close()


def _stored(store, version):
    an = store.analyses(NAME)
    return an[an["version"] == version].iloc[0]["summary"]["design_space"]


@pytest.mark.parametrize("version", [1, 2])
def test_rebuild_reproduces_stored_numbers_exactly(two_versions, version):
    from doe.space.compare import space_before_after

    store = two_versions["store"]
    ds = _stored(store, version)
    c = space_before_after(store, NAME, version, version, n=STORED_N)
    assert c.draws == ds["draws"] == DRAWS and c.threshold == ds["threshold"]
    assert (c.x, c.y) == (ds["grid"]["x"], ds["grid"]["y"]) and c.fixed == ds["grid"]["fixed"]
    assert c.fraction_new == ds["fraction_inside"]
    assert c.probability_new == ds["probability_at_set_point"]
    assert c.per_cqa_new == ds["per_cqa_at_set_point"]


def test_old_version_at_its_own_set_point_matches_stored(two_versions):
    from doe.space.compare import space_before_after

    store = two_versions["store"]
    old = _stored(store, 1)
    c = space_before_after(store, NAME, 1, 2, fixed=old["set_point"], n=STORED_N)
    assert c.fraction_old == old["fraction_inside"] and c.probability_old == old["probability_at_set_point"]
    assert c.fraction_new == pytest.approx(c.new_grid.fraction_inside)
    assert (c.old_data_version, c.new_data_version) == (1, 2)
    assert (c.old_study_version, c.new_study_version) == (1, 1)


def test_version_with_itself_has_no_change(two_versions):
    from doe.space.compare import fraction_table, space_before_after

    c = space_before_after(two_versions["store"], NAME, 2, 2, n=21)
    assert c.fraction_change == 0 and c.probability_change == 0
    assert np.array_equal(c.old_grid.probability, c.new_grid.probability)
    assert np.array_equal(c.old_grid.inside, c.new_grid.inside)
    table = fraction_table(c)
    assert (table["change"] == 0).all()
    assert len(table) == 2 + len(c.per_cqa_new)


def test_comparison_uses_new_set_point_and_warns(two_versions):
    from doe.space.compare import fraction_table, space_before_after

    store = two_versions["store"]
    c = space_before_after(store, NAME, 1, 2, n=21)
    new = _stored(store, 2)
    assert c.set_point == new["set_point"] and "version 2" in c.set_point_source
    assert c.fixed == {k: v for k, v in new["set_point"].items() if k not in (c.x, c.y)}
    if _stored(store, 1)["set_point"] != new["set_point"]:
        assert any("another set point" in w for w in c.warnings)
    table = fraction_table(c)
    assert list(table.columns) == ["version 1", "version 2", "change"]
    assert table.loc["Share of the map inside the design space", "change"] == pytest.approx(c.fraction_change)
    assert c.new_grid.xs.shape == (21,) and c.old_grid.probability.shape == (21, 21)


def test_figure_outlines_legend_and_axes(two_versions):
    from doe.plots.compare import before_after_figure
    from doe.space.compare import space_before_after

    fixed = {"Medium": "FBS 10%", "Surface": "CellBIND", "Harvest reagent": "TrypLE"}
    c = space_before_after(two_versions["store"], NAME, 1, 2, fixed=fixed, n=21)
    fig = before_after_figure(c)
    outlines = [t for t in fig.data if t.type == "contour"]
    assert len(outlines) == 2
    assert "version 2" in outlines[0].name and "version 1" in outlines[1].name
    assert outlines[0].line.dash == "solid" and outlines[1].line.dash == "dash"
    assert f"{100 * c.fraction_old:.0f} %" in outlines[1].name
    assert fig.layout.xaxis.title.text == "Agitation (rpm)"
    assert fig.layout.yaxis.title.text == "Seeding density (cells/cm2)"
    title = fig.layout.title.text
    assert "version 1" in title and "2" in title and "0.9" in title
    note = fig.layout.annotations[0].text
    assert "FBS 10%" in note and "400 posterior draws" in note
    heat = [t for t in fig.data if t.type == "heatmap"][0]
    assert heat.zmin == 0 and heat.zmax == 1


def test_unknown_version_names_available(two_versions):
    from doe.errors import DoeError
    from doe.space.compare import space_before_after

    with pytest.raises(DoeError, match=r"no analysis version 7.*available are 1, 2"):
        space_before_after(two_versions["store"], NAME, 1, 7)


def test_version_without_models_explains(tmp_path):
    from doe.errors import DoeError
    from doe.runs import read_results
    from doe.space.compare import space_before_after
    from doe.store import Store
    from doe.study import Study
    from doe.versions import rerun_analysis

    study = Study.load(EXAMPLE)
    store = Store.open(f"sqlite:///{(tmp_path / 's.sqlite').as_posix()}")
    try:
        store.save_study(study, "alice")
        rerun_analysis(store, NAME, "alice", new_runs=read_results(study, RESULTS).table.head(20), draws=DRAWS)
        with pytest.raises(DoeError, match="version 1 .* cannot be rebuilt"):
            space_before_after(store, NAME, 1, 1)
    finally:
        store.close()


def _reject(value):
    raise ValueError(f"non-finite number in JSON: {value}")


def test_cli_compare_writes_strict_json_and_figure(two_versions):
    tmp = two_versions["tmp"]
    out, fig = tmp / "compare.json", tmp / "compare.html"
    proc = subprocess.run([sys.executable, "-m", "doe", "compare", "--db", two_versions["url"], "--study", NAME,
                           "--old", "1", "--new", "2", "--n", "21", "--json", str(out), "--figure", str(fig)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text(), parse_constant=_reject)
    assert data["study"] == NAME and data["old_version"] == 1 and data["new_version"] == 2
    for key in ("coefficients", "stats", "significance", "design_space"):
        assert key in data
    assert {"r2", "pred_r2", "rmse"} <= set(data["stats"]["Viability"])
    assert {"became_significant", "stopped_being_significant"} <= set(data["significance"]["Viability"])
    ds = data["design_space"]
    for key in ("x", "y", "fixed", "threshold", "old", "new", "change"):
        assert key in ds
    for side in ("old", "new"):
        assert {"fraction_inside", "probability_at_set_point", "per_cqa"} <= set(ds[side])
    assert ds["change"]["fraction_inside"] == pytest.approx(ds["new"]["fraction_inside"]
                                                            - ds["old"]["fraction_inside"])
    assert "version 1 -> 2" in proc.stdout
    page = fig.read_text(encoding="utf-8")
    assert "<html" in page.lower() and "version 1 (fraction" in page


def test_cli_compare_unknown_version(two_versions):
    proc = subprocess.run([sys.executable, "-m", "doe", "compare", "--db", two_versions["url"], "--study", NAME,
                           "--old", "1", "--new", "9"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2
    assert "no analysis version 9" in proc.stderr and "1, 2" in proc.stderr


def test_volume_fraction_in_unit_interval(two_versions):
    from doe.space.compare import fraction_table, space_before_after

    c = space_before_after(two_versions["store"], NAME, 1, 2, n=21, volume=True)
    assert 0 <= c.volume_old <= 1 and 0 <= c.volume_new <= 1
    assert "Share of the whole factor region inside" in fraction_table(c).index
    assert isinstance(c.to_json()["change"]["volume_fraction"], float)
    assert pd.notna(c.to_json()["new"]["volume_fraction"])
