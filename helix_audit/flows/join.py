"""Joining segments: folding a later partition's table in (``merge_rows``) and grouping segments
into flows at finish (``join_segments``), where TCP connection reuse is decided; then folding each
aggregate into flow rows in final order (``*_into``), one aggregate at a time so that the segment
arrays can go one by one.

Both only read mergeable aggregates (see ``state.py``), so any partitioning gives the serial result.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .folding import fold, later, starts_with_syn
from .orders import none_of
from .state import A_FIRST, A_SYN, EV_FIRST, EV_ICMP, K_FIN, K_RST, K_SYN, TS_FIRST, lookup_insert

#: the events ``join_segments`` and ``group_first`` read (of NEV), in the order of their ``J_*``:
#: a join view made for them (``expiry.join_view``) keeps 64 B of a segment's 112
JOIN_EV = np.array(
    [EV_FIRST, EV_ICMP, 2 * K_SYN, 2 * K_SYN + 1, 2 * K_FIN, 2 * K_FIN + 1, 2 * K_RST, 2 * K_RST + 1],
    dtype=np.int64,
)
J_FIRST, J_ICMP, J_SYN, J_FIN, J_RST = 0, 1, 2, 4, 6  # + direction for the last three


@njit(cache=True)
def merge_rows(
    slots,
    tk_u64,
    tk_i64,
    tup_cur,
    seg_tup,
    sums,
    cnt,
    ev,
    ev_ts,
    ev_val,
    last,
    ntup,
    nseg,
    o_tk_u64,
    o_tk_i64,
    o_tup_cur,
    o_seg_tup,
    o_sums,
    o_cnt,
    o_ev,
    o_ev_ts,
    o_ev_val,
    o_last,
    o_ntup,
    o_sorted,
    remap,
):
    """Fold a later partition's segments in. A tuple's first segment there continues our current one
    unless it opens with a pure SYN; every other segment is appended. Returns the new (ntup, nseg)."""
    tmap = np.empty(o_ntup, dtype=np.int64)
    existed = np.zeros(o_ntup, dtype=np.bool_)
    for t in range(o_ntup):
        mine, new = lookup_insert(slots, tk_u64, tk_i64, ntup, o_tk_u64[t], o_tk_i64[t])
        if new:
            ntup += 1
        tmap[t] = mine
        existed[t] = not new
    prev = -1
    for s in o_sorted:
        t = o_seg_tup[s]
        syn_start, _ = starts_with_syn(o_ev, o_ev_val, s)
        if t != prev and existed[t] and not syn_start:
            d = tup_cur[tmap[t]]
        else:
            d = nseg
            nseg += 1
            seg_tup[d] = tmap[t]
        prev = t
        fold(sums, cnt, ev, ev_ts, ev_val, last, d, o_sums, o_cnt, o_ev, o_ev_ts, o_ev_val, o_last, s)
        remap[s] = d
    for t in range(o_ntup):
        tup_cur[tmap[t]] = remap[o_tup_cur[t]]
    return ntup, nseg


@njit(cache=True)
def join_segments(order, seg_tup, ev, ev_val, group, cols):
    """Group segments (``order``: sorted by tuple, then creation) into flows; returns the flow count.
    ``cols``: the ``JOIN_EV`` events' columns in ``ev`` (the full events, or a view of only those).

    A segment opening with a pure SYN starts a new flow when the flow so far had ended before it (FIN
    both ways, or a RST) and the SYN's ISN differs from the flow's first SYN in that direction
    (TCP connection reuse, as tshark's tcp.stream and Zeek split it); otherwise it continues the flow.
    Orders are only compared: compact ones (``orders.OrderCodec``) group as the true ones.
    """
    none = none_of(ev)
    g = -1
    prev = -1
    fin = np.empty(2, dtype=np.int64)
    rst = np.empty(2, dtype=np.int64)
    syn_ord = np.empty(2, dtype=np.int64)
    syn_seq = np.empty(2, dtype=np.int64)
    for s in order:
        t = seg_tup[s]
        fresh = t != prev
        at = ev[s, cols[J_FIRST]]
        d = (ev_val[s, A_FIRST] >> 24) & 1
        syn_start = at != none and ev[s, cols[J_SYN + d]] == at  # as ``starts_with_syn``
        if not fresh and syn_start:
            ended = min(max(fin[0], fin[1]), rst[0], rst[1]) < at
            isn_differs = syn_ord[d] == none or syn_seq[d] != ev_val[s, A_SYN + d]
            fresh = ended and isn_differs
        if fresh:
            g += 1
            fin[:] = none
            rst[:] = none
            syn_ord[:] = none
            syn_seq[:] = -1
        for x in range(2):
            fin[x] = min(fin[x], ev[s, cols[J_FIN + x]])
            rst[x] = min(rst[x], ev[s, cols[J_RST + x]])
            if ev[s, cols[J_SYN + x]] < syn_ord[x]:
                syn_ord[x] = ev[s, cols[J_SYN + x]]
                syn_seq[x] = ev_val[s, A_SYN + x]
        group[s] = g
        prev = t
    return g + 1


@njit(cache=True)
def group_first(group, nseg, ev, ng, cols):
    """Per flow, the order it sorts by: its first packet's, or (no packets) its first ICMP error's
    (``cols`` as for ``join_segments``), in ``ev``'s orders (compact ones sort as the true ones)."""
    none = none_of(ev)
    first = np.full(ng, none, dtype=np.int64)
    err = np.full(ng, none, dtype=np.int64)
    cf, ci = cols[J_FIRST], cols[J_ICMP]
    for s in range(nseg):
        g = group[s]
        first[g] = min(first[g], ev[s, cf])
        err[g] = min(err[g], ev[s, ci])
    for g in range(ng):
        if first[g] == none:
            first[g] = err[g]
    return first


@njit(cache=True)
def sum_into(dest, nseg, src, out):
    """Rows of ``src`` (segments) added into rows ``dest`` of ``out`` (flows in final order)."""
    for s in range(nseg):
        d = dest[s]
        for k in range(src.shape[1]):
            out[d, k] += src[s, k]


@njit(cache=True)
def events_into(dest, nseg, ev, ev_ts, ev_val, out_ev, out_ts, out_val):
    """Events merged by min order into rows ``dest``, as ``fold`` does, keeping only the auxiliary
    values a finished flow reads: ``out_ts`` = the first packet's timestamp, ``out_val`` = the first
    packet's value (vlan | encap << 16 | direction << 24)."""
    for s in range(nseg):
        d = dest[s]
        for k in range(ev.shape[1]):
            if ev[s, k] < out_ev[d, k]:
                out_ev[d, k] = ev[s, k]
                if k == EV_FIRST:
                    out_ts[d, 0] = ev_ts[s, TS_FIRST]
                    out_val[d] = ev_val[s, A_FIRST]


@njit(cache=True)
def last_into(dest, nseg, last, out):
    """Last packet (order, timestamp) merged by max order into rows ``dest``."""
    for s in range(nseg):
        d = dest[s]
        if later(last, s, out, d):
            out[d, 0] = last[s, 0]
            out[d, 1] = last[s, 1]
