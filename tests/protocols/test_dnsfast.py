"""The UDP DNS batch kernel gives exactly ``dns.parse_message``'s result for every message it accepts,
on real (corpus), crafted, mutated, truncated and hostile messages; what it leaves goes to the parser."""

from __future__ import annotations

import random
from pathlib import Path

import dns.message
import dns.rrset
import numpy as np
import pytest

from helix_audit.capture import open_capture
from helix_audit.decode.core import Decoder
from helix_audit.protocols import dns as pdns
from helix_audit.protocols import dnsfast
from helix_audit.protocols.interface import ProtocolError
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus

from .test_fuzz import mutate


def _fast(messages: list[bytes], rng: random.Random) -> list[object | None]:
    """Kernel results (None: left to the parser), the messages laid out with junk between them."""
    blob, offs, lens = bytearray(), [], []
    for m in messages:
        blob += bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
        offs.append(len(blob))
        lens.append(len(m))
        blob += m
    blob += bytes(rng.randrange(256) for _ in range(3))
    data = np.frombuffer(bytes(blob), np.uint8)
    offs_a, lens_a = np.array(offs, np.int64), np.array(lens, np.int64)
    s = dnsfast.Scanned(data, offs_a, lens_a)
    ks = np.flatnonzero(s.msgs[:, dnsfast.M_OK] == 1)
    parts = dnsfast.message_parts(s, ks, data.data, offs_a, lens_a)
    at = {k: j for j, k in enumerate(ks.tolist())}
    out: list[object | None] = []
    for k in range(len(messages)):
        j = at.get(k)
        if j is None:
            out.append(None)
            continue
        ident, flags, names, types = parts.ident[j], parts.flags[j], parts.qnames[j], parts.qtypes[j]
        answers = parts.answers[j]
        assert (parts.qname[j], parts.qtype[j]) == ((names[0], types[0]) if names else ("", ""))
        out.append(
            (
                ident,
                bool(flags & 0x8000),
                pdns.rcode_text(flags & 0xF),
                tuple(zip(names, types, strict=True)),
                answers,
            )
        )
    return out


def _slow(msg: bytes) -> object:
    try:
        m = pdns.parse_message(msg)
    except ProtocolError as exc:
        return type(exc), str(exc)
    return (m.id, m.qr, m.rcode, m.questions, m.answers)


def _check(messages: list[bytes], seed: int = 0) -> int:
    """Asserts agreement; returns how many messages the kernel accepted."""
    got = _fast(messages, random.Random(seed))
    for msg, fast in zip(messages, got, strict=True):
        if fast is not None:
            assert fast == _slow(msg), msg.hex()
    return sum(g is not None for g in got)


