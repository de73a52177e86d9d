"""Opening capture files: magic sniffing, memory mapping, gzip, directories of rotated files.

A file is memory-mapped once and shared, as a flat ``uint8`` array, by every batch. gzip files
(RFC 1952) are decompressed in a streaming way: into memory when small, else into an unlinked
temporary file that is then memory-mapped. Unusable inputs raise one-line :class:`InputError` /
:class:`CaptureError` messages naming the file; damage found mid-file is a warning in ``info``.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import CaptureError, InputError
from .interface import CaptureInfo, RecordBatch
from .pcap import GLOBAL_HDR_LEN, Tally, parse_header, pcap_batches, sniff_pcap
from .pcapng import SHB_MAGIC, NgWalker, open_pcapng, pcapng_batches

GZIP_MAGIC = b"\x1f\x8b"
GZIP_CHUNK = 1 << 20
GZIP_IN_MEMORY = 64 << 20  # decompressed bytes kept in memory; beyond, spill to a temp file
DEFAULT_BATCH = 65536  # packets per batch: ~55 MB of packet bytes on the benchmark; as fast as 4x more
RELEASE_MIN = 16 << 20  # release mapped pages in steps of at least this many bytes


def sniff(head: bytes) -> str | None:
    """'pcap', 'pcapng' or None from a file's first bytes (already decompressed)."""
    if head[:4] == SHB_MAGIC:
        return "pcapng"
    return "pcap" if sniff_pcap(head) else None


class Capture:
    """One opened capture file. ``batches()`` streams its records; ``info`` describes it."""

    def __init__(
        self,
        path: str,
        data: np.ndarray,
        gz: bool,
        size: int,
        warnings: list[str],
        mm: mmap.mmap | None = None,
    ) -> None:
        self.path, self.data, self.gzip, self.size = path, data, gz, size
        self._mm = mm
        #: SHA-256 of the file, set by a full read with ``batches(sha256=True)`` once it has ended.
        self.sha256: str | None = None
        self.format = sniff(bytes(data[:4]))
        if self.format is None:
            what = "gzip of data starting with" if gz else "starts with"
            raise CaptureError(f"{path}: not a pcap or pcapng file ({what} {bytes(data[:4]).hex(' ')})")
        self._tally = Tally(warnings=list(warnings))
        self._open_warnings = list(warnings)
        if self.format == "pcap":
            self.header = parse_header(data, path)
        else:
            self._ng = open_pcapng(data, path)

    @property
    def info(self) -> CaptureInfo:
        t = self._tally
        return CaptureInfo(
            path=self.path,
            format=self.format or "",
            gzip=self.gzip,
            endian=self._endian(),
            ts_resolution=self._resolution(),
            snaplen=self._snaplen(),
            link_types=self._link_types(),
            packets=t.packets,
            size=self.size,
            first_ts_ns=t.first_ts_ns,
            last_ts_ns=t.last_ts_ns,
            warnings=tuple(t.warnings),
        )

    @property
    def interfaces(self) -> list:
        """pcapng: every Interface (link type, snaplen, if_tsresol, if_tsoffset, name) seen so far."""
        return list(self._ng.seen.values()) if self.format == "pcapng" else []

    def _endian(self) -> str:
        return self.header.endian if self.format == "pcap" else ("big" if self._first_big() else "little")

    def _first_big(self) -> bool:
        return bytes(self.data[8:12]) == b"\x1a\x2b\x3c\x4d"

    def _resolution(self) -> str:
        if self.format == "pcap":
            return self.header.ts_resolution
        return self.interfaces[0].resolution if self.interfaces else "us"

    def _snaplen(self) -> int | None:
        if self.format == "pcap":
            return self.header.snaplen
        return (self.interfaces[0].snaplen or None) if self.interfaces else None

    def _link_types(self) -> tuple[int, ...]:
        if self.format == "pcap":
            return (self.header.linktype,)
        return tuple(i.linktype for i in self.interfaces)

    def batches(
        self,
        batch_size: int = DEFAULT_BATCH,
        *,
        byte_range: tuple[int, int] | None = None,
        first_frame: int = 1,
        sha256: bool = False,
    ) -> Iterator[RecordBatch]:
        """Stream records in batches. With ``byte_range=(start, end)`` only records whose header
        starts in [start, end) are read, numbered from ``first_frame`` (see partition.plan_ranges);
        only a full read (no byte_range) updates ``info``'s packets, time range and warnings.

        ``sha256``: hash the file's bytes as the batches are consumed, from the pages already
        mapped for them (no second read of the file), and set :attr:`sha256` when the read ends.
        Only a full read of an uncompressed, mapped file can; elsewhere :attr:`sha256` stays None.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        size = int(self.data.shape[0])
        full = byte_range is None
        start, stop = (0, size) if byte_range is None else byte_range
        if full:
            self._tally = tally = Tally(warnings=list(self._open_warnings))
        else:
            tally = Tally()
        if self.format == "pcap":
            start = max(start, GLOBAL_HDR_LEN)
            it = pcap_batches(self.path, self.data, self.header, batch_size, start, stop, first_frame, tally)
        else:
            walker = NgWalker(self.data, self._ng.seen)
            if start > 0:
                _, start = walker.skip_to(start)
            it = pcapng_batches(self.path, self.data, walker, batch_size, start, stop, first_frame, tally)
        digest = hashlib.sha256() if sha256 and full and not self.gzip and self._mm is not None else None
        return self._releasing(it, start, digest)

    def _releasing(
        self, batches: Iterator[RecordBatch], start: int, digest: hashlib._Hash | None = None
    ) -> Iterator[RecordBatch]:
        """Hand out batches; when the consumer asks for the next one, it is done with the one it
        had: drop that batch's mapped pages from the process (they refault from the page cache if
        touched again, e.g. by a later evidence pass), so RSS holds about one batch of packet bytes
        even on 20M-packet files. ``digest`` (a full read from byte 0) takes the pages first."""
        released = start - start % mmap.PAGESIZE
        view = memoryview(self._mm) if digest is not None and self._mm is not None else None
        try:
            for batch in batches:
                yield batch
                if self._mm is not None and len(batch):
                    upto = int(batch.offset[-1])  # the last record's page may hold the next batch's first
                    upto -= upto % mmap.PAGESIZE
                    if upto - released >= RELEASE_MIN:
                        if view is not None and digest is not None:
                            digest.update(view[released:upto])
                        self._mm.madvise(mmap.MADV_DONTNEED, released, upto - released)
                        released = upto
                del batch  # not held while the next one is read: the reader's pool reuses its arrays
            if view is not None and digest is not None:  # the rest: last records, damage, trailing bytes
                digest.update(view[released:])
                self.sha256 = digest.hexdigest()
        finally:
            if view is not None:
                view.release()


def open_capture(path: str | os.PathLike[str]) -> Capture:
    """Open a pcap / pcapng file, possibly gzip-compressed. Raises InputError / CaptureError."""
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{name}: no such file")
    if p.is_dir():
        raise InputError(f"{name}: is a directory, not a capture file")
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise CaptureError(f"{name}: empty file (0 bytes)")
            if f.read(2) == GZIP_MAGIC:
                f.seek(0)
                data, mm, warnings = _gunzip(f, name)
                return Capture(name, data, True, size, warnings, mm)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    return Capture(name, np.frombuffer(mm, dtype=np.uint8), False, size, [], mm)


def _gunzip(f, name: str) -> tuple[np.ndarray, mmap.mmap | None, list[str]]:  # noqa: ANN001
    """Decompress every gzip member of ``f``; damage after some output is a warning."""
    out = _Spill()
    warnings: list[str] = []
    z = zlib.decompressobj(wbits=31)
    try:
        while chunk := f.read(GZIP_CHUNK):
            while chunk:
                out.write(z.decompress(chunk))
                chunk = b""
                if z.eof and z.unused_data:
                    chunk, z = z.unused_data, zlib.decompressobj(wbits=31)
        if not z.eof and out.size:
            warnings.append(f"gzip stream truncated after {out.size} decompressed bytes")
    except zlib.error as exc:
        if out.size == 0:
            raise CaptureError(f"{name}: not a valid gzip file ({exc})") from None
        warnings.append(f"gzip stream damaged after {out.size} decompressed bytes ({exc})")
    if out.size == 0:
        raise CaptureError(f"{name}: empty file (0 bytes after gunzip)")
    return (*out.array(), warnings)


class _Spill:
    """Bytes kept in memory up to GZIP_IN_MEMORY, then in an unlinked temporary file."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.file: IO[bytes] | None = None
        self.size = 0

    def write(self, b: bytes) -> None:
        self.size += len(b)
        if self.file is None:
            self.buf += b
            if len(self.buf) > GZIP_IN_MEMORY:
                self.file = tempfile.TemporaryFile(prefix="helix-gunzip-")  # noqa: SIM115
                self.file.write(self.buf)
                self.buf = bytearray()
        else:
            self.file.write(b)

    def array(self) -> tuple[np.ndarray, mmap.mmap | None]:
        if self.file is None:
            return np.frombuffer(bytes(self.buf), dtype=np.uint8), None
        self.file.flush()
        mm = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(mm, dtype=np.uint8), mm


