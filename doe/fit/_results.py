"""The result of fitting one CQA: :class:`FittedModel` and :func:`fit_model`.

``fit_model`` does what must happen before a model exists (reading and coding the data, the
transform, Box-Cox, estimability, the least-squares solve) and raises :class:`~doe.errors.ModelError`
when a model cannot be fitted. Everything derived from the solve (coefficient and ANOVA tables, R²,
lack of fit, diagnostics, equations, the stationary point, effects, warnings) is a read-only
attribute computed on first reading and kept, as statsmodels' results do, so the design space,
which reads only the least squares, pays for none of the tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast, overload

import numpy as np
import pandas as pd
from scipy import stats

from doe._format import fmt_sig
from doe._threads import blas_threads, one_blas_thread
from doe.errors import ModelError, quoted_list
from doe.fit._anova import (
    anova_table,
    anova_type_number,
    coefficient_table,
    diagnostics_table,
    fit_warnings,
    grouped_anova_table,
    lack_of_fit_test,
    pred_r2_without_blocks,
)
from doe.fit._box_cox import box_cox_search
from doe.fit._data import (
    as_terms,
    block_text,
    code_settings,
    complete_settings,
    format_ids,
    prepare,
    response_units,
)
from doe.fit._effects import two_level_effects
from doe.fit._equations import actual_equations, coded_equation, stationary_point_analysis
from doe.fit._least_squares import (
    LeastSquares,
    ModelColumn,
    check_estimable,
    column_info,
    f_sf,
    is_two_level,
    pure_error,
    suggest_drop,
)
from doe.fit._transforms import Transform, parse_transform, power_transform
from doe.jsonable import json_ready
from doe.mixed import MixedFit, fit_mixed, normalise_ddf
from doe.model import ModelMatrix, Term, effect_codes
from doe.study import Study

__all__ = ["FittedModel", "effects_two_level", "fit_model", "sequential_anova"]

_T = TypeVar("_T")


class _readonly(Generic[_T]):  # noqa: N801 - used as a decorator, like property
    """A statistic computed from the fit on first reading and kept in the instance's ``__dict__``
    (so pickling and copying carry it); assigning to it raises, unlike ``functools.cached_property``."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _readonly[_T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> _T | _readonly[_T]:
        if obj is None:
            return self
        kept = obj.__dict__
        if self.name not in kept:
            with blas_threads(1):  # small dense algebra: one BLAS thread (doe._threads)
                kept[self.name] = self.func(obj)
        value: _T = kept[self.name]
        return value

    def __set__(self, obj: object, value: Any) -> None:
        raise AttributeError(f"{self.name} is computed from the fit and cannot be set")

    def __delete__(self, obj: object) -> None:
        raise AttributeError(f"{self.name} is computed from the fit and cannot be deleted")


