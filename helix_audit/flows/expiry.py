"""Idle expiry: a bounded live table, with expired segments kept in an append-only store.

When the live rows of a :class:`~.state.SegmentArrays` reach a threshold, every segment that is idle
by capture time (its last packet, or ICMP error, older than a timeout before the latest packet seen)
or that is no longer its tuple's current segment (a pure SYN opened a newer one) moves out: its row
(id, tuple, aggregates) goes to a :class:`SegmentStore` and the live arrays are compacted. The tuple
itself stays in the hash with its current segment id, so a later packet of the 5-tuple revives the
segment under the same id (``add_rows``): provisional flow ids, joins and aggregates are exactly
those of a table that never expires (aggregates are mergeable: the stored row and the revived one
fold together). What is bounded is the per-segment state (156 B a segment, see ``SegmentArrays``);
a tuple costs 72 B and its hash slots (8-16 B). Stored rows hold true orders, not the
live table's compact ones (``orders.OrderCodec``).

Timeouts (capture time; they trade memory for revivals, never results), after Zeek's defaults:
TCP 5 min idle (``tcp_inactivity_timeout``), 5 s once closed (FIN both ways or a RST:
``tcp_close_delay`` / ``tcp_reset_delay``) or while one side is silent (``tcp_attempt_delay``);
UDP, ICMP and other protocols 1 min (``udp_inactivity_timeout``, ``icmp_inactivity_timeout``).

The store spills to an unnamed temporary file once it holds more than ``spill_bytes`` (unlinked
from the start: a killed audit leaves nothing behind in the temporary directory);
:func:`materialize` folds it back (a block at a time) into segment-id-indexed arrays for ``merge``;
``finish`` reads it twice, whatever its size: once for what groups segments into flows
(:func:`join_view`), once to fold every stored row straight into its flow's row (:func:`fold_flows`);
then the file is closed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import IO

import numpy as np
from numba import njit

from .folding import fold_events
from .join import JOIN_EV, events_into, last_into, sum_into
from .orders import NONE
from .state import (
    A_FIRST,
    NCNT,
    NEV,
    NSUM,
    NTS,
    NVAL,
    NWIDE,
    S_FIN,
    S_PKTS,
    S_RST,
    T_KEY,
    VAL_OF,
    SegmentArrays,
)

SEC = 1_000_000_000
#: (TCP idle, TCP closed or one side silent, other protocols idle), ns
TIMEOUTS_NS = (300 * SEC, 5 * SEC, 60 * SEC)
LIVE_ROWS = 1 << 18  # live segments before the first expiry pass (~86 MB of segment state)
# stored rows held in memory before they go to the file: what the store adds to the streaming peak
# (with a pass's block); 16 MB: the 3M scan's passes, ~150 MB each, held up to 83 MB at 64 MB
SPILL_BYTES = 16 << 20
# rows read back at a time: 4.5 MB (at 1 << 16, the 19 MB block was on top of the 3M scan's finish peak)
BLOCK_ROWS = 1 << 14
MOVE_ROWS = 1 << 14  # rows an expiry pass moves out at a time (5 MB)
MIN_SHARE = 0.25  # an expiry pass moves segments out only when at least this share of the live ones goes
# store row: id, tuple, sums, events, event timestamps, event values, last (order, ts)
C_GID, C_TUP, C_SUMS = 0, 1, 2
C_EV = C_SUMS + NSUM
C_TS = C_EV + NEV
C_VAL = C_TS + NTS
C_LAST = C_VAL + NVAL
WIDTH = C_LAST + 2


@njit(cache=True)
def _idle(tk_i64, tup_live, seg_tup, sums, cnt, last, nlive, now, limits, out):  # pragma: no cover
    """``out[ls]``: live row ``ls`` goes (idle, or superseded by a newer segment of its tuple)."""
    k = 0
    for ls in range(nlive):
        t = seg_tup[ls]
        if tup_live[t] != ls:
            gone = True
        else:
            seen = last[ls, 1]  # the last packet's time, or (none) the first ICMP error's
            if tk_i64[t, T_KEY] >> 32 == 6:  # TCP (the packed key's proto)
                f, r = S_FIN - NWIDE, S_RST - NWIDE  # (``cnt`` columns)
                closed = cnt[ls, f] > 0 and cnt[ls, f + 1] > 0
                done = closed or cnt[ls, r] + cnt[ls, r + 1] > 0
                silent = sums[ls, S_PKTS] == 0 or sums[ls, S_PKTS + 1] == 0
                limit = limits[1] if done or silent else limits[0]
            else:
                limit = limits[2]
            gone = now - seen > limit
        out[ls] = gone
        if gone:
            k += 1
    return k


@njit(cache=True)
def _move_out(
    gone, tup_live, seg_gid, seg_tup, sums, cnt, ev, ev_ts, ev_val, last, seg_file, nlive, rows, ls, w
):  # pragma: no cover - compiled
    """From live row ``ls`` on (``w`` rows kept so far): rows marked ``gone`` into ``rows`` until it
    is full, the others compacted to the front, in order. Returns (next row, rows kept, rows out):
    the caller stores ``rows`` and calls again while ``ls`` < ``nlive``."""
    k = 0
    while ls < nlive:
        t = seg_tup[ls]
        current = tup_live[t] == ls
        if gone[ls]:
            if k == rows.shape[0]:
                break
            rows[k, C_GID] = seg_gid[ls]
            rows[k, C_TUP] = t
            rows[k, C_SUMS : C_SUMS + NWIDE] = sums[ls]
            rows[k, C_SUMS + NWIDE : C_SUMS + NSUM] = cnt[ls]
            rows[k, C_EV : C_EV + NEV] = ev[ls]
            rows[k, C_TS : C_TS + NTS] = ev_ts[ls]
            rows[k, C_VAL : C_VAL + NVAL] = ev_val[ls]
            rows[k, C_LAST : C_LAST + 2] = last[ls]
            k += 1
            if current:
                tup_live[t] = -1
            ls += 1
            continue
        if w != ls:
            seg_gid[w], seg_tup[w] = seg_gid[ls], t
            if seg_file.shape[0]:
                seg_file[w] = seg_file[ls]
            sums[w], ev[w], ev_ts[w], ev_val[w], last[w] = sums[ls], ev[ls], ev_ts[ls], ev_val[ls], last[ls]
            cnt[w] = cnt[ls]
        if current:
            tup_live[t] = w
        w += 1
        ls += 1
    return ls, w, k  # rows from w on are cleared when add_rows takes them again


def expire(
    st: SegmentArrays, now: int, store: SegmentStore, timeouts: tuple[int, int, int] = TIMEOUTS_NS
) -> int:
    """Move idle live segments out of ``st`` (``now``: latest capture time seen, ns) into ``store``
    when they are at least ``MIN_SHARE`` of the live ones, ``MOVE_ROWS`` at a time (a pass that
    moves a million rows out holds 5 MB of them, not 300 MB); how many moved."""
    gone = np.zeros(st.nlive, dtype=np.bool_)
    limits = np.array(timeouts, dtype=np.int64)
    k = _idle(st.tk_i64, st.tup_live, st.seg_tup, st.sums, st.cnt, st.last, st.nlive, now, limits, gone)
    if k < st.nlive * MIN_SHARE:  # moving a few out saves little, and merge/finish then fold them back
        return 0
    st.spell_out_gid()
    ls = w = 0
    left = k
    while ls < st.nlive:  # the call that takes the last row that goes runs on to the end
        rows = np.empty((min(left, MOVE_ROWS), WIDTH), dtype=np.int64)
        ls, w, got = _move_out(
            gone, st.tup_live, st.seg_gid, st.seg_tup, st.sums, st.cnt, st.ev, st.ev_ts, st.ev_val, st.last,
            st.seg_file, st.nlive, rows, ls, w,
        )  # fmt: skip
        if st.ev.dtype != np.int64:  # the store keeps true orders (compact ones are the live table's)
            rows[:got, C_EV : C_EV + NEV] = st.codec.decode(rows[:got, C_EV : C_EV + NEV])
        store.append(rows[:got])
        left -= got
    st.nlive = w
    return k


class SegmentStore:
    """Expired segments' rows (``WIDTH`` int64 each), append-only; spilled to a temporary file once
    more than ``spill_bytes`` are held. Pickles with its rows in memory (parallel workers)."""

    def __init__(self, spill_bytes: int = SPILL_BYTES) -> None:
        self.rows = 0
        self._spill_bytes = spill_bytes
        self._chunks: list[np.ndarray] = []
        self._held = 0
        self._spilled = 0
        self._file: IO[bytes] | None = None

    def append(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        self._chunks.append(rows)
        self._held += rows.nbytes
        self.rows += len(rows)
        if self._held > self._spill_bytes:
            self._spill()

    def _spill(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="helix-flows-")  # noqa: SIM115  closed by close()
        for chunk in self._chunks:  # appended at the end; blocks() reads by offset
            chunk.tofile(self._file)
            self._spilled += len(chunk)
        self._file.flush()
        self._chunks, self._held = [], 0

    def blocks(self) -> Iterator[np.ndarray]:
        """Every stored row, in the order appended, ``BLOCK_ROWS`` at most at a time from the file."""
        if self._spilled:
            assert self._file is not None
            fd, at, left = self._file.fileno(), 0, self._spilled
            while left:
                k = min(left, BLOCK_ROWS)
                buf = bytearray(k * WIDTH * 8)
                if os.preadv(fd, [buf], at) != len(buf):
                    raise OSError(f"flow spill file: short read at byte {at}")
                yield np.frombuffer(buf, dtype=np.int64).reshape(k, WIDTH)
                at, left = at + len(buf), left - k
        yield from self._chunks

    def close(self) -> None:
        """Forget every row; close (and so delete) the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._chunks, self._held, self._spilled, self.rows = [], 0, 0, 0

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_chunks"] = [np.concatenate(list(self.blocks()))] if self.rows else []
        state["_held"] = sum(c.nbytes for c in state["_chunks"])
        state["_spilled"], state["_file"] = 0, None
        return state


