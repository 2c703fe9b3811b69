"""Command line of manufacturing lots: process capability with tolerance intervals, and control charts.

    python -m doe capability LOTS.csv --response Y [--lower L] [--upper U] [--target T] [--subgroup COL] \
        [--coverage 0.99 --confidence 0.95] --json OUT.json
    python -m doe chart LOTS.csv --response Y --type xbar-r|xbar-s|imr|p|np [--subgroup COL] [--size N] \
        [--exclude LOT ...] [--limits PHASE1.json] --json OUT.json

LOTS is any table (CSV or XLSX) with one row per lot (or per measurement), in time order; a ``Lot`` column
labels the points. Registered by :mod:`doe.cli`, which handles errors and exit codes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doe.errors import DoeError, did_you_mean, quoted_list


def add_commands(sub: Any) -> None:
    """Add the manufacturing subcommands to ``python -m doe``'s subparsers."""
    p = sub.add_parser("capability", help="process capability (Cp, Cpk, Cpm, Pp, Ppk with CIs) and a tolerance interval")
    p.add_argument("lots", help="lots table (CSV or XLSX), one row per lot in time order")
    p.add_argument("--response", required=True, help="the CQA column")
    p.add_argument("--lower", type=float, help="lower specification limit")
    p.add_argument("--upper", type=float, help="upper specification limit")
    p.add_argument("--target", type=float, help="target (for Cpm; default the middle of the limits)")
    p.add_argument("--subgroup", help="subgroup column: within-subgroup sigma (default: moving range of lots)")
    p.add_argument("--coverage", type=float, default=0.99, help="tolerance interval: share of lots covered")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the intervals")
    p.add_argument("--sides", type=int, choices=(1, 2), default=2, help="tolerance interval sides (default 2)")
    p.add_argument("--howe", action="store_true", help="Howe's approximation for the two-sided tolerance factor")
    p.add_argument("--json", required=True, help="write the capability as JSON")

    p = sub.add_parser("chart", help="control charts (X-bar/R, X-bar/S, I-MR, p, np) with run rules")
    p.add_argument("lots", help="lots table (CSV or XLSX) in time order")
    p.add_argument("--response", required=True, help="the measured column (p/np: the count of nonconforming)")
    p.add_argument("--type", required=True, choices=("xbar-r", "xbar-s", "imr", "p", "np"))
    p.add_argument("--subgroup", help="subgroup column (X-bar charts)")
    p.add_argument("--size", help="p/np: inspected per subgroup, a number or a column name")
    p.add_argument("--exclude", nargs="+", default=[], metavar="LOT", help="phase I: points left out of the limits")
    p.add_argument("--limits", help="phase II: the JSON of a phase I chart (its 'limits')")
    p.add_argument("--baseline", metavar="LOT",
                   help="phase I on the lots (X-bar: subgroups) up to and including LOT, phase II after it")
    p.add_argument("--json", required=True, help="write the charts as JSON")
    p.add_argument("--figure", help="the charts as .html, .png or .svg")


def _column(frame: Any, name: str, what: str) -> Any:
    if name not in frame.columns:
        cols = [str(c) for c in frame.columns]
        raise DoeError(f"{what}: the table has no column '{name}'.{did_you_mean(name, cols)} "
                       f"Columns: {quoted_list(cols)}.")
    return frame[name]


def _table(path: str) -> Any:
    from doe.runs import read_table, source_bytes

    data, name = source_bytes(Path(path), Path(path).name)
    return read_table(data, name)


def _capability(args: argparse.Namespace, write_json: Callable[..., None], write_figure: Callable[..., None]) -> int:
    from doe.capability import capability

    frame = _table(args.lots)
    values = _column(frame, args.response, "--response")
    subgroups = None if not args.subgroup else _column(frame, args.subgroup, "--subgroup").astype(str).tolist()
    result = capability(values.tolist(), lower=args.lower, upper=args.upper, target=args.target,
                        subgroups=subgroups, confidence=args.confidence, coverage=args.coverage,
                        tolerance_confidence=args.confidence, response=args.response,
                        tolerance_method="howe" if args.howe else "exact", sides=args.sides)
    write_json(result.to_json(), args.json)
    out = result.to_json()
    shown = ", ".join(f"{k} {out[k]['value']:.3g}" for k in ("cp", "cpk", "cpm") if out.get(k))
    print(f"{args.response}: {result.n} lots; {shown or 'no spec limits'} -> {args.json}")
    return 0


def _chart(args: argparse.Namespace, write_json: Callable[..., None], write_figure: Callable[..., None]) -> int:
    from doe.control_charts import control_chart, phased_charts

    frame = _table(args.lots)
    values = _column(frame, args.response, "--response").tolist()
    subgroups = None if not args.subgroup else _column(frame, args.subgroup, "--subgroup").astype(str).tolist()
    # a point is a lot, or for X-bar charts a subgroup (labelled by the subgroup column)
    labels = frame["Lot"].astype(str).tolist() if "Lot" in frame.columns and not args.type.startswith("xbar") \
        else None
    size: Any = None
    if args.size is not None:
        size = (_column(frame, args.size, "--size").tolist() if args.size in frame.columns
                else _number(args.size))
    if args.baseline and args.limits:
        raise DoeError("Give --baseline (phase I from the first lots) or --limits (a saved phase I), not both.")
    baseline = None
    if args.baseline:
        baseline, charts = phased_charts(values, args.type, args.baseline, subgroups=subgroups, size=size,
                                         labels=labels, exclude=args.exclude)
    else:
        limits = None
        if args.limits:
            saved = json.loads(Path(args.limits).read_text(encoding="utf-8"))
            limits = saved.get("limits", saved) if isinstance(saved, dict) else saved
        charts = control_chart(values, args.type, subgroups=subgroups, size=size, labels=labels,
                               exclude=args.exclude, limits=limits)
    out = charts.to_json()
    out["limits"] = (baseline or charts).limits()
    if baseline is not None:
        out["baseline"] = baseline.to_json()
    write_json(out, args.json)
    if args.figure:
        from doe.plots.control import control_figure

        write_figure(control_figure(charts, note=Path(args.lots).name, response=args.response,
                                    limits_from=f"the lots up to {args.baseline}" if args.baseline else ""), args.figure)
    flagged = sum(len(c.violations) for c in charts.charts.values())
    print(f"{args.type}: {charts.n_subgroups} points, phase {charts.phase}, {flagged} rule violations -> {args.json}")
    return 0


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DoeError(f"--size '{text}' is neither a number nor a column of the table.") from None


#: Subcommand -> handler(args, write_json, write_figure).
COMMANDS: dict[str, Callable[[argparse.Namespace, Callable[..., None], Callable[..., None]], int]] = {
    "capability": _capability, "chart": _chart}
