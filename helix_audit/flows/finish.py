"""Derive the finished flow columns (``FLOW_COLUMNS``) from per-flow aggregates, all vectorised.

``build_frame`` assembles the frame; the originator and the columns that depend on it (sums per
direction, handshake, conn_state, history) come from ``orient.py``; the columns made here follow from
orders and files: key frames, ICMP error columns, file names, stream numbers, encapsulation.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import pandas as pd
from numba import njit

from ..arrays import sorted_unique
from ..decode.interface import addr_to_str
from . import icmp
from .blob import TextBlobArray
from .hosts import HostCodes, host_columns_of
from .interface import FLOW_COLUMNS
from .orders import FRAME_MASK, NONE, NONE32, ORDER_SHIFT, OrderCodec
from .orient import CHUNK_ROWS, HANDSHAKES, _handshake, _orientation, _states, _sum_columns
from .state import EV_FIRST, EV_ICMP, K_DATA, K_FIN, K_RST, K_SYN, K_SYNACK, NWIDE
from .text import categorical, frames_buffer, narrow_int

KEY_FRAMES_MAX = 12
ENCAP_NAMES = ["vlan", "mpls", "vxlan", "geneve", "gre", "gtpu", "teredo", "ipip"]
CONFIDENCE = ["high", "low"]
INITIATORS = ["syn", "synack", "first_packet", "port_heuristic"]
TRANSPORTS = [f"ip-{p}" for p in range(256)]
TRANSPORTS[6], TRANSPORTS[17], TRANSPORTS[1], TRANSPORTS[58] = "tcp", "udp", "icmp", "icmp6"
ENCAP_TEXTS = ["+".join(n for k, n in enumerate(ENCAP_NAMES) if b >> k & 1) for b in range(256)]
KEY_EVENTS = [2 * k + d for k in (K_SYN, K_SYNACK, K_DATA, K_FIN, K_RST) for d in (0, 1)]  # ev columns


@dataclass(frozen=True, eq=False)
class IcmpErrors:
    """ICMP errors attached to flows (sparse: errors are few). ``sid``: segment, then flow id."""

    sid: np.ndarray
    order: np.ndarray
    ts_ns: np.ndarray
    proto: np.ndarray
    type: np.ndarray
    code: np.ndarray
    from_hi: np.ndarray
    from_lo: np.ndarray
    quote_from_a: np.ndarray

    @cached_property
    def by_flow(self) -> np.ndarray:
        """The errors' positions by flow, then capture order (each flow's first error first): what
        the ICMP columns, the key frames and the times of flows known only from errors read, sorted
        once."""
        return np.lexsort((self.order, self.sid))

    def remapped(self, remap: np.ndarray, order: np.ndarray | None) -> IcmpErrors:
        vals = {f.name: getattr(self, f.name) for f in fields(self)}
        vals["sid"] = remap[self.sid] if len(self.sid) else self.sid
        if order is not None:
            vals["order"] = order
        return IcmpErrors(**vals)

    @staticmethod
    def concat(chunks: list[IcmpErrors]) -> IcmpErrors:
        names = [f.name for f in fields(IcmpErrors)]
        if not chunks:
            return IcmpErrors(
                **{n: np.zeros(0, dtype=bool if n == "quote_from_a" else np.int64) for n in names}
            )
        return IcmpErrors(**{n: np.concatenate([getattr(c, n) for c in chunks]) for n in names})


def _stream_index(first_file: np.ndarray, mask: np.ndarray, narrow: bool = False) -> pd.array:
    """tshark-style per-file stream numbers (0-based, by first packet) for flows in ``mask`` (rows
    in final order, i.e. by first packet): the rank of each flow among its file's, counted with a
    stable sort by file; one file, the usual case: a running count (no row-sized temporaries).
    Int64; ``narrow``: Int32 (a rank is below the number of flows), unless there are 2^31 flows."""
    kind: type[np.signedinteger] = np.int32 if narrow and len(mask) <= np.iinfo(np.int32).max else np.int64
    if not mask.any():
        return pd.arrays.IntegerArray(np.zeros(len(mask), dtype=kind), np.ones(len(mask), dtype=bool))
    if (first_file == first_file[0]).all():
        values = np.cumsum(mask, dtype=kind)
        values -= 1
        values[~mask] = 0
        return pd.arrays.IntegerArray(values, ~mask.astype(bool))
    values = np.zeros(len(mask), dtype=kind)
    ordered = np.flatnonzero(mask)
    ff = first_file[ordered]
    by_file = np.argsort(ff, kind="stable")
    sf = ff[by_file]
    start = np.searchsorted(sf, sf)  # each row's file's first position in sf
    ranks = np.empty(len(ff), dtype=kind)
    ranks[by_file] = np.arange(len(ff)) - start
    values[ordered] = ranks
    return pd.arrays.IntegerArray(values, ~mask.astype(bool))


def _icmp_columns(err: IcmpErrors, ng: int, files: list[str]) -> dict[str, object]:
    """The ICMP error columns: the first error's name and sender per flow (None if none: object
    columns, as readers fill them in), and every error's frame (a Categorical, "" for none)."""
    count = np.bincount(err.sid, minlength=ng) if len(err.sid) else np.zeros(ng, np.int64)
    name = np.full(ng, None, dtype=object)
    sender = np.full(ng, None, dtype=object)
    frames = np.zeros(ng, dtype=np.int64)  # codes into texts: "" (none), then each flow's own
    by_flow: dict[int, list[str]] = {}
    for j in err.by_flow.tolist():
        f = int(err.sid[j])
        lst = by_flow.setdefault(f, [])
        if not lst:
            name[f] = icmp.error_name(int(err.proto[j]), int(err.type[j]), int(err.code[j]))
            sender[f] = addr_to_str(err.from_hi[j], err.from_lo[j])
        o = int(err.order[j])
        lst.append(f"{files[o >> ORDER_SHIFT]}:{o & FRAME_MASK}")
    texts = [""]
    for f, lst in by_flow.items():
        frames[f] = len(texts)
        texts.append(",".join(lst))
    return {
        "icmp_errors": narrow_int(count),
        "icmp_error": _objects(name, bool(by_flow)),
        "icmp_from": _objects(sender, bool(by_flow)),
        "icmp_frames": categorical(frames, texts),
    }


