"""Build the HTML view model from an AuditResult: sections that need no aggregation.

Aggregating sections (destinations, DNS, timeline) live in ``aggregate.py``. Every table is capped
at ``row_cap`` rows (the full data is in report.json and the CSVs); nothing here is per-flow DOM.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from helix_audit.model import AuditResult, CoverageEntry, Evidence, Finding, Severity
from helix_audit.report import aggregate
from helix_audit.report.common import (
    clip,
    destination,
    display_text,
    iso_time,
    severity_counts,
    tool_info,
    verdict,
)
from helix_audit.report.model import (
    Banner,
    Coverage,
    CoverageCell,
    CoverageRow,
    EvidenceView,
    FindingGroup,
    FindingView,
    FlowBrief,
    InboundRow,
    InputView,
    Provenance,
    ReportView,
    Table,
    TroubleItem,
)
from helix_audit.report.troubleshoot import advise, endpoint_text

ROW_CAP = 500
FLOWS_PER_CELL = 20
FRAMES_SHOWN = 40
EVIDENCE_SUFFIXES = (".pcapng", ".pcap")
_HEADLINES = {
    "compliant": "no findings above info",
    "findings": "traffic the documented tables do not allow, or blocked endpoints",
    "inconclusive": "no packets, or nothing of the site seen",
}
_STATUS_LABEL = {"ok": "reached", "blocked": "blocked", "not_seen": "not seen"}
_UNSAFE_ANCHOR = re.compile(r"[^A-Za-z0-9_.-]")


def text(value: object, limit: int = 300) -> str:
    return clip(display_text(value), limit)


def anchor(finding_id: str) -> str:
    return "f-" + _UNSAFE_ANCHOR.sub("_", finding_id)


def time_range(first: float | None, last: float | None) -> str:
    return f"{iso_time(first)} – {iso_time(last)}" if first is not None else "no packets"


def banner(result: AuditResult) -> Banner:
    firsts = [i.first_ts for i in result.inputs if i.first_ts is not None]
    lasts = [i.last_ts for i in result.inputs if i.last_ts is not None]
    v = verdict(result)
    return Banner(
        v,
        _HEADLINES[v],
        tuple(severity_counts(result.findings).items()),
        result.packets,
        len(result.flows),
        len(result.findings),
        time_range(min(firsts) if firsts else None, max(lasts) if lasts else None),
    )


def provenance(result: AuditResult) -> Provenance:
    inputs = tuple(
        InputView(
            text(i.path),
            i.sha256,
            i.format + (" (gzip)" if i.gzip else ""),
            i.packets,
            i.bytes,
            iso_time(i.first_ts),
            iso_time(i.last_ts),
            ", ".join(str(t) for t in i.link_types),
            i.ts_resolution,
            "" if i.snaplen is None else str(i.snaplen),
            tuple(text(w) for w in i.warnings),
        )
        for i in result.inputs
    )
    tool = tool_info(result)
    names = Counter(a.name for a in result.anomalies)
    first: dict[str, str] = {}
    for a in result.anomalies:
        first.setdefault(a.name, f"{a.file} frame {a.frame}: {a.detail}" if a.frame else a.detail)
    return Provenance(
        inputs,
        tuple((text(p), h) for p, h in result.ruleset.files),
        result.ruleset.rules,
        text((result.tool or {}).get("site_path") or ("(none)" if result.site is None else "(inline)")),
        result.site_sha256 or "",
        tool["name"],
        tool["version"],
        text(tool["command"], 2000),
        tool["generated"],
        tuple((text(n), c, text(first[n])) for n, c in names.most_common(ROW_CAP)),
    )


def flow_index(flows: pd.DataFrame) -> pd.DataFrame:
    return flows.set_index("flow_id", drop=False) if "flow_id" in flows else flows


def flow_briefs(index: pd.DataFrame, ids: tuple[int, ...]) -> tuple[FlowBrief, ...]:
    wanted = [i for i in ids[:FLOWS_PER_CELL] if i in index.index]
    rows = index.loc[wanted].to_dict("records") if wanted else []
    return tuple(
        FlowBrief(
            int(r["flow_id"]),
            text(
                f"{r['orig_h']}:{r['orig_p']} → {r['resp_h']}:{r['resp_p']} "
                f"{r['transport']} {r['conn_state']}"
            ),
        )
        for r in rows
    )


def _cell(entry: CoverageEntry | None, index: pd.DataFrame) -> CoverageCell:
    if entry is None:
        return CoverageCell("na", "—")
    label = _STATUS_LABEL.get(entry.status, entry.status)
    if entry.status == "blocked" and entry.how:
        label = f"blocked ({entry.how})"
    briefs = flow_briefs(index, entry.flow_ids)
    return CoverageCell(entry.status, label, briefs, len(entry.flow_ids) - len(briefs))


def coverage(result: AuditResult, index: pd.DataFrame) -> Coverage:
    components = tuple(sorted({c.component for c in result.coverage}))
    rows: dict[tuple[Any, ...], dict[str, CoverageEntry]] = {}
    for c in result.coverage:
        rows.setdefault((c.phase, c.group, c.hostnames, c.ports, c.purpose), {})[c.component] = c
    out = tuple(
        CoverageRow(
            phase,
            group,
            ", ".join(hosts),
            ", ".join(str(p) for p in ports),
            purpose,
            tuple(_cell(by.get(comp), index) for comp in components),
        )
        for (phase, group, hosts, ports, purpose), by in rows.items()
    )
    counts = Counter(_STATUS_LABEL.get(c.status, c.status) for c in result.coverage)
    return Coverage(components, out, tuple(sorted(counts.items())))


def evidence_view(ev: Evidence) -> EvidenceView:
    frames = ", ".join(str(f) for f in ev.frames[:FRAMES_SHOWN])
    if len(ev.frames) > FRAMES_SHOWN:
        frames += f" … (+{len(ev.frames) - FRAMES_SHOWN} more)"
    return EvidenceView(
        text(ev.file), frames, time_range(ev.first_ts, ev.last_ts), text(ev.wireshark_filter, 2000)
    )


def capture_link(finding_id: str, evidence_dir: Path | None) -> str | None:
    if evidence_dir is None:
        return None
    for suffix in EVIDENCE_SUFFIXES:
        if (evidence_dir / f"{finding_id}{suffix}").is_file():
            return "evidence/" + quote(f"{finding_id}{suffix}", safe="")
    return None


def finding_view(f: Finding, evidence_dir: Path | None) -> FindingView:
    sev = Severity(f.severity).value
    how = f"{f.how or ''}{' ' if f.how and f.state else ''}{f.state or ''}"
    src = f"{f.src}:{f.src_port}" if f.src_port is not None else f.src
    port = f":{f.dst_port or ''}" if f.dst_port is not None else ""
    return FindingView(
        text(f.id),
        anchor(f.id),
        sev,
        text(f.kind),
        text(f.message, 1000),
        text(f.component),
        text(f"{src} → {destination(f)}{port} {f.transport}"),
        text(f.hostname or ""),
        text(f.rule or ""),
        text(how),
        text(f.explanation or "", 1000),
        text(", ".join(f.sources), 1000),
        tuple(evidence_view(e) for e in f.evidence),
        capture_link(f.id, evidence_dir),
    )


def finding_groups(result: AuditResult, evidence_dir: Path | None) -> tuple[FindingGroup, ...]:
    groups: dict[tuple[str, str], list[Finding]] = {}
    # the most severe first (a reader starts at the top), then by kind
    ranked = sorted(result.findings, key=lambda f: (-Severity(f.severity).rank, f.kind))
    for f in ranked:
        groups.setdefault((f.kind, Severity(f.severity).value), []).append(f)
    return tuple(
        FindingGroup(
            text(kind), sev, tuple(finding_view(f, evidence_dir) for f in items[:ROW_CAP]), len(items)
        )
        for (kind, sev), items in groups.items()
    )


def inbound(result: AuditResult) -> tuple[Table[InboundRow], tuple[tuple[str, int], ...]]:
    items = [f for f in result.findings if f.kind == "inbound_to_sandbox"]
    counts = Counter(f.state or "unknown" for f in items)
    rows = tuple(
        InboundRow(
            text(f.id),
            anchor(f.id),
            text(f.state or "unknown"),
            text(f"{f.src}:{f.src_port}" if f.src_port is not None else f.src),
            text(f"{f.dst}:{f.dst_port} {f.transport}"),
            iso_time(f.evidence[0].first_ts) if f.evidence else "",
            ", ".join(str(n) for e in f.evidence for n in e.frames[:10]),
        )
        for f in items[:ROW_CAP]
    )
    return Table(rows, len(items)), tuple(sorted(counts.items()))


def troubleshooting(result: AuditResult, index: pd.DataFrame) -> tuple[TroubleItem, ...]:
    out = []
    for f in [f for f in result.findings if f.kind == "blocked"][:ROW_CAP]:
        row = None
        if f.flow_ids and f.flow_ids[0] in index.index:
            row = index.loc[f.flow_ids[0]].to_dict()
        out.append(
            TroubleItem(
                text(f.id),
                anchor(f.id),
                text(endpoint_text(f)),
                text(f.how or ""),
                text(advise(f, row), 2000),
            )
        )
    return tuple(out)


def build_view(result: AuditResult, evidence_dir: Path | None = None) -> ReportView:
    """Everything the HTML template shows, computed once. ``evidence_dir``: where evidence pcaps are."""
    index = flow_index(result.flows)
    inbound_table, inbound_counts = inbound(result)
    return ReportView(
        title=f"helix-audit report: {verdict(result)}",
        banner=banner(result),
        provenance=provenance(result),
        coverage=coverage(result, index),
        findings=finding_groups(result, evidence_dir),
        inbound=inbound_table,
        inbound_counts=inbound_counts,
        troubleshooting=troubleshooting(result, index),
        destinations=aggregate.destinations(result.flows, ROW_CAP),
        dns=aggregate.dns_lookups(result.observations, ROW_CAP),
        timeline=aggregate.timeline(result.flows),
        row_cap=ROW_CAP,
    )
