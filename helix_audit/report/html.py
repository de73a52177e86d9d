"""report.html: one self-contained file (CSS, JS and SVG inline; nothing from the network).

Two phases, as coverage.py does it: ``views.build_view`` computes a view model of dataclasses, then
jinja2 templates (package data, autoescape on, ``StrictUndefined``) format it. No HTML is built
from strings in Python. A Content-Security-Policy meta tag allows only the one inline script (by
its SHA-256), inline styles and ``data:`` images, so a name that slipped past escaping still could
not run or load anything.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from helix_audit.model import AuditResult
from helix_audit.report.atomic import atomic_open
from helix_audit.report.model import ReportView
from helix_audit.report.views import build_view

#: Characters of the page written at once: the template's pieces joined, never the whole page (a
#: SYN scan's is tens of MB, held once as text and again encoded when written whole).
_BATCH = 1 << 20

SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdict", "Verdict"),
    ("provenance", "Provenance"),
    ("coverage", "Coverage"),
    ("findings", "Findings"),
    ("inbound", "Inbound"),
    ("troubleshooting", "Troubleshooting"),
    ("destinations", "Destinations"),
    ("dns", "DNS"),
    ("timeline", "Timeline"),
)


def _static(name: str) -> str:
    return resources.files("helix_audit.report").joinpath("static", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _assets() -> tuple[Markup, Markup, str]:
    """Inline CSS and JS (our own package data, never capture data) and the CSP that pins the JS."""
    css, script = _static("report.css"), _static("report.js")
    for name, body in (("report.css", css), ("report.js", script)):
        if "</" in body:
            raise ValueError(f"{name}: must not contain '</' (it is inlined into HTML)")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return Markup(css), Markup(script), csp


def _num(value: int) -> str:
    return f"{value:,}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("helix_audit.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    return env


def render_pieces(view: ReportView) -> Iterator[str]:
    """The page as the template generates it, piece by piece (joined: :func:`render_view`)."""
    css, script, csp = _assets()
    template = environment().get_template("report.html.j2")
    return template.generate(v=view, css=css, script=script, csp=csp, sections=SECTIONS)


def render_view(view: ReportView) -> str:
    return "".join(render_pieces(view))


def render_html(result: AuditResult, evidence_dir: Path | None = None) -> str:
    """The whole report page. ``evidence_dir``: the bundle's evidence/ folder, for capture links."""
    return render_view(build_view(result, evidence_dir))


def write_html(result: AuditResult, path: str | Path, evidence_dir: Path | None = None) -> Path:
    """Write report.html atomically (links evidence/ beside it when not given); returns its path.
    The same text as :func:`render_html`, streamed from the template."""
    target = Path(path)
    folder = evidence_dir if evidence_dir is not None else target.parent / "evidence"
    pieces = render_pieces(build_view(result, folder))
    with atomic_open(target, "w") as fh:  # the page a batch of pieces at a time, not whole then encoded
        batch: list[str] = []
        size = 0
        for piece in pieces:
            batch.append(piece)
            size += len(piece)
            if size >= _BATCH:
                fh.write("".join(batch))
                batch, size = [], 0
        fh.write("".join(batch))
    return target
