"""DNS parser: hostile names, truncation, TCP framing, answers; names rendered as tshark renders them."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from helix_audit.protocols import dns as pdns
from helix_audit.protocols.interface import NeedData, ParseError

HEADER = struct.Struct("!HHHHHH")


def query(name_wire: bytes, qtype: int = 1, ident: int = 0x1234, qdcount: int = 1) -> bytes:
    return HEADER.pack(ident, 0x0100, qdcount, 0, 0, 0) + name_wire + struct.pack("!HH", qtype, 1)


def labels(*parts: bytes) -> bytes:
    return b"".join(bytes([len(p)]) + p for p in parts) + b"\x00"


# Expected texts follow Wireshark 4.0 format_text (checked against tshark in test_names_match_tshark).
NAMES = [
    ("plain", labels(b"www", b"example", b"com"), "www.example.com"),
    ("space kept", labels(b"a b", b"com"), "a b.com"),
    ("dot inside a label kept", labels(b"a.b", b"com"), "a.b.com"),
    ("backslash kept", labels(b"a\\b", b"c"), "a\\b.c"),
    ("C escapes and octal", labels(b"a\nb\tc\x7f", b"d"), "a\\nb\\tc\\177.d"),
    ("NUL and SOH", labels(b"\x00\x01", b"y"), "\\000\\001.y"),
    ("html kept verbatim", labels(b"<b>\"'&", b"x"), "<b>\"'&.x"),
    ("utf-8 kept", labels("café".encode(), b"com"), "café.com"),
    ("invalid utf-8 replaced", labels(b"x\xff\xfe", b"com"), "x\ufffd\ufffd.com"),
    ("non-printable code point", labels("\u200b".encode()), "\\u200B"),
    ("nDPI invalid chars", labels(b"www", b"allyourba\x04\x05\x06arebelongto", b"cn"),
     "www.allyourba\\004\\005\\006arebelongto.cn"),
    ("root", b"\x00", "<Root>"),
    ("255 wire bytes is fine", labels(*[b"A" * 63] * 3, b"B" * 61), ".".join(["A" * 63] * 3 + ["B" * 61])),
    ("256 wire bytes is too long", labels(*[b"A" * 63] * 3, b"B" * 62), "<Name too long>"),
    ("pointer to itself", b"\xc0\x0c", "<Name contains a pointer that loops>"),
    ("label then pointer back", b"\x01a\xc0\x0c", "<Name contains a pointer that loops>"),
    ("two pointers in a cycle", b"\x01\x80\xc0\x0e", "<Name contains a pointer that loops>"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "wire", "text"), NAMES, ids=[n[0] for n in NAMES])
def test_question_name_text(case: str, wire: bytes, text: str) -> None:
    msg = pdns.parse_message(query(wire))
    assert msg.questions == ((text, "A"),)
    assert not msg.qr


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_names_match_tshark(tmp_path: Path) -> None:
    """The rendering table above is what tshark itself prints for those names."""
    from scapy.all import IP, UDP, Ether, Raw, wrpcap

    pcap = tmp_path / "names.pcap"
    wrpcap(str(pcap), [Ether() / IP() / UDP(sport=999, dport=53) / Raw(query(w)) for _, w, _ in NAMES])
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-T", "json", "-e", "dns.qry.name"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    shown = [p["_source"]["layers"]["dns.qry.name"][0] for p in json.loads(out)]
    assert shown == [pdns.parse_message(query(w)).questions[0][0] for _, w, _ in NAMES]


BAD = [
    ("extended label type 0x40", query(b"\x41abc\x00"), ParseError),
    ("label type 0x80", query(b"\x81a\x00"), ParseError),
    ("absurd question count", HEADER.pack(1, 0, 60000, 0, 0, 0) + b"\x00" * 40, ParseError),
    ("header only", HEADER.pack(1, 0, 1, 0, 0, 0), NeedData),
    ("name without terminator", HEADER.pack(1, 0, 1, 0, 0, 0) + b"\x03abc", NeedData),
    ("label longer than the message", HEADER.pack(1, 0, 1, 0, 0, 0) + b"\x3fabc", NeedData),
    ("pointer cut in half", HEADER.pack(1, 0, 1, 0, 0, 0) + b"\xc0", NeedData),
    ("no qtype/qclass", HEADER.pack(1, 0, 1, 0, 0, 0) + b"\x03abc\x00\x00", NeedData),
    ("empty", b"", NeedData),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "error"), BAD, ids=[b[0] for b in BAD])
def test_bad_messages(case: str, data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        pdns.parse_message(data)


def response_wire() -> bytes:
    """A response with a CNAME chain, built by dnspython (independent of our walker)."""
    q = dns.message.make_query("www.example.com", "A", id=0x4242)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "CNAME", "edge.cdn.example.net."))
    r.answer.append(dns.rrset.from_text("edge.cdn.example.net.", 60, "IN", "A", "192.0.2.7", "192.0.2.8"))
    return r.to_wire()


def test_response_with_cname_chain() -> None:
    msg = pdns.parse_message(response_wire())
    assert msg.qr and msg.id == 0x4242 and msg.rcode == "NOERROR" and msg.complete
    assert msg.questions == (("www.example.com", "A"),)
    got = [(a.name, a.rtype, a.ttl, a.data) for a in msg.answers]
    assert got[:1] + sorted(got[1:]) == [  # dnspython may write the two A records in either order
        ("www.example.com", "CNAME", 300, "edge.cdn.example.net"),
        ("edge.cdn.example.net", "A", 60, "192.0.2.7"),
        ("edge.cdn.example.net", "A", 60, "192.0.2.8"),
    ]


def test_nxdomain_and_unknown_type() -> None:
    q = dns.message.make_query("nope.example", 65534)
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.NXDOMAIN)
    msg = pdns.parse_message(r.to_wire())
    assert msg.rcode == "NXDOMAIN"
    assert msg.questions == (("nope.example", "TYPE65534"),)


def test_every_truncation_of_a_response_is_handled() -> None:
    """Cut anywhere: NeedData inside header/question, a partial answer list after it, never a crash."""
    wire = response_wire()
    question_end = 12 + len(labels(b"www", b"example", b"com")) + 4
    for cut in range(len(wire)):
        if cut < question_end:
            with pytest.raises(NeedData):
                pdns.parse_message(wire[:cut])
        else:
            msg = pdns.parse_message(wire[:cut])
            assert not msg.complete and len(msg.answers) < 3


def test_tcp_framing_several_messages_and_a_split_one() -> None:
    one, two = query(labels(b"a", b"example")), query(labels(b"b", b"example"), ident=2)
    stream = struct.pack("!H", len(one)) + one + struct.pack("!H", len(two)) + two
    third = query(labels(b"c", b"example"), ident=3)
    framed_third = struct.pack("!H", len(third)) + third
    messages, used = pdns.split_tcp(stream + framed_third[:5])
    assert [pdns.parse_message(m).questions[0][0] for _, m in messages] == ["a.example", "b.example"]
    assert used == len(stream)
    messages, used = pdns.split_tcp(stream + framed_third)
    assert [off for off, _ in messages] == [0, len(one) + 2, len(stream)]
    assert pdns.parse_message(messages[2][1]).id == 3 and used == len(stream) + len(framed_third)
