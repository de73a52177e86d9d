"""Which rows of a batch the protocols stage hands to Python: one vectorised pass per batch.

UDP/TCP on the DNS ports (53, 5353 mDNS, 5355 LLMNR), QUIC long-header Initials (UDP 443 or a QUIC
v1/v2/draft version field), the SYNs and first payload bytes of every TCP direction still being
parsed (within a per-batch budget of rows and bytes per direction), and any later TCP payload that
starts like an HTTP head (keep-alive requests) with the row after it (a head split in two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..decode.interface import ST_OK, PacketColumns
from ..flows.interface import PacketFlows
from . import quic
from .keyed import direction_keys, mask_at, next_rows, ranks
from .prefilter import http_prefix_rows

DNS_PORTS = (53, 5353, 5355)
QUIC_PORT = 443
MAX_ROWS_PER_DIRECTION = 256  # payload rows per direction and batch handed to Python (and ``limit`` bytes)
#: Rows of a direction are handed over in rounds: most directions are finished (TLS application
#: data seen, protocol unknown) after their first few segments, so later rounds skip them.
PHASES = ((0, 4), (4, 16), (16, MAX_ROWS_PER_DIRECTION))
TCP, UDP = 6, 17
SYN = 0x02
_QUIC_VERSIONS = np.array(
    [quic.VERSION_1, quic.VERSION_2] + [0xFF000000 + d for d in range(23, 33)], dtype=np.uint32
)


def _gather(cols: PacketColumns, rows: np.ndarray, nbytes: int) -> np.ndarray:
    """First ``nbytes`` payload bytes of ``rows`` as a (len(rows), nbytes) uint8 array (0 past the end)."""
    off = cols.pay_off[rows][:, None] + np.arange(nbytes)[None, :]
    inside = np.arange(nbytes)[None, :] < cols.pay_len[rows][:, None]
    got = cols.data[np.clip(off, 0, max(len(cols.data) - 1, 0))] if len(cols.data) else np.zeros_like(off)
    return np.where(inside, got, 0).astype(np.uint8)


def _quic_mask(cols: PacketColumns, udp: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(udp & (cols.pay_len >= 7))
    out = np.zeros(len(cols), dtype=bool)
    if rows.size == 0:
        return out
    head = _gather(cols, rows, 5)
    version = head[:, 1:5].astype(np.uint32) @ np.array([1 << 24, 1 << 16, 1 << 8, 1], dtype=np.uint32)
    known = np.isin(version, _QUIC_VERSIONS)
    v2 = version == quic.VERSION_2
    kind = head[:, 0] & 0x30
    initial_or_retry = np.where(v2, (kind == 0x10) | (kind == 0x00), (kind == 0x00) | (kind == 0x30))
    initial = ((head[:, 0] & 0x80) != 0) & initial_or_retry
    port = (cols.sport[rows] == QUIC_PORT) | (cols.dport[rows] == QUIC_PORT)
    out[rows[initial & (known | (port & (version != 0)))]] = True
    return out


def _reassembled_quic(cols: PacketColumns, udp: np.ndarray) -> np.ndarray:
    """Rows whose UDP payload came from IP reassembly (not in ``data``): tested one by one, they are few."""
    out = []
    for i in cols.reassembled:
        payload = cols.payload(i) if udp[i] else b""
        if len(payload) >= 5 and quic.is_quic_long_header(payload[0], int.from_bytes(payload[1:5], "big")):
            out.append(i)
    return np.array(out, dtype=np.int64)


def _group_order(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` sorted by key (batch order kept within a key), and a mask of each key's first row."""
    order = rows[np.argsort(keys[rows], kind="stable")]
    ks = keys[order]
    return order, np.r_[True, ks[1:] != ks[:-1]] if ks.size else np.zeros(0, dtype=bool)


def _within_budget(cols: PacketColumns, keys: np.ndarray, rows: np.ndarray, limit: int) -> np.ndarray:
    """Per row of ``rows``: (row, rank, payload bytes before it in its direction within ``limit``),
    this batch: in batch order by one counting pass, else (a wide range of keys) in key order."""
    got = ranks(keys, rows, cols.pay_len, MAX_ROWS_PER_DIRECTION, limit)
    if got is not None:
        return np.stack([rows, got[0], got[1].astype(np.int64)])
    order, starts = _group_order(keys, rows)
    idx = np.arange(order.size)
    first = np.maximum.accumulate(np.where(starts, idx, 0)) if order.size else idx
    csum = np.cumsum(cols.pay_len[order]) - cols.pay_len[order]
    before = csum - csum[first] if order.size else csum
    keep = ((idx - first) < MAX_ROWS_PER_DIRECTION) & (before < limit)
    rank = idx - first
    return np.stack([order, rank, keep.astype(np.int64)]) if order.size else np.zeros((3, 0), np.int64)


