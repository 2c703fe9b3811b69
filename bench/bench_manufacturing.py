"""Benchmark of manufacturing: what the Manufacturing page computes on the bundled example and on many lots.

Run from the repository root::

    python bench/bench_manufacturing.py [--json OUT.json]

Cases (median wall-clock of 7 repeats, after one warm-up):

1. The bundled example (data/msc_lots.csv, 30 lots) with the example's fitted models (reduced quadratic, as
   the page fits them) and a decision: read and check the sheet (``read_lots``), an individuals chart with
   Nelson's rules (``control_chart``), phase I up to L20 and phase II after it (``phased_charts``),
   capability with intervals and the tolerance interval (``capability``), the Ppk predicted at the set point
   (``predicted_capability``, 4,000 simulated lots), every lot against the decision (``check_lots``: the joint
   probability at each lot's settings and one factor at a time) and the probability map under the lots
   (``space_grid``, 50 x 50). Target: each under 0.3 s, so the page reacts within a fraction of a second.
2. Many lots: 3,000 lots (the example repeated, ids made unique): ``read_lots``, an individuals chart,
   capability and ``check_lots``. Target: under 5 s each; a process makes tens to hundreds of lots a year.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from _timing import timed  # noqa: E402  (bench/ is the script's folder)

from doe.analysis import default_choice, fit_all  # noqa: E402
from doe.capability import capability  # noqa: E402
from doe.control_charts import control_chart, phased_charts  # noqa: E402
from doe.decision import Decision  # noqa: E402
from doe.example import RESULTS_FILE, STUDY_FILE  # noqa: E402
from doe.lots import LOTS_FILE, check_lots, predicted_capability, read_lots  # noqa: E402
from doe.runs import read_results  # noqa: E402
from doe.space import DesignSpace, space_grid  # noqa: E402
from doe.study import Study  # noqa: E402

SET_POINT = {"Medium": "hPL 5%", "Surface": "Standard TC", "Harvest reagent": "TrypLE", "Agitation": 42.0,
             "Seeding density": 1800.0}




def main() -> None:
    """Run both cases and print (and optionally write) the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the timings as JSON")
    args = parser.parse_args()
    study = Study.load(STUDY_FILE)
    analysis = fit_all(study, read_results(study, RESULTS_FILE).table, default=default_choice())
    decision = Decision(threshold=0.5, set_point=SET_POINT,
                        ranges={"par": {"Harvest reagent": ["TrypLE", "Accutase"]}})
    space = DesignSpace.of(study, analysis).on_decision(decision)
    data = LOTS_FILE.read_bytes()
    lots = read_lots(study, data, LOTS_FILE.name).table
    cd73 = lots["CD73/CD90/CD105"].tolist()
    labels = lots["Lot"].tolist()
    fixed = {k: v for k, v in SET_POINT.items() if k not in ("Agitation", "Seeding density")}
    example = {
        "read_lots": timed(lambda: read_lots(study, data, LOTS_FILE.name)),
        "control_chart_imr": timed(lambda: control_chart(cd73, "imr", labels=labels)),
        "phased_charts": timed(lambda: phased_charts(cd73, "imr", "L20", labels=labels)),
        "capability": timed(lambda: capability(lots["Viability"].tolist(), lower=80.0)),
        "predicted_capability": timed(lambda: predicted_capability(space, study, SET_POINT, {}, "Viability")),
        "check_lots": timed(lambda: check_lots(space, decision, lots)),
        "space_grid": timed(lambda: space_grid(space.pm, "Agitation", "Seeding density", fixed, threshold=0.5)),
    }
    many = pd.concat([lots.assign(Lot=lots["Lot"] + f"-{k}") for k in range(100)], ignore_index=True)
    many_bytes = many.to_csv(index=False).encode("utf-8")
    values = many["CD73/CD90/CD105"].tolist()
    large = {"lots": len(many),
             "read_lots": timed(lambda: read_lots(study, many_bytes, "many.csv"), 3),
             "control_chart_imr": timed(lambda: control_chart(values, "imr", labels=many["Lot"].tolist()), 3),
             "capability": timed(lambda: capability(many["Viability"].tolist(), lower=80.0), 3),
             "check_lots": timed(lambda: check_lots(space, decision, many), 3)}
    out = {"python": platform.python_version(), "machine": platform.machine(), "example": example, "large": large}
    for name, sec in example.items():
        print(f"example    {name:<22} {sec * 1000:8.1f} ms  {'ok' if sec < 0.3 else 'SLOW (target 0.3 s)'}")
    for name in ("read_lots", "control_chart_imr", "capability", "check_lots"):
        sec = large[name]
        print(f"{large['lots']} lots {name:<22} {sec * 1000:8.1f} ms  {'ok' if sec < 5 else 'SLOW (target 5 s)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
