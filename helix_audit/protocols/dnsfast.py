"""Batch fast path for UDP DNS: one numba pass over every DNS message of a batch.

:func:`dns.parse_message` costs ~10 µs a message in Python, most of it walking names byte by byte.
:func:`scan_messages` walks all the batch's messages at once and accepts only the plain shape:
a whole header, a few questions and answers, names of printable ASCII (the bytes Wireshark shows as
themselves) under 255 wire bytes with a small compression-pointer budget, answers that end inside
the message. It writes the names' text (labels joined by dots) and A addresses (dotted quads) into
one ASCII buffer, so Python only slices one decoded string. Anything else (short or cut messages,
pointer loops, escapes, long names, any answer error) is left to ``parse_message``, which defines the
result: the kernel's job is only to give the same text faster where it is sure.

Answer data other than A, AAAA and the name types is rendered by ``dns._rdata_text`` on the payload
(same call as the parser makes); AAAA by ``socket.inet_ntop`` (libc's form, e.g. ``::ffff:1.2.3.4``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import numpy as np
from numba import njit

from ..decode.interface import PacketColumns
from ..flows.interface import PacketFlows
from ..model import DnsAnswer, DnsQuery, DnsResponse, Observation
from . import dns
from .build import observation_maker
from .rows import addr, udp_lengths, udp_payloads
from .streams import Meta

MAX_Q = 16  # questions per message on the fast path
MAX_A = 64  # answers per message on the fast path
MAX_JUMPS = 16  # compression pointers per name on the fast path (the parser's budget is 128)

# Kinds of answer data (column 5 of the answer rows).
RD_TEXT = 0  # text span in the buffer (A, or a name; start -1: the root)
RD_AAAA = 1  # 16 raw bytes at (message offset)
RD_OTHER = 2  # rendered by dns._rdata_text from (message offset, length)

# Columns of the per-message rows.
M_OK, M_ID, M_FLAGS, M_QD, M_AN, M_Q0, M_A0 = range(7)


@njit(cache=True)
def _name(d, base, size, off, text, tpos):  # noqa: ANN001, ANN202
    """Name at message offset ``off`` (bytes ``d[base:base+size]``): returns (end, tstart, tend).

    ``end`` -1: not for the fast path. ``tstart`` -1: the root. The text goes to ``text[tpos:]``.
    """
    end = -1
    wire = 1
    jumps = 0
    start = tpos
    cap = text.shape[0]
    while True:
        if off >= size:
            return -1, 0, 0
        length = d[base + off]
        if length == 0:
            break
        if length < 0x40:
            nxt = off + 1 + length
            if nxt > size:
                return -1, 0, 0
            wire += 1 + length
            if wire > 255 or tpos + length + 1 > cap:
                return -1, 0, 0
            if tpos > start:
                text[tpos] = 0x2E
                tpos += 1
            for k in range(base + off + 1, base + nxt):
                c = d[k]
                if c < 0x20 or c > 0x7E:
                    return -1, 0, 0
                text[tpos] = c
                tpos += 1
            off = nxt
            continue
        if length & 0xC0 != 0xC0 or off + 2 > size:
            return -1, 0, 0
        if end < 0:
            end = off + 2
        jumps += 1
        if jumps > MAX_JUMPS:
            return -1, 0, 0
        off = ((length & 0x3F) << 8) | d[base + off + 1]
    if end < 0:
        end = off + 1
    if tpos == start:
        return end, -1, -1
    return end, start, tpos


@njit(cache=True)
def _quad(d, at, text, tpos):  # noqa: ANN001, ANN202
    """Dotted-quad text of the 4 bytes at ``d[at]`` into ``text[tpos:]``; returns the new position."""
    for j in range(4):
        if j:
            text[tpos] = 0x2E
            tpos += 1
        v = d[at + j]
        if v >= 100:
            text[tpos] = 0x30 + v // 100
            tpos += 1
        if v >= 10:
            text[tpos] = 0x30 + (v // 10) % 10
            tpos += 1
        text[tpos] = 0x30 + v % 10
        tpos += 1
    return tpos


@njit(cache=True)
def scan_messages(d, offs, lens, msgs, qrows, arows, text):  # noqa: ANN001, ANN201
    """Fill ``msgs`` (one row per message: M_* columns), question rows (tstart, tend, qtype) and
    answer rows (tstart, tend, type, class, ttl, kind, a, b); returns (questions, answers, text used).

    A message whose ``lens`` is negative, or that the fast path does not accept, gets ``M_OK`` 0 and
    leaves no rows or text behind.
    """
    nq = 0
    na = 0
    tpos = 0
    tcap = text.shape[0]
    for i in range(offs.shape[0]):
        msgs[i, M_OK] = 0
        base = offs[i]
        size = lens[i]
        if size < 12 or base < 0:
            continue
        qd = (np.int64(d[base + 4]) << 8) | d[base + 5]
        an = (np.int64(d[base + 6]) << 8) | d[base + 7]
        if qd > MAX_Q or an > MAX_A or nq + qd > qrows.shape[0] or na + an > arows.shape[0]:
            continue
        q0, a0, t0 = nq, na, tpos
        off = 12
        ok = True
        for _ in range(qd):
            off, ts, te = _name(d, base, size, off, text, tpos)
            if off < 0 or off + 4 > size:
                ok = False
                break
            if te > 0:
                tpos = te
            qrows[nq, 0] = ts
            qrows[nq, 1] = te
            qrows[nq, 2] = (np.int64(d[base + off]) << 8) | d[base + off + 1]
            nq += 1
            off += 4
        for _ in range(an if ok else 0):
            off, ts, te = _name(d, base, size, off, text, tpos)
            if off < 0 or off + 10 > size:
                ok = False
                break
            if te > 0:
                tpos = te
            p = base + off
            rtype = (np.int64(d[p]) << 8) | d[p + 1]
            rclass = (np.int64(d[p + 2]) << 8) | d[p + 3]
            ttl = (
                (np.int64(d[p + 4]) << 24) | (np.int64(d[p + 5]) << 16) | (np.int64(d[p + 6]) << 8) | d[p + 7]
            )
            rdlen = (np.int64(d[p + 8]) << 8) | d[p + 9]
            off += 10
            if off + rdlen > size:
                ok = False
                break
            row = arows[na]
            row[0], row[1], row[2], row[3], row[4] = ts, te, rtype, rclass, ttl
            if rtype == 1 and rdlen == 4:
                if tpos + 15 > tcap:
                    ok = False
                    break
                row[5], row[6] = RD_TEXT, tpos
                tpos = _quad(d, base + off, text, tpos)
                row[7] = tpos
            elif rtype == 28 and rdlen == 16:
                row[5], row[6], row[7] = RD_AAAA, off, rdlen
            elif rtype == 2 or rtype == 5 or rtype == 12 or rtype == 39:
                nend, ns, ne = _name(d, base, off + rdlen, off, text, tpos)
                if nend < 0:
                    ok = False
                    break
                if ne > 0:
                    tpos = ne
                row[5], row[6], row[7] = RD_TEXT, ns, ne
            else:
                row[5], row[6], row[7] = RD_OTHER, off, rdlen
            na += 1
            off += rdlen
        if not ok:
            nq, na, tpos = q0, a0, t0
            continue
        msgs[i, M_OK] = 1
        msgs[i, M_ID] = (np.int64(d[base]) << 8) | d[base + 1]
        msgs[i, M_FLAGS] = (np.int64(d[base + 2]) << 8) | d[base + 3]
        msgs[i, M_QD] = qd
        msgs[i, M_AN] = an
        msgs[i, M_Q0] = q0
        msgs[i, M_A0] = a0
    return nq, na, tpos


_new = object.__new__
_set = object.__setattr__


class Scanned:
    """The kernel's output for one batch, as Python lists, and the text each row points into."""

    def __init__(self, data: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> None:
        n = offs.shape[0]
        total = int(lens[lens > 0].sum()) if n else 0
        self.msgs = np.zeros((n, 7), np.int64)
        q = np.zeros((total // 5 + 1, 3), np.int64)
        a = np.zeros((total // 11 + 1, 8), np.int64)
        buf = np.zeros(4 * total + 64, np.uint8)
        nq, na, used = scan_messages(data, offs, lens, self.msgs, q, a, buf) if n else (0, 0, 0)
        self.text = buf[:used].tobytes().decode("ascii")
        self.q = q[:nq].tolist()
        self.a = a[:na].tolist()
        self.rows = self.msgs.tolist()


def udp_cut(cols: PacketColumns, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offset, length) in ``cols.data`` of each row's UDP payload as :func:`rows.udp_payloads`
    bounds it; length -1 for rows whose payload is not in ``data`` (IP reassembly)."""
    pay_off = cols.pay_off[rows]
    lens = udp_lengths(cols, rows)
    lens[pay_off < 0] = -1
    if cols.reassembled:
        lens[np.isin(rows, np.fromiter(cols.reassembled, np.int64))] = -1
    return pay_off.astype(np.int64), lens


def message_parts(
    s: Scanned, k: int, view: memoryview, off: int, size: int
) -> tuple[int, int, tuple[str, ...], tuple[str, ...], tuple[DnsAnswer, ...]]:
    """(id, flags, question names, question types, answers) of accepted message ``k``."""
    _, ident, flags, qd, an, q0, a0 = s.rows[k]
    text, type_text, root = s.text, dns.type_text, dns.ROOT
    if qd == 1:  # the usual shape: no lists
        ts, te, qtype = s.q[q0]
        names: tuple[str, ...] = (text[ts:te] if ts >= 0 else root,)
        types: tuple[str, ...] = (type_text(qtype),)
    else:
        names = tuple([text[ts:te] if ts >= 0 else root for ts, te, _ in s.q[q0 : q0 + qd]])
        types = tuple([type_text(qtype) for _, _, qtype in s.q[q0 : q0 + qd]])
    if not an:
        return ident, flags, names, types, ()
    answers = []
    for ts, te, rtype, rclass, ttl, kind, a, b in s.a[a0 : a0 + an]:
        if kind == RD_TEXT:
            data = text[a:b] if a >= 0 else root
        elif kind == RD_AAAA:
            data = socket.inet_ntop(socket.AF_INET6, view[off + a : off + a + 16])
        else:
            data = dns._rdata_text(bytes(view[off : off + size]), a, rtype, rclass, b, {})
        answer = _new(DnsAnswer)
        _set(answer, "__dict__", {"name": text[ts:te] if ts >= 0 else root, "rtype": type_text(rtype),
                                  "ttl": ttl, "data": data})  # fmt: skip
        answers.append(answer)
    return ident, flags, names, types, tuple(answers)


def dns_protocol(sport: int, dport: int) -> str:
    if 5353 in (sport, dport):
        return "mdns"
    return "llmnr" if 5355 in (sport, dport) else "dns"


_QUERY, _RESPONSE = observation_maker(DnsQuery), observation_maker(DnsResponse)


def add_rows(
    cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, out: list[Observation],
    slow: Callable[[int, Meta, bytes], None], failed: Callable[[int, Exception], None],
) -> None:  # fmt: skip
    """The observations of the UDP DNS ``rows`` (batch order) appended to ``out``; messages the
    kernel left go to ``slow(row, meta, payload)`` in their turn, a Python error to ``failed(row, exc)``.

    The observation makers only unpack their head, so accepted rows pass a plain tuple, not a Meta.
    """
    offs, lens = udp_cut(cols, rows)
    s = Scanned(cols.data, offs, lens)
    left = np.flatnonzero(s.msgs[:, M_OK] == 0)
    datas = dict(zip(left.tolist(), udp_payloads(cols, rows[left]), strict=True))
    view = cols.data.data
    rcode_text, source = dns.rcode_text, cols.source
    columns = (cols.frame, cols.ts_ns, cols.src_hi, cols.src_lo, cols.sport, cols.dst_hi, cols.dst_lo,
               cols.dport, pf.flow_id)  # fmt: skip
    for k, (i, frame, ts_ns, sh, sl, sport, dh, dl, dport, fid, off, size, row) in enumerate(zip(
        rows.tolist(), *(c[rows].tolist() for c in columns), offs.tolist(), lens.tolist(), s.rows,
        strict=True,
    )):  # fmt: skip
        head = (source, frame, ts_ns / 1e9, addr(sh, sl), sport, addr(dh, dl), dport, "udp", fid)
        if not row[M_OK]:
            slow(i, Meta(*head), datas[k])
            continue
        try:
            ident, flags, names, types, answers = message_parts(s, k, view, off, size)
            proto = "mdns" if sport == 5353 or dport == 5353 else (
                "llmnr" if sport == 5355 or dport == 5355 else "dns")  # fmt: skip
            first_name, first_type = (names[0], types[0]) if names else ("", "")
            obs: Observation
            if flags & 0x8000:
                obs = _RESPONSE(head, (frame,), "dns_response", ident, first_name, first_type,
                                rcode_text(flags & 0xF), answers, proto)  # fmt: skip
            else:
                obs = _QUERY(head, (frame,), "dns_query", ident, first_name, first_type, types, names, proto)
        except Exception as exc:  # a bug here must not end the audit: it becomes an anomaly
            failed(i, exc)
            continue
        out.append(obs)


__all__ = ["Scanned", "add_rows", "dns_protocol", "message_parts", "scan_messages", "udp_cut"]
