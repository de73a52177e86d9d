"""flows.text.host_columns: both address columns as Categoricals of one dtype, categories the
distinct addresses ascending as texts (what sorting or grouping by the texts expects)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helix_audit.decode.interface import addr_to_str
from helix_audit.flows.text import host_columns


def test_one_dtype_ascending_categories() -> None:
    rnd = np.random.default_rng(11)
    n = 2000
    ku = np.zeros((n, 4), dtype=np.uint64)
    for side in (0, 2):
        is6 = rnd.random(n) < 0.3
        ku[:, side] = np.where(is6, np.uint64(0x20010DB8) << np.uint64(32), 0)
        v4 = (0xFFFF << 32) | rnd.integers(0, 1 << 32, size=n).astype(np.uint64) % np.uint64(5000)
        ku[:, side + 1] = np.where(is6, rnd.integers(0, 50, size=n).astype(np.uint64), v4)
    o = rnd.integers(0, 2, size=n).astype(np.int64)
    orig, resp = host_columns(ku, o)
    assert isinstance(orig, pd.Categorical) and orig.dtype == resp.dtype
    cats = orig.categories.tolist()
    assert cats == sorted(set(cats)) and all(isinstance(c, str) for c in cats)
    assert set(cats) == set(orig.tolist()) | set(resp.tolist())  # no unused address
    a = [addr_to_str(h, lo) for h, lo in ku[:, :2].tolist()]
    b = [addr_to_str(h, lo) for h, lo in ku[:, 2:].tolist()]
    assert orig.tolist() == [x if d == 0 else y for x, y, d in zip(a, b, o.tolist(), strict=True)]
    assert resp.tolist() == [y if d == 0 else x for x, y, d in zip(a, b, o.tolist(), strict=True)]


def test_empty() -> None:
    orig, resp = host_columns(np.zeros((0, 4), dtype=np.uint64), np.zeros(0, dtype=np.int64))
    assert len(orig) == len(resp) == 0
