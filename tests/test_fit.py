"""Model fitting against published numbers (tests/reference_cases) and independent computations.

Published numbers are read from each case's expected.json, never copied here. A
number printed to k decimals cannot be checked more tightly than its last place
(printouts round, transcriptions sometimes truncate: rsm's t for x2 is 10.0125,
stored as 10.012), so each comparison uses max(stated tolerance, one unit in the
last printed place).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import optimize, stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.outliers_influence import OLSInfluence

from doe.errors import ModelError
from doe.fit import (
    analyze,
    box_cox,
    effects_two_level,
    fit_model,
    fit_summary,
    lenth,
    parse_transform,
    reduce_model,
    sequential_anova,
)
from doe.fit import term_contains as _contains
from doe.model import ModelMatrix, Term, parse_model
from doe.study import Factor, Response, Study

CASES = Path(__file__).resolve().parent / "reference_cases"
CHEM = CASES / "rsm_chemreact_ccd_two_blocks"
HELI = CASES / "rsm_heli_ccd_4factor_two_blocks"
PILOT = CASES / "bhh_pilot_plant_2x3_unreplicated_lenth"
EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "msc_expansion.yaml"


# -- helpers ----------------------------------------------------------------------------------------
def _case(path: Path) -> tuple[pd.DataFrame, dict]:
    return pd.read_csv(path / "data.csv"), json.loads((path / "expected.json").read_text())


def _last_place(value: float) -> float:
    """One unit in the last printed place of a published number (as stored in the JSON)."""
    text = repr(float(value)).lower()
    mantissa, _, exp = text.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    if mantissa.endswith(".0"):
        decimals = 0
    return 10.0 ** (-decimals + (int(exp) if exp else 0))


def _check(ours: float, published: float, tol: float | str | None = None, what: str = "") -> None:
    """|ours - published| within the stated tolerance (absolute, or 'rel x') or the printing precision."""
    if isinstance(tol, str):
        allowed = float(tol.split()[-1]) * abs(published)
    else:
        allowed = float(tol or 0.0)
    allowed = max(allowed, _last_place(published))
    assert abs(ours - published) <= allowed * (1 + 1e-9), f"{what}: ours {ours!r} vs published {published!r}"


def _coding(text: str) -> dict[str, tuple[float, float]]:
    """{'x1': ('Time', centre, half range)} from a coding line like 'x1 = (Time - 85)/5'."""
    out = {}
    for x, name, centre, half in re.findall(r"(x\d)\s*=\s*\((\w+?)\s*-\s*([\d.]+)\)\s*/\s*([\d.]+)", text):
        out[x] = (name, float(centre), float(half))
    return out


def _factor(name: str, centre: float, half: float) -> Factor:
    return Factor(name, low=centre - half, high=centre + half)


def chem_study() -> tuple[Study, dict[str, str]]:
    data, exp = _case(CHEM)
    coding = _coding(exp["coding"])
    factors = [_factor(name, c, h) for name, c, h in coding.values()]
    return (Study("ChemReact", factors, [Response("Yield")], blocks="Block"),
            {x: v[0] for x, v in coding.items()})


def heli_study() -> tuple[Study, dict[str, str], dict[str, str]]:
    """Natural columns A_wing_area... with the published coding x1 = (A - 12.4)/0.6 etc."""
    data, exp = _case(HELI)
    coding = _coding(exp["coding"])
    by_letter = {c.split("_")[0]: c for c in data.columns if re.fullmatch(r"[A-Z]_\w+", c)}
    factors = [_factor(by_letter[letter], c, h) for letter, c, h in coding.values()]
    xmap = {x: by_letter[v[0]] for x, v in coding.items()}
    return Study("heli", factors, [Response("ave")], blocks="block"), xmap, by_letter


def _rename(term: str, xmap: dict[str, str]) -> str:
    """Published term name (x1:x2, x1^2) -> ours (Time:Temp, Time^2)."""
    return re.sub(r"x\d", lambda m: xmap[m.group(0)], term)


def _row(table: pd.DataFrame, source: str) -> pd.Series:
    return table.set_index("source").loc[source]


def _same_up_to_sign(ours: list[float], published: list[float], tol: float) -> None:
    a, b = np.asarray(ours), np.asarray(published)
    sign = 1.0 if np.dot(a, b) >= 0 else -1.0
    err = np.max(np.abs(sign * a - b))
    allowed = max(tol, max(_last_place(v) for v in published))
    assert err <= allowed, f"eigenvector {a} vs {b}"


# -- ChemReact: first-order fit on block B1 -------------------------------------------------------------
def test_chemreact_first_order_block1():
    data, exp = _case(CHEM)
    study, xmap = chem_study()
    pub, tol = exp["expected"]["first_order_block1"], exp["tolerance"]
    fm = fit_model(study, data[data["Block"] == "B1"], "Yield", "linear")
    est = fm.coefficients.set_index("term")
    for term, value in pub["coefficients"].items():
        name = _rename(term, xmap)
        _check(est.loc[name, "estimate"], value, tol["coefficients"], f"coef {term}")
        _check(est.loc[name, "std_error"], pub["se"][term], tol["se"], f"se {term}")
        _check(est.loc[name, "t"], pub["t"][term], tol["F"], f"t {term}")
        _check(est.loc[name, "p"], pub["p"][term], tol["p"], f"p {term}")
    _check(fm.r2, pub["R2"], what="R2")
    _check(fm.adj_r2, pub["adj_R2"], what="adj R2")
    _check(fm.overall_f["F"], pub["F"], tol["F"], "F")
    assert [fm.overall_f["df_model"], fm.overall_f["df_resid"]] == pub["F_df"]
    _check(fm.overall_f["p"], pub["F_p"], tol["p"], "F p")
    # ANOVA: the first-order group is our Model row (no blocks in this fit).
    anova = pub["anova"]
    for ours, theirs in (("Model", "FO"), ("Residual", "Residuals"), ("Lack of fit", "Lack_of_fit"),
                         ("Pure error", "Pure_error")):
        row = _row(fm.anova, ours)
        assert row["df"] == anova[theirs]["df"]
        _check(row["sum_sq"], anova[theirs]["SS"], tol["SS"], f"SS {ours}")
        _check(row["mean_sq"], anova[theirs]["MS"], tol["SS"], f"MS {ours}")
        if "F" in anova[theirs]:
            _check(row["F"], anova[theirs]["F"], tol["F"], f"F {ours}")
            _check(row["p"], anova[theirs]["p"], tol["p"], f"p {ours}")
    lof = fm.lack_of_fit
    _check(lof["F"], anova["Lack_of_fit"]["F"], tol["F"], "LOF F")
    _check(lof["p"], anova["Lack_of_fit"]["p"], tol["p"], "LOF p")
    assert (lof["df"], lof["pure_error_df"]) == (anova["Lack_of_fit"]["df"], anova["Pure_error"]["df"])
    grouped = fm.grouped_anova()
    _check(_row(grouped, "FO")["sum_sq"], anova["FO"]["SS"], tol["SS"], "grouped FO")
    assert any("Lack of fit is significant" in w for w in fm.warnings)


def test_chemreact_steepest_ascent():
    data, exp = _case(CHEM)
    study, xmap = chem_study()
    pub, tol = exp["expected"]["first_order_block1"], exp["tolerance"]
    fm = fit_model(study, data[data["Block"] == "B1"], "Yield", "linear")
    direction = fm.steepest_direction()
    for x, value in pub["steepest_ascent_direction_unit"].items():
        _check(direction["coded"][xmap[x]], value, tol["coefficients"], f"direction {x}")
    for name, value in pub["steepest_increment_original_units"].items():
        _check(direction["increment_actual"][name], value, tol["coefficients"], f"increment {name}")
    dists = [p["dist"] for p in pub["steepest_path"]]
    path = fm.steepest_ascent(dists)
    slope = sum(abs(v) for v in fm.estimates.values()) - abs(fm.estimates["Intercept"])
    for i, published in enumerate(pub["steepest_path"]):
        row = path.iloc[i]
        assert row["dist"] == published["dist"]
        # rsm rounds the coded path to 3 decimals, then converts it and predicts at it.
        for x, name in xmap.items():
            _check(row[f"{name} (coded)"], published[x], 5e-4, f"path {x}")
            half = study.factor(name).half_range
            _check(row[name], published[name], 5e-4 * half + 5e-4, f"path {name}")
        _check(row["yhat"], published["yhat"], 5e-4 + 5e-4 * slope, "path yhat")
    descent = fm.steepest_ascent([1.0], descent=True)
    assert descent[f"{xmap['x1']} (coded)"].iloc[0] == pytest.approx(-pub["steepest_ascent_direction_unit"]["x1"], abs=1e-6)


# -- ChemReact: second-order fit with blocks ---------------------------------------------------------------
@pytest.fixture(scope="module")
def chem_so():
    data, exp = _case(CHEM)
    study, xmap = chem_study()
    return fit_model(study, data, "Yield", "quadratic"), exp, xmap, study, data


def test_chemreact_second_order_coefficients(chem_so):
    fm, exp, xmap, _, _ = chem_so
    pub, tol = exp["expected"]["second_order_blocked"], exp["tolerance"]
    est = fm.coefficients.set_index("term")
    for term, value in pub["coefficients"].items():
        if term in ("Intercept", "Block2"):
            continue  # treatment coding in R; checked against the sum-to-zero values below
        name = _rename(term, xmap)
        _check(est.loc[name, "estimate"], value, tol["coefficients"], f"coef {term}")
        _check(est.loc[name, "std_error"], pub["se"][term], tol["se"], f"se {term}")
        _check(est.loc[name, "t"], pub["t"][term], tol["F"], f"t {term}")
        _check(est.loc[name, "p"], pub["p"][term], tol["p"], f"p {term}")
    # Sum-to-zero coding: intercept = published intercept + Block2/2, Block[1] (B1) = -Block2/2;
    # the caveat prints the same values.
    caveat = next(c for c in exp["caveats"] if "sum-to-zero" in c)
    icpt, block = (float(v) for v in re.search(r"intercept becomes ([\d.]+) and the block effect \+-([\d.]+)",
                                               caveat).groups())
    b2 = pub["coefficients"]["Block2"]
    _check(est.loc["Intercept", "estimate"], pub["coefficients"]["Intercept"] + b2 / 2, tol["coefficients"])
    _check(est.loc["Intercept", "estimate"], icpt, tol["coefficients"], "caveat intercept")
    _check(est.loc["Block[1]", "estimate"], block, tol["coefficients"], "caveat block")
    _check(est.loc["Block[1]", "std_error"], pub["se"]["Block2"] / 2, tol["se"], "block se")
    _check(abs(est.loc["Block[1]", "t"]), abs(pub["t"]["Block2"]), tol["F"], "block t")
    _check(est.loc["Block[1]", "p"], pub["p"]["Block2"], tol["p"], "block p")
    _check(fm.r2, pub["R2"], what="R2")
    _check(fm.adj_r2, pub["adj_R2"], what="adj R2")
    _check(fm.overall_f["F"], pub["F"], tol["F"], "F")
    assert [fm.overall_f["df_model"], fm.overall_f["df_resid"]] == pub["F_df"]
    _check(fm.overall_f["p"], pub["F_p"], tol["p"], "F p")
    assert fm.block_labels == ["B1", "B2"] and fm.block_column == "Block"


def test_chemreact_second_order_sequential_anova(chem_so):
    fm, exp, _, study, data = chem_so
    pub, tol = exp["expected"]["second_order_blocked"]["anova_sequential"], exp["tolerance"]
    table = sequential_anova(study, data, "Yield", "quadratic")
    pd.testing.assert_frame_equal(table, fm.grouped_anova())
    names = {"Block": "Block", "FO": "FO", "TWI": "TWI", "PQ": "PQ", "Residuals": "Residuals",
             "Lack_of_fit": "Lack of fit", "Pure_error": "Pure error"}
    for theirs, ours in names.items():
        row = _row(table, ours)
        assert row["df"] == pub[theirs]["df"], theirs
        _check(row["sum_sq"], pub[theirs]["SS"], tol["SS"], f"SS {theirs}")
        _check(row["mean_sq"], pub[theirs]["MS"], tol["SS"], f"MS {theirs}")
        if "F" in pub[theirs]:
            _check(row["F"], pub[theirs]["F"], tol["F"], f"F {theirs}")
            _check(row["p"], pub[theirs]["p"], tol["p"], f"p {theirs}")
    # Pure error within blocks: 4 df (pooling centre points across blocks would give 5).
    assert fm.lack_of_fit["pure_error_df"] == pub["Pure_error"]["df"] == 4
    # Design-Expert layout: the Block row is the same sequential SS.
    _check(_row(fm.anova, "Block")["sum_sq"], pub["Block"]["SS"], tol["SS"])


def test_chemreact_stationary_point(chem_so):
    fm, exp, xmap, study, _ = chem_so
    pub, tol = exp["expected"]["second_order_blocked"], exp["tolerance"]
    sp = fm.stationary_point
    for x, value in pub["stationary_point_coded"].items():
        _check(sp["coded"][xmap[x]], value, tol["stationary_point"], f"coded {x}")
    for name, value in pub["stationary_point_original"].items():
        _check(sp["actual"][name], value, tol["stationary_point"], f"actual {name}")
    for ours, theirs in zip(sp["eigenvalues"], pub["eigenvalues"]):
        _check(ours, theirs, tol["eigen"], "eigenvalue")
    for ours, theirs in zip(sp["eigenvectors"], pub["eigenvectors_columns"]):
        _same_up_to_sign(ours, theirs, tol["eigen"])
    assert sp["kind"] == "maximum" and pub["nature"].startswith("maximum")
    assert sp["inside_region"]
    # Predicted at the stationary point in block B1 (statsmodels refit stored with the case).
    at = pd.DataFrame([sp["actual"]])
    b1 = fm.predict(at, interval=None, block="B1")["mean"].iloc[0]
    assert b1 == pytest.approx(exp["refit_statsmodels"]["predicted_at_stationary_point_block_B1"], abs=1e-8)
    # Blocks averaged out by default: B1 value minus the B1 block effect.
    assert sp["predicted"] == pytest.approx(b1 - fm.estimates["Block[1]"], abs=1e-9)
    assert fm.predict(at, interval=None)["mean"].iloc[0] == pytest.approx(sp["predicted"], abs=1e-9)
    # Axial points lie outside the study range: allowed, with a warning.
    assert any("beyond the study range" in w for w in fm.warnings)


# -- heli: 4-factor CCD in two blocks --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def heli():
    data, exp = _case(HELI)
    study, xmap, by_letter = heli_study()
    return fit_model(study, data, "ave", "quadratic"), exp, xmap, by_letter, study, data


def test_heli_coded_columns_reproduce_published_coding(heli):
    fm, exp, xmap, _, study, data = heli
    coded = fm._U
    for j, f in enumerate(study.factors):
        x = next(k for k, v in xmap.items() if v == f.name)
        np.testing.assert_allclose(coded[:, j], data[x].to_numpy(), atol=1e-12)


def test_heli_coefficients(heli):
    fm, exp, xmap, _, _, _ = heli
    pub, tol = exp["expected"], exp["tolerance"]
    est = fm.coefficients.set_index("term")
    for term, value in pub["coefficients"].items():
        if term == "Intercept":
            _check(est.loc["Intercept", "estimate"], value + pub["coefficients"]["block2"] / 2,
                   tol["coefficients"], "intercept (sum-to-zero)")
            continue
        if term == "block2":
            _check(est.loc["Block[1]", "estimate"], -value / 2, tol["coefficients"], "block")
            _check(est.loc["Block[1]", "p"], pub["p"]["block2"], tol["p"], "block p")
            continue
        name = _rename(term, xmap)
        _check(est.loc[name, "estimate"], value, tol["coefficients"], f"coef {term}")
        _check(est.loc[name, "p"], pub["p"][term], tol["p"], f"p {term}")
        kind = "linear" if ":" not in term and "^" not in term else "interaction" if ":" in term else "quadratic"
        _check(est.loc[name, "std_error"], pub["se"][kind], tol["se"], f"se {term}")
    _check(est.loc["Block[1]", "std_error"], pub["se"]["block2"] / 2, tol["se"], "block se")
    _check(fm.r2, pub["R2"], what="R2")
    _check(fm.adj_r2, pub["adj_R2"], what="adj R2")
    _check(fm.overall_f["F"], pub["F"], tol["F"], "F")
    assert [fm.overall_f["df_model"], fm.overall_f["df_resid"]] == pub["F_df"]
    _check(fm.overall_f["p"], pub["F_p"], tol["p"], "F p")


def test_heli_sequential_anova_and_lack_of_fit(heli):
    fm, exp, *_ = heli
    pub, tol = exp["expected"]["anova_sequential"], exp["tolerance"]
    table = fm.grouped_anova()
    names = {"block": "Block", "FO": "FO", "TWI": "TWI", "PQ": "PQ", "Residuals": "Residuals",
             "Lack_of_fit": "Lack of fit", "Pure_error": "Pure error"}
    for theirs, ours in names.items():
        row = _row(table, ours)
        assert row["df"] == pub[theirs]["df"], theirs
        _check(row["sum_sq"], pub[theirs]["SS"], tol["SS"], f"SS {theirs}")
        _check(row["mean_sq"], pub[theirs]["MS"], tol["SS"], f"MS {theirs}")
        if "F" in pub[theirs]:
            _check(row["F"], pub[theirs]["F"], tol["F"], f"F {theirs}")
            _check(row["p"], pub[theirs]["p"], tol["p"], f"p {theirs}")
    _check(fm.lack_of_fit["F"], pub["Lack_of_fit"]["F"], tol["F"], "LOF F")
    _check(fm.lack_of_fit["p"], pub["Lack_of_fit"]["p"], tol["p"], "LOF p")


def test_heli_stationary_point_is_a_saddle(heli):
    fm, exp, xmap, by_letter, _, _ = heli
    pub, tol = exp["expected"], exp["tolerance"]
    sp = fm.stationary_point
    for x, value in pub["stationary_point_coded"].items():
        _check(sp["coded"][xmap[x]], value, tol["stationary_point"], f"coded {x}")
    for letter, value in pub["stationary_point_original"].items():
        _check(sp["actual"][by_letter[letter]], value, tol["stationary_point"], f"actual {letter}")
    for ours, theirs in zip(sp["eigenvalues"], pub["eigenvalues"]):
        _check(ours, theirs, tol["eigen"], "eigenvalue")
    for ours, theirs in zip(sp["eigenvectors"], pub["eigenvectors_columns"]):
        _same_up_to_sign(ours, theirs, tol["eigen"])
    assert sp["kind"] == "saddle" and pub["nature"].startswith("saddle")


# -- pilot plant: unreplicated 2^3, Lenth ---------------------------------------------------------------------------
def test_pilot_plant_effects_and_lenth():
    data, exp = _case(PILOT)
    study = Study("pilot", [Factor(n, low=-1, high=1) for n in "TCK"], [Response("y")])
    fm = fit_model(study, data, "y", "full")
    pub, refit, tol = exp["expected"], exp["refit_statsmodels"], exp["tolerance"]
    assert fm.df_resid == 0
    assert math.isnan(fm.rmse) and math.isnan(fm.coefficients["p"].iloc[1]) and math.isnan(fm.r2)
    assert any("half-normal" in w and "Lenth" in w for w in fm.warnings)
    _check(fm.estimates["Intercept"], pub["mean"], tol["effects"], "mean")
    effects = effects_two_level(fm).set_index("term")["effect"]
    for name, value in pub["effects"].items():
        _check(effects[":".join(name)], value, tol["effects"], f"effect {name}")
    _check(fm.lenth["pse"], pub["Lenth_PSE"], tol["PSE"], "PSE")
    _check(fm.lenth["s0"], refit["Lenth_s0"], tol["PSE"], "s0")
    _check(fm.lenth["me"], refit["Lenth_ME_t_df_7/3"], tol["PSE"], "ME")
    _check(fm.lenth["sme"], refit["Lenth_SME"], tol["PSE"], "SME")
    # The published effects give the same Lenth numbers (no fit involved).
    again = lenth(pub["effects"])
    _check(again["pse"], pub["Lenth_PSE"], tol["PSE"])
    active = set(fm.effects.loc[fm.effects["active"], "term"])
    assert active == {"T", "T:K"}  # the vignette's conclusion: T and TK active
    out = fm.to_json()
    json.dumps(out, allow_nan=False)
    assert out["lenth"]["pse"] == pytest.approx(pub["Lenth_PSE"])
    assert out["coefficients"][1]["p"] is None
    # Via study, runs and response (saturated model by default).
    via = effects_two_level(study, data, "y")
    assert via.attrs["lenth"]["pse"] == pytest.approx(pub["Lenth_PSE"])


# -- ANOVA types against statsmodels ---------------------------------------------------------------------------------
def _unbalanced(seed: int = 3) -> tuple[Study, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    study = Study("u", [Factor("M", kind="categorical", levels=["a", "b", "c"]),
                        Factor("A", low=0, high=10), Factor("B", low=0, high=10)], [Response("Y")])
    rows = []
    reps = {"a": 3, "b": 5, "c": 2}
    for m, k in reps.items():
        for _ in range(k):
            for a in (0, 5, 10):
                rows.append({"M": m, "A": a, "B": float(rng.choice([0, 5, 10]))})
    runs = pd.DataFrame(rows)
    lvl = runs["M"].map({"a": 1.0, "b": -0.5, "c": 0.3})
    xa, xb = (runs["A"] - 5) / 5, (runs["B"] - 5) / 5
    runs["Y"] = 10 + lvl + 2 * xa + 0.7 * xb + 0.8 * xa * lvl - 1.1 * xa ** 2 + rng.normal(0, 0.5, len(runs))
    runs["Run"] = np.arange(1, len(runs) + 1)
    return study, runs


def _coded_frame(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    frame = runs.copy()
    for f in study.factors:
        if not f.is_categorical:
            frame[f.name] = (frame[f.name] - f.center) / f.half_range
    return frame


@pytest.mark.parametrize("typ", [1, 2, 3])
def test_anova_types_match_statsmodels_without_squares(typ):
    study, runs = _unbalanced()
    # Type I is order dependent: use patsy's term order (it puts M:A before B); a list of Term keeps it.
    by_name = {t.name: t for t in parse_model(study, "M + A + B + M:A + A:B")}
    terms = [by_name[n] for n in ("M", "A", "M:A", "B", "A:B")]
    fm = fit_model(study, runs, "Y", terms, anova_type=typ)
    ols = smf.ols("Y ~ C(M, Sum) + A + B + C(M, Sum):A + A:B", data=_coded_frame(study, runs)).fit()
    ref = anova_lm(ols, typ=typ)
    names = {"C(M, Sum)": "M", "A": "A", "B": "B", "C(M, Sum):A": "M:A", "A:B": "A:B"}
    for theirs, ours in names.items():
        row = _row(fm.anova, ours)
        assert row["df"] == ref.loc[theirs, "df"]
        assert row["sum_sq"] == pytest.approx(ref.loc[theirs, "sum_sq"], rel=1e-9, abs=1e-10)
        assert row["p"] == pytest.approx(ref.loc[theirs, "PR(>F)"], rel=1e-7)
    assert _row(fm.anova, "Residual")["sum_sq"] == pytest.approx(ols.ssr, rel=1e-10)
    if typ == 1:  # sequential SS add up to the model SS
        terms = fm.anova[~fm.anova["source"].isin(["Model", "Residual", "Lack of fit", "Pure error", "Total"])]
        assert terms["sum_sq"].sum() == pytest.approx(_row(fm.anova, "Model")["sum_sq"], rel=1e-10)


def _sse(study: Study, runs: pd.DataFrame, spec: str) -> float:
    fm = fit_model(study, runs, "Y", spec, transform="none")
    return float(np.sum(fm.residuals ** 2))


def test_type2_with_squares_uses_marginality():
    # statsmodels treats I(A**2) as a variable unrelated to A, so its Type II SS for A is adjusted
    # for A^2; JMP and Design-Expert regard A^2 as containing A. Check against explicit refits.
    study, runs = _unbalanced()
    fm = fit_model(study, runs, "Y", "quadratic", anova_type=2)
    full = "M + A + B + M:A + M:B + A:B + A^2 + B^2"
    ss_a = _sse(study, runs, "M + B + M:B + B^2") - _sse(study, runs, "M + A + B + M:B + B^2")
    assert _row(fm.anova, "A")["sum_sq"] == pytest.approx(ss_a, rel=1e-9)
    ss_a2 = _sse(study, runs, full.replace(" + A^2", "")) - _sse(study, runs, full)
    assert _row(fm.anova, "A^2")["sum_sq"] == pytest.approx(ss_a2, rel=1e-9)
    ss_m = _sse(study, runs, "A + B + A:B + A^2 + B^2") - _sse(study, runs, "M + A + B + A:B + A^2 + B^2")
    assert _row(fm.anova, "M")["sum_sq"] == pytest.approx(ss_m, rel=1e-9)
    # Type III: each term adjusted for all others, including M:A for A.
    fm3 = fit_model(study, runs, "Y", "quadratic", anova_type=3)
    ols = smf.ols("Y ~ C(M, Sum)*A + C(M, Sum):B + A:B + B + I(A**2) + I(B**2)",
                  data=_coded_frame(study, runs)).fit()
    ref = anova_lm(ols, typ=3)
    assert _row(fm3.anova, "A")["sum_sq"] == pytest.approx(ref.loc["A", "sum_sq"], rel=1e-9)
    assert _row(fm3.anova, "A^2")["sum_sq"] == pytest.approx(ref.loc["I(A ** 2)", "sum_sq"], rel=1e-9)
    assert _row(fm3.anova, "M")["sum_sq"] == pytest.approx(ref.loc["C(M, Sum)", "sum_sq"], rel=1e-9)


def test_containment():
    a, b = Term((("A", 1),)), Term((("B", 1),))
    ab, a2, a2b = Term((("A", 1), ("B", 1))), Term((("A", 2),)), Term((("A", 2), ("B", 1)))
    assert _contains(ab, a) and _contains(a2, a) and _contains(a2b, a2) and _contains(a2b, ab)
    assert not _contains(a, a2) and not _contains(ab, a2) and not _contains(b, a) and not _contains(a, a)


# -- diagnostics against statsmodels and leave-one-out ------------------------------------------------------------
def _sm_name(name: str) -> str:
    """statsmodels column name -> ours: C(M, Sum)[S.a]:A -> M[a]:A, I(A ** 2) -> A^2."""
    name = re.sub(r"C\((\w+), Sum\)\[S\.([^\]]+)\]", r"\1[\2]", name)
    return re.sub(r"I\((\w+) \*\* (\d)\)", r"\1^\2", name)


def test_coefficients_and_influence_match_statsmodels():
    study, runs = _unbalanced()
    fm = fit_model(study, runs, "Y", "M + A + B + M:A + A:B + A^2")
    ols = smf.ols("Y ~ C(M, Sum) * A + B + A:B + I(A**2)", data=_coded_frame(study, runs)).fit()
    ours = fm.coefficients.set_index("term")
    ci = ols.conf_int(0.05)
    assert sorted(ours.index) == sorted(_sm_name(n) for n in ols.params.index)
    for name in ols.params.index:
        row = ours.loc[_sm_name(name)]
        assert row["estimate"] == pytest.approx(ols.params[name], rel=1e-9, abs=1e-12)
        assert row["std_error"] == pytest.approx(ols.bse[name], rel=1e-9)
        assert row["t"] == pytest.approx(ols.tvalues[name], rel=1e-8, abs=1e-10)
        assert row["p"] == pytest.approx(ols.pvalues[name], rel=1e-7, abs=1e-300)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.loc[name, 0], ci.loc[name, 1]), rel=1e-9)
    assert fm.r2 == pytest.approx(ols.rsquared, rel=1e-10)
    assert fm.adj_r2 == pytest.approx(ols.rsquared_adj, rel=1e-10)
    assert fm.rmse == pytest.approx(math.sqrt(ols.mse_resid), rel=1e-10)
    assert fm.overall_f["F"] == pytest.approx(ols.fvalue, rel=1e-9)
    infl = OLSInfluence(ols)
    d = fm.diagnostics
    np.testing.assert_allclose(d["leverage"], infl.hat_matrix_diag, rtol=1e-9)
    np.testing.assert_allclose(d["int_studentized"], infl.resid_studentized_internal, rtol=1e-8)
    np.testing.assert_allclose(d["ext_studentized"], infl.resid_studentized_external, rtol=1e-8)
    np.testing.assert_allclose(d["cooks_d"], infl.cooks_distance[0], rtol=1e-8)
    np.testing.assert_allclose(d["dffits"], infl.dffits[0], rtol=1e-8)
    assert list(d["run"]) == list(runs["Run"])


def test_press_equals_leave_one_out_refits():
    study, runs = _unbalanced()
    spec = "M + A + B + M:A + A^2"
    fm = fit_model(study, runs, "Y", spec)
    press = 0.0
    for i in range(len(runs)):
        rest = fit_model(study, runs.drop(index=i), "Y", spec)
        pred = rest.predict(runs.iloc[[i]], interval=None)["mean"].iloc[0]
        press += (runs["Y"].iloc[i] - pred) ** 2
    assert fm.press == pytest.approx(press, rel=1e-9)
    sst = float(np.sum((runs["Y"] - runs["Y"].mean()) ** 2))
    assert fm.pred_r2 == pytest.approx(1 - press / sst, rel=1e-9)


def test_adequate_precision_and_cv():
    study, runs = _unbalanced()
    fm = fit_model(study, runs, "Y", "M + A")
    pred = fm.fitted
    expected = (pred.max() - pred.min()) / math.sqrt(fm.p * fm.rmse ** 2 / fm.n)
    assert fm.adeq_precision == pytest.approx(expected, rel=1e-12)
    assert fm.cv_percent == pytest.approx(100 * fm.rmse / runs["Y"].mean(), rel=1e-12)


def test_prediction_intervals_match_statsmodels():
    study, runs = _unbalanced()
    fm = fit_model(study, runs, "Y", "M + A + A^2")
    ols = smf.ols("Y ~ C(M, Sum) + A + I(A**2)", data=_coded_frame(study, runs)).fit()
    new = pd.DataFrame({"M": ["a", "c"], "A": [2.5, 7.0], "B": [5.0, 5.0]})
    ref = ols.get_prediction(_coded_frame(study, new)).summary_frame(alpha=0.05)
    ci = fm.predict(new, "confidence")
    pi = fm.predict(new, "prediction")
    np.testing.assert_allclose(ci["mean"], ref["mean"], rtol=1e-10)
    np.testing.assert_allclose(ci["lower"], ref["mean_ci_lower"], rtol=1e-10)
    np.testing.assert_allclose(pi["upper"], ref["obs_ci_upper"], rtol=1e-10)
    # B is not in the model: it may be left out of the settings.
    assert fm.predict(new.drop(columns="B"))["mean"].tolist() == pytest.approx(ci["mean"].tolist())


# -- equations in actual units ---------------------------------------------------------------------------------------
def test_actual_equation_reproduces_predictions(chem_so):
    fm, _, _, study, data = chem_so
    coef = fm.coefficients_actual["coefficient"]
    t, u = data["Time"], data["Temp"]
    value = (coef["Intercept"] + coef["Time"] * t + coef["Temp"] * u + coef["Time:Temp"] * t * u
             + coef["Time^2"] * t ** 2 + coef["Temp^2"] * u ** 2)
    np.testing.assert_allclose(value, fm.predict(data, interval=None)["mean"], rtol=1e-10)
    assert fm.equation_actual.startswith("Yield = ")
    assert "Block" not in fm.equation_coded


def test_actual_equations_per_categorical_level():
    study, runs = _unbalanced()
    fm = fit_model(study, runs, "Y", "M + A + B + M:A + A^2")
    assert len(fm.equations_actual) == 3
    grid = pd.DataFrame({"A": [0.0, 3.0, 10.0], "B": [1.0, 4.0, 9.0]})
    for eq in fm.equations_actual:
        c = eq["coefficients"]
        frame = grid.assign(M=eq["levels"]["M"])
        value = c["Intercept"] + c["A"] * grid["A"] + c["B"] * grid["B"] + c["A^2"] * grid["A"] ** 2
        np.testing.assert_allclose(value, fm.predict(frame, interval=None)["mean"], rtol=1e-10)
    assert fm.equation_actual.count("\n") == 2 and "M = a: Y = " in fm.equation_actual


# -- transforms --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["none", "log", "log10", "sqrt", "power:-0.5", "power:2", "logit", "logit:0:50"])
def test_transform_round_trip(spec):
    y = np.array([0.5, 2.0, 7.5, 12.0, 33.0])
    tf = parse_transform(spec, units="%")
    np.testing.assert_allclose(tf.inverse(tf.forward(y)), y, rtol=1e-12)


@pytest.mark.parametrize("spec", ["log", "sqrt", "power:-1", "logit", "boxcox"])
def test_fit_on_transformed_scale_back_transforms(spec):
    study, runs = _unbalanced()
    study.responses[0].units = "%"
    runs = runs.assign(Y=np.clip(runs["Y"], 1, 99))
    fm = fit_model(study, runs, "Y", "M + A + A^2", transform=spec)
    pred = fm.predict(runs, "confidence")
    tf = fm._tf
    np.testing.assert_allclose(tf.forward(runs["Y"]), fm._ls.y, rtol=1e-12)
    np.testing.assert_allclose(pred["mean"], tf.inverse(fm.fitted), rtol=1e-10)
    assert np.all(pred["lower"] <= pred["mean"] + 1e-12) and np.all(pred["mean"] <= pred["upper"] + 1e-12)
    assert fm.diagnostics["predicted"].to_numpy() == pytest.approx(pred["mean"].to_numpy())


def test_logit_bounds_follow_units():
    assert parse_transform("logit", units="%").upper == 100
    assert parse_transform("logit", units="g/L").upper == 1
    study, runs = _unbalanced()
    with pytest.raises(ModelError, match="strictly between 0 and 1"):
        fit_model(study, runs, "Y", "M + A", transform="logit")


def test_box_cox_matches_scipy_for_intercept_only():
    rng = np.random.default_rng(7)
    study = Study("bc", [Factor("A", low=0, high=1)], [Response("Y")])
    runs = pd.DataFrame({"A": rng.uniform(0, 1, 25), "Y": rng.lognormal(1.0, 0.6, 25)})
    out = box_cox(study, runs, "Y", model=[])
    y = runs["Y"].to_numpy()
    np.testing.assert_allclose(out["log_likelihood"], [stats.boxcox_llf(v, y) for v in out["lambdas"]],
                               rtol=1e-9)
    best = optimize.minimize_scalar(lambda v: -stats.boxcox_llf(v, y), bounds=(-3, 3), method="bounded",
                                    options={"xatol": 1e-10}).x
    assert out["best"] == pytest.approx(best, abs=1e-5)
    assert out["best"] == pytest.approx(stats.boxcox(y)[1], abs=1e-4)
    lo, hi = out["ci"]
    cut = stats.boxcox_llf(best, y) - stats.chi2.ppf(0.95, 1) / 2
    assert stats.boxcox_llf(lo, y) == pytest.approx(cut, abs=1e-7)
    assert stats.boxcox_llf(hi, y) == pytest.approx(cut, abs=1e-7)
    assert lo <= out["suggested"] <= hi and out["suggested"] in (-1, -0.5, 0, 0.5, 1, 2)
    assert out["current"] == 1.0
    fm = fit_model(study, runs, "Y", "mean", transform="boxcox")
    assert fm.boxcox_lambda == out["suggested"] and fm.transform == "boxcox"


def test_box_cox_needs_positive_results():
    study, runs = _unbalanced()
    runs.loc[4, "Y"] = 0.0
    with pytest.raises(ModelError, match="Box-Cox needs every result of Y above 0; run 5"):
        box_cox(study, runs, "Y", "M + A")
    with pytest.raises(ModelError, match="log transform needs every result of Y above 0; run 5"):
        fit_model(study, runs, "Y", "M + A", transform="log")


# -- missing results, exclusions and errors ---------------------------------------------------------------------------
def test_missing_results_are_listed_not_silently_dropped():
    study, runs = _unbalanced()
    runs["Y"] = runs["Y"].astype(object)
    runs.loc[[2, 7], "Y"] = np.nan
    runs.loc[9, "Y"] = "  "  # a blank cell is no result, not an error
    fm = fit_model(study, runs, "Y", "M + A", exclude=[1])
    assert fm.n == len(runs) - 4
    assert {(d["run"], d["reason"]) for d in fm.excluded} == {
        (1, "excluded by user"), (3, "no result"), (8, "no result"), (10, "no result")}
    assert any("no result" in w and "3, 8, 10" in w for w in fm.warnings)
    assert 3 not in set(fm.diagnostics["run"])
    with pytest.raises(ModelError, match="'99' to exclude are not in the run sheet"):
        fit_model(study, runs, "Y", "M + A", exclude=[99])


def test_error_messages_say_what_to_do():
    study, runs = _unbalanced()
    few = runs.head(4)
    with pytest.raises(ModelError, match=r"results for 4 runs, but the model has \d+ coefficients.*drop terms"):
        fit_model(study, few, "Y", "quadratic")
    aliased = runs.assign(B=runs["A"])
    with pytest.raises(ModelError, match=r"cannot be estimated.*equals .*A.* in every run.*drop"):
        fit_model(study, aliased, "Y", "A + B")
    missing_level = runs[runs["M"] != "c"]
    with pytest.raises(ModelError, match="level\\(s\\) c of M never appear"):
        fit_model(study, missing_level, "Y", "M + A")
    with pytest.raises(ModelError, match="constant response"):
        fit_model(study, runs.assign(Y=5.0), "Y", "A")
    text = runs.astype({"Y": object})
    text.loc[5, "Y"] = "12 %"
    with pytest.raises(ModelError, match="Run 6 \\(row 6\\), column 'Y': '12 %' is not a number"):
        fit_model(study, text, "Y", "A")
    with pytest.raises(ModelError, match="no column 'Yield'"):
        fit_model(study, runs, "Yield", "A")
    with pytest.raises(ModelError, match="Unknown transform 'lgo'"):
        fit_model(study, runs, "Y", "A", transform="lgo")
    three = pd.DataFrame({"A": [0.0, 5.0, 10.0], "B": [0.0, 5.0, 10.0], "M": ["a", "b", "c"], "Y": [1.0, 2.0, 4.0]})
    with pytest.raises(ModelError, match="no degrees of freedom for error.*Lenth"):
        fit_model(study, three, "Y", "A + A^2")
    with pytest.raises(ModelError, match="no results for Y"):
        fit_model(study, runs.assign(Y=np.nan), "Y", "A")


# -- fit summary, model reduction, analyze ------------------------------------------------------------------------------
def test_fit_summary_chemreact(chem_so):
    fm, exp, _, study, data = chem_so
    table = fit_summary(study, data, "Yield").set_index("order")
    assert list(table.index) == ["Mean", "Block", "Linear", "2FI", "Quadratic", "Cubic"]
    # Sequential SS are rsm's grouped SS; F uses each larger model's own residual (Design-Expert).
    pub = exp["expected"]["second_order_blocked"]["anova_sequential"]
    for order, group in (("Block", "Block"), ("Linear", "FO"), ("2FI", "TWI"), ("Quadratic", "PQ")):
        _check(table.loc[order, "sum_sq"], pub[group]["SS"], exp["tolerance"]["SS"], order)
    _check(table.loc["Quadratic", "F"], pub["PQ"]["F"], exp["tolerance"]["F"], "PQ F (full model residual)")
    _check(table.loc["Quadratic", "lack_of_fit_F"], pub["Lack_of_fit"]["F"], exp["tolerance"]["F"])
    linear = fit_model(study, data, "Yield", "linear")
    assert table.loc["Linear", "F"] == pytest.approx(
        (pub["FO"]["SS"] / 2) / linear.rmse ** 2, rel=1e-3)
    assert table.loc["Quadratic", "adj_r2"] == pytest.approx(fm.adj_r2, rel=1e-12)
    assert table.loc["Quadratic", "pred_r2"] == pytest.approx(fm.pred_r2, rel=1e-10)
    assert table.loc["Cubic", "aliased"] and not table.loc["Quadratic", "aliased"]
    assert table["suggested"].sum() == 1 and table.loc["Quadratic", "suggested"]


def test_reduce_model_keeps_hierarchy(heli):
    fm, _, _, _, study, data = heli
    alpha = 0.1
    terms, steps = reduce_model(study, data, "ave", "quadratic", method="p", alpha=alpha)
    removed = [s["removed"] for s in steps]
    assert removed and all(s["p"] > alpha for s in steps)
    for t in terms:
        for f in t.factors:
            assert Term(((f, 1),)) in terms  # never a main effect dropped under a higher term
    final = fit_model(study, data, "ave", terms, anova_type=3)
    eligible = [t for t in terms if not any(_contains(u, t) for u in terms)]
    assert all(_row(final.anova, t.name)["p"] <= alpha for t in eligible)
    assert "L_body_length^2" in removed  # p = 0.79 in the full model
    a_terms, a_steps = reduce_model(study, data, "ave", "quadratic", method="aicc")
    values = [s["aicc"] for s in a_steps]
    assert values == sorted(values, reverse=True)


def test_reduce_refuses_saturated_model():
    data, _ = _case(PILOT)
    study = Study("pilot", [Factor(n, low=-1, high=1) for n in "TCK"], [Response("y")])
    with pytest.raises(ModelError, match="Lenth"):
        reduce_model(study, data, "y", "full")


def _msc_runs(study: Study, n: int = 40, seed: int = 1) -> pd.DataFrame:
    """A random 40-run design that estimates the 36-column quadratic (random settings, checked)."""
    rng = np.random.default_rng(seed)
    mm = ModelMatrix(study, parse_model(study, "quadratic"))
    while True:
        runs = pd.DataFrame({"Run": np.arange(1, n + 1)})
        for f in study.factors:
            runs[f.name] = (rng.choice(f.levels, n) if f.is_categorical
                            else rng.choice([f.low, f.center, f.high], n))
        X = mm.from_frame(runs)
        # Full rank even without any two runs (two CQAs below lose results).
        if all(np.linalg.matrix_rank(np.delete(X, [i, j], axis=0)) == X.shape[1]
               for i, j in [(0, 5)]):
            break
    for r in study.response_names:
        runs[r] = 60 + X @ rng.normal(0, 2, X.shape[1]) + rng.normal(0, 1, n)
    return runs


def test_analyze_all_cqas_and_json_strict():  # the speed of fitting them: bench/bench_models.py
    study = Study.load(EXAMPLE)
    runs = _msc_runs(study)
    runs.loc[[0, 5], "Potency"] = np.nan
    runs["EV yield"] = np.nan  # no results yet: not analysed
    fms = [fit_model(study, runs, r) for r in study.response_names[:-1]] + [
        fit_model(study, runs.assign(**{"EV yield": runs["Viability"]}), "EV yield")]
    assert all(fm.p == 36 and fm.n >= 38 for fm in fms)
    out = analyze(study, runs)
    text = json.dumps(out, allow_nan=False)
    assert set(out["responses"]) == set(study.response_names) - {"EV yield"}
    potency = out["responses"]["Potency"]
    assert {"run": 1, "reason": "no result"} in potency["excluded"]
    for key in ("terms", "coefficients", "equation_actual", "anova", "r2", "adj_r2", "pred_r2", "press",
                "rmse", "cv_percent", "adeq_precision", "lack_of_fit", "effects", "lenth",
                "stationary_point", "warnings", "transform", "n", "excluded", "fit_summary"):
        assert key in potency, key
    assert {"Model", "Residual", "Total"} <= {r["source"] for r in potency["anova"]}
    assert set(potency["coefficients"][0]) == {"term", "estimate", "std_error", "t", "p", "ci_low", "ci_high", "vif"}
    assert len(potency["equations_actual"]) == 27 and "Medium = FBS 10%" in potency["equation_actual"]
    assert "NaN" not in text


def test_analyze_reports_a_failing_cqa_without_hiding_the_others():
    study, runs = _unbalanced()
    study.responses.append(Response("Z"))
    runs["Z"] = 3.0
    out = analyze(study, runs, model="M + A", reduce=True)
    assert "constant response" in out["responses"]["Z"]["error"]
    assert out["responses"]["Y"]["r2"] > 0.5


def test_json_contains_the_published_numbers(chem_so):
    fm, exp, xmap, _, _ = chem_so
    out = json.loads(json.dumps(fm.to_json(), allow_nan=False))
    pub = exp["expected"]["second_order_blocked"]
    assert out["stationary_point"]["kind"] == "maximum"
    assert out["lack_of_fit"]["pure_error_df"] == 4
    coef = {c["term"]: c["estimate"] for c in out["coefficients"]}
    _check(coef[_rename("x1^2", xmap)], pub["coefficients"]["x1^2"], exp["tolerance"]["coefficients"])
    assert out["effects"] is None and out["lenth"] is None
    assert [r["source"] for r in out["anova"]][:2] == ["Block", "Model"]


def test_outside_range_and_two_level_detection():
    data, _ = _case(PILOT)
    study = Study("pilot", [Factor(n, low=-1, high=1) for n in "TCK"], [Response("y")])
    fm = fit_model(study, data, "y", "T + C + K + T:K")
    assert fm.df_resid == 3 and fm.lenth is not None and fm.effects is not None
    assert fm.stationary_point is None
    for a, b in itertools.combinations(["T", "C", "K"], 2):
        assert f"{a}:{b}" not in set(fm.effects["term"]) or f"{a}:{b}" == "T:K"


def test_vif_is_one_over_one_minus_r2():
    study, runs = _unbalanced()
    fm = fit_model(study, runs, "Y", "M + A + B + M:A + A^2")
    X = fm._ls.X
    for j, name in enumerate(fm.columns[1:], start=1):
        others = np.delete(X, j, axis=1)
        fitted = others @ np.linalg.lstsq(others, X[:, j], rcond=None)[0]
        r2 = 1 - np.sum((X[:, j] - fitted) ** 2) / np.sum((X[:, j] - X[:, j].mean()) ** 2)
        assert fm.coefficients.set_index("term").loc[name, "vif"] == pytest.approx(1 / (1 - r2), rel=1e-9)


def test_fit_summary_heli_suggests_quadratic(heli):
    fm, _, _, _, study, data = heli
    table = fit_summary(study, data, "ave").set_index("order")
    assert table.loc["Quadratic", "suggested"] and table["suggested"].sum() == 1
    assert table.loc["Quadratic", "lack_of_fit_p"] == pytest.approx(fm.lack_of_fit["p"], rel=1e-10)
    assert table.loc["Quadratic", "residual_df"] == fm.df_resid


def test_bad_settings_are_reported_with_their_row_and_ignored_in_unused_rows():
    study, runs = _unbalanced()
    runs = runs.astype({"A": object, "Y": object})
    runs.loc[3, ["A", "Y"]] = ["tbd", np.nan]  # a planned run without a result: ignored
    fm = fit_model(study, runs, "Y", "M + A")
    assert fm.n == len(runs) - 1
    runs.loc[6, "A"] = "high"
    with pytest.raises(ModelError, match="Row 7, column 'A': 'high' is not a number"):
        fit_model(study, runs, "Y", "M + A")
