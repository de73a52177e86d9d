"""Inbound scans: a scanner's unanswered probes are one ``inbound_scan`` finding (docs/findings.md);
accepted connections and small numbers of attempts stay ``inbound_to_sandbox`` findings."""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from helix_audit.pipeline import audit
from helix_audit.policy.classify import classify
from helix_audit.policy.rules import load_rules
from helix_audit.policy.scan import SCAN_MAX_FLOWS, SCAN_MIN, port_ranges
from helix_audit.policy.site import SiteProfile, load_site
from helix_audit.report import write_json
from tests.report.test_json import validator  # noqa: F401  (the report schema's fixture, by name)

from .factory import Capture

_SPEC = importlib.util.spec_from_file_location(
    "synscan", Path(__file__).resolve().parents[2] / "benchmarks" / "synscan.py"
)
assert _SPEC is not None and _SPEC.loader is not None
synscan = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(synscan)

RULES = load_rules()
SCANNER = "192.0.2.66"
T0 = 1_700_000_000.0
SITE = (
    "control_plane:\n  addresses: [10.0.0.2]\nsandboxes:\n  addresses: [10.0.1.0/24]\n"
    "dns_servers: [10.0.0.53]\n"  # listed, so TCP 53 to a sandbox is not "DNS to a private resolver"
)


def _records(pcap: bytes) -> bytes:
    return pcap[24:]  # past the global header


def _handshake(t: float) -> bytes:
    """A completed TCP handshake from the scanner to sandbox 10.0.1.1:22, as pcap records."""
    a, b = {"src": SCANNER, "dst": "10.0.1.1"}, {"src": "10.0.1.1", "dst": SCANNER}
    out_mac, in_mac = (
        {"src": "02:00:00:00:00:66", "dst": "02:00:00:00:00:02"},
        {"src": "02:00:00:00:00:02", "dst": "02:00:00:00:00:66"},
    )
    packets = [
        Ether(**out_mac) / IP(**a) / TCP(sport=45000, dport=22, flags="S", seq=1000),
        Ether(**in_mac) / IP(**b) / TCP(sport=22, dport=45000, flags="SA", seq=5000, ack=1001),
        Ether(**out_mac) / IP(**a) / TCP(sport=45000, dport=22, flags="A", seq=1001, ack=5001),
    ]
    out = b""
    for i, pkt in enumerate(packets):
        data = bytes(pkt)
        us = int(round((t + i * 0.001) * 1e6))
        out += struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(data), len(data)) + data
    return out


def _scan_capture(tmp_path: Path, *, accepted: bool = False, per_sandbox: int = 100) -> Path:
    """``per_sandbox`` SYNs from the scanner to 10.0.1.1 and as many to 10.0.1.5 (ports 1..n),
    10 s apart; with ``accepted``, then a handshake to 10.0.1.1:22 that the sandbox accepts."""
    first = synscan.synscan(per_sandbox, "10.0.1.0/24", t0=T0)
    second = synscan.synscan(per_sandbox, "10.0.1.4/30", t0=T0 + 10)
    data = first + _records(second) + (_handshake(T0 + 20) if accepted else b"")
    path = tmp_path / "scan.pcap"
    path.write_bytes(data)
    (tmp_path / "site.yaml").write_text(SITE)
    return path


def _audit(tmp_path: Path, capture: Path):
    return audit([capture], site=tmp_path / "site.yaml")


def _schema_errors(request, result, tmp_path: Path) -> list[str]:
    schema = request.getfixturevalue("validator")
    doc = json.loads(write_json(result, tmp_path / "report.json").read_text())
    return [f"{list(e.path)}: {e.message}" for e in schema.iter_errors(doc)]


