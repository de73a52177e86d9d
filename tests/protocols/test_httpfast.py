"""HTTP head splitting by ``find`` and field parsing on latin-1 text give what the regex split and
the per-line bytes parsing gave (kept here as the reference), on crafted and random heads."""

from __future__ import annotations

import random

import pytest

from helix_audit.protocols import http


def _reference_split(data: bytes) -> tuple[list[bytes], int] | None:
    end = http._HEAD_END.search(data, 0, http.MAX_HEAD + 4)
    if end is None:
        return None
    return data[: end.start()].replace(b"\r\n", b"\n").split(b"\n"), end.end()


def _reference_fields(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and out:
            key, text = out[-1]
            out[-1] = (key, text + " " + line.strip().decode("latin-1"))
            continue
        raw_name, sep, raw_value = line.partition(b":")
        if not sep or not raw_name.strip():
            continue
        out.append((raw_name.strip().decode("latin-1").lower(), raw_value.strip().decode("latin-1")))
    return tuple(out)


ALPHABET = b"\r\n\r\n\r\n: \t\x0b\x0c\x1c\x1f\x85\xa0\xc3\x96Aa-Zz:/"


def _heads(rng: random.Random, n: int) -> list[bytes]:
    seeds = [
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-A:  v \r\n  folded\r\n\r\nbody",
        b"HTTP/1.1 101 Switching\nUpgrade: websocket\n\nrest",
        b"POST / HTTP/1.0\r\n\xa0Name\x85: \x85value\xa0\r\n:\r\nbad line\r\n\r\n",
    ]
    out = list(seeds)
    for _ in range(n):
        out.append(bytes(rng.choice(ALPHABET) for _ in range(rng.randrange(40))))
        seed = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            seed[rng.randrange(len(seed))] = rng.choice(ALPHABET)
        out.append(bytes(seed))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_split_and_fields_match_reference(seed: int) -> None:
    for data in _heads(random.Random(seed), 3000):
        ref = _reference_split(data)
        try:
            first, lines, length = http._split_head(data)
        except http.NeedData:
            assert ref is None
            continue
        assert ref is not None, data
        assert ([first] + [line.encode("latin-1") for line in lines], length) == ref, data
        assert http._fields(lines) == _reference_fields(ref[0][1:]), data


def test_head_end_bound() -> None:
    big = b"GET / HTTP/1.1\r\n" + b"a" * (http.MAX_HEAD - 16) + b"\r\n\r\n"
    for cut in (0, 1, 2, 3, 4, 5):
        data = big[: len(big) - cut] + b"\r\n\r\n"
        assert (http._head_end(data) is None) == (_reference_split(data) is None)
