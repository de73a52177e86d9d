"""Memory of the protocols stage: equal field values shared, finished directions slim, no cycles left.

The observations must stay equal (and serialise the same) to ones built by the dataclass
constructors; only object identity changes. Issue #4 (peak RSS on the benchmark).
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.rrset
import pytest
from scapy.all import IP, TCP, UDP, Ether, Raw, wrpcap

from helix_audit.capture import open_capture
from helix_audit.decode.core import decode_batch
from helix_audit.flows.table import FlowTable
from helix_audit.model import DnsQuery, DnsResponse, HttpRequest, HttpResponse, WebSocketUpgrade
from helix_audit.protocols import build, streams
from helix_audit.protocols.extract import Extractor

WS = (
    b"GET /ws HTTP/1.1\r\nHost: w.example\r\nUser-Agent: t/1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\n\r\n"
)
WS_OK = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
GET = b"GET /a HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t/1\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"


def _tcp(client: str, sport: int, talk: list[tuple[bool, bytes]]) -> list:
    server, seq = "10.0.0.1", {True: 1000, False: 5000}
    out = [
        Ether() / IP(src=client, dst=server) / TCP(sport=sport, dport=80, flags="S", seq=999),
        Ether() / IP(src=server, dst=client) / TCP(sport=80, dport=sport, flags="SA", seq=4999, ack=1000),
    ]
    for from_client, data in talk:
        src, dst, sp, dp = (client, server, sport, 80) if from_client else (server, client, 80, sport)
        out.append(Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags="PA", seq=seq[from_client])
                   / Raw(data))  # fmt: skip
        seq[from_client] += len(data)
    return out


def _dns(client: str, sport: int, ident: int) -> list:
    q = dns.message.make_query("shared.example", "A", id=ident)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("shared.example.", 60, "IN", "A", "192.0.2.7", "192.0.2.8"))
    return [
        Ether() / IP(src=client, dst="10.0.0.53") / UDP(sport=sport, dport=53) / Raw(q.to_wire()),
        Ether() / IP(src="10.0.0.53", dst=client) / UDP(sport=53, dport=sport) / Raw(r.to_wire()),
    ]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    pkts: list = []
    for k in range(4):
        client = f"10.0.1.{k + 2}"
        pkts += _tcp(client, 40000 + k, [(True, WS), (False, WS_OK)])
        pkts += _tcp(client, 41000 + k, [(True, GET), (False, OK), (True, GET), (False, OK)])
        pkts += _dns(client, 50000 + k, 7 + k)
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i / 1000
    path = tmp_path / "shared.pcap"
    wrpcap(str(path), pkts)
    return path


def _feed(path: Path, batch: int | None = None) -> Extractor:
    ex, flows = Extractor(), FlowTable()
    for b in open_capture(path).batches(batch) if batch else open_capture(path).batches():
        cols = decode_batch(b)
        ex.add(cols, flows.add(cols))
    return ex


def test_equal_values_are_one_object(capture: Path) -> None:
    obs, _ = _feed(capture).finish()
    by: dict[type, list] = {}
    for o in obs:
        by.setdefault(type(o), []).append(o)
        assert o == type(o)(**vars(o)) and list(vars(o)) == list(vars(type(o)(**vars(o))))
    checks = {
        HttpRequest: ("method", "host", "path", "version", "user_agent"),
        WebSocketUpgrade: ("method", "host", "path", "version", "user_agent"),
        HttpResponse: ("reason", "version"),
        DnsQuery: ("qname", "qnames", "qtypes"),
        DnsResponse: ("qname", "answers"),
    }
    for cls, names in checks.items():
        group = by[cls]
        assert len(group) >= 4, cls
        for name in names:  # as many objects as distinct values
            values = [getattr(o, name) for o in group]
            assert len({id(v) for v in values}) == len(set(values)), (cls, name)
    assert len(by[DnsResponse][0].answers) == 2


def test_trimmed_pools_give_the_same_observations(capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    want = [o.to_record() for o in _feed(capture).finish()[0]]
    monkeypatch.setattr(build, "POOL_LIMIT", 0)  # every batch empties the pools
    got = [o.to_record() for o in _feed(capture, batch=3).finish()[0]]
    assert got == want


def test_finished_directions_share_one_inert_stream(capture: Path) -> None:
    ex = _feed(capture, batch=5)
    kept = list(ex._dirs.values())  # noqa: SLF001
    done = [d for d in kept if d.done]
    assert len(done) >= 8  # the websocket pairs and the keep-alive responders wait for later heads
    assert all(d.stream is streams.RELEASED and d.ts_of is streams.NO_TIMES for d in done)
    assert all(d.stream is not streams.RELEASED for d in kept if not d.done)
    ex.finish()
    released = streams.RELEASED
    assert released.add(1000, 0x02, b"", 7) is False and released.add(1001, 0x10, b"data", 8) is False
    assert (released.isn, released.base, bytes(released.buf), released.pending) == (None, None, b"", {})
    assert streams.NO_TIMES == {}
    assert all(not p for p in build._POOLS)  # noqa: SLF001 - the audit's values do not outlive it


def test_finish_leaves_no_direction_cycles(capture: Path) -> None:
    gc.collect()
    gc.disable()
    try:
        ex = _feed(capture)
        linked = sum(isinstance(d.peer, streams.Direction) for d in ex._dirs.values())  # noqa: SLF001
        assert linked >= 8
        ex.finish()
        del ex
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, streams.Direction)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


def test_cryptography_is_imported_only_for_quic() -> None:
    code = (
        "import sys, helix_audit.pipeline, helix_audit.protocols.quic as q\n"
        "assert 'cryptography' not in sys.modules, 'imported at startup'\n"
        "try:\n    q.initial_keys(bytes(8), q.VERSION_1)\nexcept Exception:\n    pass\n"
        "assert 'cryptography' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
