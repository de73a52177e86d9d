"""QUIC Initials: RFC test vectors, header protection, CRYPTO reassembly, hostile datagrams."""

from __future__ import annotations

import pytest

from helix_audit.protocols import quic, tls, tlshello
from helix_audit.protocols.interface import NeedData, ParseError

from .builders import crypto_frame, protect_initial, real_client_hello, varint

RFC_DCID = bytes.fromhex("8394c8f03e515708")


@pytest.mark.parametrize(
    ("version", "server", "key", "iv", "hp"),
    [
        # RFC 9001 Appendix A.1
        (1, False, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c",
         "9f50449e04a0e810283a1e9933adedd2"),
        (1, True, "cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e",
         "c206b8d9b9f0f37644430b490eeaa314"),
        # RFC 9369 Appendix A.1
        (quic.VERSION_2, False, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
         "45b95e15235d6f45a6b19cbcb0294ba9"),
    ],
)  # fmt: skip
def test_initial_keys_match_rfc_vectors(version: int, server: bool, key: str, iv: str, hp: str) -> None:
    keys = quic.initial_keys(RFC_DCID, version, server)
    assert (keys.key.hex(), keys.iv.hex(), keys.hp.hex()) == (key, iv, hp)


@pytest.mark.parametrize(
    ("wire", "value"),
    [("c2197c5eff14e88c", 151288809941952652), ("9d7f3e7d", 494878333), ("7bbd", 15293), ("25", 37)],
)  # RFC 9000 Appendix A.1
def test_varint_vectors(wire: str, value: int) -> None:
    assert quic.read_varint(bytes.fromhex(wire), 0) == (value, len(wire) // 2)


def hello_crypto() -> bytes:
    """The handshake message of a real ClientHello (record header stripped)."""
    records = real_client_hello("quic.example", ["h3"])
    return tls.scan_stream(records).handshakes[0][1] and records[5:]


def initial(payload: bytes, pn: int, dcid: bytes = RFC_DCID, version: int = 1) -> bytes:
    k = quic.initial_keys(dcid, version)
    padded = payload + b"\x00" * max(0, 1100 - len(payload))
    return protect_initial(k.key, k.iv, k.hp, dcid, b"\x01\x02", pn, padded, v2=version == quic.VERSION_2)


@pytest.mark.parametrize("version", [1, quic.VERSION_2])
def test_two_coalesced_initials_out_of_order(version: int) -> None:
    msg = hello_crypto()
    half = len(msg) // 2
    datagram = initial(crypto_frame(half, msg[half:]), 1, version=version) + initial(
        crypto_frame(0, msg[:half]), 0, version=version
    )
    chunks: dict[int, bytes] = {}
    packets = quic.parse_long_headers(datagram)
    assert [p.ptype for p in packets] == [0, 0] and packets[1].start == packets[0].end
    for pkt in packets:
        _pn, plain = quic.decrypt_initial(datagram, pkt, quic.initial_keys(pkt.dcid, version))
        chunks.update(quic.crypto_frames(plain))
    stream = quic.contiguous(chunks)
    assert stream == msg
    assert tlshello.parse_client_hello(stream[4:]).sni == "quic.example"


def test_contiguous_stops_at_a_gap_and_allows_overlap() -> None:
    assert quic.contiguous({0: b"abcd", 2: b"cdef", 10: b"zz"}) == b"abcdef"
    assert quic.contiguous({3: b"x"}) == b""


def test_tampered_packet_fails_authentication() -> None:
    datagram = bytearray(initial(crypto_frame(0, b"\x01\x00\x00\x00"), 0))
    datagram[-1] ^= 1
    pkt = quic.parse_long_headers(bytes(datagram))[0]
    with pytest.raises(ParseError):
        quic.decrypt_initial(bytes(datagram), pkt, quic.initial_keys(RFC_DCID, 1))


def test_every_truncation_raises_a_protocol_error_or_parses() -> None:
    datagram = initial(crypto_frame(0, hello_crypto()), 0)
    for cut in range(1, len(datagram)):
        try:
            for pkt in quic.parse_long_headers(datagram[:cut]):
                quic.decrypt_initial(datagram[:cut], pkt, quic.initial_keys(pkt.dcid, 1))
        except (NeedData, ParseError):
            continue


HOSTILE = [
    ("cid longer than 20", bytes([0xC0]) + (1).to_bytes(4, "big") + b"\x15" + bytes(21) + b"\x00\x00\x00"),
    ("length past datagram", b"\xc0\x00\x00\x00\x01\x00\x00\x00" + varint(5000) + bytes(30)),
    ("version negotiation", bytes([0xC0]) + bytes(4) + b"\x00\x00" + bytes(8)),
    ("six bytes", bytes([0xC0, 0, 0, 0, 1, 8])),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_headers(case: str, data: bytes) -> None:
    with pytest.raises((NeedData, ParseError)):
        quic.parse_long_headers(data)


def test_frames_past_the_packet_and_forbidden_types() -> None:
    with pytest.raises(NeedData):
        quic.crypto_frames(b"\x06\x00\x44\x00abc")
    with pytest.raises(ParseError):
        quic.crypto_frames(b"\x08\x00")  # STREAM frames never appear in an Initial
    assert quic.crypto_frames(b"\x00\x00\x01" + crypto_frame(7, b"xy") + b"\x02\x05\x00\x00\x01") == [
        (7, b"xy")
    ]


def test_version_selection() -> None:
    assert quic.is_quic_long_header(0xC3, 1) and quic.is_quic_long_header(0xD0, quic.VERSION_2)
    assert quic.is_quic_long_header(0xC0, 0xFF00001D) and not quic.is_quic_long_header(0x40, 1)
    assert not quic.is_quic_long_header(0xC0, 0x51303530)  # gQUIC Q050: no RFC 9001 keys
