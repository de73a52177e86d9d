"""The flow table's memory savings change no result: a scan's live arrays handed to the frame as
they are (not folded into copies), (segment, file) pairs left implicit while one file is read,
narrow hash slots, fewer auxiliary event columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scapy.layers.inet import IP, TCP

from helix_audit.flows import expiry as expiry_mod
from helix_audit.flows.state import NTS, NVAL, SegmentArrays, _slots
from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp, udp
from .test_expiry import EXPIRING, crafted, feed, finished
from .test_icmp_reuse import icmp4
from .test_merge import FILES


def _one_flow_each(n: int, seed: int) -> list[dict]:
    """``n`` packets of distinct flows (TCP SYNs, SYN-ACKs, data, UDP, VLAN-tagged, an ICMP error
    quoting a never-seen flow): every segment its own flow, in the order of its first packet."""
    rnd = np.random.default_rng(seed)
    pkts: list[dict] = []
    for i in range(n):
        a, b = f"10.0.{i // 200}.{1 + i % 200}", f"10.9.{i % 7}.{1 + i % 5}"
        kind = int(rnd.integers(0, 5))
        ts = 0.01 * i
        if kind == 0:
            isn = int(rnd.integers(1, 2**32))
            pkts.append(tcp(a, 40000 + i % 20000, b, 1 + i % 1000, "S", seq=isn, ts=ts))
        elif kind == 1:
            pkts.append(tcp(b, 443, a, 50000 + i % 10000, "SA", seq=i, ts=ts, vlan=7))
        elif kind == 2:
            pkts.append(tcp(a, 30000 + i % 20000, b, 8080, "PA", pay=1 + i % 90, ts=ts))
        elif kind == 3:
            pkts.append(udp(a, 20000 + i % 20000, b, 53, pay=1 + i % 60, ts=ts))
        else:
            quoted = bytes(IP(src=a, dst=b) / TCP(sport=45000 + i % 1000, dport=25, flags="S"))
            pkts.append({**icmp4("10.255.0.1", a, quoted), "ts": ts})
    return pkts


@pytest.mark.parametrize("seed", range(3))
def test_scan_arrays_handed_over_equal_folded(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Every segment its own flow and live: finish takes the live arrays as the flows' aggregates
    (row-major views); folding them into fresh column-major copies gives the same frame and ids."""
    pkts = _one_flow_each(400, seed)
    work = [columns(pkts[lo : lo + 64], "x.pcap", 1 + lo) for lo in range(0, len(pkts), 64)]
    seen: list[bool] = []
    is_range = expiry_mod._is_range  # noqa: SLF001

    def spy(a: np.ndarray) -> bool:
        seen.append(bool(is_range(a)))
        return seen[-1]

    monkeypatch.setattr(expiry_mod, "_is_range", spy)
    handed = FlowTable(["x.pcap"])
    frame_a, ids_a = finished(handed, feed(handed, work))
    assert seen == [True]
    monkeypatch.setattr(expiry_mod, "_is_range", lambda a: False)
    folded = FlowTable(["x.pcap"])
    frame_b, ids_b = finished(folded, feed(folded, work))
    pd.testing.assert_frame_equal(frame_a, frame_b)
    assert ids_a == ids_b
    assert (frame_a.icmp_errors > 0).any() and (frame_a.vlan == 7).any() and len(frame_a) == len(pkts)


def test_scan_arrays_not_handed_over_when_segments_join() -> None:
    """A flow of two segments (SYN retransmitted): the fold path, as before."""
    pkts = [
        tcp("10.0.0.1", 40000, "10.0.0.2", 80, "S", seq=5, ts=0.0),
        tcp("10.0.0.1", 40000, "10.0.0.2", 80, "S", seq=5, ts=1.0),  # a second segment, same flow
        tcp("10.0.0.1", 40001, "10.0.0.2", 80, "S", seq=6, ts=2.0),
    ]
    table = FlowTable(["x.pcap"])
    table.add(columns(pkts, "x.pcap"))
    frame, remap = table.finish()
    assert remap.tolist() == [0, 0, 1] and frame.syn.tolist() == [2, 1]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kw", [{}, *EXPIRING])
def test_one_file_pairs_implicit_then_spelled_out(seed: int, kw: dict) -> None:
    """While every batch comes from one file no (segment, file) pair is kept; when another file
    comes (or a merge), the implicit ones are spelled out: ``files`` as when every pair was kept."""
    work = crafted(seed)
    first = next(i for i, c in enumerate(work) if c.source != work[0].source)
    table = FlowTable(FILES, **kw)
    ids = feed(table, work[:first])
    assert table._file_pairs == []  # noqa: SLF001
    ids += feed(table, work[first:])
    frame, remap = finished(table, ids)
    plain = FlowTable(FILES)
    frame_p, remap_p = finished(plain, feed(plain, work))
    pd.testing.assert_frame_equal(frame, frame_p)
    assert remap == remap_p and frame.files.str.contains("|", regex=False).any()


def test_single_file_tables_merge_with_their_files() -> None:
    """Two tables that each read one file (pairs implicit in both), merged: a flow in both files
    lists both; the others one."""
    a = [tcp("10.0.0.1", 40000, "10.0.0.2", 80, "S", seq=1, ts=0.0), udp("10.0.0.3", 5, "10.0.0.4", 53)]
    b = [tcp("10.0.0.2", 80, "10.0.0.1", 40000, "SA", seq=9, ts=1.0), udp("10.0.0.5", 5, "10.0.0.4", 53)]
    left, right = FlowTable(["a.pcap", "b.pcap"]), FlowTable(["a.pcap", "b.pcap"])
    left.add(columns(a, "a.pcap"))
    right.add(columns(b, "b.pcap"))
    left.merge(right)
    frame = left.finish()[0]
    assert frame.files.tolist() == ["a.pcap|b.pcap", "a.pcap", "b.pcap"]
    serial = FlowTable(["a.pcap", "b.pcap"])
    serial.add(columns(a, "a.pcap"))
    serial.add(columns(b, "b.pcap"))
    pd.testing.assert_frame_equal(frame, serial.finish()[0])


def test_narrow_state() -> None:
    """Hash slots are int32 while tuple ids fit; a segment keeps one timestamp and three values."""
    st = SegmentArrays()
    assert st.slots.dtype == np.int32 and _slots(8, 2**31).dtype == np.int64
    assert st.ev_ts.shape[1] == NTS == 1 and st.ev_val.shape[1] == NVAL == 3
    table = FlowTable(["x.pcap"])
    pkts = [tcp("10.0.0.1", 1024 + i, "10.0.0.2", 80, "S", seq=i, ts=0.001 * i) for i in range(5000)]
    table.add(columns(pkts, "x.pcap"))  # several rehashes on the way
    assert table._st.slots.dtype == np.int32  # noqa: SLF001
    frame = table.finish()[0]
    assert frame.orig_p.tolist() == list(range(1024, 6024)) and (frame.history == "S").all()
