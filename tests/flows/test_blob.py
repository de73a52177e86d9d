"""TextBlobArray (key_frames kept in one buffer) reads, slices, takes, joins and compares as the object
column of the same strs does, in pandas' operations too; hostile texts included."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from helix_audit.flows.blob import TextBlobArray, TextBlobDtype
from helix_audit.flows.text import frames_buffer, frames_text

ODD = ["", "1", "3,5,9", "a.pcap:7,9", "new\nline", "é,ü", "bad\udcffsurrogate", "\U0001f600", "x" * 300]


def _texts(n: int, seed: int = 0, na: bool = False) -> list[str | None]:
    rnd = np.random.default_rng(seed)
    pool: list[str | None] = [*ODD, *(None for _ in range(3) if na)]
    return [pool[i] for i in rnd.integers(0, len(pool), n)]


def _objects(texts: list[str | None]) -> np.ndarray:
    out = np.empty(len(texts), dtype=object)
    out[:] = [np.nan if t is None else t for t in texts]
    return out


def _same(got: TextBlobArray, want: list[str | None]) -> None:
    assert len(got) == len(want)
    assert got.isna().tolist() == [t is None for t in want]
    assert [None if isinstance(v, float) else v for v in got.to_numpy().tolist()] == want
    assert [None if isinstance(got[i], float) else got[i] for i in range(len(want))] == want


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
@pytest.mark.parametrize("na", [False, True])
def test_reads_slices_takes(n: int, na: bool) -> None:
    want = _texts(n, n, na)
    arr = TextBlobArray.from_texts(want)
    _same(arr, want)
    assert arr.dtype == TextBlobDtype() and arr.nbytes < 8 * n + sum(len(t or "") + 8 for t in want) + 16
    rnd = np.random.default_rng(n)
    for a, b, step in [(0, n, 1), (1, n - 1, 1), (n // 2, n, 1), (5, 2, 1), (0, n, 3), (n - 1, 0, -2)]:
        _same(arr[a:b:step], want[a:b:step])
    _same(arr[a:b][1:], want[a:b][1:])  # a slice of a slice: offsets into the same buffer
    idx = rnd.integers(0, max(n, 1), size=n // 2) if n else np.zeros(0, dtype=np.int64)
    _same(arr.take(idx), [want[i] for i in idx.tolist()])
    _same(arr[idx], [want[i] for i in idx.tolist()])
    mask = rnd.random(n) < 0.5
    _same(arr[mask], [t for t, m in zip(want, mask.tolist(), strict=True) if m])
    if n:
        assert arr[-1] == want[-1] if want[-1] is not None else pd.isna(arr[-1])
        fill = np.array([0, -1, n - 1, -1])
        _same(arr.take(fill, allow_fill=True), [want[0], None, want[n - 1], None])
        _same(arr.take(np.array([-1, 0])), [want[-1], want[0]])  # negative: from the end
        with pytest.raises(IndexError):
            arr.take(np.array([n]))
        with pytest.raises(IndexError):
            arr[n]
    _same(TextBlobArray.from_texts([]).take(np.array([-1, -1]), allow_fill=True), [None, None])
    _same(arr.copy(), want)
    _same(
        TextBlobArray._concat_same_type([arr[: n // 2], arr[n // 2 :], arr]),
        want[: n // 2] + want[n // 2 :] + want,
    )
    eq = arr == _objects(want)
    assert eq.tolist() == [t is not None for t in want]


def test_from_buffer_equals_the_kernel_texts() -> None:
    rnd = np.random.default_rng(3)
    m = np.where(rnd.random((500, 6)) < 0.4, 2**62, rnd.integers(1, 10**9, (500, 6))).astype(np.int64)
    first = np.zeros(500, dtype=np.int64)
    texts, other = frames_text(m.copy(), 2**62, 4, 40, first)
    buf, other2 = frames_buffer(m.copy(), 2**62, 4, 40, first)
    arr = TextBlobArray.from_buffer(buf)
    assert arr.to_numpy().tolist() == texts.tolist() and np.array_equal(other, other2)
    assert buf.flags.owndata and arr._compact()


def test_pandas_operations_equal_the_object_column() -> None:
    texts = _texts(300, 5)
    blob = pd.DataFrame({"k": TextBlobArray.from_texts(texts), "i": np.arange(300)}, copy=False)
    plain = pd.DataFrame({"k": _objects(texts), "i": np.arange(300)})
    assert blob["k"].to_numpy().tolist() == plain["k"].tolist()
    assert blob.iloc[7].to_dict() == plain.iloc[7].to_dict()
    assert blob.iloc[10:20]["k"].tolist() == plain.iloc[10:20]["k"].tolist()
    sel = blob["i"] % 3 == 0
    assert blob.loc[sel, "k"].tolist() == plain.loc[sel, "k"].tolist()
    wider = blob.reindex(columns=["k", "i", "none"]).reindex(range(-2, 302))
    assert wider["k"].isna().sum() == 4 and wider["k"].iloc[2:-2].tolist() == texts
    assert blob["k"].astype(object).tolist() == texts
    assert blob["k"].astype("str").tolist() == plain["k"].astype("str").tolist()
    both = pd.concat([blob, blob], ignore_index=True)
    assert both["k"].dtype == TextBlobDtype() and both["k"].tolist() == texts + texts
    pd.testing.assert_frame_equal(blob, pd.concat([blob.iloc[:100], blob.iloc[100:]]))
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(blob, blob.iloc[::-1].reset_index(drop=True))
    a, b = io.StringIO(), io.StringIO()
    blob.iloc[:50].to_csv(a)
    plain.iloc[:50].to_csv(b)
    assert a.getvalue() == b.getvalue()
    assert blob["k"].value_counts().to_dict() == plain["k"].value_counts().to_dict()
    assert sorted(blob["k"].unique().tolist()) == sorted(set(texts))
    assert blob.memory_usage(deep=True)["k"] < plain.memory_usage(deep=True)["k"]
    assert "3,5,9" in repr(blob.iloc[:40]) or "3,5,9" not in texts[:40]