def expand_inputs(paths: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...]) -> list[Path]:
    """Files as given; directories recursively, keeping capture files (by magic, gzip or not),
    ordered by first packet time then name. Raises InputError for a missing path or a directory
    without captures."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{raw}: no such file or directory")
        if not p.is_dir():
            out.append(p)
            continue
        found = [f for f in sorted(p.rglob("*")) if f.is_file() and sniff(_head(f, 8))]
        if not found:
            raise InputError(f"{raw}: no pcap or pcapng files")
        out += sorted(found, key=_time_key)
    return list(dict.fromkeys(out))


def _time_key(path: Path) -> tuple[int, int, str]:
    ts = first_timestamp(path)
    return (ts is None, ts or 0, str(path))


def first_timestamp(path: Path, head_bytes: int = 1 << 20) -> int | None:
    """The first packet's ts_ns, read from the file's first ``head_bytes`` (decompressed)."""
    head = _head(path, head_bytes)
    try:
        cap = Capture(str(path), np.frombuffer(head, dtype=np.uint8), False, len(head), [])
        for batch in cap.batches(batch_size=1):
            return int(batch.ts_ns[0])
    except InputError:
        pass
    return None


def _head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a file, decompressed if it is gzip; b"" when unreadable."""
    out = b""
    try:
        with open(path, "rb") as f:
            raw = f.read(max(n, 4096))
            if raw[:2] != GZIP_MAGIC:
                return raw[:n]
            z = zlib.decompressobj(wbits=31)
            while raw and len(out) < n and not z.eof:
                out += z.decompress(raw, n - len(out))
                raw = z.unconsumed_tail or f.read(GZIP_CHUNK)
    except (OSError, zlib.error):
        pass
    return out
