"""Writing evidence captures: per-finding spools of pcap records, finished as pcap or pcapng.

Each finding's packets are packed (numba gather, one copy) into classic pcap records and kept in
memory, except runs of records that already are the input's bytes (a little-endian pcap of the same
resolution, back to back, checked header by header): those are kept as byte ranges and copied
file to file by the kernel. When the buffered bytes pass ``limit`` every finding's buffer is
appended to its own hidden temporary file, one file open at a time, so a thousand findings never
hold a thousand descriptors. Each file's SHA-256 is taken from the bytes as they are buffered.
At the end a finding whose packets share one link type *is* its temporary file (classic pcap, with
the input's microsecond or nanosecond timestamps); one whose packets mix link types is rewritten as
pcapng with one Interface Description Block per link type (nanosecond ``if_tsresol``). Finished files
are moved into place with ``os.replace`` (fsynced first with ``durable=True``: one fsync per file
costs milliseconds, and a thousand findings are a thousand files); a failed run removes its temporary files.

Formats: libpcap file format (draft-ietf-opsawg-pcap), pcapng (draft-ietf-opsawg-pcapng): SHB, IDB
with ``if_tsresol``, EPB. Everything is written little-endian.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
PCAP_RECORD_LEN = 16  # ts_sec, ts_frac, incl_len, orig_len (all <u4)
PCAP_SNAPLEN_OFFSET = 16
DEFAULT_SNAPLEN = 262144
SHB = struct.Struct("<IIIHHqI")  # type, total len, byte-order magic, major, minor, section len, total len
SHB_TYPE, IDB_TYPE, EPB_TYPE = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
IDB_HEAD = struct.Struct("<IIHHI")  # type, total len, linktype, reserved, snaplen
IDB_TSRESOL_NS = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # if_tsresol=9, end
IDB_LEN = IDB_HEAD.size + len(IDB_TSRESOL_NS) + 4
EPB_HEAD_LEN = 28  # type, total len, interface id, ts high, ts low, captured len, original len
CONVERT_CHUNK = 65536  # records per chunk when rewriting a spool as pcapng
NS = 1_000_000_000
MIN_RUN = 1 << 16  # bytes: shorter runs of input records are copied through memory (fewer syscalls)
RUN_COST = 64  # spool budget bytes charged per buffered run of input records


@njit(cache=True)
def gather(data, off, caplen, head, epb):  # noqa: ANN001, ANN201
    """Records ``head[i] + data[off[i]:off[i]+caplen[i]]`` back to back; with ``epb`` each record is
    zero-padded to 4 bytes and followed by a copy of its block length (``head[i, 4:8]``)."""
    n, hl = head.shape
    total = 0
    for i in range(n):
        size = hl + caplen[i]
        if epb:
            size += (-caplen[i]) % 4 + 4
        total += size
    out = np.zeros(total, dtype=np.uint8)
    pos = 0
    for i in range(n):
        out[pos : pos + hl] = head[i]
        pos += hl
        c = caplen[i]
        out[pos : pos + c] = data[off[i] : off[i] + c]
        pos += c
        if epb:
            pos += (-c) % 4
            out[pos : pos + 4] = head[i, 4:8]
            pos += 4
    return out


@njit(cache=True)
def walk_records(spool, start):  # noqa: ANN001, ANN201
    """Offsets of the pcap records in ``spool`` from byte ``start`` (little-endian headers)."""
    offs = []
    pos = start
    end = spool.shape[0]
    while pos + 16 <= end:
        c = np.int64(spool[pos + 8]) | np.int64(spool[pos + 9]) << 8 | np.int64(spool[pos + 10]) << 16
        c |= np.int64(spool[pos + 11]) << 24
        if pos + 16 + c > end:
            break
        offs.append(pos)
        pos += 16 + c
    return np.array(offs, dtype=np.int64)


def pcap_heads(caplen: np.ndarray, wirelen: np.ndarray, ts_ns: np.ndarray, ns: bool) -> np.ndarray:
    """Classic pcap record headers (little-endian), one row of 16 bytes per packet."""
    ts = ts_ns.astype(np.int64)
    head = np.empty((ts.shape[0], 4), dtype="<u4")
    head[:, 0] = ts // NS
    head[:, 1] = ts % NS if ns else (ts % NS) // 1000
    head[:, 2] = caplen
    head[:, 3] = wirelen
    return head.view(np.uint8)


def pcap_header(linktype: int, ns: bool, snaplen: int = DEFAULT_SNAPLEN) -> bytes:
    return PCAP_HEADER.pack(PCAP_MAGIC_NS if ns else PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)


def pcapng_header(linktypes: list[int], snaplen: int) -> bytes:
    """SHB, then one IDB per link type (interface id = position in ``linktypes``)."""
    out = [SHB.pack(SHB_TYPE, SHB.size, BYTE_ORDER_MAGIC, 1, 0, -1, SHB.size)]
    for lt in linktypes:
        out.append(
            IDB_HEAD.pack(IDB_TYPE, IDB_LEN, lt, 0, snaplen) + IDB_TSRESOL_NS + struct.pack("<I", IDB_LEN)
        )
    return b"".join(out)


def spool_to_epbs(spool: np.ndarray, offs: np.ndarray, iface: np.ndarray, ns: bool) -> np.ndarray:
    """Rewrite pcap records (at ``offs`` in ``spool``) as EPBs on interfaces ``iface``."""
    rec = spool[offs[:, None] + np.arange(PCAP_RECORD_LEN)].copy().view("<u4")
    sec, frac, cap, wire = (rec[:, k].astype(np.int64) for k in range(4))
    ts = sec * NS + (frac if ns else frac * 1000)
    head = np.empty((offs.shape[0], EPB_HEAD_LEN // 4), dtype="<u4")
    head[:, 0] = EPB_TYPE
    head[:, 1] = EPB_HEAD_LEN + cap + (-cap) % 4 + 4
    head[:, 2] = iface
    head[:, 3] = ts >> 32
    head[:, 4] = ts & 0xFFFF_FFFF
    head[:, 5] = cap
    head[:, 6] = wire
    return gather(spool, offs + PCAP_RECORD_LEN, cap, head.view(np.uint8), True)


def _write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        view = view[os.write(fd, view) :]


def copy_range(out_fd: int, src_fd: int, start: int, stop: int) -> None:
    """Append bytes [start, stop) of ``src_fd`` to ``out_fd``: in the kernel (``sendfile``, page cache
    to page cache, nothing through this process's memory) where it can, else by ``pread``."""
    while start < stop:
        n = 0
        if hasattr(os, "sendfile"):
            try:
                n = os.sendfile(out_fd, src_fd, start, min(stop - start, 1 << 30))
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
        if n == 0:
            chunk = os.pread(src_fd, min(stop - start, 1 << 22), start)
            if not chunk:
                raise OSError(errno.EIO, f"input ended before byte {stop} (changed while being read)")
            _write_all(out_fd, chunk)
            n = len(chunk)
        start += n


def verbatim_runs(data: np.ndarray, off: np.ndarray, caplen: np.ndarray, heads: np.ndarray) -> list:
    """Row ranges [lo, hi) whose records are already in ``data`` byte for byte, back to back (the input
    is a pcap of the same byte order and timestamp resolution), at least ``MIN_RUN`` bytes long."""
    ok = off >= PCAP_RECORD_LEN
    at = np.where(ok, off - PCAP_RECORD_LEN, 0)[:, None] + np.arange(PCAP_RECORD_LEN)
    ok &= (data[at] == heads).all(axis=1)
    link = ok[:-1] & ok[1:] & (off[1:] == off[:-1] + caplen[:-1] + PCAP_RECORD_LEN)
    lo = np.flatnonzero(ok & ~np.concatenate(([False], link)))
    hi = np.flatnonzero(ok & ~np.concatenate((link, [False]))) + 1
    size = off[hi - 1] + caplen[hi - 1] - off[lo] + PCAP_RECORD_LEN
    keep = size >= MIN_RUN
    return list(zip(lo[keep].tolist(), hi[keep].tolist(), strict=True))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _install(tmp: Path, target: Path, durable: bool, mode: int | None) -> None:
    """Give ``tmp`` plain-open permissions ``mode`` unless it has them (fsync it when ``durable``)
    and move it onto ``target``."""
    if durable:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, target)


