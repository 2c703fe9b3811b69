"""Exports and pages are safe with hostile user text; the production configuration is locked down.

Spreadsheets: a text cell starting with = + - @ tab or CR is run by Excel or
LibreOffice as a formula (CSV injection), so every CSV/XLSX download of a run
sheet or of results prefixes such cells with an apostrophe
(:func:`doe.design._safe_cells`); numeric columns are left as numbers, so a
negative result is still a number.

HTML: the report (:func:`doe.report.render_html`) escapes every user text
(study, factor, level, unit, CQA names, descriptions and notes) with
``html.escape``; the plotly figures carry user text inside their JSON, where
plotly writes ``<`` ``>`` and ``/`` as ``\\u003c`` ``\\u003e`` ``\\u002f``, so no
user text can close the figure's ``<script>``. In the browser plotly.js
draws that text as SVG ``<tspan>`` elements built with the DOM, not innerHTML:
its pseudo-HTML understands only ``<br> <b> <i> <em> <sup> <sub> <span
style> <a href>`` (links restricted to http, https and mailto), so a name
such as ``<img src=x onerror=...>`` is shown as text or dropped, never made
into an element. A name with ``<b>`` or ``<br>`` does change how the name is
drawn in a figure; that is cosmetic. With Playwright and Chromium present, the
hostile report is opened in the browser and checked for <img>, on* handlers,
javascript: links and alert dialogs (skips without them, fails in CI).

Streamlit pages: ``st.markdown`` renders Markdown, and raw HTML in it is
shown as text unless ``unsafe_allow_html=True`` is passed, so
``st.markdown(f"...{study.name}...")`` cannot inject HTML (Markdown links and
emphasis in a name are rendered, which is harmless). The test below fails if
any page or library module passes ``unsafe_allow_html=True``, or calls
``st.html`` / ``components.html``, with anything other than a string literal.

Upload size: Streamlit refuses a file larger than ``server.maxUploadSize`` in
its upload handler before the page script sees it; AppTest runs the script
without that HTTP handler, so that refusal cannot be tested here. The library
itself refuses files over :data:`doe.runs.MAX_BYTES` and more than
:data:`doe.runs.MAX_ROWS` rows (tested below).
"""

from __future__ import annotations

import ast
import csv
import io
import os
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from doe.design import safe_csv
from doe.generators import generate
from doe.runs import MAX_BYTES, MAX_ROWS, read_results
from doe.study import Factor, Response, Study
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
LINK = '<a href="javascript:alert(1)">click</a>'


# -- spreadsheets -------------------------------------------------------------------------------
def _formula_study() -> Study:
    levels = ["=HYPERLINK(\"http://x\")", "+1+1", "-80 C", "@SUM(A1)", "plain"]
    return Study("csv", [Factor("Reagent", "categorical", levels=levels), Factor("Temp", low=-5, high=5)],
                 [Response("Yield")])


def _is_formula(cell) -> bool:
    return isinstance(cell, str) and cell[:1] in DANGEROUS


NOTES = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1", "fine", "-", "'=already"]


def _design_with_notes():
    design = generate(_formula_study(), "full", seed=1)
    notes = (NOTES * design.n_runs)[:design.n_runs]
    design.table["Notes"] = notes
    return design


def _csv_cells(text: str) -> pd.DataFrame:
    """The CSV as text cells, read as a spreadsheet would (csv module: CR inside quotes kept)."""
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    return pd.DataFrame(rows, columns=header)


def test_design_csv_neutralises_formula_cells():
    design = _design_with_notes()
    frame = _csv_cells(design.to_csv())
    for col in ("Reagent", "Notes"):
        bad = [c for c in frame[col] if _is_formula(c)]
        assert not bad, f"{col}: {bad}"
    assert "'-80 C" in set(frame["Reagent"])
    assert "'=1+1" in set(frame["Notes"])
    assert "'=already" in set(frame["Notes"])  # a leading apostrophe is text already: left alone
    # numbers stay numbers: a negative setting is written as a number, not quoted
    temps = pd.read_csv(io.StringIO(design.to_csv()))["Temp"]
    assert temps.dtype.kind == "f" and (temps < 0).any()


