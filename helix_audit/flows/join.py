"""Joining segments: folding a later partition's table in (``merge_rows``) and grouping segments
into flows at finish (``join_segments``, ``fold_groups``), where TCP connection reuse is decided.

Both only read mergeable aggregates (see ``state.py``), so any partitioning gives the serial result.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .state import A_SYN, EV_FIRST, K_FIN, K_RST, K_SYN, NONE, fold, lookup_insert, starts_with_syn


@njit(cache=True)
def merge_rows(
    slots,
    tk_u64,
    tk_i64,
    tup_cur,
    seg_tup,
    sums,
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
        fold(sums, ev, ev_ts, ev_val, last, d, o_sums, o_ev, o_ev_ts, o_ev_val, o_last, s)
        remap[s] = d
    for t in range(o_ntup):
        tup_cur[tmap[t]] = remap[o_tup_cur[t]]
    return ntup, nseg


@njit(cache=True)
def join_segments(order, seg_tup, ev, ev_val, group):
    """Group segments (``order``: sorted by tuple, then creation) into flows; returns the flow count.

    A segment opening with a pure SYN starts a new flow when the flow so far had ended before it (FIN
    both ways, or a RST) and the SYN's ISN differs from the flow's first SYN in that direction
    (TCP connection reuse, as tshark's tcp.stream and Zeek split it); otherwise it continues the flow.
    """
    g = -1
    prev = -1
    fin = np.empty(2, dtype=np.int64)
    rst = np.empty(2, dtype=np.int64)
    syn_ord = np.empty(2, dtype=np.int64)
    syn_seq = np.empty(2, dtype=np.int64)
    for s in order:
        t = seg_tup[s]
        fresh = t != prev
        syn_start, d = starts_with_syn(ev, ev_val, s)
        if not fresh and syn_start:
            at = ev[s, EV_FIRST]
            ended = min(max(fin[0], fin[1]), rst[0], rst[1]) < at
            isn_differs = syn_ord[d] == NONE or syn_seq[d] != ev_val[s, A_SYN + d]
            fresh = ended and isn_differs
        if fresh:
            g += 1
            fin[:] = NONE
            rst[:] = NONE
            syn_ord[:] = NONE
            syn_seq[:] = -1
        for x in range(2):
            fin[x] = min(fin[x], ev[s, 2 * K_FIN + x])
            rst[x] = min(rst[x], ev[s, 2 * K_RST + x])
            if ev[s, 2 * K_SYN + x] < syn_ord[x]:
                syn_ord[x] = ev[s, 2 * K_SYN + x]
                syn_seq[x] = ev_val[s, A_SYN + x]
        group[s] = g
        prev = t
    return g + 1


@njit(cache=True)
def fold_groups(group, nseg, sums, ev, ev_ts, ev_val, last, g_sums, g_ev, g_ev_ts, g_ev_val, g_last):
    for s in range(nseg):
        fold(g_sums, g_ev, g_ev_ts, g_ev_val, g_last, group[s], sums, ev, ev_ts, ev_val, last, s)
