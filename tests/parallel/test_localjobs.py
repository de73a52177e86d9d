"""``--jobs`` on one large classic pcap (``localjobs``): the parent reads the first partition, each
worker counts the records before its own cut; merged, the result is the serial one wherever the
cuts fall, whatever the batch size, and on damaged files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from helix_audit import localjobs
from helix_audit.localjobs import Mismatch, _check, parts_at, run_counted
from helix_audit.parallel import Merged, run_part
from helix_audit.pipeline import scan
from helix_audit.scanresult import remap_flow_ids
from tests.conftest import CORPUS_FILES, needs_corpus

from .helpers import BENCH, BENCH_SCRIPT, SAMPLE_FILES, assert_same_scan, bench_slice

PCAPS = [p for p in SAMPLE_FILES if p.suffix == ".pcap"]


def in_process(path: Path, fractions: list[float], batch_size: int, running: bool = True) -> Merged | None:
    """The partitions run here, one after another, merged as ``run_local`` merges them (the first
    by the plain extractor, ``running``, or as any other partition)."""
    parts = parts_at(path, fractions)
    if parts is None:
        return None
    first = run_part(parts[0], batch_size, running=running)
    merged, hi = Merged.adopt(first), first.hi
    for p in parts[1:]:
        res = run_counted(p, batch_size)
        hi = _check(hi, res)
        merged.add(res, batch_size)
    return merged


def check_cuts(path: Path, trials: int) -> None:
    rnd = random.Random(path.name)
    for trial in range(trials):
        batch_size = rnd.choice((1, 2, 5, 13, 64, 500))
        fractions = sorted(rnd.random() for _ in range(rnd.randint(1, 6)))
        serial = scan([path], batch_size=batch_size)
        merged = in_process(path, fractions, batch_size, running=trial % 4 != 3)
        if merged is None:  # no record boundary found past the cuts: the planned path runs
            continue
        what = (path.name, batch_size, fractions)
        flows, remap = merged.table.finish()
        assert flows.equals(serial.flows), what
        obs, anomalies = merged.extractor.finish()
        records = [o.to_record() for o in remap_flow_ids(obs, remap)]
        assert records == [o.to_record() for o in serial.observations], what
        lead = len(serial.anomalies) - len(anomalies)  # the capture's own (damage) come first
        assert lead >= 0 and serial.anomalies[lead:] == anomalies, what
        assert merged.infos[str(path)].packets == serial.inputs[0].packets, what


@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.name)
def test_samples_cut_anywhere(path: Path) -> None:
    check_cuts(path, trials=8)


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", [n for n in CORPUS_FILES if n.endswith(".pcap")])
def test_corpus_cut_anywhere(corpus: Path, name: str) -> None:
    check_cuts(corpus / name, trials=3)


@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.name)
def test_running_state_is_the_tagged_one(path: Path) -> None:
    """The parent's first partition, parsed by the plain extractor (``running``), holds what a
    tagging ``PartitionExtractor`` holds, with a tag per observation and anomaly."""
    parts = parts_at(path, [0.5])
    if parts is None:
        pytest.skip("no cut")
    plain, tagged = run_part(parts[0], 5, running=True).extractor, run_part(parts[0], 5).extractor
    assert [o.to_record() for o in plain.observations] == [o.to_record() for o in tagged.observations]
    assert plain.anomalies == tagged.anomalies
    assert len(plain.tags) == len(plain.observations) and len(plain.atags) == len(plain.anomalies)
    assert sorted(plain._dirs) == sorted(tagged._dirs) and plain._births == tagged._births
    assert (plain._done == tagged._done).all() and set(plain._quic.conns) == set(tagged._quic.conns)


@pytest.mark.parametrize("jobs", [2, 3, 5])
def test_samples_on_forked_workers(jobs: int) -> None:
    for path in PCAPS:
        serial = scan([path], batch_size=3)
        parted = scan([path], batch_size=3, jobs=jobs, split_min=0)
        assert "own part" in parted.timings, path.name  # this path ran, not the planned one
        assert_same_scan(serial, parted, f"{path.name} --jobs {jobs}")


def damaged(tmp_path: Path, how: str) -> Path:
    src = max(PCAPS, key=lambda p: p.stat().st_size).read_bytes()
    if how == "truncated":
        data = src[: len(src) * 2 // 3]  # ends inside a record
    else:  # an absurd record length in the middle: the serial read stops there
        cap = scan([max(PCAPS, key=lambda p: p.stat().st_size)]).inputs[0]
        assert cap.packets > 10
        data = bytearray(src)
        pos, n = 24, 0
        while n < cap.packets // 3:
            pos += 16 + int.from_bytes(data[pos + 8 : pos + 12], "little")
            n += 1
        data[pos + 8 : pos + 12] = (1 << 30).to_bytes(4, "little")
        data = bytes(data)
    out = tmp_path / f"{how}.pcap"
    out.write_bytes(data)
    return out


@pytest.mark.parametrize("how", ["truncated", "absurd"])
def test_damaged_file(tmp_path: Path, how: str) -> None:
    path = damaged(tmp_path, how)
    serial = scan([path], batch_size=4)
    for fractions in ([0.2], [0.5], [0.9], [0.1, 0.4, 0.8]):
        merged = in_process(path, fractions, 4)
        assert merged is not None
        assert merged.table.finish()[0].equals(serial.flows), fractions
    parted = scan([path], batch_size=4, jobs=3, split_min=0)
    assert_same_scan(serial, parted, how)


def test_mismatch_falls_back_to_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    path = max(PCAPS, key=lambda p: p.stat().st_size)

    def refuse(hi, res):  # noqa: ANN001, ANN202
        raise Mismatch("test")

    monkeypatch.setattr(localjobs, "_check", refuse)
    serial = scan([path], batch_size=5)
    parted = scan([path], batch_size=5, jobs=2, split_min=0)
    assert "own part" not in parted.timings and parted.timings["parts"] >= 2
    assert_same_scan(serial, parted, "fallback")


def test_worker_error_reaches_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        raise ValueError("worker broke")

    monkeypatch.setattr(localjobs, "run_counted", broken)
    with pytest.raises(ValueError, match="worker broke"):
        scan([max(PCAPS, key=lambda p: p.stat().st_size)], batch_size=5, jobs=2, split_min=0)


@pytest.mark.skipif(
    not BENCH.is_file() and not BENCH_SCRIPT.is_file(), reason="no benchmark capture and no ../shared/bench"
)
def test_bench_slice_on_two_jobs(tmp_path: Path) -> None:
    path = bench_slice(tmp_path / "slice.pcap", 150_000)
    serial = scan([path], batch_size=8192)
    parted = scan([path], batch_size=8192, jobs=2, split_min=0)
    assert "own part" in parted.timings
    assert_same_scan(serial, parted, "bench slice --jobs 2")


def with_big_record(tmp_path: Path, size: int) -> Path:
    """A sample's records, one ``size``-byte record, the sample's records again."""
    src = max(PCAPS, key=lambda p: p.stat().st_size).read_bytes()
    first = src[24:40]
    big = first[:8] + size.to_bytes(4, "little") * 2 + bytes(size)
    out = tmp_path / "big.pcap"
    out.write_bytes(src + big + src[24:])
    return out


def test_counting_worker_hashes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last worker's SHA-256 (taken after its result is sent) is the file's; the counting walk
    reads on past a record longer than its chunk."""
    import hashlib

    from helix_audit import partitions

    monkeypatch.setattr(partitions, "PLAN_CHUNK", 4 << 20)
    path = with_big_record(tmp_path, 9 << 20)  # longer than a counting chunk
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    serial = scan([path], batch_size=7)
    for fraction in (0.01, 0.5, 0.999):
        parts = parts_at(path, [fraction])
        assert parts is not None
        res = run_counted(parts[1], 7)
        assert res.part.lo >= 0 and res.part.first_frame > 1  # it counted its way past the big record
    parted = scan([path], batch_size=7, jobs=2, split_min=0)
    assert "own part" in parted.timings
    assert serial.inputs[0].sha256 == parted.inputs[0].sha256 == want
    assert_same_scan(serial, parted, "big record")


