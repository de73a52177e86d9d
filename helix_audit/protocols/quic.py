"""QUIC Initial packets: header, header protection, AEAD, CRYPTO frames.

RFC 9000 §17.2 (long header), §16 (variable-length integers), §19.6 (CRYPTO frames);
RFC 9001 §5.2 (initial secrets), §5.3 (AEAD_AES_128_GCM), §5.4 (header protection), §A (test
vectors); RFC 9369 §3 (QUIC v2: version 0x6b3343cf, Initial type 0b01, salt and "quicv2" labels);
draft-ietf-quic-tls-23..32 (0xff0000NN; the salts differ by draft range).

The ClientHello in the CRYPTO stream is parsed by :func:`tlshello.parse_client_hello`. Crypto comes from
``cryptography`` (HKDF-Expand-Label is a few lines over its HKDF-Expand), imported by the functions
that use it: a capture without QUIC Initials to decrypt never maps its ~9 MiB of library pages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from .interface import NeedData, ParseError

VERSION_1 = 0x00000001
VERSION_2 = 0x6B3343CF
SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # drafts 29-32
SALT_D23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")  # drafts 23-28
U32 = struct.Struct("!I")
SAMPLE_LEN = 16
MAX_CID = 20
FRAME_PADDING, FRAME_PING, FRAME_ACK, FRAME_ACK_ECN, FRAME_CRYPTO = 0x00, 0x01, 0x02, 0x03, 0x06
FRAME_CLOSE, FRAME_CLOSE_APP = 0x1C, 0x1D


@dataclass(frozen=True)
class LongPacket:
    """One long-header packet of a datagram (offsets into the datagram)."""

    version: int
    ptype: int  # 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry (v1 numbering, v2 mapped to it)
    dcid: bytes
    scid: bytes
    start: int
    pn_offset: int  # -1 when not an Initial
    end: int


@dataclass(frozen=True)
class InitialKeys:
    key: bytes
    iv: bytes
    hp: bytes


def salt_for(version: int) -> bytes | None:
    """The initial salt of ``version``, None when it is not a QUIC version we decrypt."""
    if version == VERSION_1:
        return SALT_V1
    if version == VERSION_2:
        return SALT_V2
    if version >> 8 == 0xFF0000:
        draft = version & 0xFF
        if 29 <= draft <= 32:
            return SALT_D29
        if 23 <= draft <= 28:
            return SALT_D23
    return None


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """RFC 9000 §16 integer at ``pos``: (value, next position)."""
    if pos >= len(data):
        raise NeedData(f"varint at {pos}: past the end ({len(data)} bytes)")
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > len(data):
        raise NeedData(f"varint at {pos}: needs {size} bytes")
    value = first & 0x3F
    for b in data[pos + 1 : pos + size]:
        value = (value << 8) | b
    return value, pos + size


def _ptype(first: int, version: int) -> int:
    bits = (first >> 4) & 3
    return (bits - 1) & 3 if version == VERSION_2 else bits


def parse_long_headers(datagram: bytes) -> list[LongPacket]:
    """Every long-header packet coalesced in ``datagram`` (stops at a short header or a Retry)."""
    out: list[LongPacket] = []
    pos = 0
    while pos < len(datagram) and datagram[pos] & 0x80:
        try:
            pkt = _long_header(datagram, pos)
        except (NeedData, ParseError):
            if not out:
                raise
            break  # trailing junk after a good packet: keep what parsed
        out.append(pkt)
        if pkt.end <= pos:
            break
        pos = pkt.end
    return out


def _long_header(d: bytes, start: int) -> LongPacket:
    if start + 7 > len(d):
        raise NeedData(f"quic long header at {start}: shorter than 7 bytes")
    (version,) = U32.unpack_from(d, start + 1)
    if version == 0:
        raise ParseError("quic version negotiation packet: no Initial inside")
    pos = start + 5
    dcid, pos = _cid(d, pos)
    scid, pos = _cid(d, pos)
    ptype = _ptype(d[start], version)
    if ptype == 3:
        return LongPacket(version, ptype, dcid, scid, start, -1, len(d))
    if ptype == 0:
        token_len, pos = read_varint(d, pos)
        pos += token_len
    length, pos = read_varint(d, pos)
    if pos + length > len(d):
        raise NeedData(f"quic packet at {start}: length {length} runs past the datagram")
    return LongPacket(version, ptype, dcid, scid, start, pos if ptype == 0 else -1, pos + length)


def _cid(d: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(d):
        raise NeedData(f"quic connection id at {pos}: past the end")
    n = d[pos]
    if n > MAX_CID:
        raise ParseError(f"quic connection id at {pos}: length {n} exceeds {MAX_CID}")
    if pos + 1 + n > len(d):
        raise NeedData(f"quic connection id at {pos}: truncated")
    return d[pos + 1 : pos + 1 + n], pos + 1 + n


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def _extract(salt: bytes, ikm: bytes) -> bytes:
    import hmac

    return hmac.new(salt, ikm, "sha256").digest()


@lru_cache(maxsize=4096)
def initial_keys(dcid: bytes, version: int, server: bool = False) -> InitialKeys:
    """RFC 9001 §5.2 keys of the client (or server) Initial packets for ``dcid``."""
    salt = salt_for(version)
    if salt is None:
        raise ParseError(f"quic version 0x{version:08x}: no initial salt known")
    secret = _expand_label(_extract(salt, dcid), b"server in" if server else b"client in", 32)
    pre = b"quicv2 " if version == VERSION_2 else b"quic "
    return InitialKeys(
        _expand_label(secret, pre + b"key", 16),
        _expand_label(secret, pre + b"iv", 12),
        _expand_label(secret, pre + b"hp", 16),
    )


def decrypt_initial(datagram: bytes, pkt: LongPacket, keys: InitialKeys) -> tuple[int, bytes]:
    """Remove header protection and decrypt one Initial: (packet number, plaintext payload)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    pn_off = pkt.pn_offset
    if pn_off < 0 or pn_off + 4 + SAMPLE_LEN > pkt.end:
        raise NeedData(f"quic initial at {pkt.start}: too short to sample header protection")
    sample = datagram[pn_off + 4 : pn_off + 4 + SAMPLE_LEN]
    enc = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    first = datagram[pkt.start] ^ (mask[0] & 0x0F)
    pn_len = (first & 3) + 1
    pn_bytes = bytes(b ^ m for b, m in zip(datagram[pn_off : pn_off + pn_len], mask[1:], strict=False))
    header = bytes([first]) + datagram[pkt.start + 1 : pn_off] + pn_bytes
    pn = int.from_bytes(pn_bytes, "big")
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    try:
        plain = AESGCM(keys.key).decrypt(nonce, datagram[pn_off + pn_len : pkt.end], header)
    except InvalidTag as exc:
        raise ParseError(f"quic initial at {pkt.start}: authentication failed") from exc
    return pn, plain


