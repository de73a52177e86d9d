"""Per-segment flow state as struct-of-arrays, and the hash index of its tuples.

A *segment* is the unit of state: the packets of one 5-tuple between two pure SYNs (or between a pure SYN
and a partition boundary). Every pure SYN opens a new segment, so segment boundaries depend only on the
packet itself, never on earlier state; ``finish`` then joins consecutive segments of a 5-tuple into flows
(TCP connection reuse is decided there, from mergeable aggregates). That makes partitioned runs exact:
a later partition's segments fold into the earlier table without needing its packets again.

Every aggregate is mergeable: ``sums`` add; ``ev`` holds the *order* (file index << 40 | frame) of the
first occurrence of each event per direction, merged by min order (while a table streams, a 32-bit
*compact* order of the same rank: ``OrderCodec``); for the few events whose timestamp or
value is used (first packet, SYN ISNs) ``ev_ts``/``ev_val`` hold them (``TS_OF``, ``VAL_OF``: only
the columns finish reads; 156 B a segment in all, see ``SegmentArrays``); ``last`` holds the last
packet's order and timestamp, merged by max (a segment without packets: its first ICMP error's
time, the clock of its expiry; finish takes the error's time from the errors it keeps).
No Python object per flow: a million one-packet flows are a few arrays of a million rows.

Segment ids (``sid``, the provisional flow ids handed to the protocols stage) are global and numbered in
creation order; the per-segment arrays hold only *live* segments, row ``ls`` being segment
``seg_gid[ls]``. Idle segments are moved out to a store (``expiry.py``) and a tuple keeps its current
segment id (``tup_cur``) with ``tup_live`` = -1: its next packet revives the segment in a fresh row under
the same id, so ids, joins and every aggregate are exactly those of a table that never expires.

The numba kernels that fold packets and segments into these arrays are in ``folding.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from .orders import NONE32, OrderCodec, order_none

# direction: 0 = sent by endpoint A (the lower (addr, port)), 1 = sent by B
# sums columns (pairs are [A, B])
S_PKTS, S_IPB, S_PAY, S_SYN, S_SYNACK, S_FIN, S_RST = 0, 2, 4, 6, 8, 10, 12
NSUM = 14
NWIDE = 6  # the packet and byte counts (int64 in a finished flow); the counters after them
NCNT = NSUM - NWIDE  # the SYN, SYN-ACK, FIN, RST counters: ``cnt`` (int32 while they fit)
# event kinds (ev column = 2 * kind + direction), then two direction-less events
K_SYN, K_SYNACK, K_ACK, K_DATA, K_FIN, K_RST = 0, 1, 2, 3, 4, 5
NKIND = 6
EV_FIRST = 12  # first packet; ev_val = vlan | encap << 16 | direction << 24
EV_ICMP = 13  # first ICMP error quoting the segment (its order only)
NEV = 14
# ev_ts keeps the timestamp of the first packet, ev_val the value of the first packet and of each
# direction's first SYN (its ISN): what finish reads, nothing more (an ICMP error's time is in the
# table's list of errors, and a packet-less segment's in ``last``)
TS_FIRST = 0
NTS = 1
TS_OF = np.array([-1] * 12 + [TS_FIRST, -1], dtype=np.int64)  # ev column -> ev_ts column
A_SYN, A_FIRST = 0, 2  # ev_val columns; A_SYN + direction: the SYN's sequence number (ISN)
NVAL = 3
VAL_OF = np.array([0, 1] + [-1] * 10 + [A_FIRST, -1], dtype=np.int64)  # ev column -> ev_val column
LADDER_FROM = 1 << 18  # rows (~0.1 GB of segments) past which arrays grow by a half or a third
GROW_BLOCK = 8 << 20  # bytes copied at a time when an array grows (see ``_grow``)
# tk_i64 columns: the key's packed (proto, a_port, b_port) (``pack_key``), current segment's id, its row
T_KEY, T_CUR, T_LIVE = 0, 1, 2
NTK = 3


class SegmentArrays:
    """Growable struct-of-arrays: tuples (5-tuple keys + hash index) and live segments.

    A tuple costs 72 B plus its hash slots (int32, 8-16 B: at most half full; a quarter took 16-32,
    the 1M SYN scan's flows stage no faster for it, within the noise): the four address halves and
    three int64
    (proto and both ports packed into one, the current segment's id and row). A live segment 156 B:
    ``sums`` 24 (packets and bytes each way: int32 while the table's rows and bytes fit, see
    ``widen_sums``; 48 after), ``cnt`` 32 (SYN, SYN-ACK, FIN, RST each way: int32
    while fewer than 2^31 rows were counted, see ``widen_counters``), ``ev`` 56 (uint32 compact
    orders, see ``OrderCodec``; 112 once ``widen_orders`` made them int64: merge, finish, or a
    capture past 2^32 packets), ``ev_ts`` 8, ``last`` 16, ``ev_val`` 12 (uint32: ISNs, and the
    first packet's vlan | encap | direction: 25 bits), ``seg_tup`` 4 (int32 while tuple ids fit),
    ``seg_file`` 4 once the table reads a second file (empty before, 0 B: ``spell_out_files``);
    ``seg_gid`` is empty (row = id, 0 B) until an expiry pass first moves rows (a table that never
    expires, a SYN scan's, never needs it). 152 B while the table reads one file."""

    def __init__(self, cap: int = 1024) -> None:
        self.ntup = 0
        self.nseg = 0  # segment ids given out
        self.nlive = 0  # rows in use in the per-segment arrays
        self.tk_u64 = np.zeros((cap, 4), dtype=np.uint64)  # a_hi, a_lo, b_hi, b_lo
        # packed key, current segment's id, its row (-1: expired): the two a packet reads after its
        # key's comparison share the key's cache line
        self.tk_i64 = np.zeros((cap, NTK), dtype=np.int64)  # a row's ints are set when it is taken
        self.slots = _slots(2 * cap, cap)
        self.seg_gid = np.zeros(0, dtype=np.int64)  # empty: live row ls is segment ls (``identity``)
        self.seg_tup: np.ndarray = np.zeros(cap, dtype=_tid_dtype(cap))
        # packets, IP bytes, payload bytes: int32 while the table's rows and bytes fit (no segment's
        # sum can then reach 2^31; ``widen_sums`` once they could), 24 B a segment
        self.sums = np.zeros((cap, NWIDE), dtype=np.int32)
        # the counters (sums columns NWIDE on): int32 while fewer than 2^31 rows were counted (no
        # segment's counter can then reach 2^31; ``widen_counters`` once more were), 16 B a segment
        self.cnt = np.zeros((cap, NCNT), dtype=np.int32)
        self.codec = OrderCodec()
        self.ev: np.ndarray = np.full((cap, NEV), NONE32, dtype=np.uint32)  # compact until ``widen_orders``
        self.ev_ts = np.zeros((cap, NTS), dtype=np.int64)
        self.ev_val = np.zeros((cap, NVAL), dtype=np.uint32)
        self.last = np.full((cap, 2), -1, dtype=np.int64)  # order, ts_ns
        # last file index the segment was noted in; empty while the table reads one file (every
        # segment is in it: FlowTable._sole), 4 B a segment saved
        self.seg_file = np.zeros(0, dtype=np.int32)
        self.one_file = True  # seg_file is not kept

    def kernel_args(self) -> tuple:
        """The state as ``add_rows`` takes it."""
        return (
            self.slots,
            self.tk_u64,
            self.tk_i64,
            self.seg_gid,
            self.seg_tup,
            self.sums,
            self.cnt,
            self.ev,
            self.ev_ts,
            self.ev_val,
            self.last,
            self.seg_file,
            self.ntup,
            self.nseg,
            self.nlive,
        )

    @property
    def tup_cur(self) -> np.ndarray:
        """Per tuple: its current segment's id (a view)."""
        return self.tk_i64[:, T_CUR]

    @property
    def tup_live(self) -> np.ndarray:
        """Per tuple: its current segment's row, -1 when expired (a view)."""
        return self.tk_i64[:, T_LIVE]

    @property
    def identity(self) -> bool:
        """Live row ``ls`` holds segment ``ls`` (and every segment is live): ``seg_gid`` is not kept."""
        return self.seg_gid.shape[0] == 0

    def gid(self) -> np.ndarray:
        """Per live row: its segment's id (``seg_gid``, or the row itself while ``identity``)."""
        return np.arange(self.nlive, dtype=np.int64) if self.identity else self.seg_gid[: self.nlive]

    def spell_out_gid(self) -> None:
        """Keep ``seg_gid`` from now on (before rows move: expiry compacts them)."""
        if self.identity:
            self.seg_gid = np.full(self.seg_tup.shape[0], -1, dtype=np.int64)
            self.seg_gid[: self.nlive] = np.arange(self.nlive)

    def spell_out_files(self, sole: int) -> None:
        """Keep ``seg_file`` from now on: every live segment noted in file ``sole`` (-1: none yet)."""
        if self.one_file:
            self.one_file = False
            self.seg_file = np.full(self.seg_tup.shape[0], -1, dtype=np.int32)
            self.seg_file[: self.nlive] = sole

    def forget_gid(self) -> None:
        """Every segment is live in the row of its id again (``materialize``, ``merge``)."""
        self.seg_gid = np.zeros(0, dtype=np.int64)

    def widen_counters(self, rows: int) -> None:
        """``cnt`` made int64 once ``rows`` (every row counted so far and about to be) could pass
        int32 in one segment's counter (each row adds one at most to each)."""
        if rows > np.iinfo(np.int32).max and self.cnt.dtype != np.int64:
            self.cnt = self.cnt.astype(np.int64)

    @property
    def ev_none(self) -> int:
        """``ev``'s NONE: NONE32 while compact, else NONE."""
        return order_none(self.ev)

    def widen_orders(self) -> None:
        """``ev`` made int64 (file index << 40 | frame) orders, for good: before a merge (a table's
        compact orders are its own), or when a batch's orders would not fit the compact ones
        (``OrderCodec.shift``). The live rows are converted a block at a time from the end, the
        compact array cut after each (no second whole copy)."""
        if self.ev.dtype == np.int64:
            return
        _grow(self, "ev", self.ev.shape[0], dtype=np.int64, convert=self.codec.decode, used=self.nlive)
        self.codec.wide = True

    def widen_sums(self, bound: int) -> None:
        """``sums`` made int64 once ``bound`` (the rows counted so far and about to be, and their IP
        and payload bytes: each bounds every segment's sum of it) could pass int32."""
        if bound > np.iinfo(np.int32).max and self.sums.dtype != np.int64:
            self.sums = self.sums.astype(np.int64)

    def drop(self, *names: str) -> None:
        """Replace the named arrays by empty ones (finish frees them one by one as it goes)."""
        for name in names:
            arr = getattr(self, name)
            setattr(self, name, np.zeros((0, *arr.shape[1:]), dtype=arr.dtype))

    def reserve(self, more: int, more_live: int | None = None, *, clean: bool = False) -> None:
        """Make room for ``more`` new tuples and ``more_live`` (default ``more``) live segments.

        Large arrays grow along 2^k, 1.5 * 2^k (by a half or a third, not double, see ``_ladder``): a
        table overshoots what it holds by half at most, and one array grows at a time, its old rows
        going as they are copied (``_grow``). New rows are left unwritten (no memory is touched until
        a row is used): ``add_rows`` sets a tuple's row and clears a segment's when it takes them; ``clean``
        clears the segment rows now (``merge_rows``)."""
        need_t, need_s = self.ntup + more, self.nlive + (more if more_live is None else more_live)
        if need_t > self.tk_u64.shape[0]:
            cap = _ladder(max(need_t, self.tk_u64.shape[0] + 1))
            _grow(self, "tk_u64", cap)
            _grow(self, "tk_i64", cap)
            if self.seg_tup.dtype != _tid_dtype(cap):
                self.seg_tup = self.seg_tup.astype(_tid_dtype(cap))
        if 2 * self.tk_u64.shape[0] > self.slots.shape[0]:  # the hash at most half full
            cap = self.tk_u64.shape[0]
            self.drop("slots")  # rehash reads the tuples only: the old slots go before the new come
            self.slots = rehash(self.tk_u64, self.tk_i64, self.ntup, _slots(_pow2(2 * cap), cap))
        if need_s > self.seg_tup.shape[0]:
            cap = _ladder(max(need_s, self.seg_tup.shape[0] + 1))
            for name in ("seg_gid", "seg_tup", "sums", "cnt", "ev", "ev_ts", "ev_val", "last", "seg_file"):
                if not ((name == "seg_gid" and self.identity) or (name == "seg_file" and self.one_file)):
                    _grow(self, name, cap)  # (arrays not kept stay empty)
        if clean:
            n = self.nlive
            self.seg_gid[n:], self.seg_tup[n:], self.seg_file[n:] = -1, 0, -1
            self.sums[n:], self.ev_ts[n:], self.ev_val[n:], self.last[n:] = 0, 0, 0, -1
            self.ev[n:] = self.ev_none
            self.cnt[n:] = 0


def _slots(n: int, tuples: int) -> np.ndarray:
    """An empty hash of ``n`` slots for up to ``tuples`` tuple ids: int32 (8 B a tuple at half
    full, where int64 took 16) unless ids could pass 2^31."""
    return np.full(n, -1, dtype=np.int32 if tuples < 2**31 else np.int64)


def _tid_dtype(tuples: int) -> type:
    """Tuple ids per segment (``seg_tup``): int32 (4 B a segment saved) unless ids could pass 2^31."""
    return np.int32 if tuples < 2**31 else np.int64


def _ladder(n: int) -> int:
    """The least 2^k (or, past ``LADDER_FROM``, 1.5 * 2^k) that is >= n: small tables double, as
    each growth step costs a return from the kernel and a rehash."""
    p = _pow2(n)
    return p * 3 // 4 if p * 3 // 4 >= n and p > LADDER_FROM else p


def _pow2(n: int) -> int:
    return 1 << max(10, int(n - 1).bit_length())


def _grow(
    st: SegmentArrays,
    name: str,
    cap: int,
    *,
    dtype: type | None = None,
    convert: Callable[[np.ndarray], np.ndarray] | None = None,
    used: int | None = None,
) -> None:
    """``st``'s array ``name`` made ``cap`` rows, the new ones unwritten (untouched: a tuple's and a
    segment's row is written when taken). Copied a block at a time from the end, the old array cut
    after each (``ndarray.resize`` shrinking a mapped block: mremap, its tail pages go): the old and
    the new array are never both whole (the 1M scan's flows stage peak 583 -> 568 MiB). Where the
    old array cannot be cut (another reference, or it does not own its data), it is copied whole.
    ``dtype``/``convert``: the new array's type and what makes its rows of the old ones (widening
    ``ev``'s compact orders); ``used``: only the first rows are kept (the others left unwritten)."""
    arr = getattr(st, name)
    out = np.empty((cap, *arr.shape[1:]), dtype=arr.dtype if dtype is None else dtype)
    setattr(st, name, None)  # the local is then its only reference: resize's check passes
    n = arr.shape[0] if used is None else used
    rows = max(1, GROW_BLOCK // max(1, out.itemsize * int(np.prod(arr.shape[1:]))))
    try:
        if n < arr.shape[0]:
            arr.resize((n, *arr.shape[1:]))
        for hi in range(n, 0, -rows):
            lo = max(0, hi - rows)
            out[lo:hi] = arr[lo:hi] if convert is None else convert(arr[lo:hi])
            arr.resize((lo, *arr.shape[1:]))  # refcheck: never leaves a view pointing at freed pages
    except ValueError:  # the rows not yet cut off, whole
        k = min(n, arr.shape[0])
        out[:k] = arr[:k] if convert is None else convert(arr[:k])
    setattr(st, name, out)


@njit(cache=True, inline="always")
def _mix(h: np.uint64, v: np.uint64) -> np.uint64:
    x = (h ^ v) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(32))


@njit(cache=True, inline="always")
def pack_key(proto, ap, bp):  # noqa: ANN001, ANN201
    """(proto, a_port, b_port) as one int64 (proto < 256, ports < 65536: ICMP keys too), so that a
    tuple keeps one word for them (16 B a tuple saved) and a lookup compares one."""
    return (np.int64(proto) << 32) | (np.int64(ap) << 16) | np.int64(bp)


def unpack_keys(ki: np.ndarray) -> None:
    """Rows of ``tk_i64`` (at finish: the segment columns are no longer read) made (proto, a_port,
    b_port) in place, the columns ``build_frame`` reads (numpy on column views: no temporaries, and
    no compiled function to load for it)."""
    key, a_port, b_port = ki[:, T_KEY], ki[:, 1], ki[:, 2]
    np.bitwise_and(key, 0xFFFF, out=b_port)
    np.right_shift(key, 16, out=a_port)
    np.bitwise_and(a_port, 0xFFFF, out=a_port)
    np.right_shift(key, 32, out=key)


@njit(cache=True, inline="always")
def _hash_key(pk, ahi, alo, bhi, blo):  # noqa: ANN001, ANN202
    h = _mix(np.uint64(pk), ahi)
    h = _mix(h, alo)
    h = _mix(h, bhi)
    return _mix(h, blo)


@njit(cache=True)
def _hash(u: np.ndarray, i: np.ndarray) -> np.uint64:
    return _hash_key(i[T_KEY], u[0], u[1], u[2], u[3])


@njit(cache=True)
def rehash(tk_u64: np.ndarray, tk_i64: np.ndarray, ntup: int, slots: np.ndarray) -> np.ndarray:
    """The first ``ntup`` tuples into ``slots`` (empty: -1); returns it."""
    mask = np.uint64(slots.shape[0] - 1)
    for t in range(ntup):
        s = _hash(tk_u64[t], tk_i64[t]) & mask
        while slots[s] >= 0:
            s = (s + np.uint64(1)) & mask
        slots[s] = t
    return slots


@njit(cache=True, inline="always")
def lookup_key(slots, tk_u64, tk_i64, ntup, pk, ahi, alo, bhi, blo):  # noqa: ANN001, ANN201
    """Tuple id of key (``pk``: packed (proto, a_port, b_port), A = (ahi, alo), B = (bhi, blo)),
    inserting it as ``ntup`` when absent. Returns (id, inserted)."""
    mask = np.uint64(slots.shape[0] - 1)
    s = _hash_key(pk, ahi, alo, bhi, blo) & mask
    while True:
        t = slots[s]
        if t < 0:
            slots[s] = ntup
            tk_u64[ntup, 0], tk_u64[ntup, 1], tk_u64[ntup, 2], tk_u64[ntup, 3] = ahi, alo, bhi, blo
            tk_i64[ntup, T_KEY] = pk
            return ntup, True
        if (
            tk_i64[t, T_KEY] == pk
            and tk_u64[t, 0] == ahi
            and tk_u64[t, 1] == alo
            and tk_u64[t, 2] == bhi
            and tk_u64[t, 3] == blo
        ):
            return t, False
        s = (s + np.uint64(1)) & mask


@njit(cache=True, inline="always")
def lookup_insert(slots, tk_u64, tk_i64, ntup, u, i):  # noqa: ANN001, ANN201
    """:func:`lookup_key` of the key held in arrays (u: the four address halves, i: a tk_i64 row)."""
    return lookup_key(slots, tk_u64, tk_i64, ntup, i[T_KEY], u[0], u[1], u[2], u[3])
