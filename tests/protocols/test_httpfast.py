"""HTTP head splitting by ``find`` and field parsing on latin-1 text give what the regex split and
the per-line bytes parsing gave (kept here as the reference), on crafted and random heads."""

from __future__ import annotations

import random

import pytest

from helix_audit.protocols import http


def _reference_split(data: bytes) -> tuple[list[bytes], int] | None:
    end = http._HEAD_END.search(data, 0, http.MAX_HEAD + 4)
    if end is None:
        return None
    return data[: end.start()].replace(b"\r\n", b"\n").split(b"\n"), end.end()


def _reference_fields(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and out:
            key, text = out[-1]
            out[-1] = (key, text + " " + line.strip().decode("latin-1"))
            continue
        raw_name, sep, raw_value = line.partition(b":")
        if not sep or not raw_name.strip():
            continue
        out.append((raw_name.strip().decode("latin-1").lower(), raw_value.strip().decode("latin-1")))
    return tuple(out)


ALPHABET = b"\r\n\r\n\r\n: \t\x0b\x0c\x1c\x1f\x85\xa0\xc3\x96Aa-Zz:/"


def _heads(rng: random.Random, n: int) -> list[bytes]:
    seeds = [
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-A:  v \r\n  folded\r\n\r\nbody",
        b"HTTP/1.1 101 Switching\nUpgrade: websocket\n\nrest",
        b"POST / HTTP/1.0\r\n\xa0Name\x85: \x85value\xa0\r\n:\r\nbad line\r\n\r\n",
    ]
    out = list(seeds)
    for _ in range(n):
        out.append(bytes(rng.choice(ALPHABET) for _ in range(rng.randrange(40))))
        seed = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            seed[rng.randrange(len(seed))] = rng.choice(ALPHABET)
        out.append(bytes(seed))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_split_and_fields_match_reference(seed: int) -> None:
    for data in _heads(random.Random(seed), 3000):
        ref = _reference_split(data)
        try:
            first, lines, length = http._split_head(data)
        except http.NeedData:
            assert ref is None
            continue
        assert ref is not None, data
        assert ([first] + [line.encode("latin-1") for line in lines], length) == ref, data
        assert http._fields(lines) == _reference_fields(ref[0][1:]), data


def test_head_end_bound() -> None:
    big = b"GET / HTTP/1.1\r\n" + b"a" * (http.MAX_HEAD - 16) + b"\r\n\r\n"
    for cut in (0, 1, 2, 3, 4, 5):
        data = big[: len(big) - cut] + b"\r\n\r\n"
        assert (http._head_end(data) is None) == (_reference_split(data) is None)


def _reference_request(data: bytes) -> tuple[str, str, str, tuple[tuple[str, str], ...], int]:
    """The request line read as bytes by the bytes pattern, then decoded (the parser reads text)."""
    first, lines, length = http._split_head(data)
    m = http._REQUEST_LINE.match(first)
    if m is None:
        raise http.ParseError("bad request line")
    method, target, version = (g.decode("latin-1") if g is not None else None for g in m.groups())
    return method, target, version or "HTTP/0.9", http._fields(lines), length  # type: ignore[return-value]


def _reference_response(data: bytes) -> tuple[str, int, str, tuple[tuple[str, str], ...], int]:
    first, lines, length = http._split_head(data)
    m = http._STATUS_LINE.match(first)
    if m is None:
        raise http.ParseError("bad status line")
    version, status, reason = m.groups()
    text = (reason or b"").decode("latin-1")
    return version.decode("latin-1"), int(status), text, http._fields(lines), length


LINE_ALPHABET = b" \t\r\n\x0b\x0c\x1c\x00\x85\xa0\xff/:.019AHPTaz"
HOSTILE = [
    b"GET /a\x00b HTTP/1.1\r\nHost: a\x00b\r\n\r\n",  # NUL bytes
    b"GET /\xa0x HTTP/1.1\r\nHost: h\r\n\r\n",  # \xa0: whitespace to str.split, not to bytes
    b"GET /\x85 HTTP/1.1\r\n\r\n",
    b"GET /\x1c HTTP/1.1\r\n\r\n",
    b"GET\x0b/ HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1 \r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\n\n",  # bare LF
    b"GET  /  HTTP/1.1\r\nHOST: a\r\nhost: b\r\n Host: c\r\n\tfold\r\n\r\n",  # duplicates, odd case, folds
    b"CONNECT h:443 HTTP/1.1\r\nhOsT: h:443\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * (http.MAX_HEAD - 30) + b"\r\n\r\n",  # huge head
    b"HTTP/1.1 200 \xa0OK\xa0\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 200\r\n\r\n",
    b"HTTP/1.1 20\x000 OK\r\n\r\n",
    b"HTTP/1.1 101 Switching \x85\r\n\r\n",
]


@pytest.mark.parametrize("seed", range(2))
def test_line_parsing_matches_bytes_reference(seed: int) -> None:
    """Request and status lines matched on latin-1 text give what the bytes patterns gave."""
    rng = random.Random(seed)
    cases = list(HOSTILE)
    for _ in range(3000):
        seed_head = bytearray(rng.choice(HOSTILE))
        for _ in range(rng.randint(1, 3)):
            seed_head[rng.randrange(min(len(seed_head), 40))] = rng.choice(LINE_ALPHABET)
        cases.append(bytes(seed_head))
    for data in cases:
        if data.startswith(b"HTTP/1."):
            parse, ref = http.parse_response, _reference_response
        else:
            parse, ref = http.parse_request, _reference_request  # type: ignore[assignment]
        try:
            want = ref(data)
        except (http.NeedData, http.ParseError) as exc:
            want = type(exc)  # type: ignore[assignment]
        try:
            head = parse(data)
        except (http.NeedData, http.ParseError) as exc:
            if type(exc) is http.ParseError and want is http.NeedData:
                continue  # not a request at all: refused before the head is split
            assert want is type(exc), data
            continue
        if isinstance(head, http.RequestHead):
            assert (head.method, head.target, head.version, head.headers, head.length) == want, data
        else:
            assert (head.version, head.status, head.reason, head.headers, head.length) == want, data
