"""Inference at the REML estimates: GLS fixed effects, BLUPs, the information of the variance parameters,
and the matrices the Kenward-Roger and Satterthwaite tests need.

The variance parameters are ``sigma = (s2_1, ..., s2_K, s2)`` (random effects in the caller's order, then
the residual), and ``V = sum_i sigma_i G_i`` with ``G_k = Z_k Z_k'`` and ``G_{K+1} = I``. ``V`` is linear
in ``sigma``, so its second derivatives are zero (the ``R_ij`` of Kenward & Roger 1997 vanish). Each
``G_i = F_i F_i'`` is handled through its factor ``F_i`` (``Z_k`` or ``I``), so every trace below is a
squared Frobenius norm: ``tr(P G_i P G_j) = ||F_i' P F_j||^2``.

- Expected REML information ``I_ij = tr(P G_i P G_j) / 2`` (Harville 1977), ``P = V^-1 - V^-1 X Phi X' V^-1``
  and ``Phi = (X' V^-1 X)^-1``. Its inverse is ``component_cov`` and the ``W`` of Kenward-Roger
  (pbkrtest's ``vcovAdj``: ``W = 2 (tr(P G_i P G_j))^-1``).
- Observed REML information (half the Hessian of ``-2 l_R``):
  ``-tr(P G_i P G_j) / 2 + y' P G_i P G_j P y``; lmerTest's Satterthwaite method uses the inverse of the
  (numerically differentiated) Hessian of the deviance, which at an interior optimum equals this one in any
  parameterisation. Components estimated at 0 (the boundary) are left out of it: in lme4's parameters
  (relative standard deviations) their Jacobian of ``Phi`` is zero there, so lmerTest gets the same.
- Kenward-Roger adjusted covariance (Kenward & Roger 1997, eq. 2 to 5; pbkrtest's ``vcovAdj``):
  ``Phi_A = Phi + 2 Phi (sum_ij W_ij (Q_ij - P_i Phi P_j)) Phi`` with ``P_i = -X'V^-1 G_i V^-1 X`` and
  ``Q_ij = X'V^-1 G_i V^-1 G_j V^-1 X``; every component is kept, as pbkrtest does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla


@dataclass(frozen=True)
class Inference:
    """Everything computed once at the estimates."""

    coef: np.ndarray
    phi: np.ndarray  # (X'V^-1X)^-1
    phi_a: np.ndarray  # Kenward-Roger adjusted
    W: np.ndarray  # Phi X' V^-1
    vinv_r: np.ndarray  # V^-1 (y - X b)
    expected_cov: np.ndarray  # inverse expected information, all components
    observed_cov: np.ndarray  # inverse observed information, active components only (lmerTest's A)
    active: np.ndarray  # bool per component: in the Satterthwaite computation
    jac: list[np.ndarray]  # d Phi / d sigma_i for the active components
    kr_p: list[np.ndarray]  # P_i of Kenward-Roger, every component
    kr_w: np.ndarray  # W of Kenward-Roger (= expected_cov)
    warnings: list[str]


def _pinv_sym(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """Inverse of a symmetric matrix through its eigenvalues; the Moore-Penrose inverse if singular."""
    vals, vecs = np.linalg.eigh(a)
    tol = 1e-10 * max(1.0, float(np.max(np.abs(vals)))) if vals.size else 0.0
    keep = vals > tol
    inv = (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T
    return inv, bool(np.all(keep))


def compute_inference(
    X: np.ndarray,
    y: np.ndarray,
    factors: list[np.ndarray | None],
    sigma: np.ndarray,
) -> Inference:
    """Fixed effects, covariances and the df machinery at the variance estimates ``sigma``.

    ``factors[i]`` is ``Z_k`` (n x m_k indicator matrix) or ``None`` for the identity (the residual).
    """
    n, p = X.shape
    V = np.zeros((n, n))
    for s, F in zip(sigma, factors):
        if F is None:
            V[np.diag_indices(n)] += s
        else:
            V += s * (F @ F.T)
    cV = sla.cho_factor(V, lower=True)
    vinv = sla.cho_solve(cV, np.eye(n))
    vinv = (vinv + vinv.T) / 2.0
    vx = vinv @ X
    phi = np.linalg.inv(X.T @ vx)
    phi = (phi + phi.T) / 2.0
    W = phi @ vx.T
    coef = W @ y
    r = y - X @ coef
    e = vinv @ r  # = P y
    P = vinv - vx @ phi @ vx.T

    def ft(F: np.ndarray | None, M: np.ndarray) -> np.ndarray:
        return M if F is None else F.T @ M

    m = len(factors)
    # F_i' P F_j and F_i' V^-1 F_j, F_i' V^-1 X, F_i' P y
    fpf = [[ft(factors[i], ft(factors[j], P.T).T) for j in range(m)] for i in range(m)]
    fvf = [[ft(factors[i], ft(factors[j], vinv.T).T) for j in range(m)] for i in range(m)]
    fvx = [ft(F, vx) for F in factors]  # F_i' V^-1 X
    fe = [ft(F, e[:, None])[:, 0] for F in factors]

    tr_pp = np.array([[float(np.sum(fpf[i][j] ** 2)) for j in range(m)] for i in range(m)])
    expected_info = tr_pp / 2.0
    expected_cov, ok_e = _pinv_sym(expected_info)
    warnings: list[str] = []
    if not ok_e:
        warnings.append("The expected information of the variance components is singular; its generalised "
                        "inverse is used.")

    observed = np.array(
        [[-tr_pp[i, j] / 2.0 + float(fe[i] @ fpf[i][j] @ fe[j]) for j in range(m)] for i in range(m)]
    )
    active = np.array([bool(s > 0) for s in sigma])
    idx = np.flatnonzero(active)
    observed_cov, ok_o = _pinv_sym(observed[np.ix_(idx, idx)])
    vals = np.linalg.eigvalsh(observed[np.ix_(idx, idx)])
    if vals.size and vals[0] <= 1e-8 * max(1.0, abs(vals[-1])):
        warnings.append("The observed information of the variance components is not positive definite "
                        "(the REML optimum may be poorly defined); Satterthwaite df use its generalised inverse.")
    del ok_o

    xgx = [fvx[i].T @ fvx[i] for i in range(m)]  # X'V^-1 G_i V^-1 X
    jac = [phi @ xgx[i] @ phi for i in idx]

    kr_p = [-a for a in xgx]
    U = np.zeros((p, p))
    for i in range(m):
        for j in range(m):
            q_ij = fvx[i].T @ fvf[i][j] @ fvx[j]
            U += expected_cov[i, j] * (q_ij - kr_p[i] @ phi @ kr_p[j])
    phi_a = phi + 2.0 * phi @ U @ phi
    phi_a = (phi_a + phi_a.T) / 2.0
    return Inference(
        coef=coef,
        phi=phi,
        phi_a=phi_a,
        W=W,
        vinv_r=e,
        expected_cov=expected_cov,
        observed_cov=observed_cov,
        active=active,
        jac=jac,
        kr_p=kr_p,
        kr_w=expected_cov,
        warnings=warnings,
    )
