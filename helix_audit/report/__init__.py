"""Reporters: JSON (the contract), HTML (self-contained), CSV, SARIF, JUnit, and the bundle.

Public API::

    to_dict(result) -> dict                 write_json(result, path) -> Path
    load_result(path) -> AuditResult        render_html(result, evidence_dir=None) -> str
    write_html(result, path, evidence_dir=None) -> Path
    write_bundle(result, out_dir, formats=None, jobs=1) -> list[Path]
    verdict(result) -> "compliant" | "findings" | "inconclusive"

Each name is imported on first use: ``--format json`` never loads jinja2 (30-40 ms of start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from helix_audit.report.bundle import FORMATS, write_bundle
    from helix_audit.report.common import verdict
    from helix_audit.report.html import render_html, write_html
    from helix_audit.report.json_report import SCHEMA_ID, to_dict, write_json
    from helix_audit.report.load import load_result

_HOME = {
    "FORMATS": "bundle",
    "write_bundle": "bundle",
    "verdict": "common",
    "render_html": "html",
    "write_html": "html",
    "SCHEMA_ID": "json_report",
    "to_dict": "json_report",
    "write_json": "json_report",
    "load_result": "load",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"helix_audit.report.{_HOME[name]}"), name)
    raise AttributeError(name)


__all__ = [
    "FORMATS",
    "SCHEMA_ID",
    "load_result",
    "render_html",
    "to_dict",
    "verdict",
    "write_bundle",
    "write_html",
    "write_json",
]
