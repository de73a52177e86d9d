"""The per-batch key kernels (:mod:`helix_audit.protocols.keyed`) equal the numpy expressions they
replace, on random keys (negative, out of range, repeated, wide and narrow ranges)."""

from __future__ import annotations

import numpy as np
import pytest

from helix_audit.protocols.keyed import direction_keys, first_index, leading, mask_at, ranks, unique_first


@pytest.mark.parametrize("seed", range(5))
def test_kernels_equal_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    wide = seed % 2 == 0
    flow_id = rng.integers(-1, 10**7 if wide else 500, n).astype(np.int64)
    from_a = rng.random(n) < 0.5
    keys = direction_keys(flow_id, from_a)
    assert np.array_equal(keys, flow_id * 2 + from_a.astype(np.int64))
    mask = rng.random(int(rng.integers(1, 1200))) < 0.3
    inside = (keys >= 0) & (keys < mask.size)
    want = np.zeros(n, bool)
    want[inside] = mask[keys[inside]]
    assert np.array_equal(mask_at(mask, keys), want)
    rows = np.flatnonzero(rng.random(n) < 0.6)
    uniq, at = first_index(keys, rows)
    ref_uniq, ref_at = np.unique(keys[rows], return_index=True)
    assert np.array_equal(uniq, ref_uniq) and np.array_equal(at, ref_at)


def test_empty_and_odd_types() -> None:
    empty = np.zeros(0, np.int64)
    assert first_index(empty, empty)[0].size == 0
    assert mask_at(np.zeros(4, bool), empty).size == 0
    assert np.array_equal(mask_at(np.array([True, False]), np.array([[0, 1], [5, -1]])),
                          np.array([[True, False], [False, False]]))  # fmt: skip
    assert np.array_equal(direction_keys(np.array([3, 4]), np.array([1, 0])), np.array([7, 8]))


@pytest.mark.parametrize("seed", range(5))
def test_unique_first_and_leading_equal_numpy(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 3000))
    groups = rng.integers(0, 10**7 if seed % 2 else 300, n).astype(np.int64)
    uniq, at = unique_first(groups)
    ref = np.unique(groups, return_index=True)
    assert np.array_equal(uniq, ref[0]) and np.array_equal(at, ref[1])
    syn_only = rng.random(n) < 0.7
    _, inv = np.unique(groups, return_inverse=True)
    first_other = np.full(inv.max() + 1, n, dtype=np.int64)
    np.minimum.at(first_other, inv[~syn_only], np.flatnonzero(~syn_only))
    want = syn_only & (np.arange(n) < first_other[inv])
    got = leading(groups, syn_only)
    if seed % 2:
        assert got is None  # too wide a range: the caller sorts
    else:
        assert got is not None and np.array_equal(got, want)


@pytest.mark.parametrize("seed", range(8))
def test_budget_and_continuations_equal_sorting(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The counting passes of ``selection`` give the rows, ranks and continuations of the sorting
    path (rows in batch order instead of key order: their users sort or take them as sets)."""
    from types import SimpleNamespace

    from helix_audit.protocols import selection

    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(1, 4000))
    keys = rng.integers(0, 10**7 if seed % 4 == 3 else 40 + 300 * seed, n).astype(np.int64)
    pay_len = rng.choice([1, 60, 1460, 9000, 30000], n).astype(np.int32)
    cols = SimpleNamespace(pay_len=pay_len)
    rows = np.flatnonzero(rng.random(n) < 0.8)
    heads = rows[rng.random(rows.size) < 0.3]
    limit = int(rng.choice([1000, 64 * 1024]))
    fast = selection._within_budget(cols, keys, rows, limit)  # type: ignore[arg-type]  # noqa: SLF001
    fast_next = selection._continuations(keys, rows, heads)  # noqa: SLF001
    monkeypatch.setattr(selection, "ranks", lambda *a: None)
    monkeypatch.setattr(selection, "next_rows", lambda *a: None)
    slow = selection._within_budget(cols, keys, rows, limit)  # type: ignore[arg-type]  # noqa: SLF001
    slow_next = selection._continuations(keys, rows, heads)  # noqa: SLF001
    assert np.array_equal(fast[:, np.argsort(fast[0])], slow[:, np.argsort(slow[0])])
    assert sorted(fast_next.tolist()) == sorted(slow_next.tolist())
    assert (fast_next.size > 0) == (slow_next.size > 0)
    narrow = seed % 4 != 3  # else too wide a range of keys: the sorting path ran both times
    assert (ranks(keys, rows, pay_len, 256, limit) is not None) == narrow


@pytest.mark.parametrize("seed", range(6))
def test_row_masks_equal_numpy(seed: int) -> None:
    """``selection.row_masks``: the one-pass kernel gives the numpy expressions' masks."""
    from types import SimpleNamespace

    from helix_audit.protocols.selection import row_masks

    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(0, 5000))
    ports = np.array([53, 5353, 5355, 443, 80, 8080, 0, 65535], np.uint16)
    pick = lambda values, dtype: rng.choice(np.array(values, dtype), n)  # noqa: E731
    cols = SimpleNamespace(
        status=pick([0, 0, 0, 1, 5], np.uint8), proto=pick([6, 17, 1, 6, 17], np.uint8),
        pay_len=pick([0, 0, 1, 100], np.int32), sport=rng.choice(ports, n), dport=rng.choice(ports, n),
        tcp_flags=rng.integers(0, 256, n).astype(np.uint8),
    )  # fmt: skip
    flow_id = rng.integers(-1, 400, n).astype(np.int64)
    pf = SimpleNamespace(flow_id=flow_id)
    keys = direction_keys(flow_id, rng.random(n) < 0.5)
    on_port = np.zeros(1 << 16, dtype=bool)
    on_port[[53, 5353, 5355]] = True
    done, gone = rng.random(int(rng.integers(1, 900))) < 0.4, rng.random(int(rng.integers(1, 900))) < 0.2
    for g in (gone, None):
        fast = row_masks(cols, pf, keys, on_port, done, g)  # type: ignore[arg-type]
        slow = row_masks(SimpleNamespace(**{**vars(cols), "sport": cols.sport.astype(np.int64)}), pf, keys,
                         on_port, done, g)  # type: ignore[arg-type]  # fmt: skip
        assert len(fast) == len(slow) == 5
        for a, b in zip(fast, slow, strict=True):
            assert a.dtype == np.bool_ and np.array_equal(a, b)
        assert n < 100 or all(m.any() for m in fast)
