"""The tuple hash's packed key and the narrow live segment arrays change no result: keys at the
ends of their ranges come back as they went in, ISNs past 2^31 still decide TCP reuse, segment
ids are spelled out only once an expiry pass moves rows, and a table whose tuple ids outgrow int32
widens ``seg_tup`` on the way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.flows import state as state_mod
from helix_audit.flows.state import NTK, SegmentArrays, _grow, pack_key, unpack_keys
from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp, udp
from .test_expiry import ALWAYS, EXPIRING, crafted, feed, finished


def test_pack_unpack_round_trip_at_range_ends() -> None:
    rnd = np.random.default_rng(0)
    keys = [(0, 0, 0), (255, 65535, 65535), (6, 65535, 0), (1, 0, 65535), (58, 129, 128)]
    keys += [tuple(int(x) for x in rnd.integers(0, [256, 65536, 65536])) for _ in range(200)]
    ki = np.zeros((len(keys), NTK), dtype=np.int64)
    ki[:, 0] = [pack_key(*k) for k in keys]
    assert len(set(ki[:, 0].tolist())) == len(set(keys))  # distinct keys stay distinct
    ki[:, 1:] = -7  # the segment columns, overwritten by the key's parts
    unpack_keys(ki)
    assert [tuple(r) for r in ki.tolist()] == [tuple(k) for k in keys]


def test_ports_and_protocols_at_range_ends() -> None:
    pkts = [
        tcp("10.0.0.1", 65535, "10.0.0.2", 0, "S", seq=1, ts=0.0),
        tcp("10.0.0.2", 0, "10.0.0.1", 65535, "SA", seq=2, ts=0.1),
        udp("10.0.0.3", 0, "10.0.0.4", 65535, ts=0.2),
        udp("10.0.0.4", 65535, "10.0.0.3", 0, ts=0.3),
        tcp("10.0.0.1", 1, "10.0.0.2", 65534, "S", seq=3, ts=0.4),
    ]
    table = FlowTable(["x.pcap"])
    table.add(columns(pkts, "x.pcap"))
    out = table.finish()[0]
    assert out.transport.tolist() == ["tcp", "udp", "tcp"]
    pairs = [{a, b} for a, b in zip(out.orig_p, out.resp_p, strict=True)]
    assert pairs == [{65535, 0}, {0, 65535}, {1, 65534}] and out.orig_p[0] == 65535  # the SYN's sender
    assert out.orig_pkts.tolist() == [1, 1, 1] and out.resp_pkts.tolist() == [1, 1, 0]


def _reuse(isn_a: int, isn_b: int) -> list[dict]:
    """A connection closed both ways, then a new SYN on the same 5-tuple (ISN ``isn_b``)."""
    a, b = "10.0.0.1", "10.0.0.2"
    return [
        tcp(a, 40000, b, 80, "S", seq=isn_a, ts=0.0),
        tcp(b, 80, a, 40000, "SA", seq=0xFFFFFFFE, ts=0.1),
        tcp(a, 40000, b, 80, "FA", seq=isn_a, ts=0.2),
        tcp(b, 80, a, 40000, "FA", seq=5, ts=0.3),
        tcp(a, 40000, b, 80, "S", seq=isn_b, ts=10.0),
    ]


@pytest.mark.parametrize("kw", [{}, *EXPIRING])
@pytest.mark.parametrize(
    ("isn_a", "isn_b", "flows"),
    [
        (0xFFFFFFFF, 0xFFFFFFFF, 1),
        (0xFFFFFFFF, 0x7FFFFFFF, 2),
        (0x80000000, 0x80000001, 2),
        (2**31, 2**31, 1),
    ],
)
def test_isns_past_2_31_decide_reuse(kw: dict, isn_a: int, isn_b: int, flows: int) -> None:
    """ISNs are kept as uint32: a re-sent SYN (same ISN) continues the flow, a new ISN starts one,
    with or without the segments passing through the (int64) store."""
    table = FlowTable(["x.pcap"], **kw)
    for i, p in enumerate(_reuse(isn_a, isn_b)):  # a batch a packet: an expiry pass between any two
        table.add(columns([p], "x.pcap", first_frame=i + 1))
    assert len(table.finish()[0]) == flows


def test_segment_ids_spelled_out_only_once_rows_move() -> None:
    plain = FlowTable(["x.pcap"])
    plain.add(columns([tcp("10.0.0.1", 1024 + i, "10.0.0.2", 80, "S", seq=i) for i in range(3000)], "x.pcap"))
    st = plain._st  # noqa: SLF001
    assert st.identity and st.seg_gid.shape == (0,) and st.gid().tolist() == list(range(3000))
    moving = FlowTable(["x.pcap"], live_rows=1, timeouts_ns=ALWAYS)
    moving.add(columns([tcp("10.0.0.1", 1024, "10.0.0.2", 80, "S", seq=1)], "x.pcap"))
    moving.add(columns([udp("10.0.0.1", 5, "10.0.0.2", 53)], "x.pcap", first_frame=2))
    st = moving._st  # noqa: SLF001
    assert not st.identity and st.nlive == 0 and moving._store.rows == 2  # noqa: SLF001
    assert st.seg_gid.shape[0] == st.seg_tup.shape[0]  # spelled out at the first pass that moved rows
    moving.merge(FlowTable(["x.pcap"]))  # materialized: every segment in the row of its id again
    assert moving._st.identity and moving._st.nlive == moving._st.nseg == 2  # noqa: SLF001


def test_narrow_dtypes() -> None:
    st = SegmentArrays()
    assert st.tk_i64.shape[1] == NTK == 3 and st.seg_tup.dtype == np.int32 and st.ev_val.dtype == np.uint32
    assert state_mod._tid_dtype(2**31 - 1) == np.int32 and state_mod._tid_dtype(2**31) == np.int64


@pytest.mark.parametrize("kw", [{}, EXPIRING[0]])
def test_seg_tup_widens_when_tuple_ids_outgrow_int32(monkeypatch: pytest.MonkeyPatch, kw: dict) -> None:
    """Past the tuple count where ids no longer fit (lowered here to 2048), ``seg_tup`` becomes
    int64 on the next growth and the result is that of a table that kept it int32."""
    scan = [tcp("10.1.0.1", 1024 + i, "10.1.0.2", 80, "S", seq=i, ts=0.001 * i) for i in range(3000)]
    work = [*crafted(1), columns(scan, "b.pcap", first_frame=10**6)]
    files = list(dict.fromkeys(c.source for c in work))
    narrow = FlowTable(files, **kw)
    want, want_ids = finished(narrow, feed(narrow, work))
    monkeypatch.setattr(state_mod, "_tid_dtype", lambda n: np.int32 if n < 2048 else np.int64)
    wide = FlowTable(files, **kw)
    ids = feed(wide, work)
    assert wide._st.seg_tup.dtype == np.int64  # noqa: SLF001
    got, got_ids = finished(wide, ids)
    pd.testing.assert_frame_equal(got, want)
    assert got_ids == want_ids


@pytest.mark.parametrize("block", [8, 1 << 23])
def test_grow_keeps_rows_and_never_frees_under_a_view(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """Arrays grow a block at a time (here 8 bytes: a row per block, or all at once), the old one
    cut as it goes; one another array refers to (a view) is copied whole and the view stays valid."""
    monkeypatch.setattr(state_mod, "GROW_BLOCK", block)
    st = SegmentArrays(64)
    rnd = np.random.default_rng(1)
    st.ev[:] = rnd.integers(0, 2**40, size=st.ev.shape)
    st.tk_u64[:] = rnd.integers(0, 2**63, size=st.tk_u64.shape, dtype=np.uint64)
    want_ev, want_tk = st.ev.copy(), st.tk_u64.copy()
    view = st.tk_u64[10:20]
    _grow(st, "ev", 100)
    _grow(st, "tk_u64", 100)
    assert st.ev.shape == (100, st.ev.shape[1]) and st.tk_u64.shape == (100, 4)
    np.testing.assert_array_equal(st.ev[:64], want_ev)
    np.testing.assert_array_equal(st.tk_u64[:64], want_tk)
    np.testing.assert_array_equal(view, want_tk[10:20])
