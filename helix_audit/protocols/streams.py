"""Parsing one reassembled TCP direction: detect the protocol from its first bytes, then walk it.

A direction is TLS (records from its start, or after a CONNECT head: the tunnel), HTTP (request or
response heads one after another while body lengths are known; after an unknown length, the next
segment that starts like a head), or DNS with 2-byte length prefixes (on a DNS port). Anything else
ends the direction's parsing. Every result carries the frame of the segment that completed it.
HTTP heads become observations, and later find their answers, in :mod:`.httpobs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..model import Anomaly, Observation, TlsAlert, TlsClientHello, TlsServerHello
from . import dns, http, tls, tlshello
from .build import observation_maker
from .httpobs import http_observation
from .interface import NeedData, ParseError
from .reassembly import StreamStart
from .tlsfast import hello_fields

MAX_HANDSHAKES = 16
SOCKS_PIECES = 8


_tuple_new = tuple.__new__


class Meta(NamedTuple):
    """Who and where: the common head of the observations of one packet or direction."""

    file: str
    frame: int
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    flow_id: int

    def moved(self, frame: int, ts: float) -> Meta:
        """The same endpoints at another frame (a NamedTuple: far cheaper than ``dataclasses.replace``)."""
        return _tuple_new(Meta, (self[0], frame, ts, *self[3:]))

    def head(self, frames: tuple[int, ...]) -> dict[str, Any]:
        return {
            "frame": self.frame, "ts": self.ts, "file": self.file, "src": self.src, "sport": self.sport,
            "dst": self.dst, "dport": self.dport, "transport": self.transport, "flow_id": self.flow_id,
            "frames": frames,
        }  # fmt: skip


#: The stream and frame times of every finished direction, shared: a finished direction's bytes are
#: never read or written again (``Extractor._tcp`` hands it standalone heads only, which read
#: ``meta`` and ``partial``), and ~10^4 of them stay for keep-alive heads: a ``release``d stream and
#: a dict each were ~300 bytes and five objects apiece. The shared stream is inert (``add`` does
#: nothing, ``limit`` 0: ``full``); tests/protocols/test_shared.py checks it stays empty.


class _Inert(StreamStart):
    """A stream that nothing can fill or restart: ``add`` is a no-op."""

    __slots__ = ()

    def add(self, seq: int, flags: int, data: bytes, frame: int) -> bool:
        return False


RELEASED = _Inert(0)
NO_TIMES: dict[int, float] = {}


@dataclass(slots=True)
class Direction:
    """Parse state of one direction of one TCP flow."""

    meta: Meta
    limit: int
    dns_port: bool
    stream: StreamStart = field(init=False)
    mode: str = "detect"  # detect | tls | http | resync | dns | done
    pos: int = 0
    tls_start: int = 0
    tls_want: int = 0  # buffer length needed before a rescan can find anything new
    tls_used: int = 0  # bytes of complete records already scanned (from tls_start)
    tls_pending: bytes = b""  # handshake bytes of those records not yet a whole message
    tls_prev_end: int = 0  # end of the last handshake message reported (from tls_start)
    tls_stuck: bool = False  # the scan can never find anything new
    handshakes: int = 0
    alerts: int = 0
    tunnel: bool = False
    http_seen: bool = False
    ts_of: dict[int, float] = field(default_factory=dict)
    peer: Direction | None = None
    partial: tuple[bytes, tuple[int, ...], int] | None = None  # standalone head waiting for its next segment
    birth: int = 0  # rank of creation (or of the first SYN): the order leftovers are reported in

    def __post_init__(self) -> None:
        self.stream = StreamStart(self.limit)  # positional: a keyword costs ~0.1 µs a direction

    @property
    def done(self) -> bool:
        return self.mode == "done"

    def peer_tunnel(self) -> bool:
        """The other direction sent a CONNECT: a 2xx here opens the tunnel."""
        return self.peer is not None and self.peer.tunnel

    @property
    def accepts_standalone(self) -> bool:
        return self.http_seen and not self.tunnel

    def add_segment(self, seq: int, flags: int, data: bytes, frame: int, ts: float) -> None:
        if self.stream.add(seq, flags, data, frame):
            self.mode, self.pos, self.handshakes, self.alerts, self.tunnel = "detect", 0, 0, 0, False
            self.tls_want, self.tls_used, self.tls_pending, self.tls_prev_end = 0, 0, b"", 0
            self.tls_stuck = False
        if data:
            self.ts_of[frame] = ts

    def at(self, end: int, start: int) -> tuple[Meta, tuple[int, ...]]:
        frame = self.stream.frame_at(end)
        meta = self.meta.moved(frame, self.ts_of.get(frame, self.meta.ts))
        return meta, self.stream.frames_between(start, end)

    def finish(self) -> None:
        self.mode = "done"
        self.stream = RELEASED
        self.ts_of = NO_TIMES

    def leftover_anomalies(self) -> list[Anomaly]:
        """Messages still incomplete at the end of the capture."""
        buf = self.stream.buf
        if (
            self.mode == "tls"
            and self.handshakes == 0
            and buf[self.tls_start + 5 : self.tls_start + 6] == b"\x01"
        ):
            meta, _ = self.at(len(buf), self.tls_start)
            return [Anomaly("tls_client_hello_truncated", meta.file, meta.frame, f"{len(buf)} bytes seen")]
        if self.mode == "http" and len(buf) > self.pos:
            meta, _ = self.at(len(buf), self.pos)
            return [
                Anomaly("http_head_truncated", meta.file, meta.frame, "no end of head before capture end")
            ]
        return []


def parse_direction(d: Direction, anomalies: list[Anomaly]) -> list[Observation]:
    """Parse whatever new bytes the direction's stream has; returns new observations."""
    out: list[Observation] = []
    if not d.stream.advance():
        return out
    while not d.done:
        before = (d.mode, d.pos)
        step = _STEPS[d.mode](d, out, anomalies)
        if not step or (d.mode, d.pos) == before:
            break
    if not d.done and d.stream.full:
        d.finish()
    return out


