"""The one-way pipeline: capture -> decode -> flows -> protocols -> names/policy -> result.

``scan`` runs the packet stages over every input (streamed in batches, memory bounded by the batch
size plus live flows); ``audit`` adds rules, the site profile and classification. Both are library
functions: the CLI only parses options and maps errors to exit codes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from . import __version__
from .capture import expand_inputs, open_capture
from .capture.source import DEFAULT_BATCH
from .decode.core import Decoder
from .digest import file_sha256
from .errors import UsageError
from .flows.table import FlowTable
from .gcpause import paused_gc
from .model import Anomaly, AuditResult, InputInfo, Observation
from .protocols.extract import Extractor
from .scanresult import capture_anomalies, input_info, non_flow_counts, remap_flow_ids, with_quality_warnings

if TYPE_CHECKING:  # pragma: no cover
    from .localjobs import Pending
    from .parallel import Merged

Progress = Callable[[int, int], None]  # (packets so far, bytes so far)


@dataclass
class Scan:
    """What the packet stages found in a set of inputs."""

    inputs: list[InputInfo]
    flows: pd.DataFrame
    observations: list[Observation]
    anomalies: list[Anomaly]
    non_flow: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: The inputs' SHA-256 when they are still being computed (``scan(late_digest=True)``): the
    #: hashing process then runs behind classification; ``resolve_digests`` waits for them.
    pending: Pending | None = None

    def resolve_digests(self) -> None:
        """Fill in the inputs' pending SHA-256 (waiting for them); nothing when none are pending."""
        if self.pending is None:
            return
        t0 = time.perf_counter()
        values, self.pending = self.pending.digests(), None
        self.inputs = [dataclasses.replace(i, sha256=d) for i, d in zip(self.inputs, values, strict=True)]
        self.timings["sha256 wait"] = self.timings.get("sha256 wait", 0.0) + time.perf_counter() - t0


class _Clock:
    """Seconds spent per stage (cheap: a few perf_counter calls per batch)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.spent[stage] = self.spent.get(stage, 0.0) + now - self._t
        self._t = now


def _one_cpu() -> bool:
    """True when this process may run on one CPU only (taskset, a one-CPU container).

    There a hashing thread cannot overlap the pipeline: the capture then hashes each batch's
    mapped bytes as it releases them instead, saving the second pass over the file's pages
    (~0.2 s of the 1.2 s SHA-256 of the 1.6 GB benchmark). With more CPUs the thread is free.
    """
    try:
        return len(os.sched_getaffinity(0)) <= 1
    except AttributeError:  # not Linux
        return (os.cpu_count() or 1) <= 1


class _Hasher(threading.Thread):
    """SHA-256 of a file on a second thread (hashlib releases the GIL on large updates)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.digest = ""

    def run(self) -> None:
        self.digest = file_sha256(self.path)


def scan(
    paths: Iterable[str | Path],
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    jobs: int = 1,
    dask: str | None = None,
    split_min: int | None = None,
    pieces: int = 0,
    freeze_gc: bool = False,
    late_digest: bool = False,
) -> Scan:
    """Run capture, decode, flows and protocols over every input, in order.

    ``jobs`` > 1 runs partitions (files, and ``pieces`` byte ranges (default 2 per job) of each
    file of ``split_min`` bytes or more) on that many processes, ``dask`` (a scheduler address) on
    a Dask cluster. The result is the serial one whichever way it ran. ``freeze_gc``: see
    :func:`audit`. ``late_digest``: the inputs' SHA-256 may still be pending (``Scan.pending``;
    the caller calls ``resolve_digests``).
    """
    files = expand_inputs([Path(p) for p in paths])
    with paused_gc(freeze=freeze_gc):  # see gcpause: ~10^6 live objects, no cycles among them
        if jobs > 1 or dask is not None or split_min is not None or pieces:
            result = with_quality_warnings(
                _scan_parallel(files, batch_size, progress, jobs, dask, split_min, pieces)
            )
        else:
            result = with_quality_warnings(_scan_serial(files, batch_size, progress))
    if not late_digest:
        result.resolve_digests()
    return result