def _mkstemp(out_dir: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    return Path(tmp)


def _create(out_dir: Path, name: str, mode: int) -> tuple[Path, int, int | None]:
    """A new hidden temp file open for writing, and the ``mode`` it still needs (None: it has it).
    A name of our own first, created with the final permissions: ``mkstemp`` (random names, 0600,
    then a chmod) cost 4x as much, 1.5 s for the benchmark's 8,059 captures."""
    tmp = out_dir / f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except FileExistsError:
        fd, other = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
        return Path(other), fd, mode
    return tmp, fd, None if os.fstat(fd).st_mode & 0o7777 == mode else mode


#: A buffered piece of a capture: records in memory, or (input fd, start, stop) to copy from the input.
Chunk = np.ndarray | tuple[int, int, int]


@dataclass
class _Entry:
    name: str  # file name stem (the finding id, made safe)
    ns: bool
    chunks: list[Chunk] = field(default_factory=list)
    first_linktype: int = -1
    # each add's link types: one per packet, or (type, count) when they are all one (the usual case)
    linktypes: list[np.ndarray | tuple[int, int]] = field(default_factory=list)
    kinds: set[int] = field(default_factory=set)
    packets: int = 0
    max_caplen: int = 0
    tmp: Path | None = None
    mode: int | None = None  # permissions the temp file still needs
    digest: hashlib._Hash | None = None  # of the file as written so far, header included


class Spool:
    """Per-finding buffers of pcap records, spilled to hidden temp files past ``limit`` bytes.

    Runs of records that are the input's own bytes (a pcap in, a pcap out) are buffered as byte
    ranges of the input and copied by the kernel: the benchmark's largest capture is 1.5 GB, nearly
    the whole input. Each file's SHA-256 is taken as it is buffered, from bytes already in hand
    (``digests``, for SHA256SUMS)."""

    def __init__(
        self, out_dir: Path, names: list[str], ns: list[bool], limit: int, durable: bool = False
    ) -> None:
        self.out_dir, self.limit, self.durable = out_dir, limit, durable
        self.entries = [_Entry(n, v) for n, v in zip(names, ns, strict=True)]
        self.buffered = 0
        self.sources: list[int] = []
        self.digests: dict[int, str] = {}
        self.mode = 0o666 & ~_umask()

    def open_source(self, path: Path, data: np.ndarray) -> int | None:
        """An fd of ``path`` when ``data`` is its bytes as they are on disk (not decompressed), else None."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        if os.fstat(fd).st_size != data.shape[0]:
            os.close(fd)
            return None
        self.sources.append(fd)
        return fd

    def close_source(self, fd: int | None, copy: bool = True) -> None:
        """Done with an input: copy out the runs that read from it (unless failing), then close it."""
        if fd is None:
            return
        if copy and any(isinstance(c, tuple) and c[0] == fd for e in self.entries for c in e.chunks):
            self.spill()
        self.sources.remove(fd)
        os.close(fd)

    def add(
        self,
        index: int,
        data: np.ndarray,
        off: np.ndarray,
        caplen: np.ndarray,
        wirelen: np.ndarray,
        ts_ns: np.ndarray,
        linktype: np.ndarray,
        source: int | None = None,
    ) -> None:
        """Append packets (already selected, in capture order) to finding ``index``; ``source``: an fd
        of the file ``data`` is the bytes of (``open_source``)."""
        e = self.entries[index]
        if e.digest is None:
            e.first_linktype = int(linktype[0])
            e.digest = hashlib.sha256(pcap_header(e.first_linktype, e.ns))
        off, caplen = off.astype(np.int64), caplen.astype(np.int64)
        heads = pcap_heads(caplen, wirelen, ts_ns, e.ns)
        n = off.shape[0]
        runs = []
        if source is not None and int(caplen.sum()) + n * PCAP_RECORD_LEN >= MIN_RUN:
            runs = verbatim_runs(data, off, caplen, heads)
        pos = 0
        for lo, hi in [*runs, (n, n)]:
            if lo > pos:
                recs = gather(data, off[pos:lo], caplen[pos:lo], heads[pos:lo], False)
                e.chunks.append(recs)
                e.digest.update(recs)
                self.buffered += int(recs.shape[0])
            if hi > lo:
                start, stop = int(off[lo]) - PCAP_RECORD_LEN, int(off[hi - 1] + caplen[hi - 1])
                assert source is not None  # runs are only looked for with one
                e.chunks.append((source, start, stop))
                e.digest.update(data[start:stop].data)
                self.buffered += RUN_COST
            pos = hi
        first = linktype[0]
        kinds = [int(first)] if (linktype == first).all() else np.unique(linktype).tolist()
        e.linktypes.append((kinds[0], n) if len(kinds) == 1 else linktype.astype(np.int32))
        e.kinds.update(kinds)
        e.packets += n
        e.max_caplen = max(e.max_caplen, int(caplen.max(initial=0)))
        if self.buffered > self.limit:
            self.spill()

    def spill(self) -> None:
        """Append every buffer to its temp file (opened and closed one at a time)."""
        for e in self.entries:
            if not e.chunks:
                continue
            if e.tmp is None:
                e.tmp, fd, e.mode = _create(self.out_dir, e.name, self.mode)
                e.chunks.insert(0, np.frombuffer(pcap_header(e.first_linktype, e.ns), dtype=np.uint8))
            else:
                fd = os.open(e.tmp, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
                os.lseek(fd, 0, os.SEEK_END)
            try:
                for chunk in e.chunks:
                    if isinstance(chunk, tuple):
                        copy_range(fd, *chunk)
                    else:
                        _write_all(fd, chunk.data)
            finally:
                os.close(fd)
            e.chunks.clear()
        self.buffered = 0

    def finish(self) -> dict[int, Path]:
        """Finish every finding with packets; returns index -> written file (SHA-256 in ``digests``)."""
        self.spill()
        written: dict[int, Path] = {}
        for i, e in enumerate(self.entries):
            if e.tmp is None:
                continue
            digest = e.digest.hexdigest() if e.digest is not None else ""
            same = len(e.kinds) == 1 and e.max_caplen <= DEFAULT_SNAPLEN  # the file is what was hashed
            written[i] = self._finish_one(e)
            if same and digest:
                self.digests[i] = digest
        return written

    def _finish_one(self, e: _Entry) -> Path:
        assert e.tmp is not None
        if len(e.kinds) == 1:
            if e.max_caplen > DEFAULT_SNAPLEN:
                with open(e.tmp, "rb+") as fh:
                    fh.seek(PCAP_SNAPLEN_OFFSET)
                    fh.write(struct.pack("<I", e.max_caplen))
            target = self.out_dir / f"{e.name}.pcap"
            _install(e.tmp, target, self.durable, e.mode)
        else:
            target = self.out_dir / f"{e.name}.pcapng"
            ng = self._to_pcapng(e)
            _install(ng, target, self.durable, self.mode)
            e.tmp.unlink()
        stale = target.with_suffix(".pcapng" if target.suffix == ".pcap" else ".pcap")
        stale.unlink(missing_ok=True)
        e.tmp = None
        return target

    def _to_pcapng(self, e: _Entry) -> Path:
        assert e.tmp is not None
        kinds = sorted(e.kinds)
        lts = np.concatenate(
            [np.full(lt[1], lt[0], np.int32) if isinstance(lt, tuple) else lt for lt in e.linktypes]
        )
        iface = np.searchsorted(np.array(kinds, dtype=np.int32), lts)
        spool = np.memmap(e.tmp, dtype=np.uint8, mode="r")
        offs = walk_records(spool, PCAP_HEADER.size)
        out = _mkstemp(self.out_dir, e.name)
        with open(out, "wb") as fh:
            fh.write(pcapng_header(kinds, max(e.max_caplen, DEFAULT_SNAPLEN)))
            for lo in range(0, offs.shape[0], CONVERT_CHUNK):
                part = slice(lo, lo + CONVERT_CHUNK)
                fh.write(spool_to_epbs(spool, offs[part], iface[part], e.ns).data)
        del spool
        return out

    def discard(self) -> None:
        """Remove every temp file and close the inputs (after a failure)."""
        for e in self.entries:
            if e.tmp is not None:
                e.tmp.unlink(missing_ok=True)
                e.tmp = None
            e.chunks.clear()
        while self.sources:
            os.close(self.sources.pop())