def _continuations(keys: np.ndarray, pay_rows: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """For each row of ``heads``, the next payload row of the same direction (a head split in two)."""
    if heads.size == 0:
        return np.zeros(0, dtype=np.int64)
    head = np.zeros(keys.size, dtype=bool)
    head[heads] = True
    got = next_rows(keys, pay_rows, head)
    if got is not None:
        return got
    pay_rows = pay_rows[np.isin(keys[pay_rows], keys[heads])]  # whole groups of the heads' keys only
    order, starts = _group_order(keys, pay_rows)
    pos = np.flatnonzero(np.isin(order, heads))
    nxt = pos + 1
    ok = nxt < order.size
    nxt = nxt[ok]
    return np.asarray(order[nxt[~starts[nxt]]], dtype=np.int64)


def union_rows(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.union1d`` of two arrays of row indices in ``[0, n)``: one mask pass instead of a sort."""
    mask = np.zeros(n, dtype=bool)
    mask[a] = True
    mask[b] = True
    return np.flatnonzero(mask)


@dataclass(frozen=True, eq=False)
class Selection:
    """The rows of one batch worth Python's time (indices in batch order)."""

    udp_dns: np.ndarray
    quic: np.ndarray
    keys: np.ndarray  # per row of the batch: flow_id * 2 + from_a
    syn: np.ndarray  # SYNs of directions still parsed
    payload: np.ndarray  # payload rows of directions still parsed, within the per-batch budget (any order)
    rank: np.ndarray  # per payload row: its position within its direction in this batch
    over: np.ndarray  # keys of directions with payload past that budget in this batch
    http: np.ndarray  # TCP payload rows that start like an HTTP head, and the row after each


@njit(cache=True)
def _row_masks(status, flow_id, proto, pay_len, sport, dport, flags, keys, on_port, done, gone):  # noqa: ANN001, ANN202
    n = status.shape[0]
    udp_dns, udp_other = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
    live_pay, syn, tcp_pay = np.zeros(n, np.bool_), np.zeros(n, np.bool_), np.zeros(n, np.bool_)
    for i in range(n):
        if status[i] != ST_OK or flow_id[i] < 0:
            continue
        has_pay = pay_len[i] > 0
        if proto[i] == UDP:
            if has_pay:
                if on_port[sport[i]] or on_port[dport[i]]:
                    udp_dns[i] = True
                else:
                    udp_other[i] = True
        elif proto[i] == TCP:
            k = keys[i]
            if not (0 <= k < done.shape[0] and done[k]):
                live_pay[i] = has_pay
                syn[i] = (flags[i] & SYN) != 0
            tcp_pay[i] = has_pay and not (0 <= k < gone.shape[0] and gone[k])
    return udp_dns, udp_other, live_pay, syn, tcp_pay


def row_masks(
    cols: PacketColumns, pf: PacketFlows, keys: np.ndarray, on_port: np.ndarray, done: np.ndarray,
    gone: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per row of the batch (decoded, in a flow): UDP with payload on a DNS port (``on_port``, a
    table by port), other UDP with payload, payload and SYN of TCP directions not ``done``, and
    TCP payload of directions not ``gone``. One pass (numba), or the numpy expressions for
    columns of other types than the decoder's."""
    cs = (cols.status, pf.flow_id, cols.proto, cols.pay_len, cols.sport, cols.dport, cols.tcp_flags)
    gone = np.zeros(0, dtype=bool) if gone is None else gone
    plain = all(c.ndim == 1 and c.dtype.kind in "iu" for c in cs) and keys.dtype == np.int64
    if plain and cols.sport.dtype == cols.dport.dtype == np.uint16 and done.dtype == gone.dtype == np.bool_:
        got: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
        got = _row_masks(*cs, keys, on_port, done, gone)
        return got
    ok = (cols.status == ST_OK) & (pf.flow_id >= 0)
    has_pay = cols.pay_len > 0
    udp = ok & (cols.proto == UDP) & has_pay
    tcp = ok & (cols.proto == TCP)
    dns_port = on_port[cols.sport] | on_port[cols.dport]
    live = tcp & ~is_done(done, keys)
    return (udp & dns_port, udp & ~dns_port, live & has_pay, live & ((cols.tcp_flags & SYN) != 0),
            tcp & has_pay & ~is_done(gone, keys))  # fmt: skip


def is_done(done: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``done[keys]`` where keys fall inside the mask, False elsewhere (negative keys included)."""
    return mask_at(done, keys)


def select(
    cols: PacketColumns,
    pf: PacketFlows,
    done: np.ndarray,
    dns_ports: tuple[int, ...] = DNS_PORTS,
    limit: int = 64 * 1024,
    gone: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> Selection:
    """Vectorised choice of rows; ``done[key]`` marks directions no longer parsed, ``gone[key]``
    (optional) those of them whose rows change nothing (not kept for later HTTP heads either);
    ``keys``: the rows' direction keys when the caller has them already."""
    on_port = np.zeros(1 << 16, dtype=bool)  # a table lookup: far cheaper than two isin over the batch
    on_port[[p for p in dns_ports if 0 <= p < 1 << 16]] = True
    if keys is None:
        keys = direction_keys(pf.flow_id, pf.from_a)
    udp_dns, udp_other, live_pay, syn, tcp_pay = row_masks(cols, pf, keys, on_port, done, gone)
    order, rank, keep = _within_budget(cols, keys, np.flatnonzero(live_pay), limit)
    keep = keep.astype(bool)
    heads = np.flatnonzero(http_prefix_rows(cols, tcp_pay))
    return Selection(
        udp_dns=np.flatnonzero(udp_dns),
        quic=np.union1d(np.flatnonzero(_quic_mask(cols, udp_other)), _reassembled_quic(cols, udp_other)),
        keys=keys,
        syn=np.flatnonzero(syn),
        payload=order[keep],
        rank=rank[keep],
        over=np.unique(keys[order[~keep]]),
        http=union_rows(len(cols), heads, _continuations(keys, np.flatnonzero(tcp_pay), heads)),
    )
