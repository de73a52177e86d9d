"""``arrays.sorted_unique``: ``np.unique`` by sorting, copied or in place."""

from __future__ import annotations

import numpy as np
import pytest

from helix_audit import arrays
from helix_audit.arrays import sorted_unique


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
