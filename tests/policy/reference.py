"""The plain (per-item) versions of paths that classification now runs in bulk, kept as the
reference the fast paths must agree with (tests only)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from urllib.parse import urlsplit

from helix_audit.model import (
    DnsQuery,
    DnsResponse,
    Evidence,
    Finding,
    HttpConnect,
    HttpRequest,
    Observation,
    TlsClientHello,
    WebSocketUpgrade,
)
from helix_audit.names import _ABSOLUTE, _url_port, clean_name, split_target
from helix_audit.policy.dnsevidence import MAX_DNS_FRAMES, filter_string
from helix_audit.policy.observed import Observed

_Lookups = dict[str, list[tuple[int, DnsQuery | DnsResponse, tuple[str, int]]]]


def with_dns_evidence(findings: list[Finding], observations: Iterable[Observation]) -> list[Finding]:
    """Each finding with a hostname gets the DNS lookups of that name by its sources appended."""
    names = [(f.hostname or "").lower().rstrip(".") for f in findings]
    by_name = _index(observations, set(names))
    out = []
    for finding, name in zip(findings, names, strict=True):
        by_client = by_name.get(name)
        if by_client is None:
            out.append(finding)
            continue
        filt = f"dns.qry.name == {filter_string(finding.hostname or '')}"
        extra = _lookup_evidence(finding, by_client, filt)
        out.append(
            Finding(**{**vars(finding), "evidence": finding.evidence + tuple(extra)}) if extra else finding
        )
    return out


def _index(observations: Iterable[Observation], wanted: set[str]) -> dict[str, _Lookups]:
    by_name: dict[str, _Lookups] = {}
    for pos, obs in enumerate(observations):
        if isinstance(obs, DnsQuery):
            texts, client = [obs.qname], obs.src
        elif isinstance(obs, DnsResponse):
            texts = [obs.qname]
            for ans in obs.answers:
                texts.append(ans.name)
                if ans.rtype == "CNAME":
                    texts.append(ans.data)
            client = obs.dst
        else:
            continue
        for text in texts:
            name = text.lower().rstrip(".")
            if name in wanted:
                mine = by_name.setdefault(name, {}).setdefault(client, [])
                if not mine or mine[-1][0] != pos:
                    mine.append((pos, obs, (obs.file, obs.frame)))
    return by_name


def _lookup_evidence(finding: Finding, by_client: _Lookups, filt: str) -> list[Evidence]:
    hosts = set(finding.sources) or {finding.src}
    parts = [by_client[h] for h in hosts if h in by_client]
    have = {(e.file, f) for e in finding.evidence for f in e.frames}
    by_file: dict[str, list[tuple[int, DnsQuery | DnsResponse, tuple[str, int]]]] = {}
    for part in parts:
        for item in part:
            if item[2] not in have:
                by_file.setdefault(item[2][0], []).append(item)
    out = []
    for file, items in sorted(by_file.items()):
        group = [x[1] for x in heapq.nsmallest(MAX_DNS_FRAMES, items, key=lambda x: (x[2][1], x[0]))]
        flows = tuple(sorted({o.flow_id for o in group if o.flow_id is not None}))
        out.append(Evidence(file, tuple(o.frame for o in group), group[0].ts, group[-1].ts, flows, filt))
    return out


class FlowNames:
    """The names one flow's own observations carry (first seen per source wins)."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}
        self.target_port: int | None = None
        self.proxied = False

    def add(self, source: str, name: str | None) -> None:
        if name:
            self.found.setdefault(source, name)


def direct_names(seen: Observed) -> dict[int, FlowNames]:
    out: dict[int, FlowNames] = {}
    wanted = (TlsClientHello, HttpRequest)
    for obs, fid in zip(seen.of(*wanted), seen.flow_ids(*wanted), strict=True):
        if fid is None:
            continue
        info = out.setdefault(fid, FlowNames())
        if isinstance(obs, TlsClientHello):
            info.add("sni", clean_name(obs.sni))
        elif isinstance(obs, HttpConnect):
            host, port = split_target(obs.target or obs.path)
            info.add("connect", host)
            info.proxied = True
            info.target_port = info.target_port or port or 443
        elif isinstance(obs, HttpRequest):
            if obs.path[:8].lower().startswith(_ABSOLUTE):
                parts = urlsplit(obs.path)
                info.add("absolute", clean_name(parts.hostname))
                info.proxied = True
                info.target_port = info.target_port or _url_port(parts)
            info.add("websocket" if isinstance(obs, WebSocketUpgrade) else "http_host", clean_name(obs.host))
    return out
