"""Capture-quality warnings on inputs: short snaplen, one-sided traffic."""

from __future__ import annotations

from pathlib import Path

import dpkt

from helix_audit.pipeline import scan


def test_one_sided_capture_is_flagged(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "ndpi__iphone.pcap"
    both = scan([src])
    assert not any("one-sided" in w for w in both.inputs[0].warnings)
    client = bytes([192, 168, 2, 17])  # what a one-way mirror of the phone's uplink shows
    out = tmp_path / "uplink.pcap"
    with open(src, "rb") as f, open(out, "wb") as g:
        reader = dpkt.pcap.Reader(f)
        writer = dpkt.pcap.Writer(g, snaplen=65535, linktype=reader.datalink())
        for ts, buf in reader:
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP) and ip.src == client:
                writer.writepkt(buf, ts=ts)
    one = scan([out])
    warning = [w for w in one.inputs[0].warnings if "one-sided" in w]
    assert len(warning) == 1 and "TCP flows show packets in one direction only" in warning[0]


def test_short_snaplen_is_flagged(corpus: Path) -> None:
    info = scan([corpus / "tcpdump__quic_handshake_truncated.pcap"]).inputs[0]
    assert any(w.startswith("snaplen 256:") for w in info.warnings)
    assert not any("snaplen" in w for w in scan([corpus / "ndpi__android.pcap"]).inputs[0].warnings)
