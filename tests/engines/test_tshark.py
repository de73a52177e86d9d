"""The tshark engine: errors, DNS details on captures made here, and the corpus against its oracle."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import dns.message
import dns.rrset
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from helix_audit.engines.tshark import (
    NOT_FOUND,
    TsharkNotFound,
    TsharkWarning,
    run_tshark,
    tshark_observations,
)
from helix_audit.errors import InputError
from helix_audit.model import DnsQuery, DnsResponse, HttpConnect, HttpRequest, WebSocketUpgrade
from tests.conftest import CORPUS, needs_corpus, oracle

has_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


def _udp_dns(wire: bytes, sport: int, dport: int) -> Ether:
    client, server = ("10.0.0.2", "10.0.0.53") if dport == 53 else ("10.0.0.53", "10.0.0.2")
    return Ether() / IP(src=client, dst=server) / UDP(sport=sport, dport=dport) / wire


def _query() -> dns.message.Message:
    return dns.message.make_query("api.hydra.example", "A", use_edns=0)


def _cname_response(query: dns.message.Message) -> dns.message.Message:
    resp = dns.message.make_response(query)
    resp.answer = [
        dns.rrset.from_text("api.hydra.example.", 300, "IN", "CNAME", "edge.cdn.example."),
        dns.rrset.from_text("edge.cdn.example.", 60, "IN", "CNAME", "e1.cdn.example."),
        dns.rrset.from_text("e1.cdn.example.", 20, "IN", "A", "192.0.2.7", "192.0.2.8"),
    ]
    resp.additional = [dns.rrset.from_text("ns1.cdn.example.", 99, "IN", "A", "198.51.100.1")]
    return resp


@pytest.fixture
def dns_pcap(tmp_path: Path) -> Path:
    query = _query()
    packets = [
        _udp_dns(query.to_wire(), 40000, 53),
        _udp_dns(_cname_response(query).to_wire(), 53, 40000),
        _udp_dns(dns.message.make_query("gone.hydra.example", "AAAA").to_wire(), 40001, 53),
    ]
    for p, t in zip(packets, (1.0, 1.25, 2.0), strict=True):
        p.time = 1_700_000_000 + t
    path = tmp_path / "dns.pcap"
    wrpcap(str(path), packets)
    return path


def test_missing_tshark_is_an_input_error(
    monkeypatch: pytest.MonkeyPatch, dns_pcap: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(TsharkNotFound) as info:
        tshark_observations(dns_pcap)
    assert isinstance(info.value, InputError)
    assert str(info.value) == NOT_FOUND


@has_tshark
def test_unusable_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^.*nope\.pcap: no such file$"):
        run_tshark(tmp_path / "nope.pcap")
    text = tmp_path / "notes.txt"
    text.write_text("not a capture at all\n" * 10)
    with pytest.raises(InputError, match=r"notes\.txt: tshark cannot read it"):
        run_tshark(text)
    with pytest.raises(InputError, match=r"no such TLS key log file"):
        run_tshark(text, keylog=tmp_path / "keys.log")


@has_tshark
def test_bad_decode_as_is_an_input_error(dns_pcap: Path) -> None:
    with pytest.raises(InputError, match=r"dns\.pcap: tshark refused the options: .*selector"):
        run_tshark(dns_pcap, decode_as=["tcp.port==x,foo"])


@has_tshark
def test_dns_cname_chain_ttls_and_opt(dns_pcap: Path) -> None:
    obs = tshark_observations(dns_pcap)
    assert [o.type for o in obs] == ["dns_query", "dns_response", "dns_query"]
    query, resp, aaaa = obs
    assert isinstance(query, DnsQuery) and isinstance(resp, DnsResponse) and isinstance(aaaa, DnsQuery)
    assert (query.frame, query.qname, query.qtype, query.qnames, query.protocol) == (
        1, "api.hydra.example", "A", ("api.hydra.example",), "dns",
    )  # fmt: skip
    assert (query.src, query.sport, query.dst, query.dport, query.transport) == (
        "10.0.0.2",
        40000,
        "10.0.0.53",
        53,
        "udp",
    )
    assert query.ts == pytest.approx(1_700_000_001.0)
    wire = dns.message.from_wire(bytes(rdpcap(str(dns_pcap))[1][UDP].payload))  # the answer as sent
    expected = [
        (rrset.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rrset.rdtype), rrset.ttl,
         rd.to_text().rstrip("."))
        for rrset in wire.answer for rd in rrset
    ]  # fmt: skip
    assert [(a.name, a.rtype, a.ttl, a.data) for a in resp.answers] == expected
    assert (resp.frame, resp.id, resp.rcode, resp.qname) == (2, query.id, "NOERROR", "api.hydra.example")
    assert (aaaa.qname, aaaa.qtype) == ("gone.hydra.example", "AAAA")


@has_tshark
def test_two_dns_messages_in_one_tcp_segment(tmp_path: Path) -> None:
    """Each message is its own observation; answers do not bleed from one message into the next."""
    first = _cname_response(_query()).to_wire()
    second = dns.message.make_response(dns.message.make_query("other.example", "A"))
    second.set_rcode(dns.rcode.NXDOMAIN)
    wire = b"".join(len(m).to_bytes(2, "big") + m for m in (first, second.to_wire()))
    pkt = Ether() / IP(src="10.0.0.53", dst="10.0.0.2") / TCP(sport=53, dport=40002, flags="PA", seq=1) / wire
    path = tmp_path / "tcp.pcap"
    wrpcap(str(path), [pkt])
    resp = [o for o in tshark_observations(path) if isinstance(o, DnsResponse)]
    assert [(r.qname, r.rcode, len(r.answers), r.transport) for r in resp] == [
        ("api.hydra.example", "NOERROR", 4, "tcp"), ("other.example", "NXDOMAIN", 0, "tcp"),
    ]  # fmt: skip


@has_tshark
def test_damaged_file_keeps_what_tshark_printed(dns_pcap: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(dns_pcap.read_bytes()[:-20])  # the last packet ends mid-record
    with pytest.warns(TsharkWarning, match=r"cut\.pcap: tshark exited \d+ after frame 2"):
        obs = tshark_observations(cut)
    assert [(o.type, o.frame) for o in obs] == [("dns_query", 1), ("dns_response", 2)]


# --------------------------------------------------------------------------------------------------
# The corpus, against the oracle (a full `tshark -T json` dump made by another script).
# --------------------------------------------------------------------------------------------------

ORACLE_FILES = [
    "ndpi__http_connect.pcap",
    "ndpi__android.pcap",
    "ndpi__quic-v2.pcapng",
    "ndpi__tls_port_80.pcapng",
    "ndpi__tls_ech.pcapng",
    "suri__basic_websockets.pcap",
    "suri__dns-tcp-multirequest-buffer.pcap",
    "suri__http-connect-fail__input.pcap",
    "suri__tls-duplicate-hello__input.pcap",
    "tcpdump__dns_tcp_8053.pcap",
    "zeek__Teredo.pcap",
    "zeek__docker-http-upgrade.pcap",
    "zeek__geneve-vxlan-dns-truncated.pcap",
    "zeek__mdns.pcap",
    "zeek__ssl-v2.pcap",
    "zeek__wstunnel-ssh.pcap",
    "zeek__tls-fragmented-handshake.pcap.gz",
    "zeek__icmp-destunreach-udp.pcap",
]


def _oracle_view(o: dict) -> dict[str, list]:
    ws_streams = {r["tcp_stream"] for r in o["http_101_responses"]}
    over_tcp = [d for d in o["http_requests"] if "tcp" in d["protocols"].split(":")]
    return {
        "dns": sorted((d["frame"], tuple(d["names"])) for d in o["dns_queries"] if not d["inside_icmp"]),
        "hello": sorted((d["frame"], (d["sni"] or [None])[0], d["quic"]) for d in o["tls_client_hellos"]),
        "http": sorted(
            (d["frame"], m, u) for d in over_tcp for m, u in zip(d["method"], d["uri"], strict=False)
        ),
        "ws": sorted((d["frame"], d["tcp_stream"] in ws_streams) for d in o["websocket_upgrades"]),
    }


def _engine_view(obs: list) -> dict[str, list]:
    names: dict[int, tuple[str, ...]] = defaultdict(tuple)
    for o in obs:
        if isinstance(o, DnsQuery):
            names[o.frame] += o.qnames  # the oracle lists a frame's messages together
    return {
        "dns": sorted(names.items()),
        "hello": sorted((o.frame, o.sni, o.quic) for o in obs if o.type == "tls_client_hello"),
        "http": sorted((o.frame, o.method, o.path) for o in obs if isinstance(o, HttpRequest)),
        "ws": sorted((o.frame, o.status == 101) for o in obs if isinstance(o, WebSocketUpgrade)),
    }


@has_tshark
@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", ORACLE_FILES)
def test_corpus_matches_the_oracle(name: str) -> None:
    assert CORPUS is not None
    o = oracle(name)
    obs = tshark_observations(CORPUS / name, decode_as=o["tshark"]["decode_as"])
    assert _engine_view(obs) == _oracle_view(o)


@has_tshark
@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", ["ndpi__http_connect.pcap", "suri__http-connect-fail__input.pcap"])
def test_connect_carries_the_proxy_status(name: str) -> None:
    assert CORPUS is not None
    obs = [o for o in tshark_observations(CORPUS / name) if isinstance(o, HttpConnect)]
    assert obs
    frames = rdpcap(str(CORPUS / name))
    for c in obs:
        assert c.response_frame is not None and c.target == c.path
        status_line = bytes(frames[c.response_frame - 1][TCP].payload).split(b"\r\n", 1)[0]
        assert status_line.split()[1] == str(c.status).encode()


@has_tshark
@needs_corpus
@pytest.mark.corpus
def test_damaged_corpus_file_warns() -> None:
    assert CORPUS is not None
    out = run_tshark(CORPUS / "ndpi__fuzz-2021-10-13.pcap")
    assert out.returncode == oracle("ndpi__fuzz-2021-10-13.pcap")["tshark"]["rc"] != 0
    assert out.warnings and out.warnings[0].startswith(
        f"{CORPUS / 'ndpi__fuzz-2021-10-13.pcap'}: tshark exited"
    )
