"""Random and mutated inputs: parsers raise only NeedData / ParseError, whatever the bytes."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import pytest

from helix_audit.protocols import dns, http, quic, tls
from helix_audit.protocols.interface import ProtocolError

from .builders import client_hello_body, crypto_frame, handshake, protect_initial, records, sni_ext

SEEDS = {
    "dns": bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001"),
    "tls": records(22, handshake(1, client_hello_body(sni_ext(b"fuzz.example"))), 60),
    "http": b"GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nUpgrade: websocket\r\n\r\n",
}


def quic_parse(data: bytes) -> object:
    for pkt in quic.parse_long_headers(data):
        if pkt.ptype == 0:
            quic.crypto_frames(quic.decrypt_initial(data, pkt, quic.initial_keys(pkt.dcid, pkt.version))[1])
    return None


PARSERS: dict[str, Callable[[bytes], object]] = {
    "dns": dns.parse_message,
    "tls": lambda b: (tls.client_hello_from_record_bytes(b), tls.scan_stream(b)),
    "http": lambda b: (http.parse_request(b), http.parse_response(b"HTTP/1.1 200 OK\r\n" + b[16:])),
    "quic": quic_parse,
}


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(3)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        else:
            del data[pos : pos + rng.randint(1, 8)]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_mutations_raise_only_protocol_errors(name: str) -> None:
    rng = random.Random(name)
    if name == "quic":
        k = quic.initial_keys(b"\x01" * 8, 1)
        seed = protect_initial(
            k.key, k.iv, k.hp, b"\x01" * 8, b"", 0, crypto_frame(0, b"\x01\x00\x00\x05") + bytes(40)
        )
    else:
        seed = SEEDS[name]
    for _ in range(1500):
        data = mutate(rng, seed) if rng.random() < 0.8 else rng.randbytes(rng.randrange(64))
        with contextlib.suppress(ProtocolError):
            PARSERS[name](data)
