"""The numba kernel of the UDP DNS fast path (:mod:`.dnsfast` builds the observations).

:func:`scan_messages` walks every DNS message of a batch at once and accepts only the plain shape
(see :mod:`.dnsfast`); what it writes: per message a row of ``M_*`` columns, per question and answer
a row of offsets and kinds, and one ASCII buffer of every name and A address, each ended by ``SEP``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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


_ROOT = (60, 82, 111, 111, 116, 62)  # dns.ROOT, "<Root>"
SEP = "\x00"  # ends every text item; names and addresses are printable ASCII


@njit(cache=True)
def _close(text, tpos, te):  # noqa: ANN001, ANN202
    """End a text item: after the name :func:`_name` wrote up to ``te`` (when ``te`` > 0), else at
    ``tpos``, with ``dns.ROOT`` first for a name without labels (``te`` -1); then the separator.
    Returns the new position, -1 when the buffer is full."""
    if te > 0:
        tpos = te
    if te < 0:
        if tpos + 7 > text.shape[0]:
            return -1
        for c in _ROOT:
            text[tpos] = c
            tpos += 1
    if tpos + 1 > text.shape[0]:
        return -1
    text[tpos] = 0
    return tpos + 1


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
            qrows[nq, 0] = ts
            qrows[nq, 1] = te
            tpos = _close(text, tpos, te)
            if tpos < 0:
                ok = False
                break
            qrows[nq, 2] = (np.int64(d[base + off]) << 8) | d[base + off + 1]
            nq += 1
            off += 4
        for _ in range(an if ok else 0):
            off, ts, te = _name(d, base, size, off, text, tpos)
            if off < 0 or off + 10 > size:
                ok = False
                break
            tpos = _close(text, tpos, te)
            if tpos < 0:
                ok = False
                break
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
                if tpos + 16 > tcap:
                    ok = False
                    break
                row[5], row[6] = RD_TEXT, tpos
                tpos = _quad(d, base + off, text, tpos)
                row[7] = tpos
                text[tpos] = 0
                tpos += 1
            elif rtype == 2 or rtype == 5 or rtype == 12 or rtype == 39:
                nend, ns, ne = _name(d, base, off + rdlen, off, text, tpos)
                if nend < 0:
                    ok = False
                    break
                row[5], row[6], row[7] = RD_TEXT, ns, ne
                tpos = _close(text, tpos, ne)
                if tpos < 0:
                    ok = False
                    break
            else:  # an empty item holds the place of the data Python renders
                if rtype == 28 and rdlen == 16:
                    row[5], row[6], row[7] = RD_AAAA, off, rdlen
                else:
                    row[5], row[6], row[7] = RD_OTHER, off, rdlen
                tpos = _close(text, tpos, 0)
                if tpos < 0:
                    ok = False
                    break
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
