"""Hand-built AuditResults for the report tests (the pipeline stages are built in parallel).

``make_result()`` is a realistic audit of a control plane (10.0.0.2), two sandboxes (10.0.1.10/11),
a resolver (10.0.0.53) and a proxy (10.0.0.3:3128) with findings of every kind; ``hostile=True``
puts attacker-chosen names (markup, quotes, control characters, formula prefixes, very long names)
into every place a packet can put text; ``bulk`` appends that many extra flows (vectorised).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from helix_audit.flows.interface import FLOW_COLUMNS
from helix_audit.model import (
    Anomaly,
    AuditResult,
    CoverageEntry,
    DnsAnswer,
    DnsQuery,
    DnsResponse,
    Evidence,
    Finding,
    HttpConnect,
    InputInfo,
    Role,
    RulesetInfo,
    Severity,
    TlsAlert,
    TlsClientHello,
    WebSocketUpgrade,
)

T0 = 1_700_000_000.0
PCAP = "captures/span-1.pcapng"
CP, SB1, SB2, DNS, PROXY = "10.0.0.2", "10.0.1.10", "10.0.1.11", "10.0.0.53", "10.0.0.3"

#: Attacker-chosen names: each must show up as inert text in every format.
HOSTILE = {
    "script": "<script>window.__pwned=1</script>.evil.example",
    "img": '"><img src=x onerror="window.__pwned=1">.example',
    "quote": "x' onmouseover='window.__pwned=1' a='.example",
    "formula": "=HYPERLINK(\"http://evil.example\",\"click\")",
    "plus": "+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd",
    "minus": "-2+3",
    "ctrl": "bell\x07esc\x1b[31mred\r\nnewline\x00nul.example",
    "long": "a" * 4000 + ".long.example",
    "svgpath": "/api/v1/revdial?<svg/onload=window.__pwned=1>",
    "surrogate": "bad\udcffbyte.example",
}

# (orig_h, orig_p, resp_h, resp_p, transport, conn_state, hostname, name_source, orig_comp,
#  resp_comp, verdict, rule)
_FLOWS: list[tuple[Any, ...]] = [
    (SB1, 40000, CP, 8080, "tcp", "SF", "helix.example.com", "websocket", "sandbox", "control_plane",
     "allowed", "sandbox-runtime-control-plane"),
    (SB1, 53001, DNS, 53, "udp", "SF", None, None, "sandbox", "other", "allowed", None),
    (SB1, 40002, "104.18.0.1", 443, "tcp", "SF", "registry.helixml.tech", "sni", "sandbox", "other",
     "allowed", "sandbox-install-registry"),
    (SB1, 40003, "198.51.100.7", 443, "tcp", "SF", "evil.example.net", "sni", "sandbox", "other",
     "violation", None),
    (SB1, 40004, "203.0.113.5", 443, "tcp", "S0", "get.helixml.tech", "dns_answer", "sandbox", "other",
     "blocked", "sandbox-install-get"),
    ("10.0.0.99", 51515, SB1, 22, "tcp", "SF", None, None, "other", "sandbox", "violation", None),
    ("10.0.0.98", 51516, SB2, 5900, "tcp", "S0", None, None, "other", "sandbox", "violation", None),
    (CP, 41000, "52.1.2.3", 443, "tcp", "REJ", "api.openai.com", "dns_answer", "control_plane", "other",
     "blocked", "cp-runtime-openai"),
    (CP, 41001, PROXY, 3128, "tcp", "SF", "api.anthropic.com", "connect", "control_plane", "other",
     "blocked", "cp-runtime-anthropic"),
    (SB2, 53002, "8.8.8.8", 53, "udp", "SF", None, None, "sandbox", "other", "violation", None),
    (SB2, 40010, CP, 8080, "tcp", "SF", "helix.example.com", "websocket", "sandbox", "control_plane",
     "violation", None),
    (CP, 41002, "18.1.1.1", 443, "tcp", "S0", "helix-registry-europe.s3.eu-west-2.amazonaws.com",
     "dns_answer", "control_plane", "other", "blocked", "cp-install-s3"),
    (SB2, 40011, "151.101.0.223", 443, "tcp", "RSTR", "pypi.org", "sni", "sandbox", "other", "blocked",
     "pkg-pypi"),
    (SB2, 53003, DNS, 53, "udp", "SF", None, None, "sandbox", "other", "allowed", None),
]


def _flow_frame(hostile: bool) -> pd.DataFrame:
    rows = []
    for i, (oh, op, rh, rp, tr, st, host, src, oc, rc, verdict, rule) in enumerate(_FLOWS):
        if hostile and host == "evil.example.net":
            host = HOSTILE["script"]
        syn = 6 if st == "S0" else (1 if tr == "tcp" else 0)
        answered = st not in ("S0",)
        first = T0 + 10 * i
        dur = 31.0 if st == "S0" else 2.5
        rows.append({
            "flow_id": i, "transport": tr, "orig_h": oh, "orig_p": op, "resp_h": rh, "resp_p": rp,
            "initiator": "syn" if tr == "tcp" else "first_packet",
            "confidence": "high" if tr == "tcp" else "low", "first_ts": first,
            "last_ts": first + dur, "duration": dur, "orig_pkts": syn if st == "S0" else 12,
            "resp_pkts": 10 if answered else 0, "orig_ip_bytes": 60 * 12, "resp_ip_bytes": 4000 * i,
            "orig_bytes": 500, "resp_bytes": 3000 * i, "syn": syn, "synack": int(st in ("SF", "RSTR")),
            "orig_fin": int(st == "SF"), "resp_fin": int(st == "SF"), "orig_rst": 0,
            "resp_rst": int(st in ("REJ", "RSTR")), "conn_state": st,
            "history": "ShADadFf" if st == "SF" else ("S" if st == "S0" else "Sr"),
            "handshake": "completed" if st in ("SF", "RSTR") else ("rejected" if st == "REJ" else
                                                                  "no_answer"),
            "icmp_errors": 1 if rh == "18.1.1.1" else 0,
            "icmp_error": "unreachable/13" if rh == "18.1.1.1" else None,
            "icmp_from": "10.0.0.1" if rh == "18.1.1.1" else None,
            "icmp_frames": f"{PCAP}:{200 + i}" if rh == "18.1.1.1" else "",
            "file": PCAP, "files": PCAP, "first_frame": 10 * i + 1, "last_frame": 10 * i + 9,
            "key_frames": f"{10 * i + 1},{10 * i + 2}",
            "tcp_stream": i if tr == "tcp" else None, "udp_stream": i if tr == "udp" else None,
            "vlan": 0, "encap": "", "hostname": host, "name_source": src, "orig_component": oc,
            "resp_component": rc, "verdict": verdict, "rule": rule,
        })
    frame = pd.DataFrame(rows, columns=list(FLOW_COLUMNS) + ["hostname", "name_source", "orig_component",
                                                             "resp_component", "verdict", "rule"])
    for col in ("tcp_stream", "udp_stream"):
        frame[col] = frame[col].astype("Int64")
    return frame


def bulk_flows(n: int, start_id: int) -> pd.DataFrame:
    """``n`` synthetic allowed/unknown flows from the sandboxes to a few thousand destinations."""
    rng = np.random.default_rng(7)
    ids = np.arange(start_id, start_id + n)
    dest = rng.integers(0, 3000, n)
    first = T0 + np.sort(rng.uniform(0, 3600, n))
    hosts = np.array([f"host{d}.cdn{d % 40}.example.com" for d in range(3000)], dtype=object)
    cols: dict[str, Any] = {
        "flow_id": ids, "transport": "tcp", "orig_h": np.where(ids % 2 == 0, SB1, SB2),
        "orig_p": 30000 + ids % 30000, "resp_h": [f"192.0.2.{d % 250}" for d in dest], "resp_p": 443,
        "initiator": "syn", "confidence": "high", "first_ts": first, "last_ts": first + 1.0,
        "duration": 1.0, "orig_pkts": 8, "resp_pkts": 7, "orig_ip_bytes": 900, "resp_ip_bytes": 5000,
        "orig_bytes": 400, "resp_bytes": 4400, "syn": 1, "synack": 1, "orig_fin": 1, "resp_fin": 1,
        "orig_rst": 0, "resp_rst": 0, "conn_state": "SF", "history": "ShADadFf",
        "handshake": "completed", "icmp_errors": 0, "icmp_error": None, "icmp_from": None,
        "icmp_frames": "", "file": PCAP, "files": PCAP, "first_frame": ids * 9 + 1,
        "last_frame": ids * 9 + 8, "key_frames": "", "tcp_stream": ids, "udp_stream": None, "vlan": 0,
        "encap": "", "hostname": hosts[dest], "name_source": "sni", "orig_component": "sandbox",
        "resp_component": "other", "verdict": np.where(dest % 3 == 0, "violation", "allowed"),
        "rule": np.where(dest % 3 == 0, None, "pkg-pypi"),
    }
    frame = pd.DataFrame(cols)
    frame["tcp_stream"] = frame["tcp_stream"].astype("Int64")
    frame["udp_stream"] = frame["udp_stream"].astype("Int64")
    return frame


def _ev(flow: int, frames: tuple[int, ...], filt: str = "") -> tuple[Evidence, ...]:
    t = T0 + 10 * flow
    return (Evidence(PCAP, frames, t, t + 31.0, (flow,), filt or f"tcp.stream eq {flow}"),)


def _finding(n: int, kind: str, sev: Severity, comp: str, flow: int, **kw: Any) -> Finding:
    o = _FLOWS[flow]
    base: dict[str, Any] = dict(
        id=f"F{n:04d}", kind=kind, severity=sev, component=comp, src=o[0], src_port=o[1], dst=o[2],
        dst_port=o[3], transport=o[4], hostname=o[6], message=f"{kind} {o[2]}:{o[3]}",
        evidence=_ev(flow, (10 * flow + 1, 10 * flow + 2, 10 * flow + 5)), flow_ids=(flow,),
    )
    base.update(kw)
    return Finding(**base)


def _findings(h: dict[str, str]) -> list[Finding]:
    evil = h.get("script", "evil.example.net")
    return [
        _finding(1, "unexpected_destination", Severity.HIGH, "sandbox", 3, hostname=evil,
                 message=f"sandbox {SB1} reached {evil}:443, which no enabled rule allows",
                 sources=(SB1,)),
        _finding(2, "unexpected_destination", Severity.MEDIUM, "sandbox", 9, hostname=None,
                 message=f"DNS to 8.8.8.8, a resolver the site profile does not list",
                 evidence=(Evidence(PCAP, (91,), T0 + 90, T0 + 90, (9,), "udp.stream eq 9"),)),
        _finding(3, "unexpected_destination", Severity.LOW, "sandbox", 13, hostname=h.get(
            "img", "tracker.example.org"), message="DNS lookup of a name no rule lists (no connection)",
            dst=DNS, dst_port=53, evidence=(Evidence(PCAP, (131, 132), T0 + 130, T0 + 130, (13,),
                                                     'dns.qry.name == "tracker.example.org"'),)),
        _finding(4, "inbound_to_sandbox", Severity.CRITICAL, "sandbox", 5, state="accepted",
                 message=f"10.0.0.99 connected to sandbox {SB1}:22 and the sandbox accepted"),
        _finding(5, "inbound_to_sandbox", Severity.HIGH, "sandbox", 6, state="attempted",
                 message=f"10.0.0.98 tried to connect to sandbox {SB2}:5900 (no answer)"),
        _finding(6, "unexpected_websocket_path", Severity.MEDIUM, "sandbox", 10,
                 message=f"WebSocket upgrade to the control plane on {h.get('svgpath', '/api/v1/debug')}",
                 extra={"path": h.get("svgpath", "/api/v1/debug")}),
        _finding(7, "blocked", Severity.HIGH, "sandbox", 4, how="no_answer", rule="sandbox-install-get",
                 message="get.helixml.tech:443 never answered"),
        _finding(8, "blocked", Severity.MEDIUM, "control_plane", 7, how="reset", rule="cp-runtime-openai",
                 message="api.openai.com:443 answered the SYN with a reset"),
        _finding(9, "blocked", Severity.MEDIUM, "control_plane", 8, how="proxy_denied",
                 rule="cp-runtime-anthropic", message="proxy refused CONNECT api.anthropic.com:443",
                 extra={"status": 403, "proxy": f"{PROXY}:3128"}),
        _finding(10, "blocked", Severity.HIGH, "control_plane", 11, how="icmp_unreachable",
                 rule="cp-install-s3", message="ICMP administratively prohibited from 10.0.0.1"),
        _finding(11, "blocked", Severity.MEDIUM, "sandbox", 12, how="tls_alert", rule="pkg-pypi",
                 message="TLS handshake to pypi.org ended with alert handshake_failure",
                 extra={"alert": "handshake_failure"}),
        _finding(12, "blocked", Severity.MEDIUM, "sandbox", 13, how="nxdomain",
                 hostname="download.docker.com", dst=DNS, dst_port=53, rule="desktop-docker",
                 message="download.docker.com does not resolve (NXDOMAIN)"),
        _finding(13, "infrastructure", Severity.INFO, "sandbox", 1, message="DNS to the profile's resolver",
                 hostname=h.get("ctrl")),
    ]


def _observations(h: dict[str, str]) -> list[Any]:
    evil = h.get("script", "evil.example.net")
    ws_path = h.get("svgpath", "/api/v1/debug")
    return [
        DnsQuery("dns_query", 11, T0 + 10, PCAP, SB1, 53001, DNS, 53, "udp", 1, (), id=1,
                 qname="registry.helixml.tech", qtype="A"),
        DnsResponse("dns_response", 12, T0 + 10.01, PCAP, DNS, 53, SB1, 53001, "udp", 1, (), id=1,
                    qname="registry.helixml.tech", qtype="A", answers=(
                        DnsAnswer("registry.helixml.tech", "CNAME", 60, "edge.helixml.tech"),
                        DnsAnswer("edge.helixml.tech", "A", 60, "104.18.0.1"))),
        DnsQuery("dns_query", 131, T0 + 130, PCAP, SB2, 53003, DNS, 53, "udp", 13, (), id=2,
                 qname=h.get("img", "tracker.example.org"), qtype="A"),
        DnsResponse("dns_response", 133, T0 + 130.2, PCAP, DNS, 53, SB2, 53003, "udp", 13, (), id=3,
                    qname="download.docker.com", qtype="AAAA", rcode="NXDOMAIN"),
        DnsResponse("dns_response", 134, T0 + 130.3, PCAP, DNS, 53, SB2, 53003, "udp", 13, (), id=4,
                    qname=h.get("ctrl", "mirror.example"), qtype="TXT", answers=(
                        DnsAnswer(h.get("ctrl", "mirror.example"), "TXT", 5, h.get("quote", "v=1")),)),
        TlsClientHello("tls_client_hello", 34, T0 + 30, PCAP, SB1, 40003, "198.51.100.7", 443, "tcp", 3,
                       (33, 34), sni=evil, alpn=("h2", "http/1.1"), version="TLS 1.3"),
        TlsClientHello("tls_client_hello", 24, T0 + 20, PCAP, SB1, 40002, "104.18.0.1", 443, "tcp", 2,
                       (24,), sni="registry.helixml.tech", alpn=("h2",), version="TLS 1.3"),
        TlsAlert("tls_alert", 125, T0 + 120, PCAP, "151.101.0.223", 443, SB2, 40011, "tcp", 12, (),
                 level="fatal", description="handshake_failure"),
        WebSocketUpgrade("websocket_upgrade", 4, T0, PCAP, SB1, 40000, CP, 8080, "tcp", 0, (4,),
                         method="GET", host="helix.example.com", path="/api/v1/revdial", version="1.1",
                         accepted=True, status=101, response_frame=5),
        WebSocketUpgrade("websocket_upgrade", 104, T0 + 100, PCAP, SB2, 40010, CP, 8080, "tcp", 10,
                         (104,), method="GET", host=h.get("quote", "helix.example.com"), path=ws_path,
                         version="1.1", accepted=False, status=404, response_frame=105),
        HttpConnect("http_connect", 84, T0 + 80, PCAP, CP, 41001, PROXY, 3128, "tcp", 8, (84,),
                    method="CONNECT", host="api.anthropic.com:443", path="api.anthropic.com:443",
                    version="1.1", target=h.get("long", "api.anthropic.com") + ":443", status=403,
                    response_frame=86),
    ]


def _coverage() -> list[CoverageEntry]:
    return [
        CoverageEntry("sandbox-install-registry", "sandbox", "install", "core", ("registry.helixml.tech",),
                      (443,), "ok", None, (2,), "Container image registry"),
        CoverageEntry("sandbox-install-get", "sandbox", "install", "core", ("get.helixml.tech",), (443,),
                      "blocked", "no_answer", (4,), "Install script and version info"),
        CoverageEntry("sandbox-install-s3", "sandbox", "install", "core",
                      ("helix-registry-europe.s3.eu-west-2.amazonaws.com",), (443,), "not_seen", None, (),
                      "Container image blob storage (AWS S3)"),
        CoverageEntry("sandbox-runtime-control-plane", "sandbox", "runtime", "core", ("helix.example.com",),
                      (443, 8080), "ok", None, (0,), "WebSocket (RevDial tunnel + agent sync)"),
        CoverageEntry("cp-install-registry", "control_plane", "install", "core", ("registry.helixml.tech",),
                      (443,), "not_seen", None, (), "Container image registry"),
        CoverageEntry("cp-install-s3", "control_plane", "install", "core",
                      ("helix-registry-europe.s3.eu-west-2.amazonaws.com",), (443,), "blocked",
                      "icmp_unreachable", (11,), "Container image blob storage (AWS S3)"),
        CoverageEntry("cp-runtime-openai", "control_plane", "runtime", "llm-providers", ("api.openai.com",),
                      (443,), "blocked", "reset", (7,), "OpenAI (if configured)"),
        CoverageEntry("cp-runtime-anthropic", "control_plane", "runtime", "llm-providers",
                      ("api.anthropic.com",), (443,), "blocked", "proxy_denied", (8,),
                      "Anthropic (if configured)"),
        CoverageEntry("pkg-pypi", "sandbox", "runtime", "package-managers",
                      ("pypi.org", "files.pythonhosted.org"), (443,), "blocked", "tls_alert", (12,),
                      "Python/pip"),
    ]


SITE = {"control_plane": {"addresses": [CP], "names": ["helix.example.com"]},
        "sandboxes": {"addresses": ["10.0.1.0/24"]}, "dns_servers": [DNS], "proxies": [f"{PROXY}:3128"],
        "llm_providers": ["openai", "anthropic"], "optional": ["package-managers"]}


def make_result(hostile: bool = False, bulk: int = 0, empty: bool = False) -> AuditResult:
    h = HOSTILE if hostile else {}
    flows = _flow_frame(hostile)
    if bulk:
        flows = pd.concat([flows, bulk_flows(bulk, len(flows))], ignore_index=True)
    inp = InputInfo(PCAP, "ab" * 32, "pcapng", False, 1234, 567_890, T0, T0 + 160.0, (1, 113),
                    "microseconds", 262144, ("capture_truncated: 3 packets cut at snaplen",))
    inp2 = InputInfo("captures/rotated-2.pcap.gz", "cd" * 32, "pcap", True, 100, 9000, T0 + 160,
                     T0 + 170, (1,), "nanoseconds", 65535)
    result = AuditResult(
        inputs=[inp, inp2], ruleset=RulesetInfo((("rules/helix.yaml", "ef" * 32),
                                                  ("rules/upstream.yaml", "01" * 32)), 31),
        site=SITE, site_sha256="9f" * 32, flows=flows, observations=_observations(h),
        findings=_findings(h), coverage=_coverage(),
        roles=[Role(CP, "control_plane", "profile"), Role(SB1, "sandbox", "profile"),
               Role(SB2, "sandbox", "inferred", "opened WebSocket /api/v1/revdial", (104,))],
        anomalies=[Anomaly("capture_truncated", PCAP, 77, "3 packets cut at snaplen"),
                   Anomaly("tls_client_hello_truncated", PCAP, 34, h.get("ctrl", "ends early"))],
        tool={"name": "helix-audit", "version": "0.1.0",
              "command": ["helix-audit", "audit", PCAP, "--site", "site.yaml", "--out", "out"],
              "generated": "2026-01-02T03:04:05Z", "site_path": "site.yaml"},
    )
    if empty:
        result.inputs = [InputInfo("empty.pcap", "00" * 32, "pcap", False, 0, 24, None, None, (1,),
                                   "microseconds", 65535, ("no_packets",))]
        result.flows = flows.iloc[0:0]
        result.observations, result.findings, result.coverage, result.roles = [], [], [], []
        result.anomalies = []
    return result
