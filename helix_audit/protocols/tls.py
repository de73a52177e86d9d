"""TLS records: the record layer at the start of a TCP direction, and plaintext alerts.

RFC 8446 §5.1 (record layer; handshake messages may span records), §6 (alerts); RFC 6101 Appendix
E / SSL 2.0 (the two-byte-header CLIENT-HELLO some old clients still send).

:func:`scan_stream` walks the records at the start of one direction of a TCP stream and returns
every handshake message (reassembled across records) and every plaintext alert with the stream
offset where it became complete, so the caller can name the frame of the last segment. The fields
of the handshake bodies are read by :mod:`.tlshello`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .interface import NeedData, ParseError
from .tlshello import HRR_RANDOM, ClientHello, parse_client_hello, parse_sslv2_client_hello

RECORD = struct.Struct("!BHH")  # content type, legacy version, length
HS_HEADER = struct.Struct("!BBH")  # type, length (24 bits as 8 + 16)

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO = 1, 2
MAX_RECORD = (1 << 14) + 2048
MAX_HANDSHAKE = 1 << 17


def is_server_hello(hs_type: int, body: bytes) -> bool:
    """A real ServerHello (not a HelloRetryRequest): the handshake after which nothing is read."""
    return hs_type == HS_SERVER_HELLO and body[2:34] != HRR_RANDOM


ALERT_LEVELS = {1: "warning", 2: "fatal"}
ALERT_DESCRIPTIONS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure", 41: "no_certificate",
    42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
    45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 60: "export_restriction",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation",
    109: "missing_extension", 110: "unsupported_extension", 111: "certificate_unobtainable",
    112: "unrecognized_name", 113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
    115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}  # fmt: skip


@dataclass(slots=True)
class StreamScan:
    """What :func:`scan_stream` found, in stream order; offsets are stream positions (end-exclusive)."""

    handshakes: list[tuple[int, bytes, int]] = field(default_factory=list)  # (type, body, end)
    alerts: list[tuple[str, str, int]] = field(default_factory=list)  # (level, description, end)
    used: int = 0  # bytes of complete records
    appdata: bool = False  # an application-data record was seen: nothing plaintext follows
    want: int = 0  # stream length at which the next (incomplete) record will be complete
    pending: bytes = b""  # handshake bytes after the last complete handshake message (carried to a resume)
    stuck: bool = False  # a handshake message too long to follow: nothing after it is read


def looks_like_tls(data: bytes) -> bool:
    """Cheap test on a stream's first bytes: a handshake or alert record, or an SSLv2 hello."""
    if len(data) >= 3 and data[0] in (CT_ALERT, CT_HANDSHAKE) and data[1] == 3 and data[2] <= 4:
        return True  # a server may answer with an alert record first
    return len(data) >= 3 and (data[0] & 0x80) != 0 and data[2] == HS_CLIENT_HELLO


def _could_start_tls(data: bytes) -> bool:
    """``looks_like_tls`` for a prefix that may still be shorter than 3 bytes."""
    if len(data) >= 3:
        return looks_like_tls(data)
    if not data:
        return True
    return data[0] & 0x80 != 0 or (data[0] == CT_HANDSHAKE and data[1:2] in (b"", b"\x03"))


def scan_stream(
    data: bytes, limit_handshakes: int = 16, pending: bytes = b"", sslv2: bool = True
) -> StreamScan:
    """Walk TLS records from ``data[0]``; stops at the first incomplete record or non-TLS bytes.

    To resume a scan, pass the bytes from the previous scan's ``used`` on, its ``pending`` and
    ``sslv2=False`` (offsets in the result are then relative to the resumed start).
    """
    if sslv2 and data[:1] and data[0] & 0x80:
        return _scan_sslv2(data)
    out = StreamScan()
    off = 0
    while off + RECORD.size <= len(data) and not out.appdata:
        ctype, version, length = RECORD.unpack_from(data, off)
        if ctype not in (CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA) or version >> 8 != 3:
            break
        if length > MAX_RECORD:
            break
        if off + RECORD.size + length > len(data):
            out.want = off + RECORD.size + length
            break
        start = off + RECORD.size
        off = start + length
        out.used = off
        if ctype == CT_HANDSHAKE:  # only handshake bodies are copied out (not application data)
            pending = _take_handshakes(pending + data[start:off], off, out)
            out.stuck = len(pending) > MAX_HANDSHAKE
            if len(out.handshakes) >= limit_handshakes or out.stuck:
                break
        elif ctype == CT_ALERT and length == 2:
            level = data[start]
            out.alerts.append((ALERT_LEVELS.get(level, str(level)), _alert_text(data[start + 1]), off))
        elif ctype == CT_APPDATA:
            out.appdata = True
    out.pending = pending
    return out


def _alert_text(code: int) -> str:
    return ALERT_DESCRIPTIONS.get(code, str(code))


def _take_handshakes(buf: bytes, end: int, out: StreamScan) -> bytes:
    pos = 0
    while pos + 4 <= len(buf):
        hs_type, hi, lo = HS_HEADER.unpack_from(buf, pos)
        length = (hi << 16) | lo
        if pos + 4 + length > len(buf):
            break
        out.handshakes.append((hs_type, buf[pos + 4 : pos + 4 + length], end))
        pos += 4 + length
    return buf[pos:]


def _scan_sslv2(data: bytes) -> StreamScan:
    out = StreamScan()
    if len(data) < 3:
        return out
    length, hdr = ((data[0] & 0x7F) << 8) | data[1], 2
    if hdr + length <= len(data) and data[hdr] == HS_CLIENT_HELLO:
        out.handshakes.append((0x8001, data[hdr + 1 : hdr + length], hdr + length))
        out.used = hdr + length
    return out


def client_hello_from_record_bytes(data: bytes) -> ClientHello:
    """The first ClientHello in a byte string of TLS records (NeedData until it is complete)."""
    scan = scan_stream(data)
    for hs_type, body, _end in scan.handshakes:
        if hs_type == HS_CLIENT_HELLO:
            return parse_client_hello(body)
        if hs_type == 0x8001:
            return parse_sslv2_client_hello(body)
        raise ParseError(f"tls stream: first handshake message is type {hs_type}, not a client hello")
    if not _could_start_tls(data):
        raise ParseError("tls stream: does not start with a handshake record")
    raise NeedData(f"tls stream: no complete client hello in {len(data)} bytes")
