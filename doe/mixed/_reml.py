"""Profiled REML for a linear model with independent random intercepts.

Model: ``y = X b + sum_k Z_k u_k + e`` with ``u_k ~ N(0, s2_k I)``, ``e ~ N(0, s2 I)``, so
``V = s2 H`` with ``H = I + sum_k g_k Z_k Z_k'`` and ``g_k = s2_k / s2``. The residual variance and the
fixed effects are profiled out (Bates et al. 2015, JSS 67(1), sec. 3.4), leaving the REML deviance as a
function of the relative standard deviations ``theta_k = sqrt(g_k) >= 0`` (lme4's parameters):

    -2 l_R(theta) = log|H| + log|X' H^-1 X| + (n - p) (1 + log(2 pi rss / (n - p)))

where ``rss = r' H^-1 r`` and ``r = y - X b_GLS``. This is lme4's "REML criterion at convergence".
``H^-1`` is applied through the q x q matrix ``M = I + A'A`` with ``A = Z diag(theta)`` (Woodbury), so an
evaluation costs O(n q^2 + q^3), q the total number of random levels. The gradient is analytic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

# A relative variance below this (times the residual variance) is the boundary value 0.
BOUNDARY_TOL = 1e-8


@dataclass(frozen=True)
class RemlSolution:
    """The optimum of the profiled REML deviance."""

    theta: np.ndarray  # relative standard deviations, one per random effect
    deviance: float  # -2 REML log-likelihood at theta
    sigma2: float  # residual variance at theta
    converged: bool
    message: str


def _deviance_and_gradient(
    theta: np.ndarray, X: np.ndarray, y: np.ndarray, Z: np.ndarray, blocks: list[slice]
) -> tuple[float, np.ndarray]:
    """Profiled REML deviance and its gradient with respect to ``theta``."""
    dev, dg = _deviance_and_dg(theta, X, y, Z, blocks)
    return dev, 2.0 * theta * dg


def _deviance_and_dg(
    theta: np.ndarray, X: np.ndarray, y: np.ndarray, Z: np.ndarray, blocks: list[slice]
) -> tuple[float, np.ndarray]:
    """Profiled REML deviance and its gradient with respect to ``g = theta**2``."""
    n, p = X.shape
    lam = np.empty(Z.shape[1])
    for k, sl in enumerate(blocks):
        lam[sl] = theta[k]
    A = Z * lam
    M = np.eye(Z.shape[1]) + A.T @ A
    cM = sla.cho_factor(M, lower=True)
    logdet_h = 2.0 * float(np.sum(np.log(np.diag(cM[0]))))

    def h_inv(B: np.ndarray) -> np.ndarray:
        return B - A @ sla.cho_solve(cM, A.T @ B)

    hX = h_inv(X)
    hy = h_inv(y)
    xhx = X.T @ hX
    cX = sla.cho_factor(xhx, lower=True)
    logdet_x = 2.0 * float(np.sum(np.log(np.diag(cX[0]))))
    b = sla.cho_solve(cX, X.T @ hy)
    hr = hy - hX @ b
    r = y - X @ b
    rss = float(r @ hr)
    dof = n - p
    dev = logdet_h + logdet_x + dof * (1.0 + np.log(2.0 * np.pi * rss / dof))
    # d dev / d g_k = tr(P_H Z_k Z_k') - dof / rss * (Z_k' H^-1 r)'(Z_k' H^-1 r), P_H the projection of H.
    hZ = h_inv(Z)
    ztr = Z.T @ hr
    xhz = hX.T @ Z  # p x q
    cz = sla.cho_solve(cX, xhz)
    grad = np.empty(len(blocks))
    for k, sl in enumerate(blocks):
        tr_hz = float(np.sum(Z[:, sl] * hZ[:, sl]))
        tr_corr = float(np.sum(xhz[:, sl] * cz[:, sl]))
        dg = tr_hz - tr_corr - dof / rss * float(ztr[sl] @ ztr[sl])
        grad[k] = dg
    return float(dev), grad


def reml_sigma2(theta: np.ndarray, X: np.ndarray, y: np.ndarray, Z: np.ndarray, blocks: list[slice]) -> float:
    """The profiled residual variance ``rss / (n - p)`` at ``theta``."""
    lam = np.empty(Z.shape[1])
    for k, sl in enumerate(blocks):
        lam[sl] = theta[k]
    A = Z * lam
    cM = sla.cho_factor(np.eye(Z.shape[1]) + A.T @ A, lower=True)
    hX = X - A @ sla.cho_solve(cM, A.T @ X)
    hy = y - A @ sla.cho_solve(cM, A.T @ y)
    b = np.linalg.solve(X.T @ hX, X.T @ hy)
    r = y - X @ b
    hr = hy - hX @ b
    return float(r @ hr) / (X.shape[0] - X.shape[1])


def fit_reml(X: np.ndarray, y: np.ndarray, Z: np.ndarray, blocks: list[slice]) -> RemlSolution:
    """Minimise the profiled REML deviance over ``theta >= 0`` (L-BFGS-B, several starts)."""
    k = len(blocks)
    scale = float(np.std(y)) or 1.0
    ys = y / scale  # theta is scale free; scaling y keeps the deviance well conditioned
    best: tuple[float, np.ndarray, bool, str] | None = None
    for start in (1.0, 0.2, 5.0):
        res = minimize(
            _deviance_and_gradient,
            np.full(k, start),
            args=(X, ys, Z, blocks),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, None)] * k,
            options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000},
        )
        if best is None or res.fun < best[0] - 1e-12:
            best = (float(res.fun), np.asarray(res.x, dtype=float), bool(res.success), str(res.message))
    assert best is not None
    dev_s, theta, _ok, msg = best
    # Polish: a zero-bounded Newton-free refinement from the best point (L-BFGS-B may stop a hair early).
    res = minimize(
        _deviance_and_gradient,
        theta,
        args=(X, ys, Z, blocks),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * k,
        options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 2000},
    )
    if res.fun <= dev_s:
        theta = np.asarray(res.x, dtype=float)
    theta = np.where(theta**2 < BOUNDARY_TOL, 0.0, theta)
    dev_y, dg = _deviance_and_dg(theta, X, ys, Z, blocks)
    dev, _ = _deviance_and_dg(theta, X, y, Z, blocks)
    # Converged: every free parameter has a (near) zero gradient in theta; a parameter on the boundary
    # may have a positive gradient in g (the deviance rises into the interior), not a negative one.
    interior = theta > 0
    g_ok = bool(np.all(np.abs(2.0 * theta[interior] * dg[interior]) < 1e-4))
    g_ok = g_ok and bool(np.all(dg[~interior] > -1e-4))
    sigma2 = reml_sigma2(theta, X, y, Z, blocks)
    return RemlSolution(theta=theta, deviance=dev, sigma2=sigma2, converged=g_ok, message=msg)
