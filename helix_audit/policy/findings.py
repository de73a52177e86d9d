"""Building findings: stable ids, grouping, evidence with frames and Wireshark filters.

Findings that share kind, component, destination (hostname, else address), port, transport and
how/state are one finding listing every source in ``sources`` and every flow in ``flow_ids``.
The id is a hash of that key, so it is stable across runs and across captures of the same thing.
Severities follow the table in docs/findings.md.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..model import Evidence, Finding, Severity
from .flowrows import Columns, FlowRows

MAX_FRAMES = 64
MAX_STREAMS_IN_FILTER = 50


def finding_id(kind: str, *parts: object) -> str:
    digest = hashlib.sha256("|".join([kind, *map(str, parts)]).encode()).hexdigest()
    return f"{kind}-{digest[:12]}"


@dataclass
class Draft:
    """A finding before grouping; ``rows`` are the flow rows behind it (may be empty)."""

    kind: str
    severity: Severity
    component: str
    dst: str
    dst_port: int | None
    transport: str
    hostname: str | None
    message: str
    sources: list[str]
    src_port: int | None = None
    rule: str | None = None
    how: str | None = None
    state: str | None = None
    explanation: str | None = None
    rows: FlowRows | None = None
    evidence: tuple[Evidence, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[object, ...]:
        return (
            self.component,
            self.hostname or self.dst,
            self.dst_port,
            self.transport,
            self.how,
            self.state,
        )

    def build(self) -> Finding:
        rows = self.rows
        evidence = merge_evidence(self.evidence) if self.evidence else ()
        evidence = evidence or (flow_evidence(rows) if rows is not None else ())
        message = self.message
        if rows is None and self.extra.get("count", 1) > 1:
            message += f" Seen {self.extra['count']} times."
        flow_ids = tuple(sorted(rows.values("flow_id"))) if rows is not None else ()
        sources = tuple(sorted(set(self.sources), key=_addr_key))
        return Finding(
            id=finding_id(self.kind, *self.key(), *self.extra.get("id_parts", ())),
            kind=self.kind,
            severity=self.severity,
            component=self.component,
            src=sources[0] if sources else "",
            src_port=self.src_port if len(sources) == 1 else None,
            dst=self.dst,
            dst_port=self.dst_port,
            transport=self.transport,
            hostname=self.hostname,
            message=message,
            evidence=evidence,
            rule=self.rule,
            how=self.how,
            state=self.state,
            sources=sources,
            flow_ids=flow_ids,
            explanation=self.explanation,
            extra={k: v for k, v in self.extra.items() if k not in ("id_parts", "count")},
        )


@lru_cache(maxsize=1 << 16)
def _addr_key(text: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return (9, 0, text)
    return (ip.version, int(ip), text)


def merge_evidence(items: Iterable[Evidence]) -> tuple[Evidence, ...]:
    """One Evidence per file out of many (observation-based findings)."""
    items = tuple(items)
    if len(items) == 1 and _merged(items[0]):
        return items
    by_file: dict[str, list[Evidence]] = {}
    for ev in items:
        by_file.setdefault(ev.file, []).append(ev)
    out = []
    for file, evs in sorted(by_file.items()):
        frames = tuple(sorted({f for e in evs for f in e.frames}))[:MAX_FRAMES]
        fids = tuple(sorted({f for e in evs for f in e.flow_ids}))
        filters = list(dict.fromkeys(e.wireshark_filter for e in evs if e.wireshark_filter))
        out.append(
            Evidence(
                file,
                frames,
                min(e.first_ts for e in evs),
                max(e.last_ts for e in evs),
                fids,
                " || ".join(filters),
            )
        )
    return tuple(out)


def _merged(ev: Evidence) -> bool:
    """Is ``ev`` already what merging it alone gives (frames and flows sorted, unique, few)?"""
    return (
        isinstance(ev.frames, tuple)
        and isinstance(ev.flow_ids, tuple)
        and len(ev.frames) <= MAX_FRAMES
        and all(a < b for a, b in zip(ev.frames, ev.frames[1:], strict=False))
        and all(a < b for a, b in zip(ev.flow_ids, ev.flow_ids[1:], strict=False))
    )


def flow_evidence(rows: FlowRows | pd.DataFrame) -> tuple[Evidence, ...]:
    """One Evidence per input file: frames worth opening, time range, flow ids, a display filter."""
    if isinstance(rows, pd.DataFrame):
        rows = FlowRows.of(rows)
    if len(rows) == 1:
        return _one_flow_evidence(rows)
    if len(rows) <= _SMALL:
        return _few_flows_evidence(rows)
    return _many_flows_evidence(rows)


def _many_flows_evidence(rows: FlowRows) -> tuple[Evidence, ...]:
    files = rows.col("file")
    out = []
    for file in sorted(set(files[pd.notna(files)].tolist())):
        part = rows.take(np.flatnonzero(files == file)) if len(rows) > 1 else rows
        frames: list[int] = []
        head = np.argsort(part.col("first_ts"), kind="stable")[: MAX_FRAMES // 4]
        for first, keys in zip(part.col("first_frame")[head], part.col("key_frames")[head], strict=True):
            frames.append(int(first))
            frames += [int(k) for k in str(keys or "").split(",") if k.strip().isdigit()]
        out.append(
            Evidence(
                file=str(file),
                frames=tuple(sorted(set(frames)))[:MAX_FRAMES],
                first_ts=_nan_min(part.col("first_ts")),
                last_ts=-_nan_min(-part.col("last_ts")),
                flow_ids=tuple(np.sort(part.col("flow_id")).tolist()),
                wireshark_filter=display_filter(part),
            )
        )
    return tuple(out)


#: Up to this many flows, :func:`flow_evidence` works on Python lists (numpy's per-call cost
#: exceeds the work on a few values).
_SMALL = 32


def _few_flows_evidence(rows: FlowRows) -> tuple[Evidence, ...]:
    """:func:`flow_evidence` of a few flows, same result."""
    first_ts = [float(t) for t in rows.values("first_ts")]
    if any(t != t for t in first_ts):  # NaN: numpy's sort order, not Python's
        return _many_flows_evidence(rows)
    files = rows.values("file")
    out = []
    for file in sorted({f for f in files if not pd.isna(f)}):
        at = [i for i, f in enumerate(files) if f == file]
        part = rows if len(at) == len(files) else rows.take(np.asarray(at, dtype=np.int64))
        ts = [first_ts[i] for i in at]
        head = sorted(range(len(at)), key=ts.__getitem__)[: MAX_FRAMES // 4]
        first_frames, key_frames = part.values("first_frame"), part.values("key_frames")
        frames: list[int] = []
        for i in head:
            frames.append(int(first_frames[i]))
            frames += [int(k) for k in str(key_frames[i] or "").split(",") if k.strip().isdigit()]
        last = [v for v in map(float, part.values("last_ts")) if v == v]
        out.append(
            Evidence(
                file=str(file),
                frames=tuple(sorted(set(frames)))[:MAX_FRAMES],
                first_ts=min(ts),
                last_ts=max(last) if last else float("nan"),
                flow_ids=tuple(sorted(part.values("flow_id"))),
                wireshark_filter=display_filter(part),
            )
        )
    return tuple(out)


def _one_flow_evidence(rows: FlowRows) -> tuple[Evidence, ...]:
    """:func:`flow_evidence` of a single flow (most findings), without the array work."""
    cols, pos = rows.cols, int(rows.pos[0])
    file = cols("file")[pos]
    if pd.isna(file):
        return ()
    frames = [int(cols("first_frame")[pos])]
    frames += [int(k) for k in str(cols("key_frames")[pos] or "").split(",") if k.strip().isdigit()]
    fid = cols("flow_id")[pos]
    return (
        Evidence(
            file=str(file),
            frames=tuple(sorted(set(frames)))[:MAX_FRAMES],
            first_ts=float(cols("first_ts")[pos]),
            last_ts=float(cols("last_ts")[pos]),
            flow_ids=(fid.item() if hasattr(fid, "item") else fid,),
            wireshark_filter=_one_flow_filter(cols, pos),
        ),
    )


def _one_flow_filter(cols: Columns, pos: int) -> str:
    """:func:`display_filter` of a single flow."""
    proto = cols("transport")[pos]
    if proto in ("tcp", "udp") and cols.has(f"{proto}_stream"):
        stream = cols(f"{proto}_stream")[pos]
        if pd.notna(stream):
            return f"{proto}.stream eq {int(stream)}"
    return _address_filter([cols("resp_h")[pos]], [cols("orig_h")[pos]], {proto}, {int(cols("resp_p")[pos])})


def _nan_min(values: np.ndarray) -> float:
    """``Series.min()``: NaN skipped, NaN when nothing is left."""
    values = values.astype(float)
    values = values[~np.isnan(values)]
    return float(values.min()) if values.shape[0] else float("nan")


def display_filter(rows: FlowRows | pd.DataFrame) -> str:
    """``tcp.stream eq 3`` / ``tcp.stream in {3, 5}`` (Wireshark 4 wants the commas) when tshark's
    stream indexes are known, else an address and port filter."""
    if isinstance(rows, pd.DataFrame):
        rows = FlowRows.of(rows)
    transports = set(rows.values("transport"))
    if len(transports) == 1 and (proto := next(iter(transports))) in ("tcp", "udp"):
        name = f"{proto}_stream"
        if rows.has(name) and len(rows) <= MAX_STREAMS_IN_FILTER:
            streams = rows.values(name)
            if not any(pd.isna(s) for s in streams):
                values = sorted({int(s) for s in streams})
                if len(values) == 1:
                    return f"{proto}.stream eq {values[0]}"
                return f"{proto}.stream in {{{', '.join(map(str, values))}}}"
    return address_filter(rows)


def address_filter(rows: FlowRows | pd.DataFrame) -> str:
    if isinstance(rows, pd.DataFrame):
        rows = FlowRows.of(rows)
    return _address_filter(
        rows.values("resp_h"),
        rows.values("orig_h"),
        set(rows.values("transport")),
        {int(p) for p in rows.values("resp_p")},
    )


def _address_filter(dst: list[str], src: list[str], transports: set[str], port_set: set[int]) -> str:
    dsts, srcs = sorted(set(dst)), sorted(set(src))
    parts = (
        [_addr_clause(dsts, "dst"), _addr_clause(srcs, "src")]
        if len(srcs) <= 5
        else [_addr_clause(dsts, "dst")]
    )
    ports = sorted(port_set)
    if len(transports) == 1 and next(iter(transports)) in ("tcp", "udp") and len(ports) <= 5:
        proto = next(iter(transports))
        parts.append(" || ".join(f"{proto}.dstport == {p}" for p in ports))
    return " && ".join(f"({p})" if "||" in p else p for p in parts if p)


def _addr_clause(addrs: Iterable[str], side: str) -> str:
    clauses = []
    for addr in addrs:
        family = "ipv6" if ":" in addr else "ip"
        clauses.append(f"{family}.{side} == {addr}")
    return " || ".join(clauses)


def group(drafts: Iterable[Draft]) -> list[Draft]:
    """Merge drafts with the same kind and key: sources and rows add up, the worst severity wins."""
    merged: dict[tuple[object, ...], Draft] = {}
    for draft in drafts:
        key = (draft.kind, *draft.key(), *draft.extra.get("id_parts", ()))
        have = merged.get(key)
        if have is None:
            merged[key] = draft
            continue
        have.sources += draft.sources
        if draft.rows is not None:
            have.rows = draft.rows if have.rows is None else have.rows.concat(draft.rows)
        have.evidence += draft.evidence
        have.extra["count"] = have.extra.get("count", 1) + 1
        for name, value in draft.extra.items():
            if isinstance(value, list) and isinstance(have.extra.get(name), list):
                have.extra[name] = sorted(set(have.extra[name]) | set(value))
        if draft.severity.rank > have.severity.rank:
            have.severity = draft.severity
    return list(merged.values())


def order(findings: list[Finding]) -> list[Finding]:
    """Worst first, then kind and destination: the report order."""
    return sorted(
        findings, key=lambda f: (-f.severity.rank, f.kind, f.hostname or f.dst or "", f.dst_port or 0, f.id)
    )
