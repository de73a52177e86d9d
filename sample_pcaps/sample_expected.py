"""What auditing each sample with its site profile must give (written to ``<name>.expected.yaml``).

``findings``: every finding above ``info`` the audit must produce, and no other above ``info``. Each
entry names only the fields that the scenario decides; a field left out is not compared (for a DNS
lookup finding the reported ``dst`` may be the resolver or nothing, so it is left out). Grouped
findings match when the expected ``src`` is in ``sources``.

``coverage``: documented endpoints whose status the scenario decides. ``hostname: <control plane>``
means the sandbox's "your control plane" WebSocket row.

Severities: a connection to an unlisted host is high, a lookup alone low, DNS to an unlisted resolver
medium (kind ``dns_to_unlisted_resolver``), an undocumented WebSocket path medium, an accepted inbound
connection critical and an attempted one high, a blocked required endpoint medium. A denied CONNECT
to an unlisted host is an unexpected destination with ``how: proxy_denied`` (its severity is left to
the policy). Plain ``ws://`` on 8080 is documented (co-located installs): no finding above info.
"""

from __future__ import annotations

from typing import Any

from sample_scenarios import ANTHROPIC, CP_NAME, EXFIL, GET, LOOKUP_ONLY, OPENAI, REGISTRY, S3

CONTROL_PLANE_ROW = "<control plane>"


def _ok(component: str, *hosts: str) -> list[dict[str, Any]]:
    return [{"component": component, "hostname": h, "status": "ok"} for h in hosts]


def _blocked(component: str, host: str, how: str, dst: str | None = None) -> dict[str, Any]:
    finding: dict[str, Any] = {"kind": "blocked", "severity": "medium", "component": component}
    if dst is not None:
        finding |= {"dst": dst, "dst_port": 443, "transport": "tcp"}
    return finding | {"hostname": host, "how": how}


def _inbound(src: str, port: int, state: str) -> dict[str, Any]:
    severity = "critical" if state == "accepted" else "high"
    return {
        "kind": "inbound_to_sandbox",
        "severity": severity,
        "component": "sandbox",
        "src": src,
        "dst": "10.0.1.5",
        "dst_port": port,
        "transport": "tcp",
        "state": state,
    }


EXPECTED: dict[str, dict[str, Any]] = {
    "compliant_sandbox": {
        "findings": [],
        "coverage": _ok("sandbox", CONTROL_PLANE_ROW, REGISTRY)
        + _ok("control_plane", REGISTRY, S3, OPENAI)
        + [{"component": "control_plane", "hostname": GET, "status": "not_seen"}],
    },
    "unexpected_destinations": {
        "findings": [
            {
                "kind": "unexpected_destination",
                "severity": "high",
                "component": "sandbox",
                "dst": "198.51.100.66",
                "dst_port": 443,
                "transport": "tcp",
                "hostname": EXFIL,
            },
            {
                "kind": "unexpected_destination",
                "severity": "high",
                "component": "sandbox",
                "dst": "192.0.2.44",
                "dst_port": 4444,
                "transport": "tcp",
                "hostname": None,
            },
            {
                "kind": "unexpected_destination",
                "severity": "low",
                "component": "sandbox",
                "hostname": LOOKUP_ONLY,
            },
            {
                "kind": "dns_to_unlisted_resolver",
                "severity": "medium",
                "component": "sandbox",
                "dst": "8.8.8.8",
                "dst_port": 53,
                "transport": "udp",
            },
            {
                "kind": "unexpected_websocket_path",
                "severity": "medium",
                "component": "sandbox",
                "dst": "10.0.0.2",
                "dst_port": 8080,
                "transport": "tcp",
                "hostname": CP_NAME,
            },
        ],
        "coverage": _ok("sandbox", CONTROL_PLANE_ROW),
    },
    "inbound_connections": {
        "findings": [
            _inbound("203.0.113.77", 47984, "accepted"),
            _inbound("203.0.113.77", 22, "attempted"),
            _inbound("10.0.0.2", 48010, "attempted"),
        ],
        "coverage": _ok("sandbox", CONTROL_PLANE_ROW),
    },
    "blocked_install": {
        "findings": [
            _blocked("control_plane", REGISTRY, "no_answer", "203.0.113.10"),
            _blocked("control_plane", GET, "reset", "203.0.113.11"),
            _blocked("control_plane", S3, "icmp_unreachable", "198.51.100.20"),
            _blocked("control_plane", ANTHROPIC, "nxdomain"),
            _blocked("sandbox", S3, "tls_alert", "198.51.100.20"),
        ],
        "coverage": [
            {"component": "control_plane", "hostname": REGISTRY, "status": "blocked", "how": "no_answer"},
            {"component": "control_plane", "hostname": GET, "status": "blocked", "how": "reset"},
            {"component": "control_plane", "hostname": S3, "status": "blocked", "how": "icmp_unreachable"},
            {"component": "control_plane", "hostname": ANTHROPIC, "status": "blocked", "how": "nxdomain"},
            {"component": "control_plane", "hostname": OPENAI, "status": "ok"},
            {"component": "sandbox", "hostname": S3, "status": "blocked", "how": "tls_alert"},
        ],
    },
    "proxied": {
        "findings": [
            {
                "kind": "unexpected_destination",
                "component": "sandbox",
                "dst_port": 443,
                "hostname": "evil.example.org",
                "how": "proxy_denied",
            },
        ],
        "coverage": _ok("sandbox", REGISTRY, "archive.ubuntu.com"),
    },
    "segmented_clienthello": {"findings": [], "coverage": _ok("sandbox", REGISTRY)},
    "ipv6": {"findings": [], "coverage": _ok("sandbox", CONTROL_PLANE_ROW, REGISTRY)},
    "tunnels": {
        "findings": [
            {
                "kind": "unexpected_destination",
                "severity": "high",
                "component": "sandbox",
                "src": "10.0.1.6",
                "dst": "198.51.100.66",
                "dst_port": 443,
                "transport": "tcp",
                "hostname": EXFIL,
            },
        ],
        "coverage": _ok("sandbox", CONTROL_PLANE_ROW, REGISTRY),
    },
}
