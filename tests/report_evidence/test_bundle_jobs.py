"""``write_bundle(jobs=2)``: the evidence pass runs in a forked process beside the other formats;
the bundle is the serial one byte for byte, and a failure on either side reaches the caller."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from helix_audit.pipeline import audit
from helix_audit.report import bundle
from helix_audit.report.bundle import write_bundle

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


@pytest.fixture(scope="module")
def result():  # noqa: ANN201
    return audit(sorted(SAMPLES.glob("*.pcap")), site=SAMPLES / "site.yaml")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_bundle_as_serial(result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    assert result.findings
    serial = write_bundle(result, tmp_path / "serial")
    writer, pids = bundle.WRITERS["evidence"], tmp_path / "pids"

    def spy(*args: object) -> list[Path]:
        with open(pids, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return writer(*args)  # type: ignore[arg-type]

    monkeypatch.setitem(bundle.WRITERS, "evidence", spy)
    forked = write_bundle(result, tmp_path / "forked", jobs=2)
    assert pids.read_text().split() != [str(os.getpid())]  # written by another process
    a, b = files(tmp_path / "serial"), files(tmp_path / "forked")
    assert any(name.startswith("evidence/") for name in a)
    assert a == b
    # the same files, in the same order
    assert [p.relative_to(tmp_path / "serial") for p in serial] == [
        p.relative_to(tmp_path / "forked") for p in forked
    ]


def test_evidence_error_reaches_the_caller(result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    def broken(*args: object) -> list[Path]:
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(bundle.WRITERS, "evidence", broken)
    with pytest.raises(OSError, match="No space left"):
        write_bundle(result, tmp_path, jobs=2)
    assert multiprocessing.active_children() == []


def test_failure_here_ends_the_evidence_process(
    result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    def slow(*args: object) -> list[Path]:
        time.sleep(60)
        return []

    def broken(*args: object) -> list[Path]:
        raise ValueError("csv failed")

    monkeypatch.setitem(bundle.WRITERS, "evidence", slow)
    monkeypatch.setitem(bundle.WRITERS, "csv", broken)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="csv failed"):
        write_bundle(result, tmp_path, jobs=2)
    assert multiprocessing.active_children() == []
    assert time.monotonic() - t0 < 30
