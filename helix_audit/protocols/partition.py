"""Merging the extractor of a later partition into the true running state, exactly or not at all.

A partition (a byte range of a capture, or a file) is extracted by a :class:`PartitionExtractor`
that starts empty. That equals the serial run for every TCP direction and QUIC flow whose state was
*empty* where the partition starts. ``absorb`` checks this per direction and flow, using the flow
table's remap of the partition's provisional ids onto the running table's ids:

- the running state never saw the direction: the partition's result is the serial one; keep it;
- the running state finished and forgot it: serial skips its later rows; drop what the partition
  made from them (observations and anomalies are tagged with the direction they came from);
- the running state still parses it (a stream start, HTTP keep-alive heads, a QUIC handshake, a
  CONNECT tunnel through its peer): the partition's result may differ; ``absorb`` refuses
  (returns False) and the caller re-runs that partition serially on the running state instead.

So a merged result is always the serial result; only the speed depends on where the cuts fall.
HTTP request/response pairing runs once, at ``finish``, over the merged observations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from itertools import compress
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..arrays import sorted_unique
from ..model import Anomaly, HttpRequest, HttpResponse, Observation
from .extract import Extractor
from .httpobs import HttpPairing
from .keystate import marked
from .quicconn import QuicTracker
from .selection import is_done
from .streams import Direction, Meta, _tuple_new
from .wire import pack_dirs, pack_objects, unpack_dirs, unpack_objects

UDP_TAG = -1  # stateless (UDP DNS): always kept


def quic_tag(flow_id: int) -> int:
    return -2 - flow_id


class _TaggedQuic(QuicTracker):
    def __init__(self, owner: PartitionExtractor) -> None:
        super().__init__(owner.observations, owner.anomalies)
        self.owner = owner
        self.touched: set[int] = set()

    def add(self, datagram: bytes, meta: Meta) -> None:
        self.touched.add(meta.flow_id)
        self.owner.current = quic_tag(meta.flow_id)
        try:
            super().add(datagram, meta)
        finally:
            self.owner.tag()


class PartitionExtractor(Extractor):
    """An Extractor that remembers where each observation and anomaly came from.

    ``tags[i]`` / ``atags[i]``: direction key (flow_id * 2 + from_a) for TCP, ``quic_tag(flow)`` for
    QUIC, ``UDP_TAG`` for stateless UDP DNS. ``touched``: TCP direction keys handed to the parser.
    """

    _quic: _TaggedQuic

    def __init__(self, limit: int = 64 * 1024, dns_ports: tuple[int, ...] | None = None) -> None:
        if dns_ports is None:
            super().__init__(limit)
        else:
            super().__init__(limit, dns_ports)
        self.tags: list[int] = []
        self.atags: list[int] = []
        self.touched: set[int] = set()
        self.gone_tunnel: set[int] = set()  # directions deleted here while their ``tunnel`` was set
        self.current = UDP_TAG
        self._quic = _TaggedQuic(self)
        self._new: list[tuple[tuple[int, bool], Direction]] = []

    def tag(self) -> None:
        n = len(self.observations) - len(self.tags)
        if n:
            self.tags.extend([self.current] * n)
        n = len(self.anomalies) - len(self.atags)
        if n:
            self.atags.extend([self.current] * n)

    def __getstate__(self) -> dict[str, Any]:
        """What a worker sends back: objects as tuples (see :mod:`.wire`), pairing rebuilt later."""
        state = self.__dict__.copy()
        state["observations"] = pack_objects(self.observations)
        state["anomalies"] = pack_objects(self.anomalies)
        state["_dirs"] = pack_dirs(self._dirs)
        state["_quic"] = (self._quic.conns, self._quic.touched)
        del state["_http"]
        state["_new"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        conns, touched = state.pop("_quic")
        self.__dict__.update(state)
        self.observations = unpack_objects(state["observations"])
        self.anomalies = unpack_objects(state["anomalies"])
        self._dirs = unpack_dirs(state["_dirs"])
        self._http = HttpPairing(self.observations)
        self._quic = _TaggedQuic(self)
        self._quic.conns, self._quic.touched = conns, touched

    def _udp_dns_rows(self, *args):  # noqa: ANN002, ANN202
        self.current = UDP_TAG  # the batch path appends its observations directly: tag them here
        try:
            return super()._udp_dns_rows(*args)
        finally:
            self.tag()

    def _udp_dns(self, *args):  # noqa: ANN002, ANN202
        self.current = UDP_TAG
        try:
            return super()._udp_dns(*args)
        finally:
            self.tag()

    def _tcp(self, cols, pf, i, key, *rest):  # noqa: ANN001, ANN002, ANN202
        k = int(key[0]) * 2 + int(key[1])
        self.touched.add(k)
        self.current = k
        try:
            return super()._tcp(cols, pf, i, key, *rest)
        finally:
            self.tag()

    def add(self, cols, pf):  # noqa: ANN001, ANN201
        """As ``Extractor.add``; also notes directions deleted with ``tunnel`` set (their peers
        in other partitions read that flag)."""
        before = [(k, d) for k, d in self._dirs.items() if d.tunnel]
        self._new = []
        try:
            return super().add(cols, pf)
        finally:
            for (fid, a), d in before + self._new:
                if d.tunnel and self._dirs.get((fid, a)) is not d:
                    self.gone_tunnel.add(fid * 2 + int(a))
            self._new = []

    def _pending_syn(self, k: int, seq: int, birth: int) -> None:
        self.touched.add(k)  # handed to the parser (only its ISN is kept)
        super()._pending_syn(k, seq, birth)

    def _early(self, keys: list[int]) -> None:
        self.touched.update(keys)  # as ``_pending_syn``

    def _skipped(self, keys: list[int]) -> None:
        self.touched.update(keys)  # finished unread, as if handed to the parser

    def _new_direction(self, cols, i, key, *rest):  # noqa: ANN001, ANN002, ANN201
        d = super()._new_direction(cols, i, key, *rest)
        self._new.append((key, d))
        return d

    def _internal_error(self, cols, i, exc):  # noqa: ANN001, ANN202
        super()._internal_error(cols, i, exc)
        self.tag()

    def finish(self) -> tuple[list[Observation], list[Anomaly]]:
        """As ``Extractor.finish``; HTTP pairing is rebuilt from the (merged) observation list."""
        self._http.by_flow.clear()
        for idx, obs in enumerate(self.observations):
            if isinstance(obs, HttpRequest | HttpResponse):
                self._http.by_flow.setdefault(obs.flow_id, []).append(idx)
        return super().finish()


def _dkey(g: int) -> tuple[int, bool]:
    return (g >> 1, bool(g & 1))


def _gkeys(keys: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """Global direction keys of the partition's ``keys`` (>= 0): its flow ids mapped by ``remap``."""
    if not keys.size:
        return keys.astype(np.int64)
    return remap[keys >> 1] * 2 + (keys & 1)