def test_design_xlsx_neutralises_formula_cells():
    design = _design_with_notes()
    wb = openpyxl.load_workbook(io.BytesIO(design.to_xlsx()))
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{ws.title}!{cell.coordinate} is a formula: {cell.value!r}"
                assert not _is_formula(cell.value), f"{ws.title}!{cell.coordinate}: {cell.value!r}"
    sheet = wb["Run sheet"]
    header = [c.value for c in sheet[1]]
    temps = [row[header.index("Temp")] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert all(isinstance(t, (int, float)) for t in temps) and min(temps) < 0


def test_design_info_sheet_neutralises_the_study_name():
    study = Study("=cmd|' /C calc'!A0", [Factor("A", low=0, high=1)])
    wb = openpyxl.load_workbook(io.BytesIO(generate(study, "full", seed=1).to_xlsx()))
    values = [c.value for row in wb["Design info"].iter_rows() for c in row]
    assert "'=cmd|' /C calc'!A0" in values


def test_results_csv_download_is_neutralised_and_keeps_numbers():
    """The Runs page's 'Download results (CSV)' goes through doe.design.safe_csv."""
    view = pd.DataFrame({"Run": [1, 2, 3], "Reagent": ["-80 C", "plain", "@x"], "Temp": [-5.0, 0.0, 5.0],
                         "Yield": [-1.5, np.nan, 3.0], "Notes": ["=1+1", None, "\r=2"]})
    frame = _csv_cells(safe_csv(view))
    assert list(frame["Reagent"]) == ["'-80 C", "plain", "'@x"]
    assert list(frame["Notes"]) == ["'=1+1", "", "'\n=2"]  # one cell, not a new row starting '=2'
    again = pd.read_csv(io.StringIO(safe_csv(view)))
    assert again["Yield"].iloc[0] == -1.5 and again["Temp"].iloc[0] == -5.0
    page = (ROOT / "pages" / "runs.py").read_text(encoding="utf-8")
    assert "safe_csv(view)" in page and "view.to_csv(" not in page


def test_a_carriage_return_inside_a_cell_cannot_start_a_row():
    """Found here: pandas leaves a cell with a bare CR unquoted, so a spreadsheet split it into a new row."""
    text = safe_csv(pd.DataFrame({"Notes": ["ok\r=HYPERLINK(\"http://x\")", "a\r\nb"], "Y": [1.0, -2.0]}))
    rows = list(csv.reader(io.StringIO(text.replace("\r\n", "\n"), newline="")))
    assert len(rows) == 3 and rows[1][0] == "ok\n=HYPERLINK(\"http://x\")" and rows[2] == ["a\nb", "-2.0"]
    assert not [row[0] for row in rows if _is_formula(row[0])]  # no Notes cell (nor row) starts a formula


def test_string_dtype_columns_are_neutralised():
    frame = pd.DataFrame({"Notes": pd.array(["=1", None, "ok"], dtype="string")})
    assert _csv_cells(safe_csv(frame))["Notes"].tolist() == ["'=1", "", "ok"]


# -- HTML report ----------------------------------------------------------------------------------
def _hostile_study() -> Study:
    return Study(
        f"{SCRIPT} study {IMG}",
        [Factor(f"Temp {SCRIPT}", low=30, high=40, units=IMG, description=SCRIPT),
         Factor(f"pH {IMG}", low=6, high=8, units=SCRIPT),
         Factor(f"Medium {SCRIPT}", "categorical", levels=[SCRIPT, IMG, "=1+1", LINK], description=IMG)],
        [Response(f"Yield {SCRIPT}", units=IMG, goal="maximize", lower=40, description=IMG),
         Response(f"Purity {IMG}", units=SCRIPT, goal="maximize", lower=80)],
        description=SCRIPT + IMG,
    )


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture(scope="module")
def hostile_report_html() -> str:
    from doe.report import build_report, render_html

    study = _hostile_study()
    design = generate(study, "optimal", seed=3, runs=24, model="quadratic")
    runs = design.run_sheet()
    U = design.coded()
    rng = np.random.default_rng(0)
    runs[study.response_names[0]] = 60 + 5 * U[:, 0] + rng.normal(0, 1, len(runs))
    runs[study.response_names[1]] = 90 + 2 * U[:, 1] + rng.normal(0, 1, len(runs))
    runs["Notes"] = [SCRIPT if i % 2 else IMG for i in range(len(runs))]
    return render_html(build_report(study=study, runs=runs, draws=500))


def test_report_html_escapes_user_text(hostile_report_html):
    text = hostile_report_html
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert "alert(1)" in text  # the names are there, escaped
    parser = _Elements()
    parser.feed(text)
    parser.close()
    assert not [t for t, _ in parser.tags if t == "img"]
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}=...> from user text"
            assert "alert(1)" not in (value or ""), f"<{tag} {name}={value!r}>"
    # every <script> is plotly's (library or a figure), never user text; user text inside a
    # figure's JSON has its < > / escaped, so it cannot end the script element
    assert parser.scripts
    for body in parser.scripts:
        assert not body.strip().startswith("alert")
        assert "</script" not in body.lower()
        if "alert(1)" in body:
            assert "Plotly.newPlot" in body
            assert "<script" not in body.lower() and "<img" not in body.lower()
            # the user's <script> reached the figure escaped: as JSON (\u003c) or as an HTML entity
            # (&lt;, which plotly.js draws as the character, never as markup)
            assert re.search(r"(\\u003c|&lt;)script(\\u003e|&gt;)alert\(1\)", body)


