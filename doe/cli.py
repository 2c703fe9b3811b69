"""Command line: everything the app does, headless.

    python -m doe design STUDY.yaml --type optimal --model quadratic --runs 40 --seed 1 \
        --out design.csv --json eval.json
    python -m doe evaluate STUDY.yaml design.csv --model quadratic --json eval.json
    python -m doe augment STUDY.yaml design.csv --add 8 --out bigger.csv
    python -m doe validate STUDY.yaml
    python -m doe health [--db URL] [--verify-audit]
    python -m doe audit verify [--db URL]
    python -m doe keys [--db URL] [--new FILE]
    python -m doe report --db URL --study NAME [--analysis VERSION] --out report.pdf --out report.html
    python -m doe designs --db URL --study NAME [--rename ID NAME] [--current ID] [--delete ID --reason WHY]
    python -m doe export --db URL --study NAME --out bundle.zip
    python -m doe import-bundle bundle.zip [--db URL] [--allow-unsigned]
    python -m doe scale --plan plan.yaml [--study STUDY.yaml --runs RUNS.csv] [--passages PASSAGES.csv] --json plan.json
    python -m doe growth PASSAGES.csv --json OUT.json [--by Vessel]
    python -m doe growth-curve CURVE.csv --time COL --value COL --json OUT.json
    python -m doe equivalence DATA.csv --response Y --group COL --reference A --test B --margin LOW HIGH --json OUT.json
    python -m doe equivalence-n --sd S --margin LOW HIGH --true-difference D --alpha A --power P [--paired]
    python -m doe capability LOTS.csv --response Y [--lower L] [--upper U] [--target T] [--subgroup COL] --json OUT.json
    python -m doe chart LOTS.csv --response Y --type xbar-r|xbar-s|imr|p|np [--subgroup COL] [--size N] --json OUT.json

Errors in the input exit with status 2 and one line on stderr; no traceback
(set DOE_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doe.decision import DEFAULT_THRESHOLD
from doe.errors import DoeError
from doe.jsonable import json_ready

if TYPE_CHECKING:  # imported where used, so that `python -m doe --help` starts without them
    import pandas as pd

    from doe.design import Design
    from doe.store import Store
    from doe.study import Study

EXIT_INPUT = 2
EXIT_BUG = 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"error: {message} (see 'python -m doe {self.prog.split()[-1]} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m doe``: one subcommand per task, each with its ``--help``."""
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
    p.add_argument("--whole-plots", type=int, dest="whole_plots",
                   help="optimal split-plot design: number of whole plots (hard-to-change factors constant in each)")
    p.add_argument("--subplots", type=int,
                   help="split-split-plot: total number of subplots ('very' hard-to-change factors change between "
                        "whole plots, the other hard-to-change ones between subplots)")
    p.add_argument("--donors", type=int,
                   help="optimal design in this many random donor blocks (column: the study's first random effect, "
                        "else Donor)")
    p.add_argument("--variance-ratio", type=float, dest="variance_ratio",
                   help="whole-plot (donor) variance / residual variance for split-plot and donor designs (default 1)")
    p.add_argument("--seed", type=int, help="random seed (recorded; same seed, same design)")
    p.add_argument("--no-randomize", action="store_true", help="keep standard order")
    p.add_argument("--snr", type=float, default=1.0, help="signal-to-noise ratio for power")
    p.add_argument("--out", required=True, help="run sheet CSV (or .xlsx)")
    p.add_argument("--json", help="write the design evaluation as JSON")

    p = sub.add_parser("evaluate", help="evaluate a design (any run sheet) for a model")
    p.add_argument("study")
    p.add_argument("design", help="design CSV or XLSX with one column per factor")
    p.add_argument("--model", help="model to evaluate (default: quadratic, without the square of a "
                                   "two-level discrete factor)")
    p.add_argument("--snr", type=float, default=1.0, help="signal-to-noise ratio for power")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for power")
    p.add_argument("--variance-ratio", type=float, dest="variance_ratio",
                   help="whole-plot (donor) to residual variance ratio for a design with a Whole plot or donor "
                        "column (default 1: JMP's and Design-Expert's)")
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
    p.add_argument("--ddf", default="kr", choices=("kr", "satterthwaite"),
                   help="denominator df of the mixed model's tests, for CQAs with whole plots, donors or lots: "
                        "Kenward-Roger (default) or Satterthwaite")
    p.add_argument("--json", help="write the analysis as JSON (default: print it)")

    p = sub.add_parser("space", help="design space: probability of meeting every CQA spec, PAR, set point")
    p.add_argument("study")
    p.add_argument("runs", help="run sheet with results (CSV or XLSX)")
    p.add_argument("--model", default="quadratic", help="model for every CQA (default: quadratic)")
    p.add_argument("--reduce", action="store_true", help="hierarchical backward reduction of each model")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"probability that defines the design space (default {DEFAULT_THRESHOLD:g})")
    p.add_argument("--assurance", type=float, metavar="GAMMA",
                   help="assurance level (e.g. 0.95): the design space is where the lower GAMMA credible bound "
                        "of P(all CQAs in spec) is >= --threshold; adds probability_lower_bound_at_set_point")
    p.add_argument("--assurance-kind", default="simultaneous", choices=("simultaneous", "pointwise"),
                   help="simultaneous (default): with probability GAMMA the whole region shown meets the "
                        "threshold at once; pointwise: the lower bound at each point separately")
    p.add_argument("--x", help="factor on the map's x axis (default: first numeric factor)")
    p.add_argument("--y", help="factor on the map's y axis (default: second numeric factor)")
    p.add_argument("--fixed", nargs="+", default=[], metavar="NAME=VALUE",
                   help="hold factors at these settings (map slice and set-point search)")
    p.add_argument("--set-point", nargs="+", default=None, metavar="NAME=VALUE",
                   help="use this set point instead of searching for the robust one")
    p.add_argument("--setpoint-sd", nargs="+", default=[], metavar="NAME=SD",
                   help="set-point variation: SD of continuous factors in actual units")
    p.add_argument("--draws", type=int, help="posterior draws (default keeps the Monte Carlo SE < 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-effects", choices=("new", "average"), default=None,
                   help="CQAs with random effects (donors, hPL lots, whole plots): the probability for a run with a "
                        "new donor, lot and whole plot (new, the default) or for the average ones (average)")
    p.add_argument("--no-desirability", action="store_true", help="skip the desirability optimum")
    p.add_argument("--json", required=True)
    p.add_argument("--figure", help="probability map as .png, .svg or .html")

    p = sub.add_parser("scale", help="seed-train scale planner: vessels stage by stage, scale-out vs scale-up")
    p.add_argument("--plan", required=True, help="plan YAML file (demand, supply, strategies)")
    p.add_argument("--study", help="study YAML: take 'from_models' supply values from its fitted models")
    p.add_argument("--runs", help="run sheet with results (CSV or XLSX), with --study")
    p.add_argument("--set-point", nargs="+", default=None, metavar="NAME=VALUE",
                   help="set point of the models (default: the plan's set_point, else centre / first levels)")
    case = p.add_mutually_exclusive_group()
    case.add_argument("--conservative", dest="conservative", action="store_true", default=True,
                      help="lower 95 %% prediction bound of the models (default)")
    case.add_argument("--nominal", dest="conservative", action="store_false", help="predicted means")
    p.add_argument("--vessels", help="vessel catalogue CSV (default: data/vessels.csv)")
    p.add_argument("--passages", help="recorded passages (CSV or XLSX): fold expansion and days per vessel family "
                                      "for the plan's 'from_passages' values")
    p.add_argument("--equivalence", nargs="+", metavar="RESULT.json",
                   help="equivalence results (python -m doe equivalence --json): every change of vessel family "
                        "without such evidence is warned about")
    p.add_argument("--json", required=True, help="write the plan as JSON")
    p.add_argument("--figure", help="cells against day as .html, .png or .svg")

    from doe.cli_manufacturing import add_commands as add_manufacturing
    from doe.cli_seed import add_commands

    add_commands(sub)
    add_manufacturing(sub)

    p = sub.add_parser("validate", help="check a study file and print a summary")
    p.add_argument("study")

    p = sub.add_parser("import", help="save a study (and optional runs) in the store")
    p.add_argument("study", help="study YAML file")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--runs", help="run sheet with results to store as a data version (CSV or XLSX)")
    p.add_argument("--user", help="who is importing (default: the login name)")
    p.add_argument("--reason", help="reason recorded with changed results")
    p.add_argument("--design", type=int, metavar="ID",
                   help="the stored design the runs were made from (see 'python -m doe designs')")

    p = sub.add_parser("rerun", help="append runs and re-run the saved analysis as a new version")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--study", required=True, help="name of the study in the store")
    p.add_argument("--runs", help="new or edited runs (CSV or XLSX) to append first")
    p.add_argument("--user", help="who re-runs the analysis (default: the login name)")
    p.add_argument("--reason", help="reason recorded with the batch (needed to change saved results)")
    p.add_argument("--seed", type=int, default=0, help="seed of the design-space draws")
    p.add_argument("--json", required=True, help="write the new version and the comparison as JSON")

    p = sub.add_parser("compare", help="compare two analysis versions: coefficients, fit, design space")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--study", required=True, help="name of the study in the store")
    p.add_argument("--old", type=int, required=True, help="analysis version before")
    p.add_argument("--new", type=int, required=True, help="analysis version after")
    p.add_argument("--x", help="factor on the map's x axis (default: that of the new version's map)")
    p.add_argument("--y", help="factor on the map's y axis (default: that of the new version's map)")
    p.add_argument("--fixed", nargs="+", default=[], metavar="NAME=VALUE",
                   help="change these settings of the new version's set point (the map holds the others)")
    p.add_argument("--threshold", type=float, help="design-space probability (default: the new version's)")
    p.add_argument("--draws", type=int, help="posterior draws (default: those of the new version)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (the same for both versions)")
    p.add_argument("--n", type=int, default=41, help="map points per axis")
    p.add_argument("--volume", action="store_true", help="also the share of the whole factor region inside")
    p.add_argument("--json", help="write the comparison as JSON (default: print it)")
    p.add_argument("--figure", help="before/after map as .html, .png or .svg")

    p = sub.add_parser("report", help="the report for regulatory review: PDF for submission and/or "
                                      "self-contained interactive HTML")
    p.add_argument("inputs", nargs="*", metavar="STUDY.yaml RUNS.csv",
                   help="report from a study file and a run sheet instead of a database")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--study", help="name of the study in the store")
    p.add_argument("--passages", help="seed-train passages (CSV or XLSX) for the seed-train section (default with "
                                      "--db: the study's recorded passages)")
    p.add_argument("--equivalence", nargs="+", metavar="RESULT.json",
                   help="equivalence results (python -m doe equivalence --json) for the seed-train section")
    p.add_argument("--plan", help="seed-train plan YAML for the seed-train section (default: data/example_plan.yaml)")
    p.add_argument("--lots", help="manufacturing lots (CSV or XLSX) for the continued-process-verification section "
                                  "(default with --db: the study's recorded lots)")
    p.add_argument("--analysis", type=int, help="analysis version (default: the latest)")
    p.add_argument("--out", action="append", required=True, metavar="report.pdf|report.html",
                   help="output file, format by suffix; give --out twice for both PDF and HTML")
    p.add_argument("--draws", type=int, default=4000, help="posterior draws of the design space (default 4000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.add_argument("--assurance", type=float, metavar="GAMMA",
                   help="report the design space with this assurance (default: the saved decision's, if any)")
    p.add_argument("--assurance-kind", default="simultaneous", choices=("simultaneous", "pointwise"))

    p = sub.add_parser("export", help="export a whole study as one bundle zip (import it with import-bundle)")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--study", required=True, help="name of the study in the store")
    p.add_argument("--out", required=True, help="bundle file to write (.zip)")
    p.add_argument("--user", help="who exports, recorded in the bundle (default: the login name)")

    p = sub.add_parser("import-bundle", help="import a study bundle zip made by export, as a new study")
    p.add_argument("bundle", help="bundle zip written by 'python -m doe export'")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--user", help="who is importing (default: the login name)")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="import a bundle that is unsigned (older software) or signed by a key this site does not "
                        "trust (not in DOE_TRUSTED_KEYS); the audit trail records it. A signature that does not "
                        "match is refused anyway")

    p = sub.add_parser("designs", help="a study's designs: list, rename, mark current, delete an unused one")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--study", required=True, help="name of the study in the store")
    p.add_argument("--rename", nargs=2, metavar=("ID", "NAME"), help="give design ID a new name")
    p.add_argument("--current", type=int, metavar="ID", help="make design ID the study's current design")
    p.add_argument("--delete", type=int, metavar="ID", help="delete design ID (not frozen, no runs made from it)")
    p.add_argument("--reason", help="reason recorded with a deletion")
    p.add_argument("--all", action="store_true", help="list deleted designs too")
    p.add_argument("--user", help="who makes the change (default: the login name)")
    p.add_argument("--json", help="also write the list as JSON")

    p = sub.add_parser("audit", help="audit trail: verify the hash chain, the signed head and every stored row")
    p.add_argument("action", choices=("verify",))
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")

    p = sub.add_parser("keys", help="this site's public key (for other sites' DOE_TRUSTED_KEYS), or make a key file")
    p.add_argument("--db", help="database URL whose site key to show (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--new", metavar="FILE", help="create a new site key in FILE (never overwrites a file)")

    p = sub.add_parser("health", help="check the database: open it (upgrading the schema), read, print one line")
    p.add_argument("--db", help="database URL (default: DATABASE_URL or the local SQLite file)")
    p.add_argument("--verify-audit", action="store_true", help="also verify the audit trail's hash chain")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m doe`` with ``argv`` (default: the command line); returns the exit status.

    0 on success; EXIT_INPUT when the input is refused (one ``error:`` line on stderr); EXIT_BUG for an
    internal error (its traceback with DOE_DEBUG=1); 1 when ``analyze`` could fit no CQA.
    """
    args = build_parser().parse_args(argv)
    try:
        from doe._threads import blas_threads
        from doe.cli_manufacturing import COMMANDS as MANUFACTURING
        from doe.cli_seed import COMMANDS

        handler = {**COMMANDS, **MANUFACTURING}.get(args.command)
        with blas_threads(1):  # small dense algebra throughout: one BLAS thread (doe._threads)
            if handler is not None:
                return handler(args, _write_json, _write_figure)
            return {"design": _design, "evaluate": _evaluate, "augment": _augment,
                    "analyze": _analyze, "space": _space, "validate": _validate, "import": _import,
                    "export": _export, "import-bundle": _import_bundle,
                    "rerun": _rerun, "compare": _compare, "report": _report, "scale": _scale, "designs": _designs,
                    "audit": _audit, "keys": _keys, "health": _health}[args.command](args)
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


def _write_design(design: Design, out: str) -> None:
    path = Path(out)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        path.write_bytes(design.to_xlsx())
    else:
        design.to_csv(path)


def _write_json(data: dict[str, Any], target: str | None) -> None:
    text = json.dumps(json_ready(data), indent=2, allow_nan=False)
    if target:
        Path(target).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


def _evaluation_json(design: Design, model: str | None, snr: float, alpha: float = 0.05,
                     variance_ratio: float | None = None) -> dict[str, Any]:
    from doe.evaluate import evaluate_design
    from doe.model import default_model, parse_model

    terms = parse_model(design.study, model or design.model or default_model(design.study, design.kind))
    ev = evaluate_design(design.study, design, terms, snr=snr, alpha=alpha, variance_ratio=variance_ratio)
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
        seed=args.seed, randomize=not args.no_randomize, **_split_options(args),
    )
    _write_design(design, args.out)
    if args.json:
        _write_json(_evaluation_json(design, args.model, args.snr), args.json)
    print(f"{design.kind} design: {design.n_runs} runs, seed {design.seed} -> {args.out}")
    for w in design.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _split_options(args: argparse.Namespace) -> dict[str, Any]:
    """The split-plot / donor options of ``design`` that were given (optimal designs; --whole-plots also for a
    split-plot fraction)."""
    given = {k: getattr(args, k) for k in ("whole_plots", "subplots", "donors", "variance_ratio")
             if getattr(args, k) is not None}
    allowed = given if args.kind == "optimal" else {k: v for k, v in given.items() if k == "whole_plots"
                                                    and args.kind == "fractional"}
    if len(allowed) < len(given):
        flags = ", ".join("--" + k.replace("_", "-") for k in given if k not in allowed)
        raise DoeError(f"{flags} apply to optimal designs only" + (
            " (--whole-plots also to a split-plot fractional factorial)" if "whole_plots" in given else "")
            + ": use --type optimal.")
    return given


def _evaluate(args: argparse.Namespace) -> int:
    from doe.design import read_design
    from doe.study import Study

    study = Study.load(args.study)
    design = read_design(study, args.design)
    _write_json(_evaluation_json(design, args.model, args.snr, args.alpha, args.variance_ratio), args.json)
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
    from doe.fit import analysis_status, analyze
    from doe.study import Study

    study = Study.load(args.study)
    runs = _read_runs(study, args.runs)
    result = analyze(study, runs, args.response, model=args.model, transform=args.transform,
                     reduce=args.reduce, reduce_method=args.reduce_method, anova_type=args.anova_type,
                     ddf=args.ddf)
    _write_json(result, args.json)
    fitted = [n for n, r in result["responses"].items() if not r.get("error")]
    status = sys.stdout if args.json else sys.stderr  # without --json, stdout holds only the JSON
    for line in analysis_status(result):
        print(line, file=status)
    if args.json:
        print(f"{len(result['responses'])} CQA(s) analysed, {len(fitted)} fitted -> {args.json}")
    if not fitted:
        print("error: no CQA could be fitted (reasons above).", file=sys.stderr)
        return 1
    return 0


def _read_runs(study: Study, path: str) -> pd.DataFrame:
    from doe.runs import read_results

    upload = read_results(study, Path(path))
    for problem in upload.problems:
        if problem.severity != "error":
            print(f"warning: {problem}", file=sys.stderr)
    if not upload.ok:
        errors = [str(p) for p in upload.problems if p.severity == "error"]
        raise DoeError(f"{len(errors)} problem(s) in {path}; first: {errors[0]}")
    return upload.table


def _pairs(items: list[str] | None, study: Study, what: str, numeric: bool = False) -> dict[str, Any]:
    """NAME=VALUE arguments -> settings, checked against the study."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise DoeError(f"{what} '{item}' must be NAME=VALUE, e.g. Agitation=60.")
        name, value = (t.strip() for t in item.split("=", 1))
        f = study.factor(name)
        if f.is_categorical and not numeric:
            out[name] = value
        else:
            try:
                out[name] = float(value)
            except ValueError:
                raise DoeError(f"{what} {name}={value}: the value must be a number.") from None
    return out


