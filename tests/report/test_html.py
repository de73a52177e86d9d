"""report.html without a browser: self-contained, escaped, capped, linked to evidence."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from helix_audit.report.html import SECTIONS, environment, render_html, write_html
from helix_audit.report.views import ROW_CAP, build_view

from .factory import make_result


class Collector(HTMLParser):
    """Every start tag with its attributes, and the text of script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def parse(html: str) -> Collector:
    c = Collector()
    c.feed(html)
    return c


def test_sections_present() -> None:
    tags = parse(render_html(make_result())).tags
    ids = {a.get("id") for _, a in tags}
    assert {sid for sid, _ in SECTIONS} <= ids


def test_self_contained_and_csp_pins_the_script() -> None:
    html = render_html(make_result(hostile=True))
    doc = parse(html)
    assert [t for t, _ in doc.tags].count("script") == 1
    assert not [t for t, a in doc.tags if t in ("link", "iframe", "object", "embed", "img", "base")]
    assert not [a for _, a in doc.tags if "src" in a]
    hrefs = [a["href"] for _, a in doc.tags if a.get("href")]
    assert all(h.startswith(("#", "evidence/")) for h in hrefs), hrefs
    csp = [a["content"] for t, a in doc.tags if a.get("http-equiv") == "Content-Security-Policy"][0]
    digest = base64.b64encode(hashlib.sha256(doc.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert "img-src data:" in csp


def test_hostile_names_are_text() -> None:
    html = render_html(make_result(hostile=True))
    doc = parse(html)
    attrs = [k for _, a in doc.tags for k in a]
    assert not [k for k in attrs if k.startswith("on")]
    assert not [t for t, _ in doc.tags if t in ("img", "svg") and t != "svg"]
    assert [t for t, _ in doc.tags].count("svg") == 1  # the timeline only
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;svg/onload=window.__pwned=1&gt;" in html
    assert "\x1b" not in html and "\x00" not in html and "bell\\x07esc\\x1b" in html
    assert "bad\\udcffbyte" in html
    assert "(+3" in html  # the 4000-character name is clipped for display with a count


def test_view_model_caps_rows_for_100k_flows() -> None:
    result = make_result(bulk=100_000)
    start = time.perf_counter()
    html = render_html(result)
    elapsed = time.perf_counter() - start
    rows = html.count("<tr")
    assert rows < 2 * ROW_CAP + 100
    assert f"Showing the top {ROW_CAP} of" in html
    assert len(html) < 1_000_000
    assert elapsed < 10, elapsed
    view = build_view(result)
    assert view.destinations.total > ROW_CAP and len(view.destinations.rows) == ROW_CAP
    assert [r.bytes for r in view.destinations.rows] == sorted(
        (r.bytes for r in view.destinations.rows), reverse=True
    )
    assert sum(lane.total for lane in view.timeline.lanes) == len(result.flows)


def test_evidence_link_only_when_capture_exists(tmp_path: Path) -> None:
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "F0004.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")
    html = write_html(make_result(), tmp_path / "report.html").read_text()
    links = re.findall(r'href="(evidence/[^"]+)"', html)
    assert links == ["evidence/F0004.pcap"]


def test_troubleshooting_speaks_from_the_flow() -> None:
    view = build_view(make_result())
    advice = {t.how: t.advice for t in view.troubleshooting}
    assert advice["no_answer"].startswith("SYN sent 6 times over 31 s with no reply")
    assert "10.0.1.10 and 203.0.113.5" in advice["no_answer"]
    assert "10.0.0.1 returned ICMP communication administratively prohibited" in advice["icmp_unreachable"]
    assert "HTTP 403" in advice["proxy_denied"]
    assert "NXDOMAIN" in advice["nxdomain"] and "download.docker.com" in advice["nxdomain"]


def test_coverage_matrix_cells() -> None:
    view = build_view(make_result())
    assert view.coverage.components == ("control_plane", "sandbox")
    registry = [r for r in view.coverage.rows if r.endpoint == "registry.helixml.tech"][0]
    assert [c.label for c in registry.cells] == ["not seen", "reached"]
    assert registry.cells[1].flows[0].text.startswith("10.0.1.10:40002 → 104.18.0.1:443")
    s3 = [r for r in view.coverage.rows if r.endpoint.startswith("helix-registry")][0]
    assert [c.label for c in s3.cells] == ["blocked (icmp_unreachable)", "not seen"]


def test_registrable_domains_and_dns_answers() -> None:
    view = build_view(make_result())
    domains = {r.hostname: r.domain for r in view.destinations.rows}
    assert domains["helix-registry-europe.s3.eu-west-2.amazonaws.com"] == "amazonaws.com"
    assert domains["8.8.8.8"] == "8.8.8.8"
    dns = {r.qname: r for r in view.dns.rows}
    assert dns["registry.helixml.tech"].answers == "A 104.18.0.1, CNAME edge.helixml.tech"
    assert dns["download.docker.com"].rcodes == "NXDOMAIN"


def test_strict_undefined() -> None:
    with pytest.raises(UndefinedError):
        environment().from_string("{{ nothing.here }}").render()


def test_empty_result_renders() -> None:
    html = render_html(make_result(empty=True))
    assert "INCONCLUSIVE" in html and "No connections." in html


def test_findings_most_severe_first() -> None:
    """A reader starts at the top: groups run from critical to info, then by kind, and the banner
    states the verdict once."""
    result = make_result()
    view = build_view(result)
    rank = {s: i for i, s in enumerate(["critical", "high", "medium", "low", "info"])}
    order = [(rank[g.severity], g.kind) for g in view.findings]
    assert order == sorted(order) and len(order) > 2
    assert view.findings[0].severity == "critical" and view.findings[-1].severity == "info"
    html = render_html(result)
    assert re.search(r'<strong class="verdict">FINDINGS</strong>: traffic the documented', html)
