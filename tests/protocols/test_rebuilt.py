"""``rebuilt`` (the pairing's answer to a WebSocket upgrade or CONNECT) gives what ``build`` of the
merged fields gave: equal objects with the same instance dict, key order included (orjson writes it)."""

from __future__ import annotations

import pickle

import pytest

from helix_audit.model import HttpConnect, HttpRequest, WebSocketUpgrade
from helix_audit.protocols.build import build, observation_maker, rebuilt
from helix_audit.protocols.streams import Meta

META = Meta("f.pcap", 7, 1.5, "10.0.0.1", 40000, "10.0.0.2", 80, "tcp", 3)
REQUEST = ("GET", "h", "/ws", "HTTP/1.1", "ua")


def _made() -> list[HttpRequest]:
    ws = observation_maker(WebSocketUpgrade)(META, (7,), "websocket_upgrade", *REQUEST)
    connect = observation_maker(HttpConnect)(META, (7, 8), "http_connect", *REQUEST, target="h:443")
    by_init = WebSocketUpgrade(
        type="websocket_upgrade", frame=9, ts=2.0, file="g", src="a", sport=1, dst="b", dport=2, transport="t"
    )
    return [ws, connect, by_init, pickle.loads(pickle.dumps(ws)), pickle.loads(pickle.dumps(connect))]


@pytest.mark.parametrize(
    "changes",
    [{"accepted": True, "status": 101, "response_frame": 12}, {"status": 403, "response_frame": None}, {}],
)
def test_rebuilt_equals_build(changes: dict[str, object]) -> None:
    for obj in _made():
        if isinstance(obj, HttpConnect) and "accepted" in changes:
            continue
        want = build(type(obj), {**vars(obj), **changes})
        got = rebuilt(obj, changes)
        assert type(got) is type(want) and got == want and hash(got) == hash(want)
        assert list(vars(got).items()) == list(vars(want).items())
        assert got is not obj and vars(got) is not vars(obj)


def test_rebuilt_unknown_field_raises_like_build() -> None:
    obj = _made()[1]  # HttpConnect has no ``accepted``
    with pytest.raises(TypeError):
        build(type(obj), {**vars(obj), "accepted": True})
    with pytest.raises(TypeError):
        rebuilt(obj, {"accepted": True})