def test_syn_scan_is_one_finding_with_counts_ranges_and_bounded_evidence(tmp_path, request):
    capture = _scan_capture(tmp_path)
    result = _audit(tmp_path, capture)
    assert [f.kind for f in result.findings] == ["inbound_scan"]
    f = result.findings[0]
    assert (f.severity.value, f.component, f.src, f.src_port, f.dst, f.dst_port, f.transport) == (
        "high",
        "sandbox",
        SCANNER,
        None,
        None,
        None,
        "tcp",
    )
    assert f.sources == (SCANNER,) and f.state == "attempted"
    assert f.message.startswith(f"{SCANNER} probed 200 sandbox ports over tcp (2 sandboxes, ports 1-100)")
    assert "none accepted (S0 x200)" in f.message
    assert f.extra == {
        "attempts": 200,
        "sandbox_ports": 200,
        "sandboxes": 2,
        "ports": 100,
        "port_ranges": "1-100",
        "sandbox_addresses": ["10.0.1.1", "10.0.1.5"],
        "conn_states": {"S0": 200},
        "packets": 200,
        "accepted_elsewhere": 0,
    }
    (ev,) = f.evidence
    # the earliest SCAN_MAX_FLOWS - 1 probes and the last one (frames are capture order here)
    assert ev.frames == (*range(1, SCAN_MAX_FLOWS), 200)
    assert ev.first_ts == pytest.approx(T0) and ev.last_ts == pytest.approx(T0 + 10 + 99e-5)
    assert len(ev.flow_ids) == SCAN_MAX_FLOWS and f.flow_ids == ev.flow_ids
    flows = result.flows.set_index("flow_id")
    assert flows.loc[list(ev.flow_ids), "first_frame"].sort_values().tolist() == list(ev.frames)
    assert ev.wireshark_filter == (
        f"ip.src == {SCANNER} && tcp.flags.syn == 1 && tcp.flags.ack == 0 && "
        "(ip.dst == 10.0.1.1 || ip.dst == 10.0.1.5)"
    )
    assert set(result.flows["verdict"]) == {"inbound"}  # the flow table is unchanged
    assert _schema_errors(request, result, tmp_path) == []


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_scan_display_filter_selects_exactly_the_probes(tmp_path):
    capture = _scan_capture(tmp_path, accepted=True)
    (scan,) = [f for f in _audit(tmp_path, capture).findings if f.kind == "inbound_scan"]
    shown = subprocess.run(
        [
            "tshark",
            "-r",
            str(capture),
            "-Y",
            scan.evidence[0].wireshark_filter,
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # every probe, and of the accepted handshake (frames 201-203) its SYN only
    assert [int(n) for n in shown] == list(range(1, 202))


def test_accepted_connection_from_the_scanner_stays_inbound_to_sandbox(tmp_path, request):
    result = _audit(tmp_path, _scan_capture(tmp_path, accepted=True))
    kinds = sorted((f.kind, f.state, f.severity.value, f.dst_port) for f in result.findings)
    assert kinds == [
        ("inbound_scan", "attempted", "high", None),
        ("inbound_to_sandbox", "accepted", "critical", 22),
    ]
    scan = next(f for f in result.findings if f.kind == "inbound_scan")
    assert scan.extra["attempts"] == 200 and scan.extra["accepted_elsewhere"] == 1
    assert "1 accepted connection(s) from 192.0.2.66 are reported as inbound_to_sandbox" in scan.message
    accepted = next(f for f in result.findings if f.kind == "inbound_to_sandbox")
    assert (accepted.src, accepted.dst, accepted.flow_ids) == (SCANNER, "10.0.1.1", (200,))
    assert result.findings[0] is accepted  # critical first
    assert _schema_errors(request, result, tmp_path) == []


def test_below_the_threshold_each_sandbox_port_stays_its_own_finding(tmp_path):
    n = SCAN_MIN // 2 - 1  # 2 * n distinct (sandbox, port) pairs: one short of SCAN_MIN
    result = _audit(tmp_path, _scan_capture(tmp_path, per_sandbox=n))
    assert [f.kind for f in result.findings] == ["inbound_to_sandbox"] * (2 * n)
    assert {(f.dst, f.dst_port) for f in result.findings} == {
        (dst, p) for dst in ("10.0.1.1", "10.0.1.5") for p in range(1, n + 1)
    }
    assert all(f.state == "attempted" and f.severity.value == "high" for f in result.findings)


@pytest.fixture
def site(tmp_path) -> SiteProfile:
    (tmp_path / "site.yaml").write_text(SITE)
    return load_site(tmp_path / "site.yaml", RULES)


def test_threshold_counts_distinct_pairs_per_source_not_attempts(site):
    """Retries of a few ports are not a scan; two sources under the threshold are not one scanner;
    low-confidence (no SYN) flows never count."""
    c = Capture()
    for i in range(40):  # 40 attempts, 4 distinct ports
        c.flow("203.0.113.5", 30000 + i, "10.0.1.7", 20 + i % 4, state="S0", t=i)
    for i in range(SCAN_MIN - 1):  # two sources, SCAN_MIN - 1 ports each
        c.flow("203.0.113.6", 31000 + i, "10.0.1.7", 1000 + i, state="REJ", t=i)
        c.flow("203.0.113.7", 32000 + i, "10.0.1.7", 2000 + i, state="REJ", t=i)
    for i in range(SCAN_MIN * 2):  # guessed direction
        c.flow("203.0.113.8", 33000 + i, "10.0.1.7", 3000 + i, state="S0", confidence="low", t=i)
    result = classify(c.frame_df(), c.obs, RULES, site)
    assert {f.kind for f in result.findings} == {"inbound_to_sandbox"}
    assert len(result.findings) == 4 + 2 * (SCAN_MIN - 1) + SCAN_MIN * 2


def test_one_more_pair_makes_a_scan_with_rejected_probes(site):
    c = Capture()
    for i in range(SCAN_MIN):
        c.flow("203.0.113.6", 31000 + i, "10.0.1.7", 1000 + 2 * i, state="REJ", t=i)
    c.flow("203.0.113.6", 31100, "10.0.1.7", 1000, state="REJ", t=30)  # a retry: no new pair
    c.flow("203.0.113.9", 31200, "10.0.1.7", 1000, state="REJ", t=31)  # another host: its own finding
    result = classify(c.frame_df(), c.obs, RULES, site)
    scan, other = result.findings
    assert (scan.kind, scan.dst, scan.extra["attempts"], scan.extra["sandbox_ports"]) == (
        "inbound_scan",
        "10.0.1.7",
        SCAN_MIN + 1,
        SCAN_MIN,
    )
    assert scan.extra["port_ranges"] == ",".join(str(1000 + 2 * i) for i in range(SCAN_MIN))
    assert scan.extra["conn_states"] == {"REJ": SCAN_MIN + 1}
    assert f"in {SCAN_MIN + 1} attempts: none accepted (REJ x{SCAN_MIN + 1})" in scan.message
    assert scan.evidence[0].wireshark_filter.endswith("ip.dst == 10.0.1.7")
    assert (other.kind, other.sources, other.dst_port) == ("inbound_to_sandbox", ("203.0.113.9",), 1000)


def test_port_ranges_compress_and_cap():
    assert port_ranges(np.array([1, 2, 3, 5, 8, 9, 65535]), 10) == "1-3,5,8-9,65535"
    assert port_ranges(np.array([1, 3, 5, 7]), 2) == "1,3,... (+2 more ranges)"
    assert port_ranges(np.array([], dtype=np.int64), 5) == ""
