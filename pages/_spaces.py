"""The Design space page's computations at a set point, cached: the map, the PARs and the report.

Shared by the page and by pages/_speed.py, which computes the page's first view (the map of the first
two numeric factors through the robust set point, at the default threshold) in the background once
the fits are ready, so opening the page finds it drawn. Arguments are JSON strings, so the background
and the page ask for the same cache entries.
"""

from __future__ import annotations

import copy
import json

import streamlit as st

from doe.decision import DEFAULT_THRESHOLD  # the page's first view: this threshold, no set-point variation


def as_json(value) -> str:
    """The cache-key form of a set point, its fixed part or its SDs."""
    return json.dumps(value, sort_keys=True)


@st.cache_resource(max_entries=64, show_spinner=False)
def grid(_pm, key: str, x: str, y: str, fixed_json: str, threshold: float, sd_json: str, interval_json: str,
         assurance_json: str = "null"):
    """The map of ``x`` by ``y`` with the other factors fixed (doe.space.space_grid); ``assurance_json``:
    null, or {"level": gamma, "kind": "simultaneous" | "pointwise"}."""
    from doe.space import space_grid

    assure = json.loads(assurance_json) or {}
    return space_grid(_pm, x, y, json.loads(fixed_json), threshold=threshold,
                      setpoint_sd=json.loads(sd_json) or None, interval=json.loads(interval_json),
                      assurance=assure.get("level"), assurance_kind=assure.get("kind", "simultaneous"))


@st.cache_resource(max_entries=64, show_spinner=False)
def par_at(_pm, key: str, sp_json: str, threshold: float, sd_json: str, level: float | None = None):
    """Proven acceptable ranges at a set point (its box is drawn on the map); ``level``: the pointwise
    credible level of an assured design space (SpaceGrid.assurance_level), or None."""
    from doe.space import proven_acceptable_ranges

    return proven_acceptable_ranges(_pm, json.loads(sp_json), threshold=threshold,
                                    setpoint_sd=json.loads(sd_json) or None, assurance=level)


@st.cache_resource(max_entries=64, show_spinner=False)
def report_at(_pm, key: str, sp_json: str, threshold: float, sd_json: str, nor_json: str,
              level: float | None = None):
    """The set point's predictions and probabilities, and the NOR check (None without a NOR);
    ``level`` as :func:`par_at`."""
    from doe.space import check_nor, set_point_report

    sp, sd, nor = json.loads(sp_json), json.loads(sd_json) or None, json.loads(nor_json)
    nor_check = check_nor(_pm, sp, nor, threshold=threshold, setpoint_sd=sd, assurance=level) if nor else None
    return set_point_report(_pm, sp, threshold=threshold, setpoint_sd=sd, assurance=level), nor_check


@st.cache_resource(max_entries=64, show_spinner=False)
def bound_at(_pm, key: str, sp_json: str, gamma: float) -> float:
    """The lower ``gamma`` credible bound of P(all in spec | parameters) at a set point."""
    from doe.space import lower_bound_at

    return lower_bound_at(_pm, json.loads(sp_json), gamma)


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


@st.cache_resource(max_entries=16, show_spinner=False)
def opening(_pm, key: str, threshold: float):
    """The informative first view (doe.space_view.opening_view) from the cached robust set point."""
    from doe.space_view import opening_view
    from pages._common import robust

    return opening_view(_pm, threshold=threshold, robust=robust(_pm, key, threshold))


@st.cache_resource(max_entries=64, show_spinner=False)
def par_ends(_pm, key: str, sp_json: str, threshold: float, sd_json: str):
    """Which CQA ends each PAR (doe.space_view.par_limits) at a set point."""
    from doe.space_view import par_limits

    par = par_at(_pm, key, sp_json, threshold, sd_json)
    return par_limits(_pm, par, threshold=threshold, setpoint_sd=json.loads(sd_json) or None)


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
    variation (doe.space_view.saved_view), else the opening view (the robust set point, the
    informative slice). Call before the widgets exist; what was done is shown by :func:`opened_note`."""
    from doe.space_view import describe_setpoint_sd, saved_view, view_axes
    from pages._common import robust
    from pages._persist import latest

    if st.session_state.get("_space_opened") == study.name and f"sp_{study.factors[0].name}" in st.session_state:
        return
    st.session_state["_space_opened"] = study.name
    with st.spinner("Finding the robust set point..."):
        st.session_state["robust_result"] = copy.deepcopy(robust(pm, key, DEFAULT_THRESHOLD))  # shared: copied
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
        set_point = view.set_point if view is not None else st.session_state["robust_result"]["settings"]
        axes = (view.x, view.y) if view is not None else None
        if view is not None:
            notes.insert(0, f"Opened at {view.reason}.")
    st.session_state["space_threshold"] = threshold
    for f in numeric:
        st.session_state[f"sd_{f}"] = float(sd.get(f, 0.0))
    if axes is not None:
        st.session_state["space_x"], st.session_state["space_y"] = axes
    st.session_state["_apply_set_point"] = dict(set_point)
    st.session_state["_space_opened_note"] = notes


def opened_note() -> None:
    """Say once how the page was opened (saved decision, or the opening view), and what of a saved
    decision could not be restored."""
    notes = st.session_state.pop("_space_opened_note", [])
    for i, note in enumerate(notes):
        (st.caption if i == 0 and not note.startswith("Decision") else st.warning)(note)