def _objects(values: np.ndarray, texts: bool) -> object:
    """An object column as the frame is to hold it: ``values`` as they are where some are texts
    (the frame infers them ``str``, as ever); all None (no flow has an ICMP error, a scan's): an
    object Series of them, whose dtype the frame keeps, as it would infer it, without inferring
    (its temporaries were ~24 B a flow on top of the whole frame, the 3M scan's finish peak)."""
    return values if texts else pd.Series(values, dtype=object, copy=False)


def _key_events(ev: np.ndarray) -> np.ndarray:
    """``ev`` ((ng, NEV), an array of its own) cut in place to its ``KEY_EVENTS`` columns, in that
    order, (ng, len(KEY_EVENTS)): what ``_key_frames`` reads (the others' 32 B a flow go before its
    texts come)."""
    ng, keep = ev.shape[0], len(KEY_EVENTS)
    flat = ev.reshape(-1)
    _compact_rows(flat, ng, ev.shape[1], np.array(KEY_EVENTS, dtype=np.int64))
    del flat
    ev.resize((ng, keep), refcheck=False)  # the caller holds no view of it
    return ev


@njit(cache=True)
def _compact_rows(flat, n, width, keep):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """Rows of ``width`` values in ``flat`` made rows of their ``keep`` columns, in place: a row's
    new place ends before its old one, so rows move down in order without overwriting any."""
    k = keep.shape[0]
    for r in range(n):
        for j in range(k):
            flat[r * k + j] = flat[r * width + keep[j]]