def crypto_frames(plain: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of every CRYPTO frame in a decrypted Initial payload."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(plain):
        ftype, pos = read_varint(plain, pos)
        if ftype in (FRAME_PADDING, FRAME_PING):
            continue
        if ftype == FRAME_CRYPTO:
            offset, pos = read_varint(plain, pos)
            length, pos = read_varint(plain, pos)
            if pos + length > len(plain):
                raise NeedData("quic crypto frame runs past the packet")
            out.append((offset, plain[pos : pos + length]))
            pos += length
        elif ftype in (FRAME_ACK, FRAME_ACK_ECN):
            pos = _skip_ack(plain, pos, ftype == FRAME_ACK_ECN)
        elif ftype in (FRAME_CLOSE, FRAME_CLOSE_APP):
            pos = _skip_close(plain, pos, ftype == FRAME_CLOSE)
        else:
            raise ParseError(f"quic initial: frame type 0x{ftype:x} is not allowed in an Initial")
    return out


def _skip_ack(d: bytes, pos: int, ecn: bool) -> int:
    _largest, pos = read_varint(d, pos)
    _delay, pos = read_varint(d, pos)
    ranges, pos = read_varint(d, pos)
    _first, pos = read_varint(d, pos)
    for _ in range(min(ranges, len(d)) * 2 + (3 if ecn else 0)):
        _v, pos = read_varint(d, pos)
    return pos


def _skip_close(d: bytes, pos: int, transport: bool) -> int:
    _code, pos = read_varint(d, pos)
    if transport:
        _ftype, pos = read_varint(d, pos)
    length, pos = read_varint(d, pos)
    return pos + length


def contiguous(chunks: dict[int, bytes]) -> bytes:
    """The CRYPTO stream from offset 0 as far as the chunks reach without a gap (overlaps allowed)."""
    out = bytearray()
    for offset in sorted(chunks):
        data = chunks[offset]
        if offset > len(out):
            break
        if offset + len(data) > len(out):
            out += data[len(out) - offset :]
    return bytes(out)


def is_quic_long_header(first: int, version: int) -> bool:
    """Selection test for a UDP payload's first byte and version field."""
    return bool(first & 0x80) and salt_for(version) is not None
