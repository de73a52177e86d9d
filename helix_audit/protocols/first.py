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
from . import http, tls
from .reassembly import SEQ_MOD
from .streams import _TLS_ALERT, MAX_HANDSHAKES, Direction, _handshake, http_observation

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
    """``_detect`` then ``_tls`` on a stream of one piece: every message's frames are ``(frame,)``."""
    try:
        scan = tls.scan_stream(payload, MAX_HANDSHAKES, b"", False)
    finally:  # placed first, as by the general path (whose state a parser bug leaves behind)
        _place(d, seq, payload, frame, ts)
        d.mode = "tls"
    d.tls_want = scan.want
    d.tls_used = scan.used
    d.tls_pending, d.tls_stuck = scan.pending, scan.stuck
    out: list[Observation] = []
    meta, frames = d.meta, (frame,)  # ``at`` on one piece: the segment's own frame and time
    server_hello = False
    for hs_type, body, end in scan.handshakes:
        obs = _handshake(hs_type, body, meta, frames, anomalies)
        if obs is not None:
            out.append(obs)
        d.tls_prev_end = end
        server_hello |= hs_type == tls.HS_SERVER_HELLO and body[2:34] != tls.HRR_RANDOM
    d.handshakes = len(scan.handshakes)
    for level, desc, _end in scan.alerts:
        out.append(_TLS_ALERT(meta, frames, "tls_alert", level, desc))
    d.alerts = len(scan.alerts)
    if scan.appdata or server_hello or d.handshakes >= MAX_HANDSHAKES:
        d.finish()
    return out


def _http(d: Direction, seq: int, payload: bytes, frame: int, ts: float) -> list[Observation] | None:
    """``_detect`` then ``_http`` when the segment holds one whole head and nothing is read after it."""
    try:
        got = _read_head(d, payload, frame)
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
    with a whole application-data record: ``_tls`` would find it first and finish the direction.

    True when it did so here (the direction is finished); False, untouched, otherwise.
    """
    s = d.stream
    n = len(payload)
    if (
        n < 5
        or payload[0] != tls.CT_APPDATA
        or payload[1] != 3
        or d.tls_stuck
        or d.tls_pending
        or d.tls_want
        or s.pending
        or s.base is None
    ):
        return False
    size = len(s.buf)
    length = (payload[3] << 8) | payload[4]
    if (
        d.tls_start + d.tls_used != size
        or size + n >= d.limit
        or seq != (s.base + size) % SEQ_MOD
        or length > tls.MAX_RECORD
        or 5 + length > n
        or s.buf[d.tls_start] & 0x80
    ):
        return False
    d.tls_used += 5 + length  # what the scan reports (the record is the stream's last)
    d.finish()
    return True


__all__ = ["first_segment", "tls_appdata"]
