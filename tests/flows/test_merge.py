"""Partitioned runs (any cut points, any batch sizes, rotated files) give exactly the serial result."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp, udp

FILES = ["rot-0.pcap", "rot-1.pcap"]


def traffic(seed: int, n: int = 600) -> list[tuple[str, dict]]:
    rnd = random.Random(seed)
    hosts = [f"10.0.0.{i}" for i in range(1, 6)]
    out: list[dict] = []
    for _ in range(n):
        a, b = rnd.sample(hosts, 2)
        sp, dp = rnd.choice([40000, 40001, 40002]), rnd.choice([80, 443])
        roll = rnd.random()
        if roll < 0.08:
            quoted = bytes(
                IP(src=a, dst=b)
                / (TCP(sport=sp, dport=dp) if rnd.random() < 0.5 else UDP(sport=sp, dport=dp))
            )[:28]
            out.append(
                {
                    "src": "10.0.0.254",
                    "dst": a,
                    "proto": 1,
                    "sport": 3,
                    "dport": 13,
                    "icmp": bytes(ICMP(type=3, code=13) / quoted),
                }
            )
        elif roll < 0.3:
            out.append(udp(a, sp, b, dp, pay=rnd.randint(0, 30)))
        elif roll < 0.33:
            out.append({"ethertype": 0x0806})
        else:
            fl = rnd.choice(["S", "S", "SA", "A", "PA", "FA", "R", "RA"])
            out.append(tcp(a, sp, b, dp, fl, seq=rnd.choice([1, 2, 3]), pay=rnd.choice([0, 0, 10])))
    for i, p in enumerate(out):
        p["ts"] = i * 0.01
    half = n // 2
    return [
        (FILES[0] if i < half else FILES[1], dict(p, frame=(i if i < half else i - half) + 1))
        for i, p in enumerate(out)
    ]


def batches(packets: list[tuple[str, dict]], rnd: random.Random) -> list[tuple[str, list[dict]]]:
    out, i = [], 0
    while i < len(packets):
        j = min(len(packets), i + rnd.randint(1, 80))
        src = packets[i][0]
        while j > i and packets[j - 1][0] != src:
            j -= 1
        out.append((src, [p for _, p in packets[i:j]]))
        i = j
    return out


def merged_into(
    total: FlowTable | None, table: FlowTable, ids: list[np.ndarray]
) -> tuple[FlowTable, np.ndarray]:
    """``table`` merged into ``total`` (or the first one), and its batches' flow ids ``ids`` as ids of
    the merged table (-1 stays -1)."""
    local = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    if total is None:
        return table, local
    remap = total.merge(table)
    return total, np.where(local >= 0, remap[np.maximum(local, 0)], -1)


def run(parts: list[list[tuple[str, dict]]], rnd: random.Random) -> tuple[pd.DataFrame, list[int]]:
    total: FlowTable | None = None
    row_ids: list[np.ndarray] = []
    for part in parts:
        table, ids = FlowTable(FILES), []
        for src, batch in batches(part, rnd):
            ids.append(table.add(columns(batch, source=src, first_frame=batch[0]["frame"])).flow_id)
        total, mapped = merged_into(total, table, ids)
        row_ids.append(mapped)
    assert total is not None
    frame, final = total.finish()
    ids = np.concatenate(row_ids)
    return frame, np.where(ids >= 0, final[np.maximum(ids, 0)], -1).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_partitioned_equals_serial(seed: int) -> None:
    packets = traffic(seed)
    rnd = random.Random(seed)
    serial, serial_ids = run([packets], rnd)
    cuts = sorted(rnd.sample(range(1, len(packets)), 4))
    parts = [packets[a:b] for a, b in zip([0, *cuts], [*cuts, len(packets)], strict=True)]
    merged, merged_ids = run(parts, rnd)
    pd.testing.assert_frame_equal(serial, merged)
    assert serial_ids == merged_ids
    assert len(serial) > 20 and serial.files.str.contains("|", regex=False).any()
    assert (serial.icmp_errors > 0).any() and (serial.orig_pkts + serial.resp_pkts == 0).any()
