"""Categorical flow columns of plain texts are written from their categories quoted once
(json_flows._category_reader): the same bytes as the per-value encoding, whatever the chunk holds
(one text: folded as a constant; missing values; unused categories; many categories)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.report import json_flows
from helix_audit.report.json_flows import _kernel_chunk
from helix_audit.report.json_report import flow_records
from helix_audit.report.json_stream import compact, fast_compact


def _by_value(frame: pd.DataFrame) -> bytes:
    rows = flow_records(frame, tuple(frame.columns))
    text = ["{" + ",".join(f"{compact(k)}:{fast_compact(v)}" for k, v in r.items()) + "}" for r in rows]
    return ",\n  ".join(text).encode("ascii")


def _kernel(frame: pd.DataFrame) -> bytes:
    data = _kernel_chunk(frame, list(frame.columns))
    assert data is not None
    return data.tobytes()


@pytest.mark.parametrize("rows", [1, 6, 4100])
@pytest.mark.parametrize("n_cats", [1, 3, 40, json_flows._FEW_CATEGORIES + 5])
def test_plain_categoricals(rows: int, n_cats: int) -> None:
    rng = np.random.default_rng(rows * 7 + n_cats)
    texts = [f"10.0.{i // 256}.{i % 256}" for i in range(n_cats)]
    cats = pd.Index(sorted({*texts, "zz-unused"}), dtype=object)
    codes = rng.integers(-1, n_cats, rows)
    dtype = pd.CategoricalDtype(cats)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "mixed": pd.Categorical.from_codes(codes, dtype=dtype),
            "dense": pd.Categorical.from_codes(np.maximum(codes, 0), dtype=dtype),
            "const": pd.Categorical.from_codes(np.full(rows, 1 % len(cats)), dtype=dtype),
            "nulls": pd.Categorical.from_codes(np.full(rows, -1), dtype=dtype),
            "tail": pd.Categorical.from_codes(
                np.r_[np.zeros(rows - 1, int), [2 % len(cats)]], categories=cats
            ),
        }
    )
    assert _kernel(frame) == _by_value(frame)


def test_odd_category_falls_back() -> None:
    """A category that is not a plain string (a quote, an escape, non-ASCII): value by value."""
    frame = pd.DataFrame({"c": pd.Categorical(['a"b', "x", "é", None, "x"])})
    assert json_flows._category_reader(*json_flows.category_parts(frame["c"])) is None
    assert _kernel(frame) == _by_value(frame)