def _scan_serial(files: list[Path], batch_size: int, progress: Progress | None) -> Scan:
    table = FlowTable()
    extractor = Extractor()
    inputs: list[InputInfo] = []
    anomalies: list[Anomaly] = []
    done_pkts = done_bytes = 0
    clock = _Clock()
    inline = _one_cpu()
    for path in files:
        cap = open_capture(path)
        hasher = None if inline and not cap.gzip else _Hasher(path)
        if hasher is not None:
            hasher.start()
        decoder = Decoder()
        clock.lap("open")
        for batch in cap.batches(batch_size=batch_size, sha256=hasher is None):
            clock.lap("capture")
            cols = decoder.decode(batch)
            clock.lap("decode")
            pf = table.add(cols)
            clock.lap("flows")
            extractor.add(cols, pf)
            clock.lap("protocols")
            if progress is not None:
                done_pkts += len(batch)
                done_bytes += int(batch.caplen.sum()) + 16 * len(batch)
                progress(done_pkts, done_bytes)
            del batch, cols, pf  # not held while the next batch is read: the pools reuse their arrays
        if hasher is not None:
            hasher.join()
        digest = hasher.digest if hasher is not None else cap.sha256 or file_sha256(path)
        clock.lap("sha256 wait")
        inputs.append(input_info(cap.info, digest))
        anomalies += capture_anomalies(cap.info)
        del cap, decoder  # the decoder's pooled batch arrays go before the finish stages
    flows, remap = table.finish()
    clock.lap("flows finish")
    observations, obs_anomalies = extractor.finish()
    clock.lap("protocols finish")
    return Scan(
        inputs=inputs,
        flows=flows,
        observations=remap_flow_ids(observations, remap),
        anomalies=anomalies + obs_anomalies,
        non_flow=non_flow_counts(table.non_flow_summary()),
        timings=clock.spent,
    )


def _scan_parallel(
    files: list[Path], batch_size: int, progress: Progress | None, jobs: int, dask: str | None,
    split_min: int | None, pieces: int,
) -> Scan:  # fmt: skip
    from .parallel import execute
    from .partitions import SPLIT_MIN_BYTES, plan

    if dask is None and not pieces:
        least = SPLIT_MIN_BYTES if split_min is None else split_min
        fast = _scan_local(files, batch_size, progress, jobs, least)
        if fast is not None:
            return fast
    clock = _Clock()
    hashers = [_Hasher(p) for p in files]
    workers = max(jobs, 2) if dask else jobs
    parts = plan(files, workers, batch_size, SPLIT_MIN_BYTES if split_min is None else split_min,
                 pieces=pieces or 2 * workers)  # fmt: skip
    clock.lap("plan")
    hashing = threading.Thread(target=_hash_all, args=(hashers,), daemon=True)
    merged = execute(parts, batch_size, jobs, dask, progress, started=hashing.start)
    clock.lap("partitions")
    hashing.join()
    clock.lap("sha256 wait")
    return _merged_scan(merged, files, [h.digest for h in hashers], clock, {"parts": float(len(parts))})


def _scan_local(
    files: list[Path], batch_size: int, progress: Progress | None, jobs: int, split_min: int
) -> Scan | None:
    """One large pcap on local processes (see ``localjobs``); None when that path does not apply."""
    from .localjobs import Mismatch, lazy_parts, run_local

    clock = _Clock()
    parts = lazy_parts(files, jobs, split_min)
    if parts is None:
        return None
    try:
        merged, pending, spent = run_local(parts, batch_size, progress)
    except Mismatch:
        return None  # the planned path, from scratch
    clock.lap("partitions")
    try:
        scan = _merged_scan(merged, files, [""], clock, dict(spent, parts=float(len(parts))))
    except BaseException:
        pending.abandon()
        raise
    scan.pending = pending  # the worker hashes while the caller classifies
    return scan


def _merged_scan(
    merged: Merged, files: list[Path], digests: list[str], clock: _Clock, timings: dict[str, float]
) -> Scan:
    """The scan of merged partitions: flow table and streams finished, the inputs in order."""
    inputs, anomalies = [], []
    for path, digest in zip(files, digests, strict=True):
        info = merged.infos[str(path)]
        inputs.append(input_info(info, digest))
        anomalies += capture_anomalies(info)
    flows, remap = merged.table.finish()
    clock.lap("flows finish")
    observations, obs_anomalies = merged.extractor.finish()
    clock.lap("protocols finish")
    return Scan(
        inputs=inputs,
        flows=flows,
        observations=remap_flow_ids(observations, remap),
        anomalies=anomalies + obs_anomalies,
        non_flow=non_flow_counts(merged.table.non_flow_summary()),
        timings=dict(clock.spent, **timings, reruns=float(merged.reruns)),
    )


