"""``--jobs N`` on one machine for one large classic pcap: no planning pass, the parent works too.

``parallel.plan`` walks every record header of the file before any worker starts (to number the
frames at the cuts), then the parent only waits, unpickles and merges. Here the cuts are byte
offsets (re-synchronised onto record headers, ``_resync``) and nothing is walked up front:

- the parent reads the first partition itself, from the file's start: its frame numbers are the
  serial ones, and its state *is* the serial running state (``Merged.adopt``: nothing to ship or
  merge; it is parsed by the plain ``Extractor``, see ``parallel.running_state``). It stops at the
  first serial batch boundary at or after the first record whose header starts at or after the
  next cut (``Part.until``);
- worker ``k`` (a forked process) counts the records before its cut itself (a header walk from the
  file's start, ~0.12 s per GB, on its own core), so it knows the absolute frame number there and
  starts at the same batch boundary; it ends like the parent, at its own next cut;
- the last worker hashes the file (SHA-256 is one sequential pass) once its result is sent: the
  digest is resolved late (``Scan.pending``; ``audit`` asks for it after classification), so the
  hash runs on the worker's core while the parent merges, finishes and classifies, not while the
  packet stages compete for the two cores.

Partitions must start on serial batch boundaries because the protocols stage orders and budgets
its work per batch. Every process numbers records from the same header chain, so the partitions
meet exactly; ``run_local`` still checks that they do and raises ``Mismatch`` otherwise (the caller
then runs the planned path). The parent's share is larger (``shares``): a worker also counts and
pickles its result, and tags what it parses for the merge that follows in the parent. A worker's
result crosses through an in-memory file (``forkpipe.spill``), not the pipe.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .capture import open_capture
from .capture.partition import _resync
from .capture.pcap import GLOBAL_HDR_LEN
from .digest import file_sha256
from .forkpipe import Child, fork_child, reap, send, spill, spill_file, unspill
from .gcpause import paused_gc
from .parallel import Merged, PartResult, _Meter, drain_progress, lean, run_part
from .partitions import Part, _align, landings

#: What the partitions cost against the parent's seconds per byte of its own (serial extractor):
#: a worker per byte of its partition (tagging extractor and pickling), a worker per byte before
#: its cut (the counting walk), and the parent per byte of a worker's partition (unpickling and
#: merging). ``shares`` balances them. From ``--jobs 2`` on the benchmark (session 9, tool.timings:
#: parent 1.09 s, worker 0.78 + 0.20 s, counting 0.13 s, parent 0.12 + 0.10 s, cut at 60%), taken
#: per share of the cuts: the parent also reads on to the batch boundary after its cut (on
#: average half a batch, ~1.6% of the benchmark), which these ratios absorb, as the waits show
#: (``wait``: 0-0.03 s).
WORKER_COST, COUNT_COST, MERGE_COST = 1.35, 0.12, 0.28
Progress = Callable[[int, int], None]


class Mismatch(RuntimeError):
    """Partitions that did not meet at the same frame (cannot happen on a consistent walk)."""


def lazy_parts(files: Sequence[Path], jobs: int, split_min: int) -> list[Part] | None:
    """Partitions of the one input, or None when this path does not apply (several inputs, gzip,
    pcapng, a small file, one job)."""
    if jobs < 2 or len(files) != 1:
        return None
    cuts = list(itertools.accumulate(shares(jobs)))[:-1]
    return parts_at(files[0], cuts, split_min)


def shares(jobs: int) -> list[float]:
    """The file's shares of the parent and of each worker, such that every worker's result arrives
    when the parent is ready for it: when its own partition ends, plus (from the second worker on)
    the unpickling and merging of the results before it. In units of the parent's time per share,
    with the parent's share ``s_0 = 1``: worker ``k``, cut at ``x_k = s_0 + ... + s_k-1``, takes
    ``COUNT_COST * x_k + WORKER_COST * s_k``, due at ``1 + MERGE_COST * (s_1 + ... + s_k-1)``.
    Every share is proportional to ``s_0``: those found for ``s_0 = 1`` are scaled to sum to 1
    (``jobs`` 2: 0.605 and 0.395; 3: 0.42, 0.27, 0.31)."""
    out, at, due = [1.0], 1.0, 1.0  # shares so far, their sum (the next cut), the next result's moment
    for _ in range(jobs - 1):
        share = max(due - COUNT_COST * at, 0.0) / WORKER_COST
        out.append(share)
        at += share
        due += MERGE_COST * share
    return [x / at for x in out]


def parts_at(path: str | Path, fractions: Sequence[float], split_min: int = 0) -> list[Part] | None:
    """Partitions cut near these fractions of a classic pcap's records (None: not such a file)."""
    with open(path, "rb") as fh:  # gzip or small: no opening (it would decompress the whole file)
        if fh.read(2) == b"\x1f\x8b" or os.fstat(fh.fileno()).st_size < split_min:
            return None
    cap = open_capture(path)
    if cap.format != "pcap":
        return None
    body = int(cap.data.shape[0]) - GLOBAL_HDR_LEN
    cands = [GLOBAL_HDR_LEN + int(body * f) for f in fractions]
    cuts = sorted({c for c in (_resync(cap, c) for c in cands) if c > GLOBAL_HDR_LEN})
    del cap  # its mapping goes with it
    if not cuts:
        return None
    names = (str(path),)
    bounds = [GLOBAL_HDR_LEN, *cuts]
    return [
        Part(str(path), names, i, start, 1 if i == 0 else 0, 1 if i == 0 else 0, None,
             bounds[i + 1] if i + 1 < len(bounds) else None)
        for i, start in enumerate(bounds)
    ]  # fmt: skip


