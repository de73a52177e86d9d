"""decode_batch: link, IP, transport and tunnel headers of a whole RecordBatch as numpy columns.

The batch is decoded in chunks of CHUNK rows so that the header bytes gathered for a chunk stay in
cache across the few passes (link, IP, L4, tunnels) that read them. Inside a chunk every step is a
numpy operation over the rows it concerns; tunnels are peeled iteratively (MAX_DEPTH) on the rows that
carry one, and IP fragments (rare) go through :mod:`.frag` one by one.
"""

from __future__ import annotations

import numpy as np

from ..capture.interface import RecordBatch
from . import tunnels
from .frag import Reassembler, l4_fields
from .interface import ST_FRAGMENT, ST_OK, ST_TRUNCATED, PacketColumns
from .ip import OUT_FIELDS, Hdr, decode_ip
from .link import Buf, Link, ethernet, link_layer, resolve

CHUNK = 16384
MAX_DEPTH = 4
_TUNNEL_PROTO = np.zeros(256, dtype=bool)
_TUNNEL_PROTO[[4, 17, 41, 47]] = True


class Decoder:
    """Decodes successive batches of one capture; keeps incomplete IP fragments between batches."""

    def __init__(self) -> None:
        self.fragments = Reassembler()

    def decode(self, batch: RecordBatch) -> PacketColumns:
        n = len(batch)
        buf = Buf(batch.data)
        cols = {k: np.empty(n, dtype=getattr(Hdr.alloc(0), k).dtype) for k in OUT_FIELDS}
        reassembled: dict[int, bytes] = {}
        data_len = int(np.asarray(batch.data).shape[0])
        for lo in range(0, n, CHUNK):
            hi = min(lo + CHUNK, n)
            h = decode_rows(buf, batch, Hdr.over(cols, lo, hi), lo, hi, data_len)
            self._fragments(buf, batch, h, lo, reassembled)
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

    def _fragments(self, buf: Buf, batch: RecordBatch, h: Hdr, lo: int, out: dict[int, bytes]) -> None:
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
            seg = self.fragments.feed(
                key, int(batch.ts_ns[lo + r]), int(h.frag_off[r]), bool(h.frag_mf[r]), piece
            )
            if seg is not None:
                _fill_reassembled(h, r, seg.proto, seg.l4, seg.ip_bytes)
                out[lo + r] = seg.l4


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


def decode_rows(buf: Buf, batch: RecordBatch, h: Hdr, lo: int, hi: int, data_len: int) -> Hdr:
    """Decode rows lo:hi of ``batch`` into ``h``: link layer by linktype, IP, L4, then tunnels."""
    off = np.asarray(batch.offset[lo:hi], dtype=np.int64)
    lim = np.minimum(off + np.maximum(np.asarray(batch.caplen[lo:hi], dtype=np.int64), 0), data_len)
    lt = np.asarray(batch.linktype[lo:hi])
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
