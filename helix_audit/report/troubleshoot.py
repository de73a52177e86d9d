"""Blocked flows in words a network engineer acts on.

One sentence per ``blocked`` finding: what was seen on the wire (from the flow's counters and the
finding's evidence) and where to look. The wording keys on the finding's ``how``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from helix_audit.model import Finding
from helix_audit.report.common import destination

#: ICMP destination-unreachable codes (RFC 792, RFC 1812; ICMPv6 RFC 4443 uses 1 for prohibited).
_UNREACHABLE = {
    "0": "network unreachable",
    "1": "host unreachable",
    "2": "protocol unreachable",
    "3": "port unreachable",
    "4": "fragmentation needed",
    "9": "network administratively prohibited",
    "10": "host administratively prohibited",
    "13": "communication administratively prohibited",
}

Advice = Callable[[Finding, dict[str, Any], str], str]


def _num(row: dict[str, Any], key: str, default: float = 0) -> float:
    value = row.get(key)
    return default if value is None else float(value)


def _text(row: dict[str, Any], key: str) -> Any:  # noqa: ANN401
    """The row's value, None when missing (a Categorical column's missing value reads NaN)."""
    value = row.get(key)
    return None if isinstance(value, float) and value != value else value


def _no_answer(f: Finding, row: dict[str, Any], ep: str) -> str:
    syns = int(_num(row, "syn", 1)) or 1
    span = _num(row, "duration")
    return (
        f"SYN sent {syns} time{'s' if syns != 1 else ''} over {span:.0f} s with no reply: dropped by "
        f"a firewall between {f.src} and {f.dst}. Check egress rules for {ep} and any "
        f"security group or NAT on the path."
    )


def _reset(f: Finding, row: dict[str, Any], ep: str) -> str:
    return (
        f"{f.dst} answered the connection to {ep} with a TCP reset: a firewall rejecting with "
        f"RST, or nothing listening on port {f.dst_port}. Check the firewall's reject rules "
        f"and that {f.dst} is the right address for {f.hostname or ep}."
    )


def _icmp(f: Finding, row: dict[str, Any], ep: str) -> str:
    error = str(_text(row, "icmp_error") or "unreachable")
    code = error.rsplit("/", 1)[-1]
    meaning = _UNREACHABLE.get(code, f"ICMP {error}")
    sender = _text(row, "icmp_from") or "a router"
    return (
        f"{sender} returned ICMP {meaning} for {ep}: the router or firewall at {sender} "
        f"refuses to forward it. Ask its owner to allow {f.src} to {f.dst} port {f.dst_port}."
    )


def _dns(word: str, hint: str) -> Advice:
    def advice(f: Finding, row: dict[str, Any], ep: str) -> str:
        name = f.hostname or ep
        return f"Resolver {f.dst} answered {word} for {name}: {hint}"

    return advice


def _dns_timeout(f: Finding, row: dict[str, Any], ep: str) -> str:
    tries = int(_num(row, "orig_pkts", 1)) or 1
    return (
        f"{tries} DNS quer{'ies' if tries != 1 else 'y'} from {f.src} to resolver {f.dst} got no "
        f"answer for {f.hostname or ep}: UDP/TCP port 53 to {f.dst} is blocked or the resolver "
        f"is down."
    )


def _tls_alert(f: Finding, row: dict[str, Any], ep: str) -> str:
    alert = f.extra.get("alert") or "an alert"
    return (
        f"The TLS handshake to {ep} ended with {alert} from {f.dst}: typically a TLS-inspecting "
        f"proxy or firewall that does not allow this SNI, or a server that does not serve "
        f"{f.hostname or 'this name'}. Exempt the host from TLS inspection or allow its SNI."
    )


def _proxy_denied(f: Finding, row: dict[str, Any], ep: str) -> str:
    status = f.extra.get("status")
    answer = f"HTTP {status}" if status else "an error"
    return (
        f"Proxy {f.dst}:{f.dst_port} refused the tunnel to {f.hostname or ep} with {answer}: add "
        f"{f.hostname or ep} to the proxy's allow-list (or give the host proxy credentials)."
    )


_ADVICE: dict[str, Advice] = {
    "no_answer": _no_answer,
    "reset": _reset,
    "icmp_unreachable": _icmp,
    "nxdomain": _dns(
        "NXDOMAIN (no such name)",
        "check the resolver's forwarders, split-horizon zones or a DNS filter that hides the name.",
    ),
    "servfail": _dns(
        "SERVFAIL",
        "the resolver could not reach upstream DNS or DNSSEC validation "
        "failed; check its forwarders and outbound port 53.",
    ),
    "refused": _dns(
        "REFUSED",
        "the resolver does not serve this client or this zone; allow the "
        "host to recurse through it or use the site's resolver.",
    ),
    "dns_timeout": _dns_timeout,
    "tls_alert": _tls_alert,
    "proxy_denied": _proxy_denied,
}


def endpoint_text(f: Finding) -> str:
    host = f.hostname or destination(f)
    return f"{host}:{f.dst_port}" if f.dst_port is not None else host


def advise(f: Finding, flow: dict[str, Any] | None) -> str:
    """One actionable sentence for a blocked finding (generic when ``how`` is unknown)."""
    ep = endpoint_text(f)
    handler = _ADVICE.get(f.how or "")
    if handler is None:
        return f"The connection to {ep} failed ({f.how or 'unknown reason'}): {f.message}"
    return handler(f, flow or {}, ep)
