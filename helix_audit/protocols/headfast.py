"""What an HTTP head observation needs, from one numba walk of a direction's first segment.

``http.parse_request``/``parse_response`` decode the whole head, split it into lines, and split,
strip and lower-case every field line into a tuple, to read five of them: ~10 µs a head, paid by
~35,000 directions of the benchmark. The kernel here walks the bytes once and returns the spans of
the request or status line parts and of the first value of each field an observation or the body
length reads (Host, User-Agent, Upgrade, Content-Length, Transfer-Encoding), cut exactly where the
Python parser cuts them. It takes only the well-formed, common case: a head end inside the segment,
a first line of printable ASCII that the line pattern accepts, no folded field lines. Anything else
returns status 0 and the caller parses the head as before (same result, same errors).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import http

#: Field names (lower case) whose first value the kernel reports, in its output order.
FIELDS = (b"host", b"user-agent", b"upgrade", b"content-length", b"transfer-encoding")
_NAMES = np.zeros((len(FIELDS), max(len(f) for f in FIELDS)), dtype=np.uint8)
_SIZES = np.array([len(f) for f in FIELDS], dtype=np.int64)
for _k, _f in enumerate(FIELDS):
    _NAMES[_k, : len(_f)] = np.frombuffer(_f, dtype=np.uint8)
_MAX_HEAD = http.MAX_HEAD
#: Result layout: status, length, first-line spans (4), then (start, end) per field of ``FIELDS``.
_OUT = 6 + 2 * len(FIELDS)
REQUEST, RESPONSE = 1, 2


@njit(cache=True)
def _is_ws(c):  # noqa: ANN001, ANN202
    """``http._WS``: what ``bytes.strip()`` removes."""
    return c == 32 or c == 9 or c == 10 or c == 13 or c == 11 or c == 12


@njit(cache=True)
def _request_line(b, stop, out):  # noqa: ANN001, ANN202
    """``http._REQUEST_LINE`` on ``b[:stop]`` (printable ASCII): method end, target span, version
    start (-1: none) into ``out[2:6]``; False when the pattern does not match."""
    m = 0
    while m < stop and b[m] != 32:
        c = b[m]
        if not (65 <= c <= 90 or (m > 0 and (c == 95 or c == 45))):
            return False
        m += 1
    if m == 0 or m > 20 or m >= stop:
        return False
    t = m + 1
    e = t
    while e < stop and b[e] != 32:
        e += 1
    if e == t:
        return False
    v = -1
    if e < stop:  # " HTTP/1.d" and the end of the line
        if stop - e != 9:
            return False
        if not (
            b[e + 1] == 72 and b[e + 2] == 84 and b[e + 3] == 84 and b[e + 4] == 80 and b[e + 5] == 47
            and b[e + 6] == 49 and b[e + 7] == 46 and 48 <= b[e + 8] <= 57
        ):  # fmt: skip
            return False  # not " HTTP/1.d"
        v = e + 1
    out[2], out[3], out[4], out[5] = m, t, e, v
    return True


@njit(cache=True)
def _status_line(b, stop, out):  # noqa: ANN001, ANN202
    """``http._STATUS_LINE`` on ``b[:stop]`` (the segment starts with ``HTTP/1.``): status code,
    reason span (start -1: none) into ``out[2:5]``; False when the pattern does not match."""
    if stop < 12 or not 48 <= b[7] <= 57 or b[8] != 32:
        return False
    status = 0
    for k in range(9, 12):
        if not 48 <= b[k] <= 57:
            return False
        status = status * 10 + (b[k] - 48)
    if stop == 12:
        out[3], out[4] = -1, -1
    elif b[12] == 32:
        out[3], out[4] = 13, stop
    else:
        return False
    out[2] = status
    return True


@njit(cache=True)
def head_spans(b, out):  # noqa: ANN001, ANN201
    """The spans of one head at the start of ``b`` (see the module doc) into ``out``; ``out[0]`` 0:
    not taken (a returned array would cost more than the walk: numba boxes it per call). The field
    table is read from the module's constants (frozen into the compiled code: fewer arguments to
    convert per call)."""
    names, sizes = _NAMES, _SIZES
    out[:] = -1
    out[0] = 0
    n = len(b)
    if n > _MAX_HEAD:
        return out[0]
    at = -1  # ``http._head_end``: the first LF followed by LF or CR LF
    i = 0
    while i < n:
        if b[i] == 10 and i + 1 < n and (b[i + 1] == 10 or (b[i + 1] == 13 and i + 2 < n and b[i + 2] == 10)):
            at = i
            break
        i += 1
    if at < 0:
        return out[0]
    end = at + 2 if b[at + 1] == 10 else at + 3
    stop = at - 1 if at > 0 and b[at - 1] == 13 else at  # the head's text is b[:stop]
    first = 0
    while first < stop and b[first] != 10:
        first += 1
    line_end = first - 1 if first < stop and first > 0 and b[first - 1] == 13 else first
    for k in range(line_end):  # printable ASCII only: the line patterns' odd corners go to Python
        if not 32 <= b[k] <= 126:
            return out[0]
    response = n >= 7 and b[0] == 72 and b[1] == 84 and b[2] == 84 and b[3] == 80 and b[4] == 47
    response = response and b[5] == 49 and b[6] == 46
    if response:
        if not _status_line(b, line_end, out):
            return out[0]
    elif not _request_line(b, line_end, out):
        return out[0]
    pos = first + 1
    while pos <= stop:  # field lines: [pos, LF or stop), a CR before that LF dropped
        le = pos
        while le < stop and b[le] != 10:
            le += 1
        nxt = le + 1
        if le < stop and le > pos and b[le - 1] == 13:
            le -= 1
        if le > pos and (b[pos] == 32 or b[pos] == 9):
            return out[0]  # a folded line: Python joins it to the field before
        colon = pos
        while colon < le and b[colon] != 58:
            colon += 1
        if colon < le:
            ns, ne = pos, colon
            while ns < ne and _is_ws(b[ns]):
                ns += 1
            while ne > ns and _is_ws(b[ne - 1]):
                ne -= 1
            if ne > ns:
                vs, ve = colon + 1, le
                while vs < ve and _is_ws(b[vs]):
                    vs += 1
                while ve > vs and _is_ws(b[ve - 1]):
                    ve -= 1
                for f in range(sizes.shape[0]):
                    if out[6 + 2 * f] >= 0 or ne - ns != sizes[f]:
                        continue
                    same = True
                    for k in range(sizes[f]):
                        c = b[ns + k]
                        if 65 <= c <= 90:
                            c += 32
                        if c != names[f, k]:
                            same = False
                            break
                    if same:
                        out[6 + 2 * f], out[7 + 2 * f] = vs, ve
                        break
        pos = nxt
    out[0] = RESPONSE if response else REQUEST
    out[1] = end
    return out[0]


_BUF = np.zeros(_OUT, dtype=np.int64)


def spans(payload: bytes) -> list[int]:
    """:func:`head_spans` of ``payload``, as a list."""
    head_spans(payload, _BUF)
    return _BUF.tolist()


__all__ = ["FIELDS", "REQUEST", "RESPONSE", "head_spans", "spans"]
