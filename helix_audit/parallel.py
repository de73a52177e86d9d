"""Scale-out: the packet stages over partitions (files, and byte ranges of large files), merged exactly.

A partition owns whole serial batches: its first frame is a multiple of ``batch_size`` plus one, so
each batch it feeds the stages is the very batch the serial run feeds them (the protocols stage
budgets per batch). A worker reads from its byte range's first record (``plan_ranges``), skips the
records before its first owned frame and reads on past its range until the next partition's first
owned frame. It runs decode, flows and protocols from an empty state and returns only aggregates:
the flow table, the extractor (observations, anomalies, the few directions still being parsed) and
the decoder's pending IP fragments; never packet batches.

The parent merges the results in capture order into the running state (``FlowTable.merge``,
``protocols.partition.absorb``). Where a partition's empty start could change a result (a stream
start, HTTP keep-alive heads or a QUIC handshake across the cut, IP fragments on both sides), the
parent re-runs that partition's stages on the running state: the result is always the serial one.

Workers are local processes (``jobs``) or the workers of a ``dask.distributed`` cluster (``dask``,
an address such as ``tcp://scheduler:8786``); both need read access to the same capture paths.
One large classic pcap on local processes takes a shorter road (``localjobs``): no planning walk,
the parent runs the first partition itself and each worker counts its own start.
"""

from __future__ import annotations

import gc
import mmap
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .capture import open_capture, plan_ranges
from .capture.interface import CaptureInfo, RecordBatch
from .capture.partition import _resync
from .capture.pcap import GLOBAL_HDR_LEN, Tally, first_batch, pcap_batches
from .capture.pcapng import NgWalker, pcapng_batches
from .capture.source import Capture
from .capture.walk import ST_ABSURD, count_pcap
from .decode.core import Decoder
from .decode.frag import Reassembler
from .flows.interface import PacketFlows
from .flows.table import FlowTable
from .gcpause import paused_gc
from .protocols.partition import PartitionExtractor, absorb

SPLIT_MIN_BYTES = 64 << 20  # files smaller than this are one partition
PLAN_CHUNK = 64 << 20  # bytes of a file walked (then released) at a time while planning
Progress = Callable[[int, int], None]


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


@dataclass
class PartResult:
    part: Part
    info: CaptureInfo
    table: FlowTable
    extractor: PartitionExtractor
    decoder: Decoder
    fragments: bool  # the decoder was fed IP fragments
    packets: int = 0
    nbytes: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    hi: int | None = None  # the frame it ended before (None: the end of the file)


class _TrackingReassembler(Reassembler):
    def __init__(self) -> None:
        super().__init__()
        self.fed = False

    def feed(self, *args, **kw):  # noqa: ANN002, ANN003, ANN202
        self.fed = True
        return super().feed(*args, **kw)


def _decoder() -> Decoder:
    d = Decoder()
    d.fragments = _TrackingReassembler()
    return d


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
        got, stop, status = count_pcap(cap.data[pos:end], 0, h.big, h.hdrlen, h.swap, marks, counts, landed)
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


# ------------------------------------------------------------------------------------------ workers


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


def run_part(part: Part, batch_size: int, report: Callable[[int, int], None] | None = None) -> PartResult:
    """The packet stages over one partition, from an empty state (runs in a worker)."""
    t0, c0 = time.perf_counter(), time.process_time()
    cap = open_capture(part.path)
    tally = Tally()
    decoder, table, ext = _decoder(), FlowTable(part.files), PartitionExtractor()
    packets, nbytes, first, last = 0, 0, None, None
    ends: list[int | None] = []
    for batch in part_batches(cap, part, batch_size, tally, ends):
        cols = decoder.decode(batch)
        ext.add(cols, table.add(cols))
        packets += len(batch)
        done = int(batch.caplen.sum()) + 16 * len(batch)
        nbytes += done
        lo, hi = int(batch.ts_ns.min()), int(batch.ts_ns.max())
        first, last = (lo if first is None else min(first, lo)), (hi if last is None else max(hi, last))
        if report is not None:
            report(len(batch), done)
    info = cap.info
    fed = bool(getattr(decoder.fragments, "fed", True))
    timings = {"worker": time.perf_counter() - t0, "cpu": time.process_time() - c0, "pid": float(os.getpid())}
    warnings = list(tally.warnings)
    res = PartResult(part, info, table, ext, decoder, fed, packets, nbytes, first, last, warnings, timings)
    res.hi = ends[-1] if ends else part.hi
    return res


