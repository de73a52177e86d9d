"""report.sarif: SARIF 2.1.0 (OASIS) for code-scanning dashboards.

One reporting descriptor (rule) per finding kind; one result per finding with ``level`` from the
severity, the input capture as the location's artifact (with its SHA-256 in ``artifacts``), and the
frames, endpoints and Wireshark filter in ``properties``. ``partialFingerprints`` carry the finding
id so dashboards track a finding across runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from helix_audit.model import AuditResult, Finding, Severity
from helix_audit.report.atomic import atomic_write_chunks
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
    return _document(result, _results(result))


def _results(result: AuditResult) -> list[dict[str, Any]]:
    order, artifacts = _indexes(result)
    return [_result(f, order[f.kind], artifacts) for f in result.findings]


def _indexes(result: AuditResult) -> tuple[dict[str, int], dict[str, int]]:
    """Rule index per finding kind (in order of first appearance), artifact index per input path."""
    order: dict[str, int] = {}
    for f in result.findings:
        order.setdefault(f.kind, len(order))
    return order, {i.path: n for n, i in enumerate(result.inputs)}


def _document(result: AuditResult, results: Any) -> dict[str, Any]:
    tool = tool_info(result)
    kinds: dict[str, list[Finding]] = {}
    for f in result.findings:
        kinds.setdefault(f.kind, []).append(f)
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
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _dumps(value: Any) -> str:
    """``json.dumps(value, indent=1, ensure_ascii=True, allow_nan=False)``, spelled out for the
    plain values SARIF holds. With ``indent`` the stdlib takes its pure-Python encoder, which made
    a cycle of closures per call: 8k findings left ~12 MiB of garbage each time (the bundle runs
    with the collector paused), and it was half of the file's time."""
    try:
        return _encode(value, 0)
    except _Unusual:
        return json.dumps(value, indent=1, ensure_ascii=True, allow_nan=False)


class _Unusual(Exception):
    """A value :func:`_encode` leaves to the stdlib (a non-string key, a subclass, ...)."""


_ASCII = json.encoder.encode_basestring_ascii


def _encode(value: Any, level: int) -> str:
    kind = type(value)
    if kind is str:
        return _ASCII(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if not math.isfinite(value):
            raise _Unusual  # the stdlib's ValueError
        return float.__repr__(value)
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        pad = "\n" + " " * (level + 1)
        if all(type(v) is int for v in value):  # frame numbers, flow ids: most of the text
            body = ("," + pad).join(map(int.__repr__, value))
        else:
            body = ("," + pad).join([_encode(v, level + 1) for v in value])
        return "[" + pad + body + "\n" + " " * level + "]"
    if kind is dict:
        if not value:
            return "{}"
        pad = "\n" + " " * (level + 1)
        items = []
        for k, v in value.items():
            if type(k) is not str:
                raise _Unusual
            items.append(_ASCII(k) + ": " + _encode(v, level + 1))
        return "{" + pad + ("," + pad).join(items) + "\n" + " " * level + "}"
    raise _Unusual


#: Stands for the results list in the document's skeleton (a finding's text cannot hold it: every
#: text is encoded with ``ensure_ascii``, which writes a NUL as an escape).
_MARK = "\x00results\x00"


def sarif_chunks(result: AuditResult) -> Iterator[str]:
    """``render_sarif(result)`` in pieces: the results are encoded one at a time, never all held
    (as one document of dicts, the benchmark's 8k findings were ~110 MiB of the bundle's peak RSS).

    ``json.dumps(indent=1)`` writes an item of a list nested ``d`` deep as its own ``dumps`` with
    every line indented by ``d`` more spaces, so the pieces join into exactly the same text."""
    if not result.findings:
        yield render_sarif(result)
        return
    parts = _dumps(_document(result, _MARK)).split(json.dumps(_MARK, ensure_ascii=True))
    if len(parts) != 2:  # cannot happen (no NUL in paths or argv): still, the plain way then
        yield render_sarif(result)
        return
    before, after = parts
    depth = len(before.rsplit("\n", 1)[1]) - len(before.rsplit("\n", 1)[1].lstrip(" "))
    pad = "\n" + " " * (depth + 1)
    yield before + "["
    order, artifacts = _indexes(result)
    for n, f in enumerate(result.findings):
        yield ("," if n else "") + pad + _dumps(_result(f, order[f.kind], artifacts)).replace("\n", pad)
    yield "\n" + " " * depth + "]" + after + "\n"


def render_sarif(result: AuditResult) -> str:
    return _dumps(to_sarif(result)) + "\n"


def write_sarif(result: AuditResult, path: str | Path, digests: dict[Path, str] | None = None) -> Path:
    """Write report.sarif atomically; ``digests`` gets its SHA-256, taken as it is written."""
    target, digest = atomic_write_chunks(path, (piece.encode("utf-8") for piece in sarif_chunks(result)))
    if digests is not None:
        digests[target] = digest
    return target
