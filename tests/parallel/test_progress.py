"""The progress bar: drawn on a terminal (packets, bytes, rate, ETA), silent when quiet or piped."""

from __future__ import annotations

import io
from pathlib import Path

from click.testing import CliRunner

from helix_audit.cli import main
from helix_audit.pipeline import scan
from helix_audit.progress import ProgressBar, bar_for

from .helpers import SAMPLES


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_reports_packets_bytes_rate_and_eta() -> None:
    out = Tty()
    bar = ProgressBar(2_000_000, out, enabled=True)
    bar.started -= 2.0  # two seconds in
    bar(1_500_000, 1_000_000)
    line = bar.line(bar.started + 2.0)
    assert "50%" in line and "1.5M packets" in line and "1.0MB/2.0MB" in line
    assert "750.0k pkt/s" in line and "ETA 0:02" in line
    bar.close()
    assert out.getvalue().endswith("\n") and "\r[" in out.getvalue()


def test_scan_feeds_the_bar_to_the_end() -> None:
    path = SAMPLES / "proxied.pcap"
    for jobs in (1, 2):
        bar = ProgressBar(path.stat().st_size, Tty(), enabled=True)
        result = scan([path], batch_size=7, progress=bar, jobs=jobs, split_min=0)
        assert bar.packets == result.inputs[0].packets
        assert 0.9 * path.stat().st_size <= bar.bytes <= path.stat().st_size


def test_quiet_or_not_a_terminal_draws_nothing() -> None:
    assert bar_for([SAMPLES / "proxied.pcap"], quiet=True, stream=Tty()) is None
    assert bar_for([SAMPLES / "proxied.pcap"], stream=io.StringIO()) is None
    assert bar_for([SAMPLES], stream=Tty()) is not None


def test_cli_stderr_stays_clean_when_not_a_terminal(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["extract", str(SAMPLES / "proxied.pcap"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0 and result.output == ""