# -------------------------------------------------------------------------------------------- merge


@dataclass
class Merged:
    table: FlowTable
    extractor: PartitionExtractor
    infos: dict[str, CaptureInfo] = field(default_factory=dict)
    reruns: int = 0
    _decoder: Decoder | None = None

    @classmethod
    def adopt(cls, res: PartResult) -> Merged:
        """The running state is the first partition's own: it ran from the file's start, as serially."""
        merged = cls(res.table, res.extractor, _decoder=res.decoder)
        merged._note_info(res)
        return merged

    def add(self, res: PartResult, batch_size: int) -> None:
        """Fold the next partition in (capture order); re-run it here when it cannot merge exactly."""
        if res.part.index == 0:
            self._decoder = _decoder()
        assert self._decoder is not None
        self._note_info(res)
        pristine = len(self._decoder.fragments) == 0 and self._decoder.fragments._swept == 0  # noqa: SLF001
        if res.fragments and not pristine:
            self.reruns += 1
            self._rerun(res.part, batch_size)
            return
        remap = self.table.merge(res.table)
        if absorb(self.extractor, res.extractor, remap):
            if res.fragments:
                self._decoder = res.decoder
            return
        self.reruns += 1
        self._rerun(res.part, batch_size, remap)

    def _rerun(self, part: Part, batch_size: int, remap: np.ndarray | None = None) -> None:
        """The partition again, on the running state. With ``remap``, its flows are merged already:
        a fresh table gives the worker's provisional ids, mapped through ``remap``."""
        assert self._decoder is not None
        cap = open_capture(part.path)
        local = FlowTable(part.files) if remap is not None else self.table
        for batch in part_batches(cap, part, batch_size, Tally()):
            cols = self._decoder.decode(batch)
            pf = local.add(cols)
            if remap is not None:
                pf = PacketFlows(np.where(pf.flow_id >= 0, remap[np.maximum(pf.flow_id, 0)], -1), pf.from_a)
            self.extractor.add(cols, pf)

    def _note_info(self, res: PartResult) -> None:
        old = self.infos.get(res.part.path)
        if res.part.start is None:
            self.infos[res.part.path] = res.info
            return
        first = res.first_ts_ns if old is None or old.first_ts_ns is None else old.first_ts_ns
        self.infos[res.part.path] = replace(
            res.info,
            packets=(old.packets if old else 0) + res.packets,
            first_ts_ns=_pick(min, first, res.first_ts_ns),
            last_ts_ns=_pick(max, old.last_ts_ns if old else None, res.last_ts_ns),
            warnings=tuple(dict.fromkeys([*(old.warnings if old else ()), *res.warnings])),
        )


def _pick(fn, a: int | None, b: int | None) -> int | None:  # noqa: ANN001
    vals = [v for v in (a, b) if v is not None]
    return fn(vals) if vals else None


# ---------------------------------------------------------------------------------------- executors


