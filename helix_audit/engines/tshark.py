"""The tshark engine: the auditor's observations as Wireshark's dissectors see them.

What it is for: with a TLS key log (NSS ``SSLKEYLOGFILE`` format, ``-o tls.keylog_file:FILE``)
tshark decrypts TLS, so HTTP requests and WebSocket upgrades *inside* ``wss://`` (``/api/v1/revdial``
on 443) become visible; and it gives ``verify`` a second opinion on every capture.

Why a direct ``tshark -T ek -e FIELD`` subprocess rather than pyshark's ``FileCapture``: pyshark 0.6
runs the same tshark, but asks for whole packets (PDML or JSON trees) and builds Python objects for
every field of every packet. Measured on ndpi__teams.pcap (1,540 packets): pyshark iterates ~230
packets/s, and even with a display filter takes 2.5x as long as this module. Here tshark prints only
the fields below, only for frames that carry them (``-Y``), one JSON line per frame, read as a stream.

Semantics are the native engine's (:mod:`helix_audit.model`), with tshark's conventions, which the
native engine follows too: ``frame`` is tshark's frame.number, for a reassembled message the frame
where reassembly completed, with ``frames`` = its ``tcp.segment`` list; addresses and ports are the
innermost IP/UDP/TCP headers (tunnels peeled by tshark); frames that only quote a packet inside an
ICMP error are skipped. ``flow_id`` is None: :func:`tshark_scan` finds the native flow table's id
by endpoints and time (:func:`attach_flow_ids`). The parsing of rows lives in :mod:`.tshark_rows`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..model import Anomaly, Observation
from .tshark_rows import FIELDS, Row, pair_responses, row_observations

NOT_FOUND = "tshark not found: install Wireshark's tshark (Debian: apt-get install tshark)"
DISPLAY_FILTER = (
    "dns || mdns || llmnr || tls.handshake.type == 1 || tls.handshake.type == 2 || tls.alert_message.level"
    " || http.request || http.response || http2.headers.method"
)
UNREADABLE = ("isn't a capture file", "doesn't exist", "Permission denied", "unknown file format")
NOISE = ("Running as user",)


class TsharkNotFound(InputError):
    """The tshark binary is not on PATH."""


class TsharkWarning(UserWarning):
    """tshark stopped early or complained; the observations it printed are kept."""


@dataclass(frozen=True)
class TsharkOutput:
    """One file through tshark. ``streams`` and ``layers`` run parallel to ``observations``."""

    file: str
    observations: tuple[Observation, ...]
    streams: tuple[tuple[str, int] | None, ...]  # ("tcp" | "udp", tshark stream index)
    layers: tuple[str, ...]  # frame.protocols of the observation's frame
    warnings: tuple[str, ...]
    returncode: int
    frames_seen: int  # highest frame number printed (0: none)


def tshark_path() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        raise TsharkNotFound(NOT_FOUND)
    return exe


def tshark_command(
    exe: str, path: Path, keylog: Path | None, decode_as: Sequence[str], display_filter: str = DISPLAY_FILTER
) -> list[str]:
    cmd = [exe, "-n", "-r", str(path), "-T", "ek", "-Y", display_filter]
    if keylog is not None:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    for rule in decode_as:
        cmd += ["-d", rule]
    for name in FIELDS:
        cmd += ["-e", name]
    return cmd


def run_tshark(
    path: str | Path, *, keylog: Path | None = None, decode_as: Sequence[str] = ()
) -> TsharkOutput:
    """Run tshark over one capture file and build its observations (see the module docstring)."""
    path = Path(path)
    _check_inputs(path, keylog)
    cmd = tshark_command(tshark_path(), path, keylog, decode_as)
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise TsharkNotFound(f"{NOT_FOUND} ({exc})") from exc
        assert proc.stdout is not None
        built = _build(str(path), _rows(proc.stdout))
        rc = proc.wait()
        err.seek(0)
        stderr = [
            ln for ln in err.read().decode("utf-8", "replace").splitlines() if ln and not ln.startswith(NOISE)
        ]
    return _finish(str(path), built, rc, stderr)


def tshark_observations(
    path: Path | str, *, keylog: Path | None = None, decode_as: Sequence[str] = ()
) -> list[Observation]:
    """Observations of one capture file through tshark; complaints come as :class:`TsharkWarning`."""
    out = run_tshark(path, keylog=keylog, decode_as=decode_as)
    for text in out.warnings:
        warnings.warn(text, TsharkWarning, stacklevel=2)
    return list(out.observations)


def _check_inputs(path: Path, keylog: Path | None) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a capture file")
    if keylog is not None and not Path(keylog).is_file():
        raise InputError(f"{keylog}: no such TLS key log file")


def _rows(stream: Iterable[bytes]) -> Iterator[Row]:
    for line in stream:
        if not line.startswith(b'{"timestamp"'):
            continue  # the '{"index": ...}' lines of the Elasticsearch bulk format
        try:
            layers: dict[str, list[str]] = json.loads(line)["layers"]
        except (ValueError, KeyError):
            continue
        yield Row(layers)


@dataclass
class _Built:
    observations: list[Observation]
    streams: list[tuple[str, int] | None]
    layers: list[str]
    request_in: list[int | None]
    last_frame: int = 0


def _build(file: str, rows: Iterable[Row]) -> _Built:
    built = _Built([], [], [], [])
    for row in rows:
        built.last_frame = max(built.last_frame, row.frame)
        for obs, stream, linked in row_observations(row, file):
            built.observations.append(obs)
            built.streams.append(stream)
            built.layers.append(row.protocols)
            built.request_in.append(linked)
    return built


def _finish(file: str, built: _Built, rc: int, stderr: list[str]) -> TsharkOutput:
    if rc != 0 and built.last_frame == 0 and any(s in line for line in stderr for s in UNREADABLE):
        raise InputError(f"{file}: tshark cannot read it: {stderr[0] if stderr else f'exit {rc}'}")
    if rc == 1 and built.last_frame == 0:  # tshark's exit code for bad options (e.g. a decode-as rule)
        raise InputError(f"{file}: tshark refused the options: {'; '.join(stderr[:2]) or 'exit 1'}")
    notes: list[str] = []
    if rc != 0:
        what = "; ".join(stderr[:3]) or "no message"
        notes.append(f"{file}: tshark exited {rc} after frame {built.last_frame}: {what}")
    elif stderr:
        notes.append(f"{file}: tshark: {'; '.join(stderr[:3])}")
    obs, streams, layers = _pair_http(built)
    return TsharkOutput(file, obs, streams, layers, tuple(notes), rc, built.last_frame)


def _pair_http(built: _Built) -> tuple[tuple[Observation, ...], tuple[Any, ...], tuple[str, ...]]:
    """Give each WebSocket upgrade / CONNECT the status of the response tshark linked to it."""
    order = sorted(range(len(built.observations)), key=lambda i: built.observations[i].frame)
    obs = pair_responses([built.observations[i] for i in order], [built.request_in[i] for i in order])
    return tuple(obs), tuple(built.streams[i] for i in order), tuple(built.layers[i] for i in order)


# ------------------------------------------------------------------------------------------------------
# With the native flow table: the same Scan the native engine returns, observations from tshark.
# ------------------------------------------------------------------------------------------------------


FlowIndex = dict[tuple[str, str, frozenset[tuple[str, int]]], list[tuple[float, float, int]]]
TS_SLACK = 1e-6


def flow_index(flows: Any) -> FlowIndex:
    """Native flows by (file, transport, both endpoints): their time spans and ids."""
    index: FlowIndex = {}
    if flows is None or not len(flows):
        return index
    files = flows["files"] if "files" in flows.columns else flows["file"]
    cols = ("transport", "orig_h", "orig_p", "resp_h", "resp_p", "first_ts", "last_ts", "flow_id")
    for names, tr, oh, op, rh, rp, first, last, fid in zip(files, *(flows[c] for c in cols), strict=True):
        ends = frozenset({(str(oh), int(op)), (str(rh), int(rp))})
        for file in str(names).split("|"):
            index.setdefault((file, str(tr), ends), []).append((float(first), float(last), int(fid)))
    return index


def attach_flow_ids(out: TsharkOutput, flows: Any) -> list[Observation]:
    """``out``'s observations with the ``flow_id`` of the native flow they belong to (None when unknown).

    Matched by endpoints, not by tshark's stream index: tshark numbers a tunnel's outer UDP
    conversation too, so its ``udp.stream`` differs from the flow table's after a tunnel. When a
    5-tuple was reused, the flow whose time span holds the observation (else the nearest) wins.
    """
    index = flow_index(flows)
    result = []
    for obs in out.observations:
        spans = index.get(
            (obs.file, obs.transport, frozenset({(obs.src, obs.sport), (obs.dst, obs.dport)})), []
        )
        fid = min(spans, key=lambda sp: _distance(obs.ts, sp))[2] if spans else None
        result.append(replace(obs, flow_id=fid))
    return result


def _distance(ts: float, span: tuple[float, float, int]) -> float:
    first, last, _ = span
    return 0.0 if first - TS_SLACK <= ts <= last + TS_SLACK else min(abs(ts - first), abs(ts - last))


def tshark_scan(
    paths: Iterable[str | Path], *, keylog: Path | None = None, decode_as: Sequence[str] = (), **scan_kw: Any
) -> Any:
    """``pipeline.scan`` with the observations replaced by tshark's (native flows, inputs, anomalies).

    tshark's complaints become ``tshark_failed`` anomalies. This is what ``audit --engine tshark`` runs.
    """
    from ..capture import expand_inputs
    from ..pipeline import scan

    files = expand_inputs([Path(p) for p in paths])
    tshark_path()  # fail before the native pass when tshark is missing
    native = scan(files, **scan_kw)
    observations: list[Observation] = []
    anomalies: list[Anomaly] = list(native.anomalies)
    for file in files:
        out = run_tshark(file, keylog=keylog, decode_as=decode_as)
        observations += attach_flow_ids(out, native.flows)
        anomalies += [Anomaly("tshark_failed", out.file, out.frames_seen or None, w) for w in out.warnings]
    return replace(native, observations=observations, anomalies=anomalies)


__all__ = [
    "NOT_FOUND", "TsharkNotFound", "TsharkOutput", "TsharkWarning", "attach_flow_ids", "run_tshark",
    "tshark_observations", "tshark_path", "tshark_scan",
]  # fmt: skip
