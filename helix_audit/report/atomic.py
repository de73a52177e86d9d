"""Atomic file output: write a temporary file beside the target, then ``os.replace`` it in.

A render that raises half way leaves the previous file (or no file) in place, never half of a new
one. The temporary file gets the permissions a plain ``open(path, "w")`` would (0666 less the umask),
not ``mkstemp``'s 0600, so a bundle stays readable by whoever reads reports.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on clean exit it replaces ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        binary = "b" in mode
        with os.fdopen(
            fd, mode, encoding=None if binary else encoding, newline=None if binary else newline
        ) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, newline: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w", newline=newline) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb", encoding=None) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_chunks(path: str | Path, chunks: Iterable[Any]) -> tuple[Path, str]:
    """Write bytes-like ``chunks`` to ``path`` atomically, hashing them on the way; returns the
    path and the file's SHA-256 (hex)."""
    digest = hashlib.sha256()
    with atomic_open(path, "wb", encoding=None) as fh:
        for chunk in chunks:
            digest.update(chunk)
            fh.write(chunk)
    return Path(path), digest.hexdigest()