def test_mid_file_reads_release_no_page_still_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages released after a batch (madvise DONTNEED) hold no record of a batch handed out later:
    a record touched after its page was released stays mapped (session 4: 620 MB workers)."""
    from dataclasses import replace

    from helix_audit import partitions
    from helix_audit.capture import open_capture, source
    from helix_audit.capture.pcap import Tally
    from tests.capture import builders as b

    monkeypatch.setattr(source, "RELEASE_MIN", 0)
    path = tmp_path / "t.pcap"
    path.write_bytes(b.pcap_file(5000))
    parts = parts_at(path, [0.37])
    assert parts is not None
    released: list[int] = []

    class Recording:
        def madvise(self, how: int, start: int, length: int) -> None:
            released.append(start + length)

    for first_frame in (777, 769, 1000):  # off and on a batch boundary
        released.clear()
        cap = open_capture(path)
        cap._mm = Recording()  # type: ignore[assignment]
        part = replace(parts[1], first_frame=first_frame, lo=partitions._align(first_frame, 64), until=None)
        count = 0
        for batch in partitions._range_batches(cap, part, 64, Tally()):
            assert int(batch.frame[0]) % 64 == 1
            assert not released or int(batch.offset.min()) - 16 >= max(released), first_frame
            count += len(batch)
        assert count > 0 and released, first_frame


def test_digest_resolved_late(tmp_path: Path) -> None:
    """``late_digest``: the worker's SHA-256 is pending until ``resolve_digests``; by default
    ``scan`` resolves it (as ``audit`` does after classification)."""
    import hashlib

    path = with_big_record(tmp_path, 1 << 20)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    late = scan([path], batch_size=7, jobs=2, split_min=0, late_digest=True)
    assert late.pending is not None and late.inputs[0].sha256 == ""
    late.resolve_digests()
    assert late.pending is None and late.inputs[0].sha256 == want
    assert "sha256 wait" in late.timings
    now = scan([path], batch_size=7, jobs=2, split_min=0)
    assert now.pending is None and now.inputs[0].sha256 == want
    assert_same_scan(scan([path], batch_size=7), now, "late digest")


def test_failed_classification_ends_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An audit that fails after the merge does not leave the hashing worker behind it: the worker
    (hashing "forever" here) is ended at once and the error reaches the caller."""
    import multiprocessing
    import time

    from helix_audit import partitions, pipeline
    from helix_audit.policy import classify as classify_mod

    def slow_hash(path: object) -> str:
        time.sleep(60)
        return ""

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("classification failed")

    monkeypatch.setattr(localjobs, "file_sha256", slow_hash)
    monkeypatch.setattr(classify_mod, "classify", broken)
    monkeypatch.setattr(partitions, "SPLIT_MIN_BYTES", 0)  # split this small file
    path = with_big_record(tmp_path, 1 << 20)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="classification failed"):
        pipeline.audit([path], batch_size=7, jobs=2)
    assert multiprocessing.active_children() == []
    assert time.monotonic() - t0 < 30
