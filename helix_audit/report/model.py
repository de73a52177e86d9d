"""The HTML report's view model: plain frozen dataclasses of display-ready values.

``views.build_view(result)`` computes everything (aggregation, capping, wording, SVG geometry);
the templates only format these values. Every string that came from a packet is already passed
through ``common.display_text`` and ``common.clip``; jinja2's autoescape does the HTML escaping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Banner:
    verdict: str  # compliant | findings | inconclusive
    headline: str
    severities: tuple[tuple[str, int], ...]
    packets: int
    flows: int
    findings: int
    time_range: str


@dataclass(frozen=True)
class InputView:
    path: str
    sha256: str
    format: str
    packets: int
    bytes: int
    first: str
    last: str
    link_types: str
    ts_resolution: str
    snaplen: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Provenance:
    inputs: tuple[InputView, ...]
    rule_files: tuple[tuple[str, str], ...]
    rules: int
    site_path: str
    site_sha256: str
    tool: str
    version: str
    command: str
    generated: str
    anomalies: tuple[tuple[str, int, str], ...]  # name, count, first example


@dataclass(frozen=True)
class FlowBrief:
    flow_id: int
    text: str  # "10.0.1.10:40004 → 203.0.113.5:443 tcp S0"


@dataclass(frozen=True)
class CoverageCell:
    status: str  # ok | blocked | not_seen | na
    label: str  # reached | blocked (no_answer) | not seen | —
    flows: tuple[FlowBrief, ...] = ()
    more_flows: int = 0


@dataclass(frozen=True)
class CoverageRow:
    phase: str
    group: str
    endpoint: str
    ports: str
    purpose: str
    cells: tuple[CoverageCell, ...]


@dataclass(frozen=True)
class Coverage:
    components: tuple[str, ...]
    rows: tuple[CoverageRow, ...]
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class EvidenceView:
    file: str
    frames: str
    time_range: str
    wireshark_filter: str


@dataclass(frozen=True)
class FindingView:
    id: str
    anchor: str
    severity: str
    kind: str
    message: str
    component: str
    endpoint: str
    hostname: str
    rule: str
    how: str
    explanation: str
    sources: str
    evidence: tuple[EvidenceView, ...]
    capture: str | None  # relative link to evidence/<id>.pcap(ng), when the file exists


@dataclass(frozen=True)
class FindingGroup:
    kind: str
    severity: str
    items: tuple[FindingView, ...]
    total: int


@dataclass(frozen=True)
class InboundRow:
    finding: str
    anchor: str
    state: str
    source: str
    target: str
    when: str
    frames: str


@dataclass(frozen=True)
class TroubleItem:
    finding: str
    anchor: str
    endpoint: str
    how: str
    advice: str


@dataclass(frozen=True)
class DestRow:
    domain: str
    hostname: str
    components: str
    ports: str
    verdict: str
    rule: str
    flows: int
    packets: int
    bytes: int


@dataclass(frozen=True)
class DnsRow:
    qname: str
    qtype: str
    queries: int
    rcodes: str
    answers: str
    resolvers: str


@dataclass(frozen=True)
class Table(Generic[T]):
    rows: tuple[T, ...]
    total: int

    @property
    def capped(self) -> bool:
        return self.total > len(self.rows)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Lane:
    label: str
    y: float
    total: int
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    lanes: tuple[Lane, ...]
    start: str
    end: str
    bucket_seconds: float


@dataclass(frozen=True)
class ReportView:
    title: str
    banner: Banner
    provenance: Provenance
    coverage: Coverage
    findings: tuple[FindingGroup, ...]
    inbound: Table[InboundRow]
    inbound_counts: tuple[tuple[str, int], ...]
    troubleshooting: tuple[TroubleItem, ...]
    destinations: Table[DestRow]
    dns: Table[DnsRow]
    timeline: Timeline
    row_cap: int
    extra: dict[str, str] = field(default_factory=dict)
