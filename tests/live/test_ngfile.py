"""The live capture's pcapng writer and the drop statistics read back (no root needed)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from click.testing import CliRunner

from helix_audit import audit
from helix_audit.capture import open_capture
from helix_audit.cli import main
from helix_audit.live import drop_warnings, read_interface_stats
from helix_audit.live.ngfile import PcapngWriter
from helix_audit.live.session import LiveProgress, live_file_name

ETH_IP_UDP = bytes.fromhex(
    "0200000000020200000000010800"  # Ethernet
    "4500001d0001000040110000"
    "0a000001"
    "0a000002"  # IPv4 10.0.0.1 -> 10.0.0.2
    "d43103e800090000"
    "78"  # UDP 54321 -> 1000, 1 byte
)


def _write(path: Path, drops: list[tuple[int, int]] | None) -> Path:
    w = PcapngWriter(path, [("eth0", 1, 65535), ("wlan1", 1, 65535)], bpf="udp")
    for i in range(5):
        w.write(i % 2, 1_795_000_000_123_456_789 + i * 1000, ETH_IP_UDP, len(ETH_IP_UDP) + 3 * (i == 4))
    if drops is None:
        w.f.close()
        return path
    w.close([(i, 1, 2, recv, drop) for i, (recv, drop) in enumerate(drops)])
    return path


def test_written_file_reads_back_with_nanoseconds_and_interfaces(tmp_path: Path) -> None:
    cap = open_capture(_write(tmp_path / "a.pcapng", [(3, 0), (2, 0)]))
    (batch,) = list(cap.batches())
    assert len(batch) == 5 and cap.info.ts_resolution == "ns" and cap.info.link_types == (1, 1)
    assert (
        int(batch.ts_ns[0]) == 1_795_000_000_123_456_789 and int(batch.ts_ns[4]) == 1_795_000_000_123_460_789
    )
    assert batch.packet(0) == ETH_IP_UDP and int(batch.wirelen[4]) == len(ETH_IP_UDP) + 3
    assert [i.name for i in cap.interfaces] == ["eth0", "wlan1"]


def test_interface_stats_and_drop_warnings(tmp_path: Path) -> None:
    clean = _write(tmp_path / "clean.pcapng", [(3, 0), (2, 0)])
    assert [(s.name, s.received, s.dropped) for s in read_interface_stats(clean)] == [
        ("eth0", 3, 0),
        ("wlan1", 2, 0),
    ]
    assert drop_warnings(clean) == []
    dropped = _write(tmp_path / "drops.pcapng", [(10, 7), (2, 0)])
    (warning,) = drop_warnings(dropped)
    assert warning.startswith("kernel dropped 7 of 10 packets on eth0")
    assert read_interface_stats(_write(tmp_path / "no-isb.pcapng", None)) == []
    assert read_interface_stats(tmp_path / "missing.pcapng") == []
    (tmp_path / "junk.pcapng").write_bytes(b"\x0a\x0d\x0d\x0a" + b"\xff" * 60)
    assert read_interface_stats(tmp_path / "junk.pcapng") == []


def test_truncated_isb_is_ignored_not_misread(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.pcapng", [(10, 7), (2, 0)])
    data = path.read_bytes()
    for cut in (1, 4, 9, 30):
        (tmp_path / "cut.pcapng").write_bytes(data[:-cut])
        stats = read_interface_stats(tmp_path / "cut.pcapng")
        assert all(s.name == "eth0" and s.dropped == 7 for s in stats)  # the first ISB, or none


def test_audit_carries_the_drop_warning(tmp_path: Path) -> None:
    result = audit([_write(tmp_path / "drops.pcapng", [(10, 7), (2, 0)])])
    (info,) = result.inputs
    assert any(w.startswith("kernel dropped 7 of 10 packets on eth0") for w in info.warnings)
    assert not any("drop" in a.detail for a in result.anomalies)  # a quality warning, not damage


def test_progress_line_and_file_name() -> None:
    bar = LiveProgress(10.0, 100, io.StringIO(), enabled=False)
    bar(40, 5000)
    bar.dropped = 3
    line = bar.line(bar.started + 2.0)
    assert "40 packets" in line and "5.0kB" in line and "20 pkt/s" in line and "3 dropped" in line
    assert "0:08 left" in line and "60 packets to go" in line
    from datetime import UTC, datetime

    name = live_file_name(["eth0", "eth1"], datetime(2026, 11, 27, 20, 45, tzinfo=UTC))
    assert name == "live-eth0+eth1-20261127T204500Z.pcapng"


def test_cli_option_errors_without_capturing(tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["audit"], "nothing to audit"),
        (["audit", "--live", "eth0"], "needs --duration SECONDS or --count N"),
        (["audit", "--live", "eth0", "--count", "3", str(tmp_path / "x.pcap")], "does not mix"),
        (
            ["audit", str(tmp_path / "x.pcap"), "--duration", "3", "--filter", "tcp"],
            "--duration, --filter: only",
        ),
        (["capture", "eth0", "-o", str(tmp_path / "x.pcapng")], "needs --duration"),
        (["audit", str(tmp_path / "x.pcap"), "--no-promisc"], "--no-promisc: only"),
    ]
    for args, message in cases:
        res = runner.invoke(main, args)
        assert res.exit_code == 2 and message in res.output, (args, res.output)
    assert runner.invoke(main, ["capture", "eth0", "--duration", "0", "-o", "x"]).exit_code == 2


def test_cli_start_up_does_not_import_scapy() -> None:
    import subprocess
    import sys

    code = "import sys, helix_audit.cli; print(any(m.startswith('scapy') for m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "False\n"
    )


def test_big_endian_isb_is_read(tmp_path: Path) -> None:
    """dumpcap on a big-endian host: a section in big-endian order, ISB options included."""

    def block(btype: int, body: bytes) -> bytes:
        return struct.pack(">II", btype, 12 + len(body)) + body + struct.pack(">I", 12 + len(body))

    shb = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(
        1, struct.pack(">HHI", 1, 0, 0) + struct.pack(">HH", 2, 4) + b"ens3" + struct.pack(">HH", 0, 0)
    )
    opts = struct.pack(">HHQ", 4, 8, 100) + struct.pack(">HHQ", 5, 8, 9) + struct.pack(">HH", 0, 0)
    isb = block(5, struct.pack(">III", 0, 0, 0) + opts)
    (tmp_path / "be.pcapng").write_bytes(shb + idb + isb)
    assert drop_warnings(tmp_path / "be.pcapng")[0].startswith("kernel dropped 9 of 100 packets on ens3")
