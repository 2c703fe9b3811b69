"""How the runs were randomised, in tables and words: the mixed model beside the fully randomised analysis.

When runs share a whole plot (a hard-to-change factor set once for several runs), a donor or a lot, the
least-squares analysis that treats every run as independent tests a whole-plot factor against the run-to-run
error: its p-value is far too small. The mixed model (REML, :mod:`doe.mixed`) tests it against the
whole-plot error with Kenward-Roger or Satterthwaite denominator df. The Models page, the report and the
CLI read the tables and sentences of this module, made from a :class:`doe.fit.FittedModel` whose
``mixed`` is set:

- :func:`variance_components_table`: each component's variance, standard deviation, share of the total
  (the intraclass correlation for a random effect) and its Satterthwaite df;
- :func:`randomisation_comparison`: per term, the F test of the mixed model beside the least-squares one;
- :func:`comparison_words`: the difference in words, one sentence per term whose conclusion changes or whose
  evidence is overstated;
- :func:`error_structure_text`: the study's error structure in one paragraph (for the report).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from doe._format import fmt_sig
from doe.present import format_p

if TYPE_CHECKING:
    from doe.fit import FittedModel
    from doe.study import Study

__all__ = ["comparison_words", "error_structure_text", "mixed_anova_table", "mixed_coefficients_table",
           "randomisation_comparison", "variance_components_table"]

#: Significance level the sentences judge by.
ALPHA = 0.05
#: A randomised p-value this many times smaller than the mixed model's is called an overstatement.
OVERSTATED = 3.0


def variance_components_table(fm: FittedModel) -> pd.DataFrame:
    """One row per variance component (random effects, then Residual): variance, SD, share, df, levels."""
    mixed = _mixed(fm)
    total = sum(mixed.components.values())
    groups = fm.random_groups
    rows = []
    for name, var in mixed.components.items():
        rows.append({
            "Component": name if name != "Residual" else "Residual (run to run)",
            "Levels": len(set(groups[name])) if name in groups else fm.n,
            "Variance": var, "Standard deviation": math.sqrt(max(var, 0.0)),
            "Share of total variance (%)": 100.0 * var / total if total > 0 else math.nan,
            "Degrees of freedom (Satterthwaite)": mixed.component_df.get(name, math.nan),
        })
    return pd.DataFrame(rows)


def mixed_anova_table(fm: FittedModel) -> pd.DataFrame:
    """The mixed model's Type III F tests with human labels (term, stratum, df, denominator df, F, p)."""
    mixed = _mixed(fm)
    method = mixed.df_label
    table = mixed.anova()
    strata = _strata(fm)
    return pd.DataFrame({
        "Term": table["term"], "Stratum": [strata.get(str(t), "run") for t in table["term"]],
        "Numerator df": table["df"], f"Denominator df ({method})": table["df_den"],
        "F value": table["F"], "p-value": table["p"]})


def mixed_coefficients_table(fm: FittedModel) -> pd.DataFrame:
    """The mixed model's fixed effects (coded units) with standard errors, df, t and p, human labels."""
    mixed = _mixed(fm)
    method = mixed.df_label
    table = mixed.coefficients()
    return pd.DataFrame({
        "Model column": table["name"], "Coefficient (coded units)": table["estimate"],
        "Standard error": table["se"], f"Degrees of freedom ({method})": table["df"],
        "t value": table["t"], "p-value": table["p"]})


def randomisation_comparison(fm: FittedModel) -> pd.DataFrame:
    """Per model term: the mixed model's Type III F test (df, denominator df, p) beside the least-squares
    F test of the same term analysed as if the runs were completely randomised (its F values are in
    :func:`mixed_anova_table` and the least-squares ANOVA)."""
    mixed = _mixed(fm)
    ols = fm.anova.set_index("source")
    df_label = mixed.df_label
    rows = []
    strata = _strata(fm)
    for r in mixed.anova().itertuples(index=False):
        o = ols.loc[r.term] if r.term in ols.index else None
        rows.append({
            "Term": r.term, "Stratum": strata.get(str(r.term), "run"), "Numerator df": int(r.df),
            f"Denominator df ({df_label})": r.df_den, "p-value (mixed model)": r.p,
            "Denominator df (as if randomised)": fm.df_resid if o is not None else math.nan,
            "p-value (as if randomised)": float(o["p"]) if o is not None else math.nan,
        })
    return pd.DataFrame(rows)


