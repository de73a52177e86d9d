"""Link types and tunnels built with scapy: the columns must describe the innermost IP packet."""

from __future__ import annotations

import struct

import pytest
from scapy.all import GRE, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6EchoRequest, IPv6, PPPoE, Raw
from scapy.contrib.erspan import ERSPAN_II
from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.mpls import MPLS
from scapy.layers.l2 import CookedLinux
from scapy.layers.ppp import PPP
from scapy.layers.vxlan import VXLAN

from helix_audit.decode.core import decode_batch
from helix_audit.decode.interface import (
    ENCAP_GENEVE,
    ENCAP_GRE,
    ENCAP_GTPU,
    ENCAP_IPIP,
    ENCAP_MPLS,
    ENCAP_TEREDO,
    ENCAP_VLAN,
    ENCAP_VXLAN,
    ST_OK,
    addr_to_str,
)

from .capfile import batch_of

INNER4 = IP(src="10.1.2.3", dst="192.0.2.9", ttl=33) / TCP(sport=40000, dport=443, flags="S", seq=7) / b"hi"
INNER6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / (b"q" * 10)
OUTER = Ether() / IP(src="198.51.100.1", dst="198.51.100.2")


def teredo(payload: bytes) -> bytes:
    return bytes(OUTER / UDP(sport=3544, dport=40001) / payload)


ORIGIN = b"\x00\x00" + b"\xab" * 6
GENEVE_OPTS = struct.pack(">BBHI", 2, 0, 0x6558, 0x123400) + b"\x01" * 8  # 8 bytes of options
CASES = {
    "vxlan": (OUTER / UDP(dport=4789) / VXLAN(vni=9) / Ether() / INNER4, INNER4, ENCAP_VXLAN, 0),
    "geneve-eth-opts": (
        OUTER / UDP(dport=6081) / Raw(GENEVE_OPTS) / Ether() / INNER6,
        INNER6,
        ENCAP_GENEVE,
        0,
    ),
    "geneve-ip": (
        OUTER / UDP(dport=6081) / Raw(struct.pack(">BBHI", 0, 0, 0x0800, 0)) / INNER4,
        INNER4,
        ENCAP_GENEVE,
        0,
    ),
    "gre-ckS": (
        OUTER / GRE(chksum_present=1, key_present=1, seqnum_present=1, key=5, seqence_number=9) / INNER4,
        INNER4,
        ENCAP_GRE,
        0,
    ),
    "gre-eth-vlan": (
        OUTER / GRE(proto=0x6558) / Ether() / Dot1Q(vlan=77) / INNER6,
        INNER6,
        ENCAP_GRE | ENCAP_VLAN,
        77,
    ),
    "gre-mpls": (
        OUTER / GRE(proto=0x8847) / MPLS(label=16, s=0) / MPLS(label=17, s=1) / INNER4,
        INNER4,
        ENCAP_GRE | ENCAP_MPLS,
        0,
    ),
    "erspan2": (
        OUTER / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(vlan=3) / Ether() / INNER4,
        INNER4,
        ENCAP_GRE,
        0,
    ),
    "gtpu-seq-ext": (
        OUTER
        / UDP(sport=2152, dport=2152)
        / GTP_U_Header(E=1, S=1, seq=5, next_ex=0x85, gtp_type=255)
        / Raw(b"\x01\x00\x05\x00")
        / INNER6,
        INNER6,
        ENCAP_GTPU,
        0,
    ),
    "teredo-origin": (
        Raw(teredo(ORIGIN + bytes(IPv6(src="2001::1", dst="fe80::1") / ICMPv6EchoRequest()))),
        IPv6(src="2001::1", dst="fe80::1") / ICMPv6EchoRequest(),
        ENCAP_TEREDO,
        0,
    ),
    "ipip4": (OUTER / INNER4, INNER4, ENCAP_IPIP, 0),
    "ipip6-in-6": (Ether() / IPv6(src="2001:db8::9", dst="2001:db8::8") / INNER6, INNER6, ENCAP_IPIP, 0),
    "qinq-pppoe": (
        Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=200) / PPPoE(sessionid=3) / PPP(proto=0x0021) / INNER4,
        INNER4,
        ENCAP_VLAN,
        100,
    ),
    "mpls-stack": (
        Ether() / MPLS(label=1, s=0) / MPLS(label=2, s=0) / MPLS(label=3, s=1) / INNER6,
        INNER6,
        ENCAP_MPLS,
        0,
    ),
    "nested": (
        Ether()
        / IPv6(src="::1", dst="::2")
        / GRE()
        / IP(src="1.1.1.1", dst="2.2.2.2")
        / UDP(dport=4789)
        / VXLAN()
        / Ether()
        / Dot1Q(vlan=5)
        / INNER4,
        INNER4,
        ENCAP_GRE | ENCAP_VXLAN | ENCAP_VLAN,
        5,
    ),
}


