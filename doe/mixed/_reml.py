"""Profiled REML for a linear model with independent random intercepts.

Model: ``y = X b + sum_k Z_k u_k + e`` with ``u_k ~ N(0, s2_k I)``, ``e ~ N(0, s2 I)``, so
``V = s2 H`` with ``H = I + sum_k g_k Z_k Z_k'`` and ``g_k = s2_k / s2``. The residual variance and the
fixed effects are profiled out (Bates et al. 2015, JSS 67(1), sec. 3.4), leaving the REML deviance as a
function of the relative standard deviations ``theta_k = sqrt(g_k) >= 0`` (lme4's parameters):

    -2 l_R(theta) = log|H| + log|X' H^-1 X| + (n - p) (1 + log(2 pi rss / (n - p)))

where ``rss = r' H^-1 r`` and ``r = y - X b_GLS``. This is lme4's "REML criterion at convergence".
``H^-1`` is applied through the q x q matrix ``M = I + A'A`` with ``A = Z diag(theta)`` (Woodbury) on the
cross-products ``Z'Z, Z'X, Z'y, X'X, X'y, y'y`` computed once, so an evaluation costs O(q^3 + q^2 p), q
the total number of random levels, independent of n. The gradient is analytic.
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


@dataclass(frozen=True)
class CrossProducts:
    """``C = [Z X y]' [Z X y]``, computed once: every evaluation works in q + p + 1 dimensions, not n."""

    C: np.ndarray
    q: int
    p: int
    n: int
    blocks: list[slice]

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray, Z: np.ndarray, blocks: list[slice]) -> CrossProducts:
        """Cross-products of ``Z``, ``X`` and ``y``."""
        W = np.column_stack([Z, X, y])
        return cls(W.T @ W, Z.shape[1], X.shape[1], X.shape[0], blocks)

    def scaled(self, c: float) -> CrossProducts:
        """The cross-products with ``y / c`` in place of ``y``."""
        C = self.C.copy()
        C[-1, :] /= c
        C[:, -1] /= c
        return CrossProducts(C, self.q, self.p, self.n, self.blocks)

    def h_products(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """``[Z X y]' H^-1 [Z X y]`` and ``log|H|`` at ``theta``.

        With ``A = Z diag(lam)`` and ``M = I + A'A``: ``H^-1 = I - A M^-1 A'``, so
        ``U' H^-1 W = U'W - (U'Z) lam M^-1 lam (Z'W)``: one Cholesky factorisation and one solve.
        """
        q = self.q
        lam = np.empty(q)
        for k, sl in enumerate(self.blocks):
            lam[sl] = theta[k]
        L = lam[:, None] * self.C[:q, :]
        M = L[:, :q] * lam[None, :]
        M[np.diag_indices(q)] += 1.0
        cM = sla.cho_factor(M, lower=True, check_finite=False)
        logdet_h = 2.0 * float(np.sum(np.log(np.diag(cM[0]))))
        return self.C - L.T @ sla.cho_solve(cM, L, check_finite=False), logdet_h


def _deviance_and_gradient(theta: np.ndarray, cp: CrossProducts) -> tuple[float, np.ndarray]:
    """Profiled REML deviance and its gradient with respect to ``theta``."""
    dev, dg = _deviance_and_dg(theta, cp)
    return dev, 2.0 * theta * dg


def _deviance_and_dg(theta: np.ndarray, cp: CrossProducts) -> tuple[float, np.ndarray]:
    """Profiled REML deviance and its gradient with respect to ``g = theta**2``."""
    q, p = cp.q, cp.p
    hm, logdet_h = cp.h_products(theta)
    xhx = hm[q:q + p, q:q + p]
    xhy = hm[q:q + p, -1]
    cX = sla.cho_factor(xhx, lower=True, check_finite=False)
    logdet_x = 2.0 * float(np.sum(np.log(np.diag(cX[0]))))
    rhs = np.column_stack([xhy, hm[q:q + p, :q]])
    sol = sla.cho_solve(cX, rhs, check_finite=False)
    b, cz = sol[:, 0], sol[:, 1:]
    rss = float(hm[-1, -1]) - float(b @ xhy)
    dof = cp.n - p
    dev = logdet_h + logdet_x + dof * (1.0 + np.log(2.0 * np.pi * rss / dof))
    # d dev / d g_k = tr(Z_k' P_H Z_k) - dof / rss * ||Z_k' H^-1 r||^2, P_H = H^-1 - H^-1 X (X'H^-1X)^-1 X'H^-1
    zhz = hm[:q, :q]
    xhz = hm[q:q + p, :q]
    zhr = hm[:q, -1] - xhz.T @ b
    grad = np.empty(len(cp.blocks))
    for k, sl in enumerate(cp.blocks):
        tr_p = float(np.trace(zhz[sl, sl])) - float(np.sum(xhz[:, sl] * cz[:, sl]))
        grad[k] = tr_p - dof / rss * float(zhr[sl] @ zhr[sl])
    return float(dev), grad


def reml_sigma2(theta: np.ndarray, cp: CrossProducts) -> float:
    """The profiled residual variance ``rss / (n - p)`` at ``theta``."""
    q, p = cp.q, cp.p
    hm, _ = cp.h_products(theta)
    xhy = hm[q:q + p, -1]
    b = np.linalg.solve(hm[q:q + p, q:q + p], xhy)
    return float((float(hm[-1, -1]) - float(b @ xhy)) / (cp.n - p))


def _newton_polish(theta: np.ndarray, cp: CrossProducts, steps: int = 6) -> np.ndarray:
    """Newton steps on the interior parameters (Hessian by central differences of the analytic gradient).

    L-BFGS-B stops where its tolerances say, which moves with the SciPy release (1.15 rewrote it); the
    Satterthwaite and Kenward-Roger df depend on the optimum to about the sixth digit, so a few Newton steps
    put every release on the same point. A step that does not lower the deviance is not taken.
    """
    free = np.flatnonzero(theta > 0)
    if not len(free):
        return theta
    dev, grad = _deviance_and_gradient(theta, cp)
    for _ in range(steps):
        h = 1e-5 * np.maximum(theta[free], 1e-3)
        hess = np.empty((len(free), len(free)))
        for j, (i, hi) in enumerate(zip(free, h, strict=True)):
            up, down = theta.copy(), theta.copy()
            up[i] += hi
            down[i] -= hi
            hess[:, j] = (_deviance_and_gradient(up, cp)[1][free] - _deviance_and_gradient(down, cp)[1][free]) / (2 * hi)
        hess = (hess + hess.T) / 2
        try:
            step = np.linalg.solve(hess, grad[free])
        except np.linalg.LinAlgError:
            return theta
        trial = theta.copy()
        trial[free] = theta[free] - step
        if np.any(trial[free] <= 0):
            return theta
        new_dev, new_grad = _deviance_and_gradient(trial, cp)
        if not new_dev <= dev + 1e-13 * max(1.0, abs(dev)):
            return theta
        theta, dev, grad = trial, new_dev, new_grad
        if np.max(np.abs(step)) < 1e-12:
            break
    return theta


def fit_reml(X: np.ndarray, y: np.ndarray, Z: np.ndarray, blocks: list[slice]) -> RemlSolution:
    """Minimise the profiled REML deviance over ``theta >= 0`` (L-BFGS-B, several starts)."""
    k = len(blocks)
    cp = CrossProducts.of(X, y, Z, blocks)
    scale = float(np.std(y)) or 1.0
    cps = cp.scaled(scale)  # theta is scale free; scaling y keeps the deviance well conditioned
    best: tuple[float, np.ndarray, bool, str] | None = None
    for start in (1.0, 0.2, 5.0):
        res = minimize(
            _deviance_and_gradient,
            np.full(k, start),
            args=(cps,),
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
        args=(cps,),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * k,
        options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 2000},
    )
    if res.fun <= dev_s:
        theta = np.asarray(res.x, dtype=float)
    theta = np.where(theta**2 < BOUNDARY_TOL, 0.0, theta)
    theta = _newton_polish(theta, cps)
    _, dg = _deviance_and_dg(theta, cps)
    dev, _ = _deviance_and_dg(theta, cp)
    # Converged: every free parameter has a (near) zero gradient in theta; a parameter on the boundary
    # may have a positive gradient in g (the deviance rises into the interior), not a negative one.
    interior = theta > 0
    g_ok = bool(np.all(np.abs(2.0 * theta[interior] * dg[interior]) < 1e-4))
    g_ok = g_ok and bool(np.all(dg[~interior] > -1e-4))
    sigma2 = reml_sigma2(theta, cp)
    return RemlSolution(theta=theta, deviance=dev, sigma2=sigma2, converged=g_ok, message=msg)
