"""``fit_mixed``: input checks, the REML fit, and the assembly of a :class:`MixedFit`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from doe.errors import ModelError
from doe.mixed._inference import compute_inference
from doe.mixed._reml import fit_reml
from doe.mixed._results import MixedFit, normalise_ddf


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float | np.floating) and math.isnan(float(v)):
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _groups(name: str, labels: Sequence[Any], n: int) -> tuple[np.ndarray, list[Any]]:
    """Per-run level index and the level labels in first-seen order; refuses unusable columns."""
    labels = list(labels)
    if len(labels) != n:
        raise ModelError(
            f"Random effect '{name}' has {len(labels)} labels but there are {n} runs; give one label per run."
        )
    missing = [i + 1 for i, v in enumerate(labels) if _is_missing(v)]
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ModelError(
            f"Random effect '{name}' has no label in run(s) {shown}; fill in the level of '{name}' for every "
            "run or leave those runs out."
        )
    codes, uniques = pd.factorize(pd.Series(labels, dtype=object), sort=False)
    levels = list(uniques)
    if len(levels) < 2:
        raise ModelError(
            f"Random effect '{name}' has one level ('{levels[0]}') in every run, so its variance cannot be "
            f"estimated; remove '{name}' from the random effects or run the study over two or more levels."
        )
    if len(levels) == n:
        raise ModelError(
            f"Random effect '{name}' has a different level in every run, so it cannot be told apart from the "
            f"residual error; remove '{name}' from the random effects (the residual already is the run-to-run "
            "variation) or give runs that share a level the same label."
        )
    return codes.astype(int), levels


def fit_mixed(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    terms: Sequence[str],
    random: Mapping[str, Sequence[Any]],
    *,
    ddf: str = "kr",
) -> MixedFit:
    """REML fit of ``y = X b + sum_k Z_k u_k + e``, ``u_k ~ N(0, s2_k I)``, ``e ~ N(0, s2 I)``.

    Parameters
    ----------
    X
        n x p fixed-effect model matrix, full column rank, including the intercept column.
    y
        The response, length n.
    names
        Column names of ``X``.
    terms
        The model term each column belongs to (``'Intercept'``, ``'A'``, ``'A'``, ``'A*B'``); the Type III
        ANOVA tests the columns of each term jointly.
    random
        Random-effect name -> per-run level labels (length n). Nested effects are given by labels that are
        unique within their parent (e.g. ``"Donor 1/Plate 2"``); crossed effects are simply several entries.
    ddf
        Default denominator-df method of the tests: ``"kr"`` (Kenward-Roger) or ``"satterthwaite"``.

    Raises
    ------
    ModelError
        On a random effect with one level, with all levels distinct, with a missing label; on too few runs,
        a rank-deficient ``X``, or a response with missing values.
    """
    method = normalise_ddf(ddf)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    if X.ndim != 2:
        raise ModelError("The model matrix must be two-dimensional (runs x columns).")
    n, p = X.shape
    names = [str(s) for s in names]
    terms = [str(s) for s in terms]
    if len(names) != p or len(terms) != p:
        raise ModelError(f"The model matrix has {p} columns but {len(names)} names and {len(terms)} terms were "
                         "given; give one name and one term per column.")
    if y.size != n:
        raise ModelError(f"The response has {y.size} values but the model matrix has {n} runs.")
    if not np.all(np.isfinite(y)):
        raise ModelError("The response has missing or non-finite values; leave those runs out of the fit.")
    if not np.all(np.isfinite(X)):
        raise ModelError("The model matrix has missing or non-finite values; leave those runs out of the fit.")
    if not random:
        raise ModelError("No random effect was given; fit the model by least squares (doe.fit) instead.")
    if n - p < 1:
        raise ModelError(
            f"There are {n} runs for {p} fixed-effect columns, which leaves no residual degrees of freedom; "
            "add runs or remove model terms."
        )
    if np.linalg.matrix_rank(X) < p:
        raise ModelError("The fixed-effect model matrix is not of full column rank (some effects are aliased); "
                         "remove the aliased terms.")

    groups: dict[str, np.ndarray] = {}
    levels: dict[str, list[Any]] = {}
    blocks: list[slice] = []
    zs: list[np.ndarray] = []
    start = 0
    for name, labels in random.items():
        codes, levs = _groups(str(name), labels, n)
        groups[str(name)] = codes
        levels[str(name)] = levs
        Zk = np.zeros((n, len(levs)))
        Zk[np.arange(n), codes] = 1.0
        zs.append(Zk)
        blocks.append(slice(start, start + len(levs)))
        start += len(levs)
    seen: dict[tuple[int, ...], str] = {}
    for name, codes in groups.items():
        key = tuple(pd.factorize(pd.Series(codes), sort=False)[0].tolist())
        if key in seen:
            raise ModelError(
                f"Random effects '{name}' and '{seen[key]}' group the runs identically, so their variances "
                f"cannot be told apart; keep one of them."
            )
        seen[key] = name
    n_var = len(zs) + 1
    if n - p < n_var:
        raise ModelError(
            f"There are {n} runs for {p} fixed-effect columns and {n_var} variance components; REML needs more "
            "runs than fixed effects plus variance components. Add runs or remove terms."
        )
    Z = np.hstack(zs)

    sol = fit_reml(X, y, Z, blocks)
    names_r = list(groups)
    s2 = sol.sigma2
    var = [float(t**2 * s2) for t in sol.theta]
    components = {k: v for k, v in zip(names_r, var)}
    components["Residual"] = s2
    sigma = np.array(var + [s2])
    factors: list[np.ndarray | None] = [*zs, None]
    inf = compute_inference(X, y, factors, sigma)

    warnings = list(inf.warnings)
    if not sol.converged:
        warnings.append(f"The REML optimisation may not have converged ({sol.message}).")
    for k, v in zip(names_r, var):
        if v == 0.0:
            warnings.append(
                f"The variance of '{k}' is estimated as 0 (on the boundary): the data show no variation between "
                f"its levels beyond what the other components explain. Satterthwaite df treat it as fixed at 0 "
                f"(as lmerTest does); Kenward-Roger keeps it (as pbkrtest does)."
            )

    blups: dict[str, pd.Series] = {}
    cond = y - X @ inf.coef
    for k, Zk, v in zip(names_r, zs, var):
        u = v * (Zk.T @ inf.vinv_r)
        blups[k] = pd.Series(u, index=pd.Index(levels[k], dtype=object), name=k)
        cond = cond - Zk @ u
    cc = inf.expected_cov
    all_names = [*names_r, "Residual"]
    component_df = {
        k: (2.0 * sigma[i] ** 2 / cc[i, i] if cc[i, i] > 0 else float("nan")) for i, k in enumerate(all_names)
    }
    return MixedFit(
        names=names,
        terms=terms,
        n=n,
        ddf=method,
        coef=inf.coef,
        cov_beta=inf.phi,
        cov_beta_kr=inf.phi_a,
        components=components,
        component_cov=cc,
        component_df=component_df,
        blups=blups,
        levels=levels,
        groups=groups,
        W=inf.W,
        conditional_residuals=cond,
        loglik=-0.5 * sol.deviance,
        converged=sol.converged,
        warnings=warnings,
        inference=inf,
    )
