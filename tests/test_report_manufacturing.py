"""The report's continued-process-verification section (doe.report.manufacturing) on the example lots.

Capability numbers are those of doe.capability (tested against qcc's printed output); here the section is
checked to report each CQA with spec limits once, with the numbers of an independent hand computation of Ppk
from the lots, the simulated notice, one chart per CQA, and the lots against a design-space decision.
"""

from __future__ import annotations

import statistics

import pandas as pd

from doe.analysis import default_choice, fit_all
from doe.decision import Decision
from doe.lots import predicted_capability
from doe.report.content import Figure, Notice, Table
from doe.report.manufacturing import LotsInputs, capability_frame, cpv_section
from doe.runs import read_results
from doe.space import DesignSpace
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT

LOTS = pd.read_csv(ROOT / "data" / "msc_lots.csv")


def test_capability_frame_has_every_cqa_with_a_spec_and_hand_ppk():
    study = Study.load(EXAMPLE)
    table, notes = capability_frame(study, LOTS)
    with_spec = [r for r in study.responses if r.lower is not None or r.upper is not None]
    assert len(table) == len(with_spec) and not notes
    fold = LOTS["Fold expansion"]
    ppk = (fold.mean() - 4.0) / (3 * statistics.stdev(fold))  # lower spec only: Ppk = Ppl
    row = table[table["CQA"].str.startswith("Fold expansion")].iloc[0]
    assert row["Ppk observed"] == f"{ppk:.2f}"
    cd73 = table[table["CQA"].str.startswith("CD73")].iloc[0]
    assert cd73["Observed out of spec (%)"] == "3.33"  # L26 of 30 lots
    viability = table[table["CQA"].str.startswith("Viability")].iloc[0]
    assert viability["99 % of lots within (95 % confidence)"].startswith(">= ")  # a lower spec: one-sided
    assert viability["Expected out of spec (%)"] == "< 0.001"


def test_section_with_and_without_a_decision():
    study = Study.load(EXAMPLE)
    bare = cpv_section(11, study, LotsInputs(LOTS))
    assert bare.heading.startswith("11. Continued process verification")
    assert any(isinstance(b, Notice) and "SIMULATED" in b.text for b in bare.blocks)
    assert sum(isinstance(b, Figure) for b in bare.blocks) == len(study.responses)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    space = DesignSpace.of(study, fit_all(study, runs, default=default_choice()), draws=1000, seed=1)
    sp = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE", "Agitation": 42.0,
          "Seeding density": 1800.0}
    decision = Decision(threshold=0.5, set_point=sp, ranges={"par": {"Harvest reagent": ["TrypLE", "Accutase"]}})
    full = cpv_section(11, study, LotsInputs(LOTS, 1, "abc"), space=space, decision=decision)
    tables = [b for b in full.blocks if isinstance(b, Table)]
    lots_table = tables[-1].frame
    assert list(lots_table["Lot"]) == list(LOTS["Lot"])
    assert lots_table.loc[lots_table["Lot"] == "L26", "In the design space"].item() == "no"
    cap = tables[0].frame.set_index("CQA")
    viability = predicted_capability(space, study, sp, {}, "Viability")["ppk"]
    assert cap.loc["Viability (%)", "Ppk predicted at the set point"] == f"{viability:.2f}"
    assert sum(isinstance(b, Figure) for b in full.blocks) == len(study.responses) + 1  # + the lots on the map
    assert "L26" in [b for b in full.blocks if isinstance(b, Figure)][-1].caption
    assert cpv_section(11, study, None).blocks[0].text.startswith("No manufacturing lots")


def test_report_from_files_has_the_section_after_the_seed_train():
    from doe.report import build_report

    study = Study.load(EXAMPLE)
    runs = read_results(study, ROOT / "data" / "msc_example_results.csv").table
    content = build_report(study=study, runs=runs, draws=300, lots=LOTS)
    headings = [s.heading for s in content.sections]
    assert headings[-3].startswith("10. Seed train") and headings[-2].startswith("11. Continued process verification")
    section = content.sections[-2]
    assert any(isinstance(b, Table) and "Cpk (95 % CI)" in b.frame.columns for b in section.blocks)
