"""The Design space page's parts: the numbers under the map, the assurance controls, and the view the
page opens with (its computations are cached in pages/_app/services.py).

:func:`first_view` is shared by the page and by pages/_app/speed.py, which computes the page's first view
(the map of the first two numeric factors through the robust set point, at the default threshold) in
the background once the fits are ready, so opening the page finds it drawn. Arguments are JSON
strings, so the background and the page ask for the same cache entries.
"""

from __future__ import annotations

import copy
import json

import streamlit as st

from doe.decision import DEFAULT_THRESHOLD  # the page's first view: this threshold, no set-point variation
from pages._app.services import as_json, grid, opening, par_at, report_at, robust
from pages._app.state import state

__all__ = ["ASSURANCE_LEVELS", "DEFAULT_THRESHOLD", "assurance_controls", "first_view", "metrics", "open_view",
           "opened_note"]


def metrics(report: dict, g, assure: dict | None, bound: float | None) -> None:
    """The four numbers under the map: probability at the set point, inside, share of the map, and the
    posterior draws (or, with assurance, the lower credible bound at the set point)."""
    m = st.columns(4)
    m[0].metric("P(all CQAs in spec) at the set point", f"{report['probability']:.3f}",
                help=f"Monte Carlo SE {report['mc_se']:.3f}")
    m[1].metric("In the design space", "yes" if report["inside"] else "no")
    m[2].metric("Share of this map inside", f"{100 * g.fraction_inside:.0f} %")
    if assure:
        m[3].metric(f"Lower {100 * assure['level']:g} % bound of P", f"{bound:.3f}",
                    help=f"At the set point: the lower {100 * assure['level']:g} % credible bound of P(all CQAs in "
                         f"spec) over {g.assurance_draws:,} posterior draws of the model parameters; the region "
                         f"uses the pointwise level {g.assurance_level:.3f}.")
    else:
        m[3].metric("Posterior draws", f"{g.draws:,}")


#: Assurance levels offered (the default first).
ASSURANCE_LEVELS = (0.95, 0.9, 0.99, 0.8)


def assurance_controls(sd: dict) -> dict | None:
    """The sidebar's assurance choice: None (the point estimate), or {"level", "kind"}."""
    with st.expander("Assurance (a design space with stated confidence)"):
        st.caption("The probability map is a point estimate. With assurance the design space is where, with "
                   "posterior probability at least the level, a new run's probability of meeting every spec "
                   "reaches the threshold.")
        on = st.checkbox("Design space with assurance", key="use_assurance", disabled=bool(sd),
                         help="Not with set-point variation: the assured space is for settings held exactly.")
        level = st.selectbox("Assurance level", ASSURANCE_LEVELS, format_func=lambda v: f"{100 * v:g} %",
                             key="assurance_level", disabled=not on or bool(sd))
        kind = st.radio("Holds", ("simultaneous", "pointwise"), key="assurance_kind", disabled=not on or bool(sd),
                        format_func={"simultaneous": "for the whole region at once",
                                     "pointwise": "at each point separately"}.get,
                        help="Whole region: with that probability every point of the outlined region meets the "
                             "threshold together (more conservative). Each point: the lower credible bound "
                             "point by point.")
        if sd:
            st.caption("Remove the set-point variation to use assurance.")
    return {"level": float(level), "kind": kind} if on and not sd else None


def first_view(study, pm, key: str, settings: dict | None = None) -> None:
    """Compute what the page shows when first opened (its opening view, see :func:`open_view`);
    ``settings`` (the robust set point) is used when the study has no categorical factors to choose."""
    view = opening(pm, key, DEFAULT_THRESHOLD)
    if view is None:
        return
    point = view.set_point if view.set_point else settings
    set_point = {f.name: point[f.name] if f.is_categorical else float(point[f.name]) for f in study.factors}
    fixed = {k: v for k, v in set_point.items() if k not in (view.x, view.y)}
    sp_json, none = as_json(set_point), as_json({})
    grid(pm, key, view.x, view.y, as_json(fixed), DEFAULT_THRESHOLD, none, json.dumps(None))
    par_at(pm, key, sp_json, DEFAULT_THRESHOLD, none)
    report_at(pm, key, sp_json, DEFAULT_THRESHOLD, none, none)


def open_view(study, pm, key: str) -> None:
    """When the study is opened (a new session, or another study than the page last showed), set the
    page's widgets: the latest saved design-space decision's set point, threshold and set-point
    variation (doe.space.saved_view), else the opening view (the robust set point, the
    informative slice). Call before the widgets exist; what was done is shown by :func:`opened_note`."""
    from doe.space import describe_setpoint_sd, saved_view, view_axes
    from pages._app.persist import latest

    if state.space_opened == study.name and state.has_set_point(study.factors[0].name):
        return
    state.space_opened = study.name
    with st.spinner("Finding the robust set point..."):
        state.robust_result = copy.deepcopy(robust(pm, key, DEFAULT_THRESHOLD))  # shared: copied
    numeric = [f.name for f in study.factors if not f.is_categorical]
    decision = latest("decisions", study.name)
    saved = saved_view(study, decision.to_dict()) if decision is not None else None
    notes = [f"Decision {saved.decision_id} cannot be restored: " + "; ".join(saved.problems) + "."] \
        if saved is not None and saved.problems else []
    if saved is not None and saved.set_point is not None:
        threshold = min(max(saved.threshold, 0.5), 0.99)  # the slider's range
        if threshold != saved.threshold:
            notes.append(f"Decision {saved.decision_id}'s threshold {saved.threshold:g} is outside the page's "
                         f"0.5 to 0.99: shown at {threshold:g}.")
        set_point, sd = saved.set_point, saved.setpoint_sd
        axes = view_axes(pm, set_point, threshold=threshold, setpoint_sd=sd or None)
        notes.insert(0, f"Opened at the saved decision {saved.decision_id}: its set point, threshold "
                        f"{threshold:g} and set-point variation {describe_setpoint_sd(study, sd)}.")
    else:
        view = opening(pm, key, DEFAULT_THRESHOLD)
        threshold, sd = DEFAULT_THRESHOLD, {}
        set_point = view.set_point if view is not None else state.robust_result["settings"]
        axes = (view.x, view.y) if view is not None else None
        if view is not None:
            notes.insert(0, f"Opened at {view.reason}.")
    state.space_threshold = threshold
    for f in numeric:
        state.set_setpoint_sd(f, float(sd.get(f, 0.0)))
    if axes is not None:
        state.space_x, state.space_y = axes
    state.apply_set_point = dict(set_point)
    state.space_opened_note = notes


def opened_note() -> None:
    """Say once how the page was opened (saved decision, or the opening view), and what of a saved
    decision could not be restored."""
    notes = state.take("space_opened_note") or []
    for i, note in enumerate(notes):
        (st.caption if i == 0 and not note.startswith("Decision") else st.warning)(note)
