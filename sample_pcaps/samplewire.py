"""Wire builders for the sample captures: real protocol bytes, deterministic, no network access.

TLS ClientHello (RFC 8446 §4.1.2, SNI RFC 6066 §3, ALPN RFC 7301), DNS messages (RFC 1035, built with
dnspython), HTTP/1.1 heads (RFC 9112), WebSocket handshake and frames (RFC 6455), TCP conversations
with correct sequence and acknowledgement numbers (RFC 9293); checksums are computed by scapy when
the packet is serialised. Writers for classic pcap and pcapng (several interfaces) are here too so
that the output bytes depend on nothing but the inputs (no scapy writer defaults, no wall clock).
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

PCAP_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
PCAP_RECORD = struct.Struct("<IIII")  # ts_sec, ts_usec, caplen, wirelen
PCAPNG_BLOCK_HEAD = struct.Struct("<II")  # type, total length
PCAPNG_SHB_BODY = struct.Struct("<IHHq")  # byte-order magic, major, minor, section length
PCAPNG_IDB_BODY = struct.Struct("<HHI")  # linktype, reserved, snaplen
PCAPNG_EPB_BODY = struct.Struct("<IIIII")  # interface, ts high, ts low, caplen, wirelen
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276
SNAPLEN = 262144

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
TLS_CIPHERS = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8)
TLS_GROUPS = (0x001D, 0x0017, 0x0018)  # x25519, secp256r1, secp384r1
TLS_SIGALGS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)


# ----------------------------------------------------------------------------------------------------
# Application bytes
# ----------------------------------------------------------------------------------------------------


def _ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


def _vec8(body: bytes) -> bytes:
    return struct.pack("!B", len(body)) + body


def _vec16(body: bytes) -> bytes:
    return struct.pack("!H", len(body)) + body


def tls_client_hello(sni: str | None, alpn: Iterable[str], rng: random.Random) -> bytes:
    """One TLS record holding a TLS 1.3 ClientHello (legacy version 1.2, supported_versions 1.3/1.2)."""
    exts = b""
    if sni is not None:
        name = sni.encode()
        exts += _ext(0x0000, _vec16(b"\x00" + _vec16(name)))
    exts += _ext(0x000A, _vec16(b"".join(struct.pack("!H", g) for g in TLS_GROUPS)))
    exts += _ext(0x000B, _vec8(b"\x00"))
    exts += _ext(0x000D, _vec16(b"".join(struct.pack("!H", s) for s in TLS_SIGALGS)))
    protos = list(alpn)
    if protos:
        exts += _ext(0x0010, _vec16(b"".join(_vec8(p.encode()) for p in protos)))
    exts += _ext(0x002B, _vec8(b"\x03\x04\x03\x03"))
    key = rng.randbytes(32)
    exts += _ext(0x0033, _vec16(struct.pack("!HH", 0x001D, 32) + key))
    exts += _ext(0x002D, _vec8(b"\x01"))
    body = b"\x03\x03" + rng.randbytes(32) + _vec8(rng.randbytes(32))
    body += _vec16(b"".join(struct.pack("!H", c) for c in TLS_CIPHERS)) + _vec8(b"\x00")
    body += _vec16(exts)
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + _vec16(handshake)


def tls_server_flight(rng: random.Random, app_bytes: int = 600) -> bytes:
    """ServerHello (TLS 1.3, x25519) + ChangeCipherSpec + one opaque application-data record."""
    exts = _ext(0x002B, b"\x03\x04") + _ext(0x0033, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))
    body = b"\x03\x03" + rng.randbytes(32) + _vec8(rng.randbytes(32)) + struct.pack("!HB", 0x1301, 0)
    body += _vec16(exts)
    hello = b"\x16\x03\x03" + _vec16(b"\x02" + struct.pack("!I", len(body))[1:] + body)
    ccs = b"\x14\x03\x03\x00\x01\x01"
    return hello + ccs + tls_app_data(rng, app_bytes)


def tls_app_data(rng: random.Random, size: int) -> bytes:
    return b"\x17\x03\x03" + _vec16(rng.randbytes(size))


def tls_alert(description: int, level: int = 2) -> bytes:
    """A plaintext alert record (sent before keys are agreed, e.g. 40 handshake_failure)."""
    return b"\x15\x03\x03\x00\x02" + bytes((level, description))


def http_head(first_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [first_line, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode()


def ws_upgrade(
    host: str, target: str, rng: random.Random, token: str = "hlx_runner_token"
) -> tuple[bytes, bytes]:
    """(request, 101 response) of a WebSocket opening handshake with a correct Sec-WebSocket-Accept."""
    key = base64.b64encode(rng.randbytes(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    req = http_head(
        f"GET {target} HTTP/1.1",
        [
            ("Host", host),
            ("User-Agent", "Go-http-client/1.1"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", key),
            ("Authorization", f"Bearer {token}"),
        ],
    )
    resp = http_head(
        "HTTP/1.1 101 Switching Protocols",
        [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)],
    )
    return req, resp


def ws_frame(payload: bytes, rng: random.Random | None, opcode: int = 2) -> bytes:
    """One final WebSocket frame; masked when ``rng`` is given (client to server)."""
    head = bytes((0x80 | opcode,))
    mask_bit = 0x80 if rng is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes((mask_bit | n,))
    else:
        head += bytes((mask_bit | 126,)) + struct.pack("!H", n)
    if rng is None:
        return head + payload
    mask = rng.randbytes(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def dns_query(qid: int, qname: str, qtype: str) -> dns.message.Message:
    msg = dns.message.make_query(qname, qtype)
    msg.id = qid
    return msg


def dns_response(
    query: dns.message.Message,
    answers: Iterable[tuple[str, str, str]] = (),
    rcode: str = "NOERROR",
    ttl: int = 300,
) -> bytes:
    """Wire response to ``query``: ``answers`` are (owner, type, data) in order (CNAME chains first)."""
    resp = dns.message.make_response(query)
    resp.flags |= dns.flags.RA
    resp.set_rcode(dns.rcode.from_text(rcode))
    for owner, rtype, data in answers:
        resp.answer.append(dns.rrset.from_text(dns.name.from_text(owner), ttl, "IN", rtype, data))
    return resp.to_wire()


# ----------------------------------------------------------------------------------------------------
# Packets and conversations
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    ip: str
    mac: str

    def l3(self, dst: Host, **kw: int) -> Packet:
        if ":" in self.ip:
            return Ether(src=self.mac, dst=dst.mac) / IPv6(src=self.ip, dst=dst.ip, hlim=kw.get("ttl", 64))
        return Ether(src=self.mac, dst=dst.mac) / IP(
            src=self.ip, dst=dst.ip, ttl=kw.get("ttl", 64), id=kw["id"]
        )


@dataclass
class Capture:
    """Packets in time order: (timestamp in microseconds, interface index, frame bytes)."""

    records: list[tuple[int, int, bytes]] = field(default_factory=list)
    ip_id: int = 0x1000

    def add(self, t_us: int, pkt: Packet | bytes, iface: int = 0) -> None:
        self.records.append((t_us, iface, bytes(pkt)))

    def next_id(self) -> int:
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return self.ip_id

    def sorted(self) -> list[tuple[int, int, bytes]]:
        return sorted(self.records, key=lambda r: r[0])

    def udp(self, t_us: int, src: Host, sport: int, dst: Host, dport: int, payload: bytes) -> None:
        self.add(t_us, src.l3(dst, id=self.next_id()) / UDP(sport=sport, dport=dport) / Raw(payload))

    def dns(
        self,
        t_us: int,
        client: Host,
        resolver: Host,
        sport: int,
        qid: int,
        qname: str,
        qtype: str,
        answers: Iterable[tuple[str, str, str]] = (),
        rcode: str = "NOERROR",
        rtt_us: int = 1800,
    ) -> None:
        query = dns_query(qid, qname, qtype)
        self.udp(t_us, client, sport, resolver, 53, query.to_wire())
        self.udp(t_us + rtt_us, resolver, 53, client, sport, dns_response(query, answers, rcode))


@dataclass
class Tcp:
    """One TCP conversation with tracked sequence numbers; ``c`` opened it (the initiator)."""

    cap: Capture
    c: Host
    cport: int
    s: Host
    sport: int
    isn_c: int
    isn_s: int
    c_next: int = 0
    s_next: int = 0

    def __post_init__(self) -> None:
        self.c_next = (self.isn_c + 1) & 0xFFFFFFFF
        self.s_next = (self.isn_s + 1) & 0xFFFFFFFF

    def _pkt(
        self, from_client: bool, flags: str, seq: int, ack: int, data: bytes = b"", win: int = 64240
    ) -> Packet:
        a, b = (self.c, self.s) if from_client else (self.s, self.c)
        ap, bp = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        seg = TCP(sport=ap, dport=bp, flags=flags, seq=seq, ack=ack if "A" in flags else 0, window=win)
        pkt = a.l3(b, id=self.cap.next_id()) / seg
        return pkt / Raw(data) if data else pkt

    def syn(self, t: int) -> Packet:
        pkt = self._pkt(True, "S", self.isn_c, 0)
        self.cap.add(t, pkt)
        return pkt

    def synack(self, t: int) -> None:
        self.cap.add(t, self._pkt(False, "SA", self.isn_s, self.c_next, win=65160))

    def handshake(self, t: int, rtt: int = 1000) -> int:
        self.syn(t)
        self.synack(t + rtt)
        self.ack(t + rtt + 50, from_client=True)
        return t + rtt + 50

    def ack(self, t: int, from_client: bool) -> None:
        seq, ack = (self.c_next, self.s_next) if from_client else (self.s_next, self.c_next)
        self.cap.add(t, self._pkt(from_client, "A", seq, ack))

    def send(self, t: int, from_client: bool, data: bytes, mss: int = 1448, ack_after: int = 400) -> int:
        """Send ``data`` in MSS-sized segments, acknowledged by the peer; returns the time after."""
        for i in range(0, len(data), mss):
            chunk = data[i : i + mss]
            flags = "PA" if i + mss >= len(data) else "A"
            self.segment(t, from_client, chunk, flags)
            t += 30
        self.ack(t + ack_after, not from_client)
        return t + ack_after

    def segment(
        self, t: int, from_client: bool, data: bytes, flags: str = "PA", offset: int | None = None
    ) -> None:
        """One data segment; ``offset`` (bytes after the current next seq) sends out of order."""
        base = self.c_next if from_client else self.s_next
        seq = (base + (offset or 0)) & 0xFFFFFFFF
        ack = self.s_next if from_client else self.c_next
        self.cap.add(t, self._pkt(from_client, flags, seq, ack, data))
        if offset is None:
            self.advance(from_client, len(data))

    def advance(self, from_client: bool, n: int) -> None:
        if from_client:
            self.c_next = (self.c_next + n) & 0xFFFFFFFF
        else:
            self.s_next = (self.s_next + n) & 0xFFFFFFFF

    def close(self, t: int) -> int:
        """Client FIN, server FIN-ACK, client ACK."""
        self.cap.add(t, self._pkt(True, "FA", self.c_next, self.s_next))
        self.advance(True, 1)
        self.cap.add(t + 500, self._pkt(False, "FA", self.s_next, self.c_next))
        self.advance(False, 1)
        self.ack(t + 550, from_client=True)
        return t + 550

    def rst_from_server(self, t: int) -> None:
        self.cap.add(t, self._pkt(False, "RA", 0, self.c_next))


# ----------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------


def write_pcap(path: str, records: list[tuple[int, int, bytes]], linktype: int = LINKTYPE_ETHERNET) -> None:
    """Classic little-endian microsecond pcap (every record on interface 0)."""
    out = [PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype)]
    for t_us, _iface, frame in records:
        out.append(PCAP_RECORD.pack(t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame)
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    total = len(body) + 12
    return PCAPNG_BLOCK_HEAD.pack(block_type, total) + body + struct.pack("<I", total)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def write_pcapng(path: str, records: list[tuple[int, int, bytes]], interfaces: list[tuple[int, str]]) -> None:
    """pcapng, one section, ``interfaces`` as (linktype, name); microsecond timestamps."""
    shb_opts = _option(4, b"helix-audit make_samples.py") + _option(0, b"")
    out = [_block(0x0A0D0D0A, PCAPNG_SHB_BODY.pack(0x1A2B3C4D, 1, 0, -1) + shb_opts)]
    for linktype, name in interfaces:
        opts = _option(2, name.encode()) + _option(9, b"\x06") + _option(0, b"")
        out.append(_block(1, PCAPNG_IDB_BODY.pack(linktype, 0, SNAPLEN) + opts))
    for t_us, iface, frame in records:
        body = PCAPNG_EPB_BODY.pack(iface, t_us >> 32, t_us & 0xFFFFFFFF, len(frame), len(frame)) + frame
        out.append(_block(6, body))
    with open(path, "wb") as fh:
        fh.write(b"".join(out))
