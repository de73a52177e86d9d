"""What the packet stages' raw state becomes in a ``Scan``: input records, capture-quality warnings,
non-flow counts and final flow ids (shared by the serial and the partitioned scans of ``pipeline``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .capture.interface import CaptureInfo
from .model import Anomaly, InputInfo, Observation

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Scan


def input_info(info: CaptureInfo, sha256: str) -> InputInfo:
    def sec(ns: int | None) -> float | None:
        return None if ns is None else ns / 1e9

    return InputInfo(
        path=info.path,
        sha256=sha256,
        format=info.format,
        gzip=info.gzip,
        packets=info.packets,
        bytes=info.size,
        first_ts=sec(info.first_ts_ns),
        last_ts=sec(info.last_ts_ns),
        link_types=tuple(info.link_types),
        ts_resolution=info.ts_resolution,
        snaplen=info.snaplen,
        warnings=tuple(info.warnings),
    )


def capture_anomalies(info: CaptureInfo) -> list[Anomaly]:
    return [Anomaly(name="capture_damaged", file=info.path, detail=w) for w in info.warnings]


#: Snaplens below this cut most packets' payloads: names in TLS/HTTP may be missing.
SHORT_SNAPLEN = 1500
#: Share of two-way-capable TCP flows seen in one direction only that makes a capture one-sided.
ONE_SIDED_SHARE, ONE_SIDED_MIN = 0.5, 5


def with_quality_warnings(result: Scan) -> Scan:
    """Add capture-quality warnings to each input: a short snaplen, one-sided TCP traffic, packets
    the kernel dropped while capturing (a pcapng's trailing Interface Statistics Blocks)."""
    tcp = result.flows[(result.flows["transport"] == "tcp")] if len(result.flows) else result.flows
    inputs = []
    for info in result.inputs:
        extra = []
        if info.snaplen is not None and 0 < info.snaplen < SHORT_SNAPLEN:
            extra.append(
                f"snaplen {info.snaplen}: packets were cut short when captured, so names in TLS and "
                "HTTP payloads may be missing"
            )
        mine = tcp[tcp["file"] == info.path] if len(tcp) else tcp
        busy = mine[(mine["orig_pkts"] + mine["resp_pkts"]) >= 2] if len(mine) else mine
        one_way = int(((busy["orig_pkts"] == 0) | (busy["resp_pkts"] == 0)).sum()) if len(busy) else 0
        if one_way >= ONE_SIDED_MIN and one_way >= ONE_SIDED_SHARE * len(busy):
            extra.append(
                f"one-sided traffic: {one_way} of {len(busy)} TCP flows show packets in one direction "
                "only (a one-way mirror port or asymmetric routing): 'no answer' outcomes may be wrong"
            )
        if info.format == "pcapng" and not info.gzip:
            from .live.ngfile import drop_warnings  # only pcapng files can carry them

            extra += drop_warnings(info.path)
        inputs.append(dataclasses.replace(info, warnings=info.warnings + tuple(extra)) if extra else info)
    result.inputs = inputs
    return result


_ETHERTYPES = {0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp", 0x88CC: "lldp", 0x8035: "rarp", 0: "link"}


def non_flow_counts(summary: pd.DataFrame) -> dict[str, int]:
    """``{"arp/not_ip": 12, "ipv4/truncated": 1}`` from the flow table's non-flow summary."""
    out: dict[str, int] = {}
    for eth, status, n in summary.itertuples(index=False):
        name = _ETHERTYPES.get(int(eth), f"0x{int(eth):04x}")
        key = f"{name}/{status}"
        out[key] = out.get(key, 0) + int(n)
    return out


def remap_flow_ids(observations: list[Observation], remap: np.ndarray) -> list[Observation]:
    """Final flow ids on the observations (which ``Extractor.finish`` sorted by (file, frame)).

    The observations were just built by the protocols stage and nobody else holds them yet, so
    the id is set in place (``object.__setattr__`` on the frozen dataclass) instead of copying
    120k objects with ``dataclasses.replace``.
    """
    final = remap.tolist()
    n = len(final)
    for obs in observations:
        fid = obs.flow_id
        if fid is not None and 0 <= fid < n:
            object.__setattr__(obs, "flow_id", final[fid])
    return observations


__all__ = [
    "ONE_SIDED_MIN", "ONE_SIDED_SHARE", "SHORT_SNAPLEN", "capture_anomalies", "input_info",
    "non_flow_counts", "remap_flow_ids", "with_quality_warnings",
]  # fmt: skip
