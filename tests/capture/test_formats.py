"""pcap variants and pcapng block types on synthetic files, checked against scapy's readers."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from helix_audit.capture import Capture, open_capture

from . import builders as b

NS = 1_000_000_000


def columns(path: Path | Capture) -> dict[str, list[int]]:
    cap = path if isinstance(path, Capture) else open_capture(path)
    batches = list(cap.batches(batch_size=3))
    cols = ("frame", "ts_ns", "caplen", "wirelen", "linktype")
    out = {c: np.concatenate([getattr(x, c) for x in batches]).tolist() for c in cols}
    out["bytes"] = [x.packet(i) for x in batches for i in range(len(x))]
    return out


@pytest.mark.parametrize(
    ("endian", "magic", "hdr", "mul", "res"),
    [
        ("<", 0xA1B2C3D4, 16, 1000, "us"),
        (">", 0xA1B2C3D4, 16, 1000, "us"),
        ("<", 0xA1B23C4D, 16, 1, "ns"),
        (">", 0xA1B23C4D, 16, 1, "ns"),
        ("<", 0xA1B2CD34, 24, 1000, "us"),
    ],
)
def test_pcap_variants(tmp_path: Path, endian: str, magic: int, hdr: int, mul: int, res: str) -> None:
    pad = bytes(8) if hdr == 24 else b""
    recs = [
        struct.pack(endian + "IIII", 100 + i, 999 * i, 60 + i, 70 + i) + pad + bytes([i]) * (60 + i)
        for i in range(7)
    ]
    path = tmp_path / "v.pcap"
    path.write_bytes(b.pcap_header(endian, magic, linktype=0x1000_0000 | 101) + b"".join(recs))
    cap = open_capture(path)
    cols = columns(path)
    assert cap.info.endian == ("big" if endian == ">" else "little")
    assert cap.info.ts_resolution == res and cap.info.link_types == (101,)
    assert cols["ts_ns"] == [(100 + i) * NS + 999 * i * mul for i in range(7)]
    assert cols["caplen"] == [60 + i for i in range(7)] and cols["wirelen"] == [70 + i for i in range(7)]
    assert cols["bytes"] == [bytes([i]) * (60 + i) for i in range(7)]
    assert cols["frame"] == list(range(1, 8))


def test_pcap_before_2_3_has_lengths_swapped(tmp_path: Path) -> None:
    path = tmp_path / "old.pcap"
    rec = struct.pack("<IIII", 1, 0, 1500, 60) + bytes(60)  # wirelen first, as pcap 2.2 wrote
    path.write_bytes(b.pcap_header(version=(2, 2)) + rec * 3)
    cols = columns(path)
    assert cols["caplen"] == [60] * 3 and cols["wirelen"] == [1500] * 3


def test_pcapng_sections_interfaces_and_blocks(tmp_path: Path) -> None:
    frame = b.ETH_FRAME
    first = (
        b.shb()
        + b.idb(1, tsresol=9)
        + b.other(4)
        + b.idb(101, tsresol=0x80 | 20, tsoffset=10)
        + b.epb(0, 5 * NS + 7, frame)
        + b.epb(1, 3 << 20, frame[:40], wirelen=60)
        + b.other(5)
        + b.other(0xBAD)
        + b.other(10)
        + b.pb(0, 8 * NS, frame)
    )
    second = (
        b.shb(">") + b.idb(113, snaplen=50, e=">") + b.spb(frame, e=">") + b.epb(0, 2_000_000, frame, e=">")
    )
    path = tmp_path / "multi.pcapng"
    path.write_bytes(first + second)
    cap = open_capture(path)
    cols = columns(cap)
    info = cap.info
    assert info.format == "pcapng" and info.endian == "little" and info.packets == 5
    assert info.link_types == (1, 101, 113)
    assert [i.resolution for i in cap.interfaces] == ["ns", "2^-20", "us"]
    assert cols["linktype"] == [1, 101, 1, 113, 113]
    assert cols["ts_ns"] == [5 * NS + 7, 13 * NS, 8 * NS, 0, 2 * NS]
    assert cols["caplen"] == [60, 40, 60, 50, 60]  # the SPB is cut to the interface's snaplen
    assert cols["wirelen"] == [60, 60, 60, 60, 60]
    assert cols["bytes"][1] == frame[:40] and cols["bytes"][3] == frame[:50]


def test_pcapng_matches_scapy_reader(tmp_path: Path) -> None:
    scapy_utils = pytest.importorskip("scapy.utils")
    from scapy.layers.l2 import Ether

    path = tmp_path / "s.pcapng"
    pkts = [Ether(dst="02:00:00:00:00:01") / bytes(range(i + 10)) for i in range(9)]
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i / 8
    scapy_utils.wrpcapng(str(path), pkts)
    cols = columns(path)
    assert cols["bytes"] == [bytes(p) for p in pkts]
    assert cols["ts_ns"] == [round(float(p.time) * 1e6) * 1000 for p in pkts]
