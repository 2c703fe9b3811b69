"""Render a :class:`~doe.report.content.ReportContent` as a PDF for submission (WeasyPrint).

PDF/A-3b (``pdf_variant="pdf/a-3b"``), fonts embedded (DejaVu Sans from the
system, found through fontconfig), searchable text, a running header (study,
analysis version, date) and "Page N of M". No JavaScript, no attachments, no
forms. Figures are the app's plotly figures exported by kaleido (with
Chromium or Chrome); when that is not possible the PDF still builds and lists
the figures that are only in the HTML companion.

Two memos, shared by the process, make a second build fast (issue 21): the
static image of each figure is kept under a digest of the figure's JSON and
its export size (:func:`figure_key`), so a new report exports only the
figures that changed; and the PDF is kept under the SHA-256 of the exact
document WeasyPrint lays out (every text, table and image byte), so the same
document is laid out once (WeasyPrint writes the same bytes for the same
document: the PDF identifier is a digest of the content).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

from doe.errors import DoeError
from doe.recent import Recent
from doe.report.content import Figure, ReportContent
from doe.report.html import render_print_html

PDF_VARIANT = "pdf/a-3b"
STATIC_FORMAT = "png"  # SVG is vector but makes WeasyPrint several seconds slower on the diagnostics plots
SCALE = 1.2
_MIME = {"png": "image/png", "svg": "image/svg+xml"}
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_LOCK = threading.Lock()
#: Static figure images by :func:`figure_key` (a report has about 10 figures of 50-200 kB each).
FIGURE_CACHE = Recent(64)
#: Finished PDFs by the SHA-256 of the print document and the PDF options.
PDF_CACHE = Recent(4)
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf",
              "/usr/share/fonts/dejavu/DejaVuSans.ttf")


def font_url() -> str | None:
    """file:// URL of DejaVu Sans (fontconfig first, then the usual Debian and Fedora paths), or None."""
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans"], capture_output=True, text=True,
                             timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    for candidate in ([out] if out.endswith(".ttf") else []) + list(_FONT_DIRS):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve().as_uri()
    return None


def _browser() -> str | None:
    """A Chromium or Chrome kaleido can drive, found on PATH (kaleido would otherwise try to download one)."""
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def warm_up() -> bool:
    """Start kaleido's browser now, in the background (it takes seconds), so it is ready for the figures.

    Call it before :func:`~doe.report.build_report` when a PDF will follow; False when there is no browser.
    """
    try:
        import kaleido
    except ImportError:
        return False
    if _browser() is None:
        return False
    with _LOCK:
        kaleido.start_sync_server(mathjax=False, silence_warnings=True)
    return True


def _server_alive() -> bool:
    try:
        from kaleido._sync_server import GlobalKaleidoServer
    except ImportError:
        return False
    server = GlobalKaleidoServer()
    alive: bool = server.is_running() and server._thread.is_alive()  # noqa: SLF001  (a dead thread would hang)
    return alive


def figure_key(figure: Figure) -> str:
    """SHA-256 of a report figure's plotly JSON and its export options (format, width, height, scale).

    Two figures with the same key give the same static image, so the image is exported once.
    """
    import plotly.io as pio

    spec = pio.to_json(figure.figure, validate=False, engine="json")
    options = f"{STATIC_FORMAT}|{figure.width}|{figure.height}|{SCALE}|"
    return hashlib.sha256((options + spec).encode("utf-8")).hexdigest()


def _export_all(content: ReportContent) -> dict[int, bytes]:
    """Static images of every figure: those exported before from :data:`FIGURE_CACHE`, the others in one
    kaleido browser session (one session per figure costs seconds).

    MathJax is off: the figures use none, and kaleido would fetch it from a CDN.
    """
    figures = content.figures
    keys = {n: figure_key(f) for n, f in enumerate(figures, start=1)}
    images: dict[int, bytes] = {}
    for n, key in keys.items():
        kept = FIGURE_CACHE.get(key)
        if kept is not None:
            images[n] = kept
    todo = [n for n in keys if n not in images]
    if not todo:
        return images
    import kaleido

    if _browser() is None:
        raise DoeError("No Chromium or Chrome on PATH (Debian: apt-get install chromium).")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [{"fig": figures[n - 1].figure.to_dict(), "path": str(Path(tmp) / f"figure-{n}.{STATIC_FORMAT}"),
                 "opts": {"format": STATIC_FORMAT, "width": figures[n - 1].width,
                          "height": figures[n - 1].height, "scale": SCALE}}
                for n in todo]
        with _LOCK:
            if _server_alive():
                kaleido.write_fig_from_object_sync(jobs)
            else:
                kaleido.write_fig_from_object_sync(jobs, kopts={"mathjax": False})
        for n in todo:
            path = Path(tmp) / f"figure-{n}.{STATIC_FORMAT}"
            if path.is_file():
                images[n] = path.read_bytes()
                FIGURE_CACHE.put(keys[n], images[n])
    return dict(sorted(images.items()))


def static_figures(content: ReportContent) -> tuple[dict[int, tuple[str, bytes]], list[str]]:
    """Static images of the report's figures (by number) and the captions of those that could not be made.

    Figures exported before come from :data:`FIGURE_CACHE`. When kaleido or a browser it can drive is
    missing (for a figure not exported before), every figure is listed instead.
    """
    figures = content.figures
    if not figures:
        return {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            svgs = _export_all(content)
        except Exception:  # no kaleido, or no Chromium/Chrome: the PDF lists the figures instead
            svgs = {}
    images = {n: (_MIME[STATIC_FORMAT], data) for n, data in svgs.items()}
    missing = [f"Figure {n}. {f.caption}" for n, f in enumerate(figures, start=1) if n not in images]
    return images, missing


def render_pdf(content: ReportContent) -> bytes:
    """PDF/A-3b bytes of the report (figures as vector images when kaleido can export them)."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:
        raise DoeError(f"The PDF needs WeasyPrint and Pango (pip install weasyprint; Debian: apt-get install "
                       f"libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core): {exc}") from None
    warm_up()
    images, missing = static_figures(content)
    content.numbers["figures_only_in_html"] = missing
    doc = render_print_html(content, images, missing, font_url())
    key = hashlib.sha256(f"{PDF_VARIANT}|forms=no|compressed\n{doc}".encode()).hexdigest()
    kept: bytes | None = PDF_CACHE.get(key)
    if kept is not None:  # the same document, laid out before: WeasyPrint would write these same bytes
        return kept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pdf: bytes = HTML(string=doc, base_url=None).write_pdf(pdf_variant=PDF_VARIANT, pdf_forms=False,
                                                               uncompressed_pdf=False)
    PDF_CACHE.put(key, pdf)
    return pdf
