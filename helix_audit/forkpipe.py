"""A forked process's outcome through a pipe: its value, or its exception raised in the parent.

``--jobs`` workers (``localjobs``) and the bundle's evidence process (``report.bundle``) both run a
function in a forked child (``fork_child``), hand back what it returned or raised the same way,
and are reaped the same way (``reap``)."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from .gcpause import paused_gc


def outcome(fn: Callable[[], object]) -> tuple[bytes, bool]:
    """``fn()`` pickled as ("ok", value), or what it raised as ("err", exception) (its repr in a
    RuntimeError when the exception does not pickle); and whether it succeeded."""
    try:
        return pickle.dumps(("ok", fn()), protocol=pickle.HIGHEST_PROTOCOL), True
    except BaseException as exc:  # noqa: BLE001  the parent raises it
        try:
            return pickle.dumps(("err", exc), protocol=pickle.HIGHEST_PROTOCOL), False
        except Exception:  # noqa: BLE001
            return pickle.dumps(("err", RuntimeError(repr(exc))), protocol=pickle.HIGHEST_PROTOCOL), False


def send(conn: Connection, blob: bytes) -> None:
    """Send, or nothing when the parent has stopped listening (it fell back or failed, and says
    so): the child then just ends, without a traceback on the user's terminal."""
    with contextlib.suppress(OSError):  # BrokenPipeError and friends
        conn.send_bytes(blob)


def receive(conn: Connection, who: str) -> Any:  # noqa: ANN401
    """The child's value; its exception is raised here, and a child gone silent is a RuntimeError."""
    try:
        blob = conn.recv_bytes()
    except EOFError:
        raise RuntimeError(f"{who} ended without a result") from None
    with paused_gc():  # a worker's state is ~10^5 objects and no cycles
        kind, value = pickle.loads(blob)
    if kind == "err":
        raise value
    return value


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