@njit(cache=True)
def _is_range(a: np.ndarray) -> bool:  # pragma: no cover - compiled
    """``a`` is 0, 1, 2 ... len(a) - 1."""
    for i in range(a.shape[0]):  # noqa: SIM110 - a compiled loop, no generator
        if a[i] != i:
            return False
    return True


@njit(cache=True)
def _events_into(dest, n, ev, ev_ts, ev_val, out_ev, out_ts, out_val):  # pragma: no cover - compiled
    """Events of rows ``0..n`` merged by min order into rows ``dest`` of ``out_*``, as ``fold`` does."""
    for s in range(n):
        fold_events(out_ev, out_ts, out_val, dest[s], ev, ev_ts, ev_val, s)


def materialize(st: SegmentArrays, store: SegmentStore) -> SegmentArrays:
    """The segment arrays indexed by segment id again (row = id, every segment live): the stored rows
    and the live ones folded together, one aggregate at a time, each of ``st``'s live arrays dropped
    once folded (its tuple arrays are shared). ``st`` is spent."""
    st.widen_orders()
    n, nl, live = st.nseg, st.nlive, st.gid()
    out = SegmentArrays(0)
    out.codec = st.codec
    out.tk_u64, out.tk_i64, out.slots = st.tk_u64, st.tk_i64, st.slots
    out.tup_live[:] = out.tup_cur  # every current segment lives in the row of its id
    out.ntup, out.nseg, out.nlive = st.ntup, n, n
    out.forget_gid()  # row = id
    out.seg_file, out.one_file = np.full(n, -1, dtype=np.int32), False  # (a merge spelled files out)
    out.seg_tup = np.zeros(n, dtype=st.seg_tup.dtype)
    for rows in store.blocks():
        out.seg_tup[rows[:, C_GID]] = rows[:, C_TUP]
    out.seg_tup[live] = st.seg_tup[:nl]
    st.drop("seg_tup", "seg_file")
    out.sums = np.zeros((n, NWIDE), dtype=np.int64)
    out.cnt = np.zeros((n, NCNT), dtype=st.cnt.dtype)
    for rows in store.blocks():
        sum_into(rows[:, C_GID], len(rows), rows[:, C_SUMS : C_SUMS + NWIDE], out.sums)
        sum_into(rows[:, C_GID], len(rows), rows[:, C_SUMS + NWIDE : C_SUMS + NSUM], out.cnt)
    sum_into(live, nl, st.sums, out.sums)
    sum_into(live, nl, st.cnt, out.cnt)
    st.drop("sums", "cnt")
    out.last = np.full((n, 2), -1, dtype=np.int64)
    for rows in store.blocks():
        last_into(rows[:, C_GID], len(rows), rows[:, C_LAST : C_LAST + 2], out.last)
    last_into(live, nl, st.last, out.last)
    st.drop("last")
    out.ev = np.full((n, NEV), NONE, dtype=np.int64)  # true orders, as ``st``'s (widened above)
    out.ev_ts, out.ev_val = np.zeros((n, NTS), dtype=np.int64), np.zeros((n, NVAL), dtype=np.uint32)
    targets = (out.ev, out.ev_ts, out.ev_val)
    for rows in store.blocks():
        ev, ts, val = rows[:, C_EV : C_EV + NEV], rows[:, C_TS : C_TS + NTS], rows[:, C_VAL : C_VAL + NVAL]
        _events_into(rows[:, C_GID], len(rows), ev, ts, val, *targets)
    _events_into(live, nl, st.ev, st.ev_ts, st.ev_val, *targets)
    st.drop("ev", "ev_ts", "ev_val", "seg_gid")
    return out


