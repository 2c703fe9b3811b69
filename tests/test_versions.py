"""Analysis versions: import, re-run on new runs, comparison, audit verify (CLI and library)."""

import json
import math
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import EXAMPLE, ROOT

RESULTS = ROOT / "data" / "msc_example_results.csv"
NAME = "MSC expansion"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "doe", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def extra_runs(path):
    """The example's first 10 runs again as runs 41..50 with slightly changed results."""
    df = pd.read_csv(RESULTS).head(10).copy()
    df["Run"] = range(41, 51)
    df["Viability"] = (df["Viability"] + 0.4).round(2)
    df["Potency"] = (df["Potency"] * 1.03).round(2)
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Import, rerun (v1), rerun with 10 more runs (v2) through the CLI."""
    tmp = tmp_path_factory.mktemp("versions")
    db = f"sqlite:///{(tmp / 'doe.sqlite').as_posix()}"
    proc = cli("import", "--db", db, EXAMPLE, "--runs", RESULTS, "--user", "alice")
    assert proc.returncode == 0, proc.stderr
    assert "data version 1" in proc.stdout
    proc = cli("rerun", "--db", db, "--study", NAME, "--user", "alice", "--json", tmp / "v1.json")
    assert proc.returncode == 0, proc.stderr
    proc = cli("rerun", "--db", db, "--study", NAME, "--runs", extra_runs(tmp / "new.csv"), "--user", "bob",
               "--reason", "batch 2", "--json", tmp / "v2.json")
    assert proc.returncode == 0, proc.stderr
    return {"tmp": tmp, "db": db, "v1": json.loads((tmp / "v1.json").read_text()),
            "v2": json.loads((tmp / "v2.json").read_text())}


def test_first_rerun_is_analysis_version_1(versions):
    v1 = versions["v1"]
    for key in ("study", "data_version", "analysis_version", "responses", "design_space", "comparison"):
        assert key in v1
    assert v1["study"] == NAME and v1["analysis_version"] == 1 and v1["data_version"] == 1
    assert v1["comparison"] is None
    via = v1["responses"]["Viability"]
    for key in ("model", "transform", "n", "r2", "adj_r2", "pred_r2", "rmse", "coefficients"):
        assert key in via
    assert via["n"] == 40
    assert {"term", "estimate", "std_error", "ci_low", "ci_high", "p"} <= set(via["coefficients"][0])
    ds = v1["design_space"]
    assert 0 <= ds["probability_at_set_point"] <= 1 and 0 <= ds["fraction_inside"] <= 1
    assert set(ds["set_point"]) == {"Medium", "Surface", "Harvest reagent", "Agitation", "Seeding density"}


def test_rerun_with_new_runs_makes_new_versions_and_comparison(versions):
    v1, v2 = versions["v1"], versions["v2"]
    assert v2["data_version"] == 2 and v2["analysis_version"] == 2
    assert v2["responses"]["Viability"]["n"] == 50
    comp = v2["comparison"]
    assert comp["old_version"] == 1 and comp["new_version"] == 2
    assert comp["old_data_version"] == 1 and comp["new_data_version"] == 2
    for name, cqa in comp["responses"].items():
        old = {c["term"]: c for c in v1["responses"][name].get("coefficients") or []}
        new = {c["term"]: c for c in v2["responses"][name].get("coefficients") or []}
        for row in cqa["coefficients"]:
            t = row["term"]
            if t in old and t in new:
                assert math.isclose(row["change"], new[t]["estimate"] - old[t]["estimate"], abs_tol=1e-12)
                assert row["old_ci_low"] == old[t]["ci_low"] and row["new_ci_high"] == new[t]["ci_high"]
            else:
                assert row["change"] is None
        for stat in ("r2", "pred_r2", "rmse"):
            s = cqa["stats"][stat]
            assert s["old"] == v1["responses"][name].get(stat) and s["new"] == v2["responses"][name].get(stat)
        assert isinstance(cqa["became_significant"], list) and isinstance(cqa["stopped_being_significant"], list)
    ds = comp["design_space"]
    assert ds["fraction_inside"]["old"] == v1["design_space"]["fraction_inside"]
    assert ds["fraction_inside"]["new"] == v2["design_space"]["fraction_inside"]
    assert ds["probability_at_set_point"]["new"] == v2["design_space"]["probability_at_set_point"]


def test_store_holds_both_versions(versions):
    from doe.store import Store

    store = Store.open(versions["db"])
    try:
        an = store.analyses(NAME)
        assert list(an["version"]) == [1, 2] and list(an["data_version"]) == [1, 2]
        assert an.iloc[1]["created_by"] == "bob"
        assert an.iloc[1]["summary"]["responses"]["Viability"]["n"] == 50
        assert an.iloc[0]["choices"]["Viability"]["reduce"] is True
        assert store.data_versions(NAME).iloc[-1]["reason"] == "batch 2"
    finally:
        store.close()


def test_compare_analyses_library_and_frame():
    from doe.versions import compare_analyses, comparison_frame

    old = {"responses": {"Y": {"r2": 0.8, "pred_r2": 0.6, "rmse": 1.0, "coefficients": [
        {"term": "A", "estimate": 1.0, "std_error": 0.5, "ci_low": 0.0, "ci_high": 2.0, "p": 0.2},
        {"term": "B", "estimate": 2.0, "std_error": 0.5, "ci_low": 1.0, "ci_high": 3.0, "p": 0.01}]}},
        "design_space": {"fraction_inside": 0.3, "probability_at_set_point": 0.9}}
    new = {"responses": {"Y": {"r2": 0.85, "pred_r2": 0.7, "rmse": 0.9, "coefficients": [
        {"term": "A", "estimate": 1.5, "std_error": 0.4, "ci_low": 0.7, "ci_high": 2.3, "p": 0.01},
        {"term": "B", "estimate": 0.5, "std_error": 0.5, "ci_low": -0.5, "ci_high": 1.5, "p": 0.3},
        {"term": "C", "estimate": 0.1, "std_error": 0.1, "ci_low": -0.1, "ci_high": 0.3, "p": 0.4}]}},
        "design_space": {"fraction_inside": 0.4, "probability_at_set_point": 0.95}}
    comp = compare_analyses(old, new)
    y = comp["responses"]["Y"]
    assert y["became_significant"] == ["A"] and y["stopped_being_significant"] == ["B"]
    assert math.isclose(y["stats"]["r2"]["change"], 0.05)
    assert math.isclose(comp["design_space"]["fraction_inside"]["change"], 0.1)
    frame = comparison_frame(comp)
    assert list(frame["term"]) == ["A", "B", "C"]
    assert frame["change"].iloc[:2].tolist() == [0.5, -1.5] and pd.isna(frame["change"].iloc[2])


def test_audit_verify_then_tamper(versions):
    proc = cli("audit", "verify", "--db", versions["db"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("audit trail intact:")
    n = int(proc.stdout.split(":")[1].split()[0])
    assert n > 50
    from doe.store._models import AuditRow

    path = versions["db"].removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    try:
        con.execute("DROP TRIGGER audit_trail_no_update")  # as someone with full access would
        con.execute(f"UPDATE {AuditRow.__tablename__} SET new_value = '\"forged\"' WHERE seq = 5")
        con.commit()
    finally:
        con.close()
    proc = cli("audit", "verify", "--db", versions["db"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "record 5" in proc.stdout


def test_rerun_unknown_study_gives_import_hint(tmp_path):
    db = f"sqlite:///{(tmp_path / 'empty.sqlite').as_posix()}"
    proc = cli("rerun", "--db", db, "--study", "Nope", "--json", tmp_path / "x.json")
    assert proc.returncode == 2
    assert "python -m doe import --db" in proc.stderr and "STUDY.yaml" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_library_rerun_uses_saved_decision_set_point(tmp_path):
    from doe.runs import read_results
    from doe.store import Store, User
    from doe.study import Study
    from doe.versions import rerun_analysis

    study = Study.load(EXAMPLE)
    store = Store.open(data_dir=str(tmp_path))
    try:
        store.save_study(study, "alice")
        store.append_runs(NAME, read_results(study, RESULTS).table, "alice")
        sp = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE", "Agitation": 60.0,
              "Seeding density": 3000.0}
        dec = store.save_decision(NAME, 0.8, sp, {}, "alice")
        out = rerun_analysis(store, NAME, User("carol", authenticated=True))
        ds = out["design_space"]
        assert out["analysis_version"] == 1 and out["comparison"] is None
        assert ds["set_point"] == sp and ds["set_point_source"] == f"decision {dec}" and ds["threshold"] == 0.8
        again = rerun_analysis(store, NAME, "carol")  # same data, same choices: no change
        assert again["analysis_version"] == 2 and again["data_version"] == 1
        rows = again["comparison"]["responses"]["Viability"]["coefficients"]
        assert all(r["change"] == 0 for r in rows)
        assert again["comparison"]["design_space"]["probability_at_set_point"]["change"] == 0
    finally:
        store.close()
