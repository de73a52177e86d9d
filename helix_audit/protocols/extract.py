"""The extractor: picks the few packets of each batch that need a parser and turns them into observations.

Selection is vectorised over the batch (numpy masks, :mod:`.selection`); Python runs only on the
chosen rows: UDP/TCP on the DNS ports (53, 5353 mDNS, 5355 LLMNR), QUIC long-header Initials (UDP 443
or a QUIC v1/v2/draft version field), the SYNs and first payload bytes of every TCP direction still
being parsed, and any later TCP payload that starts like an HTTP head (keep-alive requests).

TCP directions are rebuilt from their start (:mod:`.reassembly`) and parsed by what their first
bytes look like (TLS records, HTTP heads, DNS with length prefixes on a DNS port), through CONNECT
tunnels into the TLS inside. Request/response pairs are matched per flow in order. A direction's
first segment and a TLS client's application data take the short cuts of :mod:`.first` when they
provably end where the general path would; SYNs that open their flow in a call, and directions
whose first segment ends their parsing, are settled in bulk (:mod:`.keystate`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from types import SimpleNamespace
from typing import ParamSpec, TypeVar

import numpy as np

from ..decode.interface import PacketColumns
from ..flows.interface import PacketFlows
from ..gcpause import paused_gc
from ..model import Anomaly, DnsQuery, DnsResponse, Observation
from . import dns, dnsfast, http
from .build import clear_pools, observation_maker, trim_pools
from .dnsfast import dns_protocol
from .first import first_segment, tls_appdata
from .httpobs import HttpPairing, parse_standalone
from .interface import NeedData, ParseError
from .keyed import direction_keys
from .keystate import KeyState, marked
from .quicconn import QuicTracker
from .reassembly import SEQ_MOD
from .rows import Head, addr, first_heads, first_payload_rows, meta_of, payload_spans
from .selection import DNS_PORTS, PHASES, SYN, Selection, is_done, select, union_rows
from .streams import Direction, Meta, parse_direction

_tuple_new = tuple.__new__
_LOOK_UP = object()  # ``_tcp``'s default: find the row's direction itself
_HEADS, _HEAD_MAX = http.PREFIXES, max(map(len, http.PREFIXES))  # what a standalone head starts with
_MAY_LEAVE = ("tls", "http")  # the modes ``Direction.leftover_anomalies`` reports from
_BIRTH, _FRAME = operator.attrgetter("birth"), operator.attrgetter("frame")
_FILE_FRAME = operator.attrgetter("file", "frame")
P = ParamSpec("P")
R = TypeVar("R")


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


class Extractor(KeyState):
    """Feed every batch with its flows; ``finish`` returns (observations, anomalies).

    ``dns_ports`` are the ports read as DNS (UDP and TCP): add ports to mirror a tshark decode-as.
    """

    def __init__(self, limit: int = 64 * 1024, dns_ports: tuple[int, ...] = DNS_PORTS) -> None:
        super().__init__(limit, dns_ports)
        self.observations: list[Observation] = []
        self.anomalies: list[Anomaly] = []
        #: Stand-ins for finished peers of directions still in ``_syn`` (what the peer link would
        #: have kept).
        self._orphans: dict[int, SimpleNamespace] = {}
        #: Keys of directions whose ``partial`` is set (a standalone head waiting for its next segment).
        self._partial: set[tuple[int, bool]] = set()
        self._http = HttpPairing(self.observations)
        self._quic = QuicTracker(self.observations, self.anomalies)
        #: Every batch's source, and how many observations (from the start) ``add`` alone appended:
        #: when that is all of them, their files are among ``_files`` (each carries its batch's).
        self._files: set[str] = set()
        self._filed = 0
        #: While ``_tcp_rows`` runs: (its batch, :func:`.rows.first_heads` of its rows).
        self._heads: tuple[PacketColumns, dict[int, Head]] | None = None

    @_gc_paused
    def add(self, cols: PacketColumns, pf: PacketFlows) -> None:
        # a head split after the last segment of a previous batch waits for its next segment here
        filed = self._filed == len(self.observations)
        trim_pools()
        self._files.add(cols.source)
        dirs = self._dirs
        waiting = [k[0] * 2 + int(k[1]) for k in self._partial if getattr(dirs.get(k), "partial", None)]
        keys = direction_keys(pf.flow_id, pf.from_a)  # every row's direction key, for every step below
        self._finish_unparsed(cols, pf, keys)
        sel = select(cols, pf, self._done, self.dns_ports, self.limit, self._gone, keys)
        self._udp_dns_rows(cols, pf, sel.udp_dns)
        for i in sel.quic.tolist():
            try:
                self._quic.add(cols.payload(i), meta_of(cols, pf, i, "udp"))
            except Exception as exc:
                self._internal_error(cols, i, exc)
        seen = np.zeros(len(cols), dtype=bool)
        for lo, hi in PHASES:
            rows = np.sort(sel.payload[(sel.rank >= lo) & (sel.rank < hi)])
            if lo == 0:
                rows = union_rows(len(cols), rows, sel.syn)
            rows = rows[~is_done(self._done, sel.keys[rows])]
            seen[rows] = True
            self._tcp_rows(cols, pf, rows, sel.keys)
        for key in sel.over.tolist():  # bytes went past what this batch let us rebuild: stop here
            d = self._dirs.get((key >> 1, bool(key & 1)))
            if d is not None and not d.done:
                d.finish()
                self._mark_done(key)
                if not d.accepts_standalone:
                    self._forget(d, (key >> 1, bool(key & 1)))
        http = sel.http if not waiting else np.union1d(sel.http, first_payload_rows(cols, sel.keys, waiting))
        self._tcp_rows(cols, pf, http[~seen[http]], sel.keys)
        gone = self._gone_keys
        if gone:  # ``_gone`` is read by the next batch's selection only
            self._gone = marked(self._gone, gone)
            gone.clear()
        if filed:
            self._filed = len(self.observations)

    @_gc_paused
    def finish(self) -> tuple[list[Observation], list[Anomaly]]:
        open_ = [d for d in self._dirs.values() if d.mode in _MAY_LEAVE]  # the others leave nothing
        for d in sorted(open_, key=_BIRTH):
            self.anomalies.extend(d.leftover_anomalies())
        self.anomalies.extend(self._quic.leftover_anomalies())
        for d in self._dirs.values():  # unlinked first: the peer cycles would outlive the scan as
            d.peer = None  # garbage (collection is paused here and the heap is frozen after)
        self._dirs.clear()
        self._syn.clear()
        self._orphans.clear()
        self._partial.clear()
        self._http.pair()
        clear_pools()
        obs = self.observations
        # one file: frames alone order them (known without a pass over 10^5 objects when ``add``
        # appended them all)
        known = self._filed == len(obs) and len(self._files) <= 1
        one_file = known or len({o.file for o in obs}) <= 1
        obs = sorted(obs, key=_FRAME if one_file else _FILE_FRAME)
        return obs, list(self.anomalies)

    # ---------------------------------------------------------------------------------------------

    def _udp_dns_rows(self, cols: PacketColumns, pf: PacketFlows, rows: np.ndarray) -> None:
        """UDP DNS rows in batch order: the batch kernel first, ``_udp_dns`` for what it leaves."""

        def slow(i: int, meta: Meta, payload: bytes) -> None:
            try:
                self._udp_dns(meta, payload)
            except Exception as exc:  # a parser bug must not end the audit: it becomes an anomaly
                self._internal_error(cols, i, exc)

        def failed(i: int, exc: Exception) -> None:
            self._internal_error(cols, i, exc)

        dnsfast.add_rows(cols, pf, rows, self.observations, slow, failed)

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

    def _tcp_rows(self, cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, keys: np.ndarray) -> None:
        """Rows in batch order; a direction born here is ranked by its row's place (``_base + j``).

        ``keys``: the direction key of every row of the batch (``Selection.keys``). A row's payload
        is copied out of the batch only when something reads it (most rows of finished directions
        are passed over on their key alone).
        """
        columns = (pf.flow_id, pf.from_a, cols.seq, cols.tcp_flags, cols.frame, cols.ts_ns)
        dirs, syn = self._dirs, self._syn
        self._base = self._births
        self._births += len(rows)
        todo = self._early_syns(cols, pf, rows, keys)
        left = rows[todo]
        self._heads = (cols, first_heads(cols, left, keys))
        # ``_done`` at the call's start, read in bulk (a numpy scalar read a row cost as much as the
        # rest of the row's checks); directions finished since are in ``_fresh_done``
        lkeys = keys[left]
        was_done = is_done(self._done, lkeys).tolist()
        view, offs, lens = payload_spans(cols, left)
        fresh = self._fresh_done
        fresh.clear()
        # ``_tcp``'s steps run here (a call and its look-ups a row less), but for standalone heads
        # and when a subclass hooks ``_tcp`` or ``_new_direction``
        inline = type(self)._tcp is Extractor._tcp and type(self)._new_direction is Extractor._new_direction
        anomalies, handle = self.anomalies, self._http.handle
        for j, i, k, off, n, fid, from_a, seq, flags, frame, ts_ns, gone in zip(
            todo.tolist(), left.tolist(), lkeys.tolist(), offs, lens, *(c[left].tolist() for c in columns),
            was_done, strict=True,
        ):  # fmt: skip
            key = (fid, from_a)
            d = dirs.get(key)
            if d is None:
                if not n and flags & SYN:  # a SYN of no direction yet: only its ISN matters until data
                    if not (gone or k in fresh) and k not in syn:
                        self._pending_syn(k, seq, self._base + j)
                    continue
                if gone or k in fresh:
                    continue  # finished and forgotten: ``_tcp`` would read nothing here
            elif d.mode == "done" and (
                not d.http_seen
                or d.tunnel
                or (
                    d.partial is None and not view[off : off + min(n, _HEAD_MAX)].tobytes().startswith(_HEADS)
                )
            ):
                continue  # finished, and no standalone head here: ``_tcp`` would read nothing either
            payload = view[off : off + n].tobytes()
            try:
                if not inline or (d is not None and d.mode == "done"):
                    self._tcp(cols, pf, i, key, seq, flags, frame, ts_ns / 1e9, payload, j, d)
                    continue
                ts = ts_ns / 1e9  # ``_tcp``'s steps from here
                if d is None:
                    d = self._new_direction(cols, i, key, j, frame, ts)
                    got = None if flags & SYN else first_segment(d, seq, payload, frame, ts, anomalies)
                else:
                    got = None if flags & SYN or d.mode != "tls" or not tls_appdata(d, seq, payload) else []
                if got is None:
                    d.add_segment(seq, flags, payload, frame, ts)
                    got = parse_direction(d, anomalies)
                for obs in got:
                    handle(obs)
                if d.mode == "done":
                    self._mark_done(k)
                    if not d.http_seen or d.tunnel:
                        self._forget(d, key)
            except Exception as exc:  # a parser bug must not end the audit: it becomes an anomaly
                self._internal_error(cols, i, exc)
                self._mark_done(k)
        fresh.clear()
        self._heads = None

    def _internal_error(self, cols: PacketColumns, i: int, exc: Exception) -> None:
        detail = f"{type(exc).__name__}: {exc}"
        self.anomalies.append(Anomaly("protocol_parser_error", cols.source, int(cols.frame[i]), detail))

    def _tcp(
        self, cols: PacketColumns, pf: PacketFlows, i: int, key: tuple[int, bool], seq: int, flags: int,
        frame: int, ts: float, payload: bytes, j: int, found: object = _LOOK_UP,
    ) -> None:  # fmt: skip
        """One row; ``found``: the row's direction (None: none, and not done) when the caller looked
        it up already (``_tcp_rows`` checks ``_done`` in bulk)."""
        if found is _LOOK_UP:
            d = self._dirs.get(key)
            k = key[0] * 2 + int(key[1])
            if d is None and k < self._done.size and self._done[k]:
                return  # finished and forgotten: nothing more to read here
        else:
            d = found  # type: ignore[assignment]  # (``cast`` is a call per row)
        if d is None:
            d = self._new_direction(cols, i, key, j, frame, ts)
            got = None if flags & SYN else first_segment(d, seq, payload, frame, ts, self.anomalies)
        elif d.mode == "done":  # ``done``, without the property call
            if d.accepts_standalone and (d.partial is not None or payload.startswith(http.PREFIXES)):
                self._http.handle(parse_standalone(d, seq, payload, frame, ts, self.anomalies))
                if d.partial is not None:
                    self._partial.add(key)
                else:
                    self._partial.discard(key)
            return
        else:
            got = None if flags & SYN or d.mode != "tls" or not tls_appdata(d, seq, payload) else []
        if got is None:
            d.add_segment(seq, flags, payload, frame, ts)
            got = parse_direction(d, self.anomalies)
        for obs in got:
            self._http.handle(obs)
        if d.mode == "done":
            self._mark_done(key[0] * 2 + int(key[1]))
            if not d.http_seen or d.tunnel:  # not ``accepts_standalone``
                self._forget(d, key)  # bounded memory: only directions still useful stay

    def _forget(self, d: Direction, key: tuple[int, bool]) -> None:
        """Drop a finished direction; its peer may still read its ``tunnel`` flag, so only the
        back-reference goes (no peer cycle left for the garbage collector, which is paused)."""
        d.peer = None
        del self._dirs[key]
        k = key[0] * 2 + int(key[1])
        if k in self._fresh_done or (k < self._done.size and self._done[k]):
            self._gone_keys.append(k)  # done for good: no row of it matters any more (set after the batch)
        other = key[0] * 2 + (not key[1])
        if other in self._syn:  # the peer exists but is not built yet: keep what it would point at
            self._orphans[other] = SimpleNamespace(tunnel=d.tunnel, peer=None)

    def _new_direction(
        self, cols: PacketColumns, i: int, key: tuple[int, bool], j: int, frame: int, ts: float
    ) -> Direction:
        """The direction's state as if it had been built at its first SYN (when one came before).

        ``j``: the row's place among the rows of this ``_tcp_rows`` call (its rank of birth).
        """
        heads = self._heads
        got = heads[1].get(i) if heads is not None and heads[0] is cols else None
        if got is not None:
            sport, dport, src, dst = got
        else:
            sport, dport = cols.sport.item(i), cols.dport.item(i)
            src = addr(cols.src_hi.item(i), cols.src_lo.item(i))
            dst = addr(cols.dst_hi.item(i), cols.dst_lo.item(i))
        fid, from_a = key
        meta = _tuple_new(Meta, (cols.source, frame, ts, src, sport, dst, dport, "tcp", fid))
        dns, dirs = self._dns_set, self._dirs
        d = dirs[key] = Direction(meta, self.limit, sport in dns or dport in dns)
        k = fid * 2 + (1 if from_a else 0)
        self._entered.append(k)
        pending = self._syn.pop(k, None)
        if pending is None:
            d.birth = self._base + j
        else:
            d.birth = pending[1]
            d.stream.isn, d.stream.base = pending[0], (pending[0] + 1) % SEQ_MOD  # what add(ISN, SYN) does
        peer = dirs.get((fid, not from_a))
        if peer is not None:
            d.peer, peer.peer = peer, d
        elif self._orphans:
            d.peer = self._orphans.pop(k, None)  # type: ignore[assignment]
        return d


_DNS_QUERY = observation_maker(DnsQuery, shared=("qname", "qtype", "qtypes", "qnames", "protocol"))
_DNS_RESPONSE = observation_maker(DnsResponse, shared=("qname", "qtype", "rcode", "protocol"))


def dns_observation(msg: dns.DnsMessage, meta: Meta, frames: tuple[int, ...]) -> Observation:
    names = tuple(n for n, _ in msg.questions)
    types = tuple(t for _, t in msg.questions)
    proto = dns_protocol(meta.sport, meta.dport)
    first_name, first_type = (names[0], types[0]) if names else ("", "")
    if msg.qr:
        return _DNS_RESPONSE(meta, frames, "dns_response", msg.id, first_name, first_type, msg.rcode,
                             msg.answers, proto)  # fmt: skip
    return _DNS_QUERY(meta, frames, "dns_query", msg.id, first_name, first_type, types, names, proto)


__all__ = ["Extractor", "Selection", "select", "dns_observation"]
