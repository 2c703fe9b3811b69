"""The Design space page's computations at a set point, cached: the map, the PARs and the report.

Shared by the page and by pages/_speed.py, which computes the page's first view (the map of the first
two numeric factors through the robust set point, at the default threshold) in the background once
the fits are ready, so opening the page finds it drawn. Arguments are JSON strings, so the background
and the page ask for the same cache entries.
"""

from __future__ import annotations

import json

import streamlit as st

#: The page's first view: probability threshold, no set-point variation, no interval.
DEFAULT_THRESHOLD = 0.9


def as_json(value) -> str:
    """The cache-key form of a set point, its fixed part or its SDs."""
    return json.dumps(value, sort_keys=True)


@st.cache_resource(max_entries=64, show_spinner=False)
def grid(_pm, key: str, x: str, y: str, fixed_json: str, threshold: float, sd_json: str, interval_json: str):
    """The map of ``x`` by ``y`` with the other factors fixed (doe.space.space_grid)."""
    from doe.space import space_grid

    return space_grid(_pm, x, y, json.loads(fixed_json), threshold=threshold,
                      setpoint_sd=json.loads(sd_json) or None, interval=json.loads(interval_json))


@st.cache_resource(max_entries=64, show_spinner=False)
def par_at(_pm, key: str, sp_json: str, threshold: float, sd_json: str):
    """Proven acceptable ranges at a set point (its box is drawn on the map)."""
    from doe.space import proven_acceptable_ranges

    return proven_acceptable_ranges(_pm, json.loads(sp_json), threshold=threshold,
                                    setpoint_sd=json.loads(sd_json) or None)


@st.cache_resource(max_entries=64, show_spinner=False)
def report_at(_pm, key: str, sp_json: str, threshold: float, sd_json: str, nor_json: str):
    """The set point's predictions and probabilities, and the NOR check (None without a NOR)."""
    from doe.space import check_nor, set_point_report

    sp, sd, nor = json.loads(sp_json), json.loads(sd_json) or None, json.loads(nor_json)
    nor_check = check_nor(_pm, sp, nor, threshold=threshold, setpoint_sd=sd) if nor else None
    return set_point_report(_pm, sp, threshold=threshold, setpoint_sd=sd), nor_check


def first_view(study, pm, key: str, settings: dict) -> None:
    """Compute what the page shows when first opened at the robust set point ``settings``."""
    numeric = [f.name for f in study.factors if not f.is_categorical]
    if len(numeric) < 2:
        return
    set_point = {f.name: settings[f.name] if f.is_categorical else float(settings[f.name]) for f in study.factors}
    x, y = numeric[:2]
    fixed = {k: v for k, v in set_point.items() if k not in (x, y)}
    sp_json, none = as_json(set_point), as_json({})
    grid(pm, key, x, y, as_json(fixed), DEFAULT_THRESHOLD, none, json.dumps(None))
    par_at(pm, key, sp_json, DEFAULT_THRESHOLD, none)
    report_at(pm, key, sp_json, DEFAULT_THRESHOLD, none, none)
