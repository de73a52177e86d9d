"""report.json, the contract (schema ``helix-audit/1``; JSON Schema in helix_audit/schema/).

Every other format renders from the same :class:`~helix_audit.model.AuditResult`; ``load.py`` reads
this file back into one so a bundle can be re-rendered from its JSON alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from helix_audit.flows.interface import FLOW_COLUMNS
from helix_audit.gcpause import paused_gc
from helix_audit.model import (
    Anomaly,
    AuditResult,
    CoverageEntry,
    Evidence,
    Finding,
    InputInfo,
    Role,
    Severity,
)
from helix_audit.report.atomic import atomic_write_chunks
from helix_audit.report.common import (
    components_seen,
    jsonable,
    kind_counts,
    severity_counts,
    tool_info,
    verdict,
)
from helix_audit.report.json_flows import flow_lines
from helix_audit.report.json_stream import (
    _SEP,
    Chunk,
    fast_compact,
    list_body,
    observation_chunks,
    observation_record,
    record_chunks,
)

SCHEMA_ID = "helix-audit/1"
#: Columns the policy stage adds to the flow table.
POLICY_COLUMNS: tuple[str, ...] = (
    "hostname",
    "name_source",
    "orig_component",
    "resp_component",
    "verdict",
    "rule",
)
#: Every flow record in report.json has exactly these keys (missing columns become null).
FLOW_FIELDS: tuple[str, ...] = tuple(FLOW_COLUMNS) + POLICY_COLUMNS


def flow_records(flows: pd.DataFrame, columns: tuple[str, ...] = FLOW_FIELDS) -> list[dict[str, Any]]:
    """Flow rows as plain dicts with exactly ``columns``; NaN/NA become None."""
    if flows.empty:
        return []
    frame = flows.reindex(columns=list(columns))
    values = [_plain_column(frame[c]) for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _plain_column(column: pd.Series) -> list[Any]:
    """A column as Python values (numpy scalars unboxed) with NaN/NA as None."""
    return column.astype(object).where(column.notna(), None).tolist()


def input_dict(info: InputInfo) -> dict[str, Any]:
    return jsonable(
        {
            "path": info.path,
            "sha256": info.sha256,
            "format": info.format,
            "gzip": info.gzip,
            "packets": info.packets,
            "bytes": info.bytes,
            "first_ts": info.first_ts,
            "last_ts": info.last_ts,
            "link_types": list(info.link_types),
            "ts_resolution": info.ts_resolution,
            "snaplen": info.snaplen,
            "warnings": list(info.warnings),
        }
    )


def evidence_dict(ev: Evidence) -> dict[str, Any]:
    return jsonable(_evidence_fields(ev))


def _evidence_fields(ev: Evidence) -> dict[str, Any]:
    return {
        "file": ev.file,
        "frames": ev.frames,
        "first_ts": ev.first_ts,
        "last_ts": ev.last_ts,
        "flow_ids": ev.flow_ids,
        "wireshark_filter": ev.wireshark_filter,
    }


def finding_dict(f: Finding) -> dict[str, Any]:
    return jsonable(_finding_fields(f))


def _finding_fields(f: Finding, evidence_objects: bool = False) -> dict[str, Any]:
    """A finding's record before :func:`jsonable` (tuples, enums, numpy scalars left as they are).

    ``evidence_objects``: for orjson, model Evidence objects are left as they are (orjson writes a
    dataclass's fields in their order, that of :func:`_evidence_fields`): ~40% less work."""
    sev = f.severity
    ev = f.evidence
    keep = evidence_objects and all(type(e) is Evidence for e in ev)
    return {
        "id": f.id,
        "kind": f.kind,
        "severity": sev.value if type(sev) is Severity else Severity(sev).value,
        "component": f.component,
        "src": f.src,
        "src_port": f.src_port,
        "dst": f.dst,
        "dst_port": f.dst_port,
        "transport": f.transport,
        "hostname": f.hostname,
        "how": f.how,
        "state": f.state,
        "rule": f.rule,
        "message": f.message,
        "explanation": f.explanation,
        "sources": f.sources,
        "flow_ids": f.flow_ids,
        "evidence": ev if keep else [_evidence_fields(e) for e in ev],
        "extra": dict(f.extra),
    }


def _finding_text(f: Finding) -> str:
    return fast_compact(_finding_fields(f))


def _finding_stream_fields(f: Finding) -> dict[str, Any]:
    return _finding_fields(f, evidence_objects=True)


def coverage_dict(c: CoverageEntry) -> dict[str, Any]:
    return jsonable(_coverage_fields(c))


def _coverage_text(c: CoverageEntry) -> str:
    return fast_compact(_coverage_fields(c))


def _coverage_fields(c: CoverageEntry) -> dict[str, Any]:
    return {
        "rule": c.rule,
        "component": c.component,
        "phase": c.phase,
        "group": c.group,
        "hostnames": list(c.hostnames),
        "ports": list(c.ports),
        "status": c.status,
        "how": c.how,
        "flow_ids": list(c.flow_ids),
        "purpose": c.purpose,
    }


def role_dict(r: Role) -> dict[str, Any]:
    frames = list(r.frames)
    plain = set(map(type, frames)) <= {int}  # the common case: skip jsonable's per-frame walk
    return {
        **jsonable(
            {"address": r.address, "component": r.component, "source": r.source, "evidence": r.evidence}
        ),
        "frames": frames if plain else jsonable(frames),
    }


def anomaly_dict(a: Anomaly) -> dict[str, Any]:
    return jsonable(_anomaly_fields(a))


def _anomaly_fields(a: Anomaly) -> dict[str, Any]:
    return {"name": a.name, "file": a.file, "frame": a.frame, "detail": a.detail}


def _anomaly_text(a: Anomaly) -> str:
    return fast_compact(_anomaly_fields(a))


def summary_dict(result: AuditResult) -> dict[str, Any]:
    top = result.max_severity()
    return {
        "verdict": verdict(result),
        "packets": int(result.packets),
        "flows": int(len(result.flows)),
        "findings": len(result.findings),
        "max_severity": top.value if top else None,
        "findings_by_severity": severity_counts(result.findings),
        "findings_by_kind": kind_counts(result.findings),
        "components_seen": components_seen(result),
    }


def site_dict(result: AuditResult) -> dict[str, Any] | None:
    if result.site is None and result.site_sha256 is None:
        return None
    path = (result.tool or {}).get("site_path")
    return {
        "path": None if path is None else str(path),
        "sha256": result.site_sha256,
        "profile": jsonable(result.site) if result.site is not None else None,
    }


def _head(result: AuditResult) -> dict[str, Any]:
    """Every section but the long lists, in the documented key order."""
    return {
        "schema": SCHEMA_ID,
        "tool": tool_info(result),
        "inputs": [input_dict(i) for i in result.inputs],
        "ruleset": {
            "files": [{"path": p, "sha256": h} for p, h in result.ruleset.files],
            "rules": int(result.ruleset.rules),
        },
        "site": site_dict(result),
        "summary": summary_dict(result),
    }


def to_dict(result: AuditResult) -> dict[str, Any]:
    """The whole report as plain JSON types, in the documented key order."""
    return {
        **_head(result),
        "findings": [finding_dict(f) for f in result.findings],
        "coverage": [coverage_dict(c) for c in result.coverage],
        "roles": [role_dict(r) for r in result.roles],
        "flows": flow_records(result.flows),
        "observations": [observation_record(o) for o in result.observations],
        "anomalies": [anomaly_dict(a) for a in result.anomalies],
    }


#: Long lists written one compact record per line (json's C encoder only runs without indent).
_LINE_PER_ITEM = ("findings", "coverage", "flows", "observations", "anomalies")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def _section(key: str, value: Any) -> str:
    body = json.dumps(value, indent=1, ensure_ascii=True, allow_nan=False).replace("\n", "\n ")
    return f" {_compact(key)}: {body}"


def dumps(report: dict[str, Any]) -> str:
    """Serialise a report dict: ASCII-only (lossless for any name, even lone surrogates), no NaN.

    Small sections are indented; the long lists hold one compact record per line, which keeps a
    100k-flow report fast to write and still diffable line by line.
    """
    parts = []
    for key, value in report.items():
        if key in _LINE_PER_ITEM and isinstance(value, list) and value:
            parts.append(f" {_compact(key)}: [\n  " + _SEP.join(_compact(v) for v in value) + "\n ]")
        else:
            parts.append(_section(key, value))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def iter_json(result: AuditResult) -> Iterator[Chunk]:
    """``dumps(to_dict(result))`` as ASCII bytes in pieces: the long lists are encoded and yielded
    chunk by chunk, never held whole (see :mod:`.json_stream`)."""
    lists: dict[str, tuple[int, Iterator[Chunk]]] = {
        "findings": (
            len(result.findings),
            record_chunks(result.findings, _finding_stream_fields, _finding_text),
        ),
        "coverage": (len(result.coverage), record_chunks(result.coverage, _coverage_fields, _coverage_text)),
        "roles": (0, iter(())),
        "flows": (len(result.flows), flow_lines(result.flows, FLOW_FIELDS)),
        "observations": (len(result.observations), observation_chunks(result.observations)),
        "anomalies": (len(result.anomalies), record_chunks(result.anomalies, _anomaly_fields, _anomaly_text)),
    }
    yield _ascii("{\n" + ",\n".join(_section(k, v) for k, v in _head(result).items()))
    for key, (count, chunks) in lists.items():
        if key == "roles":
            yield _ascii(",\n" + _section(key, [role_dict(r) for r in result.roles]))
        elif count:
            yield _ascii(f",\n {_compact(key)}: ")
            yield from list_body(chunks)
        else:
            yield _ascii(",\n" + _section(key, []))
    yield b"\n}\n"


def _ascii(text: str) -> bytes:
    return text.encode("ascii")


def render_json(result: AuditResult) -> str:
    return b"".join(bytes(piece) for piece in iter_json(result)).decode("ascii")


def load_result(path: str | Path) -> AuditResult:
    """Read a report.json back into an AuditResult (see ``load.py``; imported lazily: no cycle)."""
    from helix_audit.report.load import load_result as _load

    return _load(path)


def write_json(result: AuditResult, path: str | Path, digests: dict[Path, str] | None = None) -> Path:
    """Write report.json atomically, streamed (memory bounded by one chunk of records); returns its
    path. ``digests`` gets its SHA-256, computed from the pieces as they are written (see
    ``bundle.write_sums``: no second read of a 100 MB file)."""
    with paused_gc():
        target, digest = atomic_write_chunks(path, iter_json(result))
    if digests is not None:
        digests[target] = digest
    return target
