"""Byte-range partitions: their concatenation is exactly the serial read."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from helix_audit.capture import open_capture, plan_ranges
from tests.conftest import needs_corpus
from tests.parallel.helpers import BENCH_SCRIPT, bench_slice

from . import builders as b

COLS = ("frame", "offset", "caplen", "wirelen", "ts_ns", "linktype")


def serial(path: Path) -> dict[str, np.ndarray]:
    return _cat(open_capture(path).batches(batch_size=1000))


def partitioned(path: Path, n: int) -> dict[str, np.ndarray]:
    cap = open_capture(path)
    parts = []
    for start, end, first in plan_ranges(path, n):
        parts += list(cap.batches(batch_size=1000, byte_range=(start, end), first_frame=first))
    return _cat(iter(parts))


def _cat(batches) -> dict[str, np.ndarray]:  # noqa: ANN001
    bs = list(batches)
    return {c: np.concatenate([getattr(x, c) for x in bs] or [np.zeros(0, np.int64)]) for c in COLS}


def assert_same(path: Path, n: int) -> None:
    a, p = serial(path), partitioned(path, n)
    for c in COLS:
        assert np.array_equal(a[c], p[c]), (path.name, n, c)


@needs_corpus
@pytest.mark.parametrize(
    "name",
    [
        "ndpi__teams.pcap",
        "ndpi__wechat.pcap",
        "ndpi__sites.pcapng",
        "ndpi__tls_with_huge_ch.pcapng",
        "zeek__tls-fragmented-handshake.pcap.gz",
        "ndpi__fuzz-2021-10-13.pcap",
    ],
)
@pytest.mark.parametrize("n", [2, 3, 7, 16])
def test_corpus_partitions_equal_serial(corpus: Path, name: str, n: int) -> None:
    assert_same(corpus / name, n)


def test_ranges_start_on_boundaries_with_exact_frames(tmp_path: Path) -> None:
    path = tmp_path / "p.pcap"
    path.write_bytes(b.pcap_file(1000))
    ranges = plan_ranges(path, 5)
    assert len(ranges) == 5
    a = serial(path)
    for start, _end, first in ranges:
        i = first - 1
        assert a["offset"][i] - 16 == start  # a record header starts exactly there
        assert ranges[-1][1] == path.stat().st_size
    assert [r[1] for r in ranges[:-1]] == [r[0] for r in ranges[1:]]


def test_payloads_that_look_like_records_do_not_fool_it(tmp_path: Path) -> None:
    # every packet carries a chain of plausible record headers; only the count walk tells them apart
    fake = b"".join(struct.pack("<IIII", 1_700_000_000, 5, 8, 8) + bytes(8) for _ in range(12))
    recs = b"".join(b.pcap_record(1_700_000_000 + i, 0, fake + bytes(i % 5)) for i in range(400))
    path = tmp_path / "tricky.pcap"
    path.write_bytes(b.pcap_header() + recs)
    for n in (2, 5, 13):
        assert_same(path, n)


def test_damaged_tail(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(b.pcap_file(900)[:-30] + bytes(5000))
    for n in (2, 4, 9):
        assert_same(path, n)


def test_pcapng_partitions(tmp_path: Path) -> None:
    blocks = [b.shb(), b.idb(1, tsresol=9), b.idb(113)]
    blocks += [b.epb(i % 2, i * 1000, b.ETH_FRAME[: 40 + i % 20]) for i in range(600)]
    blocks += [b.shb(">"), b.idb(101, e=">")] + [b.epb(0, i, b.ETH_FRAME, e=">") for i in range(300)]
    path = tmp_path / "p.pcapng"
    path.write_bytes(b"".join(blocks))
    for n in (2, 3, 8, 20):
        assert_same(path, n)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40,000 records of the benchmark capture (or the same script's capture of that size)."""
    if not BENCH_SCRIPT.is_file():
        pytest.skip("../shared/bench/make_bench_pcap.py is absent")
    return bench_slice(tmp_path_factory.mktemp("bench") / "small.pcap", 40_000)


@pytest.mark.parametrize("n", [3, 8])
def test_bench_partitions_equal_serial(bench: Path, n: int) -> None:
    assert_same(bench, n)


@pytest.mark.parametrize("first_frame", [1, 2, 5, 6, 64, 65, 100])
def test_first_batch_ends_on_a_serial_boundary(tmp_path: Path, first_frame: int) -> None:
    """A read from mid-file with ``first_batch`` hands out the serial run's batches after the first."""
    from helix_audit.capture.pcap import Tally, first_batch, pcap_batches

    path = tmp_path / "t.pcap"
    path.write_bytes(b.pcap_file(300))
    cap = open_capture(path)
    size, bs = int(cap.data.shape[0]), 16
    k = first_batch(first_frame, bs)
    assert 0 <= k < bs and (first_frame + k - 1) % bs == 0
    plain = list(pcap_batches(str(path), cap.data, cap.header, bs, 24, size, first_frame, Tally()))
    got = list(pcap_batches(str(path), cap.data, cap.header, bs, 24, size, first_frame, Tally(), k))
    assert np.array_equal(np.concatenate([x.offset for x in got]), np.concatenate([x.offset for x in plain]))
    assert np.array_equal(np.concatenate([x.frame for x in got]), np.concatenate([x.frame for x in plain]))
    rest = got[1:] if k else got
    assert all(int(x.frame[0]) % bs == 1 for x in rest)
    assert all(len(x) == bs for x in rest[:-1])
    if k:
        assert len(got[0]) == k
