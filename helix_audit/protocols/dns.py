"""DNS, mDNS and LLMNR messages (RFC 1035 §4, RFC 6762, RFC 4795; TCP framing RFC 1035 §4.2.2, RFC 7766).

Why our own wire walker instead of ``dns.message.from_wire``: the auditor must name what a hostile or
broken capture asked for *as tshark shows it* (the oracle and the analyst's Wireshark agree), while
dnspython rejects such messages outright (names over 255 bytes, trailing junk, bad rdata) and renders
labels in master-file escaping (``\\032`` for a space, ``\\.`` for a dot in a label). So headers,
questions and record framing are walked here, bounds-checked, with a compression-pointer budget
against loops; dnspython still supplies the type/rcode mnemonics and rdata presentation.

Name text follows Wireshark 4.0's ``format_text``: printable ASCII as is (space, ``\\`` and a dot
inside a label included), ``\\a \\b \\f \\n \\r \\t \\v``, other ASCII controls as ``\\ooo`` octal,
valid UTF-8 kept (non-printable code points as ``\\uXXXX``), invalid bytes as U+FFFD. The root is
``<Root>``; names over 255 wire bytes are ``<Name too long>``; a looping pointer is
``<Name contains a pointer that loops>``.
"""

from __future__ import annotations

import re
import socket
import struct
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from ..model import DnsAnswer
from .build import build
from .interface import NeedData, ParseError

HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
QTAIL = struct.Struct("!HH")  # qtype, qclass
RRTAIL = struct.Struct("!HHIH")  # type, class, ttl, rdlength
TCP_LEN = struct.Struct("!H")

MAX_NAME_WIRE = 255
MAX_POINTERS = 128
MAX_QUESTIONS = 256
MAX_ANSWERS = 256
ROOT = "<Root>"
TOO_LONG = "<Name too long>"
LOOPS = "<Name contains a pointer that loops>"
_C_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
_PLAIN = re.compile(rb"[\x20-\x7e]*\Z")
_NONPRINT_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Cs"})
_NAME_TYPES = frozenset({2, 5, 12, 39})  # NS, CNAME, PTR, DNAME: data is a (compressible) name
Memo = dict[int, tuple[str, int]]  # see read_name


@dataclass(frozen=True)
class DnsMessage:
    """The parts of one DNS message the auditor uses."""

    id: int
    qr: bool
    opcode: int
    rcode: str
    questions: tuple[tuple[str, str], ...]  # (name, type mnemonic)
    answers: tuple[DnsAnswer, ...]
    complete: bool = True  # False when the answer section ended early (truncated or malformed)