def _int_array(values: Iterable[int], n: int) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64, count=n)


def _dir_keys(dirs: dict[tuple[int, bool], Direction]) -> np.ndarray:
    return _int_array((f * 2 + a for f, a in dirs), len(dirs))


def _in(keys: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Mask: which of ``keys`` are in ``among`` (``np.isin``: no Python per key)."""
    if not keys.size or not among.size:
        return np.zeros(keys.size, dtype=bool)
    return np.isin(keys, among)


def _pending(state: PartitionExtractor, keys: np.ndarray) -> np.ndarray:
    """Mask: which of ``keys`` have a pending SYN in ``state`` (a negative key never has one)."""
    return state._syn.pending(np.maximum(keys, 0)) & (keys >= 0)  # noqa: SLF001


class _Plan:
    """What ``absorb`` needs of the partition, by global direction key, computed once in bulk."""

    def __init__(self, state: PartitionExtractor, part: PartitionExtractor, remap: np.ndarray) -> None:
        self.remap = remap
        self.state_keys = _dir_keys(state._dirs)  # noqa: SLF001  before the partition's are added
        self.touched = _gkeys(_int_array(part.touched, len(part.touched)), remap)
        self.dir_keys = _gkeys(_dir_keys(part._dirs), remap)  # noqa: SLF001  in the table's order
        self.syn_local = part._syn.keys()  # noqa: SLF001
        self.syn_keys = _gkeys(self.syn_local, remap)
        self.tags = _global_tags(np.asarray(part.tags, dtype=np.int64), remap)


def _conflicts(state: PartitionExtractor, part: PartitionExtractor, plan: _Plan) -> np.ndarray | None:
    """Global keys of the partition's directions to drop (sorted), or None when the partition must
    be re-run."""
    touched = plan.touched
    if _in(touched, plan.state_keys).any() or _pending(state, touched).any():
        return None  # still parsed in the running state
    remap = plan.remap
    for fid in part._quic.touched:  # noqa: SLF001
        if int(remap[fid]) in state._quic.conns:  # noqa: SLF001
            return None
    dropped = is_done(state._done, touched)  # noqa: SLF001
    drop = sorted_unique(touched[dropped])
    kept = sorted_unique(touched[~dropped])
    kept = kept[~_in(kept, drop)]  # (a key can be touched twice only through a remap collision)
    dirs = state._dirs  # noqa: SLF001
    tunnels = _int_array((f * 2 + a for (f, a), d in dirs.items() if d.tunnel), -1)
    if _in(kept ^ 1, tunnels).any():
        return None  # a 2xx here would open the tunnel in the serial run
    if drop.size:
        tags = np.asarray(part.tags, dtype=np.int64)
        response = np.fromiter((isinstance(o, HttpResponse) for o in part.observations), dtype=bool,
                               count=len(part.observations))  # fmt: skip
        responded = plan.tags[(tags >= 0) & response]
        if (_in(kept ^ 1, drop) & _in(kept, responded)).any():
            return None  # the local peer (dropped) may have steered how a response was read
    return drop


def _with_flow(meta: Meta, remap: np.ndarray | list[int]) -> Meta:
    fid = int(remap[meta.flow_id])
    if type(meta) is Meta:
        return _tuple_new(Meta, (*meta[:8], fid))  # flow_id is the last field
    if hasattr(meta, "_replace"):
        return meta._replace(flow_id=fid)  # a NamedTuple
    return dataclasses.replace(meta, flow_id=fid)  # type: ignore[type-var]


def absorb(state: PartitionExtractor, part: PartitionExtractor, remap: np.ndarray) -> bool:
    """Fold ``part`` (the next partition, extracted from an empty state) into ``state``.

    ``remap``: part's provisional flow ids -> state's (``FlowTable.merge``). Returns False, leaving
    ``state`` untouched, when the result could differ from the serial one (re-run the partition).
    Keys are handled as numpy arrays; Python runs per direction object moved, not per key.
    """
    remap = np.asarray(remap, dtype=np.int64)
    plan = _Plan(state, part, remap)
    drop = _conflicts(state, part, plan)
    if drop is None:
        return False
    tags = plan.tags
    keep = (np.asarray(part.tags, dtype=np.int64) < 0) | ~_in(tags, drop)
    everything = bool(keep.all())
    kept = part.observations if everything else list(compress(part.observations, keep.tolist()))
    state.observations.extend(_remapped(kept, remap))
    state.tags.extend(tags.tolist() if everything else tags[keep].tolist())
    atags = np.asarray(part.atags, dtype=np.int64)
    gatags = _global_tags(atags, remap)
    akeep = ((atags < 0) | ~_in(gatags, drop)).tolist()
    state.anomalies.extend(compress(part.anomalies, akeep))
    state.atags.extend(compress(gatags.tolist(), akeep))
    born = state._births  # noqa: SLF001  the partition's directions come after the state's, in its order
    dir_keys = plan.dir_keys
    dir_kept = ~_in(dir_keys, drop)
    dirs, partial, final = state._dirs, state._partial, remap.tolist()  # noqa: SLF001
    for g, d, k in zip(dir_keys.tolist(), part._dirs.values(), dir_kept.tolist(), strict=True):  # noqa: SLF001
        if k:
            d.birth += born
            key = (g >> 1, bool(g & 1))
            d.meta = _with_flow(d.meta, final)
            dirs[key] = d
            if d.partial is not None:
                partial.add(key)
    state._entered.extend(dir_keys[dir_kept].tolist())  # noqa: SLF001
    _absorb_syns(state, part, plan, drop, born)
    state._births += part._births  # noqa: SLF001
    _relink_peers(state, part, plan, drop)
    done = _gkeys(np.flatnonzero(part._done), remap).tolist()  # noqa: SLF001
    if done:
        state._done = marked(state._done, done)  # noqa: SLF001
        state._fresh_done.update(done)  # noqa: SLF001  as ``_mark_done`` one key at a time
    for fid, conn in part._quic.conns.items():  # noqa: SLF001
        if conn.meta is not None:
            conn.meta = _with_flow(conn.meta, remap)
        state._quic.conns[int(remap[fid])] = conn  # noqa: SLF001
    return True


def _absorb_syns(
    state: PartitionExtractor, part: PartitionExtractor, plan: _Plan, drop: np.ndarray, born: int
) -> None:
    """The partition's pending SYNs not dropped, with their births after the state's."""
    local, keys = plan.syn_local, plan.syn_keys
    mine = ~_in(keys, drop)
    local, keys = local[mine], keys[mine]
    syn = state._syn  # noqa: SLF001
    items = part._syn  # noqa: SLF001
    seqs, births = items.columns(local)
    births = births + born
    if sorted_unique(keys).size == keys.size and not (keys < 0).any() and not _pending(state, keys).any():
        syn.put(keys, seqs, births)
    else:  # a remap collision: one key at a time, the later one winning as in a dict (a bad key raises)
        for g, seq, birth in zip(keys.tolist(), seqs.tolist(), births.tolist(), strict=True):
            syn[g] = (seq, birth)
    state._entered.extend(keys.tolist())  # noqa: SLF001
    orphans = part._orphans  # noqa: SLF001
    if orphans:
        global_of = dict(zip(local.tolist(), keys.tolist(), strict=True))
        for key in sorted(orphans):
            g = global_of.get(key)
            if g is not None:
                state._orphans[g] = orphans[key]  # noqa: SLF001


def _global_tags(tags: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """Global tag of every tag at once: direction keys and QUIC tags mapped, ``UDP_TAG`` kept."""
    if not remap.size:
        return tags.copy()  # no flows: stateless UDP tags only
    tcp, quic = tags >= 0, tags <= -2
    fid = remap[np.where(tcp, tags >> 1, np.where(quic, -2 - tags, 0))]
    return np.where(tcp, fid * 2 + (tags & 1), np.where(quic, -2 - fid, tags))


def _remapped(observations: list[Observation], remap: np.ndarray) -> list[Observation]:
    """The partition's observations with their flow ids mapped, in place: they were made for this
    merge (unpickled, or built by a partition that is dropped after it) and nobody else holds them."""
    final = remap.tolist()
    n = len(final)
    for obs in observations:
        fid = obs.flow_id
        if fid is not None and 0 <= fid < n:
            obs.__dict__["flow_id"] = final[fid]
    return observations


def _relink_peers(state: PartitionExtractor, part: PartitionExtractor, plan: _Plan, drop: np.ndarray) -> None:
    """Peers as the serial run links them: the other direction's object if it was in the table."""
    dirs = state._dirs  # noqa: SLF001
    local = sorted_unique(plan.dir_keys)
    mine = local[~_in(local, drop)]
    # A direction whose peer is local too was linked by the partition as the serial run did; one
    # whose peer was dropped loses it; one whose peer is the state's own is linked both ways.
    alone = mine[~_in(mine ^ 1, local)]
    lost = _in(alone ^ 1, drop)
    for g in alone[lost].tolist():
        dirs[(g >> 1, bool(g & 1))].peer = None
    alone = alone[~lost]
    for g in alone[_in(alone ^ 1, plan.state_keys)].tolist():
        d, peer = dirs[(g >> 1, bool(g & 1))], dirs[((g ^ 1) >> 1, not (g & 1))]
        d.peer, peer.peer = peer, d
    gone = sorted_unique(plan.touched)
    gone = gone[~_in(gone, np.concatenate([local, plan.syn_keys, drop]))]
    if not gone.size:
        return
    tunnels = set(_gkeys(_int_array(part.gone_tunnel, len(part.gone_tunnel)), plan.remap).tolist())
    held = _in(gone ^ 1, plan.state_keys) | _in(gone ^ 1, mine)
    pending = ~held & _pending(state, gone ^ 1)  # a peer not built yet
    for g, is_held in zip(gone[held | pending].tolist(), held[held | pending].tolist(), strict=True):
        # finished in the partition: a peer left in the table points at it, as serially
        stub = SimpleNamespace(tunnel=g in tunnels, peer=None)
        if is_held:
            dirs[_dkey(g ^ 1)].peer = stub  # type: ignore[assignment]
        else:  # it links to the stub when built
            state._orphans[g ^ 1] = stub  # noqa: SLF001


__all__ = ["PartitionExtractor", "absorb"]
