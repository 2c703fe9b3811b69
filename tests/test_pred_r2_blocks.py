"""Predicted R² of a blocked design in both conventions (issue 16): Design-Expert's, 1 - PRESS / (total SS
excluding the blocks' SS), and ours, 1 - PRESS / total SS; each computed independently here with
statsmodels (OLS with block dummies entered first, PRESS from the hat matrix) on rsm's ChemReact data
(Lenth 2009, J. Stat. Softw. 32(7): the second-order model in two blocks)."""

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from doe.fit import fit_model
from doe.study import Study
from tests.test_cli_analyze import CHEM, REFERENCE


def test_blocked_chemreact_predicted_r2_in_both_conventions():
    data = pd.read_csv(REFERENCE / "rsm_chemreact_ccd_two_blocks" / "data.csv")
    fm = fit_model(Study.from_dict(CHEM), data, "Yield", "quadratic")
    coded = data.assign(x1=(data.Time - 85) / 5, x2=(data.Temp - 175) / 5)
    ols = smf.ols("Yield ~ C(Block) + x1 + x2 + x1:x2 + I(x1**2) + I(x2**2)", data=coded).fit()
    h = ols.get_influence().hat_matrix_diag
    press = float(np.sum((ols.resid / (1 - h)) ** 2))
    y = coded.Yield
    sst = float(((y - y.mean()) ** 2).sum())
    ss_block = float(sum(len(g) * (g.mean() - y.mean()) ** 2 for _, g in y.groupby(coded.Block)))
    assert np.isclose(fm.press, press, rtol=1e-9)
    assert np.isclose(fm.pred_r2, 1 - press / sst, rtol=1e-9)
    assert np.isclose(fm.pred_r2_excluding_blocks, 1 - press / (sst - ss_block), rtol=1e-9)
    assert fm.pred_r2_excluding_blocks < fm.pred_r2  # the blocks' SS no longer counts as explained
    assert fm.to_json()["pred_r2_excluding_blocks"] == fm.pred_r2_excluding_blocks  # CLI analyze JSON


def test_without_blocks_there_is_one_convention():
    data = pd.read_csv(REFERENCE / "rsm_chemreact_ccd_two_blocks" / "data.csv")
    one = data[data.Block == "B1"]
    study = Study.from_dict({k: v for k, v in CHEM.items() if k != "blocks"})
    assert fit_model(study, one, "Yield", "linear").pred_r2_excluding_blocks is None


def test_the_report_labels_both_conventions_for_blocked_data():
    from doe.report import build_report

    data = pd.read_csv(REFERENCE / "rsm_chemreact_ccd_two_blocks" / "data.csv")
    content = build_report(study=Study.from_dict(CHEM), runs=data, draws=500)
    section = next(s for s in content.sections if s.heading.startswith("5.1"))
    stats = [b.frame for b in section.blocks if hasattr(b, "frame") and "PRESS" in b.frame.columns]
    assert stats, "no fit statistics table"
    columns = set(stats[0].columns)
    assert {"Predicted R² (total SS with blocks)", "Predicted R² (total SS without blocks, Design-Expert)"} <= columns


def test_the_models_page_shows_both_conventions_for_blocked_data():
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    data = pd.read_csv(REFERENCE / "rsm_chemreact_ccd_two_blocks" / "data.csv")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["_started"] = True
    at.session_state["study"] = Study.from_dict(CHEM)
    at.session_state["runs"] = data.rename(columns={"run": "Run"})[["Run", "Block", "Time", "Temp", "Yield"]]
    at.run()
    at.switch_page("pages/models.py").run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "Design-Expert's convention" in captions and "predicted R² (excluding blocks) = 0.97" in captions
