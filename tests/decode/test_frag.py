"""IP fragment reassembly: scapy-made fragments, across batches, overlaps, bounds, and the corpus."""

from __future__ import annotations

import random

import dns.message
import numpy as np
from scapy.all import IP, UDP, Ether, IPv6, IPv6ExtHdrFragment, fragment, fragment6

from helix_audit.decode.core import Decoder, decode_batch
from helix_audit.decode.frag import MAX_PENDING, Reassembler
from helix_audit.decode.interface import ST_FRAGMENT, ST_OK
from tests.conftest import needs_corpus

from .capfile import batch_of, read_batch

PAYLOAD = bytes(range(256)) * 12


def v4_frags() -> list[bytes]:
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", id=77) / UDP(sport=1111, dport=2222) / PAYLOAD
    return [bytes(Ether() / f) for f in fragment(pkt, fragsize=1000)]


def test_ipv4_out_of_order() -> None:
    frags = v4_frags()
    order = [2, 0, 3, 1]
    cols = decode_batch(batch_of([frags[i] for i in order]))
    assert list(cols.reassembled) == [3]
    assert cols.status.tolist() == [ST_FRAGMENT] * 3 + [ST_OK]
    assert (cols.sport[3], cols.dport[3], cols.proto[3]) == (1111, 2222, 17)
    assert cols.payload(3) == PAYLOAD
    assert cols.pay_len[3] == len(PAYLOAD) and cols.ip_len[3] == 20 + 8 + len(PAYLOAD)
    assert cols.sport[1] == 1111  # the first fragment keeps its own ports, as ST_FRAGMENT


def test_ipv4_across_batches() -> None:
    frags = v4_frags()
    dec = Decoder()
    first = dec.decode(batch_of(frags[:2]))
    second = dec.decode(batch_of(frags[2:]))
    assert not first.reassembled and list(second.reassembled) == [1]
    assert second.payload(1) == PAYLOAD


def test_ipv6_fragments() -> None:
    pkt = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=5)
        / UDP(sport=53, dport=999)
        / PAYLOAD
    )
    frags = [bytes(Ether() / f) for f in fragment6(pkt, 1280)]
    random.Random(1).shuffle(frags)
    cols = decode_batch(batch_of(frags))
    (row,) = cols.reassembled
    assert row == len(frags) - 1
    assert cols.payload(row) == PAYLOAD and cols.dport[row] == 999


def test_overlaps_first_wins_v4_dropped_v6() -> None:
    r = Reassembler()
    k4 = (4, 0, 1, 0, 2, 17, 9)
    assert r.feed(k4, 0, 0, True, b"A" * 16) is None
    assert r.feed(k4, 0, 8, True, b"B" * 16) is None
    seg = r.feed(k4, 0, 24, False, b"C" * 8)
    assert seg is not None and seg.l4 == b"A" * 16 + b"B" * 8 + b"C" * 8
    k6 = (6, 0, 1, 0, 2, 17, 9)
    r.feed(k6, 0, 0, True, b"A" * 16)
    r.feed(k6, 0, 8, True, b"B" * 16)
    assert r.feed(k6, 0, 24, False, b"C" * 8) is None


def test_memory_is_bounded() -> None:
    r = Reassembler()
    for i in range(MAX_PENDING * 3):
        r.feed((4, 0, 1, 0, 2, 17, i), i, 0, True, b"x" * 8)
    assert len(r) <= MAX_PENDING
    assert r.feed((4, 0, 1, 0, 2, 17, 1), 0, 65528, False, b"x" * 16) is None  # past 64 KiB


@needs_corpus
def test_corpus_fragmented_dns(corpus) -> None:  # noqa: ANN001
    for name in ("ndpi__dns_fragmented.pcap", "zeek__ipv6-fragmented-dns.pcap"):
        cols = decode_batch(read_batch(corpus / name))
        assert cols.reassembled, name
        for row in cols.reassembled:
            msg = dns.message.from_wire(cols.payload(row))  # a whole DNS response only if reassembly is right
            assert msg.answer or msg.additional, name
            assert cols.sport[row] == 53
        assert (cols.status[np.flatnonzero(cols.frag)] != ST_OK).sum() == int(cols.frag.sum()) - len(
            cols.reassembled
        )
