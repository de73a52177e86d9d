"""Capture-quality warnings on inputs: short snaplen, one-sided traffic."""

from __future__ import annotations

from pathlib import Path

import dpkt
import numpy as np
import pandas as pd

from helix_audit.pipeline import scan
from helix_audit.scanresult import _one_sided


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
    # the counts, as a filter of the flow table gives them (the warning counts by masks)
    flows = one.flows[one.flows["transport"] == "tcp"]
    busy = flows[(flows["orig_pkts"] + flows["resp_pkts"]) >= 2]
    one_way = int(((busy["orig_pkts"] == 0) | (busy["resp_pkts"] == 0)).sum())
    assert f"one-sided traffic: {one_way} of {len(busy)} TCP flows" in warning[0]


def test_one_sided_masks_match_the_frame_filters() -> None:
    """``_one_sided`` on counts at the edges (0, 1, 2 packets a side) and on other transports."""
    rng = np.random.default_rng(7)
    n = 500
    flows = pd.DataFrame(
        {
            "transport": pd.Categorical(rng.choice(["tcp", "udp", "icmp"], n)),
            "orig_pkts": rng.integers(0, 4, n).astype(np.int32),
            "resp_pkts": rng.integers(0, 4, n).astype(np.int32),
        }
    )
    busy, one_way = _one_sided(flows)
    total = flows["orig_pkts"].astype(np.int64) + flows["resp_pkts"]
    want_busy = ((flows["transport"] == "tcp") & (total >= 2)).to_numpy()
    want_one = want_busy & ((flows["orig_pkts"] == 0) | (flows["resp_pkts"] == 0)).to_numpy()
    assert (busy == want_busy).all() and (one_way == want_one).all()
    assert busy.any() and one_way.any()
    assert _one_sided(flows.iloc[:0])[0].shape == (0,)


def test_short_snaplen_is_flagged(corpus: Path) -> None:
    info = scan([corpus / "tcpdump__quic_handshake_truncated.pcap"]).inputs[0]
    assert any(w.startswith("snaplen 256:") for w in info.warnings)
    assert not any("snaplen" in w for w in scan([corpus / "ndpi__android.pcap"]).inputs[0].warnings)
