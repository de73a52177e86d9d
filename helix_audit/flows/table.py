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

from ..capture.pool import ArrayPool
from ..decode.interface import ST_OK, PacketColumns
from . import icmp
from .finish import IcmpErrors, build_frame
from .interface import PacketFlows
from .join import fold_groups, join_segments, merge_rows
from .state import (
    EV_FIRST,
    FRAME_MASK,
    NONE,
    ORDER_SHIFT,
    ROW_ICMP_ERROR,
    ROW_SKIP,
    SegmentArrays,
    add_rows,
    mark_files,
)

STATUS_NAMES = {0: "ok", 1: "not_ip", 2: "truncated", 3: "malformed", 4: "unknown_link", 5: "fragment"}
ICMP_UNQUOTED = "icmp_error_unquoted"


class FlowTable:
    """Running flow table. ``add`` per batch, ``merge`` later partitions, ``finish`` once."""

    def __init__(self, files: Sequence[str] = ()) -> None:
        self._files: list[str] = []
        self._file_index: dict[str, int] = {}
        for f in files:
            self._file_id(f)
        self._st = SegmentArrays()
        self._pool = ArrayPool()
        self._file_pairs: list[np.ndarray] = []  # sid << 20 | file index, one per (segment, file)
        self._icmp: list[IcmpErrors] = []
        self._non_flow: Counter[tuple[int, str]] = Counter()

    def _file_id(self, path: str) -> int:
        idx = self._file_index.get(path)
        if idx is None:
            idx = self._file_index[path] = len(self._files)
            self._files.append(path)
        return idx

    # ---------------------------------------------------------------------------------------------- add

    def add(self, cols: PacketColumns) -> PacketFlows:
        """Fold one decoded batch in; per-row provisional flow ids (see ``finish``) and directions."""
        n = len(cols)
        fidx = self._file_id(cols.source)
        err = icmp.error_rows(cols)
        quotes = icmp.quoted_keys(cols, err)
        kind = np.where(quotes.ok, ROW_ICMP_ERROR, ROW_SKIP)  # an unquoted error is no flow's packet
        ov_i64 = np.stack([kind, *quotes.int_columns()], 1)
        ov_u64 = np.stack(quotes.addr_columns(), 1)
        self._count_non_flow(cols, int(err.shape[0] - quotes.ok.sum()))
        sid, from_a = self._pool.empty(n, np.int64, "sid"), self._pool.empty(n, np.bool_, "from_a")
        noted = self._pool.empty(n, np.int64, "noted")
        st, row = self._st, 0
        while True:
            st.ntup, st.nseg, row, m = add_rows(
                st.kernel_args(),
                *(cols.status, cols.ipver, cols.proto, cols.src_hi, cols.src_lo, cols.dst_hi, cols.dst_lo),
                *(cols.sport, cols.dport, cols.tcp_flags, cols.seq, cols.ip_len, cols.pay_wire, cols.ts_ns),
                *(cols.frame, cols.vlan, cols.encap, icmp.COUNTERPART_V4, icmp.COUNTERPART_V6),
                *(err, ov_u64, ov_i64, fidx, sid, from_a, noted, row),
            )
            if m:
                self._file_pairs.append((noted[:m] << 20) | fidx)
            if row >= n:
                break
            st.reserve(max(1024, st.nseg, st.ntup))
        if err.shape[0]:
            quoting = err[quotes.ok]
            order = (np.int64(fidx) << ORDER_SHIFT) | cols.frame[quoting].astype(np.int64)
            self._note_icmp(cols, quoting, sid, from_a, order)
            sid[err] = -1
        return PacketFlows(flow_id=sid, from_a=from_a)

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

    def _note_files(self, sids: np.ndarray, fidx: int) -> None:
        out = np.empty(len(sids), dtype=np.int64)
        m = mark_files(sids, self._st.seg_file, fidx, out)
        if m:
            self._file_pairs.append((out[:m] << 20) | fidx)

    def _note_icmp(
        self, cols: PacketColumns, rows: np.ndarray, sid: np.ndarray, from_a: np.ndarray, order: np.ndarray
    ) -> None:
        """ICMP errors of ``rows`` (``order``: theirs) and the segments they quote."""
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
        if len(rows):
            self._note_files(sid[rows], int(order[0] >> ORDER_SHIFT))

    # -------------------------------------------------------------------------------------------- merge

    def merge(self, other: FlowTable) -> np.ndarray:
        """Fold a later partition's table in; returns other's provisional ids -> this table's ids."""
        fmap = np.array([self._file_id(f) for f in other._files] or [0], dtype=np.int64)
        o, st = other._st, self._st
        o_ev, o_last = _reorder(o.ev[: o.nseg], fmap), o.last[: o.nseg].copy()
        o_last[:, 0] = _reorder(o_last[:, 0], fmap)
        st.reserve(o.ntup + o.nseg)
        remap = np.empty(o.nseg, dtype=np.int64)
        o_sorted = np.argsort(o.seg_tup[: o.nseg], kind="stable")
        st.ntup, st.nseg = merge_rows(
            st.slots,
            st.tk_u64,
            st.tk_i64,
            st.tup_cur,
            st.seg_tup,
            st.sums,
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
            o_ev,
            o.ev_ts[: o.nseg],
            o.ev_val[: o.nseg],
            o_last,
            o.ntup,
            o_sorted,
            remap,
        )
        for chunk in other._icmp:
            self._icmp.append(chunk.remapped(remap, _reorder(chunk.order, fmap)))
        for pairs in other._file_pairs:
            sids, files = remap[pairs >> 20], fmap[pairs & 0xFFFFF]
            for f in np.unique(files).tolist():
                self._note_files(sids[files == f], f)
        self._non_flow.update(other._non_flow)
        return remap

    # ------------------------------------------------------------------------------------------- finish

    def non_flow_summary(self) -> pd.DataFrame:
        """Packets that are not part of a flow, by (ethertype, status): ARP, malformed, fragments ..."""
        rows = [(eth, status, n) for (eth, status), n in sorted(self._non_flow.items())]
        return pd.DataFrame(rows, columns=["ethertype", "status", "packets"])

    def finish(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The flow DataFrame (FLOW_COLUMNS) and the remap provisional id -> final flow_id."""
        self._pool.clear()  # no more batches: their arrays go as soon as their holders let go
        st = self._st
        nseg = st.nseg
        group = np.empty(nseg, dtype=np.int64)
        ng = join_segments(np.argsort(st.seg_tup[:nseg], kind="stable"), st.seg_tup, st.ev, st.ev_val, group)
        g = SegmentArrays(max(ng, 1))
        fold_groups(
            group, nseg, st.sums, st.ev, st.ev_ts, st.ev_val, st.last, g.sums, g.ev, g.ev_ts, g.ev_val, g.last
        )
        g_tup = np.zeros(ng, dtype=np.int64)
        g_tup[group] = st.seg_tup[:nseg]
        icmp_all = IcmpErrors.concat(self._icmp).remapped(group, None)
        first = np.where(g.ev[:ng, EV_FIRST] != NONE, g.ev[:ng, EV_FIRST], g.ev[:ng, -1])
        perm = np.argsort(first, kind="stable")
        final = np.empty(ng, dtype=np.int64)
        final[perm] = np.arange(ng)
        pairs = np.concatenate(self._file_pairs) if self._file_pairs else np.zeros(0, dtype=np.int64)
        file_pairs = (group[pairs >> 20], pairs & 0xFFFFF)
        frame = build_frame(
            g, ng, st.tk_u64[g_tup], st.tk_i64[g_tup], perm, icmp_all, self._files, file_pairs
        )
        return frame, final[group]


def _reorder(orders: np.ndarray, fmap: np.ndarray) -> np.ndarray:
    """Re-encode orders with another table's file indices mapped to ours."""
    out = orders.copy()
    valid = (orders != NONE) & (orders >= 0)
    out[valid] = (fmap[orders[valid] >> ORDER_SHIFT] << ORDER_SHIFT) | (orders[valid] & FRAME_MASK)
    return out