def comparison_words(fm: FittedModel) -> list[str]:
    """The difference between the two analyses in words: the error structure, then one sentence per term
    whose significance changes, or whose p-value the randomised analysis understates :data:`OVERSTATED`-fold or
    more."""
    mixed = _mixed(fm)
    table = randomisation_comparison(fm)
    den = next(c for c in table.columns if c.startswith("Denominator df ("))
    parts = ", ".join(f"{k.lower() if k != 'Residual' else 'run-to-run'} {fmt_sig(math.sqrt(max(v, 0)), 3)}"
                      for k, v in mixed.components.items())
    out = [f"{fm.response} is analysed as a mixed model (REML): the runs share "
           + _names([f"{k.lower()}s" for k in mixed.components if k != "Residual"])
           + f", whose variation is estimated (standard deviations: {parts}). Each term is tested against the "
           f"error of its own stratum, with {den[len('Denominator df ('):-1]} denominator degrees of freedom; "
           "the least-squares analysis treats every run as independent."]
    hidden = _names([k.lower() for k in mixed.components if k != "Residual"])
    for row in table.to_dict("records"):
        p_mixed, p_ols = float(row["p-value (mixed model)"]), float(row["p-value (as if randomised)"])
        if not (math.isfinite(p_mixed) and math.isfinite(p_ols)):
            continue
        d_mixed = float(row[den])
        sig_m, sig_o = p_mixed < ALPHA, p_ols < ALPHA
        where = f"{row['Term']} ({row['Stratum']} term)"
        if sig_o and not sig_m:
            out.append(f"{where}: significant only if the runs are wrongly treated as independent "
                       f"({_p(p_ols)}); against its own error, with {fmt_sig(d_mixed, 3)} denominator df, "
                       f"{_p(p_mixed)}.")
        elif sig_m and not sig_o:
            out.append(f"{where}: significant in the mixed model ({_p(p_mixed)}) but not as if randomised "
                       f"({_p(p_ols)}): the {hidden} variation hid it in the residual.")
        elif sig_m and sig_o and p_ols * OVERSTATED <= p_mixed:
            out.append(f"{where}: significant in both, but the randomised analysis overstates the evidence "
                       f"({_p(p_ols)} against {_p(p_mixed)} with {fmt_sig(d_mixed, 3)} denominator df).")
    return out


def _p(p: float) -> str:
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def error_structure_text(study: Study, models: dict[str, FittedModel] | None = None) -> str:
    """The study's error structure in one paragraph: randomisation restrictions and random effects, and which
    CQAs were fitted as mixed models (for the report and the run-sheet notes)."""
    bits = []
    if study.split_plot:
        very = study.very_hard_to_change_factors
        hard = [f for f in study.hard_to_change_factors if f not in very]
        if very:
            bits.append(f"{_names(very)} change only between whole plots and {_names(hard)} only between the "
                        "subplots nested in them (split-split-plot)")
        else:
            bits.append(f"{_names(hard)} {'changes' if len(hard) == 1 else 'change'} only between whole plots "
                        "(split-plot: restricted randomisation)")
    if study.random_effects:
        bits.append(f"{_names(study.random_effects)} {'is a random effect' if len(study.random_effects) == 1 else 'are random effects'} "
                    "(levels are random draws; each a random intercept)")
    if not bits:
        text = "The runs are analysed as completely randomised (independent run-to-run errors)."
    else:
        text = "Error structure: " + "; ".join(bits) + "."
    if models:
        mixed = [n for n, fm in models.items() if fm.mixed is not None]
        plain = [n for n, fm in models.items() if fm.mixed is None]
        if mixed:
            labels = sorted({fm.mixed.df_label for fm in models.values() if fm.mixed is not None})
            text += f" Fitted as mixed models by REML ({' or '.join(labels)} denominator df): {_names(mixed)}."
        if plain and bits:
            text += f" Fitted by least squares as completely randomised (no random-effect column in their runs): {_names(plain)}."
    return text


def _mixed(fm: FittedModel) -> Any:
    if fm.mixed is None:
        raise ValueError(f"{fm.response} has no mixed model: its runs are analysed as completely randomised.")
    return fm.mixed


def _strata(fm: FittedModel) -> dict[str, str]:
    """Term -> the error stratum it is tested in (doe.split_plot.term_strata on the study's tiers); empty when no
    factor is hard to change (donors and lots only: every term is a "run" term)."""
    from doe.model import ModelMatrix
    from doe.split_plot import factor_tiers, term_strata

    study = fm.study
    if not study.split_plot:
        return {}
    two = bool(study.very_hard_to_change_factors)
    mm = ModelMatrix(study, fm.model_terms)
    return dict(zip(mm.column_term, term_strata(mm, *factor_tiers(study, two), two)))


def _names(names: list[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
