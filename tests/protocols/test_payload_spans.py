"""The row loop copies a payload out of the batch only when it reads it (``rows.payload_spans``):
the spans must give exactly ``rows.payloads``, IP-reassembled rows (payload not in the batch
buffer) and rows without payload included, and the extractor the result of reading every payload.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from scapy.all import IP, TCP, Ether, Raw, fragment, wrpcap

from helix_audit.capture import open_capture
from helix_audit.decode.core import decode_batch
from helix_audit.protocols.extract import Extractor
from helix_audit.protocols.rows import payload_spans, payloads

from .builders import client_hello_body, handshake, records, sni_ext
from .test_shortcuts import PlainExtractor, _run


def _pkt(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, data: bytes = b""):  # noqa: ANN202
    return IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq) / Raw(data)


def _capture(path: Path, seed: int) -> Path:
    """HTTP keep-alive, WebSocket and TLS conversations, some of their packets IP-fragmented."""
    rng = random.Random(seed)
    hello = records(22, handshake(1, client_hello_body(sni_ext(b"frag.example"))))
    pkts = []
    for n in range(40):
        c, s, sp = f"10.2.0.{n + 1}", "10.9.0.2", 41000 + n
        kind = rng.choice(["http", "ws", "tls"])
        isn, rsn = rng.randrange(1 << 32), rng.randrange(1 << 32)
        if kind == "http":
            post = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 900\r\n\r\n" + b"x" * 900
            client = [post, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /c HTTP/1.1\r\nHo", b"st: h\r\n\r\n"]
            server = [b"HTTP/1.1 200 OK\r\nContent-Length: 700\r\n\r\n" + b"y" * 700]
        elif kind == "ws":
            up = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"
            client = [up, b"\x81\x85abcdGET / HTTP/1.1", b"PUT /x HTTP/1.1\r\nHost: h\r\n\r\n" + b"z" * 1200]
            server = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"]
        else:
            client = [hello + b"\x00" * rng.randint(0, 1500), b"\x17\x03\x03\x00\x01x"]
            server = [records(22, handshake(2, bytes(2) + bytes(32) + b"\x00" + bytes(3)))]
        convo = [_pkt(c, s, sp, 80, "S", isn), _pkt(s, c, 80, sp, "SA", rsn)]
        cseq, sseq = isn + 1, rsn + 1
        for data in client:
            convo.append(_pkt(c, s, sp, 80, "PA", cseq % (1 << 32), data))
            cseq += len(data)
        for data in server:
            convo.append(_pkt(s, c, 80, sp, "PA", sseq % (1 << 32), data))
            sseq += len(data)
        for p in convo:
            if len(p) > 600 and rng.random() < 0.6:
                pkts += [Ether() / f for f in fragment(p, fragsize=rng.choice([256, 512]))]
            else:
                pkts.append(Ether() / p)
    wrpcap(str(path), pkts)
    return path


@pytest.mark.parametrize("seed", [1, 2])
def test_spans_give_the_payloads(tmp_path: Path, seed: int) -> None:
    path = _capture(tmp_path / "f.pcap", seed)
    seen = 0
    for batch in open_capture(path).batches(37):
        cols = decode_batch(batch)
        seen += len(cols.reassembled)
        for rows in (np.arange(len(cols)), np.flatnonzero(cols.pay_len > 0)[::2], np.zeros(0, np.int64)):
            view, offs, lens = payload_spans(cols, rows)
            got = [view[o : o + n].tobytes() for o, n in zip(offs, lens, strict=True)]
            assert got == payloads(cols, rows)
    assert seen > 0  # the capture holds IP-reassembled TCP rows


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch", [None, 3, 37])
def test_fragmented_tcp_as_reading_every_payload(tmp_path: Path, seed: int, batch: int | None) -> None:
    path = _capture(tmp_path / "f.pcap", seed)
    fast = _run(Extractor, [path], batch)
    assert fast == _run(PlainExtractor, [path], batch)
    assert any(o[0]["type"] == "websocket_upgrade" for o in fast[0])


@pytest.mark.parametrize("seed", range(4))
def test_addresses_give_addr_of_each_row(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rows.addresses`` (by ``lo`` alone when every ``hi`` is 0, else per distinct address) gives
    ``addr`` of every row, IPv4-mapped or not, across cache resets."""
    from helix_audit.decode.interface import addr_to_str
    from helix_audit.protocols import rows

    monkeypatch.setattr(rows, "V4_CACHE", {})
    rng = np.random.default_rng(seed)
    for n in (0, 1, 50, 3000):
        v4 = 0xFFFF_0000_0000 | rng.integers(0, 1 << 32, n, dtype=np.uint64) % np.uint64(200 + 10**seed)
        lo = np.where(rng.random(n) < 0.1, rng.integers(0, 1 << 20, n, dtype=np.uint64), v4).astype(np.uint64)
        for hi in (np.zeros(n, np.uint64), np.where(rng.random(n) < 0.2, np.uint64(0x2001_0DB8 << 32), 0)):
            hi = hi.astype(np.uint64)
            assert rows.addresses(hi, lo) == [
                addr_to_str(h, x) for h, x in zip(hi.tolist(), lo.tolist(), strict=True)
            ]
    assert rows.V4_CACHE  # the IPv4 path ran
