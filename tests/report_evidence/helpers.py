"""Helpers for the evidence tests: real flow tables, hand-built findings, captures read back by scapy
and tshark (never by our own reader), and small captures written with scapy or by hand (pcapng)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from scapy.utils import RawPcapNgReader, RawPcapReader

from helix_audit.capture import open_capture
from helix_audit.decode.core import Decoder
from helix_audit.flows.table import FlowTable
from helix_audit.model import Evidence, Finding, Severity

HAVE_TSHARK = shutil.which("tshark") is not None
needs_tshark = pytest.mark.skipif(not HAVE_TSHARK, reason="tshark is not installed")


def flow_table(paths: Sequence[Path]) -> pd.DataFrame:
    """The finished flow DataFrame of ``paths`` (capture -> decode -> FlowTable, as the pipeline does)."""
    table = FlowTable([str(p) for p in paths])
    for p in paths:
        decoder = Decoder()
        for batch in open_capture(p).batches(4096):
            table.add(decoder.decode(batch))
    flows, _ = table.finish()
    return flows


def finding(
    fid: str, flow_ids: Sequence[int] = (), frames: dict[str, Sequence[int]] | None = None
) -> Finding:
    evidence = tuple(Evidence(file, tuple(fr), 0.0, 0.0) for file, fr in (frames or {}).items())
    return Finding(
        id=fid,
        kind="unexpected_destination",
        severity=Severity.HIGH,
        component="sandbox",
        src="10.0.0.1",
        src_port=None,
        dst="192.0.2.1",
        dst_port=443,
        transport="tcp",
        hostname="example-exfil.net",
        message="test",
        evidence=evidence,
        flow_ids=tuple(int(f) for f in flow_ids),
    )


def read_packets(path: Path) -> list[tuple[int, bytes, int, int]]:
    """(ts_ns, bytes, wirelen, linktype) of every packet, read by scapy's raw readers."""
    reader = RawPcapReader(str(path))
    out = []
    if isinstance(reader, RawPcapNgReader):
        for data, m in reader:
            ts = (m.tshigh << 32) | m.tslow
            out.append((ts * 10**9 // m.tsresol, data, m.wirelen, m.linktype))
    else:
        scale = 1 if reader.nano else 1000
        for data, m in reader:
            out.append((m.sec * 10**9 + m.usec * scale, data, m.wirelen, reader.linktype))
    reader.close()
    return out


def tshark_fields(
    path: Path, *fields: str, display_filter: str = "", extra: Sequence[str] = ()
) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), *extra, "-T", "fields", *(a for f in fields for a in ("-e", f))]
    if display_filter:
        cmd += ["-Y", display_filter]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode in (0, 2), run.stderr
    return [line.split("\t") for line in run.stdout.splitlines() if line]


def capture_magic(path: Path) -> bytes:
    return path.read_bytes()[:4]


# ----------------------------------------------------------------------------- pcapng by hand (RFC draft)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(path: Path, linktypes: Sequence[int], packets: Sequence[tuple[int, int, bytes]]) -> Path:
    """A pcapng file with one IDB per link type (ns if_tsresol) and (iface, ts_ns, data) packets."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for lt in linktypes:
        out.append(_block(1, struct.pack("<HHI", lt, 0, 65535) + struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4))
    for iface, ts, data in packets:
        out.append(
            _block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)
        )
    path.write_bytes(b"".join(out))
    return path
