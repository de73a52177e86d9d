"""The common case of decode in one numba pass: every PacketColumns field of a row at once.

Most packets are Ethernet (optionally VLAN-tagged), Linux cooked or raw IP, carrying a plain IPv4 or
IPv6 header and a complete TCP, UDP, ICMP or ICMPv6 header, or are not IP at all (ARP, LLDP). For
those rows :func:`fast_rows` reads each header once, while the row's bytes are in cache, instead of
the dozen numpy passes (gathers, masks, scatters) of the general path, which cost ~0.5 µs a packet.

Anything else is left to the general numpy path (``core``) by listing the row in ``fallback``:
truncated or malformed headers, IP fragments, IPv6 extension headers, tunnels (IP-in-IP, GRE and the
UDP tunnel ports), MPLS, PPPoE, other link types, other transports. A row the kernel does decode
gets exactly the columns the general path would give it (``tests/decode/test_fast.py`` checks both
paths against each other on mixed, truncated and mutated packets).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .interface import ST_NOT_IP, ST_OK
from .link import ETH_HDR, ETH_IPV4, ETH_IPV6, MAX_LINK_STEPS, SLL2_HDR, SLL_HDR, VLAN_HDR
from .tunnels import GENEVE_PORT, GTPU_PORT, TEREDO_PORT, VXLAN_PORT

V4_MAPPED = 0xFFFF_0000_0000
WARM_BLOCK = 256  # rows whose header lines are loaded ahead of decoding them
IPV4_MIN, IPV6_HDR, TCP_MIN, UDP_HDR, ICMP_HDR = 20, 40, 20, 8, 8
# link kinds by linktype (index < 512): where the ethertype is, or how the L3 header is found
LK_NONE, LK_ETH, LK_SLL, LK_SLL2, LK_RAW, LK_V4, LK_V6 = 0, 1, 2, 3, 4, 5, 6
LINK_KIND = np.zeros(512, dtype=np.int8)
LINK_KIND[1], LINK_KIND[113], LINK_KIND[276] = LK_ETH, LK_SLL, LK_SLL2
LINK_KIND[[101, 12, 14]] = LK_RAW
LINK_KIND[228], LINK_KIND[229] = LK_V4, LK_V6
# L3 ethertypes the general path must see (MPLS, PPPoE session): every other non-IP type is "not IP"
CHAIN_SLOW = np.zeros(65536, dtype=np.bool_)
CHAIN_SLOW[[0x8847, 0x8848, 0x8864]] = True
VLAN_TPID = np.zeros(65536, dtype=np.bool_)
VLAN_TPID[[0x8100, 0x88A8, 0x9100]] = True
IPV6_EXT = np.zeros(256, dtype=np.bool_)
IPV6_EXT[[0, 43, 44, 51, 60, 135, 139, 140]] = True
FAST_TABLES = (LINK_KIND, VLAN_TPID, CHAIN_SLOW, IPV6_EXT)  # fast_rows' lookup-table arguments


@njit(cache=True, inline="always")
def _u16(d, p):  # noqa: ANN001, ANN202
    return (np.int64(d[p]) << 8) | np.int64(d[p + 1])


@njit(cache=True, inline="always")
def _u32(d, p):  # noqa: ANN001, ANN202
    return (_u16(d, p) << 16) | _u16(d, p + 2)


@njit(cache=True, inline="always")
def _u64(d, p):  # noqa: ANN001, ANN202
    return (np.uint64(_u32(d, p)) << np.uint64(32)) | np.uint64(_u32(d, p + 4))


@njit(cache=True, inline="always")
def _warm(d, off, lo, hi):  # noqa: ANN001, ANN202
    """Load the first two cache lines of rows lo:hi. Independent loads overlap; the decode's loads
    depend on branches that mispredict, which serialises their cache misses (~80 -> ~35 ns a row)."""
    s = 0
    for r in range(lo, hi):
        q = off[r]
        if q >= 0 and q + 64 < d.shape[0]:
            s += d[q] + d[q + 64]
    return s


@njit(cache=True, inline="always")
def _link(d, o, lim, kind, vlan_tpid, chain_slow):  # noqa: ANN001, ANN202
    """(ethertype, L3 offset, vlan, encap, ok) after the link header and any VLAN tags."""
    et = -1
    if kind == LK_ETH:
        if o + ETH_HDR <= lim:
            et, o = _u16(d, o + 12), o + ETH_HDR
    elif kind == LK_SLL:
        if o + SLL_HDR <= lim:
            et, o = _u16(d, o + 14), o + SLL_HDR
    elif kind == LK_SLL2:
        if o + SLL2_HDR <= lim:
            et, o = _u16(d, o), o + SLL2_HDR
    elif kind == LK_RAW:
        if o < lim:
            v = d[o] >> 4
            et = ETH_IPV4 if v == 4 else (ETH_IPV6 if v == 6 else -1)
    elif kind == LK_V4:
        et = ETH_IPV4
    elif kind == LK_V6:
        et = ETH_IPV6
    vlan, encap, steps = 0, 0, 0
    while et >= 0 and vlan_tpid[et]:
        if o + VLAN_HDR > lim or steps == MAX_LINK_STEPS:
            return -1, o, 0, 0
        if encap == 0:
            vlan = _u16(d, o) & 0x0FFF
        encap = 1
        et, o, steps = _u16(d, o + 2), o + VLAN_HDR, steps + 1
    if et >= 0 and chain_slow[et]:
        et = -1
    return et, o, vlan, encap


@njit(cache=True)
def fast_rows(  # noqa: PLR0913, PLR0915
    d,
    off,
    caplen,
    linktype,
    link_kind,
    vlan_tpid,
    chain_slow,
    ipv6_ext,
    status,
    ethertype,
    ipver,
    proto,
    src_hi,
    src_lo,
    dst_hi,
    dst_lo,
    ip_len,
    ttl,
    sport,
    dport,
    tcp_flags,
    seq,
    ack,
    win,
    l4_off,
    pay_off,
    pay_len,
    pay_wire,
    encap,
    vlan,
    frag,
    fallback,
):  # noqa: ANN001, ANN201, E501
    """Decode the rows it can into the column arrays; the others go to ``fallback``. Returns their
    count (and a checksum of the warmed bytes, to be ignored)."""
    size, n = d.shape[0], off.shape[0]
    nfb = warm = 0
    for r in range(n):
        if r % WARM_BLOCK == 0:
            warm += _warm(d, off, r, min(r + WARM_BLOCK, n))
        o = off[r]
        lim = min(o + max(caplen[r], 0), size)
        lt = linktype[r]
        kind = link_kind[lt] if 0 <= lt < link_kind.shape[0] else LK_NONE
        et = -1
        vl = enc = 0
        if o >= 0 and kind != LK_NONE:
            et, o, vl, enc = _link(d, o, lim, kind, vlan_tpid, chain_slow)
        if et < 0:
            fallback[nfb] = r
            nfb += 1
            continue
        encap[r], vlan[r], ethertype[r], frag[r] = enc, vl, et, 0
        if et != ETH_IPV4 and et != ETH_IPV6:
            status[r], ipver[r], proto[r], ttl[r] = ST_NOT_IP, 0, 0, 0
            src_hi[r] = src_lo[r] = dst_hi[r] = dst_lo[r] = 0
            ip_len[r] = sport[r] = dport[r] = tcp_flags[r] = seq[r] = ack[r] = win[r] = 0
            l4_off[r] = pay_off[r] = -1
            pay_len[r] = pay_wire[r] = 0
            continue
        v, pr, hop, l4, decl = 0, 0, 0, 0, 0
        s_hi = s_lo = d_hi = d_lo = np.uint64(0)
        if et == ETH_IPV4:
            if o + IPV4_MIN <= lim and d[o] >> 4 == 4:
                ihl, tot = (d[o] & 0xF) * 4, _u16(d, o + 2)
                whole = (tot == 0 or tot >= ihl) and (_u16(d, o + 6) & 0x3FFF) == 0  # and no fragment
                if ihl >= IPV4_MIN and o + ihl <= lim and whole:
                    v = 4
                    decl = o + tot if tot else lim
                    pr, hop, l4 = d[o + 9], d[o + 8], o + ihl
                    s_lo = np.uint64(V4_MAPPED) | np.uint64(_u32(d, o + 12))
                    d_lo = np.uint64(V4_MAPPED) | np.uint64(_u32(d, o + 16))
        elif o + IPV6_HDR <= lim and d[o] >> 4 == 6 and not ipv6_ext[d[o + 6]]:
            v = 6
            plen = _u16(d, o + 4)
            decl = o + IPV6_HDR + (plen if plen else max(lim - o - IPV6_HDR, 0))
            pr, hop, l4 = d[o + 6], d[o + 7], o + IPV6_HDR
            s_hi, s_lo, d_hi, d_lo = _u64(d, o + 8), _u64(d, o + 16), _u64(d, o + 24), _u64(d, o + 32)
        if v == 0:
            fallback[nfb] = r
            nfb += 1
            continue
        end = min(decl, lim)
        sp = dp = fl = sq = ak = wn = 0
        pay = -1
        if pr == 6:
            if l4 + TCP_MIN <= end and (d[l4 + 12] >> 4) >= 5 and l4 + (d[l4 + 12] >> 4) * 4 <= end:
                sp, dp, sq, ak = _u16(d, l4), _u16(d, l4 + 2), _u32(d, l4 + 4), _u32(d, l4 + 8)
                fl, wn = d[l4 + 13], _u16(d, l4 + 14)
                pay = l4 + (d[l4 + 12] >> 4) * 4
        elif pr == 17 and l4 + UDP_HDR <= end:
            sp, dp = _u16(d, l4), _u16(d, l4 + 2)
            tunnel = dp in (VXLAN_PORT, GENEVE_PORT) or GTPU_PORT in (sp, dp) or TEREDO_PORT in (sp, dp)
            if not tunnel:
                pay = l4 + UDP_HDR
        elif (pr == 1 or (pr == 58 and v == 6)) and l4 + ICMP_HDR <= end:
            sp, dp, pay = d[l4], d[l4 + 1], l4 + ICMP_HDR
        if pay < 0:
            fallback[nfb] = r
            nfb += 1
            continue
        status[r], ipver[r], proto[r], ttl[r] = ST_OK, v, pr, hop
        src_hi[r], src_lo[r], dst_hi[r], dst_lo[r] = s_hi, s_lo, d_hi, d_lo
        ip_len[r] = decl - o
        sport[r], dport[r], tcp_flags[r], seq[r], ack[r], win[r] = sp, dp, fl, sq, ak, wn
        l4_off[r], pay_off[r], pay_len[r], pay_wire[r] = l4, pay, end - pay, decl - pay
    return nfb, warm  # ``warm`` is returned so that its loads are not optimised away