@pytest.mark.browser
def test_report_figures_draw_user_text_as_text_in_a_browser(hostile_report_html, tmp_path):
    """plotly.js's pseudo-HTML makes no <img>, no on* handler and no javascript: link from user text."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install playwright)")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        skip_or_fail(f"no Chromium at {chromium} (apt-get install chromium, or set CHROMIUM)")
    path = tmp_path / "hostile.html"
    path.write_text(hostile_report_html, encoding="utf-8")
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
                       else r.abort())
            page.goto(path.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0",
                                   timeout=60_000)
            page.wait_for_timeout(500)
            found = page.evaluate("""() => ({
                img: document.querySelectorAll('img').length,
                handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(
                    a => a.name.startsWith('on'))).length,
                js: [...document.querySelectorAll('a')].filter(a => (a.getAttribute('href') || a.getAttribute(
                    'xlink:href') || '').trim().toLowerCase().startsWith('javascript')).length,
                shown: document.body.innerText.includes('alert(1)') ||
                       [...document.querySelectorAll('svg text')].some(t => t.textContent.includes('alert(1)')),
            })""")
        finally:
            browser.close()
    assert dialogs == []
    assert found == {"img": 0, "handlers": 0, "js": 0, "shown": True}


# -- Streamlit pages ------------------------------------------------------------------------------
def _python_files():
    yield ROOT / "app.py"
    for folder in ("pages", "doe"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def _raw_html_calls(path: Path) -> list[str]:
    """Calls that would render raw HTML built from something other than a string literal."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        unsafe = any(k.arg == "unsafe_allow_html" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                     for k in node.keywords)
        raw = func.endswith(("st.html", "components.html", "components.v1.html"))
        if not (unsafe or raw):
            continue
        args = node.args[:1]
        if not args or not (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_no_raw_html_with_user_content_in_pages_or_library():
    found = [hit for path in _python_files() for hit in _raw_html_calls(path)]
    assert not found, "raw HTML from a variable or f-string:\n" + "\n".join(found)


def test_the_raw_html_check_catches_an_f_string(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('import streamlit as st\nname = "x"\nst.markdown(f"<b>{name}</b>", unsafe_allow_html=True)\n'
                     'st.markdown("<hr>", unsafe_allow_html=True)\nst.markdown(f"{name}")\nst.html(name)\n')
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert [h.split(":")[1] for h in _raw_html_calls(probe)] == ["3", "6"]
    finally:
        ROOT = saved


# -- configuration and limits -----------------------------------------------------------------------
def _config(path: str) -> dict:
    with open(ROOT / path, "rb") as fh:
        return tomllib.load(fh)


@pytest.mark.parametrize("path", [".streamlit/config.toml", "deploy/streamlit-config.toml"])
def test_streamlit_config_is_locked_down(path):
    cfg = _config(path)
    assert cfg["server"]["enableXsrfProtection"] is True
    assert 0 < cfg["server"]["maxUploadSize"] <= 50
    assert cfg["server"]["maxUploadSize"] * 2**20 >= MAX_BYTES  # the library's own limit is reachable
    assert cfg["client"]["showErrorDetails"] in ("none", False)
    assert cfg["browser"]["gatherUsageStats"] is False


def test_production_config_is_the_one_in_the_image_and_not_overridden():
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY deploy/streamlit-config.toml ./.streamlit/config.toml" in docker
    cfg = _config("deploy/streamlit-config.toml")
    assert cfg["server"]["enableCORS"] is True
    assert cfg["server"].get("enableStaticServing", False) is False
    overriding = ("STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION", "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS",
                  "STREAMLIT_SERVER_MAX_UPLOAD_SIZE", "STREAMLIT_SERVER_ENABLE_CORS",
                  "STREAMLIT_BROWSER_GATHER_USAGE_STATS")
    for name in ("Dockerfile", "deploy/docker-compose.yml", "deploy/env.example"):
        text = (ROOT / name).read_text(encoding="utf-8")
        assert not [o for o in overriding if o in text], name


def test_results_upload_row_and_size_limits():
    study = Study("limits", [Factor("A", low=0, high=1)], [Response("Y")])
    rows = "\n".join(f"{i},0.5,1" for i in range(1, MAX_ROWS + 2))
    up = read_results(study, f"Run,A,Y\n{rows}\n".encode(), "big.csv")
    assert not up.ok and any(f"{MAX_ROWS:,}" in p.message for p in up.errors)
    up = read_results(study, b"Run,A,Y\n" + b"1,0.5,1\n" * (MAX_BYTES // 8 + 1), "huge.csv")
    assert not up.ok and any("larger than" in p.message for p in up.errors)


# -- audit trail and report downloads ------------------------------------------------------------------
@pytest.fixture
def hostile_store(tmp_path):
    from doe.store import Store, User

    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    ana = User("=HYPERLINK(\"http://x\",\"ana\")")
    study = _formula_study()
    store.save_study(study, ana)
    sheet = generate(study, "full", seed=1).run_sheet()
    sheet["Yield"] = np.arange(len(sheet), dtype=float)
    store.append_runs("csv", sheet, ana)
    runs = store.runs("csv")
    store.delete_run(int(runs["run_id"][0]), int(runs["row_version"][0]), ana, reason="@SUM(A1) -2+3")
    yield store
    store.close()


def test_audit_csv_download_is_neutralised(hostile_store):
    from doe.audit_view import audit_csv

    trail = hostile_store.audit_trail()
    cells = _csv_cells(audit_csv(trail))
    assert len(cells) == len(trail)
    for column in cells:
        assert not any(_is_formula(c) for c in cells[column]), column
    assert "'=HYPERLINK(\"http://x\",\"ana\")" in set(cells["user_name"])
    assert "'@SUM(A1) -2+3" in set(cells["reason"])


def test_audit_jsonl_download_lets_anyone_recompute_the_chain(hostile_store):
    """The documented recipe, written out here from the page's words, reproduces every stored hash."""
    import hashlib
    import json

    from doe.audit_view import audit_jsonl

    trail = hostile_store.audit_trail()
    records = [json.loads(line) for line in audit_jsonl(trail).splitlines()]
    assert len(records) == len(trail) > 5
    assert records[0]["user_name"] == "=HYPERLINK(\"http://x\",\"ana\")"  # exact, as hashed
    fields = ["seq", "ts", "user_name", "authenticated", "action", "entity", "entity_id", "study", "field",
              "old_value", "new_value", "reason"]
    previous = records[0]["prev_hash"]
    for r in records:
        assert r["prev_hash"] == previous
        hashed = {k: r[k] for k in fields}
        if r.get("row_hash") is not None:  # the data row's digest, hashed when the record has one
            hashed["row_hash"] = r["row_hash"]
        canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        previous = hashlib.sha256((previous + canonical).encode("utf-8")).hexdigest()
        assert previous == r["hash"], r["seq"]


def test_report_runs_csv_is_neutralised_and_recomputes(tmp_path):
    """The runs.csv embedded in the report has no formula cells, and the analyze command reads it back."""
    import subprocess
    import sys

    from doe.report.content import runs_csv

    study = _formula_study()
    sheet = generate(study, "full", seed=1).run_sheet()
    sheet["Yield"] = 50 + 3 * sheet["Temp"] + np.arange(len(sheet)) % 3
    text = runs_csv(sheet)
    cells = _csv_cells(text)
    assert not any(_is_formula(c) for c in cells["Reagent"]) and "'-80 C" in set(cells["Reagent"])
    assert pd.to_numeric(cells["Temp"]).min() == -5  # numbers stay numbers
    (tmp_path / "runs.csv").write_text(text, encoding="utf-8")
    study.save(tmp_path / "study.yaml")
    out = subprocess.run([sys.executable, "-m", "doe", "analyze", "study.yaml", "runs.csv", "--response", "Yield",
                          "--model", "linear"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "Reagent[-80 C]" in out.stdout and "'-80" not in out.stdout  # the level itself, not the cell
