"""``--jobs 2`` on real worker processes gives the serial result: library and CLI, samples, corpus,
and a slice of the benchmark capture cut into byte ranges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helix_audit.cli import main
from helix_audit.pipeline import scan
from tests.conftest import CORPUS_FILES, needs_corpus

from .helpers import BENCH, BENCH_SCRIPT, SAMPLE_FILES, SAMPLES, assert_same_scan, bench_slice

REPORT_KEYS = ("findings", "coverage", "flows", "observations")


def test_samples_on_two_processes() -> None:
    serial = scan(SAMPLE_FILES, batch_size=11)
    parted = scan(SAMPLE_FILES, batch_size=11, jobs=2, split_min=0)
    assert parted.timings["parts"] >= 2 * len(SAMPLE_FILES) - 1
    assert_same_scan(serial, parted, "samples, --jobs 2")


@needs_corpus
@pytest.mark.corpus
def test_corpus_on_two_processes(corpus: Path) -> None:
    files = [corpus / n for n in CORPUS_FILES]
    serial = scan(files, batch_size=200)
    parted = scan(files, batch_size=200, jobs=2, split_min=0, pieces=3)
    assert_same_scan(serial, parted, "corpus, --jobs 2")


@pytest.mark.skipif(
    not BENCH.is_file() and not BENCH_SCRIPT.is_file(), reason="no benchmark capture and no ../shared/bench"
)
def test_bench_slice_byte_ranges(tmp_path: Path) -> None:
    path = bench_slice(tmp_path / "slice.pcap", 120_000)
    serial = scan([path], batch_size=8192)
    parted = scan([path], batch_size=8192, jobs=2, split_min=0, pieces=5)
    assert parted.timings["parts"] == 5
    assert_same_scan(serial, parted, "bench slice")


def report(tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / name
    capture = SAMPLES / "proxied.pcap"
    site = SAMPLES / "proxied.site.yaml"
    argv = ["audit", str(capture), str(SAMPLES / "tunnels.pcapng"), "--site", str(site), "--out", str(out)]
    result = CliRunner().invoke(main, [*argv, "--format", "json", "-q", *args])
    assert result.exit_code in (0, 1), result.output
    return json.loads((out / "report.json").read_text())


def test_cli_jobs_report_equals_serial(tmp_path: Path) -> None:
    serial = report(tmp_path, "serial")
    parted = report(tmp_path, "jobs", "--jobs", "2")
    for key in REPORT_KEYS:
        assert serial[key] == parted[key], key
    assert serial["flows"] and serial["observations"]


def test_cli_extract_jobs(tmp_path: Path) -> None:
    capture = str(SAMPLES / "proxied.pcap")
    one = CliRunner().invoke(main, ["extract", capture, "-q"])
    two = CliRunner().invoke(main, ["extract", capture, "-q", "--jobs", "2"])
    assert one.exit_code == two.exit_code == 0
    assert one.output == two.output and one.output


def test_tshark_engine_refuses_jobs() -> None:
    result = CliRunner().invoke(
        main, ["extract", str(SAMPLES / "proxied.pcap"), "--engine", "tshark", "-j", "2"]
    )
    assert result.exit_code != 0
    assert "--jobs and --dask need --engine native" in result.output
