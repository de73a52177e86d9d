"""Batch fast path for UDP DNS: one numba pass over every DNS message of a batch.

:func:`dns.parse_message` costs ~10 µs a message in Python, most of it walking names byte by byte.
:func:`scan_messages` (:mod:`.dnskernel`) walks all the batch's messages at once and accepts only
the plain shape: a whole header, a few questions and answers, names of printable ASCII (the bytes
Wireshark shows as themselves) under 255 wire bytes with a small compression-pointer budget,
answers that end inside the message. It writes the names' text (labels joined by dots,
``dns.ROOT`` for the root) and A addresses (dotted quads) into one ASCII buffer, each item ended by
a NUL, so one ``split`` makes every string of the batch. Anything else (short or cut messages,
pointer loops, escapes, long names, any answer error) is left to ``parse_message``, which defines the
result: the kernel's job is only to give the same text faster where it is sure.

Answer data other than A, AAAA and the name types is rendered by ``dns._rdata_text`` on the payload
(same call as the parser makes); AAAA by ``socket.inet_ntop`` (libc's form, e.g. ``::ffff:1.2.3.4``).

The observations are then built a batch at a time (:func:`observations`): columns as lists, codes
and addresses turned to text once per distinct value, one dict literal per object; the per-message
Python left is the object itself (~1 µs of the ~2.3 µs a message costs in all).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..decode.interface import PacketColumns
from ..flows.interface import PacketFlows
from ..model import DnsAnswer, DnsQuery, DnsResponse, Observation
from . import dns
from .build import SHARED, pool
from .dnskernel import M_A0, M_AN, M_FLAGS, M_ID, M_OK, M_Q0, M_QD, RD_AAAA, RD_TEXT, SEP, scan_messages
from .rows import addresses, meta_of, ports, udp_lengths, udp_payloads
from .streams import Meta

_new = object.__new__
_set = object.__setattr__


class Scanned:
    """The kernel's output for one batch (arrays) and the text its spans point into."""

    def __init__(self, data: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> None:
        n = offs.shape[0]
        total = int(lens[lens > 0].sum()) if n else 0
        self.msgs = np.empty((n, 7), np.int64)  # the kernel writes all it leaves for reading
        q = np.empty((total // 5 + 1, 3), np.int64)
        a = np.empty((total // 11 + 1, 8), np.int64)
        buf = np.empty(4 * total + 64, np.uint8)
        nq, na, used = scan_messages(data, offs, lens, self.msgs, q, a, buf) if n else (0, 0, 0)
        self.text = buf[:used].tobytes().decode("ascii")
        self.items = np.array(self.text.split(SEP)[:-1], object)  # every text item, in kernel order
        self.q = q[:nq]
        self.a = a[:na]


def udp_cut(cols: PacketColumns, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offset, length) in ``cols.data`` of each row's UDP payload as :func:`rows.udp_payloads`
    bounds it; length -1 for rows whose payload is not in ``data`` (IP reassembly)."""
    pay_off = cols.pay_off[rows]
    lens = udp_lengths(cols, rows)
    lens[pay_off < 0] = -1
    if cols.reassembled:
        lens[np.isin(rows, np.fromiter(cols.reassembled, np.int64))] = -1
    return pay_off.astype(np.int64), lens


class Parts(NamedTuple):
    """Per accepted message (lists in the order asked for): what its observation needs."""

    ident: list[int]
    flags: list[int]
    qname: list[str]  # first question's name, "" without questions
    qtype: list[str]
    qnames: list[tuple[str, ...]]
    qtypes: list[tuple[str, ...]]
    answers: list[tuple[DnsAnswer, ...]]


class _Texts:
    """Text of small codes (16-bit record types, 4-bit rcodes) for whole arrays: a table filled on first sight
    of a code by ``render`` (a pure function of the code), then one numpy gather per array."""

    def __init__(self, render: Callable[[int], str], size: int) -> None:
        self.render = render
        self.known = np.zeros(size, bool)
        self.texts = np.empty(size, object)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        new = codes[~self.known[codes]]
        if new.shape[0]:
            for c in np.unique(new).tolist():
                self.texts[c] = self.render(c)
                self.known[c] = True
        return self.texts[codes]


_TYPE_TEXT, _RCODE_TEXT = _Texts(dns.type_text, 1 << 16), _Texts(dns.rcode_text, 16)
#: One copy of each distinct value the observations hold (:func:`.build.pool`): names' 1-tuples
#: by the name, answers by their fields (name, type, ttl, data), answer tuples by those fields.
_ONE: dict[str, tuple[str]] = pool()
_ANSWERS: dict[tuple[str, str, int, str], DnsAnswer] = pool()
_ANSWER_TUPLES: dict[tuple[tuple[str, str, int, str], ...], tuple[DnsAnswer, ...]] = pool()


def _gather(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row indices of every message's ``count`` rows from ``first``, each message's start in them)."""
    starts = np.cumsum(count) - count
    idx = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(starts - first, count)
    return idx, starts


def message_parts(s: Scanned, ks: np.ndarray, view: memoryview, offs: np.ndarray, lens: np.ndarray) -> Parts:
    """The parts of accepted messages ``ks`` (indices into the batch; ``offs``/``lens`` per message)."""
    m = s.msgs[ks]
    qd, an = m[:, M_QD], m[:, M_AN]
    qidx, qstart = _gather(m[:, M_Q0], qd)
    q = s.q[qidx]
    # a message's items: its question names, then two per answer (name, data); the messages before
    # it left one per question and two per answer, so its items start at q0 + 2 * a0
    qn_all = s.items[qidx + 2 * np.repeat(m[:, M_A0], qd)]
    qt_all = _TYPE_TEXT(q[:, 2])
    has = qd > 0
    first = np.full(len(ks), "", object)
    ftype = np.full(len(ks), "", object)
    first[has] = qn_all[qstart[has]]
    ftype[has] = qt_all[qstart[has]]
    share, one, ones = SHARED.setdefault, _ONE.get, _ONE.setdefault
    qname, qtype = [share(q, q) for q in first.tolist()], ftype.tolist()
    qn, qt = (qn_all.tolist(), qt_all.tolist()) if not has.all() or (qd > 1).any() else ((), ())
    # one question, the usual shape: one shared 1-tuple per distinct name (and type)
    qnames: list[tuple[str, ...]] = [one(q) or ones(q, (q,)) for q in qname]
    qtypes: list[tuple[str, ...]] = [one(t) or ones(t, (t,)) for t in qtype]
    for j, a, c in zip(*(np.flatnonzero(qd != 1), qstart[qd != 1], qd[qd != 1]), strict=True):
        qnames[j], qtypes[j] = tuple(qn[a : a + c]), tuple(qt[a : a + c])
    aidx, astart = _gather(m[:, M_A0], an)
    a = s.a[aidx]
    item = np.repeat(m[:, M_Q0] + qd, an) + 2 * aidx
    names, datas = s.items[item].tolist(), s.items[item + 1].tolist()
    types = _TYPE_TEXT(a[:, 2]).tolist()
    aoff, asize = np.repeat(offs[ks], an), np.repeat(lens[ks], an)
    other = np.flatnonzero(a[:, 5] != RD_TEXT)
    for r, (_, _, rtype, rclass, _, kind, at, b), off, size in zip(
        other.tolist(), a[other].tolist(), aoff[other].tolist(), asize[other].tolist(), strict=True
    ):
        if kind == RD_AAAA:
            datas[r] = socket.inet_ntop(socket.AF_INET6, view[off + at : off + at + 16])
        else:
            datas[r] = dns._rdata_text(bytes(view[off : off + size]), at, rtype, rclass, b, {})
    answers: list[DnsAnswer] = []
    add, known = answers.append, _ANSWERS.get
    copy = vars(DnsAnswer(name="", rtype="", ttl=0, data="")).copy  # key-sharing dicts: see _prototype
    keys = list(zip(names, types, a[:, 4].tolist(), datas, strict=True))
    for key in keys:
        answer = known(key)
        if answer is None:  # the first answer with these fields: the one the later equal ones share
            d = copy()
            d["name"], d["rtype"], d["ttl"], d["data"] = key
            answer = _new(DnsAnswer)
            _set(answer, "__dict__", d)
            _ANSWERS[key] = answer
        add(answer)
    per: list[tuple[DnsAnswer, ...]] = []
    tuples = _ANSWER_TUPLES.get
    for b, c in zip(astart.tolist(), an.tolist(), strict=True):
        if c:
            k = tuple(keys[b : b + c])
            got = tuples(k)
            if got is None:
                got = _ANSWER_TUPLES[k] = tuple(answers[b : b + c])
            per.append(got)
        else:
            per.append(())
    return Parts(m[:, M_ID].tolist(), m[:, M_FLAGS].tolist(), qname, qtype, qnames, qtypes, per)


def dns_protocol(sport: int, dport: int) -> str:
    if 5353 in (sport, dport):
        return "mdns"
    return "llmnr" if 5355 in (sport, dport) else "dns"


_PROTOCOLS = np.array(["dns", "mdns", "llmnr"], object)


def _prototype(cls: type[DnsQuery | DnsResponse], source: str) -> dict[str, object]:
    """The instance dict of a ``cls`` made by its ``__init__``, every field in declaration order.

    Copies of it, fields overwritten in place, are the observations' dicts: equal to a dict literal
    in content and order, and on CPython 3.11 they keep sharing the class's keys (~300 bytes an
    object instead of ~530 for a dict of its own: 56k DNS observations on the benchmark).
    """
    kind = "dns_response" if cls is DnsResponse else "dns_query"
    proto = cls(type=kind, frame=0, ts=0.0, file=source, src="", sport=0, dst="", dport=0, transport="udp",
                flow_id=0, frames=())  # fmt: skip
    return vars(proto)


def observations(
    cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, s: Scanned, ks: np.ndarray,
    offs: np.ndarray, lens: np.ndarray,
) -> list[Observation]:  # fmt: skip
    """The observations of accepted messages ``ks`` (indices into ``rows``), in that order.

    Built column-wise: per-batch work in numpy, one dict literal per observation (the field order
    of ``observation_maker``, so equal and serialised the same as the dataclass ``__init__``).
    """
    parts = message_parts(s, ks, cols.data.data, offs, lens)
    sel = rows[ks]
    sport, dport = cols.sport[sel], cols.dport[sel]
    proto = np.where((sport == 5353) | (dport == 5353), 1, np.where((sport == 5355) | (dport == 5355), 2, 0))
    rcodes = _RCODE_TEXT(s.msgs[ks, M_FLAGS] & 0xF).tolist()
    query, response = _prototype(DnsQuery, cols.source).copy, _prototype(DnsResponse, cols.source).copy
    srcs = addresses(cols.src_hi[sel], cols.src_lo[sel])
    dsts = addresses(cols.dst_hi[sel], cols.dst_lo[sel])
    out: list[Observation] = []
    add = out.append
    obj: Observation
    for (frame, ts, src, sp, dst, dp, fid, ident, flags, qname, qtype, qnames, qtypes, answers, protocol,
         rcode) in zip(
        cols.frame[sel].tolist(), (cols.ts_ns[sel] / 1e9).tolist(), srcs, ports(sport), dsts,
        ports(dport), pf.flow_id[sel].tolist(), *parts, _PROTOCOLS[proto].tolist(), rcodes, strict=True,
    ):  # fmt: skip
        d = response() if flags & 0x8000 else query()
        d["frame"], d["ts"], d["src"], d["sport"], d["dst"], d["dport"] = frame, ts, src, sp, dst, dp
        d["flow_id"], d["frames"], d["id"], d["qname"], d["qtype"] = fid, (frame,), ident, qname, qtype
        if flags & 0x8000:
            d["rcode"], d["answers"] = rcode, answers
            obj = _new(DnsResponse)
        else:
            d["qtypes"], d["qnames"] = qtypes, qnames
            obj = _new(DnsQuery)
        d["protocol"] = protocol
        _set(obj, "__dict__", d)
        add(obj)
    return out


def add_rows(
    cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, out: list[Observation],
    slow: Callable[[int, Meta, bytes], None], failed: Callable[[int, Exception], None],
) -> None:  # fmt: skip
    """The observations of the UDP DNS ``rows`` (batch order) appended to ``out``; messages the
    kernel left go to ``slow(row, meta, payload)`` in their turn, a Python error to ``failed(row, exc)``.

    The accepted messages are built in one go; if that raises, one message at a time, so an error
    costs only its own message (as with the parser).
    """
    offs, lens = udp_cut(cols, rows)
    s = Scanned(cols.data, offs, lens)
    accepted = s.msgs[:, M_OK] == 1
    ks = np.flatnonzero(accepted)
    built: list[Observation | None]
    broken = False
    try:
        built = observations(cols, pf, rows, s, ks, offs, lens)  # type: ignore[assignment]
    except Exception:
        built, broken = [], True
        for k in ks.tolist():
            try:
                built.extend(observations(cols, pf, rows, s, np.array([k], np.int64), offs, lens))
            except Exception as exc:  # a bug here must not end the audit: it becomes an anomaly
                failed(rows.item(k), exc)
                built.append(None)
    if len(ks) == len(rows) and not broken:
        out.extend(built)  # type: ignore[arg-type]
        return
    left = np.flatnonzero(~accepted)
    datas = dict(zip(left.tolist(), udp_payloads(cols, rows[left]), strict=True))
    fast = iter(built)
    for k, ok in enumerate(accepted.tolist()):
        if ok:
            obs = next(fast)
            if obs is not None:
                out.append(obs)
        else:
            slow(rows.item(k), meta_of(cols, pf, rows.item(k), "udp"), datas[k])


__all__ = [
    "Parts", "Scanned", "add_rows", "dns_protocol", "message_parts", "observations", "scan_messages",
    "udp_cut",
]  # fmt: skip
