"""The bundled MSC example: its study, its 40-run D-optimal design and the simulated results run on it.

``data/simulate_example.py`` made the design with
``generate(study, 'optimal', model='quadratic', runs=40, seed=20261128)`` and simulated the results
on it; :func:`load_example_results` stores that design as a named design and enters the results
against it, so every page, the report and the CLI name the design the data were run on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from doe.errors import DoeError

if TYPE_CHECKING:
    from doe.design import Design
    from doe.store import Store, User
    from doe.study import Study

DATA = Path(__file__).resolve().parent.parent / "data"
STUDY_FILE = DATA / "msc_expansion.yaml"
DESIGN_FILE = DATA / "msc_example_design.csv"
RESULTS_FILE = DATA / "msc_example_results.csv"
#: How data/simulate_example.py made the design (its SEED, MODEL, RUNS; a test keeps them equal).
DESIGN_KIND, DESIGN_MODEL, DESIGN_RUNS, DESIGN_SEED = "optimal", "quadratic", 40, 20261128
DESIGN_NAME = f"Example D-optimal design, {DESIGN_RUNS} runs"

#: The split-plot example (issue 18): Surface hard to change (whole plots of 4 runs), six donors as a random
#: effect; data/simulate_split_plot.py made its 32-run split-plot D-optimal design (8 whole plots) and results.
SPLIT_STUDY_FILE = DATA / "msc_split_plot.yaml"
SPLIT_DESIGN_FILE = DATA / "msc_split_plot_design.csv"
SPLIT_RESULTS_FILE = DATA / "msc_split_plot_results.csv"
SPLIT_TRUTH_FILE = DATA / "msc_split_plot_truth.json"


def example_design(study: Study) -> Design:
    """The example's design (data/msc_example_design.csv) with the type, model and seed that made it."""
    from doe.design import read_design

    design = read_design(study, DESIGN_FILE.read_bytes(), DESIGN_FILE.name)
    design.kind, design.model, design.seed = DESIGN_KIND, DESIGN_MODEL, DESIGN_SEED
    return design


def load_example_results(store: Store, study: Study, user: User | str) -> tuple[int, int]:
    """Save the example design as "Example D-optimal design, 40 runs" (reused when already saved) and
    enter the simulated results against it; return (design id, data version).

    Refused when the study already has runs (the example results are for a fresh study).
    """
    from doe.runs import read_results

    existing = store.data_versions(study.name)
    if len(existing):
        raise DoeError(f"Study '{study.name}' already has runs (data version {int(existing['version'].iloc[-1])}); "
                       "the example results are only loaded into a study without runs.")
    results = read_results(study, RESULTS_FILE)
    if not results.ok:
        raise DoeError("The bundled example results cannot be read: "
                       + "; ".join(p.message for p in results.errors))
    designs = store.designs(study.name)
    mine = designs[designs["name"] == DESIGN_NAME]
    if len(mine):
        design_id = int(mine["id"].iloc[0])
        store.set_current_design(design_id, user)
    else:
        design_id = store.save_design(study.name, example_design(study), user, DESIGN_NAME)
    version = store.append_runs(study.name, results.table, user, design_id=design_id)
    return design_id, version
