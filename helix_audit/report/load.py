"""Read a report.json (schema ``helix-audit/1``) back into an :class:`AuditResult`.

``helix-audit report report.json --out DIR`` re-renders a bundle from it. The round trip is exact for
everything the JSON holds: ``to_dict(load_result(p))`` equals the dict that was written. Observations
of a type not mapped here come back as :class:`LoadedObservation`, which keeps the record.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from helix_audit.errors import InputError
from helix_audit.flows.interface import FLOW_COLUMNS
from helix_audit.model import (
    Anomaly,
    AuditResult,
    CoverageEntry,
    DnsAnswer,
    DnsQuery,
    DnsResponse,
    Evidence,
    Finding,
    HttpConnect,
    HttpRequest,
    HttpResponse,
    InputInfo,
    Observation,
    Role,
    RulesetInfo,
    Severity,
    TlsAlert,
    TlsClientHello,
    TlsServerHello,
    WebSocketUpgrade,
)
from helix_audit.report.json_report import FLOW_FIELDS, SCHEMA_ID

OBSERVATION_TYPES: dict[str, type[Observation]] = {
    "dns_query": DnsQuery,
    "dns_response": DnsResponse,
    "tls_client_hello": TlsClientHello,
    "tls_alert": TlsAlert,
    "tls_server_hello": TlsServerHello,
    "http_request": HttpRequest,
    "websocket_upgrade": WebSocketUpgrade,
    "http_connect": HttpConnect,
    "http_response": HttpResponse,
}


def _build(cls: type, record: dict[str, Any]) -> Any:
    """Instantiate dataclass ``cls`` from ``record``: known fields only, lists back to tuples."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in record:
            continue
        value = record[f.name]
        if f.name == "answers":
            value = tuple(DnsAnswer(**a) for a in value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class LoadedObservation(Observation):
    """An observation of a type this module does not map: its head, plus the record as written."""

    record: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_record(self) -> dict[str, Any]:
        return dict(self.record)


def observation_from(record: dict[str, Any]) -> Observation:
    cls = OBSERVATION_TYPES.get(record.get("type", ""))
    if cls is None:
        return dataclasses.replace(_build(LoadedObservation, record), record=dict(record))
    return _build(cls, record)


def finding_from(rec: dict[str, Any]) -> Finding:
    evidence = tuple(_build(Evidence, e) for e in rec["evidence"])
    finding = _build(Finding, {**rec, "evidence": evidence, "severity": Severity(rec["severity"])})
    return dataclasses.replace(finding, extra=dict(rec.get("extra") or {}))


def _dtype(column: str) -> str | None:
    """The loaded column's dtype: int64 for the int32 columns too (a report may hold counts past
    int32; loaded tables are small), text and category columns as pandas infers them."""
    spec = FLOW_COLUMNS.get(column, "str")
    for kind in ("int64", "Int64", "int32", "Int32", "float64"):
        if spec.startswith(kind):
            return kind.replace("32", "64")
    return None


def flows_from(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(FLOW_FIELDS))
    for column in frame.columns:
        dtype = _dtype(column)
        if dtype == "int64" and frame[column].isna().any():
            dtype = "Int64"
        if dtype is not None:
            frame[column] = frame[column].astype(dtype)
    return frame


def result_from_dict(doc: dict[str, Any]) -> AuditResult:
    """Build an AuditResult from a parsed report dict (raises KeyError/TypeError when malformed)."""
    site = doc.get("site")
    tool = dict(doc["tool"])
    if site is not None and site.get("path") is not None:
        tool["site_path"] = site["path"]
    return AuditResult(
        inputs=[_build(InputInfo, i) for i in doc["inputs"]],
        ruleset=RulesetInfo(
            files=tuple((f["path"], f["sha256"]) for f in doc["ruleset"]["files"]),
            rules=doc["ruleset"]["rules"],
        ),
        site=None if site is None else site.get("profile"),
        site_sha256=None if site is None else site.get("sha256"),
        flows=flows_from(doc["flows"]),
        observations=[observation_from(o) for o in doc["observations"]],
        findings=[finding_from(f) for f in doc["findings"]],
        coverage=[_build(CoverageEntry, c) for c in doc["coverage"]],
        roles=[_build(Role, r) for r in doc["roles"]],
        anomalies=[_build(Anomaly, a) for a in doc["anomalies"]],
        tool=tool,
    )


def load_result(path: str | Path) -> AuditResult:
    """Read ``path`` (a report.json) into an AuditResult; :class:`InputError` names the file."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"{path}: not a {SCHEMA_ID} report (schema is {found!r})")
    try:
        return result_from_dict(doc)
    except KeyError as exc:
        raise InputError(f"{path}: report is missing key {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: malformed report ({exc})") from exc
