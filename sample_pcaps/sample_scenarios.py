"""The sample scenarios: who talks to whom in each bundled capture (see README of issue 2 / make_samples).

Addresses: control plane 10.0.0.2 / fd00::2 (helix.example.com), resolver 10.0.0.53 / fd00::53,
proxy 10.0.0.3:3128, sandboxes 10.0.1.5, 10.0.1.6 and fd00::1:5. Internet hosts use the documentation
ranges (RFC 5737, RFC 3849), except 8.8.8.8 which is the point of one scenario. Nothing is sent
anywhere: these are only bytes in files.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any

from samplewire import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL2,
    Capture,
    Host,
    Tcp,
    http_head,
    tls_alert,
    tls_app_data,
    tls_client_hello,
    tls_server_flight,
    ws_frame,
    ws_upgrade,
)
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

T0 = 1_772_445_600_000_000  # 2026-03-02 10:00:00 UTC, microseconds
SEC = 1_000_000
ROUTER_MAC = "02:00:0a:00:00:01"

CP_NAME = "helix.example.com"
REGISTRY = "registry.helixml.tech"
GET = "get.helixml.tech"
S3 = "helix-registry-europe.s3.eu-west-2.amazonaws.com"
S3_CNAME = "s3-r-w.eu-west-2.amazonaws.com"
OPENAI = "api.openai.com"
ANTHROPIC = "api.anthropic.com"
EXFIL = "example-exfil.net"
LOOKUP_ONLY = "telemetry.unlisted-vendor.example"

SANDBOX = Host("10.0.1.5", "02:00:0a:00:01:05")
SANDBOX_B = Host("10.0.1.6", "02:00:0a:00:01:06")
CP = Host("10.0.0.2", "02:00:0a:00:00:02")
RESOLVER = Host("10.0.0.53", "02:00:0a:00:00:35")
PROXY = Host("10.0.0.3", "02:00:0a:00:00:03")
ROUTER = Host("10.0.0.1", ROUTER_MAC)
GOOGLE_DNS = Host("8.8.8.8", ROUTER_MAC)
REG_IP = Host("203.0.113.10", ROUTER_MAC)
GET_IP = Host("203.0.113.11", ROUTER_MAC)
S3_IP = Host("198.51.100.20", ROUTER_MAC)
OPENAI_IP = Host("198.51.100.13", ROUTER_MAC)
EXFIL_IP = Host("198.51.100.66", ROUTER_MAC)
RAW_IP = Host("192.0.2.44", ROUTER_MAC)
SCANNER = Host("203.0.113.77", ROUTER_MAC)

SANDBOX6 = Host("fd00::1:5", "02:00:0a:00:01:05")
CP6 = Host("fd00::2", "02:00:0a:00:00:02")
RESOLVER6 = Host("fd00::53", "02:00:0a:00:00:35")
REG_IP6 = Host("2001:db8:113::10", ROUTER_MAC)

SITE: dict[str, Any] = {
    "control_plane": {"addresses": ["10.0.0.2", "fd00::2"], "names": [CP_NAME]},
    "sandboxes": {"addresses": ["10.0.1.0/24", "fd00::1:0/112"]},
    "dns_servers": ["10.0.0.53", "fd00::53"],
    "proxies": ["10.0.0.3:3128"],
    "llm_providers": ["openai", "anthropic"],
    "optional": ["desktop-image", "package-managers", "git-providers"],
}


def site_profile(_name: str | None) -> dict[str, Any]:
    """Every sample is valid under the one combined profile; each still gets its own copy."""
    return SITE


class Ctx:
    """A capture being written plus the scenario's deterministic randomness and clock."""

    def __init__(self, name: str) -> None:
        self.cap = Capture()
        self.rng = random.Random(f"helix-audit-sample-{name}")
        self.t = T0

    def tick(self, us: int = 20_000) -> int:
        self.t += us
        return self.t

    def port(self) -> int:
        return self.rng.randrange(32768, 60999)

    def tcp(self, c: Host, s: Host, sport: int) -> Tcp:
        return Tcp(self.cap, c, self.port(), s, sport, self.rng.getrandbits(32), self.rng.getrandbits(32))

    def dns(self, client: Host, resolver: Host, qname: str, qtype: str, answers=(), rcode="NOERROR") -> None:
        self.cap.dns(
            self.tick(), client, resolver, self.port(), self.rng.getrandbits(16), qname, qtype, answers, rcode
        )
        self.tick(5_000)


# ----------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------


