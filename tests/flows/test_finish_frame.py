"""The finished frame's compact columns (Categoricals of few texts, int32 ports and counters, Int32
stream numbers) hold what the plain columns held: the same values, categories ordered as the texts,
wide values kept wide."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from helix_audit.flows.blob import TextBlobArray
from helix_audit.flows.finish import _stream_index
from helix_audit.flows.interface import FLOW_COLUMNS
from helix_audit.flows.orient import _SUM_COLUMNS, _sum_columns
from helix_audit.flows.state import NSUM
from helix_audit.flows.text import categorical, narrow_int

from .test_merge import run, traffic

SIZES = [0, 1, 5, 70_000]


@pytest.mark.parametrize("n", SIZES)
def test_categorical_equals_the_texts(n: int) -> None:
    rnd = np.random.default_rng(n)
    texts = ["tcp", "udp", "", "ip-2", "udp", "a|b", "Z"]  # a repeat, an empty text, upper case
    codes = rnd.integers(0, 5, size=n)  # "a|b" and "Z" never used
    got = categorical(codes, texts)
    assert list(got.astype(object)) == [texts[c] for c in codes.tolist()]
    cats = list(got.categories)
    assert cats == sorted({texts[c] for c in codes.tolist()})  # used, distinct, ascending
    assert not pd.isna(got).any() and got.codes.dtype == np.int8
    series = pd.Series(got)
    assert series.to_numpy().dtype == object and all(type(v) is str for v in series.to_numpy())
    assert sorted(series.tolist()) == series.sort_values().tolist()
    if n:
        assert dict(series.value_counts()) == dict(pd.Series(series.to_numpy(dtype=object)).value_counts())


def test_categorical_missing_codes() -> None:
    got = categorical(np.array([-1, 2, -1, 0]), ["x", "unused", "a"])
    assert list(got.categories) == ["a", "x"] and got.isna().tolist() == [True, False, True, False]
    assert pd.Series(got).astype(object).where(pd.Series(got).notna(), None).tolist() == [
        None,
        "a",
        None,
        "x",
    ]
    assert pd.isna(categorical(np.array([-1, -1]), [])).all()


def test_categorical_of_many_texts_has_wider_codes() -> None:
    texts = [f"t{i}" for i in range(300)]
    got = categorical(np.arange(300)[::-1], texts)
    assert got.codes.dtype == np.int16 and list(got.astype(object)) == texts[::-1]


def test_narrow_int_keeps_what_does_not_fit() -> None:
    small = np.array([0, 5, (1 << 31) - 1], dtype=np.int64)
    assert narrow_int(small).dtype == np.int32 and narrow_int(small).tolist() == small.tolist()
    wide = np.array([0, 1 << 31], dtype=np.int64)
    assert narrow_int(wide).dtype == np.int64 and narrow_int(wide).tolist() == wide.tolist()
    assert narrow_int(np.zeros(0, dtype=np.int64)).dtype == np.int32


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("wide", [False, True])
def test_sum_columns_narrow(n: int, wide: bool) -> None:
    """Packet and byte counts stay views of ``sums`` (cut to their rows); the SYN/FIN/RST counters
    are int32 copies, unless one exceeds int32 (then int64 views, ``sums`` keeping their rows)."""
    rnd = np.random.default_rng(n)
    sums = rnd.integers(0, 1 << 40, size=(NSUM, n), dtype=np.int64)
    sums[6:] %= 1 << 31
    if wide and n:
        sums[:, -1] = 1 << 31  # one past int32, whichever row the counters come from
    o = rnd.integers(0, 2, size=n).astype(np.int64)
    want = {name: np.where(o == 0, sums[b + d], sums[b + 1 - d]) for name, b, d in _SUM_COLUMNS}
    got = _sum_columns(sums, o, narrow=True)
    narrow = not wide or n == 0
    assert sums.shape == (6 if narrow else len(_SUM_COLUMNS), n)
    for i, (name, col) in enumerate(got.items()):
        assert np.array_equal(col, want[name]), name
        assert col.dtype == (np.int32 if narrow and i >= 6 else np.int64), name
        assert n == 0 or np.shares_memory(col, sums) == (i < 6 or not narrow), name


@pytest.mark.parametrize("files", [1, 3])
def test_stream_index_narrow_equals_wide(files: int) -> None:
    rnd = np.random.default_rng(files)
    first_file = rnd.integers(0, files, size=500).astype(np.int64)
    mask = rnd.random(500) < 0.5
    wide, narrow = _stream_index(first_file, mask), _stream_index(first_file, mask, narrow=True)
    assert wide.dtype == pd.Int64Dtype() and narrow.dtype == pd.Int32Dtype()
    assert list(narrow.astype(object)) == list(wide.astype(object))
    none = _stream_index(first_file, np.zeros(500, dtype=bool), narrow=True)
    assert none.dtype == pd.Int32Dtype() and none.isna().all()


KINDS = {"int64", "int32", "float64", "Int32", "category", "textblob", "str", "str|None"}


def _kind(spec: str) -> str:
    return spec.split(":")[0].split(" ")[0]


@pytest.mark.parametrize("seed", range(3))
def test_frame_dtypes_follow_flow_columns(seed: int) -> None:
    """Every column has the type FLOW_COLUMNS gives; Categoricals have no missing value and
    their used texts as categories, ascending; the mixed traffic of test_merge (ICMP errors,
    flows in two files, UDP, ARP) in one table and in merged parts."""
    packets = traffic(seed)
    rnd = random.Random(seed)
    for parts in ([packets], [packets[:250], packets[250:]]):
        frame, _ = run(parts, rnd)
        assert list(frame.columns) == list(FLOW_COLUMNS)
        assert {_kind(spec) for spec in FLOW_COLUMNS.values()} == KINDS
        for name, spec in FLOW_COLUMNS.items():
            col, kind = frame[name], _kind(spec)
            if kind == "category":
                assert isinstance(col.dtype, pd.CategoricalDtype), name
                cats = list(col.cat.categories)
                assert cats == sorted(set(col.astype(object))) and not col.isna().any(), name
                assert all(type(c) is str for c in cats), name
            elif kind in ("int32", "int64", "float64"):
                assert col.dtype == np.dtype(kind), name
            elif kind == "str":
                assert all(type(v) is str for v in col.to_numpy()), name
            elif kind == "str|None":  # missing where no ICMP error quotes the flow
                assert (col.isna() == (frame.icmp_errors == 0)).all(), name
                assert all(type(v) is str for v in col.dropna().to_numpy()), name
            elif kind == "textblob":
                assert isinstance(col.array, TextBlobArray) and not col.isna().any(), name
                assert all(type(v) is str for v in col.to_numpy()), name
            elif kind in ("Int32", "Int64"):
                assert col.dtype == pd.api.types.pandas_dtype(kind), name
        assert (frame.files.astype(object).str.contains("|", regex=False)).any()
        assert (frame.icmp_frames.astype(object) != "").any() and (frame.icmp_errors > 0).any()
        pairs = zip(frame.file.astype(object), frame.files.astype(object), strict=True)
        assert all(f in fs.split("|") for f, fs in pairs)
