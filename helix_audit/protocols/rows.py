"""Bulk reads of batch columns for the rows handed to Python: payload bytes and packet heads.

Reading a numpy column one ``.item()`` at a time costs about as much as the parsing it feeds, so
every helper here slices the columns for all its rows at once and converts them with ``tolist``.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..decode.interface import PacketColumns, addr_to_str
from ..flows.interface import PacketFlows
from .keyed import first_index, leading
from .streams import Meta


def udp_payload(cols: PacketColumns, i: int) -> bytes:
    """The payload bounded by the UDP length field too (tshark trusts it over the IP length)."""
    payload = cols.payload(i)
    head = cols.l4(i)[:8]
    if len(head) == 8:
        udp_len = int.from_bytes(head[4:6], "big")
        if 8 <= udp_len < 8 + len(payload):
            return payload[: udp_len - 8]
    return payload


def payloads(cols: PacketColumns, rows: np.ndarray, cut: np.ndarray | None = None) -> list[bytes]:
    """``cols.payload(i)`` for every row (the first ``cut[k]`` bytes when given), offsets read in bulk."""
    offs = cols.pay_off[rows].tolist()
    lens = (cols.pay_len[rows] if cut is None else cut).tolist()
    view, special = cols.data.data, cols.reassembled  # a memoryview: its slices are 4x cheaper
    out = []
    for i, off, n in zip(rows.tolist(), offs, lens, strict=True):
        if special and i in special:
            out.append(cols.payload(i) if cut is None else udp_payload(cols, i))
        else:
            out.append(view[off : off + n].tobytes() if off >= 0 else b"")
    return out


def udp_lengths(cols: PacketColumns, rows: np.ndarray) -> np.ndarray:
    """Payload length of every row as :func:`udp_payload` bounds it (the UDP length field read in
    one numpy step)."""
    pay_off, pay_len, l4_off = cols.pay_off[rows], cols.pay_len[rows], cols.l4_off[rows]
    ok = (l4_off >= 0) & (pay_off >= 0) & (pay_off + pay_len - l4_off >= 8)
    if cols.data.size < 6:
        ok[:] = False
    at = np.where(ok, l4_off, 0)
    udp_len = np.zeros(rows.size, np.int64) if not ok.any() else (
        cols.data[at + 4].astype(np.int64) << 8 | cols.data[at + 5].astype(np.int64)
    )  # fmt: skip
    short = ok & (udp_len >= 8) & (udp_len < 8 + pay_len)
    return np.where(short, udp_len - 8, pay_len).astype(np.int64)


def udp_payloads(cols: PacketColumns, rows: np.ndarray) -> list[bytes]:
    """:func:`udp_payload` of every row."""
    return payloads(cols, rows, udp_lengths(cols, rows))


def metas(cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, transport: str) -> list[Meta]:
    """:func:`meta_of` of every row, the columns read in bulk."""
    columns = (cols.frame, cols.ts_ns, cols.src_hi, cols.src_lo, cols.sport, cols.dst_hi, cols.dst_lo,
               cols.dport, pf.flow_id)  # fmt: skip
    source = cols.source
    return [
        Meta(source, frame, ts_ns / 1e9, addr(sh, sl), sport, addr(dh, dl), dport, transport, fid)
        for frame, ts_ns, sh, sl, sport, dh, dl, dport, fid in zip(
            *(c[rows].tolist() for c in columns), strict=True
        )
    ]


ADDR_CACHE: dict[tuple[int, int], str] = {}


def addr(hi: int, lo: int) -> str:
    key = (hi, lo)
    text = ADDR_CACHE.get(key)
    if text is None:
        if len(ADDR_CACHE) > 1 << 16:
            ADDR_CACHE.clear()
        text = ADDR_CACHE[key] = addr_to_str(*key)
    return text


#: Text of IPv4 addresses (``hi`` 0: IPv4-mapped) by their low half: a look-up by one small int.
V4_CACHE: dict[int, str] = {}


def _v4(lo: int) -> str:
    if len(V4_CACHE) > 1 << 16:
        V4_CACHE.clear()
    text = V4_CACHE[lo] = addr(0, lo)
    return text


def addresses(hi: np.ndarray, lo: np.ndarray) -> list[str]:
    """:func:`addr` of each (hi, lo): for IPv4 alone, a look-up by ``lo`` a row, else one call per
    distinct address."""
    if hi.size == 0:
        return []
    if not hi.any():  # all IPv4 (or ``::`` ...): ``addr(0, lo)`` is a function of ``lo`` alone
        known = V4_CACHE.get
        return [known(x) or _v4(x) for x in lo.tolist()]
    uniq, first, inv = np.unique(lo, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    his = hi[first]
    if not np.array_equal(his[inv], hi):  # two addresses share their low half: one call a row
        return [addr(h, low) for h, low in zip(hi.tolist(), lo.tolist(), strict=True)]
    texts = np.empty(uniq.shape[0], object)
    texts[:] = [addr(h, low) for h, low in zip(his.tolist(), uniq.tolist(), strict=True)]
    return list(texts[inv].tolist())


#: One int object per port number, made at its first sight: ``tolist`` of a port column makes a new
#: int per row (past 256), which the row's direction and observations then keep (~5 MiB of copies
#: of the benchmark's few thousand ports).
_PORT_SEEN = np.zeros(1 << 16, bool)
_PORT_INTS = np.empty(1 << 16, object)


def ports(col: np.ndarray) -> list[int]:
    """``col.tolist()`` (port numbers) with one shared int object per distinct port."""
    if col.dtype != np.uint16:  # not the decoder's port column: nothing says the values are ports
        return list(col.tolist())
    new = col[~_PORT_SEEN[col]]
    if new.shape[0]:
        for p in np.unique(new).tolist():
            _PORT_INTS[p] = p
        _PORT_SEEN[new] = True
    return list(_PORT_INTS[col].tolist())


Head = tuple[int, int, str, str]  # (sport, dport, src, dst)


def first_heads(cols: PacketColumns, rows: np.ndarray, keys: np.ndarray) -> dict[int, Head]:
    """Row -> (sport, dport, src, dst) for the first row of each direction in ``rows`` (``keys``:
    the direction key of every row of the batch): what a new direction's ``Meta`` needs, read in
    bulk (one address text per distinct address)."""
    first = rows[first_index(keys, rows)[1]]
    src = addresses(cols.src_hi[first], cols.src_lo[first])
    dst = addresses(cols.dst_hi[first], cols.dst_lo[first])
    heads = zip(ports(cols.sport[first]), ports(cols.dport[first]), src, dst, strict=True)
    return dict(zip(first.tolist(), heads, strict=True))


def meta_of(cols: PacketColumns, pf: PacketFlows, i: int, transport: str) -> Meta:
    return Meta(
        file=cols.source,
        frame=cols.frame.item(i),
        ts=cols.ts_ns.item(i) / 1e9,
        src=addr(cols.src_hi.item(i), cols.src_lo.item(i)),
        sport=cols.sport.item(i),
        dst=addr(cols.dst_hi.item(i), cols.dst_lo.item(i)),
        dport=cols.dport.item(i),
        transport=transport,
        flow_id=pf.flow_id.item(i),
    )


__all__ = [
    "Head", "addr", "addresses", "first_heads", "leading_syns", "meta_of", "metas", "payload_spans",
    "payloads", "ports", "udp_payload", "udp_payloads",
]  # fmt: skip


def first_payload_rows(cols: PacketColumns, keys: np.ndarray, wanted: list[int]) -> np.ndarray:
    """The first TCP payload row of this batch of each direction key in ``wanted``."""
    rows = np.flatnonzero((cols.pay_len > 0) & (cols.proto == 6) & np.isin(keys, wanted))
    if rows.size == 0:
        return rows
    _, first = np.unique(keys[rows], return_index=True)
    return rows[np.sort(first)]


def leading_syns(cols: PacketColumns, pf: PacketFlows, rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows`` (TCP, in the order they are handled): a SYN without payload that comes
    before any other row of its flow there."""
    n = rows.size
    syn_only = ((cols.tcp_flags[rows] & 0x02) != 0) & (cols.pay_len[rows] == 0)
    if cols.reassembled:
        syn_only &= ~np.isin(rows, np.fromiter(cols.reassembled, dtype=np.int64))
    if n == 0 or not syn_only.any():
        return syn_only
    got = leading(pf.flow_id[rows], syn_only)
    if got is not None:
        return got
    _, inv = np.unique(pf.flow_id[rows], return_inverse=True)
    first_other = np.full(inv.max() + 1, n, dtype=np.int64)
    others = np.flatnonzero(~syn_only)
    np.minimum.at(first_other, inv[others], others)
    return syn_only & (np.arange(n) < first_other[inv])


def payload_spans(cols: PacketColumns, rows: np.ndarray) -> tuple[memoryview, list[int], list[int]]:
    """(buffer, offsets, lengths): ``payloads(cols, rows)[k]`` is ``buffer[offs[k] : offs[k] + lens[k]]``
    as bytes, for a caller that copies only the payloads it reads. The batch buffer itself, unless
    a row's payload came from IP reassembly (then one buffer of all the rows' payloads)."""
    if cols.reassembled and not cols.reassembled.keys().isdisjoint(rows.tolist()):
        got = payloads(cols, rows)
        lens = [len(p) for p in got]
        return memoryview(b"".join(got)), list(itertools.accumulate(lens, initial=0))[:-1], lens
    off = cols.pay_off[rows]
    return cols.data.data, off.tolist(), np.where(off >= 0, cols.pay_len[rows], 0).tolist()
