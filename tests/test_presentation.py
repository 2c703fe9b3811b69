"""Tables a reviewer can read (issue 14): one presentation layer for pages, report and CLI.

Human column labels, blank cells for missing values, p-values as ``< 0.0001`` or 4 significant
digits, and row labels on every comparison table. p-values are checked against an independent
statsmodels fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from streamlit.testing.v1 import AppTest

from doe.fit import fit_model
from doe.present import format_p, present
from doe.study import Factor, Response, Study
from doe.versions import compare_analyses, comparison_frame, significance_frame, stats_frame
from tests.conftest import ROOT

RAW = {"sum_sq", "mean_sq", "ci_low", "ci_high", "df", "PR(>F)", "std_error", "old_p", "new_p", "in_old",
       "response", "statistic", "cooks_d", "int_studentized"}


def _cells(frame: pd.DataFrame) -> set[str]:
    return {str(v) for v in frame.to_numpy().ravel()}


def _example():
    rng = np.random.default_rng(5)
    a = np.tile([-1.0, 0.0, 1.0], 4)
    b = np.repeat([-1.0, -0.3, 0.3, 1.0], 3)
    y = 50 + 8 * a + 0.3 * b + rng.normal(0, 1, 12)
    study = Study("p", [Factor("A", low=-1, high=1, units="h"), Factor("B", low=-1, high=1, units="h")],
                  [Response("Y", units="%")])
    return study, pd.DataFrame({"A": a, "B": b, "Y": y})


def test_format_p():
    assert format_p(3.2e-9) == "< 0.0001" and format_p(0.0001) == "0.0001"
    assert format_p(0.04567891) == "0.04568" and format_p(None) == "" and format_p(float("nan")) == ""


def test_anova_and_coefficients_have_labels_blanks_and_one_p_format():
    study, runs = _example()
    fm = fit_model(study, runs, "Y", "A + B")
    ols = smf.ols("Y ~ A + B", data=runs).fit()  # independent p-values
    coefs = present(fm.coefficients)
    assert list(coefs.columns[:1]) == ["Term"] and {"95 % CI low", "95 % CI high", "p-value",
                                                     "Standard error"} <= set(coefs.columns)
    by_term = coefs.set_index("Term")
    assert by_term.loc["A", "p-value"] == "< 0.0001"  # an 8-unit effect against noise of 1
    assert by_term.loc["B", "p-value"] == f"{ols.pvalues['B']:.4g}"
    anova = present(fm.anova)
    assert {"Source", "Degrees of freedom", "Sum of squares", "Mean square", "F value",
            "p-value"} == set(anova.columns)
    total = anova.set_index("Source").loc["Total"]
    assert total["F value"] == "" and total["p-value"] == "" and total["Mean square"] == ""
    for table in (coefs, anova, present(fm.diagnostics)):
        assert not RAW & set(table.columns)
        assert not {"None", "nan", "NaN", "<NA>"} & _cells(table)


def _summary(r2, p):
    return {"responses": {"Viability": {"model": "A", "transform": "none", "n": 10, "r2": r2, "adj_r2": None,
                                        "pred_r2": 0.5, "rmse": 1.0,
                                        "coefficients": [{"term": "A", "estimate": 1.0, "std_error": 0.1,
                                                          "ci_low": 0.8, "ci_high": 1.2, "p": p}]}}}


def test_version_comparison_tables_label_every_row():
    comp = compare_analyses(_summary(0.8, 0.2), _summary(0.9, 1e-6))
    stats = present(stats_frame(comp))
    assert list(stats.columns[:2]) == ["CQA", "Statistic"]
    assert stats["Statistic"].tolist() == ["R²", "Adjusted R²", "Predicted R²", "RMSE"]
    adj = stats.set_index("Statistic").loc["Adjusted R²"]
    assert adj["Before"] == "" and adj["Change (after - before)"] == ""
    coefs = present(comparison_frame(comp))
    assert list(coefs.columns[:2]) == ["CQA", "Term"] and coefs.loc[0, "p-value after"] == "< 0.0001"
    sig = present(significance_frame(comp))
    assert sig.loc[0, "Term"] == "A" and sig.loc[0, "p-value before"] == "0.2"
    for table in (stats, coefs, sig):
        assert not RAW & set(table.columns) and "None" not in _cells(table)


def test_row_labels_kept_from_the_index():
    frame = pd.DataFrame({"version 1": [0.5, None]},
                         index=pd.Index(["Share of the map inside", "P at the set point"], name="quantity"))
    shown = present(frame)
    assert shown.columns.tolist() == ["Quantity", "Version 1"]  # headings in sentence case
    assert shown["Quantity"].tolist() == ["Share of the map inside", "P at the set point"]
    assert shown["Version 1"].tolist() == ["0.5", ""]


def test_report_tables_use_the_same_labels():
    from doe.report.content import _formatted

    study, runs = _example()
    fm = fit_model(study, runs, "Y", "A + B")
    assert _formatted(fm.anova).equals(present(fm.anova))


def test_models_page_shows_labelled_tables():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.switch_page("pages/models.py").run()
    assert not at.exception, at.exception
    anova = at.dataframe[0].value
    assert {"Source", "Sum of squares", "p-value"} <= set(anova.columns)
    assert not RAW & set(anova.columns) and "None" not in _cells(anova)
    p = [v for v in anova["p-value"] if v]
    assert p and all(v == "< 0.0001" or float(v) >= 1e-4 for v in p)
    at.session_state["model_tab"] = "Box-Cox"
    at.run()
    assert not at.exception, at.exception
    assert any(m.value.startswith(("No transform recommended", "Recommended transform")) for m in at.markdown)


def test_versions_page_tables_are_labelled():
    from doe.store import Store, default_url

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    at.switch_page("pages/models.py").run()
    at.button(key="save_analysis").click().run()
    store = Store.open(default_url())
    runs = store.runs("MSC expansion")
    store.append_runs("MSC expansion", runs.iloc[[0]].assign(Viability=runs["Viability"].iloc[0] - 5),
                      "lab-robot", reason="re-measured")
    at.switch_page("pages/versions.py").run()
    at.button(key="rerun").click().run()
    assert not at.exception, at.exception
    tables = [df.value for df in at.dataframe]
    for table in tables:
        assert not RAW & set(table.columns), table.columns.tolist()
        assert not {"None", "nan"} & _cells(table)
    stats = next(t for t in tables if "Statistic" in t.columns)
    assert stats.columns.tolist() == ["CQA", "Statistic", "Before", "After", "Change (after - before)"]
    assert set(stats["Statistic"]) == {"R²", "Adjusted R²", "Predicted R²", "RMSE"}
    at.session_state["versions_tab"] = "Coefficients"
    at.run()
    coefs = next(df.value for df in at.dataframe if "Term" in df.value.columns)
    assert coefs.columns.tolist()[:2] == ["CQA", "Term"] and coefs["Term"].str.len().min() > 0


def test_power_table_labelled_with_blanks():
    import itertools

    from doe.evaluate import evaluate_design

    study = Study("w", [Factor(n, low=0, high=1) for n in "AB"], [Response("Y")])
    U = np.array(list(itertools.product([-1.0, 1.0], repeat=2)) * 2)
    shown = present(evaluate_design(study, U, "quadratic").power)
    assert shown.columns.tolist() == ["Term", "Model columns", "Degrees of freedom", "Power", "Noncentrality",
                                      "Reason"]
    square = shown.set_index("Term").loc["A^2"]
    assert square["Power"] == "" and square["Reason"] == "not estimable"
    # 2^2 twice: 8 runs, 4 estimable columns, 4 error df; a 1-sigma effect has lambda = N * snr^2 = 8
    from scipy import stats

    crit = stats.f.ppf(0.95, 1, 8 - 4)
    assert shown.set_index("Term").loc["A", "Power"] == f"{stats.ncf.sf(crit, 1, 4, 8.0):.4g}"


def test_stored_times_are_shown_without_decoding():
    """The stores' UTC times (ISO 8601 with microseconds and Z) are shown as date and time to the second."""
    from doe.present import present

    shown = present(pd.DataFrame({"version": [1], "created_at": ["2026-11-28T15:10:00.123456Z"]}))
    assert shown.columns.tolist() == ["Version", "Created at (UTC)"]
    assert shown.iloc[0].tolist() == ["1", "2026-11-28 15:10:00"]


def test_plain_names_become_headings_in_sentence_case():
    """A column without a listed label ('set point', 'runs') is shown as a heading ('Set point', 'Runs');
    listed labels keep their own case (p-value, t value)."""
    from doe.present import present

    shown = present(pd.DataFrame({"set point": [48.0], "runs": [40], "p": [0.5], "t": [1.0]}))
    assert shown.columns.tolist() == ["Set point", "Runs", "p-value", "t value"]
