"""Every corpus file and sample capture, cut into byte-range partitions at many points (1 record up
to the whole file per partition), merges into exactly the serial result: flows, observations,
anomalies (in order), inputs and non-flow counts. Partitions run in this process here (the merge is
what is tested); tests/parallel/test_jobs.py runs them on worker processes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from helix_audit.parallel import execute, plan
from helix_audit.pipeline import scan
from tests.conftest import CORPUS_FILES, needs_corpus

from .helpers import SAMPLE_FILES, assert_same_scan

BATCHES = (1, 2, 5, 13, 64, 500)


def cuts(path: Path, trials: int) -> list[tuple[int, int]]:
    """(batch size, pieces) pairs drawn per file, reproducibly."""
    rnd = random.Random(path.name)
    return [(rnd.choice(BATCHES), rnd.randint(2, 48)) for _ in range(trials)]


def check(path: Path, trials: int) -> None:
    for batch_size, pieces in cuts(path, trials):
        serial = scan([path], batch_size=batch_size)
        parted = scan([path], batch_size=batch_size, split_min=0, pieces=pieces)
        info = serial.inputs[0]
        if not info.gzip and info.packets >= max(32, 4 * batch_size):  # else one partition is right
            assert parted.timings["parts"] > 1, (path.name, batch_size, pieces)
        assert_same_scan(serial, parted, f"{path.name} batch {batch_size} pieces {pieces}")


@needs_corpus
@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_cut_anywhere_equals_serial(corpus: Path, name: str) -> None:
    check(corpus / name, trials=3)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_samples_cut_anywhere_equals_serial(path: Path) -> None:
    check(path, trials=6)


def test_several_files_and_ranges(tmp_path: Path) -> None:
    """Partitions of several files merge in file order (flows continuing across rotated files)."""
    serial = scan(SAMPLE_FILES, batch_size=7)
    parted = scan(SAMPLE_FILES, batch_size=7, split_min=0, pieces=5)
    assert_same_scan(serial, parted, "all samples")


def test_partitions_own_whole_serial_batches() -> None:
    """Each partition starts on a serial batch boundary: the protocols stage budgets per batch."""
    path = max(SAMPLE_FILES, key=lambda p: p.stat().st_size)
    parts = plan([path], 1, 16, 0, pieces=9)
    assert len(parts) > 2
    assert all((p.lo - 1) % 16 == 0 for p in parts)
    assert [p.hi for p in parts[:-1]] == [p.lo for p in parts[1:]]
    merged = execute(parts, 16)
    assert merged.table.finish()[0].shape[0] == scan([path], batch_size=16).flows.shape[0]
