"""A forked child's outcome through an in-memory file (``forkpipe.spill``/``unspill``), and the
partition shares of ``--jobs`` on one file (``localjobs.shares``)."""

from __future__ import annotations

import os
from multiprocessing.connection import Connection

import numpy as np
import pytest

from helix_audit import localjobs
from helix_audit.forkpipe import fork_child, reap, spill, spill_file, unspill


def _spilling(what: str, fd: int, conn: Connection) -> None:
    if what == "silent":
        os._exit(0)

    def value() -> object:
        if what == "error":
            raise ValueError("child broke")
        if what == "unpicklable":
            return lambda: None
        return {"rows": np.arange(100_000), "text": ["x" * i for i in range(300)]}

    spill(conn, fd, value)
    conn.close()


@pytest.mark.parametrize("what", ["value", "error", "unpicklable", "silent"])
def test_spilled_outcome(what: str) -> None:
    fd = spill_file()
    child = fork_child(_spilling, what, fd)
    try:
        if what == "value":
            got, packing = unspill(child.conn, fd, "test child")
            assert np.array_equal(got["rows"], np.arange(100_000)) and got["text"][299] == "x" * 299
            assert packing >= 0
        elif what == "error":
            with pytest.raises(ValueError, match="child broke"):
                unspill(child.conn, fd, "test child")
        elif what == "unpicklable":
            with pytest.raises(Exception, match="pickle"):
                unspill(child.conn, fd, "test child")
        else:
            with pytest.raises(RuntimeError, match="test child ended without a result"):
                unspill(child.conn, fd, "test child")
    finally:
        os.close(fd)
        reap(child, 5)


@pytest.mark.parametrize("jobs", [2, 3, 4, 8, 16])
def test_shares_end_together(jobs: int) -> None:
    """Each worker's result is due when the parent has merged the ones before it."""
    shares = localjobs.shares(jobs)
    assert len(shares) == jobs and abs(sum(shares) - 1) < 1e-12 and min(shares) > 0
    at, due = shares[0], shares[0]
    for s in shares[1:]:
        assert localjobs.COUNT_COST * at + localjobs.WORKER_COST * s == pytest.approx(due)
        at += s
        due += localjobs.MERGE_COST * s
    if jobs == 2:
        assert 0.55 < shares[0] < 0.65
