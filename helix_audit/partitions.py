"""Partitions: where each starts and ends (planning), and reading one in the serial run's batches.

A partition owns whole serial batches: its first frame is a multiple of ``batch_size`` plus one, so
each batch it feeds the stages is the very batch the serial run feeds them (the protocols stage
budgets per batch). ``plan`` cuts large files at byte offsets re-synchronised onto record headers
and numbers the frames at each cut (``landings``: a header walk); a reader starts at its byte
range's first record (``part_batches``), skips the records before its first owned frame and reads
on past its range until the next partition's first owned frame. ``parallel`` runs and merges them.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .capture import open_capture, plan_ranges
from .capture.interface import RecordBatch
from .capture.partition import _resync
from .capture.pcap import GLOBAL_HDR_LEN, Tally, first_batch, pcap_batches
from .capture.pcapng import NgWalker, pcapng_batches
from .capture.source import Capture
from .capture.walk import ST_ABSURD, count_pcap

SPLIT_MIN_BYTES = 64 << 20  # files smaller than this are one partition
PLAN_CHUNK = 64 << 20  # bytes of a file walked (then released) at a time while planning


@dataclass(frozen=True)
class Part:
    """One partition: frames [lo, hi) of ``path`` (hi None: to the end), read from byte ``start``.

    ``until`` (a byte offset, with ``hi`` None): the partition ends at the first serial batch
    boundary at or after the first record whose header starts at or after ``until``; the reader
    finds that frame on its way (see ``localjobs``: the next partition counts the same record)."""

    path: str
    files: tuple[str, ...]  # every input, in order: the flow tables' common file order
    index: int  # within the file
    start: int | None  # None: the whole file (an ordinary read)
    first_frame: int = 1
    lo: int = 1
    hi: int | None = None
    until: int | None = None


# ----------------------------------------------------------------------------------------- planning


def plan(
    files: Sequence[Path], jobs: int, batch_size: int, split_min: int = SPLIT_MIN_BYTES, pieces: int = 0
) -> list[Part]:
    """Partitions of every file, in capture order; large files cut into about ``pieces or jobs`` ranges."""
    names = tuple(str(f) for f in files)
    parts: list[Part] = []
    for f in names:
        cap = open_capture(f)
        if max(jobs, pieces) <= 1 or cap.gzip or cap.size < split_min:
            parts.append(Part(f, names, 0, None))
            continue
        ranges = lean_ranges(cap, pieces or jobs) if cap.format == "pcap" else plan_ranges(f, pieces or jobs)
        aligned = [(s, k, _align(k, batch_size)) for s, _e, k in ranges]
        kept = [r for i, r in enumerate(aligned) if i + 1 == len(aligned) or r[2] < aligned[i + 1][1]]
        kept = [r for i, r in enumerate(kept) if i == 0 or r[2] != kept[i - 1][2]]
        for i, (s, k, lo) in enumerate(kept):
            hi = kept[i + 1][2] if i + 1 < len(kept) else None
            parts.append(Part(f, names, i, s, k, 1 if i == 0 else lo, hi))
    return parts


def lean_ranges(cap: Capture, n: int) -> list[tuple[int, int, int]]:
    """``plan_ranges`` for classic pcap, counting records in chunks whose mapped pages are dropped
    behind the walk: planning a 1.6 GB file then costs ~64 MB of RSS, not the file's size."""
    size = int(cap.data.shape[0])
    cands = [GLOBAL_HDR_LEN + (size - GLOBAL_HDR_LEN) * i // n for i in range(1, max(n, 1))]
    todo = sorted({s for s in (_resync(cap, c) for c in cands) if s > GLOBAL_HDR_LEN})
    bounds = [(GLOBAL_HDR_LEN, 0), *landings(cap, todo)]
    bounds = [b for i, b in enumerate(bounds) if i == 0 or b[0] > bounds[i - 1][0]]
    ends = [b[0] for b in bounds[1:]] + [size]
    return [(s, e, k + 1) for (s, k), e in zip(bounds, ends, strict=True)]


def landings(cap: Capture, todo: list[int]) -> list[tuple[int, int]]:
    """For each sorted offset of ``todo`` (classic pcap): the first record boundary at or after it
    and the records before that boundary, walking headers from the file's start; offsets past the
    readable records (damage, the end) are left out."""
    h, pos, before, size = cap.header, GLOBAL_HDR_LEN, 0, int(cap.data.shape[0])
    out: list[tuple[int, int]] = []
    step = PLAN_CHUNK
    while todo and pos < size:
        end = min(size, pos + step)
        marks = np.array([t - pos for t in todo], dtype=np.int64)
        counts, landed = np.zeros_like(marks), np.zeros_like(marks)
        got, stop, status, _ = count_pcap(cap.data[pos:end], 0, h.big, h.hdrlen, h.swap, marks, counts,
                                          landed)  # fmt: skip
        out += [(pos + int(x), before + int(c)) for x, c in zip(landed, counts, strict=True) if x >= 0]
        todo = [t for t, x in zip(todo, landed, strict=True) if x < 0]
        _drop_pages(cap, pos, pos + int(stop))
        before, pos = before + int(got), pos + int(stop)
        if end == size or status == ST_ABSURD:
            break
        if stop == 0:  # one record longer than the chunk: a longer chunk
            step *= 2
    return out


def _drop_pages(cap: Capture, start: int, end: int) -> None:
    mm = cap._mm  # noqa: SLF001
    start -= start % mmap.PAGESIZE
    if mm is not None and end > start:
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)


