"""Classical split-plot forms from the ordinary design types: a study with hard-to-change factors gets a
split-plot fraction (fractional / full factorial) or an equivalent-estimation split-plot CCD from
``generate`` and ``python -m doe design``; other types say their runs are completely randomised."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import doe
from doe.errors import DesignError
from doe.model import ModelMatrix, parse_model
from doe.study import WHOLE_PLOT
from tests.conftest import ROOT

FRACTION = """name: Split fraction
factors:
  - {name: Surface, kind: categorical, levels: [Standard TC, CellBIND], hard_to_change: true}
  - {name: Medium, kind: categorical, levels: [FBS 10%, hPL 5%], hard_to_change: true}
  - {name: Agitation, low: 30, high: 90, units: rpm}
  - {name: Seeding density, low: 1000, high: 5000}
  - {name: Harvest time, low: 5, high: 9, units: d}
responses: [{name: Viability, units: '%', lower: 80}]
"""
CCD = """name: Split CCD
factors:
  - {name: Temperature, low: 35, high: 39, units: degC, hard_to_change: true}
  - {name: Agitation, low: 30, high: 90, units: rpm}
  - {name: Seeding density, low: 1000, high: 5000}
responses: [{name: Viability}]
"""


def test_fractional_type_gives_a_split_plot_fraction() -> None:
    study = doe.Study.from_yaml(FRACTION)
    d = doe.generate(study, "fractional", seed=3)
    table = d.table
    assert d.n_whole_plots == 4 and len(table) == 16  # every setting of 2 whole-plot factors; resolution >= IV
    assert table.groupby(WHOLE_PLOT)[["Surface", "Medium"]].nunique().max().max() == 1
    assert table.groupby(WHOLE_PLOT)["Agitation"].nunique().min() == 2  # subplot factors vary in every plot
    coded = d.coded()
    numeric = coded[:, 2:]
    assert np.allclose(numeric.T @ numeric, 16 * np.eye(3))  # orthogonal two-level columns
    assert "split-plot fraction" in d.info["split-plot design"]


def test_full_type_gives_the_full_factorial_in_whole_plots() -> None:
    study = doe.Study.from_yaml(FRACTION)
    d = doe.generate(study, "full", seed=3)
    assert len(d.table) == 32 and d.n_whole_plots == 4
    assert len(d.table.drop_duplicates(subset=study.factor_names)) == 32


def test_ccd_type_gives_an_equivalent_estimation_design() -> None:
    study = doe.Study.from_yaml(CCD)
    d = doe.generate(study, "ccd", seed=5)
    assert d.n_whole_plots is not None and d.table.groupby(WHOLE_PLOT)["Temperature"].nunique().max() == 1
    mm = ModelMatrix(study, parse_model(study, "quadratic"))
    X = mm.build(d.coded())
    Z = (d.table[WHOLE_PLOT].to_numpy()[:, None] == np.unique(d.table[WHOLE_PLOT])[None, :]).astype(float)
    ols = np.linalg.solve(X.T @ X, X.T)
    for eta in (0.5, 5.0):  # OLS = GLS for any whole-plot variance (checked from the design, not the generator)
        Vi = np.linalg.inv(np.eye(len(X)) + eta * Z @ Z.T)
        assert np.allclose(np.linalg.solve(X.T @ Vi @ X, X.T @ Vi), ols, atol=1e-9)
    assert any("beyond the study ranges" in w for w in d.warnings)


def test_other_types_say_their_runs_are_completely_randomised() -> None:
    study = doe.Study.from_yaml(CCD)
    d = doe.generate(study, "bbd", seed=1)
    assert WHOLE_PLOT not in d.table and any("completely randomised" in w for w in d.warnings)


def test_replicates_and_split_split_plots_are_refused_with_a_message() -> None:
    study = doe.Study.from_yaml(FRACTION)
    with pytest.raises(DesignError, match="takes no replicates"):
        doe.generate(study, "fractional", seed=1, replicates=2)


def test_cli_design_fractional_with_whole_plots(tmp_path) -> None:
    (tmp_path / "study.yaml").write_text(FRACTION, encoding="utf-8")
    out, ev = tmp_path / "design.csv", tmp_path / "eval.json"
    done = subprocess.run([sys.executable, "-m", "doe", "design", str(tmp_path / "study.yaml"), "--type", "fractional",
                           "--whole-plots", "4", "--seed", "2", "--out", str(out), "--json", str(ev)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    sheet = pd.read_csv(out)
    assert sheet[WHOLE_PLOT].nunique() == 4
    assert json.loads(ev.read_text())["whole_plots"] == 4
    refused = subprocess.run([sys.executable, "-m", "doe", "design", str(tmp_path / "study.yaml"), "--type", "ccd",
                              "--whole-plots", "4", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode != 0 and "apply to optimal designs only" in refused.stderr
