"""Evidence captures of real corpus flows, checked against tshark's own view of each TCP stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_audit.report.evidence import write_evidence
from tests.conftest import CORPUS, needs_corpus

from .helpers import finding, flow_table, needs_tshark, read_packets, tshark_fields

FILES = [
    "ndpi__443-firefox.pcap",  # microsecond pcap, one long TLS stream
    "ndpi__iphone.pcap",  # many streams and DNS lookups
    "ndpi__tls_ech.pcapng",  # pcapng, nanosecond if_tsresol
    "tcpdump__tcp-handshake-nano.pcap",  # nanosecond pcap, Linux cooked capture
    "zeek__pcapng-multi-interface.pcapng",  # two interfaces, mixed resolutions
    "ndpi__http_connect.pcap",
    "ndpi__sites.pcapng",  # 22 interfaces
    "zeek__wstunnel-ssh.pcap",
    "ndpi__dns_fragmented.pcap",  # IP fragments: Wireshark needs them to reassemble the datagrams
]


def _streams(flows, limit: int = 4) -> list[tuple[int, str]]:
    """(flow_id, tshark filter) of a few TCP/UDP flows: the first, the largest, one in between, the last."""
    tcp = flows["transport"].eq("tcp") & flows["tcp_stream"].notna()
    udp = flows["transport"].eq("udp") & flows["udp_stream"].notna()
    rows = flows[(tcp | udp) & ((flows["orig_pkts"] + flows["resp_pkts"]) > 0)]
    if rows.empty:
        return []
    big = rows.loc[(rows["orig_pkts"] + rows["resp_pkts"]).idxmax()]
    picks = [rows.iloc[0], big, rows.iloc[len(rows) // 2], rows.iloc[-1]]
    out = []
    for r in picks:
        proto = str(r["transport"])
        out.append((int(r["flow_id"]), f"{proto}.stream eq {int(r[f'{proto}_stream'])}"))
    return list(dict.fromkeys(out))[:limit]


@needs_corpus
@needs_tshark
@pytest.mark.corpus
@pytest.mark.tshark
@pytest.mark.parametrize("name", FILES)
def test_evidence_is_exactly_the_stream_plus_dns_frames(name: str, tmp_path: Path) -> None:
    assert CORPUS is not None
    src = CORPUS / name
    flows = flow_table([src])
    streams = _streams(flows)
    assert streams, f"{name}: no TCP/UDP stream to test with"
    dns_rows = tshark_fields(src, "frame.number", display_filter="dns && !icmp && !icmpv6")
    dns = [int(r[0]) for r in dns_rows][:5]
    findings = [finding(f"F{i}", [fid], {str(src): dns}) for i, (fid, _) in enumerate(streams)]
    written = write_evidence(findings, flows, [src], tmp_path)
    assert set(written) == {f.id for f in findings}
    packets = read_packets(src)
    rows = tshark_fields(src, "frame.number", "ip.reassembled_in", "ipv6.reassembled.in", extra=["-2"])
    fragments = [(int(r[0]), r[1] or (r[2] if len(r) > 2 else "")) for r in rows]
    for f, (_, stream) in zip(findings, streams, strict=True):
        expect = {int(r[0]) for r in tshark_fields(src, "frame.number", display_filter=stream)}
        expect |= {n for n, into in fragments if into and int(into) in expect}  # the flow's datagrams
        expect |= set(dns)
        got = read_packets(written[f.id])
        want = [packets[n - 1] for n in sorted(expect)]
        assert len(got) == len(want), f"{name} stream {stream}"
        assert [(t, b, w) for t, b, w, _ in got] == [(t, b, w) for t, b, w, _ in want]
        # tshark opens it and sees the whole stream again (index 0 in the evidence capture)
        rows = tshark_fields(written[f.id], "frame.number", "frame.len")
        assert len(rows) == len(want)
        assert sum(int(r[1]) for r in rows) == sum(w for _, _, w, _ in want)


@needs_corpus
@needs_tshark
@pytest.mark.corpus
@pytest.mark.tshark
def test_timestamps_keep_their_resolution(tmp_path: Path) -> None:
    assert CORPUS is not None
    for name, magic in (
        ("tcpdump__tcp-handshake-nano.pcap", b"\x4d\x3c\xb2\xa1"),
        ("ndpi__443-firefox.pcap", b"\xd4\xc3\xb2\xa1"),
    ):
        src = CORPUS / name
        flows = flow_table([src])
        fid = int(flows["flow_id"].iloc[0])
        out = write_evidence([finding("ts", [fid])], flows, [src], tmp_path / name)["ts"]
        assert out.read_bytes()[:4] == magic
        first = int(flows["first_frame"].iloc[0])
        want = tshark_fields(src, "frame.time_epoch", display_filter=f"frame.number == {first}")[0][0]
        assert tshark_fields(out, "frame.time_epoch")[0][0] == want
