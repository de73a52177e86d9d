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

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np

from ..decode.interface import ST_OK, PacketColumns, addr_to_str
from ..flows.interface import PacketFlows
from ..gcpause import paused_gc
from ..model import Anomaly, DnsQuery, DnsResponse, Observation
from . import dns, quic
from .build import build
from .interface import NeedData, ParseError
from .prefilter import HEAD, unparsed_keys
from .quicconn import QuicTracker
from .streams import Direction, HttpPairing, Meta, parse_direction, parse_standalone

DNS_PORTS = (53, 5353, 5355)
QUIC_PORT = 443
MAX_ROWS_PER_DIRECTION = 256  # payload rows per direction and batch handed to Python (and ``limit`` bytes)
#: Rows of a direction are handed over in rounds: most directions are finished (TLS application
#: data seen, protocol unknown) after their first few segments, so later rounds skip them.
PHASES = ((0, 4), (4, 16), (16, MAX_ROWS_PER_DIRECTION))
TCP, UDP = 6, 17
SYN = 0x02
_QUIC_VERSIONS = np.array(
    [quic.VERSION_1, quic.VERSION_2] + [0xFF000000 + d for d in range(23, 33)], dtype=np.uint32
)
_HTTP_FIRST = np.frombuffer(b"GPHDOCTMLUS", dtype=np.uint8)
P = ParamSpec("P")
R = TypeVar("R")


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


def _reassembled_quic(cols: PacketColumns, udp: np.ndarray) -> np.ndarray:
    """Rows whose UDP payload came from IP reassembly (not in ``data``): tested one by one, they are few."""
    out = []
    for i in cols.reassembled:
        payload = cols.payload(i) if udp[i] else b""
        if len(payload) >= 5 and quic.is_quic_long_header(payload[0], int.from_bytes(payload[1:5], "big")):
            out.append(i)
    return np.array(out, dtype=np.int64)


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


