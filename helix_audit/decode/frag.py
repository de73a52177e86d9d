"""IP fragment reassembly (RFC 791 for IPv4, RFC 8200 section 4.5 for IPv6), in plain Python.

Fragments are rare, so they are handled one by one after the vectorised decode. Policy:
- a datagram completes when its last fragment (MF=0) is in and the pieces cover [0, end) without gaps;
  the row of the fragment that completes it gets the reassembled L4 segment;
- overlaps: an exact duplicate (same offset and length) is ignored; any other overlap keeps the bytes
  that arrived first for IPv4 ("first wins"), and drops the whole datagram for IPv6 (RFC 5722, as
  Linux does);
- memory is bounded: at most MAX_PENDING datagrams (oldest evicted), MAX_PIECES pieces each, datagrams
  past 65535 bytes dropped, and a datagram idle for TIMEOUT_NS is forgotten.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAX_PENDING, MAX_PIECES, MAX_DATAGRAM = 1024, 128, 65535
TIMEOUT_NS = 60 * 1_000_000_000
EXT_HEADERS = frozenset((0, 43, 60, 135, 139, 140))
AH, MAX_EXT = 51, 16
TCP_HEAD = struct.Struct(">HHIIBBH")  # ports, seq, ack, data offset, flags, window
PORTS = struct.Struct(">HH")

Key = tuple[int, int, int, int, int, int, int]  # ipver, src_hi, src_lo, dst_hi, dst_lo, proto, id


@dataclass
class _Pending:
    first_ts: int
    last_ts: int
    v6: bool
    end: int = -1  # total length of the fragmentable part, once the last fragment is seen
    pieces: list[tuple[int, bytes]] = field(default_factory=list)
    dead: bool = False


@dataclass(frozen=True)
class Segment:
    """A reassembled datagram's upper layer: protocol and L4 bytes (header + payload)."""

    proto: int
    l4: bytes
    ip_bytes: int  # length of the fragmentable part (everything after the fixed IP header)


class Reassembler:
    """Holds incomplete datagrams across batches."""

    def __init__(self) -> None:
        self._pending: dict[Key, _Pending] = {}
        self._swept = 0

    def __len__(self) -> int:
        return len(self._pending)

    def feed(self, key: Key, ts: int, off: int, more: bool, data: bytes) -> Segment | None:
        """One fragment; returns the reassembled segment when this fragment completes the datagram."""
        self._expire(ts)
        p = self._pending.get(key)
        if p is None:
            if len(self._pending) >= MAX_PENDING:
                del self._pending[next(iter(self._pending))]
            p = self._pending[key] = _Pending(ts, ts, v6=key[0] == 6)
        p.last_ts = ts
        if not self._add(p, off, more, data):
            if p.dead:
                del self._pending[key]
            return None
        whole = self._whole(p)
        if whole is None:
            return None
        del self._pending[key]
        return upper_layer(key[0], key[5], whole)

    def _add(self, p: _Pending, off: int, more: bool, data: bytes) -> bool:
        stop = off + len(data)
        if p.dead or stop > MAX_DATAGRAM or len(p.pieces) >= MAX_PIECES or (more and len(data) % 8):
            p.dead = True
            return False
        if not more:
            if p.end >= 0 and p.end != stop:
                p.dead = True
                return False
            p.end = stop
        for o, d in p.pieces:
            if o == off and len(d) == len(data):
                return False  # duplicate
            if off < o + len(d) and o < stop and p.v6:
                p.dead = True
                return False
        p.pieces.append((off, data))
        return True

    @staticmethod
    def _whole(p: _Pending) -> bytes | None:
        if p.end < 0:
            return None
        reach = 0
        for o, d in sorted(p.pieces):
            if o > reach:
                return None
            reach = max(reach, o + len(d))
        if reach < p.end:
            return None
        buf = bytearray(p.end)
        for o, d in reversed(p.pieces):  # earlier pieces written last: first wins
            buf[o : o + len(d)] = d[: max(0, p.end - o)]
        return bytes(buf)

    def _expire(self, ts: int) -> None:
        if not self._pending or abs(ts - self._swept) < TIMEOUT_NS // 4:
            return
        self._swept = ts
        old = [k for k, p in self._pending.items() if ts - p.last_ts > TIMEOUT_NS]
        for k in old:
            del self._pending[k]


def upper_layer(ipver: int, proto: int, data: bytes) -> Segment:
    """Skip IPv6 extension headers at the start of a reassembled fragmentable part."""
    pos = 0
    if ipver == 6:
        for _ in range(MAX_EXT):
            if proto not in EXT_HEADERS and proto != AH or pos + 2 > len(data):
                break
            size = (data[pos + 1] + 2) * 4 if proto == AH else (data[pos + 1] + 1) * 8
            proto, pos = data[pos], pos + size
    return Segment(proto, data[pos:], len(data))


def l4_fields(proto: int, seg: bytes) -> dict[str, int] | None:
    """Header fields of a reassembled L4 segment (None when the header is incomplete)."""
    if proto == 6 and len(seg) >= TCP_HEAD.size:
        sp, dp, seq, ack, doff, flags, win = TCP_HEAD.unpack_from(seg)
        hl = (doff >> 4) * 4
        if hl < 20 or hl > len(seg):
            return None
        return {"sport": sp, "dport": dp, "seq": seq, "ack": ack, "tcp_flags": flags, "win": win, "hdr": hl}
    if proto == 17 and len(seg) >= 8:
        sp, dp = PORTS.unpack_from(seg)
        return {"sport": sp, "dport": dp, "hdr": 8}
    if proto in (1, 58) and len(seg) >= 8:
        return {"sport": seg[0], "dport": seg[1], "hdr": 8}
    if proto in (6, 17, 1, 58):
        return None
    return {"hdr": 0}
