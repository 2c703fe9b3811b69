"""Print requirements.lock: the exact version of every package the requirements.txt closure installs.

Run in an environment where ``pip install -r requirements.txt`` was run (Python 3.11 on Linux, as
the image), from the repository root:

    python deploy/lock.py > requirements.lock

It walks requirements.txt and the dependencies of each installed package (extras and environment
markers evaluated here) and prints them as ``pip freeze`` does, ``Name==version``, sorted.
The Dockerfile installs with ``pip install -r requirements.txt -c requirements.lock``.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# Exact versions for deployments (the Dockerfile: pip install -r requirements.txt -c requirements.lock):
# the requirements.txt closure as installed and tested, Python 3.11 on Linux.
# Regenerate after changing requirements.txt, in an environment where it is installed:
#   python deploy/lock.py > requirements.lock
"""


def requirements(path: Path = ROOT / "requirements.txt") -> list[Requirement]:
    """The requirements listed in ``path`` (comments and blank lines skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def closure(roots: list[Requirement]) -> dict[str, str]:
    """{project name: installed version} of ``roots`` and everything they need, here."""
    found: dict[str, str] = {}
    extras_seen: dict[str, set[str]] = {}
    todo = [(req, "") for req in roots]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        key = canonicalize_name(req.name)
        wanted = set(req.extras)
        if key in found and wanted <= extras_seen[key]:
            continue
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            sys.exit(f"{req.name} is not installed: run pip install -r requirements.txt first")
        found[key] = f"{dist.metadata['Name']}=={dist.version}"
        extras_seen.setdefault(key, set()).update(wanted)
        for dep in dist.requires or []:
            for e in ("", *extras_seen[key]):
                todo.append((Requirement(dep), e))
    return found


def main() -> None:
    pins = closure(requirements())
    sys.stdout.write(HEADER + "".join(f"{pins[k]}\n" for k in sorted(pins)))


if __name__ == "__main__":
    main()
