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
    busy, one_way_rows = _one_sided(result.flows)
    inputs = []
    for info in result.inputs:
        extra = []
        if info.snaplen is not None and 0 < info.snaplen < SHORT_SNAPLEN:
            extra.append(
                f"snaplen {info.snaplen}: packets were cut short when captured, so names in TLS and "
                "HTTP payloads may be missing"
            )
        mine = (result.flows["file"] == info.path).to_numpy(dtype=bool) if len(busy) else busy
        n_busy = int(np.count_nonzero(busy & mine))
        one_way = int(np.count_nonzero(one_way_rows & mine))
        if one_way >= ONE_SIDED_MIN and one_way >= ONE_SIDED_SHARE * n_busy:
            extra.append(
                f"one-sided traffic: {one_way} of {n_busy} TCP flows show packets in one direction "
                "only (a one-way mirror port or asymmetric routing): 'no answer' outcomes may be wrong"
            )
        if info.format == "pcapng" and not info.gzip:
            from .live.ngfile import drop_warnings  # only pcapng files can carry them

            extra += drop_warnings(info.path)
        inputs.append(dataclasses.replace(info, warnings=info.warnings + tuple(extra)) if extra else info)
    result.inputs = inputs
    return result


def _one_sided(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the TCP flows with two packets or more, and of those with packets one way only:
    masks, a byte a flow, where filtered copies of the frame were the frame's size again."""
    if not len(flows):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    o, r = flows["orig_pkts"].to_numpy(), flows["resp_pkts"].to_numpy()
    tcp = (flows["transport"] == "tcp").to_numpy(dtype=bool)
    o_none, r_none = o == 0, r == 0
    busy = tcp & ((o >= 2) | (r >= 2) | ~(o_none | r_none))  # orig + resp >= 2 (counts are >= 0)
    return busy, busy & (o_none | r_none)


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
