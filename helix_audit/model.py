"""Values that cross stage boundaries: observations, findings, coverage, provenance, the result.

Per-packet and per-flow data travel as numpy columns / pandas DataFrames (see
``decode.interface.PacketColumns`` and ``flows.interface.FLOW_COLUMNS``); everything here is a frozen
dataclass. Field names follow the wire and Zeek's originator/responder naming.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, NewType

import pandas as pd

FlowId = NewType("FlowId", int)
FindingId = NewType("FindingId", str)
RuleId = NewType("RuleId", str)


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls(text.strip().lower())


_SEVERITY_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


# --------------------------------------------------------------------------------------------------
# Observations: one per interesting thing a parser found in a packet (or a reassembled stream).
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """Common head of every observation. ``frame`` is 1-based within ``file`` (Wireshark's number).

    For observations built from a reassembled TCP stream, ``frame`` is the frame where the message
    became complete (tshark convention: the last segment); ``frames`` lists all segments used.
    """

    type: str
    frame: int
    ts: float
    file: str
    src: str
    sport: int
    dst: str
    dport: int
    transport: str  # "udp" | "tcp"
    flow_id: int | None = None
    frames: tuple[int, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """Flat JSON-ready dict: the ``extract`` output and ``report.json`` observations."""
        rec = asdict(self)
        rec["frames"] = list(self.frames)
        for key, value in list(rec.items()):
            if isinstance(value, tuple):
                rec[key] = [dict(v) if isinstance(v, dict) else v for v in value]
        return rec


@dataclass(frozen=True)
class DnsAnswer:
    name: str
    rtype: str  # "A", "AAAA", "CNAME", ...
    ttl: int
    data: str  # address, target name, or presentation form


@dataclass(frozen=True)
class DnsQuery(Observation):
    id: int = 0
    qname: str = ""
    qtype: str = ""  # mnemonic ("A", "AAAA", "TYPE65534")
    qtypes: tuple[str, ...] = ()
    qnames: tuple[str, ...] = ()  # every question (normally one)
    protocol: str = "dns"  # "dns" | "mdns" | "llmnr"


@dataclass(frozen=True)
class DnsResponse(Observation):
    id: int = 0
    qname: str = ""
    qtype: str = ""
    rcode: str = "NOERROR"  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ...
    answers: tuple[DnsAnswer, ...] = ()
    protocol: str = "dns"


@dataclass(frozen=True)
class TlsClientHello(Observation):
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    version: str = ""  # highest offered, e.g. "TLS 1.3"
    ech: bool = False
    quic: bool = False  # True when carried in a QUIC Initial


@dataclass(frozen=True)
class TlsAlert(Observation):
    level: str = ""
    description: str = ""


@dataclass(frozen=True)
class TlsServerHello(Observation):
    version: str = ""  # negotiated: supported_versions if present, else the legacy version


@dataclass(frozen=True)
class HttpRequest(Observation):
    method: str = ""
    host: str | None = None
    path: str = ""  # request target as sent (query included; absolute-form for proxies)
    version: str = ""
    user_agent: str | None = None


@dataclass(frozen=True)
class WebSocketUpgrade(HttpRequest):
    accepted: bool | None = None  # True when a 101 came back, False on another status, None unseen
    status: int | None = None
    response_frame: int | None = None


@dataclass(frozen=True)
class HttpConnect(HttpRequest):
    target: str = ""  # "host:port" as in the request
    status: int | None = None  # proxy's answer (200 tunnel up, 403/407 denied ...)
    response_frame: int | None = None


@dataclass(frozen=True)
class HttpResponse(Observation):
    status: int = 0
    reason: str = ""
    version: str = ""


# --------------------------------------------------------------------------------------------------
# Anomalies: something in the capture that could not be decoded or looks wrong; reported, not raised.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anomaly:
    name: str  # stable snake_case, e.g. "tls_client_hello_truncated", "capture_truncated"
    file: str
    frame: int | None = None
    detail: str = ""


# --------------------------------------------------------------------------------------------------
# Policy results.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    file: str
    frames: tuple[int, ...]
    first_ts: float
    last_ts: float
    flow_ids: tuple[int, ...] = ()
    wireshark_filter: str = ""


@dataclass(frozen=True)
class Finding:
    id: str
    kind: str  # unexpected_destination | inbound_to_sandbox | inbound_scan | unexpected_websocket_path | ...
    severity: Severity
    component: str  # control_plane | sandbox | other
    src: str
    src_port: int | None
    dst: str | None  # None: several destinations (inbound_scan over several sandboxes)
    dst_port: int | None
    transport: str
    hostname: str | None
    message: str
    evidence: tuple[Evidence, ...]
    rule: str | None = None
    how: str | None = None  # for blocked: no_answer, reset, icmp_unreachable, nxdomain, ...
    state: str | None = None  # for inbound_to_sandbox: accepted | attempted
    sources: tuple[str, ...] = ()
    flow_ids: tuple[int, ...] = ()
    explanation: str | None = None  # e.g. from upstream notes: "Helix uses this host for ..."
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class CoverageEntry:
    rule: str
    component: str
    phase: str
    group: str
    hostnames: tuple[str, ...]
    ports: tuple[int, ...]
    status: str  # ok | blocked | not_seen
    how: str | None = None
    flow_ids: tuple[int, ...] = ()
    purpose: str = ""


@dataclass(frozen=True)
class Role:
    address: str
    component: str  # control_plane | sandbox
    source: str  # "profile" | "inferred"
    evidence: str = ""
    frames: tuple[int, ...] = ()


# --------------------------------------------------------------------------------------------------
# Provenance and the whole result.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputInfo:
    path: str
    sha256: str
    format: str  # pcap | pcapng (gzip noted separately)
    gzip: bool
    packets: int
    bytes: int
    first_ts: float | None
    last_ts: float | None
    link_types: tuple[int, ...]
    ts_resolution: str
    snaplen: int | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RulesetInfo:
    files: tuple[tuple[str, str], ...]  # (path, sha256)
    rules: int


@dataclass
class AuditResult:
    inputs: list[InputInfo]
    ruleset: RulesetInfo
    site: dict[str, Any] | None
    site_sha256: str | None
    flows: pd.DataFrame
    observations: list[Observation]
    findings: list[Finding]
    coverage: list[CoverageEntry]
    roles: list[Role]
    anomalies: list[Anomaly]
    tool: dict[str, Any] = field(default_factory=dict)

    @property
    def packets(self) -> int:
        return sum(i.packets for i in self.inputs)

    def max_severity(self) -> Severity | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)
