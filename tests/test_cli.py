"""The CLI end to end: design, evaluate, augment, validate; bad input exits 2 on one line."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import EXAMPLE, ROOT

EVAL_KEYS = {"runs", "terms", "d_efficiency", "d_criterion", "a_efficiency", "g_efficiency",
             "avg_prediction_variance", "vif", "estimable", "aliases"}


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "doe", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_design_full_factorial_json(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("schema: 1\nname: t\nfactors:\n" + "".join(
        f"  - {{name: {n}, kind: continuous, low: 0, high: 10}}\n" for n in "ABC") + "responses: [{name: Y}]\n")
    run("design", study, "--type", "full", "--seed", 3, "--out", tmp_path / "d.csv",
        "--json", tmp_path / "e.json", "--model", "linear")
    ev = json.loads((tmp_path / "e.json").read_text())
    assert EVAL_KEYS <= set(ev)
    assert ev["runs"] == 8 and ev["estimable"] is True
    assert ev["d_efficiency"] == pytest.approx(100.0)
    assert ev["d_criterion"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in ev["vif"].values())
    sheet = pd.read_csv(tmp_path / "d.csv")
    assert list(sheet.columns[:3]) == ["Run", "StdOrder", "PointType"]
    assert {"A", "B", "C", "Y", "Notes"} <= set(sheet.columns)


def test_design_seed_reproducible(tmp_path):
    for name in ("a", "b"):
        run("design", EXAMPLE, "--type", "lhs", "--runs", 12, "--seed", 7, "--out", tmp_path / f"{name}.csv")
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_evaluate_and_augment_foreign_design(tmp_path):
    # a design the app did not make: plain CSV, factor columns only
    pd.DataFrame({"Medium": ["FBS 10%", "hPL 5%", "SFM-XF"] * 4,
                  "Surface": ["Standard TC", "CellBIND", "ULA", "CellBIND"] * 3,
                  "Harvest reagent": ["TrypLE"] * 6 + ["Accutase"] * 6,
                  "Agitation": [30, 90, 60] * 4, "Seeding density": [1000, 5000] * 6}).to_csv(
        tmp_path / "mine.csv", index=False)
    run("evaluate", EXAMPLE, tmp_path / "mine.csv", "--model", "linear", "--json", tmp_path / "e.json")
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["runs"] == 12
    run("augment", EXAMPLE, tmp_path / "mine.csv", "--add", 6, "--model", "linear", "--seed", 1,
        "--out", tmp_path / "more.csv")
    more = pd.read_csv(tmp_path / "more.csv")
    assert len(more) == 18
    assert more.iloc[:12]["Agitation"].tolist() == [30, 90, 60] * 4


@pytest.mark.parametrize("args, message", [
    (["design", "missing.yaml", "--type", "full", "--out", "x.csv"], "does not exist"),
    (["design", EXAMPLE, "--type", "fractional", "--out", "x.csv"], "Medium has 3 levels"),
    (["design", EXAMPLE, "--type", "optimal", "--model", "Agitaton", "--out", "x.csv"], "Did you mean 'Agitation'"),
    (["design", EXAMPLE, "--type", "nope", "--out", "x.csv"], "invalid choice"),
    (["design", EXAMPLE, "--type", "optimal", "--runs", "5", "--out", "x.csv"], "runs"),
])
def test_bad_input_one_line_no_traceback(tmp_path, args, message):
    proc = run(*[tmp_path / a if a == "x.csv" else a for a in args], check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_study_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfactors:\n  - {name: A, low: 5, high: 1}\n")
    proc = run("validate", bad, check=False)
    assert proc.returncode == 2 and "low (5) must be less than high (1)" in proc.stderr


def test_validate_example():
    assert "valid" in run("validate", EXAMPLE).stdout
