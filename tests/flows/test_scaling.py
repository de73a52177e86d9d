"""What keeps the flow stage linear in flows, asserted structurally (never by timing): distinct values
by sorting (not numpy's hash path), expiry passes that move rows out a block at a time, and a finish
that reads the segment store twice whatever its size, folding segments straight into flow rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.flows import expiry as expiry_mod
from helix_audit.flows.expiry import SegmentStore, join_view
from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp
from .test_expiry import EXPIRING, crafted, feed, finished
from .test_merge import FILES


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kw", EXPIRING)
def test_expiry_in_small_blocks_equals_plain(monkeypatch: pytest.MonkeyPatch, seed: int, kw: dict) -> None:
    """An expiry pass moves rows out ``MOVE_ROWS`` at a time and the store is read back
    ``BLOCK_ROWS`` at a time (here 1 or 2: many blocks per pass and per read): ids and the frame
    are those of a table that never expires."""
    monkeypatch.setattr(expiry_mod, "BLOCK_ROWS", 1 + seed % 2)
    monkeypatch.setattr(expiry_mod, "MOVE_ROWS", 2 - seed % 2)
    work = crafted(seed)
    plain, exp = FlowTable(FILES), FlowTable(FILES, **kw)
    plain_ids, exp_ids = feed(plain, work), feed(exp, work)
    for a, b in zip(plain_ids, exp_ids, strict=True):
        np.testing.assert_array_equal(a, b)
    assert exp._store.rows > 1  # noqa: SLF001 - several blocks really went out
    frame_a, ids_a = finished(plain, plain_ids)
    frame_b, ids_b = finished(exp, exp_ids)
    pd.testing.assert_frame_equal(frame_a, frame_b)
    assert ids_a == ids_b


def _scan(n: int, **kw: int) -> FlowTable:
    """``n`` one-SYN flows, 0.1 s apart, in batches of 50 (``kw``: the table's settings)."""
    table = FlowTable(["x.pcap"], **kw)
    for lo in range(0, n, 50):
        pkts = [
            tcp("10.0.0.1", 40000 + i, f"10.1.{i // 250}.{i % 250}", 1 + i % 1000, "S", seq=i, ts=0.1 * i)
            for i in range(lo, min(n, lo + 50))
        ]
        table.add(columns(pkts, "x.pcap", 1 + lo))
    return table


@pytest.mark.parametrize("spill_bytes", [0, 1 << 30])
def test_finish_reads_the_store_twice(monkeypatch: pytest.MonkeyPatch, spill_bytes: int) -> None:
    """Finish reads the stored segments once to group them into flows and once to fold them into
    flow rows, however many there are (``materialize`` read them four times into a second copy of
    every aggregate); the result is the frame of a table that never expired."""
    reads = []
    blocks = SegmentStore.blocks

    def counted(self: SegmentStore):  # noqa: ANN202
        reads.append(self.rows)
        return blocks(self)

    monkeypatch.setattr(SegmentStore, "blocks", counted)
    for n in (300, 1200):
        reads.clear()
        table = _scan(n, live_rows=64, spill_bytes=spill_bytes)  # a pass every 64 live rows
        stored = table._store.rows  # noqa: SLF001
        assert stored > n // 2
        frame = table.finish()[0]
        assert reads == [stored, stored]
        plain = _scan(n, live_rows=1 << 30)
        pd.testing.assert_frame_equal(frame, plain.finish()[0])
        assert (frame.history == "S").all() and frame.flow_id.tolist() == list(range(n))


def test_join_view_shares_live_arrays_when_nothing_expired() -> None:
    """Nothing ever moved out: finish groups segments on the live arrays themselves (no copy)."""
    table = FlowTable(["x.pcap"])
    table.add(columns([tcp("10.0.0.1", 40000, "10.0.0.2", 80, "S", seq=1, ts=0.0)], "x.pcap"))
    st = table._st  # noqa: SLF001
    tup, ev, val, _ = join_view(st, table._store)  # noqa: SLF001
    assert (
        np.shares_memory(tup, st.seg_tup) and np.shares_memory(ev, st.ev) and np.shares_memory(val, st.ev_val)
    )


@pytest.mark.parametrize("seed", range(4))
def test_stream_index_equals_groupby_cumcount(seed: int) -> None:
    from helix_audit.flows.finish import _stream_index

    rng = np.random.default_rng(seed)
    n = 300
    first_file = rng.integers(0, 1 if seed == 0 else 4, n)
    mask = rng.random(n) < 0.6
    want = pd.array(np.zeros(n, dtype=np.int64), dtype="Int64")
    want[:] = pd.NA
    ordered = np.flatnonzero(mask)
    want[ordered] = pd.Series(first_file[ordered]).groupby(first_file[ordered]).cumcount().to_numpy()
    got = _stream_index(first_file, mask)
    pd.testing.assert_extension_array_equal(got, want)
    assert got.dtype == want.dtype
