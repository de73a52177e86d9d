"""TLS records, ClientHello, ServerHello presence and plaintext alerts.

RFC 8446 §4.1.2 (ClientHello), §5.1 (record layer, handshake messages may span records), §6 (alerts);
RFC 6066 §3 (server_name), RFC 7301 (ALPN), RFC 8446 §4.2.1 (supported_versions),
draft-ietf-tls-esni (encrypted_client_hello 0xfe0d; the older ESNI extension 0xffce also sets ``ech``),
RFC 6101 Appendix E / SSL 2.0 (the two-byte-header CLIENT-HELLO some old clients still send).

:func:`scan_stream` walks the records at the start of one direction of a TCP stream and returns
every handshake message (reassembled across records) and every plaintext alert with the stream
offset where it became complete, so the caller can name the frame of the last segment.
:func:`parse_client_hello` takes a handshake body (also used for QUIC CRYPTO data).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .dns import render_label
from .interface import NeedData, ParseError

RECORD = struct.Struct("!BHH")  # content type, legacy version, length
HS_HEADER = struct.Struct("!BBH")  # type, length (24 bits as 8 + 16)
U16 = struct.Struct("!H")
EXT_HEADER = struct.Struct("!HH")  # extension type, length

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO = 1, 2
EXT_SNI, EXT_ALPN, EXT_VERSIONS, EXT_ECH, EXT_ESNI = 0, 16, 43, 0xFE0D, 0xFFCE
MAX_RECORD = (1 << 14) + 2048
#: RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest (a second ClientHello follows)
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
MAX_HANDSHAKE = 1 << 17
_new, _set = object.__new__, object.__setattr__

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


@dataclass(frozen=True)
class ClientHello:
    sni: str | None  # first host_name entry, None without the extension
    legacy_version: int
    versions: tuple[int, ...]  # supported_versions extension, as sent (GREASE included)
    alpn: tuple[str, ...] = ()
    ech: bool = False
    sni_all: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        best = -1
        for v in self.versions:  # the highest non-GREASE version (is_grease inlined: hot)
            if v > best and not ((v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)):
                best = v
        return version_text(self.legacy_version if best < 0 else best)


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


def is_grease(v: int) -> bool:
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


_VERSION_NAMES = {
    0x0002: "SSL 2.0", 0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
}  # fmt: skip


def version_text(v: int) -> str:
    names = _VERSION_NAMES
    if v == 0x0304:
        return "TLS 1.3"
    if v >> 8 == 0x7F:
        return f"TLS 1.3 draft {v & 0xFF}"
    return names.get(v, f"0x{v:04x}")


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


def parse_sslv2_client_hello(body: bytes) -> ClientHello:
    """SSL 2.0 CLIENT-HELLO body after its message type byte: version only, no extensions."""
    if len(body) < 2:
        raise NeedData("sslv2 client hello: shorter than its version field")
    return ClientHello(sni=None, legacy_version=U16.unpack_from(body)[0], versions=())


class _Reader:
    """Bounds-checked cursor over a byte string."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NeedData(f"{self.what}: needs {n} bytes at {self.pos}, has {len(self.data) - self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(U16.unpack(self.take(2))[0])

    def vec(self, width: int) -> bytes:
        n = self.u8() if width == 1 else self.u16()
        return self.take(n)

    def left(self) -> int:
        return len(self.data) - self.pos


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header)."""
    fast = _client_hello_fast(body)
    return fast if fast is not None else _parse_client_hello_checked(body)


def _client_hello_fast(b: bytes) -> ClientHello | None:
    """A well-formed ClientHello by direct indexing (the common case, several times faster).

    None on anything unusual: :func:`_parse_client_hello_checked` then gives the result or the error.
    """
    n = len(b)
    if n < 35 or b[0] not in (2, 3, 0xFE):
        return None
    pos = 35 + b[34]  # after legacy version, random and the session id
    if pos + 2 > n:
        return None
    pos += 2 + (b[pos] << 8 | b[pos + 1])  # cipher suites
    if pos + 1 > n:
        return None
    pos += 1 + b[pos]  # compression methods
    if pos >= n:
        return ClientHello(sni=None, legacy_version=b[0] << 8 | b[1], versions=()) if pos == n else None
    if pos + 2 > n:
        return None
    end = pos + 2 + (b[pos] << 8 | b[pos + 1])
    if end > n:
        return None
    pos += 2
    found: dict[int, tuple[int, int]] = {}  # last extension of each type we read: (start, end)
    ech = False
    while pos + 4 <= end:
        etype, stop = b[pos] << 8 | b[pos + 1], pos + 4 + (b[pos + 2] << 8 | b[pos + 3])
        if stop > end:
            return None
        if etype in found:
            return None  # a repeated extension: the checked parser reads (and maybe rejects) each copy
        if etype in (EXT_SNI, EXT_ALPN, EXT_VERSIONS):
            found[etype] = (pos + 4, stop)
        elif etype in (EXT_ECH, EXT_ESNI):
            ech = True
        pos = stop
    return _hello_from_extensions(b, b[0] << 8 | b[1], found, ech)


def _hello_from_extensions(
    b: bytes, legacy: int, found: dict[int, tuple[int, int]], ech: bool
) -> ClientHello | None:
    sni: list[str] | None = []
    alpn: tuple[str, ...] | None = ()
    versions: tuple[int, ...] | None = ()
    if EXT_SNI in found:
        sni = _fast_list(b, *found[EXT_SNI], True)
    if EXT_ALPN in found:
        got = _fast_list(b, *found[EXT_ALPN], False)
        alpn = None if got is None else tuple(got)
    if EXT_VERSIONS in found:
        start, stop = found[EXT_VERSIONS]
        if start >= stop or start + 1 + b[start] > stop:
            return None
        raw = b[start + 1 : start + 1 + b[start]]
        versions = tuple(raw[i] << 8 | raw[i + 1] for i in range(0, len(raw) - 1, 2))
    if sni is None or alpn is None:
        return None
    hello = _new(ClientHello)  # build() without its checks: every field is given here, in order
    _set(hello, "__dict__", {"sni": sni[0] if sni else None, "legacy_version": legacy, "versions": versions,
                             "alpn": alpn, "ech": ech, "sni_all": tuple(sni)})  # fmt: skip
    return hello


def _fast_list(b: bytes, start: int, stop: int, names: bool) -> list[str] | None:
    """server_name (``names``) or ALPN list inside ``b[start:stop]``; None where the checked parser raises."""
    if start + 2 > stop:
        return None
    end = start + 2 + (b[start] << 8 | b[start + 1])
    if end > stop:
        return None
    pos, out = start + 2, []
    while pos + (3 if names else 1) <= end:
        if names:
            kind, size, pos = b[pos], b[pos + 1] << 8 | b[pos + 2], pos + 3
        else:
            kind, size, pos = 0, b[pos], pos + 1
        if pos + size > end:
            return None
        if kind == 0:
            raw = b[pos : pos + size]
            out.append(name_text(raw) if names else raw.decode("ascii", "replace"))
        pos += size
    return out


def _parse_client_hello_checked(body: bytes) -> ClientHello:
    r = _Reader(body, "client hello")
    legacy = r.u16()
    if legacy >> 8 not in (2, 3, 0xFE):
        raise ParseError(f"client hello: legacy version 0x{legacy:04x} is not TLS")
    r.take(32)
    r.vec(1)  # session id
    r.vec(2)  # cipher suites
    r.vec(1)  # compression methods
    if r.left() == 0:
        return ClientHello(sni=None, legacy_version=legacy, versions=())
    sni: list[str] = []
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    ech = False
    for etype, edata in _extensions(r.vec(2)):
        if etype == EXT_SNI:
            sni = _server_names(edata)
        elif etype == EXT_ALPN:
            alpn = _alpn(edata)
        elif etype == EXT_VERSIONS:
            versions = _versions(edata)
        elif etype in (EXT_ECH, EXT_ESNI):
            ech = True
    return ClientHello(sni[0] if sni else None, legacy, versions, alpn, ech, tuple(sni))


def _extensions(block: bytes) -> list[tuple[int, bytes]]:
    """(type, data) of each extension in an extensions block (RFC 8446 §4.2)."""
    out: list[tuple[int, bytes]] = []
    pos, end = 0, len(block)
    while pos + 4 <= end:
        etype, elen = EXT_HEADER.unpack_from(block, pos)
        pos += 4
        if pos + elen > end:
            raise NeedData(f"client hello extension 0x{etype:04x}: {elen} bytes, {end - pos} left")
        out.append((etype, block[pos : pos + elen]))
        pos += elen
    return out


def _server_names(data: bytes) -> list[str]:
    r = _Reader(_Reader(data, "server_name").vec(2), "server_name list")
    names: list[str] = []
    while r.left() >= 3:
        kind = r.u8()
        name = r.vec(2)
        if kind == 0:
            names.append(name_text(name))
    return names


def name_text(raw: bytes) -> str:
    """A host name as tshark shows it (ASCII; other bytes as U+FFFD, controls escaped)."""
    return render_label(raw.decode("ascii", "replace").encode())


def _alpn(data: bytes) -> tuple[str, ...]:
    r = _Reader(_Reader(data, "alpn").vec(2), "alpn list")
    out: list[str] = []
    while r.left() >= 1:
        out.append(r.vec(1).decode("ascii", "replace"))
    return tuple(out)


def _versions(data: bytes) -> tuple[int, ...]:
    raw = _Reader(data, "supported_versions").vec(1)
    return tuple(U16.unpack_from(raw, i)[0] for i in range(0, len(raw) - 1, 2))


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


def parse_server_hello(body: bytes) -> str:
    """Negotiated version text of a ServerHello body (supported_versions wins over legacy)."""
    fast = _server_hello_fast(body)
    return version_text(fast) if fast is not None else _parse_server_hello_checked(body)


def _server_hello_fast(b: bytes) -> int | None:
    """The version a well-formed ServerHello selects; None where the checked parser must look."""
    n = len(b)
    if n < 35:
        return None
    version = b[0] << 8 | b[1]
    pos = 35 + b[34] + 3  # after session id, cipher suite and compression method
    if pos > n:
        return None
    if pos + 2 > n:
        return version
    end = pos + 2 + (b[pos] << 8 | b[pos + 1])
    if end > n:
        return None
    pos += 2
    while pos + 4 <= end:
        etype, stop = b[pos] << 8 | b[pos + 1], pos + 4 + (b[pos + 2] << 8 | b[pos + 3])
        if stop > end:
            return None
        if etype == EXT_VERSIONS and stop - pos == 6:
            version = b[pos + 4] << 8 | b[pos + 5]
        pos = stop
    return version


def _parse_server_hello_checked(body: bytes) -> str:
    r = _Reader(body, "server hello")
    legacy = r.u16()
    r.take(32)
    r.vec(1)  # session id
    r.take(3)  # cipher suite, compression method
    version = legacy
    if r.left() >= 2:
        exts = _Reader(r.vec(2), "server hello extensions")
        while exts.left() >= 4:
            etype = exts.u16()
            edata = exts.vec(2)
            if etype == EXT_VERSIONS and len(edata) == 2:
                version = U16.unpack(edata)[0]
    return version_text(version)