def _group_order(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` sorted by key (batch order kept within a key), and a mask of each key's first row."""
    order = rows[np.argsort(keys[rows], kind="stable")]
    ks = keys[order]
    return order, np.r_[True, ks[1:] != ks[:-1]] if ks.size else np.zeros(0, dtype=bool)


def _within_budget(cols: PacketColumns, keys: np.ndarray, rows: np.ndarray, limit: int) -> np.ndarray:
    """Per row of ``rows`` (in key order): (rank, payload bytes before it in its direction, this batch)."""
    order, starts = _group_order(keys, rows)
    idx = np.arange(order.size)
    first = np.maximum.accumulate(np.where(starts, idx, 0)) if order.size else idx
    csum = np.cumsum(cols.pay_len[order]) - cols.pay_len[order]
    before = csum - csum[first] if order.size else csum
    keep = ((idx - first) < MAX_ROWS_PER_DIRECTION) & (before < limit)
    rank = idx - first
    return np.stack([order, rank, keep.astype(np.int64)]) if order.size else np.zeros((3, 0), np.int64)


def _continuations(keys: np.ndarray, pay_rows: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """For each row of ``heads``, the next payload row of the same direction (a head split in two)."""
    if heads.size == 0:
        return np.zeros(0, dtype=np.int64)
    order, starts = _group_order(keys, pay_rows)
    pos = np.flatnonzero(np.isin(order, heads))
    nxt = pos + 1
    ok = nxt < order.size
    nxt = nxt[ok]
    return np.asarray(order[nxt[~starts[nxt]]], dtype=np.int64)


def _gc_paused(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` with the cyclic garbage collector paused.

    A batch allocates ~10^5 short-lived parser objects while ~10^5 observations stay alive, so the
    collector's runs (which walk every live object) cost a tenth of the stage; the few cycles a
    batch leaves (direction peers) are collected after it.
    """

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc():
            return method(*args, **kwargs)

    return run


@dataclass(frozen=True, eq=False)
class Selection:
    """The rows of one batch worth Python's time (indices in batch order)."""

    udp_dns: np.ndarray
    quic: np.ndarray
    keys: np.ndarray  # per row of the batch: flow_id * 2 + from_a
    syn: np.ndarray  # SYNs of directions still parsed
    payload: np.ndarray  # payload rows of directions still parsed, within the per-batch budget
    rank: np.ndarray  # per payload row: its position within its direction in this batch
    over: np.ndarray  # keys of directions with payload past that budget in this batch
    http: np.ndarray  # TCP payload rows that start like an HTTP head, and the row after each


def is_done(done: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``done[keys]`` where keys fall inside the mask, False elsewhere (negative keys included)."""
    inside = (keys >= 0) & (keys < done.size)
    out = np.zeros(keys.shape, dtype=bool)
    out[inside] = done[keys[inside]]
    return out


def select(
    cols: PacketColumns,
    pf: PacketFlows,
    done: np.ndarray,
    dns_ports: tuple[int, ...] = DNS_PORTS,
    limit: int = 64 * 1024,
) -> Selection:
    """Vectorised choice of rows; ``done[key]`` marks directions no longer parsed."""
    ok = (cols.status == ST_OK) & (pf.flow_id >= 0)
    has_pay = cols.pay_len > 0
    udp = ok & (cols.proto == UDP) & has_pay
    tcp = ok & (cols.proto == TCP)
    dns_port = np.isin(cols.sport, dns_ports) | np.isin(cols.dport, dns_ports)
    keys = pf.flow_id.astype(np.int64) * 2 + pf.from_a.astype(np.int64)
    live = tcp & ~is_done(done, keys)
    order, rank, keep = _within_budget(cols, keys, np.flatnonzero(live & has_pay), limit)
    keep = keep.astype(bool)
    heads = np.flatnonzero(_http_prefix_mask(cols, tcp & has_pay))
    return Selection(
        udp_dns=np.flatnonzero(udp & dns_port),
        quic=np.union1d(
            np.flatnonzero(_quic_mask(cols, udp & ~dns_port)), _reassembled_quic(cols, udp & ~dns_port)
        ),
        keys=keys,
        syn=np.flatnonzero(live & ((cols.tcp_flags & SYN) != 0)),
        payload=order[keep],
        rank=rank[keep],
        over=np.unique(keys[order[~keep]]),
        http=np.union1d(heads, _continuations(keys, np.flatnonzero(tcp & has_pay), heads)),
    )


class Extractor:
    """Feed every batch with its flows; ``finish`` returns (observations, anomalies).

    ``dns_ports`` are the ports read as DNS (UDP and TCP): add ports to mirror a tshark decode-as.
    """

    def __init__(self, limit: int = 64 * 1024, dns_ports: tuple[int, ...] = DNS_PORTS) -> None:
        self.limit = limit
        self.dns_ports = tuple(dns_ports)
        self.observations: list[Observation] = []
        self.anomalies: list[Anomaly] = []
        self._dirs: dict[tuple[int, bool], Direction] = {}
        self._done = np.zeros(1024, dtype=bool)  # by direction key: no longer parsed
        self._http = HttpPairing(self.observations)
        self._quic = QuicTracker(self.observations, self.anomalies)

    def _mark_done(self, key: int) -> None:
        if key >= self._done.size:
            self._done = np.concatenate([self._done, np.zeros(max(key + 1, 2 * self._done.size), dtype=bool)])
        self._done[key] = True

    def _finish_unparsed(self, cols: PacketColumns, pf: PacketFlows) -> None:
        """Mark done, without Python per row, the new directions whose first segment ends their parsing."""
        if self.limit < HEAD:
            return
        ok = (cols.status == ST_OK) & (pf.flow_id >= 0) & (cols.proto == TCP)
        keys = pf.flow_id.astype(np.int64) * 2 + pf.from_a.astype(np.int64)
        found = unparsed_keys(cols, keys, ok & ~is_done(self._done, keys), self.dns_ports)
        dirs = self._dirs
        fresh = [k for k in found.tolist() if (k >> 1, bool(k & 1)) not in dirs]
        if fresh:
            self._mark_done(max(fresh))
            self._done[fresh] = True
            self._skipped(fresh)

    def _skipped(self, keys: list[int]) -> None:
        """Hook: direction keys finished by :meth:`_finish_unparsed` (as if parsed one row at a time)."""

    @_gc_paused
    def add(self, cols: PacketColumns, pf: PacketFlows) -> None:
        self._finish_unparsed(cols, pf)
        sel = select(cols, pf, self._done, self.dns_ports, self.limit)
        rows = sel.udp_dns
        metas, payloads = _metas(cols, pf, rows, "udp"), _udp_payloads(cols, rows)
        for i, meta, payload in zip(rows.tolist(), metas, payloads, strict=True):
            try:
                self._udp_dns(meta, payload)
            except Exception as exc:  # a parser bug must not end the audit: it becomes an anomaly
                self._internal_error(cols, i, exc)
        for i in sel.quic.tolist():
            try:
                self._quic.add(cols.payload(i), _meta(cols, pf, i, "udp"))
            except Exception as exc:
                self._internal_error(cols, i, exc)
        seen = np.zeros(len(cols), dtype=bool)
        for lo, hi in PHASES:
            rows = np.sort(sel.payload[(sel.rank >= lo) & (sel.rank < hi)])
            if lo == 0:
                rows = np.union1d(rows, sel.syn)
            rows = rows[~is_done(self._done, sel.keys[rows])]
            seen[rows] = True
            self._tcp_rows(cols, pf, rows)
        for key in sel.over.tolist():  # bytes went past what this batch let us rebuild: stop here
            d = self._dirs.get((key >> 1, bool(key & 1)))
            if d is not None and not d.done:
                d.finish()
                self._mark_done(key)
                if not d.accepts_standalone:
                    self._forget(d, (key >> 1, bool(key & 1)))
        self._tcp_rows(cols, pf, sel.http[~seen[sel.http]])

    @_gc_paused
    def finish(self) -> tuple[list[Observation], list[Anomaly]]:
        for d in self._dirs.values():
            self.anomalies.extend(d.leftover_anomalies())
        self.anomalies.extend(self._quic.leftover_anomalies())
        self._dirs.clear()
        self._http.pair()
        obs = sorted(self.observations, key=lambda o: (o.file, o.frame))
        return obs, list(self.anomalies)

    # ---------------------------------------------------------------------------------------------

    def _udp_dns(self, meta: Meta, payload: bytes) -> None:
        try:
            msg = dns.parse_message(payload)
        except NeedData as exc:
            self.anomalies.append(Anomaly("dns_truncated", meta.file, meta.frame, str(exc)))
            return
        except ParseError as exc:
            self.anomalies.append(Anomaly("dns_malformed", meta.file, meta.frame, str(exc)))
            return
        self.observations.append(dns_observation(msg, meta, (meta.frame,)))

    def _tcp_rows(self, cols: PacketColumns, pf: PacketFlows, rows: np.ndarray) -> None:
        columns = (pf.flow_id, pf.from_a, cols.seq, cols.tcp_flags, cols.frame, cols.ts_ns)
        for i, payload, fid, from_a, seq, flags, frame, ts_ns in zip(
            rows.tolist(), _payloads(cols, rows), *(c[rows].tolist() for c in columns), strict=True
        ):
            try:
                self._tcp(cols, pf, i, (fid, from_a), seq, flags, frame, ts_ns / 1e9, payload)
            except Exception as exc:  # a parser bug must not end the audit: it becomes an anomaly
                self._internal_error(cols, i, exc)
                self._mark_done(fid * 2 + int(from_a))

    def _internal_error(self, cols: PacketColumns, i: int, exc: Exception) -> None:
        detail = f"{type(exc).__name__}: {exc}"
        self.anomalies.append(Anomaly("protocol_parser_error", cols.source, int(cols.frame[i]), detail))

    def _tcp(
        self, cols: PacketColumns, pf: PacketFlows, i: int, key: tuple[int, bool], seq: int, flags: int,
        frame: int, ts: float, payload: bytes,
    ) -> None:  # fmt: skip
        d = self._dirs.get(key)
        if d is None:
            k = key[0] * 2 + int(key[1])
            if k < self._done.size and self._done[k]:
                return  # finished and forgotten: nothing more to read here
            d = self._new_direction(cols, pf, i, key)
        if d.done:
            if d.accepts_standalone:
                self._http.handle(parse_standalone(d, seq, payload, frame, ts, self.anomalies))
            return
        d.add_segment(seq, flags, payload, frame, ts)
        for obs in parse_direction(d, self.anomalies):
            self._http.handle(obs)
        if d.done:
            self._mark_done(key[0] * 2 + int(key[1]))
            if not d.accepts_standalone:
                self._forget(d, key)  # bounded memory: only directions still useful stay

    def _forget(self, d: Direction, key: tuple[int, bool]) -> None:
        """Drop a finished direction; its peer may still read its ``tunnel`` flag, so only the
        back-reference goes (no peer cycle left for the garbage collector, which is paused)."""
        d.peer = None
        del self._dirs[key]

    def _new_direction(
        self, cols: PacketColumns, pf: PacketFlows, i: int, key: tuple[int, bool]
    ) -> Direction:
        meta = _meta(cols, pf, i, "tcp")
        dns_port = meta.sport in self.dns_ports or meta.dport in self.dns_ports
        d = self._dirs[key] = Direction(meta, self.limit, dns_port)
        d.peer = self._dirs.get((key[0], not key[1]))
        if d.peer is not None:
            d.peer.peer = d
        return d


def _udp_payload(cols: PacketColumns, i: int) -> bytes:
    """The payload bounded by the UDP length field too (tshark trusts it over the IP length)."""
    payload = cols.payload(i)
    head = cols.l4(i)[:8]
    if len(head) == 8:
        udp_len = int.from_bytes(head[4:6], "big")
        if 8 <= udp_len < 8 + len(payload):
            return payload[: udp_len - 8]
    return payload


def _payloads(cols: PacketColumns, rows: np.ndarray, cut: np.ndarray | None = None) -> list[bytes]:
    """``cols.payload(i)`` for every row (the first ``cut[k]`` bytes when given), offsets read in bulk."""
    offs = cols.pay_off[rows].tolist()
    lens = (cols.pay_len[rows] if cut is None else cut).tolist()
    data, special = cols.data, cols.reassembled
    out = []
    for i, off, n in zip(rows.tolist(), offs, lens, strict=True):
        if special and i in special:
            out.append(cols.payload(i) if cut is None else _udp_payload(cols, i))
        else:
            out.append(bytes(data[off : off + n]) if off >= 0 else b"")
    return out


def _udp_payloads(cols: PacketColumns, rows: np.ndarray) -> list[bytes]:
    """:func:`_udp_payload` of every row: the UDP length fields read in one numpy step."""
    pay_off, pay_len, l4_off = cols.pay_off[rows], cols.pay_len[rows], cols.l4_off[rows]
    ok = (l4_off >= 0) & (pay_off >= 0) & (pay_off + pay_len - l4_off >= 8)
    if cols.data.size < 6:
        ok[:] = False
    at = np.where(ok, l4_off, 0)
    udp_len = np.zeros(rows.size, np.int64) if not ok.any() else (
        cols.data[at + 4].astype(np.int64) << 8 | cols.data[at + 5].astype(np.int64)
    )  # fmt: skip
    short = ok & (udp_len >= 8) & (udp_len < 8 + pay_len)
    return _payloads(cols, rows, np.where(short, udp_len - 8, pay_len))


def _metas(cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, transport: str) -> list[Meta]:
    """:func:`_meta` of every row, the columns read in bulk."""
    columns = (cols.frame, cols.ts_ns, cols.src_hi, cols.src_lo, cols.sport, cols.dst_hi, cols.dst_lo,
               cols.dport, pf.flow_id)  # fmt: skip
    source = cols.source
    return [
        Meta(source, frame, ts_ns / 1e9, _addr(sh, sl), sport, _addr(dh, dl), dport, transport, fid)
        for frame, ts_ns, sh, sl, sport, dh, dl, dport, fid in zip(
            *(c[rows].tolist() for c in columns), strict=True
        )
    ]


def _ts(cols: PacketColumns, i: int) -> float:
    return int(cols.ts_ns[i]) / 1e9


_ADDR_CACHE: dict[tuple[int, int], str] = {}


def _addr(hi: int, lo: int) -> str:
    key = (hi, lo)
    text = _ADDR_CACHE.get(key)
    if text is None:
        if len(_ADDR_CACHE) > 1 << 16:
            _ADDR_CACHE.clear()
        text = _ADDR_CACHE[key] = addr_to_str(*key)
    return text


def _meta(cols: PacketColumns, pf: PacketFlows, i: int, transport: str) -> Meta:
    return Meta(
        file=cols.source,
        frame=cols.frame.item(i),
        ts=cols.ts_ns.item(i) / 1e9,
        src=_addr(cols.src_hi.item(i), cols.src_lo.item(i)),
        sport=cols.sport.item(i),
        dst=_addr(cols.dst_hi.item(i), cols.dst_lo.item(i)),
        dport=cols.dport.item(i),
        transport=transport,
        flow_id=pf.flow_id.item(i),
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
        head.update(type="dns_response", id=msg.id, qname=first_name, qtype=first_type, rcode=msg.rcode,
                    answers=msg.answers, protocol=proto)  # fmt: skip
        return build(DnsResponse, head)
    head.update(type="dns_query", id=msg.id, qname=first_name, qtype=first_type, qtypes=types,
                qnames=names, protocol=proto)  # fmt: skip
    return build(DnsQuery, head)


__all__ = ["Extractor", "Selection", "select", "dns_observation"]
