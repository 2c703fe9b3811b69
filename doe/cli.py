"""Command line: everything the app does, headless.

    python -m doe design STUDY.yaml --type optimal --model quadratic --runs 40 --seed 1 \
        --out design.csv --json eval.json
    python -m doe evaluate STUDY.yaml design.csv --model quadratic --json eval.json
    python -m doe augment STUDY.yaml design.csv --add 8 --out bigger.csv
    python -m doe validate STUDY.yaml

Errors in the input exit with status 2 and one line on stderr; no traceback
(set DOE_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from doe.errors import DoeError

EXIT_INPUT = 2
EXIT_BUG = 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"error: {message} (see 'python -m doe {self.prog.split()[-1]} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from doe.generators import DESIGN_TYPES

    parser = _Parser(prog="python -m doe", description="Design of experiments for QbD, headless.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("design", help="generate a design and write the run sheet")
    p.add_argument("study", help="study YAML file")
    p.add_argument("--type", required=True, choices=DESIGN_TYPES, dest="kind")
    p.add_argument("--model", help="preset (linear, interactions, quadratic, full) or term list")
    p.add_argument("--runs", type=int, help="run budget (optimal, lhs) or runs of a fraction")
    p.add_argument("--criterion", default="D", type=str.upper, choices=("D", "I"))
    p.add_argument("--resolution", type=int, help="fractional factorial resolution (3, 4, 5, ...)")
    p.add_argument("--alpha", default="rotatable", help="CCD axial distance: rotatable|orthogonal|face|inscribed|VALUE")
    p.add_argument("--center", type=int, help="number of centre points")
    p.add_argument("--replicates", type=int, default=1, help="copies of the whole design (1 = none)")
    p.add_argument("--blocks", type=int, default=1, help="number of blocks")
    p.add_argument("--levels", type=int, help="levels of continuous factors in a full factorial (default 2)")
    p.add_argument("--starts", type=int, help="random starts of the optimal-design search")
    p.add_argument("--seed", type=int, help="random seed (recorded; same seed, same design)")
    p.add_argument("--no-randomize", action="store_true", help="keep standard order")
    p.add_argument("--snr", type=float, default=1.0, help="signal-to-noise ratio for power")
    p.add_argument("--out", required=True, help="run sheet CSV (or .xlsx)")
    p.add_argument("--json", help="write the design evaluation as JSON")

    p = sub.add_parser("evaluate", help="evaluate a design (any run sheet) for a model")
    p.add_argument("study")
    p.add_argument("design", help="design CSV or XLSX with one column per factor")
    p.add_argument("--model", help="model to evaluate (default: quadratic)")
    p.add_argument("--snr", type=float, default=1.0, help="signal-to-noise ratio for power")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for power")
    p.add_argument("--json", help="write the evaluation as JSON (default: print it)")

    p = sub.add_parser("augment", help="add runs to an existing design")
    p.add_argument("study")
    p.add_argument("design", help="existing design CSV or XLSX (need not come from this tool)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--add", type=int, help="add N runs chosen optimally for --model")
    how.add_argument("--foldover", nargs="*", metavar="FACTOR", help="fold over (all factors, or those named)")
    how.add_argument("--axial", action="store_true", help="add axial and centre points (complete a CCD)")
    p.add_argument("--model", help="model the added runs should support (with --add)")
    p.add_argument("--criterion", default="D", type=str.upper, choices=("D", "I"))
    p.add_argument("--alpha", default="rotatable", help="axial distance with --axial")
    p.add_argument("--center", type=int, default=2, help="centre points added with --axial")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--json", help="write the evaluation of the augmented design as JSON")

    p = sub.add_parser("analyze", help="fit a response-surface model to every CQA")
    p.add_argument("study")
    p.add_argument("runs", help="run sheet with results (CSV or XLSX)")
    p.add_argument("--response", nargs="+", help="CQAs to analyse (default: all with results)")
    p.add_argument("--model", default="quadratic", help="preset or term list (default: quadratic)")
    p.add_argument("--transform", default="none",
                   help="none, log, log10, sqrt, logit, boxcox or power:LAMBDA")
    p.add_argument("--reduce", action="store_true", help="backward elimination, kept hierarchical")
    p.add_argument("--reduce-method", default="p", choices=("p", "aicc"))
    p.add_argument("--anova-type", type=int, default=2, choices=(1, 2, 3))
    p.add_argument("--json", help="write the analysis as JSON (default: print it)")

    p = sub.add_parser("validate", help="check a study file and print a summary")
    p.add_argument("study")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"design": _design, "evaluate": _evaluate, "augment": _augment,
                "analyze": _analyze, "validate": _validate}[args.command](args)
    except DoeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:
        print(f"error: {exc.strerror or exc} ({exc.filename or ''})", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("DOE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set DOE_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_BUG


def _write_design(design, out: str) -> None:
    path = Path(out)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        path.write_bytes(design.to_xlsx())
    else:
        design.to_csv(path)


def _write_json(data: dict[str, Any], target: str | None) -> None:
    text = json.dumps(_json_ready(data), indent=2, allow_nan=False)
    if target:
        Path(target).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


def _json_ready(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, so the JSON is strict."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _evaluation_json(design, model: str | None, snr: float, alpha: float = 0.05) -> dict[str, Any]:
    from doe.evaluate import evaluate_design
    from doe.model import parse_model

    terms = parse_model(design.study, model or design.model or "quadratic")
    ev = evaluate_design(design.study, design, terms, snr=snr, alpha=alpha)
    out = ev.to_json()
    out["design"] = {
        "type": design.kind, "runs": design.n_runs, "blocks": design.n_blocks, "seed": design.seed,
        "model": design.model, "info": design.info, "warnings": design.warnings,
    }
    out["warnings"] = list(design.warnings) + list(out.get("warnings", []))
    return out


def _design(args: argparse.Namespace) -> int:
    from doe.generators import generate
    from doe.study import Study

    study = Study.load(args.study)
    design = generate(
        study, args.kind, model=args.model, runs=args.runs, criterion=args.criterion,
        resolution=args.resolution, alpha=args.alpha, center=args.center,
        replicates=args.replicates, blocks=args.blocks, levels=args.levels, starts=args.starts,
        seed=args.seed, randomize=not args.no_randomize,
    )
    _write_design(design, args.out)
    if args.json:
        _write_json(_evaluation_json(design, args.model, args.snr), args.json)
    print(f"{design.kind} design: {design.n_runs} runs, seed {design.seed} -> {args.out}")
    for w in design.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from doe.design import read_design
    from doe.study import Study

    study = Study.load(args.study)
    design = read_design(study, args.design)
    _write_json(_evaluation_json(design, args.model, args.snr, args.alpha), args.json)
    if args.json:
        print(f"evaluation of {design.n_runs} runs -> {args.json}")
    return 0


def _augment(args: argparse.Namespace) -> int:
    from doe.design import read_design
    from doe.generators import add_axial, augment, fold_over
    from doe.study import Study

    study = Study.load(args.study)
    design = read_design(study, args.design)
    if args.add is not None:
        new = augment(design, args.add, model=args.model, criterion=args.criterion, seed=args.seed)
    elif args.foldover is not None:
        new = fold_over(design, args.foldover or None)
    else:
        new = add_axial(design, alpha=args.alpha, center=args.center)
    _write_design(new, args.out)
    if args.json:
        _write_json(_evaluation_json(new, args.model, 1.0), args.json)
    print(f"{design.n_runs} runs + {new.n_runs - design.n_runs} new -> {args.out}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from doe.fit import analyze
    from doe.runs import read_results
    from doe.study import Study

    study = Study.load(args.study)
    upload = read_results(study, Path(args.runs))
    for problem in upload.problems:
        if problem.severity != "error":
            print(f"warning: {problem}", file=sys.stderr)
    if not upload.ok:
        errors = [str(p) for p in upload.problems if p.severity == "error"]
        raise DoeError(f"{len(errors)} problem(s) in {args.runs}; first: {errors[0]}")
    result = analyze(study, upload.table, args.response, model=args.model, transform=args.transform,
                     reduce=args.reduce, reduce_method=args.reduce_method, anova_type=args.anova_type)
    _write_json(result, args.json)
    if args.json:
        print(f"{len(result['responses'])} CQA(s) analysed -> {args.json}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from doe.study import Study

    study = Study.load(args.study)
    print(f"{study.name}: {len(study.factors)} factors, {len(study.responses)} CQAs, "
          f"{len(study.constraints)} constraints - valid")
    for f in study.factors:
        print(f"  factor {f.name} ({f.kind}): {f.describe_range()}")
    for r in study.responses:
        print(f"  CQA {r.described()}, goal {r.goal}")
    return 0
