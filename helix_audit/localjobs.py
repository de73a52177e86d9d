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
  file's start, ~0.2 s per GB, on its own core), so it knows the absolute frame number there and
  starts at the same batch boundary; it ends like the parent, at its own next cut;
- the last worker hashes the file (SHA-256 is one sequential pass) once its result is sent: the
  digest is resolved late (``Scan.pending``; ``audit`` asks for it after classification), so the
  hash runs on the worker's core while the parent merges, finishes and classifies, not while the
  packet stages compete for the two cores.

Partitions must start on serial batch boundaries because the protocols stage orders and budgets
its work per batch. Every process numbers records from the same header chain, so the partitions
meet exactly; ``run_local`` still checks that they do and raises ``Mismatch`` otherwise (the caller
then runs the planned path). The parent's share is larger (``PARENT_SHARE``): a worker also counts,
pickles its result, and the parent's merge follows.
"""

from __future__ import annotations

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
from .forkpipe import Child, fork_child, outcome, reap, receive, send
from .gcpause import paused_gc
from .parallel import Merged, PartResult, _Meter, drain_progress, lean, run_part
from .partitions import Part, _align, landings

#: Share of the file's bytes the parent reads when ``jobs`` is 2 (more jobs: each worker's part
#: keeps its size against the parent's).
PARENT_SHARE = 0.6
Progress = Callable[[int, int], None]


class Mismatch(RuntimeError):
    """Partitions that did not meet at the same frame (cannot happen on a consistent walk)."""


def lazy_parts(files: Sequence[Path], jobs: int, split_min: int) -> list[Part] | None:
    """Partitions of the one input, or None when this path does not apply (several inputs, gzip,
    pcapng, a small file, one job)."""
    if jobs < 2 or len(files) != 1:
        return None
    weight = PARENT_SHARE / (1 - PARENT_SHARE)  # the parent's part against one worker's
    first = weight / (weight + jobs - 1)
    return parts_at(files[0], [first + (1 - first) * i / (jobs - 1) for i in range(jobs - 1)], split_min)


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
    return run_part(part, batch_size, report)


# ------------------------------------------------------------------------------------------ processes


def _child(part: Part, batch_size: int, queue: Any, hash_after: bool, conn: Connection) -> None:  # noqa: ANN401
    """In the forked worker: result (or error) down ``conn``, then the file's digest if asked."""

    def report(packets: int, nbytes: int) -> None:
        if queue is not None:
            queue.put((packets, nbytes))

    with paused_gc():  # as the serial scan: ~10^5 live parser objects, no cycles to find
        blob, ok = outcome(lambda: lean(run_counted(part, batch_size, report)))
    hash_after = hash_after and ok
    sender = threading.Thread(target=send, args=(conn, blob))
    sender.start()  # the parent may still be busy with its own partition: hash meanwhile
    hexdigest = file_sha256(part.path) if hash_after else ""
    sender.join()
    del blob
    if hash_after:
        send(conn, hexdigest.encode())
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
    workers = [fork_child(_child, p, batch_size, queue, p is parts[-1]) for p in parts[1:]]
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
        for child, p in zip(workers, parts[1:], strict=True):
            t2 = time.perf_counter()
            child.conn.poll(None)  # the worker late: this process idles (wall time; ~0 when balanced)
            t3 = time.perf_counter()
            res: PartResult = receive(child.conn, f"--jobs worker for bytes from {p.start}")
            t4 = time.perf_counter()
            timings["wait"] = timings.get("wait", 0.0) + t3 - t2
            timings["load"] = timings.get("load", 0.0) + t4 - t3  # receiving and unpickling
            timings["worker"] = max(timings.get("worker", 0.0), res.timings["worker"])
            hi = _check(hi, res)
            merged.add(res, batch_size)
            del res  # the merge took what it keeps
        merged._decoder = None  # noqa: SLF001  no partition follows: its pooled batch arrays go now
        timings.update({"own part": t1 - t0, "others": time.perf_counter() - t1})
    except BaseException:
        _stop(workers, queue, drain)
        raise
    return merged, Pending(parts[0].path, workers, queue, drain), timings


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
