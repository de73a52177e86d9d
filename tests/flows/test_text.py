"""The bulk text renderers behind per-flow string columns equal plain Python formatting."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from helix_audit.flows.text import ipv4_text, rows_text, sorted_unique_rows

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
