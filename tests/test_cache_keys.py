"""Every page cache is keyed on the content it depends on: after the study changes (a factor removed,
the same runs), the Models page's fit summary is that of the changed study, not the one made before."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from doe.study import Study
from tests.conftest import ROOT, app_with_example_results

APP = str(ROOT / "app.py")
NAME = "MSC expansion"
CQA = "Viability"


def _summary_shown(at: AppTest) -> pd.DataFrame:
    at.session_state["model_tab"] = "Fit summary"
    at.switch_page("pages/models.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="cqa").set_value(CQA).run()
    assert not at.exception, at.exception
    return at.dataframe[-1].value


def test_fit_summary_follows_a_study_change_with_the_same_runs():
    at = app_with_example_results(300)
    before = _summary_shown(at)

    full = at.session_state["study"]
    fewer = Study.from_dict({**full.to_dict(), "factors": [f.to_yaml() for f in full.factors
                                                           if f.name != "Harvest reagent"]})
    at.session_state["study"] = fewer  # as applied on the Study page; the stored runs stay the same
    after = _summary_shown(at)

    # Linear vs Mean: residual df = runs - intercept - one coefficient per continuous factor and
    # (levels - 1) per categorical factor; 40 runs of the example
    df_linear = 40 - 1 - sum(len(f.levels) - 1 if f.is_categorical else 1 for f in fewer.factors)
    assert df_linear == 33
    column = next(c for c in after.columns if str(c).lower().startswith("residual"))
    assert [int(v) for v in after[column]][1] == df_linear, after
    assert [int(v) for v in before[column]][1] == df_linear - 2  # Harvest reagent: 3 levels, 2 df


def test_the_apps_analysis_has_the_engines_digest():
    """The pages' cached analysis (pages/_app/services.analysis) and doe.analysis.fit_all give the same
    content the same digest, and the same fits: one formula, doe.analysis.analysis_digest."""
    from doe.analysis import default_choice, fit_all
    from doe.runs import read_results
    from pages._app import services

    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    engine = fit_all(study, runs, default=default_choice())
    app = services.analysis(study, runs, {}, list(engine))
    assert app.digest == engine.digest
    assert sorted(app.models) == sorted(engine.models)
    for name, fm in engine.models.items():
        assert app.models[name].coefficients.equals(fm.coefficients), name
