"""``MixedFit``: one REML fit of a linear mixed model, read-only, with its tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from doe.errors import ModelError
from doe.jsonable import json_ready
from doe.mixed._ddf import (
    FTest,
    kenward_roger_nu,
    kenward_roger_test,
    satterthwaite_nu,
    satterthwaite_test,
)
from doe.mixed._inference import Inference

DDF_METHODS: tuple[str, ...] = ("kr", "satterthwaite")
#: Each denominator-df method as tables and reports name it.
DDF_LABELS: dict[str, str] = {"kr": "Kenward-Roger", "satterthwaite": "Satterthwaite"}

_ALIASES = {
    "kr": "kr",
    "kenward-roger": "kr",
    "kenward_roger": "kr",
    "kenwardroger": "kr",
    "satterthwaite": "satterthwaite",
    "sat": "satterthwaite",
}

INTERCEPT_TERMS = ("Intercept", "(Intercept)")


def normalise_ddf(ddf: str) -> str:
    """``"kr"`` or ``"satterthwaite"`` for ``ddf`` (also accepts ``"Kenward-Roger"``, ``"sat"``)."""
    key = str(ddf).strip().lower()
    if key not in _ALIASES:
        raise ModelError(
            f"Unknown denominator-df method '{ddf}'. Use one of: 'kr' (Kenward-Roger) or 'satterthwaite'."
        )
    return _ALIASES[key]


@dataclass(frozen=True, eq=False)
class MixedFit:
    """A linear mixed model fitted by REML, with Kenward-Roger or Satterthwaite tests.

    Built by :func:`doe.mixed.fit_mixed`. Variance components are in response units squared, in the
    order of the ``random`` mapping, then ``"Residual"``. ``loglik`` is the REML log-likelihood; like lme4's
    it depends on the parameterisation of ``X`` (through ``log|X'V^-1X|``), so compare it only between fits
    with the same fixed-effect columns. ``inference`` holds the matrices the tests reuse (not for callers).
    Equality is identity (the fields are arrays).
    """

    names: list[str]
    terms: list[str]
    n: int
    ddf: str
    coef: np.ndarray
    cov_beta: np.ndarray
    cov_beta_kr: np.ndarray
    components: dict[str, float]
    component_cov: np.ndarray
    component_df: dict[str, float]
    blups: dict[str, pd.Series]
    levels: dict[str, list[Any]]
    groups: dict[str, np.ndarray]
    W: np.ndarray
    conditional_residuals: np.ndarray
    loglik: float
    converged: bool
    warnings: list[str]
    inference: Inference = field(repr=False, compare=False)

    # ----------------------------------------------------------------- tests
    def _method(self, ddf: str | None) -> str:
        return self.ddf if ddf is None else normalise_ddf(ddf)

    def contrast_test(self, L: np.ndarray, ddf: str | None = None) -> FTest:
        """Wald F test of ``L b = 0`` (``L``: q x p, rows linearly independent).

        Kenward-Roger: the scaled F (``lambda F``, pbkrtest's ``Ftest``) with ``FTest.scaling`` = lambda;
        Satterthwaite: lmerTest's ``contestMD``.
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if L.shape[1] != len(self.names):
            raise ModelError(f"The contrast has {L.shape[1]} columns; the model has {len(self.names)}.")
        if np.linalg.matrix_rank(L) < L.shape[0]:
            raise ModelError("The contrast rows are linearly dependent; drop the redundant rows.")
        if self._method(ddf) == "kr":
            return kenward_roger_test(L, self.inference)
        return satterthwaite_test(L, self.inference)

    def anova(self, ddf: str | None = None) -> pd.DataFrame:
        """Type III tests, one row per model term except the intercept.

        Columns ``term, df, df_den, F, p``: each term's columns jointly zero (lmerTest's Type III with
        effect coding of categorical factors and centred continuous factors).
        """
        rows = []
        seen: list[str] = []
        for t in self.terms:
            if t not in seen and t not in INTERCEPT_TERMS:
                seen.append(t)
        for t in seen:
            cols = [i for i, tt in enumerate(self.terms) if tt == t]
            L = np.zeros((len(cols), len(self.names)))
            L[np.arange(len(cols)), cols] = 1.0
            res = self.contrast_test(L, ddf)
            rows.append({"term": t, "df": res.df, "df_den": res.df_den, "F": res.F, "p": res.p})
        return pd.DataFrame(rows, columns=["term", "df", "df_den", "F", "p"])

    def coefficients(self, ddf: str | None = None) -> pd.DataFrame:
        """Fixed effects with t tests: columns ``name, term, estimate, se, df, t, p``.

        Kenward-Roger: ``se`` from the adjusted covariance ``cov_beta_kr`` and Kenward-Roger df (lmerTest's
        ``summary(ddf = "Kenward-Roger")``); Satterthwaite: ``se`` from ``cov_beta`` and Satterthwaite df.
        """
        kr = self._method(ddf) == "kr"
        cov = self.cov_beta_kr if kr else self.cov_beta
        rows = []
        for i, (name, term) in enumerate(zip(self.names, self.terms)):
            unit = np.zeros(len(self.names))
            unit[i] = 1.0
            se = float(np.sqrt(cov[i, i]))
            df = kenward_roger_nu(unit, self.inference) if kr else satterthwaite_nu(unit, self.inference)
            t = float(self.coef[i]) / se if se > 0 else float("nan")
            p = float(2 * stats.t.sf(abs(t), df)) if np.isfinite(t) else float("nan")
            rows.append({"name": name, "term": term, "estimate": float(self.coef[i]), "se": se, "df": df,
                         "t": t, "p": p})
        return pd.DataFrame(rows, columns=["name", "term", "estimate", "se", "df", "t", "p"])

    @property
    def df_label(self) -> str:
        """The default denominator-df method in words: "Kenward-Roger" or "Satterthwaite"."""
        return DDF_LABELS[self.ddf]

    # ----------------------------------------------------------------- predictions
    def predictive_variance(self, X: np.ndarray, *, new_levels: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Variance and Satterthwaite df of a prediction at model rows ``X`` (k x p), per row.

        ``new_levels=None``: the mean ``x'b`` (variance ``x' Phi x``). ``True``: one new run with a new level of
        every random effect (``x' Phi x`` plus every variance component); ``False``: one new run at the levels'
        average (plus the residual only). The df are Satterthwaite's (1946) for that linear combination of the
        estimated variance parameters, ``2 v^2 / (g' A g)``, with ``g`` the gradient of ``v`` in the variance
        parameters and ``A`` their asymptotic covariance (the same ``A`` lmerTest uses for its t tests).
        """
        X = np.atleast_2d(np.asarray(X, dtype=float))
        inf = self.inference
        var = np.einsum("ip,pq,iq->i", X, inf.phi, X)
        names = list(self.components)
        active = [name for name, on in zip(names, inf.active) if on]
        grad = np.stack([np.einsum("ip,pq,iq->i", X, J, X) for J in inf.jac], axis=1) if inf.jac else \
            np.zeros((len(X), 0))
        if new_levels is not None:
            added = names if new_levels else ["Residual"]
            var = var + sum(self.components[a] for a in added)
            for j, name in enumerate(active):
                if name in added:
                    grad[:, j] += 1.0
        denom = np.einsum("ik,kl,il->i", grad, inf.observed_cov, grad) if grad.shape[1] else np.zeros(len(X))
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(denom > 0, 2.0 * var**2 / np.where(denom > 0, denom, 1.0), np.inf)
        return var, df

    # ----------------------------------------------------------------- summaries
    @property
    def icc(self) -> dict[str, float]:
        """Each random effect's share of the total variance (all components, residual included)."""
        total = float(sum(self.components.values()))
        return {k: (v / total if total > 0 else float("nan")) for k, v in self.components.items()
                if k != "Residual"}

    @property
    def reml_criterion(self) -> float:
        """``-2 * loglik``: lme4's "REML criterion at convergence"."""
        return -2.0 * self.loglik

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: method, variance components, df method, ANOVA, coefficients, ICC."""
        anova = self.anova()
        coefs = self.coefficients()
        return dict(json_ready({
            "method": "REML",
            "df_method": self.df_label,
            "n": self.n,
            "variance_components": dict(self.components),
            "variance_component_df": dict(self.component_df),
            "reml_loglik": self.loglik,
            "converged": self.converged,
            "warnings": list(self.warnings),
            "anova": anova.to_dict(orient="records"),
            "coefficients": coefs.to_dict(orient="records"),
            "icc": self.icc,
        }))
