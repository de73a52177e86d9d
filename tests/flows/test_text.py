"""The bulk text renderers behind per-flow string columns equal plain Python formatting."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from helix_audit.flows.text import frames_text, ipv4_text, rows_text, sorted_unique_rows

NONE = np.iinfo(np.int64).max


@pytest.mark.parametrize("seed", range(5))
def test_rows_text_equals_python_join(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 10**12, size=(500, 6))
    m[rng.random(m.shape) < 0.4] = -1
    m[:, 0] = np.where(rng.random(500) < 0.1, 0, m[:, 0])  # zeros render as "0"
    want = [",".join(str(v) for v in row if v != -1) for row in m.tolist()]
    assert rows_text(m, ",", skip=-1).tolist() == want


def test_rows_text_extremes() -> None:
    m = np.array([[np.iinfo(np.int64).max - 1, 7], [-5, 0]], dtype=np.int64)
    assert rows_text(m, ";").tolist() == [f"{np.iinfo(np.int64).max - 1};7", "-5;0"]
    assert rows_text(np.zeros((0, 3), dtype=np.int64), ",").tolist() == []
    assert rows_text(np.full((2, 3), -1), ",", skip=-1).tolist() == ["", ""]


@pytest.mark.parametrize("seed", range(5))
def test_sorted_unique_rows_equals_python(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 20, size=(300, 14))
    m[rng.random(m.shape) < 0.5] = NONE
    got = sorted_unique_rows(m, NONE)
    for row, out in zip(m.tolist(), got.tolist(), strict=True):
        want = sorted({v for v in row if v != NONE})
        assert out == want + [NONE] * (14 - len(want))
    assert (m != got).any()  # the input is left as it was (a copy is sorted)


def test_ipv4_text_equals_ipaddress() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [rng.integers(0, 2**32, size=2000, dtype=np.uint64), [0, 2**32 - 1, 0x0A000001] * 3]
    )
    want = [str(ipaddress.IPv4Address(int(v))) for v in values.tolist()]
    assert ipv4_text(values.astype(np.uint64)).tolist() == want


@pytest.mark.parametrize("seed", range(5))
def test_frames_text_equals_composed(seed: int) -> None:
    """The fused key-frames kernel equals sorting, deduplicating, cutting to ``keep`` and rendering
    the frames step by step, including the rows it flags for another file than the first's."""
    rng = np.random.default_rng(seed)
    shift = 40
    m = rng.integers(0, 3, size=(400, 14)) << shift | rng.integers(
        0, 50 if seed % 2 else 10**12, size=(400, 14)
    )
    m[rng.random(m.shape) < 0.5] = NONE
    m[0] = NONE  # a row with no frames at all
    first_file = rng.integers(0, 3, size=400)
    first_file[rng.random(400) < 0.7] = 0
    given = m.copy()
    texts, other = frames_text(m, NONE, 12, shift, first_file)
    want_sorted = sorted_unique_rows(given, NONE)
    np.testing.assert_array_equal(m, want_sorted)  # left sorted and deduplicated
    cut = want_sorted[:, :12]
    present = cut != NONE
    want = rows_text(np.where(present, cut & ((1 << shift) - 1), -1), ",", skip=-1)
    assert texts.tolist() == want.tolist() and texts[0] == ""
    want_other = (present & ((cut >> shift) != first_file[:, None])).any(axis=1)
    np.testing.assert_array_equal(other, want_other)
    assert other.any() and not other.all()


def test_frames_text_edges() -> None:
    empty = np.zeros((0, 3), dtype=np.int64)
    texts, other = frames_text(empty, NONE, 12, 40, np.zeros(0, dtype=np.int64))
    assert texts.tolist() == [] and other.tolist() == []
    row = np.array([[5, 0, 5, NONE, 2**40 | 7]], dtype=np.int64)
    texts, other = frames_text(row, NONE, 2, 40, np.zeros(1, dtype=np.int64))
    assert texts.tolist() == ["0,5"] and other.tolist() == [False]  # the other file's frame was cut
    with pytest.raises(ValueError):
        frames_text(np.zeros((2, 3), dtype=np.int32), NONE, 12, 40, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError):
        frames_text(np.zeros((3, 2), dtype=np.int64).T, NONE, 12, 40, np.zeros(2, dtype=np.int64))
