"""The QbD design-of-experiments engine: a pure library (never imports streamlit) with a small public API.

The result objects, each the one home of its concept, read alike by the pages, the CLI, the report and
the figures (scikit-learn's convention: public names here, implementation in modules and private
submodules)::

    Study -> Design -> runs -> Analysis (a FittedModel per CQA) -> DesignSpace -> Decision

>>> import doe
>>> from doe.example import DESIGN_FILE, RESULTS_FILE, STUDY_FILE
>>> study = doe.Study.load(STUDY_FILE)
>>> design = doe.read_design(study, DESIGN_FILE)
>>> runs = doe.read_results(study, RESULTS_FILE).table
>>> analysis = doe.fit_all(study, runs)                  # a FittedModel per CQA, failures with reasons
>>> len(analysis.models), analysis.failures
(7, {})
>>> space = doe.DesignSpace.of(study, analysis, seed=1, draws=2000)
>>> space.threshold == doe.DEFAULT_THRESHOLD               # defaults live once, on the objects
True
>>> at = space.at({"Agitation": 60, "Seeding density": 3000, "Medium": "FBS 10%", "Surface": "ULA",
...                "Harvest reagent": "Accutase"})
>>> 0.0 <= at["probability"] <= 1.0
True

Names load on first use (PEP 562 module ``__getattr__``), so ``import doe`` stays cheap for the app's
first page; ``if TYPE_CHECKING`` imports give type checkers and editors the same names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and editors
    from doe.analysis import Analysis, CQAFit, ModelChoice, fit_all
    from doe.decision import DEFAULT_THRESHOLD, Decision
    from doe.design import Design, read_design
    from doe.desirability import optimize_desirability
    from doe.errors import DesignError, DoeError, ModelError, StudyError
    from doe.evaluate import DesignEvaluation, evaluate_design
    from doe.fit import FittedModel, Transform, fit_model, reduce_model
    from doe.generators import DESIGN_TYPES, generate
    from doe.mixed import MixedFit, fit_mixed
    from doe.runs import RunsUpload, merge_results, read_results
    from doe.scale import plan_seed_train
    from doe.space import DesignSpace, PredictiveModel, SpaceGrid
    from doe.store import Store
    from doe.study import Factor, Response, Study
    from doe.versions import rerun_analysis

#: Public name -> the module that owns it.
_OWNERS = {
    # study and design
    "Study": "doe.study", "Factor": "doe.study", "Response": "doe.study",
    "Design": "doe.design", "read_design": "doe.design",
    "generate": "doe.generators", "DESIGN_TYPES": "doe.generators",
    "DesignEvaluation": "doe.evaluate", "evaluate_design": "doe.evaluate",
    # runs
    "read_results": "doe.runs", "RunsUpload": "doe.runs", "merge_results": "doe.runs",
    # models
    "FittedModel": "doe.fit", "fit_model": "doe.fit", "reduce_model": "doe.fit", "Transform": "doe.fit",
    "Analysis": "doe.analysis", "ModelChoice": "doe.analysis", "CQAFit": "doe.analysis", "fit_all": "doe.analysis",
    "MixedFit": "doe.mixed", "fit_mixed": "doe.mixed",
    # design space and decisions
    "DesignSpace": "doe.space", "PredictiveModel": "doe.space", "SpaceGrid": "doe.space",
    "Decision": "doe.decision", "DEFAULT_THRESHOLD": "doe.decision",
    "optimize_desirability": "doe.desirability",
    # storage, versions, scale-up
    "Store": "doe.store", "rerun_analysis": "doe.versions", "plan_seed_train": "doe.scale",
    # errors
    "DoeError": "doe.errors", "StudyError": "doe.errors", "DesignError": "doe.errors", "ModelError": "doe.errors",
}

__all__ = [
    "Analysis", "CQAFit", "DEFAULT_THRESHOLD", "DESIGN_TYPES", "Decision", "Design", "DesignError",
    "DesignEvaluation", "DesignSpace", "DoeError", "Factor", "FittedModel", "MixedFit", "ModelChoice", "ModelError",
    "PredictiveModel", "Response", "RunsUpload", "SpaceGrid", "Store", "Study", "StudyError", "Transform",
    "evaluate_design", "fit_all", "fit_mixed", "fit_model", "generate", "merge_results", "optimize_desirability",
    "plan_seed_train", "read_design", "read_results", "reduce_model", "rerun_analysis",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its owning module on first use (PEP 562)."""
    owner = _OWNERS.get(name)
    if owner is None:
        raise AttributeError(f"module 'doe' has no attribute {name!r}")
    value = getattr(importlib.import_module(owner), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily loaded public ones included."""
    return sorted({*globals(), *__all__})