def run_counted(part: Part, batch_size: int, report: Callable[[int, int], None] | None = None) -> PartResult:
    """A worker's partition: count the records before its cut, then run it from that frame."""
    t0 = time.perf_counter()
    if part.lo == 0:
        cap = open_capture(part.path)
        size = int(cap.data.shape[0])
        found = landings(cap, [part.start]) if part.start is not None else []
        del cap
        if found and found[0][0] < size:  # a cut past the last record finds the end of the file
            start, before = found[0]
            part = replace(part, start=start, first_frame=before + 1, lo=_align(before + 1, batch_size))
        else:  # the serial read ends before the cut: nothing here (the partition before reads on)
            part = replace(part, start=size, first_frame=1, lo=-1, until=None)
    counted = time.perf_counter() - t0
    res = run_part(part, batch_size, report)
    res.timings["count"] = counted
    return res


# ------------------------------------------------------------------------------------------ processes


def _child(
    part: Part,
    batch_size: int,
    queue: Any,  # noqa: ANN401
    hash_after: bool,
    spilled: list[int],
    mine: int,
    conn: Connection,
) -> None:
    """In the forked worker: result (or error) into the file ``mine`` (see ``forkpipe.spill``),
    then the file's digest down ``conn`` if asked. ``spilled``: every worker's file, inherited."""
    for fd in spilled:
        if fd != mine:
            os.close(fd)  # not held on to while hashing: the parent frees them as it loads them

    def report(packets: int, nbytes: int) -> None:
        if queue is not None:
            queue.put((packets, nbytes))

    with paused_gc():  # as the serial scan: ~10^5 live parser objects, no cycles to find
        ok = spill(conn, mine, lambda: lean(run_counted(part, batch_size, report)))
    os.close(mine)
    if hash_after and ok:
        send(conn, file_sha256(part.path).encode())
    conn.close()


