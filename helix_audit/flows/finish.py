"""Derive the finished flow columns (``FLOW_COLUMNS``) from per-flow aggregates, all vectorised.

Originator: the first pure-SYN sender; else the receiver of the first SYN-ACK; ICMP pairs: the sender
of the request type; else the lower well-known (< 1024) or non-ephemeral port is the responder; else the
first packet's sender. Zero-packet flows (known only from an ICMP error) take the quoted packet's sender.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from ..decode.interface import addr_to_str
from . import icmp
from .interface import FLOW_COLUMNS
from .state import (
    A_FIRST,
    A_ICMP,
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
    SegmentArrays,
)
from .text import ipv4_text, rows_text, sorted_unique_rows
from .zeek import conn_state_tcp, conn_state_udp, history_text, replay

EPHEMERAL_MIN = 49152
KEY_FRAMES_MAX = 12
ENCAP_NAMES = ["vlan", "mpls", "vxlan", "geneve", "gre", "gtpu", "teredo", "ipip"]


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


def _orientation(g: SegmentArrays, ng: int, ki: np.ndarray, err: IcmpErrors) -> tuple[np.ndarray, np.ndarray]:
    """(orig direction 0=A/1=B, initiator code 0 syn 1 synack 2 first_packet 3 port_heuristic)."""
    ev = g.ev[:ng]
    proto, pa, pb = ki[:, 0], ki[:, 1], ki[:, 2]
    first_dir = (g.ev_val[:ng, A_FIRST] >> 24) & 1
    no_pkts = ev[:, EV_FIRST] == NONE
    if no_pkts.any() and len(err.sid):
        first_err = np.full(ng, -1, dtype=np.int64)
        o = np.argsort(err.order, kind="stable")[::-1]
        first_err[err.sid[o]] = np.where(err.quote_from_a[o], 0, 1)
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
    r = 1 - o
    syn, sa, rst_r = _col(ev, 2 * K_SYN, o), _col(ev, 2 * K_SYNACK, r), _col(ev, 2 * K_RST, r)
    after = np.zeros(len(o), dtype=bool)
    for k in (K_ACK, K_DATA, K_FIN):
        e = _col(ev, 2 * k, o)
        after |= (e != NONE) & (e > sa)
    has_syn, has_sa = syn != NONE, sa != NONE
    out = np.select(
        [~is_tcp, has_syn & has_sa & after, has_sa, has_syn & (rst_r != NONE), has_syn],
        ["none", "completed", "synack_only", "rejected", "no_answer"],
        default="midstream",
    )
    return out.astype(object)


def _states(
    ev: np.ndarray, sums: np.ndarray, o: np.ndarray, proto: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    is_tcp = proto == 6
    st = np.zeros((len(o), 2), dtype=np.int64)
    hist = np.zeros(len(o), dtype=np.int64)
    replay(ev, o, is_tcp, st, hist)
    hist_txt = np.empty(len(o), dtype=object)
    for tcp in (True, False):
        m = is_tcp == tcp
        codes, inv = np.unique(hist[m], return_inverse=True)
        hist_txt[m] = np.array([history_text(c, tcp) for c in codes.tolist()] + [""], dtype=object)[inv]
    state = np.full(len(o), "OTH", dtype=object)
    zero = (sums[:, S_PAY] == 0) & (sums[:, S_PAY + 1] == 0)
    if is_tcp.any():  # conn_state_tcp once per distinct (states, zero sizes, history)
        hists, hist_id = np.unique(hist[is_tcp], return_inverse=True)
        s = st[is_tcp]  # endpoint states are < 8: one int key per (history, states, zero sizes)
        key = ((hist_id.reshape(-1) * 8 + s[:, 0]) * 8 + s[:, 1]) * 2 + zero[is_tcp]
        uniq, inv = np.unique(key, return_inverse=True)
        texts = [history_text(h, True) for h in hists.tolist()]
        names = [conn_state_tcp(k >> 4 & 7, k >> 1 & 7, bool(k & 1), texts[k >> 7]) for k in uniq.tolist()]
        state[is_tcp] = np.array(names, dtype=object)[inv.reshape(-1)]
    udp = proto == 17
    op, rp = _col(sums, S_PKTS, o)[udp] > 0, _col(sums, S_PKTS, 1 - o)[udp] > 0
    udp_names = np.array([conn_state_udp(a, b) for a in (False, True) for b in (False, True)], dtype=object)
    state[udp] = udp_names[2 * op + rp]
    return state, hist_txt


def _stream_index(first_file: np.ndarray, mask: np.ndarray, perm: np.ndarray) -> pd.array:
    """tshark-style per-file stream numbers (0-based, by first packet) for flows in ``mask``."""
    out = pd.array(np.zeros(len(mask), dtype=np.int64), dtype="Int64")
    out[:] = pd.NA
    ordered = perm[mask[perm]]
    if len(ordered):
        ranks = pd.Series(first_file[ordered]).groupby(first_file[ordered]).cumcount().to_numpy()
        out[ordered] = ranks
    return out


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


def _key_frames(ev: np.ndarray, err: IcmpErrors, first_file: np.ndarray, files: list[str]) -> np.ndarray:
    """Comma-separated key frames per flow: sorted and rendered by the kernels of :mod:`.text`;
    Python only for the rare flows with frames in another file (prefixed ``file:``)."""
    ng = ev.shape[0]
    extra = np.full((ng, 4), NONE, dtype=np.int64)
    if len(err.sid):
        o = np.lexsort((err.order, err.sid))
        sid, order = err.sid[o], err.order[o]
        rank = np.arange(len(sid)) - np.searchsorted(sid, sid)
        keep = rank < 4
        extra[sid[keep], rank[keep]] = order[keep]
    wanted = [2 * k + d for k in (K_SYN, K_SYNACK, K_DATA, K_FIN, K_RST) for d in (0, 1)]
    m = sorted_unique_rows(np.concatenate([ev[:, wanted], extra], axis=1), NONE)[:, :KEY_FRAMES_MAX]
    present = m != NONE
    other = present & ((m >> ORDER_SHIFT) != first_file[:, None])
    out = rows_text(np.where(present, m & FRAME_MASK, -1), ",", skip=-1)
    for i in np.flatnonzero(other.any(axis=1)).tolist():  # frames in another file than the flow's first
        out[i] = ",".join(
            (f"{files[v >> ORDER_SHIFT]}:" if v >> ORDER_SHIFT != first_file[i] else "") + str(v & FRAME_MASK)
            for v in m[i][present[i]].tolist()
        )
    return out


def _addr_strings(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Text addresses: IPv4-mapped ones rendered in bulk, the (rarer) IPv6 ones once per address."""
    out = np.empty(len(hi), dtype=object)
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == 0xFFFF)
    out[v4] = ipv4_text(lo[v4] & np.uint64(0xFFFFFFFF))
    rest = np.flatnonzero(~v4)
    if len(rest):
        pairs = np.stack([hi[rest], lo[rest]], axis=1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        text = np.array([addr_to_str(h, lo_) for h, lo_ in uniq.tolist()], dtype=object)
        out[rest] = text[inv.reshape(-1)]
    return out


def _files_column(
    first_file: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], files: list[str]
) -> np.ndarray:
    names = np.array(files or [""], dtype=object)
    out = names[first_file].copy()
    g, f = pairs
    multi = np.bincount(g, minlength=len(out))[g] > 1 if len(g) else np.zeros(0, dtype=bool)
    if multi.any():
        uniq = np.unique((g[multi] << 20) | f[multi])
        gu = uniq >> 20
        for i in np.unique(gu[np.bincount(gu, minlength=len(out))[gu] > 1]).tolist():
            out[i] = "|".join(files[x] for x in sorted((uniq[gu == i] & 0xFFFFF).tolist()))
    return out


