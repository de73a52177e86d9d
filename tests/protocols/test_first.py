"""The short cuts of :mod:`helix_audit.protocols.first` and the bulk SYN pass of the extractor give
exactly what the general path gives (every row through ``add_segment`` + ``parse_direction``, every
SYN through the row loop).

Captures are built to hit where a short cut must step aside: heads and hellos split over segments,
a retransmitted or out-of-order first segment, data on the SYN, CONNECT tunnels (the TLS inside in
the same segment or the next), pipelined requests, 101 upgrades, chunked bodies, malformed heads,
alerts, ServerHello flights, application data cut short; plus random byte damage, tiny batches
(directions spread over batches) and byte-range partitions merged with ``absorb``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from scapy.all import IP, TCP, Ether, Raw, wrpcap

from helix_audit.capture import open_capture
from helix_audit.decode.core import decode_batch
from helix_audit.decode.interface import PacketColumns
from helix_audit.flows.interface import PacketFlows
from helix_audit.flows.table import FlowTable
from helix_audit.protocols import extract, first, headfast, http, tls, tlsfast, tlshello
from helix_audit.protocols.extract import Extractor
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus
from tests.parallel.test_partitions import check as check_partitions

from .builders import client_hello_body, handshake, records, sni_ext


class GeneralExtractor(Extractor):
    """The reference: no short cut, every SYN through the row loop."""

    def _early_syns(
        self, cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, keys: np.ndarray
    ) -> np.ndarray:
        return np.arange(rows.size)


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "first_segment", lambda *a: None)
    monkeypatch.setattr(extract, "tls_appdata", lambda *a: False)


def _run(cls: type[Extractor], path: Path, batch: int | None) -> tuple:
    ex = cls()
    flows = FlowTable()
    for b in open_capture(path).batches(batch) if batch else open_capture(path).batches():
        cols = decode_batch(b)
        ex.add(cols, flows.add(cols))
    done = np.flatnonzero(ex._done).tolist()  # noqa: SLF001
    state = sorted(
        (k, d.mode, d.pos, d.tunnel, d.http_seen, d.handshakes, d.tls_used, d.tls_want, d.birth,
         bytes(d.stream.buf), d.stream.pieces, d.stream.base, d.stream.isn, d.partial)
        for k, d in ex._dirs.items()  # noqa: SLF001
    )  # fmt: skip
    syn = sorted(ex._syn.items())  # noqa: SLF001
    obs, anomalies = ex.finish()
    return [o.to_record() for o in obs], anomalies, done, state, syn


def _both(monkeypatch: pytest.MonkeyPatch, path: Path, batch: int | None) -> tuple:
    fast = _run(Extractor, path, batch)
    with monkeypatch.context() as m:
        _general(m)
        general = _run(GeneralExtractor, path, batch)
    return fast, general


HELLO = records(22, handshake(1, client_hello_body(sni_ext(b"first.example"))))
SERVER_HELLO = records(22, handshake(2, bytes(2) + bytes(32) + b"\x00" + bytes(3)))
HRR = records(22, handshake(2, bytes(2) + bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C") + b"\x00" + bytes(3)))  # fmt: skip
APPDATA = b"\x17\x03\x03\x00\x05hello"
ALERT = b"\x15\x03\x03\x00\x02\x02\x28"
WS = b"GET /ws HTTP/1.1\r\nHost: w.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
WS_OK = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
GET = b"GET /a HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t\r\n\r\n"
OK_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"
CONNECT = b"CONNECT t.example:443 HTTP/1.1\r\nHost: t.example:443\r\n\r\n"
CONNECTED = b"HTTP/1.1 200 Connection established\r\n\r\n"
BAD = b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n"[:-4] + b"\x00" * 10 + b"\r\n\r\n"

#: (client segments, server segments): a segment list is sent in order unless shuffled below.
CONVERSATIONS = [
    ([HELLO, APPDATA], [SERVER_HELLO + b"\x16\x03\x03\x00\x10" + bytes(16), APPDATA]),
    ([HELLO[:40], HELLO[40:], APPDATA], [SERVER_HELLO[:30], SERVER_HELLO[30:]]),
    ([HELLO + APPDATA], [HRR, SERVER_HELLO]),
    ([HELLO, APPDATA[:7], APPDATA[7:]], [ALERT]),
    ([HELLO, b"\x14\x03\x03\x00\x01\x01" + APPDATA], [SERVER_HELLO]),
    ([HELLO, b"\x14\x03\x03\x00\x01\x01", APPDATA], [SERVER_HELLO + ALERT]),
    ([HELLO, b"\x14\x03\x03\x00\x01\x01" + APPDATA[:7], APPDATA[7:]], [SERVER_HELLO]),
    ([HELLO, b"\x14\x03\x03\x00\x02\x01\x01" + ALERT + APPDATA], [HRR + SERVER_HELLO]),
    ([WS, b"\x81\x85abcd12345"], [WS_OK, b"\x81\x02hi", GET]),
    ([GET, GET], [OK_BODY, OK_BODY]),
    ([GET + GET], [OK_BODY + OK_BODY, CHUNKED]),
    ([GET[:20], GET[20:]], [CHUNKED, OK_BODY]),
    ([CONNECT, HELLO, APPDATA], [CONNECTED, SERVER_HELLO]),
    ([CONNECT + HELLO, APPDATA], [CONNECTED + SERVER_HELLO]),
    ([CONNECT], [CONNECTED]),
    ([BAD, GET], [b"HTTP/1.1 99x\r\n\r\n", OK_BODY]),
    ([b"GE", b"T / HTTP/1.1\r\n\r\n"], [b"HTTP/1.1 204 No Content\r\n\r\n"]),
    ([b"\x05\x01\x00", HELLO], [b"\x05\x00", SERVER_HELLO]),
    ([b"SSH-2.0-x\r\n"], [b"SSH-2.0-y\r\n"]),
    ([HELLO[:3]], [SERVER_HELLO[:5]]),
]


def _pkt(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, data: bytes = b""):  # noqa: ANN202
    return Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq) / Raw(data)


def _damage(rng: random.Random, data: bytes) -> bytes:
    if not data or rng.random() > 0.15:
        return data
    if rng.random() < 0.5:
        return data[: rng.randrange(len(data))] or data[:1]
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]


def _side(rng: random.Random, src: str, dst: str, sp: int, dp: int, isn: int, segs: list[bytes]) -> list:
    out, seq = [], isn + 1
    syn = _pkt(src, dst, sp, dp, "S" if src < dst else "SA", isn)
    if rng.random() < 0.1 and segs:  # data on the SYN (TCP Fast Open)
        syn = _pkt(src, dst, sp, dp, "S" if src < dst else "SA", isn, segs[0])
        seq += len(segs[0])
        segs = segs[1:]
    if rng.random() < 0.85:
        out.append(syn)
    for data in segs:
        data = _damage(rng, data)
        out.append(_pkt(src, dst, sp, dp, "PA", seq % (1 << 32), data))
        if rng.random() < 0.1:  # a retransmission (sometimes only its start)
            out.append(_pkt(src, dst, sp, dp, "PA", seq % (1 << 32), data[: rng.randint(1, len(data))]))
        seq += len(data)
    if rng.random() < 0.15 and len(out) > 2:  # the first segments out of order
        out[-1], out[-2] = out[-2], out[-1]
    return out


def _capture(path: Path, seed: int, n: int = 150, convos: list | None = None) -> Path:
    rng = random.Random(seed)
    pkts = []
    for k in range(n):
        client, server = rng.choice(convos or CONVERSATIONS)
        c, s = f"10.2.{k // 100}.{k % 100 + 1}", "10.9.0.2"
        sp, dp = 41000 + k % 40, rng.choice([443, 8080, 3128, 53])  # ports reused; 53: DNS over TCP
        convo = _side(rng, c, s, sp, dp, rng.randrange(1 << 32), list(client))
        back = _side(rng, s, c, dp, sp, rng.randrange(1 << 32), list(server))
        if rng.random() < 0.5:  # the server answers after the client's first segment
            convo = convo[:2] + back + convo[2:]
        else:
            convo += back
        if rng.random() < 0.1:
            rng.shuffle(convo)
        pkts += convo
    wrpcap(str(path), pkts)
    return path


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("batch", [None, 1, 3, 17])
def test_short_cuts_equal_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, batch: int | None
) -> None:
    path = _capture(tmp_path / "c.pcap", seed)
    fast, general = _both(monkeypatch, path, batch)
    assert fast == general
    kinds = {r["type"] for r in fast[0]}
    assert {"tls_client_hello", "tls_server_hello", "websocket_upgrade", "http_connect", "tls_alert"} <= kinds


def test_short_cuts_are_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above compares something: the short cuts do serve most directions here."""
    path = _capture(tmp_path / "c.pcap", 7)
    calls = {"first": 0, "first_hit": 0, "appdata": 0}
    real_first, real_appdata = first.first_segment, first.tls_appdata

    def counted_first(*args):  # noqa: ANN002, ANN202
        got = real_first(*args)
        calls["first"] += 1
        calls["first_hit"] += got is not None
        return got

    def counted_appdata(*args):  # noqa: ANN002, ANN202
        got = real_appdata(*args)
        calls["appdata"] += got
        return got

    monkeypatch.setattr(extract, "first_segment", counted_first)
    monkeypatch.setattr(extract, "tls_appdata", counted_appdata)
    _run(Extractor, path, None)
    assert calls["first_hit"] > calls["first"] // 4 > 0
    assert calls["appdata"] > 0


