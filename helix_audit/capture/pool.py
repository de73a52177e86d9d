"""Batch-sized column arrays, reused once nothing but the pool refers to them.

Every batch needs the same few dozen arrays of ``batch_size`` rows (record columns, decoded header
columns, the flow table's per-row outputs). Under the CLI's heap settings (``heap.py``) each array of
256 KiB or more is a fresh ``mmap``: its pages fault in on first write and are unmapped when it is
freed, which cost ~0.35 s of kernel time over the stages on the 2M-packet benchmark. A pool hands out
an array again only when its reference count shows that no one else holds it (nor a view of it: a
view refers to its base), so a consumer that keeps a batch's columns keeps them intact; the pool then
allocates anew. It keeps at most ``keep`` arrays per (name, length, dtype).
"""

from __future__ import annotations

import sys

import numpy as np

_FREE_REFS = 3  # the pool's list, the loop variable, getrefcount's argument


class ArrayPool:
    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._arrays: dict[tuple[str, int, str], list[np.ndarray]] = {}

    def empty(self, n: int, dtype: np.dtype | type, name: str = "") -> np.ndarray:
        """An uninitialised array of ``n`` items: a pooled one no one else holds, else a new one.
        ``name`` tells apart arrays of one batch that share length and dtype."""
        dt = np.dtype(dtype)
        held = self._arrays.setdefault((name, n, dt.str), [])
        for a in held:
            if sys.getrefcount(a) <= _FREE_REFS:
                return a
        a = np.empty(n, dt)
        if len(held) < self.keep:
            held.append(a)
        return a

    def clear(self) -> None:
        self._arrays.clear()
