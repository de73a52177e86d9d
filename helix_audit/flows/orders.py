"""Event orders: the rank of a packet in the capture, ``file index << 40 | frame`` (int64), and their
compact form (uint32) while a table streams (:class:`OrderCodec`).

Every order is compared, merged by min or max, and turned back into (file, frame) only where a frame
number is written: so any map that keeps the ranks serves, and a uint32 one halves the live
segments' event orders (``state.SegmentArrays.ev``, 14 a segment).
"""

from __future__ import annotations

import numpy as np
from numba import njit

ORDER_SHIFT = 40
FRAME_MASK = (1 << ORDER_SHIFT) - 1
NONE = np.iinfo(np.int64).max  # no event (a true order)
NONE32 = int(np.iinfo(np.uint32).max)  # NONE of a compact (uint32) ``ev``
ORDER32_MAX = NONE32 - 1  # the largest compact order; past it ``ev`` is widened (tests lower it)


def order_none(ev: np.ndarray) -> int:
    """``ev``'s NONE: NONE32 for compact (uint32) orders, else NONE."""
    return NONE if ev.dtype == np.int64 else NONE32


@njit(cache=True, inline="always")
def none_of(ev):  # noqa: ANN001, ANN201
    """``ev``'s NONE (compact uint32 orders or int64 ones), for kernels that read either."""
    return NONE if ev.itemsize == 8 else NONE32


class OrderCodec:
    """Compact event orders: while a table streams, ``ev`` holds uint32 orders of the same rank as
    the int64 ones (file index << 40 | frame), 56 B a live segment saved (the 1M SYN scan's
    streaming peak is its live segments); finish joins and orients flows on them too, decoding only
    the frames it writes (the expiry store keeps true orders: ``encode`` reads them back).

    The compact order of a packet is ``shift + frame``: a *run* (a file's frames from its first
    batch on) maps its frames onto the compact orders past every earlier run's, so compact orders
    compare as the true ones as long as each run starts past every order given before (batches in
    capture order, as a table reads them). A batch that would break that (a file or frame out of
    order) or whose orders pass ``ORDER32_MAX`` gets no shift: the table widens ``ev`` to true
    orders for good (``SegmentArrays.widen_orders``), and so does a merge."""

    def __init__(self) -> None:
        self.wide = False  # orders are true (int64) ones: shift = file index << 40
        self.runs: list[tuple[int, int, int]] = []  # (file index, first frame, its compact order)
        self.top = -1  # the largest compact order given
        self.last = -1  # the largest true order given

    def shift(self, fidx: int, fmin: int, fmax: int) -> int | None:
        """The shift of a batch of file ``fidx``, frames ``fmin`` to ``fmax`` (compact or, once wide,
        true orders = shift + frame); None: the batch's orders do not fit the compact ones."""
        high = fidx << ORDER_SHIFT
        if self.wide:
            return high
        if fmin < 0 or fmax > FRAME_MASK:
            return None
        same = bool(self.runs) and self.runs[-1][0] == fidx and fmin >= self.runs[-1][1]
        if not same and (high | fmin) <= self.last:  # a new run must start past every order given
            return None
        _, f0, c0 = self.runs[-1] if same else (fidx, fmin, self.top + 1)
        top = c0 + fmax - f0
        if top > ORDER32_MAX:
            return None
        if not same:
            self.runs.append((fidx, f0, c0))
        self.top, self.last = max(self.top, top), max(self.last, high | fmax)
        return c0 - f0

    def encode(self, t: np.ndarray) -> np.ndarray:
        """Compact orders (as int64; NONE: NONE32) of true orders ``t``, each one this codec gave
        (the inverse of ``decode``: the expiry store's rows, read back into compact aggregates)."""
        out = t.astype(np.int64)  # a copy
        if len(self.runs) == 1:
            f, f0, c0 = self.runs[0]
            out -= (f << ORDER_SHIFT) + f0 - c0
        elif self.runs:
            starts = np.array([(f << ORDER_SHIFT) | f0 for f, f0, _ in self.runs], dtype=np.int64)
            offs = np.array([(f << ORDER_SHIFT) + f0 - c0 for f, f0, c0 in self.runs], dtype=np.int64)
            out -= offs[np.maximum(np.searchsorted(starts, t, side="right") - 1, 0)]
        out[t == NONE] = NONE32
        return out

    def decode(self, c: np.ndarray) -> np.ndarray:
        """True (int64) orders of compact orders ``c`` (NONE32: NONE)."""
        out = c.astype(np.int64)
        if len(self.runs) == 1:
            f, f0, c0 = self.runs[0]
            out += (f << ORDER_SHIFT) + f0 - c0
        elif self.runs:
            starts = np.array([r[2] for r in self.runs], dtype=np.int64)
            offs = np.array([(f << ORDER_SHIFT) + f0 - c0 for f, f0, c0 in self.runs], dtype=np.int64)
            out += offs[np.maximum(np.searchsorted(starts, out, side="right") - 1, 0)]
        out[c == NONE32] = NONE
        return out
