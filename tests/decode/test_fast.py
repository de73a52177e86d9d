"""The numba fast path (decode/fast.py) against the general numpy path, row for row.

Every column, and the reassembled fragments, must be identical whichever path decoded a row: on
mixed link types in one batch, on every truncation of every template packet, on randomly mutated
bytes and lengths, and on the corpus.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from scapy.all import (
    ARP,
    GRE,
    ICMP,
    IP,
    TCP,
    UDP,
    VXLAN,
    CookedLinux,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    PPPoE,
    fragment,
)
from scapy.contrib.mpls import MPLS
from scapy.layers.ppp import PPP

from helix_audit.capture.interface import RecordBatch
from helix_audit.decode.core import Decoder
from helix_audit.decode.fast import FAST_TABLES, fast_rows
from helix_audit.decode.interface import PacketColumns
from helix_audit.decode.ip import OUT_FIELDS
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus

from .capfile import read_batch

MAC = "02:00:00:00:00:01"
V4 = IP(src="10.0.0.1", dst="10.0.0.2", ttl=9)
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=7)
TCP_SYN = TCP(sport=40000, dport=443, flags="S", seq=123, ack=0, window=999)
TCP_OPT = TCP(sport=1, dport=80, flags="PA", options=[("NOP", None)] * 8) / b"GET / HTTP/1.1\r\n\r\n"
DNS_UDP = UDP(sport=5353, dport=53) / (b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6)


def E() -> Ether:  # noqa: N802
    return Ether(src=MAC, dst=MAC)


ETHER = [  # (linktype 1) common rows and every kind of row the fast path must hand over
    E() / V4 / TCP_SYN,
    E() / V4 / TCP_OPT,
    E() / V4 / DNS_UDP,
    E() / V4 / ICMP(type=8) / b"ping",
    E() / V4 / ICMP(type=3, code=3) / IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=1, dport=2),
    E() / V6 / TCP_SYN / (b"x" * 10),
    E() / V6 / ICMPv6EchoRequest(),
    E() / V6 / UDP(sport=53, dport=5353) / b"abc",
    E() / Dot1Q(vlan=12) / V4 / TCP_OPT,
    E() / Dot1AD(vlan=7) / Dot1Q(vlan=8) / V6 / DNS_UDP,
    E() / ARP(),
    Ether(src=MAC, dst=MAC, type=0x88CC) / (b"\x00" * 30),
    E() / IP(src="1.1.1.1", dst="2.2.2.2", options=b"\x01\x01\x01\x00") / TCP_OPT,
    E() / IP(src="1.1.1.1", dst="2.2.2.2", proto=58) / (b"\x80\x00" + b"\x00" * 10),
    E() / IP(src="1.1.1.1", dst="2.2.2.2", proto=50) / (b"esp!" * 4),
    E() / V6 / IPv6ExtHdrHopByHop() / TCP_SYN,
    E() / V6 / IPv6ExtHdrFragment(offset=0, m=0, id=5) / UDP(sport=9, dport=10),
    E() / V4 / GRE() / IP(src="3.3.3.3", dst="4.4.4.4") / TCP_SYN,
    E() / V4 / UDP(sport=1234, dport=4789) / VXLAN(vni=5) / E() / V4 / TCP_SYN,
    E() / V4 / UDP(sport=2152, dport=2152) / (b"\x30\xff\x00\x28" + b"\x00" * 4 + bytes(V4 / TCP_SYN)),
    E() / V4 / UDP(sport=3544, dport=1) / bytes(V6 / TCP_SYN),
    E() / V4 / IP(src="5.5.5.5", dst="6.6.6.6") / UDP(sport=7, dport=8),
    E() / MPLS(label=16, s=1) / V4 / TCP_SYN,
    E() / PPPoE(sessionid=1) / PPP(proto=0x0021) / V4 / TCP_SYN,
    *(E() / f for f in fragment(V4 / UDP(sport=1, dport=2) / (b"y" * 300), fragsize=64)),
]
ETHER[2][IP].len = 0  # total length 0 (TSO capture): trusts caplen
RAW = [V4 / TCP_SYN, V6 / DNS_UDP, V4 / ICMP(), IPv6(plen=0, nh=17) / DNS_UDP, b"\x50" + b"\x00" * 30]


def _columns(batch: RecordBatch, fast: bool) -> PacketColumns:
    return Decoder(fast=fast).decode(batch)


def assert_same(batch: RecordBatch) -> None:
    a, b = _columns(batch, True), _columns(batch, False)
    for k in ("frame", *OUT_FIELDS):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype, k
        bad = np.flatnonzero(x != y)
        assert bad.shape[0] == 0, f"{k}: rows {bad[:10].tolist()} fast {x[bad[:5]]} general {y[bad[:5]]}"
    assert a.reassembled == b.reassembled


def records(packets: list[tuple[bytes, int]], caplens: list[int] | None = None) -> RecordBatch:
    """Packets of mixed link types end to end; ``caplens`` may cut (or overstate) each one."""
    data = np.frombuffer(b"".join(p for p, _ in packets) + b"\x00" * 3, dtype=np.uint8)
    lens = np.array([len(p) for p, _ in packets], dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    n = len(packets)
    cap = np.array(caplens, dtype=np.int64) if caplens is not None else lens.copy()
    return RecordBatch(
        "synthetic",
        data,
        offs,
        cap,
        lens.copy(),
        np.arange(n, dtype=np.int64),
        np.array([lt for _, lt in packets], dtype=np.int32),
        np.arange(1, n + 1, dtype=np.int64),
    )


@functools.cache
def mixed() -> list[tuple[bytes, int]]:
    out = [(bytes(p), 1) for p in ETHER]
    out += [(bytes(p), 101) for p in RAW] + [(bytes(V4 / TCP_SYN), 228), (bytes(V6 / TCP_SYN), 229)]
    sll2 = b"\x08\x00" + b"\x00" * 18  # protocol type first, then 18 bytes the decoder skips
    out += [(bytes(CookedLinux() / V4 / TCP_OPT), 113), (sll2 + bytes(V4 / DNS_UDP), 276)]
    out += [(b"\x02\x00\x00\x00" + bytes(V4 / TCP_SYN), 0), (bytes(V4 / TCP_SYN), 147)]
    return out


def test_fast_path_takes_the_common_rows() -> None:
    batch = records([(bytes(p), 1) for p in ETHER[:12]])
    cols = {k: np.empty(len(batch), dtype=getattr(_columns(batch, False), k).dtype) for k in OUT_FIELDS}
    slow = np.arange(len(batch), dtype=np.int64)
    lt = batch.linktype.astype(np.int64)
    nslow, _ = fast_rows(batch.data, batch.offset, batch.caplen, lt, *FAST_TABLES, *cols.values(), slow)
    assert nslow == 0
    assert_same(batch)


def test_mixed_link_types_in_one_batch() -> None:
    assert_same(records(mixed()))


def test_every_truncation() -> None:
    pkts = mixed()
    cut = [(p, lt) for p, lt in pkts for _ in range(len(p) + 1)]
    caplens = [k for p, _ in pkts for k in range(len(p) + 1)]
    assert_same(records(cut, caplens))


@pytest.mark.parametrize("seed", range(6))
def test_mutated_bytes_and_lengths(seed: int) -> None:
    rng = random.Random(seed)
    pkts, caplens, templates = [], [], mixed()
    for _ in range(3000):
        raw, lt = rng.choice(templates)
        raw = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(min(len(raw), 80))
            raw[at] = rng.choice((0, 0xFF, 0x45, 0x60, 0x81, 0x06, 0x11, 0x3A, rng.randrange(256)))
        pkts.append((bytes(raw), lt))
        caplens.append(rng.choice((len(raw), len(raw), rng.randrange(len(raw) + 1), len(raw) + 40, -5)))
    assert_same(records(pkts, caplens))


def test_hostile_offsets_and_linktypes() -> None:
    batch = records([(bytes(ETHER[0]), 1)] * 4)
    weird = RecordBatch(
        "synthetic",
        batch.data,
        np.array([0, -3, int(batch.data.shape[0]) - 10, 10**9], dtype=np.int64),
        np.array([54, 54, 54, 54], dtype=np.int64),
        batch.wirelen,
        batch.ts_ns,
        np.array([1, 1, 1, 1 << 20], dtype=np.int32),
        batch.frame,
    )
    fast = _columns(weird, True)
    assert fast.status[0] == 0 and (fast.status[1:] != 0).all()


@needs_corpus
@pytest.mark.parametrize("name", [n for n in CORPUS_FILES if n.endswith((".pcap", ".pcapng", ".gz"))])
def test_corpus(name: str) -> None:
    assert CORPUS is not None
    assert_same(read_batch(CORPUS / name))
