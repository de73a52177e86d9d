"""Compact event orders (uint32 while a table streams, ``orders.OrderCodec``) change no result.

The reference everywhere is a table whose orders are int64 from its first batch (``ORDER32_MAX``
below every order: the widening guard taken at once, as before compact orders). Compact tables
widen mid-stream (a lowered limit), on batches out of capture order, through expiry, merges of
(pickled) partitions and a re-run after a merge, on generated traffic and on the corpus.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helix_audit.decode.interface import PacketColumns
from helix_audit.flows import orders as orders_mod
from helix_audit.flows.orders import FRAME_MASK, NONE, NONE32, ORDER_SHIFT, OrderCodec
from helix_audit.flows.state import NEV, SegmentArrays
from helix_audit.flows.table import FlowTable
from tests.conftest import CORPUS_FILES, needs_corpus

from .helpers import columns, tcp
from .test_expiry import EXPIRING, crafted, feed, finished
from .test_merge import FILES, merged_into

WIDE = -1  # no compact order fits: every table is int64 from its first batch

Result = tuple[pd.DataFrame, list[int]]


def _with_limit(monkeypatch: pytest.MonkeyPatch, limit: int, run: Callable[[], Result]) -> Result:
    with monkeypatch.context() as m:
        m.setattr(orders_mod, "ORDER32_MAX", limit)
        return run()


def _same(a: Result, b: Result) -> None:
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1] == b[1]


def test_live_orders_are_compact() -> None:
    st = SegmentArrays()
    assert st.ev.dtype == np.uint32 and st.ev.itemsize * NEV == 56 and st.ev_none == NONE32
    table = FlowTable(["x.pcap"])
    table.add(columns([tcp("10.0.0.1", 1024 + i, "10.0.0.2", 80, "S", seq=i) for i in range(3000)], "x.pcap"))
    assert table._st.ev.dtype == np.uint32  # noqa: SLF001 - grown, still compact
    table.finish()


@pytest.mark.parametrize("seed", range(5))
def test_codec_ranks_and_decodes_as_true_orders(seed: int) -> None:
    """Batches in capture order over several files (frames with gaps, a file's frames not from 1,
    files skipped): compact orders decode to the true ones (and back) and sort as they do, gap-free
    between files."""
    rnd = np.random.default_rng(seed)
    codec, compact, true = OrderCodec(), [], []
    fidx, frame = 0, int(rnd.integers(0, 1000))
    for _ in range(40):
        if rnd.random() < 0.2:
            fidx, frame = fidx + int(rnd.integers(1, 3)), int(rnd.integers(0, 10**6))
        frames = frame + np.cumsum(rnd.integers(0, 4, size=int(rnd.integers(1, 50))))
        rnd.shuffle(frames)  # any order inside a batch
        frame = int(frames.max()) + 1
        shift = codec.shift(fidx, int(frames.min()), int(frames.max()))
        assert shift is not None
        compact.append(shift + frames)
        true.append((fidx << ORDER_SHIFT) | frames)
    c, t = np.concatenate(compact), np.concatenate(true)
    assert c.min() >= 0 and c.max() == codec.top <= 40 * 50 * 4
    both = np.concatenate([c, [NONE32]]).astype(np.uint32)
    np.testing.assert_array_equal(codec.decode(both), np.concatenate([t, [NONE]]))
    np.testing.assert_array_equal(codec.encode(np.concatenate([t, [NONE]])), both.astype(np.int64))
    np.testing.assert_array_equal(np.argsort(c, kind="stable"), np.argsort(t, kind="stable"))


def test_codec_refuses_what_would_not_rank() -> None:
    codec = OrderCodec()
    assert codec.shift(1, 10, 20) == -10
    assert codec.shift(1, 15, 30) == -10  # the same run: back inside it is fine
    assert codec.shift(0, 1, 5) is None  # an earlier file
    assert codec.shift(1, 5, 9) is None  # before the run's first frame
    assert codec.shift(2, 1, 3) == 21 - 1  # the next file starts past the last compact order (20)
    assert codec.shift(1, 40, 41) is None  # back to a file left
    assert codec.shift(3, -1, 2) is None and codec.shift(3, 0, FRAME_MASK + 1) is None
    assert codec.shift(3, 0, orders_mod.ORDER32_MAX - 24) == 24  # up to the largest compact order
    assert codec.shift(3, 0, orders_mod.ORDER32_MAX - 23) is None  # one past it
    codec.wide = True
    assert codec.shift(0, 1, 5) == 0 << ORDER_SHIFT and codec.shift(7, 0, 1) == 7 << ORDER_SHIFT


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kw", [{}, *EXPIRING])
@pytest.mark.parametrize("limit", [0, 150, 600])
@pytest.mark.parametrize("one_file", [False, True])
def test_widening_mid_stream_equals_wide(
    monkeypatch: pytest.MonkeyPatch, seed: int, kw: dict, limit: int, one_file: bool
) -> None:
    """Past ``limit`` compact orders ``ev`` widens once, mid-stream (through expiry and revivals);
    below it, stored rows are read back as compact orders (one file: one run of the codec)."""
    work = [c for c in crafted(seed) if c.source == FILES[0] or not one_file]
    dtypes: list[np.dtype] = []

    def run() -> Result:
        table = FlowTable(FILES, **kw)
        ids = []
        for cols in work:
            ids.append(table.add(cols).flow_id.copy())
            dtypes.append(table._st.ev.dtype)  # noqa: SLF001
        return finished(table, ids)

    want = _with_limit(monkeypatch, WIDE, run)
    assert set(dtypes) == {np.dtype(np.int64)}
    dtypes.clear()
    _same(_with_limit(monkeypatch, limit, run), want)
    if limit == 600:  # crafted traffic is two files of 250 frames: compact to the end
        assert set(dtypes) == {np.dtype(np.uint32)}
    else:  # widened for good (at 150 after some batches)
        wide = dtypes.index(np.dtype(np.int64))
        assert set(dtypes[wide:]) == {np.dtype(np.int64)} and (limit == 0 or wide > 0)
    _same(run(), want)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kw", [{}, EXPIRING[0]])
def test_batches_out_of_capture_order_widen(monkeypatch: pytest.MonkeyPatch, seed: int, kw: dict) -> None:
    """The second file's batches first, then the first's (and a batch's frames backwards): the
    orders no longer rank in arrival order, the table widens, the result is the wide table's."""
    work = crafted(seed)
    later = [c for c in work if c.source == FILES[1]] + [c for c in work if c.source == FILES[0]]
    later = [_reversed(c) if i % 3 == 0 else c for i, c in enumerate(later)]

    def run() -> Result:
        table = FlowTable(FILES, **kw)
        return finished(table, feed(table, later))

    want = _with_limit(monkeypatch, WIDE, run)
    _same(run(), want)


def _reversed(cols: PacketColumns) -> PacketColumns:
    """The batch with its frame numbers in reverse (rows keep their place)."""
    cols.frame[:] = cols.frame[::-1].copy()
    return cols


def _partitioned(work: list[PacketColumns], cuts: list[int], kw: dict) -> Result:
    """Partitions on fresh (pickled) tables merged in order; the last range re-run on the running
    table after the merges (as ``parallel.Merged._rerun``)."""
    total, row_ids = None, []
    bounds = [0, *cuts, len(work)]
    for a, b in zip(bounds, bounds[1:-1], strict=False):
        table = FlowTable(FILES, **kw)
        ids = feed(table, work[a:b])
        total, mapped = merged_into(total, pickle.loads(pickle.dumps(table)), ids)
        row_ids.append(mapped)
    assert total is not None
    row_ids += feed(total, work[bounds[-2] :])
    return finished(total, row_ids)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kw", [{}, EXPIRING[1]])
@pytest.mark.parametrize("limit", [None, 50])
def test_partitions_merge_as_wide(
    monkeypatch: pytest.MonkeyPatch, seed: int, kw: dict, limit: int | None
) -> None:
    work = crafted(seed)
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(work)), 3))
    want = _with_limit(monkeypatch, WIDE, lambda: _partitioned(work, cuts, kw))
    got = (
        _partitioned(work, cuts, kw)
        if limit is None
        else _with_limit(monkeypatch, limit, lambda: _partitioned(work, cuts, kw))
    )
    _same(got, want)
    serial = FlowTable(FILES, **kw)
    _same(finished(serial, feed(serial, work)), want)


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_compact_and_widened_equal_wide(
    monkeypatch: pytest.MonkeyPatch, corpus: Path, name: str
) -> None:
    from .test_corpus_merge import decoded, rows

    path = str(corpus / name)
    batches = decoded(corpus / name)
    small = [rows(c, a, min(len(c), a + 50)) for c in batches for a in range(0, len(c), 50)]

    def serial(work: list[PacketColumns]) -> Result:
        table = FlowTable([path])
        return finished(table, feed(table, work))

    want = _with_limit(monkeypatch, WIDE, lambda: serial(small))
    _same(serial(small), want)
    _same(_with_limit(monkeypatch, 120, lambda: serial(small)), want)  # widened mid-file
    half = len(small) // 2
    exp = {"live_rows": 8, "timeouts_ns": (0, 0, 0)}

    def merged() -> Result:
        first, second = FlowTable([path], **exp), FlowTable([path], **exp)
        ids = feed(first, small[:half])
        later = feed(second, small[half:])
        remap = first.merge(pickle.loads(pickle.dumps(second)))
        pad = np.append(remap, -1)  # row -1 (no flow) stays -1
        return finished(first, ids + [pad[x] for x in later])

    _same(merged(), want)


