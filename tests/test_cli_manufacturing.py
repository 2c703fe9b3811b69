"""`python -m doe capability` and `python -m doe chart`: the JSON keys issue 20 names, with qcc's printed numbers.

Published numbers (citations in tests/reference_cases/qcc_pistonrings/README.md and
tests/reference_cases/qcc_orangejuice/README.md): qcc vignette "A quick tour of qcc" (Scrucca) on Montgomery's
piston rings - processCapability with spec limits 73.95 and 74.05: Cp 1.70 (1.49, 1.91), Cp_l 1.74
(1.55, 1.93), Cp_u 1.66 (1.48, 1.84), Cp_k 1.66 (1.45, 1.88), Cpm 1.69 (1.48, 1.90), StdDev 0.009785039;
X-bar chart of the 25 trial samples: centre 74.00118, LCL 73.98805, UCL 74.01431; the orange-juice p chart:
centre 0.2313333, LCL 0.05242755, UCL 0.4102391, samples 15 and 23 beyond the limits.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from doe.cli import main
from tests.conftest import ROOT

CASES = ROOT / "tests" / "reference_cases"


def _trial_rings(tmp_path):
    rings = pd.read_csv(CASES / "qcc_pistonrings" / "data.csv")
    path = tmp_path / "rings.csv"
    rings[rings["trial"]].to_csv(path, index=False)
    return path, rings


def test_capability_json_reproduces_qcc(tmp_path):
    path, _ = _trial_rings(tmp_path)
    out = tmp_path / "cap.json"
    assert main(["capability", str(path), "--response", "diameter", "--subgroup", "sample", "--lower", "73.95",
                 "--upper", "74.05", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data) >= {"cp", "cpk", "cpm", "cp_l", "cp_u", "pp", "ppk", "sigma_within", "sigma_overall",
                         "expected_out_percent", "observed_out_percent", "tolerance_interval"}
    printed = {"cp": (1.70, 1.49, 1.91), "cp_l": (1.74, 1.55, 1.93), "cp_u": (1.66, 1.48, 1.84),
               "cpk": (1.66, 1.45, 1.88), "cpm": (1.69, 1.48, 1.90)}
    for key, (value, low, high) in printed.items():
        got = data[key]
        assert [round(got["value"], 2), round(got["ci_low"], 2), round(got["ci_high"], 2)] == [value, low, high], key
    assert data["sigma_within"] == pytest.approx(0.009785039, abs=5e-10)  # R-bar / 2.326, the table d2
    assert set(data["tolerance_interval"]) >= {"low", "high", "k"}
    assert data["tolerance_interval"]["low"] < 74.0 < data["tolerance_interval"]["high"]


def test_chart_json_reproduces_qcc_xbar_and_p(tmp_path):
    path, rings = _trial_rings(tmp_path)
    out = tmp_path / "xbar.json"
    assert main(["chart", str(path), "--response", "diameter", "--type", "xbar-r", "--subgroup", "sample",
                 "--json", str(out)]) == 0
    xbar = json.loads(out.read_text(encoding="utf-8"))["xbar"]
    assert set(xbar) >= {"center", "lcl", "ucl", "sigma", "violations"}
    assert (round(xbar["center"], 5), round(xbar["lcl"], 5)) == (74.00118, 73.98805)
    # qcc prints UCL 74.01431; the data's mean 74.001176 + 3 x 0.009785039 / sqrt(5) is 74.014304 (the printed
    # centre 74.00118 would give 74.014308): agreement to 1e-5
    assert xbar["ucl"] == pytest.approx(74.01431, abs=1e-5)

    juice = pd.read_csv(CASES / "qcc_orangejuice" / "data.csv")
    juice_path = tmp_path / "juice.csv"
    juice[juice["trial"]].to_csv(juice_path, index=False)
    out = tmp_path / "p.json"
    assert main(["chart", str(juice_path), "--response", "D", "--type", "p", "--size", "size",
                 "--json", str(out)]) == 0
    p = json.loads(out.read_text(encoding="utf-8"))["p"]
    assert (round(p["center"], 7), round(p["lcl"], 8), round(p["ucl"], 7)) == (0.2313333, 0.05242755, 0.4102391)
    beyond = sorted({v["index"] + 1 for v in p["violations"] if v["rule"].startswith("1:")})
    assert beyond == [15, 23]


def test_chart_phase_two_from_saved_limits_and_bad_input(tmp_path, capsys):
    path, rings = _trial_rings(tmp_path)
    phase1 = tmp_path / "phase1.json"
    assert main(["chart", str(path), "--response", "diameter", "--type", "xbar-r", "--subgroup", "sample",
                 "--json", str(phase1)]) == 0
    new = tmp_path / "new.csv"
    rings[~rings["trial"]].to_csv(new, index=False)
    out = tmp_path / "phase2.json"
    assert main(["chart", str(new), "--response", "diameter", "--type", "xbar-r", "--subgroup", "sample",
                 "--limits", str(phase1), "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["phase"] == 2 and data["xbar"]["ucl"] == pytest.approx(74.01431, abs=1e-5)
    assert main(["chart", str(path), "--response", "diametre", "--type", "imr", "--json", str(out)]) == 2
    assert "diameter" in capsys.readouterr().err  # did you mean


def test_chart_baseline_and_xbar_with_a_lot_column(tmp_path):
    """--baseline: phase I on samples 1-30, phase II after (Montgomery's revised orange-juice limits 0.2150,
    0.0407, 0.3893); an X-bar chart of a sheet that also has a Lot column is labelled by subgroup."""
    juice = pd.read_csv(CASES / "qcc_orangejuice" / "data.csv").rename(columns={"sample": "Lot"})
    path = tmp_path / "juice.csv"
    juice.to_csv(path, index=False)
    out = tmp_path / "p.json"
    assert main(["chart", str(path), "--response", "D", "--type", "p", "--size", "size", "--baseline", "30",
                 "--exclude", "15", "23", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert (data["p"]["center"], data["p"]["lcl"], data["p"]["ucl"]) == pytest.approx((0.2150, 0.0407, 0.3893),
                                                                                     abs=5e-5)
    assert data["baseline"]["phase"] == 1 and data["limits"]["parameters"]["p"] == pytest.approx(0.2150, abs=5e-5)
    assert "41" in {v["lot"] for v in data["p"]["violations"]}
    rings = pd.read_csv(CASES / "qcc_pistonrings" / "data.csv")
    rings.insert(0, "Lot", [f"L{i}" for i in range(len(rings))])
    rings_path = tmp_path / "rings.csv"
    rings[rings["trial"]].to_csv(rings_path, index=False)
    assert main(["chart", str(rings_path), "--response", "diameter", "--type", "xbar-s", "--subgroup", "sample",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["xbar"]["labels"][:2] == ["1", "2"]