def expect_same(cols, i: int, inner) -> None:  # noqa: ANN001
    ip = inner  # the innermost IP layer as scapy built it
    assert addr_to_str(cols.src_hi[i], cols.src_lo[i]) == ip.src
    assert addr_to_str(cols.dst_hi[i], cols.dst_lo[i]) == ip.dst
    l4 = ip.payload
    assert cols.proto[i] == (ip.proto if ip.version == 4 else ip.nh)
    if hasattr(l4, "sport"):
        assert (cols.sport[i], cols.dport[i]) == (l4.sport, l4.dport)
    want = bytes(l4.payload) if hasattr(l4, "sport") else b""
    if want:
        assert cols.payload(i) == want


@pytest.mark.parametrize("name", sorted(CASES))
def test_tunnel_innermost(name: str) -> None:
    pkt, inner, encap, vlan = CASES[name]
    cols = decode_batch(batch_of([bytes(pkt)]))
    assert cols.status[0] == ST_OK
    assert cols.encap[0] == encap
    assert cols.vlan[0] == vlan
    expect_same(cols, 0, inner)


def test_teredo_lookalike_stays_udp() -> None:
    bad_len = bytearray(bytes(INNER6))
    bad_len[5] += 1  # IPv6 payload length that does not match the UDP payload
    cols = decode_batch(batch_of([teredo(bytes(bad_len)), teredo(b"\x60" + b"\x00" * 10)]))
    assert (cols.proto == 17).all() and (cols.encap == 0).all()
    assert (cols.sport == 3544).all()


def test_tunnel_depth_is_bounded() -> None:
    pkt = INNER4
    for _ in range(6):
        pkt = IP(src="9.9.9.9", dst="8.8.8.8") / pkt
    cols = decode_batch(batch_of([bytes(Ether() / pkt)]))
    assert cols.encap[0] == ENCAP_IPIP
    assert cols.proto[0] == 4  # four levels peeled, two IP-in-IP headers left
    assert addr_to_str(cols.src_hi[0], cols.src_lo[0]) == "9.9.9.9"


def test_vxlan_with_arp_inside_keeps_outer_udp() -> None:
    arp = bytes(Ether(type=0x0806)) + b"\x00" * 28
    cols = decode_batch(batch_of([bytes(OUTER / UDP(sport=1, dport=4789) / VXLAN()) + arp]))
    assert (cols.proto[0], cols.dport[0], cols.encap[0]) == (17, 4789, 0)


LINKS = {
    113: bytes(CookedLinux(proto=0x0800) / INNER4),
    276: struct.pack(">HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, b"\x00" * 8) + bytes(INNER6),
    0: struct.pack("<I", 2) + bytes(INNER4),
    108: struct.pack(">I", 30) + bytes(INNER6),
    101: bytes(INNER6),
    12: bytes(INNER4),
    228: bytes(INNER4),
    229: bytes(INNER6),
}


@pytest.mark.parametrize("linktype", sorted(LINKS))
def test_link_types(linktype: int) -> None:
    cols = decode_batch(batch_of([LINKS[linktype]], linktype=linktype))
    assert cols.status[0] == ST_OK
    expect_same(cols, 0, INNER4 if LINKS[linktype].endswith(bytes(INNER4)) else INNER6)


def test_mixed_linktypes_in_one_batch() -> None:
    pk = [LINKS[t] for t in sorted(LINKS)]
    b = batch_of(pk)
    lt = b.linktype.copy()
    lt[:] = sorted(LINKS)
    from helix_audit.capture.interface import RecordBatch

    b = RecordBatch(b.source, b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, lt, b.frame)
    cols = decode_batch(b)
    assert (cols.status == ST_OK).all()
    assert sorted(set(cols.ipver.tolist())) == [4, 6]
