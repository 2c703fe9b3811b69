"""Fitting a response-surface model to one CQA, like JMP's *Fit Least Squares* and
Design-Expert's analysis.

One call, :func:`fit_model`, returns a :class:`FittedModel` that every page,
plot, report and CLI command reads from; none of them recompute statistics.
Everything is estimated by ordinary least squares through a QR factorisation
of the model matrix (Golub & Van Loan, *Matrix Computations*, sec. 5.3).

Conventions
-----------
- **Coded units.** Coefficients, the coded equation, the stationary point
  (``coded``) and steepest-ascent directions are in coded units: continuous
  and discrete factors at -1..+1 over the study's low..high, categorical
  factors in effect (sum-to-zero) coding with columns ``Medium[hPL 5%]`` (see
  :mod:`doe.model`). ``equation_actual`` and ``coefficients_actual`` are in
  actual units.
- **Blocks** (a block column with more than one level among the runs used)
  are fixed effects in effect coding, columns ``Block[1]`` ... ``Block[B-1]``
  where ``Block[i]`` belongs to the i-th block label in natural sort order
  (``B1`` < ``B2``; ``2`` < ``10``); the last block is coded -1. Effect coding
  changes the intercept and the block coefficients relative to R's treatment
  coding, never the other estimates. Predictions, equations, the stationary
  point and the steepest-ascent path average the blocks out (block columns 0).
- **ANOVA** (Design-Expert's layout): ``Block`` first, its sum of squares
  sequential (blocks entered before the model, as Design-Expert and rsm do);
  its F and p are given for information (rsm and JMP test blocks; Design-Expert
  does not, blocks being a restriction on randomisation);
  then ``Model`` = SS(all terms | blocks); then one row per model term with its
  partial SS of the requested type; ``Residual``, ``Lack of fit``, ``Pure
  error``, ``Total`` (corrected). Type I is sequential in model order after the
  blocks; Type II adjusts each term for every term that does not contain it
  (A is contained in A:B, A^2 and A^2:B; A:B in A:B:C; blocks contain nothing
  and are in every reduced model) - the marginality rule of JMP and
  Design-Expert, which statsmodels does not apply to ``I(A**2)``; Type III
  adjusts each term for all others (meaningful with effect coding).
- **R², adjusted R², predicted R²** use the corrected total including the
  block variation (as R's ``summary.lm`` and JMP do; Design-Expert removes
  the block SS from the total for blocked designs, which gives lower values).
  ``overall_f`` is the whole-regression F against the intercept-only model,
  blocks included (R's ``summary.lm`` F).
- **Lack of fit** uses pure error from replicates: runs with identical
  settings of every study factor *in the same block* (Design-Expert; the
  reference case rsm_chemreact_ccd_two_blocks explains why pooling centre
  points across blocks is wrong).
- **Transforms** are applied before fitting; all statistics are on the
  transformed scale and :meth:`FittedModel.predict` back-transforms (the
  back-transformed mean is the median on the original scale when the errors
  are symmetric on the transformed scale).

Modules
-------
The package re-exports its public names; the implementation lives in private modules:

- ``_transforms``: :class:`Transform`, :func:`parse_transform` (response transforms).
- ``_data``: the run-sheet rows a fit uses, coded; blocks; runs left out; :func:`complete_settings`.
- ``_least_squares``: :class:`LeastSquares` (QR), :class:`ModelColumn`, estimability, pure error.
- ``_anova``: coefficient and ANOVA tables, lack of fit, grouped sequential ANOVA, diagnostics.
- ``_equations``: coded and actual-unit equations, stationary point and canonical analysis.
- ``_effects``: two-level effects and :func:`lenth`.
- ``_box_cox``: :func:`box_cox`, :func:`box_cox_advice`, :func:`box_cox_profile` (of a fitted model).
- ``_results``: :class:`FittedModel` (lazily computed, read-only statistics), :func:`fit_model`,
  :func:`effects_two_level`, :func:`sequential_anova`.
- ``_selection``: :func:`fit_summary`, :func:`reduce_model`, :class:`ModelChoice`, :class:`CQAFit`,
  :func:`fit_choice` (the scientist's choice per CQA; :mod:`doe.analysis` fits every CQA with them).
- ``_analyze``: :func:`analyze`, :func:`analysis_status` (``python -m doe analyze``).

References
----------
Montgomery, D.C. (2017) *Design and Analysis of Experiments*, 9th ed., Wiley.
Myers, R.H., Montgomery, D.C., Anderson-Cook, C.M. (2016) *Response Surface
Methodology*, 4th ed., Wiley (canonical analysis ch. 6, steepest ascent ch. 5,
lack of fit and pure error ch. 2-3, diagnostics ch. 2.7).
Lenth, R.V. (1989) Quick and easy analysis of unreplicated factorials.
Technometrics 31:469-473.
Box, G.E.P., Cox, D.R. (1964) An analysis of transformations. JRSS B 26:211-252.
Lenth, R.V. (2009) Response-surface methods in R, using rsm. J. Stat. Softw. 32(7).
"""

from doe.fit._analyze import analysis_status, analyze
from doe.fit._anova import EXT_STUDENT_LIMIT
from doe.fit._box_cox import (
    CONVENTIONAL_LAMBDAS,
    LAMBDA_GRID,
    LAMBDA_NAMES,
    box_cox,
    box_cox_advice,
    box_cox_profile,
)
from doe.fit._data import complete_settings
from doe.fit._effects import lenth
from doe.fit._equations import MAX_EQUATIONS
from doe.fit._least_squares import RANK_TOL, LeastSquares, ModelColumn, term_contains
from doe.fit._results import FittedModel, effects_two_level, fit_model, sequential_anova
from doe.fit._selection import (
    REDUCE_METHODS,
    CQAFit,
    ModelChoice,
    default_choice,
    fit_choice,
    fit_summary,
    reduce_model,
)
from doe.fit._transforms import TRANSFORM_NAMES, Transform, parse_transform

__all__ = [
    "CONVENTIONAL_LAMBDAS", "CQAFit", "EXT_STUDENT_LIMIT", "FittedModel", "LAMBDA_GRID", "LAMBDA_NAMES",
    "LeastSquares", "MAX_EQUATIONS", "ModelChoice", "ModelColumn", "RANK_TOL", "REDUCE_METHODS",
    "TRANSFORM_NAMES", "Transform", "analysis_status", "analyze", "box_cox", "box_cox_advice", "box_cox_profile",
    "complete_settings", "default_choice", "effects_two_level", "fit_choice", "fit_model", "fit_summary",
    "lenth", "parse_transform", "reduce_model", "sequential_anova", "term_contains",
]
