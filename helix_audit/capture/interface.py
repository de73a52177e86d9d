"""The capture stage's contract: batches of raw records, never one object per packet.

A reader walks a file's record headers in one pass and hands out :class:`RecordBatch` es: numpy
columns of offsets and lengths into one shared byte buffer (the memory-mapped file, or the
decompressed bytes of a gzip file). Downstream stages slice packet bytes with ``data[off:off+caplen]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class RecordBatch:
    """Consecutive records of one capture file.

    Columns (all of length ``n``):
      offset   int64  byte offset in ``data`` of the packet's first captured byte
      caplen   int64  captured bytes (``data[offset:offset+caplen]`` is the packet)
      wirelen  int64  original length on the wire
      ts_ns    int64  timestamp, nanoseconds since the epoch
      linktype int32  DLT/LINKTYPE number of the packet's interface
      frame    int64  1-based frame number within the file (Wireshark's numbering)
    """

    source: str
    data: np.ndarray  # uint8, shared by every batch of the file
    offset: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray
    ts_ns: np.ndarray
    linktype: np.ndarray
    frame: np.ndarray

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def packet(self, i: int) -> bytes:
        off = int(self.offset[i])
        return bytes(self.data[off : off + int(self.caplen[i])])


@dataclass(frozen=True)
class CaptureInfo:
    """What the file header(s) say, plus what the walk found."""

    path: str
    format: str  # "pcap" | "pcapng"
    gzip: bool
    endian: str  # "little" | "big"
    ts_resolution: str  # "us" | "ns" | other pcapng resolutions as "1e-N"
    snaplen: int | None
    link_types: tuple[int, ...]  # per interface, in order of appearance
    packets: int = 0
    size: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    warnings: tuple[str, ...] = field(default=())  # e.g. "truncated record at byte 1234: ..."
