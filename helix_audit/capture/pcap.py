"""Classic libpcap files: the global header, and record batches from the numba walk.

Format: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/ (and libpcap's pcap-savefile(5)).
Magics a1b2c3d4 (µs), a1b23c4d (ns) and a1b2cd34 (Kuznetzov's "modified" pcap, 24-byte record
headers), in either byte order. As libpcap does, versions before 2.3 have caplen/wirelen swapped
and the link type is the low 26 bits of its field (the upper bits carry FCS information).
Also home of :class:`Tally` and :func:`make_batch`, shared with the pcapng reader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import CaptureError
from .interface import RecordBatch
from .pool import ArrayPool
from .walk import ST_ABSURD, ST_END, ST_FULL, ST_TRUNC_DATA, ST_TRUNC_HDR, walk_pcap

GLOBAL_HDR = "IHHiIII"  # magic, version major, minor, thiszone, sigfigs, snaplen, linktype
GLOBAL_HDR_LEN = 24
LINKTYPE_MASK = 0x03FFFFFF
MAGICS = {  # magic -> (ts resolution, fraction multiplier to ns, record header length)
    0xA1B2C3D4: ("us", 1000, 16),
    0xA1B23C4D: ("ns", 1, 16),
    0xA1B2CD34: ("us", 1000, 24),
}


@dataclass(frozen=True)
class PcapHeader:
    endian: str
    ts_resolution: str
    frac_mul: int
    hdrlen: int
    version: tuple[int, int]
    snaplen: int
    linktype: int

    @property
    def big(self) -> bool:
        return self.endian == "big"

    @property
    def swap(self) -> bool:
        return self.version < (2, 3)


def sniff_pcap(head: bytes) -> str | None:
    """'little' / 'big' if ``head`` starts with a classic pcap magic, else None."""
    if len(head) < 4:
        return None
    if struct.unpack("<I", head[:4])[0] in MAGICS:
        return "little"
    if struct.unpack(">I", head[:4])[0] in MAGICS:
        return "big"
    return None


def parse_header(data: np.ndarray, name: str) -> PcapHeader:
    endian = sniff_pcap(bytes(data[:4]))
    if endian is None:
        raise CaptureError(f"{name}: not a pcap file")
    if data.shape[0] < GLOBAL_HDR_LEN:
        raise CaptureError(f"{name}: pcap header truncated ({data.shape[0]} of {GLOBAL_HDR_LEN} bytes)")
    fmt = ("<" if endian == "little" else ">") + GLOBAL_HDR
    magic, major, minor, _zone, _sig, snaplen, lt = struct.unpack(fmt, bytes(data[:GLOBAL_HDR_LEN]))
    res, mul, hdrlen = MAGICS[magic]
    return PcapHeader(endian, res, mul, hdrlen, (major, minor), snaplen, lt & LINKTYPE_MASK)


@dataclass
class Tally:
    """What a walk found: record count, time range, damage warnings."""

    packets: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    warnings: list[str] = field(default_factory=list)

    def add(self, ts: np.ndarray) -> None:
        if ts.shape[0] == 0:
            return
        lo, hi = int(ts.min()), int(ts.max())
        self.packets += int(ts.shape[0])
        self.first_ts_ns = lo if self.first_ts_ns is None else min(lo, self.first_ts_ns)
        self.last_ts_ns = hi if self.last_ts_ns is None else max(hi, self.last_ts_ns)

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)


def alloc(n: int, pool: ArrayPool | None = None) -> tuple[np.ndarray, ...]:
    """Empty offset, caplen, wirelen, ts_ns, linktype, frame columns for up to ``n`` records."""
    kinds = zip("ocwtlf", (np.int64,) * 4 + (np.int32, np.int64), strict=True)
    if pool is None:
        return tuple(np.empty(n, t) for _, t in kinds)
    return tuple(pool.empty(n, t, k) for k, t in kinds)


_COUNT = np.arange(1 << 16, dtype=np.int64)  # 0, 1, 2 ...: frame numbers without a new array per batch


def make_batch(source: str, data: np.ndarray, cols: tuple, n: int, first_frame: int) -> RecordBatch:
    off, cap, wire, ts, lt, frame = (c[:n] for c in cols)
    np.add(np.arange(n, dtype=np.int64) if n > len(_COUNT) else _COUNT[:n], first_frame, out=frame)
    return RecordBatch(source, data, off, cap, wire, ts, lt, frame)


def damage_message(status: int, pos: int, frame: int, declared: int, left: int, what: str) -> str:
    where = f"at byte {pos} (after frame {frame})"
    if status == ST_TRUNC_HDR:
        return f"truncated {what} header {where}: {declared} bytes needed, {left} left"
    if status == ST_TRUNC_DATA:
        return f"truncated {what} {where}: {declared} bytes declared, {left} left"
    if status == ST_ABSURD:
        return f"absurd {what} length {where}: {declared} bytes declared"
    return f"damaged {what} {where}"


def first_batch(first_frame: int, batch_size: int) -> int:
    """Records before the next serial batch boundary (frame ``k * batch_size + 1``): a read from
    mid-file whose first batch is this long hands out the serial run's batches from then on, so a
    consumer never holds part of one batch while the next is read (and its pages released)."""
    return (1 - first_frame) % batch_size


def pcap_batches(
    source: str,
    data: np.ndarray,
    hdr: PcapHeader,
    batch_size: int,
    start: int,
    stop: int,
    first_frame: int,
    tally: Tally,
    first_batch: int = 0,
) -> Iterator[RecordBatch]:
    """Records starting in [start, stop), ``batch_size`` at a time (the first batch
    ``first_batch`` at most when given: see :func:`first_batch`)."""
    pos, frame = start, first_frame
    pool = ArrayPool()
    while True:
        cols = alloc(batch_size, pool)
        if first_batch:
            cols, first_batch = tuple(c[:first_batch] for c in cols), 0
        n, pos, st, declared, _ = walk_pcap(  # type: ignore[call-arg]
            data, pos, stop, hdr.big, hdr.hdrlen, hdr.frac_mul, hdr.swap, *cols[:4], 0
        )
        cols[4][:n] = hdr.linktype
        if n:
            tally.add(cols[3][:n])
            yield make_batch(source, data, cols, n, frame)
            frame += n
        del cols  # the next alloc can reuse these arrays once the consumer lets go of the batch
        if st == ST_FULL:
            continue
        if st != ST_END:
            left = data.shape[0] - pos - (hdr.hdrlen if st == ST_TRUNC_DATA else 0)
            tally.warn(damage_message(st, pos, frame - 1, declared, left, "record"))
        return
