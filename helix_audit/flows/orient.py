"""Who originated each flow, and the columns that follow from that direction.

Originator: the first pure-SYN sender; else the receiver of the first SYN-ACK; ICMP pairs: the sender
of the request type; else the lower well-known (< 1024) or non-ephemeral port is the responder; else the
first packet's sender. Zero-packet flows (known only from an ICMP error) take the quoted packet's sender.

Apart from ``finish.py`` because these steps read the aggregates through the direction ``o`` (the
per-direction sums swapped in place, handshake, conn_state and history), while the rest of the frame
follows from orders and files; each works ``CHUNK_ROWS`` flows at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..arrays import swap_where
from . import icmp
from .orders import NONE, NONE32, order_none
from .state import (
    EV_FIRST,
    K_ACK,
    K_DATA,
    K_FIN,
    K_RST,
    K_SYN,
    K_SYNACK,
    NKIND,
    NWIDE,
    S_FIN,
    S_IPB,
    S_PAY,
    S_PKTS,
    S_RST,
    S_SYN,
    S_SYNACK,
)
from .text import narrow_int
from .zeek import conn_state_tcp, conn_state_udp, history_text, replay

if TYPE_CHECKING:
    from .finish import IcmpErrors

EPHEMERAL_MIN = 49152
#: handshake names by code (the frame holds the codes: a Categorical)
HANDSHAKES = ["none", "completed", "synack_only", "rejected", "no_answer", "midstream"]
CHUNK_ROWS = 1 << 16  # rows per pass where a pass makes wide temporaries
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


def _row_pairs(*arrays: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (A, B) direction pairs of aggregates laid out as rows 2k, 2k + 1."""
    return [(arr[base], arr[base + 1]) for arr in arrays for base in range(0, arr.shape[0], 2)]


def _col(arr2: np.ndarray, base: int, d: np.ndarray) -> np.ndarray:
    """Column ``base + d`` per row (d: 0/1 direction array)."""
    return np.where(d == 0, arr2[:, base], arr2[:, base + 1])


