"""`python -m doe space` on the bundled example: JSON keys of the issue, figure export, bad input."""

import json
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE, ROOT

RESULTS = ROOT / "data" / "msc_example_results.csv"


def run(*args):
    return subprocess.run([sys.executable, "-m", "doe", "space", str(EXAMPLE), str(RESULTS), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_space_json_and_html_figure(tmp_path):
    proc = run("--reduce", "--fixed", "Surface=ULA", "Medium=SFM-XF", "--x", "Agitation", "--y",
               "Seeding density", "--json", tmp_path / "s.json", "--figure", tmp_path / "s.html")
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "s.json").read_text())
    for key in ("set_point", "probability_at_set_point", "par", "desirability_optimum", "grid"):
        assert key in out
    assert out["set_point"]["Surface"] == "ULA" and out["set_point"]["Medium"] == "SFM-XF"
    assert out["probability_at_set_point"] >= 0.9
    low, high = out["par"]["Agitation"]
    assert low <= out["set_point"]["Agitation"] <= high
    assert {"settings", "desirability", "predictions"} <= set(out["desirability_optimum"])
    assert 0 < out["grid"]["fraction_inside"] < 1
    assert out["grid"]["mc_se"] < 0.01
    html = (tmp_path / "s.html").read_text()
    assert "<html" in html and "Design space" in html


@pytest.mark.parametrize("args, message", [
    (["--fixed", "Surface=Glass"], "not a tested level of Surface"),
    (["--fixed", "Agitaton=60"], "Did you mean 'Agitation'"),
    (["--setpoint-sd", "Agitation"], "NAME=VALUE"),
])
def test_space_bad_arguments(tmp_path, args, message):
    proc = run(*args, "--no-desirability", "--json", tmp_path / "s.json")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
