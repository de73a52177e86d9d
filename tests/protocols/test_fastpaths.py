"""The speed paths give exactly what the checked code gives: same objects, same values, same errors.

``build`` must make objects equal to the dataclass constructor's; the direct-indexing ClientHello and
ServerHello walkers must agree with the bounds-checked readers on valid and mutated messages (result
or exception type and text); the TXT formatter must agree with dnspython's presentation form.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from typing import Any

import dns.rdata
import pytest

from helix_audit.model import (
    DnsAnswer,
    DnsQuery,
    HttpConnect,
    Observation,
    TlsClientHello,
    WebSocketUpgrade,
)
from helix_audit.protocols import dns as pdns
from helix_audit.protocols import tlshello
from helix_audit.protocols.build import build

from .builders import alpn_ext, client_hello_body, ext, real_client_hello, sni_ext, versions_ext

HEAD = {"frame": 7, "ts": 1.5, "file": "a.pcap", "src": "10.0.0.1", "sport": 5000, "dst": "10.0.0.2",
        "dport": 443, "transport": "tcp", "flow_id": 3, "frames": (6, 7)}  # fmt: skip


@pytest.mark.parametrize(
    ("cls", "extra"),
    [
        (TlsClientHello, {"type": "tls_client_hello", "sni": "x.example", "alpn": ("h2",), "quic": True}),
        (DnsQuery, {"type": "dns_query", "id": 9, "qnames": ("a.example",), "qtypes": ("A",)}),
        (WebSocketUpgrade, {"type": "websocket_upgrade", "method": "GET", "accepted": True, "status": 101}),
        (HttpConnect, {"type": "http_connect", "method": "CONNECT", "target": "h:443"}),
    ],
)
def test_build_equals_constructor(cls: type[Observation], extra: dict[str, Any]) -> None:
    fields: dict[str, Any] = {**HEAD, **extra}
    fast, slow = build(cls, fields), cls(**fields)
    assert fast == slow and hash(fast) == hash(slow) and type(fast) is cls
    assert list(vars(fast)) == [f.name for f in dataclasses.fields(cls)]  # field order (wire.py relies on it)
    assert fast.to_record() == slow.to_record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.sni = "other"  # type: ignore[attr-defined]


def test_build_rejects_like_the_constructor() -> None:
    with pytest.raises(TypeError):
        build(DnsAnswer, {"name": "a", "rtype": "A", "ttl": 1})  # missing field
    with pytest.raises(TypeError):
        build(DnsAnswer, {"name": "a", "rtype": "A", "ttl": 1, "data": "x", "bogus": 1})


def _outcome(fn: object, body: bytes) -> object:
    try:
        return ("ok", fn(body))  # type: ignore[operator]
    except Exception as exc:  # the exact exception is what we compare
        return (type(exc).__name__, str(exc))


def _hellos() -> list[bytes]:
    exts = [
        sni_ext(b"a.example") + alpn_ext(b"h2", b"http/1.1") + versions_ext(0x0A0A, 0x0304, 0x0303),
        sni_ext(b"one.example", b"two.example") + ext(0xFE0D, b"\x00\x01"),
        sni_ext(b"dup.example") + sni_ext(b"again.example"),
        alpn_ext(b"") + ext(0xFFCE, b""),
        b"",
    ]
    out = [client_hello_body(e) for e in exts] + [client_hello_body(b"", legacy=0x0200)]
    raw = real_client_hello("real.example", ["h2"])
    out.append(raw[9 : 9 + int.from_bytes(raw[6:9], "big")])
    return out


def test_client_hello_fast_path_agrees_with_checked_reader() -> None:
    rng = random.Random(1234)
    cases = _hellos()
    for base in list(cases):
        for _ in range(300):
            data = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.choice([0, 1, 2, 3, 0xFF, rng.randrange(256)])
            cases.append(bytes(data[: rng.choice([len(data), rng.randrange(len(data) + 1)])]))
    for body in cases:
        assert _outcome(tlshello.parse_client_hello, body) == _outcome(
            tlshello._parse_client_hello_checked, body
        )


def test_server_hello_fast_path_agrees_with_checked_reader() -> None:
    rng = random.Random(99)
    base = struct.pack("!H", 0x0303) + bytes(32) + b"\x00" + b"\x13\x01\x00"
    exts = ext(43, b"\x03\x04") + ext(51, bytes(36))
    cases = [base, base + struct.pack("!H", len(exts)) + exts]
    for seed in list(cases):
        for _ in range(400):
            data = bytearray(seed)
            data[rng.randrange(len(data))] = rng.randrange(256)
            cases.append(bytes(data[: rng.randrange(len(data) + 1)]))
    for body in cases:
        assert _outcome(tlshello.parse_server_hello, body) == _outcome(
            tlshello._parse_server_hello_checked, body
        )


def test_txt_text_matches_dnspython() -> None:
    rng = random.Random(7)
    samples = [b"\x05hello\x00", b'\x03a"b\x02\\x', b"\x04\x00\x7f\xff ", b"\x02ab\x05abc", b""]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(300)]
    for rdata in samples:
        msg = b"\x00" * 12 + rdata
        try:
            expected: str | None = dns.rdata.from_wire(1, 16, msg, 12, len(rdata)).to_text()  # type: ignore[arg-type]
        except Exception:
            expected = None
        assert pdns._txt_text(msg, 12, len(msg)) == expected, rdata
