"""The report for regulatory review: PDF (text, fonts, PDF/A, no JavaScript), HTML offline, recompute commands.

The store holds the bundled example in two batches (two data versions), two analysis versions and a
design-space decision on the second. Playwright + Chromium (/usr/bin/chromium, or CHROMIUM=...) open the
HTML companion with every network request aborted; without them that test skips (fails in CI).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, ROOT, skip_or_fail

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("weasyprint")

RESULTS = ROOT / "data" / "msc_example_results.csv"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from doe.runs import read_results
    from doe.store import Store
    from doe.study import Study
    from doe.versions import rerun_analysis

    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('report') / 'doe.sqlite'}")
    study = Study.load(EXAMPLE)
    runs = read_results(study, RESULTS).table
    store.save_study(study, "alice")
    store.append_runs(study.name, runs.iloc[:30], "alice")
    rerun_analysis(store, study.name, "alice", draws=500)
    out = rerun_analysis(store, study.name, "alice", new_runs=runs.iloc[30:], draws=500)
    set_point = out["design_space"]["set_point"]
    store.save_decision(study.name, 0.9, set_point, {"par": {}, "nor": {"Agitation": [50, 70]}}, "bob",
                        analysis_version=2, note="test decision")
    from doe.equivalence import tost
    from doe.growth import PASSAGES_FILE, passage_kinetics, read_passages

    passages = read_passages(PASSAGES_FILE).table  # the seed-train section (10)
    store.save_passages(study.name, passages, "carol")
    store.save_equivalence(study.name, tost(passage_kinetics(passages), "Fold expansion", "Vessel", "CellSTACK-40",
                                            "CellCube-25", (0.8, 1.25), paired=True, id="Donor", log=True).to_json(),
                           "carol")
    yield store, study.name
    store.close()


@pytest.fixture(scope="module")
def report(stored):
    from doe.report import build_report, render_html, render_pdf
    from doe.report.pdf import warm_up

    store, name = stored
    warm_up()
    content = build_report(store, name)
    return content, render_pdf(content), render_html(content)


def _text(pdf: bytes) -> tuple[list[str], object]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [p.extract_text() for p in reader.pages], reader


def test_pdf_text_has_set_point_anova_and_design_space(stored, report):
    from doe.report.content import fmt
    from doe.space.compare import rebuild_analysis

    content, pdf, _ = report
    pages, _reader = _text(pdf)
    assert all(p.strip() for p in pages), "every page has extractable text"
    text = "\n".join(pages)
    flat = " ".join(text.split())
    assert "MSC expansion" in text and "analysis v2" in text
    assert "Page 1 of" in text
    for name, value in content.set_point.items():
        assert f"{name}" in flat and fmt(value) in flat
    assert f"P = {content.probability_at_set_point:.3f}" in flat
    fits = rebuild_analysis(*stored, 2).fits
    for name, fit in fits.items():
        assert f"Model of {name}" in flat
        assert f"{name}: ANOVA (type 2)" in flat
        anova = fit.model.anova
        assert "Residual" in text
        f_model = anova.loc[anova["source"] == "Model", "F"].iloc[0]
        assert fmt(f_model) in flat, (name, fmt(f_model))
    assert "Design-space figure: probability that every CQA meets its spec" in flat
    assert "decision" in flat and "Comparison with the previous analysis version" in flat
    assert content.numbers["figures_only_in_html"] == [] or not Path(CHROMIUM).exists()


def test_pdf_has_the_seed_train_section(stored, report):
    """Section 10: kinetics per vessel family, the saved equivalence test and the plan from measured growth."""
    store, name = stored
    _content, pdf, _ = report
    flat = " ".join(" ".join(_text(pdf)[0]).split())
    assert "10. Seed train: growth per vessel, equivalence between scales, plan" in flat
    assert "passage data version 1" in flat and "SIMULATED" in flat
    assert "Growth kinetics per vessel family" in flat and "Every saved equivalence test" in flat
    test = store.equivalence_tests(name)["result"].iloc[0]
    assert f"{test['estimate']:.4g}" in flat  # the ratio of geometric means as the table prints it
    assert "Plan, scale-out: stages" in flat and "predicted against recorded cells per vessel" in flat


def _fonts(obj, seen):
    """Every font dictionary reachable from a page's resources (form XObjects included)."""
    res = obj.get("/Resources")
    if res is None:
        return
    res = res.get_object()
    for font in (res.get("/Font") or {}).values():
        font = font.get_object()
        if id(font) not in seen:
            seen[id(font)] = font
    for xo in (res.get("/XObject") or {}).values():
        xo = xo.get_object()
        if xo.get("/Subtype") == "/Form":
            _fonts(xo, seen)


def test_pdf_fonts_embedded_pdfa_and_no_javascript(report):
    _, pdf, _ = report
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    fonts: dict = {}
    for page in reader.pages:
        _fonts(page, fonts)
    assert fonts
    for font in fonts.values():
        descs = [font] if font.get("/Subtype") != "/Type0" else [d.get_object() for d in font["/DescendantFonts"]]
        for d in descs:
            fd = d["/FontDescriptor"].get_object()
            assert any(k in fd for k in ("/FontFile", "/FontFile2", "/FontFile3")), font.get("/BaseFont")
    root = reader.trailer["/Root"]
    names = root.get("/Names")
    names = names.get_object() if names is not None else {}
    assert "/JavaScript" not in names and "/EmbeddedFiles" not in names
    assert "/OpenAction" not in root and "/AA" not in root and "/AcroForm" not in root
    for page in reader.pages:
        assert "/AA" not in page
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A")
            assert action is None or action.get_object().get("/S") != "/JavaScript"
    for token in (b"/JavaScript", b"/EmbeddedFile", b"/JS "):
        assert token not in pdf
    xmp = root["/Metadata"].get_object().get_data()
    assert b"pdfaid:part" in xmp


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.downloads: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key])
        if "download" in a:
            self.downloads.append(a["download"])


