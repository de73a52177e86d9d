"""The numba test for HTTP-looking TCP payloads equals the numpy gather it replaced (kept here)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np

from helix_audit.protocols.http import PREFIXES
from helix_audit.protocols.prefilter import http_prefix_rows


def _reference(data: np.ndarray, pay_off: np.ndarray, pay_len: np.ndarray, tcp_pay: np.ndarray) -> np.ndarray:
    out = np.zeros(len(pay_off), dtype=bool)
    rows = np.flatnonzero(tcp_pay)
    if rows.size == 0 or not len(data):
        return out
    first = data[pay_off[rows]]
    rows = rows[np.isin(first, np.frombuffer(b"GPHDOCTMLUS", dtype=np.uint8))]
    off = pay_off[rows][:, None] + np.arange(8)[None, :]
    inside = np.arange(8)[None, :] < pay_len[rows][:, None]
    head = np.where(inside, data[np.clip(off, 0, len(data) - 1)], 0).astype(np.uint8)
    hit = np.zeros(rows.size, dtype=bool)
    for prefix in PREFIXES:
        p = np.frombuffer(prefix[:8], dtype=np.uint8)
        hit |= (head[:, : p.size] == p).all(axis=1) & (pay_len[rows] >= p.size)
    out[rows[hit]] = True
    return out


def test_matches_numpy_reference() -> None:
    rng = random.Random(3)
    blob, offs, lens = bytearray(), [], []
    pieces = [p[:k] for p in PREFIXES for k in range(len(p) + 1)] + [
        b"GET /x",
        b"HTTP/1.1 200",
        b"\x16\x03\x01",
    ]
    for _ in range(5000):
        body = rng.choice(pieces) + bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
        if rng.random() < 0.3:
            body = bytearray(body)
            if body:
                body[rng.randrange(len(body))] = rng.choice(b"GETPOSHXYZ/ .1")
            body = bytes(body)
        offs.append(len(blob))
        lens.append(len(body) if rng.random() < 0.9 else len(body) + rng.randrange(20))  # past the end too
        blob += body
    data = np.frombuffer(bytes(blob), dtype=np.uint8)
    pay_off, pay_len = np.array(offs, np.int64), np.array(lens, np.int64)
    tcp_pay = (pay_len > 0) & (np.arange(len(offs)) % 7 != 0)
    cols = SimpleNamespace(data=data, pay_off=pay_off, pay_len=pay_len)
    got = http_prefix_rows(cols, tcp_pay)  # type: ignore[arg-type]
    assert (got == _reference(data, pay_off, pay_len, tcp_pay)).all()
    assert got.sum() > 100
    empty = SimpleNamespace(data=data[:0], pay_off=pay_off, pay_len=pay_len)
    assert not http_prefix_rows(empty, tcp_pay).any()  # type: ignore[arg-type]
