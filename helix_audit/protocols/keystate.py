"""The extractor's state by direction key (flow_id * 2 + from_a), and what it settles in bulk.

Apart from the row loop of :mod:`.extract` because this side runs over whole batches with numpy,
never a Python step per row: bitmaps by key say which directions are done, gone or known, new
directions whose first segment ends their parsing are marked done at once (:mod:`.prefilter`), and
payload-less SYNs that open their direction are kept in the pending table (:mod:`.syntable`)
without building a :class:`.streams.Direction`. Only what these leave reaches the loop.
"""

from __future__ import annotations

import numpy as np

from ..decode.interface import ST_OK, PacketColumns
from ..flows.interface import PacketFlows
from .keyed import unique_first
from .prefilter import HEAD, unparsed_keys
from .rows import leading_syns
from .selection import DNS_PORTS, TCP, is_done
from .streams import Direction
from .syntable import SynTable


def marked(mask: np.ndarray, keys: int | list[int]) -> np.ndarray:
    """``mask`` with ``keys`` set True; first a copy grown (at least doubled, new entries False)
    when a key is past its end."""
    top = keys if isinstance(keys, int) else max(keys)
    if top >= mask.size:
        mask = np.concatenate([mask, np.zeros(max(top + 1, 2 * mask.size), dtype=bool)])
    mask[keys] = True
    return mask


class KeyState:
    """The tables by direction key and the bulk steps over them; :class:`.extract.Extractor` adds
    the rows that need Python. The hooks (``_skipped``, ``_early``) let a partition note keys."""

    def __init__(self, limit: int = 64 * 1024, dns_ports: tuple[int, ...] = DNS_PORTS) -> None:
        self.limit = limit
        self.dns_ports = tuple(dns_ports)
        self._dns_set = frozenset(self.dns_ports)  # a hash look-up per new direction, not a scan
        self._dirs: dict[tuple[int, bool], Direction] = {}
        self._done = np.zeros(1024, dtype=bool)  # by direction key: no longer parsed
        self._fresh_done: set[int] = set()  # keys marked in ``_done`` since ``_tcp_rows`` began
        self._gone_keys: list[int] = []  # keys for ``_gone``, set in bulk at the end of ``add``
        #: By direction key: done and not kept (never built, or forgotten): its rows change nothing,
        #: so ``select`` does not even look for HTTP heads in them. A subset of ``_done`` (a key in
        #: it never gets a direction again); unset where unsure (partitions merged by ``absorb``).
        self._gone = np.zeros(1024, dtype=bool)
        #: Directions that sent a SYN but no payload yet, by key: (ISN, birth). Their Direction is
        #: built at the first payload row (most SYNs never carry one we parse: Python stays off them).
        self._syn = SynTable()
        #: By direction key: ever put in ``_dirs`` or ``_syn`` (keys of ``_entered`` not marked yet).
        #: A key leaves both only when it is done, so for keys not done: known == built or pending.
        self._known = np.zeros(1024, dtype=bool)
        self._entered: list[int] = []
        self._births = 0  # directions (and pending SYNs) so far: their order is the table's order
        self._base = 0  # ``_births`` before the current ``_tcp_rows`` call

    def _mark_done(self, key: int) -> None:
        done = self._done
        if 0 <= key < done.size:  # the common case, without ``marked``'s checks
            done[key] = True
        else:
            self._done = marked(done, key)
        self._fresh_done.add(key)

    def _finish_unparsed(self, cols: PacketColumns, pf: PacketFlows, keys: np.ndarray) -> None:
        """Mark done, without Python per row, the new directions whose first segment ends their parsing
        (``keys``: every batch row's direction key)."""
        if self._entered:
            self._known = marked(self._known, self._entered)
            self._entered = []
        if self.limit < HEAD:
            return
        ok = (cols.status == ST_OK) & (pf.flow_id >= 0) & (cols.proto == TCP)
        found = unparsed_keys(cols, keys, ok & ~is_done(self._done, keys), self.dns_ports)
        fresh = found[~is_done(self._known, found)].tolist()  # not built, no SYN kept
        if fresh:
            self._done = marked(self._done, fresh)
            self._gone = marked(self._gone, fresh)
            self._skipped(fresh)

    def _skipped(self, keys: list[int]) -> None:
        """Hook: direction keys finished by :meth:`_finish_unparsed` (as if parsed one row at a time)."""

    def _early_syns(
        self, cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, keys: np.ndarray
    ) -> np.ndarray:
        """Settle, in bulk, the payload-less SYNs that come before any other row of their flow in
        ``rows`` (``keys``: every batch row's direction key); returns the places of the rows left
        for the loop.

        Such a SYN's verdict depends only on the state before this call: only rows of its own
        direction change whether that direction is built or done, and only rows of its flow read
        the pending-SYN table (``_forget`` of the peer). Later rows of the flow go through the loop.
        """
        early = leading_syns(cols, pf, rows)
        if not early.any():
            return np.arange(rows.size)
        at = np.flatnonzero(early)
        keys = keys[rows[at]]
        dirs, syn, base = self._dirs, self._syn, self._base
        held = self._maybe_held(unique_first(keys)[0])  # only these can be in ``_dirs`` or ``_syn``
        built = [k for k in held.tolist() if (k >> 1, bool(k & 1)) in dirs]
        if built:  # a SYN on a built direction may restart its stream: the loop reads it
            on_built = np.isin(keys, built)
            early[at[on_built]] = False
            at, keys = at[~on_built], keys[~on_built]
        keys, first = unique_first(keys)  # later SYNs of a direction change nothing
        at = at[first]
        keep = ~is_done(self._done, keys)
        keys, at = keys[keep], at[keep]
        maybe = np.isin(keys, held)
        sure = keys[~maybe]  # not pending yet, for sure: kept in bulk
        syn.put(sure, cols.seq[rows[at[~maybe]]], at[~maybe] + base)
        added = sure.tolist()
        for k, seq, j in zip(keys[maybe].tolist(), cols.seq[rows[at[maybe]]].tolist(), at[maybe].tolist(),
                             strict=True):  # fmt: skip
            if k not in syn:
                syn[k] = (seq, base + j)
                added.append(k)
        self._entered += added
        self._early(added)
        return np.flatnonzero(~early)

    def _maybe_held(self, keys: np.ndarray) -> np.ndarray:
        """The ``keys`` (unique) that may be in ``_dirs`` or ``_syn``: known before this ``add``, or
        entered since (every way into either table appends to ``_entered``)."""
        held = keys[is_done(self._known, keys)]
        if self._entered:
            held = np.union1d(held, np.intersect1d(keys, np.asarray(self._entered, dtype=np.int64)))
        return held

    def _early(self, keys: list[int]) -> None:
        """Hook: direction keys whose first SYN :meth:`_early_syns` kept."""

    def _pending_syn(self, k: int, seq: int, birth: int) -> None:
        """The first SYN of a direction not built yet (later ones change nothing while no byte came)."""
        self._syn[k] = (seq, birth)
        self._entered.append(k)
