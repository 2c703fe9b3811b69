"""In Chromium: the app's pages ask nothing of any host but the app's own (air-gapped GMP networks).

Every request the browser makes (documents, scripts, fonts, images, the favicon, web sockets) is
recorded while a user opens the app, loads the example study and its simulated results, visits
every page of the navigation (Models, Design space and Report with content) and builds the report.
Any request to a host other than the app's loopback address fails the test, listing the addresses.

Needs Playwright and Chromium (/usr/bin/chromium or CHROMIUM=...): skipped with a reason on a
machine without them, failed instead under DOE_REQUIRE_POSTGRES=1 (CI, see .ci/run).
"""

from __future__ import annotations

import ast
from urllib.parse import urlsplit

from tests.conftest import ROOT
from tests.test_e2e_store import NAME_BOX, Server, browser  # noqa: F401  (browser is a fixture)

#: Schemes that never leave the browser.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-extension", "devtools"}
#: Connected, the script not running, nothing stale (what Streamlit's own e2e tests wait for).
IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
             && app.getAttribute('data-test-script-state') === 'notRunning'
             && !document.querySelector('[data-stale="true"]');
}"""


def nav_pages() -> list[tuple[str, str]]:
    """(address path, title) of every page in app.py's navigation, read without importing app.py."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    pages = next(ast.literal_eval(node.value) for node in tree.body
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES")
    return [("" if i == 0 else path.removeprefix("pages/").removesuffix(".py"), title)
            for i, (path, title, _icon) in enumerate(pages)]


def idle(page, timeout: float = 180_000) -> None:
    page.wait_for_timeout(200)
    page.wait_for_function(IDLE_JS, timeout=timeout)


def external(urls: list[str], app_host: str) -> list[str]:
    """The addresses among ``urls`` that leave the machine: any host other than the app's own."""
    allowed = {app_host, "127.0.0.1", "localhost", "[::1]", "::1"}
    out = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in LOCAL_SCHEMES:
            continue
        if parts.hostname not in allowed:
            out.append(url)
    return sorted(set(out))


def test_external_is_what_leaves_the_machine():
    urls = ["http://127.0.0.1:8501/", "ws://127.0.0.1:8501/_stcore/stream", "data:image/svg+xml,<svg/>",
            "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/science/default/24px.svg",
            "http://localhost:8501/media/x.png", "https://cdn.plot.ly/plotly.min.js"]
    assert external(urls, "127.0.0.1") == [
        "https://cdn.plot.ly/plotly.min.js",
        "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/science/default/24px.svg"]


def test_no_page_requests_anything_outside_the_app(browser, tmp_path):  # noqa: F811
    server = Server(tmp_path)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    seen: list[tuple[str, str]] = []  # (page being visited, url)
    where = {"page": "opening the app"}
    context.on("request", lambda request: seen.append((where["page"], request.url)))
    context.on("page", lambda p: p.on("websocket", lambda ws: seen.append((where["page"], ws.url))))
    try:
        page = context.new_page()
        page.on("websocket", lambda ws: seen.append((where["page"], ws.url)))
        page.goto(f"{server.url}/runs")
        page.wait_for_selector("h1, [data-testid=stAlert]", timeout=60_000)
        idle(page)
        page.get_by_role("textbox", name=NAME_BOX).fill("Ana Lopez")
        page.keyboard.press("Enter")
        idle(page)
        where["page"] = "Runs: loading the example results"
        page.get_by_role("button", name="Load the example results (simulated)").click()
        idle(page)
        page.get_by_text("Example results: saved as data version 1").wait_for(timeout=60_000)
        nav = page.locator('[data-testid="stSidebarNav"]')
        pages = nav_pages()
        assert len(pages) >= 10 and pages[0][1] == "Home"
        for path, title in pages:
            where["page"] = title
            nav.get_by_role("link", name=title, exact=True).click()
            page.wait_for_url(f"{server.url}/{path}", timeout=60_000)
            idle(page)
            page.wait_for_timeout(1_000)  # late loads: fonts, images, the favicon, the map's script
            idle(page)
            main = page.locator("main").inner_text()
            assert "Traceback" not in main, f"{title}: {main[:500]}"
            if title == "Report":
                where["page"] = "Report: building it"
                page.get_by_role("button", name="Build the report").click()
                page.get_by_text("Built:").first.wait_for(timeout=180_000)
                idle(page)
                page.wait_for_timeout(1_000)
        icon = page.eval_on_selector("link[rel='shortcut icon']", "link => link.href")
        assert icon.startswith(f"{server.url}/"), f"the tab icon is not served by the app: {icon}"
        visited = {w for w, _ in seen}
        assert {t for _, t in pages} <= visited, f"pages never visited: {({t for _, t in pages}) - visited}"
        assert any(urlsplit(u).path.endswith("/_stcore/stream") for _, u in seen), "the app's socket was not seen"
        host = urlsplit(server.url).hostname
        leaks: dict[str, list[str]] = {}
        for w, u in seen:
            if external([u], host):
                pages_seen = leaks.setdefault(u, [])
                if w not in pages_seen:
                    pages_seen.append(w)
        assert not leaks, "requests outside the app:\n" + "\n".join(
            f"  {u}\n    on: {', '.join(ws)}" for u, ws in leaks.items())
    finally:
        context.close()
        server.kill()
