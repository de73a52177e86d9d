"""Hostile inputs: cut headers, impossible lengths, extension-header abuse, random bytes."""

from __future__ import annotations

import numpy as np
import pytest
from scapy.all import IP, TCP, UDP, Dot1Q, Ether, IPOption_NOP, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop

from helix_audit.capture.interface import RecordBatch
from helix_audit.decode.core import decode_batch
from helix_audit.decode.interface import ST_MALFORMED, ST_OK, ST_TRUNCATED

from .capfile import batch_of

V4 = (
    Ether()
    / Dot1Q(vlan=4)
    / IP(src="1.2.3.4", dst="5.6.7.8", options=[IPOption_NOP()] * 4)
    / TCP(sport=1, dport=2, options=[("NOP", None)] * 4)
    / b"payload!"
)
V6 = (
    Ether()
    / IPv6(src="::1", dst="::2")
    / IPv6ExtHdrHopByHop()
    / IPv6ExtHdrDestOpt()
    / UDP(sport=3, dport=4)
    / b"x"
)


def header_end(pkt) -> int:  # noqa: ANN001
    return len(bytes(pkt)) - len(bytes(pkt.lastlayer()))


@pytest.mark.parametrize("pkt", [V4, V6], ids=["v4-vlan-options", "v6-ext"])
def test_cut_inside_every_header(pkt) -> None:  # noqa: ANN001
    raw = bytes(pkt)
    hend = header_end(pkt)
    cols = decode_batch(batch_of([raw[:k] for k in range(len(raw) + 1)]))
    for k in range(len(raw) + 1):
        if k < hend:
            assert cols.status[k] == ST_TRUNCATED, k
            assert cols.pay_off[k] == -1
        else:
            assert cols.status[k] == ST_OK, k
            assert cols.pay_len[k] == k - hend
            assert cols.pay_wire[k] == len(raw) - hend
            assert cols.payload(k) == raw[hend:k]


def test_zero_caplen_every_linktype() -> None:
    for lt in (0, 1, 12, 14, 101, 108, 113, 228, 229, 276):
        b = batch_of([b"", bytes(V4)], linktype=lt)
        b = RecordBatch(b.source, b.data, b.offset, np.array([0, 0]), b.wirelen, b.ts_ns, b.linktype, b.frame)
        cols = decode_batch(b)
        assert (cols.status == ST_TRUNCATED).all(), lt
        assert (cols.ipver == 0).all()


def test_ihl_below_five_and_short_total_length() -> None:
    ok = bytearray(bytes(Ether() / IP() / UDP()))
    small_ihl, short_tot, tcp_doff = bytearray(ok), bytearray(ok), bytearray(bytes(Ether() / IP() / TCP()))
    small_ihl[14] = 0x44
    short_tot[16:18] = b"\x00\x10"
    tcp_doff[14 + 20 + 12] = 0x40
    cols = decode_batch(batch_of([bytes(small_ihl), bytes(short_tot), bytes(tcp_doff), bytes(ok)]))
    assert cols.status.tolist() == [ST_MALFORMED, ST_MALFORMED, ST_MALFORMED, ST_OK]


def test_ipv6_extension_header_abuse() -> None:
    base = Ether() / IPv6(src="::1", dst="::2")
    chain = base / (IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt()) / UDP()
    for _ in range(20):
        chain = base / IPv6ExtHdrDestOpt() / chain[IPv6].payload
    huge = bytearray(bytes(base / IPv6ExtHdrHopByHop() / UDP() / (b"z" * 40)))
    huge[14 + 40 + 1] = 255  # hop-by-hop claims 2 KiB
    loop = bytearray(bytes(base / IPv6ExtHdrHopByHop(nh=0) / IPv6ExtHdrHopByHop(nh=0)))
    cols = decode_batch(batch_of([bytes(chain), bytes(huge), bytes(loop)]))
    assert cols.status[0] == ST_MALFORMED  # more than 16 extension headers
    assert cols.status[1] == ST_MALFORMED  # past the declared payload length
    assert cols.status[2] in (ST_MALFORMED, ST_TRUNCATED)
    assert (cols.ipver == 6).all()


def test_gre_with_every_flag_and_bad_version() -> None:
    from scapy.all import GRE

    inner = IP(src="7.7.7.7", dst="8.8.8.8") / UDP(sport=9, dport=10)
    all_flags = (
        Ether() / IP() / GRE(chksum_present=1, routing_present=1, key_present=1, seqnum_present=1) / inner
    )
    v1 = Ether() / IP() / GRE(version=1) / inner
    cols = decode_batch(batch_of([bytes(all_flags), bytes(v1)]))
    assert (cols.proto == 47).all() and (cols.encap == 0).all()  # routing / version 1: not unwrapped


@pytest.mark.parametrize("lt", [1, 113, 276, 101, 0, 228, 229, 147])
def test_random_bytes_never_raise(lt: int) -> None:
    rng = np.random.default_rng(lt)
    pkts = [rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8).tobytes() for _ in range(3000)]
    # bias towards plausible headers so that deeper code runs
    v4 = bytes(V4)
    pkts += [v4[: int(rng.integers(0, 60))] + rng.bytes(int(rng.integers(0, 80))) for _ in range(3000)]
    b = batch_of(pkts, linktype=lt)
    cols = decode_batch(b)
    assert set(np.unique(cols.status).tolist()) <= {0, 1, 2, 3, 4, 5}
    start, end = b.offset, b.offset + b.caplen
    has = cols.pay_off >= 0
    assert (cols.pay_off[has] >= start[has]).all()
    assert (cols.pay_off[has] + cols.pay_len[has] <= end[has]).all()
    assert (cols.pay_len >= 0).all()