@njit(cache=True)
def _view_into(gid, n, tup, ev, ev_val, cols, out_tup, out_ev, out_val):  # pragma: no cover - compiled
    """Rows ``0..n`` (segments ``gid``) into the id-indexed join view: tuple, the events ``cols``
    (``out_ev``'s columns) by min order with their values (a revived segment has rows in the store
    and a live one)."""
    for s in range(n):
        d = gid[s]
        out_tup[d] = tup[s]
        for j in range(cols.shape[0]):
            k = cols[j]
            if ev[s, k] < out_ev[d, j]:
                out_ev[d, j] = ev[s, k]
                a = VAL_OF[k]
                if a >= 0:
                    out_val[d, a] = ev_val[s, a]


def join_view(
    st: SegmentArrays, store: SegmentStore
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What ``finish`` groups segments into flows by, indexed by segment id: (tuple, events, event
    values, the ``JOIN_EV`` events' columns in that view's events). Views of the live arrays when
    every segment is live in the row of its id (nothing ever expired); else made from the live rows
    and one read of the store, of only the events the join reads: 48 B a segment (tuple int32 while
    ids fit, 8 compact events, 3 uint32 values; 80 with int64 events) where :func:`materialize` makes
    every aggregate. Events in the table's orders: compact ones while it streamed narrow (the join
    only compares them), the store's true ones encoded back (``_store_ev``)."""
    n, nl = st.nseg, st.nlive
    if not store.rows and nl == n:  # no row ever moved out: row = id
        return st.seg_tup[:n], st.ev[:n], st.ev_val[:n], JOIN_EV
    cols = JOIN_EV
    tup = np.zeros(n, dtype=st.seg_tup.dtype)
    ev = np.full((n, len(cols)), st.ev_none, dtype=st.ev.dtype)
    val = np.zeros((n, NVAL), dtype=np.uint32)
    for rows in store.blocks():
        r_ev, r_val = _store_ev(st, rows), rows[:, C_VAL : C_VAL + NVAL]
        _view_into(rows[:, C_GID], len(rows), rows[:, C_TUP], r_ev, r_val, cols, tup, ev, val)
    _view_into(st.gid(), nl, st.seg_tup[:nl], st.ev[:nl], st.ev_val[:nl], cols, tup, ev, val)
    return tup, ev, val, np.arange(len(cols), dtype=np.int64)


