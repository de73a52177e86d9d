"""TLS handshake bodies: the fields of ClientHello and ServerHello, and how tshark names them.

RFC 8446 §4.1.2 (ClientHello), §4.1.3 (ServerHello, HelloRetryRequest), RFC 6066 §3 (server_name),
RFC 7301 (ALPN), RFC 8446 §4.2.1 (supported_versions), draft-ietf-tls-esni (encrypted_client_hello
0xfe0d; the older ESNI extension 0xffce also sets ``ech``), RFC 6101 Appendix E / SSL 2.0 (the
two-byte-header CLIENT-HELLO some old clients still send).

Apart from :mod:`.tls` (the record layer) because a handshake body comes from more than records:
QUIC carries its ClientHello in CRYPTO frames (:mod:`.quicconn`). Each parser has a fast path by
direct indexing for well-formed messages and a checked path (:class:`_Reader`) that gives the
result or the error for anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .dns import render_label
from .interface import NeedData, ParseError

U16 = struct.Struct("!H")
EXT_HEADER = struct.Struct("!HH")  # extension type, length
EXT_SNI, EXT_ALPN, EXT_VERSIONS, EXT_ECH, EXT_ESNI = 0, 16, 43, 0xFE0D, 0xFFCE
#: RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest (a second ClientHello follows)
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
_new, _set = object.__new__, object.__setattr__


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