def _key_frames(
    kev: np.ndarray,
    err: IcmpErrors,
    first_file: np.ndarray,
    files: list[str],
    codec: OrderCodec | None = None,
) -> TextBlobArray:
    """Comma-separated key frames per flow from ``kev`` (the ``KEY_EVENTS`` columns; with ``codec``,
    compact orders, decoded a chunk at a time): sorted and rendered by
    :func:`.text.frames_buffer`, a chunk of rows at a time from the end; when ``kev`` is an array of
    its own, cut after each chunk (its rows go as their texts come). The texts stay in the kernel's
    buffer (:class:`.blob.TextBlobArray`: no str per flow). Python only for the rare flows with
    frames in another file (prefixed ``file:``)."""
    ng = kev.shape[0]
    own = kev.flags.owndata and kev.flags.c_contiguous
    o = err.by_flow
    sid, order = err.sid[o], err.order[o]
    rank = np.arange(len(sid)) - np.searchsorted(sid, sid)
    keep = rank < 4
    sid, order, rank = sid[keep], order[keep], rank[keep]
    parts: list[TextBlobArray] = []
    for hi in range(ng, 0, -CHUNK_ROWS):
        lo = max(0, hi - CHUNK_ROWS)
        extra = np.full((hi - lo, 4), NONE, dtype=np.int64)
        at = slice(np.searchsorted(sid, lo), np.searchsorted(sid, hi))
        extra[sid[at] - lo, rank[at]] = order[at]
        rows = kev[lo:hi] if codec is None else codec.decode(kev[lo:hi])
        m = np.concatenate([rows, extra], axis=1)
        del rows
        if own:
            kev.resize((lo, kev.shape[1]), refcheck=False)
        buf, other = frames_buffer(m, NONE, KEY_FRAMES_MAX, ORDER_SHIFT, first_file[lo:hi])
        part = TextBlobArray.from_buffer(buf)
        if other.any():  # frames in another file than the first's
            texts: list[str | None] = list(part.to_numpy().tolist())
            for i in np.flatnonzero(other).tolist():
                f = first_file[lo + i]
                row = m[i, :KEY_FRAMES_MAX]
                texts[i] = ",".join(
                    (f"{files[v >> ORDER_SHIFT]}:" if v >> ORDER_SHIFT != f else "") + str(v & FRAME_MASK)
                    for v in row[row != NONE].tolist()
                )
            part = TextBlobArray.from_texts(texts)
        parts.append(part)
    parts.reverse()
    return TextBlobArray._concat_same_type(parts) if parts else TextBlobArray.from_texts([])


def _first_error_ns(err: IcmpErrors, flows: np.ndarray) -> np.ndarray:
    """The time of each of ``flows``' (ascending, each with an ICMP error) first error (by order):
    what a flow known only from ICMP errors takes as its times (the segments keep no such time)."""
    if not len(flows):
        return np.zeros(0, dtype=np.int64)
    o = err.by_flow
    return err.ts_ns[o[np.searchsorted(err.sid[o], flows)]]


def _files_column(
    first_file: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], files: list[str]
) -> pd.Categorical:
    """Every input file of each flow, '|' separated: its first file's name unless it has packets in
    several (few flows: joined one by one, each a text of its own)."""
    names = list(files or [""])
    codes = first_file.copy()
    g, f = pairs
    multi = np.bincount(g, minlength=len(codes))[g] > 1 if len(g) else np.zeros(0, dtype=bool)
    if multi.any():
        uniq = sorted_unique((g[multi] << 20) | f[multi])
        gu = uniq >> 20
        for i in sorted_unique(gu[np.bincount(gu, minlength=len(codes))[gu] > 1]).tolist():
            codes[i] = len(names)
            names.append("|".join(files[x] for x in sorted((uniq[gu == i] & 0xFFFFF).tolist())))
    return categorical(codes, names)


def _own(a: np.ndarray) -> bool:
    """``a`` is an array of its own, C-ordered: ``build_frame`` may rewrite and cut it."""
    return bool(a.flags.owndata and a.flags.c_contiguous and a.flags.writeable)


def _to_seconds(ns: np.ndarray, into: np.ndarray | None = None) -> None:
    """The int64 nanoseconds ``ns`` (contiguous) rewritten as float64 seconds (``ns / 1e9``, the
    same values) in place, or into the memory of ``into`` (an int64 array as long), a chunk at a
    time: no flow-sized temporary."""
    out = (ns if into is None else into).view(np.float64)
    for lo in range(0, len(ns), CHUNK_ROWS):
        out[lo : lo + CHUNK_ROWS] = ns[lo : lo + CHUNK_ROWS] / 1e9