def websocket(ctx: Ctx, sb: Host, cp: Host, port: int, target: str, host_header: str) -> Tcp:
    conn = ctx.tcp(sb, cp, port)
    t = conn.handshake(ctx.tick())
    req, resp = ws_upgrade(host_header, target, ctx.rng)
    t = conn.send(t + 100, True, req)
    t = conn.send(t + 800, False, resp)
    t = conn.send(t + 2000, False, ws_frame(b'{"type":"ping"}', None, opcode=1))
    t = conn.send(t + 300, True, ws_frame(b'{"type":"pong"}', ctx.rng, opcode=1))
    ctx.t = t
    return conn


def tls_session(
    ctx: Ctx, c: Host, s: Host, sni: str | None, alpn=("h2", "http/1.1"), upload: int = 900
) -> Tcp:
    conn = ctx.tcp(c, s, 443)
    t = conn.handshake(ctx.tick())
    t = conn.send(t + 100, True, tls_client_hello(sni, alpn, ctx.rng))
    t = conn.send(t + 20_000, False, tls_server_flight(ctx.rng, 1200))
    t = conn.send(t + 500, True, tls_app_data(ctx.rng, upload))
    t = conn.send(t + 30_000, False, tls_app_data(ctx.rng, 2400))
    ctx.t = conn.close(t + 1000)
    return conn


def arp(ctx: Ctx, asker: Host, target: Host) -> None:
    bcast = Ether(src=asker.mac, dst="ff:ff:ff:ff:ff:ff")
    ctx.cap.add(ctx.tick(), bcast / ARP(op=1, hwsrc=asker.mac, psrc=asker.ip, pdst=target.ip))
    reply = ARP(op=2, hwsrc=target.mac, psrc=target.ip, hwdst=asker.mac, pdst=asker.ip)
    ctx.cap.add(ctx.tick(300), Ether(src=target.mac, dst=asker.mac) / reply)


def sandbox_channels(ctx: Ctx, sb: Host, cp: Host, resolver: Host, v6: bool = False) -> None:
    """A sandbox finds the control plane and opens both documented WebSocket channels on 8080."""
    qtype = "AAAA" if v6 else "A"
    ctx.dns(sb, resolver, CP_NAME, qtype, [(CP_NAME, qtype, cp.ip)])
    websocket(ctx, sb, cp, 8080, "/api/v1/revdial?runnerid=hydra-1", f"{CP_NAME}:8080")
    websocket(ctx, sb, cp, 8080, "/api/v1/external-agents/sync?session_id=ses_1", f"{CP_NAME}:8080")


# ----------------------------------------------------------------------------------------------------
# Scenarios: each returns (capture, pcapng interfaces)
# ----------------------------------------------------------------------------------------------------

Interfaces = list[tuple[int, str]]
ETH0: Interfaces = [(LINKTYPE_ETHERNET, "eth0")]


def compliant_sandbox() -> tuple[Capture, Interfaces]:
    ctx = Ctx("compliant_sandbox")
    arp(ctx, SANDBOX, RESOLVER)
    sandbox_channels(ctx, SANDBOX, CP, RESOLVER)
    ctx.dns(SANDBOX, RESOLVER, CP_NAME, "AAAA", [(CP_NAME, "AAAA", CP6.ip)])
    tls_session(ctx, SANDBOX, CP, CP_NAME, alpn=("http/1.1",))
    ctx.dns(SANDBOX, RESOLVER, REGISTRY, "A", [(REGISTRY, "A", REG_IP.ip)])
    tls_session(ctx, SANDBOX, REG_IP, REGISTRY)
    ctx.dns(CP, RESOLVER, REGISTRY, "A", [(REGISTRY, "A", REG_IP.ip)])
    ctx.dns(CP, RESOLVER, REGISTRY, "AAAA", [(REGISTRY, "AAAA", REG_IP6.ip)])
    tls_session(ctx, CP, REG_IP, REGISTRY)
    ctx.dns(CP, RESOLVER, S3, "A", [(S3, "CNAME", f"{S3_CNAME}."), (S3_CNAME, "A", S3_IP.ip)])
    tls_session(ctx, CP, S3_IP, S3, alpn=("http/1.1",), upload=400)
    ctx.dns(CP, RESOLVER, OPENAI, "A", [(OPENAI, "A", OPENAI_IP.ip)])
    tls_session(ctx, CP, OPENAI_IP, OPENAI, upload=1800)
    return ctx.cap, ETH0


