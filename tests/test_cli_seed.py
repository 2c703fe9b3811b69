"""`python -m doe growth | growth-curve | equivalence | equivalence-n` and `scale --passages`: the JSON keys the
issue names, and their numbers against published output or a hand computation from the input file.

Published numbers: growthrates' vignette example (tests/reference_cases/growthrates_easylinear), the TOSTER
vignette's Welch t_TOST on R's sleep data (tests/test_equivalence_toster.py gives the citation), PowerTOST's
ctCW.III parallel table (n = 24 per group for SD 0.2, margins +-0.2, true difference 0.05; see
tests/test_equivalence_n.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from doe.cli import main
from doe.growth import GROWTH_CURVE_FILE, PASSAGES_FILE
from tests.conftest import ROOT
from tests.test_equivalence_toster import GROUP_1, GROUP_2

EASY = ROOT / "tests" / "reference_cases" / "growthrates_easylinear"


def _json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_growth_json_has_the_issue_keys_and_the_hand_computed_kinetics(tmp_path, capsys):
    out = tmp_path / "growth.json"
    assert main(["growth", str(PASSAGES_FILE), "--json", str(out)]) == 0
    data = _json(out)
    assert set(data) >= {"passages", "groups", "donors"}
    sheet = pd.read_csv(PASSAGES_FILE)
    assert len(data["passages"]) == len(sheet)
    for row, (_, src) in zip(data["passages"], sheet.iterrows(), strict=True):
        fold = src["Harvested cells"] / src["Seeded cells"]
        assert row["fold_expansion"] == pytest.approx(fold, rel=1e-12)
        assert row["population_doublings"] == pytest.approx(math.log2(fold), rel=1e-12)
        assert row["doubling_time_h"] == pytest.approx(src["Hours"] / math.log2(fold), rel=1e-12)
        assert row["harvest_density"] == pytest.approx(src["Harvested cells"] / src["Area (cm2)"], rel=1e-12)
    fam = sheet["Vessel"].str.split("-").str[0].replace({"T": "T-flask"})
    for name, g in data["groups"].items():
        assert g["n"] == int((fam == name).sum())
        for key in ("fold_expansion", "doubling_time_h"):
            assert set(g[key]) >= {"mean", "ci_low", "ci_high"}
            assert g[key]["ci_low"] < g[key]["mean"] < g[key]["ci_high"]
    # cumulative PDL of donor D1 by hand: each passage's log2(sum harvested / sum seeded), added in order
    d1 = sheet[sheet["Donor"] == "D1"].groupby("Passage")[["Seeded cells", "Harvested cells"]].sum()
    expected = np.cumsum(np.log2(d1["Harvested cells"] / d1["Seeded cells"]))
    assert [s["cumulative_pdl"] for s in data["donors"]["D1"]] == pytest.approx(expected.tolist(), rel=1e-12)
    assert "passages ->" in capsys.readouterr().out


def test_growth_by_vessel_and_a_bad_file(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["growth", str(PASSAGES_FILE), "--json", str(out), "--by", "Vessel"]) == 0
    groups = _json(out)["groups"]
    assert "CellSTACK-40" in groups and "CellCube-25" in groups
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text("Donor,Passage,Vessel,Seeded cells,Harvested cells,Hours\nD1,1,T-176,1e5,4e5,72\n", encoding="utf-8")
    assert main(["growth", str(bad), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "T-176" in err and "Traceback" not in err


def test_growth_curve_reproduces_growthrates_vignette(tmp_path):
    out = tmp_path / "curve.json"
    assert main(["growth-curve", str(EASY / "data.csv"), "--time", "time", "--value", "value",
                 "--json", str(out)]) == 0
    data = _json(out)
    expected = _json(EASY / "expected.json")["expected"]
    assert data["mumax"] == pytest.approx(expected["mumax"], abs=5e-7)
    assert data["lag"] == pytest.approx(expected["lag"], abs=5e-7)
    assert data["doubling_time"] == pytest.approx(math.log(2) / expected["mumax"], rel=1e-5)
    assert set(data) >= {"mumax", "lag", "doubling_time", "r2", "window"}
    assert 0.9 < data["r2"] <= 1 and len(data["window"]) >= 5


def test_growth_curve_of_the_bundled_example(tmp_path):
    out = tmp_path / "c.json"
    assert main(["growth-curve", str(GROWTH_CURVE_FILE), "--time", "Day", "--value", "Cells per cm2",
                 "--json", str(out)]) == 0
    # simulated logistic growth with mumax 0.45 per day after a 1-day lag: the steepest window is a bit slower
    assert 0.35 < _json(out)["mumax"] < 0.47


def test_equivalence_reproduces_toster_welch(tmp_path, capsys):
    data = tmp_path / "sleep.csv"
    pd.DataFrame({"extra": GROUP_1 + GROUP_2, "group": ["1"] * 10 + ["2"] * 10}).to_csv(data, index=False)
    out = tmp_path / "eq.json"
    assert main(["equivalence", str(data), "--response", "extra", "--group", "group", "--reference", "2",
                 "--test", "1", "--margin", "-0.5", "0.5", "--json", str(out)]) == 0
    r = _json(out)
    assert set(r) >= {"estimate", "ci", "t_lower", "t_upper", "df", "p_lower", "p_upper", "p", "equivalent",
                      "margin"}
    assert r["estimate"] == pytest.approx(-1.58)
    assert r["ci"] == pytest.approx([-3.0533815, -0.1066185], abs=5e-8)
    assert (r["t_lower"], r["df"], r["p"]) == pytest.approx((-1.2719, 17.776, 0.8901), abs=5e-4)
    assert r["equivalent"] is False and r["margin"] == [-0.5, 0.5]
    assert "not" in capsys.readouterr().out  # the conclusion in words


def test_equivalence_on_a_passage_sheet_paired_by_donor(tmp_path):
    out = tmp_path / "eq.json"
    assert main(["equivalence", str(PASSAGES_FILE), "--response", "Fold expansion", "--group", "Vessel",
                 "--reference", "CellSTACK-40", "--test", "CellCube-25", "--margin", "0.8", "1.25", "--log",
                 "--paired", "--id", "Donor", "--json", str(out)]) == 0
    r = _json(out)
    sheet = pd.read_csv(PASSAGES_FILE)
    fold = np.log(sheet["Harvested cells"] / sheet["Seeded cells"])
    a = fold[sheet["Vessel"] == "CellSTACK-40"].to_numpy()
    b = fold[sheet["Vessel"] == "CellCube-25"].to_numpy()  # one vessel of each per donor, donors in the same order
    d = b - a
    assert r["estimate"] == pytest.approx(math.exp(d.mean()), rel=1e-12)
    half = 2.015048372669157 * d.std(ddof=1) / math.sqrt(len(d))  # t(0.95, 5), scipy.stats.t.ppf(0.95, 5)
    assert r["ci"] == pytest.approx([math.exp(d.mean() - half), math.exp(d.mean() + half)], rel=1e-9)
    assert r["n_pairs"] == 6


def test_equivalence_input_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "eq.json"
    assert main(["equivalence", str(PASSAGES_FILE), "--response", "Fold expansion", "--group", "Vessel",
                 "--reference", "CellSTACK-40", "--test", "CellCube-25", "--margin", "0.8", "1.25",
                 "--paired", "--json", str(out)]) == 2
    assert "--paired needs --id" in capsys.readouterr().err
    assert main(["equivalence", str(PASSAGES_FILE), "--response", "Fold expansion", "--group", "Vessel",
                 "--reference", "CellSTACK-4", "--test", "CellCube-25", "--margin", "0.8", "1.25", "--log",
                 "--json", str(out)]) == 2
    assert "CellSTACK-40" in capsys.readouterr().err  # did you mean


def test_equivalence_n_matches_powertost_and_is_exact():
    run = subprocess.run([sys.executable, "-m", "doe", "equivalence-n", "--sd", "0.2", "--margin", "-0.2", "0.2",
                          "--true-difference", "0.05", "--alpha", "0.05", "--power", "0.8"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    out = json.loads(run.stdout)
    assert out["n_rounded"] == 24  # PowerTOST ctCW.III: 48 in total
    assert 23 < out["n_per_group"] < 24 and not float(out["n_per_group"]).is_integer()


def test_scale_from_recorded_passages(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    text = (ROOT / "data" / "example_plan.yaml").read_text(encoding="utf-8")
    text = (text.replace("fold_expansion_per_passage: 6.5", "fold_expansion_per_passage: from_passages")
            .replace("days_per_passage: 4", "days_per_passage: from_passages")
            .replace("harvest_density_cells_per_cm2: 13000", "harvest_density_cells_per_cm2:"))
    plan.write_text(text, encoding="utf-8")
    eq = tmp_path / "eq.json"
    assert main(["equivalence", str(PASSAGES_FILE), "--response", "Fold expansion", "--group", "Family",
                 "--reference", "CellSTACK", "--test", "CellCube", "--margin", "0.8", "1.25", "--log",
                 "--paired", "--id", "Donor", "--json", str(eq)]) == 0
    growth = tmp_path / "g.json"
    assert main(["growth", str(PASSAGES_FILE), "--json", str(growth)]) == 0
    out = tmp_path / "plan.json"
    assert main(["scale", "--plan", str(plan), "--passages", str(PASSAGES_FILE), "--equivalence", str(eq),
                 "--json", str(out)]) == 0
    data = _json(out)
    groups = _json(growth)["groups"]
    cellstack = data["measured"]["CellSTACK"]
    assert cellstack["fold_expansion"] == pytest.approx(groups["CellSTACK"]["fold_expansion"]["ci_low"])
    assert cellstack["days_per_passage"] == pytest.approx(groups["CellSTACK"]["hours"]["mean"] / 24)
    assert data["equivalence_checked"] is True
    for strategy, plan_json in data["strategies"].items():
        for stage in plan_json["stages"]:
            if stage["family"] in groups:
                assert stage["fold_expansion"] == pytest.approx(data["measured"][stage["family"]]["fold_expansion"])
        assert len(data["recorded_vs_predicted"][strategy]) == len(plan_json["stages"])
    assert "no equivalence evidence between T-flask" in capsys.readouterr().err
