"""A text column as one byte buffer: the ``key_frames`` of a million flows without a million strings.

Each flow's key frames are a distinct text ("4411,4415"); as Python strings they cost ~56 B each
besides the column's 8-byte pointer (a SYN scan: ~60 MB a million flows, alive from flows finish to
the report). :class:`TextBlobArray` keeps the texts as the finish kernel writes them, UTF-8 rows ended
by a newline in one buffer, and row offsets: ~10-20 B a flow. It is a pandas ExtensionArray of str
values: a cell reads as its str, ``to_numpy()`` gives the object array of strs the column held
(made when asked: the report writers ask a chunk of rows at a time), and slicing, taking,
concatenating and comparing work as on any column. Missing values (only from a reindex or a take
with fill) read NaN, as in pandas' ``str`` columns.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numba import njit
from pandas.api.extensions import ExtensionArray, ExtensionDtype, no_default

_NL = 10


class TextBlobDtype(ExtensionDtype):
    """The dtype of :class:`TextBlobArray` (values: str; missing: NaN)."""

    name = "textblob"
    type = str
    kind = "O"
    na_value = np.nan

    @classmethod
    def construct_array_type(cls) -> builtins.type[TextBlobArray]:
        return TextBlobArray


def offsets_type(size: int) -> type[np.signedinteger]:
    """int32 offsets for a buffer under 2 GiB, else int64."""
    return np.int32 if size <= np.iinfo(np.int32).max else np.int64


@njit(cache=True)
def _gather(blob, offs, idx, out_offs, out):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """Rows ``idx`` of (``blob``, ``offs``) copied in order into ``out``; their offsets into
    ``out_offs`` (``out_offs[0]`` = 0)."""
    pos = 0
    out_offs[0] = 0
    for k in range(idx.shape[0]):
        for j in range(offs[idx[k]], offs[idx[k] + 1]):
            out[pos] = blob[j]
            pos += 1
        out_offs[k + 1] = pos


class TextBlobArray(ExtensionArray):
    """Texts as rows of one buffer: row ``i`` is ``blob[offs[i] : offs[i + 1] - 1]`` (UTF-8, with
    surrogates passed through, as file names may hold them), each row followed by a newline;
    ``na``: rows that are missing (their text empty), None when none is."""

    def __init__(self, blob: np.ndarray, offs: np.ndarray, na: np.ndarray | None = None) -> None:
        self._blob, self._offs, self._na = blob, offs, na

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def from_buffer(cls, blob: np.ndarray) -> TextBlobArray:
        """Rows of a buffer of newline-ended rows that hold no newline themselves (the kernel's)."""
        ends = np.flatnonzero(blob == _NL)
        offs = np.zeros(len(ends) + 1, dtype=offsets_type(len(blob)))
        offs[1:] = ends + 1
        return cls(blob, offs)

    @classmethod
    def from_texts(cls, texts: Sequence[str | None]) -> TextBlobArray:
        rows = [b"" if t is None else t.encode("utf-8", "surrogatepass") for t in texts]
        blob = np.frombuffer(b"\n".join(rows) + b"\n" if rows else b"", dtype=np.uint8).copy()
        offs = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) + 1 for r in rows], out=offs[1:])
        na = np.array([t is None for t in texts], dtype=bool)
        return cls(blob, offs.astype(offsets_type(len(blob))), na if na.any() else None)

    @classmethod
    def _from_sequence(cls, scalars: Any, *, dtype: Any = None, copy: bool = False) -> TextBlobArray:  # noqa: ANN401
        return cls.from_texts([None if _missing(s) else str(s) for s in scalars])

    @classmethod
    def _from_factorized(cls, values: Any, original: Any) -> TextBlobArray:  # noqa: ANN401
        return cls._from_sequence(values)

    # ---------------------------------------------------------------------------------- reading

    @property
    def dtype(self) -> TextBlobDtype:
        return TextBlobDtype()

    @property
    def nbytes(self) -> int:
        return int(self._blob.nbytes + self._offs.nbytes + (0 if self._na is None else self._na.nbytes))

    def __len__(self) -> int:
        return len(self._offs) - 1

    def isna(self) -> np.ndarray:
        return np.zeros(len(self), dtype=bool) if self._na is None else self._na.copy()

    def _row(self, i: int) -> str:
        return bytes(self._blob[self._offs[i] : self._offs[i + 1] - 1]).decode("utf-8", "surrogatepass")

    def _texts(self) -> list[str]:
        """Every row's text (missing rows: "")."""
        n = len(self)
        if n == 0:
            return []
        data = self._blob[self._offs[0] : self._offs[-1]]
        if not len(data) or int(data.max()) < 128:  # ASCII: one decode, one split
            texts = data.tobytes().decode("ascii").split("\n")
            if len(texts) == n + 1:  # no row holds a newline of its own
                texts.pop()
                return texts
        return [self._row(i) for i in range(n)]

    def rows(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(the rows' bytes, each ended by a newline; their start offsets and the end, from 0) for
        writers that take the text as it is; None when a row is missing."""
        if self._na is not None and self._na.any():
            return None
        offs = self._offs.astype(np.int64)
        return self._blob[offs[0] : offs[-1]], offs - offs[0]

    def to_numpy(self, dtype: Any = None, copy: bool = False, na_value: Any = no_default) -> np.ndarray:  # noqa: ANN401
        out = np.empty(len(self), dtype=object)
        out[:] = self._texts()
        if self._na is not None:
            out[self._na] = self.dtype.na_value if na_value is no_default else na_value
        return out if dtype is None or np.dtype(dtype) == object else out.astype(dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:  # noqa: ANN401
        return self.to_numpy(dtype=dtype)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.to_numpy().tolist())

    def __getitem__(self, item: Any) -> Any:  # noqa: ANN401
        if isinstance(item, int | np.integer):
            i = int(item) + (len(self) if item < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"index {item} is out of bounds for length {len(self)}")
            return self.dtype.na_value if self._na is not None and self._na[i] else self._row(i)
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step == 1:
                stop = max(start, stop)
                na = None if self._na is None else self._na[start:stop]
                return TextBlobArray(self._blob, self._offs[start : stop + 1], na)
            return self.take(np.arange(start, stop, step))
        item = pd.api.indexers.check_array_indexer(self, item)
        if item.dtype == bool:
            item = np.flatnonzero(item)
        return self.take(item)

    def take(self, indices: Any, *, allow_fill: bool = False, fill_value: Any = None) -> TextBlobArray:  # noqa: ANN401
        idx = np.asarray(indices, dtype=np.int64)
        n = len(self)
        fill = np.zeros(len(idx), dtype=bool)
        if allow_fill:
            if (idx < -1).any():
                raise ValueError("take: indices below -1 with allow_fill")
            fill = idx == -1
            if fill.any() and not _missing(fill_value):
                raise ValueError("take: a fill value other than NA")
            idx = np.where(fill, 0, idx)
        else:
            idx = np.where(idx < 0, idx + n, idx)
        if len(idx) and (idx.max() >= n or idx.min() < 0):
            if n == 0 and fill.all():
                return TextBlobArray.from_texts([None] * len(idx))
            raise IndexError("take: index out of bounds")
        lens = np.diff(self._offs)[idx].astype(np.int64) if len(idx) else np.zeros(0, dtype=np.int64)
        total = int(lens.sum())
        out = np.empty(total, dtype=np.uint8)
        offs = np.empty(len(idx) + 1, dtype=offsets_type(total))
        _gather(self._blob, self._offs, idx, offs, out)
        na = fill | (self._na[idx] if self._na is not None else False)
        return TextBlobArray(out, offs, na if na.any() else None)

    def _compact(self) -> bool:
        """Whether the buffer holds exactly these rows (no other array's)."""
        return len(self._offs) > 0 and self._offs[0] == 0 and self._offs[-1] == len(self._blob)

    def copy(self) -> TextBlobArray:
        return self.take(np.arange(len(self)))

    @classmethod
    def _concat_same_type(cls, to_concat: Sequence[TextBlobArray]) -> TextBlobArray:
        parts = [a if a._compact() else a.copy() for a in to_concat]
        blob = np.concatenate([p._blob for p in parts]) if parts else np.zeros(0, dtype=np.uint8)
        offs = np.zeros(sum(len(p) for p in parts) + 1, dtype=np.int64)
        at, base = 0, 0
        for p in parts:
            offs[at + 1 : at + len(p) + 1] = p._offs[1:].astype(np.int64) + base
            at, base = at + len(p), base + len(p._blob)
        na = np.concatenate([p.isna() for p in parts]) if parts else np.zeros(0, dtype=bool)
        return cls(blob, offs.astype(offsets_type(len(blob))), na if na.any() else None)

    def __eq__(self, other: object) -> Any:  # noqa: ANN401
        if isinstance(other, pd.Series | pd.Index | pd.DataFrame):
            return NotImplemented
        right = other.to_numpy() if isinstance(other, TextBlobArray) else other
        out = np.asarray(self.to_numpy() == right, dtype=bool)
        return out & ~self.isna() if self._na is not None else out

    def _values_for_factorize(self) -> tuple[np.ndarray, Any]:
        return self.to_numpy(na_value=None), None


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)