@dataclass(frozen=True, eq=False)
class FittedModel:
    """Everything a page, plot, report or CLI shows about one fitted CQA.

    Statistics are on the fitted (transformed) scale; ``predict`` returns the
    original scale. Fields that need residual degrees of freedom are NaN for a
    saturated two-level model (``df_resid`` 0). Made by :func:`fit_model`.

    The statistics (``coefficients``, ``anova``, ``r2``, ``adj_r2``, ``pred_r2``,
    ``pred_r2_excluding_blocks``, ``press``, ``rmse``, ``cv_percent``,
    ``adeq_precision``, ``overall_f``, ``lack_of_fit``, ``equation_coded``,
    ``equation_actual``, ``equations_actual``, ``coefficients_actual``,
    ``diagnostics``, ``stationary_point``, ``effects``, ``lenth``, ``warnings``)
    are computed on first reading and read-only; a pickled or copied model
    carries all of them.
    """

    study: Study
    response: str
    model_terms: list[Term]
    #: The transform asked for: its spec (``log``, ``power:-0.5`` ...) or ``boxcox``.
    transform: str
    boxcox_lambda: float | None
    box_cox: dict[str, Any] | None
    anova_type: int
    alpha: float
    excluded: list[dict[str, Any]]
    block_column: str | None
    block_labels: list[str]
    _tf: Transform = field(repr=False)
    _mm: ModelMatrix = field(repr=False)
    _cols: list[ModelColumn] = field(repr=False)
    _ls: LeastSquares = field(repr=False)
    _U: np.ndarray = field(repr=False)
    _blocks: np.ndarray | None = field(repr=False)
    _run_ids: list[Any] = field(repr=False)
    _y0: np.ndarray = field(repr=False)
    _two_level: bool = field(repr=False)
    #: Warnings known when fitting (data, Box-Cox, saturated model): the first of ``warnings``.
    _fit_notes: list[str] = field(repr=False)
    #: The mixed model (REML) of a CQA with random effects (whole plots, donors, lots), else None.
    _mixed: MixedFit | None = field(default=None, repr=False)
    #: Random-effect column -> label per run used (empty for a fully randomised CQA).
    _groups: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # A pickled copy (Streamlit's caches, worker processes) carries every statistic, so a copy
        # never recomputes what the original already knew.
        for name, attr in vars(type(self)).items():
            if isinstance(attr, _readonly):
                getattr(self, name)
        return dict(self.__dict__)

    # -- the shape of the fit -------------------------------------------------------------
    @_readonly
    def terms(self) -> list[str]:
        """``Intercept`` and the model terms' names."""
        return ["Intercept"] + [t.name for t in self.model_terms]

    @_readonly
    def columns(self) -> list[str]:
        """The model matrix's column names (intercept, blocks, terms' columns)."""
        return list(self._mm.columns)

    @property
    def transform_label(self) -> str:
        """The transformed response as written on the left of an equation (``ln(Y)``)."""
        return self._tf.label(self.response)

    @property
    def n(self) -> int:
        """Runs used in the fit."""
        return self._ls.n

    @property
    def p(self) -> int:
        """Coefficients (model columns)."""
        return self._ls.p

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom, n - p."""
        return self._ls.df

    @property
    def scale(self) -> float:
        """The residual mean square (the error variance estimate on the fitted scale; NaN without
        residual degrees of freedom), as statsmodels names it."""
        return self._ls.mse

    def cov_params(self) -> np.ndarray:
        """Covariance matrix of the coefficients, ``scale`` (X'X)^-1, in model-column order."""
        return self._ls.cov_unscaled * self._ls.mse

    # -- statistics, computed on first reading ----------------------------------------------
    @_readonly
    def _sst(self) -> float:
        y = self._ls.y
        return float(np.sum((y - y.mean()) ** 2))

    @_readonly
    def _pe(self) -> tuple[float, int]:
        pe_ss, pe_df, _ = pure_error(self._U, self._blocks, self._ls.y)
        return pe_ss, pe_df

    @_readonly
    def lack_of_fit(self) -> dict[str, float] | None:
        """Lack-of-fit test against pure error (replicates in the same block): ``F``, ``p``, ``df``,
        ``ss``, ``pure_error_df``, ``pure_error_ss``; None without pure error."""
        return lack_of_fit_test(self._ls, *self._pe)

    @_readonly
    def coefficients(self) -> pd.DataFrame:
        """Coefficient table (coded units): term, estimate, std_error, t, p, ci_low, ci_high, vif."""
        return coefficient_table(self._cols, self._ls.X, self._ls, self.alpha)

    @_readonly
    def anova(self) -> pd.DataFrame:
        """ANOVA table of ``anova_type`` (Design-Expert's layout; see :mod:`doe.fit`)."""
        ls = self._ls
        return anova_table(self._cols, self.model_terms, ls.X, ls.y, ls, self.anova_type, self._sst,
                            self.lack_of_fit)

    @_readonly
    def _diagnosed(self) -> tuple[pd.DataFrame, list[str]]:
        return diagnostics_table(self._run_ids, self._y0, self._ls.y, self._ls, self._tf, self.alpha)

    @_readonly
    def diagnostics(self) -> pd.DataFrame:
        """Per run: actual, predicted, residual, leverage, studentized residuals, Cook's D, DFFITS, flag."""
        return self._diagnosed[0]

    @_readonly
    def press(self) -> float:
        """Prediction error sum of squares (NaN without residual df or with a leverage-1 run)."""
        ls = self._ls
        h = ls.leverage
        if ls.df > 0 and np.all(h < 1 - 1e-10):
            return float(np.sum((ls.resid / (1 - h)) ** 2))
        return math.nan

    @_readonly
    def _press_notes(self) -> list[str]:
        h = self._ls.leverage
        if self._ls.df > 0 and not np.all(h < 1 - 1e-10):
            ones = [self._run_ids[i] for i in np.flatnonzero(h >= 1 - 1e-10)]
            return [f"Run(s) {format_ids(ones)} have leverage 1 (the model passes through them): "
                    "PRESS and predicted R² cannot be computed."]
        return []

    @_readonly
    def r2(self) -> float:
        """R² (corrected total including the blocks)."""
        return 1 - self._ls.sse / self._sst if self._ls.df > 0 else math.nan

    @_readonly
    def adj_r2(self) -> float:
        """Adjusted R²."""
        ls = self._ls
        return 1 - (ls.sse / ls.df) / (self._sst / (ls.n - 1)) if ls.df > 0 else math.nan

    @_readonly
    def pred_r2(self) -> float:
        """Predicted R², 1 - PRESS / total SS."""
        return 1 - self.press / self._sst if math.isfinite(self.press) else math.nan

    @_readonly
    def pred_r2_excluding_blocks(self) -> float | None:
        """Blocked data only: predicted R² as Design-Expert reports it, 1 - PRESS / (total SS - block SS);
        ``pred_r2`` divides by the total SS including the blocks. None without blocks."""
        return pred_r2_without_blocks(self._ls.y, self._blocks, self.press, self._sst)

    @_readonly
    def rmse(self) -> float:
        """Root mean square error (std. dev. of the residuals)."""
        return math.sqrt(self._ls.mse) if self._ls.df > 0 else math.nan

    @_readonly
    def cv_percent(self) -> float:
        """Coefficient of variation, 100 rmse / |mean|, in %."""
        mean_y = float(np.mean(self._ls.y))
        return 100 * self.rmse / abs(mean_y) if mean_y != 0 else math.nan

    @_readonly
    def adeq_precision(self) -> float:
        """Design-Expert's adequate precision, (max ŷ - min ŷ) / sqrt(p MSE / n)."""
        ls = self._ls
        return float(np.ptp(ls.fitted) / math.sqrt(ls.p * ls.mse / ls.n)) if ls.df > 0 and ls.mse > 0 else math.nan

    @_readonly
    def overall_f(self) -> dict[str, float]:
        """Whole-regression F against the intercept-only model: ``F``, ``df_model``, ``df_resid``, ``p``."""
        ls = self._ls
        p = ls.p
        if p > 1 and ls.df > 0:
            f_all = ((self._sst - ls.sse) / (p - 1)) / ls.mse
            return {"F": f_all, "df_model": p - 1, "df_resid": ls.df, "p": f_sf(f_all, p - 1, ls.df)}
        return {"F": math.nan, "df_model": p - 1, "df_resid": ls.df, "p": math.nan}

    @_readonly
    def equation_coded(self) -> str:
        """The fitted equation in coded units (blocks averaged out)."""
        return coded_equation(self.transform_label, self._cols, self.coef)

    @_readonly
    def _actual(self) -> tuple[list[dict[str, Any]], pd.DataFrame, str]:
        return actual_equations(self.study, self._cols, self.coef, self.transform_label)

    @_readonly
    def equations_actual(self) -> list[dict[str, Any]]:
        """One equation in actual units per categorical level combination: ``label``, ``levels``,
        ``equation``, ``coefficients``."""
        return self._actual[0]

    @_readonly
    def coefficients_actual(self) -> pd.DataFrame:
        """Coefficients in actual units, one column per categorical level combination."""
        return self._actual[1]

    @_readonly
    def equation_actual(self) -> str:
        """The equations in actual units, one line each."""
        return "\n".join((f"{e['label']}: " if e["label"] else "") + e["equation"] for e in self.equations_actual)

    @_readonly
    def _stationary(self) -> tuple[dict[str, Any] | None, list[str]]:
        return stationary_point_analysis(self.study, self.model_terms, self._cols, self.coef, self._tf)

    @_readonly
    def stationary_point(self) -> dict[str, Any] | None:
        """Stationary point and canonical analysis of the quadratic part, or None."""
        return self._stationary[0]

    @_readonly
    def _effects_lenth(self) -> tuple[pd.DataFrame | None, dict[str, float] | None]:
        if not self._two_level:
            return None, None
        return two_level_effects(self._cols, self._ls.coef)

    @_readonly
    def effects(self) -> pd.DataFrame | None:
        """Two-level models: effects (2 x coded coefficients) with Lenth's t, p and ``active``; else None."""
        return self._effects_lenth[0]

    @_readonly
    def lenth(self) -> dict[str, float] | None:
        """Two-level models: Lenth's PSE, ME, SME (:func:`doe.fit.lenth`); else None."""
        return self._effects_lenth[1]

    @_readonly
    def warnings(self) -> list[str]:
        """Everything the scientist should know about this fit, in words."""
        out = list(self._fit_notes) + self._diagnosed[1] + self._press_notes
        note = self._actual[2]
        if note:
            out.append(note)
        out += self._stationary[1]
        ls_notes = fit_warnings(self.response, self._ls, self.lack_of_fit, self.r2, self.adj_r2, self.pred_r2,
                                self.adeq_precision, self.coefficients, self.alpha)
        if self._mixed is not None:  # those read the least-squares fit, which ignores the random effects
            ls_notes = [f"Least squares, as if the runs were completely randomised: {w[0].lower() + w[1:]}"
                        for w in ls_notes]
        return out + ls_notes

    # -- look-ups ---------------------------------------------------------------------
    @property
    def model_spec(self) -> str:
        """The model terms joined with " + " (``mean`` for the intercept-only model)."""
        return " + ".join(t.name for t in self.model_terms) or "mean"

    @property
    def estimates(self) -> dict[str, float]:
        """Coefficient of each model column (coded units)."""
        return dict(zip(self.coefficients["term"], self.coefficients["estimate"]))

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values on the fitted (transformed) scale, runs used in order."""
        return self._ls.fitted

    @property
    def residuals(self) -> np.ndarray:
        """Residuals on the fitted (transformed) scale, runs used in order."""
        return self._ls.resid

    # -- prediction ---------------------------------------------------------------------
    def predict(self, frame: pd.DataFrame, interval: str | None = "confidence", level: float = 0.95,
                *, block: Any = None) -> pd.DataFrame:
        """Predicted mean and interval on the original scale at settings in actual units.

        Parameters
        ----------
        frame : DataFrame
            One column per factor in actual units (level names for categorical
            factors); columns of factors not in the model may be left out.
        interval : {'confidence', 'prediction', None}
            Confidence interval of the mean, or prediction interval of one new run. For a mixed
            model (:attr:`mixed`) the mean is the GLS one and a new run has a new level of every
            random effect (a new donor, lot and whole plot); the df are Satterthwaite's
            (:meth:`doe.mixed.MixedFit.predictive_variance`).
        level : float
            Confidence level of the interval.
        block : optional
            A block label to predict for that block; by default blocks are
            averaged out (block columns 0).

        Returns
        -------
        DataFrame with ``mean``, ``lower``, ``upper`` (original scale) and
        ``fitted_scale`` (the prediction on the transformed scale). With a
        transform, ``mean`` is the back-transformed prediction: the median on
        the original scale (Myers, Montgomery & Anderson-Cook, sec. 2.8).
        """
        if interval not in ("confidence", "prediction", None):
            raise ModelError("interval must be 'confidence', 'prediction' or None.")
        if not 0 < level < 1:
            raise ModelError(f"The interval level must be between 0 and 1; got {level}.")
        X = self._predict_matrix(complete_settings(self.study, self.model_terms, frame), block)
        z = X @ self.coef
        out = pd.DataFrame({"mean": self._tf.inverse(z)}, index=frame.index)
        lower = upper = np.full(len(z), np.nan)
        if interval is not None and self._mixed is not None:
            var, df = self._mixed.predictive_variance(X, new_levels=True if interval == "prediction" else None)
            half = stats.t.ppf(0.5 + level / 2, df) * np.sqrt(var)
            a, b = self._tf.inverse(z - half), self._tf.inverse(z + half)
            lower, upper = np.minimum(a, b), np.maximum(a, b)
        elif interval is not None and self.df_resid > 0:
            var = self._ls.pred_var(X) + (1.0 if interval == "prediction" else 0.0)
            half = stats.t.ppf(0.5 + level / 2, self.df_resid) * np.sqrt(var * self._ls.mse)
            a, b = self._tf.inverse(z - half), self._tf.inverse(z + half)
            lower, upper = np.minimum(a, b), np.maximum(a, b)
        out["lower"], out["upper"], out["fitted_scale"] = lower, upper, z
        return out

    def _predict_matrix(self, frame: pd.DataFrame, block: Any = None) -> np.ndarray:
        U = code_settings(self.study, frame)
        X = self._mm.build(U)
        bcols = [j for j, c in enumerate(self._cols) if c.is_block]
        if bcols:
            if block is None:
                X[:, bcols] = 0.0
            else:
                label = block_text(block)
                if label not in self.block_labels:
                    raise ModelError(f"Block '{block}' is not one of {quoted_list(self.block_labels)}.")
                X[:, bcols] = effect_codes(len(self.block_labels))[self.block_labels.index(label)]
        return X

    def _predict_averaged(self, coded: dict[str, np.ndarray]) -> np.ndarray:
        """Fitted-scale prediction at numeric coded settings, categorical factors and blocks averaged."""
        n = len(next(iter(coded.values()))) if coded else 1
        z = np.zeros(n)
        for c, b in zip(self._cols, self._ls.coef):
            if c.is_block or c.cat:
                continue  # effect-coded columns average to 0 over levels
            x = np.ones(n)
            for f, p in c.num:
                x = x * np.asarray(coded.get(f, np.zeros(n)), dtype=float) ** p
            z += b * x
        return z

    # -- steepest ascent ------------------------------------------------------------------
    def steepest_direction(self, descent: bool = False) -> dict[str, dict[str, float]]:
        """Unit direction of steepest ascent (coded) and the step per unit distance in actual units.

        The direction is the normalised vector of the linear coded coefficients
        of the numeric factors (Myers, Montgomery & Anderson-Cook, sec. 5.2).
        """
        lin = {c.num[0][0]: b for c, b in zip(self._cols, self.coef)
               if not c.cat and not c.is_block and len(c.num) == 1 and c.num[0][1] == 1}
        if not lin:
            raise ModelError("Steepest ascent needs main effects of continuous factors in the model.")
        vec = np.array(list(lin.values()))
        norm = float(np.linalg.norm(vec))
        if norm == 0:
            raise ModelError("All linear coefficients are zero: there is no direction of steepest ascent.")
        d = (-1 if descent else 1) * vec / norm
        if self._tf.kind == "power" and self._tf.power < 0:
            d = -d  # y^L with L < 0 decreases as y increases
        names = list(lin)
        return {"coded": dict(zip(names, d.tolist())),
                "increment_actual": {f: float(u * self.study.factor(f).half_range) for f, u in zip(names, d)}}

    def steepest_ascent(self, distances: Any = None, *, descent: bool = False) -> pd.DataFrame:
        """Path of steepest ascent (or descent) from the design centre.

        Columns: ``dist`` (coded distance), ``<factor> (coded)``, ``<factor>``
        (actual units), ``yhat`` (original scale, categorical factors and blocks
        averaged). Default distances 0, 0.5, ..., 5 as rsm's ``steepest``. For a
        model with interactions or squares the direction is still the gradient
        at the centre; prefer the canonical analysis there.
        """
        dist = np.abs(np.asarray(np.arange(0, 5.01, 0.5) if distances is None else distances, dtype=float))
        direction = self.steepest_direction(descent)["coded"]
        data: dict[str, Any] = {"dist": dist}
        coded = {f: dist * u for f, u in direction.items()}
        for f, x in coded.items():
            data[f"{f} (coded)"] = x
        for f, x in coded.items():
            data[f] = self.study.factor(f).to_actual(x)
        data["yhat"] = self._tf.inverse(self._predict_averaged(coded))
        return pd.DataFrame(data)

    # -- grouped sequential ANOVA -----------------------------------------------------------
    def grouped_anova(self) -> pd.DataFrame:
        """rsm-style sequential ANOVA: Block, FO, TWI, PQ (and higher order), Residuals,
        Lack of fit, Pure error.

        Groups enter in that order; each F uses the full model's residual mean
        square (rsm's ``anova`` of an ``rsm`` fit; Lenth 2009).
        """
        return grouped_anova_table(self._cols, self.model_terms, self._ls, self.lack_of_fit)

    # -- serialisation ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinity become None)."""
        sp = self.stationary_point
        out = {
            "response": self.response,
            "model": self.model_spec,
            "terms": list(self.terms),
            "columns": list(self.columns),
            "transform": self.transform,
            "transform_label": self.transform_label,
            "boxcox_lambda": self.boxcox_lambda,
            "n": self.n, "p": self.p, "df_resid": self.df_resid,
            "excluded": [dict(d) for d in self.excluded],
            "coefficients": self.coefficients.to_dict(orient="records"),
            "equation_coded": self.equation_coded,
            "equation_actual": self.equation_actual,
            "equations_actual": self.equations_actual,
            "coefficients_actual": {c: self.coefficients_actual[c].to_dict()
                                    for c in self.coefficients_actual.columns},
            "anova_type": self.anova_type,
            "anova": self.anova.to_dict(orient="records"),
            "r2": self.r2, "adj_r2": self.adj_r2, "pred_r2": self.pred_r2, "press": self.press,
            "pred_r2_excluding_blocks": self.pred_r2_excluding_blocks,
            "rmse": self.rmse, "cv_percent": self.cv_percent, "adeq_precision": self.adeq_precision,
            "overall_f": dict(self.overall_f),
            "lack_of_fit": None if self.lack_of_fit is None else dict(self.lack_of_fit),
            "effects": None if self.effects is None else self.effects.to_dict(orient="records"),
            "lenth": None if self.lenth is None else dict(self.lenth),
            "stationary_point": None if sp is None else {
                k: sp[k] for k in ("coded", "actual", "eigenvalues", "eigenvectors", "kind",
                                   "predicted", "inside_region")},
            "diagnostics": self.diagnostics.to_dict(orient="records"),
            "block_column": self.block_column,
            "block_labels": list(self.block_labels),
            "box_cox": self.box_cox,
            "warnings": list(self.warnings),
            "method": self.method,
        }
        if self._mixed is not None:  # the mixed model's tests replace the least-squares ones; those stay beside
            mixed = self._mixed.to_json()
            out["fully_randomised"] = {"method": "OLS", "anova": out["anova"], "coefficients": out["coefficients"],
                                       "df_resid": out["df_resid"]}
            out.update({k: mixed[k] for k in ("method", "df_method", "variance_components", "anova",
                                               "coefficients", "icc")})
            out["variance_component_df"] = mixed.get("variance_component_df")
            out["reml_loglik"] = mixed.get("reml_loglik")
            out["random_effects"] = {k: len(set(v)) for k, v in self._groups.items()}
        ready: dict[str, Any] = json_ready(out)
        return ready

    # -- the mixed model (random effects) ---------------------------------------------------
    @property
    def mixed(self) -> MixedFit | None:
        """The REML mixed model of this CQA (the correct analysis when runs share whole plots, donors or
        lots; :mod:`doe.mixed`), or None when the runs are analysed as completely randomised. The least-squares
        statistics of this object are then the fully randomised analysis, shown beside it for contrast."""
        return self._mixed

    @property
    def coef(self) -> np.ndarray:
        """The model's coefficients (coded units, model-column order): GLS at the REML variance components for a
        mixed model, else least squares. Equations, the stationary point, the steepest-ascent path and
        predictions use these; ``coefficients`` and ``estimates`` are the least-squares table."""
        return self._ls.coef if self._mixed is None else np.asarray(self._mixed.coef, dtype=float)

    @property
    def random_groups(self) -> dict[str, list[str]]:
        """Random-effect column -> its label per run used (empty without random effects)."""
        return {k: list(v) for k, v in self._groups.items()}

    @property
    def method(self) -> str:
        """``"REML"`` for a mixed model, ``"OLS"`` (least squares) otherwise."""
        return "REML" if self._mixed is not None else "OLS"

    # -- what the design space reads (public surface of the fit) ----------------------------
    @property
    def least_squares(self) -> LeastSquares:
        """The least-squares fit on the fitted scale: ``X``, ``y`` (runs used, in order), ``Q`` and
        ``r_inv`` (X = QR), ``coef``, ``resid``, ``sse``, ``mse``, ``cov_unscaled`` ((X'X)^-1) and
        ``pred_var(F)`` (rows of F (X'X)^-1 F'). Read-only."""
        return self._ls

    @property
    def fitted_transform(self) -> Transform:
        """The response transform the model was fitted on (``forward``/``inverse``)."""
        return self._tf

    @property
    def model_columns(self) -> list[ModelColumn]:
        """The model matrix's columns: numeric exponents, categorical codes, blocks."""
        return self._cols

    def model_matrix(self, frame: pd.DataFrame, block: Any = None) -> np.ndarray:
        """Model rows (coded) for settings in actual units, blocks averaged unless ``block`` is given."""
        return self._predict_matrix(frame, block)



# -- fitting -------------------------------------------------------------------------------
@one_blas_thread
def fit_model(
    study: Study,
    runs: pd.DataFrame,
    response: str,
    model: Any = "quadratic",
    *,
    transform: str | None = "none",
    anova_type: int | str = 2,
    alpha: float = 0.05,
    block_col: str | None = None,
    exclude: Any = None,
    ddf: str = "kr",
    random_effects: bool = True,
) -> FittedModel:
    """Fit a polynomial model to one CQA by least squares (coded units).

    Parameters
    ----------
    study : Study
        Factors (ranges, levels) and responses.
    runs : DataFrame
        Run sheet in actual units: a column per factor, optional ``Run`` ids,
        optional block column (``block_col``, else ``study.blocks`` or ``Block``
        when present), and response columns. Rows with no result for
        ``response`` are left out and listed in ``excluded`` ('no result').
    response : str
        The response column to fit.
    model : str, list of str or list of Term
        Preset (linear, interactions, quadratic, full), a term list for
        :func:`doe.model.parse_model`, a list of Term, or ``'mean'`` / ``[]`` for
        the intercept-only model.
    transform : str
        none, log, log10, sqrt, logit (or logit:L:U), boxcox, power:L; see
        :func:`parse_transform`. ``boxcox`` estimates lambda by maximum
        likelihood (:func:`box_cox`) and uses a conventional power inside the
        95 % interval when there is one.
    anova_type : {1, 2, 3}
        Sums of squares of the term rows: sequential, hierarchical (default,
        marginality as in JMP/Design-Expert) or fully partial.
    alpha : float
        Level of the confidence intervals (1 - alpha) and of the warnings.
    block_col : str, optional
        Name of the block column.
    exclude : list, optional
        Run ids to leave out; listed in ``excluded`` ('excluded by user').
    ddf : {"kr", "satterthwaite"}
        Denominator degrees of freedom of the mixed model's tests: Kenward-Roger (default) or Satterthwaite.
    random_effects : bool
        Fit the mixed model (REML, :mod:`doe.mixed`) when the runs carry random-effect columns (``Whole
        plot``, ``Subplot``, the study's ``random_effects``); False analyses them as completely randomised.

    Returns
    -------
    FittedModel

    Raises
    ------
    ModelError
        Too few runs, aliased terms, no residual degrees of freedom (unless the
        model is a saturated two-level factorial: then effects and Lenth's
        method are reported and the statistics that need error df are NaN),
        a constant response, text in the response column, or results outside
        the transform's domain. The message says what to change.

    Notes
    -----
    Standard errors, t and p follow Montgomery (2017), ch. 10; lack of fit and
    pure error Myers, Montgomery & Anderson-Cook (2016), sec. 2.7 and 3.4;
    PRESS and predicted R² sec. 2.7; adequate precision is Design-Expert's
    (max ŷ - min ŷ) / sqrt(p MSE / n) over the runs; diagnostics are the
    internally and externally studentized residuals, leverage, Cook's distance
    and DFFITS (Montgomery, Peck & Vining, *Introduction to Linear Regression
    Analysis*, ch. 4 and 6).

    Examples
    --------
    >>> import pandas as pd
    >>> from doe.study import Study, Factor, Response
    >>> s = Study("x", [Factor("A", low=0, high=10)], [Response("Y")])
    >>> runs = pd.DataFrame({"A": [0, 0, 5, 10, 10], "Y": [1.0, 1.2, 2.1, 2.9, 3.1]})
    >>> fm = fit_model(s, runs, "Y", "linear")
    >>> round(fm.estimates["A"], 4), fm.df_resid
    (0.95, 3)
    """
    atype = anova_type_number(anova_type)
    if not 0 < alpha < 1:
        raise ModelError(f"alpha must be between 0 and 1; got {alpha}.")
    terms = as_terms(study, model)
    data = prepare(study, runs, response, block_col, exclude)
    n_blocks = len(data.block_labels) if data.blocks is not None else 1
    mm = ModelMatrix(study, terms, n_blocks)
    cols = column_info(study, mm)
    X = mm.build(data.U, data.blocks)
    y0 = data.y
    n, p = X.shape
    if np.ptp(y0) == 0:
        raise ModelError(
            f"Every result of {response} is {fmt_sig(float(y0[0]))} ({n} runs): a constant response "
            "has nothing to model. Check the results; if they are right, report them without a model."
        )
    check_estimable(study, mm, cols, X, data.U, response)
    units = response_units(study, response)
    tf = parse_transform(transform, units)
    notes = list(data.warnings)
    bc_info = None
    bc_lambda = None
    if tf is None:
        bc_info = box_cox_search(X, y0, data.run_ids, response)
        bc_lambda = bc_info["suggested"]
        tf = power_transform(bc_lambda)
        notes.append(
            f"Box-Cox: best lambda {fmt_sig(bc_info['best'], 3)} (95 % interval "
            f"{fmt_sig(bc_info['ci'][0], 3)} to {fmt_sig(bc_info['ci'][1], 3)}); fitted with lambda = "
            f"{fmt_sig(bc_lambda)}, i.e. {tf.label(response)}."
        )
    tf.check(y0, data.run_ids, response)
    y = tf.forward(y0)
    if np.ptp(y) == 0:  # pragma: no cover - a monotone transform keeps y non-constant
        raise ModelError(f"The transformed {response} is constant; choose another transform.")
    ls = LeastSquares(X, y)
    two_level = is_two_level(study, terms, data.U)
    if ls.df == 0 and not two_level:
        raise ModelError(
            f"{n} runs with a result for {response} and {p} model coefficients leave no degrees of "
            f"freedom for error, so nothing can be tested. Drop terms such as {suggest_drop(terms)}, "
            "or add runs (e.g. replicated centre points). For an unreplicated two-level factorial, "
            "use terms of distinct factors only (no squares): the saturated model is then fitted and "
            "its effects judged with Lenth's method and the half-normal plot."
        )
    if ls.df == 0:
        notes.append(
            "The model uses every degree of freedom (no residual): standard errors, p-values and "
            "R² statistics cannot be computed. Judge the effects with the half-normal plot and "
            "Lenth's margin of error (ME/SME), then refit without the inactive terms."
        )
    groups = data.groups if random_effects else {}
    mixed, groups = _fit_random(ls, list(mm.columns), [c.term for c in cols], groups, ddf, response, notes)
    # The tables and statistics are computed when first read (FittedModel's read-only attributes).
    return FittedModel(
        study=study, response=response, model_terms=terms,
        transform=("boxcox" if bc_info is not None else tf.spec), boxcox_lambda=bc_lambda, box_cox=bc_info,
        anova_type=atype, alpha=alpha, excluded=data.excluded, block_column=data.block_col,
        block_labels=list(data.block_labels), _tf=tf, _mm=mm, _cols=cols, _ls=ls, _U=data.U,
        _blocks=data.blocks, _run_ids=data.run_ids, _y0=y0, _two_level=two_level, _fit_notes=notes,
        _mixed=mixed, _groups=groups,
    )


def _fit_random(ls: LeastSquares, names: list[str], terms: list[str], groups: dict[str, list[str]], ddf: str,
                response: str, notes: list[str]) -> tuple[MixedFit | None, dict[str, list[str]]]:
    """The REML fit of the random-effect columns that can be estimated; notes say which were dropped and why."""
    normalise_ddf(ddf)  # a bad name fails here, even without random effects
    usable = {}
    for name, labels in groups.items():
        k = len(set(labels))
        if k < 2:
            notes.append(f"'{name}' has one level in every run with a result for {response}: its variance cannot "
                         "be estimated, so it is left out of the mixed model.")
        elif k == len(labels):
            notes.append(f"Every run with a result for {response} has its own '{name}': its variance cannot be told "
                         "apart from the residual, so it is left out of the mixed model.")
        else:
            usable[name] = labels
    if not usable:
        return None, {}
    try:
        mixed = fit_mixed(ls.X, ls.y, names, terms, usable, ddf=ddf)
    except ModelError as exc:
        notes.append(f"The mixed model (REML) with random {', '.join(usable)} could not be fitted ({exc}): the "
                     "tests shown treat the runs as completely randomised, which overstates the evidence for "
                     "whole-plot factors.")
        return None, {}
    notes.extend(mixed.warnings)
    return mixed, usable


def effects_two_level(fm_or_study: FittedModel | Study, runs: pd.DataFrame | None = None,
                      response: str | None = None, model: Any = "full", **kwargs: Any) -> pd.DataFrame:
    """Effects (2 x coded coefficients) of a two-level model, with Lenth t and p.

    Pass a :class:`FittedModel`, or a study, runs, response and model (default
    the saturated ``full`` model) to fit first. Lenth's PSE, ME and SME are in
    ``result.attrs['lenth']``.
    """
    fm = fm_or_study if isinstance(fm_or_study, FittedModel) else fit_model(
        fm_or_study, cast(pd.DataFrame, runs), cast(str, response), model, **kwargs)
    if fm.effects is None:
        raise ModelError(
            "Effects and Lenth's method apply to two-level designs with terms of distinct factors "
            "(no squares); this model or design is not one."
        )
    out = fm.effects.copy()
    out.attrs["lenth"] = fm.lenth
    return out



def sequential_anova(study: Study, runs: pd.DataFrame, response: str, model: Any = "quadratic",
                     **kwargs: Any) -> pd.DataFrame:
    """rsm-style grouped sequential ANOVA (Block, FO, TWI, PQ, Residuals, Lack of fit,
    Pure error) of a fitted model; see :meth:`FittedModel.grouped_anova`."""
    return fit_model(study, runs, response, model, **kwargs).grouped_anova()
