"""Choosing a model: Design-Expert's fit summary by polynomial order, hierarchical backward
elimination (p-value or AICc), and the scientist's choice per CQA (:class:`ModelChoice`) fitted into a
:class:`CQAFit` by :func:`fit_choice` (a model, the reduction steps, or the reason it cannot be fitted)."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from doe._threads import one_blas_thread
from doe.errors import ModelError
from doe.fit._box_cox import box_cox_search
from doe.fit._data import prepare, response_units
from doe.fit._least_squares import f_sf, pure_error, rank_fit, term_contains
from doe.fit._results import FittedModel, fit_model
from doe.fit._transforms import parse_transform, power_transform
from doe.mixed import fit_mixed
from doe.model import ModelMatrix, Term, preset_terms
from doe.study import Study

__all__ = ["REDUCE_METHODS", "CQAFit", "ModelChoice", "default_choice", "fit_choice", "fit_summary",
           "reduce_model"]

#: The ways :func:`reduce_model` removes terms: largest p-value above alpha, or best AICc.
REDUCE_METHODS = ("p", "aicc")


def _cubic_terms(study: Study) -> list[Term]:
    order = {n: i for i, n in enumerate(study.factor_names)}
    out = []
    for combo in itertools.combinations_with_replacement(study.factor_names, 3):
        counts: dict[str, int] = {}
        for f in combo:
            counts[f] = counts.get(f, 0) + 1
        if any(study.factor(f).is_categorical and p > 1 for f, p in counts.items()):
            continue
        out.append(Term(tuple(sorted(counts.items(), key=lambda kv: order[kv[0]]))))
    return out


@one_blas_thread
def fit_summary(study: Study, runs: pd.DataFrame, response: str, *, transform: str | None = "none",
                block_col: str | None = None, exclude: Any = None, alpha: float = 0.05) -> pd.DataFrame:
    """Design-Expert's *Fit Summary*: sequential SS by model order, lack of fit and R² per order.

    Rows: ``Mean`` (vs total), ``Block`` (vs mean, when blocks), ``Linear``,
    ``2FI``, ``Quadratic`` and ``Cubic`` (orders that add no terms are left
    out). ``sum_sq`` / ``df`` are sequential (each order vs the previous); ``F``
    and ``p`` use the residual mean square of the *larger* model of each
    comparison, as Design-Expert does (rsm's grouped ANOVA uses the full
    model's residual instead: see :func:`sequential_anova`). Per order:
    lack-of-fit F and p (pure error within blocks), std. dev., R², adjusted
    and predicted R², PRESS, and ``aliased`` (some terms cannot be estimated;
    sums of squares then come from the estimable part).

    ``suggested`` marks one row: among the non-aliased orders whose added
    terms are significant (p < alpha), the highest one whose lack of fit is not
    significant; if every such order shows significant lack of fit, the
    highest significant order; if no order adds significant terms, ``Mean``.
    Design-Expert's rule in words: "the highest order polynomial where the
    additional terms are significant and the model is not aliased", with lack
    of fit as the tie-breaker.

    A ``boxcox`` transform uses the lambda chosen for the quadratic model
    (linear if the quadratic cannot be fitted).
    """
    data = prepare(study, runs, response, block_col, exclude)
    y0 = data.y
    tf = parse_transform(transform, response_units(study, response))
    nb = len(data.block_labels) if data.blocks is not None else 1
    if tf is None:
        lam = None
        for preset in ("quadratic", "linear"):
            mm = ModelMatrix(study, preset_terms(study, preset), nb)
            X = mm.build(data.U, data.blocks)
            if X.shape[0] > X.shape[1] and np.linalg.matrix_rank(X) == X.shape[1]:
                lam = box_cox_search(X, y0, data.run_ids, response)["suggested"]
                break
        if lam is None:
            raise ModelError(f"Too few runs with a result for {response} to choose a Box-Cox lambda.")
        tf = power_transform(lam)
    tf.check(y0, data.run_ids, response)
    y = tf.forward(y0)
    n = len(y)
    sst = float(np.sum((y - y.mean()) ** 2))
    pe_ss, pe_df, _ = pure_error(data.U, data.blocks, y)
    seq: list[tuple[str, list[Term] | None]] = [("Mean", None)]
    if nb > 1:
        seq.append(("Block", []))
    seen: set[Term] = set()
    for name, terms in (("Linear", preset_terms(study, "linear")),
                        ("2FI", preset_terms(study, "interactions")),
                        ("Quadratic", preset_terms(study, "quadratic")),
                        ("Cubic", preset_terms(study, "quadratic") + _cubic_terms(study))):
        if set(terms) - seen:
            seq.append((name, terms))
            seen |= set(terms)
    rows: list[dict[str, Any]] = []
    prev_sse, prev_rank = float(y @ y), 0
    for name, order_terms in seq:
        if order_terms is None:
            X = np.ones((n, 1))
        else:
            mm = ModelMatrix(study, order_terms, nb)
            if mm.p > 4 * n:
                break
            X = mm.build(data.U, data.blocks)
        sse, rank, resid, h = rank_fit(X, y)
        dfe = n - rank
        df = rank - prev_rank
        ss = prev_sse - sse
        row: dict[str, Any] = {"order": name, "source": f"{name} vs {rows[-1]['order'] if rows else 'Total'}",
               "sum_sq": ss, "df": df, "mean_sq": ss / df if df > 0 else math.nan,
               "F": math.nan, "p": math.nan}
        if name not in ("Mean", "Block") and dfe > 0 and df > 0 and sse > 0:
            row["F"] = (ss / df) / (sse / dfe)
            row["p"] = f_sf(row["F"], df, dfe)
        lof_df = dfe - pe_df
        row["lack_of_fit_df"] = lof_df if pe_df > 0 and lof_df > 0 else 0
        row["lack_of_fit_F"] = row["lack_of_fit_p"] = math.nan
        if pe_df > 0 and lof_df > 0 and pe_ss > 0:
            row["lack_of_fit_F"] = (max(sse - pe_ss, 0) / lof_df) / (pe_ss / pe_df)
            row["lack_of_fit_p"] = f_sf(row["lack_of_fit_F"], lof_df, pe_df)
        press = float(np.sum((resid / (1 - h)) ** 2)) if dfe > 0 and np.all(h < 1 - 1e-10) else math.nan
        row.update({
            "std_dev": math.sqrt(sse / dfe) if dfe > 0 else math.nan,
            "r2": 1 - sse / sst if dfe > 0 and name != "Mean" else (0.0 if name == "Mean" else math.nan),
            "adj_r2": (0.0 if name == "Mean" else 1 - (sse / dfe) / (sst / (n - 1))) if dfe > 0 else math.nan,
            "pred_r2": 1 - press / sst if math.isfinite(press) else math.nan,
            "press": press, "aliased": bool(rank < X.shape[1]), "residual_df": dfe,
        })
        rows.append(row)
        prev_sse, prev_rank = sse, rank
    table = pd.DataFrame(rows)
    table["suggested"] = False
    cand = table[table["order"].isin(["Linear", "2FI", "Quadratic", "Cubic"]) & ~table["aliased"]
                 & (table["p"] < alpha)]
    if len(cand):
        good = cand[~(cand["lack_of_fit_p"] < alpha)]
        pick = (good if len(good) else cand).index[-1]
    else:
        pick = table.index[0]
    table.loc[pick, "suggested"] = True
    return table


# -- model reduction ---------------------------------------------------------------------------------
@one_blas_thread
def reduce_model(study: Study, runs: pd.DataFrame, response: str, model: Any = "quadratic", *,
                 method: str = "p", alpha: float = 0.1, transform: str | None = "none",
                 block_col: str | None = None, exclude: Any = None, ddf: str = "kr"
                 ) -> tuple[list[Term], list[dict[str, Any]]]:
    """Backward elimination that keeps the model hierarchical.

    A term is eligible for removal only when no remaining term contains it
    (A stays while A:B or A^2 remains). ``method='p'``: remove the eligible
    term with the largest partial F-test p-value while it exceeds ``alpha``
    (for an eligible term, Type II and Type III coincide). ``method='aicc'``:
    remove the eligible term whose removal lowers AICc most, while AICc
    improves; AICc = n ln(2 pi SSE/n) + n + 2k + 2k(k+1)/(n-k-1) with k the
    number of coefficients plus one for the error variance (JMP's convention).
    Blocks are never removed; at least one term is kept. A ``boxcox`` transform
    is resolved once on the starting model. When the runs carry random effects
    (whole plots, donors, lots), ``method='p'`` uses the mixed model's Type III
    p-values (REML, ``ddf`` denominator df), refitted after each removal, so a
    whole-plot factor is judged against the whole-plot error.

    Returns the final terms and the steps ``{removed, p}`` or ``{removed, aicc}``.
    """
    if method not in ("p", "aicc"):
        raise ModelError(f"The reduction method must be 'p' or 'aicc'; got {method!r}.")
    start = fit_model(study, runs, response, model, transform=transform, block_col=block_col,
                      exclude=exclude, ddf=ddf)
    if start.df_resid == 0:
        raise ModelError(
            "The model has no residual degrees of freedom, so terms cannot be tested for removal: "
            "use the half-normal plot and Lenth's margin of error to pick the active effects."
        )
    X, y = start._ls.X, start._ls.y
    sub = start._ls.subsets  # every candidate model's fit from the starting model's one QR (no refit on the runs)
    cols = start._cols
    terms = list(start.model_terms)
    n = len(y)
    base = [j for j, c in enumerate(cols) if c.term in ("Intercept", "Block")]
    term_cols = {t.name: [j for j, c in enumerate(cols) if c.term == t.name] for t in terms}
    steps: list[dict[str, Any]] = []

    def design(ts: list[Term]) -> list[int]:
        return sorted(base + [j for t in ts for j in term_cols[t.name]])

    def aicc(ts: list[Term]) -> float:
        keep = design(ts)
        k = len(keep) + 1
        if n - k - 1 <= 0:
            return math.inf
        sse = sub.residual_ss(keep)
        return float(n * math.log(2 * math.pi * sse / n) + n + 2 * k + 2 * k * (k + 1) / (n - k - 1))

    def p_values(eligible: list[Term]) -> dict[Term, float] | None:
        """Each eligible term's p-value in the current model: the mixed model's Type III test when the runs
        carry random effects, else the partial F test; None when the current model leaves no test."""
        keep = sorted(base + [j for t in terms for j in term_cols[t.name]])
        if start.mixed is not None:
            try:
                mixed = fit_mixed(X[:, keep], y, [start.columns[j] for j in keep], [cols[j].term for j in keep],
                                  start.random_groups, ddf=ddf)
            except ModelError:
                return None
            tests = mixed.anova()
            by_term = dict(zip(tests["term"], tests["p"].astype(float)))
            return {t: by_term[t.name] for t in eligible}
        df = n - len(keep)
        if df <= 0:
            return None
        ls = sub.fit(keep)  # coef, sse and (X'X)^-1 of X[:, keep]; its df is not the runs' (see SubsetFits.fit)
        mse = ls.sse / df
        pos = {j: i for i, j in enumerate(keep)}
        out = {}
        for t in eligible:
            idx = [pos[j] for j in term_cols[t.name]]
            b = ls.coef[idx]
            ss = float(b @ np.linalg.solve(ls.cov_unscaled[np.ix_(idx, idx)], b))
            out[t] = f_sf(ss / len(idx) / mse, len(idx), df) if mse > 0 else 0.0
        return out

    current = aicc(terms)
    while len(terms) > 1:
        eligible = [t for t in terms if not any(term_contains(u, t) for u in terms)]
        if method == "p":
            pvals = p_values(eligible)
            if pvals is None:
                break
            worst = max(eligible, key=lambda t: pvals[t])
            if pvals[worst] <= alpha:
                break
            terms.remove(worst)
            steps.append({"removed": worst.name, "p": pvals[worst]})
        else:
            trial = {t: aicc([u for u in terms if u != t]) for t in eligible}
            best = min(eligible, key=lambda t: trial[t])
            if not trial[best] < current:
                break
            terms.remove(best)
            current = trial[best]
            steps.append({"removed": best.name, "aicc": current})
    return terms, steps


# -- the scientist's choice per CQA -------------------------------------------------------------------
@dataclass
class ModelChoice:
    """The analysis settings of one CQA (model, transform, reduction, ANOVA type, excluded runs).

    Saved with an analysis so that "re-run analysis" refits the same choices on new data.
    """

    model: str = "quadratic"
    transform: str = "none"
    reduce: bool = False
    reduce_method: str = "p"
    reduce_alpha: float = 0.1
    anova_type: int | str = 2
    exclude: list[Any] = field(default_factory=list)
    #: Denominator df of a mixed model's tests (CQAs with whole plots, donors or lots): "kr" or "satterthwaite".
    ddf: str = "kr"

    def to_dict(self) -> dict[str, Any]:
        """The choice as a plain dict (JSON-ready when its values are)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelChoice:
        """A choice from :meth:`to_dict`'s dict; unknown keys are ignored, missing ones default."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def default_choice() -> ModelChoice:
    """What the app starts each CQA with: the quadratic, reduced hierarchically by p-value."""
    return ModelChoice(reduce=True)


@dataclass
class CQAFit:
    """One CQA's fit: the model, the reduction steps, or the reason it could not be fitted."""

    response: str
    choice: ModelChoice
    model: FittedModel | None = None
    steps: list[dict[str, Any]] | None = None
    error: str | None = None


def fit_choice(study: Study, runs: pd.DataFrame, response: str, choice: ModelChoice, *,
               block_col: str | None = None, alpha: float = 0.05) -> CQAFit:
    """Fit one CQA with its choice; a model that cannot be fitted gives ``error``, not an exception."""
    try:
        spec: Any = choice.model
        steps: list[dict[str, Any]] | None = None
        if choice.reduce:
            spec, steps = reduce_model(study, runs, response, choice.model, method=choice.reduce_method,
                                       alpha=choice.reduce_alpha, transform=choice.transform,
                                       exclude=choice.exclude or None, block_col=block_col, ddf=choice.ddf)
        fm = fit_model(study, runs, response, spec, transform=choice.transform, alpha=alpha,
                       anova_type=choice.anova_type, exclude=choice.exclude or None,
                       block_col=block_col, ddf=choice.ddf)
    except ModelError as exc:
        return CQAFit(response, choice, error=str(exc))
    return CQAFit(response, choice, model=fm, steps=steps)
