"""A plotly chart updated in place in the browser, for the design-space map.

``st.plotly_chart`` builds a new chart whenever its figure changes, and the design-space map changes
with every move of the set point: that rebuild was most of a move's time in the browser. This
component keeps one chart per key and sends each trace as its own JSON text; the browser parses only
the traces whose text changed and redraws with ``Plotly.react`` (pages/_app/live_plot.js).

It draws with plotly.js's core plus heatmap and contour traces (pages/assets/plotly-map.min.js,
built by pages/assets/build_plotly_map.sh from the plotly.js version plotly.py bundles), which loads
in a fraction of the time of the full bundle. app.py serves it (pages/_app/plotly_asset.py); pages shown
before the design space call ``preload_live_charts`` so it is loaded while the user reads them.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages._app.plotly_asset import PLOTLY_ROUTE

#: The app's own font (Streamlit's theme), as st.plotly_chart would draw with.
APP_FONT = '"Source Sans", sans-serif'
#: The trace types the bundle draws; any other figure goes to st.plotly_chart.
TRACE_TYPES = frozenset({"heatmap", "contour", "scatter"})

_render = st.components.v2.component(
    "doe_live_plot", js=Path(__file__).with_suffix(".js").read_text(encoding="utf-8"), isolate_styles=False)


def _src() -> str:
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{PLOTLY_ROUTE}" if base else PLOTLY_ROUTE


def chart_data(fig) -> dict | None:
    """What the browser needs to draw ``fig``: each trace and the layout as JSON text (numpy arrays
    as plotly.py writes them), or None when a trace type is not in the bundle."""
    import plotly.io as pio

    spec = fig.to_plotly_json()
    if any(t.get("type", "scatter") not in TRACE_TYPES for t in spec["data"]):
        return None
    layout = spec.get("layout", {})
    layout.setdefault("font", {}).setdefault("family", APP_FONT)
    for name, axis in layout.items():  # the tick labels stay inside these charts: plotly need not
        if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):  # measure each one to hide overflow
            axis.setdefault("ticklabeloverflow", "allow")
    return {"src": _src(), "height": int(layout.get("height") or 450),
            "traces": [pio.to_json(t, validate=False) for t in spec["data"]],
            "layout": pio.to_json(layout, validate=False),
            "config": {"responsive": True, "displaylogo": False}}


def live_chart(fig, *, key: str) -> None:
    """Show ``fig`` as a chart that later reruns with the same ``key`` update in place."""
    data = chart_data(fig)
    if data is None:
        st.plotly_chart(fig, width="stretch", key=key)
    else:
        _render(key=key, data=data)


def preload_live_charts() -> None:
    """Load the chart code in the browser when it is idle (nothing is shown)."""
    _render(key="doe_live_plot_preload", data={"src": _src(), "preload": True, "font": APP_FONT}, height=0)
