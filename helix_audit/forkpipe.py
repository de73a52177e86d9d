"""A forked process's outcome through a pipe: its value, or its exception raised in the parent.

``--jobs`` workers (``localjobs``) and the bundle's evidence process (``report.bundle``) both run a
function in a forked child and hand back what it returned or raised, the same way."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
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
