"""The extractor against tshark's oracle, for every corpus file.

Compared per file: the multiset of DNS/mDNS/LLMNR query names (queries quoted inside ICMP errors
excluded, as the oracle's summary does), of TLS SNI values (TCP and QUIC; None = no SNI extension),
of WebSocket upgrade URIs and CONNECT targets; and the frame of each of them (tshark's frame: the
last segment of a reassembled message).

tshark decodes by port and decode-as; we decode by content. Differences, handled per file:
- decode-as: ``tcp.port==8053,dns`` (tcpdump__dns_tcp_8053) becomes ``Extractor(dns_ports=...)``;
  ``tcp.port==80,tls`` (ndpi__tls_port_80, zeek__ssl-to-http-server) needs nothing: TLS is found by
  its first bytes on any port.
- Tunnels: CONNECT (ndpi__http_connect, zeek__connect-with-header) and SOCKS (zeek__socks-with-ssl,
  ndpi__tls_heur__vmess-websocket) are followed by the extractor; VXLAN/Geneve/Teredo by decode.
- UNDECODED: frames the decode stage cannot decode (802.11 link types) carry nothing for us; the
  oracle's items in such frames are excluded, only for the files listed, so the test tightens by
  itself when decode learns those link types.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from helix_audit.capture import open_capture
from helix_audit.decode.core import decode_batch
from helix_audit.decode.interface import ST_OK
from helix_audit.flows.table import FlowTable
from helix_audit.model import (
    DnsQuery,
    HttpConnect,
    HttpResponse,
    Observation,
    TlsClientHello,
    WebSocketUpgrade,
)
from helix_audit.protocols.extract import DNS_PORTS, Extractor
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus, oracle

UNDECODED = {
    "zeek__radiotap.pcap": "802.11 + radiotap (DLT 127) is not decoded",
    "zeek__wlanmon.pcap": "802.11 monitor mode (DLT 105) is not decoded",
}


def decode_as_ports(orc: dict[str, Any]) -> tuple[int, ...]:
    """Extra DNS ports from the oracle's decode-as list (``tcp.port==8053,dns``)."""
    ports = []
    for rule in orc["tshark"]["decode_as"]:
        field, proto = rule.split(",")
        if proto == "dns":
            ports.append(int(field.split("==")[1]))
    return tuple(ports)


def run(name: str, orc: dict[str, Any]) -> tuple[list[Observation], set[int]]:
    assert CORPUS is not None
    flows, undecoded = FlowTable(), set()
    ex = Extractor(dns_ports=DNS_PORTS + decode_as_ports(orc))
    for batch in open_capture(CORPUS / name).batches():
        cols = decode_batch(batch)
        undecoded.update(cols.frame[cols.status != ST_OK].tolist())
        ex.add(cols, flows.add(cols))
    return ex.finish()[0], undecoded


def expected(name: str, orc: dict[str, Any], undecoded: set[int]) -> dict[str, Counter[Any]]:
    skip = undecoded if name in UNDECODED else set()
    hellos = [h for h in orc["tls_client_hellos"] if h["frame"] not in skip and not h.get("inside_icmp")]
    queries = [q for q in orc["dns_queries"] if not q["inside_icmp"] and q["frame"] not in skip]
    upgrades = [w for w in orc["websocket_upgrades"] if w["frame"] not in skip]
    connects = [c for c in orc["http_connect"] if c["frame"] not in skip]
    return {
        "dns": Counter((q["frame"], n) for q in queries for n in q["names"]),
        "sni": Counter((h["frame"], h["sni"][0] if h["sni"] else None, h["quic"]) for h in hellos),
        "websocket": Counter((w["frame"], w["uri"][0]) for w in upgrades),
        "connect": Counter((c["frame"], c["target"][0]) for c in connects),
    }


def found(obs: list[Observation]) -> dict[str, Counter[Any]]:
    return {
        "dns": Counter((o.frame, n) for o in obs if isinstance(o, DnsQuery) for n in o.qnames),
        "sni": Counter((o.frame, o.sni, o.quic) for o in obs if isinstance(o, TlsClientHello)),
        "websocket": Counter((o.frame, o.path) for o in obs if isinstance(o, WebSocketUpgrade)),
        "connect": Counter((o.frame, o.target) for o in obs if isinstance(o, HttpConnect)),
    }


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_matches_tshark(name: str) -> None:
    orc = oracle(name)
    obs, undecoded = run(name, orc)
    want, got = expected(name, orc, undecoded), found(obs)
    for kind in want:
        assert got[kind] == want[kind], (kind, dict(want[kind] - got[kind]), dict(got[kind] - want[kind]))
    if name in UNDECODED:
        assert sum(want["dns"].values()) < orc["summary"]["dns_query_names"], (
            "decode now handles it: drop the entry"
        )


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize(
    "name", sorted({n for n in CORPUS_FILES if oracle(n)["websocket_upgrades"]}) if CORPUS else []
)
def test_websocket_upgrades_are_paired_with_their_101(name: str) -> None:
    orc = oracle(name)
    obs, _ = run(name, orc)
    frames_101 = {r["frame"] for r in orc["http_101_responses"]}
    for up in (o for o in obs if isinstance(o, WebSocketUpgrade)):
        assert up.accepted == (up.response_frame in frames_101)
        if up.accepted:
            assert any(isinstance(o, HttpResponse) and o.frame == up.response_frame for o in obs)


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    [
        "ndpi__quic_frags_ch_out_of_order_same_packet_craziness.pcapng",
        "ndpi__teams.pcap",
        "suri__dns-tcp-multirequest-buffer.pcap",
        "ndpi__http_ua_splitted_in_two_pkts.pcapng",
    ],
)
def test_small_batches_give_the_same_observations(name: str) -> None:
    assert CORPUS is not None
    results = []
    for size in (None, 5):
        flows, ex = FlowTable(), Extractor()
        cap = open_capture(CORPUS / name)
        for batch in cap.batches(size) if size else cap.batches():
            cols = decode_batch(batch)
            ex.add(cols, flows.add(cols))
        results.append(ex.finish())
    assert results[0] == results[1]