@pytest.mark.parametrize("kw", [{}, EXPIRING[0]])
def test_files_noted_only_once_a_second_file_comes(kw: dict) -> None:
    """``seg_file`` is not kept while a table reads one file (0 B a segment), then kept: the same
    frame as a table that listed both files from the start; an empty table merged first too."""
    work = crafted(3)
    one = [c for c in work if c.source == FILES[0]]
    table = FlowTable(FILES, **kw)
    ids = feed(table, one)
    assert table._st.one_file and table._st.seg_file.shape == (0,)  # noqa: SLF001
    ids += feed(table, work[len(one) :])
    assert not table._st.one_file and table._st.seg_file.shape[0] >= table._st.nlive  # noqa: SLF001
    got = finished(table, ids)
    empty = FlowTable(FILES, **kw)
    empty.merge(FlowTable(FILES))  # no batch yet in either: files spelled out on no segment
    _same(finished(empty, feed(empty, work)), got)
    assert got[0].files.str.contains("|", regex=False).any()


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kw", [{}, *EXPIRING])
def test_live_sums_widen_past_2_31_bytes(seed: int, kw: dict) -> None:
    """The live packet and byte sums are int32 until the table's rows or bytes could pass 2^31 in
    one segment, then int64 (mid-stream, through expiry, revival and merge): the frame is the same."""
    work = crafted(seed)
    plain, wide = FlowTable(FILES, **kw), FlowTable(FILES, **kw)
    half = len(work) // 2
    want = finished(plain, feed(plain, work))
    ids = feed(wide, work[:half])
    assert wide._st.sums.dtype == np.int32  # noqa: SLF001
    wide._bytes = (1 << 31) - 5  # noqa: SLF001 - as if that many bytes had been added
    ids += feed(wide, work[half:])
    assert wide._st.sums.dtype == np.int64  # noqa: SLF001
    got = finished(wide, ids)
    _same(got, want)
    for col in ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes", "orig_bytes", "resp_bytes"):
        assert got[0][col].dtype == np.int64, col
    first, second = FlowTable(FILES, **kw), FlowTable(FILES, **kw)
    ids = feed(first, work[:half])
    later = feed(second, work[half:])
    second._bytes = 1 << 31  # noqa: SLF001
    remap = first.merge(second)
    assert first._st.sums.dtype == np.int64  # noqa: SLF001
    pad = np.append(remap, -1)
    _same(finished(first, ids + [pad[x] for x in later]), want)


def test_byte_bound_cannot_wrap() -> None:
    from helix_audit.flows.table import _total

    big = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, -5, 7], dtype=np.int64)
    assert _total(big) == 2 * (1 << 32) + 12 and _total(np.zeros(0, dtype=np.int64)) == 0
