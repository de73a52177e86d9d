"""A tiny pcap / pcapng reader for the decode tests (the library's readers live in helix_audit.capture)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from helix_audit.capture.interface import RecordBatch

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = 0x0A0D0D0A


def _records(raw: bytes) -> tuple[list[tuple[int, int, int, int, int]], str]:
    """(offset, caplen, wirelen, ts_ns, linktype) per record; stops quietly at a truncated record."""
    if raw[:4] in PCAP_MAGICS:
        e, mult = PCAP_MAGICS[raw[:4]]
        lt = struct.unpack_from(e + "I", raw, 20)[0] & 0x0FFFFFFF
        out, pos = [], 24
        while pos + 16 <= len(raw):
            sec, frac, cap, wire = struct.unpack_from(e + "IIII", raw, pos)
            if pos + 16 + cap > len(raw):
                break
            out.append((pos + 16, cap, wire, sec * 10**9 + frac * mult, lt))
            pos += 16 + cap
        return out, "pcap"
    out, pos, e, ifs = [], 0, "<", []
    while pos + 12 <= len(raw):
        if struct.unpack_from("<I", raw, pos)[0] == PCAPNG_SHB:
            e = "<" if raw[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifs = []
        btype, blen = struct.unpack_from(e + "II", raw, pos)
        if blen < 12 or pos + blen > len(raw):
            break
        if btype == 1:
            ifs.append(struct.unpack_from(e + "H", raw, pos + 8)[0])
        elif btype == 6:
            iface, tsh, tsl, cap, wire = struct.unpack_from(e + "IIIII", raw, pos + 8)
            out.append((pos + 28, cap, wire, ((tsh << 32) | tsl) % (1 << 62), ifs[iface]))
        elif btype == 3:
            wire = struct.unpack_from(e + "I", raw, pos + 8)[0]
            out.append((pos + 12, min(wire, blen - 16), wire, 0, ifs[0]))
        pos += blen
    return out, "pcapng"


def read_batch(path: Path) -> RecordBatch:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    recs, _ = _records(raw)
    cols = np.array(recs, dtype=np.int64).reshape(-1, 5)
    n = cols.shape[0]
    return RecordBatch(
        source=str(path),
        data=np.frombuffer(raw, dtype=np.uint8),
        offset=cols[:, 0].copy(),
        caplen=cols[:, 1].copy(),
        wirelen=cols[:, 2].copy(),
        ts_ns=cols[:, 3].copy(),
        linktype=cols[:, 4].astype(np.int32),
        frame=np.arange(1, n + 1, dtype=np.int64),
    )


def batch_of(packets: list[bytes], linktype: int = 1) -> RecordBatch:
    """A RecordBatch over packets laid end to end (no slack: reading past a packet hits the next)."""
    data = np.frombuffer(b"".join(packets), dtype=np.uint8)
    lens = np.array([len(p) for p in packets], dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if packets else lens
    n = len(packets)
    return RecordBatch(
        source="synthetic",
        data=data,
        offset=offs,
        caplen=lens.copy(),
        wirelen=lens.copy(),
        ts_ns=np.arange(n, dtype=np.int64) * 1000,
        linktype=np.full(n, linktype, dtype=np.int32),
        frame=np.arange(1, n + 1, dtype=np.int64),
    )