def _space(args: argparse.Namespace) -> int:
    from doe.analysis import ModelChoice, data_version, fit_all
    from doe.plots.space import footnote, probability_map
    from doe.space import DesignSpace
    from doe.study import Study

    study = Study.load(args.study)
    runs = _read_runs(study, args.runs)
    fits = fit_all(study, runs, default=ModelChoice(model=args.model, reduce=args.reduce))
    for name, fit in fits.items():
        if fit.error:
            print(f"warning: {name} left out: {fit.error}", file=sys.stderr)
    fixed = _pairs(args.fixed, study, "--fixed")
    sd = _pairs(args.setpoint_sd, study, "--setpoint-sd", numeric=True) or {}
    ds = DesignSpace.of(study, fits.models, seed=args.seed, draws=args.draws, threshold=args.threshold,
                        random_effects=args.random_effects, setpoint_sd=sd, assurance=args.assurance,
                        assurance_kind=args.assurance_kind)
    if args.set_point is not None:
        set_point = {**fixed, **_pairs(args.set_point, study, "--set-point")}
    else:
        set_point = ds.robust_set_point(fixed=fixed or None)["settings"]
    out = ds.summary(set_point, x=args.x, y=args.y)
    out["data_version"] = data_version(runs)
    out["desirability_optimum"] = None
    if not args.no_desirability:
        from doe.desirability import optimize_desirability

        opt = optimize_desirability(fits.models, study,
                                    fixed=fixed or None, seed=args.seed)
        out["desirability_optimum"] = {"settings": opt["settings"], "desirability": opt["desirability"],
                                       "predictions": opt.get("predictions")}
    _write_json(out, args.json)
    if args.figure and out.get("grid"):
        g = out["grid"]
        grid = ds.grid(g["x"], g["y"], g["fixed"])
        par = {f: v for f, v in out["par"].items() if f in (g["x"], g["y"]) and len(v) == 2
               and not isinstance(v[0], str)}
        fig = probability_map(grid, study, set_point=out["set_point"], par=par or None,
                              note=footnote(study, out["data_version"]))
        _write_figure(fig, args.figure)
    line = f"set point P(all CQAs in spec) = {out['probability_at_set_point']:.3f}"
    if args.assurance is not None:
        line += (f", lower {100 * args.assurance:g} % credible bound = "
                 f"{out['probability_lower_bound_at_set_point']:.3f}")
    print(f"{line} -> {args.json}")
    return 0


