"""``first_frame`` and ``last_frame`` are int32 while every frame number fits, int64 from the first
that does not (the same values either way), on the scan's fast path and on folded rows; the folded
``last`` rows' int64 row is cut once the frames are out of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.flows.finish import _last_columns
from helix_audit.flows.orders import FRAME_MASK, ORDER_SHIFT
from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp
from .test_expiry import EXPIRING, feed, finished

I32 = (1 << 31) - 1


def _last(frames: np.ndarray, rnd: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A folded ``last`` ((2, n), its own array): orders with file bits, then int64 ns."""
    n = len(frames)
    last = np.empty((2, n), dtype=np.int64)
    last[0] = (rnd.integers(0, 3, size=n) << ORDER_SHIFT) | frames
    last[1] = rnd.integers(0, 1 << 62, size=n)
    return last, last.copy()


@pytest.mark.parametrize("top", [I32, I32 + 1, FRAME_MASK])
@pytest.mark.parametrize("extra_ref", [False, True])
@pytest.mark.parametrize("n", [0, 1, 1000, (1 << 16) + 3])
def test_last_columns_equal_reference(top: int, extra_ref: bool, n: int) -> None:
    rnd = np.random.default_rng(n + top)
    frames = rnd.integers(1, 1 << 20, size=n)
    if n:
        frames[-1] = top  # the largest frame at the end of its range, or past int32
    last, want = _last(frames, rnd)
    none = np.flatnonzero(rnd.random(n) < 0.01)
    icmp_frames = rnd.integers(1, I32 + 1, size=len(none))
    other = last if extra_ref else None  # someone else holds it: same values, no cut
    held = [last]
    del last
    lf, last_ts = _last_columns(held, none, icmp_frames)
    assert not held
    want_lf = want[0] & FRAME_MASK
    want_lf[none] = icmp_frames
    fits = n == 0 or int(want_lf.max()) <= I32
    assert lf.dtype == (np.int32 if fits else np.int64)
    assert lf.tolist() == want_lf.tolist()
    assert last_ts.dtype == np.float64 and np.array_equal(last_ts, want[1] / 1e9)
    if fits and not extra_ref and n:
        assert last_ts.base is not None and last_ts.base.shape == (1, n)  # row 1 cut
    if other is not None:
        assert other.shape == (2, n)


def _syns(first_frame: int, n: int = 300) -> list:
    pkts = [tcp("10.0.0.1", 40000, "10.0.0.2", p, "S", seq=p, ts=0.001 * p) for p in range(1, n + 1)]
    pkts += [tcp("10.0.0.2", 7, "10.0.0.1", 40000, "SA", seq=1, ts=9.0)]
    pkts += [tcp("10.0.0.1", 40000, "10.0.0.2", 7, "A", seq=2, ts=9.5)]
    cut = range(0, len(pkts), 64)
    return [columns(pkts[i : i + 64], source="x.pcap", first_frame=first_frame + i) for i in cut]


@pytest.mark.parametrize("kw", [{}, *EXPIRING])
@pytest.mark.parametrize("start", [1, I32 - 302, I32 - 100, I32 + 1])
def test_frame_columns_narrow_until_past_int32(kw: dict, start: int) -> None:
    """Frames ``start``..: int32 columns while the last frame (``start`` + 301) fits, else int64;
    the values are the frames either way, and every other column is as with frames from 1."""
    work = _syns(start)
    table, base = FlowTable(["x.pcap"], **kw), FlowTable(["x.pcap"], **kw)
    frame, ids = finished(table, feed(table, work))
    ref, ref_ids = finished(base, feed(base, _syns(1)))
    want = np.int32 if start + 301 <= I32 else np.int64
    assert frame.first_frame.dtype == want and frame.last_frame.dtype == want
    assert (frame.first_frame.astype(np.int64) == ref.first_frame.astype(np.int64) + start - 1).all()
    assert (frame.last_frame.astype(np.int64) == ref.last_frame.astype(np.int64) + start - 1).all()
    assert int(frame.last_frame.max()) == start + 301
    other = [c for c in frame.columns if c not in ("first_frame", "last_frame", "key_frames")]
    pd.testing.assert_frame_equal(frame[other], ref[other])
    assert ids == ref_ids
