"""``FlowTable``: fold decoded batches into mergeable per-flow aggregates; finish into the flow DataFrame.

Flow key: (transport protocol, canonical endpoint pair), endpoint A being the lower (address, port).
ICMP echo-style messages key on Zeek's (type, counterpart type); ICMP errors attach to the flow they
quote (``icmp.py``). When the quoted flow was never seen (its packet was not captured), the error
*creates* it with zero packets each way, so a blocked attempt still shows up as a flow whose only
evidence is the ICMP error (originator: the quoted packet's sender, ``initiator=first_packet``).

Files are ordered as given to the constructor, then in order of first appearance; a packet's *order*
is (file index << 40 | frame). Tables that will be merged must agree on file order (pass ``files``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..arrays import sorted_unique
from ..capture.pool import ArrayPool
from ..decode.interface import ST_OK, PacketColumns
from . import icmp
from .expiry import (
    LIVE_ROWS,
    SPILL_BYTES,
    TIMEOUTS_NS,
    SegmentStore,
    _is_range,
    expire,
    fold_flows,
    join_view,
    materialize,
)
from .finish import IcmpErrors, build_frame
from .folding import ROW_ICMP_ERROR, ROW_SKIP, add_rows, mark_files
from .hosts import host_codes
from .interface import PacketFlows
from .join import group_first, join_segments, merge_rows
from .orders import FRAME_MASK, NONE, ORDER_SHIFT
from .state import T_KEY, SegmentArrays

STATUS_NAMES = {0: "ok", 1: "not_ip", 2: "truncated", 3: "malformed", 4: "unknown_link", 5: "fragment"}
ICMP_UNQUOTED = "icmp_error_unquoted"
NO_FILE, MANY = -1, -2  # FlowTable._sole: no batch yet; batches from several files (or merged)


class FlowTable:
    """Running flow table. ``add`` per batch, ``merge`` later partitions, ``finish`` once."""

    def __init__(
        self,
        files: Sequence[str] = (),
        *,
        live_rows: int = LIVE_ROWS,
        spill_bytes: int = SPILL_BYTES,
        timeouts_ns: tuple[int, int, int] = TIMEOUTS_NS,
    ) -> None:
        """``live_rows``: live segments that start an expiry pass, ``timeouts_ns``: idle times (see
        ``expiry.py``; neither changes results); ``spill_bytes``: expired segments held in memory
        before they go to a temporary file."""
        self._files: list[str] = []
        self._file_index: dict[str, int] = {}
        for f in files:
            self._file_id(f)
        self._st = SegmentArrays()
        self._pool = ArrayPool()
        self._file_pairs: list[np.ndarray] = []  # sid << 20 | file index, one per (segment, file)
        # index of the one file every batch so far came from, whose pairs are left implicit (every
        # segment id is in it: 8 B a segment saved); NO_FILE before the first batch; MANY once spelled
        self._sole = NO_FILE
        self._icmp: list[IcmpErrors] = []
        self._non_flow: Counter[tuple[int, str]] = Counter()
        self._finished = False
        self._store = SegmentStore(spill_bytes)
        self._live_rows = self._expire_at = max(1, live_rows)
        self._timeouts = timeouts_ns
        self._now = np.iinfo(np.int64).min  # latest capture time seen (ns)
        self._expired = False  # ever: noted (segment, file) pairs may then repeat
        self._rows = 0  # rows added (here and in merged tables): bounds every flow's counters
        self._bytes = 0  # their IP or payload bytes (the larger): bounds every segment's byte sums

    def _file_id(self, path: str) -> int:
        idx = self._file_index.get(path)
        if idx is None:
            idx = self._file_index[path] = len(self._files)
            self._files.append(path)
        return idx

    # ---------------------------------------------------------------------------------------------- add

    def add(self, cols: PacketColumns) -> PacketFlows:
        """Fold one decoded batch in; per-row provisional flow ids (see ``finish``) and directions."""
        if self._finished:
            raise RuntimeError("FlowTable.add: already finished")
        n = len(cols)
        self._rows += n
        self._bytes += max(_total(cols.ip_len), _total(cols.pay_wire))
        self._st.widen_counters(self._rows)
        self._st.widen_sums(max(self._rows, self._bytes))
        fidx = self._file_id(cols.source)
        err = icmp.error_rows(cols)
        quotes = icmp.quoted_keys(cols, err)
        kind = np.where(quotes.ok, ROW_ICMP_ERROR, ROW_SKIP)  # an unquoted error is no flow's packet
        ov_i64 = np.stack([kind, *quotes.int_columns()], 1)
        ov_u64 = np.stack(quotes.addr_columns(), 1)
        self._count_non_flow(cols, int(err.shape[0] - quotes.ok.sum()))
        if self._sole != fidx:
            self._sole = fidx if self._sole == NO_FILE else self._spell_out_files()
        sid, from_a = self._pool.empty(n, np.int64, "sid"), self._pool.empty(n, np.bool_, "from_a")
        noted = self._pool.empty(n, np.int64, "noted")
        st, row = self._st, 0
        shift = self._shift(cols, fidx)
        while True:
            st.ntup, st.nseg, st.nlive, row, m = add_rows(
                st.kernel_args(),
                *(cols.status, cols.ipver, cols.proto, cols.src_hi, cols.src_lo, cols.dst_hi, cols.dst_lo),
                *(cols.sport, cols.dport, cols.tcp_flags, cols.seq, cols.ip_len, cols.pay_wire, cols.ts_ns),
                *(cols.frame, cols.vlan, cols.encap, icmp.COUNTERPART_V4, icmp.COUNTERPART_V6),
                *(err, ov_u64, ov_i64, fidx, shift, sid, from_a, noted, row),
            )
            if m and self._sole == MANY:
                self._file_pairs.append((noted[:m] << 20) | fidx)
            if row >= n:
                break
            st.reserve(1024)  # and the next step of the arrays' growth
        if err.shape[0]:
            quoting = err[quotes.ok]
            order = (np.int64(fidx) << ORDER_SHIFT) | cols.frame[quoting].astype(np.int64)
            self._note_icmp(cols, quoting, sid, from_a, order)
            sid[err] = -1
        if n:
            self._now = max(self._now, int(cols.ts_ns.max()))
        if st.nlive >= self._expire_at:
            self._expire()
        return PacketFlows(flow_id=sid, from_a=from_a)

    def _shift(self, cols: PacketColumns, fidx: int) -> int:
        """The batch's ``ev`` orders as ``shift + frame``: compact ones while they fit (see
        ``orders.OrderCodec``), else ``ev`` is widened here, once, and they are true ones."""
        if not len(cols):
            return 0
        frame = cols.frame
        shift = self._st.codec.shift(fidx, int(frame.min()), int(frame.max()))
        if shift is None:
            self._st.widen_orders()
            shift = fidx << ORDER_SHIFT
        return shift

    def _expire(self) -> None:
        """Idle segments out to the store; the next pass once the live rows have doubled."""
        if expire(self._st, self._now, self._store, self._timeouts):
            self._expired = True
        self._expire_at = max(self._live_rows, 2 * self._st.nlive)

    def _materialize(self) -> None:
        """Stored segments folded back: the arrays indexed by segment id, as merge reads them."""
        if self._store.rows:
            self._st = materialize(self._st, self._store)
            self._store.close()

    def _count_non_flow(self, cols: PacketColumns, unquoted: int) -> None:
        """Count rows that are not IP (or not decodable) by (ethertype, status), and unquoted errors."""
        skip = np.flatnonzero((cols.status != ST_OK) | (cols.ipver == 0))
        if skip.shape[0]:
            pairs = np.stack([cols.ethertype[skip].astype(np.int64), cols.status[skip].astype(np.int64)])
            uniq, counts = np.unique(pairs, axis=1, return_counts=True)
            for (eth, status), c in zip(uniq.T.tolist(), counts.tolist(), strict=True):
                self._non_flow[(eth, STATUS_NAMES.get(status, str(status)))] += c
        if unquoted:
            self._non_flow[(0, ICMP_UNQUOTED)] += unquoted

    def _spell_out_files(self) -> int:
        """List the (segment, file) pairs left implicit while every batch came from one file; MANY."""
        self._st.spell_out_files(self._sole)
        if self._sole >= 0 and self._st.nseg:
            self._file_pairs.insert(0, (np.arange(self._st.nseg, dtype=np.int64) << 20) | self._sole)
        self._sole = MANY
        return MANY

    def _note_files(self, sids: np.ndarray, fidx: int) -> None:
        out = np.empty(len(sids), dtype=np.int64)
        m = mark_files(sids, self._st.seg_file, fidx, out)
        if m:
            self._file_pairs.append((out[:m] << 20) | fidx)

    def _note_icmp(
        self, cols: PacketColumns, rows: np.ndarray, sid: np.ndarray, from_a: np.ndarray, order: np.ndarray
    ) -> None:
        """ICMP errors of ``rows`` (``order``: theirs) and the segments they quote (``add_rows`` noted
        the segments' files)."""
        self._icmp.append(
            IcmpErrors(
                sid=sid[rows].copy(),
                order=order,
                ts_ns=cols.ts_ns[rows].astype(np.int64),
                proto=cols.proto[rows].astype(np.int64),
                type=cols.sport[rows].astype(np.int64),
                code=cols.dport[rows].astype(np.int64),
                from_hi=cols.src_hi[rows].astype(np.uint64),
                from_lo=cols.src_lo[rows].astype(np.uint64),
                quote_from_a=from_a[rows].copy(),
            )
        )

    # -------------------------------------------------------------------------------------------- merge

    def merge(self, other: FlowTable) -> np.ndarray:
        """Fold a later partition's table in; returns other's provisional ids -> this table's ids."""
        if self._finished or other._finished:
            raise RuntimeError("FlowTable.merge: a table already finished")
        self._spell_out_files()
        other._spell_out_files()
        self._st.widen_orders()  # merge reads true orders (a table's compact ones are its own)
        other._st.widen_orders()
        self._materialize()
        other._materialize()
        self._expired |= other._expired
        self._rows += other._rows
        self._bytes += other._bytes
        self._st.widen_counters(self._rows)
        self._st.widen_sums(max(self._rows, self._bytes))
        fmap = np.array([self._file_id(f) for f in other._files] or [0], dtype=np.int64)
        o, st = other._st, self._st
        o_ev, o_last = _reorder(o.ev[: o.nseg], fmap), o.last[: o.nseg].copy()
        o_last[:, 0] = _reorder(o_last[:, 0], fmap)
        st.reserve(o.ntup + o.nseg, clean=True)
        remap = np.empty(o.nseg, dtype=np.int64)
        o_sorted = np.argsort(o.seg_tup[: o.nseg], kind="stable")
        st.ntup, st.nseg = merge_rows(
            st.slots,
            st.tk_u64,
            st.tk_i64,
            st.tup_cur,
            st.seg_tup,
            st.sums,
            st.cnt,
            st.ev,
            st.ev_ts,
            st.ev_val,
            st.last,
            st.ntup,
            st.nseg,
            o.tk_u64[: o.ntup],
            o.tk_i64[: o.ntup],
            o.tup_cur[: o.ntup],
            o.seg_tup[: o.nseg],
            o.sums[: o.nseg],
            o.cnt[: o.nseg],
            o_ev,
            o.ev_ts[: o.nseg],
            o.ev_val[: o.nseg],
            o_last,
            o.ntup,
            o_sorted,
            remap,
        )
        st.nlive = st.nseg  # every segment in the row of its id, as after materialize
        self._expire_at = max(self._live_rows, 2 * st.nlive)  # no expiry pass straight after a merge
        st.forget_gid()
        st.tup_live[: st.ntup] = st.tup_cur[: st.ntup]
        for chunk in other._icmp:
            self._icmp.append(chunk.remapped(remap, _reorder(chunk.order, fmap)))
        for pairs in other._file_pairs:
            sids, files = remap[pairs >> 20], fmap[pairs & 0xFFFFF]
            for f in sorted_unique(files).tolist():
                self._note_files(sids[files == f], f)
        self._non_flow.update(other._non_flow)
        return remap

    # ------------------------------------------------------------------------------------------- finish

    def non_flow_summary(self) -> pd.DataFrame:
        """Packets that are not part of a flow, by (ethertype, status): ARP, malformed, fragments ..."""
        rows = [(eth, status, n) for (eth, status), n in sorted(self._non_flow.items())]
        return pd.DataFrame(rows, columns=["ethertype", "status", "packets"])

    def finish(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The flow DataFrame (FLOW_COLUMNS) and the remap provisional id -> final flow_id.

        Once only: the segment arrays are dropped as they are folded into flow rows (a SYN scan's
        million segments and its million-row frame would not both fit a small machine)."""
        if self._finished:
            raise RuntimeError("FlowTable.finish: already finished")
        self._finished = True
        self._pool.clear()  # no more batches: their arrays go as soon as their holders let go
        st, store = self._st, self._store
        nseg = st.nseg
        st.drop("slots", "seg_file")
        seg_tup, seg_ev, seg_val, jcols = join_view(st, store)
        group = np.empty(nseg, dtype=np.int64)
        ng = join_segments(np.argsort(seg_tup, kind="stable"), seg_tup, seg_ev, seg_val, group, jcols)
        perm = np.argsort(group_first(group, nseg, seg_ev, ng, jcols), kind="stable")
        del seg_ev, seg_val
        final = np.empty(ng, dtype=np.int64)
        final[perm] = np.arange(ng)
        del perm
        dest = final[group]  # segment -> flow id (its row in the frame)
        del final, group
        tup = np.zeros(ng, dtype=np.int64)
        tup[dest] = seg_tup
        del seg_tup
        # the addresses as codes (8 B a flow, not 32) before the aggregates come (see ``hosts``)
        if _is_range(tup):  # flow i is tuple i (a scan's)
            hosts = host_codes(st.tk_u64[:ng])
            agg = {"key": st.tk_i64[:ng, T_KEY].copy()}
        else:  # (the 32 B a flow of addresses taken go here, before the fold)
            hosts = host_codes(st.tk_u64[tup])
            agg = {"key": st.tk_i64[tup, T_KEY]}
        del tup
        st.drop("tk_u64", "tk_i64")  # of tk_i64, build_frame reads the packed key: 8 B a flow, not 24
        agg.update(fold_flows(st, store, dest, ng, narrow=self._rows <= np.iinfo(np.int32).max))
        icmp_all = IcmpErrors.concat(self._icmp).remapped(dest, None)
        pairs = np.concatenate(self._file_pairs) if self._file_pairs else np.zeros(0, dtype=np.int64)
        if self._expired:  # a revived segment notes its file again
            pairs = sorted_unique(pairs)
        self._icmp, self._file_pairs = [], []
        file_pairs = (dest[pairs >> 20], pairs & 0xFFFFF)
        del pairs
        codec = st.codec if agg["ev"].dtype == np.uint32 else None  # compact orders (a scan's)
        return build_frame(agg, hosts, ng, icmp_all, self._files, file_pairs, codec), dest


def _total(values: np.ndarray) -> int:
    """A bound on what ``values`` (int64) add to any sum: their magnitudes' total (each clipped at
    2^32 first, so that neither it nor the total can wrap; one that large passes int32 either way)."""
    if not len(values):
        return 0
    if values.min() >= 0 and values.max() <= 1 << 32:  # the usual case: summed as they are
        return int(values.sum())
    return int(np.abs(np.clip(values, -(1 << 32), 1 << 32)).sum())


def _reorder(orders: np.ndarray, fmap: np.ndarray) -> np.ndarray:
    """Re-encode orders with another table's file indices mapped to ours."""
    out = orders.copy()
    valid = (orders != NONE) & (orders >= 0)
    out[valid] = (fmap[orders[valid] >> ORDER_SHIFT] << ORDER_SHIFT) | (orders[valid] & FRAME_MASK)
    return out
