"""Integer codes of the flow table's repeated text columns, each column hashed once per audit.

Classification asks the same questions of every flow many times (is it TCP? is its responder a
sandbox? which address is it?). On object columns each such question is a Python comparison per
row: ~20 ms per 10^6 flows each, and a SYN scan is 10^6 flows. Hashing a column once into small
integer codes makes every later question an integer comparison, and questions about addresses
(is it a proxy, a resolver, a control plane?) are asked once per distinct address.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from ..arrays import addresses, stored_objects


class FlowCodes:
    """Codes of one flow table's columns (rows in table order; the table must not change)."""

    def __init__(self, flows: pd.DataFrame) -> None:
        self.flows = flows
        self._codes: dict[str, tuple[np.ndarray, list[object]]] = {}
        self._hosts: tuple[np.ndarray, np.ndarray, list[str]] | None = None

    def column(self, name: str) -> tuple[np.ndarray, list[object]]:
        """``pd.factorize`` of the column: codes (-1: missing; int32 where they fit, kept for the
        whole classification) and the distinct values."""
        found = self._codes.get(name)
        if found is None:
            found = self._codes[name] = factorized(self.flows[name])
        return found

    def equals(self, name: str, *values: object) -> np.ndarray:
        """Per row: is the column's value one of ``values``? (``np.isin`` on the text)"""
        codes, uniques = self.column(name)
        wanted = [i for i, u in enumerate(uniques) if u in values]
        if not wanted:
            return np.zeros(codes.shape[0], dtype=bool)
        if len(wanted) == 1:
            return codes == wanted[0]
        hit = np.zeros(len(uniques) + 1, dtype=bool)  # code -1 (missing) reads the last entry
        hit[wanted] = True
        return hit[codes]

    def hosts(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(originator codes, responder codes, addresses): one code space for both columns; -1:
        missing. The addresses: the columns' categories when they share them (the flow table's
        own, ascending), else in order of first appearance over ``orig_h`` then ``resp_h`` (what
        ``pd.unique`` of the two columns concatenated gives)."""
        if self._hosts is None:
            self._hosts = _host_codes(self.flows["orig_h"], self.flows["resp_h"])
        return self._hosts

    def per_host(self, values: np.ndarray, side: str = "resp") -> np.ndarray:
        """``values[code]`` per row of the ``orig`` or ``resp`` side, one value per distinct address
        (``values`` has one entry more than there are addresses: the missing address's)."""
        oc, rc, _ = self.hosts()
        return values[oc if side == "orig" else rc]

    def per_host_text(self, values: list[str | None], side: str = "resp") -> TextColumn:
        """:meth:`per_host` of texts, as the column pandas infers from it (:class:`TextColumn`)."""
        oc, rc, _ = self.hosts()
        at = oc if side == "orig" else rc
        return TextColumn.of(values, np.where(at < 0, np.array(len(values) - 1, dtype=at.dtype), at))


def _host_codes(orig: pd.Series, resp: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """:meth:`FlowCodes.hosts` of the two address columns."""
    oc, ou = factorized(orig)
    rc, ru = factorized(resp)
    if isinstance(orig.dtype, pd.CategoricalDtype) and orig.dtype == resp.dtype:
        return oc, rc, ou  # type: ignore[return-value]  # one code space already (flows.text.host_columns)
    lut, uniques = pd.factorize(np.asarray(ou + ru, dtype=object))  # codes < len(ou + ru)
    return _through(oc, lut[: len(ou)]), _through(rc, lut[len(ou) :]), list(uniques)


def factorized(column: pd.Series) -> tuple[np.ndarray, list[object]]:
    """Codes and distinct values of a column. A Categorical column already is both (its codes:
    a byte a flow, read as they are; its categories may include unused ones, which no row's code
    names): hashing its object values again cost ~47 ms and an 8-byte temporary per 10^6 flows."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.array
        codes = np.asarray(cat.codes)
        uniques = list(cat.categories.to_numpy(dtype=object))
        return codes.astype(code_type(len(uniques)), copy=False), uniques
    codes, uniques = pd.factorize(column.to_numpy(dtype=object))
    return codes.astype(code_type(len(uniques)), copy=False), list(uniques)


def objects_at(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """``column.to_numpy(dtype=object)[rows]`` without the object array of the whole column (a
    Categorical's, 8 B a flow, built by a take of its categories; a number column's, a Python
    number per flow)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.array
        return category_lut(cat)[np.asarray(cat.codes)[rows]]
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iufb":  # Python numbers of the rows only
        return column.to_numpy()[rows].astype(object)
    return column.to_numpy(dtype=object)[rows]


def category_lut(cat: pd.Categorical) -> np.ndarray:
    """A Categorical's values by code as an object array: its categories, then NaN (what
    ``to_numpy(dtype=object)`` gives a missing value) as the last entry, which code -1 reads."""
    return np.append(cat.categories.to_numpy(dtype=object), np.array([np.nan], dtype=object))


def code_type(n: int) -> type[np.signedinteger]:
    """The smallest signed integer type of codes -1 .. ``n`` - 1 (held per row for the whole
    classification: a transport code is one byte a flow, not pandas' eight)."""
    for kind in (np.int8, np.int16, np.int32):
        if n < np.iinfo(kind).max:
            return kind
    return np.int64


def dense_codes(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` (integers in [0, ``size``)) and the distinct values, ascending: a
    ``pd.factorize`` without hashing, for many rows over a small key space (codes in another
    order than pandas' first appearance)."""
    present = np.zeros(size, dtype=bool)
    present[values] = True
    keys = np.flatnonzero(present)
    lut = np.zeros(size, dtype=np.int32 if keys.shape[0] < 1 << 31 else np.intp)  # codes: 4 B a row
    lut[keys] = np.arange(keys.shape[0])
    return lut[values], keys


def _through(codes: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[codes]``, -1 staying -1."""
    kind = code_type(int(lut.max()) + 1 if lut.shape[0] else 0)
    return np.append(lut.astype(kind), np.array([-1], dtype=kind))[codes]  # -1 reads the last entry


#: Rows a mask's codes are set at a time (:meth:`TextColumn.set`).
CHUNK = 1 << 16

#: Distinct objects a column may hold to become a Categorical by :func:`few_texts` (int8 codes).
FEW_OBJECTS = 100


def few_texts(values: np.ndarray | pd.api.extensions.ExtensionArray) -> pd.Categorical | None:
    """An object array (or a text column's array) of few distinct objects (:data:`FEW_OBJECTS`),
    each a str or missing (None, NaN), as the Categorical of its texts (categories distinct and
    ascending, as :meth:`TextColumn.column`); None for any other (the caller keeps it as it is).

    Classification's name columns (hostname, name_source) and failure texts are one object per
    distinct value taken per flow: 8 B a flow each as pointers, a byte as codes. The objects are
    told apart by identity (:func:`_few_objects`, a compare or two a row, where hashing the strings
    cost ~25 ns a row), then the few of them by value."""
    if isinstance(values, np.ndarray):
        objects = values if values.dtype == object and values.ndim == 1 else None
    else:
        objects = stored_objects(values)
    if objects is None or not objects.flags.c_contiguous:
        return None
    codes = np.empty(objects.shape[0], dtype=np.int8)
    first = np.empty(FEW_OBJECTS, dtype=np.int64)
    seen = np.empty(FEW_OBJECTS, dtype=np.int64)
    k = _few_objects(addresses(objects), codes, seen, first) if objects.shape[0] else 0
    if k < 0:
        return None
    uniques = objects[first[:k]].tolist()
    if not all(u is None or isinstance(u, str) or (isinstance(u, float) and u != u) for u in uniques):
        return None
    texts = sorted({u for u in uniques if isinstance(u, str)})
    rank = {t: i for i, t in enumerate(texts)}
    lut = np.array([rank[u] if isinstance(u, str) else -1 for u in uniques] + [-1], dtype=np.int8)
    return pd.Categorical.from_codes(lut[codes], pd.Index(texts, dtype=object), validate=False)


@njit(cache=True)
def _few_objects(
    ids: np.ndarray, codes: np.ndarray, seen: np.ndarray, first: np.ndarray
) -> int:  # pragma: no cover
    """Codes by identity (``ids``: object pointers) in order of first appearance; ``first[k]``: code
    k's first row. -1 once there are more distinct objects than ``seen`` holds (``codes`` then
    unfinished). The previous row's object is tried first, then the few seen so far."""
    k = 0
    last = -1
    for i in range(ids.shape[0]):
        x = ids[i]
        if last >= 0 and seen[last] == x:
            codes[i] = last
            continue
        j = 0
        while j < k and seen[j] != x:
            j += 1
        if j == k:
            if k == seen.shape[0]:
                return -1
            seen[k] = x
            first[k] = i
            k += 1
        codes[i] = j
        last = j
    return k


def _few_objects_py(ids: np.ndarray, codes: np.ndarray, seen: np.ndarray, first: np.ndarray) -> int:
    """:func:`_few_objects` in Python (the tests hold the kernel to it)."""
    found: dict[int, int] = {}
    for i, x in enumerate(ids.tolist()):
        j = found.get(x)
        if j is None:
            if len(found) == seen.shape[0]:
                return -1
            j = found[x] = len(found)
            seen[j], first[j] = x, i
        codes[i] = j
    return len(found)


def store(frame: pd.DataFrame, name: str, values: np.ndarray | pd.api.extensions.ExtensionArray) -> None:
    """``frame[name] = values`` for an array made for it, without the copy that assignment makes
    of an array (a Series wrapping it is stored as it is): a SYN scan's object column is 8 MB, and
    the copy doubled it while the original lived. An object array stays object (the constructor
    would infer a text dtype where the assignment does not)."""
    dtype = values.dtype if isinstance(values, np.ndarray) else None
    frame[name] = pd.Series(values, index=frame.index, dtype=dtype, copy=False)


class TextColumn:
    """A text column being built as codes into its few distinct values (``None``: missing), set a
    group of rows at a time; :meth:`column` is the Categorical of those texts, built from the codes
    without pandas' inference and conversion per row (~0.1 s per 10^6). The codes are the smallest
    integers that hold them (a byte a flow while a few texts are set), widened as texts are added:
    classification builds four such columns at once, and on a SYN scan their int32 codes were
    16 B a flow of its peak."""

    def __init__(self, n: int, initial: str | None = None) -> None:
        self.values: list[str | None] = [initial]
        self.codes = np.zeros(n, dtype=np.int8)

    @classmethod
    def of(cls, values: list[str | None], codes: np.ndarray) -> TextColumn:
        """The column ``values[codes]`` (``codes`` >= 0, kept as they are)."""
        out = cls(0)
        out.values, out.codes = values, codes
        return out

    def set(self, rows: np.ndarray, texts: list[str | None], group_of: np.ndarray | None = None) -> None:
        """Row ``rows[i]`` gets ``texts[group_of[i]]`` (``group_of`` None: ``texts`` is one text).
        ``rows``: positions, or a mask (its rows in order): a mask of every flow is a byte a flow
        where its positions were eight."""
        kind = code_type(len(self.values) + len(texts))
        if np.iinfo(kind).max > np.iinfo(self.codes.dtype).max:
            self.codes = self.codes.astype(kind)
        base = len(self.values)
        if group_of is None:
            self.codes[rows] = base
        elif rows.dtype == bool:  # a chunk at a time: no row-sized ``group_of + base``
            k = 0
            for lo in range(0, rows.shape[0], CHUNK):
                mask = rows[lo : lo + CHUNK]
                m = int(np.count_nonzero(mask))
                self.codes[lo : lo + CHUNK][mask] = group_of[k : k + m] + base
                k += m
        else:
            self.codes[rows] = group_of + base
        self.values += texts

    def mask(self, *texts: str | None) -> np.ndarray:
        """Per row: is its value one of ``texts``?"""
        hit = np.array([v in texts for v in self.values], dtype=bool)
        return hit[self.codes]

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The values of ``rows`` (object array)."""
        return np.array([*self.values, None], dtype=object)[:-1][self.codes[rows]]

    def column(self) -> pd.Categorical:
        """The texts as a Categorical of the texts used, distinct and ascending (as the flow
        table's text columns, :func:`flows.text.categorical`: ordering and grouping by it order as
        the texts do); ``None`` is missing. A byte a flow where the object column was eight: the
        classified table keeps four of these through the report."""
        seen = np.zeros(len(self.values), dtype=bool)
        seen[self.codes] = True  # not np.bincount: it takes the codes as intp, 8 B a flow
        used = np.flatnonzero(seen).tolist()
        texts = sorted({t for t in (self.values[i] for i in used) if t is not None})
        rank = {t: k for k, t in enumerate(texts)}
        kind = code_type(len(texts))
        lut = np.full(len(self.values), -1, dtype=kind)
        for i in used:
            text = self.values[i]
            if text is not None:
                lut[i] = rank[text]
        return pd.Categorical.from_codes(lut[self.codes], pd.Index(texts, dtype=object), validate=False)
