"""ICMP errors attach to the flow they quote (v4, v6, never-seen flows); echo flows; TCP port reuse."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp, udp

C, S, R = "192.168.1.10", "8.8.8.8", "192.168.1.1"
C6, S6, R6 = "2001:db8::10", "2001:db8:1::53", "2001:db8::1"


def icmp4(src: str, dst: str, quoted: bytes, type_: int = 3, code: int = 3) -> dict:
    raw = bytes(ICMP(type=type_, code=code) / quoted)
    return {"src": src, "dst": dst, "proto": 1, "sport": type_, "dport": code, "icmp": raw}


def icmp6(src: str, dst: str, quoted: bytes, code: int = 1) -> dict:
    raw = bytes(ICMPv6DestUnreach(code=code) / quoted)
    return {"src": src, "dst": dst, "proto": 58, "sport": 1, "dport": code, "icmp": raw}


def run(packets: list[dict]) -> tuple[FlowTable, object, object]:
    table = FlowTable()
    flows = table.add(columns(packets))
    frame, remap = table.finish()
    return table, flows, frame


def test_v4_port_unreachable_attaches_to_udp_flow() -> None:
    quoted = bytes(IP(src=C, dst=S) / UDP(sport=5000, dport=53))[:28]
    _, flows, frame = run([udp(C, 5000, S, 53), icmp4(S, C, quoted)])
    assert len(frame) == 1 and flows.flow_id.tolist() == [0, -1]
    row = frame.iloc[0]
    assert (row.icmp_errors, row.icmp_error, row.icmp_from, row.icmp_frames) == (
        1,
        "unreachable/3",
        S,
        "test.pcap:2",
    )
    assert (row.orig_pkts, row.resp_pkts, row.conn_state) == (1, 0, "S0")
    assert "2" in row.key_frames.split(",")


def test_v4_error_for_unseen_flow_creates_zero_packet_flow() -> None:
    quoted = bytes(IP(src=C, dst=S) / TCP(sport=41000, dport=443, flags="S"))[:28]
    table, _, frame = run([udp(C, 5000, S, 53), icmp4(R, C, quoted, code=13)])
    row = frame[frame.transport == "tcp"].iloc[0]
    assert (row.orig_h, row.orig_p, row.resp_h, row.resp_p) == (C, 41000, S, 443)
    assert (row.orig_pkts, row.resp_pkts, row.icmp_error, row.icmp_from) == (0, 0, "unreachable/13", R)
    assert (row.first_frame, row.initiator, row.confidence) == (2, "first_packet", "low")
    assert table.non_flow_summary().empty


def test_v6_admin_prohibited_attaches_to_tcp_flow() -> None:
    quoted = bytes(IPv6(src=C6, dst=S6) / TCP(sport=42000, dport=443, flags="S", seq=7))
    _, _, frame = run([tcp(C6, 42000, S6, 443, "S", seq=7), icmp6(R6, C6, quoted)])
    row = frame.iloc[0]
    assert len(frame) == 1 and (row.transport, row.icmp_errors, row.icmp_error) == ("tcp", 1, "unreachable/1")
    assert (row.icmp_from, row.conn_state, row.handshake) == (R6, "S0", "no_answer")


def test_unparseable_error_is_counted() -> None:
    table, _, frame = run([icmp4(R, C, b"\x45\x00")])
    assert frame.empty and table.non_flow_summary().packets.sum() == 1


def test_echo_request_and_reply_form_one_flow() -> None:
    req = bytes(ICMPv6EchoRequest(id=1, seq=1))
    rep = bytes(ICMPv6EchoReply(id=1, seq=1))
    _, _, frame = run(
        [
            {"src": S6, "dst": C6, "proto": 58, "sport": 129, "dport": 0, "icmp": rep},
            {"src": C6, "dst": S6, "proto": 58, "sport": 128, "dport": 0, "icmp": req},
        ]
    )
    row = frame.iloc[0]
    assert len(frame) == 1 and (row.transport, row.orig_h, row.orig_p, row.resp_p) == ("icmp6", C6, 128, 129)
    assert (row.orig_pkts, row.resp_pkts, row.conn_state) == (1, 1, "OTH")


def conn(seq: int, ts: float) -> list[dict]:
    a, b = ("10.1.1.1", 40000), ("10.1.1.2", 80)
    return [
        tcp(*a, *b, "S", seq=seq, ts=ts),
        tcp(*b, *a, "SA", seq=5, ts=ts + 0.1),
        tcp(*a, *b, "FA", ts=ts + 0.2),
        tcp(*b, *a, "FA", ts=ts + 0.3),
    ]


def test_new_syn_after_close_with_new_isn_is_a_new_flow() -> None:
    _, flows, frame = run(conn(100, 0) + conn(200, 1) + conn(200, 2)[:1])
    assert len(frame) == 2
    assert frame.tcp_stream.tolist() == [0, 1] and frame.conn_state.tolist() == ["SF", "SF"]
    assert frame.first_frame.tolist() == [1, 5] and frame.orig_pkts.tolist() == [2, 3]


def test_syn_before_close_or_same_isn_stays_in_flow() -> None:
    open_conn = conn(100, 0)[:2]
    _, _, frame = run(open_conn + conn(300, 1))
    assert len(frame) == 1
    _, _, frame = run(conn(100, 0) + conn(100, 1)[:1])
    assert len(frame) == 1 and frame.syn.iloc[0] == 2
