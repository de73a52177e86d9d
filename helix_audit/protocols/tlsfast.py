"""The four ClientHello fields an observation needs, from one numba walk of the handshake body.

``tlshello._client_hello_fast`` walks the extensions in Python (~7 µs for a browser's hello); the kernel
here accepts exactly the hellos that fast path accepts (same checks, same order) and returns spans
and the highest offered version, so Python only decodes the server name and the ALPN entries.
Anything the fast path would hand to the checked reader returns None here, and the caller parses
the body as before (:func:`tlshello.parse_client_hello`): same result, same errors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import tls, tlshello

_SNI, _ALPN, _VERSIONS = tlshello.EXT_SNI, tlshello.EXT_ALPN, tlshello.EXT_VERSIONS
_ECH, _ESNI = tlshello.EXT_ECH, tlshello.EXT_ESNI


@njit(cache=True)
def _list_ok(b, start, stop, names):  # noqa: ANN001, ANN202
    """``tlshello._fast_list``'s checks: (list end, first host_name start, its end), end -1 when rejected."""
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
    """(sni, alpn, version text, ech) as ``tlshello.parse_client_hello`` gives them; None: parse it."""
    status, version, ech, sni_start, sni_end, alpn_start, alpn_end = hello_spans(body)
    if not status:
        return None
    sni = None if sni_start < 0 else tlshello.name_text(body[sni_start:sni_end])
    alpn: tuple[str, ...] = ()
    if alpn_start >= 0:
        out = []
        pos = alpn_start
        while pos + 1 <= alpn_end:  # entries already checked by the kernel
            size = body[pos]
            out.append(body[pos + 1 : pos + 1 + size].decode("ascii", "replace"))
            pos += 1 + size
        alpn = tuple(out)
    return sni, alpn, tlshello.version_text(version), bool(ech)


#: ``flight_spans`` output: 8 head values, then (type, body start, body end, end) per handshake
#: message, then (level, description, end) per alert; at most ``_MAX_ITEMS`` of each.
_MAX_ITEMS = 32
_HEAD = 8
_MAX_RECORD, _MAX_HANDSHAKE = tls.MAX_RECORD, tls.MAX_HANDSHAKE


@njit(cache=True)
def flight_spans(b, limit, out, alerts):  # noqa: ANN001, ANN201
    """``tls.scan_stream(b, limit, b"", False)`` as offsets into ``out``: returns how many values
    it wrote (0: not taken). ``alerts``: scratch for the alerts until the handshakes are counted.

    out[1:8]: used, want, appdata, pending start, pending end, handshake count, alert count. Taken
    only when every handshake message and the pending tail lie inside one record (their bytes are
    then slices of ``b``: no record headers to cut out) and the lists fit the output.
    """
    n = len(b)
    off = 0
    used = 0
    want = 0
    appdata = 0
    ps = 0  # pending bytes: b[ps:pe]
    pe = 0
    nh = 0
    na = 0
    while off + 5 <= n and appdata == 0:
        ctype = b[off]
        length = (np.int64(b[off + 3]) << 8) | b[off + 4]
        if ctype < 20 or ctype > 23 or b[off + 1] != 3 or length > _MAX_RECORD:
            break
        if off + 5 + length > n:
            want = off + 5 + length
            break
        start = off + 5
        off = start + length
        used = off
        if ctype == 22:
            if pe > ps:
                return 0  # a message continued across records: the Python scan joins them
            pos = start
            while pos + 4 <= off:
                size = (np.int64(b[pos + 1]) << 16) | (np.int64(b[pos + 2]) << 8) | b[pos + 3]
                if pos + 4 + size > off:
                    break
                if nh == _MAX_ITEMS:
                    return 0
                at = _HEAD + 4 * nh
                out[at], out[at + 1], out[at + 2], out[at + 3] = b[pos], pos + 4, pos + 4 + size, off
                nh += 1
                pos += 4 + size
            ps, pe = pos, off
            if nh >= limit or pe - ps > _MAX_HANDSHAKE:
                break
        elif ctype == 21 and length == 2:
            if na == _MAX_ITEMS:
                return 0
            alerts[3 * na], alerts[3 * na + 1], alerts[3 * na + 2] = b[start], b[start + 1], off
            na += 1
        elif ctype == 23:
            appdata = 1
    out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7] = 1, used, want, appdata, ps, pe, nh, na
    at = _HEAD + 4 * nh
    for k in range(3 * na):
        out[at + k] = alerts[k]
    return at + 3 * na


_FLIGHT_BUF = np.zeros(_HEAD + 7 * _MAX_ITEMS, dtype=np.int64)
_ALERT_BUF = np.zeros(3 * _MAX_ITEMS, dtype=np.int64)
#: (used, want, appdata, pending, stuck, handshakes, alerts): the ``tls.StreamScan`` fields
Flight = tuple[int, int, bool, bytes, bool, list[tuple[int, bytes, int]], list[tuple[str, str, int]]]


def first_flight(payload: bytes, limit: int) -> Flight | None:
    """``tls.scan_stream(payload, limit, b"", False)`` (a fresh direction's first segment, not
    SSLv2) from the kernel, as a tuple of its fields; None when the kernel leaves it to that scan."""
    m = flight_spans(payload, limit, _FLIGHT_BUF, _ALERT_BUF)
    if not m:
        return None
    v = _FLIGHT_BUF[:m].tolist()
    nh, na = v[6], v[7]
    if nh == 1:  # the common case: one ClientHello or ServerHello
        handshakes = [(v[8], payload[v[9] : v[10]], v[11])]
    else:
        handshakes = [(v[k], payload[v[k + 1] : v[k + 2]], v[k + 3]) for k in range(_HEAD, _HEAD + 4 * nh, 4)]
    alerts = []
    if na:
        levels, text = tls.ALERT_LEVELS, tls._alert_text  # noqa: SLF001
        alerts = [
            (levels.get(v[k], str(v[k])), text(v[k + 1]), v[k + 2]) for k in range(_HEAD + 4 * nh, m, 3)
        ]
    ps, pe = v[4], v[5]
    return v[1], v[2], v[3] == 1, payload[ps:pe], pe - ps > _MAX_HANDSHAKE, handshakes, alerts


def scan_fields(scan: tls.StreamScan) -> Flight:
    """A scan's fields in :func:`first_flight`'s order."""
    return scan.used, scan.want, scan.appdata, scan.pending, scan.stuck, scan.handshakes, scan.alerts


__all__ = ["Flight", "first_flight", "flight_spans", "hello_fields", "hello_spans", "scan_fields"]
