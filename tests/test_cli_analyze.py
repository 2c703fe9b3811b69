"""Published reference analyses reproduced through `python -m doe analyze` and its JSON.

Numbers come from tests/reference_cases/*/expected.json (rsm and unrepx
vignettes); tolerances are the ones stated there, widened to half a unit in
the last printed digit where the published value is rounded coarser.
"""

import json
import math
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import yaml

from doe.cli import main
from tests.conftest import EXAMPLE, REFERENCE, ROOT


def expected(case):
    return json.loads((REFERENCE / case / "expected.json").read_text())


def printed_tol(value) -> float:
    exp = Decimal(repr(float(value))).normalize().as_tuple().exponent
    return 0.5 * 10.0 ** exp if exp < 0 else 0.5


def close(ours, published, tol=0.0, rel=None):
    tol = max(tol, printed_tol(published))
    if rel is not None:
        tol = max(tol, rel * abs(published))
    assert math.isclose(ours, published, abs_tol=tol), f"{ours} vs published {published} (tol {tol:g})"


def analyze(tmp_path, study: dict, runs: pd.DataFrame, *args) -> dict:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    runs.to_csv(tmp_path / "r.csv", index=False)
    code = main(["analyze", str(tmp_path / "s.yaml"), str(tmp_path / "r.csv"), *args,
                 "--json", str(tmp_path / "out.json")])
    assert code == 0
    return json.loads((tmp_path / "out.json").read_text())


def by(rows, key="term"):
    return {r[key]: r for r in rows}


CHEM = {"schema": 1, "name": "ChemReact", "blocks": "Block",
        "factors": [{"name": "Time", "kind": "continuous", "low": 80, "high": 90, "units": "min"},
                    {"name": "Temp", "kind": "continuous", "low": 170, "high": 180, "units": "degF"}],
        "responses": [{"name": "Yield", "units": "%"}]}


@pytest.fixture(scope="module")
def chem_data():
    return pd.read_csv(REFERENCE / "rsm_chemreact_ccd_two_blocks" / "data.csv")


def test_chemreact_first_order_block1(tmp_path, chem_data):
    exp = expected("rsm_chemreact_ccd_two_blocks")
    e, tol = exp["expected"]["first_order_block1"], exp["tolerance"]
    out = analyze(tmp_path, CHEM, chem_data[chem_data.Block == "B1"], "--model", "linear")["responses"]["Yield"]
    coef = by(out["coefficients"])
    names = {"Intercept": "Intercept", "x1": "Time", "x2": "Temp"}
    for pub, ours in names.items():
        close(coef[ours]["estimate"], e["coefficients"][pub], tol["coefficients"])
        close(coef[ours]["std_error"], e["se"][pub], tol["se"])
        close(coef[ours]["t"], e["t"][pub], tol["F"])
        close(coef[ours]["p"], e["p"][pub], rel=1e-3)
    close(out["r2"], e["R2"])
    close(out["adj_r2"], e["adj_R2"])
    close(out["overall_f"]["F"], e["F"], tol["F"])
    close(out["overall_f"]["p"], e["F_p"], rel=1e-3)
    anova = by(out["anova"], "source")
    close(anova["Model"]["sum_sq"], e["anova"]["FO"]["SS"], tol["SS"])
    close(anova["Residual"]["sum_sq"], e["anova"]["Residuals"]["SS"], tol["SS"])
    lof = e["anova"]["Lack_of_fit"]
    close(out["lack_of_fit"]["F"], lof["F"], tol["F"])
    close(out["lack_of_fit"]["p"], lof["p"], rel=1e-3)
    assert out["lack_of_fit"]["pure_error_df"] == e["anova"]["Pure_error"]["df"]
    close(anova["Pure error"]["sum_sq"], e["anova"]["Pure_error"]["SS"], tol["SS"])
    sa = out["steepest_ascent"]
    close(sa["coded"]["Time"], e["steepest_ascent_direction_unit"]["x1"], 5e-7)
    close(sa["coded"]["Temp"], e["steepest_ascent_direction_unit"]["x2"], 5e-7)
    close(sa["increment_actual"]["Time"], e["steepest_increment_original_units"]["Time"], 5e-7)
    close(sa["increment_actual"]["Temp"], e["steepest_increment_original_units"]["Temp"], 5e-7)
    path = {round(r["dist"], 3): r for r in sa["path"]}
    for step in e["steepest_path"]:  # rsm rounds the coded path to 3 decimals before converting
        row = path[step["dist"]]
        close(row["Time"], step["Time"], 5 * 0.001)
        close(row["Temp"], step["Temp"], 5 * 0.001)
        close(row["yhat"], step["yhat"], 0.002)


