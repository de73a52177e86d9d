"""The finish aggregates kept lean change no result: the packed key unpacked in ``build_frame``, the
SYN/FIN/RST counters folded apart as int32 (int64 once 2^31 rows were counted, whatever they then
hold), the time columns made in place of the folded rows or copied from the live arrays' views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.flows import expiry as expiry_mod
from helix_audit.flows.finish import _to_seconds
from helix_audit.flows.orient import _SUM_COLUMNS, _sum_columns
from helix_audit.flows.state import NSUM, NWIDE
from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp
from .test_expiry import ALWAYS, EXPIRING, crafted, feed, finished
from .test_merge import FILES

SIZES = [0, 1, 5, (1 << 16) + 7]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("cdt", [np.int32, np.int64])
@pytest.mark.parametrize("big", [False, True])
def test_split_sum_columns_equal_where(n: int, cdt: type, big: bool) -> None:
    rnd = np.random.default_rng(n)
    full = rnd.integers(0, 1 << 40, size=(NSUM, n), dtype=np.int64)
    full[NWIDE:] %= 1 << 31
    if n:
        full[NWIDE:, 0] = (1 << 31) - 1  # the top of int32 in every counter
    if big and cdt is np.int64 and n:
        full[-1, -1] = 1 << 31  # one past it: the counters stay int64
    o = rnd.integers(0, 2, size=n).astype(np.int8)
    want = {name: np.where(o == 0, full[b + d], full[b + 1 - d]) for name, b, d in _SUM_COLUMNS}
    sums, counts = full[:NWIDE].copy(), full[NWIDE:].astype(cdt)
    got = _sum_columns(sums, o, counts=counts)
    assert list(got) == [name for name, _, _ in _SUM_COLUMNS]
    wide = big and cdt is np.int64 and n > 0
    for i, (name, col) in enumerate(got.items()):
        assert np.array_equal(col, want[name]), name
        assert col.dtype == (np.int64 if i < NWIDE or wide else np.int32), name
        assert i >= NWIDE or n == 0 or np.shares_memory(col, sums), name


def test_to_seconds_in_place_equals_division() -> None:
    ns = np.array([0, 1, 999_999_999, 1_700_000_000_123_456_789, 2**62, 2**53 + 1] * 30_000, dtype=np.int64)
    want = ns / 1e9
    _to_seconds(ns)
    assert np.array_equal(ns.view(np.float64), want)


def _scan(n: int) -> list:
    """One SYN per port (each a flow of its own: finish's fast path), with a few answers."""
    pkts = [tcp("10.0.0.1", 40000, "10.0.0.2", p, "S", seq=p, ts=0.001 * p) for p in range(1, n + 1)]
    pkts += [tcp("10.0.0.2", 7, "10.0.0.1", 40000, "SA", seq=1, ts=9.0)]
    return [columns(pkts[i : i + 64], source="x.pcap", first_frame=i + 1) for i in range(0, len(pkts), 64)]


@pytest.mark.parametrize("kw", EXPIRING)
def test_scan_fast_path_equals_folded_rows(kw: dict) -> None:
    work = _scan(300)
    plain, exp = FlowTable(["x.pcap"]), FlowTable(["x.pcap"], **kw)
    a, b = finished(plain, feed(plain, work)), finished(exp, feed(exp, work))
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1] == b[1]


def folded_dtypes(monkeypatch: pytest.MonkeyPatch, name: str) -> list[np.dtype]:
    """The dtype of ``fold_flows``' ``name`` array at each finish from now on (a spy on the call)."""
    seen: list[np.dtype] = []
    fold = expiry_mod.fold_flows

    def spy(*args: object, **kwargs: object) -> dict:
        out = fold(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(out[name].dtype)
        return out

    monkeypatch.setattr("helix_audit.flows.table.fold_flows", spy)
    return seen


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kw", [{}, {"live_rows": 1, "timeouts_ns": ALWAYS, "spill_bytes": 0}])
def test_counters_folded_wide_past_2_31_rows(monkeypatch: pytest.MonkeyPatch, seed: int, kw: dict) -> None:
    """A table that counted 2^31 rows folds the counters as int64: same frame, same dtypes."""
    work = crafted(seed)
    seen = folded_dtypes(monkeypatch, "counts")
    small, wide = FlowTable(FILES, **kw), FlowTable(FILES, **kw)
    a_ids, b_ids = feed(small, work), feed(wide, work)
    wide._rows = 1 << 31  # noqa: SLF001 - as if that many rows had been added
    a, b = finished(small, a_ids), finished(wide, b_ids)
    assert seen == [np.dtype(np.int32), np.dtype(np.int64)]
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1] == b[1]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kw", [{}, *EXPIRING])
def test_live_counters_widen_past_2_31_rows(seed: int, kw: dict) -> None:
    """The live SYN/FIN/RST counters (``cnt``) are int32 until 2^31 rows could have been counted, then
    int64 (mid-stream, and through expiry, revival and merge): the frame is the same."""
    work = crafted(seed)
    plain, wide = FlowTable(FILES, **kw), FlowTable(FILES, **kw)
    half = len(work) // 2
    a_ids = feed(plain, work)
    b_ids = feed(wide, work[:half])
    assert wide._st.cnt.dtype == np.int32  # noqa: SLF001
    wide._rows = (1 << 31) - 3  # noqa: SLF001 - as if that many rows had been added
    b_ids += feed(wide, work[half:])
    assert wide._st.cnt.dtype == np.int64  # noqa: SLF001
    a, b = finished(plain, a_ids), finished(wide, b_ids)
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1] == b[1]


def test_merge_widens_the_live_counters() -> None:
    """A merge whose parts together counted 2^31 rows folds into int64 counters."""
    work = crafted(5)
    half = len(work) // 2
    plain = FlowTable(FILES)
    plain_ids = feed(plain, work)
    first, second = FlowTable(FILES), FlowTable(FILES)
    ids = feed(first, work[:half])
    later = feed(second, work[half:])
    second._rows = 1 << 31  # noqa: SLF001
    second._st.widen_counters(second._rows)  # noqa: SLF001
    remap = first.merge(second)
    assert first._st.cnt.dtype == np.int64  # noqa: SLF001
    ids += [np.where(x >= 0, remap[np.maximum(x, 0)], -1) for x in later]
    a, b = finished(plain, plain_ids), finished(first, ids)
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1] == b[1]
