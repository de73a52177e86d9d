"""The extractor: picks the few packets of each batch that need a parser and turns them into observations.

Selection is vectorised over the batch (numpy masks, see :func:`select`); Python runs only on the
chosen rows: UDP/TCP on the DNS ports (53, 5353 mDNS, 5355 LLMNR), QUIC long-header Initials (UDP 443
or a QUIC v1/v2/draft version field), the SYNs and first payload bytes of every TCP direction still
being parsed, and any later TCP payload that starts like an HTTP head (keep-alive requests).

TCP directions are rebuilt from their start (:mod:`.reassembly`) and parsed by what their first
bytes look like (TLS records, HTTP heads, DNS with length prefixes on a DNS port), through CONNECT
tunnels into the TLS inside. Request/response pairs are matched per flow in order.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..decode.interface import ST_OK, PacketColumns
from ..flows.interface import PacketFlows
from ..model import Anomaly, DnsQuery, DnsResponse, Observation
from . import dns, http, quic
from .interface import NeedData, ParseError
from .streams import Direction, HttpPairing, Meta, parse_direction, parse_standalone
from .quicconn import QuicTracker

DNS_PORTS = (53, 5353, 5355)
QUIC_PORT = 443
MAX_ROWS_PER_DIRECTION = 64  # payload rows per direction and batch handed to Python
TCP, UDP = 6, 17
SYN = 0x02
_QUIC_VERSIONS = np.array(
    [quic.VERSION_1, quic.VERSION_2] + [0xFF000000 + d for d in range(23, 33)], dtype=np.uint32
)
_HTTP_FIRST = np.frombuffer(b"GPHDOCTMLUS", dtype=np.uint8)


def _gather(cols: PacketColumns, rows: np.ndarray, nbytes: int) -> np.ndarray:
    """First ``nbytes`` payload bytes of ``rows`` as a (len(rows), nbytes) uint8 array (0 past the end)."""
    off = cols.pay_off[rows][:, None] + np.arange(nbytes)[None, :]
    inside = np.arange(nbytes)[None, :] < cols.pay_len[rows][:, None]
    got = cols.data[np.clip(off, 0, max(len(cols.data) - 1, 0))] if len(cols.data) else np.zeros_like(off)
    return np.where(inside, got, 0).astype(np.uint8)


def _quic_mask(cols: PacketColumns, udp: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(udp & (cols.pay_len >= 7))
    out = np.zeros(len(cols), dtype=bool)
    if rows.size == 0:
        return out
    head = _gather(cols, rows, 5)
    version = head[:, 1:5].astype(np.uint32) @ np.array([1 << 24, 1 << 16, 1 << 8, 1], dtype=np.uint32)
    known = np.isin(version, _QUIC_VERSIONS)
    v2 = version == quic.VERSION_2
    kind = head[:, 0] & 0x30
    initial_or_retry = np.where(v2, (kind == 0x10) | (kind == 0x00), (kind == 0x00) | (kind == 0x30))
    initial = ((head[:, 0] & 0x80) != 0) & initial_or_retry
    port = (cols.sport[rows] == QUIC_PORT) | (cols.dport[rows] == QUIC_PORT)
    out[rows[initial & (known | (port & (version != 0)))]] = True
    return out


def _http_prefix_mask(cols: PacketColumns, tcp_pay: np.ndarray) -> np.ndarray:
    from .http import PREFIXES

    out = np.zeros(len(cols), dtype=bool)
    rows = np.flatnonzero(tcp_pay)
    if rows.size == 0:
        return out
    first = cols.data[cols.pay_off[rows]] if len(cols.data) else np.zeros(rows.size, np.uint8)
    rows = rows[np.isin(first, _HTTP_FIRST)]
    if rows.size == 0:
        return out
    head = _gather(cols, rows, 8)
    hit = np.zeros(rows.size, dtype=bool)
    for prefix in PREFIXES:
        p = np.frombuffer(prefix[:8], dtype=np.uint8)
        hit |= (head[:, : p.size] == p).all(axis=1) & (cols.pay_len[rows] >= p.size)
    out[rows[hit]] = True
    return out


def _first_rows(keys: np.ndarray, rows: np.ndarray, limit: int) -> np.ndarray:
    """The first ``limit`` of ``rows`` for each distinct key (rows keep batch order)."""
    if rows.size == 0:
        return rows
    k = keys[rows]
    order = np.argsort(k, kind="stable")
    ks = k[order]
    starts = np.r_[True, ks[1:] != ks[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(ks.size), 0))
    keep = order[(np.arange(ks.size) - first) < limit]
    return np.sort(rows[keep])


def select(cols: PacketColumns, pf: PacketFlows, done: np.ndarray) -> tuple[np.ndarray, ...]:
    """Row indices (batch order) for UDP DNS, QUIC Initials and TCP; ``done`` are finished direction keys."""
    ok = (cols.status == ST_OK) & (pf.flow_id >= 0)
    has_pay = cols.pay_len > 0
    udp = ok & (cols.proto == UDP) & has_pay
    tcp = ok & (cols.proto == TCP)
    dns_port = np.isin(cols.sport, DNS_PORTS) | np.isin(cols.dport, DNS_PORTS)
    udp_dns = udp & dns_port
    quic_rows = _quic_mask(cols, udp & ~dns_port)
    keys = pf.flow_id.astype(np.int64) * 2 + pf.from_a.astype(np.int64)
    live = tcp & ~np.isin(keys, done)
    syn = live & ((cols.tcp_flags & SYN) != 0)
    payload = _first_rows(keys, np.flatnonzero(live & has_pay), MAX_ROWS_PER_DIRECTION)
    later = np.flatnonzero(_http_prefix_mask(cols, tcp & has_pay & ~live))
    tcp_rows = np.union1d(np.union1d(np.flatnonzero(syn), payload), later)
    return np.flatnonzero(udp_dns), np.flatnonzero(quic_rows), tcp_rows


class Extractor:
    """Feed every batch with its flows; ``finish`` returns (observations, anomalies)."""

    def __init__(self, limit: int = 64 * 1024, dns_tcp_ports: tuple[int, ...] = DNS_PORTS) -> None:
        self.limit = limit
        self.dns_tcp_ports = dns_tcp_ports
        self.observations: list[Observation] = []
        self.anomalies: list[Anomaly] = []
        self._dirs: dict[tuple[int, bool], Direction] = {}
        self._done: set[int] = set()
        self._done_arr = np.zeros(0, dtype=np.int64)
        self._http = HttpPairing(self.observations)
        self._quic = QuicTracker(self.observations, self.anomalies)

    def add(self, cols: PacketColumns, pf: PacketFlows) -> None:
        if len(self._done) != self._done_arr.size:
            self._done_arr = np.fromiter(self._done, dtype=np.int64, count=len(self._done))
        udp_rows, quic_rows, tcp_rows = select(cols, pf, self._done_arr)
        for i in udp_rows.tolist():
            self._udp_dns(cols, pf, i)
        for i in quic_rows.tolist():
            self._quic.add(cols.payload(i), _meta(cols, pf, i, "udp"))
        for i in tcp_rows.tolist():
            self._tcp(cols, pf, i)

    def finish(self) -> tuple[list[Observation], list[Anomaly]]:
        for d in self._dirs.values():
            self.anomalies.extend(d.leftover_anomalies())
        self.anomalies.extend(self._quic.leftover_anomalies())
        self._dirs.clear()
        obs = sorted(self.observations, key=lambda o: (o.file, o.frame))
        return obs, list(self.anomalies)

    # ---------------------------------------------------------------------------------------------

    def _udp_dns(self, cols: PacketColumns, pf: PacketFlows, i: int) -> None:
        meta = _meta(cols, pf, i, "udp")
        try:
            msg = dns.parse_message(_udp_payload(cols, i))
        except NeedData as exc:
            self.anomalies.append(Anomaly("dns_truncated", meta.file, meta.frame, str(exc)))
            return
        except ParseError as exc:
            self.anomalies.append(Anomaly("dns_malformed", meta.file, meta.frame, str(exc)))
            return
        self.observations.append(dns_observation(msg, meta, (meta.frame,)))

    def _tcp(self, cols: PacketColumns, pf: PacketFlows, i: int) -> None:
        key = (int(pf.flow_id[i]), bool(pf.from_a[i]))
        d = self._dirs.get(key)
        if d is None:
            meta = _meta(cols, pf, i, "tcp")
            dns_port = meta.sport in self.dns_tcp_ports or meta.dport in self.dns_tcp_ports
            d = self._dirs[key] = Direction(meta, self.limit, dns_port)
            d.peer = self._dirs.get((key[0], not key[1]))
            if d.peer is not None:
                d.peer.peer = d
        flags, frame = int(cols.tcp_flags[i]), int(cols.frame[i])
        if d.done:
            payload = cols.payload(i)
            if d.accepts_standalone and http.starts_like_http(payload):
                self._http.handle(parse_standalone(d, payload, frame, _ts(cols, i), self.anomalies))
            return
        d.add_segment(int(cols.seq[i]), flags, cols.payload(i), frame, _ts(cols, i))
        for obs in parse_direction(d, self.anomalies):
            self._http.handle(obs)
        if d.done:
            self._done.add(key[0] * 2 + int(key[1]))


def _udp_payload(cols: PacketColumns, i: int) -> bytes:
    """The payload bounded by the UDP length field too (tshark trusts it over the IP length)."""
    payload = cols.payload(i)
    head = cols.l4(i)[:8]
    if len(head) == 8:
        udp_len = int.from_bytes(head[4:6], "big")
        if 8 <= udp_len < 8 + len(payload):
            return payload[: udp_len - 8]
    return payload


def _ts(cols: PacketColumns, i: int) -> float:
    return int(cols.ts_ns[i]) / 1e9


def _meta(cols: PacketColumns, pf: PacketFlows, i: int, transport: str) -> Meta:
    from ..decode.interface import addr_to_str

    return Meta(
        file=cols.source,
        frame=int(cols.frame[i]),
        ts=_ts(cols, i),
        src=addr_to_str(cols.src_hi[i], cols.src_lo[i]),
        sport=int(cols.sport[i]),
        dst=addr_to_str(cols.dst_hi[i], cols.dst_lo[i]),
        dport=int(cols.dport[i]),
        transport=transport,
        flow_id=int(pf.flow_id[i]),
    )


def dns_protocol(sport: int, dport: int) -> str:
    if 5353 in (sport, dport):
        return "mdns"
    return "llmnr" if 5355 in (sport, dport) else "dns"


def dns_observation(msg: dns.DnsMessage, meta: Meta, frames: tuple[int, ...]) -> Observation:
    names = tuple(n for n, _ in msg.questions)
    types = tuple(t for _, t in msg.questions)
    head = meta.head(frames)
    proto = dns_protocol(meta.sport, meta.dport)
    first_name, first_type = (names[0], types[0]) if names else ("", "")
    if msg.qr:
        return DnsResponse(
            "dns_response", **head, id=msg.id, qname=first_name, qtype=first_type,
            rcode=msg.rcode, answers=msg.answers, protocol=proto,
        )  # fmt: skip
    return DnsQuery(
        "dns_query", **head, id=msg.id, qname=first_name, qtype=first_type,
        qtypes=types, qnames=names, protocol=proto,
    )  # fmt: skip


__all__ = ["Extractor", "select", "dns_observation", "replace"]
