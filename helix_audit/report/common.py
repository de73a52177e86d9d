"""Helpers every reporter shares: the summary verdict, counts, and text made safe to display.

Names in packets are attacker-controlled. Every format escapes for its own syntax (jinja2 autoescape,
the csv module, ElementTree, json); ``display_text`` additionally makes control characters and lone
surrogates visible as ``\\xNN`` / ``\\uXXXX`` so they neither break a format (XML 1.0 forbids most C0
characters) nor hide in a terminal or a spreadsheet.
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from helix_audit.model import AuditResult, Finding, Severity

SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)
VERDICTS = ("compliant", "findings", "inconclusive")
COMPONENTS = ("control_plane", "sandbox")
CONTROL_CHARS = "[\x00-\x1f\x7f-\x9f\ud800-\udfff]"
_CONTROL = re.compile(CONTROL_CHARS)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display_text(value: object) -> str:
    """``str(value)`` with control characters and lone surrogates shown as escapes."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(_escape_char, text)


def destination(f: Finding) -> str:
    """The finding's destination for display: its address, or how many sandboxes a scan probed
    (``inbound_scan`` over several sandboxes has no single ``dst``)."""
    if f.dst is not None:
        return f.dst
    n = f.extra.get("sandboxes")
    return f"{n} sandboxes" if isinstance(n, int) else "several destinations"


def clip(text: str, limit: int = 300) -> str:
    """Shorten very long text for a table cell, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


def iso_time(ts: float | None) -> str:
    """Epoch seconds as ISO 8601 UTC with microseconds ('' for None/NaN)."""
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    counts = Counter(Severity(f.severity).value for f in findings)
    return {sev: counts.get(sev, 0) for sev in SEVERITIES}


def kind_counts(findings: list[Finding]) -> dict[str, int]:
    return dict(sorted(Counter(f.kind for f in findings).items()))


def components_seen(result: AuditResult) -> list[str]:
    """Components with an address (profile or inferred) or a documented endpoint reached or blocked."""
    seen = {r.component for r in result.roles}
    seen |= {c.component for c in result.coverage if c.status != "not_seen"}
    return sorted(seen)


def verdict(result: AuditResult) -> str:
    """compliant | findings | inconclusive.

    ``findings`` when any finding is above ``info``; otherwise ``inconclusive`` when the capture held
    no packets or none of the site (no component seen); otherwise ``compliant``.
    """
    if any(Severity(f.severity).rank > Severity.INFO.rank for f in result.findings):
        return "findings"
    if result.packets == 0 or not components_seen(result):
        return "inconclusive"
    return "compliant"


def tool_info(result: AuditResult) -> dict[str, Any]:
    """The tool block: name, version, command line (a string), generation time; when the pipeline
    recorded them, seconds per stage (``timings``) and counts of packets that are in no flow
    (``non_flow``)."""
    from helix_audit import __version__

    tool = result.tool or {}
    command = tool.get("command", "")
    if isinstance(command, list | tuple):
        command = shlex.join(str(c) for c in command)
    out: dict[str, Any] = {
        "name": str(tool.get("name", "helix-audit")),
        "version": str(tool.get("version", __version__)),
        "command": str(command),
        "generated": str(tool.get("generated") or now_iso()),
    }
    if tool.get("timings"):
        out["timings"] = {str(k): float(v) for k, v in tool["timings"].items()}
    if tool.get("non_flow"):
        out["non_flow"] = {str(k): int(v) for k, v in tool["non_flow"].items()}
    return out


def jsonable(value: Any) -> Any:
    """Plain JSON types: tuples to lists, numpy scalars to Python, NaN to None, enums to values."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is list or kind is tuple:
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Severity):
        return value.value
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
