"""The DNS lookups behind a finding's name, added to its evidence.

A finding about ``example-exfil.net`` is proven by its flows *and* by the lookup that named the
address: the query and the answer, from the finding's own sources. They go into the finding's
evidence (and so into its evidence capture), with a ``dns.qry.name`` display filter.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
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


def _names(obs: DnsQuery | DnsResponse) -> set[str]:
    names = {obs.qname.lower().rstrip(".")}
    if isinstance(obs, DnsResponse):
        for ans in obs.answers:
            names.add(ans.name.lower().rstrip("."))
            if ans.rtype == "CNAME":
                names.add(ans.data.lower().rstrip("."))
    return names


_Lookups = dict[str, list[tuple[int, DnsQuery | DnsResponse]]]  # client -> (position, lookup)


def _index(observations: Iterable[Observation]) -> dict[str, _Lookups]:
    """name -> client (a query's source, a response's destination) -> its lookups of that name, with
    their position in the capture's observation order."""
    by_name: dict[str, _Lookups] = defaultdict(dict)
    for pos, obs in enumerate(observations):
        if isinstance(obs, DnsQuery | DnsResponse):
            client = obs.src if isinstance(obs, DnsQuery) else obs.dst
            for name in _names(obs):
                by_name[name].setdefault(client, []).append((pos, obs))
    return by_name


def _lookup_evidence(finding: Finding, by_client: _Lookups) -> list[Evidence]:
    hosts = set(finding.sources) or {finding.src}
    parts = [by_client[h] for h in hosts if h in by_client]
    if not parts:
        return []
    # one client's lookups only, in observation order (not every lookup of a popular name)
    mine = parts[0] if len(parts) == 1 else sorted((x for part in parts for x in part), key=lambda x: x[0])
    have = {(e.file, f) for e in finding.evidence for f in e.frames}
    by_file: dict[str, list[DnsQuery | DnsResponse]] = defaultdict(list)
    for _, obs in mine:
        if (obs.file, obs.frame) not in have:
            by_file[obs.file].append(obs)
    out = []
    for file, group in sorted(by_file.items()):
        group.sort(key=lambda o: o.frame)
        group = group[:MAX_DNS_FRAMES]
        flows = tuple(sorted({o.flow_id for o in group if o.flow_id is not None}))
        out.append(
            Evidence(
                file=file,
                frames=tuple(o.frame for o in group),
                first_ts=group[0].ts,
                last_ts=group[-1].ts,
                flow_ids=flows,
                wireshark_filter=f"dns.qry.name == {filter_string(finding.hostname or '')}",
            )
        )
    return out


def with_dns_evidence(findings: list[Finding], observations: Iterable[Observation]) -> list[Finding]:
    """Each finding with a hostname gets the DNS lookups of that name by its sources appended."""
    by_name = _index(observations)
    out = []
    for finding in findings:
        name = (finding.hostname or "").lower().rstrip(".")
        extra = _lookup_evidence(finding, by_name[name]) if name in by_name else []
        out.append(
            dataclasses.replace(finding, evidence=finding.evidence + tuple(extra)) if extra else finding
        )
    return out
