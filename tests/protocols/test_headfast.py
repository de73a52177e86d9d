"""The HTTP head kernel (:mod:`helix_audit.protocols.headfast`) gives what the Python parser gives.

``first._quick_head`` (kernel spans, a few decodes) against ``first._read_head`` (``http.parse_*``)
on crafted, hostile, truncated and randomly damaged heads, with and without a tunnelling peer:
equal results (observation records, mode, position, tunnel) whenever the kernel takes a head, and
the kernel must take the common well-formed ones (else the comparison would prove nothing).
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from helix_audit.protocols import first, headfast, http
from helix_audit.protocols.streams import Direction, Meta

from .test_httpfast import ALPHABET, HOSTILE, LINE_ALPHABET

WELL_FORMED = [
    b"GET /a HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t\r\n\r\n",
    b"GET /ws?x=1 HTTP/1.1\r\nHost: w.example:8080\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n",
    b"POST /api HTTP/1.1\r\nhost: p\r\ncontent-length: 4\r\n\r\nbody",
    b"POST /api HTTP/1.1\r\nContent-Length:  4 \r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
    b"CONNECT t.example:443 HTTP/1.1\r\nHost: t.example:443\r\nUser-Agent: containerd/1.7\r\n\r\n",
    b"CONNECT t.example:443 HTTP/1.1\r\n\r\n\x16\x03\x01",
    b"GET http://proxy.example/x HTTP/1.1\r\nUser-Agent: curl\r\n\r\n",
    b"GET /nohost\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbodyHTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 200 Connection established\r\n\r\n",
    b"HTTP/1.0 204\r\n\r\n",
    b"HTTP/1.1 200 \r\nX-Odd: \r\n: empty name\r\nno colon\r\nHost:\r\n\r\n",
    b"HTTP/1.1 404 Not Found\nContent-Length: 12345678901234567890\n\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: +4\r\nContent-Length: 5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHOST : a\r\nhost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nA\r\n\r\r\n\r\n",
]


def _direction(tunnel: bool) -> Direction:
    meta = Meta("f.pcap", 7, 1.5, "10.0.0.1", 1234, "10.0.0.2", 80, "tcp", 3)
    d = Direction(meta, 64 * 1024, False)
    d.peer = SimpleNamespace(tunnel=tunnel)  # type: ignore[assignment]
    return d


def _outcome(got: tuple | None) -> tuple | None:
    if got is None:
        return None
    obs, mode, pos, tunnel = got
    return obs.to_record(), mode, pos, tunnel


def _damaged(rng: random.Random, n: int) -> list[bytes]:
    seeds = WELL_FORMED + HOSTILE
    out = list(seeds)
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(ALPHABET + LINE_ALPHABET)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data) + 1)]
        if rng.random() < 0.1:
            at = rng.randrange(len(data) + 1)
            data[at:at] = bytes(rng.choice(ALPHABET) for _ in range(rng.randrange(6)))
        out.append(bytes(data))
    return out


def _compare(data: bytes, tunnel: bool) -> bool:
    """True when the kernel took ``data`` (and then gave exactly what the parser gives)."""
    if not data[:8].startswith(http.PREFIXES):
        return False  # ``first_segment`` hands nothing else to the head readers
    taken = headfast.spans(data)[0] != 0
    try:
        want = _outcome(first._read_head(_direction(tunnel), data, 5))
    except (http.NeedData, http.ParseError):
        assert not taken, data
        return False
    got = _outcome(first._quick_head(_direction(tunnel), data, 5))
    assert got == want, data
    return bool(taken)


@pytest.mark.parametrize("tunnel", [False, True])
def test_well_formed_heads_are_taken_and_equal(tunnel: bool) -> None:
    for data in WELL_FORMED:
        assert _compare(data, tunnel), data


@pytest.mark.parametrize("seed", range(4))
def test_damaged_heads_equal_the_parser(seed: int) -> None:
    rng = random.Random(seed)
    taken = sum(_compare(data, rng.random() < 0.3) for data in _damaged(rng, 4000))
    assert taken > 500  # the comparison covers the kernel, not only its fallbacks


def test_truncations_and_huge_heads() -> None:
    for data in WELL_FORMED:
        for cut in range(len(data) + 1):
            _compare(data[:cut], False)
    big = b"GET / HTTP/1.1\r\nX: " + b"y" * (http.MAX_HEAD - 24)
    for tail in (b"\r\n\r\n", b"\r\n\r\n" + b"z" * 10, b"\n\n"):
        _compare(big + tail, False)
        _compare(big[:-10] + tail, False)
