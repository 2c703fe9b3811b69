"""Command line of the measured seed train: growth kinetics, growth curves, equivalence between scales.

    python -m doe growth PASSAGES.csv --json OUT.json [--by Vessel] [--vessels CATALOGUE.csv]
    python -m doe growth-curve CURVE.csv --time Day --value "Cells per cm2" --json OUT.json [--h 5 --quota 0.95]
    python -m doe equivalence DATA.csv --response Y --group COL --reference A --test B --margin LOW HIGH \
        [--paired --id COL] [--log] [--var-equal] [--alpha 0.05] --json OUT.json
    python -m doe equivalence-n --sd S --margin LOW HIGH --true-difference D --alpha A --power P [--paired] [--log]

``equivalence`` reads any table; a passage sheet (doe.growth) gets its kinetics columns first, so
``--response "Fold expansion" --group Family`` works on the passages file itself. Registered by
:mod:`doe.cli`, which handles errors and exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doe.errors import DoeError


def add_commands(sub: Any) -> None:
    """Add the seed-train subcommands to ``python -m doe``'s subparsers."""
    p = sub.add_parser("growth", help="seed-train passages: fold expansion, doublings, doubling time per vessel family")
    p.add_argument("passages", help="passage sheet (CSV or XLSX): Donor, Passage, Vessel, Seeded cells, "
                                    "Harvested cells, Hours or Days [, Viability, Area (cm2), Notes]")
    p.add_argument("--json", required=True, help="write passages, groups and donors as JSON")
    p.add_argument("--by", default="Family", help="group column (default Family: the vessel family; or Vessel, Donor)")
    p.add_argument("--vessels", help="vessel catalogue CSV (default: data/vessels.csv)")
    p.add_argument("--figure", help="fold expansion by group as .html, .png or .svg")

    p = sub.add_parser("growth-curve", help="maximum growth rate and lag of a time course of counts "
                                            "(easy linear method, Hall et al. 2014)")
    p.add_argument("curve", help="time course (CSV or XLSX) with a time column and a count column")
    p.add_argument("--time", required=True, help="the time column")
    p.add_argument("--value", required=True, help="the count (cells, cells/cm2, OD) column")
    p.add_argument("--h", type=int, default=5, help="points per regression window (default 5)")
    p.add_argument("--quota", type=float, default=0.95,
                   help="windows whose slope is at least this share of the steepest are pooled (default 0.95)")
    p.add_argument("--json", required=True, help="write mumax, lag, doubling_time, r2, window as JSON")
    p.add_argument("--figure", help="the curve as .html, .png or .svg")

    p = sub.add_parser("equivalence", help="two one-sided tests (TOST) of a CQA between two vessel families or scales")
    p.add_argument("data", help="table (CSV or XLSX) with the response and group columns, or a passage sheet")
    p.add_argument("--response", required=True, help="the CQA column (a passage sheet also has 'Fold expansion', "
                                                     "'Doubling time (h)', 'Harvest density (cells/cm2)')")
    p.add_argument("--group", required=True, help="the column naming the vessel family or scale")
    p.add_argument("--reference", required=True, help="the reference group (e.g. the established scale)")
    p.add_argument("--test", required=True, help="the group tested against it (e.g. the new scale)")
    p.add_argument("--margin", nargs=2, type=float, required=True, metavar=("LOW", "HIGH"),
                   help="equivalence margins: differences (test - reference), or ratios with --log")
    p.add_argument("--paired", action="store_true", help="paired by --id (the same donors ran both)")
    p.add_argument("--id", help="the pairing column (e.g. Donor), with --paired")
    p.add_argument("--log", action="store_true", help="log-normal response: ratio of geometric means")
    p.add_argument("--var-equal", action="store_true", help="pooled variance (default: Welch)")
    p.add_argument("--alpha", type=float, default=0.05, help="size of each one-sided test (default 0.05)")
    p.add_argument("--json", required=True, help="write the TOST result as JSON")
    p.add_argument("--figure", help="the interval against the margins as .html, .png or .svg")

    p = sub.add_parser("equivalence-n", help="sample size of a TOST equivalence study")
    p.add_argument("--sd", type=float, required=True, help="standard deviation (of differences when --paired; "
                                                           "of log values with --log)")
    p.add_argument("--margin", nargs=2, type=float, required=True, metavar=("LOW", "HIGH"),
                   help="equivalence margins (ratios with --log)")
    p.add_argument("--true-difference", type=float, default=None,
                   help="the difference expected (default 0; with --log a ratio, default 1)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--paired", action="store_true", help="paired design: n is the number of pairs")
    p.add_argument("--log", action="store_true", help="margins and true difference are ratios")
    p.add_argument("--json", help="write the result as JSON (default: print it)")


def _problems(upload: Any, path: str) -> None:
    for problem in upload.warnings:
        print(f"warning: {problem}", file=sys.stderr)
    if not upload.ok:
        errors = [str(p) for p in upload.errors]
        raise DoeError(f"{len(errors)} problem(s) in {path}; first: {errors[0]}")


