"""Live capture on the command line: ``audit --live IFACE`` and ``capture IFACE...``.

Choices (documented in README.md "Live capture"):
- ``--duration`` or ``--count`` is required: a capture that only Ctrl-C ends would run forever when
  started unattended (cron, CI, ssh that drops) and fill the disk. Ctrl-C / SIGTERM still stop it
  early and gracefully (what was captured is written and audited); a second Ctrl-C aborts.
- ``--live`` does not mix with capture PATHs: the bundle is the evidence of one capture session.
  Audit files together later with ``helix-audit audit DIR/capture/*.pcapng other.pcap``.
- ``audit --live`` writes ``OUT/capture/live-<ifaces>-<UTC start>.pcapng`` and audits that file, so
  findings' frames point into it and SHA256SUMS covers it.
Nothing here imports scapy: the capture modules import it when a capture starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_SNAPLEN = 262144


def capture_options(fn: F) -> F:
    """--duration, --count, --filter, --snaplen, --no-promisc: shared by ``audit --live`` and
    ``capture``."""
    fn = click.option(
        "--no-promisc",
        "no_promisc",
        is_flag=True,
        help="Live capture: leave the interface out of promiscuous mode (tcpdump -p): only the "
        "host's own traffic and broadcasts, not a mirror port's.",
    )(fn)
    fn = click.option(
        "--snaplen",
        type=click.IntRange(min=64, max=DEFAULT_SNAPLEN),
        default=DEFAULT_SNAPLEN,
        show_default=True,
        help="Live capture: bytes kept of each packet.",
    )(fn)
    fn = click.option(
        "--filter",
        "bpf",
        metavar="BPF",
        help="Live capture: a capture filter (tcpdump syntax), e.g. 'not port 22'.",
    )(fn)
    fn = click.option(
        "--count",
        type=click.IntRange(min=1),
        help="Live capture: stop after N packets (all interfaces together).",
    )(fn)
    return click.option(
        "--duration",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Live capture: stop after this many seconds (Ctrl-C / SIGTERM stop earlier).",
    )(fn)


def live_options(fn: F) -> F:
    """``audit``'s --live IFACE (repeatable) and the capture options."""
    fn = capture_options(fn)
    return click.option(
        "--live",
        "live",
        multiple=True,
        metavar="IFACE",
        help="Capture from this interface (repeatable; 'any' = all, cooked) instead of reading "
        "PATHs, into OUT/capture/, then audit that. Needs --duration or --count; root or CAP_NET_RAW.",
    )(fn)


def _run(
    interfaces: list[str],
    path: Path,
    duration: float | None,
    count: int | None,
    bpf: str | None,
    snaplen: int,
    quiet: bool,
    no_promisc: bool = False,
) -> Any:  # noqa: ANN401 - a LiveResult, imported lazily
    if duration is None and count is None:
        raise UsageError(
            "live capture needs --duration SECONDS or --count N (Ctrl-C / SIGTERM also stop it; "
            "a capture without either would never end unattended)"
        )
    from .live.session import capture

    result = capture(
        interfaces,
        path,
        duration=duration,
        count=count,
        bpf=bpf,
        snaplen=snaplen,
        quiet=quiet,
        promisc=not no_promisc,
    )
    if not quiet:
        click.echo(f"helix-audit: {result.summary()}", err=True)
    return result


def live_inputs(paths: tuple[Path, ...], out: Path, quiet: bool, **opts: Any) -> tuple[Path, ...]:
    """``audit``'s inputs: PATHs as given, or (with --live) the file just captured into OUT/capture/."""
    live: tuple[str, ...] = opts.get("live", ())
    if not live:
        unused = [
            f"--{k}" for k in ("duration", "count", "filter") if opts.get("bpf" if k == "filter" else k)
        ]
        if opts.get("snaplen", DEFAULT_SNAPLEN) != DEFAULT_SNAPLEN:
            unused.append("--snaplen")
        if opts.get("no_promisc"):
            unused.append("--no-promisc")
        if unused:
            raise UsageError(f"{', '.join(unused)}: only for live capture (--live IFACE)")
        if not paths:
            raise UsageError("nothing to audit: give capture PATH... or --live IFACE")
        return paths
    if paths:
        raise UsageError(
            "--live does not mix with capture PATHs: audit the live capture alone, and files with it "
            "later (helix-audit audit OUT/capture/*.pcapng FILE...)"
        )
    from .live.session import live_file_name

    path = out / "capture" / live_file_name(list(dict.fromkeys(live)))
    _run(
        list(live),
        path,
        opts.get("duration"),
        opts.get("count"),
        opts.get("bpf"),
        opts["snaplen"],
        quiet,
        bool(opts.get("no_promisc")),
    )
    return (path,)


def capture_command(guard: Callable[[Callable[..., Any]], Callable[..., Any]]) -> click.Command:
    """The ``capture`` command, wrapped by the CLI's error guard (passed in: no import cycle)."""

    @click.command("capture")
    @click.argument("interfaces", nargs=-1, required=True, metavar="IFACE...")
    @click.option(
        "-o", "--out", "out", type=click.Path(path_type=Path), required=True, help="The pcapng file to write."
    )
    @capture_options
    @click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
    @guard
    def capture_cmd(
        interfaces: tuple[str, ...],
        out: Path,
        duration: float | None,
        count: int | None,
        bpf: str | None,
        snaplen: int,
        no_promisc: bool,
        quiet: bool,
    ) -> None:
        """Capture IFACE... (e.g. eth0; 'any' = all) into a pcapng file, to audit later.

        Stops after --duration or --count (one is required), or at Ctrl-C / SIGTERM. Kernel drops
        are recorded in the file's interface statistics and reported when it is audited."""
        _run(list(interfaces), out, duration, count, bpf, snaplen, quiet, no_promisc)
        sys.exit(0)

    return capture_cmd


__all__ = ["capture_command", "capture_options", "live_inputs", "live_options"]