@pytest.mark.parametrize("seed", [5, 6])
def test_short_cuts_partitions_merge_exactly(tmp_path: Path, seed: int) -> None:
    check_partitions(_capture(tmp_path / "c.pcap", seed, 60), 6)


@needs_corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_short_cuts_equal_the_general_path_on_the_corpus(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    assert CORPUS is not None
    for batch in (None, 1000):
        fast, general = _both(monkeypatch, CORPUS / name, batch)
        assert fast == general


def test_parser_bugs_leave_the_general_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser raising (a bug) inside a short cut: same anomaly, same direction state afterwards."""
    boom = records(22, handshake(1, client_hello_body(sni_ext(b"boom.example"))))
    real_scan, real_request, real_spans = tls.scan_stream, http.parse_request, headfast.spans
    real_flight, real_server = tlsfast.first_flight, tlshello.parse_server_hello

    def flight(data: bytes, *args):  # noqa: ANN002, ANN202
        if b"boom" in data:
            raise RuntimeError("scan bug")  # as the scan it stands for
        return real_flight(data, *args)

    def scan(data: bytes, *args):  # noqa: ANN002, ANN202
        if b"boom" in data:
            raise RuntimeError("scan bug")
        return real_scan(data, *args)

    def server(data: bytes):  # noqa: ANN202
        if b"bang" in data:
            raise RuntimeError("server hello bug")  # the parser of a flight that finishes its direction
        return real_server(data)

    def request(data: bytes):  # noqa: ANN202
        if b"boom" in data:
            raise RuntimeError("request bug")
        return real_request(data)

    def spans(data: bytes):  # noqa: ANN202
        if b"boom" in data:
            raise RuntimeError("head kernel bug")
        return real_spans(data)

    monkeypatch.setattr(tls, "scan_stream", scan)
    monkeypatch.setattr(headfast, "spans", spans)
    monkeypatch.setattr(tlsfast, "first_flight", flight)
    monkeypatch.setattr(http, "parse_request", request)
    monkeypatch.setattr(tlshello, "parse_server_hello", server)
    # a ServerHello whose flight scan raises, one whose parser raises (the flight finishes its
    # direction: the short cut must still leave the general path's state)
    boom_server = records(22, handshake(2, bytes(2) + b"boom" + bytes(28) + b"\x00" + bytes(3)))
    bang_server = records(22, handshake(2, bytes(2) + b"bang" + bytes(28) + b"\x00" + bytes(3)))
    convos = [([boom, APPDATA], [SERVER_HELLO]), ([GET.replace(b"/a", b"/boom"), GET], [OK_BODY]),
              ([HELLO, APPDATA], [boom_server]), ([HELLO, APPDATA], [bang_server + ALERT])]  # fmt: skip
    path = _capture(tmp_path / "c.pcap", 11, 40, convos)
    for batch in (None, 2):
        fast, general = _both(monkeypatch, path, batch)
        assert fast == general
        assert any(a.name == "protocol_parser_error" for a in fast[1])
        assert any("server hello bug" in a.detail for a in fast[1])
