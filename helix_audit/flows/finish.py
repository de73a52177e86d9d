"""Derive the finished flow columns (``FLOW_COLUMNS``) from per-flow aggregates, all vectorised.

Originator: the first pure-SYN sender; else the receiver of the first SYN-ACK; ICMP pairs: the sender
of the request type; else the lower well-known (< 1024) or non-ephemeral port is the responder; else the
first packet's sender. Zero-packet flows (known only from an ICMP error) take the quoted packet's sender.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from numba import njit

from ..arrays import sorted_unique
from ..decode.interface import addr_to_str
from . import icmp
from .interface import FLOW_COLUMNS
from .state import (
    EV_FIRST,
    EV_ICMP,
    FRAME_MASK,
    K_ACK,
    K_DATA,
    K_FIN,
    K_RST,
    K_SYN,
    K_SYNACK,
    NONE,
    ORDER_SHIFT,
    S_FIN,
    S_IPB,
    S_PAY,
    S_PKTS,
    S_RST,
    S_SYN,
    S_SYNACK,
)
from .text import frames_text, host_columns
from .zeek import conn_state_tcp, conn_state_udp, history_text, replay

EPHEMERAL_MIN = 49152
KEY_FRAMES_MAX = 12
ENCAP_NAMES = ["vlan", "mpls", "vxlan", "geneve", "gre", "gtpu", "teredo", "ipip"]
# shared str objects: one per name, not one per flow (a SYN scan's million flows: ~50 MB a column)
HANDSHAKES = np.array(
    ["none", "completed", "synack_only", "rejected", "no_answer", "midstream"], dtype=object
)
CONFIDENCE = np.array(["high", "low"], dtype=object)
CHUNK_ROWS = 1 << 16  # rows per pass where a pass makes wide temporaries
KEY_EVENTS = [2 * k + d for k in (K_SYN, K_SYNACK, K_DATA, K_FIN, K_RST) for d in (0, 1)]  # ev columns
# (column, sums column pair, 0: the originator's value / 1: the responder's)
_SUM_COLUMNS = [
    ("orig_pkts", S_PKTS, 0),
    ("resp_pkts", S_PKTS, 1),
    ("orig_ip_bytes", S_IPB, 0),
    ("resp_ip_bytes", S_IPB, 1),
    ("orig_bytes", S_PAY, 0),
    ("resp_bytes", S_PAY, 1),
    ("syn", S_SYN, 0),
    ("synack", S_SYNACK, 1),
    ("orig_fin", S_FIN, 0),
    ("resp_fin", S_FIN, 1),
    ("orig_rst", S_RST, 0),
    ("resp_rst", S_RST, 1),
]


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


def _col(arr2: np.ndarray, base: int, d: np.ndarray) -> np.ndarray:
    """Column ``base + d`` per row (d: 0/1 direction array)."""
    return np.where(d == 0, arr2[:, base], arr2[:, base + 1])


def _sum_columns(sums: np.ndarray, o: np.ndarray) -> dict[str, np.ndarray]:
    """The ``_SUM_COLUMNS`` made of ``sums`` ((NSUM, ng), an array of its own) in place: each
    direction pair swapped where B is the originator, the rows kept moved to the front, the two
    never read (the responder's SYNs, the originator's SYN-ACKs) cut off its end. The frame takes
    views of it: no copies next to the aggregates (96 B a flow, ~290 MB on 3M flows)."""
    nsum, ng = sums.shape
    for lo in range(0, ng, CHUNK_ROWS):
        flip = np.flatnonzero(o[lo : lo + CHUNK_ROWS] == 1) + lo
        for base in range(0, nsum, 2):
            a = sums[base, flip]
            sums[base, flip] = sums[base + 1, flip]
            sums[base + 1, flip] = a
    for i, (_, base, d) in enumerate(_SUM_COLUMNS):  # sources ascend and are >= i: no overwrites
        if base + d != i:
            sums[i] = sums[base + d]
    sums.resize((len(_SUM_COLUMNS), ng), refcheck=False)  # the caller holds no view of it
    return {name: sums[i] for i, (name, _, _) in enumerate(_SUM_COLUMNS)}


def _orientation(
    ev: np.ndarray, first_val: np.ndarray, ki: np.ndarray, err: IcmpErrors
) -> tuple[np.ndarray, np.ndarray]:
    """(orig direction 0=A/1=B, initiator code 0 syn 1 synack 2 first_packet 3 port_heuristic),
    ``CHUNK_ROWS`` flows at a time (a pass over 3M flows at once made ~190 MB of temporaries)."""
    ng = ev.shape[0]
    first_err = None  # per flow, the direction its first ICMP error quotes (-1: none)
    if len(err.sid) and (ev[:, EV_FIRST] == NONE).any():
        first_err = np.full(ng, -1, dtype=np.int64)
        o = np.argsort(err.order, kind="stable")[::-1]
        first_err[err.sid[o]] = np.where(err.quote_from_a[o], 0, 1)
    orig, init = np.empty(ng, dtype=np.int64), np.empty(ng, dtype=np.int64)
    for lo in range(0, ng, CHUNK_ROWS):
        at = slice(lo, min(ng, lo + CHUNK_ROWS))
        errs = None if first_err is None else first_err[at]
        orig[at], init[at] = _orientation_part(ev[at], first_val[at], ki[at], errs)
    return orig, init


def _orientation_part(
    ev: np.ndarray, first_val: np.ndarray, ki: np.ndarray, first_err: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    ng = ev.shape[0]
    proto, pa, pb = ki[:, 0], ki[:, 1], ki[:, 2]
    first_dir = (first_val >> 24) & 1
    no_pkts = ev[:, EV_FIRST] == NONE
    if first_err is not None:
        first_dir = np.where(no_pkts & (first_err >= 0), first_err, first_dir)
    is_icmp = (proto == icmp.PROTO_ICMP) | (proto == icmp.PROTO_ICMP6)
    req = np.where(proto == icmp.PROTO_ICMP, icmp.IS_REQUEST_V4[pa & 0xFF], icmp.IS_REQUEST_V6[pa & 0xFF])
    req_b = np.where(proto == icmp.PROTO_ICMP, icmp.IS_REQUEST_V4[pb & 0xFF], icmp.IS_REQUEST_V6[pb & 0xFF])
    lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
    port_rule = ~is_icmp & (pa != pb) & ((lo < 1024) | ((lo < EPHEMERAL_MIN) & (hi >= EPHEMERAL_MIN)))
    syn_a, syn_b = ev[:, 2 * K_SYN], ev[:, 2 * K_SYN + 1]
    sa_a, sa_b = ev[:, 2 * K_SYNACK], ev[:, 2 * K_SYNACK + 1]
    has_syn, has_sa = (syn_a != NONE) | (syn_b != NONE), (sa_a != NONE) | (sa_b != NONE)
    conds = [has_syn, has_sa, is_icmp & req & ~no_pkts, is_icmp & req_b & ~no_pkts, port_rule & ~no_pkts]
    zeros, ones = np.zeros(ng, dtype=np.int64), np.ones(ng, dtype=np.int64)
    dirs = [np.where(syn_b < syn_a, 1, 0), np.where(sa_a <= sa_b, 1, 0), zeros, ones, np.where(pa < pb, 1, 0)]
    orig = np.select(conds, dirs, default=first_dir).astype(np.int64)
    init = np.select(conds, [zeros, ones, 2 * ones, 2 * ones, 3 * ones], default=2).astype(np.int64)
    return orig, init


def _handshake(ev: np.ndarray, o: np.ndarray, is_tcp: np.ndarray) -> np.ndarray:
    """Handshake name per flow, ``CHUNK_ROWS`` flows at a time (~7 row-sized temporaries)."""
    out = np.empty(len(o), dtype=object)
    for lo in range(0, len(o), CHUNK_ROWS):
        at = slice(lo, lo + CHUNK_ROWS)
        out[at] = _handshake_part(ev[at], o[at], is_tcp[at])
    return out


def _handshake_part(ev: np.ndarray, o: np.ndarray, is_tcp: np.ndarray) -> np.ndarray:
    r = 1 - o
    syn, sa, rst_r = _col(ev, 2 * K_SYN, o), _col(ev, 2 * K_SYNACK, r), _col(ev, 2 * K_RST, r)
    after = np.zeros(len(o), dtype=bool)
    for k in (K_ACK, K_DATA, K_FIN):
        e = _col(ev, 2 * k, o)
        after |= (e != NONE) & (e > sa)
    has_syn, has_sa = syn != NONE, sa != NONE
    code = np.select(
        [~is_tcp, has_syn & has_sa & after, has_sa, has_syn & (rst_r != NONE), has_syn],
        [0, 1, 2, 3, 4],
        default=5,
    )
    return HANDSHAKES[code]


def _states(
    ev: np.ndarray, sums: np.ndarray, o: np.ndarray, proto: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """conn_state and history per flow, ``CHUNK_ROWS`` flows at a time (the distinct-value passes
    over a million flows at once made ~70 MB of temporaries); texts are made once per distinct
    history and state across chunks."""
    n = len(o)
    state, hist_txt = np.empty(n, dtype=object), np.empty(n, dtype=object)
    texts: dict[tuple[int, bool], str] = {}
    names: dict[tuple[int, int, int, bool], str] = {}
    for lo in range(0, n, CHUNK_ROWS):
        hi = min(n, lo + CHUNK_ROWS)
        state[lo:hi], hist_txt[lo:hi] = _states_part(
            ev[lo:hi], sums[lo:hi], o[lo:hi], proto[lo:hi], texts, names
        )
    return state, hist_txt


def _states_part(
    ev: np.ndarray,
    sums: np.ndarray,
    o: np.ndarray,
    proto: np.ndarray,
    texts: dict[tuple[int, bool], str],
    names: dict[tuple[int, int, int, bool], str],
) -> tuple[np.ndarray, np.ndarray]:
    def text(code: int, tcp: bool) -> str:
        got = texts.get((code, tcp))
        if got is None:
            got = texts[(code, tcp)] = history_text(code, tcp)
        return got

    def name(code: int, s0: int, s1: int, zero: bool) -> str:
        got = names.get((code, s0, s1, zero))
        if got is None:
            got = names[(code, s0, s1, zero)] = conn_state_tcp(s0, s1, zero, text(code, True))
        return got

    is_tcp = proto == 6
    st = np.zeros((len(o), 2), dtype=np.int64)
    hist = np.zeros(len(o), dtype=np.int64)
    replay(ev, o, is_tcp, st, hist)
    hist_txt = np.empty(len(o), dtype=object)
    for tcp in (True, False):
        m = is_tcp == tcp
        codes, inv = np.unique(hist[m], return_inverse=True)
        hist_txt[m] = np.array([text(c, tcp) for c in codes.tolist()] + [""], dtype=object)[inv]
    state = np.full(len(o), "OTH", dtype=object)
    zero = (sums[:, S_PAY] == 0) & (sums[:, S_PAY + 1] == 0)
    if is_tcp.any():  # conn_state_tcp once per distinct (states, zero sizes, history)
        hists, hist_id = np.unique(hist[is_tcp], return_inverse=True)
        s = st[is_tcp]  # endpoint states are < 8: one int key per (history, states, zero sizes)
        key = ((hist_id.reshape(-1) * 8 + s[:, 0]) * 8 + s[:, 1]) * 2 + zero[is_tcp]
        uniq, inv = np.unique(key, return_inverse=True)
        h = hists.tolist()
        got = [name(h[k >> 7], k >> 4 & 7, k >> 1 & 7, bool(k & 1)) for k in uniq.tolist()]
        state[is_tcp] = np.array(got, dtype=object)[inv.reshape(-1)]
    udp = proto == 17
    op, rp = _col(sums, S_PKTS, o)[udp] > 0, _col(sums, S_PKTS, 1 - o)[udp] > 0
    udp_names = np.array([conn_state_udp(a, b) for a in (False, True) for b in (False, True)], dtype=object)
    state[udp] = udp_names[2 * op + rp]
    return state, hist_txt


def _stream_index(first_file: np.ndarray, mask: np.ndarray) -> pd.array:
    """tshark-style per-file stream numbers (0-based, by first packet) for flows in ``mask`` (rows
    in final order, i.e. by first packet): the rank of each flow among its file's, counted with a
    stable sort by file; one file, the usual case: a running count (no row-sized temporaries)."""
    if not mask.any():
        return pd.arrays.IntegerArray(np.zeros(len(mask), dtype=np.int64), np.ones(len(mask), dtype=bool))
    if (first_file == first_file[0]).all():
        values = np.cumsum(mask, dtype=np.int64)
        values -= 1
        values[~mask] = 0
        return pd.arrays.IntegerArray(values, ~mask.astype(bool))
    values = np.zeros(len(mask), dtype=np.int64)
    ordered = np.flatnonzero(mask)
    ff = first_file[ordered]
    by_file = np.argsort(ff, kind="stable")
    sf = ff[by_file]
    start = np.searchsorted(sf, sf)  # each row's file's first position in sf
    ranks = np.empty(len(ff), dtype=np.int64)
    ranks[by_file] = np.arange(len(ff)) - start
    values[ordered] = ranks
    return pd.arrays.IntegerArray(values, ~mask.astype(bool))


def _icmp_columns(err: IcmpErrors, ng: int, files: list[str]) -> dict[str, np.ndarray]:
    count = np.bincount(err.sid, minlength=ng).astype(np.int64) if len(err.sid) else np.zeros(ng, np.int64)
    name = np.full(ng, None, dtype=object)
    sender = np.full(ng, None, dtype=object)
    frames = np.full(ng, "", dtype=object)
    by_flow: dict[int, list[str]] = {}
    for j in np.lexsort((err.order, err.sid)).tolist():
        f = int(err.sid[j])
        lst = by_flow.setdefault(f, [])
        if not lst:
            name[f] = icmp.error_name(int(err.proto[j]), int(err.type[j]), int(err.code[j]))
            sender[f] = addr_to_str(err.from_hi[j], err.from_lo[j])
        o = int(err.order[j])
        lst.append(f"{files[o >> ORDER_SHIFT]}:{o & FRAME_MASK}")
    for f, lst in by_flow.items():
        frames[f] = ",".join(lst)
    return {"icmp_errors": count, "icmp_error": name, "icmp_from": sender, "icmp_frames": frames}


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


def _key_frames(kev: np.ndarray, err: IcmpErrors, first_file: np.ndarray, files: list[str]) -> np.ndarray:
    """Comma-separated key frames per flow from ``kev`` (the ``KEY_EVENTS`` columns): sorted and
    rendered by :func:`.text.frames_text`, a chunk of rows at a time from the end; when ``kev`` is
    an array of its own, cut after each chunk (its rows go as their texts come). Python only for
    the rare flows with frames in another file (prefixed ``file:``)."""
    ng = kev.shape[0]
    own = kev.flags.owndata and kev.flags.c_contiguous
    o = np.lexsort((err.order, err.sid))
    sid, order = err.sid[o], err.order[o]
    rank = np.arange(len(sid)) - np.searchsorted(sid, sid)
    keep = rank < 4
    sid, order, rank = sid[keep], order[keep], rank[keep]
    out = np.empty(ng, dtype=object)
    for hi in range(ng, 0, -CHUNK_ROWS):
        lo = max(0, hi - CHUNK_ROWS)
        extra = np.full((hi - lo, 4), NONE, dtype=np.int64)
        at = slice(np.searchsorted(sid, lo), np.searchsorted(sid, hi))
        extra[sid[at] - lo, rank[at]] = order[at]
        m = np.concatenate([kev[lo:hi], extra], axis=1)
        if own:
            kev.resize((lo, kev.shape[1]), refcheck=False)
        out[lo:hi], other = frames_text(m, NONE, KEY_FRAMES_MAX, ORDER_SHIFT, first_file[lo:hi])
        for i in np.flatnonzero(other).tolist():  # frames in another file than the first's
            f = first_file[lo + i]
            row = m[i, :KEY_FRAMES_MAX]
            out[lo + i] = ",".join(
                (f"{files[v >> ORDER_SHIFT]}:" if v >> ORDER_SHIFT != f else "") + str(v & FRAME_MASK)
                for v in row[row != NONE].tolist()
            )
    return out


def _files_column(
    first_file: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], files: list[str]
) -> np.ndarray:
    names = np.array(files or [""], dtype=object)
    out = names[first_file]
    g, f = pairs
    multi = np.bincount(g, minlength=len(out))[g] > 1 if len(g) else np.zeros(0, dtype=bool)
    if multi.any():
        uniq = sorted_unique((g[multi] << 20) | f[multi])
        gu = uniq >> 20
        for i in sorted_unique(gu[np.bincount(gu, minlength=len(out))[gu] > 1]).tolist():
            out[i] = "|".join(files[x] for x in sorted((uniq[gu == i] & 0xFFFFF).tolist()))
    return out


def _encap_text(bits: np.ndarray) -> np.ndarray:
    """Encapsulation names per flow of its bits (< 256)."""
    table = np.array(
        ["+".join(n for k, n in enumerate(ENCAP_NAMES) if b >> k & 1) for b in range(256)], dtype=object
    )
    return table[bits]


def build_frame(
    agg: dict[str, np.ndarray],
    ng: int,
    err: IcmpErrors,
    files: list[str],
    file_pairs: tuple[np.ndarray, np.ndarray],
) -> pd.DataFrame:
    """All FLOW_COLUMNS for ``ng`` flows from their aggregates, rows already in final order.

    ``agg`` (see ``FlowTable.finish``: ku, ki tuple keys; sums; last; ev; ts = first packet's and
    first ICMP error's timestamps; val = first packet's value) is emptied as its arrays are used, so
    that the inputs go while the columns come; sums, ev and val (arrays of their own, see
    ``fold_flows``) are made into columns or cut in place. The frame takes the columns as they are
    (``copy=False`` keeps pandas from consolidating them into blocks: another copy of the whole
    table)."""
    ki, ev, val = agg.pop("ki"), agg.pop("ev"), agg.pop("val")
    o, init = _orientation(ev, val, ki, err)
    cols: dict[str, object] = {"flow_id": np.arange(ng, dtype=np.int64)}
    cols["orig_h"], cols["resp_h"] = host_columns(agg.pop("ku"), o)
    proto = ki[:, 0].copy()
    transport = np.array([f"ip-{p}" for p in range(256)], dtype=object)
    transport[[6, 17, 1, 58]] = ["tcp", "udp", "icmp", "icmp6"]
    cols["transport"] = transport[proto & 0xFF]
    cols["orig_p"] = np.where(o == 0, ki[:, 1], ki[:, 2])
    cols["resp_p"] = np.where(o == 0, ki[:, 2], ki[:, 1])
    del ki
    sums = agg.pop("sums")
    cols["conn_state"], cols["history"] = _states(ev, sums.T, o, proto)
    cols.update(_sum_columns(sums, o))
    del sums
    cols["initiator"] = np.array(["syn", "synack", "first_packet", "port_heuristic"], dtype=object)[init]
    cols["confidence"] = CONFIDENCE[(init > 1).view(np.int8)]
    del init
    cols["handshake"] = _handshake(ev, o, proto == 6)
    del o
    last, ts = agg.pop("last"), agg.pop("ts")
    no_pkts = ev[:, EV_FIRST] == NONE
    first_order = np.where(no_pkts, ev[:, EV_ICMP], ev[:, EV_FIRST])
    cols["last_frame"] = np.where(no_pkts, ev[:, EV_ICMP], last[:, 0]) & FRAME_MASK
    first_ts = np.where(no_pkts, ts[:, 1], ts[:, 0]) / 1e9
    last_ts = np.where(no_pkts, ts[:, 1], last[:, 1]) / 1e9
    del last, ts
    cols["first_ts"], cols["last_ts"], cols["duration"] = first_ts, last_ts, last_ts - first_ts
    first_file = first_order >> ORDER_SHIFT
    cols["first_frame"] = first_order & FRAME_MASK
    del first_order
    cols["key_frames"] = _key_frames(_key_events(ev), err, first_file, files)
    del ev
    cols.update(_icmp_columns(err, ng, files))
    cols["file"] = np.array(files or [""], dtype=object)[first_file]
    cols["files"] = _files_column(first_file, file_pairs, files)
    cols["tcp_stream"] = _stream_index(first_file, (proto == 6) & ~no_pkts)
    cols["udp_stream"] = _stream_index(first_file, (proto == 17) & ~no_pkts)
    del first_file, proto, no_pkts
    cols["vlan"] = val & 0xFFFF
    val >>= 16  # val is ours (a copy made by fold_flows)
    val &= 0xFF
    cols["encap"] = _encap_text(val)
    del val
    return pd.DataFrame({k: cols.pop(k) for k in FLOW_COLUMNS}, copy=False)
