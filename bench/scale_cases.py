"""The large studies of the scale benchmark (bench/bench_scale.py), written as files the CLI reads.

Every case is simulated with a fixed seed (numpy's default_rng), so "today" and "after" read identical
inputs. Run from the repository root to write them into a folder::

    python bench/scale_cases.py OUT_DIR

- ``k12``: 12 continuous factors, 182 runs (a 2 x 91-run space-filling sample over the cube: twice the
  quadratic model's 91 terms), 7 CQAs with specs, each a quadratic surface plus noise.
- ``n10000``: 5 continuous factors, 10,000 runs (pooled historical data), the same 7 CQAs.
- ``n1000``: 5 continuous factors, 1,000 runs, the 7 CQAs (the all-CQA fit comparison with statsmodels).
- ``k10``: 10 continuous factors, no runs (the optimal-design case).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

CQAS = 7


def study_yaml(k: int, name: str) -> str:
    """A study of ``k`` continuous factors X1..Xk on [0, 10] and 7 CQAs Y1..Y7 with a lower spec each."""
    study = {"schema": 1, "name": name, "description": f"Scale benchmark: {k} factors, {CQAS} CQAs (simulated).",
             "factors": [{"name": f"X{i + 1}", "kind": "continuous", "low": 0, "high": 10} for i in range(k)],
             "responses": [{"name": f"Y{j + 1}", "goal": "maximize", "lower": 40.0} for j in range(CQAS)]}
    return yaml.safe_dump(study, sort_keys=False)


def simulate(k: int, n: int, seed: int) -> pd.DataFrame:
    """``n`` runs of ``k`` factors (uniform in the cube) with 7 quadratic responses plus correlated noise."""
    rng = np.random.default_rng(seed)
    coded = rng.uniform(-1, 1, size=(n, k))
    runs = pd.DataFrame(5 + 5 * coded, columns=[f"X{i + 1}" for i in range(k)])
    runs.insert(0, "Run", np.arange(1, n + 1))
    cov = 0.5 * np.eye(CQAS) + 0.5  # residual correlation 0.5 between CQAs
    noise = rng.multivariate_normal(np.zeros(CQAS), cov, size=n) * 2.0
    for j in range(CQAS):
        main = rng.normal(0, 3, size=k)
        curve = -np.abs(rng.normal(0, 2, size=k))
        pair = rng.normal(0, 1, size=(k, k)) * (rng.uniform(size=(k, k)) < 0.2)
        y = 50 + coded @ main + (coded ** 2) @ curve + np.einsum("ni,ij,nj->n", coded, np.triu(pair, 1), coded)
        runs[f"Y{j + 1}"] = np.round(y + noise[:, j], 4)
    return runs


def write(out: Path) -> dict[str, dict[str, Path]]:
    """Write every case's study (and runs) into ``out``; their paths by case."""
    out.mkdir(parents=True, exist_ok=True)
    cases = {"k12": (12, 182, 12), "n10000": (5, 10_000, 5), "n1000": (5, 1_000, 51), "k10": (10, 0, 10)}
    paths: dict[str, dict[str, Path]] = {}
    for name, (k, n, seed) in cases.items():
        study = out / f"{name}.yaml"
        study.write_text(study_yaml(k, f"Scale {name}"), encoding="utf-8")
        paths[name] = {"study": study}
        if n:
            runs = out / f"{name}_runs.csv"
            simulate(k, n, seed).to_csv(runs, index=False)
            paths[name]["runs"] = runs
    return paths


if __name__ == "__main__":
    for case, files in write(Path(sys.argv[1] if len(sys.argv) > 1 else "scale_cases")).items():
        print(case, *(str(p) for p in files.values()))
