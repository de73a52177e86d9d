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
from functools import lru_cache
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from helix_audit.model import AuditResult
from helix_audit.report.atomic import atomic_write_text
from helix_audit.report.model import ReportView
from helix_audit.report.views import build_view

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


def render_view(view: ReportView) -> str:
    css, script, csp = _assets()
    template = environment().get_template("report.html.j2")
    return template.render(v=view, css=css, script=script, csp=csp, sections=SECTIONS)


def render_html(result: AuditResult, evidence_dir: Path | None = None) -> str:
    """The whole report page. ``evidence_dir``: the bundle's evidence/ folder, for capture links."""
    return render_view(build_view(result, evidence_dir))


def write_html(result: AuditResult, path: str | Path, evidence_dir: Path | None = None) -> Path:
    """Write report.html atomically (links evidence/ beside it when not given); returns its path."""
    target = Path(path)
    folder = evidence_dir if evidence_dir is not None else target.parent / "evidence"
    return atomic_write_text(target, render_html(result, folder))
