"""Link layers and the ethertype chain, vectorised over a set of rows.

Ethernet II (IEEE 802.3), 802.1Q / 802.1ad / QinQ tags (0x8100, 0x88a8, 0x9100), MPLS label stacks
(RFC 3032; the payload after bottom-of-stack is IPv4/IPv6 by its first nibble), PPPoE session
(RFC 2516) with PPP protocol 0x0021 / 0x0057, Linux cooked capture v1 and v2 (LINKTYPE_LINUX_SLL 113,
LINKTYPE_LINUX_SLL2 276), raw IP (101, 12, 14, 228, 229) and BSD loopback (0, 108).

Every reader here works on arrays of per-row offsets: ``Buf`` gathers big-endian words at those offsets
with one fancy-indexing pass per word (strided uint16/32/64 views of the byte buffer), and every parser
checks each header against the row's ``lim`` (end of usable bytes) before trusting what it read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .interface import ENCAP_MPLS, ENCAP_VLAN, ST_MALFORMED, ST_NOT_IP, ST_OK, ST_TRUNCATED, ST_UNKNOWN_LINK

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
MPLS_TYPES = (0x8847, 0x8848)
PPPOE_SESSION = 0x8864
PPP_TO_ETHERTYPE = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
NULL_FAMILY_V4 = (2,)
NULL_FAMILY_V6 = (24, 28, 30)
MAX_LINK_STEPS = 16  # VLAN tags + MPLS labels + PPPoE headers peeled per packet

ETH_HDR, SLL_HDR, SLL2_HDR, NULL_HDR, VLAN_HDR, MPLS_HDR, PPPOE_HDR = 14, 16, 20, 4, 4, 4, 8

_VLAN = np.zeros(65536, dtype=bool)
_VLAN[list(VLAN_TPIDS)] = True
_CHAIN = _VLAN.copy()
_CHAIN[list(MPLS_TYPES) + [PPPOE_SESSION]] = True


class Buf:
    """Big-endian reads at arrays of offsets; offsets past the buffer are clipped (callers mask)."""

    def __init__(self, data: np.ndarray) -> None:
        data = np.asarray(data, dtype=np.uint8).reshape(-1)
        if data.shape[0] < 16:
            data = np.concatenate([data, np.zeros(16, dtype=np.uint8)])
        self.data = data
        self.n = int(data.shape[0])
        self._v = {k: self._view(data, k) for k in (2, 4, 8)}

    @staticmethod
    def _view(data: np.ndarray, k: int) -> np.ndarray:
        dt = np.dtype(f">u{k}")
        return np.ndarray(shape=(data.shape[0] - k + 1,), dtype=dt, buffer=data, strides=(1,))

    def u8(self, off: np.ndarray) -> np.ndarray:
        return self.data[np.minimum(off, self.n - 1)]

    def u16(self, off: np.ndarray) -> np.ndarray:
        return self._v[2][np.minimum(off, self.n - 2)].astype(np.uint16)

    def u32(self, off: np.ndarray) -> np.ndarray:
        return self._v[4][np.minimum(off, self.n - 4)].astype(np.uint32)

    def u64(self, off: np.ndarray) -> np.ndarray:
        return self._v[8][np.minimum(off, self.n - 8)].astype(np.uint64)


@dataclass(eq=False)
class Link:
    """Where each row's L3 header starts and what it is. ``status`` is ST_OK while still decodable."""

    etype: np.ndarray  # uint16 ethertype of the L3 header at ``off`` (0 unknown)
    off: np.ndarray  # int64
    status: np.ndarray  # uint8
    vlan: np.ndarray  # uint16 outermost VLAN id
    encap: np.ndarray  # uint8 ENCAP_VLAN / ENCAP_MPLS bits

    @classmethod
    def start(cls, etype: np.ndarray, off: np.ndarray, status: np.ndarray) -> Link:
        m = off.shape[0]
        return cls(
            etype.astype(np.uint16),
            off.astype(np.int64),
            status.astype(np.uint8),
            np.zeros(m, np.uint16),
            np.zeros(m, np.uint8),
        )


def _fixed(buf: Buf, off: np.ndarray, lim: np.ndarray, hdr: int, type_at: int) -> Link:
    """A fixed-size header with a 16-bit ethertype at ``type_at``."""
    short = off + hdr > lim
    etype = np.where(short, 0, buf.u16(off + type_at))
    status = np.where(short, ST_TRUNCATED, ST_OK)
    return Link.start(etype, off + hdr, status)


def by_nibble(buf: Buf, off: np.ndarray, lim: np.ndarray) -> np.ndarray:
    """Ethertype of an IP header at ``off`` judged by its version nibble (0 when neither)."""
    ver = buf.u8(off) >> 4
    et = np.where(ver == 4, ETH_IPV4, np.where(ver == 6, ETH_IPV6, 0))
    return np.where(off < lim, et, 0).astype(np.uint16)