def _align(frame: int, batch_size: int) -> int:
    """The first frame >= ``frame`` that starts a serial batch."""
    return (frame - 1 + batch_size - 1) // batch_size * batch_size + 1


# ------------------------------------------------------------------------------------------ reading


def _range_batches(
    cap: Capture, part: Part, batch_size: int, tally: Tally, ends: list[int | None] | None = None
) -> Iterator[RecordBatch]:
    """Records from ``part.start`` in batches of the serial run's boundaries, frames [lo, hi).
    ``ends`` receives the partition's ``hi`` (found on the way for ``until``) once the read ends."""
    assert part.start is not None
    size = int(cap.data.shape[0])
    first = first_batch(part.first_frame, batch_size)  # serial batches: none held across a release
    if cap.format == "pcap":
        it = pcap_batches(
            cap.path, cap.data, cap.header, batch_size, part.start, size, part.first_frame, tally, first
        )
    else:
        walker = NgWalker(cap.data, cap._ng.seen)  # noqa: SLF001
        _, start = walker.skip_to(part.start)
        it = pcapng_batches(
            cap.path, cap.data, walker, batch_size, start, size, part.first_frame, tally, first
        )
    pending: list[RecordBatch] = []
    hi, hdrlen = part.hi, (cap.header.hdrlen if cap.format == "pcap" else 0)
    for batch in cap._releasing(it, part.start):  # noqa: SLF001
        if hi is None and part.until is not None and len(batch):
            at = int(np.searchsorted(batch.offset - hdrlen, part.until))
            if at < len(batch):
                hi = _align(int(batch.frame[at]), batch_size)
        pending.append(batch)
        merged = _concat(pending)
        pending = []
        short = len(batch) < batch_size  # the reader's last batch (or a first one ending on a boundary)
        for piece, last in _cut(merged, part.lo, hi, batch_size):
            if last and not short:  # handed on now, its pages are not refaulted once released
                pending = [piece]
            elif len(piece):
                yield piece
        if hi is not None and int(merged.frame[-1]) >= hi - 1:
            break
    if ends is not None:
        ends.append(hi)
    for piece in pending:
        if len(piece):
            yield piece


def _cut(batch: RecordBatch, lo: int, hi: int | None, batch_size: int) -> Iterator[tuple[RecordBatch, bool]]:
    """Pieces of ``batch`` within [lo, hi) split at serial batch boundaries; the last may be partial."""
    frame = batch.frame
    keep = (frame >= lo) & ((frame < hi) if hi is not None else True)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return
    bid = (frame[rows] - 1) // batch_size
    edges = np.flatnonzero(np.diff(bid)) + 1
    chunks = np.split(rows, edges)
    for i, c in enumerate(chunks):
        piece = _take(batch, int(c[0]), int(c[-1]) + 1)
        complete = (int(piece.frame[-1]) % batch_size) == 0
        yield piece, i + 1 == len(chunks) and not complete


def _take(b: RecordBatch, a: int, z: int) -> RecordBatch:
    return RecordBatch(b.source, b.data, b.offset[a:z], b.caplen[a:z], b.wirelen[a:z], b.ts_ns[a:z],
                       b.linktype[a:z], b.frame[a:z])  # fmt: skip


def _concat(bs: list[RecordBatch]) -> RecordBatch:
    if len(bs) == 1:
        return bs[0]
    cat = [np.concatenate([getattr(b, c) for b in bs]) for c in _COLS]
    return RecordBatch(bs[0].source, bs[0].data, *cat)


_COLS = ("offset", "caplen", "wirelen", "ts_ns", "linktype", "frame")


def part_batches(
    cap: Capture, part: Part, batch_size: int, tally: Tally, ends: list[int | None] | None = None
) -> Iterator[RecordBatch]:
    if part.start is None:
        return cap.batches(batch_size=batch_size)
    return _range_batches(cap, part, batch_size, tally, ends)


__all__ = ["PLAN_CHUNK", "SPLIT_MIN_BYTES", "Part", "landings", "part_batches", "plan"]
