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


def _put(dst: np.ndarray, val: np.ndarray | int, mask: np.ndarray) -> None:
    np.copyto(dst, val, where=mask, casting="unsafe")


def decode_ip(buf: Buf, lk: Link, lim: np.ndarray, out: Hdr | None = None) -> Hdr:
    """L3 + L4 for rows whose link layer was resolved into ``lk``.

    Each step runs densely over all m rows (writes masked) when most rows need it, and on the subset
    of rows otherwise, so a chunk of IPv4/TCP pays no gather/scatter of its columns.
    """
    h = Hdr.alloc(lk.off.shape[0]) if out is None else out
    h.status[:] = lk.status
    h.vlan[:] = lk.vlan
    h.encap[:] = lk.encap
    h.ethertype[:] = lk.etype
    ok = lk.status == ST_OK
    _dense_or_subset(buf, h, ok & (lk.etype == ETH_IPV4), _ipv4, lk.off, lim)
    _dense_or_subset(buf, h, ok & (lk.etype == ETH_IPV6), _ipv6, lk.off, lim)
    _dense_or_subset(buf, h, (h.status == ST_OK) & (h.l4_off >= 0), decode_l4, h.l4_off, lim)
    fr = np.flatnonzero(h.frag)
    if fr.shape[0]:
        h.status[fr[h.status[fr] == ST_OK]] = ST_FRAGMENT
    return h


def _dense_or_subset(buf: Buf, h: Hdr, mask: np.ndarray, step, off: np.ndarray, lim: np.ndarray) -> None:  # noqa: ANN001
    m, c = mask.shape[0], int(np.count_nonzero(mask))
    if c == 0:
        return
    if 4 * c >= 3 * m:
        step(buf, h, mask, off, lim)
        return
    idx = np.flatnonzero(mask)
    sub = h.take(idx)
    step(buf, sub, np.ones(c, dtype=bool), off[idx], lim[idx])
    h.put(idx, sub)


def _ipv4(buf: Buf, h: Hdr, mask: np.ndarray, o: np.ndarray, lim: np.ndarray) -> None:
    w0, w1 = buf.u64(o), buf.u64(o + 8)
    b0 = (w0 >> 56).astype(np.int64)
    ver, ihl = b0 >> 4, (b0 & 0xF) * 4
    tot = ((w0 >> 32) & M16).astype(np.int64)
    st = np.where(o + IPV4_MIN > lim, ST_TRUNCATED, ST_OK)
    st = np.where((o < lim) & ((ver != 4) | (ihl < IPV4_MIN)), ST_MALFORMED, st)
    full = mask & (st == ST_OK)
    st = np.where(o + ihl > lim, np.maximum(st, ST_TRUNCATED), st)
    st = np.where(full & (tot != 0) & (tot < ihl), ST_MALFORMED, st)
    _put(h.status, st, mask)
    decl = o + np.where(tot == 0, lim - o, tot)  # total length 0: TSO/LSO capture, trust caplen
    _put(h.ipver, 4, full)
    _put(h.ttl, w1 >> 56, full)
    _put(h.proto, (w1 >> 48) & M8, full)
    _put(h.src_lo, V4_MAPPED | (w1 & M32), full)
    _put(h.dst_lo, V4_MAPPED | buf.u32(o + 16), full)
    _put(h.ip_off, o, full)
    _put(h.decl_end, decl, full)
    _put(h.ip_end, np.minimum(decl, lim), full)
    _put(h.ip_len, decl - o, full)
    fw = (w0 & M16).astype(np.int64)
    foff = (fw & 0x1FFF) * 8
    isfrag = (fw & 0x3FFF) != 0
    if (isfrag & full).any():
        _put(h.frag_off, foff, full)
        _put(h.frag_mf, (fw >> 13) & 1, full)
        _put(h.frag_id, (w0 >> 16) & M16, full)
        _put(h.frag, isfrag, full)
        _put(h.frag_data, o + ihl, full)
        _put(h.frag_nh, h.proto, full)
    _put(h.l4_off, np.where(foff > 0, -1, o + ihl), full & (h.status == ST_OK))


