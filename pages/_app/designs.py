"""The Design page's computations, cached: a generated design and its evaluation.

Shared by the page and by pages/_app/speed.py, which generates the default design (and evaluates it) in
a background thread while a new user is still reading, so pressing **Generate design** finds it
ready. A blank seed means a random one, recorded with the design: the seed is drawn when the page
offers the form (:func:`next_seed`) rather than when the button is pressed, and the same seed always
gives the same design, so the result is exactly what the press would have computed.
"""

from __future__ import annotations

import streamlit as st

from doe.errors import DoeError
from doe.generators import ALPHAS, DESIGN_TYPES, TYPE_LABELS, TYPE_OPTIONS, ccd_axial_check, type_options
from pages._app import services
from pages._app.services import evaluation
from pages._app.state import DESIGN_ALPHA, DESIGN_BLOCKS, DESIGN_CENTER, state

__all__ = ["FORM_DEFAULTS", "default_design", "design_form", "evaluation", "evaluation_model", "generate_design",
           "next_seed", "used_seed"]

#: The Design form's defaults (the page's widgets start at these): a D-optimal design for the
#: quadratic model in the default number of runs.
FORM_DEFAULTS = dict(kind="optimal", model=None, runs=None, criterion="D", resolution=4, alpha=ALPHAS[0],
                     center=None, replicates=1, blocks=1)
_RESOLUTIONS = [3, 4, 5, 6]
_ALPHA_LABELS = {"rotatable": "rotatable", "orthogonal": "orthogonal",
                 "face": "face-centred (alpha = 1)", "inscribed": "inscribed (inside the ranges)"}


def design_form(study) -> tuple[str, dict, bool]:
    """The Design form: the type (outside the form, so the options shown follow it), for a CCD the
    axial distance and where its axial points fall, then a form with only the options that type takes
    (doe.generators.TYPE_OPTIONS). Returns the type, its options (blank seed: None) and whether
    **Generate design** was pressed."""
    c1, c2 = st.columns([2, 1])
    kind = c1.selectbox("Design type", DESIGN_TYPES, index=DESIGN_TYPES.index(FORM_DEFAULTS["kind"]),
                        format_func=TYPE_LABELS.get, key="design_kind")
    options: dict = {}
    if kind == "ccd":
        options["alpha"] = c2.selectbox("Axial distance (CCD)", ALPHAS, index=ALPHAS.index(FORM_DEFAULTS["alpha"]),
                                        key=DESIGN_ALPHA, format_func=_ALPHA_LABELS.get)
        _axial_check(study, options["alpha"])
    with st.form("design_form"):
        shown = [name for name in TYPE_OPTIONS[kind] if name != "alpha"] + ["seed"]
        cols = st.columns(3)
        for i, name in enumerate(shown):
            options[name] = _WIDGETS[name](cols[i % 3], kind)
        go = st.form_submit_button("Generate design", type="primary", key="generate")
    return kind, type_options(kind, options), go


def _axial_check(study, alpha: str) -> None:
    """Before generating: a CCD whose axial points leave the study ranges says so, offering the fixes."""
    try:
        check = ccd_axial_check(study, alpha, state.design_center or None, state.design_blocks)
    except DoeError as exc:
        st.warning(f"A central composite design cannot be made for this study: {exc}")
        return
    if not check.outside:
        return
    st.warning(check.message)
    c1, c2, _ = st.columns([1, 1, 2])
    c1.button("Use face-centred (alpha = 1)", key="ccd_face", on_click=_set_alpha, args=("face",))
    c2.button("Use inscribed", key="ccd_inscribed", on_click=_set_alpha, args=("inscribed",))


def _set_alpha(alpha: str) -> None:
    state.design_alpha = alpha


_WIDGETS = {
    "model": lambda col, kind: col.text_input(
        "Model (blank: the type's default)", "", key="design_model",
        help="linear, interactions, quadratic, full, or terms such as "
             "'Agitation + Medium + Agitation:Medium + Agitation^2'") or None,
    "runs": lambda col, kind: col.number_input(
        "Runs (0: the default)", min_value=0, value=0, step=1, key="design_runs",
        help="0 = default: model terms + 4 (optimal); 2 x factors + 2, at least 10 (Latin hypercube)") or None,
    "criterion": lambda col, kind: col.radio(
        "Optimality", ["D", "I"], horizontal=True, index=["D", "I"].index(FORM_DEFAULTS["criterion"]),
        key="design_criterion", help="D: precise coefficients (screening, factor effects). "
                                     "I: precise predictions (response surfaces, design space)."),
    "resolution": lambda col, kind: col.selectbox(
        "Resolution", _RESOLUTIONS, index=_RESOLUTIONS.index(FORM_DEFAULTS["resolution"]), key="design_resolution",
        help="III: main effects aliased with two-factor interactions; IV: two-factor interactions aliased "
             "with each other; V: none of these aliased"),
    "center": lambda col, kind: col.number_input(
        "Centre points", min_value=0, value=0, step=1, key=DESIGN_CENTER,
        help="0 = the type's default (CCD/BBD) or none") or None,
    "replicates": lambda col, kind: col.number_input(
        "Replicates (copies of the design)", min_value=1, value=1, step=1, key="design_replicates"),
    "blocks": lambda col, kind: col.number_input(
        "Blocks", min_value=1, value=1, step=1, key=DESIGN_BLOCKS,
        help="Runs in equal blocks (e.g. days, donors); a CCD takes 1 or 2 (factorial and axial portions)"),
    "seed": lambda col, kind: col.text_input("Seed (blank: random, recorded)", "", key="design_seed").strip() or None,
}


def next_seed() -> int:
    """The seed a blank seed field stands for in this session, until a design is generated with it."""
    from doe.generators import new_seed

    if state.next_seed is None:
        state.next_seed = new_seed()
    return state.next_seed


def used_seed() -> None:
    """A design was generated with :func:`next_seed`: the next blank-seed design gets a new one."""
    del state.next_seed


def generate_design(study, kind: str, options: dict):
    """The design of ``kind`` with ``options`` (as doe.generators.generate), computed once per study,
    type and the options that type takes (seed included); a copy, so the caller may keep it."""
    return services.generate_design(study, kind, type_options(kind, options))


def evaluation_model(design) -> str:
    """The model a design is evaluated for unless the user asks for another: its own, or its type's default."""
    from doe.generators import default_model

    return design.model or default_model(design.study, design.kind)


def default_design(study, seed: int):
    """Generate the form's default design with ``seed`` and evaluate it (what pressing Generate design
    with an unchanged form computes and then shows): for a background thread."""
    options = type_options(FORM_DEFAULTS["kind"], {k: v for k, v in FORM_DEFAULTS.items() if k != "kind"})
    options["seed"] = seed
    design = services.generated(study, FORM_DEFAULTS["kind"], options)
    evaluation(study, design, evaluation_model(design))