def execute(
    parts: Sequence[Part], batch_size: int, jobs: int = 1, dask: str | None = None,
    progress: Progress | None = None,
    started: Callable[[], None] = lambda: None,
) -> Merged:  # fmt: skip
    """Run every partition (in this process, on ``jobs`` processes, or on a Dask cluster); merge.
    ``started`` is called once the workers run (the caller may start threads then)."""
    merged = Merged(FlowTable(parts[0].files if parts else ()), PartitionExtractor())
    meter = _Meter(progress)
    if dask is not None:
        results = _dask_results(parts, batch_size, dask, meter)
        started()
    elif jobs > 1 and len(parts) > 1:
        results = _pool_results(parts, batch_size, jobs, meter, started)
    else:
        started()
        results = (run_part(p, batch_size, meter.add) for p in parts)
    with paused_gc():  # merging builds ~10^5 objects and cycles nothing: no collections meanwhile
        for res in results:
            merged.add(res, batch_size)
    return merged


class _Meter:
    """Packets and bytes done so far, forwarded to ``progress``."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.packets = self.bytes = 0
        self._lock = threading.Lock()  # the parent's own part and the workers' drain thread both add

    def add(self, packets: int, nbytes: int) -> None:
        with self._lock:
            self.packets += packets
            self.bytes += nbytes
            if self.progress is not None:
                self.progress(self.packets, self.bytes)


_QUEUE = None  # the worker processes' end of the progress queue


def _init_worker(queue) -> None:  # noqa: ANN001
    """The parent's heap, inherited, moves out of the collector's reach (``gc.freeze``): a full
    collection would walk it and copy every page it touches. ``run_part`` runs with the collector
    paused, as the serial scan does; it runs between partitions (direction peers form cycles)."""
    global _QUEUE
    _QUEUE = queue
    gc.freeze()
    gc.enable()


def _report(packets: int, nbytes: int) -> None:
    if _QUEUE is not None:
        _QUEUE.put((packets, nbytes))


def packed_part(part: Part, batch_size: int) -> bytes:
    """``run_part`` pickled by the worker: the parent unpickles it with the garbage collector off
    (10^5 small objects would otherwise trigger full collections of its growing heap)."""
    with paused_gc():  # ~10^5 live parser objects; packing builds a tuple per observation and direction
        result = run_part(part, batch_size, _report)
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_part(blob: bytes) -> PartResult:
    with paused_gc():
        return pickle.loads(blob)


def drain_progress(queue: Any, meter: _Meter) -> None:  # noqa: ANN401
    """Add the workers' progress reports to ``meter`` until a None arrives (a thread's body)."""
    while True:
        item = queue.get()
        if item is None:
            return
        meter.add(*item)


def _pool_results(
    parts: Sequence[Part], batch_size: int, jobs: int, meter: _Meter, started: Callable[[], None]
) -> Iterator[PartResult]:
    """Results in order from ``jobs`` forked processes; ``started`` runs once they exist (threads
    must not be running while the parent forks)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork")
    queue = ctx.SimpleQueue()
    reader = threading.Thread(target=drain_progress, args=(queue, meter), daemon=True)
    with ProcessPoolExecutor(min(jobs, len(parts)), mp_context=ctx, initializer=_init_worker,
                             initargs=(queue,)) as pool:  # fmt: skip
        futures = [pool.submit(packed_part, p, batch_size) for p in parts]  # forks every worker
        reader.start()
        started()
        try:
            for f in futures:
                yield unpack_part(f.result())
        finally:
            for f in futures:
                f.cancel()
            queue.put(None)
    reader.join(timeout=5)


def _dask_results(
    parts: Sequence[Part], batch_size: int, address: str, meter: _Meter
) -> Iterator[PartResult]:
    try:
        from distributed import Client
    except ImportError:
        from .errors import UsageError

        raise UsageError("--dask needs dask.distributed: pip install 'helix-audit[dask]'") from None
    with Client(address, timeout=30) as client:
        futures = [client.submit(packed_part, p, batch_size, pure=False) for p in parts]
        for f in futures:
            res = unpack_part(f.result())
            meter.add(res.packets, res.nbytes)
            yield res


__all__ = ["Merged", "Part", "PartResult", "execute", "plan", "run_part"]
