"""A forked process's outcome through a pipe: its value, or its exception raised in the parent.

``--jobs`` workers (``localjobs``) and the bundle's evidence process (``report.bundle``) both run a
function in a forked child (``fork_child``), hand back what it returned or raised the same way,
and are reaped the same way (``reap``).

A large outcome (a ``--jobs`` worker's partition state, ~15 MB on the benchmark) goes through an
in-memory file instead (``spill_file``, ``spill``, ``unspill``): the child pickles into it, only
its size crosses the pipe, and the parent unpickles from a mapping of it. Through the pipe, the
parent paid ~25 ms (of its critical path) to copy the bytes out in 64 KiB reads, and the child
held them twice (the pickle's bytes and the pipe's writes)."""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing as mp
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from .gcpause import paused_gc

T = TypeVar("T")


def _dumps(item: object) -> bytes:
    return pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)


def outcome(fn: Callable[[], object]) -> tuple[bytes, bool]:
    """``fn()`` pickled as ("ok", value), or what it raised as ("err", exception) (its repr in a
    RuntimeError when the exception does not pickle); and whether it succeeded."""
    return _outcome(fn, _dumps)


def _outcome(fn: Callable[[], object], dump: Callable[[object], T]) -> tuple[T, bool]:
    """:func:`outcome` pickled by ``dump`` (into bytes, or into a file: ``spill``)."""
    try:
        return dump(("ok", fn())), True
    except BaseException as exc:  # noqa: BLE001  the parent raises it
        try:
            return dump(("err", exc)), False
        except Exception:  # noqa: BLE001
            return dump(("err", RuntimeError(repr(exc)))), False


def send(conn: Connection, blob: bytes) -> None:
    """Send, or nothing when the parent has stopped listening (it fell back or failed, and says
    so): the child then just ends, without a traceback on the user's terminal."""
    with contextlib.suppress(OSError):  # BrokenPipeError and friends
        conn.send_bytes(blob)


def _message(conn: Connection, who: str) -> bytes:
    """The child's message; a child gone silent is a RuntimeError."""
    try:
        return conn.recv_bytes()
    except EOFError:
        raise RuntimeError(f"{who} ended without a result") from None


def _value(pickled: bytes | mmap.mmap) -> Any:  # noqa: ANN401
    """The value of an ``outcome``; its exception is raised here."""
    with paused_gc():  # a worker's state is ~10^5 objects and no cycles
        kind, value = pickle.loads(pickled)
    if kind == "err":
        raise value
    return value


def receive(conn: Connection, who: str) -> Any:  # noqa: ANN401
    """The child's value; its exception is raised here, and a child gone silent is a RuntimeError."""
    return _value(_message(conn, who))


def spill_file() -> int:
    """A descriptor of an empty anonymous file in memory (a memfd; an unlinked temporary file where
    there are none), made before the fork so that both processes hold it."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("helix-outcome", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as f:  # unlinked already: the duplicate keeps it
        return os.dup(f.fileno())


def _pickled_into(fd: int, value: object) -> int:
    with open(fd, "wb", buffering=1 << 20, closefd=False) as f:
        f.seek(0)
        f.truncate()
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        return f.tell()


def spill(conn: Connection, fd: int, fn: Callable[[], object]) -> bool:
    """In the child: ``outcome`` of ``fn()`` pickled into the file ``fd``, then its size and the
    seconds pickling took down ``conn``; whether ``fn`` succeeded."""
    packing = 0.0

    def dump(item: object) -> int:
        nonlocal packing
        t0 = time.perf_counter()
        size = _pickled_into(fd, item)
        packing = time.perf_counter() - t0
        return size

    size, ok = _outcome(fn, dump)
    send(conn, f"{size} {packing:.6f}".encode())
    return ok


def unspill(conn: Connection, fd: int, who: str) -> tuple[Any, float]:
    """In the parent: the value ``spill`` left in ``fd`` (its exception raised here, a child gone
    silent a RuntimeError), and the child's seconds of pickling."""
    size, packing = _message(conn, who).split()
    with mmap.mmap(fd, int(size), access=mmap.ACCESS_READ) as mm:
        return _value(mm), float(packing)  # no copy of the bytes: the pages are the child's writes


@dataclass
class Child:
    """A forked process and this process's (reading) end of its pipe."""

    proc: BaseProcess
    conn: Connection


def fork_child(target: Callable[..., None], *args: Any) -> Child:  # noqa: ANN401
    """``target(*args, conn)`` in a forked process (it sees this process's memory as it is: nothing
    is pickled on the way in); ``conn`` is the pipe's writing end, closed here once it is forked."""
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, theirs), daemon=True)
    proc.start()
    theirs.close()
    return Child(proc, mine)


def reap(child: Child, patience: float | None = None) -> None:
    """Close the pipe and wait for the child to end: ``patience`` seconds at most (None: as long as
    it takes), then it is killed."""
    child.conn.close()
    proc = child.proc
    proc.join(timeout=0 if proc.exitcode is not None else patience)
    if proc.is_alive():
        proc.kill()
        proc.join()
