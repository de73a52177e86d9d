"""Splitting one large capture into byte ranges for ``--jobs`` and Dask workers.

Each range starts on a real record boundary. A candidate offset is first re-synchronised the way a
reader without an index must: by scanning for several consecutive plausible record headers (classic
pcap: sane lengths, caplen <= wirelen, timestamps close) or chained pcapng blocks (known type, equal
total length at both ends). A header-only numba walk from the start of the file then confirms each
start (moving it to the next real boundary should the heuristic have been fooled by packet bytes)
and counts the records before it, so ``first_frame`` is exact. Ranges past damage are dropped: the
serial read stops there too. Reading every range with ``Capture.batches(byte_range=(start, end),
first_frame=k)`` and concatenating gives exactly the serial read.
"""

from __future__ import annotations

import os

import numpy as np

from .pcap import GLOBAL_HDR_LEN, alloc
from .pcapng import Damage, NgWalker
from .source import Capture, open_capture
from .walk import MAX_RECORD, ST_END, count_pcap, resync_pcap, resync_pcapng

RESYNC_RECORDS = 8  # consecutive headers that must chain
PLAUSIBLE_CAPLEN = 262144


def plan_ranges(path: str | os.PathLike[str], n: int) -> list[tuple[int, int, int]]:
    """About ``n`` ranges (start, end, first_frame) covering every record of ``path``."""
    cap = open_capture(path)
    size = int(cap.data.shape[0])
    base = GLOBAL_HDR_LEN if cap.format == "pcap" else 0
    candidates = [base + (size - base) * i // n for i in range(1, max(n, 1))]
    starts = sorted({s for s in (_resync(cap, c) for c in candidates) if s > base})
    exact = _count_pcap(cap, starts) if cap.format == "pcap" else _count_pcapng(cap, starts)
    bounds = [(base, 0)]
    for pos, before in exact:
        if pos > bounds[-1][0]:
            bounds.append((pos, before))
    ends = [b[0] for b in bounds[1:]] + [size]
    return [(s, e, k + 1) for (s, k), e in zip(bounds, ends, strict=True)]


def _resync(cap: Capture, start: int) -> int:
    if cap.format == "pcap":
        h = cap.header
        frac_lim = 1_000_000 if h.frac_mul == 1000 else 1_000_000_000
        maxcap = min(max(h.snaplen, PLAUSIBLE_CAPLEN), MAX_RECORD)
        return int(resync_pcap(cap.data, start, h.big, h.hdrlen, h.swap, maxcap, frac_lim, RESYNC_RECORDS))
    return int(resync_pcapng(cap.data, start, cap.info.endian == "big", RESYNC_RECORDS))


def _count_pcap(cap: Capture, starts: list[int]) -> list[tuple[int, int]]:
    """(exact boundary, records before it) per start; starts beyond the readable part dropped."""
    h = cap.header
    marks = np.array(starts, dtype=np.int64)
    counts, landed = np.zeros_like(marks), np.zeros_like(marks)
    count_pcap(cap.data, GLOBAL_HDR_LEN, h.big, h.hdrlen, h.swap, marks, counts, landed)
    size = cap.data.shape[0]
    return [(int(p), int(c)) for p, c in zip(landed, counts, strict=True) if 0 <= p < size]


def _count_pcapng(cap: Capture, starts: list[int]) -> list[tuple[int, int]]:
    walker = NgWalker(cap.data)
    empty = alloc(0)
    out: list[tuple[int, int]] = []
    n, pos = 0, 0
    size = cap.data.shape[0]
    for s in starts:
        try:
            n, pos, st, _ = walker.step(pos, s, empty, n)
        except Damage:
            break
        if st != ST_END or pos >= size:
            break
        out.append((pos, n))
    return out
