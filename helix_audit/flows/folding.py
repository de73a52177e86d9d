"""The numba kernels that fold into the arrays of ``state.py``: a batch's packets (``add_rows``), one
segment into another (``fold``, ``fold_events``: joins and expiry), a batch's file notes.

Apart from ``state.py`` because they are what a packet does to the state (flags, events, sums), while
that module says what the state is and how it grows; every aggregate here follows the merge rules
described there (sums add, events by min order, last by max).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .orders import ORDER_SHIFT, none_of
from .state import (
    A_FIRST,
    EV_FIRST,
    EV_ICMP,
    K_ACK,
    K_DATA,
    K_FIN,
    K_RST,
    K_SYN,
    K_SYNACK,
    NWIDE,
    S_FIN,
    S_IPB,
    S_PAY,
    S_PKTS,
    S_RST,
    S_SYN,
    T_CUR,
    T_LIVE,
    TS_OF,
    VAL_OF,
    lookup_key,
    pack_key,
)

TH_FIN, TH_SYN, TH_RST, TH_ACK = 1, 2, 4, 16
ROW_SKIP, ROW_PACKET, ROW_ICMP_ERROR = 0, 1, 2


@njit(cache=True, inline="always")
def fold_events(ev, ev_ts, ev_val, d, s_ev, s_ev_ts, s_ev_val, s):  # noqa: ANN001, ANN201
    """Events of source row ``s`` into row ``d`` by min order, with the timestamp and value of the
    events that keep them (``TS_OF``, ``VAL_OF``)."""
    for k in range(ev.shape[1]):
        if s_ev[s, k] < ev[d, k]:
            ev[d, k] = s_ev[s, k]
            a = TS_OF[k]
            if a >= 0:
                ev_ts[d, a] = s_ev_ts[s, a]
            a = VAL_OF[k]
            if a >= 0:
                ev_val[d, a] = s_ev_val[s, a]


@njit(cache=True)
def fold(sums, cnt, ev, ev_ts, ev_val, last, d, s_sums, s_cnt, s_ev, s_ev_ts, s_ev_val, s_last, s):
    """Merge segment ``s`` of the source arrays into segment ``d`` (sums add, events min, last max)."""
    for k in range(sums.shape[1]):
        sums[d, k] += s_sums[s, k]
    for k in range(cnt.shape[1]):
        cnt[d, k] += s_cnt[s, k]
    fold_events(ev, ev_ts, ev_val, d, s_ev, s_ev_ts, s_ev_val, s)
    if later(s_last, s, last, d):
        last[d, 0] = s_last[s, 0]
        last[d, 1] = s_last[s, 1]


@njit(cache=True, inline="always")
def later(s_last, s, last, d):  # noqa: ANN001, ANN201
    """Row ``s`` of ``s_last`` is the later (order, timestamp): by order; without packets (order -1)
    both, by time (their first ICMP errors'); equal orders are one packet, one time."""
    return s_last[s, 0] > last[d, 0] or (s_last[s, 0] == last[d, 0] and s_last[s, 1] > last[d, 1])


@njit(cache=True, inline="always")
def _event(ev, ev_ts, ev_val, sid, k, order, ts, val):
    if order < ev[sid, k]:
        ev[sid, k] = order
        a = TS_OF[k]
        if a >= 0:
            ev_ts[sid, a] = ts
        a = VAL_OF[k]
        if a >= 0:
            ev_val[sid, a] = val


@njit(cache=True, inline="always")
def _count_packet(sums, cnt, ev, ev_ts, ev_val, sid, d, fl, seq, iplen, pay, ts, order, fval):
    sums[sid, S_PKTS + d] += 1
    sums[sid, S_IPB + d] += iplen
    sums[sid, S_PAY + d] += pay
    syn, ack, fin, rst = fl & TH_SYN, fl & TH_ACK, fl & TH_FIN, fl & TH_RST
    if syn:
        kind = K_SYNACK if ack else K_SYN
        cnt[sid, S_SYN - NWIDE + 2 * (kind - K_SYN) + d] += 1
        _event(ev, ev_ts, ev_val, sid, 2 * kind + d, order, ts, seq)
    if fin:
        cnt[sid, S_FIN - NWIDE + d] += 1
        _event(ev, ev_ts, ev_val, sid, 2 * K_FIN + d, order, ts, 0)
    if rst:
        cnt[sid, S_RST - NWIDE + d] += 1
        _event(ev, ev_ts, ev_val, sid, 2 * K_RST + d, order, ts, 0)
    if pay > 0:
        _event(ev, ev_ts, ev_val, sid, 2 * K_DATA + d, order, ts, 0)
    elif ack and not (syn or fin or rst):
        _event(ev, ev_ts, ev_val, sid, 2 * K_ACK + d, order, ts, 0)
    _event(ev, ev_ts, ev_val, sid, EV_FIRST, order, ts, fval | (d << 24))


@njit(cache=True, inline="always")
def _le(ahi, alo, ap, bhi, blo, bp):
    if ahi != bhi:
        return ahi < bhi
    if alo != blo:
        return alo < blo
    return ap <= bp


@njit(cache=True, inline="always")
def starts_with_syn(ev, ev_val, s):
    """(True, direction) when segment ``s`` begins with a pure SYN."""
    f = ev[s, EV_FIRST]
    d = (ev_val[s, A_FIRST] >> 24) & 1
    return f != none_of(ev) and ev[s, 2 * K_SYN + d] == f, d


@njit(cache=True)
def add_rows(  # noqa: PLR0913
    st,
    status,
    ipver,
    proto,
    shi,
    slo,
    dhi,
    dlo,
    sp,
    dp,
    flags,
    seq,
    iplen,
    pay,
    ts,
    frame,
    vlan,
    encap,
    cp_v4,
    cp_v6,
    ov,
    ov_u64,
    ov_i64,
    fidx,
    shift,
    out_sid,
    out_from_a,
    out_files,
    start,
):  # noqa: ANN001, ANN201
    """Fold a batch's decoded rows from ``start`` on (in order) into the state ``st`` (the tuple of
    SegmentArrays.kernel_args()). Returns (ntup, nseg, nlive, next row, segments noted in
    ``out_files``): it stops early when the arrays are full, for the caller to grow them and call again.

    A row is counted (ROW_PACKET) when decoded as IP; ICMP (v6) rows key on Zeek's type pair
    (``cp_v4`` / ``cp_v6``: counterpart type or -1). Rows listed in ``ov`` (sorted) are ICMP errors:
    ``ov_i64[j]`` = (kind, proto, sport, dport) and ``ov_u64[j]`` = the quoted addresses; a
    ROW_ICMP_ERROR row only marks the segment it quotes (``out_sid`` gets it; the caller records the
    error). Segments of these rows not yet noted for file ``fidx`` are noted in ``seg_file`` and listed
    (by id) in ``out_files``. ``ev`` takes the orders ``shift + frame`` (compact ones while it is
    uint32: ``orders.OrderCodec``), ``last`` the true ones.
    """
    (
        slots,
        tk_u64,
        tk_i64,
        seg_gid,
        seg_tup,
        sums,
        cnt,
        ev,
        ev_ts,
        ev_val,
        last,
        seg_file,
        ntup,
        nseg,
        nlive,
    ) = st
    high = np.int64(fidx) << ORDER_SHIFT
    ev_none = none_of(ev)
    nfiles = 0
    j = np.searchsorted(ov, start)
    n = status.shape[0]
    for r in range(start, n):
        if nlive >= seg_tup.shape[0] or ntup >= tk_i64.shape[0] or 2 * (ntup + 1) > slots.shape[0]:
            return ntup, nseg, nlive, r, nfiles
        if j < ov.shape[0] and ov[j] == r:
            kind, pr, s_p, d_p = ov_i64[j, 0], ov_i64[j, 1], ov_i64[j, 2], ov_i64[j, 3]
            s_hi, s_lo, d_hi, d_lo = ov_u64[j, 0], ov_u64[j, 1], ov_u64[j, 2], ov_u64[j, 3]
            j += 1
        else:
            kind = ROW_PACKET if status[r] == 0 and ipver[r] > 0 else ROW_SKIP
            pr, s_p, d_p = np.int64(proto[r]), np.int64(sp[r]), np.int64(dp[r])
            s_hi, s_lo, d_hi, d_lo = shi[r], slo[r], dhi[r], dlo[r]
            if pr == 1 or pr == 58:
                c = cp_v4[s_p & 0xFF] if pr == 1 else cp_v6[s_p & 0xFF]
                if c >= 0:
                    d_p = c
        if kind == ROW_SKIP:
            out_sid[r] = -1
            out_from_a[r] = False
            continue
        a_first = _le(s_hi, s_lo, s_p, d_hi, d_lo, d_p)
        if a_first:
            t, new = lookup_key(slots, tk_u64, tk_i64, ntup, pack_key(pr, s_p, d_p), s_hi, s_lo, d_hi, d_lo)
        else:
            t, new = lookup_key(slots, tk_u64, tk_i64, ntup, pack_key(pr, d_p, s_p), d_hi, d_lo, s_hi, s_lo)
        pure_syn = kind == ROW_PACKET and pr == 6 and (flags[r] & (TH_SYN | TH_ACK)) == TH_SYN
        if new:
            ntup += 1
        if new or pure_syn:
            sid = nseg
            nseg += 1
            tk_i64[t, T_CUR] = sid
            ls = -1
        else:
            sid = tk_i64[t, T_CUR]
            ls = tk_i64[t, T_LIVE]
        if ls < 0:  # a new segment, or an expired one revived under its id
            ls = nlive
            nlive += 1
            sums[ls, :] = 0
            cnt[ls, :] = 0
            ev[ls, :] = ev_none
            ev_ts[ls, :] = 0
            ev_val[ls, :] = 0
            last[ls, 0], last[ls, 1] = -1, -1
            if seg_file.shape[0]:  # else the table reads one file (SegmentArrays.spell_out_files)
                seg_file[ls] = -1
            if seg_gid.shape[0]:  # else row = id (SegmentArrays.identity)
                seg_gid[ls] = sid
            seg_tup[ls] = t
            tk_i64[t, T_LIVE] = ls
        out_sid[r] = sid
        out_from_a[r] = a_first
        order, true = shift + frame[r], high | frame[r]  # ev's (maybe compact) and last's order
        if kind == ROW_PACKET:
            fval = np.int64(vlan[r]) | (np.int64(encap[r]) << 16)
            d = 0 if a_first else 1
            fl, sq, ipb, pb = flags[r], seq[r], iplen[r], pay[r]
            _count_packet(sums, cnt, ev, ev_ts, ev_val, ls, d, fl, sq, ipb, pb, ts[r], order, fval)
            if true > last[ls, 0]:
                last[ls, 0] = true
                last[ls, 1] = ts[r]
        else:
            if order < ev[ls, EV_ICMP] and last[ls, 0] < 0:  # no packet yet: expiry's clock
                last[ls, 1] = ts[r]
            _event(ev, ev_ts, ev_val, ls, EV_ICMP, order, ts[r], 0)
        if seg_file.shape[0] and seg_file[ls] != fidx:
            seg_file[ls] = fidx
            out_files[nfiles] = sid
            nfiles += 1
    return ntup, nseg, nlive, n, nfiles


@njit(cache=True)
def mark_files(sids, seg_file, fidx, out):
    """Segments in ``sids`` not yet noted in file ``fidx``: note them, write them to ``out``; count."""
    m = 0
    for s in sids:
        if s >= 0 and seg_file[s] != fidx:
            seg_file[s] = fidx
            out[m] = s
            m += 1
    return m