def _detect(d: Direction, out: list[Observation], anomalies: list[Anomaly]) -> bool:
    data = bytes(d.stream.buf[d.pos : d.pos + 8])
    if d.dns_port and d.pos == 0:
        d.mode = "dns"
    elif not data:
        return False  # nothing new yet (the end of a message): what the tests below conclude too
    elif tls.looks_like_tls(data):  # before HTTP (the common case): TLS never starts with a letter
        d.mode, d.tls_start = "tls", d.pos
        d.tls_want, d.tls_used, d.tls_pending, d.tls_prev_end = 0, 0, b"", 0
    elif http.starts_like_http(data):
        d.mode, d.http_seen = "http", True
    elif _looks_like_socks(data):
        d.mode, d.tunnel = "socks", True
    elif len(data) < 8 and any(p.startswith(data) for p in http.PREFIXES):
        return False  # could still become an HTTP head
    elif len(data) >= 3:
        d.finish()
    else:
        return False
    return True


def _looks_like_socks(data: bytes) -> bool:
    """SOCKS4/5 greeting or reply (RFC 1928 §3, §6; SOCKS4 protocol): the tunnelled stream follows."""
    if len(data) < 2:
        return False
    greeting = data[0] == 5 and 1 <= data[1] <= 9 and len(data) <= 2 + data[1]
    return (
        greeting
        or data[:2] in (b"\x05\x00", b"\x05\x02", b"\x00\x5a")
        or data[:2] in (b"\x04\x01", b"\x04\x02")
    )


def _socks(d: Direction, out: list[Observation], anomalies: list[Anomaly]) -> bool:
    """Skip the SOCKS exchange: the first later segment that starts like TLS or HTTP is the tunnel."""
    for start, _end, _frame in d.stream.pieces[:SOCKS_PIECES]:
        head = bytes(d.stream.buf[start : start + 8])
        if start > d.pos and (tls.looks_like_tls(head) or http.starts_like_http(head)):
            d.pos, d.mode = start, "detect"
            return True
    if len(d.stream.pieces) >= SOCKS_PIECES:
        d.finish()
    return False


def _tls(d: Direction, out: list[Observation], anomalies: list[Anomaly]) -> bool:
    """Scan the records not scanned yet (resuming where the last scan stopped) and report what is new."""
    if len(d.stream.buf) < d.tls_want or d.tls_stuck:
        return False  # the record in progress is still incomplete: nothing new to find
    if d.stream.buf[d.tls_start] & 0x80:
        return _sslv2(d, out, anomalies)
    base = d.tls_start + d.tls_used
    scan = tls.scan_stream(bytes(d.stream.buf[base:]), MAX_HANDSHAKES - d.handshakes, d.tls_pending, False)
    d.tls_want = base + scan.want if scan.want else 0
    d.tls_used += scan.used
    d.tls_pending, d.tls_stuck = scan.pending, scan.stuck
    server_hello = _report_tls(d, scan, base, out, anomalies)
    if scan.appdata or server_hello or d.handshakes >= MAX_HANDSHAKES:
        d.finish()  # after a real ServerHello the server's flight is certificates and keys: nothing we use
    return False


def _report_tls(d: Direction, scan: tls.StreamScan, base: int, out: list[Observation],
                anomalies: list[Anomaly]) -> bool:  # fmt: skip
    """Observations of the scan's handshakes and alerts (offsets from ``base``); True on a ServerHello."""
    server_hello = False
    for hs_type, body, end in scan.handshakes:
        meta, frames = d.at(base + end, d.tls_start + d.tls_prev_end)
        obs = _handshake(hs_type, body, meta, frames, anomalies)
        if obs is not None:
            out.append(obs)
        d.tls_prev_end = base + end - d.tls_start
        server_hello |= tls.is_server_hello(hs_type, body)
    d.handshakes += len(scan.handshakes)
    for level, desc, end in scan.alerts:
        meta, frames = d.at(base + end, base + end - 7)
        out.append(_TLS_ALERT(meta, frames, "tls_alert", level, desc))
    d.alerts += len(scan.alerts)
    return server_hello


