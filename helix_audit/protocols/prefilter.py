"""Directions that end unparsed, found vectorised before any Python runs on them.

A new TCP direction is parsed by what its first bytes look like (``streams._detect``): TLS records,
HTTP heads, SOCKS, or DNS on a DNS port; anything else finishes it at once. Most directions of a
busy capture are of that last kind (SSH, SMB, databases, ...), and handing their SYN and first
segment to Python one row at a time costs far more than the verdict. :func:`unparsed_keys` finds,
per batch, the directions whose first segment is known to be in that class, conservatively: any
first byte a parsed protocol could start with (or any doubt about which bytes come first in the
stream) leaves the direction to the Python parser, which stays the reference.

Exactness: the segment must be the first bytes the reassembler would deliver (no SYN yet, or the
first SYN of the batch with ``seq + 1`` equal to the segment's), carry 8 or more bytes from the
batch buffer (not IP-reassembled, no SYN flag), and not be on a DNS port. ``_detect`` then reads
exactly those 8 bytes and finishes the direction, which is what marking it done here does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..decode.interface import PacketColumns
from .http import PREFIXES
from .keyed import first_index

HEAD = 8  # bytes ``_detect`` looks at
SYN = 0x02
SEQ_MOD = 1 << 32
#: First bytes a parsed direction can start with: TLS handshake/alert records (22, 21), an SSLv2
#: hello (high bit), HTTP heads (first letters of the prefixes), SOCKS4/5 (4, 5, and 0 for replies).
_MAYBE_FIRST = np.zeros(256, dtype=bool)
_MAYBE_FIRST[[21, 22, 0, 4, 5]] = True
_MAYBE_FIRST[0x80:] = True
_MAYBE_FIRST[[p[0] for p in PREFIXES]] = True
#: HTTP prefixes as ``_detect`` can see them in 8 bytes (longer ones can never match there), as
#: (mask, value) on the 8 bytes read as one little-endian integer: byte k is bits 8k..8k+7.
_HTTP_HEADS = [
    (np.uint64((1 << 8 * len(p)) - 1), np.uint64(int.from_bytes(p, "little")))
    for p in PREFIXES
    if len(p) <= HEAD
]


def could_be_parsed(heads: np.ndarray) -> np.ndarray:
    """Per row of ``heads`` ((n, 8) uint8, a stream's first 8 bytes): False only when ``_detect``
    would finish the direction unparsed (no TLS, HTTP or SOCKS start)."""
    maybe = _MAYBE_FIRST[heads[:, 0]]
    letters = np.flatnonzero(maybe & (heads[:, 0] >= 0x41) & (heads[:, 0] <= 0x5A))  # HTTP candidates
    cand = np.ascontiguousarray(heads[letters], dtype=np.uint8).view("<u8").reshape(-1)  # only these rows
    http = np.zeros(len(cand), dtype=bool)
    for mask, value in _HTTP_HEADS:  # the prefix's bytes equal the row's first ones
        http |= (cand & mask) == value
    maybe[letters] = http
    return maybe


def _first_per_key(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique keys, the first row of each in batch order) for ``rows`` (ascending)."""
    uniq, at = first_index(keys, rows)
    return uniq, rows[at]


def unparsed_keys(
    cols: PacketColumns, keys: np.ndarray, live: np.ndarray, dns_ports: tuple[int, ...]
) -> np.ndarray:
    """Direction keys (among ``live`` TCP rows) whose first segment here ends their parsing unread."""
    has_pay = cols.pay_len > 0
    pkeys, prow = _first_per_key(keys, np.flatnonzero(live & has_pay))
    if pkeys.size == 0:
        return pkeys
    syn_rows = np.flatnonzero(live & ((cols.tcp_flags & SYN) != 0))
    skeys, srow = _first_per_key(keys, syn_rows)
    pos = np.searchsorted(skeys, pkeys)
    pos_c = np.minimum(pos, max(skeys.size - 1, 0))
    has_syn = (pos < skeys.size) & (skeys[pos_c] == pkeys) if skeys.size else np.zeros(pkeys.size, bool)
    syn_row = np.where(has_syn, srow[pos_c] if skeys.size else 0, -1)
    syn_first = has_syn & (syn_row < prow)
    seq = cols.seq.astype(np.int64)
    in_order = ~syn_first | ((seq[np.maximum(syn_row, 0)] + 1) % SEQ_MOD == seq[prow])
    ok = (
        in_order
        & ((cols.tcp_flags[prow] & SYN) == 0)
        & (cols.pay_len[prow] >= HEAD)
        & (cols.pay_off[prow] >= 0)
        & ~np.isin(cols.sport[prow], dns_ports)
        & ~np.isin(cols.dport[prow], dns_ports)
    )
    if cols.reassembled:
        ok &= ~np.isin(prow, np.fromiter(cols.reassembled, dtype=np.int64))
    rows = prow[ok]
    if rows.size == 0:
        return rows
    heads = cols.data[cols.pay_off[rows][:, None] + np.arange(HEAD)[None, :]]
    return pkeys[ok][~could_be_parsed(heads)]


#: HTTP prefixes as the extractor tests later segments (their first 8 bytes), one per row, and lengths.
_PREFIX_TABLE = np.zeros((len(PREFIXES), HEAD), dtype=np.uint8)
_PREFIX_LEN = np.array([min(len(p), HEAD) for p in PREFIXES], dtype=np.int64)
for _k, _p in enumerate(PREFIXES):
    _PREFIX_TABLE[_k, : _PREFIX_LEN[_k]] = np.frombuffer(_p[:HEAD], dtype=np.uint8)


@njit(cache=True)
def _prefix_rows(d, pay_off, pay_len, cand, table, tlen):  # noqa: ANN001, ANN202
    out = np.zeros(cand.shape[0], dtype=np.bool_)
    last = d.shape[0] - 1
    if last < 0:
        return out
    for i in range(cand.shape[0]):
        if not cand[i]:
            continue
        off, n = pay_off[i], pay_len[i]
        c = d[min(max(off, 0), last)]
        if c < 0x41 or c > 0x55:  # no prefix starts outside A-U: most rows end here
            continue
        for p in range(table.shape[0]):
            m = tlen[p]
            if n < m:
                continue
            same = True
            for k in range(m):
                at = min(max(off + k, 0), last)  # clipped like a numpy gather of the first bytes
                if d[at] != table[p, k]:
                    same = False
                    break
            if same:
                out[i] = True
                break
    return out


def http_prefix_rows(cols: PacketColumns, tcp_pay: np.ndarray) -> np.ndarray:
    """Per row: a TCP payload that starts with one of the HTTP ``PREFIXES`` (cut to 8 bytes)."""
    return _prefix_rows(cols.data, cols.pay_off, cols.pay_len, tcp_pay, _PREFIX_TABLE, _PREFIX_LEN)


__all__ = ["could_be_parsed", "http_prefix_rows", "unparsed_keys"]
