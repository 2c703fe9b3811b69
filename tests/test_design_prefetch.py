"""The default design generated ahead of the press (pages/_app/designs.py, pages/_app/speed.py).

Pressing **Generate design** with a blank seed uses the seed the session drew when it offered the
form; the same seed always gives the same design, so a design generated in the background with that
seed is exactly what the press computes. These tests check that claim against doe.generators.generate
and that the page records and then renews the seed.
"""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

import doe.generators
import pages._app.designs as designs
import pages._app.services as services
import pages._app.speed as speed
from doe.generators import generate
from doe.study import Study
from tests.conftest import ROOT


def _example() -> Study:
    return Study.load(ROOT / "data" / "msc_expansion.yaml")


def test_the_background_design_is_the_one_the_press_computes(monkeypatch):
    study = _example()
    seed = 123456
    services.clear_designs()
    calls = []
    real = doe.generators.generate
    monkeypatch.setattr(doe.generators, "generate", lambda *a, **k: calls.append(k) or real(*a, **k))

    designs.default_design(study, seed)  # what the background thread runs
    assert len(calls) == 1
    options = {k: v for k, v in designs.FORM_DEFAULTS.items() if k != "kind"} | {"seed": seed}
    pressed = designs.generate_design(study, "optimal", options)  # what the press then asks for
    assert len(calls) == 1  # found ready: not generated again

    direct = generate(study, "optimal", seed=seed)  # the library, called directly with the same seed
    assert pressed.seed == direct.seed == seed
    assert pressed.to_csv() == direct.to_csv()
    assert pressed.n_runs == 40 and pressed.kind == "optimal"
    # the evaluation the page shows next is cached too, for the model the page evaluates by default
    assert designs.evaluation_model(pressed) == "quadratic"
    ev = designs.evaluation(study, pressed, "quadratic")
    assert ev.estimable
    # each caller gets its own copy: keeping or changing one never changes the cached design
    assert designs.generate_design(study, "optimal", options) is not pressed
    assert json.dumps(options, sort_keys=True)  # the options are a plain JSON cache key


def test_a_blank_seed_is_drawn_once_per_design_and_recorded():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.button(key="load_example").click().run()
    assert not at.exception, at.exception
    at.session_state["_next_seed"] = 777  # as prefetch_default_design draws it in a served session
    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    first = at.session_state["design"]
    assert first.seed == 777 and first.to_csv() == generate(_example(), "optimal", seed=777).to_csv()
    assert "_next_seed" not in at.session_state  # used: the next blank-seed press draws a new one
    at.button(key="generate").click().run()  # a second press: a new random seed, a new design
    second = at.session_state["design"]
    assert second.seed != first.seed


def test_no_background_design_outside_a_server():
    assert not speed._served()  # under pytest there is no Streamlit server: nothing runs in threads
