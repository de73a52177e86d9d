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
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..model import Anomaly, HttpRequest, HttpResponse, Observation
from .extract import Extractor
from .httpobs import HttpPairing
from .quicconn import QuicTracker
from .streams import Direction, Meta
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


def _gkey(key: int, remap: np.ndarray) -> int:
    return int(remap[key >> 1]) * 2 + (key & 1)


def _conflicts(state: PartitionExtractor, part: PartitionExtractor, remap: np.ndarray) -> set[int] | None:
    """Global keys of the partition's directions to drop, or None when the partition must be re-run."""
    drop: set[int] = set()
    for key in part.touched:
        g = _gkey(key, remap)
        if _dkey(g) in state._dirs or g in state._syn:  # noqa: SLF001  still parsed in the running state
            return None
        if g < state._done.size and state._done[g]:  # noqa: SLF001
            drop.add(g)
    for fid in part._quic.touched:  # noqa: SLF001
        if int(remap[fid]) in state._quic.conns:  # noqa: SLF001
            return None
    kept = {_gkey(k, remap) for k in part.touched} - drop
    for g in kept:
        peer = state._dirs.get(_dkey(g ^ 1))  # noqa: SLF001
        if peer is not None and peer.tunnel:
            return None  # a 2xx here would open the tunnel in the serial run
    if drop:
        responded = {_gkey(t, remap) for t, o in zip(part.tags, part.observations, strict=True)
                     if t >= 0 and isinstance(o, HttpResponse)}  # fmt: skip
        if any((g ^ 1) in drop and g in responded for g in kept):
            return None  # the local peer (dropped) may have steered how a response was read
    return drop


def _with_flow(meta: Meta, remap: np.ndarray) -> Meta:
    fid = int(remap[meta.flow_id])
    if hasattr(meta, "_replace"):
        return meta._replace(flow_id=fid)  # a NamedTuple
    return dataclasses.replace(meta, flow_id=fid)  # type: ignore[type-var]


def _remap_dir(d: Direction, remap: np.ndarray) -> Direction:
    d.meta = _with_flow(d.meta, remap)
    return d


def _kept(tag: int, remap: np.ndarray, drop: set[int]) -> bool:
    return tag < 0 or _gkey(tag, remap) not in drop


def absorb(state: PartitionExtractor, part: PartitionExtractor, remap: np.ndarray) -> bool:
    """Fold ``part`` (the next partition, extracted from an empty state) into ``state``.

    ``remap``: part's provisional flow ids -> state's (``FlowTable.merge``). Returns False, leaving
    ``state`` untouched, when the result could differ from the serial one (re-run the partition).
    """
    drop = _conflicts(state, part, remap)
    if drop is None:
        return False
    tags = _global_tags(np.asarray(part.tags, dtype=np.int64), remap)
    keep = [
        i for i, (t, g) in enumerate(zip(part.tags, tags.tolist(), strict=True)) if t < 0 or g not in drop
    ]
    kept = part.observations if len(keep) == len(tags) else [part.observations[i] for i in keep]
    state.observations.extend(_remapped(kept, remap))
    state.tags.extend(tags.tolist() if len(keep) == len(tags) else tags[keep].tolist())
    for tag, anomaly in zip(part.atags, part.anomalies, strict=True):
        if _kept(tag, remap, drop):
            state.anomalies.append(anomaly)
            state.atags.append(tag if tag == UDP_TAG else _global_tag(tag, remap))
    born = state._births  # noqa: SLF001  the partition's directions come after the state's, in its order
    for (fid, from_a), d in part._dirs.items():  # noqa: SLF001
        g = _gkey(fid * 2 + int(from_a), remap)
        if g not in drop:
            d.birth += born
            state._dirs[(g >> 1, bool(g & 1))] = _remap_dir(d, remap)  # noqa: SLF001
            state._entered.append(g)  # noqa: SLF001
            if d.partial is not None:
                state._partial.add((g >> 1, bool(g & 1)))  # noqa: SLF001
    for key, (seq, birth) in part._syn.items():  # noqa: SLF001
        g = _gkey(key, remap)
        if g not in drop:
            state._syn[g] = (seq, birth + born)  # noqa: SLF001
            state._entered.append(g)  # noqa: SLF001
            if key in part._orphans:  # noqa: SLF001
                state._orphans[g] = part._orphans[key]  # noqa: SLF001
    state._births += part._births  # noqa: SLF001
    _relink_peers(state, part, remap, drop)
    for key in np.flatnonzero(part._done).tolist():  # noqa: SLF001
        state._mark_done(_gkey(int(key), remap))  # noqa: SLF001
    for fid, conn in part._quic.conns.items():  # noqa: SLF001
        if conn.meta is not None:
            conn.meta = _with_flow(conn.meta, remap)
        state._quic.conns[int(remap[fid])] = conn  # noqa: SLF001
    return True


def _global_tags(tags: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """``_global_tag`` of every tag at once."""
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


def _global_tag(tag: int, remap: np.ndarray) -> int:
    return _gkey(tag, remap) if tag >= 0 else quic_tag(int(remap[-2 - tag]))


def _relink_peers(
    state: PartitionExtractor, part: PartitionExtractor, remap: np.ndarray, drop: set[int]
) -> None:
    """Peers as the serial run links them: the other direction's object if it was in the table."""
    local = {_gkey(fid * 2 + int(a), remap) for fid, a in part._dirs}  # noqa: SLF001
    for g in local - drop:
        d = state._dirs[(g >> 1, bool(g & 1))]  # noqa: SLF001
        other = g ^ 1
        if other in local:
            continue  # both local: the partition linked them as the serial run did
        peer = state._dirs.get((other >> 1, bool(other & 1)))  # noqa: SLF001
        d.peer = peer if (other not in drop and peer is not None) else (None if other in drop else d.peer)
        if peer is not None and other not in drop:
            peer.peer = d
    pending = {_gkey(k, remap) for k in part._syn}  # noqa: SLF001
    gone = {_gkey(k, remap) for k in part.touched} - local - pending - drop
    tunnels = {_gkey(k, remap) for k in part.gone_tunnel}
    for g in gone:  # finished in the partition: a peer left in the table points at it, as serially
        stub = SimpleNamespace(tunnel=g in tunnels, peer=None)
        peer = state._dirs.get(_dkey(g ^ 1))  # noqa: SLF001
        if peer is not None:
            peer.peer = stub  # type: ignore[assignment]
        elif g ^ 1 in state._syn:  # noqa: SLF001  a peer not built yet: it links to the stub when built
            state._orphans[g ^ 1] = stub  # noqa: SLF001


__all__ = ["PartitionExtractor", "absorb"]
