"""ICMP and ICMPv6 for the flow table: error messages tied to the flow they quote, echo-style keys.

RFC 792 (ICMP), RFC 4443 (ICMPv6), RFC 1812 4.3.2.3 (routers quote the IP header + >= 8 bytes),
RFC 8200 (IPv6 extension headers skipped to reach the quoted transport header).

Errors (v4 types 3, 4, 5, 11, 12; v6 types 1-4) are not flows of their own: the quoted IP header and the
first L4 bytes name the flow that provoked them. Errors are rare, so the quote is parsed here in plain,
bounds-checked Python, one row at a time. Other ICMP messages form ``icmp``/``icmp6`` flows keyed like
Zeek's: (type, counterpart type) for request/reply pairs, (type, code) for one-way messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..decode.interface import PacketColumns

PROTO_ICMP = 1
PROTO_ICMP6 = 58
ERROR_TYPES_V4 = frozenset({3, 4, 5, 11, 12})
ERROR_TYPES_V6 = frozenset({1, 2, 3, 4})

ICMP_HEADER_LEN = 8
IPV4_MIN_HEADER = 20
IPV6_HEADER_LEN = 40
IPV4_ADDRS = "!4s4s"  # src, dst at offset 12
IPV6_ADDRS = "!16s16s"  # src, dst at offset 8
PORTS = "!HH"
V6_EXT_HEADERS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options (length-prefixed)
V6_FRAGMENT = 44

TYPE_NAMES_V4 = {
    3: "unreachable",
    4: "source_quench",
    5: "redirect",
    11: "time_exceeded",
    12: "parameter_problem",
}
TYPE_NAMES_V6 = {1: "unreachable", 2: "packet_too_big", 3: "time_exceeded", 4: "parameter_problem"}
UNREACH_CODES_V4 = {
    0: "net",
    1: "host",
    2: "protocol",
    3: "port",
    4: "frag_needed",
    5: "source_route_failed",
    6: "net_unknown",
    7: "host_unknown",
    8: "host_isolated",
    9: "net_prohibited",
    10: "host_prohibited",
    11: "net_tos",
    12: "host_tos",
    13: "admin_prohibited",
    14: "host_precedence",
    15: "precedence_cutoff",
}
UNREACH_CODES_V6 = {
    0: "no_route",
    1: "admin_prohibited",
    2: "beyond_scope",
    3: "address",
    4: "port",
    5: "policy_failed",
    6: "reject_route",
}

# Zeek's ICMP "counterpart" types: request and reply of a pair share one flow.
_PAIRS_V4 = [(8, 0), (13, 14), (15, 16), (17, 18), (10, 9)]
_PAIRS_V6 = [(128, 129), (130, 131), (133, 134), (135, 136), (139, 140), (144, 145), (146, 147)]
#: Request-side types (their sender is the originator).
REQUEST_TYPES_V4 = frozenset(a for a, _ in _PAIRS_V4)
REQUEST_TYPES_V6 = frozenset(a for a, _ in _PAIRS_V6)


def _counterparts(pairs: list[tuple[int, int]]) -> np.ndarray:
    table = np.full(256, -1, dtype=np.int64)
    for a, b in pairs:
        table[a], table[b] = b, a
    return table


COUNTERPART_V4 = _counterparts(_PAIRS_V4)
COUNTERPART_V6 = _counterparts(_PAIRS_V6)
IS_REQUEST_V4 = np.zeros(256, dtype=bool)
IS_REQUEST_V4[list(REQUEST_TYPES_V4)] = True
IS_REQUEST_V6 = np.zeros(256, dtype=bool)
IS_REQUEST_V6[list(REQUEST_TYPES_V6)] = True


def error_name(proto: int, icmp_type: int, code: int) -> str:
    """``'unreachable/3'``: type name / numeric code (see :func:`code_name` for the code's name)."""
    names = TYPE_NAMES_V4 if proto == PROTO_ICMP else TYPE_NAMES_V6
    return f"{names.get(icmp_type, f'type{icmp_type}')}/{code}"


def code_name(proto: int, icmp_type: int, code: int) -> str:
    """Readable name of an unreachable code (``'admin_prohibited'``), else the number as text."""
    if proto == PROTO_ICMP and icmp_type == 3:
        return UNREACH_CODES_V4.get(code, str(code))
    if proto == PROTO_ICMP6 and icmp_type == 1:
        return UNREACH_CODES_V6.get(code, str(code))
    return str(code)


def icmp_key_ports(proto: np.ndarray, icmp_type: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Zeek's responder "port" for ICMP rows: the counterpart type of a pair, else the code."""
    t = icmp_type.astype(np.int64) & 0xFF
    cp = np.where(proto == PROTO_ICMP, COUNTERPART_V4[t], COUNTERPART_V6[t])
    return np.where(cp >= 0, cp, code.astype(np.int64))


def _is_error(proto: np.ndarray, icmp_type: np.ndarray) -> np.ndarray:
    """ICMP destination unreachable, source quench, redirect, time exceeded, parameter problem;
    ICMPv6 types 1-4: the messages that quote the packet they answer."""
    t = icmp_type
    v4 = (proto == PROTO_ICMP) & ((t == 3) | (t == 4) | (t == 5) | (t == 11) | (t == 12))
    v6 = (proto == PROTO_ICMP6) & (t >= 1) & (t <= 4)
    return v4 | v6


def error_mask(cols: PacketColumns, ok: np.ndarray) -> np.ndarray:
    """Rows that are ICMP/ICMPv6 error messages."""
    return ok & _is_error(cols.proto, cols.sport)


def error_rows(cols: PacketColumns) -> np.ndarray:
    """Indices of the rows that are decoded ICMP/ICMPv6 error messages (``error_mask`` of the rows
    decoded as IP), found among the few ICMP rows only."""
    rows = np.flatnonzero((cols.proto == PROTO_ICMP) | (cols.proto == PROTO_ICMP6))
    if rows.shape[0] == 0:
        return rows
    ok = (cols.status[rows] == 0) & (cols.ipver[rows] > 0)
    return rows[ok & _is_error(cols.proto[rows], cols.sport[rows])]


@dataclass(frozen=True)
class Quote:
    """The flow key an ICMP error quotes (addresses as (hi, lo) 64-bit halves, v4 mapped)."""

    proto: int
    src: tuple[int, int]
    dst: tuple[int, int]
    sport: int
    dport: int


def _v4_mapped(raw: bytes) -> tuple[int, int]:
    return 0, 0xFFFF_0000_0000 | int.from_bytes(raw, "big")


def _v6(raw: bytes) -> tuple[int, int]:
    v = int.from_bytes(raw, "big")
    return v >> 64, v & 0xFFFF_FFFF_FFFF_FFFF


def _l4_ports(proto: int, l4: bytes) -> tuple[int, int] | None:
    if len(l4) < 4:
        return None
    a, b = struct.unpack_from(PORTS, l4)
    if proto in (PROTO_ICMP, PROTO_ICMP6):  # quoted ICMP: (type, code) -> Zeek key
        icmp_type, code = l4[0], l4[1]
        cp = (COUNTERPART_V4 if proto == PROTO_ICMP else COUNTERPART_V6)[icmp_type]
        return icmp_type, int(cp) if cp >= 0 else code
    return a, b


def _quote_v4(ip: bytes) -> Quote | None:
    if len(ip) < IPV4_MIN_HEADER or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0x0F) * 4
    if ihl < IPV4_MIN_HEADER or len(ip) < ihl:
        return None
    proto = ip[9]
    src, dst = struct.unpack_from(IPV4_ADDRS, ip, 12)
    ports = _l4_ports(proto, ip[ihl:]) if proto in (6, 17, 132, 1, 58) else (0, 0)
    if ports is None:
        return None
    return Quote(proto, _v4_mapped(src), _v4_mapped(dst), ports[0], ports[1])


def _quote_v6(ip: bytes) -> Quote | None:
    if len(ip) < IPV6_HEADER_LEN or ip[0] >> 4 != 6:
        return None
    nxt, off = ip[6], IPV6_HEADER_LEN
    src, dst = struct.unpack_from(IPV6_ADDRS, ip, 8)
    for _ in range(8):  # bounded walk over extension headers
        if nxt in V6_EXT_HEADERS and len(ip) >= off + 2:
            nxt, off = ip[off], off + (ip[off + 1] + 1) * 8
        elif nxt == V6_FRAGMENT and len(ip) >= off + 8:
            nxt, off = ip[off], off + 8
        else:
            break
    ports = _l4_ports(nxt, ip[off:]) if nxt in (6, 17, 132, 1, 58) else (0, 0)
    if ports is None:
        return None
    return Quote(nxt, _v6(src), _v6(dst), ports[0], ports[1])


def parse_quote(icmp_proto: int, l4: bytes) -> Quote | None:
    """The flow key quoted by one ICMP error (``l4`` = ICMP header + body); None when unusable."""
    if len(l4) < ICMP_HEADER_LEN + 1:
        return None
    ip = l4[ICMP_HEADER_LEN:]
    return _quote_v4(ip) if icmp_proto == PROTO_ICMP else _quote_v6(ip)


@dataclass(frozen=True, eq=False)
class QuotedKeys:
    """Quoted keys of a batch's ICMP error rows (``rows``: batch indices; ``ok``: quote parsed)."""

    rows: np.ndarray
    ok: np.ndarray
    proto: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray
    dport: np.ndarray

    def int_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.proto, self.sport, self.dport

    def addr_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.src_hi, self.src_lo, self.dst_hi, self.dst_lo


def quoted_keys(cols: PacketColumns, rows: np.ndarray) -> QuotedKeys:
    """Parse the quote of every ICMP error row in ``rows`` (few rows: plain Python)."""
    n = len(rows)
    out = {k: np.zeros(n, dtype=np.uint64) for k in ("src_hi", "src_lo", "dst_hi", "dst_lo")}
    proto = np.zeros(n, dtype=np.int64)
    sport = np.zeros(n, dtype=np.int64)
    dport = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    for j, i in enumerate(rows.tolist()):
        q = parse_quote(int(cols.proto[i]), cols.l4(i))
        if q is None:
            continue
        ok[j], proto[j], sport[j], dport[j] = True, q.proto, q.sport, q.dport
        out["src_hi"][j], out["src_lo"][j] = q.src
        out["dst_hi"][j], out["dst_lo"][j] = q.dst
    return QuotedKeys(
        rows, ok, proto, out["src_hi"], out["src_lo"], out["dst_hi"], out["dst_lo"], sport, dport
    )