def _sslv2(d: Direction, out: list[Observation], anomalies: list[Anomaly]) -> bool:
    """An SSLv2 hello: one message from the stream start, rescanned until complete."""
    scan = tls.scan_stream(bytes(d.stream.buf[d.tls_start :]), MAX_HANDSHAKES)
    scan.handshakes, scan.alerts = scan.handshakes[d.handshakes :], scan.alerts[d.alerts :]
    _report_tls(d, scan, d.tls_start, out, anomalies)
    if d.handshakes >= MAX_HANDSHAKES:
        d.finish()
    return False


def _handshake(
    hs_type: int, body: bytes, meta: Meta, frames: tuple[int, ...], anomalies: list[Anomaly]
) -> Observation | None:
    if hs_type == tls.HS_CLIENT_HELLO:
        got = hello_fields(body)
        if got is not None:
            return _CLIENT_HELLO(meta, frames, "tls_client_hello", *got)
    try:
        if hs_type in (tls.HS_CLIENT_HELLO, 0x8001):
            parse = (
                tlshello.parse_client_hello
                if hs_type == tls.HS_CLIENT_HELLO
                else tlshello.parse_sslv2_client_hello
            )
            ch = parse(body)
            return _CLIENT_HELLO(meta, frames, "tls_client_hello", ch.sni, ch.alpn, ch.version, ch.ech)
        if hs_type == tls.HS_SERVER_HELLO:
            return _SERVER_HELLO(meta, frames, "tls_server_hello", tlshello.parse_server_hello(body))
    except (NeedData, ParseError) as exc:
        name = (
            "tls_client_hello_malformed" if hs_type != tls.HS_SERVER_HELLO else "tls_server_hello_malformed"
        )
        anomalies.append(Anomaly(name, meta.file, meta.frame, str(exc)))
    return None


def _http(d: Direction, out: list[Observation], anomalies: list[Anomaly]) -> bool:
    data = bytes(d.stream.buf[d.pos :])
    try:
        head: http.RequestHead | http.ResponseHead
        head = http.parse_response(data) if data.startswith(b"HTTP/1.") else http.parse_request(data)
    except NeedData:
        return False
    except ParseError as exc:
        meta, _ = d.at(len(d.stream.buf), d.pos)
        anomalies.append(Anomaly("http_head_malformed", meta.file, meta.frame, str(exc)))
        d.mode = "resync"
        return False
    meta, frames = d.at(d.pos + head.length, d.pos)
    out.append(http_observation(head, meta, frames))
    d.pos += head.length
    _after_head(d, head)
    return True


def _after_head(d: Direction, head: http.RequestHead | http.ResponseHead) -> None:
    if (
        isinstance(head, http.RequestHead)
        and head.is_connect
        or isinstance(head, http.ResponseHead)
        and 200 <= head.status < 300
        and d.peer_tunnel()
    ):
        d.mode, d.tunnel = "detect", True
    elif isinstance(head, http.RequestHead) and head.is_websocket or getattr(head, "status", 0) == 101:
        d.finish()
    elif head.body_length is None:
        d.mode = "resync"
    else:
        d.pos += head.body_length
        d.mode = "http" if d.pos < len(d.stream.buf) else "detect"


def _resync(d: Direction, out: list[Observation], anomalies: list[Anomaly]) -> bool:
    for start, _end, _frame in d.stream.pieces:
        if start > d.pos and http.starts_like_http(bytes(d.stream.buf[start : start + 8])):
            d.pos, d.mode = start, "http"
            return True
    return False


def _dns(d: Direction, out: list[Observation], anomalies: list[Anomaly]) -> bool:
    from .extract import dns_observation

    messages, used = dns.split_tcp(bytes(d.stream.buf[d.pos :]))
    for start, msg in messages:
        end = d.pos + start + 2 + len(msg)
        meta, frames = d.at(end, d.pos + start)
        try:
            out.append(dns_observation(dns.parse_message(msg), meta, frames))
        except (NeedData, ParseError) as exc:
            anomalies.append(Anomaly("dns_malformed", meta.file, meta.frame, str(exc)))
    d.pos += used
    return False


_STEPS = {"socks": _socks, "detect": _detect, "tls": _tls, "http": _http, "resync": _resync, "dns": _dns}


# the fields whose values repeat across observations keep one copy of each (``build.SHARED``)
_TLS_ALERT = observation_maker(TlsAlert, shared=("level", "description"))
_CLIENT_HELLO = observation_maker(TlsClientHello, shared=("sni", "alpn", "version"))
_SERVER_HELLO = observation_maker(TlsServerHello, shared=("version",))