def _hash_all(hashers: list[_Hasher]) -> None:
    """Hash the inputs one after another (``run`` on this thread, not a thread each)."""
    for h in hashers:
        h.run()


def scan_with(
    engine: str,
    paths: Sequence[str | Path],
    *,
    keylog: str | Path | None = None,
    decode_as: Sequence[str] = (),
    **scan_kw: object,
) -> Scan:
    """``scan`` with the chosen engine: "native", or "tshark" (observations from tshark)."""
    if engine == "native":
        if keylog is not None or decode_as:
            raise UsageError("--tls-keylog and --decode-as need --engine tshark")
        return scan(paths, **scan_kw)  # type: ignore[arg-type]
    if engine == "tshark":
        from .engines.tshark import tshark_scan

        scan_kw.pop("late_digest", None)
        if scan_kw.pop("jobs", 1) != 1 or scan_kw.pop("dask", None) is not None:
            raise UsageError("--jobs and --dask need --engine native")

        return tshark_scan(paths, keylog=Path(keylog) if keylog else None, decode_as=decode_as, **scan_kw)
    raise UsageError(f"unknown engine {engine!r} (native or tshark)")


def audit(
    paths: Sequence[str | Path],
    *,
    site: str | Path | None = None,
    rules: Sequence[str | Path] | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    command: str | None = None,
    engine: str = "native",
    keylog: str | Path | None = None,
    decode_as: Sequence[str] = (),
    jobs: int = 1,
    dask: str | None = None,
    freeze_gc: bool = False,
) -> AuditResult:
    """Audit captures against the documented Helix endpoint tables and the site profile.

    ``engine="tshark"`` takes the observations from Wireshark's dissectors instead (flows stay
    native): with ``keylog`` (an SSLKEYLOGFILE), WebSocket paths inside wss:// become visible.
    ``freeze_gc`` moves everything alive after the scan and after classification out of the cyclic
    collector's reach (a process that ends after the audit, like the CLI, saves re-walking ~10^6
    objects each time the collector resumes).
    """
    from .policy.classify import classify
    from .policy.dnsevidence import with_dns_evidence
    from .policy.rules import load_rules
    from .policy.site import load_site

    ruleset = load_rules([Path(r) for r in rules] if rules else None)
    profile = load_site(Path(site)) if site is not None else None
    started = time.time()
    result = scan_with(
        engine,
        paths,
        keylog=keylog,
        decode_as=decode_as,
        batch_size=batch_size,
        progress=progress,
        jobs=jobs,
        dask=dask,
        freeze_gc=freeze_gc,
        late_digest=True,
    )
    t0 = time.perf_counter()
    try:
        with paused_gc(freeze=freeze_gc):
            cls = classify(result.flows, result.observations, ruleset, profile)
            t1 = time.perf_counter()
            findings = with_dns_evidence(list(cls.findings), result.observations)
    except BaseException:
        if result.pending is not None:  # no worker outlives a failed audit
            result.pending.abandon()
        raise
    t2 = time.perf_counter()
    result.flows = pd.DataFrame()  # cls.flows is the classified copy: free the original now
    result.resolve_digests()  # a --jobs worker hashed the input meanwhile
    timings = dict(result.timings, classify=t1 - t0, **{"dns evidence": t2 - t1})
    return AuditResult(
        inputs=result.inputs,
        ruleset=ruleset.info,
        site=profile.as_dict() if profile is not None else None,
        site_sha256=profile.sha256 if profile is not None else None,
        flows=cls.flows,
        observations=result.observations,
        findings=findings,
        coverage=list(cls.coverage),
        roles=list(cls.roles),
        anomalies=result.anomalies,
        tool={
            "name": "helix-audit",
            "version": __version__,
            "command": command if command is not None else " ".join(sys.argv),
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "elapsed_s": round(time.time() - started, 3),
            "site_path": str(site) if site is not None else None,
            "non_flow": result.non_flow,
            "timings": {k: round(v, 4) for k, v in timings.items()},
        },
    )


__all__ = ["Scan", "audit", "scan", "scan_with"]
