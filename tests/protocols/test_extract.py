"""The extractor on small captures written here with scapy: reassembly, tunnels, pairing, QUIC, batches."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.all import IP, TCP, UDP, Ether, Raw, wrpcap

from helix_audit.model import (
    DnsQuery,
    HttpConnect,
    HttpRequest,
    TlsAlert,
    TlsClientHello,
    WebSocketUpgrade,
)  # fmt: skip
from helix_audit.protocols import quic
from helix_audit.protocols.selection import union_rows

from .builders import crypto_frame, protect_initial, real_client_hello, records
from .pipeline import extract

C, S = "10.0.0.1", "10.0.0.2"


class Conv:
    """A TCP conversation with explicit sequence numbers; ``send`` returns the frame number."""

    def __init__(self, sport: int = 40000, dport: int = 443, syn: bool = True) -> None:
        self.pkts: list = []
        self.sport, self.dport = sport, dport
        self.seq = {"c": 1000, "s": 5000}
        if syn:
            self.pkts.append(self._pkt("c", "S", self.seq["c"], b""))
            self.pkts.append(self._pkt("s", "SA", self.seq["s"], b""))
            self.seq = {"c": 1001, "s": 5001}

    def _pkt(self, side: str, flags: str, seq: int, data: bytes):  # noqa: ANN202 - scapy packet
        src, dst, sp, dp = (C, S, self.sport, self.dport) if side == "c" else (S, C, self.dport, self.sport)
        return Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq) / Raw(data)

    def send(self, side: str, data: bytes, at: int | None = None) -> int:
        """Send ``data`` at stream offset ``at`` (default: next) without advancing for re-sends."""
        base = 1001 if side == "c" else 5001
        seq = base + at if at is not None else self.seq[side]
        if at is None:
            self.seq[side] += len(data)
        self.pkts.append(self._pkt(side, "PA", seq, data))
        return len(self.pkts)

    def write(self, path: Path) -> Path:
        wrpcap(str(path), self.pkts)
        return path


def of(obs: list, kind: type) -> list:
    return [o for o in obs if type(o) is kind]


def test_client_hello_out_of_order_and_retransmitted(tmp_path: Path) -> None:
    ch = real_client_hello("split.example", ["h2"])
    a, b = len(ch) // 3, 2 * len(ch) // 3
    conv = Conv()
    f_mid = conv.send("c", ch[a:b], at=a)
    f_first = conv.send("c", ch[:a], at=0)
    conv.send("c", ch[:a], at=0)  # retransmission
    f_last = conv.send("c", ch[b:], at=b)
    obs, anomalies = extract(conv.write(tmp_path / "ooo.pcap"))
    (hello,) = of(obs, TlsClientHello)
    assert hello.sni == "split.example" and hello.frame == f_last
    assert set(hello.frames) == {f_first, f_mid, f_last}
    assert (hello.src, hello.sport, hello.dst, hello.dport, hello.transport) == (C, 40000, S, 443, "tcp")
    assert anomalies == []


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_client_hello_frame_agrees_with_tshark(tmp_path: Path) -> None:
    ch = real_client_hello("agree.example", [])
    conv = Conv()
    for k in range(0, len(ch), 150):
        conv.send("c", ch[k : k + 150])
    path = conv.write(tmp_path / "agree.pcap")
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-Y",
        "tls.handshake.type==1",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    (hello,) = of(extract(path)[0], TlsClientHello)
    assert [str(hello.frame)] == out


def test_dns_over_tcp_two_in_one_segment_and_one_split(tmp_path: Path) -> None:
    import dns.message

    msgs = [dns.message.make_query(f"q{k}.example", "AAAA").to_wire() for k in range(3)]
    framed = [struct.pack("!H", len(m)) + m for m in msgs]
    conv = Conv(dport=53)
    f_both = conv.send("c", framed[0] + framed[1])
    conv.send("c", framed[2][:7])
    f_end = conv.send("c", framed[2][7:])
    obs, _ = extract(conv.write(tmp_path / "dnstcp.pcap"))
    got = [(q.qname, q.qtype, q.frame, q.transport) for q in of(obs, DnsQuery)]
    assert got == [
        ("q0.example", "AAAA", f_both, "tcp"),
        ("q1.example", "AAAA", f_both, "tcp"),
        ("q2.example", "AAAA", f_end, "tcp"),
    ]


def test_connect_tunnel_pairs_status_and_sees_the_client_hello(tmp_path: Path) -> None:
    conv = Conv(dport=3128)
    f_req = conv.send("c", b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n")
    f_resp = conv.send("s", b"HTTP/1.1 200 Connection established\r\n\r\n")
    conv.send("c", real_client_hello("api.example.com", ["h2"]))
    conv.send("s", records(21, b"\x02\x28"))
    obs, _ = extract(conv.write(tmp_path / "connect.pcap"))
    (connect,) = of(obs, HttpConnect)
    (hello,) = of(obs, TlsClientHello)
    (alert,) = of(obs, TlsAlert)
    assert (connect.target, connect.status, connect.response_frame, connect.frame) == (
        "api.example.com:443", 200, f_resp, f_req,
    )  # fmt: skip
    assert hello.sni == "api.example.com" and hello.flow_id == connect.flow_id and hello.dport == 3128
    assert (alert.level, alert.description, alert.src) == ("fatal", "handshake_failure", S)


def test_refused_connect_and_websocket_pairing(tmp_path: Path) -> None:
    denied = Conv(sport=40001, dport=3128)
    denied.send("c", b"CONNECT blocked.example:443 HTTP/1.1\r\n\r\n")
    ws = Conv(sport=40002, dport=8080)
    f_up = ws.send("c", b"GET /api/v1/revdial HTTP/1.1\r\nHost: cp\r\nUpgrade: websocket\r\n\r\n")
    f_101 = ws.send("s", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    ws.send("c", b"\x81\x85abcdGET / HTTP/1.1")  # a frame, not a request: must not be read as one
    f_403 = denied.send("s", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    path = tmp_path / "pairs.pcap"
    wrpcap(str(path), denied.pkts[:3] + ws.pkts + denied.pkts[3:])
    f_403 += len(ws.pkts)
    f_up, f_101 = f_up + 3, f_101 + 3
    obs, _ = extract(path)
    (connect,) = of(obs, HttpConnect)
    (upgrade,) = of(obs, WebSocketUpgrade)
    assert (connect.status, connect.response_frame) == (403, f_403)
    assert (upgrade.path, upgrade.accepted, upgrade.status, upgrade.frame, upgrade.response_frame) == (
        "/api/v1/revdial", True, 101, f_up, f_101,
    )  # fmt: skip
    assert of(obs, HttpRequest) == []


def test_keep_alive_requests_past_the_stream_start(tmp_path: Path) -> None:
    conv = Conv(dport=80)
    conv.send("c", b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 300\r\n\r\n" + b"x" * 300)
    f_b = conv.send("c", b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    conv.send("c", b"GET /c HTTP/1.1\r\nHo")
    f_c = conv.send("c", b"st: h\r\n\r\n")
    obs, anomalies = extract(conv.write(tmp_path / "keepalive.pcap"), limit=128)
    assert [(r.path, r.frame) for r in of(obs, HttpRequest)] == [("/a", 3), ("/b", f_b), ("/c", f_c)]
    assert anomalies == []


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 5, 6, 7, 64])
def test_keep_alive_head_split_across_batches(tmp_path: Path, batch_size: int) -> None:
    """A later request's head in two segments is found whatever batch boundary falls between them."""
    conv = Conv(dport=80)
    conv.send("c", b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 300\r\n\r\n" + b"x" * 300)
    conv.send("c", b"GET /c HTTP/1.1\r\nHo")
    f_c = conv.send("c", b"st: h\r\n\r\n")
    obs, anomalies = extract(conv.write(tmp_path / "split.pcap"), batch_size=batch_size, limit=128)
    assert [(r.path, r.frame, r.frames) for r in of(obs, HttpRequest)] == [
        ("/a", 3, (3,)), ("/c", f_c, (f_c - 1, f_c)),
    ]  # fmt: skip
    assert anomalies == []


def test_quic_initials_split_across_datagrams(tmp_path: Path) -> None:
    msg = real_client_hello("h3.example", ["h3"])[5:]
    dcid = bytes.fromhex("0011223344556677")
    keys = quic.initial_keys(dcid, 1)
    half = len(msg) // 2

    def datagram(payload: bytes, pn: int) -> bytes:
        padded = payload + bytes(1100 - len(payload))
        return protect_initial(keys.key, keys.iv, keys.hp, dcid, b"\x09", pn, padded)

    pkts = [
        Ether()
        / IP(src=C, dst=S)
        / UDP(sport=50000, dport=443)
        / Raw(datagram(crypto_frame(half, msg[half:]), 0)),
        Ether()
        / IP(src=C, dst=S)
        / UDP(sport=50000, dport=443)
        / Raw(datagram(crypto_frame(0, msg[:half]), 1)),
        Ether()
        / IP(src=S, dst=C)
        / UDP(sport=443, dport=50000)
        / Raw(b"\xc0\x00\x00\x00\x01\x19" + bytes(40)),
    ]
    path = tmp_path / "quic.pcap"
    wrpcap(str(path), pkts)
    obs, anomalies = extract(path)
    (hello,) = of(obs, TlsClientHello)
    assert (hello.sni, hello.quic, hello.frame, hello.frames, hello.transport) == (
        "h3.example",
        True,
        2,
        (1, 2),
        "udp",
    )
    assert [a.name for a in anomalies] == [
        "quic_initial_malformed"
    ]  # the garbage "long header" from the server


def test_same_result_in_one_batch_or_many(tmp_path: Path) -> None:
    conv = Conv(dport=80)
    conv.send("c", b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
    conv.send("s", b"HTTP/1.1 101 OK\r\n\r\n")
    ch = real_client_hello("b.example", [])
    tls_conv = Conv(sport=40009)
    for k in range(0, len(ch), 100):
        tls_conv.send("c", ch[k : k + 100])
    path = tmp_path / "mix.pcap"
    wrpcap(str(path), conv.pkts + tls_conv.pkts)
    whole = extract(path)
    assert extract(path, batch_size=1) == whole and extract(path, batch_size=3) == whole
    assert [o.type for o in whole[0]] == ["websocket_upgrade", "http_response", "tls_client_hello"]


def test_a_parser_bug_becomes_an_anomaly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dns.message

    from helix_audit.protocols import dns as pdns
    from helix_audit.protocols import dnsfast

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pdns, "parse_message", broken)
    monkeypatch.setattr(dnsfast, "message_parts", broken)  # the batch fast path's Python half
    wire = dns.message.make_query("x.example", "A").to_wire()
    wrpcap(str(tmp_path / "q.pcap"), [Ether() / IP(src=C, dst=S) / UDP(sport=5000, dport=53) / Raw(wire)])
    obs, anomalies = extract(tmp_path / "q.pcap")
    assert obs == [] and [(a.name, a.frame, a.detail) for a in anomalies] == [
        ("protocol_parser_error", 1, "RuntimeError: boom")
    ]


def test_union_rows_is_union1d() -> None:
    """The mask union the extractor uses for row indices gives ``np.union1d`` (values and dtype)."""
    rng = np.random.default_rng(1)
    for n in (0, 1, 5, 100, 4096):
        for _ in range(30):
            a = np.sort(rng.choice(n, rng.integers(0, n + 1))) if n else np.zeros(0, np.int64)
            b = np.flatnonzero(rng.random(n) < 0.3)
            want, got = np.union1d(a, b), union_rows(n, a, b)
            assert np.array_equal(want, got) and want.dtype == got.dtype