def test_chemreact_second_order_blocks(tmp_path, chem_data):
    exp = expected("rsm_chemreact_ccd_two_blocks")
    e, tol = exp["expected"]["second_order_blocked"], exp["tolerance"]
    out = analyze(tmp_path, CHEM, chem_data, "--model", "quadratic")["responses"]["Yield"]
    coef = by(out["coefficients"])
    names = {"x1": "Time", "x2": "Temp", "x1:x2": "Time:Temp", "x1^2": "Time^2", "x2^2": "Temp^2"}
    for pub, ours in names.items():
        close(coef[ours]["estimate"], e["coefficients"][pub], tol["coefficients"])
        close(coef[ours]["std_error"], e["se"][pub], tol["se"])
        close(coef[ours]["p"], e["p"][pub], rel=1e-3)
    # effect (sum-to-zero) coding of blocks: the caveat's values
    close(coef["Intercept"]["estimate"], 81.866662, tol["coefficients"])
    close(abs(coef["Block[1]"]["estimate"]), 2.228765, tol["coefficients"])
    close(out["r2"], e["R2"])
    close(out["adj_r2"], e["adj_R2"])
    close(out["overall_f"]["F"], e["F"], tol["F"])
    seq = by(out["anova_sequential"], "source")
    for pub, ours in {"Block": "Block", "FO": "FO", "TWI": "TWI", "PQ": "PQ", "Residuals": "Residuals",
                      "Lack_of_fit": "Lack of fit", "Pure_error": "Pure error"}.items():
        ref = e["anova_sequential"][pub]
        assert seq[ours]["df"] == ref["df"], pub
        close(seq[ours]["sum_sq"], ref["SS"], tol["SS"])
        if "F" in ref:
            close(seq[ours]["F"], ref["F"], tol["F"])
            close(seq[ours]["p"], ref["p"], rel=1e-3)
    assert out["lack_of_fit"]["pure_error_df"] == 4  # pure error within blocks, not pooled
    sp = out["stationary_point"]
    close(sp["coded"]["Time"], e["stationary_point_coded"]["x1"], tol["stationary_point"])
    close(sp["coded"]["Temp"], e["stationary_point_coded"]["x2"], tol["stationary_point"])
    close(sp["actual"]["Time"], e["stationary_point_original"]["Time"], tol["stationary_point"])
    close(sp["actual"]["Temp"], e["stationary_point_original"]["Temp"], tol["stationary_point"])
    for ours, pub in zip(sorted(sp["eigenvalues"]), sorted(e["eigenvalues"])):
        close(ours, pub, tol["eigen"])
    assert sp["kind"] == "maximum"


HELI_NAMES = {"x1": "A_wing_area", "x2": "R_wing_shape", "x3": "W_body_width", "x4": "L_body_length"}


