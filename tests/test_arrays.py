"""``arrays.sorted_unique``: ``np.unique`` by sorting, copied or in place; ``arrays.swap_where``."""

from __future__ import annotations

import numpy as np
import pytest

from helix_audit import arrays
from helix_audit.arrays import sorted_unique, swap_where


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("in_place", [False, True])
def test_equals_numpy(seed: int, in_place: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrays, "_STEP", 7)  # many compaction blocks
    rng = np.random.default_rng(seed)
    for n in (0, 1, 2, 7, 8, 1000):
        values = rng.integers(-(2**40), 2**40, n) if seed else rng.integers(0, 5, n)
        want = np.unique(values)
        got = sorted_unique(values.copy() if in_place else values, in_place=in_place)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == values.dtype


def test_copy_leaves_its_input() -> None:
    values = np.array([3, 1, 3, 2], dtype=np.int64)
    assert sorted_unique(values).tolist() == [1, 2, 3] and values.tolist() == [3, 1, 3, 2]


def test_in_place_is_a_view_of_its_input() -> None:
    values = np.array([3, 1, 3, 2], dtype=np.int64)
    got = sorted_unique(values, in_place=True)
    assert got.tolist() == [1, 2, 3] and np.shares_memory(got, values)


def test_swap_where_exchanges_the_flipped_rows_across_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrays, "_STEP", 7)  # several steps and a partial one
    rng = np.random.default_rng(7)
    n = 3 * 7 + 5
    flip = rng.integers(0, 2, n).astype(np.int8)
    x, y = rng.integers(0, 1 << 40, n), rng.integers(0, 1 << 40, n)
    want_x, want_y = np.where(flip == 1, y, x), np.where(flip == 1, x, y)
    swap_where(flip, [(x, y)])
    assert (x == want_x).all() and (y == want_y).all()
