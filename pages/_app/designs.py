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
from doe.generators import (
    ALPHAS,
    CLASSICAL_SPLIT_PLOT_NOTES,
    DESIGN_TYPES,
    TYPE_LABELS,
    TYPE_OPTIONS,
    ccd_axial_check,
    type_options,
)
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
        plots = _plot_options(study) if kind == "optimal" else _classical_options(study, kind)
        go = st.form_submit_button("Generate design", type="primary", key="generate")
    return kind, {**type_options(kind, options), **plots}, go


_PLOT_OPTIONS = ("whole_plots", "subplots", "donors", "variance_ratio")


def _classical_options(study, kind: str) -> dict:
    """The classical split-plot form of a fractional or full factorial or a CCD, for a study with hard-to-change
    factors; the number of whole plots of a fraction."""
    if not study.split_plot or kind not in CLASSICAL_SPLIT_PLOT_NOTES:
        return {}
    st.markdown(f"**Split plot** - hard to change: {', '.join(study.hard_to_change_factors)}. This type gives "
                f"{CLASSICAL_SPLIT_PLOT_NOTES[kind]}.")
    if kind != "fractional":
        return {}
    whole_plots = st.number_input(
        "Whole plots (0: every setting of the hard-to-change factors, up to 16)", min_value=0, value=0, step=1,
        key="design_whole_plots_fraction")
    return {"whole_plots": whole_plots} if whole_plots else {}


def _plot_options(study) -> dict:
    """Whole plots (hard-to-change factors), subplots (two tiers) and donor blocks of an optimal design, with
    the variance ratio the design is optimised for; only the ones the study calls for are offered."""
    if not (study.split_plot or study.random_effects):
        return {}
    st.markdown("**Restricted randomisation** " + (
        f"- hard to change: {', '.join(study.hard_to_change_factors)} (constant within each whole plot)"
        if study.split_plot else f"- random effect{'s' if len(study.random_effects) > 1 else ''}: "
        f"{', '.join(study.random_effects)}"))
    cols = st.columns(3)
    out: dict = {}
    if study.split_plot:
        out["whole_plots"] = cols[0].number_input(
            "Whole plots (0: the default)", min_value=0, value=0, step=1, key="design_whole_plots",
            help="How many times the hard-to-change factors are set (e.g. coated vessel batches). More whole "
                 "plots estimate the hard-to-change effects better; the default is the smallest number that "
                 "estimates them with a few df to spare.") or None
        if study.very_hard_to_change_factors:
            out["subplots"] = cols[1].number_input(
                "Subplots (split-split-plot; 0: the default)", min_value=0, value=0, step=1, key="design_subplots",
                help=f"How many times {', '.join(f for f in study.hard_to_change_factors if f not in study.very_hard_to_change_factors)} "
                     "are set, nested in the whole plots.") or None
    elif study.random_effects:
        out["donors"] = cols[0].number_input(
            f"{study.random_effects[0]}s (random blocks; 0: none)", min_value=0, value=0, step=1, key="design_donors",
            help=f"Runs in blocks of one {study.random_effects[0].lower()} each, every block a balanced subset "
                 "chosen for the model (D-optimal with random blocks, Goos & Vandebroek 2001).") or None
    if any(v for v in out.values()) or study.split_plot:
        out["variance_ratio"] = cols[2].number_input(
            "Variance ratio (whole plot / residual)" if study.split_plot else
            f"Variance ratio ({study.random_effects[0].lower()} / residual)", min_value=0.01, max_value=100.0,
            value=1.0, step=0.5,
            key="design_variance_ratio", help="The ratio of the whole-plot (or donor) variance to the run-to-run "
                                             "variance the design is optimised for; 1 is JMP's and "
                                             "Design-Expert's default.")
    return out


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
    plots = {k: v for k, v in options.items() if k in _PLOT_OPTIONS}
    return services.generate_design(study, kind, {**type_options(kind, options), **plots})


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
