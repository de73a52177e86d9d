"""The observations of one audit, split by type once and joined to their flows once.

Classification reads the observation list many times, each time for a few types (names: TLS and
HTTP; outcomes: CONNECT and alerts; lookups: DNS; findings: WebSocket upgrades). Filtering 10^5
objects with ``isinstance`` in every consumer costs more than the work on the few thousand it
keeps, so :class:`Observed` walks the list once, remembers each type's positions, and serves a
subset (capture order) and its flow ids on demand, each computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import pandas as pd

from ..model import Observation
from .flowcodes import FlowCodes

FlowKey = tuple[str, str, int, str, int]


def flow_index(flows: pd.DataFrame) -> dict[FlowKey, int]:
    """(transport, a, a_port, b, b_port) -> flow_id, both directions; for observations without one."""
    index: dict[FlowKey, int] = {}
    cols = zip(
        flows["flow_id"],
        flows["transport"],
        flows["orig_h"],
        flows["orig_p"],
        flows["resp_h"],
        flows["resp_p"],
        strict=True,
    )
    for fid, tr, oh, op, rh, rp in cols:
        index[(tr, oh, int(op), rh, int(rp))] = int(fid)
        index[(tr, rh, int(rp), oh, int(op))] = int(fid)
    return index


def observation_flows(
    flows: pd.DataFrame, observations: Sequence[Observation], index: dict[FlowKey, int] | None = None
) -> list[int | None]:
    """The flow id of every observation (its own ``flow_id``, else found by its 5-tuple in
    ``index``, :func:`flow_index` of ``flows`` built when not given)."""
    out: list[int | None] = list(map(_FLOW_ID, observations))
    if None not in out:
        return out
    if index is None:
        index = flow_index(flows)
    for i, obs in enumerate(observations):
        if out[i] is None:
            out[i] = index.get((obs.transport, obs.src, obs.sport, obs.dst, obs.dport))
    return out


_FLOW_ID = attrgetter("flow_id")


class Observed:
    """Typed views of one observation list (which must not change while this is in use)."""

    def __init__(self, flows: pd.DataFrame, observations: Sequence[Observation]) -> None:
        self.flows = flows
        self.all = observations
        self.codes = FlowCodes(flows)  # the flow table's text columns as integer codes
        kinds = np.fromiter(map(type, observations), dtype=object, count=len(observations))
        codes, types = pd.factorize(kinds)
        order = np.argsort(codes, kind="stable")
        cuts = np.searchsorted(codes[order], np.arange(len(types) + 1))
        self._positions = {t: order[cuts[c] : cuts[c + 1]] for c, t in enumerate(types)}
        self._subsets: dict[tuple[type, ...], list[Any]] = {}
        self._flow_ids: dict[tuple[type, ...], list[int | None]] = {}
        self._type_ids: dict[type, list[int | None]] = {}  # per concrete type, its positions' order
        self._index: dict[FlowKey, int] | None = None
        self._dense: bool | None = None  # flow ids are row positions (see :meth:`rows`)
        self._row_index: pd.Index | None = None

    def rows(self, fids: Sequence[int]) -> np.ndarray:
        """The row (position in ``flows``) of each flow id, -1 for an id the table lacks.

        The flow stage numbers flows 0.. in table order, so an id is its row: checked once per
        table, then no hashing (a pandas Index of 10^5 ids cost ~7 ms to build and probe each
        time names and WebSocket findings asked: ~12 ms an audit of the benchmark). Other
        tables: one shared Index."""
        ids = np.asarray(fids, dtype=np.int64)
        if self._dense is None:
            col = self.flows["flow_id"].to_numpy()
            self._dense = col.dtype.kind in "iu" and bool((col == np.arange(col.shape[0])).all())
        if self._dense:
            return np.where((ids >= 0) & (ids < len(self.flows)), ids, -1)
        if self._row_index is None:
            self._row_index = pd.Index(self.flows["flow_id"].to_numpy())
        return self._row_index.get_indexer(ids)

    def of(self, *types: type) -> list[Any]:
        """Every observation that is an instance of one of ``types``, in list order."""
        found = self._subsets.get(types)
        if found is None:
            found = self._subsets[types] = self._gather(types)
        return found

    def flow_ids(self, *types: type) -> list[int | None]:
        """:func:`observation_flows` of :meth:`of` ``(*types)``; each concrete type's ids are
        read once, however many of the subsets asked for contain it."""
        found = self._flow_ids.get(types)
        if found is None:
            found = self._flow_ids[types] = self._ids(types)
        return found

    def _ids(self, types: tuple[type, ...]) -> list[int | None]:
        kinds = [t for t in self._positions if issubclass(t, types)]
        if len(kinds) == 1 and kinds[0] in self._type_ids:
            return self._type_ids[kinds[0]]
        parts = [self._positions[t] for t in kinds]
        if len(kinds) > 1 and all(t in self._type_ids for t in kinds):  # the cached ones, merged
            rank = np.argsort(np.concatenate(parts), kind="stable")
            merged = [f for t in kinds for f in self._type_ids[t]]
            return list(itemgetter(*rank.tolist())(merged))
        subset = self.of(*types)
        if not subset:
            return []
        ids: list[int | None] = list(map(_FLOW_ID, subset))
        if None in ids:
            if self._index is None:
                self._index = flow_index(self.flows)
            ids = observation_flows(self.flows, subset, self._index)
        self._split(kinds, parts, ids)
        return ids

    def _split(self, kinds: list[type], parts: list[np.ndarray], ids: list[int | None]) -> None:
        """Each concrete type's flow ids, out of ``ids`` (those of :meth:`of` of them all)."""
        if len(kinds) == 1:
            self._type_ids.setdefault(kinds[0], ids)
            return
        rank = np.argsort(np.concatenate(parts), kind="stable")  # subset[i] is concat[rank[i]]
        at = np.empty_like(rank)
        at[rank] = np.arange(rank.shape[0])
        start = 0
        for t, pos in zip(kinds, parts, strict=True):
            mine = at[start : start + pos.shape[0]].tolist()
            self._type_ids.setdefault(t, list(itemgetter(*mine)(ids)) if len(mine) > 1 else [ids[mine[0]]])
            start += pos.shape[0]

    def flow_of(self, obs: Observation) -> int | None:
        """One observation's flow id, as :meth:`flow_ids` gives it (its own, else by 5-tuple): for
        a reader that reads the ids in its own pass over :meth:`of`, then :meth:`remember` s them."""
        fid = obs.flow_id
        if fid is None:
            if self._index is None:
                self._index = flow_index(self.flows)
            fid = self._index.get((obs.transport, obs.src, obs.sport, obs.dst, obs.dport))
        return fid

    def remember(self, types: tuple[type, ...], ids: list[int | None]) -> None:
        """Keep ``ids``, :meth:`flow_of` each of :meth:`of` ``(*types)``, as :meth:`flow_ids`
        ``(*types)`` (and each concrete type's part of them): the objects are not walked again."""
        if types in self._flow_ids or len(ids) != len(self.of(*types)):
            return
        self._flow_ids[types] = ids
        kinds = [t for t in self._positions if issubclass(t, types)]
        if ids:
            self._split(kinds, [self._positions[t] for t in kinds], ids)

    def _gather(self, types: tuple[type, ...]) -> list[Any]:
        parts = [pos for t, pos in self._positions.items() if issubclass(t, types)]
        if not parts:
            return []
        pos = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts), kind="stable")
        if len(pos) == 1:
            return [self.all[int(pos[0])]]
        return list(itemgetter(*pos.tolist())(self.all))


def observed(flows: pd.DataFrame, observations: Sequence[Observation] | Observed) -> Observed:
    """``observations`` as an :class:`Observed` (built unless it already is one)."""
    return observations if isinstance(observations, Observed) else Observed(flows, observations)
