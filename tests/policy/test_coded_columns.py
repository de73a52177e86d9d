"""Categorical flow columns read by their codes (flowrows.CodedColumn, flowcodes, chunked):
the same answers as the object arrays they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.policy.chunked import factorize_rows
from helix_audit.policy.flowcodes import FlowCodes, objects_at
from helix_audit.policy.flowrows import CodedColumn, Columns, group_positions


def _cat(codes: np.ndarray, cats: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, pd.Index(cats, dtype=object), validate=False)


@pytest.mark.parametrize("n", [0, 1, 9, 70_000])
@pytest.mark.parametrize("k", [1, 3, 30])
def test_coded_column_reads_as_object_array(n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    cat = _cat(rng.integers(-1, k, n).astype(np.int8), sorted(f"v{i}" for i in range(k + 1)))  # one unused
    col, obj = CodedColumn(cat), pd.Series(cat).to_numpy()
    rows = rng.integers(0, max(n, 1), min(n, 500)) if n else np.zeros(0, dtype=np.int64)
    assert len(col) == n and col.shape == obj.shape
    assert col[rows].tolist() == obj[rows].tolist() or pd.isna(obj[rows]).all()
    assert pd.Series(col[rows]).equals(pd.Series(obj[rows]))
    assert np.array_equal(col == "v0", obj == "v0") and np.array_equal(col != "v1", obj != "v1")
    assert np.array_equal(np.asarray(col) == "v2", obj == "v2")
    if n:
        assert (col[0] is np.nan) == pd.isna(obj[0]) and (pd.isna(obj[0]) or col[0] == obj[0])
        a, b = factorize_rows(col, rows), factorize_rows(obj, rows)
        assert np.array_equal(a[0], b[0]) and list(a[1]) == list(b[1])
    series = pd.Series(cat)
    assert pd.Series(objects_at(series, rows)).equals(pd.Series(obj[rows]))


def test_group_positions_on_codes_equal_object_grouping() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame(
        {
            "t": _cat(rng.integers(-1, 3, n).astype(np.int8), ["icmp", "tcp", "udp"]),
            "u": _cat(rng.integers(0, 2, n).astype(np.int8), ["b", "a"]),  # not ascending: hashed
            "p": rng.integers(0, 4, n),
        }
    )
    mask = rng.random(n) < 0.7
    got = group_positions(Columns(frame), ["t", "u", "p"], mask)
    obj = frame.astype({"t": object, "u": object})
    want = [part.index.to_numpy() for _, part in obj[mask].groupby(["t", "u", "p"], sort=True, dropna=False)]
    assert [g.tolist() for g in got] == [w.tolist() for w in want]


def test_flow_codes_of_categoricals_equal_object_columns() -> None:
    rng = np.random.default_rng(9)
    n = 500
    addrs = sorted(f"10.0.0.{i}" for i in range(20))
    dtype = pd.CategoricalDtype(pd.Index(addrs, dtype=object))
    frame = pd.DataFrame(
        {
            "orig_h": pd.Categorical.from_codes(rng.integers(0, 20, n), dtype=dtype),
            "resp_h": pd.Categorical.from_codes(rng.integers(0, 20, n), dtype=dtype),
            "transport": _cat(rng.integers(-1, 3, n).astype(np.int8), ["icmp", "tcp", "udp"]),
        }
    )
    plain = frame.astype(object)
    coded, hashed = FlowCodes(frame), FlowCodes(plain)
    assert np.array_equal(coded.equals("transport", "tcp", "udp"), hashed.equals("transport", "tcp", "udp"))
    for side in (0, 1):
        c, h = coded.hosts(), hashed.hosts()
        assert [c[2][i] for i in c[side]] == [h[2][i] for i in h[side]]
    assert coded.hosts()[2] == addrs