def raw_ip(buf: Buf, off: np.ndarray, lim: np.ndarray) -> Link:
    et = by_nibble(buf, off, lim)
    status = np.where(off >= lim, ST_TRUNCATED, np.where(et == 0, ST_MALFORMED, ST_OK))
    return Link.start(et, off, status)


def fixed_ip(off: np.ndarray, etype: int) -> Link:
    return Link.start(np.full(off.shape[0], etype), off, np.zeros(off.shape[0], np.uint8))


def null_loopback(buf: Buf, off: np.ndarray, lim: np.ndarray) -> Link:
    """BSD DLT_NULL / DLT_LOOP: a 4-byte address family in either byte order."""
    word = buf.u32(off)
    fam = np.where(word < 65536, word, word.byteswap())
    et = np.where(np.isin(fam, NULL_FAMILY_V4), ETH_IPV4, np.where(np.isin(fam, NULL_FAMILY_V6), ETH_IPV6, 0))
    short = off + NULL_HDR > lim
    return Link.start(np.where(short, 0, et), off + NULL_HDR, np.where(short, ST_TRUNCATED, ST_OK))


def ethernet(buf: Buf, off: np.ndarray, lim: np.ndarray) -> Link:
    return resolve(buf, _fixed(buf, off, lim, ETH_HDR, 12), lim)


def link_layer(buf: Buf, linktype: int, off: np.ndarray, lim: np.ndarray) -> Link:
    """Decode the link header of rows that share ``linktype`` and resolve the ethertype chain."""
    if linktype == 1:
        return ethernet(buf, off, lim)
    if linktype == 113:
        return resolve(buf, _fixed(buf, off, lim, SLL_HDR, 14), lim)
    if linktype == 276:
        return resolve(buf, _fixed(buf, off, lim, SLL2_HDR, 0), lim)
    if linktype in (101, 12, 14):
        return raw_ip(buf, off, lim)
    if linktype == 228:
        return fixed_ip(off, ETH_IPV4)
    if linktype == 229:
        return fixed_ip(off, ETH_IPV6)
    if linktype in (0, 108):
        return null_loopback(buf, off, lim)
    m = off.shape[0]
    return Link.start(np.zeros(m), off, np.full(m, ST_UNKNOWN_LINK))


def resolve(buf: Buf, lk: Link, lim: np.ndarray) -> Link:
    """Peel VLAN tags, MPLS labels and PPPoE headers until an L3 ethertype remains."""
    for _ in range(MAX_LINK_STEPS):
        act = np.flatnonzero(_CHAIN[lk.etype] & (lk.status == ST_OK))
        if act.shape[0] == 0:
            break
        et, o = lk.etype[act], lk.off[act]
        is_vlan, is_mpls = _VLAN[et], np.isin(et, MPLS_TYPES)
        hdr = np.where(is_vlan | is_mpls, VLAN_HDR, PPPOE_HDR)
        short = o + hdr > lim[act]
        w = buf.u64(o)
        hi16, lo16 = (w >> 48).astype(np.uint16), (w & 0xFFFF).astype(np.uint16)
        nxt = np.where(is_vlan, (w >> 32) & 0xFFFF, 0).astype(np.uint16)
        ppp = np.where(lo16 == 0x0021, ETH_IPV4, np.where(lo16 == 0x0057, ETH_IPV6, 0))
        pppoe_ok = hi16 == 0x1100  # version 1, type 1, code 0 (session data)
        nxt = np.where(~is_vlan & ~is_mpls, np.where(pppoe_ok, ppp, 0), nxt)
        bos = ((w >> 40) & 1).astype(bool)
        after = by_nibble(buf, o + MPLS_HDR, lim[act])
        nxt = np.where(is_mpls, np.where(bos, after, et), nxt).astype(np.uint16)
        first_tag = is_vlan & ((lk.encap[act] & ENCAP_VLAN) == 0) & ~short
        lk.vlan[act] = np.where(first_tag, hi16 & 0x0FFF, lk.vlan[act])
        lk.encap[act] |= np.where(is_vlan, ENCAP_VLAN, 0).astype(np.uint8)
        lk.encap[act] |= np.where(is_mpls, ENCAP_MPLS, 0).astype(np.uint8)
        lk.etype[act] = np.where(short, 0, nxt)
        lk.off[act] = o + hdr
        lk.status[act] = np.where(short, ST_TRUNCATED, ST_OK)
    else:
        act = np.flatnonzero(_CHAIN[lk.etype] & (lk.status == ST_OK))
        lk.status[act] = ST_MALFORMED
    lk.status[(lk.status == ST_OK) & (lk.etype != ETH_IPV4) & (lk.etype != ETH_IPV6)] = ST_NOT_IP
    return lk
