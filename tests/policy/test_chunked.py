"""The chunked reductions of a scan's rows give what the whole-array calls give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.policy.chunked import earliest, factorize_rows, last_in_order, last_of, nan_bounds


def _strings(rng: np.random.Generator, n: int) -> np.ndarray:
    pool = np.array(["a", "b", "10.0.0.1", "10.0.0.2", "", "-", np.nan, None], dtype=object)
    return pool[rng.integers(0, pool.shape[0], n)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sentinel", [True, False])
def test_factorize_rows_equals_pandas(seed: int, sentinel: bool) -> None:
    rng = np.random.default_rng(seed)
    column = _strings(rng, 500)
    if seed == 0:
        column[:300] = np.nan  # whole chunks of missing values
    rows = np.sort(rng.choice(500, size=400, replace=False))
    want_codes, want_uniq = pd.factorize(column[rows], use_na_sentinel=sentinel)
    for chunk in (1, 7, 64, 1000):
        codes, uniq = factorize_rows(column, rows, use_na_sentinel=sentinel, chunk=chunk)
        assert codes.tolist() == want_codes.tolist()
        assert [("NA" if pd.isna(u) else u) for u in uniq.tolist()] == [
            ("NA" if pd.isna(u) else u) for u in want_uniq.tolist()
        ]


@pytest.mark.parametrize("seed", range(8))
def test_time_reductions_equal_whole_array(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    ts = rng.integers(0, 40, n).astype(float)  # many ties: the stable order matters
    if seed % 2:
        ts[rng.integers(0, n, 30)] = np.nan
    if seed == 6:
        ts[:] = np.nan
    rows = rng.permutation(n)[:250]
    v = ts[rows]
    for chunk in (1, 5, 64, 1000):
        assert earliest(ts, rows, 63, chunk).tolist() == np.argsort(v, kind="stable")[:63].tolist()
        got = last_of(ts, rows, chunk)
        assert got == (None if np.isnan(v).all() else int(np.nanargmax(v)))
        lo, hi = nan_bounds(ts, rows, chunk)
        left = v[~np.isnan(v)]
        assert (lo, hi) == ((left.min(), left.max()) if left.size else (lo, hi))
        assert (np.isnan(lo) and np.isnan(hi)) == (left.size == 0)
    assert last_in_order(ts, rows) == int(np.argsort(v, kind="stable")[-1])
