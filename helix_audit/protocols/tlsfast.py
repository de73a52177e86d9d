"""The four ClientHello fields an observation needs, from one numba walk of the handshake body.

``tls._client_hello_fast`` walks the extensions in Python (~7 µs for a browser's hello); the kernel
here accepts exactly the hellos that fast path accepts (same checks, same order) and returns spans
and the highest offered version, so Python only decodes the server name and the ALPN entries.
Anything the fast path would hand to the checked reader returns None here, and the caller parses
the body as before (:func:`tls.parse_client_hello`): same result, same errors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import tls

_SNI, _ALPN, _VERSIONS = tls.EXT_SNI, tls.EXT_ALPN, tls.EXT_VERSIONS
_ECH, _ESNI = tls.EXT_ECH, tls.EXT_ESNI


@njit(cache=True)
def _list_ok(b, start, stop, names):  # noqa: ANN001, ANN202
    """``tls._fast_list``'s checks: (list end, first host_name start, its end), end -1 when rejected."""
    if start + 2 > stop:
        return -1, -1, -1
    end = start + 2 + ((np.int64(b[start]) << 8) | b[start + 1])
    if end > stop:
        return -1, -1, -1
    pos = start + 2
    first, first_end = -1, -1
    head = 3 if names else 1
    while pos + head <= end:
        if names:
            kind = b[pos]
            size = (np.int64(b[pos + 1]) << 8) | b[pos + 2]
        else:
            kind = 0
            size = np.int64(b[pos])
        pos += head
        if pos + size > end:
            return -1, -1, -1
        if kind == 0 and first < 0:
            first, first_end = pos, pos + size
        pos += size
    return end, first, first_end


@njit(cache=True)
def hello_spans(b):  # noqa: ANN001, ANN201
    """(status, version, ech, sni start, sni end, alpn start, alpn end) of a ClientHello body.

    status 0: not for this path; 1: read (version: the highest non-GREASE offered, else legacy;
    sni start -1: no host name; alpn start -1: no ALPN extension, else the span of its entries).
    """
    n = len(b)
    if n < 35 or not (b[0] == 2 or b[0] == 3 or b[0] == 0xFE):
        return 0, 0, 0, -1, -1, -1, -1
    legacy = (np.int64(b[0]) << 8) | b[1]
    pos = 35 + np.int64(b[34])
    if pos + 2 > n:
        return 0, 0, 0, -1, -1, -1, -1
    pos += 2 + ((np.int64(b[pos]) << 8) | b[pos + 1])
    if pos + 1 > n:
        return 0, 0, 0, -1, -1, -1, -1
    pos += 1 + np.int64(b[pos])
    if pos >= n:
        if pos == n:
            return 1, legacy, 0, -1, -1, -1, -1
        return 0, 0, 0, -1, -1, -1, -1
    if pos + 2 > n:
        return 0, 0, 0, -1, -1, -1, -1
    end = pos + 2 + ((np.int64(b[pos]) << 8) | b[pos + 1])
    if end > n:
        return 0, 0, 0, -1, -1, -1, -1
    pos += 2
    sni = (-1, -1)
    alpn = (-1, -1)
    ver = (-1, -1)
    ech = 0
    while pos + 4 <= end:
        etype = (np.int64(b[pos]) << 8) | b[pos + 1]
        stop = pos + 4 + ((np.int64(b[pos + 2]) << 8) | b[pos + 3])
        if stop > end:
            return 0, 0, 0, -1, -1, -1, -1
        if etype == _SNI or etype == _ALPN or etype == _VERSIONS:  # noqa: SIM109  plain compares for numba
            if (
                (etype == _SNI and sni[0] >= 0)
                or (etype == _ALPN and alpn[0] >= 0)
                or (etype == _VERSIONS and ver[0] >= 0)
            ):
                return 0, 0, 0, -1, -1, -1, -1  # repeated: the checked reader decides
            if etype == _SNI:
                sni = (pos + 4, stop)
            elif etype == _ALPN:
                alpn = (pos + 4, stop)
            else:
                ver = (pos + 4, stop)
        elif etype == _ECH or etype == _ESNI:  # noqa: SIM109
            ech = 1
        pos = stop
    sni_start, sni_end = -1, -1
    if sni[0] >= 0:
        got, sni_start, sni_end = _list_ok(b, sni[0], sni[1], True)
        if got < 0:
            return 0, 0, 0, -1, -1, -1, -1
    alpn_start, alpn_end = -1, -1
    if alpn[0] >= 0:
        got, _, _ = _list_ok(b, alpn[0], alpn[1], False)
        if got < 0:
            return 0, 0, 0, -1, -1, -1, -1
        alpn_start, alpn_end = alpn[0] + 2, got
    best = -1
    if ver[0] >= 0:
        start, stop = ver
        if start >= stop or start + 1 + np.int64(b[start]) > stop:
            return 0, 0, 0, -1, -1, -1, -1
        raw_end = start + 1 + np.int64(b[start])
        i = start + 1
        while i + 1 < raw_end:
            v = (np.int64(b[i]) << 8) | b[i + 1]
            if v > best and not ((v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)):
                best = v
            i += 2
    return 1, (legacy if best < 0 else best), ech, sni_start, sni_end, alpn_start, alpn_end


def hello_fields(body: bytes) -> tuple[str | None, tuple[str, ...], str, bool] | None:
    """(sni, alpn, version text, ech) as ``tls.parse_client_hello`` gives them; None: parse it."""
    status, version, ech, sni_start, sni_end, alpn_start, alpn_end = hello_spans(body)
    if not status:
        return None
    sni = None if sni_start < 0 else tls.name_text(body[sni_start:sni_end])
    alpn: tuple[str, ...] = ()
    if alpn_start >= 0:
        out = []
        pos = alpn_start
        while pos + 1 <= alpn_end:  # entries already checked by the kernel
            size = body[pos]
            out.append(body[pos + 1 : pos + 1 + size].decode("ascii", "replace"))
            pos += 1 + size
        alpn = tuple(out)
    return sni, alpn, tls.version_text(version), bool(ech)


__all__ = ["hello_fields", "hello_spans"]