def test_html_is_self_contained(report):
    content, _, html = report
    parser = _Links()
    parser.feed(html)
    assert not [u for u in parser.urls if u.lower().startswith(("http://", "https://", "//"))]
    assert sorted(parser.downloads) == ["runs.csv", "study.yaml"]
    assert html.count('<script type="text/javascript">/**') <= 1  # plotly.js inlined once
    assert html.count('id="figure-') >= len(content.figures)


@pytest.mark.browser
def test_html_opens_offline_and_draws_every_figure(report, tmp_path):
    content, _, html = report
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    blocked: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("**/*", route)
            page.goto(path.as_uri())
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {len(content.figures)}",
                                   timeout=60_000)
            drawn = page.evaluate("document.querySelectorAll('.js-plotly-plot .main-svg').length")
            count = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
        finally:
            browser.close()
    assert count == len(content.figures)
    assert drawn >= count
    assert blocked == []


def test_pdf_builds_without_a_browser(stored, report, monkeypatch):
    import doe.report.pdf as pdfmod

    content = report[0]

    def no_browser(_content):
        raise RuntimeError("no browser here")

    monkeypatch.setattr(pdfmod, "_export_all", no_browser)
    pdf = pdfmod.render_pdf(content)
    flat = " ".join(" ".join(_text(pdf)[0]).split())
    assert "Figures available only in the HTML companion" in flat
    assert len(content.numbers["figures_only_in_html"]) == len(content.figures)
    assert "Design-space figure: probability that every CQA meets its spec" in flat


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "doe", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def test_cli_report_from_files(tmp_path):
    out = _cli("report", str(EXAMPLE), str(RESULTS), "--out", str(tmp_path / "r.pdf"), "--out",
               str(tmp_path / "r.html"), "--draws", "1000")
    assert out.returncode == 0, out.stderr
    flat = " ".join(" ".join(_text((tmp_path / "r.pdf").read_bytes())[0]).split())
    assert "from files" in flat and "Not applicable: this report was built from files" in flat
    assert "js-plotly-plot" in (tmp_path / "r.html").read_text(encoding="utf-8") or \
        "Plotly.newPlot" in (tmp_path / "r.html").read_text(encoding="utf-8")
    bad = _cli("report", str(EXAMPLE), str(RESULTS), "--out", str(tmp_path / "r.docx"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_cli_report_from_store_html(stored, tmp_path):
    store, name = stored
    out = _cli("report", "--db", store.url, "--study", name, "--analysis", "1", "--out", str(tmp_path / "r.html"),
               "--draws", "500")
    assert out.returncode == 0, out.stderr
    assert "analysis v1" in (tmp_path / "r.html").read_text(encoding="utf-8")
    missing = _cli("report", "--db", store.url, "--study", name, "--analysis", "9", "--out", str(tmp_path / "x.html"))
    assert missing.returncode == 2 and "no analysis version 9" in missing.stderr


def test_appendix_commands_reproduce_the_numbers(report, tmp_path):
    from doe.report.content import Code

    content = report[0]
    (tmp_path / "study.yaml").write_text(content.study_yaml, encoding="utf-8")
    (tmp_path / "runs.csv").write_text(content.runs_csv, encoding="utf-8")
    code = [b for s in content.sections for b in s.blocks if isinstance(b, Code)]
    commands = code[-1].text.splitlines()
    assert any(" space " in c for c in commands)
    for cmd in commands:
        argv = shlex.split(cmd)
        assert argv[:3] == ["python", "-m", "doe"]
        out = _cli(*argv[3:], cwd=tmp_path)
        assert out.returncode == 0, (cmd, out.stderr)
    for name, coefs in content.numbers["coefficients"].items():
        safe = name.replace("/", "_").replace(" ", "_")
        data = json.loads((tmp_path / f"analysis-{safe}.json").read_text())["responses"][name]
        got = {c["term"]: c["estimate"] for c in data["coefficients"]}
        assert set(got) == set(coefs), name
        for term, value in coefs.items():
            assert got[term] == pytest.approx(value, abs=1e-9, rel=1e-9), (name, term)
    space = json.loads((tmp_path / "space.json").read_text())
    assert space["probability_at_set_point"] == pytest.approx(content.probability_at_set_point, abs=1e-12)
    for name, value in content.set_point.items():
        assert space["set_point"][name] == (pytest.approx(value) if isinstance(value, float) else value)


def test_report_page_builds_pdf_and_html():
    from streamlit.testing.v1 import AppTest

    from doe.store import Store, default_url
    from doe.versions import rerun_analysis

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["_user_name"] = "tester"
    at.run()
    at.switch_page("pages/report.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Report"
    at.switch_page("pages/runs.py").run()
    at.button(key="load_example_results").click().run()
    assert not at.exception, at.exception
    store = Store.open(default_url())
    try:
        rerun_analysis(store, "MSC expansion", "tester", draws=500)
    finally:
        store.close()
    at.switch_page("pages/report.py").run()
    assert at.selectbox(key="report_source").value == "analysis version 1"
    at.button(key="build_report").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("analysis v1" in s.value for s in at.success)
    built = next(v for k, v in at.session_state["report_cache"].items() if k[:2] == ("MSC expansion", 1))
    assert built["pdf"].startswith(b"%PDF") and b"<html" in built["html"]
