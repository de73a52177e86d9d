"""HTTP/1.x request and response heads.

RFC 9112 §2-3 (message format, request line, request-target forms: origin, absolute, authority for
CONNECT), §4 (status line), §5 (field lines), §6.3 (message body length); RFC 9110 §7.8 (Upgrade),
§9.3.6 (CONNECT); RFC 6455 §4.1 (the WebSocket opening handshake).

A head ends at the first empty line (CRLF CRLF; a bare LF LF is tolerated as RFC 9112 §2.2 allows).
Until then the head is :class:`NeedData`; a first line that is not a request or status line is a
:class:`ParseError`. Field names are matched case-insensitively; values are kept as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .interface import NeedData, ParseError

MAX_HEAD = 64 * 1024
METHODS = (
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH", b"TRACE",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH",
)  # fmt: skip
#: Payload prefixes that make a later TCP segment worth parsing (the extractor tests them vectorised).
PREFIXES = tuple(m + b" " for m in METHODS) + (b"HTTP/1.",)
_REQUEST_PREFIXES = PREFIXES[:-1]
_new, _set = object.__new__, object.__setattr__
_REQUEST_LINE = re.compile(rb"([A-Z][A-Z_-]{0,19}) (\S+)(?: (HTTP/1\.[0-9]))?\Z")  # HTTP/0.9: no version
_STATUS_LINE = re.compile(rb"(HTTP/1\.[0-9]) ([0-9]{3})(?: (.*))?\Z")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# The two line patterns on latin-1 text (one char per byte; re.ASCII: ``\S`` as in a bytes pattern).
_REQUEST_TEXT = re.compile(_REQUEST_LINE.pattern.decode("ascii"), re.ASCII)
_STATUS_TEXT = re.compile(_STATUS_LINE.pattern.decode("ascii"), re.ASCII)


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value) in order
    length: int  # bytes of the head, empty line included

    def header(self, name: str) -> str | None:
        """First value of field ``name`` (case-insensitive)."""
        return _first(self.headers, name.lower())

    @property
    def is_websocket(self) -> bool:
        return "websocket" in (_first(self.headers, "upgrade") or "").lower()

    @property
    def is_connect(self) -> bool:
        return self.method == "CONNECT"

    @property
    def is_absolute(self) -> bool:
        """Absolute-form target (a proxy request: ``GET http://host/path``)."""
        return is_absolute(self.target)

    @property
    def body_length(self) -> int | None:
        """Declared Content-Length (None when absent, chunked or invalid)."""
        return _content_length(self)


@dataclass(frozen=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    length: int

    def header(self, name: str) -> str | None:
        """First value of field ``name`` (case-insensitive)."""
        return _first(self.headers, name.lower())

    @property
    def body_length(self) -> int | None:
        return _content_length(self)


def _first(headers: tuple[tuple[str, str], ...], key: str) -> str | None:
    for k, v in headers:  # a plain loop: several times cheaper than next() over a generator
        if k == key:
            return v
    return None


def _content_length(head: RequestHead | ResponseHead) -> int | None:
    te, cl = _first(head.headers, "transfer-encoding") or "", _first(head.headers, "content-length")
    return body_length(te, cl, 0 if isinstance(head, RequestHead) else None)


def body_length(te: str, cl: str | None, absent: int | None) -> int | None:
    """A body's length from the first Transfer-Encoding and Content-Length values: None when chunked
    or not a plain number, ``absent`` without a Content-Length."""
    if "chunked" in te.lower():
        return None
    if cl is None:
        return absent
    cl = cl.strip()
    return int(cl) if cl.isascii() and cl.isdigit() and len(cl) <= 18 else None  # [0-9]{1,18}


def starts_like_http(data: bytes) -> bool:
    return data.startswith(PREFIXES)


def _head_end(data: bytes) -> tuple[int, int] | None:
    """(start, end) of ``_HEAD_END``'s first match in ``data[:MAX_HEAD + 4]``, by two ``find`` calls.

    A match is a LF followed by LF or CR LF (its start moves back over a CR before that LF); the
    leftmost match is the one with the first such LF, so the earlier of the two finds gives it.
    """
    stop = MAX_HEAD + 4
    crlf = data.find(b"\n\r\n", 0, stop)
    lf = data.find(b"\n\n", 0, stop if crlf < 0 else crlf + 2)
    if lf >= 0:
        at, end = lf, lf + 2
    elif crlf >= 0:
        at, end = crlf, crlf + 3
    else:
        return None
    return (at - 1 if at and data[at - 1] == 13 else at), end


def _split_head(data: bytes) -> tuple[bytes, list[str], int]:
    """(first line, the field lines as latin-1 text, head length); the lines as ``_HEAD_END`` cuts them."""
    first, lines, end = _split_text(data)
    return first.encode("latin-1"), lines, end


def _split_text(data: bytes) -> tuple[str, list[str], int]:
    """:func:`_split_head` with the first line left as latin-1 text (the line patterns read text)."""
    found = _head_end(data)
    if found is None:
        if len(data) >= MAX_HEAD:
            raise ParseError(f"http head: no end within {MAX_HEAD} bytes")
        raise NeedData(f"http head: no empty line yet in {len(data)} bytes")
    lines = data[: found[0]].decode("latin-1").replace("\r\n", "\n").split("\n")
    return lines[0], lines[1:], found[1]


_WS = " \t\n\r\x0b\x0c"  # what ``bytes.strip()`` removes: ASCII whitespace, not all of Unicode's


def _fields(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """Field lines already decoded as latin-1 (one char per byte: the same cuts as on bytes)."""
    out: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:  # obsolete line folding
            key, text = out[-1]
            out[-1] = (key, text + " " + line.strip(_WS))
            continue
        raw_name, sep, raw_value = line.partition(":")
        name = raw_name.strip(_WS)
        if not sep or not name:
            continue  # tolerated like tshark: a broken field line does not hide the request
        out.append((name.lower(), raw_value.strip(_WS)))
    return tuple(out)


def parse_request(data: bytes) -> RequestHead:
    """The request head at the start of ``data``."""
    if not data.startswith(_REQUEST_PREFIXES) and not _looks_like_method(data):
        if any(p.startswith(data) for p in _REQUEST_PREFIXES):
            raise NeedData(f"http request: {len(data)} bytes, request line not complete")
        raise ParseError(f"http request: starts with {data[:16]!r}, not a request line")
    first, lines, length = _split_text(data)
    m = _REQUEST_TEXT.match(first)
    if m is None:
        raise ParseError(f"http request: bad request line {first[:80].encode('latin-1')!r}")
    method, target, version = m.groups()
    head = _new(RequestHead)  # build() without its checks: every field given, in declaration order
    _set(head, "__dict__", {
        "method": method, "target": target, "version": "HTTP/0.9" if version is None else version,
        "headers": _fields(lines), "length": length,
    })  # fmt: skip
    return head


def _looks_like_method(data: bytes) -> bool:
    word = data[:21].split(b" ", 1)[0]
    return len(data) > len(word) and word.isalpha() and word.isupper()


def parse_response(data: bytes) -> ResponseHead:
    """The response head at the start of ``data``."""
    if not data.startswith(b"HTTP/1."):
        if len(data) < 7 and b"HTTP/1."[: len(data)] == data:
            raise NeedData("http response: status line not complete")
        raise ParseError(f"http response: starts with {data[:16]!r}, not a status line")
    first, lines, length = _split_text(data)
    m = _STATUS_TEXT.match(first)
    if m is None:
        raise ParseError(f"http response: bad status line {first[:80].encode('latin-1')!r}")
    version, status, reason = m.groups()
    head = _new(ResponseHead)
    _set(head, "__dict__", {"version": version, "status": int(status), "reason": reason or "",
                            "headers": _fields(lines), "length": length})  # fmt: skip
    return head


def connect_target(head: RequestHead) -> str:
    """``host:port`` of a CONNECT (the authority-form target as sent)."""
    return head.target


def host_of(head: RequestHead) -> str | None:
    """Host header, else the authority of an absolute-form target."""
    host = _first(head.headers, "host")
    return host if host is not None else authority_of(head.target)


def is_absolute(target: str) -> bool:
    """Absolute-form target (a proxy request: ``GET http://host/path``)."""
    return "://" in target and not target.startswith("/")


def authority_of(target: str) -> str | None:
    """The authority of an absolute-form target (None for any other form)."""
    return target.split("://", 1)[1].split("/", 1)[0] if is_absolute(target) else None


def request_fields(head: RequestHead) -> tuple[str, str | None, str, str, str | None]:
    """(method, :func:`host_of`, target, version, User-Agent): what a request observation holds."""
    return head.method, host_of(head), head.target, head.version, _first(head.headers, "user-agent")
