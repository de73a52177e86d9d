"""Several files in one audit: a flow split across rotated captures is one flow."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pandas as pd

from helix_audit.pipeline import scan

COUNTED = [
    "transport",
    "orig_h",
    "orig_p",
    "resp_h",
    "resp_p",
    "orig_pkts",
    "resp_pkts",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "history",
    "syn",
    "synack",
]


def split_pcap(src: Path, parts: int, out: Path) -> list[Path]:
    """Cut a classic little-endian pcap into ``parts`` rotated files, record boundaries kept."""
    data = src.read_bytes()
    head, off, records = data[:24], 24, []
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        records.append(data[off : off + 16 + caplen])
        off += 16 + caplen
    size = -(-len(records) // parts)
    paths = []
    for i in range(parts):
        path = out / f"rot-{i:02d}.pcap"
        path.write_bytes(head + b"".join(records[i * size : (i + 1) * size]))
        paths.append(path)
    return paths


def test_flows_across_rotated_files_equal_the_whole(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "ndpi__android.pcap"
    whole = scan([src])
    files = split_pcap(src, 3, tmp_path)
    rotated = scan([tmp_path])  # a directory: files come in time order
    assert [i.path for i in rotated.inputs] == [str(p) for p in files]
    assert sum(i.packets for i in rotated.inputs) == whole.inputs[0].packets
    a = whole.flows[COUNTED].sort_values(COUNTED[:5]).reset_index(drop=True)
    b = rotated.flows[COUNTED].sort_values(COUNTED[:5]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    spanning = rotated.flows[rotated.flows["files"].str.contains("|", regex=False)]
    assert len(spanning) > 0  # some flow really was split, and is one flow
    names = sorted(o.to_record().get("qname", "") for o in whole.observations if o.type == "dns_query")
    names_rot = sorted(o.to_record().get("qname", "") for o in rotated.observations if o.type == "dns_query")
    assert names == names_rot


def test_gzip_capture_reads_like_the_plain_one(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "ndpi__http_connect.pcap"
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    plain, packed = scan([src]), scan([gz])
    assert packed.inputs[0].gzip and packed.inputs[0].packets == plain.inputs[0].packets
    strip = [{k: v for k, v in o.to_record().items() if k != "file"} for o in plain.observations]
    strip_gz = [{k: v for k, v in o.to_record().items() if k != "file"} for o in packed.observations]
    assert strip == strip_gz


def test_bad_checksums_still_count(tmp_path: Path) -> None:
    """Captures from hosts with checksum offload carry wrong checksums: packets still count."""
    src = Path(__file__).resolve().parents[2] / "sample_pcaps" / "compliant_sandbox.pcap"
    data = bytearray(src.read_bytes())
    off, broken = 24, 0
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        pkt = off + 16
        if caplen >= 54 and data[pkt + 12 : pkt + 14] == b"\x08\x00" and data[pkt + 23] in (6, 17):
            ihl = (data[pkt + 14] & 0x0F) * 4
            l4 = pkt + 14 + ihl
            at = l4 + (16 if data[pkt + 23] == 6 else 6)
            data[at : at + 2] = b"\xde\xad"  # a wrong TCP/UDP checksum
            data[pkt + 24 : pkt + 26] = b"\xbe\xef"  # and a wrong IPv4 header checksum
            broken += 1
        off = pkt + caplen
    bad = tmp_path / "offload.pcap"
    bad.write_bytes(bytes(data))
    good, worse = scan([src]), scan([bad])
    assert broken > 20
    pd.testing.assert_frame_equal(good.flows[COUNTED], worse.flows[COUNTED])
    strip = [{k: v for k, v in o.to_record().items() if k != "file"} for o in good.observations]
    strip_bad = [{k: v for k, v in o.to_record().items() if k != "file"} for o in worse.observations]
    assert strip == strip_bad
