"""TLS parser: ClientHello fields, records and handshake fragmentation, alerts, truncation."""

from __future__ import annotations

import struct

import pytest

from helix_audit.protocols import tls, tlshello
from helix_audit.protocols.interface import NeedData, ParseError

from .builders import (
    alpn_ext,
    client_hello_body,
    ext,
    handshake,
    real_client_hello,
    records,
    sni_ext,
    versions_ext,
)  # fmt: skip


def hello_records(extensions: bytes, size: int = 16384) -> bytes:
    return records(22, handshake(1, client_hello_body(extensions)), size)


def test_real_openssl_client_hello() -> None:
    data = real_client_hello("api.example.org", ["h2", "http/1.1"])
    ch = tls.client_hello_from_record_bytes(data)
    assert ch.sni == "api.example.org"
    assert ch.alpn == ("h2", "http/1.1")
    assert ch.version == "TLS 1.3" and not ch.ech


CASES = [
    ("sni alpn versions", sni_ext(b"a.example") + alpn_ext(b"h2") + versions_ext(0x0304, 0x0303),
     "a.example", ("h2",), "TLS 1.3", False),
    ("grease is not a version", versions_ext(0x1A1A, 0x0303), None, (), "TLS 1.2", False),
    ("no extensions at all", b"", None, (), "TLS 1.2", False),
    ("ech outer name", sni_ext(b"public.example") + ext(0xFE0D, b"\x00" * 8), "public.example", (), "TLS 1.2",
     True),
    ("draft version", versions_ext(0x7F17), None, (), "TLS 1.3 draft 23", False),
    ("html in sni kept as text", sni_ext(b"<script>x"), "<script>x", (), "TLS 1.2", False),
    ("control char in sni escaped", sni_ext(b"a\x01b"), "a\\001b", (), "TLS 1.2", False),
]  # fmt: skip


@pytest.mark.parametrize(("case", "exts", "sni", "alpn", "version", "ech"), CASES, ids=[c[0] for c in CASES])
def test_client_hello_fields(
    case: str, exts: bytes, sni: str | None, alpn: tuple[str, ...], version: str, ech: bool
) -> None:
    ch = tls.client_hello_from_record_bytes(hello_records(exts))
    assert (ch.sni, ch.alpn, ch.version, ch.ech) == (sni, alpn, version, ech)


def test_client_hello_without_extensions_block() -> None:
    body = client_hello_body()[:-2]  # RFC 5246 allows omitting the extensions length entirely
    assert tlshello.parse_client_hello(body).sni is None


def test_handshake_spread_over_many_records() -> None:
    pad = ext(21, b"\x00" * 3000)
    data = hello_records(sni_ext(b"big.example") + pad, size=700)
    scan = tls.scan_stream(data)
    assert len(scan.handshakes) == 1 and scan.handshakes[0][2] == len(data)
    assert tls.client_hello_from_record_bytes(data).sni == "big.example"


def test_every_truncation_is_need_data() -> None:
    data = hello_records(sni_ext(b"t.example") + alpn_ext(b"h2") + ext(21, b"\x00" * 600), size=300)
    for cut in range(len(data)):
        with pytest.raises(NeedData):
            tls.client_hello_from_record_bytes(data[:cut])
    assert tls.client_hello_from_record_bytes(data).sni == "t.example"


def test_every_truncation_of_a_real_hello_is_need_data() -> None:
    data = real_client_hello("cut.example", ["h2"])
    for cut in range(len(data)):
        with pytest.raises(NeedData):
            tls.client_hello_from_record_bytes(data[:cut])


BAD = [
    ("http, not tls", b"GET / HTTP/1.1\r\n\r\n"),
    ("first message is a server hello", records(22, handshake(2, b"\x03\x03" + bytes(40)))),
    ("legacy version not tls", records(22, handshake(1, client_hello_body(legacy=0x0100)))),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data"), BAD, ids=[b[0] for b in BAD])
def test_not_a_client_hello(case: str, data: bytes) -> None:
    with pytest.raises(ParseError):
        tls.client_hello_from_record_bytes(data)


HOSTILE_LENGTHS = [
    ("sni list longer than extension", ext(0, struct.pack("!H", 0xFFFF) + b"\x00\x00\x01a")),
    ("extension longer than block", struct.pack("!HH", 0, 0xFFF0)),
    ("alpn entry past the end", ext(16, b"\x00\x05\x09h2")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "exts"), HOSTILE_LENGTHS, ids=[h[0] for h in HOSTILE_LENGTHS])
def test_hostile_lengths_raise_protocol_errors(case: str, exts: bytes) -> None:
    with pytest.raises((NeedData, ParseError)):
        tlshello.parse_client_hello(client_hello_body(exts))


def test_alerts_and_server_hello() -> None:
    sh_body = (
        b"\x03\x03" + bytes(32) + b"\x00" + b"\x13\x01\x00" + struct.pack("!H", 6) + ext(43, b"\x03\x04")
    )
    data = records(22, handshake(2, sh_body)) + records(21, b"\x02\x28") + records(23, b"x" * 30)
    scan = tls.scan_stream(data)
    assert [h[0] for h in scan.handshakes] == [2]
    assert tlshello.parse_server_hello(scan.handshakes[0][1]) == "TLS 1.3"
    assert scan.alerts == [("fatal", "handshake_failure", len(records(22, handshake(2, sh_body))) + 7)]
    assert scan.appdata


def test_encrypted_alert_is_not_reported() -> None:
    scan = tls.scan_stream(records(21, b"\x17" * 26))
    assert scan.alerts == []


def test_sslv2_client_hello() -> None:
    body = b"\x00\x02" + struct.pack("!HHH", 3, 0, 16) + b"\x01\x00\x80" + bytes(16)
    data = bytes([0x80, len(body) + 1]) + b"\x01" + body
    ch = tls.client_hello_from_record_bytes(data)
    assert ch.version == "SSL 2.0" and ch.sni is None
