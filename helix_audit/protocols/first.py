"""Short cuts for the two segments most TCP directions consist of, equal to the general path.

A busy capture's directions mostly start with one in-order segment holding a whole TLS flight
start (ClientHello, ServerHello ...) or a whole HTTP head, and a TLS client's next segment starts
with an application-data record, which ends its parsing. Running those through the general
machinery (:meth:`StreamStart.add`, ``advance``, the ``parse_direction`` step loop, ``at`` and
``frames_between`` over one piece) costs more than the parsing itself.

:func:`first_segment` and :func:`tls_appdata` check that the general path would see exactly one
piece (or, for ``tls_appdata``, that the scan resumes at a complete application-data record) and
then leave the direction in the state the general path leaves (stream included). Anything else
returns None *before* touching the direction, and the caller takes the general path, which stays
the reference (tests/protocols/test_first.py compares the two on crafted and mutated streams).
"""

from __future__ import annotations

from ..model import Anomaly, Observation
from . import headfast, http, tls, tlsfast
from .httpobs import _CONNECT, _HTTP_REQUEST, _HTTP_RESPONSE, _WEBSOCKET, http_observation
from .reassembly import SEQ_MOD
from .streams import _TLS_ALERT, MAX_HANDSHAKES, Direction, _handshake

_TLS_FIRST = (tls.CT_ALERT, tls.CT_HANDSHAKE)


def first_segment(
    d: Direction, seq: int, payload: bytes, frame: int, ts: float, anomalies: list[Anomaly]
) -> list[Observation] | None:
    """A fresh direction's first segment (no SYN flag on it) when it is all the stream holds.

    ``d`` was just built (its ISN from a SYN, if one came); ``payload`` is not empty.
    """
    s = d.stream
    n = len(payload)
    if n >= d.limit or d.dns_port or (s.base is not None and seq != s.base):
        return None
    if n >= 3 and payload[0] in _TLS_FIRST and payload[1] == 3 and payload[2] <= 4:
        return _tls(d, seq, payload, frame, ts, anomalies)
    if payload[:8].startswith(http.PREFIXES):  # ``_detect`` looks at the first 8 bytes only
        return _http(d, seq, payload, frame, ts)
    return None


def _place(d: Direction, seq: int, payload: bytes, frame: int, ts: float) -> None:
    """The stream after ``add`` + ``advance`` of the one segment (the ISN, if any, already set)."""
    s = d.stream
    if s.base is None:
        s.base = seq
    s.buf = bytearray(payload)
    s.pieces = [(0, len(payload), frame)]
    d.ts_of[frame] = ts


def _tls(
    d: Direction, seq: int, payload: bytes, frame: int, ts: float, anomalies: list[Anomaly]
) -> list[Observation]:
    """``_detect`` then ``_tls`` on a stream of one piece: every message's frames are ``(frame,)``.

    The segment is placed in the stream as by the general path, except when the direction finishes
    here (``finish`` drops the stream at once): then only if a parser bug (an exception) leaves
    the direction unfinished, in the state the general path leaves.
    """
    try:
        flight = tlsfast.first_flight(payload, MAX_HANDSHAKES)  # the common flights, else the scan
        if flight is None:
            flight = tlsfast.scan_fields(tls.scan_stream(payload, MAX_HANDSHAKES, b"", False))
    except BaseException:
        _place(d, seq, payload, frame, ts)
        d.mode = "tls"
        raise
    d.mode = "tls"
    used, want, appdata, pending, stuck, handshakes, alerts = flight
    ends = appdata or len(handshakes) >= MAX_HANDSHAKES
    if not ends:
        for hs_type, body, _end in handshakes:
            if tls.is_server_hello(hs_type, body):
                ends = True  # after a real ServerHello nothing is read (``streams._tls``)
                break
    if not ends:
        _place(d, seq, payload, frame, ts)
    d.tls_want, d.tls_used, d.tls_pending, d.tls_stuck = want, used, pending, stuck
    out: list[Observation] = []
    meta, frames = d.meta, (frame,)  # ``at`` on one piece: the segment's own frame and time
    try:
        for hs_type, body, end in handshakes:
            obs = _handshake(hs_type, body, meta, frames, anomalies)
            if obs is not None:
                out.append(obs)
            d.tls_prev_end = end
    except BaseException:
        if ends:
            _place(d, seq, payload, frame, ts)
        raise
    d.handshakes = len(handshakes)
    for level, desc, _end in alerts:
        out.append(_TLS_ALERT(meta, frames, "tls_alert", level, desc))
    d.alerts = len(alerts)
    if ends:
        d.finish()
    return out


def _http(d: Direction, seq: int, payload: bytes, frame: int, ts: float) -> list[Observation] | None:
    """``_detect`` then ``_http`` when the segment holds one whole head and nothing is read after it."""
    try:
        got = _quick_head(d, payload, frame)
    except Exception:  # noqa: BLE001  malformed, incomplete, or a parser bug: the general path
        return None  # reads it again and keeps, reports or raises exactly as it does
    if got is None:
        return None
    obs, mode, pos, tunnel = got
    d.http_seen, d.pos, d.tunnel = True, pos, tunnel
    if mode == "done":  # ``finish`` would release the stream at once: nothing of it stays
        d.finish()
    else:
        _place(d, seq, payload, frame, ts)
        d.mode = mode
    return [obs]


