"""A finding's evidence includes the DNS lookups behind its name; filters stay well-formed."""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

from helix_audit.pipeline import audit
from helix_audit.policy.dnsevidence import filter_string
from helix_audit.report.bundle import write_bundle

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def test_lookup_frames_are_in_the_finding_and_its_capture(tmp_path: Path) -> None:
    pcap = SAMPLES / "unexpected_destinations.pcap"
    result = audit([pcap], site=SAMPLES / "site.yaml")
    exfil = next(f for f in result.findings if f.hostname == "example-exfil.net")
    lookups = [
        o
        for o in result.observations
        if o.type in ("dns_query", "dns_response") and getattr(o, "qname", "") == "example-exfil.net"
    ]
    assert lookups
    frames = {fr for e in exfil.evidence for fr in e.frames}
    assert {o.frame for o in lookups} <= frames
    assert any(e.wireshark_filter == 'dns.qry.name == "example-exfil.net"' for e in exfil.evidence)
    write_bundle(result, tmp_path, formats=["json", "evidence"])
    capture = next((tmp_path / "evidence").glob(f"{exfil.id}.pcap*"))
    with open(capture, "rb") as f:
        got = [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]
    flow = result.flows[result.flows["flow_id"].isin(exfil.flow_ids)].iloc[0]
    ends = {(flow["orig_h"], int(flow["orig_p"])), (flow["resp_h"], int(flow["resp_p"]))}
    dns = {o.frame for o in lookups}
    want = []
    with open(pcap, "rb") as f:
        for number, (_, buf) in enumerate(dpkt.pcap.Reader(f), start=1):
            ip = dpkt.ethernet.Ethernet(buf).data
            l4 = getattr(ip, "data", None)
            pair = set()
            if isinstance(ip, dpkt.ip.IP) and isinstance(l4, dpkt.tcp.TCP):
                pair = {(socket.inet_ntoa(ip.src), l4.sport), (socket.inet_ntoa(ip.dst), l4.dport)}
            if pair == ends or number in dns:
                want.append(bytes(buf))
    assert len(want) > len(dns) + 4
    assert want == got  # exactly the flow's packets and the lookups, in capture order


def test_filter_strings_escape_hostile_names() -> None:
    assert filter_string("plain.example") == '"plain.example"'
    assert filter_string('x" || 1 == 1 || "') == '"x\\" || 1 == 1 || \\""'
    assert filter_string("a\\b\x00c") == '"a\\\\b\\x00c"'