def unexpected_destinations() -> tuple[Capture, Interfaces]:
    ctx = Ctx("unexpected_destinations")
    sandbox_channels(ctx, SANDBOX, CP, RESOLVER)
    ctx.dns(SANDBOX, RESOLVER, EXFIL, "A", [(EXFIL, "A", EXFIL_IP.ip)])
    tls_session(ctx, SANDBOX, EXFIL_IP, EXFIL, upload=1400)
    raw = ctx.tcp(SANDBOX, RAW_IP, 4444)
    t = raw.handshake(ctx.tick())
    t = raw.send(t + 200, True, b"id\nuname -a\n")
    t = raw.send(t + 5000, False, b"uid=0(root) gid=0(root)\nLinux sandbox 6.1.0 x86_64\n")
    ctx.t = raw.close(t + 1000)
    ctx.dns(SANDBOX, RESOLVER, LOOKUP_ONLY, "A", [(LOOKUP_ONLY, "A", "192.0.2.99")])
    ctx.dns(SANDBOX, GOOGLE_DNS, REGISTRY, "A", [(REGISTRY, "A", REG_IP.ip)])
    websocket(ctx, SANDBOX, CP, 8080, "/api/v1/ws/evil", f"{CP_NAME}:8080")
    return ctx.cap, ETH0


def inbound_connections() -> tuple[Capture, Interfaces]:
    ctx = Ctx("inbound_connections")
    sandbox_channels(ctx, SANDBOX, CP, RESOLVER)
    moon = ctx.tcp(SCANNER, SANDBOX, 47984)
    t = moon.handshake(ctx.tick())
    t = moon.send(t + 200, True, http_head("GET /serverinfo HTTP/1.1", [("Host", "10.0.1.5:47984")]))
    t = moon.send(t + 900, False, http_head("HTTP/1.1 200 OK", [("Content-Length", "0")]))
    ctx.t = moon.close(t + 500)
    ssh = ctx.tcp(SCANNER, SANDBOX, 22)
    ssh.syn(ctx.tick())
    ssh.rst_from_server(ctx.tick(400))
    silent = ctx.tcp(CP, SANDBOX, 48010)
    start = ctx.tick()
    for delay in (0, 1, 3):
        silent.syn(start + delay * SEC)
    ctx.t = start + 3 * SEC
    return ctx.cap, ETH0


def blocked_install() -> tuple[Capture, Interfaces]:
    ctx = Ctx("blocked_install")
    ctx.dns(CP, RESOLVER, REGISTRY, "A", [(REGISTRY, "A", REG_IP.ip)])
    reg = ctx.tcp(CP, REG_IP, 443)
    start = ctx.tick()
    for delay in (0, 1, 3, 7, 15, 23, 31):  # original SYN + 6 retransmissions over 31 s
        reg.syn(start + delay * SEC)
    ctx.t = start + 31 * SEC
    ctx.dns(CP, RESOLVER, GET, "A", [(GET, "A", GET_IP.ip)])
    get = ctx.tcp(CP, GET_IP, 443)
    get.syn(ctx.tick())
    get.rst_from_server(ctx.tick(9_000))
    ctx.dns(CP, RESOLVER, S3, "A", [(S3, "CNAME", f"{S3_CNAME}."), (S3_CNAME, "A", S3_IP.ip)])
    s3 = ctx.tcp(CP, S3_IP, 443)
    quoted = bytes(s3.syn(ctx.tick())[IP])  # Linux quotes the whole offending datagram
    prohibited = ICMP(type=3, code=13) / Raw(quoted)
    ctx.cap.add(
        ctx.tick(2_000), Ether(src=ROUTER_MAC, dst=CP.mac) / IP(src=ROUTER.ip, dst=CP.ip, id=0) / prohibited
    )
    ctx.dns(CP, RESOLVER, ANTHROPIC, "A", rcode="NXDOMAIN")
    ctx.dns(CP, RESOLVER, OPENAI, "AAAA", rcode="REFUSED")
    ctx.dns(CP, RESOLVER, OPENAI, "A", [(OPENAI, "A", OPENAI_IP.ip)])
    tls_session(ctx, CP, OPENAI_IP, OPENAI)
    ctx.dns(SANDBOX, RESOLVER, S3, "A", [(S3, "CNAME", f"{S3_CNAME}."), (S3_CNAME, "A", S3_IP.ip)])
    alert = ctx.tcp(SANDBOX, S3_IP, 443)
    t = alert.handshake(ctx.tick())
    t = alert.send(t + 100, True, tls_client_hello(S3, ("http/1.1",), ctx.rng))
    t = alert.send(t + 15_000, False, tls_alert(40))
    ctx.t = alert.close(t + 200)
    return ctx.cap, ETH0


