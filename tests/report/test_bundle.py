"""The bundle: every file, SHA256SUMS that sha256sum verifies, atomic writes, re-rendering from JSON."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helix_audit.report import bundle as bundle_mod
from helix_audit.report import load_result, write_bundle
from helix_audit.report.atomic import atomic_open, atomic_write_text

from .factory import make_result

ALL = ["report.json", "flows.csv", "findings.csv", "report.sarif", "junit.xml", "report.html", "SHA256SUMS"]


def test_bundle_writes_every_format(tmp_path: Path) -> None:
    written = write_bundle(make_result(hostile=True), tmp_path / "out")
    assert [p.name for p in written] == ALL
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_sums_cover_evidence_and_verify(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "evidence").mkdir(parents=True)
    (out / "evidence" / "F0001.pcapng").write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(24))
    (out / "evidence" / "odd\\name.pcap").write_bytes(b"x")
    write_bundle(make_result(), out)
    sums = (out / "SHA256SUMS").read_text()
    assert "  evidence/F0001.pcapng\n" in sums and "  report.html\n" in sums
    assert "SHA256SUMS" not in sums
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (GNU coreutils) is not installed")
    ok = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=out, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (out / "flows.csv").write_text("tampered\n")
    bad = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert bad.returncode != 0 and "flows.csv: FAILED" in bad.stdout


def test_formats_subset_and_unknown(tmp_path: Path) -> None:
    written = write_bundle(make_result(), tmp_path / "a", formats=["json", "sarif"])
    assert [p.name for p in written] == ["report.json", "report.sarif", "SHA256SUMS"]
    with pytest.raises(ValueError, match="unknown report format.*pdf"):
        write_bundle(make_result(), tmp_path / "b", formats=["pdf"])


def test_failed_render_leaves_no_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    write_bundle(make_result(), out, formats=["html"])
    before = (out / "report.html").read_bytes()

    def explode(*args: object, **kwargs: object) -> Iterator[str]:
        yield "<!doctype html><html>" * 100_000  # past one written batch: the page is streamed
        raise RuntimeError("template failed")

    monkeypatch.setattr("helix_audit.report.html.render_pieces", explode)
    with pytest.raises(RuntimeError):
        write_bundle(make_result(hostile=True), out, formats=["html"])
    assert (out / "report.html").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "report.html"]


def test_atomic_open_midway_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    with pytest.raises(OSError), atomic_open(target) as fh:
        fh.write("half")
        raise OSError("disk full")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    atomic_write_text(target, "whole")
    assert target.read_text() == "whole" and oct(target.stat().st_mode & 0o777) != "0o600"


def test_rerender_from_json(tmp_path: Path) -> None:
    first = tmp_path / "first"
    write_bundle(make_result(hostile=True), first)
    second = tmp_path / "second"
    write_bundle(load_result(first / "report.json"), second)
    for name in ALL[:-1]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_writers_cover_formats() -> None:
    assert set(bundle_mod.FORMATS) == {"json", "csv", "sarif", "junit", "evidence", "html"}


def test_sums_use_the_digest_taken_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    hashed: list[str] = []
    real = bundle_mod.file_sha256
    monkeypatch.setattr(bundle_mod, "file_sha256", lambda p: hashed.append(p.name) or real(p))
    write_bundle(make_result(), out, formats=["json", "sarif", "junit"])
    assert hashed == ["junit.xml"]  # report.json and report.sarif were hashed as they were written
    if shutil.which("sha256sum") is not None:
        ok = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
        assert ok.returncode == 0, ok.stdout + ok.stderr


def test_sums_rehash_a_file_changed_after_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / "report.json"
    path.write_text("changed\n")
    stale = {path: ("0" * 64, (1, 1, 1))}
    bundle_mod.write_sums(out, stale)
    assert (out / "SHA256SUMS").read_text() == f"{bundle_mod.file_sha256(path)}  report.json\n"
