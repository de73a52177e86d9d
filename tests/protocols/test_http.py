"""HTTP/1 heads: requests, responses, WebSocket / CONNECT / proxy classification, split and bad heads."""

from __future__ import annotations

import pytest

from helix_audit.protocols import http
from helix_audit.protocols.interface import NeedData, ParseError

WS = (
    b"GET /api/v1/revdial?id=7 HTTP/1.1\r\nHost: cp.example:8080\r\nUpgrade: WebSocket\r\n"
    b"connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"user-agent: Go-http-client/1.1\r\n\r\n"
)


def test_websocket_upgrade_case_insensitive() -> None:
    head = http.parse_request(WS + b"\x81\x05hello")
    assert (head.method, head.target, head.version) == ("GET", "/api/v1/revdial?id=7", "HTTP/1.1")
    assert head.is_websocket and not head.is_connect and not head.is_absolute
    assert head.header("HOST") == "cp.example:8080" and head.header("User-Agent") == "Go-http-client/1.1"
    assert head.length == len(WS)


def test_every_split_of_a_head_is_need_data() -> None:
    for cut in range(len(WS) - 1):
        with pytest.raises(NeedData):
            http.parse_request(WS[:cut] if cut >= 1 else b"G")


CLASSIFY = [
    (b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n", "connect",
     "api.example.com:443"),
    (b"GET http://proxy.example/x?y HTTP/1.1\r\n\r\n", "absolute", "proxy.example"),
    (b"POST /v1/sync HTTP/1.0\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody", "plain", "a"),
    (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHost: h\r\n\r\n", "plain", "h"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "kind", "host"), CLASSIFY)
def test_request_classes(raw: bytes, kind: str, host: str) -> None:
    head = http.parse_request(raw)
    got = "connect" if head.is_connect else "absolute" if head.is_absolute else "plain"
    assert (got, http.host_of(head), head.is_websocket) == (kind, host, False)


def test_body_lengths() -> None:
    assert http.parse_request(CLASSIFY[2][0]).body_length == 4
    assert http.parse_request(b"GET / HTTP/1.1\r\n\r\n").body_length == 0
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert http.parse_response(chunked).body_length is None
    assert http.parse_response(b"HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n").body_length is None


RESPONSES = [
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 101, "Switching Protocols"),
    (b"HTTP/1.0 200 Connection established\r\n\r\n", 200, "Connection established"),
    (b"HTTP/1.1 407\r\nProxy-Authenticate: Basic\r\n\r\n", 407, ""),
    (b"HTTP/1.1 403 Forbidden\n\n", 403, "Forbidden"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "status", "reason"), RESPONSES)
def test_responses(raw: bytes, status: int, reason: str) -> None:
    head = http.parse_response(raw)
    assert (head.status, head.reason) == (status, reason)


BAD = [
    (b"\x16\x03\x01\x02\x00", ParseError),
    (b"GET\r\n\r\n", ParseError),
    (b"GET / HTTP/2.0\r\n\r\n", ParseError),
    (b"get / HTTP/1.1\r\n\r\n", ParseError),
    (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * (70 * 1024), ParseError),
    (b"HTTP/1.1 2000 OK\r\n\r\n", ParseError),
]


@pytest.mark.parametrize(("raw", "error"), BAD)
def test_bad_heads(raw: bytes, error: type[Exception]) -> None:
    parse = http.parse_response if raw.startswith(b"HTTP") else http.parse_request
    with pytest.raises(error):
        parse(raw)


def test_broken_field_lines_do_not_hide_the_request() -> None:
    head = http.parse_request(b"GET /x HTTP/1.1\r\nno colon here\r\n: empty name\r\nHost: ok\r\n\r\n")
    assert head.header("host") == "ok"


def test_prefixes_cover_methods_and_status() -> None:
    assert http.starts_like_http(b"OPTIONS * HTTP/1.1") and http.starts_like_http(b"HTTP/1.1 200")
    assert not http.starts_like_http(b"GETX / HTTP/1.1") and not http.starts_like_http(b"\x16\x03\x01")
