"""``absorb`` settles keys in bulk (numpy): it must leave exactly the state the per-key merge left.

The reference below is the per-key ``absorb`` it replaced (one Python step per direction key), run on
random states and partitions: directions done, still parsed or pending in the running state, peers
local, the state's own or dropped, tunnels, orphans, HTTP responses next to a dropped peer.
"""

from __future__ import annotations

import pickle
import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from helix_audit.arrays import sorted_unique
from helix_audit.model import HttpResponse, Observation
from helix_audit.protocols.partition import PartitionExtractor, _in, absorb
from helix_audit.protocols.streams import Direction, Meta
from helix_audit.protocols.wire import pack_dirs, pack_objects, unpack_dirs, unpack_objects


def _gkey(key: int, remap: np.ndarray) -> int:
    return int(remap[key >> 1]) * 2 + (key & 1)


def _dk(g: int) -> tuple[int, bool]:
    return (g >> 1, bool(g & 1))


def _reference(state: PartitionExtractor, part: PartitionExtractor, remap: np.ndarray) -> bool:
    """The per-key merge (TCP keys only: no QUIC here)."""
    drop: set[int] = set()
    for key in part.touched:
        g = _gkey(key, remap)
        if _dk(g) in state._dirs or g in state._syn:
            return False
        if g < state._done.size and state._done[g]:
            drop.add(g)
    kept = {_gkey(k, remap) for k in part.touched} - drop
    for g in kept:
        peer = state._dirs.get(_dk(g ^ 1))
        if peer is not None and peer.tunnel:
            return False
    if drop:
        responded = {_gkey(t, remap) for t, o in zip(part.tags, part.observations, strict=True)
                     if t >= 0 and isinstance(o, HttpResponse)}  # fmt: skip
        if any((g ^ 1) in drop and g in responded for g in kept):
            return False
    for t, o in zip(part.tags, part.observations, strict=True):
        if t < 0 or _gkey(t, remap) not in drop:
            state.observations.append(o)
            state.tags.append(t if t < 0 else _gkey(t, remap))
    born = state._births
    for (fid, a), d in part._dirs.items():
        g = _gkey(fid * 2 + int(a), remap)
        if g not in drop:
            d.birth += born
            state._dirs[_dk(g)] = d
            state._entered.append(g)
            if d.partial is not None:
                state._partial.add(_dk(g))
    for key, (seq, birth) in part._syn.items():
        g = _gkey(key, remap)
        if g not in drop:
            state._syn[g] = (seq, birth + born)
            state._entered.append(g)
            if key in part._orphans:
                state._orphans[g] = part._orphans[key]
    state._births += part._births
    local = {_gkey(f * 2 + int(a), remap) for f, a in part._dirs}
    for g in local - drop:
        d = state._dirs[_dk(g)]
        if g ^ 1 in local:
            continue
        peer = state._dirs.get(_dk(g ^ 1))
        d.peer = peer if (g ^ 1 not in drop and peer is not None) else (None if g ^ 1 in drop else d.peer)
        if peer is not None and g ^ 1 not in drop:
            peer.peer = d
    pending = {_gkey(k, remap) for k in part._syn}
    gone = {_gkey(k, remap) for k in part.touched} - local - pending - drop
    tunnels = {_gkey(k, remap) for k in part.gone_tunnel}
    for g in gone:
        stub = SimpleNamespace(tunnel=g in tunnels, peer=None)
        peer = state._dirs.get(_dk(g ^ 1))
        if peer is not None:
            peer.peer = stub  # type: ignore[assignment]
        elif g ^ 1 in state._syn:
            state._orphans[g ^ 1] = stub
    for key in np.flatnonzero(part._done).tolist():
        state._mark_done(_gkey(int(key), remap))
    return True


def _direction(fid: int, rng: random.Random) -> Direction:
    d = Direction(Meta("f", 1, 0.0, "a", 1, "b", 2, "tcp", fid), 64, False)
    d.tunnel = rng.random() < 0.2
    d.partial = (b"GET", (1,), 0) if rng.random() < 0.1 else None
    d.birth = rng.randrange(100)
    return d


def _obs(cls: type, fid: int | None) -> Observation:
    o = cls("x", 1, 0.0, "f", "a", 1, "b", 2, "tcp", fid)
    assert isinstance(o, Observation)
    return o


def _fill(ext: PartitionExtractor, keys: list[int], rng: random.Random, part: bool) -> None:
    """Random directions, pending SYNs and done keys over ``keys``; a partition also touches them."""
    for k in keys:
        r = rng.random()
        if r < 0.3:
            ext._dirs[_dk(k)] = _direction(k >> 1, rng)
        elif r < 0.55:
            ext._syn[k] = (rng.randrange(2**32), rng.randrange(1000))
            if part and rng.random() < 0.2:
                ext._orphans[k] = SimpleNamespace(tunnel=rng.random() < 0.5, peer=None)
        elif r < 0.8:
            ext._done[k] = True
            if part and rng.random() < 0.3:
                ext.gone_tunnel.add(k)
        if part:
            ext.touched.add(k)
    for (f, a), d in ext._dirs.items():  # peers linked where both directions are built
        d.peer = ext._dirs.get((f, not a))
    ext._births = len(keys)
    for _ in range(rng.randrange(20)):
        k = rng.choice(keys) if part and rng.random() < 0.8 else -1
        cls = HttpResponse if rng.random() < 0.5 else Observation
        ext.observations.append(_obs(cls, k >> 1 if k >= 0 else None))
        ext.tags.append(k)


