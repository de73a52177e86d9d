"""A one-line progress bar on stderr for long audits: packets, bytes, rate, ETA.

Our own small renderer rather than a dependency: the pipeline reports (packets, bytes) per batch
(from worker processes through a queue for ``--jobs``, per partition for ``--dask``); the bar
redraws at most ``HZ`` times a second and only when the stream is a terminal, so piping the output
or ``--quiet`` leaves stderr clean. The ETA comes from the bytes read against the inputs' size.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

HZ = 8
WIDTH = 24


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ProgressBar:
    """Callable as ``progress(packets, bytes)``; ``close()`` ends the line."""

    def __init__(self, total_bytes: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = max(int(total_bytes), 1)
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()
        self._drawn = False
        self.packets = self.bytes = 0

    def __call__(self, packets: int, nbytes: int) -> None:
        self.packets, self.bytes = packets, nbytes
        now = time.monotonic()
        if self.enabled and now - self._last >= 1 / HZ:
            self._last = now
            self._draw(now)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        frac = min(self.bytes / self.total, 1.0)
        filled = int(frac * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        rate = self.packets / elapsed
        eta = elapsed * (1 - frac) / frac if frac > 0 else 0.0
        return (
            f"[{bar}] {frac * 100:3.0f}%  {_si(self.packets)} packets  {_si(self.bytes)}B/"
            f"{_si(self.total)}B  {_si(rate)} pkt/s  ETA {_clock(eta)}"
        )

    def _draw(self, now: float) -> None:
        with self._lock:
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def bar_for(
    paths: Iterable[str | Path], quiet: bool = False, stream: TextIO | None = None
) -> ProgressBar | None:
    """A bar sized to the inputs (files, or directories of them), or None when quiet / not a tty."""
    stream = stream if stream is not None else sys.stderr
    if quiet or not stream.isatty():
        return None
    total = 0
    for raw in paths:
        p = Path(raw)
        files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
        total += sum(f.stat().st_size for f in files if f.exists())
    return ProgressBar(total, stream, enabled=True)


__all__ = ["ProgressBar", "bar_for"]
