"""decode_batch: link, IP, transport and tunnel headers of a whole RecordBatch as numpy columns.

The common rows (plain Ethernet / cooked / raw IP, IPv4 / IPv6, a complete TCP / UDP / ICMP header,
or not IP) are decoded by one numba pass (:mod:`.fast`); the rest by the general path below. It
decodes them in chunks of CHUNK rows so that the header bytes gathered for a chunk stay in
cache across the few passes (link, IP, L4, tunnels) that read them. Inside a chunk every step is a
numpy operation over the rows it concerns; tunnels are peeled iteratively (MAX_DEPTH) on the rows that
carry one, and IP fragments (rare) go through :mod:`.frag` one by one.
"""

from __future__ import annotations

import numpy as np

from ..capture.interface import RecordBatch
from ..capture.pool import ArrayPool
from . import tunnels
from .fast import FAST_TABLES, fast_rows
from .frag import Reassembler, l4_fields
from .interface import ST_FRAGMENT, ST_OK, ST_TRUNCATED, PacketColumns
from .ip import OUT_FIELDS, Hdr, decode_ip
from .link import Buf, Link, ethernet, link_layer, resolve

CHUNK = 16384
MAX_DEPTH = 4
_TUNNEL_PROTO = np.zeros(256, dtype=bool)
_TUNNEL_PROTO[[4, 17, 41, 47]] = True
OUT_DTYPES = {k: getattr(Hdr.alloc(0), k).dtype for k in OUT_FIELDS}


class Decoder:
    """Decodes successive batches of one capture; keeps incomplete IP fragments between batches.

    ``fast=False`` sends every row through the general numpy path (tests compare the two)."""

    def __init__(self, fast: bool = True) -> None:
        self.fragments = Reassembler()
        self.fast = fast
        self._pool = ArrayPool()
        self._widest = 0

    def decode(self, batch: RecordBatch) -> PacketColumns:
        n = len(batch)
        if n < self._widest:  # readers hand out full batches but the last: drop the idle arrays now
            self._pool.clear()
        self._widest = max(self._widest, n)
        data = np.asarray(batch.data, dtype=np.uint8).reshape(-1)
        off = np.ascontiguousarray(batch.offset, dtype=np.int64)
        caplen = np.ascontiguousarray(batch.caplen, dtype=np.int64)
        lt = np.ascontiguousarray(batch.linktype)
        cols = {k: self._pool.empty(n, dt, k) for k, dt in OUT_DTYPES.items()}
        if self.fast and n:
            slow = self._pool.empty(n, np.int64, "slow")
            outs = (cols[k] for k in OUT_FIELDS)
            nslow, _ = fast_rows(data, off, caplen, lt, *FAST_TABLES, *outs, slow)  # type: ignore[call-arg]
            rows = slow[:nslow]
        else:
            rows = np.arange(n, dtype=np.int64)
        reassembled: dict[int, bytes] = {}
        if rows.shape[0]:
            buf = Buf(data)
            for lo in range(0, rows.shape[0], CHUNK):
                idx = rows[lo : lo + CHUNK]
                h = decode_rows(buf, off[idx], caplen[idx], lt[idx], Hdr.alloc(idx.shape[0]), data.shape[0])
                self._fragments(buf, batch, h, idx, reassembled)
                for k in OUT_FIELDS:
                    cols[k][idx] = getattr(h, k)
        return PacketColumns(
            source=batch.source,
            data=batch.data,
            frame=batch.frame,
            ts_ns=batch.ts_ns,
            wirelen=batch.wirelen,
            caplen=batch.caplen,
            reassembled=reassembled,
            **cols,
        )

    def _fragments(
        self, buf: Buf, batch: RecordBatch, h: Hdr, idx: np.ndarray, out: dict[int, bytes]
    ) -> None:
        """Feed the fragments among rows ``idx`` (h's row i is the batch's row idx[i]), in order."""
        rows = np.flatnonzero(h.frag)
        for r in rows.tolist():
            if h.status[r] != ST_FRAGMENT or h.ip_end[r] < h.decl_end[r]:
                continue  # malformed, or cut by the snaplen: its bytes cannot be trusted
            key = (
                int(h.ipver[r]),
                int(h.src_hi[r]),
                int(h.src_lo[r]),
                int(h.dst_hi[r]),
                int(h.dst_lo[r]),
                int(h.frag_nh[r]),
                int(h.frag_id[r]),
            )
            start, end = int(h.frag_data[r]), int(h.ip_end[r])
            piece = buf.data[start:end].tobytes() if end > start else b""
            row = int(idx[r])
            ts = int(batch.ts_ns[row])
            seg = self.fragments.feed(key, ts, int(h.frag_off[r]), bool(h.frag_mf[r]), piece)
            if seg is not None:
                _fill_reassembled(h, r, seg.proto, seg.l4, seg.ip_bytes)
                out[row] = seg.l4