def _encap_text(bits: np.ndarray) -> np.ndarray:
    table = np.array(
        ["+".join(n for k, n in enumerate(ENCAP_NAMES) if b >> k & 1) for b in range(256)], dtype=object
    )
    return table[bits & 0xFF]


def build_frame(
    g: SegmentArrays,
    ng: int,
    ku: np.ndarray,
    ki: np.ndarray,
    perm: np.ndarray,
    err: IcmpErrors,
    files: list[str],
    file_pairs: tuple[np.ndarray, np.ndarray],
) -> pd.DataFrame:
    """All FLOW_COLUMNS for ``ng`` flows (arrays indexed by flow, ``perm``: final order)."""
    ev, ev_ts, sums, last = g.ev[:ng], g.ev_ts[:ng], g.sums[:ng], g.last[:ng]
    proto = ki[:, 0]
    o, init = _orientation(g, ng, ki, err)
    r = 1 - o
    no_pkts = ev[:, EV_FIRST] == NONE
    first_order = np.where(no_pkts, ev[:, EV_ICMP], ev[:, EV_FIRST])
    last_order = np.where(no_pkts, ev[:, EV_ICMP], last[:, 0])
    first_ts = np.where(no_pkts, ev_ts[:, A_ICMP], ev_ts[:, A_FIRST]) / 1e9
    last_ts = np.where(no_pkts, ev_ts[:, A_ICMP], last[:, 1]) / 1e9
    a_txt, b_txt = _addr_strings(ku[:, 0], ku[:, 1]), _addr_strings(ku[:, 2], ku[:, 3])
    state, hist = _states(ev, sums, o, proto)
    first_file = first_order >> ORDER_SHIFT
    transport = np.array([f"ip-{p}" for p in range(256)], dtype=object)
    transport[[6, 17, 1, 58]] = ["tcp", "udp", "icmp", "icmp6"]
    has_pkts = ~no_pkts
    cols = {
        "flow_id": np.zeros(ng, dtype=np.int64),
        "transport": transport[proto & 0xFF],
        "orig_h": np.where(o == 0, a_txt, b_txt),
        "orig_p": np.where(o == 0, ki[:, 1], ki[:, 2]),
        "resp_h": np.where(o == 0, b_txt, a_txt),
        "resp_p": np.where(o == 0, ki[:, 2], ki[:, 1]),
        "initiator": np.array(["syn", "synack", "first_packet", "port_heuristic"], dtype=object)[init],
        "confidence": np.where(init <= 1, "high", "low").astype(object),
        "first_ts": first_ts,
        "last_ts": last_ts,
        "duration": last_ts - first_ts,
        "orig_pkts": _col(sums, S_PKTS, o),
        "resp_pkts": _col(sums, S_PKTS, r),
        "orig_ip_bytes": _col(sums, S_IPB, o),
        "resp_ip_bytes": _col(sums, S_IPB, r),
        "orig_bytes": _col(sums, S_PAY, o),
        "resp_bytes": _col(sums, S_PAY, r),
        "syn": _col(sums, S_SYN, o),
        "synack": _col(sums, S_SYNACK, r),
        "orig_fin": _col(sums, S_FIN, o),
        "resp_fin": _col(sums, S_FIN, r),
        "orig_rst": _col(sums, S_RST, o),
        "resp_rst": _col(sums, S_RST, r),
        "conn_state": state,
        "history": hist,
        "handshake": _handshake(ev, o, proto == 6),
        **_icmp_columns(err, ng, files),
        "file": np.array(files or [""], dtype=object)[first_file],
        "files": _files_column(first_file, file_pairs, files),
        "first_frame": first_order & FRAME_MASK,
        "last_frame": last_order & FRAME_MASK,
        "key_frames": _key_frames(ev, err, first_file, files),
        "tcp_stream": _stream_index(first_file, (proto == 6) & has_pkts, perm),
        "udp_stream": _stream_index(first_file, (proto == 17) & has_pkts, perm),
        "vlan": (g.ev_val[:ng, A_FIRST] & 0xFFFF).astype(np.int64),
        "encap": _encap_text((g.ev_val[:ng, A_FIRST] >> 16) & 0xFF),
    }
    # Each column put in final order on its own and its unordered original dropped at once: one
    # copy of the table alive besides the DataFrame's blocks, not three (1M flows: ~400 MB each).
    ordered = {}
    for k in FLOW_COLUMNS:
        column = cols.pop(k)
        ordered[k] = column.take(perm)
    ordered["flow_id"] = np.arange(ng, dtype=np.int64)
    return pd.DataFrame(ordered)
