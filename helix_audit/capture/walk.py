"""Numba kernels that walk record headers: one pass, no Python per record.

Pure-Python header walks cost ~0.5 µs a record; these run at a few ns. Each kernel fills
caller-owned column arrays from index ``n`` up to their length and returns where it stopped and why
(``ST_*``), so the caller can hand out full batches, parse the rare pcapng SHB/IDB blocks in Python
and turn damage into a warning. Byte order is a flag: the file is a flat ``uint8`` array.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Why a walk stopped.
ST_END = 0  # reached ``stop`` (or the exact end of the data)
ST_FULL = 1  # output arrays are full
ST_TRUNC_HDR = 2  # fewer bytes left than a record/block header
ST_TRUNC_DATA = 3  # record/block declares more bytes than are left
ST_ABSURD = 4  # length beyond any plausible packet (MAX_RECORD)
ST_BLOCKLEN = 5  # pcapng block length invalid (too small, unaligned, trailer mismatch, caplen overflow)
ST_IFACE = 6  # pcapng packet names an interface that no IDB described
ST_SHB = 7  # pcapng section header block at ``pos``: parse in Python
ST_IDB = 8  # pcapng interface description block at ``pos``: parse in Python

MAX_RECORD = 256 * 1024 * 1024
AHEAD, LINE = 4096, 64  # bytes loaded ahead of the record walk, in steps of a cache line
PCAPNG_SHB = 0x0A0D0D0A
BT_IDB, BT_PB, BT_SPB, BT_EPB = 1, 2, 3, 6


@njit(cache=True, inline="always")
def _u32(d: np.ndarray, p: int, be: bool) -> int:
    if be:
        return (np.int64(d[p]) << 24) | (np.int64(d[p + 1]) << 16) | (np.int64(d[p + 2]) << 8) | d[p + 3]
    return (np.int64(d[p + 3]) << 24) | (np.int64(d[p + 2]) << 16) | (np.int64(d[p + 1]) << 8) | d[p]


@njit(cache=True, inline="always")
def _u16(d: np.ndarray, p: int, be: bool) -> int:
    if be:
        return (np.int64(d[p]) << 8) | d[p + 1]
    return (np.int64(d[p + 1]) << 8) | d[p]


@njit(cache=True, inline="always")
def _ahead(d, pos, done, size):  # noqa: ANN001, ANN202
    """Load every cache line up to AHEAD bytes past ``pos`` from ``done`` on; returns (new done, sum).

    Each record header's address depends on the previous header (the chain waits out a cache miss per
    record, ~100 ns); these loads do not, so they overlap and the chain finds its lines in cache."""
    w = 0
    done = max(done, pos)
    end = min(pos + AHEAD, size)
    while done < end:
        w += d[done]
        done += LINE
    return done, w


@njit(cache=True)
def walk_pcap(d, pos, stop, be, hdrlen, frac_mul, swap, off, cap, wire, ts, n):  # noqa: ANN001, ANN201
    """Classic pcap records from ``pos`` while ``pos < stop``; returns (n, pos, status, declared, x)
    (``x``: a checksum of the bytes loaded ahead, to be ignored)."""
    size = d.shape[0]
    limit = off.shape[0]
    done = warm = 0
    while True:
        if pos >= stop or pos == size:
            return n, pos, ST_END, 0, warm
        if n >= limit:
            return n, pos, ST_FULL, 0, warm
        if pos + hdrlen > size:
            return n, pos, ST_TRUNC_HDR, hdrlen, warm
        done, wa = _ahead(d, pos, done, size)
        warm += wa
        c = _u32(d, pos + 8, be)
        wl = _u32(d, pos + 12, be)
        if swap:
            c, wl = wl, c
        if c > MAX_RECORD:
            return n, pos, ST_ABSURD, c, warm
        if pos + hdrlen + c > size:
            return n, pos, ST_TRUNC_DATA, c, warm
        ts[n] = _u32(d, pos, be) * 1_000_000_000 + _u32(d, pos + 4, be) * frac_mul
        off[n] = pos + hdrlen
        cap[n] = c
        wire[n] = wl
        n += 1
        pos += hdrlen + c


@njit(cache=True)
def count_pcap(d, pos, be, hdrlen, swap, marks, counts, landed):  # noqa: ANN001, ANN201
    """Header-only walk until every mark is passed (or the end): for each sorted mark, the records
    starting before it and the first record boundary at or after it (-1 past the walk's end).
    Returns (records, pos, status, x) (``x``: see walk_pcap).

    The bytes ahead are loaded as in walk_pcap (``_ahead``): the chain of headers alone waits out a
    cache miss per record (~100 ns); with the lines loaded ahead, a 1 GB walk takes ~0.04 s instead
    of ~0.12 s once its pages are mapped (the page faults, ~0.05 s, are the same either way)."""
    size = d.shape[0]
    n = 0
    k = 0
    nm = marks.shape[0]
    status = ST_END
    done = warm = 0
    while pos < size:
        while k < nm and marks[k] <= pos:
            counts[k] = n
            landed[k] = pos
            k += 1
        if k == nm:
            break
        if pos + hdrlen > size:
            status = ST_TRUNC_HDR
            break
        done, wa = _ahead(d, pos, done, size)
        warm += wa
        c = _u32(d, pos + 12, be) if swap else _u32(d, pos + 8, be)
        if c > MAX_RECORD:
            status = ST_ABSURD
            break
        if pos + hdrlen + c > size:
            status = ST_TRUNC_DATA
            break
        n += 1
        pos += hdrlen + c
    while k < nm:
        counts[k] = n
        landed[k] = pos if (status == ST_END and marks[k] <= pos) else -1
        k += 1
    return n, pos, status, warm


@njit(cache=True)
def resync_pcap(d, start, be, hdrlen, swap, maxcap, frac_lim, need):  # noqa: ANN001, ANN201
    """First offset >= start where ``need`` consecutive plausible record headers chain (or the
    chain ends exactly at the end of the data); -1 if none. Plausible: caplen <= maxcap,
    caplen <= wirelen, fraction < frac_lim, seconds within a day of the first header's."""
    size = d.shape[0]
    for p in range(start, size - hdrlen + 1):
        q = p
        ok = 0
        t0 = _u32(d, p, be)
        while ok < need:
            if q == size:
                ok = need
                break
            if q + hdrlen > size:
                break
            c = _u32(d, q + 8, be)
            w = _u32(d, q + 12, be)
            if swap:
                c, w = w, c
            t = _u32(d, q, be)
            if c > maxcap or c > w or _u32(d, q + 4, be) >= frac_lim or abs(t - t0) > 86400:
                break
            if q + hdrlen + c > size:
                break
            q += hdrlen + c
            ok += 1
        if ok >= need:
            return p
    return -1


@njit(cache=True, inline="always")
def _ng_ts(hi, lo, mul, div, shift, tsoff):  # noqa: ANN001, ANN202
    t = (np.uint64(hi) << np.uint64(32)) | np.uint64(lo)
    if shift < 0:
        return np.int64(t) * mul // div + tsoff
    s = np.uint64(shift)
    sec = np.int64(t >> s)
    frac = np.int64(t & ((np.uint64(1) << s) - np.uint64(1)))
    if shift > 30:
        frac >>= shift - 30
        s = np.uint64(30)
    return sec * 1_000_000_000 + ((frac * 1_000_000_000) >> np.int64(s)) + tsoff


@njit(cache=True)
def walk_pcapng(
    d, pos, stop, be, if_lt, if_snap, if_mul, if_div, if_shift, if_off, off, cap, wire, ts, lt, n
):  # noqa: ANN001, ANN201, E501
    """pcapng blocks of one section from ``pos``: EPB, PB, SPB become records, other blocks are
    skipped; SHB and IDB return to the caller. Returns (n, pos, status, declared, x) (``x``: see
    walk_pcap). With empty output arrays it only counts (n grows, nothing is stored)."""
    size = d.shape[0]
    limit = off.shape[0]
    store = limit > 0
    nif = if_lt.shape[0]
    done = warm = 0
    while True:
        if pos >= stop or pos == size:
            return n, pos, ST_END, 0, warm
        if store and n >= limit:
            return n, pos, ST_FULL, 0, warm
        if pos + 12 > size:
            return n, pos, ST_TRUNC_HDR, 12, warm
        done, wa = _ahead(d, pos, done, size)
        warm += wa
        bt = _u32(d, pos, be)
        if bt == PCAPNG_SHB:
            return n, pos, ST_SHB, 0, warm
        bl = _u32(d, pos + 4, be)
        if bl > MAX_RECORD:
            return n, pos, ST_ABSURD, bl, warm
        if bl < 12 or bl % 4 != 0:
            return n, pos, ST_BLOCKLEN, bl, warm
        if pos + bl > size:
            return n, pos, ST_TRUNC_DATA, bl, warm
        if _u32(d, pos + bl - 4, be) != bl:
            return n, pos, ST_BLOCKLEN, bl, warm
        if bt == BT_IDB:
            return n, pos, ST_IDB, 0, warm
        if bt == BT_EPB or bt == BT_PB:  # noqa: SIM109 (numba)
            if bl < 32:
                return n, pos, ST_BLOCKLEN, bl, warm
            i = _u32(d, pos + 8, be) if bt == BT_EPB else _u16(d, pos + 8, be)
            if i >= nif:
                return n, pos, ST_IFACE, i, warm
            c = _u32(d, pos + 20, be)
            if 32 + c > bl:
                return n, pos, ST_BLOCKLEN, bl, warm
            if store:
                hi = _u32(d, pos + 12, be)
                lo = _u32(d, pos + 16, be)
                ts[n] = _ng_ts(hi, lo, if_mul[i], if_div[i], if_shift[i], if_off[i])
                off[n] = pos + 28
                cap[n] = c
                wire[n] = _u32(d, pos + 24, be)
                lt[n] = if_lt[i]
            n += 1
        elif bt == BT_SPB:
            if bl < 16:
                return n, pos, ST_BLOCKLEN, bl, warm
            if nif == 0:
                return n, pos, ST_IFACE, 0, warm
            if store:
                w = _u32(d, pos + 8, be)
                c = min(w, bl - 16)
                if if_snap[0] > 0:
                    c = min(c, if_snap[0])
                ts[n] = 0
                off[n] = pos + 12
                cap[n] = c
                wire[n] = w
                lt[n] = if_lt[0]
            n += 1
        pos += bl


@njit(cache=True)
def _ng_known(bt):  # noqa: ANN001, ANN202
    return (1 <= bt <= 10) or bt == PCAPNG_SHB or bt == 0x00000BAD or bt == 0x40000BAD


@njit(cache=True)
def resync_pcapng(d, start, be, need):  # noqa: ANN001, ANN201
    """First 4-aligned offset >= start where ``need`` consecutive blocks of known type chain with
    equal leading and trailing total lengths (or reach the exact end of the data); -1 if none."""
    size = d.shape[0]
    for p in range(start + (-start % 4), size - 11, 4):
        q = p
        ok = 0
        while ok < need:
            if q == size:
                ok = need
                break
            if q + 12 > size:
                break
            bt = _u32(d, q, be)
            bl = _u32(d, q + 4, be)
            if not _ng_known(bt) or bl < 12 or bl % 4 != 0 or q + bl > size or _u32(d, q + bl - 4, be) != bl:
                break
            q += bl
            ok += 1
        if ok >= need:
            return p
    return -1
