"""Evidence captures of small captures made here with scapy (and pcapng written by hand)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter

from helix_audit.errors import CaptureError
from helix_audit.report import evidence, evidence_pcap
from helix_audit.report.evidence import evidence_name, write_evidence

from .helpers import finding, flow_table, needs_tshark, read_packets, tshark_fields, write_pcapng

T0 = 1_700_000_000
SB, DST, DNS_SRV = "10.0.1.10", "203.0.113.5", "10.0.0.53"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def tcp_conn(sport: int, isn: int, t: float, payload: bytes = b"x" * 100, dst: str = DST) -> list:
    """A complete TCP connection sandbox -> dst:443 as timed Ethernet frames."""
    c, s = IP(src=SB, dst=dst), IP(src=dst, dst=SB)
    pkts = [
        c / TCP(sport=sport, dport=443, flags="S", seq=isn),
        s / TCP(sport=443, dport=sport, flags="SA", seq=9000, ack=isn + 1),
        c / TCP(sport=sport, dport=443, flags="A", seq=isn + 1, ack=9001),
        c / TCP(sport=sport, dport=443, flags="PA", seq=isn + 1, ack=9001) / payload,
        s / TCP(sport=443, dport=sport, flags="PA", seq=9001, ack=isn + 1 + len(payload)) / (b"y" * 300),
        c / TCP(sport=sport, dport=443, flags="FA", seq=isn + 1 + len(payload), ack=9301),
        s / TCP(sport=443, dport=sport, flags="FA", seq=9301, ack=isn + 2 + len(payload)),
        c / TCP(sport=sport, dport=443, flags="A", seq=isn + 2 + len(payload), ack=9302),
    ]
    out = []
    for i, p in enumerate(pkts):
        e = ETH / p
        e.time = t + i * 0.01
        out.append(e)
    return out


def dns_query(name: str, t: float, sport: int = 5353) -> Ether:
    p = ETH / IP(src=SB, dst=DNS_SRV) / UDP(sport=sport, dport=53) / DNS(id=7, qd=DNSQR(qname=name))
    p.time = t
    return p


def write(path: Path, pkts: list, nano: bool = False) -> Path:
    with PcapWriter(str(path), linktype=1, nano=nano, sync=True) as w:
        for p in pkts:
            w.write(p)
    return path


def flow_id(flows, sport: int, nth: int = 0) -> int:
    rows = flows[(flows["orig_p"] == sport) & (flows["transport"] == "tcp")]
    return int(rows["flow_id"].iloc[nth])


def test_port_reuse_takes_only_the_flow_asked_for(tmp_path: Path) -> None:
    pkts = [
        dns_query("example-exfil.net", T0),
        *tcp_conn(40000, 1000, T0 + 1),
        *tcp_conn(40000, 777777, T0 + 5),
    ]
    src = write(tmp_path / "in.pcap", pkts)
    flows = flow_table([src])
    assert len(flows[flows["orig_p"] == 40000]) == 2  # the table split the reused 5-tuple
    second = flow_id(flows, 40000, 1)
    out = write_evidence([finding("F1", [second], {str(src): [1]})], flows, [src], tmp_path / "ev")
    got = read_packets(out["F1"])
    want = read_packets(src)
    assert [g[:3] for g in got] == [w[:3] for w in [want[0], *want[9:]]]


def test_flow_across_rotated_files_and_nanoseconds(tmp_path: Path) -> None:
    conn = tcp_conn(40001, 5000, T0 + 0.123456789)
    a = write(tmp_path / "a.pcap", conn[:4], nano=True)
    b = write(tmp_path / "b.pcap", [*conn[4:], *tcp_conn(40002, 1, T0 + 3)], nano=True)
    flows = flow_table([a, b])
    fid = flow_id(flows, 40001)
    assert flows.loc[flows["flow_id"] == fid, "files"].iloc[0] == f"{a}|{b}"
    out = write_evidence([finding("F1", [fid])], flows, [a, b], tmp_path / "ev")["F1"]
    assert out.suffix == ".pcap" and out.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"  # ns magic kept
    want = read_packets(a) + read_packets(b)[:4]
    assert read_packets(out) == want
    assert want[0][0] % 1000 != 0  # the test really has sub-microsecond timestamps


def test_shared_flows_icmp_errors_and_empty_findings(tmp_path: Path) -> None:
    udp = ETH / IP(src=SB, dst=DST) / UDP(sport=41000, dport=443) / (b"q" * 40)
    err = ETH / IP(src="192.0.2.254", dst=SB) / ICMP(type=3, code=13) / IPerror(src=SB, dst=DST)
    err = err / UDPerror(sport=41000, dport=443) / (b"q" * 40)
    ping = [
        ETH / IP(src=SB, dst=DST) / ICMP(type=8, id=1, seq=1),
        ETH / IP(src=DST, dst=SB) / ICMP(type=0, id=1, seq=1),
    ]
    pkts = [*tcp_conn(40003, 10, T0), udp, err, *ping]
    for i, p in enumerate(pkts):
        p.time = T0 + i
    src = write(tmp_path / "in.pcap", pkts)
    flows = flow_table([src])
    by = {t: int(flows.loc[flows["transport"] == t, "flow_id"].iloc[0]) for t in ("tcp", "udp", "icmp")}
    findings = [
        finding("A", [by["tcp"], by["udp"]]),
        finding("B", [by["udp"], by["icmp"]]),
        finding("C", [999]),
    ]
    out = write_evidence(findings, flows, [src], tmp_path / "ev")
    assert set(out) == {"A", "B"}  # C has no packets: no file
    raw = read_packets(src)
    assert read_packets(out["A"]) == raw[:10]  # tcp, udp, and the ICMP error that quotes the udp flow
    assert read_packets(out["B"]) == raw[8:12]


def test_mixed_link_types_give_pcapng(tmp_path: Path) -> None:
    conn = tcp_conn(40004, 42, T0)
    packets = []
    for i, p in enumerate(conn):  # the same flow seen on an Ethernet tap and on a raw-IP tunnel end
        iface = i % 2
        data = bytes(p) if iface == 0 else bytes(p[IP])
        packets.append((iface, T0 * 10**9 + i * 10**7 + 5, data))
    src = write_pcapng(tmp_path / "mixed.pcapng", [1, 101], packets)
    flows = flow_table([src])
    out = write_evidence([finding("F1", [flow_id(flows, 40004)])], flows, [src], tmp_path / "ev")["F1"]
    assert out.suffix == ".pcapng"
    got = read_packets(out)
    assert [(t, d, lt) for t, d, _, lt in got] == [(t, d, [1, 101][i]) for i, t, d in packets]


@needs_tshark
@pytest.mark.tshark
def test_mixed_pcapng_opens_in_tshark(tmp_path: Path) -> None:
    conn = tcp_conn(40005, 42, T0)
    packets = [(i % 2, T0 * 10**9 + i, bytes(p) if i % 2 == 0 else bytes(p[IP])) for i, p in enumerate(conn)]
    src = write_pcapng(tmp_path / "mixed.pcapng", [1, 101], packets)
    flows = flow_table([src])
    out = write_evidence([finding("F1", [flow_id(flows, 40005)])], flows, [src], tmp_path / "ev")["F1"]
    rows = tshark_fields(out, "frame.interface_id", "tcp.srcport", "frame.time_epoch")
    assert [r[0] for r in rows] == [str(i % 2) for i in range(len(conn))]
    assert {r[1] for r in rows} == {"40005", "443"}
    assert rows[1][2] == "1700000000.000000001"  # nanosecond timestamps survive


def test_spilling_gives_identical_files_and_few_open_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkts = [p for i in range(40) for p in tcp_conn(41000 + i, i, T0 + i)]
    src = write(tmp_path / "in.pcap", pkts)
    flows = flow_table([src])
    findings = [finding(f"F{i}", [flow_id(flows, 41000 + i)]) for i in range(40)]
    big = write_evidence(findings, flows, [src], tmp_path / "big", batch_size=7)
    fds: list[int] = []
    real_spill = evidence_pcap.Spool.spill

    def spill(self: evidence_pcap.Spool) -> None:
        real_spill(self)
        fds.append(len(os.listdir("/proc/self/fd")))

    monkeypatch.setattr(evidence_pcap.Spool, "spill", spill)
    base = len(os.listdir("/proc/self/fd"))
    small = write_evidence(findings, flows, [src], tmp_path / "small", batch_size=7, spool_limit=1)
    assert len(fds) > 40 and max(fds) <= base + 2
    for fid, path in big.items():
        assert path.read_bytes() == small[fid].read_bytes()
        assert len(read_packets(path)) == 8


def test_failure_leaves_no_partial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write(tmp_path / "in.pcap", tcp_conn(40006, 1, T0))
    src2 = write(tmp_path / "in2.pcap", tcp_conn(40007, 1, T0 + 9))
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    flows = flow_table([src, src2])
    fid, fid2 = flow_id(flows, 40006), flow_id(flows, 40007)
    out_dir = tmp_path / "ev"
    with pytest.raises(CaptureError, match="bad.pcap: not a pcap or pcapng file"):
        write_evidence([finding("F1", [fid], {str(bad): [1]})], flows, [src, bad], out_dir)
    real_scan, calls = evidence.scan_file, []

    def scan_then_fail(*args: Any, **kw: Any) -> None:
        calls.append(args[0])
        if len(calls) == 2:
            raise OSError("disk gone")
        real_scan(*args, **kw)

    monkeypatch.setattr(evidence, "scan_file", scan_then_fail)
    with pytest.raises(OSError, match="disk gone"):  # the first input's packets were already spilled
        write_evidence([finding("F1", [fid, fid2])], flows, [src, src2], out_dir, spool_limit=1)
    assert list(out_dir.iterdir()) == []
    monkeypatch.undo()
    # a later run replaces a stale capture of the other format
    (out_dir / "F1.pcapng").write_bytes(b"old")
    written = write_evidence([finding("F1", [fid])], flows, [src, src2], out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == ["F1.pcap"] == [written["F1"].name]


def test_evidence_names_are_safe() -> None:
    assert evidence_name("unexpected_destination-9db43b9c179f") == "unexpected_destination-9db43b9c179f"
    assert "/" not in evidence_name("../../etc/passwd") and not evidence_name("../x").startswith(".")