def _seeds() -> list[bytes]:
    q = dns.message.make_query("registry.helixml.tech", "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("registry.helixml.tech.", 300, "IN", "CNAME", "cdn.helixml.tech."))
    r.answer.append(dns.rrset.from_text("cdn.helixml.tech.", 300, "IN", "A", "10.1.2.3", "255.0.9.100"))
    six = ("::ffff:1.2.3.4", "2001:db8::1", "::", "1:0:0:2::3")
    r.answer.append(dns.rrset.from_text("cdn.helixml.tech.", 60, "IN", "AAAA", *six))
    name = "registry.helixml.tech."
    r.answer.append(dns.rrset.from_text(name, 300, "IN", "PTR", name))
    r.answer.append(dns.rrset.from_text("registry.helixml.tech.", 300, "IN", "MX", "5 mx.helixml.tech."))
    r.answer.append(dns.rrset.from_text("registry.helixml.tech.", 300, "IN", "TXT", '"a b" "c\\"d"'))
    r.answer.append(dns.rrset.from_text("x.helixml.tech.", 300, "IN", "NS", "."))
    r.answer.append(dns.rrset.from_text("_s._tcp.helixml.tech.", 7, "IN", "SRV", "1 2 443 t.helixml.tech."))
    nx = dns.message.make_response(dns.message.make_query("gone.example", "AAAA"))
    nx.set_rcode(3)
    root = dns.message.make_query(".", "NS")
    odd = dns.message.make_query("sp ace.back\\\\slash.dot\\.ted.example", "TXT")
    multi = dns.message.make_query("a.example", "A")
    multi.question.append(dns.rrset.RRset(dns.name.from_text("b.example"), 1, 28))
    return [q.to_wire(), r.to_wire(), nx.to_wire(), root.to_wire(), odd.to_wire(), multi.to_wire()]


def test_seeds_are_fast_and_exact() -> None:
    seeds = _seeds()
    assert _check(seeds) == len(seeds)


def test_hostile_shapes_fall_back() -> None:
    wire = bytearray(_seeds()[1])
    loop = bytearray(wire)
    loop[12:14] = b"\xc0\x0c"  # the question name points at itself
    chain = bytearray(b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00")
    for _ in range(40):  # 40 pointers, each to the next: no loop, but over the fast path's budget
        chain += bytes([0xC0, len(chain) + 2])
    chain += b"\x01a\x00\x00\x01\x00\x01"
    escaped = bytearray(_seeds()[0])
    escaped[13] = 0x07  # a control byte inside a label: the parser writes \\a
    utf8 = bytearray(b"\x00\x02\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02\xc3\xa9\x00\x00\x01\x00\x01")
    huge = bytearray(wire)
    huge[6:8] = b"\xff\xff"  # 65535 answers announced
    long_name = b"\x00\x03\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3fa" + b"b" * 62 + (
        b"\x3f" + b"c" * 63) * 3 + b"\x00\x00\x01\x00\x01"  # fmt: skip
    hostile = [bytes(m) for m in (loop, chain, escaped, utf8, huge, long_name)]
    assert _check(hostile) == 0
    assert _check([bytes(loop), _seeds()[0]]) == 1  # a message left behind leaves no trace


def test_truncated_at_every_offset() -> None:
    for seed in _seeds():
        _check([seed[:n] for n in range(len(seed) + 1)] + [seed + b"junk"])


@pytest.mark.parametrize("seed", range(4))
def test_mutations(seed: int) -> None:
    rng = random.Random(seed)
    seeds = _seeds()
    msgs = [mutate(rng, rng.choice(seeds)) for _ in range(3000)]
    accepted = _check(msgs, seed)
    assert 0 < accepted < len(msgs)


def test_random_bytes() -> None:
    rng = random.Random(7)
    msgs = [bytes(rng.randrange(256) for _ in range(rng.randrange(80))) for _ in range(2000)]
    header = b"\x00\x00\x80\x00\x00\x01\x00\x01\x00\x00\x00\x00"
    tail = [
        bytes(rng.choice((0xC0, 1, 2, 0x41)) if k % 2 else rng.randrange(40) for k in range(30))
        for _ in range(2000)
    ]
    pointers = [header + t for t in tail]
    _check(msgs + pointers, 7)


def _corpus_udp_payloads() -> list[bytes]:
    assert CORPUS is not None
    out: list[bytes] = []
    for name in CORPUS_FILES:
        try:
            cap = open_capture(str(CORPUS / name))
            dec = Decoder()
            for batch in cap.batches(batch_size=65_536):
                cols = dec.decode(batch)
                rows = np.flatnonzero((cols.proto == 17) & (cols.pay_len > 0))[:400]
                offs, lens = dnsfast.udp_cut(cols, rows)
                out += [cols.payload(int(i))[: max(n, 0)] for i, n in zip(rows, lens.tolist(), strict=True)]
        except Exception:  # noqa: S112  unreadable corpus files are other tests' business
            continue
    return out


@needs_corpus
def test_corpus_udp_payloads() -> None:
    msgs = _corpus_udp_payloads()
    assert _check(msgs) > 100


def test_a_bug_costs_only_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When building a batch raises, its messages are built one by one: only the message the bug
    hits becomes an anomaly, the others keep their observations, in their order."""
    from scapy.all import IP, UDP, Ether, Raw, wrpcap

    from .pipeline import extract

    real = pdns._rdata_text

    def txt_bug(msg: bytes, off: int, rtype: int, *rest: object) -> str:
        if rtype == 16:
            raise RuntimeError("boom")
        return real(msg, off, rtype, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(pdns, "_rdata_text", txt_bug)
    q = dns.message.make_query("x.example", "TXT")
    txt = dns.message.make_response(q)
    txt.answer.append(dns.rrset.from_text("x.example.", 300, "IN", "TXT", '"hi"'))
    mx = dns.message.make_response(q)
    mx.answer.append(dns.rrset.from_text("x.example.", 300, "IN", "MX", "5 mx.example."))
    c, s = "10.0.0.1", "10.0.0.2"
    frames = [
        Ether() / IP(src=c, dst=s) / UDP(sport=5000, dport=53) / Raw(q.to_wire()),
        Ether() / IP(src=s, dst=c) / UDP(sport=53, dport=5000) / Raw(txt.to_wire()),
        Ether() / IP(src=c, dst=s) / UDP(sport=5000, dport=53) / Raw(b"\x00\x01\x00"),  # left to the parser
        Ether() / IP(src=s, dst=c) / UDP(sport=53, dport=5000) / Raw(mx.to_wire()),
    ]
    wrpcap(str(tmp_path / "d.pcap"), frames)
    obs, anomalies = extract(tmp_path / "d.pcap")
    assert [(o.type, o.frame) for o in obs] == [("dns_query", 1), ("dns_response", 4)]
    assert obs[1].answers[0].data == "5 mx.example."  # type: ignore[attr-defined]
    got = sorted((a.name, a.frame) for a in anomalies)
    assert got == [("dns_truncated", 3), ("protocol_parser_error", 2)]
    assert [a.detail for a in anomalies if a.frame == 2] == ["RuntimeError: boom"]