def test_heli_saddle_two_blocks(tmp_path):
    exp = expected("rsm_heli_ccd_4factor_two_blocks")
    e, tol = exp["expected"], exp["tolerance"]
    data = pd.read_csv(REFERENCE / "rsm_heli_ccd_4factor_two_blocks" / "data.csv")
    ranges = {"A_wing_area": (11.8, 13.0), "R_wing_shape": (2.26, 2.78), "W_body_width": (1.0, 1.5),
              "L_body_length": (1.5, 2.5)}
    study = {"schema": 1, "name": "heli", "blocks": "block",
             "factors": [{"name": n, "kind": "continuous", "low": lo, "high": hi} for n, (lo, hi) in ranges.items()],
             "responses": [{"name": "ave"}]}
    runs = data[["run", "block", *ranges, "ave"]].rename(columns={"run": "Run"})
    out = analyze(tmp_path, study, runs, "--model", "quadratic")["responses"]["ave"]
    coef = by(out["coefficients"])

    def ours(pub):
        parts = pub.split(":")
        if pub.endswith("^2"):
            return HELI_NAMES[pub[:-2]] + "^2"
        return ":".join(HELI_NAMES[p] for p in parts)

    for pub, value in e["coefficients"].items():
        if pub in ("Intercept", "block2"):
            continue
        close(coef[ours(pub)]["estimate"], value, tol["coefficients"])
        close(coef[ours(pub)]["p"], e["p"][pub], rel=1e-3)
        kind = "quadratic" if pub.endswith("^2") else "interaction" if ":" in pub else "linear"
        close(coef[ours(pub)]["std_error"], e["se"][kind], tol["se"])
    close(abs(coef["block[1]"]["estimate"] if "block[1]" in coef else coef["Block[1]"]["estimate"]),
          abs(e["coefficients"]["block2"]) / 2, tol["coefficients"])
    close(out["r2"], e["R2"])
    close(out["adj_r2"], e["adj_R2"])
    close(out["overall_f"]["F"], e["F"], tol["F"])
    seq = by(out["anova_sequential"], "source")
    for pub, name in {"block": "Block", "FO": "FO", "TWI": "TWI", "PQ": "PQ", "Residuals": "Residuals",
                      "Lack_of_fit": "Lack of fit", "Pure_error": "Pure error"}.items():
        ref = e["anova_sequential"][pub]
        assert seq[name]["df"] == ref["df"]
        close(seq[name]["sum_sq"], ref["SS"], tol["SS"])
        if "F" in ref:
            close(seq[name]["F"], ref["F"], tol["F"])
    sp = out["stationary_point"]
    for pub, name in HELI_NAMES.items():
        close(sp["coded"][name], e["stationary_point_coded"][pub], tol["stationary_point"])
    for pub, name in zip("ARWL", HELI_NAMES.values()):
        close(sp["actual"][name], e["stationary_point_original"][pub], 5e-6)
    for a, b in zip(sorted(sp["eigenvalues"]), sorted(e["eigenvalues"])):
        close(a, b, tol["eigen"])
    assert sp["kind"] == "saddle"


def test_pilot_plant_effects_and_lenth(tmp_path):
    exp = expected("bhh_pilot_plant_2x3_unreplicated_lenth")
    e, tol = exp["expected"], exp["tolerance"]
    data = pd.read_csv(REFERENCE / "bhh_pilot_plant_2x3_unreplicated_lenth" / "data.csv")
    study = {"schema": 1, "name": "pilot", "responses": [{"name": "y"}],
             "factors": [{"name": n, "kind": "continuous", "low": -1, "high": 1} for n in "TCK"]}
    out = analyze(tmp_path, study, data.rename(columns={"std_order": "Run"}), "--model", "full")["responses"]["y"]
    effects = by(out["effects"])
    for pub, value in e["effects"].items():
        name = ":".join(pub)
        assert math.isclose(effects[name]["effect"], value, abs_tol=tol["effects"] + 1e-12)
    assert math.isclose(out["lenth"]["pse"], e["Lenth_PSE"], abs_tol=tol["PSE"])
    assert math.isclose(out["lenth"]["me"], exp["refit_statsmodels"]["Lenth_ME_t_df_7/3"], rel_tol=1e-9)
    assert math.isclose(out["lenth"]["sme"], exp["refit_statsmodels"]["Lenth_SME"], rel_tol=1e-9)