def render_label(raw: bytes) -> str:
    """One label (or a dotted name) as Wireshark 4.0 shows it (see module docstring)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:  # printable text (no C* or Z* code point but space) is shown as is: the common case
        if text.isprintable():
            return text
    out: list[str] = []
    for ch in raw.decode("utf-8", "replace"):
        code = ord(ch)
        if 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x80:
            out.append(_C_ESCAPES.get(code, f"\\{code:03o}"))
        elif unicodedata.category(ch) in _NONPRINT_CATEGORIES and ch != "\ufffd":
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(ch)
    return "".join(out)


def read_name(msg: bytes, off: int, memo: Memo | None = None) -> tuple[str, int]:
    """Name at ``off``: (text, offset after the name in the original position).

    ``memo`` (one per message): the text and end of each pointer-free name read so far, by offset. A
    name that is a lone pointer to one of them (0xc00c: the question, in most answers) reads the same
    labels, so it takes the text when those bytes lie inside ``msg`` (a prefix of the same message).
    """
    size = len(msg)
    if memo is not None and off + 2 <= size and msg[off] >= 0xC0:
        hit = memo.get(((msg[off] & 0x3F) << 8) | msg[off + 1])
        if hit is not None and hit[1] <= size:
            return hit[0], off + 2
    start = off
    labels: list[bytes] = []
    wire = 1
    end = -1
    jumps = 0
    seen: set[int] = set()
    while True:
        if off >= size:
            raise NeedData(f"name at {off}: ends before its terminator")
        length = msg[off]
        if length == 0:
            break
        if length < 0x40:  # a plain label, the common case
            nxt = off + 1 + length
            if nxt > size:
                raise NeedData(f"name at {off}: label runs past the message")
            labels.append(msg[off + 1 : nxt])
            wire += 1 + length
            off = nxt
            continue
        if length & 0xC0 != 0xC0:
            raise ParseError(f"name at {off}: unsupported label type 0x{length:02x}")
        if off + 2 > size:
            raise NeedData(f"name at {off}: truncated compression pointer")
        if end < 0:
            end = off + 2
        target = ((length & 0x3F) << 8) | msg[off + 1]
        jumps += 1
        if target in seen or jumps > MAX_POINTERS:
            return LOOPS, end
        seen.add(target)
        off = target
    if end < 0:
        end = off + 1
    text = ROOT if not labels else render_label(b".".join(labels))  # "." renders as itself in a label too
    if wire > MAX_NAME_WIRE:
        text = TOO_LONG
    if memo is not None and jumps == 0:
        memo[start] = (text, end)
    return text, end


@lru_cache(maxsize=1024)
def type_text(rtype: int) -> str:
    return dns.rdatatype.to_text(rtype)  # type: ignore[arg-type]


@lru_cache(maxsize=16)
def rcode_text(rcode: int) -> str:
    return dns.rcode.to_text(rcode)  # type: ignore[arg-type]


def parse_message(msg: bytes) -> DnsMessage:
    """Parse one DNS message (the UDP payload, or one TCP-framed message without its length)."""
    if len(msg) < HEADER.size:
        raise NeedData(f"dns message of {len(msg)} bytes: shorter than the 12-byte header")
    ident, flags, qdcount, ancount, _ns, _ar = HEADER.unpack_from(msg)
    if qdcount > MAX_QUESTIONS:
        raise ParseError(f"dns message {ident:#06x}: {qdcount} questions")
    off = HEADER.size
    questions: list[tuple[str, str]] = []
    memo: Memo = {}
    for _ in range(qdcount):
        name, off = read_name(msg, off, memo)
        if off + QTAIL.size > len(msg):
            raise NeedData(f"dns message {ident:#06x}: question ends early")
        qtype, _qclass = QTAIL.unpack_from(msg, off)
        off += QTAIL.size
        questions.append((name, type_text(qtype)))
    answers, complete = _answers(msg, off, min(ancount, MAX_ANSWERS), memo)
    fields = {
        "id": ident, "qr": bool(flags & 0x8000), "opcode": (flags >> 11) & 0xF,
        "rcode": rcode_text(flags & 0xF), "questions": tuple(questions), "answers": tuple(answers),
        "complete": complete and ancount <= MAX_ANSWERS,
    }  # fmt: skip
    return build(DnsMessage, fields)


def _answers(msg: bytes, off: int, count: int, memo: Memo) -> tuple[list[DnsAnswer], bool]:
    out: list[DnsAnswer] = []
    try:
        for _ in range(count):
            name, off = read_name(msg, off, memo)
            if off + RRTAIL.size > len(msg):
                raise NeedData("resource record ends early")
            rtype, rclass, ttl, rdlen = RRTAIL.unpack_from(msg, off)
            off += RRTAIL.size
            if off + rdlen > len(msg):
                raise NeedData("rdata runs past the message")
            data = _rdata_text(msg, off, rtype, rclass, rdlen, memo)
            out.append(build(DnsAnswer, {"name": name, "rtype": type_text(rtype), "ttl": ttl, "data": data}))
            off += rdlen
    except (NeedData, ParseError):
        return out, False
    return out, True


def _rdata_text(msg: bytes, off: int, rtype: int, rclass: int, rdlen: int,
                memo: Memo) -> str:  # fmt: skip
    if rtype == 1 and rdlen == 4:
        return socket.inet_ntop(socket.AF_INET, msg[off : off + 4])
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, msg[off : off + 16])
    if rtype == 16 and rclass & 0x7FFF == 1:
        text = _txt_text(msg, off, off + rdlen)
        if text is not None:
            return text
    if rtype in _NAME_TYPES:
        try:
            return read_name(msg[: off + rdlen], off, memo)[0]
        except (NeedData, ParseError):
            return msg[off : off + rdlen].hex()
    try:
        rdclass = rclass & 0x7FFF  # mDNS cache-flush bit
        rd = dns.rdata.from_wire(rdclass, rtype, msg, off, rdlen)  # type: ignore[arg-type]
        return str(rd.to_text())
    except Exception:  # dnspython raises many types on hostile rdata; the raw bytes still inform
        return msg[off : off + rdlen].hex()


def _escape_txt(raw: bytes) -> str:
    """One character-string as dnspython's ``_escapify`` writes it (``\\"``, ``\\\\``, ``\\DDD``)."""
    if _PLAIN.match(raw) and b'"' not in raw and b"\\" not in raw:
        return raw.decode("ascii")
    out = []
    for c in raw:
        if c in b'"\\':
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


def _txt_text(msg: bytes, off: int, end: int) -> str | None:
    """TXT rdata as dnspython's ``to_text`` gives it; None when dnspython would reject it."""
    parts = []
    while off < end:
        nxt = off + 1 + msg[off]
        if nxt > end:
            return None
        parts.append('"' + _escape_txt(msg[off + 1 : nxt]) + '"')
        off = nxt
    return " ".join(parts) if parts else None


def split_tcp(stream: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Split a TCP DNS byte stream into ``(start offset, message)`` pairs; returns them and bytes used.

    Several messages may share a segment and one may span several; an incomplete tail is left for
    more data (the caller sees it as ``used < len(stream)``).
    """
    out: list[tuple[int, bytes]] = []
    off = 0
    while off + TCP_LEN.size <= len(stream):
        (length,) = TCP_LEN.unpack_from(stream, off)
        if off + TCP_LEN.size + length > len(stream):
            break
        out.append((off, stream[off + TCP_LEN.size : off + TCP_LEN.size + length]))
        off += TCP_LEN.size + length
    return out, off