def _fill_reassembled(h: Hdr, r: int, proto: int, l4: bytes, ip_bytes: int) -> None:
    f = l4_fields(proto, l4)
    h.proto[r] = proto
    h.ip_len[r] = int(h.frag_data[r] - h.ip_off[r]) + ip_bytes
    h.l4_off[r] = h.frag_data[r]
    h.status[r] = ST_OK if f is not None else ST_TRUNCATED
    if f is None:
        h.pay_off[r], h.pay_len[r], h.pay_wire[r] = -1, 0, 0
        return
    hdr = f.pop("hdr")
    for k, v in f.items():
        getattr(h, k)[r] = v
    h.pay_off[r] = h.l4_off[r] + hdr
    h.pay_len[r] = h.pay_wire[r] = len(l4) - hdr


def decode_batch(batch: RecordBatch) -> PacketColumns:
    """One-shot decode of a batch (fragments are reassembled within the batch only)."""
    return Decoder().decode(batch)


def decode_rows(buf: Buf, off: np.ndarray, caplen: np.ndarray, lt: np.ndarray, h: Hdr, data_len: int) -> Hdr:
    """Decode the rows at ``off`` into ``h``: link layer by linktype, IP, L4, then tunnels."""
    lim = np.minimum(off + np.maximum(caplen, 0), data_len)
    if lt.shape[0] and (lt == lt[0]).all():
        decode_ip(buf, link_layer(buf, int(lt[0]), off, lim), lim, out=h)
    else:
        for t in np.unique(lt).tolist():
            idx = np.flatnonzero(lt == t)
            h.put(idx, decode_ip(buf, link_layer(buf, t, off[idx], lim[idx]), lim[idx]))
    unwrap(buf, h)
    return h


def unwrap(buf: Buf, h: Hdr) -> None:
    """Replace the columns of tunnelled rows by their inner packet's, up to MAX_DEPTH times."""
    rows = np.flatnonzero(_TUNNEL_PROTO[h.proto] & (h.status == ST_OK))
    for _ in range(MAX_DEPTH):
        if rows.shape[0] == 0:
            return
        inn = tunnels.find(buf, h, rows)
        if inn.rows.shape[0] == 0:
            return
        lim = h.ip_end[inn.rows]
        lk = Link.start(inn.etype, inn.off, np.zeros(inn.rows.shape[0], np.uint8))
        eth = np.flatnonzero(inn.etype == tunnels.ETHERNET)
        if eth.shape[0]:
            e = ethernet(buf, inn.off[eth], lim[eth])
            for k in ("etype", "off", "status", "vlan", "encap"):
                getattr(lk, k)[eth] = getattr(e, k)
        inner = decode_ip(buf, resolve(buf, lk, lim), lim)
        ok = np.flatnonzero(inner.ipver != 0)
        rows = inn.rows[ok]
        sub = inner.take(ok)
        sub.encap |= h.encap[rows] | inn.bit[ok]
        sub.vlan = np.where(h.vlan[rows] != 0, h.vlan[rows], sub.vlan)
        h.put(rows, sub)
        rows = rows[_TUNNEL_PROTO[sub.proto] & (sub.status == ST_OK)]