def _ipv6(buf: Buf, h: Hdr, mask: np.ndarray, o: np.ndarray, lim: np.ndarray) -> None:
    w0 = buf.u64(o)
    plen = ((w0 >> 16) & M16).astype(np.int64)
    st = np.where(o + IPV6_HDR > lim, ST_TRUNCATED, ST_OK)
    st = np.where((o < lim) & ((w0 >> 60) != 6), ST_MALFORMED, st)
    _put(h.status, st, mask)
    full = mask & (st == ST_OK)
    decl = o + IPV6_HDR + np.where(plen == 0, np.maximum(lim - o - IPV6_HDR, 0), plen)  # 0: jumbo/TSO
    _put(h.ipver, 6, full)
    _put(h.ttl, w0 & M8, full)
    for k, at in (("src_hi", 8), ("src_lo", 16), ("dst_hi", 24), ("dst_lo", 32)):
        _put(getattr(h, k), buf.u64(o + at), full)
    _put(h.ip_off, o, full)
    _put(h.decl_end, decl, full)
    _put(h.ip_end, np.minimum(decl, lim), full)
    _put(h.ip_len, decl - o, full)
    _put(h.proto, (w0 >> 8) & M8, full)
    _put(h.l4_off, o + IPV6_HDR, full)
    ext = np.flatnonzero(full & _EXT[h.proto])
    if ext.shape[0]:
        _walk_ext(buf, h, ext, h.proto[ext], h.l4_off[ext])
    bad = full & ((h.status != ST_OK) | (h.l4_off < 0))
    _put(h.l4_off, -1, bad)


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
        g = np.flatnonzero(~bad)
        bad[g] = _status(h, r[i[g]], c[g] + size[g], h.ip_end[r[i[g]]], h.decl_end[r[i[g]]])
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


def decode_l4(buf: Buf, h: Hdr, mask: np.ndarray, o: np.ndarray, _lim: np.ndarray) -> None:
    """TCP / UDP / ICMP / ICMPv6 headers at ``l4_off`` of the ``mask`` rows; others get proto only."""
    end, decl, proto = h.ip_end, h.decl_end, h.proto
    w0 = buf.u64(o)
    tcp, udp = proto == TCP, proto == UDP
    icmp = (proto == ICMP) | ((proto == ICMPV6) & (h.ipver == 6))
    ports = tcp | udp
    has4 = mask & (o + 4 <= end)
    hdr = np.where(tcp, TCP_MIN, np.where(udp, UDP_HDR, np.where(icmp, ICMP_HDR, 0)))
    _put(h.sport, np.where(ports, w0 >> 48, w0 >> 56), has4 & (ports | icmp))
    _put(h.dport, np.where(ports, (w0 >> 32) & M16, (w0 >> 48) & M8), has4 & (ports | icmp))
    if tcp.any():
        tm = mask & tcp
        w1 = buf.u64(o + 8)
        doff = ((w1 >> 28) & 0xF).astype(np.int64) * 4
        full = tm & (o + TCP_MIN <= end)
        _put(h.seq, w0 & M32, full)
        _put(h.ack, w1 >> 32, full)
        _put(h.tcp_flags, (w1 >> 16) & M8, tm & (o + 14 <= end))
        _put(h.win, w1 & M16, full)
        doff = np.where(full, doff, TCP_MIN)  # data offset not captured: only the fixed part is known
        hdr = np.where(tm, np.where(doff < TCP_MIN, -1, doff), hdr)
    malformed = mask & (hdr < 0)
    hdr = np.maximum(hdr, 0)
    pay = o + hdr
    cut = mask & ~malformed & (pay > end)
    _put(h.status, np.where(pay > decl, ST_MALFORMED, ST_TRUNCATED), cut)
    _put(h.status, ST_MALFORMED, malformed)
    good = mask & ~malformed & ~cut
    _put(h.pay_off, pay, good)
    _put(h.pay_len, end - pay, good)
    _put(h.pay_wire, decl - pay, good)
