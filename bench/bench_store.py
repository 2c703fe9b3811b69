"""Benchmark of the store (doe.store) with many studies: opening a study and appending a batch.

Run from the repository root::

    python bench/bench_store.py                      # SQLite file in a temporary folder
    python bench/bench_store.py --db postgresql+psycopg://user:pw@127.0.0.1:5432/doe_bench

Populates the store with 200 studies x 50 runs (10,000 runs; the bundled MSC
example, 5 factors and 7 CQAs, with its simulated results) written in 5 batches
of 10 runs per study, so each study has 5 data versions, 2 study versions and
one analysis. Then, on studies picked at random:

1. Opening a study: ``load_study`` + ``study_versions`` + ``data_versions`` +
   ``analyses``. Target: under 0.2 s (median and max of the trials).
2. Appending a batch of 50 new runs with their audit records (``append_runs``,
   one transaction). Target: under 0.5 s (median and max of the trials).
3. Verifying the whole store (``verify_audit``: every hash link, the head's
   signature and every stored row's content hash, as the Audit trail page does
   on every view), 3 times. Target: under 3 s.

Prints a markdown table with PASS/FAIL per target and exits 1 if one is missed.
Times are wall clock (time.perf_counter), one process, nothing cached between
calls. With ``--db`` the studies are written into that database (names carry a
random tag, so it may hold other data; use a scratch database).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doe.store import Store, User
from doe.store._engine import shown
from doe.study import Study

OPEN_TARGET, APPEND_TARGET, VERIFY_TARGET = 0.2, 0.5, 3.0
USER = User("bench", authenticated=True)


def main() -> int:
    args = _parse_args()
    tmp = None
    url = args.db
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_store_")
        url = f"sqlite:///{Path(tmp.name) / 'doe.sqlite'}"
    store = Store.open(url)
    try:
        tag = uuid.uuid4().hex[:6]
        names = [f"MSC study {i:03d} {tag}" for i in range(args.studies)]
        t = time.perf_counter()
        _populate(store, names, args.runs, args.batches)
        populate = time.perf_counter() - t
        rng = random.Random(args.seed)
        open_times = [_time_open(store, rng.choice(names)) for _ in range(args.trials)]
        append_times = [_time_append(store, rng.choice(names), 10**6 + 100 * k, args.append)
                        for k in range(args.trials)]
        n_runs = sum(len(store.runs(n)) for n in names)  # sanity: every write is there
        assert n_runs == args.studies * args.runs + args.trials * args.append, n_runs
        verify_times, rows_checked = [], 0
        for _ in range(3):
            t = time.perf_counter()
            check = store.verify_audit()
            verify_times.append(time.perf_counter() - t)
            assert check.ok, str(check)
            rows_checked = check.rows_checked
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()
    rows = [_row("Open a study (load + versions + data versions + analyses)", open_times, OPEN_TARGET),
            _row(f"Append {args.append} runs with audit records", append_times, APPEND_TARGET),
            _row(f"Verify the audit trail and all {rows_checked:,} stored rows", verify_times, VERIFY_TARGET)]
    _print_header(args, url, populate)
    _print_table(rows)
    ok = all(r[-1] == "PASS" for r in rows)
    print(f"\nOverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", help="database URL (default: a new SQLite file in a temporary folder)")
    p.add_argument("--studies", type=int, default=200, help="studies to create (default 200)")
    p.add_argument("--runs", type=int, default=50, help="runs per study (default 50)")
    p.add_argument("--batches", type=int, default=5, help="batches (data versions) per study (default 5)")
    p.add_argument("--append", type=int, default=50, help="runs per timed append (default 50)")
    p.add_argument("--trials", type=int, default=25, help="timed trials per case (default 25, at least 20)")
    p.add_argument("--seed", type=int, default=1, help="seed of the study choice")
    args = p.parse_args()
    if args.trials < 20:
        p.error("--trials must be at least 20")
    return args


@functools.cache
def _example() -> tuple[Study, pd.DataFrame]:
    study = Study.load(ROOT / "data" / "msc_expansion.yaml")
    results = pd.read_csv(ROOT / "data" / "msc_example_results.csv")
    return study, results.drop(columns=["StdOrder", "PointType", "Notes"])


def _runs(results: pd.DataFrame, first: int, n: int) -> pd.DataFrame:
    """n runs with Run ids first.., cycling through the example's simulated results."""
    rows = results.iloc[[i % len(results) for i in range(first, first + n)]].copy()
    rows["Run"] = range(first, first + n)
    return rows.reset_index(drop=True)


def _populate(store: Store, names: list[str], runs: int, batches: int) -> None:
    study, results = _example()
    per = max(1, runs // batches)
    for name in names:
        data = study.to_dict()
        data["name"] = name
        store.save_study(Study.from_dict(data), USER)
        data["responses"][0]["description"] = "re-specified after review"  # a second study version
        store.save_study(Study.from_dict(data), USER)
        done = 0
        while done < runs:
            n = min(per, runs - done)
            store.append_runs(name, _runs(results, done + 1, n), USER)
            done += n
        store.save_analysis(name, {r.name: {"model": "quadratic"} for r in study.responses},
                            {"r2": {r.name: 0.9 for r in study.responses}}, USER)


def _time_open(store: Store, name: str) -> float:
    t = time.perf_counter()
    store.load_study(name)
    store.study_versions(name)
    store.data_versions(name)
    store.analyses(name)
    return time.perf_counter() - t


def _time_append(store: Store, name: str, first: int, n: int) -> float:
    _, results = _example()
    batch = _runs(results, first, n)
    t = time.perf_counter()
    store.append_runs(name, batch, USER)
    return time.perf_counter() - t


def _row(case: str, times: list[float], target: float) -> list[str]:
    med, worst = statistics.median(times), max(times)
    status = "PASS" if worst < target else "FAIL"
    return [case, str(len(times)), f"{med:.4f}", f"{worst:.4f}", f"< {target}", status]


def _print_header(args: argparse.Namespace, url: str, populate: float) -> None:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    import sqlalchemy

    print("# Store benchmark\n")
    print(f"- machine: {platform.machine()} {platform.processor() or ''}".rstrip()
          + f", {os.cpu_count()} cores ({usable} usable), load average {load}")
    print(f"- Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}; single process")
    print(f"- database: {shown(url)}")
    print(f"- {args.studies} studies x {args.runs} runs ({args.studies * args.runs:,} runs) in "
          f"{args.batches} batches each, populated in {populate:.1f} s; {args.trials} trials per case "
          "on studies picked at random")
    print("- times are wall clock in seconds; a target is met when the median and the max are under it\n")


def _print_table(rows: list[list[str]]) -> None:
    head = ["Case", "Trials", "Median (s)", "Max (s)", "Target (s)", "Status"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
