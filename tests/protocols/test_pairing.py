"""``HttpPairing.pair`` (its short cut for flows of two heads included) pairs as the plain walk
does: per flow, in frame order (stable), each response but a 100 answers the oldest request left."""

from __future__ import annotations

import random
from collections import Counter, deque

import pytest

from helix_audit.model import HttpConnect, HttpRequest, HttpResponse, Observation, WebSocketUpgrade
from helix_audit.protocols.httpobs import HttpPairing

_HEAD = {"ts": 0.0, "file": "f", "src": "a", "sport": 1, "dst": "b", "dport": 2, "transport": "tcp"}


def _obs(rng: random.Random, flow: int, frame: int) -> Observation:
    kind = rng.choice(["req", "ws", "connect", "resp", "resp"])
    head = {**_HEAD, "flow_id": flow, "frame": frame, "frames": (frame,)}
    if kind == "resp":
        return HttpResponse(type="http_response", status=rng.choice([100, 101, 200, 403, 500]), **head)
    if kind == "ws":
        return WebSocketUpgrade(type="websocket_upgrade", method="GET", path="/ws", **head)
    if kind == "connect":
        return HttpConnect(type="http_connect", method="CONNECT", target="h:443", **head)
    return HttpRequest(type="http_request", method="GET", path="/", **head)


def _plain(pairing: HttpPairing) -> None:
    """The walk for every flow (no short cut)."""
    observations = pairing.observations
    for indexes in pairing.by_flow.values():
        waiting: deque[int] = deque()
        for idx in sorted(indexes, key=lambda k: observations[k].frame):
            obs = observations[idx]
            if isinstance(obs, HttpRequest):
                waiting.append(idx)
            elif isinstance(obs, HttpResponse) and waiting and not 100 <= obs.status < 101:
                pairing._answer(waiting.popleft(), obs)  # noqa: SLF001
    pairing.by_flow.clear()


@pytest.mark.parametrize("seed", range(6))
def test_pairs_as_the_plain_walk(seed: int) -> None:
    rng = random.Random(seed)
    items = [_obs(rng, rng.randrange(300 + 200 * (seed % 3)), rng.randrange(40)) for _ in range(1000)]
    fast, plain = HttpPairing([]), HttpPairing([])
    for obs in items:
        fast.handle(obs)
        plain.handle(obs)
    fast.pair()
    _plain(plain)
    assert fast.observations == plain.observations
    assert sum(getattr(o, "response_frame", None) is not None for o in fast.observations) > 50
    sizes = Counter(Counter(o.flow_id for o in items).values())
    assert sizes[2] > 20 and sum(n for size, n in sizes.items() if size > 2) > 20  # both ways ran
