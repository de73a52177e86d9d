"""Real clients in network namespaces: the captures hold what the clients did, and the audit says so.

Each scenario is checked three ways: the clients' own outcome (curl's status, dig's rcode), the capture
as tshark dissects it, and (once ``helix_audit.audit`` exists) the audit's findings and coverage.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from samples.matching import audit_problems, audit_unavailable, run_audit

from . import scenarios
from .lab import ANTHROPIC, CP_NAME, DENIED, EXFIL, GET, GHOST_SANDBOX, LOOKUP_ONLY, OPENAI, REGISTRY, S3, WEB

pytestmark = pytest.mark.lab
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
UNAVAILABLE = audit_unavailable()
needs_audit = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")
Run = scenarios.Run


def fields(pcap: Path, display_filter: str, *names: str, whole_pdus: bool = True) -> list[list[str]]:
    """tshark's field values; ``whole_pdus=False`` dissects each segment alone, for a response
    head whose body never completes (tinyproxy's 403 body races the client's close)."""
    assert TSHARK is not None
    cmd = [
        TSHARK,
        *(() if whole_pdus else ("-o", "tcp.desegment_tcp_streams:FALSE")),
        "-n",
        "-r",
        str(pcap),
        "-Y",
        display_filter,
        "-T",
        "fields",
        *(a for n in names for a in ("-e", n)),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def values(pcap: Path, field: str, display_filter: str | None = None) -> set[str]:
    return {v for row in fields(pcap, display_filter or field, field) for v in row[0].split(",") if v}


def status(run: Run, label: str) -> tuple[int, str]:
    return run.clients[label]


# ----------------------------------------------------------------------------------------------------
# What each scenario's audit must say (same shape as sample_pcaps/*.expected.yaml)
# ----------------------------------------------------------------------------------------------------


def _blocked(component: str, host: str, how: str, dst: str | None) -> dict[str, Any]:
    want: dict[str, Any] = {"kind": "blocked", "component": component, "hostname": host, "how": how}
    return want | ({"dst": dst, "dst_port": 443} if dst else {})


EXPECTED: dict[str, dict[str, Any]] = {
    "compliant": {
        "findings": [],
        "coverage": [
            {"component": "sandbox", "hostname": h, "status": "ok"}
            for h in ("<control plane>", REGISTRY, GET)
        ],
    },
    "unexpected": {
        "findings": [
            {
                "kind": "unexpected_destination",
                "component": "sandbox",
                "dst": WEB[EXFIL],
                "dst_port": 443,
                "hostname": EXFIL,
            },
            {"kind": "unexpected_destination", "component": "sandbox", "hostname": LOOKUP_ONLY},
            {"kind": "dns_to_unlisted_resolver", "component": "sandbox", "dst": "10.77.1.53", "dst_port": 53},
            {
                "kind": "unexpected_websocket_path",
                "component": "sandbox",
                "dst_port": 8080,
                "hostname": CP_NAME,
            },
        ],
    },
    "inbound": {
        "findings": [
            {
                "kind": "inbound_to_sandbox",
                "dst": "10.77.0.10",
                "dst_port": 47984,
                "state": "accepted",
                "src": "10.77.1.77",
            },
            {"kind": "inbound_to_sandbox", "dst": "10.77.0.10", "dst_port": 22, "state": "attempted"},
            {"kind": "inbound_to_sandbox", "dst": GHOST_SANDBOX, "dst_port": 48010, "state": "attempted"},
        ],
    },
    "blocked": {
        "findings": [
            _blocked("control_plane", REGISTRY, "no_answer", WEB[REGISTRY]),
            _blocked("control_plane", GET, "reset", WEB[GET]),
            _blocked("control_plane", S3, "icmp_unreachable", WEB[S3]),
            _blocked("control_plane", ANTHROPIC, "nxdomain", None),
            _blocked("sandbox", S3, "tls_alert", WEB[S3]),
        ],
        "coverage": [{"component": "control_plane", "hostname": OPENAI, "status": "ok"}],
    },
    "proxied": {
        "findings": [
            {
                "kind": "unexpected_destination",
                "component": "sandbox",
                "dst_port": 443,
                "hostname": DENIED,
                "how": "proxy_denied",
            }
        ],
        "coverage": [
            {"component": "sandbox", "hostname": h, "status": "ok"} for h in (REGISTRY, "archive.ubuntu.com")
        ],
    },
}


def check_audit(run: Run, name: str) -> None:
    result = run_audit([run.capture.pcap], run.capture.site)
    names = set(yaml.safe_load(run.capture.site.read_text())["control_plane"]["names"])
    assert audit_problems(result, EXPECTED[name], names) == []


# ----------------------------------------------------------------------------------------------------
# Compliant sandbox
# ----------------------------------------------------------------------------------------------------


def test_compliant_clients_succeeded(lab_compliant: Run) -> None:
    assert {k: v[0] for k, v in lab_compliant.clients.items()} == dict.fromkeys(lab_compliant.clients, 0)
    assert status(lab_compliant, "registry")[1].endswith("200")
    assert "Saved" in status(lab_compliant, "pip")[1]


@needs_tshark
def test_compliant_capture_holds_the_clients_traffic(lab_compliant: Run) -> None:
    pcap = lab_compliant.capture.pcap
    assert values(pcap, "tls.handshake.extensions_server_name") == {
        CP_NAME,
        REGISTRY,
        GET,
        "github.com",
        "pypi.org",
        "files.pythonhosted.org",
    }
    assert values(pcap, "http.request.uri", 'http.upgrade == "websocket"') == set(scenarios.WS_CHANNELS)
    assert len(fields(pcap, "http.response.code == 101", "frame.number")) == 2
    assert values(pcap, "dns.qry.name") >= {REGISTRY, CP_NAME, "github.com", "pypi.org"}
    assert values(pcap, "ip.dst", "dns.flags.response == 0") | values(
        pcap, "ipv6.dst", "dns.flags.response == 0"
    ) == {"10.77.0.53", "fd77::53"}
    syns = fields(
        pcap, "tcp.flags.syn == 1 and tcp.flags.ack == 0 and not tcp.analysis.retransmission", "tcp.stream"
    )
    synacks = fields(pcap, "tcp.flags.syn == 1 and tcp.flags.ack == 1", "tcp.stream")
    assert syns and sorted(syns) == sorted(synacks)  # every connection was answered


@needs_audit
def test_compliant_audit_is_clean(lab_compliant: Run) -> None:
    check_audit(lab_compliant, "compliant")


# ----------------------------------------------------------------------------------------------------
# Unexpected host, lookup and resolver; undocumented WebSocket path
# ----------------------------------------------------------------------------------------------------


def test_unexpected_clients_succeeded(lab_unexpected: Run) -> None:
    assert {k: v[0] for k, v in lab_unexpected.clients.items()} == dict.fromkeys(lab_unexpected.clients, 0)


@needs_tshark
def test_unexpected_capture(lab_unexpected: Run) -> None:
    pcap = lab_unexpected.capture.pcap
    assert values(pcap, "tls.handshake.extensions_server_name") == {EXFIL}
    assert values(pcap, "http.request.uri", 'http.upgrade == "websocket"') == {"/api/v1/ws/evil"}
    assert [LOOKUP_ONLY, "10.77.1.99"] in fields(pcap, "dns.flags.response == 1", "dns.qry.name", "dns.a")
    assert not fields(pcap, "ip.addr == 10.77.1.99", "frame.number")  # looked up, never contacted
    assert values(pcap, "ip.dst", "dns.flags.response == 0 and ip") == {"10.77.0.53", "10.77.1.53"}


@needs_audit
def test_unexpected_audit(lab_unexpected: Run) -> None:
    check_audit(lab_unexpected, "unexpected")


# ----------------------------------------------------------------------------------------------------
# Inbound connections to the sandbox
# ----------------------------------------------------------------------------------------------------


def test_inbound_clients(lab_inbound: Run) -> None:
    assert status(lab_inbound, "accepted") == (0, "200")
    assert status(lab_inbound, "reset")[0] == 7  # curl: couldn't connect (RST)
    assert status(lab_inbound, "silent")[0] == 28  # curl: timeout


@needs_tshark
def test_inbound_capture(lab_inbound: Run) -> None:
    pcap = lab_inbound.capture.pcap
    syns = fields(pcap, "tcp.flags.syn == 1 and tcp.flags.ack == 0", "ip.src", "ip.dst", "tcp.dstport")
    assert {tuple(s) for s in syns} == {
        ("10.77.1.77", "10.77.0.10", "47984"),
        ("10.77.1.77", "10.77.0.10", "22"),
        ("10.77.1.77", GHOST_SANDBOX, "48010"),
    }
    assert sum(1 for s in syns if s[2] == "48010") >= 3  # retransmitted, never answered
    assert not fields(pcap, f"ip.src == {GHOST_SANDBOX}", "frame.number")
    assert fields(pcap, "tcp.flags.reset == 1", "ip.src", "tcp.srcport") == [["10.77.0.10", "22"]]
    assert values(pcap, "http.response.code", "tcp.srcport == 47984") == {"200"}


@needs_audit
def test_inbound_audit(lab_inbound: Run) -> None:
    check_audit(lab_inbound, "inbound")


# ----------------------------------------------------------------------------------------------------
# Blocked endpoints (span capture of the LAN: control plane and sandbox)
# ----------------------------------------------------------------------------------------------------


def test_blocked_clients_failed_as_arranged(lab_blocked: Run) -> None:
    codes = {k: v[0] for k, v in lab_blocked.clients.items()}
    assert codes == {
        "no_answer": 28,
        "reset": 7,
        "icmp": 7,
        "nxdomain": 6,
        "refused_aaaa": 0,
        "openai": 0,
        "tls_alert": 35,
    }
    assert "status: REFUSED" in status(lab_blocked, "refused_aaaa")[1]


@needs_tshark
def test_blocked_capture(lab_blocked: Run) -> None:
    pcap = lab_blocked.capture.pcap
    syns = fields(pcap, f"ip.dst == {WEB[REGISTRY]} and tcp.flags.syn == 1", "tcp.analysis.retransmission")
    assert len(syns) >= 3 and not fields(pcap, f"ip.src == {WEB[REGISTRY]}", "frame.number")
    assert fields(pcap, f"ip.src == {WEB[GET]} and tcp.flags.reset == 1", "tcp.srcport") == [["443"]]
    icmp = fields(pcap, "icmp.type == 3", "icmp.code", "tcp.dstport", "tcp.flags.syn")
    assert icmp and all(r == ["13", "443", "1"] for r in icmp)
    rcodes = {
        (r[0], r[1], r[2])
        for r in fields(pcap, "dns.flags.response == 1", "dns.qry.name", "dns.qry.type", "dns.flags.rcode")
    }
    assert {(ANTHROPIC, "1", "3"), (OPENAI, "28", "5"), (OPENAI, "1", "0")} <= rcodes
    assert values(pcap, "tls.handshake.extensions_server_name") == {OPENAI, S3}
    assert fields(pcap, "tls.alert_message", "ip.src", "tls.alert_message.desc") == [[WEB[S3], "70"]]


@needs_audit
def test_blocked_audit(lab_blocked: Run) -> None:
    check_audit(lab_blocked, "blocked")


# ----------------------------------------------------------------------------------------------------
# Through tinyproxy
# ----------------------------------------------------------------------------------------------------


def test_proxy_clients(lab_proxied: Run) -> None:
    assert status(lab_proxied, "connect_ok") == (0, "200")
    assert "403" in status(lab_proxied, "connect_denied")[1]
    assert status(lab_proxied, "absolute_uri") == (0, "200")


@needs_tshark
def test_proxy_capture(lab_proxied: Run) -> None:
    pcap = lab_proxied.capture.pcap
    connects = {
        r[0]: r[1] for r in fields(pcap, 'http.request.method == "CONNECT"', "http.request.uri", "tcp.stream")
    }
    answers = {
        r[1]: r[0]
        for r in fields(pcap, "http.response", "http.response.code", "tcp.stream", whole_pdus=False)
    }
    assert {uri: answers[s] for uri, s in connects.items()} == {
        f"{REGISTRY}:443": "200",
        f"{DENIED}:443": "403",
    }
    assert values(pcap, "tls.handshake.extensions_server_name") == {REGISTRY}
    assert values(pcap, "http.request.uri", 'http.request.method == "GET"') == {
        "http://archive.ubuntu.com/ubuntu/dists/noble/InRelease"
    }
    assert values(pcap, "ip.dst", "tcp.flags.syn == 1 and tcp.flags.ack == 0") == {"10.77.0.3"}
    assert not fields(pcap, "dns", "frame.number")


@needs_audit
def test_proxy_audit(lab_proxied: Run) -> None:
    check_audit(lab_proxied, "proxied")
