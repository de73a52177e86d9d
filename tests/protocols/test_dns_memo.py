"""``read_name``'s per-message memo (a lone pointer to a pointer-free name read before takes its text)
gives exactly what reading the labels again gives, on real and mutated, truncated, hostile messages."""

from __future__ import annotations

import random

import dns.message
import dns.rrset
import pytest

from helix_audit.protocols import dns as pdns
from helix_audit.protocols.interface import ProtocolError

from .test_fuzz import mutate


def _seeds() -> list[bytes]:
    q = dns.message.make_query("registry.helixml.tech", "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("registry.helixml.tech.", 300, "IN", "CNAME", "cdn.helixml.tech."))
    r.answer.append(dns.rrset.from_text("cdn.helixml.tech.", 300, "IN", "A", "10.1.2.3"))
    r.answer.append(dns.rrset.from_text("registry.helixml.tech.", 300, "IN", "PTR", "registry.helixml.tech."))
    r.answer.append(
        dns.rrset.from_text("registry.helixml.tech.", 300, "IN", "MX", "5 registry.helixml.tech.")
    )
    wire = r.to_wire()
    loop = bytearray(wire)
    loop[12:14] = b"\xc0\x0c"  # the question name points at itself
    return [q.to_wire(), wire, bytes(loop), wire[:40], wire[:-3]]


def _parse(msg: bytes, memo: bool) -> object:
    try:
        return pdns.parse_message(msg)
    except ProtocolError as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("seed", range(5))
def test_memo_reads_like_the_labels(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    msgs = [mutate(rng, s) for s in _seeds() for _ in range(400)] + _seeds()
    with_memo = [_parse(m, True) for m in msgs]
    plain = pdns.read_name
    monkeypatch.setattr(pdns, "read_name", lambda msg, off, memo=None: plain(msg, off))
    assert [_parse(m, False) for m in msgs] == with_memo


def test_memo_is_used_for_answers_pointing_at_the_question() -> None:
    memo: pdns.Memo = {}
    msg = _seeds()[1]
    name, end = pdns.read_name(msg, 12, memo)
    assert memo == {12: (name, end)}
    assert pdns.read_name(b"\xc0\x0c" + msg[2:], 0, memo) == (name, 2)
