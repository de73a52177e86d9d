"""One live capture session: sockets on the interfaces, a pcapng file, stop conditions, progress.

Stops at the first of ``duration`` seconds, ``count`` packets (all interfaces together, as
``tcpdump -c``), SIGINT or SIGTERM. A signal is graceful: the sockets close, the Interface
Statistics Blocks are written and the caller audits what was captured; a second Ctrl-C aborts at
once (KeyboardInterrupt). The file is flushed about twice a second, so even a killed capture leaves
what it had read on disk.
"""

from __future__ import annotations

import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ..errors import InputError
from ..progress import ProgressBar, _clock, _si
from .ngfile import IfaceStats, PcapngWriter
from .sockets import Tap, drain, open_tap, shut

TICK = 0.2  # seconds between looks at the clock, the signals and the kernel counters
FLUSH_EVERY = 0.5
LAST_DRAIN = 5.0  # seconds at most spent writing what is still queued when the capture stops


@dataclass(frozen=True)
class LiveResult:
    path: Path
    packets: int
    bytes: int
    seconds: float
    stopped_by: str  # "duration" | "count" | "signal"
    interfaces: tuple[IfaceStats, ...]

    def summary(self) -> str:
        drops = ", ".join(
            f"{s.name}: kernel dropped {s.dropped} of {s.received}" for s in self.interfaces if s.dropped
        )
        return (
            f"captured {self.packets} packets ({_si(self.bytes)}B) on "
            f"{', '.join(s.name for s in self.interfaces)} in {self.seconds:.1f} s "
            f"(stopped by {self.stopped_by}){'; ' + drops if drops else ''}: {self.path}"
        )


class LiveProgress(ProgressBar):
    """The audit's progress bar, with a live capture's line: packets, bytes, rate, drops, time left."""

    def __init__(self, duration: float | None, count: int | None, stream: TextIO, enabled: bool) -> None:
        super().__init__(1, stream, enabled)
        self.duration, self.count = duration, count
        self.dropped = 0

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        left = []
        if self.duration is not None:
            left.append(f"{_clock(max(self.duration - elapsed, 0))} left")
        if self.count is not None:
            left.append(f"{max(self.count - self.packets, 0)} packets to go")
        return (
            f"capturing: {_si(self.packets)} packets  {_si(self.bytes)}B  "
            f"{_si(self.packets / elapsed)} pkt/s  {self.dropped} dropped  {'  '.join(left)}"
        )


def live_file_name(interfaces: list[str], when: datetime | None = None) -> str:
    """``live-eth0+eth1-20261127T204500Z.pcapng``: the interfaces and the capture's UTC start."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"live-{'+'.join(interfaces)}-{stamp}.pcapng"


class _Stop:
    """SIGINT / SIGTERM set ``reason``; a second SIGINT raises KeyboardInterrupt (abort)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, signum: int, frame: Any) -> None:  # noqa: ANN401
        if self.reason == "signal" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = "signal"


@contextmanager
def _signals(stop: _Stop) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def capture(
    interfaces: list[str],
    path: Path,
    *,
    duration: float | None = None,
    count: int | None = None,
    bpf: str | None = None,
    snaplen: int = 262144,
    quiet: bool = False,
    stream: TextIO | None = None,
    promisc: bool = True,
) -> LiveResult:
    """Capture from ``interfaces`` into the pcapng ``path`` until a stop condition (see module);
    ``promisc``: put the interfaces in promiscuous mode (a SPAN port's mirrored traffic is not
    addressed to the host), as tcpdump does unless ``-p``."""
    stream = stream if stream is not None else sys.stderr
    names = list(dict.fromkeys(interfaces))
    taps: list[Tap] = []
    writer: PcapngWriter | None = None
    try:
        for name in names:
            taps.append(open_tap(name, bpf, snaplen, promisc))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = PcapngWriter(path, [(t.name, t.linktype, t.snaplen) for t in taps], bpf)
        except OSError as exc:
            raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        if not quiet:
            links = ", ".join(f"{t.name} (link type {t.linktype})" for t in taps)
            stream.write(f"helix-audit: capturing on {links}, snaplen {snaplen}\n")
            stream.flush()
        bar = LiveProgress(duration, count, stream, enabled=not quiet and stream.isatty())
        start_ns = time.time_ns()
        stop = _Stop()
        try:
            with _signals(stop):
                _loop(taps, writer, bar, stop, duration, count)
                end_ns = time.time_ns()
                _last_drain(taps, writer, count)
        except OSError as exc:  # the disk filled, the interface went away: say so in one line
            raise InputError(
                f"{path}: capture failed after {writer.packets} packets: {exc.strerror or exc}"
            ) from None
        for t in taps:
            t.read_stats()
        writer.close([(i, start_ns, end_ns, t.kernel_received, t.kernel_dropped) for i, t in enumerate(taps)])
        bar.dropped = sum(t.kernel_dropped for t in taps)
        bar.close()
    finally:
        for t in taps:
            t.close()
        if writer is not None and not writer.f.closed:  # aborted: keep what was read, without ISBs
            writer.f.close()
    return LiveResult(
        path,
        writer.packets,
        writer.bytes,
        (end_ns - start_ns) / 1e9,
        stop.reason or "",
        tuple(IfaceStats(t.name, t.kernel_received, t.kernel_dropped) for t in taps),
    )


def _loop(
    taps: list[Tap],
    writer: PcapngWriter,
    bar: LiveProgress,
    stop: _Stop,
    duration: float | None,
    count: int | None,
) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    left = count
    flushed = time.monotonic()
    emitters = [(t, _emitter(writer, i)) for i, t in enumerate(taps)]
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            stop.reason = stop.reason or "duration"
        if stop.reason:
            return
        wait = TICK if deadline is None else max(0.0, min(TICK, deadline - now))
        ready, _, _ = select.select([t.sock for t in taps], [], [], wait)
        for tap, emit in emitters:
            if tap.sock not in ready:
                continue
            got = drain(tap, emit, left if left is not None and left < 256 else 256)
            if left is not None:
                left -= got
                if left <= 0:
                    stop.reason = stop.reason or "count"
                    break
        now = time.monotonic()
        bar(writer.packets, writer.bytes)
        if now - flushed >= FLUSH_EVERY:
            flushed = now
            writer.flush()
            for t in taps:
                t.read_stats()
            bar.dropped = sum(t.kernel_dropped for t in taps)


def _last_drain(taps: list[Tap], writer: PcapngWriter, count: int | None) -> None:
    """Close the door on every socket, then write what the kernel had already queued (not past
    ``count``): the capture holds every packet it counted as received and not dropped."""
    for t in taps:
        shut(t)
    deadline = time.monotonic() + LAST_DRAIN
    for i, t in enumerate(taps):
        emit = _emitter(writer, i)
        while time.monotonic() < deadline:
            left = 256 if count is None else min(256, count - writer.packets)
            if left <= 0:
                break
            drain(t, emit, left)
            if t.idle:
                break


def _emitter(writer: PcapngWriter, iface: int) -> Any:  # noqa: ANN401
    def emit(ts_ns: int, data: bytes, wirelen: int) -> None:
        writer.write(iface, ts_ns, data, wirelen)

    return emit


__all__ = ["LiveProgress", "LiveResult", "capture", "live_file_name"]
