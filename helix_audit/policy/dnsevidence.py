"""The DNS lookups behind a finding's name, added to its evidence.

A finding about ``example-exfil.net`` is proven by its flows *and* by the lookup that named the
address: the query and the answer, from the finding's own sources. They go into the finding's
evidence (and so into its evidence capture), with a ``dns.qry.name`` display filter.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from ..model import DnsQuery, DnsResponse, Evidence, Finding, Observation

#: At most this many DNS frames per finding and file (retries of one name add little).
MAX_DNS_FRAMES = 16


def filter_string(text: str) -> str:
    """A Wireshark display-filter string literal: quotes and backslashes escaped, control
    characters as \\xNN, so a hostile name cannot break out of the filter."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


#: client -> (position, lookup, (file, frame)) per lookup
_Lookups = dict[str, list[tuple[int, DnsQuery | DnsResponse, tuple[str, int]]]]


def _index(observations: Iterable[Observation], wanted: set[str]) -> dict[str, _Lookups]:
    """name -> client (a query's source, a response's destination) -> its lookups of that name, with
    their position in the capture's observation order; for the ``wanted`` names only."""
    by_name: dict[str, _Lookups] = {}
    norm: dict[str, str] = {}  # names repeat: normalise each distinct text once
    for pos, obs in enumerate(observations):
        if isinstance(obs, DnsQuery):
            texts: Iterable[str] = (obs.qname,)
            client = obs.src
        elif isinstance(obs, DnsResponse):
            texts = _texts(obs)
            client = obs.dst
        else:
            continue
        for text in texts:
            name = norm.get(text)
            if name is None:
                name = norm[text] = text.lower().rstrip(".")
            if name in wanted:
                mine = by_name.setdefault(name, {}).setdefault(client, [])
                if not mine or mine[-1][0] != pos:  # once per lookup, however many names match
                    mine.append((pos, obs, (obs.file, obs.frame)))
    return by_name


def _texts(resp: DnsResponse) -> list[str]:
    """Every name a response carries: the question, each record's owner, each CNAME target."""
    out = [resp.qname]
    for ans in resp.answers:
        out.append(ans.name)
        if ans.rtype == "CNAME":
            out.append(ans.data)
    return out


def _lookup_evidence(finding: Finding, by_client: _Lookups, filt: str) -> list[Evidence]:
    """Per file, the first :data:`MAX_DNS_FRAMES` lookups (by frame, then capture order) of the
    finding's sources that its evidence does not list yet."""
    sources = finding.sources
    if len(sources) == 1:
        parts = [by_client[sources[0]]] if sources[0] in by_client else []
    else:
        hosts = set(sources) or {finding.src}
        parts = [by_client[h] for h in hosts if h in by_client]
    if not parts:
        return []
    have = {(e.file, f) for e in finding.evidence for f in e.frames}
    by_file: dict[str, list[tuple[int, DnsQuery | DnsResponse, tuple[str, int]]]] = {}
    for part in parts:
        for item in part:
            if item[2] not in have:
                by_file.setdefault(item[2][0], []).append(item)
    out = []
    for file, items in sorted(by_file.items()):
        group = [x[1] for x in heapq.nsmallest(MAX_DNS_FRAMES, items, key=_frame_position)]
        flows = tuple(sorted({o.flow_id for o in group if o.flow_id is not None}))
        frames = tuple(o.frame for o in group)
        out.append(Evidence(file, frames, group[0].ts, group[-1].ts, flows, filt))
    return out


def _frame_position(item: tuple[int, Observation, tuple[str, int]]) -> tuple[int, int]:
    return item[2][1], item[0]


def with_dns_evidence(findings: list[Finding], observations: Iterable[Observation]) -> list[Finding]:
    """Each finding with a hostname gets the DNS lookups of that name by its sources appended."""
    names = [(finding.hostname or "").lower().rstrip(".") for finding in findings]
    by_name = _index(observations, set(names))
    filters: dict[str, str] = {}  # one display filter per distinct hostname
    out = []
    for finding, name in zip(findings, names, strict=True):
        by_client = by_name.get(name)
        if by_client is None:
            out.append(finding)
            continue
        host = finding.hostname or ""
        filt = filters.get(host)
        if filt is None:
            filt = filters[host] = f"dns.qry.name == {filter_string(host)}"
        extra = _lookup_evidence(finding, by_client, filt)
        out.append(_with_evidence(finding, finding.evidence + tuple(extra)) if extra else finding)
    return out


def _with_evidence(finding: Finding, evidence: tuple[Evidence, ...]) -> Finding:
    """``dataclasses.replace(finding, evidence=evidence)``, without re-reading the field list."""
    return Finding(**{**vars(finding), "evidence": evidence})
