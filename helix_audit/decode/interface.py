"""The decode stage's contract: per-packet header columns for a whole batch at once.

``decode_batch(batch) -> PacketColumns`` fills these columns with numpy operations over the batch
(vectorised, no per-packet Python on the common path). Tunnels (VXLAN, Geneve, GRE, MPLS, GTP-U,
Teredo, IP-in-IP) are unwrapped: the columns describe the *innermost* IP packet, ``encap`` says what
was peeled off. Addresses are 128-bit, stored as two uint64 halves; IPv4 is IPv4-mapped IPv6
(``::ffff:a.b.c.d``) so one key serves both families.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np

from ..capture.interface import RecordBatch

# ``encap`` bits
ENCAP_VLAN = 1
ENCAP_MPLS = 2
ENCAP_VXLAN = 4
ENCAP_GENEVE = 8
ENCAP_GRE = 16
ENCAP_GTPU = 32
ENCAP_TEREDO = 64
ENCAP_IPIP = 128

# ``status`` values (why a packet has no usable L3/L4)
ST_OK = 0  # IP decoded (L4 too when proto is TCP/UDP/ICMP and the header was captured)
ST_NOT_IP = 1  # ARP, LLDP, ... (counted, not a flow)
ST_TRUNCATED = 2  # captured bytes end inside a header
ST_MALFORMED = 3  # bad version / header length / impossible lengths
ST_UNKNOWN_LINK = 4  # link type we do not decode
ST_FRAGMENT = 5  # IP fragment that is not the first (no L4 header); see ``reassembled``

V4_MAPPED_HI = np.uint64(0)
V4_MAPPED_LO_PREFIX = np.uint64(0xFFFF_0000_0000)


@dataclass(eq=False)
class PacketColumns:
    """One row per record of the batch, same order. All arrays have length ``n``.

      frame, ts_ns, wirelen, caplen     copied from the batch
      status   uint8   ST_* above
      ethertype uint16 innermost L3 ethertype seen (0x0800, 0x86dd, 0x0806 ...), 0 if none
      ipver    uint8   4 or 6 (0 when not IP)
      proto    uint8   innermost transport protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6 ...)
      src_hi, src_lo, dst_hi, dst_lo  uint64  addresses (see module doc)
      ip_len   int64   IP header + payload length as the IP header declares it (ip bytes, Zeek's
                       ip_bytes); for truncated captures this exceeds what was captured
      ttl      uint8   TTL / hop limit
      sport, dport uint16  ports (TCP/UDP); for ICMP: sport = type, dport = code (Zeek's convention)
      tcp_flags uint8  (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128)
      seq, ack  uint32
      win       uint16
      l4_off   int64   absolute offset in ``data`` of the L4 header (-1 if none)
      pay_off  int64   absolute offset in ``data`` of the L4 payload (-1 if none)
      pay_len  int64   payload bytes captured (min of declared and captured)
      pay_wire int64   payload bytes the headers declare (>= pay_len when snaplen cut it)
      encap    uint8   ENCAP_* bits
      vlan     uint16  outermost VLAN id (0 when none)
      frag     uint8   1 when the packet is an IP fragment (first or not)

    ``reassembled`` maps a row index (the fragment that completed a datagram) to the reassembled
    L4 segment bytes (L4 header + payload); rows listed there have status ST_OK and their L4 columns
    filled from the reassembled datagram.
    """

    source: str
    data: np.ndarray
    frame: np.ndarray
    ts_ns: np.ndarray
    wirelen: np.ndarray
    caplen: np.ndarray
    status: np.ndarray
    ethertype: np.ndarray
    ipver: np.ndarray
    proto: np.ndarray
    src_hi: np.ndarray
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    ip_len: np.ndarray
    ttl: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    tcp_flags: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    win: np.ndarray
    l4_off: np.ndarray
    pay_off: np.ndarray
    pay_len: np.ndarray
    pay_wire: np.ndarray
    encap: np.ndarray
    vlan: np.ndarray
    frag: np.ndarray
    reassembled: dict[int, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def payload(self, i: int) -> bytes:
        """The L4 payload bytes of row ``i`` (captured part only)."""
        if i in self.reassembled:
            seg = self.reassembled[i]
            l4len = int(self.pay_off[i] - self.l4_off[i]) if self.pay_off[i] >= 0 else 0
            return seg[l4len:]
        off = int(self.pay_off[i])
        if off < 0:
            return b""
        return bytes(self.data[off : off + int(self.pay_len[i])])

    def l4(self, i: int) -> bytes:
        """The L4 header + payload bytes of row ``i`` (for ICMP errors: the quoted packet inside)."""
        if i in self.reassembled:
            return self.reassembled[i]
        off = int(self.l4_off[i])
        if off < 0:
            return b""
        end = int(self.pay_off[i] + self.pay_len[i]) if self.pay_off[i] >= 0 else off
        return bytes(self.data[off:end])


def addr_to_str(hi: int, lo: int) -> str:
    """Text form of a 128-bit address column value (IPv4-mapped values print as IPv4)."""
    hi, lo = int(hi), int(lo)
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFF_FFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def str_to_addr(text: str) -> tuple[int, int]:
    """Inverse of :func:`addr_to_str`."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return 0, 0xFFFF_0000_0000 | int(ip)
    v = int(ip)
    return v >> 64, v & 0xFFFF_FFFF_FFFF_FFFF


def decode_batch(batch: RecordBatch) -> PacketColumns:  # pragma: no cover - replaced by decode.core
    from .core import decode_batch as impl

    return impl(batch)