def run_local(
    parts: Sequence[Part], batch_size: int, progress: Progress | None = None
) -> tuple[Merged, Pending, dict[str, float]]:
    """Partition 0 here, the others on forked workers; merged in order. Returns the merged state,
    the file's pending SHA-256 (from the last worker) and timings."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    meter = _Meter(progress)
    queue = ctx.SimpleQueue() if progress is not None else None
    spilled = [spill_file() for _ in parts[1:]]
    try:
        workers = [
            fork_child(_child, p, batch_size, queue, p is parts[-1], spilled, fd)
            for p, fd in zip(parts[1:], spilled, strict=True)
        ]
    except BaseException:
        _close(spilled)
        raise
    drain = (
        threading.Thread(target=drain_progress, args=(queue, meter), daemon=True)
        if queue is not None
        else None
    )
    if drain is not None:
        drain.start()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        first = run_part(parts[0], batch_size, meter.add, running=True)
        t1 = time.perf_counter()
        # the pools go before the worker's state arrives: the parent's peak is the merge
        merged, hi = Merged.adopt(lean(first)), first.hi
        del first  # its table and extractor are the merged ones; its decoder goes below
        for child, p, fd in zip(workers, parts[1:], list(spilled), strict=True):
            t2 = time.perf_counter()
            child.conn.poll(None)  # the worker late: this process idles (wall time; ~0 when balanced)
            t3 = time.perf_counter()
            res, packing = unspill(child.conn, fd, f"--jobs worker for bytes from {p.start}")
            os.close(fd)
            spilled.remove(fd)
            t4 = time.perf_counter()
            hi = _check(hi, res)
            merged.add(res, batch_size)
            _add(timings, wait=t3 - t2, load=t4 - t3, merge=time.perf_counter() - t4)  # load: unpickling
            _most(timings, {"worker": res.timings["worker"], "worker count": res.timings.get("count", 0.0),
                            "worker pack": packing})  # fmt: skip
            del res  # the merge took what it keeps
        merged._decoder = None  # noqa: SLF001  no partition follows: its pooled batch arrays go now
        timings.update({"own part": t1 - t0, "others": time.perf_counter() - t1})
    except BaseException:
        _stop(workers, queue, drain)
        raise
    finally:
        _close(spilled)
    return merged, Pending(parts[0].path, workers, queue, drain), timings


def _add(timings: dict[str, float], **spent: float) -> None:
    for k, v in spent.items():
        timings[k] = timings.get(k, 0.0) + v


def _most(timings: dict[str, float], spent: dict[str, float]) -> None:
    """The slowest worker's (each piece on its own)."""
    for k, v in spent.items():
        timings[k] = max(timings.get(k, 0.0), v)


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class Pending:
    """The input's SHA-256, which the last worker computes after sending its partition."""

    def __init__(self, path: str, workers: list[Child], queue: Any, drain: threading.Thread | None) -> None:  # noqa: ANN401
        self.path, self._workers, self._queue, self._drain = path, workers, queue, drain

    def digests(self) -> list[str]:
        """The input's digest, [hex]: waits for the worker's (or hashes here if the worker is gone),
        then reaps the workers."""
        try:
            value = self._workers[-1].conn.recv_bytes().decode()
        except (EOFError, OSError):
            value = file_sha256(self.path)
        _stop(self._workers, self._queue, self._drain)
        return [value]

    def abandon(self) -> None:
        """The audit failed after the merge: end the workers now, without waiting for the hash."""
        _stop(self._workers, self._queue, self._drain, patience=0)


def _check(hi: int | None, res: PartResult) -> int | None:
    """The frame the next partition must start at, after checking that ``res`` starts at ``hi``."""
    if res.part.lo == -1:  # found no records: the serial read ended before its cut
        if hi is not None:
            raise Mismatch(f"partition at byte {res.part.start} found no records, expected frame {hi}")
        return None
    if hi != res.part.lo:
        raise Mismatch(f"partition starts at frame {res.part.lo}, the one before ended at {hi}")
    return res.hi


def _stop(workers: list[Child], queue: Any, drain: threading.Thread | None, patience: float = 5) -> None:  # noqa: ANN401
    """Reap the workers: each gets ``patience`` seconds to end by itself, then is killed."""
    for child in workers:
        reap(child, patience)
    if queue is not None and drain is not None and drain.is_alive():
        queue.put(None)
        drain.join(timeout=5)


__all__ = ["Mismatch", "Pending", "lazy_parts", "parts_at", "run_counted", "run_local"]
