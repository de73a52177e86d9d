"""Idle expiry and the spilled segment store change nothing: per-packet provisional ids, the finished
frame and the final remap equal those of a table that never expires, serial and merged, in memory or
spilled to an unnamed file, closed at finish."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helix_audit.decode.interface import PacketColumns
from helix_audit.flows import finish as finish_mod
from helix_audit.flows import orient as orient_mod
from helix_audit.flows import text as text_mod
from helix_audit.flows.expiry import WIDTH
from helix_audit.flows.table import FlowTable
from tests.conftest import CORPUS_FILES, needs_corpus

from .helpers import columns, tcp
from .test_merge import FILES, batches, traffic

ALWAYS = (-(2**62),) * 3  # every live segment is idle at every pass
EXPIRING = [
    {"live_rows": 1, "timeouts_ns": ALWAYS, "spill_bytes": 1 << 30},  # every batch, kept in memory
    {"live_rows": 1, "timeouts_ns": ALWAYS, "spill_bytes": 0},  # every batch, spilled at once
    {"live_rows": 8, "timeouts_ns": (2 * 10**9, 10**9, 10**9), "spill_bytes": 4 * WIDTH * 8},  # by time
]


def feed(table: FlowTable, work: list[PacketColumns]) -> list[np.ndarray]:
    return [table.add(cols).flow_id.copy() for cols in work]


def finished(table: FlowTable, ids: list[np.ndarray]) -> tuple[pd.DataFrame, list[int]]:
    frame, final = table.finish()
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    mapped = np.full(len(flat), -1, dtype=np.int64)
    mapped[flat >= 0] = final[flat[flat >= 0]]
    return frame, mapped.tolist()


def crafted(seed: int) -> list[PacketColumns]:
    """The merge tests' traffic (TCP reuse, UDP, ICMP errors quoting flows, two files), with idle gaps
    long enough for the time-based timeouts above to expire flows that then come back."""
    rnd = random.Random(seed)
    packets = traffic(seed, n=500)
    t = 0.0
    for _, p in packets:
        t += rnd.choice([0.01, 0.01, 0.01, 1.5, 4.0])
        p["ts"] = t
    return [columns(b, source=src, first_frame=b[0]["frame"]) for src, b in batches(packets, rnd)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kw", EXPIRING)
def test_expiring_serial_equals_plain(seed: int, kw: dict) -> None:
    work = crafted(seed)
    plain, exp = FlowTable(FILES), FlowTable(FILES, **kw)
    plain_ids, exp_ids = feed(plain, work), feed(exp, work)
    for a, b in zip(plain_ids, exp_ids, strict=True):
        np.testing.assert_array_equal(a, b)  # provisional ids: the protocols stage sees no difference
    assert exp._store.rows > 0 or exp._expired  # noqa: SLF001 - expiry really ran
    frame_a, ids_a = finished(plain, plain_ids)
    frame_b, ids_b = finished(exp, exp_ids)
    pd.testing.assert_frame_equal(frame_a, frame_b)
    assert ids_a == ids_b
    assert (frame_a.icmp_errors > 0).any() and frame_a.files.str.contains("|", regex=False).any()


@pytest.mark.parametrize("seed", range(4))
def test_expiring_partitions_merge_to_plain_serial(seed: int) -> None:
    """Partitions on expiring tables (one pickled, as a worker's), merged in order; one range added
    straight to the running table after a merge (a partition re-run), which then expires again."""
    work = crafted(seed)
    plain = FlowTable(FILES)
    frame_a, ids_a = finished(plain, feed(plain, work))
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(work)), 3))
    ranges = list(zip([0, *cuts], [*cuts, len(work)], strict=True))
    total = FlowTable(FILES, **EXPIRING[0])
    ids = feed(total, work[ranges[0][0] : ranges[0][1]])
    for k, (a, b) in enumerate(ranges[1:], 1):
        if k == 2:
            ids += feed(total, work[a:b])
            continue
        part = FlowTable(FILES, **EXPIRING[k % len(EXPIRING)])
        local = feed(part, work[a:b])
        part = pickle.loads(pickle.dumps(part))
        remap = total.merge(part)
        ids += [np.where(x >= 0, remap[np.maximum(x, 0)], -1) for x in local]
    frame_b, ids_b = finished(total, ids)
    pd.testing.assert_frame_equal(frame_a, frame_b)
    assert ids_a == ids_b


def test_revived_segment_keeps_its_id_and_joins() -> None:
    """A connection idle past the timeout, then resumed mid-stream, is still one flow under one id;
    a new SYN after the close starts a new flow as without expiry."""
    a, b = "10.0.0.1", "10.0.0.2"
    pkts = [
        tcp(a, 40000, b, 80, "S", seq=1, ts=0.0),
        tcp(b, 80, a, 40000, "SA", seq=9, ts=0.1),
        tcp(a, 40000, b, 80, "A", ts=0.2),
        tcp(a, 40000, b, 80, "PA", pay=10, ts=1000.0),  # idle 1000 s: expired before this
        tcp(b, 80, a, 40000, "FA", ts=1000.1),
        tcp(a, 40000, b, 80, "FA", ts=1000.2),
        tcp(a, 40000, b, 80, "S", seq=77, ts=2000.0),  # reuse after the close: a new flow
    ]
    plain = FlowTable(["x.pcap"])
    exp = FlowTable(["x.pcap"], live_rows=1, timeouts_ns=(10**9,) * 3)
    ids_a = [plain.add(columns([p], "x.pcap", i + 1)).flow_id[0] for i, p in enumerate(pkts)]
    ids_b = [exp.add(columns([p], "x.pcap", i + 1)).flow_id[0] for i, p in enumerate(pkts)]
    assert ids_a == ids_b == [0, 0, 0, 0, 0, 0, 1]
    assert exp._store.rows > 0  # noqa: SLF001
    frame_a, frame_b = plain.finish()[0], exp.finish()[0]
    pd.testing.assert_frame_equal(frame_a, frame_b)
    assert frame_b.conn_state.tolist() == ["SF", "S0"] and frame_b.orig_bytes.tolist() == [10, 0]


def test_spill_file_has_no_name_and_closes_at_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spilled rows live in an unnamed file: nothing appears in the temporary directory (a killed
    audit leaves nothing behind), and the file is closed at finish."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    table = FlowTable(FILES, **EXPIRING[1])
    feed(table, crafted(7))
    store = table._store  # noqa: SLF001
    assert store.rows and store._spilled and store._file is not None  # noqa: SLF001
    spill = store._file  # noqa: SLF001
    assert os.fstat(spill.fileno()).st_nlink == 0 and os.listdir(tmp_path) == []
    table.finish()
    assert spill.closed
    with pytest.raises(RuntimeError):
        table.finish()


def test_chunked_text_equals_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    work = crafted(3)
    whole = FlowTable(FILES)
    feed(whole, work)
    frame_a = whole.finish()[0]
    monkeypatch.setattr(finish_mod, "CHUNK_ROWS", 3)
    monkeypatch.setattr(orient_mod, "CHUNK_ROWS", 3)
    monkeypatch.setattr(text_mod, "CHUNK_ROWS", 2)
    chunked = FlowTable(FILES)
    feed(chunked, work)
    pd.testing.assert_frame_equal(frame_a, chunked.finish()[0])


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_expiring_equals_plain(corpus: Path, name: str) -> None:
    from helix_audit.capture import open_capture
    from helix_audit.decode.core import decode_batch

    path = str(corpus / name)
    work = [decode_batch(b) for b in open_capture(path).batches(batch_size=97)]
    plain, exp = FlowTable([path]), FlowTable([path], **EXPIRING[1])
    plain_ids, exp_ids = feed(plain, work), feed(exp, work)
    for a, b in zip(plain_ids, exp_ids, strict=True):
        np.testing.assert_array_equal(a, b)
    frame_a, ids_a = finished(plain, plain_ids)
    frame_b, ids_b = finished(exp, exp_ids)
    pd.testing.assert_frame_equal(frame_a, frame_b)
    assert ids_a == ids_b


def test_live_rows_stay_bounded() -> None:
    """Many short flows over time: the live rows stay near the threshold while the store grows."""
    from .helpers import udp

    table = FlowTable(["x.pcap"], live_rows=64, spill_bytes=0)
    most = 0
    for b in range(40):
        pkts = [
            udp("10.0.0.1", 1024 + 32 * b + i, "10.0.0.2", 53, ts=100.0 * b + i * 0.01) for i in range(32)
        ]
        table.add(columns(pkts, "x.pcap", 1 + 32 * b))
        most = max(most, table._st.nlive)  # noqa: SLF001
    assert most < 64 + 2 * 32 and table._store.rows > 1000 - 128  # noqa: SLF001
    frame = table.finish()[0]
    assert len(frame) == 40 * 32 and frame.flow_id.tolist() == list(range(40 * 32))


def test_growth_ladder() -> None:
    """Small tables double; past LADDER_FROM rows, arrays grow by a half or a third."""
    from helix_audit.flows.state import _ladder

    got = [_ladder(n) for n in (1, 1024, 1025, 1537, 300_000, 786432, 786433)]
    assert got == [1024, 1024, 2048, 2048, 393216, 786432, 1048576]
