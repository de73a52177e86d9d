"""The flows' address columns (orig_h, resp_h) in two steps, so that the addresses go early.

:func:`host_codes` turns the tuples' addresses (``tk_u64``: 32 B a tuple) into two int32 codes per
row into their distinct addresses, at the start of ``FlowTable.finish``: the address halves are
dropped with the tuple arrays before the aggregates are folded (the 3M SYN scan's finish peak held
them next to every aggregate: 24 B a flow, ~70 MB). :func:`host_columns_of` renders the distinct
addresses late in ``build_frame`` (their texts are what the Categoricals keep) and re-codes the
rows by the texts' order, swapped where B is the originator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arrays import sorted_unique, swap_where
from ..decode.interface import addr_to_str
from . import text  # its CHUNK_ROWS and SEARCH_MAX read when called (tests set them)


@dataclass(eq=False)
class HostCodes:
    """Per row, A's and B's address as codes into the distinct addresses: the IPv4-mapped ones
    (``v4``, ascending), then the IPv6 ones (``v6``, (hi, lo) rows, ascending). Spent (emptied)
    by :func:`host_columns_of`, so that its holders do not keep the codes past the columns."""

    a: np.ndarray
    b: np.ndarray
    v4: np.ndarray
    v6: np.ndarray


def host_codes(ku: np.ndarray) -> HostCodes:
    """The codes of ``ku``'s rows (a_hi, a_lo, b_hi, b_lo). IPv4-mapped addresses are coded
    ``CHUNK_ROWS`` rows at a time by a search of the sorted distinct ones (one pass over 3M flows
    at once made ~165 MB of temporaries); the (rarer) IPv6 ones by one ``np.unique`` of both sides."""
    n = ku.shape[0]
    sides = [(ku[:, 0], ku[:, 1]), (ku[:, 2], ku[:, 3])]
    v4 = [(hi == 0) & ((lo >> np.uint64(32)) == 0xFFFF) for hi, lo in sides]
    # numpy 2's ``np.unique`` of a flow-sized array takes its superlinear hash path: sort instead
    v4_lo = np.concatenate([lo[m].astype(np.uint32) for (_, lo), m in zip(sides, v4, strict=True)])
    uniq = sorted_unique(v4_lo, in_place=True).copy()  # compact: the flow-sized buffer goes
    del v4_lo
    rest = [np.flatnonzero(~m) for m in v4]
    v6_inv: list[np.ndarray] = []
    got = np.zeros((0, 2), dtype=np.uint64)
    if any(len(r) for r in rest):  # both sides' IPv6 addresses in one code space
        pairs = np.concatenate(
            [np.stack([hi[r], lo[r]], axis=1) for (hi, lo), r in zip(sides, rest, strict=True)]
        )
        got, inv = np.unique(pairs, axis=0, return_inverse=True)
        inv = inv.reshape(-1) + len(uniq)
        v6_inv = [inv[: len(rest[0])], inv[len(rest[0]) :]]
    kind = np.int32 if len(uniq) + len(got) < np.iinfo(np.int32).max else np.int64
    cols = [np.empty(n, dtype=kind), np.empty(n, dtype=kind)]
    for k, ((_, lo), m, out) in enumerate(zip(sides, v4, cols, strict=True)):
        for c in range(0, n, text.CHUNK_ROWS):
            at = slice(c, c + text.CHUNK_ROWS)
            vals = lo[at][m[at]].astype(np.uint32)
            if len(uniq) > text.SEARCH_MAX:  # many addresses: search a chunk's distinct ones only
                vals, inv = np.unique(vals, return_inverse=True)
                out[at][m[at]] = np.searchsorted(uniq, vals)[inv.reshape(-1)]
            else:
                out[at][m[at]] = np.searchsorted(uniq, vals)
        if len(rest[k]):
            out[rest[k]] = v6_inv[k]
    return HostCodes(cols[0], cols[1], uniq, got)


def host_columns_of(codes: HostCodes, o: np.ndarray) -> tuple[pd.Categorical, pd.Categorical]:
    """(orig_h, resp_h): the text addresses of ``codes`` (its arrays re-coded in place, then
    let go of: ``codes`` is spent),
    swapped where B is the originator (``o``), as two Categoricals of one dtype: the distinct
    addresses of both columns, ascending as texts (what ordering or grouping by the texts
    expects), and int32 codes (4 B a flow and column, where object columns of shared strs were
    8). Each distinct address is rendered once."""
    texts: list[str] = []
    for c in range(0, len(codes.v4), text.CHUNK_ROWS):
        texts += text.ipv4_text(codes.v4[c : c + text.CHUNK_ROWS]).tolist()
    texts += [addr_to_str(h, lo_) for h, lo_ in codes.v6.tolist()]
    kind = codes.a.dtype
    order = sorted(range(len(texts)), key=texts.__getitem__)  # distinct texts: a strict order
    rank = np.empty(len(texts), dtype=kind)
    rank[order] = np.arange(len(texts), dtype=kind)
    orig, resp = codes.a, codes.b
    codes.a = codes.b = codes.a[:0].copy()  # the Categoricals' codes are made of them (narrowed)
    for col in (orig, resp):
        for c in range(0, len(col), text.CHUNK_ROWS):
            col[c : c + text.CHUNK_ROWS] = rank[col[c : c + text.CHUNK_ROWS]]
    swap_where(o, [(orig, resp)])
    dtype = pd.CategoricalDtype(pd.Index([texts[i] for i in order], dtype=object))
    return (
        pd.Categorical.from_codes(orig, dtype=dtype, validate=False),
        pd.Categorical.from_codes(resp, dtype=dtype, validate=False),
    )
