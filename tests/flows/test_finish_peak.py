"""What lowered the flows finish peak changes no result: the packet and byte sums folded int32 while
the table's rows and bytes fit (widened last, a row at a time), the addresses coded before the fold
(``hosts``), ``categorical`` a chunk at a time, all-None ICMP columns handed over as object Series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.decode.interface import addr_to_str
from helix_audit.flows import text as text_mod
from helix_audit.flows.finish import _objects, _wide_rows
from helix_audit.flows.hosts import host_codes, host_columns_of
from helix_audit.flows.table import FlowTable
from helix_audit.flows.text import categorical

from .test_expiry import EXPIRING, crafted, feed, finished
from .test_lean_aggregates import folded_dtypes
from .test_merge import FILES


def _categorical_reference(codes: np.ndarray, texts: list[str]) -> pd.Categorical:
    vals = [texts[i] if i >= 0 else None for i in codes.tolist()]
    used = sorted({texts[i] for i in codes.tolist() if i >= 0})
    return pd.Categorical(vals, categories=pd.Index(used, dtype=object))


@pytest.mark.parametrize("n", [0, 1, 7, 50])
@pytest.mark.parametrize("neg", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 1 << 16])
def test_categorical_by_chunks_equals_reference(
    monkeypatch: pytest.MonkeyPatch, n: int, neg: bool, chunk: int
) -> None:
    monkeypatch.setattr(text_mod, "CHUNK_ROWS", chunk)
    texts = ["b", "a", "c", "b2", "a", "zz"]
    codes = np.random.default_rng(n + chunk).integers(-1 if neg else 0, 5, size=n).astype(np.int32)
    got, want = categorical(codes, texts), _categorical_reference(codes, texts)
    assert list(got.categories) == list(want.categories)
    assert got.tolist() == want.tolist()
    assert got.codes.dtype == np.int8


def test_categorical_code_past_texts_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_mod, "CHUNK_ROWS", 2)
    with pytest.raises(IndexError):
        categorical(np.array([0, 1, 0, 9]), ["a", "b"])


@pytest.mark.parametrize("extra_ref", [False, True])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_wide_rows_equal_int64_columns(extra_ref: bool, dtype: type) -> None:
    rnd = np.random.default_rng(1)
    want = rnd.integers(0, 1 << 31, size=(6, 1000))
    sums = np.zeros((6, 1000), dtype=dtype)  # an array of its own, as fold_flows makes
    sums[:] = want
    other = sums if extra_ref else None  # someone else holds it: converted without cuts
    names = list("abcdef")
    held = [sums]
    del sums
    got = _wide_rows(held, names)
    assert not held and list(got) == names
    for i, name in enumerate(names):
        assert got[name].dtype == np.int64 and np.array_equal(got[name], want[i])
    if other is not None and dtype is np.int32:
        assert other.shape == (6, 1000)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kw", [{}, *EXPIRING])
def test_sums_folded_narrow_or_wide_same_frame(monkeypatch: pytest.MonkeyPatch, seed: int, kw: dict) -> None:
    """A table whose rows and bytes fit int32 folds its sums int32; one told it summed 2^31 bytes
    folds them int64: the same frame, the same (int64) dtypes."""
    work = crafted(seed)
    seen = folded_dtypes(monkeypatch, "sums")
    small, wide = FlowTable(FILES, **kw), FlowTable(FILES, **kw)
    a_ids = feed(small, work)
    wide._bytes = 1 << 31  # noqa: SLF001 - as if that many bytes had been added
    b_ids = feed(wide, work)
    a, b = finished(small, a_ids), finished(wide, b_ids)
    assert seen == [np.dtype(np.int32), np.dtype(np.int64)]
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1] == b[1]
    for name in ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes", "orig_bytes", "resp_bytes"):
        assert a[0][name].dtype == np.int64


def _addresses(n: int, seed: int) -> np.ndarray:
    rnd = np.random.default_rng(seed)
    ku = np.zeros((n, 4), dtype=np.uint64)
    for side in (0, 2):
        v4 = (0xFFFF << 32) | rnd.integers(0, 50, size=n).astype(np.uint64) * np.uint64(0x01010101)
        is6 = rnd.random(n) < 0.3
        ku[:, side] = np.where(is6, np.uint64(0x20010DB8) << np.uint64(32), 0)
        ku[:, side + 1] = np.where(is6, rnd.integers(0, 6, size=n).astype(np.uint64), v4)
    return ku


@pytest.mark.parametrize("n", [0, 1, 9, 200])
def test_host_codes_taken_per_flow_equal_texts(n: int) -> None:
    """Codes made per flow (a tuple's several flows), then rendered: each flow's
    tuple's addresses, oriented; the codes are let go of."""
    ku = _addresses(n, n)
    rnd = np.random.default_rng(7)
    tup = rnd.permutation(
        np.concatenate([np.arange(n), rnd.integers(0, max(n, 1), size=n)])
    )  # each tuple a flow
    o = rnd.integers(0, 2, size=len(tup)).astype(np.int8)
    codes = host_codes(ku[tup])
    orig, resp = host_columns_of(codes, o)
    assert len(codes.a) == len(codes.b) == 0
    a = [addr_to_str(h, lo) for h, lo in ku[tup, :2].tolist()]
    b = [addr_to_str(h, lo) for h, lo in ku[tup, 2:].tolist()]
    assert orig.tolist() == [x if d == 0 else y for x, y, d in zip(a, b, o.tolist(), strict=True)]
    assert resp.tolist() == [y if d == 0 else x for x, y, d in zip(a, b, o.tolist(), strict=True)]
    assert list(orig.categories) == sorted(set(a) | set(b)) == list(resp.categories)


@pytest.mark.parametrize("n", [0, 3])
@pytest.mark.parametrize("texts", [False, True])
def test_objects_keep_the_inferred_dtype(n: int, texts: bool) -> None:
    values = np.full(n, None, dtype=object)
    if texts and n:
        values[1] = "port unreachable"
    want = pd.DataFrame({"x": np.arange(n), "c": values.copy()}, copy=False)
    got = pd.DataFrame({"x": np.arange(n), "c": _objects(values, texts and n > 0)}, copy=False)
    pd.testing.assert_frame_equal(got, want)