def _store_ev(st: SegmentArrays, rows: np.ndarray) -> np.ndarray:
    """The events of the store's ``rows`` (true orders) in ``st``'s orders: compact ones encoded."""
    r_ev = rows[:, C_EV : C_EV + NEV]
    return r_ev if st.ev.dtype == np.int64 else st.codec.encode(r_ev)


def fold_flows(
    st: SegmentArrays, store: SegmentStore, dest: np.ndarray, ng: int, narrow: bool = False
) -> dict[str, np.ndarray]:
    """Every segment row, live or stored, folded straight into its flow's row (``dest``: segment id
    -> flow row): the flows' sums, counts, last, ev, ts and val (see ``join.events_into``). Live rows
    first, each of ``st``'s arrays dropped once folded, then one read of the store, which is closed.
    Folding is by sum and by min and max order, so rows fold in any order to the aggregates of the
    segments they make.

    ``sums`` (the packet and byte counts; int32 while the live ``sums`` are, i.e. while the table's
    rows and bytes could not make a sum of 2^31: 24 B a flow, not 48, through the fold and most of
    ``build_frame``, which widens them last) and ``counts`` (the SYN, SYN-ACK, FIN and RST
    counters) come one row per column, shapes (NWIDE, ng) and (NSUM - NWIDE, ng), and ``ev`` (ng,
    NEV), arrays of their own: ``build_frame`` makes the frame's sum columns of them in place and cuts
    ``ev`` down as it reads it (not ~100 B a flow of copies made next to them). ``narrow`` (the
    caller knows fewer than 2^31 packets were counted: no flow's counter can reach 2^31): ``counts``
    is int32 (32 B a flow less), else int64. ``val`` is the first packet's uint32 value; ``last``
    (order, ts) comes (2, ng), a row each, ``ts`` (the first packet's) (1, ng). When every
    segment is live and is its own flow in the row of that flow (a scan's one-packet flows), the
    live arrays are the aggregates already: handed over as they are (row-major; views for last and
    ts), but for the sums, moved into their own layout a block at a time from the end, the live
    array cut as it goes. ``ev`` comes in the table's orders either way: compact ones while it
    streamed narrow (56 B a flow, not 112: ``build_frame`` reads them with the table's codec)."""
    nl = st.nlive
    cdt = np.int32 if narrow else np.int64
    sdt = st.sums.dtype  # int32 while the table's rows and bytes fit (``widen_sums``): so do a flow's
    to = dest[:nl] if st.identity else dest[st.seg_gid[:nl]]  # row = id: a view, not 16 B a row
    st.drop("seg_gid", "seg_tup", "seg_file")
    if not store.rows and nl == ng and _is_range(to):
        del to
        val = st.ev_val[:nl, A_FIRST].copy()  # and ev_val goes before the copies come
        st.drop("ev_val")
        sums = _by_column(_take(st, "sums"), nl, sdt)
        counts = _by_column(_take(st, "cnt"), nl, cdt)
        ev = _first_rows(_take(st, "ev"), nl)
        agg = {"sums": sums, "counts": counts, "last": st.last[:nl].T, "ev": ev, "ts": st.ev_ts[:nl].T}
        agg["val"] = val
        st.drop("last", "ev_ts")
        store.close()
        return agg
    sums, counts = np.zeros((NWIDE, ng), dtype=sdt), np.zeros((NSUM - NWIDE, ng), dtype=cdt)
    sum_into(to, nl, st.sums, sums.T)
    sum_into(to, nl, st.cnt, counts.T)
    st.drop("sums", "cnt")
    last = np.full((2, ng), -1, dtype=np.int64)
    last_into(to, nl, st.last, last.T)
    st.drop("last")
    ev = np.full((ng, NEV), st.ev_none, dtype=st.ev.dtype)  # in the table's orders, as ``join_view``
    ts, val = np.zeros((1, ng), dtype=np.int64), np.zeros(ng, dtype=np.uint32)
    events_into(to, nl, st.ev, st.ev_ts, st.ev_val, ev, ts.T, val)
    st.drop("ev", "ev_ts", "ev_val")
    del to
    for rows in store.blocks():
        to = dest[rows[:, C_GID]]
        k = len(rows)
        sum_into(to, k, rows[:, C_SUMS : C_SUMS + NWIDE], sums.T)
        sum_into(to, k, rows[:, C_SUMS + NWIDE : C_SUMS + NSUM], counts.T)
        last_into(to, k, rows[:, C_LAST : C_LAST + 2], last.T)
        r_ev, r_ts = _store_ev(st, rows), rows[:, C_TS : C_TS + NTS]
        events_into(to, k, r_ev, r_ts, rows[:, C_VAL : C_VAL + NVAL], ev, ts.T, val)
    store.close()
    return {"sums": sums, "counts": counts, "last": last, "ev": ev, "ts": ts, "val": val}


