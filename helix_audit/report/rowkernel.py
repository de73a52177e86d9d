"""The numba kernels behind :mod:`.rowtext`: identity codes, splicing, and row assembly.

Apart from the Python side because these compile (``cache=True``) and carry their own rules: word
copies by unaligned 64-bit loads and stores (:func:`_load8`, :func:`_store8`) that may read up to 7
bytes past the end of a source and write up to 7 past the end of their text, so every buffer they
touch carries ``PAD`` bytes of slack; :mod:`.rowtext` builds those buffers and calls in here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

TEXT = 0  # a: start, b: end of the cell in the data blob
INT = 1  # a: the value, b: 1 for null
PAD = 8  # slack after every buffer the kernel copies from or into
NULLABLE = 2  # the kernel's kind of an INT column with nulls
_NULL = 0x6C6C756E  # b"null" as a little-endian word


@njit(cache=True)
def identity_codes(ids: np.ndarray, codes: np.ndarray, first: np.ndarray) -> int:  # pragma: no cover
    """Codes by identity (open addressing on the pointer); ``first[k]`` is code k's first row.
    A run of one object (the common case: a table's column shares its few strings) costs a
    compare a row, and a chunk of one object no table at all."""
    n = ids.size
    first[0] = 0
    same = 1
    while same < n and ids[same] == ids[0]:
        same += 1
    codes[:same] = 0
    if same == n:
        return 1
    bits = 4
    while (1 << bits) < 2 * n:
        bits += 1
    mask = (1 << bits) - 1
    keys = np.empty(1 << bits, dtype=np.int64)
    slots = np.full(1 << bits, -1, dtype=np.int64)
    count = 0
    for i in range(n):
        p = ids[i]
        if i and p == ids[i - 1]:
            codes[i] = codes[i - 1]
            continue
        h = ((np.uint64(p) >> np.uint64(4)) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)
        s = np.int64(h)
        while slots[s] >= 0 and keys[s] != p:
            s = (s + 1) & mask
        if slots[s] < 0:
            slots[s] = count
            keys[s] = p
            first[count] = i
            count += 1
        codes[i] = slots[s]
    return count


def _load8_typer(typingctx: Any, arr: Any, idx: Any) -> Any:  # pragma: no cover - compiled
    """The eight bytes at ``arr[idx:idx + 8]`` as one unaligned 64-bit load (no bounds check)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)

    return types.uint64(arr, idx), codegen


def _store8_typer(typingctx: Any, arr: Any, idx: Any, val: Any) -> Any:  # pragma: no cover - compiled
    """Write ``val`` to ``arr[idx:idx + 8]``, one unaligned 64-bit store (no bounds check)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        builder.store(args[2], builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)
        return context.get_dummy_value()

    return types.void(arr, idx, types.uint64), codegen


_load8: Any = intrinsic(_load8_typer)
_store8: Any = intrinsic(_store8_typer)


@njit(cache=True, inline="always")
def _copy(src: np.ndarray, start: Any, end: Any, out: np.ndarray, pos: Any) -> Any:  # pragma: no cover
    """``out[pos:] = src[start:end]`` in words; may read and write up to 7 bytes past the ends."""
    k = start
    while k < end:
        _store8(out, pos + (k - start), _load8(src, k))
        k += 8
    return pos + (end - start)


@njit(cache=True, inline="always")
def _copy_in(src: np.ndarray, start: Any, end: Any, out: np.ndarray, pos: Any) -> Any:  # pragma: no cover
    """:func:`_copy` from a source without slack: words, then the last bytes one by one."""
    k = start
    while k + 8 <= end:
        _store8(out, pos + (k - start), _load8(src, k))
        k += 8
    while k < end:
        out[pos + (k - start)] = src[k]
        k += 1
    return pos + (end - start)


@njit(cache=True, nogil=True)
def splice_kernel(
    src: np.ndarray, cuts: np.ndarray, width: int, sep: np.ndarray, nsep: int, out: np.ndarray
) -> int:  # pragma: no cover - compiled
    """``src`` with each ``src[c:c + width]`` (``c`` in ``cuts``, ascending) replaced by ``sep``'s
    ``nsep`` bytes, into ``out`` (``PAD`` bytes of slack); returns the length written."""
    pos = 0
    k = 0
    for c in cuts:
        pos = _copy_in(src, k, c, out, pos)
        pos = _copy(sep, 0, nsep, out, pos)
        k = c + width
    return _copy_in(src, k, src.size, out, pos)


@njit(cache=True, nogil=True)  # the writer thread (atomic.py) takes the GIL meanwhile
def assemble(
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    kinds: np.ndarray,
    cell: np.ndarray,
    null: np.ndarray,
    lits: np.ndarray,
    lit_ends: np.ndarray,
    sep: np.ndarray,
    nsep: int,
    int_min: np.ndarray,
    out: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Each row: literal 0, variable cell 0, literal 1, ..., the last literal. ``cell[j, i]`` is
    row i's text number (``data[starts[k]:ends[k]]``) or integer in variable column j; ``null[j,
    i]`` is read for nullable integer columns only. Column-major: one contiguous run of rows per
    column. The byte buffers end in ``PAD`` bytes of slack (``sep`` is ``nsep`` long)."""
    pos = 0
    ncols, nrows = cell.shape
    for i in range(nrows):
        if i:
            pos = _copy(sep, 0, nsep, out, pos)
        k0 = 0
        for j in range(ncols):
            pos = _copy(lits, k0, lit_ends[j], out, pos)
            k0 = lit_ends[j]
            kind = kinds[j]
            if kind == TEXT:
                k = cell[j, i]
                pos = _copy(data, starts[k], ends[k], out, pos)
                continue
            if kind == NULLABLE and null[j, i]:
                _store8(out, pos, np.uint64(_NULL))
                pos += 4
                continue
            v = cell[j, i]
            if 0 <= v < 10:
                out[pos] = 48 + v
                pos += 1
                continue
            if v < 0:
                if v == -v:  # the int64 minimum has no positive counterpart
                    pos = _copy(int_min, 0, int_min.size - PAD, out, pos)
                    continue
                out[pos] = 45  # -
                pos += 1
                v = -v
            digits = 1
            t = v
            while t >= 10:
                t //= 10
                digits += 1
            p = pos + digits - 1
            while True:
                out[p] = 48 + v % 10
                v //= 10
                p -= 1
                if v == 0:
                    break
            pos += digits
        pos = _copy(lits, k0, lit_ends[ncols], out, pos)
    return pos