def _sum_columns(
    sums: np.ndarray, o: np.ndarray, narrow: bool = False, counts: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The ``_SUM_COLUMNS`` made of ``sums`` ((NSUM, ng), an array of its own) in place: each
    direction pair swapped where B is the originator, the rows kept moved to the front, the two
    never read (the responder's SYNs, the originator's SYN-ACKs) cut off its end. The frame takes
    views of it: no copies next to the aggregates (96 B a flow, ~290 MB on 3M flows). ``narrow``:
    the SYN, FIN and RST counters copied out as int32 (when they fit: a flow would need 2^31 of
    them) and their rows cut off too, 24 B a flow less. ``counts``: the counters' rows folded apart
    (``fold_flows``; already narrow when they fit), ``sums`` then holding only the ``NWIDE``:
    both made columns in place, no copies."""
    if counts is not None:
        return _split_sum_columns(sums, counts, o)
    ng = sums.shape[1]
    swap_where(o, _row_pairs(sums))
    for i, (_, base, d) in enumerate(_SUM_COLUMNS):  # sources ascend and are >= i: no overwrites
        if base + d != i:
            sums[i] = sums[base + d]
    counters = sums[NWIDE : len(_SUM_COLUMNS)]
    small = narrow_int(counters) if narrow else None
    if small is not None and small.dtype != np.int32:
        small = None  # they do not fit: the counters stay rows of ``sums``
    del counters
    sums.resize((NWIDE if small is not None else len(_SUM_COLUMNS), ng), refcheck=False)
    out = {name: sums[i] for i, (name, _, _) in enumerate(_SUM_COLUMNS[:NWIDE])}
    rest = small if small is not None else sums[NWIDE:]
    out.update({name: rest[i] for i, (name, _, _) in enumerate(_SUM_COLUMNS[NWIDE:])})
    return out


def _split_sum_columns(sums: np.ndarray, counts: np.ndarray, o: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`_sum_columns` of the packet and byte counts ``sums`` (``NWIDE`` rows) and the
    counters ``counts`` (the rest) held apart: pairs swapped where B originates, rows compacted, the
    two never read cut off ``counts``."""
    ng = sums.shape[1]
    swap_where(o, _row_pairs(sums, counts))
    out: dict[str, np.ndarray] = {}
    for i, (_, base, d) in enumerate(_SUM_COLUMNS):
        if i < NWIDE:
            if base + d != i:
                sums[i] = sums[base + d]
            continue
        j, src = i - NWIDE, base + d - NWIDE  # sources ascend and are >= j: no overwrites
        if src != j:
            counts[j] = counts[src]
    counts.resize((len(_SUM_COLUMNS) - NWIDE, ng), refcheck=False)
    if counts.dtype != np.int32:
        counts = narrow_int(counts)  # folded wide (2^31 rows counted), yet they may fit: as before
    for i, (name, _, _) in enumerate(_SUM_COLUMNS):
        out[name] = sums[i] if i < NWIDE else counts[i - NWIDE]
    return out


def _rows(ev: np.ndarray, at: slice) -> np.ndarray:
    """Rows ``at`` of the flows' ``ev`` (the ``2 * NKIND`` event columns ``zeek.replay`` reads) as
    int64 orders of the same rank, NONE for none: compact ones converted a chunk at a time (the whole
    of ``ev`` stays compact: 56 B a flow where int64 held 112)."""
    if ev.dtype == np.int64:
        return ev[at]
    part = ev[at, : 2 * NKIND]
    out = part.astype(np.int64)
    out[part == NONE32] = NONE
    return out


def _orientation(
    ev: np.ndarray,
    first_val: np.ndarray,
    proto: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    err: IcmpErrors,
) -> tuple[np.ndarray, np.ndarray]:
    """(orig direction 0=A/1=B, initiator code 0 syn 1 synack 2 first_packet 3 port_heuristic), int8
    (a byte a flow each, not 8: they live through most of ``build_frame``), ``CHUNK_ROWS`` flows at a
    time (a pass over 3M flows at once made ~190 MB of temporaries). ``pa``, ``pb``: A's and B's port;
    ``ev`` in true or compact orders (see ``_none``)."""
    ng = ev.shape[0]
    first_err = None  # per flow, the direction its first ICMP error quotes (-1: none)
    if len(err.sid) and (ev[:, EV_FIRST] == order_none(ev)).any():
        first_err = np.full(ng, -1, dtype=np.int64)
        o = np.argsort(err.order, kind="stable")[::-1]
        first_err[err.sid[o]] = np.where(err.quote_from_a[o], 0, 1)
    orig, init = np.empty(ng, dtype=np.int8), np.empty(ng, dtype=np.int8)
    for lo in range(0, ng, CHUNK_ROWS):
        at = slice(lo, min(ng, lo + CHUNK_ROWS))
        errs = None if first_err is None else first_err[at]
        orig[at], init[at] = _orientation_part(ev[at], first_val[at], proto[at], pa[at], pb[at], errs)
    return orig, init


def _orientation_part(
    ev: np.ndarray,
    first_val: np.ndarray,
    proto: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    first_err: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    ng, none = ev.shape[0], order_none(ev)
    first_dir = ((first_val >> 24) & 1).astype(np.int64)
    no_pkts = ev[:, EV_FIRST] == none
    if first_err is not None:
        first_dir = np.where(no_pkts & (first_err >= 0), first_err, first_dir)
    is_icmp = (proto == icmp.PROTO_ICMP) | (proto == icmp.PROTO_ICMP6)
    req = np.where(proto == icmp.PROTO_ICMP, icmp.IS_REQUEST_V4[pa & 0xFF], icmp.IS_REQUEST_V6[pa & 0xFF])
    req_b = np.where(proto == icmp.PROTO_ICMP, icmp.IS_REQUEST_V4[pb & 0xFF], icmp.IS_REQUEST_V6[pb & 0xFF])
    lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
    port_rule = ~is_icmp & (pa != pb) & ((lo < 1024) | ((lo < EPHEMERAL_MIN) & (hi >= EPHEMERAL_MIN)))
    syn_a, syn_b = ev[:, 2 * K_SYN], ev[:, 2 * K_SYN + 1]
    sa_a, sa_b = ev[:, 2 * K_SYNACK], ev[:, 2 * K_SYNACK + 1]
    has_syn, has_sa = (syn_a != none) | (syn_b != none), (sa_a != none) | (sa_b != none)
    conds = [has_syn, has_sa, is_icmp & req & ~no_pkts, is_icmp & req_b & ~no_pkts, port_rule & ~no_pkts]
    zeros, ones = np.zeros(ng, dtype=np.int64), np.ones(ng, dtype=np.int64)
    dirs = [np.where(syn_b < syn_a, 1, 0), np.where(sa_a <= sa_b, 1, 0), zeros, ones, np.where(pa < pb, 1, 0)]
    orig = np.select(conds, dirs, default=first_dir).astype(np.int64)
    init = np.select(conds, [zeros, ones, 2 * ones, 2 * ones, 3 * ones], default=2).astype(np.int64)
    return orig, init


def _handshake(ev: np.ndarray, o: np.ndarray, is_tcp: np.ndarray) -> np.ndarray:
    """Handshake code per flow (its name in ``HANDSHAKES``), ``CHUNK_ROWS`` flows at a time (~7
    row-sized temporaries)."""
    out = np.empty(len(o), dtype=np.int8)
    for lo in range(0, len(o), CHUNK_ROWS):
        at = slice(lo, lo + CHUNK_ROWS)
        out[at] = _handshake_part(ev[at], o[at], is_tcp[at])
    return out


def _handshake_part(ev: np.ndarray, o: np.ndarray, is_tcp: np.ndarray) -> np.ndarray:
    r, none = 1 - o, order_none(ev)
    syn, sa, rst_r = _col(ev, 2 * K_SYN, o), _col(ev, 2 * K_SYNACK, r), _col(ev, 2 * K_RST, r)
    after = np.zeros(len(o), dtype=bool)
    for k in (K_ACK, K_DATA, K_FIN):
        e = _col(ev, 2 * k, o)
        after |= (e != none) & (e > sa)
    has_syn, has_sa = syn != none, sa != none
    code = np.select(
        [~is_tcp, has_syn & has_sa & after, has_sa, has_syn & (rst_r != none), has_syn],
        [0, 1, 2, 3, 4],
        default=5,
    )
    return code


class _Texts:
    """Distinct texts numbered in order of first use: a column's codes and their texts."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._code: dict[str, int] = {}

    def code(self, text: str) -> int:
        got = self._code.get(text)
        if got is None:
            got = self._code[text] = len(self.texts)
            self.texts.append(text)
        return got


def _states(
    ev: np.ndarray, sums: np.ndarray, o: np.ndarray, proto: np.ndarray
) -> tuple[tuple[np.ndarray, list[str]], tuple[np.ndarray, list[str]]]:
    """conn_state and history per flow, each as (codes, texts), ``CHUNK_ROWS`` flows at a time (the
    distinct-value passes over a million flows at once made ~70 MB of temporaries); texts are made
    once per distinct history and state across chunks."""
    n = len(o)
    state, hist_code = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
    texts: dict[tuple[int, bool], str] = {}
    names: dict[tuple[int, int, int, bool], str] = {}
    state_t, hist_t = _Texts(), _Texts()
    for lo in range(0, n, CHUNK_ROWS):
        hi = min(n, lo + CHUNK_ROWS)
        state[lo:hi], hist_code[lo:hi] = _states_part(
            _rows(ev, slice(lo, hi)),
            sums[lo:hi],
            o[lo:hi],
            proto[lo:hi],
            texts,
            names,
            state_t,
            hist_t,
        )
    return (state, state_t.texts), (hist_code, hist_t.texts)


def _states_part(
    ev: np.ndarray,
    sums: np.ndarray,
    o: np.ndarray,
    proto: np.ndarray,
    texts: dict[tuple[int, bool], str],
    names: dict[tuple[int, int, int, bool], str],
    state_t: _Texts,
    hist_t: _Texts,
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
    hist_code = np.empty(len(o), dtype=np.int32)
    for tcp in (True, False):
        m = is_tcp == tcp
        codes, inv = np.unique(hist[m], return_inverse=True)
        hist_code[m] = np.array([hist_t.code(text(c, tcp)) for c in codes.tolist()], dtype=np.int32)[inv]
    state = np.full(len(o), state_t.code("OTH"), dtype=np.int32)
    zero = (sums[:, S_PAY] == 0) & (sums[:, S_PAY + 1] == 0)
    if is_tcp.any():  # conn_state_tcp once per distinct (states, zero sizes, history)
        hists, hist_id = np.unique(hist[is_tcp], return_inverse=True)
        s = st[is_tcp]  # endpoint states are < 8: one int key per (history, states, zero sizes)
        key = ((hist_id.reshape(-1) * 8 + s[:, 0]) * 8 + s[:, 1]) * 2 + zero[is_tcp]
        uniq, inv = np.unique(key, return_inverse=True)
        h = hists.tolist()
        got = [state_t.code(name(h[k >> 7], k >> 4 & 7, k >> 1 & 7, bool(k & 1))) for k in uniq.tolist()]
        state[is_tcp] = np.array(got, dtype=np.int32)[inv.reshape(-1)]
    udp = proto == 17
    op, rp = _col(sums, S_PKTS, o)[udp] > 0, _col(sums, S_PKTS, 1 - o)[udp] > 0
    udp_codes = np.array(
        [state_t.code(conn_state_udp(a, b)) for a in (False, True) for b in (False, True)], dtype=np.int32
    )
    state[udp] = udp_codes[2 * op + rp]
    return state, hist_code
