"""IPv4, IPv6 and transport headers, vectorised over a set of rows.

IPv4 (RFC 791: IHL and options, total length, fragments), IPv6 (RFC 8200: extension headers 0, 43,
44, 60, 135, 139, 140 and AH 51 (RFC 4302) walked in a bounded loop), TCP (RFC 9293), UDP (RFC 768),
ICMP (RFC 792) and ICMPv6 (RFC 4443). Each header is read as a few big-endian 64-bit words per row and
split with shifts; lengths are checked against ``lim`` (captured end) and the declared IP length.
A header cut by the capture is ST_TRUNCATED; a header that contradicts itself (IHL < 5, TCP data
offset < 5, an extension header past the declared payload) is ST_MALFORMED.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .interface import ST_FRAGMENT, ST_MALFORMED, ST_OK, ST_TRUNCATED
from .link import ETH_IPV4, ETH_IPV6, Buf, Link

IPV4_MIN, IPV6_HDR, TCP_MIN, UDP_HDR, ICMP_HDR, FRAG_HDR = 20, 40, 20, 8, 8, 8
TCP, UDP, ICMP, ICMPV6, IPV6_FRAG, IPV6_AH = 6, 17, 1, 58, 44, 51
MAX_EXT_HEADERS = 16
V4_MAPPED = np.uint64(0xFFFF_0000_0000)
M32, M16, M8 = np.uint64(0xFFFF_FFFF), np.uint64(0xFFFF), np.uint64(0xFF)

_EXT = np.zeros(256, dtype=bool)
_EXT[[0, 43, 44, 51, 60, 135, 139, 140]] = True

_DTYPES = {
    "status": np.uint8,
    "ethertype": np.uint16,
    "ipver": np.uint8,
    "proto": np.uint8,
    "src_hi": np.uint64,
    "src_lo": np.uint64,
    "dst_hi": np.uint64,
    "dst_lo": np.uint64,
    "ip_len": np.int64,
    "ttl": np.uint8,
    "sport": np.uint16,
    "dport": np.uint16,
    "tcp_flags": np.uint8,
    "seq": np.uint32,
    "ack": np.uint32,
    "win": np.uint16,
    "l4_off": np.int64,
    "pay_off": np.int64,
    "pay_len": np.int64,
    "pay_wire": np.int64,
    "encap": np.uint8,
    "vlan": np.uint16,
    "frag": np.uint8,
    # internal: IP header start, usable end, declared end, fragment offset (bytes), MF, identification
    "ip_off": np.int64,
    "ip_end": np.int64,
    "decl_end": np.int64,
    "frag_off": np.int64,
    "frag_mf": np.uint8,
    "frag_id": np.uint32,
    "frag_data": np.int64,
    "frag_nh": np.uint8,
}
OUT_FIELDS = tuple(list(_DTYPES)[:23])


@dataclass(eq=False)
class Hdr:
    """Decoded columns for m rows (the PacketColumns fields plus internal bookkeeping)."""

    status: np.ndarray
    ethertype: np.ndarray
    ipver: np.ndarray
    proto: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    ip_len: np.ndarray
    ttl: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    tcp_flags: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    win: np.ndarray
    l4_off: np.ndarray
    pay_off: np.ndarray
    pay_len: np.ndarray
    pay_wire: np.ndarray
    encap: np.ndarray
    vlan: np.ndarray
    frag: np.ndarray
    ip_off: np.ndarray
    ip_end: np.ndarray
    decl_end: np.ndarray
    frag_off: np.ndarray
    frag_mf: np.ndarray
    frag_id: np.ndarray
    frag_data: np.ndarray  # offset of the fragment's data (after the IPv4 header / IPv6 fragment header)
    frag_nh: np.ndarray  # protocol of the fragmented part (IPv6: the fragment header's next header)

    @classmethod
    def alloc(cls, m: int) -> Hdr:
        h = cls(**{k: np.zeros(m, dtype=dt) for k, dt in _DTYPES.items()})
        h.l4_off[:] = -1
        h.pay_off[:] = -1
        return h

    def take(self, rows: np.ndarray) -> Hdr:
        return Hdr(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def put(self, rows: np.ndarray, other: Hdr) -> None:
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(other, f.name)


def _status(h: Hdr, rows: np.ndarray, end: np.ndarray, lim: np.ndarray, decl: np.ndarray) -> np.ndarray:
    """Rows (of ``rows``) whose header ending at ``end`` does not fit: marked and returned as a mask."""
    bad = end > lim
    h.status[rows[bad]] = np.where(end[bad] > decl[bad], ST_MALFORMED, ST_TRUNCATED)
    return bad


def decode_ip(buf: Buf, lk: Link, lim: np.ndarray) -> Hdr:
    """L3 + L4 for rows whose link layer was resolved into ``lk``."""
    m = lk.off.shape[0]
    h = Hdr.alloc(m)
    h.status[:] = lk.status
    h.vlan[:] = lk.vlan
    h.encap[:] = lk.encap
    h.ethertype[:] = lk.etype
    ok = lk.status == ST_OK
    v4 = np.flatnonzero(ok & (lk.etype == ETH_IPV4))
    v6 = np.flatnonzero(ok & (lk.etype == ETH_IPV6))
    if v4.shape[0]:
        _ipv4(buf, h, v4, lk.off[v4], lim[v4])
    if v6.shape[0]:
        _ipv6(buf, h, v6, lk.off[v6], lim[v6])
    l4 = np.flatnonzero((h.status == ST_OK) & (h.l4_off >= 0))
    if l4.shape[0]:
        decode_l4(buf, h, l4)
    fr = np.flatnonzero(h.frag)
    if fr.shape[0]:
        h.status[fr[h.status[fr] == ST_OK]] = ST_FRAGMENT
    return h


def _ipv4(buf: Buf, h: Hdr, rows: np.ndarray, o: np.ndarray, lim: np.ndarray) -> None:
    w0, w1 = buf.u64(o), buf.u64(o + 8)
    ver, ihl = (w0 >> 60), ((w0 >> 56) & 0xF) * 4
    tot = ((w0 >> 32) & M16).astype(np.int64)
    ihl = ihl.astype(np.int64)
    st = np.where(o + IPV4_MIN > lim, ST_TRUNCATED, ST_OK)
    st = np.where((o < lim) & ((ver != 4) | (ihl < IPV4_MIN)), ST_MALFORMED, st)
    full = st == ST_OK
    st = np.where(full & (o + ihl > lim), ST_TRUNCATED, st)
    st = np.where(full & (tot != 0) & (tot < ihl), ST_MALFORMED, st)
    h.status[rows] = st
    r, o, lim, w0, w1, tot, ihl = (a[full] for a in (rows, o, lim, w0, w1, tot, ihl))
    decl = o + np.where(tot == 0, lim - o, tot)  # total length 0: TSO/LSO capture, trust caplen
    h.ipver[r] = 4
    h.ttl[r] = (w1 >> 56).astype(np.uint8)
    h.proto[r] = ((w1 >> 48) & M8).astype(np.uint8)
    h.src_lo[r] = V4_MAPPED | (w1 & M32)
    h.dst_lo[r] = V4_MAPPED | buf.u32(o + 16)
    h.ip_off[r], h.decl_end[r], h.ip_end[r] = o, decl, np.minimum(decl, lim)
    h.ip_len[r] = decl - o
    fw = (w0 & M16).astype(np.int64)
    h.frag_off[r] = (fw & 0x1FFF) * 8
    h.frag_mf[r] = (fw >> 13) & 1
    h.frag_id[r] = ((w0 >> 16) & M16).astype(np.uint32)
    h.frag[r] = ((fw & 0x3FFF) != 0).astype(np.uint8)
    h.frag_data[r], h.frag_nh[r] = o + ihl, h.proto[r]
    good = h.status[r] == ST_OK
    h.l4_off[r[good]] = np.where(h.frag_off[r[good]] > 0, -1, o[good] + ihl[good])


def _ipv6(buf: Buf, h: Hdr, rows: np.ndarray, o: np.ndarray, lim: np.ndarray) -> None:
    w0 = buf.u64(o)
    plen = ((w0 >> 16) & M16).astype(np.int64)
    st = np.where(o + IPV6_HDR > lim, ST_TRUNCATED, ST_OK)
    st = np.where((o < lim) & ((w0 >> 60) != 6), ST_MALFORMED, st)
    h.status[rows] = st
    full = st == ST_OK
    r, o, lim, w0, plen = (a[full] for a in (rows, o, lim, w0, plen))
    decl = o + IPV6_HDR + np.where(plen == 0, np.maximum(lim - o - IPV6_HDR, 0), plen)  # 0: jumbo/TSO
    h.ipver[r] = 6
    h.ttl[r] = (w0 & M8).astype(np.uint8)
    h.src_hi[r], h.src_lo[r] = buf.u64(o + 8), buf.u64(o + 16)
    h.dst_hi[r], h.dst_lo[r] = buf.u64(o + 24), buf.u64(o + 32)
    h.ip_off[r], h.decl_end[r], h.ip_end[r] = o, decl, np.minimum(decl, lim)
    h.ip_len[r] = decl - o
    nh = ((w0 >> 8) & M8).astype(np.uint8)
    cur = o + IPV6_HDR
    ext = _EXT[nh]
    if ext.any():
        _walk_ext(buf, h, r[ext], nh[ext], cur[ext])
        nh[ext], cur[ext] = h.proto[r[ext]], h.l4_off[r[ext]]
    h.proto[r] = nh
    good = (h.status[r] == ST_OK) & (cur >= 0)
    h.l4_off[r[good]] = cur[good]


def _walk_ext(buf: Buf, h: Hdr, r: np.ndarray, nh: np.ndarray, cur: np.ndarray) -> None:
    """Walk IPv6 extension headers; leaves the upper-layer protocol in proto and its offset in l4_off."""
    nh, cur = nh.copy(), cur.copy()
    act = np.ones(r.shape[0], dtype=bool)
    for _ in range(MAX_EXT_HEADERS):
        act &= _EXT[nh]
        i = np.flatnonzero(act)
        if i.shape[0] == 0:
            break
        c, n = cur[i], nh[i]
        w = buf.u64(c)
        bad = _status(h, r[i], c + FRAG_HDR, h.ip_end[r[i]], h.decl_end[r[i]])
        ln = ((w >> 48) & M8).astype(np.int64)
        size = np.where(n == IPV6_FRAG, FRAG_HDR, np.where(n == IPV6_AH, (ln + 2) * 4, (ln + 1) * 8))
        bad |= _status(h, r[i], c + size, h.ip_end[r[i]], h.decl_end[r[i]]) & ~bad
        fr = (n == IPV6_FRAG) & ~bad
        if fr.any():
            fw = ((w[fr] >> 32) & M16).astype(np.int64)
            rf = r[i[fr]]
            h.frag_off[rf], h.frag_mf[rf] = fw & 0xFFF8, fw & 1
            h.frag_id[rf] = (w[fr] & M32).astype(np.uint32)
            h.frag[rf] = ((fw & 0xFFF9) != 0).astype(np.uint8)  # atomic fragments (RFC 6946) are not
            h.frag_data[rf], h.frag_nh[rf] = c[fr] + FRAG_HDR, (w[fr] >> 56).astype(np.uint8)
        nh[i] = np.where(bad, nh[i], (w >> 56).astype(np.uint8))
        cur[i] = np.where(bad | (fr & (h.frag_off[r[i]] > 0)), -1, c + size)
        act[i[bad]] = False
        act[i[fr]] = h.frag_off[r[i[fr]]] == 0
    else:
        h.status[r[act & _EXT[nh]]] = ST_MALFORMED
    h.proto[r], h.l4_off[r] = nh, cur


def decode_l4(buf: Buf, h: Hdr, rows: np.ndarray) -> None:
    """TCP / UDP / ICMP / ICMPv6 headers at ``l4_off`` of ``rows``; others get proto only."""
    o, end, decl, proto = h.l4_off[rows], h.ip_end[rows], h.decl_end[rows], h.proto[rows]
    w0 = buf.u64(o)
    tcp, udp = proto == TCP, proto == UDP
    icmp = (proto == ICMP) | ((proto == ICMPV6) & (h.ipver[rows] == 6))
    ports = tcp | udp
    has4 = o + 4 <= end
    hdr = np.where(tcp, TCP_MIN, np.where(udp, UDP_HDR, np.where(icmp, ICMP_HDR, 0)))
    sp = np.where(ports, w0 >> 48, np.where(icmp, w0 >> 56, 0))
    dp = np.where(ports, (w0 >> 32) & M16, np.where(icmp, (w0 >> 48) & M8, 0))
    h.sport[rows] = np.where(has4, sp, 0).astype(np.uint16)
    h.dport[rows] = np.where(has4, dp, 0).astype(np.uint16)
    t = np.flatnonzero(tcp)
    if t.shape[0]:
        w1 = buf.u64(o[t] + 8)
        doff = ((w1 >> 28) & 0xF).astype(np.int64) * 4
        rt = rows[t]
        full = o[t] + TCP_MIN <= end[t]
        h.seq[rt] = np.where(full, w0[t] & M32, 0).astype(np.uint32)
        h.ack[rt] = np.where(full, w1 >> 32, 0).astype(np.uint32)
        h.tcp_flags[rt] = np.where(o[t] + 14 <= end[t], (w1 >> 16) & M8, 0).astype(np.uint8)
        h.win[rt] = np.where(full, w1 & M16, 0).astype(np.uint16)
        hdr[t] = np.where(full & (doff < TCP_MIN), -1, np.maximum(doff, TCP_MIN))
    malformed = hdr < 0
    h.status[rows[malformed]] = ST_MALFORMED
    hdr = np.maximum(hdr, 0)
    bad = _status(h, rows, o + hdr, end, decl) | malformed
    pay = np.where(bad, -1, o + hdr)
    h.pay_off[rows] = pay
    h.pay_len[rows] = np.where(bad, 0, end - pay)
    h.pay_wire[rows] = np.where(bad, 0, decl - pay)
