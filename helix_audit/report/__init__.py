"""Reporters: JSON (the contract), HTML (self-contained), CSV, SARIF, JUnit, and the bundle.

Public API::

    to_dict(result) -> dict                 write_json(result, path) -> Path
    load_result(path) -> AuditResult        render_html(result, evidence_dir=None) -> str
    write_html(result, path, evidence_dir=None) -> Path
    write_bundle(result, out_dir, formats=None) -> list[Path]
    verdict(result) -> "compliant" | "findings" | "inconclusive"
"""

from __future__ import annotations

from helix_audit.report.bundle import FORMATS, write_bundle
from helix_audit.report.common import verdict
from helix_audit.report.html import render_html, write_html
from helix_audit.report.json_report import SCHEMA_ID, to_dict, write_json
from helix_audit.report.load import load_result

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
