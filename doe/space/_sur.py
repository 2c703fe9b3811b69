"""Exact posterior draws of the seemingly-unrelated regression (SUR) model by batched Gibbs sampling.

Model and prior
---------------
CQA *i* (i = 1..m) is observed on n_i of the N runs, y_i = X_i beta_i + e_i, where the error
vectors of one run are N(0, Sigma) and independent between runs; the prior is
p(beta, Sigma) ~ |Sigma|^-(m+1)/2 (Zellner 1971, ch. 8; Percy 1992). The Gibbs sampler alternates

    Sigma | beta, Y ~ inverse-Wishart(N, E(beta)' E(beta))
    beta | Sigma, Y ~ N(GLS estimate, (X' (Sigma^-1 kron I) X)^-1)

(Percy 1992; Griffiths 2003, sec. 3). When a CQA is missing on some runs the missing responses
are drawn too (data augmentation, Tanner & Wong 1987): each from its conditional normal given
the observed responses of its run, beta and Sigma. Any fixed model row for a missing cell is
exact, because integrating the imputed values out gives the observed-data likelihood whatever
their mean is: the sampler uses the true model row where it follows from another CQA's model
observed on that run (a linear model inside a quadratic one, or the same model), else a zero row
(the imputed value is then a pure residual).

The coefficient step
--------------------
All coefficients are drawn in one block, in the orthonormal coordinates gamma_i = R_i beta_i of
the QR decomposition X_i = Q_i R_i, by whichever of two exact routes needs the smaller linear
system per draw:

* **direct**: gamma | Sigma ~ N(A^-1 c, A^-1), A = [w_ij Q_i'Q_j] (P x P, P = sum p_i,
  w = Sigma^-1), by the Cholesky factor of A;
* **constrained**: with Z an orthonormal basis of the span of all the CQAs' model columns
  (q columns), the unrestricted multivariate regression Y = Z B + E has B | Sigma, Y ~ matrix
  normal(Z'Y, I, Sigma), and the SUR is that regression with CQA *i*'s column of B restricted to
  the span of H_i = Z'Q_i (N_i' b_i = 0, N_i the orthogonal complement). A Gaussian conditioned
  on a linear subspace is drawn exactly by drawing it unrestricted and correcting with the
  kriging step b = b* - V N (N'V N)^-1 N'b*, V = Sigma kron I (Hoffman & Ribak 1991): a
  K x K system, K = sum (q - p_i). With every CQA on the same model K = 0 and this is the
  exact matrix-normal draw.

Many chains at once
-------------------
The page needs thousands of draws in well under a second, so many short chains run side by side
as stacked numpy arrays (batched Cholesky factors and solves, no Python loop over chains). Groups
of chains (superchains) share a start drawn from the SUR-style approximation ``doe.space`` uses;
every chain runs ``burn_in`` iterations and then keeps every ``thin``-th state. Defaults (400
chains, 16 burn-in iterations, thin 2) were set by measuring the bias of log|Sigma| and of the
coefficients against long runs: it decays geometrically (by about 0.65 per iteration in the
slowest case tried, 13 runs with a 6-term model) and is below 0.03 posterior SDs after 12.
Convergence is checked on log|Sigma| and every coefficient by the nested R-hat for many short
chains (Margossian et al. 2024) and by a drift test (Geweke 1992, pooled over the independent
chains: the first against the second half of the kept states); the effective sample size
(Gelman et al. 2013, sec. 11.5) says how many independent draws the kept ones are worth. When
the check fails the kept states become burn-in and another round is run (at most
``MAX_ROUNDS``).

References
----------
Zellner, A. (1971) An Introduction to Bayesian Inference in Econometrics, Wiley, ch. 8.
Percy, D.F. (1992) Prediction for seemingly unrelated regressions. J. R. Stat. Soc. B 54:243-252.
Griffiths, W.E. (2003) Bayesian inference in the seemingly unrelated regressions model. In
Computer-Aided Econometrics (D. Giles, ed.), Marcel Dekker, 263-290.
Tanner, M.A., Wong, W.H. (1987) The calculation of posterior distributions by data augmentation.
JASA 82:528-540.
Hoffman, Y., Ribak, E. (1991) Constrained realizations of Gaussian fields. Astrophys. J. 380:L5-L8.
Gelman, A., Carlin, J.B., Stern, H.S., Dunson, D.B., Vehtari, A., Rubin, D.B. (2013) Bayesian Data
Analysis, 3rd ed., CRC Press, sec. 11.4-11.5.
Geweke, J. (1992) Evaluating the accuracy of sampling-based approaches to the calculation of
posterior moments. In Bayesian Statistics 4 (J.M. Bernardo et al., eds.), Oxford University
Press, 169-193.
Margossian, C.C., Hoffman, M.D., Sountsov, P., Riou-Durand, L., Vehtari, A., Gelman, A. (2024)
Nested R-hat: assessing the convergence of Markov chain Monte Carlo when running many short
chains. Bayesian Analysis; arXiv:2110.13017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from scipy import linalg

__all__ = ["drift_z", "effective_sample_size", "nested_rhat", "sur_draws", "system_size", "sur_draws_collapsed"]

#: Chains run side by side by default (fewer when fewer draws are asked for).
DEFAULT_CHAINS = 400
#: Iterations discarded at the start of every chain by default.
DEFAULT_BURN_IN = 16
#: Keep every ``thin``-th state after the burn-in by default.
DEFAULT_THIN = 2
#: Chains that share a starting point (a superchain, for the nested R-hat) by default.
CHAINS_PER_SUPERCHAIN = 20
#: Nested R-hat below this counts as converged (Margossian et al. 2024).
RHAT_OK = 1.01
#: |z| of the drift check (Geweke 1992, pooled over chains) below this counts as converged.
DRIFT_OK = 4.0
#: At most this many rounds of kept iterations: an unconverged round becomes burn-in of the next.
MAX_ROUNDS = 3


@dataclass
class _Problem:
    """The data in the sampler's coordinates (built once per call)."""

    m: int
    N: int
    p: list[int]
    off: np.ndarray  # start of every CQA's block in the stacked coefficient vector (length m + 1)
    owner: np.ndarray  # (P,) CQA of every stacked coefficient
    Qfull: np.ndarray  # (N x P) orthonormal model columns of every CQA on all N runs (see _complete_rows)
    R: list[np.ndarray]  # X_i (all N rows) = Qfull_i R_i: gamma_i = R_i beta_i
    Y: np.ndarray  # (N x m) responses, 0 where missing
    observed: np.ndarray  # (N x m) bool
    beta_hat: list[np.ndarray]  # least-squares estimates on each CQA's own runs
    rows: list[np.ndarray]  # each CQA's runs
    ols_rows: list[np.ndarray]  # (X_i'X_i)^-1 X_i' on each CQA's own runs (p_i x n_i)
    resid: list[np.ndarray]  # own-model least-squares residuals
    sse: np.ndarray  # (m,) residual sums of squares of the own-model fits
    df: np.ndarray  # (m,) residual degrees of freedom n_i - p_i
    patterns: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (missing CQAs, observed CQAs, runs)
    route: str = "direct"  # or "constrained"
    G: np.ndarray | None = None  # direct: Qfull'Qfull (P x P)
    Z: np.ndarray | None = None  # constrained: (N x q) orthonormal basis of all model columns
    H: np.ndarray | None = None  # constrained: (q x P) Z'Qfull
    Nc: np.ndarray | None = None  # constrained: (q x K) orthogonal complements of the H_i, side by side
    Noff: np.ndarray | None = None  # constrained: start of every CQA's complement in Nc (length m + 1)
    Nowner: np.ndarray | None = None  # constrained: (K,) CQA of every complement column
    GN: np.ndarray | None = None  # constrained: Nc'Nc (K x K)


