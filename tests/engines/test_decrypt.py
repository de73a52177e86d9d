"""The point of the tshark engine: with the client's key log, the WebSocket path inside wss:// shows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helix_audit.engines.tshark import tshark_observations
from helix_audit.model import TlsClientHello, WebSocketUpgrade
from tests.engines.lab import HOST, PATH, Session, record_session

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed"),
]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    pytest.importorskip("websockets.sync.server", reason="the websockets package is not installed")
    try:
        return record_session(tmp_path_factory.mktemp("wss"))
    except (PermissionError, RuntimeError) as exc:
        pytest.skip(f"cannot capture on loopback here: {exc}")


def test_capture_holds_the_session(session: Session) -> None:
    assert session.pcap.stat().st_size > 24
    assert (
        "CLIENT_TRAFFIC_SECRET_0" in session.keylog.read_text()
        or "CLIENT_RANDOM" in session.keylog.read_text()
    )


def test_key_log_reveals_the_websocket_upgrade(session: Session) -> None:
    obs = tshark_observations(session.pcap, keylog=session.keylog, decode_as=session.decode_as)
    upgrades = [o for o in obs if isinstance(o, WebSocketUpgrade)]
    assert [u.path for u in upgrades] == [PATH]
    up = upgrades[0]
    assert (up.dst, up.dport, up.transport, up.method) == ("127.0.0.1", session.port, "tcp", "GET")
    assert up.host is not None and up.host.split(":")[0] == HOST
    assert up.accepted is True and up.status == 101 and up.response_frame is not None
    assert up.response_frame > up.frame
    assert up.frames and up.frames[-1] == up.frame


def test_without_the_key_log_only_the_hello_shows(session: Session) -> None:
    obs = tshark_observations(session.pcap, decode_as=session.decode_as)
    assert not [o for o in obs if o.type in ("websocket_upgrade", "http_request", "http_response")]
    hellos = [o for o in obs if isinstance(o, TlsClientHello)]
    assert [(h.sni, h.alpn, h.quic) for h in hellos] == [(HOST, ("http/1.1",), False)]
    assert hellos[0].version == "TLS 1.3"


def test_wrong_key_log_reveals_nothing(session: Session, tmp_path: Path) -> None:
    other = tmp_path / "other.log"
    other.write_text("".join(line[:-9] + "00000000\n" for line in session.keylog.read_text().splitlines()))
    obs = tshark_observations(session.pcap, keylog=other, decode_as=session.decode_as)
    assert not [o for o in obs if o.type == "websocket_upgrade"]
