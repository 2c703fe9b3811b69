"""The Design form and design generation/import (issue 14, part E).

- the form shows only the options of the chosen design type (the mapping lives in doe.generators);
- a failed generate shows the error and no warnings of the previous design;
- a CCD whose axial points leave the study ranges says so before generating and offers
  face-centred or inscribed;
- the default design type estimates the default model, for the example, a new study and mixed studies;
- a design import accepts headers with units, matched as the results upload matches them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from doe.constraints import Constraint
from doe.design import read_design
from doe.evaluate import evaluate_design
from doe.generators import (
    DESIGN_TYPES,
    TYPE_OPTIONS,
    ccd_axial_check,
    default_model,
    default_runs,
    generate,
    type_options,
)
from doe.model import parse_model
from doe.study import Factor, Response, Study
from doe.tables import blank_study
from pages._app.designs import FORM_DEFAULTS, evaluation_model
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
Y = [Response("Viability", units="%")]


def _example() -> Study:
    return Study.load(ROOT / "data" / "msc_expansion.yaml")


def _studies() -> dict[str, Study]:
    return {
        "example": _example(),
        "new study": blank_study(),
        "3-level categorical": Study("c", [Factor("Agitation", low=30, high=90, units="rpm"),
                                           Factor("Medium", "categorical", levels=["FBS", "hPL", "SFM"])], Y),
        "2-level discrete": Study("d", [Factor("Agitation", low=30, high=90, units="rpm"),
                                        Factor("Feeds", "discrete", levels=[1, 2])], Y),
        "mixed with a constraint": Study(
            "m", [Factor("Agitation", low=30, high=90, units="rpm"),
                  Factor("Seeding density", low=1000, high=5000, units="cells/cm2"),
                  Factor("Surface", "categorical", levels=["TC", "ULA"]),
                  Factor("Passage", "discrete", levels=[3, 5]),
                  Factor("Feeds", "discrete", levels=[1, 2, 3])], Y,
            constraints=[Constraint("Surface == 'ULA' and Agitation > 75")]),
    }


# -- 4. the default design estimates the default model ------------------------------------------
@pytest.mark.parametrize("name", list(_studies()))
def test_the_default_design_estimates_the_default_model(name):
    study = _studies()[name]
    options = type_options(FORM_DEFAULTS["kind"], {k: v for k, v in FORM_DEFAULTS.items() if k != "kind"})
    design = generate(study, FORM_DEFAULTS["kind"], seed=11, **options)
    ev = evaluate_design(study, design, parse_model(study, evaluation_model(design)))
    assert ev.estimable, (name, ev.rank, ev.p)
    assert ev.rank == ev.p


def test_the_default_model_leaves_out_squares_a_two_level_factor_cannot_have():
    study = _studies()["2-level discrete"]
    assert default_model(study) == "quadratic - Feeds^2"
    # intercept, Agitation, Feeds, Agitation:Feeds, Agitation^2: 5 columns, + 4 for error
    assert default_runs(study) == 9
    assert default_model(_example()) == "quadratic"  # no discrete factor: the plain preset
    assert default_model(study, "full") == "interactions"


# -- 1. the options each type takes --------------------------------------------------------------
def test_every_type_has_its_options_and_only_those():
    assert set(TYPE_OPTIONS) == set(DESIGN_TYPES)
    assert "alpha" in TYPE_OPTIONS["ccd"] and "alpha" not in TYPE_OPTIONS["optimal"]
    assert "criterion" in TYPE_OPTIONS["optimal"] and "criterion" not in TYPE_OPTIONS["ccd"]
    assert "resolution" in TYPE_OPTIONS["fractional"] and "resolution" not in TYPE_OPTIONS["full"]
    assert "runs" in TYPE_OPTIONS["lhs"] and "runs" not in TYPE_OPTIONS["bbd"]
    everything = dict(model=None, runs=12, criterion="I", resolution=3, alpha="face", center=2,
                      replicates=1, blocks=1, seed=5)
    assert type_options("ccd", everything) == dict(model=None, alpha="face", center=2, replicates=1,
                                                   blocks=1, seed=5)


@pytest.mark.parametrize("kind", DESIGN_TYPES)
def test_each_option_a_type_offers_changes_its_design(kind):
    study = Study("s", [Factor(n, low=0, high=1) for n in "ABCD"], Y)
    base = generate(study, kind, seed=3)
    changed = {"runs": 30, "criterion": "I", "resolution": 5, "alpha": "face", "center": 9,
               "replicates": 2, "blocks": 2, "model": "A + B + C + D + A:B"}
    for option in TYPE_OPTIONS[kind]:
        other = generate(study, kind, seed=3, **{option: changed[option]})
        assert (other.to_csv() != base.to_csv() or other.model != base.model), (kind, option)


# -- 3. the CCD axial check, before generating --------------------------------------------------
def test_a_rotatable_ccd_names_each_factor_and_its_axial_settings():
    study = blank_study()  # Agitation 30-90 rpm, Seeding density 1000-5000 cells/cm2
    check = ccd_axial_check(study, "rotatable")
    alpha = 4 ** 0.25  # 2^2 factorial: alpha = F^(1/4) = sqrt(2)  (Montgomery, DAE 8th ed., 11.4.2)
    assert check.alpha == pytest.approx(alpha)
    rows = {r["factor"]: r for r in check.outside}
    assert rows["Agitation"]["axial_low"] == pytest.approx(60 - 30 * math.sqrt(2))
    assert rows["Agitation"]["axial_high"] == pytest.approx(60 + 30 * math.sqrt(2))
    assert rows["Seeding density"]["axial_high"] == pytest.approx(3000 + 2000 * math.sqrt(2))
    assert "Agitation 17.57 and 102.4 rpm" in check.message
    assert "face-centred" in check.message and "inscribed" in check.message
    assert ccd_axial_check(study, "face").outside == []
    assert ccd_axial_check(study, "inscribed").outside == []
    # the design the check speaks for puts its axial points exactly there
    ccd = generate(study, "ccd", alpha="rotatable", seed=1)
    axial = ccd.table[ccd.table["PointType"] == "axial"]["Agitation"]
    assert axial.min() == pytest.approx(rows["Agitation"]["axial_low"])


# -- 5. a design import accepts headers with units -----------------------------------------------
def test_design_import_accepts_headers_with_units():
    study = blank_study()
    text = b"Run,agitation (rpm),Seeding density [cells/cm2]\n1,30,1000\n2,90,5000\n3,60,3000\n"
    design = read_design(study, text, "plan.csv")
    assert design.table["Agitation"].tolist() == [30, 90, 60]
    assert design.table["Seeding density"].tolist() == [1000, 5000, 3000]
    with pytest.raises(Exception, match="Agitation"):  # other units are not these factors' units
        read_design(study, b"Agitation (rps),Seeding density\n1,1000\n", "plan.csv")


# -- the page --------------------------------------------------------------------------------------
def _design_page(study_button: str = "load_example") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.button(key=study_button).click().run()
    at.switch_page("pages/design.py").run()
    assert not at.exception, at.exception
    return at


def _type_box(at: AppTest):
    return next(box for box in at.selectbox if box.label == "Design type")


def _labels(at: AppTest) -> set[str]:
    widgets = [*at.selectbox, *at.radio, *at.number_input, *at.text_input]
    return {w.label for w in widgets}


def test_the_form_shows_only_the_chosen_types_options():
    at = _design_page()
    labels = _labels(at)  # the default type: optimal
    assert any(label.startswith("Optimality") for label in labels)
    assert not any(label.startswith("Axial distance") for label in labels)
    assert not any(label.startswith("Resolution") for label in labels)
    _type_box(at).set_value("ccd").run()
    labels = _labels(at)
    assert any(label.startswith("Axial distance") for label in labels)
    assert not any(label.startswith("Optimality") for label in labels)
    assert not any(label.startswith("Runs") for label in labels)
    _type_box(at).set_value("fractional").run()
    labels = _labels(at)
    assert any(label.startswith("Resolution") for label in labels)
    assert not any(label.startswith("Axial distance") or label.startswith("Optimality") for label in labels)


def test_a_ccd_outside_the_ranges_says_so_before_generating_and_offers_face_or_inscribed():
    at = _design_page("new_study")
    _type_box(at).set_value("ccd").run()
    found = [w.value for w in at.warning if "axial points" in w.value]
    assert found and "Agitation 17.57 and 102.4 rpm" in found[0]
    at.button(key="ccd_face").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="design_alpha").value == "face"
    assert not [w for w in at.warning if "axial points" in w.value]
    at.button(key="generate").click().run()
    design = at.session_state["design"]
    assert design.kind == "ccd" and design.info["alpha"] == 1.0
    at.selectbox(key="design_alpha").set_value("rotatable").run()
    at.button(key="ccd_inscribed").click().run()
    assert at.selectbox(key="design_alpha").value == "inscribed"
    at.button(key="generate").click().run()
    table = at.session_state["design"].table
    assert table["Agitation"].min() == pytest.approx(30) and table["Agitation"].max() == pytest.approx(90)


def test_a_failed_generate_shows_the_error_and_no_stale_warnings():
    at = _design_page()
    _type_box(at).set_value("ccd")
    at.button(key="generate").click().run()  # the example's CCD: crossed with 27 categorical combinations
    assert not at.exception, at.exception
    assert any("repeated at all 27" in w.value for w in at.warning)
    _type_box(at).set_value("bbd")  # 2 continuous factors: no Box-Behnken
    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    assert any("Box-Behnken" in e.value for e in at.error)
    assert not any("repeated at all 27" in w.value for w in at.warning), [w.value for w in at.warning]


def test_the_cli_evaluates_an_imported_design_for_the_default_model_it_can_estimate(tmp_path):
    """`python -m doe evaluate` (what the page shows, headless): an imported run sheet with unit headers,
    for a study with a two-level discrete factor, is evaluated for the same default model as the page."""
    study = _studies()["2-level discrete"]
    (tmp_path / "study.yaml").write_text(study.to_yaml(), encoding="utf-8")
    rows = [(30, 1), (90, 1), (30, 2), (90, 2), (60, 1), (60, 2), (30, 1), (90, 2), (60, 1)]
    (tmp_path / "plan.csv").write_text("Agitation (rpm),Feeds\n" + "".join(f"{a},{f}\n" for a, f in rows),
                                       encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "doe", "evaluate", "study.yaml", "plan.csv", "--json", "ev.json"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))
    # intercept, Agitation, Feeds, Agitation:Feeds, Agitation^2: estimable from these 9 runs
    assert ev["estimable"] is True and ev["rank"] == ev["p"] == 5
