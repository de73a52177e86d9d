"""How a flow or a DNS lookup ended: succeeded, or failed and how.

Flow failures (vectorised over the flow table, plus the few observations that say more):
``proxy_denied`` (CONNECT answered >= 400), ``tls_alert`` (fatal TLS alert from the responder),
``icmp_unreachable`` (an ICMP error quotes the flow and no handshake completed), ``reset`` (REJ: SYN
answered by RST; or a completed handshake reset by the responder before it sent any byte, the
mark of a filtering middlebox), ``no_answer`` (SYNs never answered: S0 and kin).

Lookups: each DNS query is paired with its response (same endpoints, id and name); outcome ``ok``
(answers), ``nodata`` (NOERROR, no answers: not a failure), ``nxdomain``, ``servfail``, ``refused``,
another rcode in lower case, or ``dns_timeout`` (no response although the capture ran on for
:data:`DNS_TIMEOUT` seconds).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..model import DnsQuery, DnsResponse, HttpConnect, Observation, TlsAlert
from ..names import CleanNames
from .flowcodes import FlowCodes, objects_at
from .observed import Observed, observed

DNS_TIMEOUT = 2.0
FAILED_LOOKUPS = ("nxdomain", "servfail", "refused", "dns_timeout")
_NO_ANSWER_STATES = ("S0", "RSTOS0", "SH", "OTH")


@dataclass(frozen=True)
class FlowNotes:
    """What observations add per flow: CONNECT status, a fatal TLS alert from the responder."""

    connect_status: dict[int, int]
    tls_alert: dict[int, str]


def flow_notes(flows: pd.DataFrame, observations: Sequence[Observation] | Observed) -> FlowNotes:
    seen = observed(flows, observations)
    wanted = (HttpConnect, TlsAlert)
    status: dict[int, int] = {}
    alerts: dict[int, str] = {}
    fatal = [
        (obs, fid)
        for obs, fid in zip(seen.of(*wanted), seen.flow_ids(*wanted), strict=True)
        if fid is not None and isinstance(obs, TlsAlert) and obs.level.lower() in ("fatal", "2")
    ]
    resp_h = _responders(flows, [fid for _, fid in fatal])
    for obs, fid in zip(seen.of(*wanted), seen.flow_ids(*wanted), strict=True):
        if fid is None:
            continue
        if isinstance(obs, HttpConnect) and obs.status is not None:
            status.setdefault(fid, obs.status)
        elif isinstance(obs, TlsAlert) and obs.level.lower() in ("fatal", "2") and obs.src == resp_h.get(fid):
            alerts.setdefault(fid, obs.description or "fatal")
    return FlowNotes(status, alerts)


def _responders(flows: pd.DataFrame, fids: list[int]) -> dict[int, str]:
    """flow id -> responder address, for the given flows only."""
    if not fids:
        return {}
    rows = pd.Index(flows["flow_id"].to_numpy()).get_indexer(fids)
    found = rows >= 0
    resp = objects_at(flows["resp_h"], rows[found]).tolist()
    return dict(zip([f for f, ok in zip(fids, found.tolist(), strict=True) if ok], resp, strict=True))


def failure_how(flows: pd.DataFrame, notes: FlowNotes, codes: FlowCodes | None = None) -> np.ndarray:
    """Per flow: None (no failure seen) or how it failed. ``codes``: the table's
    :class:`FlowCodes`, when already made."""
    codes = codes if codes is not None else FlowCodes(flows)
    how = np.empty(len(flows), dtype=object)  # None in every cell
    tcp = codes.equals("transport", "tcp")
    completed = codes.equals("handshake", "completed")
    no_answer = tcp & (
        codes.equals("conn_state", *_NO_ANSWER_STATES) | codes.equals("handshake", "no_answer")
    )
    no_answer &= flows["synack"].to_numpy() == 0
    how[no_answer] = "no_answer"
    late_reset = completed & (flows["resp_rst"].to_numpy() > 0) & (flows["resp_bytes"].to_numpy() == 0)
    late_reset &= flows["orig_bytes"].to_numpy() > 0
    how[tcp & (codes.equals("conn_state", "REJ") | late_reset)] = "reset"
    how[(flows["icmp_errors"].to_numpy() > 0) & ~completed] = "icmp_unreachable"
    fids = flows["flow_id"].to_numpy()
    for table, label in ((notes.tls_alert, "tls_alert"), (notes.connect_status, "proxy_denied")):
        if table:
            bad = {f for f, v in table.items() if label == "tls_alert" or int(v) >= 400}
            how[np.isin(fids, list(bad))] = label
    return how


def succeeded(flows: pd.DataFrame, how: np.ndarray, codes: FlowCodes | None = None) -> np.ndarray:
    """Handshake completed (TCP) or the responder answered (other transports), and no failure."""
    codes = codes if codes is not None else FlowCodes(flows)
    tcp = codes.equals("transport", "tcp")
    ok = np.where(tcp, codes.equals("handshake", "completed"), flows["resp_pkts"].to_numpy() > 0)
    return ok & pd.isna(how)


class Lookup(NamedTuple):
    """One plain-DNS query, its response (None: unanswered), outcome, flow and clean name."""

    query: DnsQuery
    response: DnsResponse | None
    outcome: str
    flow_id: int | None
    name: str


class Lookups(list[Lookup]):
    """:func:`lookups`' list, with each lookup's client, name, outcome and query time as lists too
    (``srcs``, ``names``, ``outcomes``, ``times``): read while each query is at hand, they spare a
    reader another pass over 10^4-10^5 query objects (a copy or slice is a plain list, without
    them)."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.names: list[str] = []
        self.outcomes: list[str] = []
        self.times: list[float] = []