def proxied() -> tuple[Capture, Interfaces]:
    ctx = Ctx("proxied")
    tunnel = ctx.tcp(SANDBOX, PROXY, 3128)
    t = tunnel.handshake(ctx.tick())
    connect = http_head(
        f"CONNECT {REGISTRY}:443 HTTP/1.1",
        [
            ("Host", f"{REGISTRY}:443"),
            ("User-Agent", "containerd/1.7.24"),
            ("Proxy-Connection", "Keep-Alive"),
        ],
    )
    t = tunnel.send(t + 100, True, connect)
    t = tunnel.send(t + 25_000, False, b"HTTP/1.1 200 Connection established\r\n\r\n")
    t = tunnel.send(t + 100, True, tls_client_hello(REGISTRY, ("h2", "http/1.1"), ctx.rng))
    t = tunnel.send(t + 30_000, False, tls_server_flight(ctx.rng, 1400))
    t = tunnel.send(t + 500, True, tls_app_data(ctx.rng, 700))
    ctx.t = tunnel.close(t + 40_000)
    denied = ctx.tcp(SANDBOX, PROXY, 3128)
    t = denied.handshake(ctx.tick())
    t = denied.send(
        t + 100, True, http_head("CONNECT evil.example.org:443 HTTP/1.1", [("Host", "evil.example.org:443")])
    )
    body = b"<html><body><h1>Access violation</h1></body></html>\n"
    head = http_head(
        "HTTP/1.1 403 Access violation", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))]
    )
    t = denied.send(t + 2_000, False, head + body)
    ctx.t = denied.close(t + 200)
    plain = ctx.tcp(SANDBOX, PROXY, 3128)
    t = plain.handshake(ctx.tick())
    url = "http://archive.ubuntu.com/ubuntu/dists/noble/InRelease"
    t = plain.send(
        t + 100,
        True,
        http_head(
            f"GET {url} HTTP/1.1",
            [("Host", "archive.ubuntu.com"), ("User-Agent", "Debian APT-HTTP/1.3 (2.7.14)")],
        ),
    )
    release = b"Origin: Ubuntu\nLabel: Ubuntu\nSuite: noble\n" * 20
    head = http_head(
        "HTTP/1.1 200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(release)))]
    )
    t = plain.send(t + 60_000, False, head + release)
    ctx.t = plain.close(t + 300)
    return ctx.cap, ETH0


def segmented_clienthello() -> tuple[Capture, Interfaces]:
    """No DNS lookup here: the registry name can only come from the reassembled ClientHello."""
    ctx = Ctx("segmented_clienthello")
    conn = ctx.tcp(SANDBOX, REG_IP, 443)
    t = conn.handshake(ctx.tick())
    hello = tls_client_hello(REGISTRY, ("h2", "http/1.1"), ctx.rng)
    cut1, cut2 = 60, 130 + len(REGISTRY) // 2  # the second cut falls inside the SNI extension
    parts = [(0, hello[:cut1]), (cut1, hello[cut1:cut2]), (cut2, hello[cut2:])]
    for i in (0, 2, 1, 2):  # first, third (out of order), second, third again (retransmission)
        off, chunk = parts[i]
        t += 150
        conn.segment(t, True, chunk, "PA" if i == 2 else "A", offset=off)
    conn.advance(True, len(hello))
    conn.ack(t + 600, from_client=False)
    t = conn.send(t + 20_000, False, tls_server_flight(ctx.rng, 1100))
    t = conn.send(t + 400, True, tls_app_data(ctx.rng, 300))
    ctx.t = conn.close(t + 10_000)
    return ctx.cap, ETH0