def _snapshot(ext: PartitionExtractor) -> tuple[Any, ...]:
    where = {id(d): k for k, d in ext._dirs.items()}

    def peer(p: object) -> object:
        return None if p is None else where.get(id(p), ("stub", getattr(p, "tunnel", None)))

    dirs = [(k, d.birth, d.partial, d.tunnel, peer(d.peer)) for k, d in ext._dirs.items()]
    orphans = {k: v.tunnel for k, v in ext._orphans.items()}
    done = np.flatnonzero(ext._done).tolist()
    return (dirs, list(ext._syn.items()), orphans, set(ext._partial), sorted(ext._entered), done,
            ext._births, [id(o) for o in ext.observations], list(ext.tags))  # fmt: skip


@pytest.mark.parametrize("seed", range(150))
def test_absorb_matches_per_key_merge(seed: int) -> None:
    rng = random.Random(seed)
    nflows = rng.randrange(1, 40)
    state, part = PartitionExtractor(), PartitionExtractor()
    keys = list(range(2 * nflows))
    _fill(state, rng.sample(keys, rng.randrange(len(keys) + 1)), rng, part=False)
    local = list(range(2 * rng.randrange(1, 30)))
    remap = np.array(rng.sample(range(nflows + 30), len(local) // 2), dtype=np.int64)
    _fill(part, local, rng, part=True)
    a_state, a_part = pickle.loads(pickle.dumps((state, part)))
    b_state, b_part = pickle.loads(pickle.dumps((state, part)))
    ids = {}  # observations compared by identity: map each copy's objects to a shared index
    for i, (x, y) in enumerate(zip(a_part.observations, b_part.observations, strict=True)):
        ids[id(x)], ids[id(y)] = i, i
    for x in a_part.observations:  # the reference leaves flow ids alone: compare them apart
        x.__dict__["flow_id"] = None if x.flow_id is None else int(remap[x.flow_id])
    ok = _reference(a_state, a_part, remap)
    assert absorb(b_state, b_part, remap) is ok
    if ok:
        sa, sb = _snapshot(a_state), _snapshot(b_state)
        assert sa[:-2] == sb[:-2]
        assert [ids.get(i) for i in sa[-2]] == [ids.get(i) for i in sb[-2]]
        assert sa[-1] == sb[-1]
        assert [o.flow_id for o in a_state.observations] == [o.flow_id for o in b_state.observations]


def test_unique_and_in_match_numpy() -> None:
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 50, 1000):
        a, b = rng.integers(0, 300, n), rng.integers(0, 300, n // 2 + 1)
        assert sorted_unique(a).tolist() == np.unique(a).tolist()  # what absorb uses
        assert _in(a, b).tolist() == np.isin(a, b).tolist()
        assert _in(a, b[:0]).tolist() == [False] * n


def test_wire_round_trip_keeps_objects_and_peers() -> None:
    rng = random.Random(3)
    dirs = {(f, a): _direction(f, rng) for f in range(5) for a in (False, True)}
    for (f, a), d in dirs.items():
        d.peer = dirs[(f, not a)] if f % 2 else SimpleNamespace(tunnel=bool(f % 4), peer=None)  # type: ignore[assignment]
        d.stream.buf += b"abc"
        d.ts_of[f] = 1.5
    back = pickle.loads(pickle.dumps(pack_dirs(dirs)))
    got = unpack_dirs(back)
    assert list(got) == list(dirs)
    for k, d in dirs.items():
        g = got[k]
        assert (g.meta, g.tunnel, g.partial, g.birth, g.ts_of, g.stream.buf, g.stream.limit) == (
            d.meta, d.tunnel, d.partial, d.birth, d.ts_of, d.stream.buf, d.stream.limit)  # fmt: skip
        if k[0] % 2:
            assert g.peer is got[(k[0], not k[1])]
        else:
            assert g.peer is not None and g.peer.tunnel == bool(k[0] % 4) and g.peer.peer is None
    objs = [_obs(HttpResponse, 3), _obs(Observation, None)]
    objs[0].__dict__["status"] = 200
    out = unpack_objects(pickle.loads(pickle.dumps(pack_objects(objs))))
    assert [type(o) for o in out] == [type(o) for o in objs]
    assert [o.__dict__ for o in out] == [o.__dict__ for o in objs]
    with pytest.raises(ValueError):
        unpack_objects([(Observation, (1, 2))])  # a field count that does not match
