"""The Design page's computations, cached: a generated design and its evaluation.

Shared by the page and by pages/_speed.py, which generates the default design (and evaluates it) in
a background thread while a new user is still reading, so pressing **Generate design** finds it
ready. A blank seed means a random one, recorded with the design: the seed is drawn when the page
offers the form (:func:`next_seed`) rather than when the button is pressed, and the same seed always
gives the same design, so the result is exactly what the press would have computed.
"""

from __future__ import annotations

import copy
import json

import streamlit as st

from doe.generators import ALPHAS

#: The Design form's defaults (the page's widgets start at these): a D-optimal design for the
#: quadratic model in the default number of runs.
FORM_DEFAULTS = dict(kind="optimal", model=None, runs=None, criterion="D", resolution=4, alpha=ALPHAS[0],
                     center=None, replicates=1, blocks=1)


def next_seed() -> int:
    """The seed a blank seed field stands for in this session, until a design is generated with it."""
    from doe.generators import new_seed

    return st.session_state.setdefault("_next_seed", new_seed())


def used_seed() -> None:
    """A design was generated with :func:`next_seed`: the next blank-seed design gets a new one."""
    st.session_state.pop("_next_seed", None)


def generate_design(study_yaml: str, kind: str, options: dict):
    """The design of ``kind`` with ``options`` (as doe.generators.generate), computed once per study,
    type and options (seed included); a copy, so the caller may keep it."""
    return copy.deepcopy(_generated(study_yaml, kind, json.dumps(options, sort_keys=True, default=str)))


@st.cache_resource(max_entries=8, show_spinner=False)
def _generated(study_yaml: str, kind: str, options_json: str):
    from doe.generators import generate
    from doe.study import Study

    return generate(Study.from_yaml(study_yaml), kind, **json.loads(options_json))


@st.cache_resource(max_entries=32, show_spinner=False)
def evaluation(study_yaml: str, design_csv: str, model: str):
    """Evaluation (doe.evaluate.evaluate_design), computed once per design and model."""
    from doe.design import read_design
    from doe.evaluate import evaluate_design  # scipy: loaded once a design is there to evaluate
    from doe.model import parse_model
    from doe.study import Study

    study = Study.from_yaml(study_yaml)
    design = read_design(study, design_csv.encode(), "design.csv")
    return evaluate_design(study, design, parse_model(study, model))


def evaluation_model(design) -> str:
    """The model a design is evaluated for unless the user asks for another: its own, or its type's default."""
    from doe.generators import DEFAULT_MODEL

    return design.model or DEFAULT_MODEL.get(design.kind, "quadratic")


def default_design(study_yaml: str, seed: int):
    """Generate the form's default design with ``seed`` and evaluate it (what pressing Generate design
    with an unchanged form computes and then shows): for a background thread."""
    options = {k: v for k, v in FORM_DEFAULTS.items() if k != "kind"} | {"seed": seed}
    design = _generated(study_yaml, FORM_DEFAULTS["kind"], json.dumps(options, sort_keys=True, default=str))
    evaluation(study_yaml, design.to_csv(with_responses=False), evaluation_model(design))
