"""report.sarif: SARIF 2.1.0 (OASIS) for code-scanning dashboards.

One reporting descriptor (rule) per finding kind; one result per finding with ``level`` from the
severity, the input capture as the location's artifact (with its SHA-256 in ``artifacts``), and the
frames, endpoints and Wireshark filter in ``properties``. ``partialFingerprints`` carry the finding
id so dashboards track a finding across runs.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from helix_audit.model import AuditResult, Finding, Severity
from helix_audit.report.atomic import atomic_write_text
from helix_audit.report.common import jsonable, tool_info
from helix_audit.report.json_report import finding_dict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"info": "note", "low": "warning", "medium": "warning", "high": "error", "critical": "error"}
#: GitHub code scanning reads ``security-severity`` (0.1-10) from a rule's properties.
SECURITY_SEVERITY = {"info": "1.0", "low": "3.0", "medium": "5.5", "high": "8.0", "critical": "9.5"}
KIND_TEXT = {
    "unexpected_destination": "A component reached a destination no enabled rule allows",
    "inbound_to_sandbox": "A connection was initiated towards a sandbox",
    "unexpected_websocket_path": "A WebSocket upgrade to the control plane used an undocumented path",
    "blocked": "A documented endpoint was blocked",
}


def artifact_uri(path: str) -> str:
    """A URI reference for an input path (relative paths stay relative, per SARIF §3.10)."""
    pure = Path(path)
    if pure.is_absolute():
        return pure.as_uri()
    return quote(PurePosixPath(*pure.parts).as_posix(), safe="/")


def _rule(kind: str, findings: list[Finding]) -> dict[str, Any]:
    worst = max((Severity(f.severity) for f in findings), key=lambda s: s.rank).value
    words = "".join(part.capitalize() for part in kind.split("_"))
    return {
        "id": kind,
        "name": words,
        "shortDescription": {"text": KIND_TEXT.get(kind, kind.replace("_", " "))},
        "defaultConfiguration": {"level": LEVELS[worst]},
        "properties": {"security-severity": SECURITY_SEVERITY[worst], "tags": ["network", "helix"]},
    }


def _result(f: Finding, rule_index: int, artifacts: dict[str, int]) -> dict[str, Any]:
    files = [e.file for e in f.evidence] or [""]
    locations = [
        {
            "physicalLocation": {
                "artifactLocation": {
                    "uri": artifact_uri(name),
                    **({"index": artifacts[name]} if name in artifacts else {}),
                }
            }
        }
        for name in dict.fromkeys(files)
        if name
    ]
    record = finding_dict(f)
    props = {
        k: record[k]
        for k in (
            "severity",
            "component",
            "src",
            "src_port",
            "dst",
            "dst_port",
            "transport",
            "hostname",
            "how",
            "state",
            "rule",
            "sources",
            "flow_ids",
            "evidence",
        )
    }
    return {
        "ruleId": f.kind,
        "ruleIndex": rule_index,
        "level": LEVELS[Severity(f.severity).value],
        "message": {"text": f.message or f.kind},
        "locations": locations,
        "partialFingerprints": {"helixFindingId/v1": f.id},
        "properties": jsonable(props),
    }


def to_sarif(result: AuditResult) -> dict[str, Any]:
    tool = tool_info(result)
    kinds: dict[str, list[Finding]] = {}
    for f in result.findings:
        kinds.setdefault(f.kind, []).append(f)
    order = {kind: i for i, kind in enumerate(kinds)}
    artifacts = {i.path: n for n, i in enumerate(result.inputs)}
    run = {
        "tool": {
            "driver": {
                "name": tool["name"],
                "version": tool["version"],
                "rules": [_rule(k, v) for k, v in kinds.items()],
            }
        },
        "invocations": [
            {"executionSuccessful": True, "commandLine": tool["command"], "endTimeUtc": tool["generated"]}
        ],
        "artifacts": [
            {"location": {"uri": artifact_uri(i.path)}, "length": i.bytes, "hashes": {"sha-256": i.sha256}}
            for i in result.inputs
        ],
        "results": [_result(f, order[f.kind], artifacts) for f in result.findings],
        "columnKind": "unicodeCodePoints",
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def render_sarif(result: AuditResult) -> str:
    return json.dumps(to_sarif(result), indent=1, ensure_ascii=True, allow_nan=False) + "\n"


def write_sarif(result: AuditResult, path: str | Path) -> Path:
    return atomic_write_text(path, render_sarif(result))
