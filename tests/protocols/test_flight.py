"""The first-flight kernel (``tlsfast.first_flight``) gives what ``tls.scan_stream`` gives for a
direction's first segment wherever it answers: crafted flights (ClientHello, ServerHello flights,
alerts, CCS, application data, messages split over records, many messages), then truncated,
mutated and random byte strings. And it answers for the common flights."""

from __future__ import annotations

import random

import pytest

from helix_audit.protocols import tls
from helix_audit.protocols.streams import MAX_HANDSHAKES
from helix_audit.protocols.tlsfast import first_flight, scan_fields

from .builders import client_hello_body, handshake, records, sni_ext
from .test_fuzz import mutate

HELLO = records(22, handshake(1, client_hello_body(sni_ext(b"flight.example"))))
SERVER = records(22, handshake(2, bytes(2) + bytes(32) + b"\x00" + bytes(3)))
CERT = records(22, handshake(11, bytes(300)))
CCS = b"\x14\x03\x03\x00\x01\x01"
APPDATA = b"\x17\x03\x03\x00\x05hello"
ALERT = b"\x15\x03\x03\x00\x02\x02\x28"
TWO_IN_ONE = records(22, handshake(2, bytes(38)) + handshake(11, bytes(40)) + handshake(14, b""))
SPLIT = records(22, handshake(11, bytes(100))[:50]) + records(22, handshake(11, bytes(100))[50:])
MANY = records(22, b"".join(handshake(20, bytes(2)) for _ in range(40)))

FLIGHTS = [
    HELLO, SERVER + CCS + APPDATA, SERVER + CERT, SERVER + CERT[:100], HELLO + APPDATA, ALERT,
    ALERT + ALERT + SERVER, TWO_IN_ONE, SPLIT, SPLIT + SERVER, MANY, SERVER * 20, CCS + HELLO,
    HELLO[:3], HELLO[:5], HELLO[:40], b"\x16\x03\x01\x48\x01" + bytes(10), records(22, b"\x01\x00"),
    records(21, b"\x01\x00\x00"), b"\x16\x02\x01\x00\x01\x00",
]  # fmt: skip


def _same(data: bytes) -> bool:
    got = first_flight(data, MAX_HANDSHAKES)
    if got is None:
        return False
    want = scan_fields(tls.scan_stream(data, MAX_HANDSHAKES, b"", False))
    assert got == want, data
    return True


def test_common_flights_are_taken_and_equal() -> None:
    taken = [_same(f) for f in FLIGHTS]
    assert all(taken[:8]), taken
    assert not _same(SPLIT) and not _same(MANY + MANY)  # left to the Python scan


@pytest.mark.parametrize("seed", range(4))
def test_damaged_flights_equal_the_scan(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(3000):
        data = rng.choice(FLIGHTS)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        elif rng.random() < 0.8:
            data = mutate(rng, data)
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
        if data:
            taken += _same(data)
    assert taken > 1000
