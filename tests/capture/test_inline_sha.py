"""SHA-256 taken by the capture as it releases batches (one-CPU audits): equal to the file's."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from helix_audit import pipeline
from helix_audit.capture import source
from helix_audit.capture.source import open_capture
from helix_audit.pipeline import scan

from .builders import pcap_file, shb


def _consume(path: Path, batch_size: int, **kw: object) -> str | None:
    cap = open_capture(path)
    for _ in cap.batches(batch_size=batch_size, **kw):  # type: ignore[arg-type]
        pass
    return cap.sha256


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_inline_digest_covers_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    monkeypatch.setattr(source, "RELEASE_MIN", 4096)  # many release steps in a small file
    data = pcap_file(400)
    path = tmp_path / "a.pcap"
    path.write_bytes(data)
    assert _consume(path, batch_size, sha256=True) == hashlib.sha256(data).hexdigest()
    assert _consume(path, batch_size) is None  # not asked: not hashed


def test_inline_digest_includes_damage_and_trailing_bytes(tmp_path: Path) -> None:
    data = pcap_file(50) + b"\xff" * 37  # a truncated record header after the last packet
    path = tmp_path / "damaged.pcap"
    path.write_bytes(data)
    cap = open_capture(path)
    list(cap.batches(batch_size=8, sha256=True))
    assert cap.info.warnings, "the damage is reported"
    assert cap.sha256 == hashlib.sha256(data).hexdigest()


def test_no_inline_digest_for_gzip_ranges_or_an_unfinished_read(tmp_path: Path) -> None:
    data = pcap_file(30)
    gz = tmp_path / "a.pcap.gz"
    gz.write_bytes(gzip.compress(data))
    assert _consume(gz, 4, sha256=True) is None  # the digest is of the compressed file: not these bytes
    plain = tmp_path / "a.pcap"
    plain.write_bytes(data)
    assert _consume(plain, 4, sha256=True, byte_range=(24, len(data))) is None
    cap = open_capture(plain)
    it = cap.batches(batch_size=4, sha256=True)
    next(it)
    it.close()  # the consumer stopped early: no digest of a part
    assert cap.sha256 is None


def test_pcapng_inline_digest(tmp_path: Path) -> None:
    data = shb()
    path = tmp_path / "empty-section.pcapng"
    path.write_bytes(data)
    assert _consume(path, 4, sha256=True) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("one_cpu", [True, False])
def test_scan_digest_same_with_and_without_a_hashing_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_cpu: bool
) -> None:
    monkeypatch.setattr(pipeline, "_one_cpu", lambda: one_cpu)
    plain, gz = tmp_path / "a.pcap", tmp_path / "b.pcap.gz"
    plain.write_bytes(pcap_file(120))
    gz.write_bytes(gzip.compress(pcap_file(60, t0=1_800_000_000)))
    result = scan([plain, gz], batch_size=16)
    got = {Path(i.path).name: i.sha256 for i in result.inputs}
    assert got == {
        "a.pcap": hashlib.sha256(plain.read_bytes()).hexdigest(),
        "b.pcap.gz": hashlib.sha256(gz.read_bytes()).hexdigest(),
    }