def _quick_head(d: Direction, payload: bytes, frame: int) -> tuple[Observation, str, int, bool] | None:
    """:func:`_read_head` from the spans of :func:`headfast.spans` (the common, well-formed head),
    else by :func:`_read_head` itself. Same values: each is the latin-1 text of the same bytes."""
    s = headfast.spans(payload)
    kind = s[0]
    if not kind:
        return _read_head(d, payload, frame)
    n, pos = len(payload), s[1]
    text = payload.decode("latin-1")  # one decode: a slice of it is the same slice of bytes decoded
    te = "" if s[14] < 0 else text[s[14] : s[15]]
    cl = None if s[12] < 0 else text[s[12] : s[13]]
    meta, frames = d.meta, (frame,)
    obs: Observation
    if kind == headfast.RESPONSE:
        status = s[2]
        version = text[:8]
        reason = "" if s[3] < 0 else text[s[3] : s[4]]
        obs = _HTTP_RESPONSE(meta, frames, "http_response", status, reason, version)
        if 200 <= status < 300 and d.peer_tunnel():
            return (obs, "detect", pos, True) if pos == n else None
        if status == 101:
            return obs, "done", pos, False
        body = http.body_length(te, cl, None)
    else:
        method = text[: s[2]]
        target = text[s[3] : s[4]]
        version = "HTTP/0.9" if s[5] < 0 else text[s[5] : s[5] + 8]
        host = text[s[6] : s[7]] if s[6] >= 0 else http.authority_of(target)
        agent = None if s[8] < 0 else text[s[8] : s[9]]
        fields = (method, host, target, version, agent)
        if method == "CONNECT":
            if pos != n:
                return None  # the tunnel's first bytes follow in this segment
            return _CONNECT(meta, frames, "http_connect", *fields, target=target), "detect", pos, True
        if s[10] >= 0 and "websocket" in text[s[10] : s[11]].lower():
            return _WEBSOCKET(meta, frames, "websocket_upgrade", *fields), "done", pos, False
        obs = _HTTP_REQUEST(meta, frames, "http_request", *fields)
        body = http.body_length(te, cl, 0)
    if body is None:
        return obs, "resync", pos, False
    pos += body
    if pos < n:
        return None  # another head follows in this segment (pipelining)
    return obs, "detect", pos, False


def _read_head(d: Direction, payload: bytes, frame: int) -> tuple[Observation, str, int, bool] | None:
    """(observation, mode, position, tunnel) after ``_http`` and ``_after_head`` read the one head."""
    head: http.RequestHead | http.ResponseHead
    head = http.parse_response(payload) if payload.startswith(b"HTTP/1.") else http.parse_request(payload)
    n, pos = len(payload), head.length
    req = head if isinstance(head, http.RequestHead) else None
    status = 0 if isinstance(head, http.RequestHead) else head.status
    if (req is not None and req.is_connect) or (200 <= status < 300 and d.peer_tunnel()):
        if pos != n:
            return None  # the tunnel's first bytes follow in this segment
        mode, tunnel = "detect", True
    elif (req is not None and req.is_websocket) or status == 101:
        mode, tunnel = "done", False
    else:
        body = head.body_length
        if body is None:
            mode, tunnel = "resync", False
        else:
            pos += body
            if pos < n:
                return None  # another head follows in this segment (pipelining)
            mode, tunnel = "detect", False
    return http_observation(head, d.meta, (frame,)), mode, pos, tunnel


def tls_appdata(d: Direction, seq: int, payload: bytes) -> bool:
    """A TLS direction whose records so far were all scanned gets an in-order segment starting
    with a whole application-data record, or a whole ChangeCipherSpec record and then one (a TLS 1.3
    client's Finished after its compatibility CCS): ``_tls`` would find it first (a CCS record
    yields nothing) and finish the direction.

    True when it did so here (the direction is finished); False, untouched, otherwise.
    """
    s = d.stream
    n = len(payload)
    if n < 5 or payload[1] != 3 or d.tls_stuck or d.tls_pending or d.tls_want or s.pending or s.base is None:
        return False
    at = 0
    if payload[0] == tls.CT_CCS:  # skipped by the scan when whole (and within the record limit)
        at = 5 + ((payload[3] << 8) | payload[4])
        if at > tls.MAX_RECORD + 5 or at + 5 > n or payload[at + 1] != 3:
            return False
    if payload[at] != tls.CT_APPDATA:
        return False
    size = len(s.buf)
    length = (payload[at + 3] << 8) | payload[at + 4]
    if (
        d.tls_start + d.tls_used != size
        or size + n >= d.limit
        or seq != (s.base + size) % SEQ_MOD
        or length > tls.MAX_RECORD
        or at + 5 + length > n
        or s.buf[d.tls_start] & 0x80
    ):
        return False
    d.tls_used += at + 5 + length  # what the scan reports (the record is the stream's last)
    d.finish()
    return True


__all__ = ["first_segment", "tls_appdata"]
