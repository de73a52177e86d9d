"""Byte builders for the protocol tests: written from the RFCs, independently of the parsers."""

from __future__ import annotations

import contextlib
import ssl
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def sni_ext(*names: bytes) -> bytes:
    entries = b"".join(b"\x00" + struct.pack("!H", len(n)) + n for n in names)
    return ext(0, struct.pack("!H", len(entries)) + entries)


def alpn_ext(*protos: bytes) -> bytes:
    entries = b"".join(bytes([len(p)]) + p for p in protos)
    return ext(16, struct.pack("!H", len(entries)) + entries)


def versions_ext(*versions: int) -> bytes:
    body = b"".join(struct.pack("!H", v) for v in versions)
    return ext(43, bytes([len(body)]) + body)


def client_hello_body(extensions: bytes = b"", legacy: int = 0x0303) -> bytes:
    """RFC 8446 §4.1.2 ClientHello body (after the 4-byte handshake header)."""
    body = struct.pack("!H", legacy) + bytes(32) + b"\x20" + bytes(32)
    body += struct.pack("!H", 4) + b"\x13\x01\x13\x02" + b"\x01\x00"
    return body + struct.pack("!H", len(extensions)) + extensions


def handshake(hs_type: int, body: bytes) -> bytes:
    return bytes([hs_type]) + len(body).to_bytes(3, "big") + body


def records(ctype: int, payload: bytes, size: int = 16384) -> bytes:
    """``payload`` cut into TLS records of at most ``size`` bytes (RFC 8446 §5.1)."""
    out = b""
    for off in range(0, max(len(payload), 1), size):
        chunk = payload[off : off + size]
        out += struct.pack("!BHH", ctype, 0x0301, len(chunk)) + chunk
    return out


def real_client_hello(server_name: str, alpn: list[str]) -> bytes:
    """The first flight of Python's own TLS client (OpenSSL): TLS records holding a ClientHello."""
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


# ---- QUIC (RFC 9000 §17.2, RFC 9001 §5) -------------------------------------------------------------


def varint(v: int) -> bytes:
    for size, prefix in ((1, 0), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if v < 1 << (8 * size - 2):
            raw = v.to_bytes(size, "big")
            return bytes([raw[0] | prefix]) + raw[1:]
    raise ValueError(v)


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def protect_initial(
    key: bytes, iv: bytes, hp: bytes, dcid: bytes, scid: bytes, pn: int, payload: bytes, v2: bool = False
) -> bytes:
    """A client Initial with a 2-byte packet number, sealed and header-protected."""
    first = 0xC0 | (0x10 if v2 else 0x00) | 0x01  # long header, Initial, pn length 2
    version = 0x6B3343CF if v2 else 1
    pn_bytes = pn.to_bytes(2, "big")
    length = len(pn_bytes) + len(payload) + 16
    header = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
    header += bytes([len(scid)]) + scid + varint(0) + varint(length)
    pn_offset = len(header)
    header += pn_bytes
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, payload, header)
    packet = bytearray(header + sealed)
    sample = bytes(packet[pn_offset + 4 : pn_offset + 20])
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    packet[0] ^= mask[0] & 0x0F
    for k in range(2):
        packet[pn_offset + k] ^= mask[1 + k]
    return bytes(packet)