def _take(st: SegmentArrays, name: str) -> np.ndarray:
    """``st``'s array ``name``, which ``st`` lets go of (the caller holds its only reference)."""
    arr = getattr(st, name)
    st.drop(name)
    return arr


def _first_rows(a: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows of ``a``: ``a`` itself cut to them when it is an array of its own (the
    rows past them go), else a copy."""
    if not (a.flags.owndata and a.flags.c_contiguous):
        return a[:n].copy()
    a.resize((n, *a.shape[1:]), refcheck=False)  # no views of it are left (see ``_take``)
    return a


def _by_column(a: np.ndarray, n: int, dtype: type | np.dtype | None = None) -> np.ndarray:
    """The first ``n`` rows of ``a`` transposed into an array of their own (as ``dtype``: the caller
    knows the values fit), a block at a time from the end, ``a`` cut after each (when it is an array
    of its own): no second copy at any time."""
    a = _first_rows(a, n)
    out = np.empty((a.shape[1], n), dtype=a.dtype if dtype is None else dtype)
    for hi in range(n, 0, -BLOCK_ROWS):
        lo = max(0, hi - BLOCK_ROWS)
        out[:, lo:hi] = a[lo:hi].T
        a.resize((lo, a.shape[1]), refcheck=False)
    return out