def test_analyze_example_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "doe", "analyze", str(EXAMPLE),
                           str(ROOT / "data" / "msc_example_results.csv"), "--reduce",
                           "--json", str(tmp_path / "a.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "a.json").read_text())["responses"]
    assert set(out) == {"Viability", "Fold expansion", "CD73/CD90/CD105", "HLA-DR", "Aggregates",
                        "Potency", "EV yield"}
    for name, r in out.items():
        for key in ("terms", "coefficients", "equation_actual", "anova", "r2", "adj_r2", "pred_r2", "press",
                    "rmse", "cv_percent", "adeq_precision", "lack_of_fit", "stationary_point", "warnings"):
            assert key in r, (name, key)
        sources = {a["source"] for a in r["anova"]}
        assert {"Model", "Residual", "Total"} <= sources


def test_analyze_bad_runs_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Run;Medium;Surface\n1;x;y\n")
    proc = subprocess.run([sys.executable, "-m", "doe", "analyze", str(EXAMPLE), str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "problem" in proc.stderr


# -- per-CQA status and exit code (issue 14) ---------------------------------------------------------
TWO = {"schema": 1, "name": "Two", "factors": [
    {"name": "A", "kind": "continuous", "low": 0, "high": 10, "units": "h"},
    {"name": "B", "kind": "continuous", "low": 1, "high": 3, "units": "g/L"}],
    "responses": [{"name": "Y1", "units": "%"}, {"name": "Y2", "units": "%"}]}


def _two_level(tmp_path, y2):
    # a 2^2 factorial with a centre point: Y1 = 10 + 2 A + 3 B (+ noise) in coded units
    runs = pd.DataFrame({"A": [0, 10, 0, 10, 5], "B": [1, 1, 3, 3, 2],
                         "Y1": [5.1, 8.9, 11.0, 15.1, 10.2], "Y2": y2})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TWO))
    runs.to_csv(tmp_path / "r.csv", index=False)
    return [str(tmp_path / "s.yaml"), str(tmp_path / "r.csv")]


def test_analyze_prints_fitted_or_the_reason(tmp_path, capsys):
    # Y2 has two results: a first-order model (3 coefficients) cannot be fitted to it
    files = _two_level(tmp_path, [1.0, 2.0, None, None, None])
    code = main(["analyze", *files, "--model", "linear", "--json", str(tmp_path / "o.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Y1: fitted (intercept + 2 terms, n = 5, R² = " in out
    y2 = next(line for line in out.splitlines() if line.startswith("Y2:"))
    assert y2.startswith("Y2: not fitted - ") and "2 runs" in y2
    result = json.loads((tmp_path / "o.json").read_text())["responses"]
    assert set(result["Y2"]) == {"error"} and result["Y2"]["error"] in y2
    # R² of Y1 independently: ordinary least squares on A and B
    X = np.column_stack([np.ones(5), [0, 10, 0, 10, 5], [1, 1, 3, 3, 2]])
    y = np.array([5.1, 8.9, 11.0, 15.1, 10.2])
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    r2 = 1 - resid @ resid / np.sum((y - y.mean()) ** 2)
    assert result["Y1"]["r2"] == pytest.approx(r2, rel=1e-9)
    assert f"R² = {r2:.4g}" in out


def test_analyze_exits_1_when_no_cqa_fits(tmp_path, capsys):
    # a quadratic model needs three levels of A and B; a 2^2 + centre point has them, but
    # 5 runs cannot estimate the 6 coefficients of the full quadratic model
    files = _two_level(tmp_path, [1.0, 2.0, 3.0, 4.0, 2.5])
    code = main(["analyze", *files, "--model", "quadratic", "--json", str(tmp_path / "o.json")])
    captured = capsys.readouterr()
    assert code == 1
    assert "Y1: not fitted - " in captured.out and "Y2: not fitted - " in captured.out
    assert "no CQA could be fitted" in captured.err
    result = json.loads((tmp_path / "o.json").read_text())["responses"]
    assert all(set(r) == {"error"} for r in result.values())


def test_analyze_without_json_keeps_stdout_json(tmp_path, capsys):
    files = _two_level(tmp_path, [1.0, 2.0, 3.0, 4.0, 2.5])
    code = main(["analyze", *files, "--model", "linear"])
    captured = capsys.readouterr()
    assert code == 0 and set(json.loads(captured.out)["responses"]) == {"Y1", "Y2"}
    assert "Y1: fitted" in captured.err and "Y2: fitted" in captured.err
