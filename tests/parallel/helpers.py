"""Comparing a partitioned scan with the serial one, field by field."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helix_audit.pipeline import Scan

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng"))
BENCH = REPO / "benchmarks" / "out" / "bench-2000000.pcap"


def assert_same_scan(serial: Scan, other: Scan, what: str) -> None:
    pd.testing.assert_frame_equal(serial.flows, other.flows, obj=f"{what}: flows")
    a = [o.to_record() for o in serial.observations]
    b = [o.to_record() for o in other.observations]
    assert len(a) == len(b), f"{what}: {len(a)} observations serially, {len(b)} partitioned"
    for x, y in zip(a, b, strict=True):
        assert x == y, f"{what}: first difference at frame {x['frame']}"
    assert serial.anomalies == other.anomalies, what
    assert serial.inputs == other.inputs, what
    assert serial.non_flow == other.non_flow, what


BENCH_SCRIPT = REPO.parent / "shared" / "bench" / "make_bench_pcap.py"


def bench_slice(dest: Path, records: int) -> Path:
    """The first ``records`` records of the benchmark capture, cut on a record boundary; when the
    benchmark was not built, a capture of that size made by the same script from the samples."""
    import subprocess
    import sys

    from helix_audit.capture import open_capture

    if not BENCH.is_file():
        templates = sorted(str(p) for p in SAMPLES.glob("*.pcap"))
        subprocess.run([sys.executable, str(BENCH_SCRIPT), str(dest), str(records), *templates],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return dest

    cap = open_capture(BENCH)
    batch = next(iter(cap.batches(batch_size=records)))
    end = int(batch.offset[-1] + batch.caplen[-1])
    with open(BENCH, "rb") as src:
        dest.write_bytes(src.read(end))
    return dest
