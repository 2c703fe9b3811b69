"""Effects of two-level models (2 x the coded coefficients) and Lenth's method for unreplicated
factorials (Lenth 1989)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from doe.errors import ModelError
from doe.fit._least_squares import ModelColumn, t_two_sided

__all__ = ["lenth"]


def _effects_table(cols: list[ModelColumn], coef: np.ndarray) -> pd.DataFrame:
    rows = [{"term": c.name, "effect": 2.0 * b} for c, b in zip(cols, coef)
            if c.term != "Intercept" and not c.is_block]
    out = pd.DataFrame(rows, columns=["term", "effect"])
    out["abs_effect"] = out["effect"].abs()
    return out


def lenth(effects: Any, alpha: float = 0.05) -> dict[str, float]:
    """Lenth's pseudo standard error and margins of error for unreplicated factorials.

    s0 = 1.5 median|c|; PSE = 1.5 median{|c| : |c| < 2.5 s0}; with d = m/3
    degrees of freedom, ME = t(1 - alpha/2, d) PSE and SME = t(gamma, d) PSE with
    gamma = (1 + (1 - alpha)^(1/m)) / 2 (Lenth 1989).

    >>> out = lenth([23, -5, 1.5, 1.5, 10, 0, 0.5])
    >>> round(out["pse"], 6), round(out["me"], 6), round(out["sme"], 6)
    (2.25, 8.469277, 20.268691)
    """
    c = np.abs(np.asarray(list(effects.values()) if isinstance(effects, dict) else effects, dtype=float))
    m = len(c)
    if m < 2:
        raise ModelError("Lenth's method needs at least two effects.")
    s0 = 1.5 * float(np.median(c))
    trimmed = c[c < 2.5 * s0]
    pse = 1.5 * float(np.median(trimmed)) if len(trimmed) else 0.0
    d = m / 3.0
    gamma = (1 + (1 - alpha) ** (1 / m)) / 2
    return {"pse": pse, "s0": s0, "me": float(stats.t.ppf(1 - alpha / 2, d) * pse),
            "sme": float(stats.t.ppf(gamma, d) * pse), "d": d, "m": m, "alpha": alpha, "gamma": gamma}



def two_level_effects(cols: list[ModelColumn], coef: np.ndarray) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """The effects table of a two-level model with Lenth's t, p and activity, and Lenth's PSE, ME and SME
    (None with fewer than two effects)."""
    effects = _effects_table(cols, coef)
    lenth_info = None
    if len(effects) >= 2:
        lenth_info = lenth(effects["effect"].to_numpy())
        effects["lenth_t"] = effects["effect"] / lenth_info["pse"] if lenth_info["pse"] > 0 else math.nan
        effects["lenth_p"] = t_two_sided(effects["lenth_t"].to_numpy(), lenth_info["d"])
        effects["active"] = np.abs(effects["effect"]) > lenth_info["me"]
    return effects, lenth_info
