"""Every corpus capture against the tshark/capinfos oracle."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helix_audit.capture import open_capture
from tests.conftest import CORPUS_FILES, needs_corpus, oracle

pytestmark = [needs_corpus, pytest.mark.corpus]
RESOLUTION = {6: "us", 9: "ns"}
# capinfos stops with an error on these; what we read instead, and why.
DAMAGED = {
    # a fuzzed header (version 2.0: caplen/wirelen swapped, as in libpcap); the file ends 2 bytes
    # into the second record header. capinfos counts 1 packet and errors out.
    "ndpi__fuzz-2021-10-13.pcap": "truncated record header at byte 237 (after frame 1)",
}


def read_all(path: Path) -> tuple:
    cap = open_capture(path)
    cols = [
        np.concatenate([getattr(b, c) for b in cap.batches(batch_size=97)] or [np.zeros(0, np.int64)])
        for c in ("frame", "ts_ns", "caplen", "wirelen", "linktype", "offset")
    ]
    return cap, cols


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_matches_oracle_header_and_count(corpus: Path, name: str) -> None:
    cap, (frame, _ts, caplen, _wire, linktype, offset) = read_all(corpus / name)
    o = oracle(name)
    info = cap.info
    assert info.packets == int(o["capinfos"]["Number of packets"]) == len(frame)
    assert info.format == o["header"]["format"]
    assert info.gzip == o["header"]["gzip"]
    assert info.endian == o["header"]["endian"]
    assert list(info.link_types) == o["header"]["linktypes"]
    if info.format == "pcap":
        assert info.ts_resolution == o["header"]["ts_resolution"]
    else:
        assert [i.resolution for i in cap.interfaces] == [RESOLUTION[r] for r in o["header"]["if_tsresol"]]
    assert list(frame) == list(range(1, len(frame) + 1))
    assert set(linktype.tolist()) <= set(info.link_types)
    assert np.all(offset + caplen <= cap.data.shape[0])
    if name in DAMAGED:
        assert any(w.startswith(DAMAGED[name]) for w in info.warnings), info.warnings
        assert o["capinfos"]["rc"] != 0
    else:
        assert info.warnings == ()


def test_pcapng_frames_per_interface(corpus: Path) -> None:
    name = "zeek__pcapng-multi-interface.pcapng"
    cap = open_capture(corpus / name)
    ts = np.concatenate([b.ts_ns for b in cap.batches()])
    assert len(ts) == sum(oracle(name)["summary"]["frames_per_interface"].values())


def _epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


TSHARK_FILES = [
    "ndpi__android.pcap",
    "ndpi__sites.pcapng",  # 22 interfaces, if_tsresol 6 and 9 mixed
    "zeek__pcapng-multi-interface.pcapng",
    "tcpdump__tcp-handshake-nano.pcap",
    "zeek__tls-fragmented-handshake.pcap.gz",
    "suri__dump_mtu300.pcap",  # caplen < wirelen
    "ndpi__quic_0RTT.pcap",  # pcapng named .pcap
]


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", TSHARK_FILES)
def test_every_frame_matches_tshark(corpus: Path, name: str) -> None:
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(corpus / name),
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.len",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    rows = [(int(f), _epoch_ns(t), int(c), int(w)) for f, t, c, w in zip(*[iter(out)] * 4, strict=True)]
    _, (frame, ts, caplen, wirelen, _lt, _off) = read_all(corpus / name)
    ours = list(zip(frame.tolist(), ts.tolist(), caplen.tolist(), wirelen.tolist(), strict=True))
    assert ours == rows