def read_passage_file(path: str | Path, catalogue: Any = None) -> Any:
    """The checked passage sheet of a file (warnings on stderr); a DoeError naming the first error."""
    from doe.growth import read_passages

    upload = read_passages(Path(path), Path(path).name, catalogue)
    _problems(upload, str(path))
    return upload.table


def _growth(args: argparse.Namespace, write_json: Callable[..., None], write_figure: Callable[..., None]) -> int:
    from doe.growth import growth_summary
    from doe.scale import read_catalogue

    catalogue = read_catalogue(args.vessels) if args.vessels else read_catalogue()
    summary = growth_summary(read_passage_file(args.passages, catalogue), catalogue, by=args.by)
    out = summary.to_json()
    write_json(out, args.json)
    if args.figure:
        from doe.plots.seed_train import kinetics_figure

        write_figure(kinetics_figure(summary, note=Path(args.passages).name), args.figure)
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    for name, g in out["groups"].items():
        fold, dt = g["fold_expansion"], g["doubling_time_h"]
        print(f"{name}: {g['n']} passages, fold expansion {_num(fold['mean'])} "
              f"(95 % CI {_num(fold['ci_low'])} to {_num(fold['ci_high'])}), doubling time "
              f"{_num(dt['mean'])} h")
    print(f"{len(out['passages'])} passages -> {args.json}")
    return 0


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.3g}"


def _growth_curve(args: argparse.Namespace, write_json: Callable[..., None],
                  write_figure: Callable[..., None]) -> int:
    from doe.growth_curve import fit_growth_curve, read_growth_curve

    time, value = read_growth_curve(Path(args.curve), args.time, args.value, Path(args.curve).name)
    curve = fit_growth_curve(time, value, h=args.h, quota=args.quota)
    out = curve.to_json()
    out.update({"time_column": args.time, "value_column": args.value, "file": Path(args.curve).name})
    write_json(out, args.json)
    if args.figure:
        from doe.plots.seed_train import growth_curve_figure

        write_figure(growth_curve_figure(curve, time, value, time_label=args.time, value_label=args.value,
                                         note=Path(args.curve).name), args.figure)
    print(f"mumax {curve.mumax:.4g} per unit of {args.time}, lag {curve.lag:.4g}, doubling time "
          f"{curve.doubling_time:.4g}, R² {curve.r2:.4f} ({len(curve.window)} points) -> {args.json}")
    return 0


def read_comparison_table(path: str | Path, catalogue: Any = None) -> Any:
    """A table for an equivalence test: a passage sheet gets its kinetics columns (Family, Fold expansion,
    Doubling time (h), Harvest density ...); any other table is read as it is."""
    from doe.growth import passage_kinetics, read_passages
    from doe.runs import read_table

    path = Path(path)
    frame = read_table(path.read_bytes(), path.name)
    columns = {str(c).strip().lower() for c in frame.columns}
    if {"seeded cells", "harvested cells", "vessel"} <= columns:
        upload = read_passages(frame, path.name, catalogue)
        _problems(upload, str(path))
        return passage_kinetics(upload.table, catalogue)
    return frame


def _equivalence(args: argparse.Namespace, write_json: Callable[..., None],
                 write_figure: Callable[..., None]) -> int:
    from doe.equivalence import tost

    if args.paired and not args.id:
        raise DoeError("--paired needs --id COL: the column that pairs the runs (e.g. --id Donor).")
    if args.id and not args.paired:
        raise DoeError("--id is the pairing column of a paired test: add --paired, or leave --id out.")
    data = read_comparison_table(args.data)
    result = tost(data, args.response, args.group, args.reference, args.test, (args.margin[0], args.margin[1]),
                  paired=args.paired, id=args.id, log=args.log, var_equal=args.var_equal, alpha=args.alpha)
    write_json(result.to_json(), args.json)
    if args.figure:
        from doe.plots.equivalence import equivalence_figure

        write_figure(equivalence_figure(result, note=Path(args.data).name), args.figure)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(result.conclusion())
    return 0


def _equivalence_n(args: argparse.Namespace, write_json: Callable[..., None],
                   write_figure: Callable[..., None]) -> int:
    from doe.equivalence import equivalence_sample_size

    true = args.true_difference if args.true_difference is not None else (1.0 if args.log else 0.0)
    out = equivalence_sample_size(args.sd, (args.margin[0], args.margin[1]), true, args.alpha, args.power,
                                  paired=args.paired, log=args.log)
    write_json(out, args.json)
    if args.json:
        what = "pairs" if args.paired else "per group"
        print(f"n {what}: {out['n_per_group']:.4g} (exact), {out['n_rounded']} rounded up -> {args.json}")
    return 0


#: Subcommand -> handler(args, write_json, write_figure).
COMMANDS: dict[str, Callable[[argparse.Namespace, Callable[..., None], Callable[..., None]], int]] = {
    "growth": _growth, "growth-curve": _growth_curve, "equivalence": _equivalence, "equivalence-n": _equivalence_n}