def sur_draws(X: list[np.ndarray], y: list[np.ndarray], rows: list[np.ndarray], n_runs: int, n: int,
              rng: np.random.Generator, *, beta0: list[np.ndarray] | None = None, chains: int | None = None,
              burn_in: int | None = None, thin: int | None = None
              ) -> tuple[list[np.ndarray], np.ndarray, dict[str, Any]]:
    """Draws of the exact SUR posterior (non-informative prior) by many Gibbs chains in parallel.

    Parameters
    ----------
    X : list of ndarray
        CQA *i*'s model matrix (n_i x p_i, full column rank, the rows it was fitted on).
    y : list of ndarray
        CQA *i*'s responses (n_i,), on the fitted scale, in the order of the rows of ``X[i]``.
    rows : list of ndarray
        CQA *i*'s runs as indices 0..n_runs-1 into the union of all runs (n_i distinct integers).
        When every CQA has the same rows the sampler is the plain SUR Gibbs sampler; otherwise the
        missing responses are drawn too (data augmentation).
    n_runs : int
        Number of runs in the union (every run must be observed on at least one CQA).
    n : int
        Number of draws returned.
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same draws.
    beta0 : list of ndarray, optional
        Where the chains start. Per CQA either a point (p_i,), around which the chains start with
        the spread of that CQA's own posterior, or starting values (p_i x k) used as they are,
        chain c from column c mod k (e.g. draws of an approximate joint posterior). Default: the
        least-squares estimates (with that spread).
    chains : int, optional
        Chains run side by side (default ``DEFAULT_CHAINS``, at most n).
    burn_in : int, optional
        Iterations discarded at the start of every chain (default ``DEFAULT_BURN_IN``).
    thin : int, optional
        Keep every ``thin``-th state after the burn-in (default ``DEFAULT_THIN``).

    Returns
    -------
    coef : list of ndarray
        Per CQA, the coefficient draws (p_i x n), in the columns of ``X[i]``.
    sigma : ndarray
        Residual covariance draws (n x m x m); draw k of ``sigma`` goes with column k of every
        ``coef[i]`` (one joint posterior draw).
    diagnostics : dict
        ``chains``, ``superchains`` (groups of chains with a common start), ``burn_in``, ``thin``,
        ``iterations`` (per chain), ``kept_per_chain``, ``route`` ("direct" or "constrained":
        the coefficient step), ``missing_cells`` (responses drawn by data augmentation),
        ``rounds`` (1, or more when a round failed the convergence check), ``rhat`` (nested
        R-hat), ``ess`` (effective sample size) and ``drift_z`` (|z| of the drift test), each a
        dict for log|Sigma| and for the coefficient with the worst value (named ``beta[i][j]``,
        CQA i, column j), ``rhat_max``, ``ess_min``, ``drift_max`` and ``converged``
        (``rhat_max`` below ``RHAT_OK`` and ``drift_max`` below ``DRIFT_OK``).

    Raises
    ------
    ValueError
        Inconsistent shapes, a rank-deficient model matrix, a CQA without residual degrees of
        freedom, N - max p_i < m (improper: with one model for every CQA the posterior of Sigma is
        inverse-Wishart(N - p), which needs N - p >= m), or fewer than m + 1 runs on which every
        CQA was observed (the posterior of the correlations could be improper).

    Notes
    -----
    Draw k is the (k // chains + 1)-th kept state of chain ``k % chains`` in the last round (in the
    first round, iteration ``burn_in + thin * (k // chains + 1)``): after the burn-in, draws from
    different chains are independent, draws of one chain are a Markov chain (their
    autocorrelation is what the effective sample size measures). The first n of the
    chains x kept states are returned, so dropping the tail of the draws drops whole iterations.
    """
    prob = _prepare(X, y, rows, int(n_runs))
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    C = min(n, DEFAULT_CHAINS if chains is None else int(chains))
    burn = DEFAULT_BURN_IN if burn_in is None else int(burn_in)
    thin = DEFAULT_THIN if thin is None else int(thin)
    if C < 1 or burn < 0 or thin < 1:
        raise ValueError("chains must be >= 1, burn_in >= 0 and thin >= 1")
    keep = -(-n // C)
    gamma, scale, superchain = _start(prob, C, rng, beta0)
    Y = prob.Y
    if not prob.observed.all():  # start the missing responses at the fit plus each CQA's noise
        Y = _fitted(prob, gamma) + scale[:, None, :] * rng.standard_normal((C, prob.N, prob.m))
        Y[:, prob.observed] = prob.Y[prob.observed]
    kept_g = np.empty((keep, C, gamma.shape[1]))
    kept_s = np.empty((keep, C, prob.m, prob.m))
    kept_ld = np.empty((keep, C))
    total = 0
    for rounds in range(1, MAX_ROUNDS + 1):  # another round only when the last one did not converge
        steps = (burn if rounds == 1 else 0) + keep * thin
        for it in range(1, steps + 1):
            sigma, root, wroot, logdet = _sigma_step(prob, Y - _fitted(prob, gamma), rng)
            gamma = _gamma_step(prob, Y, sigma, root, wroot, rng)
            if Y.ndim == 3:
                Y = _impute(prob, Y, _fitted(prob, gamma), wroot, rng)
            k, r = divmod(it - (steps - keep * thin), thin)
            if k >= 1 and r == 0:
                kept_g[k - 1], kept_s[k - 1], kept_ld[k - 1] = gamma, sigma, logdet
        total += steps
        coef = _to_beta(prob, kept_g)  # (keep, C, P) in the columns of X
        diag = _diagnostics(prob, coef, kept_ld, superchain)
        if diag["converged"]:
            break
    diag.update(chains=C, superchains=int(superchain.max()) + 1, burn_in=burn, thin=thin, iterations=total,
                rounds=rounds, kept_per_chain=keep, route=prob.route, missing_cells=int((~prob.observed).sum()))
    flat = coef.reshape(keep * C, -1)[:n]
    out = [np.ascontiguousarray(flat[:, prob.off[i]:prob.off[i + 1]].T) for i in range(prob.m)]
    return out, kept_s.reshape(keep * C, prob.m, prob.m)[:n].copy(), diag


# -- set-up ---------------------------------------------------------------------------------------
def system_size(X: list[np.ndarray], y: list[np.ndarray], rows: list[np.ndarray], n_runs: int) -> int:
    """Coefficients in the linear system :func:`sur_draws` solves per draw (K for the constrained step,
    P for the direct one, whichever is smaller): its cost per draw grows with the cube of this.

    Raises ValueError for data :func:`sur_draws` refuses."""
    prob = _prepare(X, y, rows, n_runs)
    _choose_route(prob)
    if prob.route == "constrained":
        assert prob.Nc is not None  # _choose_route sets it on this route
        return int(prob.Nc.shape[1])
    return int(sum(prob.p))


def _prepare(X: list[np.ndarray], y: list[np.ndarray], rows: list[np.ndarray], N: int) -> _Problem:
    m = len(X)
    if m == 0 or len(y) != m or len(rows) != m:
        raise ValueError("X, y and rows must be lists of the same non-zero length (one entry per CQA)")
    Xs, rs, bh, roots, resids, sse, df = [], [], [], [], [], [], []
    observed = np.zeros((N, m), dtype=bool)
    Y = np.zeros((N, m))
    for i, (x, v, r) in enumerate(zip(X, y, rows)):
        x, v, r = np.asarray(x, float), np.asarray(v, float).ravel(), np.asarray(r).ravel()
        if x.ndim != 2 or x.shape[0] != len(v) or len(r) != len(v):
            raise ValueError(f"CQA {i}: X must be n_i x p_i with one response and one row index per row")
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(v)):
            raise ValueError(f"CQA {i}: X and y must be finite")
        if not np.issubdtype(r.dtype, np.integer) or len(np.unique(r)) != len(r) or (
                len(r) and (r.min() < 0 or r.max() >= N)):
            raise ValueError(f"CQA {i}: rows must be distinct integers in 0..{N - 1}")
        if x.shape[0] <= x.shape[1]:
            raise ValueError(f"CQA {i}: {x.shape[0]} runs for {x.shape[1]} coefficients leave no residual df")
        Q, R = linalg.qr(x, mode="economic")
        d = np.abs(np.diag(R))
        if d.size and d.min() <= 1e-10 * max(d.max(), 1e-300):
            raise ValueError(f"CQA {i}: the model matrix is rank deficient")
        g = Q.T @ v
        res = v - Q @ g
        ols = np.linalg.inv(R) @ Q.T
        Xs.append(x)
        rs.append(r)
        bh.append(ols @ v)
        roots.append(ols)
        resids.append(res)
        sse.append(float(res @ res))
        df.append(x.shape[0] - x.shape[1])
        observed[r, i] = True
        Y[r, i] = v
    if not observed.any(axis=1).all():
        raise ValueError("every run in 0..n_runs-1 must be observed on at least one CQA")
    if m > 1 and N - max(x.shape[1] for x in Xs) < m:
        raise ValueError(f"{N} runs minus the {max(x.shape[1] for x in Xs)} coefficients of the largest model "
                         f"leave fewer than {m} df for {m} CQAs: the posterior of Sigma is improper "
                         "(with one model for all, Sigma ~ inverse-Wishart(n - p) needs n - p >= m)")
    complete = int(observed.all(axis=1).sum())
    if m > 1 and complete < m + 1:
        raise ValueError(f"only {complete} runs have every CQA: at least {m + 1} are needed "
                         "for the posterior of the correlations")
    Qs, Rs = [], []
    for x in _complete_rows(Xs, rs, observed):
        Q, R = linalg.qr(x, mode="economic")
        Qs.append(Q)
        Rs.append(R)
    p = [x.shape[1] for x in Xs]
    off = np.concatenate([[0], np.cumsum(p)]).astype(int)
    prob = _Problem(m, N, p, off, np.repeat(np.arange(m), p), np.hstack(Qs), Rs, Y, observed, bh, rs, roots, resids,
                    np.array(sse), np.array(df, float), _patterns(observed))
    _choose_route(prob)
    return prob


