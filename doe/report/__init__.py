"""The report for regulatory review: a PDF for submission and a self-contained interactive HTML companion.

    content = build_report(store, "MSC expansion")          # or build_report(study=..., runs=...)
    write_report(content, "report.pdf"); write_report(content, "report.html")
"""

from __future__ import annotations

from pathlib import Path

from doe.errors import DoeError
from doe.report.content import DRAWS, GRID_N, SEED, ReportContent, build_report, recompute_commands
from doe.report.html import render_html
from doe.report.pdf import render_pdf

__all__ = ["DRAWS", "GRID_N", "SEED", "ReportContent", "build_report", "recompute_commands", "render_html",
           "render_pdf", "write_report"]


def write_report(content: ReportContent, out_path: str | Path) -> Path:
    """Write the report as PDF or HTML, chosen by the file's suffix."""
    path = Path(out_path)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        path.write_bytes(render_pdf(content))
    elif suffix in (".html", ".htm"):
        path.write_text(render_html(content), encoding="utf-8")
    else:
        raise DoeError(f"Report file '{path.name}': use a .pdf or .html name.")
    return path
