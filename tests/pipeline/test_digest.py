"""The input digest: mapped files, files larger than a step and a release, empty files, pipes."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from helix_audit import digest
from helix_audit.digest import file_sha256


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 10 * 4096 + 17])
def test_digest_equals_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_digest_over_many_steps_and_releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # small steps and releases so that a test-sized file crosses both many times, unaligned
    monkeypatch.setattr(digest, "STEP", 3 * 4096 + 5)
    monkeypatch.setattr(digest, "RELEASE", 8 * 4096)
    data = os.urandom(50 * 4096 + 123)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_digest_of_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = os.urandom(300_000)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        assert file_sha256(fifo) == hashlib.sha256(data).hexdigest()
    finally:
        writer.join()
