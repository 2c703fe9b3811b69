"""Render a :class:`~doe.report.content.ReportContent` as HTML.

:func:`render_html` gives the interactive companion: one self-contained file
(inline CSS, plotly.js inlined once, no external URL of any kind, the inputs
as data: URI downloads) that opens offline. :func:`render_print_html` gives
the variant WeasyPrint turns into the PDF: static figure images and CSS paged
media (running header, page numbers), no script.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable

from doe.report.content import Code, Figure, Notice, Paragraph, ReportContent, Table, sha256

CSS = """
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 10pt; color: #111;
       max-width: 1150px; margin: 0 auto; padding: 0 1em; line-height: 1.35; }
h1 { font-size: 18pt; } h2 { font-size: 14pt; margin-top: 1.4em; border-bottom: 1px solid #999; }
h3 { font-size: 12pt; margin-top: 1.2em; }
table { border-collapse: collapse; margin: 0.4em 0 0.2em; font-size: 8pt; }
th, td { border: 1px solid #bbb; padding: 2px 5px; text-align: left; vertical-align: top; }
th { background: #eee; }
.caption { font-weight: bold; margin: 0.6em 0 0.1em; page-break-after: avoid; }
.figcaption { font-weight: bold; margin: 0.2em 0 1em; }
pre { white-space: pre-wrap; word-break: break-all; background: #f4f4f4; padding: 0.6em; font-size: 8pt; }
.notice { border: 1px solid #d9a400; background: #fff7d6; padding: 0.5em; margin: 0.6em 0; }
.meta { color: #444; }
"""


WIDE_COLUMNS = 9  # more columns than this do not fit an A4 portrait page at 8 pt


def _table(t: Table) -> str:
    frame = t.frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    caption = f'<p class="caption">{html.escape(t.caption)}</p>' if t.caption else ""
    table = caption + frame.to_html(index=False, escape=True, na_rep="", border=0)
    # a table wider than a portrait page goes on landscape pages in the PDF (class "wide")
    return f'<div class="wide">{table}</div>' if len(frame.columns) > WIDE_COLUMNS else table


def _body(content: ReportContent, figure: Callable[[Figure, int], str], *, extra_top: str = "") -> str:
    parts = [f"<h1>{html.escape(content.title)}</h1>",
             f'<p class="meta">{html.escape(content.header)}</p>', extra_top]
    n = 0
    for sec in content.sections:
        parts.append(f"<h{sec.level}>{html.escape(sec.heading)}</h{sec.level}>")
        for b in sec.blocks:
            if isinstance(b, Paragraph):
                parts.append(f"<p>{html.escape(b.text)}</p>")
            elif isinstance(b, Table):
                parts.append(_table(b))
            elif isinstance(b, Code):
                parts.append(f"<pre>{html.escape(b.text)}</pre>")
            elif isinstance(b, Notice):
                parts.append(f'<div class="notice">{html.escape(b.text)}</div>')
            elif isinstance(b, Figure):
                n += 1
                parts.append(figure(b, n))
                parts.append(f'<p class="figcaption">Figure {n}. {html.escape(b.caption)}</p>')
    return "\n".join(parts)


def _data_uri(text: str, mime: str) -> str:
    return f"data:{mime};charset=utf-8;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")


def inputs_block(content: ReportContent) -> str:
    """Download links for the embedded inputs (data: URIs), with their checksums."""
    items = [("study.yaml", content.study_yaml, "application/x-yaml"), ("runs.csv", content.runs_csv, "text/csv")]
    links = "".join(f'<li><a download="{name}" href="{_data_uri(text, mime)}">{name}</a> '
                    f"(SHA-256 {sha256(text)})</li>" for name, text, mime in items)
    return f"<h2>Inputs (for recomputing offline)</h2><ul>{links}</ul>"


def render_html(content: ReportContent) -> str:
    """The interactive companion: one file, plotly.js inlined once, nothing fetched from the network."""
    first = [True]

    def figure(f: Figure, n: int) -> str:
        fig = f.figure
        div: str = fig.to_html(full_html=False, include_plotlyjs=first[0], include_mathjax=False,
                          default_width="100%", default_height=f"{f.height}px", div_id=f"figure-{n}",
                          config={"displaylogo": False, "responsive": True})
        first[0] = False
        return div

    body = _body(content, figure)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(content.title)}</title><style>{CSS}</style></head>"
            f"<body>{body}\n{inputs_block(content)}</body></html>\n")


def render_print_html(content: ReportContent, images: dict[int, tuple[str, bytes]], missing: list[str],
                      font_url: str | None) -> str:
    """The print variant for WeasyPrint: figures as images (``images``: figure number -> (mime, bytes))."""
    header = content.header.replace("\\", "\\\\").replace('"', '\\"')
    font = ""
    if font_url:
        font = f'@font-face {{ font-family: "DejaVu Sans"; src: url("{font_url}"); }}'
    page = f"""
{font}
@page {{ size: A4; margin: 22mm 15mm 18mm 15mm;
  @top-left {{ content: "{header}"; font-family: "DejaVu Sans"; font-size: 8pt; color: #444; }}
  @bottom-right {{ content: "Page " counter(page) " of " counter(pages); font-family: "DejaVu Sans";
                   font-size: 8pt; }} }}
body {{ max-width: none; padding: 0; }}
img.figure {{ width: 100%; }}
table {{ page-break-inside: auto; }} tr {{ page-break-inside: avoid; }}
@page wide {{ size: A4 landscape; }}
div.wide {{ page: wide; }}
div.wide table {{ font-size: 7pt; }}
h2, h3 {{ page-break-after: avoid; }}
"""

    def figure(f: Figure, n: int) -> str:
        if n not in images:
            return f'<div class="notice">Figure {n} is only in the HTML companion.</div>'
        mime, data = images[n]
        return f'<img class="figure" alt="{html.escape(f.caption)}" src="data:{mime};base64,' \
               f'{base64.b64encode(data).decode("ascii")}">'

    top = ""
    if missing:
        items = "".join(f"<li>{html.escape(m)}</li>" for m in missing)
        top = ('<div class="notice"><b>Figures available only in the HTML companion</b> (no static image '
               f"export here: kaleido needs Chromium or Chrome; Debian: apt-get install chromium):<ul>{items}</ul>"
               "</div>")
    body = _body(content, figure, extra_top=top)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(content.title)}</title><style>{CSS}{page}</style></head>"
            f"<body>{body}</body></html>\n")