def _complete_rows(Xs: list[np.ndarray], rows: list[np.ndarray], observed: np.ndarray) -> list[np.ndarray]:
    """Every CQA's model matrix on all N runs, for data augmentation.

    On its missing runs a CQA's row is the mean its imputed response is drawn around; any fixed
    row is exact (integrating the imputed responses out leaves the observed-data likelihood). Where
    the CQA's columns are, on the runs both have, linear combinations X_j T of the columns of a CQA
    *j* observed on the missing run (e.g. a linear model inside a quadratic one, or the same
    model), the row is x_j' T: the true model row, which keeps the span of all model columns
    small (the constrained coefficient step). Otherwise the row is zero (the imputed value is a
    residual).
    """
    N, m = observed.shape
    where = [dict(zip(r.tolist(), range(len(r)))) for r in rows]
    out = []
    for i, (x, r) in enumerate(zip(Xs, rows)):
        xf = _on_all_runs(x, r, N)
        todo = set(np.flatnonzero(~observed[:, i]).tolist())
        for j in sorted(range(m), key=lambda j: Xs[j].shape[1]):
            runs = sorted(u for u in todo if observed[u, j])
            if j == i or not runs:
                continue
            shared = np.flatnonzero(observed[:, i] & observed[:, j])
            xj = Xs[j][[where[j][u] for u in shared]]
            xi = x[[where[i][u] for u in shared]]
            T = np.linalg.lstsq(xj, xi, rcond=None)[0]
            if np.max(np.abs(xj @ T - xi)) <= 1e-9 * max(1.0, float(np.max(np.abs(xi)))):
                xf[runs] = Xs[j][[where[j][u] for u in runs]] @ T
                todo.difference_update(runs)
        out.append(xf)
    return out


def _on_all_runs(x: np.ndarray, r: np.ndarray, N: int) -> np.ndarray:
    out = np.zeros((N, x.shape[1]))
    out[r] = x
    return out


