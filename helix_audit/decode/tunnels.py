"""Tunnel headers: where the inner packet of each tunnelled row starts, vectorised.

VXLAN (RFC 7348, UDP 4789), Geneve (RFC 8926, UDP 6081), GTP-U (3GPP TS 29.281, UDP 2152, G-PDU with
optional sequence / N-PDU / extension headers), Teredo (RFC 4380, UDP 3544, optional authentication
and origin-indication headers; the payload must be an IPv6 header whose payload length matches),
GRE (RFC 2784 / 2890: checksum, key and sequence fields; IPv4, IPv6, transparent Ethernet 0x6558,
MPLS 0x8847, ERSPAN type II 0x88be and III 0x22eb), IP-in-IP (protocols 4 and 41, RFC 2003 / 4213).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .interface import ENCAP_GENEVE, ENCAP_GRE, ENCAP_GTPU, ENCAP_IPIP, ENCAP_TEREDO, ENCAP_VXLAN, ST_OK
from .ip import UDP, Hdr
from .link import ETH_IPV4, ETH_IPV6, Buf, by_nibble

VXLAN_PORT, GENEVE_PORT, GTPU_PORT, TEREDO_PORT = 4789, 6081, 2152, 3544
GRE_PROTO, IPIP_V4, IPIP_V6 = 47, 4, 41
VXLAN_HDR, GENEVE_HDR, GTP_HDR, GTP_OPT, GRE_HDR, TEREDO_ORIGIN, TEREDO_AUTH = 8, 8, 8, 4, 4, 8, 13
ETH_TRANSPARENT, ETH_MPLS, ETH_ERSPAN2, ETH_ERSPAN3 = 0x6558, 0x8847, 0x88BE, 0x22EB
ERSPAN2_HDR, ERSPAN3_HDR, ERSPAN3_SUB = 8, 12, 8
GTP_GPDU, MAX_GTP_EXT = 0xFF, 4
ETHERNET = 0  # pseudo-ethertype: the inner packet starts with an Ethernet header


@dataclass(eq=False)
class Inner:
    """Rows (indices into the Hdr) whose payload is a tunnel, and where their inner packet starts."""

    rows: np.ndarray
    etype: np.ndarray  # ETHERNET or the inner ethertype
    off: np.ndarray
    bit: np.ndarray  # ENCAP_* of the tunnel peeled


def find(buf: Buf, h: Hdr, rows: np.ndarray) -> Inner:
    """Tunnelled rows among ``rows`` (rows with status OK)."""
    rows = rows[h.status[rows] == ST_OK]
    proto, dp, sp = h.proto[rows], h.dport[rows], h.sport[rows]
    udp = (proto == UDP) & (h.pay_off[rows] >= 0)
    parts = [
        _vxlan(buf, h, rows[udp & (dp == VXLAN_PORT)]),
        _geneve(buf, h, rows[udp & (dp == GENEVE_PORT)]),
        _gtpu(buf, h, rows[udp & ((dp == GTPU_PORT) | (sp == GTPU_PORT))]),
        _teredo(buf, h, rows[udp & ((dp == TEREDO_PORT) | (sp == TEREDO_PORT))]),
        _gre(buf, h, rows[(proto == GRE_PROTO) & (h.l4_off[rows] >= 0)]),
        _ipip(h, rows[((proto == IPIP_V4) | (proto == IPIP_V6)) & (h.l4_off[rows] >= 0)]),
    ]
    parts = [p for p in parts if p.rows.shape[0]]
    if not parts:
        e = np.zeros(0, np.int64)
        return Inner(e, e.astype(np.uint16), e, e.astype(np.uint8))
    cat = [np.concatenate([getattr(p, k) for p in parts]) for k in ("rows", "etype", "off", "bit")]
    _, first = np.unique(cat[0], return_index=True)  # a row matching two tunnel ports: the first wins
    return Inner(*(a[first] for a in cat))


def _mk(rows: np.ndarray, etype: np.ndarray | int, off: np.ndarray, bit: int, keep: np.ndarray) -> Inner:
    et = np.broadcast_to(np.asarray(etype, dtype=np.uint16), rows.shape)
    return Inner(rows[keep], et[keep].copy(), off[keep], np.full(int(keep.sum()), bit, np.uint8))


def _vxlan(buf: Buf, h: Hdr, rows: np.ndarray) -> Inner:
    p = h.pay_off[rows]
    flags = buf.u8(p)
    keep = (p + VXLAN_HDR <= h.ip_end[rows]) & ((flags & 0x08) != 0)
    return _mk(rows, ETHERNET, p + VXLAN_HDR, ENCAP_VXLAN, keep)


def _geneve(buf: Buf, h: Hdr, rows: np.ndarray) -> Inner:
    p = h.pay_off[rows]
    w = buf.u32(p)
    optlen = ((w >> 24) & 0x3F).astype(np.int64) * 4
    ptype = (w & 0xFFFF).astype(np.uint16)
    et = np.where(ptype == ETH_TRANSPARENT, ETHERNET, ptype)
    keep = ((w >> 30) == 0) & (p + GENEVE_HDR + optlen <= h.ip_end[rows])
    keep &= (ptype == ETH_TRANSPARENT) | (ptype == ETH_IPV4) | (ptype == ETH_IPV6)
    return _mk(rows, et, p + GENEVE_HDR + optlen, ENCAP_GENEVE, keep)


def _gtpu(buf: Buf, h: Hdr, rows: np.ndarray) -> Inner:
    p, end = h.pay_off[rows], h.ip_end[rows]
    w = buf.u64(p)
    flags, mtype = (w >> 56).astype(np.int64), ((w >> 48) & 0xFF).astype(np.int64)
    keep = ((flags >> 5) == 1) & ((flags & 0x10) != 0) & (mtype == GTP_GPDU)
    opt = (flags & 0x07) != 0
    cur = p + GTP_HDR + np.where(opt, GTP_OPT, 0)
    nxt = np.where((flags & 0x04) != 0, buf.u8(cur - 1), 0).astype(np.int64)
    for _ in range(MAX_GTP_EXT):
        ext = keep & (nxt != 0) & (cur < end)
        if not ext.any():
            break
        ln = buf.u8(cur).astype(np.int64) * 4
        keep &= ~ext | (ln > 0)
        nxt = np.where(ext, buf.u8(cur + ln - 1), nxt)
        cur = np.where(ext, cur + ln, cur)
    keep &= (nxt == 0) & (cur < end)
    return _mk(rows, by_nibble(buf, cur, end), cur, ENCAP_GTPU, keep & (by_nibble(buf, cur, end) != 0))


def _teredo(buf: Buf, h: Hdr, rows: np.ndarray) -> Inner:
    p, end, decl = h.pay_off[rows], h.ip_end[rows], h.decl_end[rows]
    w = buf.u32(p)
    auth = (w >> 16) == 1
    cur = p + np.where(auth, TEREDO_AUTH + ((w >> 8) & 0xFF) + (w & 0xFF), 0).astype(np.int64)
    origin = buf.u16(cur) == 0
    cur = cur + np.where(origin, TEREDO_ORIGIN, 0)
    v6 = buf.u64(cur)
    plen = ((v6 >> 16) & 0xFFFF).astype(np.int64)
    keep = ((v6 >> 60) == 6) & (cur + 40 <= end) & (cur + 40 + plen == decl)
    return _mk(rows, ETH_IPV6, cur, ENCAP_TEREDO, keep)


def _gre(buf: Buf, h: Hdr, rows: np.ndarray) -> Inner:
    o, end = h.l4_off[rows], h.ip_end[rows]
    w = buf.u32(o)
    flags, ptype = (w >> 16).astype(np.int64), (w & 0xFFFF).astype(np.uint16)
    size = GRE_HDR + 4 * (((flags >> 15) & 1) + ((flags >> 13) & 1) + ((flags >> 12) & 1))
    keep = ((flags & 0x4007) == 0) & (o + size <= end)  # version 0, no source routing
    seq = (flags & 0x1000) != 0
    erspan = np.where(ptype == ETH_ERSPAN2, np.where(seq, ERSPAN2_HDR, 0), 0)
    sub = np.where((buf.u8(o + size + 11) & 1) != 0, ERSPAN3_SUB, 0)
    erspan = np.where(ptype == ETH_ERSPAN3, ERSPAN3_HDR + sub, erspan)
    eth = (ptype == ETH_TRANSPARENT) | (ptype == ETH_ERSPAN2) | (ptype == ETH_ERSPAN3)
    et = np.where(eth, ETHERNET, ptype)
    keep &= eth | (ptype == ETH_IPV4) | (ptype == ETH_IPV6) | (ptype == ETH_MPLS)
    return _mk(rows, et, o + size + erspan, ENCAP_GRE, keep)


def _ipip(h: Hdr, rows: np.ndarray) -> Inner:
    et = np.where(h.proto[rows] == IPIP_V4, ETH_IPV4, ETH_IPV6)
    return _mk(rows, et, h.l4_off[rows], ENCAP_IPIP, np.ones(rows.shape[0], dtype=bool))
