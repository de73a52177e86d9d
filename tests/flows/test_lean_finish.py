"""Finish's in-place steps (sums made into the frame's columns, event columns cut as the key frames
are rendered, live arrays moved into their own layout, address texts by search) give what the plain
row-sized computations give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.decode.interface import addr_to_str
from helix_audit.flows import text as text_mod
from helix_audit.flows.expiry import _by_column, _first_rows
from helix_audit.flows.finish import (
    CHUNK_ROWS,
    KEY_EVENTS,
    IcmpErrors,
    _key_events,
    _key_frames,
    _stream_index,
)
from helix_audit.flows.orders import NONE, ORDER_SHIFT
from helix_audit.flows.orient import _SUM_COLUMNS, _sum_columns
from helix_audit.flows.state import NEV, NSUM, NWIDE
from helix_audit.flows.text import host_columns

SIZES = [0, 1, 5, CHUNK_ROWS + 7]


@pytest.mark.parametrize("n", SIZES)
def test_sum_columns_in_place_equal_where(n: int) -> None:
    rnd = np.random.default_rng(n)
    sums = rnd.integers(0, 1 << 40, size=(NSUM, n), dtype=np.int64)
    o = rnd.integers(0, 2, size=n).astype(np.int64)
    want = {name: np.where(o == 0, sums[b + d], sums[b + 1 - d]) for name, b, d in _SUM_COLUMNS}
    got = _sum_columns(sums, o)
    assert sums.shape == (len(_SUM_COLUMNS), n)  # the two rows never read cut off
    for name, col in got.items():
        assert np.array_equal(col, want[name]), name
        assert n == 0 or np.shares_memory(col, sums)


def _orders(rnd: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Event orders (two files), a third of them absent."""
    v = (rnd.integers(0, 2, size=shape) << ORDER_SHIFT) | rnd.integers(1, 5000, size=shape)
    return np.where(rnd.random(shape) < 0.33, NONE, v).astype(np.int64)


@pytest.mark.parametrize("n", SIZES)
def test_key_frames_of_cut_events_equal_a_view(n: int) -> None:
    """Own events cut to the key columns and away chunk by chunk; a view of the same columns
    (never cut) gives the same texts, ICMP error frames and other-file prefixes included."""
    rnd = np.random.default_rng(7 + n)
    ev = _orders(rnd, (n, NEV))
    first_file = rnd.integers(0, 2, size=n).astype(np.int64)
    k = min(n, 40)
    sid = np.sort(rnd.integers(0, max(n, 1), size=k)).astype(np.int64)
    zeros = np.zeros(k, dtype=np.int64)
    err = IcmpErrors(sid, _orders(rnd, (k,)) % NONE, zeros, zeros, zeros, zeros, zeros, zeros, zeros > 0)
    files = ["a.pcap", "b.pcap"]
    view = np.ascontiguousarray(ev[:, KEY_EVENTS])[:]  # a view: not an array of its own, never cut
    assert not view.flags.owndata
    want = _key_frames(view, err, first_file, files)
    assert view.shape == (n, len(KEY_EVENTS))
    kev = _key_events(ev)
    assert np.array_equal(kev, view)
    got = _key_frames(kev, err, first_file, files)
    assert kev.shape[0] == 0 or n == 0  # cut as its texts came
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("n", [0, 3, 200_001])
@pytest.mark.parametrize("own", [True, False])
def test_live_arrays_moved_equal_their_rows(n: int, own: bool) -> None:
    rnd = np.random.default_rng(n)
    base = rnd.integers(-5, 1 << 50, size=(n + 11, NSUM), dtype=np.int64)
    a = base.copy() if own else base[:]  # own: cut as it is read; a view: copied
    assert np.array_equal(_by_column(a, n), base[:n].T)
    small = base.copy() if own else base[:]
    small[:, NWIDE:] %= 1 << 31  # counters that fit int32, up to its top
    small[0, NWIDE:] = (1 << 31) - 1
    want = small[:n, NWIDE:].T.copy()
    rest = _by_column(small[:, NWIDE:].copy() if own else small[:, NWIDE:], n, np.int32)
    assert rest.dtype == np.int32 and np.array_equal(rest, want)
    b = base.copy() if own else base[:]
    rows = _first_rows(b, n)
    assert np.array_equal(rows, base[:n]) and rows.flags.owndata


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("search_max", [0, text_mod.SEARCH_MAX])
def test_host_columns_equal_per_row_texts(monkeypatch: pytest.MonkeyPatch, n: int, search_max: int) -> None:
    """IPv4-mapped (few distinct, repeated across chunks) and IPv6 addresses, either orientation;
    each row's address searched for, or a chunk's distinct ones (many addresses)."""
    monkeypatch.setattr(text_mod, "SEARCH_MAX", search_max)
    rnd = np.random.default_rng(3 + n)
    ku = np.zeros((n, 4), dtype=np.uint64)
    for side in (0, 2):
        v4 = (0xFFFF << 32) | rnd.integers(0, 300, size=n).astype(np.uint64) * np.uint64(0x01010101)
        v6_hi = np.uint64(0x20010DB8) << np.uint64(32) | rnd.integers(0, 4, size=n).astype(np.uint64)
        is6 = rnd.random(n) < 0.2
        ku[:, side] = np.where(is6, v6_hi, 0)
        ku[:, side + 1] = np.where(is6, rnd.integers(0, 1 << 62, size=n).astype(np.uint64), v4)
    o = rnd.integers(0, 2, size=n).astype(np.int64)
    orig, resp = host_columns(ku, o)
    a = [addr_to_str(h, lo) for h, lo in ku[:, :2].tolist()]
    b = [addr_to_str(h, lo) for h, lo in ku[:, 2:].tolist()]
    assert orig.tolist() == [x if d == 0 else y for x, y, d in zip(a, b, o.tolist(), strict=True)]
    assert resp.tolist() == [y if d == 0 else x for x, y, d in zip(a, b, o.tolist(), strict=True)]
    if n > CHUNK_ROWS:  # each distinct IPv4 address one str across chunks and columns
        v4_rows = (ku[:, 0] == 0) & (ku[:, 2] == 0)
        assert len({id(s) for s in orig[v4_rows]} | {id(s) for s in resp[v4_rows]}) <= 300


def _stream_reference(first_file: np.ndarray, mask: np.ndarray) -> list[object]:
    seen: dict[int, int] = {}
    out: list[object] = []
    for f, m in zip(first_file.tolist(), mask.tolist(), strict=True):
        if m:
            out.append(seen.get(f, 0))
            seen[f] = seen.get(f, 0) + 1
        else:
            out.append(pd.NA)
    return out


@pytest.mark.parametrize("files", [1, 3])
@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_stream_index_equals_per_file_counts(files: int, share: float) -> None:
    rnd = np.random.default_rng(files)
    first_file = np.sort(rnd.integers(0, files, size=1000)).astype(np.int64)
    first_file = first_file[rnd.permutation(1000)] if files > 1 else first_file
    mask = rnd.random(1000) < share
    got = _stream_index(first_file, mask)
    assert list(got.astype(object)) == _stream_reference(first_file, mask)
    assert got.dtype == pd.Int64Dtype()
