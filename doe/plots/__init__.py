"""Figures only: pure functions that take the engine's result objects and return plotly figures.

- :mod:`doe.plots.theme`: the house template and colour-blind-safe palette every figure uses.
- :mod:`doe.plots.design`: a design and its evaluation (correlation map, FDS, power, VIF, design matrix).
- :mod:`doe.plots.model`: fitted models (effects, residuals, Box-Cox, contours and surfaces).
- :mod:`doe.plots.space`: the design space (probability maps, overlays, PAR charts) and figure export.
- :mod:`doe.plots.scale`: the seed-train plan.

A figure draws what its result object holds; it never recomputes statistics.
"""
