"""Linear mixed models with independent random intercepts, fitted by REML, with Type III F tests whose
denominator df are Kenward-Roger (default) or Satterthwaite, as pbkrtest and lmerTest print them.

For MSC process studies: hard-to-change factors (whole plots), donors and hPL lots are random draws, so a
CQA is analysed as ``y = X b + sum_k Z_k u_k + e`` with one random intercept per random-effect factor
(nested or crossed). ``fit_mixed`` takes the fixed-effect model matrix (effect-coded categorical factors,
centred continuous factors: then the term tests are lmerTest's Type III) and the per-run labels of each
random effect, and returns a :class:`MixedFit`.

Modules
-------
- ``_reml``: the profiled REML deviance in lme4's parameters (relative standard deviations), its analytic
  gradient, and the bounded optimisation.
- ``_inference``: GLS estimates, BLUPs, expected and observed information of the variance components, the
  Kenward-Roger adjusted covariance.
- ``_ddf``: Kenward-Roger and Satterthwaite F and t tests.
- ``_results``: :class:`MixedFit`.
- ``_fit``: :func:`fit_mixed` (input checks and assembly).

Example
-------
>>> import numpy as np
>>> y = np.array([89, 88, 97, 94, 84, 77, 92, 79, 81, 87, 87, 85, 87, 92, 89, 84, 79, 81, 80, 88.])
>>> treat = np.tile(np.arange(4), 5)
>>> X = np.column_stack([np.ones(20)] + [(treat == j) * 1.0 - (treat == 3) for j in range(3)])
>>> fit = fit_mixed(X, y, ["Intercept", "A", "B", "C"], ["Intercept"] + ["treat"] * 3,
...                 {"blend": np.repeat(np.arange(5), 4)})
>>> round(fit.components["blend"], 3), round(fit.components["Residual"], 3)
(11.792, 18.833)
>>> fit.anova().round(4).to_dict(orient="records")
[{'term': 'treat', 'df': 3, 'df_den': 12.0, 'F': 1.2389, 'p': 0.3387}]
"""

from doe.mixed._ddf import FTest
from doe.mixed._fit import fit_mixed
from doe.mixed._results import DDF_LABELS, DDF_METHODS, MixedFit, normalise_ddf

__all__ = ["DDF_LABELS", "DDF_METHODS", "FTest", "MixedFit", "fit_mixed", "normalise_ddf"]