def _last_columns(
    held: list[np.ndarray], none: np.ndarray, icmp_frames: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``last_frame`` and ``last_ts`` from ``last`` (``held``'s one array, taken out of it: (2, ng),
    of its own: orders, then int64 ns), ``none``'s frames set to ``icmp_frames``. Frames that fit
    int32 (any capture short of 2^31 packets) are copied out as such; the seconds then take row 0's
    place and row 1 is cut: 12 B a flow where the two int64 rows held 16. Otherwise both columns
    stay views of ``last``, as int64 and float64."""
    last = held.pop()
    last[0] &= FRAME_MASK
    last[0][none] = icmp_frames
    lf = narrow_int(last[0])
    if lf.dtype == np.int64:  # a frame past int32: as before, views of the rows
        _to_seconds(last[1])
        return last[0], last[1].view(np.float64)
    _to_seconds(last[1], into=last[0])
    if last.shape[1]:  # (no rows: nothing to free, and numpy would reshape it whoever holds it)
        with suppress(ValueError):  # another reference holds it: row 1 stays until then
            last.resize((1, last.shape[1]))  # refcheck: no view of it may be left pointing at freed rows
    return lf, last[0].view(np.float64)


def _wide_rows(held: list[np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """The rows of ``sums`` (``held``'s one array, taken out of it) as the int64 columns ``names``:
    views when they are int64 already; else (folded int32, see ``fold_flows``) converted one at a
    time from the last, ``sums`` cut after each when no one else holds it (the int32 rows go as the
    columns come: the frame's last step, so that they were 24 B a flow until then, not 48)."""
    sums = held.pop()
    if sums.dtype == np.int64:
        return {name: sums[i] for i, name in enumerate(names)}
    out: dict[str, np.ndarray] = {}
    for i in range(len(names) - 1, -1, -1):
        out[names[i]] = sums[i].astype(np.int64)
        with suppress(ValueError):  # another reference holds it: its rows stay until then
            sums.resize((i, sums.shape[1]))  # refcheck: no view of it may be left pointing at freed rows
    return {name: out[name] for name in names}


def build_frame(
    agg: dict[str, np.ndarray],
    hosts: HostCodes,
    ng: int,
    err: IcmpErrors,
    files: list[str],
    file_pairs: tuple[np.ndarray, np.ndarray],
    codec: OrderCodec | None = None,
) -> pd.DataFrame:
    """All FLOW_COLUMNS for ``ng`` flows from their aggregates, rows already in final order.
    ``codec``: ``ev`` holds its compact (uint32) orders (56 B a flow where int64 orders held 112:
    the SYN scans' finish peak was here): compared as they are, decoded only where frames are
    read (first frame, key frames: a chunk at a time).

    ``agg`` (see ``FlowTable.finish``: key: the tuple's packed key; sums, counts; last;
    ev; ts = first packet's timestamp; val = first packet's value) is
    emptied as its arrays are used, so that the inputs go while the columns come; sums, counts, ev,
    key and val (arrays of their own, see ``fold_flows``) are made into columns or cut in place. The
    frame takes the columns as they are
    (``copy=False`` keeps pandas from consolidating them into blocks: another copy of the whole
    table). ``hosts``: the flows' addresses as codes (``hosts.host_codes``), re-coded in place.
    Where ``sums`` came int32 (see ``fold_flows``), they are widened last (``_wide_rows``)."""
    key, ev, val = agg.pop("key"), agg.pop("ev"), agg.pop("val")
    # the packed (proto, a_port, b_port) (``state.pack_key``), 8 B a flow, not 24; proto < 256: int16
    # (2 B a flow through the frame's making, not 8)
    proto = (key >> 32).astype(np.int16)
    pa = (key >> 16).astype(np.int32)
    pa &= 0xFFFF
    key &= 0xFFFF
    pb = key.astype(np.int32)
    del key
    o, init = _orientation(ev, val, proto, pa, pb, err)
    cols: dict[str, object] = {"transport": categorical(proto, TRANSPORTS)}  # proto < 256 (pack_key)
    cols["orig_p"] = np.where(o == 0, pa, pb)  # ports, ICMP type/code (int32)
    cols["resp_p"] = np.where(o == 0, pb, pa)
    del pa, pb
    sums, counts = agg.pop("sums"), agg.pop("counts")
    state, history = _states(ev, sums.T, o, proto)
    cols["conn_state"], cols["history"] = categorical(*state), categorical(*history)
    del state, history
    sum_cols = _sum_columns(sums, o, counts=counts)
    wide = list(sum_cols)[:NWIDE]  # the packet and byte counts: rows of ``sums``
    cols.update((k, v) for k, v in sum_cols.items() if k not in wide)
    del sum_cols, counts
    cols["initiator"] = categorical(init, INITIATORS)
    cols["confidence"] = categorical((init > 1).view(np.int8), CONFIDENCE)
    del init
    cols["handshake"] = categorical(_handshake(ev, o, proto == 6), HANDSHAKES)
    last, ts = agg.pop("last"), agg.pop("ts")
    no_pkts = ev[:, EV_FIRST] == (NONE if codec is None else NONE32)
    none = np.flatnonzero(no_pkts)  # flows known only from an ICMP error: few; their times are its
    icmp_order = ev[none, EV_ICMP] if codec is None else codec.decode(ev[none, EV_ICMP])
    first_order = ev[:, EV_FIRST].copy() if codec is None else codec.decode(ev[:, EV_FIRST])
    first_order[none] = icmp_order
    kev = _key_events(ev)  # ev's last reader of the other columns is done: 32 (compact: 16) B a flow go now
    del ev
    icmp_ts = _first_error_ns(err, none) / 1e9
    if _own(last) and _own(ts):  # fold_flows' rows: made the columns in place (32 B a flow saved)
        held = [last]
        del last  # ``_last_columns`` holds its only reference: it may cut it
        lf, last_ts = _last_columns(held, none, icmp_order & FRAME_MASK)
        _to_seconds(ts[0])
        first_ts = ts[0].view(np.float64)
    else:  # views of the live arrays (a scan's): copies
        lf, last_ts, first_ts = last[0] & FRAME_MASK, last[1] / 1e9, ts[0] / 1e9
        del last
        lf[none] = icmp_order & FRAME_MASK
        lf = narrow_int(lf)
    del ts
    first_ts[none], last_ts[none] = icmp_ts, icmp_ts
    cols["last_frame"], cols["first_ts"], cols["last_ts"] = lf, first_ts, last_ts
    cols["duration"] = last_ts - first_ts
    del lf, first_ts, last_ts, icmp_order, icmp_ts, none
    first_file = first_order >> ORDER_SHIFT
    first_order &= FRAME_MASK
    cols["first_frame"] = narrow_int(first_order)  # int32 (int64 only past 2^31 - 1 frames)
    del first_order
    cols["key_frames"] = _key_frames(kev, err, first_file, files, codec)
    del kev
    # the address texts once the events have gone (``hosts``: the addresses' codes, 8 B a flow;
    # their texts wait for the events to go)
    cols["orig_h"], cols["resp_h"] = host_columns_of(hosts, o)
    del o
    cols.update(_icmp_columns(err, ng, files))
    cols["file"] = categorical(first_file, files or [""])
    cols["files"] = _files_column(first_file, file_pairs, files)
    cols["tcp_stream"] = _stream_index(first_file, (proto == 6) & ~no_pkts, narrow=True)
    cols["udp_stream"] = _stream_index(first_file, (proto == 17) & ~no_pkts, narrow=True)
    del first_file, proto, no_pkts
    cols["vlan"] = (val & 0xFFFF).astype(np.int32)
    val >>= 16  # val is ours (a copy made by fold_flows)
    val &= 0xFF
    cols["encap"] = categorical(val, ENCAP_TEXTS)
    del val
    cols["flow_id"] = np.arange(ng, dtype=np.int64)
    held = [sums]
    del sums  # ``_wide_rows`` holds its only reference: it may cut it
    cols.update(_wide_rows(held, wide))
    return pd.DataFrame({k: cols.pop(k) for k in FLOW_COLUMNS}, copy=False)
