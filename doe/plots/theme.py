"""The house style of every figure: a white plotly template with readable fonts and the Okabe-Ito colours.

One home for the look, so that screens, the report and exported files match.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["PALETTE", "TEMPLATE"]

#: Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: House template: white background, font size 14, light grid, Okabe-Ito colours.
TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
TEMPLATE.layout.update(
    font={"size": 14, "family": "Arial, Helvetica, sans-serif", "color": "#222222"},
    title={"font": {"size": 17}, "x": 0.0, "xanchor": "left"},
    paper_bgcolor="white",
    plot_bgcolor="white",
    colorway=PALETTE,
    margin={"l": 80, "r": 40, "t": 80, "b": 70},
    hoverlabel={"font": {"size": 13}},
)
