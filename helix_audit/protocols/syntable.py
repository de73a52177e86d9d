"""Pending SYNs (a direction's ISN and rank of birth until its first payload) in numpy columns.

A SYN scan leaves one pending SYN per flow for the whole run: as a dict of tuples that is ~180 bytes
each (10^6 flows: ~180 MB of Python objects alive through the flows finish); here it is 12 bytes
per direction key. The interface is the part of ``dict[int, tuple[int, int]]`` the extractor and
:mod:`.partition` use, plus :meth:`SynTable.put` for a batch of keys at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

_ABSENT = -1  # ``birth`` of a key with no pending SYN (births are >= 0)


class SynTable:
    """Direction key -> (ISN, birth), for keys >= 0; grows (doubling) to the largest key put."""

    def __init__(self, size: int = 1024) -> None:
        self._columns(np.zeros(size, dtype=np.uint32), np.full(size, _ABSENT, dtype=np.int64), 0)

    def _columns(self, seq: np.ndarray, birth: np.ndarray, count: int) -> None:
        """Set the columns, and the memoryviews over them that the one-key methods read (an item
        of a memoryview costs half a numpy ``item``, and these run once a new direction or so)."""
        self._seq, self._birth, self._count = seq, birth, count
        self._sv, self._bv, self._size = seq.data, birth.data, birth.size

    def __getstate__(self) -> tuple[np.ndarray, np.ndarray, int]:
        return self._seq, self._birth, self._count  # memoryviews do not pickle: rebuilt on load

    def __setstate__(self, state: tuple[np.ndarray, np.ndarray, int]) -> None:
        self._columns(*state)

    def _grow(self, key: int) -> None:
        if key < self._size:
            return
        n = max(key + 1, 2 * self._size)
        seq = np.concatenate([self._seq, np.zeros(n - self._seq.size, dtype=np.uint32)])
        self._columns(seq, np.concatenate([self._birth, np.full(n - self._size, _ABSENT, dtype=np.int64)]),
                      self._count)  # fmt: skip

    def __contains__(self, key: int) -> bool:
        return 0 <= key < self._size and self._bv[key] != _ABSENT

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, key: int) -> tuple[int, int]:
        if key not in self:
            raise KeyError(key)
        return self._sv[key], self._bv[key]

    def __setitem__(self, key: int, value: tuple[int, int]) -> None:
        seq, birth = value
        if key < 0 or birth < 0:
            raise ValueError("keys and births are >= 0")
        self._grow(key)
        if self._birth[key] == _ABSENT:
            self._count += 1
        self._seq[key], self._birth[key] = seq, birth

    def put(self, keys: np.ndarray, seqs: np.ndarray, births: np.ndarray) -> None:
        """Set many keys at once (unique, >= 0, none pending yet; births >= 0)."""
        if not keys.size:
            return
        self._grow(int(keys.max()))
        self._count += int(np.count_nonzero(self._birth[keys] == _ABSENT))
        self._seq[keys] = seqs
        self._birth[keys] = births

    def pop(self, key: int, default: tuple[int, int] | None = None) -> tuple[int, int] | None:
        if not 0 <= key < self._size:
            return default
        birth = self._bv
        got = birth[key]
        if got == _ABSENT:
            return default
        birth[key] = _ABSENT
        self._count -= 1
        return self._sv[key], got

    def pending(self, keys: np.ndarray) -> np.ndarray:
        """Mask: which of ``keys`` (>= 0) have a pending SYN."""
        inside = keys < self._birth.size
        out = np.zeros(keys.size, dtype=bool)
        out[inside] = self._birth[keys[inside]] != _ABSENT
        return out

    def columns(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ISNs, births) of ``keys`` (each pending), for a bulk read."""
        return self._seq[keys], self._birth[keys]

    def keys(self) -> np.ndarray:
        return np.flatnonzero(self._birth != _ABSENT)

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys().tolist())

    def items(self) -> Iterable[tuple[int, tuple[int, int]]]:
        keys = self.keys()
        return zip(keys.tolist(), zip(self._seq[keys].tolist(), self._birth[keys].tolist(), strict=True),
                   strict=True)  # fmt: skip

    def clear(self) -> None:
        """Forget every key and give the columns' memory back."""
        self._columns(np.zeros(1, dtype=np.uint32), np.full(1, _ABSENT, dtype=np.int64), 0)


__all__ = ["SynTable"]
