"""Response transforms: :class:`Transform` (y' = f(y) and its inverse) and :func:`parse_transform`.

All statistics of a fit are on the transformed scale; :meth:`doe.fit.FittedModel.predict`
back-transforms with :meth:`Transform.inverse`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from doe._format import fmt_sig
from doe.errors import ModelError, did_you_mean

__all__ = ["TRANSFORM_NAMES", "Transform", "parse_transform"]

TRANSFORM_NAMES = ("none", "log", "log10", "sqrt", "logit", "boxcox", "power:L")


@dataclass(frozen=True)
class Transform:
    """A monotone response transform y' = f(y) and its inverse.

    ``kind`` is ``none``, ``log`` (natural), ``log10``, ``power`` (y' = y^power, as
    Design-Expert writes powers; ``sqrt`` is power 0.5) or ``logit``
    (y' = ln((y - lower) / (upper - y))).
    """

    kind: str = "none"
    power: float = 1.0
    lower: float = 0.0
    upper: float = 1.0
    spec: str = "none"

    @property
    def is_identity(self) -> bool:
        """True for no transform."""
        return self.kind == "none"

    @property
    def lam(self) -> float | None:
        """Box-Cox lambda equivalent (1 none, 0 log), or None for logit."""
        return {"none": 1.0, "log": 0.0, "log10": 0.0, "power": self.power}.get(self.kind)

    def forward(self, y: Any) -> np.ndarray:
        """y' = f(y) (a new array)."""
        y = np.asarray(y, dtype=float)
        out: np.ndarray
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "log":
                out = np.log(y)
            elif self.kind == "log10":
                out = np.log10(y)
            elif self.kind == "power":
                out = y ** self.power
            elif self.kind == "logit":
                out = np.log((y - self.lower) / (self.upper - y))
            else:
                out = y.copy()
        return out

    def inverse(self, z: Any) -> np.ndarray:
        """y = f^-1(y') (a new array)."""
        z = np.asarray(z, dtype=float)
        out: np.ndarray
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.kind == "log":
                out = np.exp(z)
            elif self.kind == "log10":
                out = 10.0 ** z
            elif self.kind == "power" and self.power > 0:
                out = np.maximum(z, 0.0) ** (1.0 / self.power)
            elif self.kind == "power":
                out = np.where(z > 0, np.abs(z) ** (1.0 / self.power), np.inf)
            elif self.kind == "logit":
                out = self.lower + (self.upper - self.lower) / (1.0 + np.exp(-z))
            else:
                out = z.copy()
        return out

    def label(self, name: str) -> str:
        """The transformed response as written on the left of an equation."""
        if self.kind == "log":
            return f"ln({name})"
        if self.kind == "log10":
            return f"log10({name})"
        if self.kind == "power":
            return f"sqrt({name})" if self.power == 0.5 else f"({name})^{fmt_sig(self.power)}"
        if self.kind == "logit":
            if self.lower == 0 and self.upper == 100:
                return f"logit({name}/100)"
            if self.lower == 0 and self.upper == 1:
                return f"logit({name})"
            return f"ln(({name} - {fmt_sig(self.lower)})/({fmt_sig(self.upper)} - {name}))"
        return name

    def check(self, y: np.ndarray, run_ids: list[Any], response: str) -> None:
        """Raise ModelError naming the first run whose result is outside the domain."""
        if self.kind in ("log", "log10") or (self.kind == "power" and self.power < 0):
            bad, need = y <= 0, "above 0"
        elif self.kind == "power":
            bad, need = y < 0, "0 or above"
        elif self.kind == "logit":
            bad = (y <= self.lower) | (y >= self.upper)
            need = f"strictly between {fmt_sig(self.lower)} and {fmt_sig(self.upper)}"
        else:
            return
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            hint = ("use 'sqrt' (allows 0) or no transform" if self.kind != "logit" else
                    "use 'logit:L:U' with bounds just outside the data, or another transform")
            raise ModelError(
                f"The {self.spec} transform needs every result of {response} {need}; run "
                f"{run_ids[i]} has {fmt_sig(float(y[i]))}. Check that result, or {hint}."
            )


def parse_transform(spec: str | None, units: str = "") -> Transform | None:
    """Parse a transform name; returns None for ``boxcox`` (lambda is estimated).

    ``logit`` reads the response as a percentage (bounds 0..100) when its units
    contain '%', otherwise as a fraction (0..1); ``logit:L:U`` gives the bounds.
    ``power:L`` is y^L (``power:0`` is ln y, ``power:1`` no transform).

    >>> parse_transform("power:-0.5").label("Y")
    '(Y)^-0.5'
    >>> parse_transform("logit", units="%").upper
    100.0
    """
    text = "none" if spec is None else str(spec).strip().lower().replace(" ", "")
    if text in ("", "none", "identity", "1"):
        return Transform("none", spec="none")
    if text in ("log", "ln", "loge"):
        return Transform("log", spec="log")
    if text == "log10":
        return Transform("log10", spec="log10")
    if text in ("sqrt", "squareroot"):
        return Transform("power", 0.5, spec="sqrt")
    if text in ("inverse", "reciprocal"):
        return Transform("power", -1.0, spec="power:-1")
    if text in ("boxcox", "box-cox"):
        return None
    if text.startswith("power:") or text.startswith("power="):
        try:
            lam = float(text[6:])
        except ValueError:
            raise ModelError(f"Transform '{spec}': write the power as a number, e.g. 'power:0.5'.") from None
        if not math.isfinite(lam):
            raise ModelError(f"Transform '{spec}': the power must be a finite number.")
        if lam == 0:
            return Transform("log", spec="power:0")
        if lam == 1:
            return Transform("none", spec="power:1")
        return Transform("power", lam, spec=f"power:{fmt_sig(lam)}")
    if text == "logit":
        upper = 100.0 if "%" in (units or "") else 1.0
        return Transform("logit", lower=0.0, upper=upper, spec="logit")
    m = re.fullmatch(r"logit:(-?[\d.e+-]+):(-?[\d.e+-]+)", text)
    if m:
        try:
            lo, hi = float(m.group(1)), float(m.group(2))
        except ValueError:
            lo, hi = math.nan, math.nan
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ModelError(f"Transform '{spec}': write 'logit:L:U' with numbers L < U, e.g. 'logit:0:100'.")
        return Transform("logit", lower=lo, upper=hi, spec=f"logit:{fmt_sig(lo)}:{fmt_sig(hi)}")
    raise ModelError(
        f"Unknown transform '{spec}'.{did_you_mean(str(spec), TRANSFORM_NAMES)} Transforms are "
        "none, log, log10, sqrt, logit (or logit:L:U), boxcox and power:L (e.g. power:-0.5)."
    )


def power_transform(lam: float) -> Transform:
    if lam == 0:
        return Transform("log", spec="log")
    if lam == 1:
        return Transform("none", spec="none")
    if lam == 0.5:
        return Transform("power", 0.5, spec="sqrt")
    return Transform("power", float(lam), spec=f"power:{fmt_sig(lam)}")