def _scale(args: argparse.Namespace) -> int:
    from doe.plots.scale import plan_figure
    from doe.scale import PlanFile, read_catalogue, run_plan, supply_from_models

    plan = PlanFile.load(args.plan)
    if (args.study is None) != (args.runs is None):
        raise DoeError("--study and --runs go together: the models are fitted to the runs of the study.")
    if args.set_point is not None and args.study is None:
        raise DoeError("--set-point needs --study and --runs (it is the set point of the fitted models).")
    models = None
    if args.study:
        from doe.study import Study

        study = Study.load(args.study)
        set_point = {**plan.set_point, **_pairs(args.set_point, study, "--set-point")}
        models = supply_from_models(study, _read_runs(study, args.runs), set_point,
                                    conservative=args.conservative)
    elif plan.uses_models:
        raise DoeError(f"The plan takes values from_models: give --study and --runs (plan file {args.plan}).")
    catalogue = read_catalogue(args.vessels) if args.vessels else read_catalogue()
    measured, kinetics = _measured(args, catalogue)
    equivalence = None if args.equivalence is None else [_read_json_file(f) for f in args.equivalence]
    result = run_plan(plan, catalogue, models, measured=measured, equivalence=equivalence)
    if kinetics is not None:
        from doe.scale import recorded_vs_predicted

        result["json"]["recorded_vs_predicted"] = {
            p.strategy: recorded_vs_predicted(p, kinetics).to_dict(orient="records") for p in result["plans"]}
    _write_json(result["json"], args.json)
    if args.figure:
        _write_figure(plan_figure(result["plans"], note=f"Plan: {Path(args.plan).name}"), args.figure)
    for note in result["json"]["notes"]:
        print(f"note: {note}", file=sys.stderr)
    for p in result["plans"]:
        t = p.totals()
        print(f"{p.strategy}: {t['stages']} passages, {t['final_stage_vessels']} x {t['final_stage_vessel']} "
              f"in the final stage, {t['open_manipulations']:g} open manipulations, {t['days']:g} days, "
              f"cumulative PDL {t['cumulative_pdl']:.1f}")
        for w in p.warnings:
            print(f"warning: {p.strategy}: {w}", file=sys.stderr)
    print(f"{result['json']['cells_needed']:.4g} cells needed -> {args.json}")
    return 0


