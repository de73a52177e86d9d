"""Scale-out: the packet stages over partitions (files, and byte ranges of large files), merged exactly.

Where partitions start and how one is read in the serial run's batches: ``partitions``. A worker
runs decode, flows and protocols over its partition from an empty state (``run_part``) and returns
only aggregates: the flow table, the extractor (observations, anomalies, the few directions still
being parsed) and the decoder's pending IP fragments; never packet batches.

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
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .capture import open_capture
from .capture.interface import CaptureInfo
from .capture.pcap import Tally
from .decode.core import Decoder
from .decode.frag import Reassembler
from .flows.interface import PacketFlows
from .flows.table import FlowTable
from .gcpause import paused_gc
from .partitions import SPLIT_MIN_BYTES, Part, part_batches, plan
from .protocols.extract import Extractor
from .protocols.partition import PartitionExtractor, absorb

Progress = Callable[[int, int], None]


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


def run_part(
    part: Part, batch_size: int, report: Callable[[int, int], None] | None = None, running: bool = False
) -> PartResult:
    """The packet stages over one partition, from an empty state (runs in a worker). ``running``:
    the partition is the running state itself (the first one, read by the parent), not absorbed."""
    t0, c0 = time.perf_counter(), time.process_time()
    cap = open_capture(part.path)
    tally = Tally()
    decoder, table = _decoder(), FlowTable(part.files)
    ext: Extractor = Extractor() if running else PartitionExtractor()
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
    state = running_state(ext) if running else ext
    assert isinstance(state, PartitionExtractor)
    res = PartResult(part, info, table, state, decoder, fed, packets, nbytes, first, last, warnings, timings)
    res.hi = ends[-1] if ends else part.hi
    return res


def running_state(ext: Extractor) -> PartitionExtractor:
    """A plain ``Extractor``'s state as the running state that later partitions are absorbed into.

    ``absorb`` reads tags, touched directions and tunnels of the partition it folds in, never of
    the running state; so the partition that *is* the running state (the parent's first one in
    ``localjobs``) is parsed by the serial ``Extractor``, without ``PartitionExtractor``'s
    per-segment tagging (~10% of its protocols stage)."""
    state = PartitionExtractor(ext.limit, ext.dns_ports)
    state.__dict__.update(ext.__dict__)  # the tagging attributes stay, empty
    state.tag()  # tags as long as the observations: a later ``add`` (a re-run) tags what it adds
    return state


def lean(res: PartResult) -> PartResult:
    """The result without its decoder's and flow table's pooled batch arrays (~10 MB: shipped for
    nothing, or held through the merge; a later batch, as in a re-run, allocates anew)."""
    for owner in (res.decoder, res.table):
        pool = getattr(owner, "_pool", None)
        if pool is not None:
            pool.clear()
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
        result = lean(run_part(part, batch_size, _report))
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


__all__ = [
    "SPLIT_MIN_BYTES",
    "Merged",
    "Part",
    "PartResult",
    "execute",
    "lean",
    "plan",
    "run_part",
    "running_state",
]
