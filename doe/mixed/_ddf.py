"""Wald F tests of ``L b = 0`` with Kenward-Roger or Satterthwaite denominator degrees of freedom.

Kenward-Roger (Kenward & Roger 1997, Biometrics 53:983-997, sec. 3; Halekoh & Hojsgaard 2014, JSS 59(9),
sec. 3), as pbkrtest's ``KRmodcomp``: ``F = lambda * (L b)' (L Phi_A L')^-1 (L b) / q`` on ``(q, m)`` df,
with ``Theta = L' (L Phi L')^-1 L``, ``A1 = sum_ij W_ij tr(Theta Phi P_i Phi) tr(Theta Phi P_j Phi)``,
``A2 = sum_ij W_ij tr(Theta Phi P_i Phi Theta Phi P_j Phi)``, and ``m``, ``lambda`` from the moment matching
of their sec. 3 (pbkrtest sets ``lambda = 1`` when ``|m - 2| < 0.01``). For ``q = 1`` this gives
``lambda = 1``; a coefficient's t test uses ``se = sqrt(l' Phi_A l)`` and the same ``m`` (lmerTest's
``summary(ddf = "Kenward-Roger")``).

Satterthwaite (Kuznetsova, Brockhoff & Christensen 2017, JSS 82(13), sec. 3.2; Fai & Cornelius 1996), as
lmerTest's ``contest1D``/``contestMD``: for one contrast ``l``, ``nu = 2 (l' Phi l)^2 / (g' A g)`` with
``g_i = l' (d Phi / d sigma_i) l`` and ``A`` the inverse observed information. For ``q > 1`` the contrast is
rotated to the eigenvectors of ``L Phi L'`` (``q`` independent t statistics with ``nu_m``);
``F = sum t_m^2 / q`` and, with ``E = sum nu_m / (nu_m - 2)``, ``ddf = 2 E / (E - q)`` (2 if any
``nu_m <= 2``; the mean of ``nu_m`` if they are all equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from doe.errors import ModelError
from doe.mixed._inference import Inference

_EPS = float(np.sqrt(np.finfo(float).eps))


@dataclass(frozen=True)
class FTest:
    """One Wald F test."""

    F: float
    df: int
    df_den: float
    p: float
    scaling: float  # Kenward-Roger's lambda (1 for Satterthwaite)


def _fstat_ddf(nu: np.ndarray) -> float:
    """Denominator df of an F made of independent t statistics with ``nu`` df (lmerTest's rule)."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < 1e-8):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    e = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * e / (e - nu.size)


def satterthwaite_nu(c: np.ndarray, inf: Inference) -> float:
    """Satterthwaite df of the estimate ``c' b``."""
    var = float(c @ inf.phi @ c)
    g = np.array([float(c @ J @ c) for J in inf.jac])
    denom = float(g @ inf.observed_cov @ g) if g.size else 0.0
    if denom <= 0:
        return float("inf")
    return 2.0 * var**2 / denom


def satterthwaite_test(L: np.ndarray, inf: Inference) -> FTest:
    """lmerTest's multi-df Satterthwaite F test of ``L b = 0``."""
    C = L @ inf.phi @ L.T
    d, vecs = np.linalg.eigh(C)
    order = np.argsort(d)[::-1]
    d, vecs = d[order], vecs[:, order]
    pos = d > max(_EPS * d[0], 0.0)
    q = int(np.sum(pos))
    ptl = vecs[:, :q].T @ L
    t2 = (ptl @ inf.coef) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    nu = np.array([satterthwaite_nu(ptl[m], inf) for m in range(q)])
    ddf = _fstat_ddf(nu)
    return FTest(F=F, df=q, df_den=ddf, p=float(stats.f.sf(F, q, ddf)), scaling=1.0)


def _kr_ddf_scaling(L: np.ndarray, inf: Inference) -> tuple[float, float, int]:
    """Kenward-Roger (m, lambda, q) for ``L`` (rows linearly independent)."""
    phi = inf.phi
    q = int(np.linalg.matrix_rank(L))
    theta = L.T @ np.linalg.solve(L @ phi @ L.T, L)
    tphi = theta @ phi
    u = [tphi @ Pi @ phi for Pi in inf.kr_p]
    tr = np.array([float(np.trace(ui)) for ui in u])
    W = inf.kr_w
    a1 = float(tr @ W @ tr)
    a2 = 0.0
    for i in range(len(u)):
        for j in range(len(u)):
            a2 += W[i, j] * float(np.sum(u[i] * u[j].T))
    B = (a1 + 6.0 * a2) / (2.0 * q)
    g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2) if a2 != 0 else 0.0
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    v0 = 1 + c1 * B
    v1 = 1 - c2 * B
    v2 = 1 - c3 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    one = 1 - a2 / q
    # IEEE arithmetic as in R: a zero denominator gives an infinite rho and m = 4 (e.g. balanced designs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.float64(1.0) if (abs(one) < 1e-14 and abs(v1) < 1e-14) else np.float64(one) / np.float64(v1)
        rho = (1.0 / q) * ratio**2 * np.float64(v0) / np.float64(v2)
        m = float(4.0 + (q + 2) / (q * rho - 1))
    if not np.isfinite(m):
        raise ModelError("The Kenward-Roger denominator df cannot be computed for this test; "
                         "use ddf='satterthwaite'.")
    scaling = 1.0 if abs(m - 2.0) < 1e-2 else m * (1 - a2 / q) / (m - 2)
    return m, float(scaling), q


def kenward_roger_test(L: np.ndarray, inf: Inference) -> FTest:
    """pbkrtest's Kenward-Roger F test of ``L b = 0`` (the scaled statistic ``lambda F``)."""
    m, scaling, q = _kr_ddf_scaling(L, inf)
    lb = L @ inf.coef
    wald = float(lb @ np.linalg.solve(L @ inf.phi_a @ L.T, lb))
    F = scaling * wald / q
    return FTest(F=F, df=q, df_den=m, p=float(stats.f.sf(F, q, m)), scaling=scaling)


def kenward_roger_nu(c: np.ndarray, inf: Inference) -> float:
    """Kenward-Roger df of the estimate ``c' b`` (pbkrtest's ``Lb_ddf``)."""
    m, _, _ = _kr_ddf_scaling(c[None, :], inf)
    return m
