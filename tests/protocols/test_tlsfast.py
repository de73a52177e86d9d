"""The ClientHello kernel agrees with ``tlshello.parse_client_hello`` wherever it answers, and answers
wherever the Python fast path does, on crafted, corpus-like, mutated, truncated and random bodies."""

from __future__ import annotations

import random

import pytest

from helix_audit.protocols import tlshello
from helix_audit.protocols.interface import ProtocolError
from helix_audit.protocols.tlsfast import hello_fields

from .builders import client_hello_body, sni_ext
from .test_fuzz import mutate


def _ext(etype: int, data: bytes) -> bytes:
    return etype.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def _alpn(*names: bytes) -> bytes:
    body = b"".join(len(n).to_bytes(1, "big") + n for n in names)
    return _ext(16, len(body).to_bytes(2, "big") + body)


def _versions(*vs: int) -> bytes:
    raw = b"".join(v.to_bytes(2, "big") for v in vs)
    return _ext(43, len(raw).to_bytes(1, "big") + raw)


def _bodies() -> list[bytes]:
    return [
        client_hello_body(sni_ext(b"fuzz.example")),
        client_hello_body(
            sni_ext(b"a.example") + _alpn(b"h2", b"http/1.1") + _versions(0x0A0A, 0x0304, 0x0303)
        ),
        client_hello_body(_versions(0x1A1A) + _ext(0xFE0D, b"\x00" * 8) + _alpn(b"\xff\x00x")),
        client_hello_body(sni_ext(b"sp ace\x07\xc3\xa9.example") + _ext(0xFFCE, b"")),
        client_hello_body(b""),
        client_hello_body(b"")[:-2],  # no extensions block at all
        client_hello_body(sni_ext(b"x") + sni_ext(b"y")),  # repeated: the checked reader's call
        client_hello_body(_versions(0x7F17, 0x0301) + _ext(0, b"\x00\x00")),
    ]


def _reference(body: bytes) -> object:
    try:
        ch = tlshello.parse_client_hello(body)
    except ProtocolError as exc:
        return type(exc)
    return ch.sni, ch.alpn, ch.version, ch.ech


def _check(bodies: list[bytes]) -> int:
    answered = 0
    for body in bodies:
        got = hello_fields(body)
        assert (got is None) == (tlshello._client_hello_fast(body) is None), body.hex()
        if got is not None:
            answered += 1
            assert got == _reference(body), body.hex()
    return answered


def test_crafted_hellos() -> None:
    bodies = _bodies()
    assert _check(bodies) == len(bodies) - 1


def test_truncated_at_every_offset() -> None:
    for body in _bodies():
        _check([body[:n] for n in range(len(body) + 1)] + [body + b"\x00", body + b"\x00\x00\x00\x00"])


@pytest.mark.parametrize("seed", range(4))
def test_mutations(seed: int) -> None:
    rng = random.Random(seed)
    bodies = _bodies()
    assert _check([mutate(rng, rng.choice(bodies)) for _ in range(3000)]) > 100


def test_random_bytes() -> None:
    rng = random.Random(11)
    _check(
        [bytes([3, 3]) + bytes(rng.randrange(256) for _ in range(rng.randrange(120))) for _ in range(3000)]
    )
