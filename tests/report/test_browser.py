"""report.html in real headless Chromium (Debian's /usr/bin/chromium, driven by playwright).

The hostile report must run no script but ours, create no element from a name, and send no request
anywhere; the sections are there with JavaScript on and off; sorting and filtering work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helix_audit.report import write_bundle
from helix_audit.report.html import SECTIONS

from .factory import HOSTILE, make_result

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    (out / "evidence").mkdir()
    (out / "evidence" / "F0001.pcapng").write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(24))
    write_bundle(make_result(hostile=True), out)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watch:
    """Opens a page and records every request, dialog, console error and page error."""

    def __init__(self, browser: Any, url: str, javascript: bool = True) -> None:
        self.context = browser.new_context(java_script_enabled=javascript)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.context.route("**/*", self._route)
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def _route(self, route: Any) -> None:
        self.requests.append(route.request.url)
        if route.request.url == self.page.url or route.request.url.endswith("/report.html"):
            route.continue_()
        else:
            route.abort()


def test_browser_is_debian_chromium(browser: Any) -> None:
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout
    assert browser.version.split(".")[0] in version


def test_hostile_report_runs_nothing_and_loads_nothing(browser: Any, bundle: Path) -> None:
    url = (bundle / "report.html").as_uri()
    w = Watch(browser, url)
    page = w.page
    for element in page.query_selector_all("td, dd, summary"):  # hover everything a name could be in
        element.dispatch_event("mouseover")
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert w.dialogs == []
    assert w.requests == [url]
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.images.length") == 0
    handlers = page.evaluate("""() => Array.from(document.querySelectorAll('*')).flatMap(
        e => Array.from(e.attributes).map(a => a.name)).filter(n => n.startsWith('on'))""")
    assert handlers == []
    assert page.evaluate("document.querySelectorAll('svg').length") == 1
    assert page.evaluate("document.documentElement.classList.contains('js')")  # our script ran (CSP hash ok)
    assert not [e for e in w.errors if "Content Security Policy" in e], w.errors
    text = page.inner_text("#findings")
    assert HOSTILE["script"] in text and '"><img src=x onerror=' in page.inner_text("#dns")
    w.context.close()


def test_sections_present_with_and_without_javascript(browser: Any, bundle: Path) -> None:
    for javascript in (True, False):
        w = Watch(browser, (bundle / "report.html").as_uri(), javascript)
        for sid, _ in SECTIONS:
            assert w.page.locator(f"#{sid}").count() == 1, sid
            assert w.page.locator(f"#{sid}").is_visible(), sid
        assert "FINDINGS" in w.page.inner_text("#verdict")
        filterable = w.page.locator("table.filterable").count()
        assert filterable >= 4
        assert w.page.locator("input.filter").count() == (filterable if javascript else 0)
        assert w.page.locator("button.copy").count() == (
            w.page.locator("code.wsfilter").count() if javascript else 0
        )
        w.context.close()


def _column(page: Any, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr:not([hidden])", f"rows => rows.map(r => r.cells[{index}].textContent.trim())"
    )


def test_sorting_and_filtering(browser: Any, bundle: Path) -> None:
    w = Watch(browser, (bundle / "report.html").as_uri())
    page = w.page
    table = "#destinations table"
    header = page.locator(f"{table} thead th", has_text="Packets")
    header.click()
    ascending = [int(v.replace(",", "")) for v in _column(page, table, 7)]
    assert ascending == sorted(ascending) and len(set(ascending)) > 1
    header.click()
    descending = [int(v.replace(",", "")) for v in _column(page, table, 7)]
    assert descending == sorted(ascending, reverse=True)
    page.locator(f"{table} th", has_text="Hostname").click()
    names = _column(page, table, 1)
    assert names == sorted(names, key=str.lower)
    page.locator("#destinations input.filter").fill("helixml")
    shown = _column(page, table, 1)
    assert shown and all("helixml" in n for n in shown)
    w.context.close()


def test_dump_dom_shows_escaped_names(bundle: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not on PATH")
    proc = subprocess.run(
        [CHROMIUM, "--headless", *ARGS, "--dump-dom", (bundle / "report.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = proc.stdout
    assert 'class="js"' in dom  # the inline script ran under the CSP
    assert "<img" not in dom and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in dom
    assert dom.count("<script") == 1


def test_harness_catches_what_it_guards_against(browser: Any, tmp_path: Path) -> None:
    """Negative control: an unescaped page does set the marker and does try to load from outside."""
    page = tmp_path / "report.html"
    page.write_text('<p>x</p><img src="http://198.51.100.1/x.png"><script>window.__pwned = 1</script>')
    w = Watch(browser, page.as_uri())
    assert w.page.evaluate("window.__pwned") == 1
    assert "http://198.51.100.1/x.png" in w.requests
    w.context.close()