def lookups(
    flows: pd.DataFrame, observations: Sequence[Observation] | Observed, capture_end: float
) -> Lookups:
    """Every plain-DNS query with its response (first one after it) and outcome."""
    seen = observed(flows, observations)
    answers: dict[tuple[object, ...], list[DnsResponse]] = {}
    names = CleanNames()  # names repeat, ~10^5 of them
    for obs in seen.of(DnsResponse):
        if obs.protocol == "dns":
            key = (obs.dst, obs.dport, obs.src, obs.sport, obs.id, names[obs.qname])
            found = answers.get(key)
            if found is None:
                answers[key] = [obs]
            else:
                found.append(obs)
    sorted_times: dict[int, list[float] | None] = {}  # per response list: its times if ascending
    out = Lookups()
    add, srcs, names_of, outcomes = out.append, out.srcs.append, out.names.append, out.outcomes.append
    times = out.times.append
    new = tuple.__new__  # Lookup(...) without the NamedTuple's Python-level __new__: 10^4 lookups
    ids: list[int | None] | None = None  # :meth:`Observed.flow_ids`, asked only if a query has none
    for i, query in enumerate(seen.of(DnsQuery)):
        qname = query.qname
        if query.protocol != "dns" or not qname:
            continue
        fid = query.flow_id  # read here, not in a pass of its own over 10^4-10^5 queries
        if fid is None:
            ids = seen.flow_ids(DnsQuery) if ids is None else ids
            fid = ids[i]
        name = names[qname] or ""
        src, ts = query.src, query.ts
        resps = answers.get((src, query.sport, query.dst, query.dport, query.id, name))
        if resps is None:
            resp = None
        elif len(resps) == 1:  # the usual exchange: one query, one response
            resp = resps[0] if resps[0].ts >= ts else None
        else:
            resp = _first_after(resps, ts, sorted_times)
        outcome = _outcome(query, resp, capture_end)
        add(new(Lookup, (query, resp, outcome, fid, name)))
        srcs(src)
        names_of(name)
        outcomes(outcome)
        times(ts)
    return out


def _first_after(
    resps: list[DnsResponse], ts: float, sorted_times: dict[int, list[float] | None]
) -> DnsResponse | None:
    """The first response (capture order) at or after ``ts``; by bisection when their times ascend
    (checked once per response list: ``sorted_times``, keyed by the list's id)."""
    if id(resps) not in sorted_times:
        times = [r.ts for r in resps]
        ordered = all(a <= b for a, b in zip(times, times[1:], strict=False))
        sorted_times[id(resps)] = times if ordered else None
    times_or_none = sorted_times[id(resps)]
    if times_or_none is not None:
        i = bisect_left(times_or_none, ts)
        return resps[i] if i < len(resps) else None
    return next((r for r in resps if r.ts >= ts), None)


def _outcome(query: DnsQuery, resp: DnsResponse | None, capture_end: float) -> str:
    if resp is None:
        return "dns_timeout" if capture_end - query.ts >= DNS_TIMEOUT else "pending"
    if resp.rcode == "NOERROR":
        return "ok" if resp.answers else "nodata"
    return resp.rcode.lower()
