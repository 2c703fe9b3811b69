"""The report's PAR table says what ends each proven acceptable range, as the Design space page does:
the CQA whose probability of meeting its spec is the lowest just beyond a numeric PAR end that the
probability limits, else 'study range' or 'constraint'."""

from __future__ import annotations

import pandas as pd

from doe.analysis import default_choice, fit_choice
from doe.report.content import SEED, build_report
from doe.space import build_predictive, probability
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT


def test_report_par_table_names_what_ends_each_range():
    study = Study.load(EXAMPLE)
    runs = pd.read_csv(ROOT / "data" / "msc_example_results.csv")
    content = build_report(study=study, runs=runs, draws=1000)
    section = next(s for s in content.sections if s.heading.startswith("7."))
    frame = next(b.frame for b in section.blocks if hasattr(b, "frame"))
    assert {"Low end limited by", "High end limited by"} <= set(frame.columns)
    numeric = [f for f in study.factors if not f.is_categorical]
    fits = {r.name: fit_choice(study, runs, r.name, default_choice()) for r in study.responses}
    pm = build_predictive(study, {n: ft.model for n, ft in fits.items() if ft.model is not None}, seed=SEED)
    named = 0
    for f in numeric:
        row = frame[frame["factor"] == f.label()].iloc[0]
        low, high = (float(x) for x in row["PAR"].split(" to "))
        for end, value, sign in (("Low end limited by", low, -1), ("High end limited by", high, 1)):
            text = row[end]
            assert text in ("study range", "constraint") or text.endswith("(P below threshold)"), text
            if text == "study range":
                assert value in (f.low, f.high) or abs(value - (f.low if sign < 0 else f.high)) < 1e-6 * (f.high - f.low)
                continue
            if text == "constraint":
                continue
            cqa = text.removesuffix(" (P below threshold)")
            # recomputed here: just beyond the end, that CQA has the lowest probability of meeting its spec
            x = value + sign * 1e-3 * (f.high - f.low)
            point = pd.DataFrame([{**content.set_point, f.name: x}], columns=study.factor_names)
            per_cqa = {k: v[0] for k, v in probability(pm, point, draws=1000, seed=SEED).per_cqa.items()}
            assert min(per_cqa, key=per_cqa.get) == cqa, (f.name, end, per_cqa)
            named += 1
    assert named >= 1  # the example's PARs end inside the ranges on at least one side