def _patterns(observed: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Runs grouped by which CQAs are missing: (missing CQAs, observed CQAs, runs)."""
    out = []
    incomplete = ~observed.all(axis=1)
    keys = {tuple(row) for row in observed[incomplete].tolist()}
    for key in sorted(keys):
        obs = np.array(key)
        runs = np.flatnonzero(incomplete & (observed == obs).all(axis=1))
        out.append((np.flatnonzero(~obs), np.flatnonzero(obs), runs))
    return out


def _choose_route(prob: _Problem) -> None:
    """Pick the coefficient step with the smaller system: P (direct) or K (constrained)."""
    Qf, P = prob.Qfull, prob.Qfull.shape[1]
    u, s, _ = np.linalg.svd(Qf, full_matrices=False)
    q = int(np.sum(s > 1e-9 * s[0]))
    K = prob.m * q - P
    if K < P:
        Z = u[:, :q]
        H = Z.T @ Qf
        comps = [linalg.null_space(H[:, prob.off[i]:prob.off[i + 1]].T, rcond=1e-9) for i in range(prob.m)]
        sizes = [c.shape[1] for c in comps]
        if sum(sizes) == K:
            prob.route, prob.Z, prob.H = "constrained", Z, H
            prob.Nc = np.hstack(comps) if K else np.zeros((q, 0))
            prob.Noff = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
            prob.Nowner = np.repeat(np.arange(prob.m), sizes)
            prob.GN = prob.Nc.T @ prob.Nc
            return
    prob.G = Qf.T @ Qf


def _start(prob: _Problem, C: int, rng: np.random.Generator, beta0: list[np.ndarray] | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starting coefficients (C x P, orthonormal coordinates), noise SDs (C x m), superchain ids (C,).

    Chains of one superchain share their start: ``CHAINS_PER_SUPERCHAIN`` of them by default.
    A superchain starts from a draw of the SUR-style approximation (the one ``doe.space`` uses):
    every variance from its CQA's own posterior, s_i^2 = SSE_i / chi2(df_i), the correlation of
    the own-model residuals on the runs every CQA has (shrunk 10 % towards independence), and
    beta_i = beta_hat_i + (X_i'X_i)^-1 X_i' z_i with pseudo-errors z ~ N(0, S) per run. Starting
    independent would break a strong residual correlation and lengthen the burn-in.
    """
    m, P = prob.m, prob.off[-1]
    if beta0 is not None and len(beta0) != m:
        raise ValueError("beta0 needs one entry per CQA")
    fixed = [np.asarray(b, float) for b in beta0] if beta0 is not None else None
    for i, b in enumerate(fixed or []):
        if b.ndim not in (1, 2) or b.shape[0] != prob.p[i] or (b.ndim == 2 and b.shape[1] < 1):
            raise ValueError(f"beta0[{i}] must have shape ({prob.p[i]},) or ({prob.p[i]}, k)")
    ks = {b.shape[1] for b in fixed or [] if b.ndim == 2}
    if len(ks) > 1:
        raise ValueError("two-dimensional beta0 entries must have the same number of columns")
    S = min(ks.pop() if ks else max(1, C // CHAINS_PER_SUPERCHAIN), C)
    superchain = np.arange(C) % S
    scale = np.sqrt(prob.sse / rng.chisquare(prob.df, size=(S, m)))  # (S x m)
    corr = _residual_correlation(prob)
    z = rng.standard_normal((S, prob.N, m)) @ np.linalg.cholesky(corr).T * scale[:, None, :]
    gamma = np.empty((S, P))
    for i in range(m):
        sl = slice(prob.off[i], prob.off[i + 1])
        b = prob.beta_hat[i] if fixed is None else fixed[i]
        if b.ndim == 2:
            beta = b.T[:S]
        else:
            beta = b[None, :] + z[:, prob.rows[i], i] @ prob.ols_rows[i].T
        gamma[:, sl] = beta @ prob.R[i].T
    return gamma[superchain], scale[superchain], superchain


def _residual_correlation(prob: _Problem) -> np.ndarray:
    """Correlation of the own-model residuals on the runs every CQA has, shrunk 10 % towards I."""
    full = np.asarray(prob.observed.all(axis=1))
    E = np.column_stack([prob.resid[i][full[prob.rows[i]]] for i in range(prob.m)])
    S = E.T @ E
    d = np.sqrt(np.clip(np.diag(S), 1e-300, None))
    return cast(np.ndarray, 0.9 * S / np.outer(d, d) + 0.1 * np.eye(prob.m))


# -- the Gibbs steps ------------------------------------------------------------------------------
def _fitted(prob: _Problem, gamma: np.ndarray) -> np.ndarray:
    """(C x N x m) fitted values Q_i gamma_i (zero on a CQA's missing runs)."""
    out = np.empty((gamma.shape[0], prob.N, prob.m))
    for i in range(prob.m):
        sl = slice(prob.off[i], prob.off[i + 1])
        out[:, :, i] = gamma[:, sl] @ prob.Qfull[:, sl].T
    return out


def _sigma_step(prob: _Problem, E: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sigma ~ IW(N, E'E) per chain by Bartlett's decomposition.

    Returns Sigma, V with V V' = Sigma, T with T T' = Sigma^-1, and log|Sigma|.
    """
    C, m = E.shape[0], prob.m
    S = np.swapaxes(E, 1, 2) @ E
    U = np.linalg.cholesky(S)  # S = U U'
    A = np.zeros((C, m, m))
    il = np.tril_indices(m, -1)
    A[:, il[0], il[1]] = rng.standard_normal((C, len(il[0])))
    diag = np.sqrt(rng.chisquare(prob.N - np.arange(m), size=(C, m)))
    A[:, np.arange(m), np.arange(m)] = diag
    T = np.linalg.solve(np.swapaxes(U, 1, 2), A)  # U^-T A: Sigma^-1 = T T' ~ Wishart(N, S^-1)
    V = U @ np.swapaxes(np.linalg.inv(A), 1, 2)  # U A^-T: Sigma = V V'
    sigma = V @ np.swapaxes(V, 1, 2)
    logdet = 2 * (np.log(np.einsum("cii->ci", U)).sum(axis=1) - np.log(diag).sum(axis=1))
    return sigma, V, T, logdet


def _gamma_step(prob: _Problem, Y: np.ndarray, sigma: np.ndarray, root: np.ndarray, wroot: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    if prob.route == "constrained":
        return _gamma_constrained(prob, Y, sigma, root, rng)
    return _gamma_direct(prob, Y, wroot, rng)


def _gamma_direct(prob: _Problem, Y: np.ndarray, wroot: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """gamma | Sigma, Y ~ N(A^-1 c, A^-1), A = [w_ij Q_i'Q_j], c_i = Q_i' sum_j w_ij y_j."""
    assert prob.G is not None  # the direct route's
    C, P = wroot.shape[0], prob.off[-1]
    W = wroot @ np.swapaxes(wroot, 1, 2)
    A = prob.G[None] * W[:, prob.owner][:, :, prob.owner]
    QY = np.einsum("nk,cnj->ckj", prob.Qfull, Y) if Y.ndim == 3 else (prob.Qfull.T @ Y)[None]
    c = np.einsum("ckj,ckj->ck", np.broadcast_to(QY, (C, P, prob.m)), W[:, :, prob.owner].swapaxes(1, 2))
    L = np.linalg.cholesky(A)
    u = np.linalg.solve(L, c[..., None]) + rng.standard_normal((C, P, 1))
    return np.linalg.solve(np.swapaxes(L, 1, 2), u)[..., 0]  # L^-T (L^-1 c + z)


def _gamma_constrained(prob: _Problem, Y: np.ndarray, sigma: np.ndarray, root: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Unrestricted B ~ MN(Z'Y, I, Sigma), then the kriging correction onto N_i'b_i = 0.

    b = b* - V N (N'V N)^-1 N'b* with V = Sigma kron I_q (Hoffman & Ribak 1991).
    """
    assert prob.Z is not None and prob.H is not None and prob.Nc is not None  # the constrained route's
    C, q, m = sigma.shape[0], prob.Z.shape[1], prob.m
    Bhat = np.einsum("nq,cnj->cqj", prob.Z, Y) if Y.ndim == 3 else (prob.Z.T @ Y)[None]
    B = Bhat + rng.standard_normal((C, q, m)) @ np.swapaxes(root, 1, 2)  # rows ~ N(0, Sigma)
    if prob.Nc.shape[1]:
        noff, own = prob.Noff, prob.Nowner
        assert noff is not None and own is not None and prob.GN is not None
        r = np.empty((C, prob.Nc.shape[1]))
        for i in range(m):
            r[:, noff[i]:noff[i + 1]] = B[:, :, i] @ prob.Nc[:, noff[i]:noff[i + 1]]
        M = prob.GN[None] * sigma[:, own][:, :, own]
        x = np.linalg.solve(M, r[..., None])[..., 0]
        Uc = np.empty((C, q, m))
        for j in range(m):
            Uc[:, :, j] = x[:, noff[j]:noff[j + 1]] @ prob.Nc[:, noff[j]:noff[j + 1]].T
        B = B - Uc @ sigma
    gamma = np.empty((C, prob.off[-1]))
    for i in range(m):
        sl = slice(prob.off[i], prob.off[i + 1])
        gamma[:, sl] = B[:, :, i] @ prob.H[:, sl]
    return gamma


def _impute(prob: _Problem, Y: np.ndarray, fitted: np.ndarray, wroot: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Missing responses | observed ones of the run, beta, Sigma (conditional normal, precision form).

    With W = Sigma^-1, e_M | e_O ~ N(-W_MM^-1 W_MO e_O, W_MM^-1) for the residuals e = y - fitted.
    """
    W = wroot @ np.swapaxes(wroot, 1, 2)
    C = W.shape[0]
    chains = np.arange(C)[:, None, None]
    for miss, obs, runs in prob.patterns:
        Wmm = W[:, miss][:, :, miss]
        Wmo = W[:, miss][:, :, obs]
        e_obs = (Y[:, runs][:, :, obs] - fitted[:, runs][:, :, obs]).swapaxes(1, 2)  # C x |O| x runs
        Lm = np.linalg.cholesky(Wmm)
        u = np.linalg.solve(Lm, -(Wmo @ e_obs)) + rng.standard_normal((C, len(miss), len(runs)))
        e_mis = np.linalg.solve(np.swapaxes(Lm, 1, 2), u)  # C x |M| x runs
        Y[chains, runs[None, :, None], miss[None, None, :]] = (
            fitted[chains, runs[None, :, None], miss[None, None, :]] + e_mis.swapaxes(1, 2))
    return Y


def _to_beta(prob: _Problem, gamma: np.ndarray) -> np.ndarray:
    """Orthonormal coordinates back to the columns of X: beta_i = R_i^-1 gamma_i."""
    out = np.empty_like(gamma)
    for i in range(prob.m):
        sl = slice(prob.off[i], prob.off[i + 1])
        out[..., sl] = gamma[..., sl] @ np.linalg.inv(prob.R[i]).T
    return out


# -- convergence ----------------------------------------------------------------------------------
def _diagnostics(prob: _Problem, coef: np.ndarray, logdet: np.ndarray, superchain: np.ndarray) -> dict[str, Any]:
    """Nested R-hat and ESS of log|Sigma| and of every coefficient ((draws x chains) arrays)."""
    names = ["log|Sigma|"] + [f"beta[{prob.owner[k]}][{k - prob.off[prob.owner[k]]}]"
                              for k in range(coef.shape[2])]
    series = np.concatenate([logdet[:, :, None], coef], axis=2)
    rh = np.asarray(nested_rhat(series, superchain))  # arrays: series is 3-D
    es = np.asarray(effective_sample_size(series))
    dz = np.asarray(drift_z(series))
    out: dict[str, Any] = {"rhat": {names[0]: float(rh[0])}, "ess": {names[0]: float(es[0])},
                 "drift_z": {names[0]: float(dz[0])}, "rhat_max": math.nan, "ess_min": math.nan,
                 "drift_max": math.nan}
    for key, values, pick, best in (("rhat", rh, np.nanargmax, "rhat_max"), ("ess", es, np.nanargmin, "ess_min"),
                                    ("drift_z", np.abs(dz), np.nanargmax, "drift_max")):
        if np.isfinite(values).any():
            k = int(pick(values))
            out[key][names[k]] = float(values[k])
            out[best] = float(values[k])
    out["converged"] = bool(out["rhat_max"] < RHAT_OK and not out["drift_max"] >= DRIFT_OK)
    return out


def drift_z(draws: np.ndarray) -> np.ndarray | float:
    """z of the change between the first and the second half of the kept draws (Geweke 1992).

    Each chain contributes the difference of its two halves' means; the chains being independent,
    the standard error of the mean difference is their standard deviation / sqrt(chains). A chain
    that has not forgotten its start drifts, in the same direction in every chain, so |z| is large;
    after the burn-in z ~ N(0, 1).

    Parameters
    ----------
    draws : ndarray
        (draws per chain x chains) or (draws per chain x chains x quantities).

    Returns
    -------
    float or ndarray
        z per quantity (NaN with fewer than 2 draws per chain or fewer than 2 chains).
    """
    x = np.asarray(draws, float)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    h = flat.shape[0] // 2
    out = np.full(flat.shape[2], np.nan)
    if h >= 1 and flat.shape[1] >= 2:
        d = flat[-h:].mean(axis=0) - flat[:h].mean(axis=0)  # chains x q
        se = d.std(axis=0, ddof=1) / math.sqrt(d.shape[0])
        ok = se > 0
        out[ok] = d.mean(axis=0)[ok] / se[ok]
    return out.reshape(x.shape[2:]) if x.ndim > 2 else float(out[0])


def nested_rhat(draws: np.ndarray, superchain: np.ndarray) -> np.ndarray | float:
    """Nested R-hat (Margossian et al. 2024, eqs. 4-8).

    Parameters
    ----------
    draws : ndarray
        (draws per chain x chains) or (draws per chain x chains x quantities).
    superchain : ndarray
        (chains,) superchain of every chain (the chains of one superchain share their start;
        equal numbers of chains per superchain).

    Returns
    -------
    float or ndarray
        sqrt(1 + B / W) per quantity: B the variance between the superchains' means, W the mean
        over the superchains of their between-chain plus within-chain variance. Near 1 once the
        chains have forgotten their starts, even when each chain is short; NaN with fewer than 2
        superchains.
    """
    x = np.asarray(draws, float)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    ids, sc = np.unique(superchain, return_inverse=True)
    out = np.full(flat.shape[2], np.nan)
    if len(ids) >= 2:
        S = len(ids)
        cm = flat.mean(axis=0)  # chains x q
        cv = flat.var(axis=0, ddof=1) if flat.shape[0] > 1 else np.zeros_like(cm)
        onehot = np.eye(S)[sc]  # chains x S
        size = onehot.sum(axis=0)[:, None]
        smean = onehot.T @ cm / size
        between = (onehot.T @ cm ** 2 - size * smean ** 2) / np.maximum(size - 1, 1)
        within = onehot.T @ cv / size + between
        W = within.mean(axis=0)
        B = smean.var(axis=0, ddof=1)
        ok = W > 0
        out[ok] = np.sqrt(1 + B[ok] / W[ok])
    return out.reshape(x.shape[2:]) if x.ndim > 2 else float(out[0])


def effective_sample_size(draws: np.ndarray) -> np.ndarray | float:
    """Effective sample size over several chains (Gelman et al. 2013, sec. 11.5).

    Autocorrelations combine the chains' autocovariances with the between-chain variance
    (BDA3 eq. 11.7); their sum is truncated by Geyer's initial monotone sequence.

    Parameters
    ----------
    draws : ndarray
        (draws per chain x chains) or (draws per chain x chains x quantities).

    Returns
    -------
    float or ndarray
        Effective number of independent draws per quantity (NaN with fewer than 4 draws per
        chain).
    """
    x = np.asarray(draws, float)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    n, M, q = flat.shape
    out = np.full(q, np.nan)
    if n >= 4:
        d = flat - flat.mean(axis=0)
        f = np.fft.rfft(d, n=2 * n, axis=0)
        acov = np.fft.irfft(f * np.conj(f), n=2 * n, axis=0)[:n] / n  # biased, per chain
        W = acov[0].mean(axis=0) * n / (n - 1)
        B = n * flat.mean(axis=0).var(axis=0, ddof=1) if M > 1 else np.zeros(q)
        var_plus = (n - 1) / n * W + B / n
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = 1 - (W - acov.mean(axis=1)) / var_plus  # n x q
        rho[0] = 1.0
        pairs = rho[: 2 * (n // 2)].reshape(n // 2, 2, q).sum(axis=1)
        pairs = np.minimum.accumulate(np.where(pairs > 0, pairs, 0.0), axis=0)  # initial monotone
        positive = np.cumprod(pairs > 0, axis=0).astype(bool)  # up to the first non-positive pair
        tau = -1 + 2 * np.where(positive, pairs, 0.0).sum(axis=0)
        tau = np.maximum(tau, 1.0 / math.log10(max(n * M, 10)))
        good = var_plus > 0
        out[good] = n * M / tau[good]
    return out.reshape(x.shape[2:]) if x.ndim > 2 else float(out[0])


# -- the collapsed sampler ----------------------------------------------------------------------------
#: Chains of the independence Metropolis-Hastings sampler of ``sur_draws_collapsed`` by default.
COLLAPSED_CHAINS = 100
#: Proposals drawn first to start the chains by sampling-importance-resampling (``sur_draws_collapsed``).
PILOT = 1000
#: Degrees of freedom of the multivariate t proposal (heavier tails than the Laplace approximation).
PROPOSAL_DF = 5
#: The proposal's scale matrix is this multiple of the Laplace covariance (wider than the posterior).
PROPOSAL_SCALE = 1.5
#: The effective sample size of log|Sigma| must reach this fraction of the draws (``converged``).
ESS_OK = 0.1
#: Sigma draws evaluated at once (memory: CHUNK x (P + 1)^2 doubles).
CHUNK = 256


@dataclass
class _Marginal:
    """The observed-data likelihood of Sigma with the coefficients integrated out, by missingness pattern.

    In the orthonormal coordinates gamma of ``_Problem`` and for the own-model least-squares residuals
    (the quadratic form is unchanged by a shift within each CQA's columns: gamma = gamma_hat + delta).
    """

    m: int
    P: int
    owner: np.ndarray
    gamma_hat: np.ndarray  # (P,) least-squares estimates in orthonormal coordinates
    obs: list[np.ndarray]  # per pattern: its observed CQAs
    count: list[int]  # per pattern: its runs
    G: list[np.ndarray]  # per pattern: Q' Q over its runs (P x P)
    QE: list[np.ndarray]  # per pattern: Q' E over its runs (P x m), E the residuals (0 where missing)
    EE: list[np.ndarray]  # per pattern: E' E over its runs (m x m)


def _marginal_setup(prob: _Problem) -> _Marginal:
    m, P = prob.m, int(prob.off[-1])
    E = np.zeros((prob.N, m))
    for i in range(m):
        E[prob.rows[i], i] = prob.resid[i]
    gamma_hat = np.concatenate([prob.R[i] @ prob.beta_hat[i] for i in range(m)])
    full = np.flatnonzero(prob.observed.all(axis=1))
    groups = [(np.arange(m), full)] + [(obs, runs) for _, obs, runs in prob.patterns]
    lik = _Marginal(m, P, prob.owner, gamma_hat, [], [], [], [], [])
    for obs, runs in groups:
        Q = prob.Qfull[runs]
        lik.obs.append(obs)
        lik.count.append(len(runs))
        lik.G.append(Q.T @ Q)
        lik.QE.append(Q.T @ E[runs])
        lik.EE.append(E[runs].T @ E[runs])
    return lik


def _log_marginal(lik: _Marginal, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p(Sigma | Y) up to a constant, and the GLS factors, for a batch of Sigma (C x m x m).

    log p = -(m+1)/2 log|Sigma| - 1/2 sum_runs log|Sigma_OO| - 1/2 log|A| - 1/2 S with
    A = X' Omega^-1 X, c = X' Omega^-1 e and S = e' Omega^-1 e - c' A^-1 c (Zellner 1971, sec. 8.2),
    all from one Cholesky factor of the bordered matrix [[A, c], [c', e' Omega^-1 e]]: its last row
    is (u', sqrt(S)) with u = L^-1 c.

    Returns
    -------
    logp : ndarray
        (C,), -inf where a factor fails.
    L : ndarray
        (C x P x P) Cholesky factors of A (gamma | Sigma ~ N(gamma_hat + L^-T u, A^-1)).
    u : ndarray
        (C x P).
    """
    C, m, P, own = sigma.shape[0], lik.m, lik.P, lik.owner
    aug = np.zeros((C, P + 1, P + 1))
    logp = -(m + 1) / 2 * np.linalg.slogdet(sigma)[1]
    for obs, k, G, QE, EE in zip(lik.obs, lik.count, lik.G, lik.QE, lik.EE):
        if k == 0:
            continue
        so = sigma[:, obs][:, :, obs]
        W = np.zeros((C, m, m))
        W[:, obs[:, None], obs[None, :]] = np.linalg.inv(so)
        logp -= k / 2 * np.linalg.slogdet(so)[1]
        aug[:, :P, :P] += G[None] * W[:, own][:, :, own]
        c = np.einsum("kj,ckj->ck", QE, W[:, own, :])
        aug[:, :P, P] += c
        aug[:, P, :P] += c
        aug[:, P, P] += np.einsum("ij,cij->c", EE, W)
    aug[:, P, P] *= 1 + 1e-12  # S >= 0 exactly; keep the factor real when the fit is perfect
    try:
        Lf = np.linalg.cholesky(aug)
    except np.linalg.LinAlgError:  # a near-singular proposal: factor one by one
        Lf = np.full_like(aug, np.nan)
        for s in range(C):
            try:
                Lf[s] = np.linalg.cholesky(aug[s])
            except np.linalg.LinAlgError:
                pass
    d = np.einsum("cii->ci", Lf[:, :P, :P])
    with np.errstate(invalid="ignore"):
        logp = logp - np.log(d).sum(axis=1) - Lf[:, P, P] ** 2 / 2
    logp[~np.isfinite(logp)] = -np.inf
    return logp, Lf[:, :P, :P], Lf[:, P, :P]


def _theta_setup(m: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """Coordinates theta of Sigma: Sigma^-1 = U U', U lower triangular, theta = (log U_ii, U_ij).

    Returns the lower-triangle indices, the positions of the diagonal in theta and the weights of
    log U_ii in log |d Sigma / d theta|: (m - i + 1) (W = U U', Muirhead 1982, thm 2.1.9), - 2(m + 1)
    (Sigma = W^-1, thm 2.1.8) and + 1 (U_ii = exp(theta)), i = 1..m.
    """
    il = np.tril_indices(m)
    diag = np.flatnonzero(il[0] == il[1])
    return il, diag, (m - np.arange(m)) + 1.0 - 2.0 * (m + 1)


def _theta_to_sigma(theta: np.ndarray, m: int) -> np.ndarray:
    il, diag, _ = _theta_setup(m)
    v = theta.copy()
    with np.errstate(over="ignore"):
        v[..., diag] = np.exp(v[..., diag])
    U = np.zeros(theta.shape[:-1] + (m, m))
    U[..., il[0], il[1]] = v
    with np.errstate(all="ignore"):
        sigma = np.linalg.inv(U @ np.swapaxes(U, -1, -2))
    return (sigma + np.swapaxes(sigma, -1, -2)) / 2


def _sigma_to_theta(sigma: np.ndarray) -> np.ndarray:
    m = sigma.shape[-1]
    il, diag, _ = _theta_setup(m)
    theta = np.linalg.cholesky(np.linalg.inv(sigma))[..., il[0], il[1]]
    theta[..., diag] = np.log(theta[..., diag])
    return theta


def _log_target(lik: _Marginal, theta: np.ndarray, factors: bool = False) -> Any:
    """log p(theta | Y) (the marginal posterior of Sigma times the Jacobian), in chunks of ``CHUNK``.

    With ``factors`` also the Cholesky factors L and vectors u of ``_log_marginal``.
    """
    _, diag, jac = _theta_setup(lik.m)
    parts = []
    for k in range(0, len(theta), CHUNK):
        th = theta[k:k + CHUNK]
        sigma = _theta_to_sigma(th, lik.m)
        ok = np.all(np.isfinite(sigma), axis=(1, 2))
        logp, L, u = np.full(len(th), -np.inf), np.zeros((len(th), lik.P, lik.P)), np.zeros((len(th), lik.P))
        if ok.any():
            logp[ok], L[ok], u[ok] = _log_marginal(lik, sigma[ok])
        logp = logp + th[:, diag] @ jac
        bad = ~np.isfinite(logp)  # a failed factor: never accepted; keep the arrays finite
        logp[bad], L[bad], u[bad] = -np.inf, np.eye(lik.P), 0.0
        parts.append((logp, sigma, L, u) if factors else (logp,))
    out = [np.concatenate(z) for z in zip(*parts)]
    return out if factors else out[0]


def _laplace(lik: _Marginal, theta0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mode and covariance (inverse negative Hessian) of log p(theta | Y).

    BFGS from ``theta0`` with central-difference gradients, then the Hessian by central differences;
    every difference stencil is one batched evaluation.
    """
    from scipy import optimize

    d = len(theta0)
    eye = np.eye(d)

    def objective(th: np.ndarray) -> tuple[float, np.ndarray]:
        h = 1e-5
        v = _log_target(lik, np.vstack([th, th + h * eye, th - h * eye]))
        if not np.all(np.isfinite(v)):
            return math.inf, np.zeros(d)
        return -v[0], -(v[1:d + 1] - v[d + 1:]) / (2 * h)

    res = optimize.minimize(objective, theta0, jac=True, method="BFGS", options={"gtol": 1e-4})
    mode, h = res.x, 1e-3
    ii, jj = np.triu_indices(d)
    e = h * eye
    v = _log_target(lik, np.concatenate([mode + e[ii] + e[jj], mode + e[ii] - e[jj],
                                         mode - e[ii] + e[jj], mode - e[ii] - e[jj]])).reshape(4, -1)
    H = np.zeros((d, d))
    H[ii, jj] = (v[0] - v[1] - v[2] + v[3]) / (4 * h * h)
    H[jj, ii] = H[ii, jj]
    try:
        cov = np.linalg.inv(-H)
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:  # not negative definite at the optimiser's end: its own curvature
        cov = np.asarray(res.hess_inv)
    return mode, (cov + cov.T) / 2


def _t_draws(rng: np.random.Generator, mode: np.ndarray, root: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Multivariate t (``PROPOSAL_DF``) draws around ``mode`` with scale root root', and log densities."""
    nu, d = PROPOSAL_DF, len(mode)
    z = rng.standard_normal((n, d))
    g = np.sqrt(nu / rng.chisquare(nu, size=(n, 1)))
    theta = mode + (z * g) @ root.T
    q = np.sum(np.linalg.solve(root, (theta - mode).T) ** 2, axis=0)
    return theta, -(nu + d) / 2 * np.log1p(q / nu)


def _gls_draws(lik: _Marginal, L: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """gamma | Sigma, Y ~ N(gamma_hat + L^-T u, (L L')^-1), batched."""
    z = u + rng.standard_normal(u.shape)
    return cast(np.ndarray, lik.gamma_hat + linalg.solve_triangular(L, z[..., None], lower=True, trans="T")[..., 0])


def sur_draws_collapsed(X: list[np.ndarray], y: list[np.ndarray], rows: list[np.ndarray], n_runs: int, n: int,
                        rng: np.random.Generator, *, chains: int | None = None
                        ) -> tuple[list[np.ndarray], np.ndarray, dict[str, Any]]:
    """Draws of the exact SUR posterior with the coefficients integrated out (collapsed sampler).

    The same posterior and arguments as ``sur_draws``. Sigma is drawn from its marginal posterior
    p(Sigma | Y) ~ |Sigma|^-(m+1)/2 |Omega|^-1/2 |A|^-1/2 exp(-S/2) (A = X' Omega^-1 X, S the GLS
    residual quadratic form of the observed responses; Zellner 1971, sec. 8.2) by many independence
    Metropolis-Hastings chains (Tierney 1994) whose proposal is a multivariate t around the Laplace
    approximation (``PROPOSAL_DF`` df, scale ``PROPOSAL_SCALE`` times its covariance) in the coordinates theta = (log U_ii, U_ij) of Sigma^-1 = U U'; the chains start
    from a sampling-importance-resampling draw (Rubin 1988) of ``PILOT`` proposals. With each
    proposal the coefficients are drawn from their exact GLS normal given Sigma, so every kept state
    is a joint posterior draw. The expensive work (one Cholesky factor of a (P + 1)-square matrix per
    proposal) is batched; the accept/reject pass is a loop over the steps of all chains at once.

    Parameters
    ----------
    X, y, rows, n_runs, n, rng
        As in ``sur_draws``.
    chains : int, optional
        Chains run side by side (default ``COLLAPSED_CHAINS``, at most n).

    Returns
    -------
    coef, sigma, diagnostics
        As ``sur_draws``; diagnostics has ``method`` ("collapsed"), ``chains``, ``kept_per_chain``,
        ``proposals``, ``acceptance`` (the chains' acceptance rate), ``kish_fraction`` (Kish's
        effective fraction of the importance weights p / q of the proposals: near 1 when the proposal
        fits), ``rhat``/``ess``/``drift_z`` as ``sur_draws`` and ``converged``: nested R-hat below
        ``RHAT_OK``, drift below ``DRIFT_OK`` and the effective sample size of log|Sigma| and of every
        coefficient at least ``ESS_OK`` n. When the proposal fits the posterior badly (large P for the
        runs), acceptance and ESS are low: the draws are still from a valid Markov chain but worth few
        independent ones, and ``converged`` is False.

    Raises
    ------
    ValueError
        As ``sur_draws``.

    Notes
    -----
    Tierney, L. (1994) Markov chains for exploring posterior distributions. Ann. Statist. 22:1701-1762.
    Rubin, D.B. (1988) Using the SIR algorithm to simulate posterior distributions. In Bayesian
    Statistics 3 (J.M. Bernardo et al., eds.), Oxford University Press, 395-402.
    Muirhead, R.J. (1982) Aspects of Multivariate Statistical Theory. Wiley, sec. 2.1.
    """
    prob = _prepare(X, y, rows, int(n_runs))
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    C = min(n, COLLAPSED_CHAINS if chains is None else int(chains))
    if C < 1:
        raise ValueError("chains must be >= 1")
    T = -(-n // C)
    lik = _marginal_setup(prob)
    m = prob.m
    sd = np.sqrt(prob.sse / prob.df)
    mode, cov = _laplace(lik, _sigma_to_theta(_residual_correlation(prob) * np.outer(sd, sd)))
    root = np.linalg.cholesky(PROPOSAL_SCALE * cov)
    # start: sampling-importance-resampling from a pilot batch
    theta, logq = _t_draws(rng, mode, root, PILOT)
    logp, sig, L, u = _log_target(lik, theta, factors=True)
    lw = logp - logq
    w = np.exp(lw - lw.max())
    pick = rng.choice(PILOT, size=C, p=w / w.sum())
    cur_lw, cur_sig, cur_g = lw[pick], sig[pick], _gls_draws(lik, L[pick], u[pick], rng)
    kept_g = np.empty((T, C, lik.P))
    kept_s = np.empty((T, C, m, m))
    accepted, all_lw = 0, [lw]
    steps = max(1, CHUNK // C)
    for t0 in range(0, T, steps):
        k = min(steps, T - t0)
        theta, logq = _t_draws(rng, mode, root, k * C)
        logp, sig, L, u = _log_target(lik, theta, factors=True)
        g = _gls_draws(lik, L, u, rng)
        lw = (logp - logq).reshape(k, C)
        all_lw.append(lw.ravel())
        sig, g = sig.reshape(k, C, m, m), g.reshape(k, C, -1)
        for s in range(k):
            acc = np.log(rng.random(C)) < lw[s] - cur_lw
            cur_lw = np.where(acc, lw[s], cur_lw)
            cur_sig = np.where(acc[:, None, None], sig[s], cur_sig)
            cur_g = np.where(acc[:, None], g[s], cur_g)
            kept_g[t0 + s], kept_s[t0 + s] = cur_g, cur_sig
            accepted += int(acc.sum())
    coef = _to_beta(prob, kept_g)
    logdet = np.linalg.slogdet(kept_s)[1]
    superchain = np.arange(C) % max(2, C // CHAINS_PER_SUPERCHAIN)
    diag: dict[str, Any] = _diagnostics(prob, coef, logdet, superchain) if T >= 4 else {"converged": False}
    lw = np.concatenate(all_lw)
    w = np.exp(lw - lw.max())
    ess_ok = diag.get("ess_min", 0.0) >= ESS_OK * n and diag.get("ess", {}).get("log|Sigma|", 0.0) >= ESS_OK * n
    diag.update(method="collapsed", chains=C, kept_per_chain=T, proposals=len(lw), route="collapsed",
                acceptance=accepted / (T * C), kish_fraction=float(w.sum() ** 2 / np.sum(w ** 2) / len(w)),
                missing_cells=int((~prob.observed).sum()), converged=bool(diag["converged"] and ess_ok))
    flat = coef.reshape(T * C, -1)[:n]
    out = [np.ascontiguousarray(flat[:, prob.off[i]:prob.off[i + 1]].T) for i in range(m)]
    return out, kept_s.reshape(T * C, m, m)[:n].copy(), diag
