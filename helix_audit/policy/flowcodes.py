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
    Categorical's, 8 B a flow, built by a take of its categories)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.array
        return category_lut(cat)[np.asarray(cat.codes)[rows]]
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


def store(frame: pd.DataFrame, name: str, values: np.ndarray | pd.api.extensions.ExtensionArray) -> None:
    """``frame[name] = values`` for an array made for it, without the copy that assignment makes
    of an array (a Series wrapping it is stored as it is): a SYN scan's object column is 8 MB, and
    the copy doubled it while the original lived. An object array stays object (the constructor
    would infer a text dtype where the assignment does not)."""
    dtype = values.dtype if isinstance(values, np.ndarray) else None
    frame[name] = pd.Series(values, index=frame.index, dtype=dtype, copy=False)


class TextColumn:
    """A text column being built as codes into its few distinct values (``None``: missing), set a
    group of rows at a time; :meth:`column` is what assigning the object array ``values[codes]``
    to a DataFrame stores, without pandas' inference and conversion per row (~0.1 s per 10^6)."""

    def __init__(self, n: int, initial: str | None = None) -> None:
        self.values: list[str | None] = [initial]
        self.codes = np.zeros(n, dtype=np.int32 if n < 1 << 31 else np.int64)

    @classmethod
    def of(cls, values: list[str | None], codes: np.ndarray) -> TextColumn:
        """The column ``values[codes]`` (``codes`` >= 0, kept as they are)."""
        out = cls(0)
        out.values, out.codes = values, codes
        return out

    def set(self, rows: np.ndarray, texts: list[str | None], group_of: np.ndarray | None = None) -> None:
        """Row ``rows[i]`` gets ``texts[group_of[i]]`` (``group_of`` None: ``texts`` is one text)."""
        self.codes[rows] = len(self.values) if group_of is None else group_of + len(self.values)
        self.values += texts

    def mask(self, *texts: str | None) -> np.ndarray:
        """Per row: is its value one of ``texts``?"""
        hit = np.array([v in texts for v in self.values], dtype=bool)
        return hit[self.codes]

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The values of ``rows`` (object array)."""
        return np.array([*self.values, None], dtype=object)[:-1][self.codes[rows]]

    def column(self) -> pd.api.extensions.ExtensionArray | np.ndarray:
        """The pandas text dtype when some row has a text, else the object array (what pandas infers)."""
        values = np.array([*self.values, None], dtype=object)[:-1]
        used = np.bincount(self.codes, minlength=len(self.values)) > 0
        if not any(v is not None for v in values[used].tolist()):
            return values[self.codes]
        return pd.array(values, dtype="str").take(self.codes)