def _measured(args: argparse.Namespace, catalogue: Any) -> tuple[Any, Any]:
    """Growth per vessel family from ``--passages`` (with the kinetics of every passage), or (None, None)."""
    if not args.passages:
        return None, None
    from doe.cli_seed import read_passage_file
    from doe.growth import growth_summary
    from doe.scale import measured_growth

    summary = growth_summary(read_passage_file(args.passages, catalogue), catalogue)
    return measured_growth(summary.to_json()["groups"], conservative=args.conservative), summary.passages


def _read_json_file(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DoeError(f"{path} is not a JSON file written by 'python -m doe equivalence' ({exc}).") from None
    if not isinstance(data, dict) or "equivalent" not in data:
        raise DoeError(f"{path} is not an equivalence result: it has no 'equivalent' key (write it with "
                       "'python -m doe equivalence ... --json').")
    return data


def _write_figure(fig: Any, target: str) -> None:  # a plotly Figure
    from doe.plots.space import export_figure

    fmt = Path(target).suffix.lower().lstrip(".")
    Path(target).write_bytes(export_figure(fig, fmt))


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


def _cli_user(name: str | None) -> str:
    """--user, else the login name (recorded as unauthenticated)."""
    if name and name.strip():
        return name.strip()
    import getpass

    try:
        return getpass.getuser() or "cli"
    except Exception:  # no login name in some containers
        return "cli"


def _open_store(url: str | None) -> Store:
    from doe.store import Store

    return Store.open(url)


def _import(args: argparse.Namespace) -> int:
    from doe.study import Study

    study = Study.load(args.study)
    runs = _read_runs(study, args.runs) if args.runs else None
    user = _cli_user(args.user)
    store = _open_store(args.db)
    try:
        version, dv = store.import_study(study, runs, user, reason=args.reason, design_id=args.design)
        text = f"study '{study.name}' saved as version {version}"
        if runs is not None:
            text += f"; {len(runs)} runs -> data version {dv}"
    finally:
        store.close()
    print(text)
    return 0


def _rerun(args: argparse.Namespace) -> int:
    from doe.store import shown
    from doe.versions import rerun_analysis

    store = _open_store(args.db)
    try:
        names = list(store.list_studies()["name"])
        if args.study not in names:
            db = shown(args.db or store.url)
            raise DoeError(f"No study named '{args.study}' in the store {shown(store.url)} (studies: "
                           f"{', '.join(repr(n) for n in names) or 'none yet'}). Import it first: "
                           f"python -m doe import --db {db} STUDY.yaml [--runs RUNS.csv] [--user NAME]")
        runs = None
        if args.runs:
            runs = _read_runs(store.load_study(args.study), args.runs)
        out = rerun_analysis(store, args.study, _cli_user(args.user), new_runs=runs, reason=args.reason,
                             seed=args.seed)
    finally:
        store.close()
    _write_json(out, args.json)
    space = out["design_space"]
    prob = space.get("probability_at_set_point")
    tail = f", set point P = {prob:.3f}" if prob is not None else ""
    print(f"{args.study}: analysis version {out['analysis_version']} on data version "
          f"{out['data_version']}{tail} -> {args.json}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from doe.plots.compare import before_after_figure
    from doe.space.compare import comparison_report, space_before_after

    store = _open_store(args.db)
    try:
        fixed = _pairs(args.fixed, store.load_study(args.study), "--fixed") or None
        comparison = space_before_after(store, args.study, args.old, args.new, x=args.x, y=args.y, fixed=fixed,
                                        threshold=args.threshold, n=args.n, draws=args.draws, seed=args.seed,
                                        volume=args.volume)
        out = comparison_report(store, args.study, args.old, args.new, comparison=comparison)
    finally:
        store.close()
    _write_json(out, args.json)
    if args.figure:
        from doe.plots.space import export_figure

        fmt = Path(args.figure).suffix.lower().lstrip(".")
        Path(args.figure).write_bytes(export_figure(before_after_figure(comparison), fmt, width=900, height=600))
    c = comparison
    if args.json:
        print(f"{args.study}: version {c.old_version} -> {c.new_version}: design space "
              f"{100 * c.fraction_old:.0f} % -> {100 * c.fraction_new:.0f} % of the map, set point "
              f"P = {c.probability_old:.3f} -> {c.probability_new:.3f} -> {args.json}")
    for w in c.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from doe.report import build_report, write_report
    from doe.report.pdf import warm_up

    outs = [Path(o) for o in args.out]
    bad = [o.name for o in outs if o.suffix.lower() not in (".pdf", ".html", ".htm")]
    if bad:
        raise DoeError(f"Report file '{bad[0]}': use a .pdf or .html name.")
    if any(o.suffix.lower() == ".pdf" for o in outs):
        warm_up()  # start the figure-export browser while the report is built
    if args.inputs:
        if len(args.inputs) != 2 or args.db or args.study:
            raise DoeError("Give either STUDY.yaml RUNS.csv, or --db URL --study NAME [--analysis VERSION].")
        from doe.study import Study

        study = Study.load(args.inputs[0])
        content = build_report(study=study, runs=_read_runs(study, args.inputs[1]), draws=args.draws,
                               seed=args.seed, assurance=args.assurance, assurance_kind=args.assurance_kind,
                               **_seed_train_options(args))
    else:
        if not args.study:
            raise DoeError("Name the study: --study NAME (with --db URL), or give STUDY.yaml RUNS.csv.")
        store = _open_store(args.db)
        try:
            content = build_report(store, args.study, args.analysis, draws=args.draws, seed=args.seed,
                                   assurance=args.assurance, assurance_kind=args.assurance_kind,
                                   **_seed_train_options(args))
        finally:
            store.close()
    for out in outs:
        write_report(content, out)
        print(f"report -> {out}")
    missing = content.numbers.get("figures_only_in_html") or []
    if missing:
        print(f"warning: {len(missing)} figure(s) only in the HTML companion (no Chromium/Chrome for static "
              "images; Debian: apt-get install chromium)", file=sys.stderr)
    return 0


def _seed_train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The report's seed-train inputs given on the command line (passages, equivalence results, plan)."""
    out: dict[str, Any] = {}
    if args.passages:
        from doe.cli_seed import read_passage_file

        out["passages"] = read_passage_file(args.passages)
    if args.equivalence:
        out["equivalence"] = [_read_json_file(f) for f in args.equivalence]
    if args.plan:
        from doe.scale import PlanFile

        out["plan"] = PlanFile.load(args.plan)
    if args.lots:
        from doe.lots import read_lots
        from doe.study import Study

        if args.inputs:
            study = Study.load(args.inputs[0])
        else:
            store = _open_store(args.db)
            try:
                study = store.load_study(args.study)
            finally:
                store.close()
        upload = read_lots(study, Path(args.lots), Path(args.lots).name)
        for problem in upload.warnings:
            print(f"warning: {problem}", file=sys.stderr)
        if not upload.ok:
            raise DoeError(f"{len(upload.errors)} problem(s) in {args.lots}; first: {upload.errors[0]}")
        out["lots"] = upload.table
    return out


def _audit(args: argparse.Namespace) -> int:
    store = _open_store(args.db)
    try:
        check = store.verify_audit()
    finally:
        store.close()
    text = str(check)
    if check.ok:
        print(f"audit trail intact: {check.checked} records, the head's signature valid, {check.rows_checked} "
              "stored rows match it")
    else:
        print(text[0].lower() + text[1:])
    if check.head is not None:
        print(f"signed head: {check.head}")
    return 0 if check.ok else 1


def _keys(args: argparse.Namespace) -> int:
    """Print this site's public key line and key id, or create a new key file (--new FILE)."""
    from doe.store import default_url, load_site_key, new_key_file

    if args.new:
        key = new_key_file(args.new)
        print(f"new site key written to {args.new} (readable by its owner only); key id {key.key_id}")
        print(f"use it with DOE_SITE_KEY_FILE={args.new}; keep a backup copy away from the database")
    else:
        key = load_site_key(args.db or default_url())
        print(f"site key {key.source}; key id {key.key_id}")
    print(f"{key.public_text} {key.key_id}")
    return 0


def _designs(args: argparse.Namespace) -> int:
    """List a study's designs (the current one and the data's one marked); rename, mark current, delete."""
    from doe.store import designs_table

    store = _open_store(args.db)
    try:
        done = []
        if args.rename:
            design_id = _design_id(args.rename[0])
            store.rename_design(design_id, args.rename[1], _cli_user(args.user))
            done.append(f"design {design_id} renamed to '{args.rename[1].strip()}'")
        if args.current is not None:
            store.set_current_design(args.current, _cli_user(args.user))
            done.append(f"design {args.current} is now the current design")
        if args.delete is not None:
            store.delete_design(args.delete, _cli_user(args.user), args.reason)
            done.append(f"design {args.delete} deleted (kept in the record)")
        frame = store.designs(args.study, include_deleted=args.all)
        data_design = store.design_of_data_version(args.study)
        versions = store.data_versions(args.study)
    finally:
        store.close()
    for line in done:
        print(line)
    if not len(frame):
        print(f"study '{args.study}' has no designs")
    else:
        table = designs_table(frame)
        if args.all:
            table["Deleted"] = ["yes" if d else "" for d in frame["deleted"]]
        print(table.to_string(index=False))
    if len(versions):
        last = int(versions["version"].iloc[-1])
        names = dict(zip(frame["id"], frame["name"], strict=True))
        print(f"data version {last}: " + (f"run on design {data_design} '{names.get(data_design, '')}'"
                                          if data_design is not None else "no design recorded (runs as performed)"))
    if args.json:
        out = {"designs": frame.astype(object).where(frame.notna(), None).to_dict("records"),
               "data_design": data_design}
        Path(args.json).write_text(json.dumps(json_ready(out), indent=2), encoding="utf-8")
    return 0


def _design_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DoeError(f"'{text}' is not a design id: give the number shown in the Id column of "
                       "'python -m doe designs --study NAME'.") from None


def _export(args: argparse.Namespace) -> int:
    from doe.store import export_bundle

    store = _open_store(args.db)
    try:
        data = export_bundle(store, args.study, _cli_user(args.user))
    finally:
        store.close()
    Path(args.out).write_bytes(data)
    print(f"study '{args.study}' exported to {args.out} ({len(data):,} bytes), signed with this site's key "
          f"{store.key.key_id}")
    return 0


def _import_bundle(args: argparse.Namespace) -> int:
    from doe.store import MAX_TOTAL_BYTES, import_bundle

    path = Path(args.bundle)
    if path.is_file() and path.stat().st_size > MAX_TOTAL_BYTES:  # refused before it is read
        raise DoeError(f"'{path}' is {path.stat().st_size / 2**20:,.0f} MB, more than a study bundle may be "
                       f"({MAX_TOTAL_BYTES // 2**20} MB); nothing was read or written.")
    data = path.read_bytes()
    store = _open_store(args.db)
    try:
        name = import_bundle(store, data, _cli_user(args.user), allow_unsigned=args.allow_unsigned,
                             flag="--allow-unsigned")
    finally:
        store.close()
    print(f"study '{name}' imported from {args.bundle} ({name.signature})")
    return 0


def _health(args: argparse.Namespace) -> int:
    """Open the store (schema checked and upgraded), read it, optionally verify the audit chain."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import DBAPIError

    from doe.identity import startup_problem
    from doe.store import shown

    if (refused := startup_problem()) is not None:  # DOE_DEPLOYMENT=site without sign-in (compose: migrate)
        raise DoeError(refused)
    store = _open_store(args.db)
    try:
        try:
            with store.engine.connect() as conn:
                revision = MigrationContext.configure(conn).get_current_revision()
        except DBAPIError as exc:
            raise DoeError(f"Could not read the database '{shown(store.url)}' "
                           f"({str(exc.orig or exc).strip().splitlines()[0]}).") from None
        studies = len(store.list_studies())
        check = store.verify_audit() if args.verify_audit else None
    finally:
        store.close()
    if check is not None and not check.ok:
        text = str(check)
        raise DoeError(f"'{shown(store.url)}': {text[0].lower() + text[1:]}")
    tail = f", audit trail intact ({check.checked} records)" if check is not None else ""
    print(f"ok: {shown(store.url)} schema {revision}, {studies} studies{tail}")
    return 0