def _icmp6_nd(ctx: Ctx) -> None:
    """Router solicitation/advertisement and neighbour solicitation/advertisement for the resolver."""
    lladdr = "fe80::aff:fe01:5"
    rs = IPv6(src=lladdr, dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=SANDBOX6.mac)
    ctx.cap.add(ctx.tick(), Ether(src=SANDBOX6.mac, dst="33:33:00:00:00:02") / rs)
    ra = ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC)
    ra = ra / ICMPv6NDOptPrefixInfo(prefix="fd00::", prefixlen=64)
    ctx.cap.add(
        ctx.tick(),
        Ether(src=ROUTER_MAC, dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ra,
    )
    ns = IPv6(src=SANDBOX6.ip, dst="ff02::1:ff00:53", hlim=255) / ICMPv6ND_NS(tgt=RESOLVER6.ip)
    ns = ns / ICMPv6NDOptSrcLLAddr(lladdr=SANDBOX6.mac)
    ctx.cap.add(ctx.tick(), Ether(src=SANDBOX6.mac, dst="33:33:ff:00:00:53") / ns)
    na = IPv6(src=RESOLVER6.ip, dst=SANDBOX6.ip, hlim=255) / ICMPv6ND_NA(tgt=RESOLVER6.ip, R=0, S=1, O=1)
    na = na / ICMPv6NDOptDstLLAddr(lladdr=RESOLVER6.mac)
    ctx.cap.add(ctx.tick(300), Ether(src=RESOLVER6.mac, dst=SANDBOX6.mac) / na)


def ipv6() -> tuple[Capture, Interfaces]:
    ctx = Ctx("ipv6")
    _icmp6_nd(ctx)
    sandbox_channels(ctx, SANDBOX6, CP6, RESOLVER6, v6=True)
    ctx.dns(SANDBOX6, RESOLVER6, REGISTRY, "AAAA", [(REGISTRY, "AAAA", REG_IP6.ip)])
    tls_session(ctx, SANDBOX6, REG_IP6, REGISTRY)
    return ctx.cap, ETH0


SLL2 = struct.Struct("!HHIHBB8s")  # protocol, reserved, ifindex, ARPHRD, packet type, addr len, addr
NODE_A_MAC = bytes.fromhex("0200c0a8320b")


def _vlan(frame: bytes, vlan: int) -> bytes:
    eth = Ether(frame)
    inner = eth.payload
    return bytes(Ether(src=eth.src, dst=eth.dst) / Dot1Q(vlan=vlan, type=eth.type) / inner)


def _vxlan_sll2(frame: bytes, outbound: bool, sport: int) -> bytes:
    src, dst = ("192.168.50.11", "192.168.50.12") if outbound else ("192.168.50.12", "192.168.50.11")
    outer = IP(src=src, dst=dst, id=0, ttl=64, flags="DF") / UDP(sport=sport, dport=4789, chksum=0)
    outer = outer / VXLAN(flags=0x08, vni=1) / Raw(frame)
    head = SLL2.pack(0x0800, 0, 2, 1, 4 if outbound else 0, 6, NODE_A_MAC + b"\x00\x00")
    return head + bytes(outer)


def tunnels() -> tuple[Capture, Interfaces]:
    """Node view: sandbox A tagged on VLAN 100 (Ethernet), sandbox B inside VXLAN seen on `any` (SLL2)."""
    vlan = Ctx("tunnels-vlan")
    sandbox_channels(vlan, SANDBOX, CP, RESOLVER)
    vlan.dns(SANDBOX, RESOLVER, REGISTRY, "A", [(REGISTRY, "A", REG_IP.ip)])
    tls_session(vlan, SANDBOX, REG_IP, REGISTRY)
    vx = Ctx("tunnels-vxlan")
    vx.t = T0 + 500
    sandbox_channels(vx, SANDBOX_B, CP, RESOLVER)
    vx.dns(SANDBOX_B, RESOLVER, REGISTRY, "A", [(REGISTRY, "A", REG_IP.ip)])
    tls_session(vx, SANDBOX_B, REG_IP, REGISTRY)
    vx.dns(SANDBOX_B, RESOLVER, EXFIL, "A", [(EXFIL, "A", EXFIL_IP.ip)])
    tls_session(vx, SANDBOX_B, EXFIL_IP, EXFIL)
    out = Capture()
    for t, _i, frame in vlan.cap.records:
        out.add(t, _vlan(frame, 100), iface=0)
    for t, _i, frame in vx.cap.records:
        outbound = frame[6:12] == bytes.fromhex(SANDBOX_B.mac.replace(":", ""))
        sport = 49152 + (sum(frame[26:38]) % 16384)  # flow-hash source port, as Linux does
        out.add(t, _vxlan_sll2(frame, outbound, sport), iface=1)
    return out, [(LINKTYPE_ETHERNET, "ens5"), (LINKTYPE_LINUX_SLL2, "any")]


SCENARIOS: dict[str, tuple[Callable[[], tuple[Capture, Interfaces]], str]] = {
    "compliant_sandbox": (compliant_sandbox, "pcap"),
    "unexpected_destinations": (unexpected_destinations, "pcap"),
    "inbound_connections": (inbound_connections, "pcap"),
    "blocked_install": (blocked_install, "pcap"),
    "proxied": (proxied, "pcap"),
    "segmented_clienthello": (segmented_clienthello, "pcap"),
    "ipv6": (ipv6, "pcap"),
    "tunnels": (tunnels, "pcapng"),
}
