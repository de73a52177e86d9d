"""Writing evidence captures: per-finding spools of pcap records, finished as pcap or pcapng.

Each finding's packets are packed (numba gather, one copy) into classic pcap records and kept in
memory; when the buffered bytes pass ``limit`` every finding's buffer is appended to its own hidden
temporary file, one file open at a time, so a thousand findings never hold a thousand descriptors.
At the end a finding whose packets share one link type *is* its temporary file (classic pcap, with
the input's microsecond or nanosecond timestamps); one whose packets mix link types is rewritten as
pcapng with one Interface Description Block per link type (nanosecond ``if_tsresol``). Finished files
are moved into place with ``os.replace`` (fsynced first with ``durable=True``: one fsync per file
costs milliseconds, and a thousand findings are a thousand files); a failed run removes its temporary files.

Formats: libpcap file format (draft-ietf-opsawg-pcap), pcapng (draft-ietf-opsawg-pcapng): SHB, IDB
with ``if_tsresol``, EPB. Everything is written little-endian.
"""

from __future__ import annotations

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


def pcap_records(
    data: np.ndarray, off: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray, ts_ns: np.ndarray, ns: bool
) -> np.ndarray:
    """Classic pcap records (little-endian) for the given packets, as one uint8 array."""
    ts = ts_ns.astype(np.int64)
    head = np.empty((off.shape[0], 4), dtype="<u4")
    head[:, 0] = ts // NS
    head[:, 1] = ts % NS if ns else (ts % NS) // 1000
    head[:, 2] = caplen
    head[:, 3] = wirelen
    return gather(data, off.astype(np.int64), caplen.astype(np.int64), head.view(np.uint8), False)


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _install(tmp: Path, target: Path, durable: bool) -> None:
    """Give ``tmp`` plain-open permissions (fsync it when ``durable``) and move it onto ``target``."""
    if durable:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, target)


def _mkstemp(out_dir: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    return Path(tmp)


@dataclass
class _Entry:
    name: str  # file name stem (the finding id, made safe)
    ns: bool
    chunks: list[np.ndarray] = field(default_factory=list)
    linktypes: list[np.ndarray] = field(default_factory=list)
    kinds: set[int] = field(default_factory=set)
    packets: int = 0
    max_caplen: int = 0
    tmp: Path | None = None


class Spool:
    """Per-finding buffers of pcap records, spilled to hidden temp files past ``limit`` bytes."""

    def __init__(
        self, out_dir: Path, names: list[str], ns: list[bool], limit: int, durable: bool = False
    ) -> None:
        self.out_dir, self.limit, self.durable = out_dir, limit, durable
        self.entries = [_Entry(n, v) for n, v in zip(names, ns, strict=True)]
        self.buffered = 0

    def add(
        self,
        index: int,
        data: np.ndarray,
        off: np.ndarray,
        caplen: np.ndarray,
        wirelen: np.ndarray,
        ts_ns: np.ndarray,
        linktype: np.ndarray,
    ) -> None:
        """Append packets (already selected, in capture order) to finding ``index``."""
        e = self.entries[index]
        recs = pcap_records(data, off, caplen, wirelen, ts_ns, e.ns)
        e.chunks.append(recs)
        e.linktypes.append(linktype.astype(np.int32))
        e.kinds.update(np.unique(linktype).tolist())
        e.packets += int(off.shape[0])
        e.max_caplen = max(e.max_caplen, int(caplen.max(initial=0)))
        self.buffered += int(recs.shape[0])
        if self.buffered > self.limit:
            self.spill()

    def spill(self) -> None:
        """Append every buffer to its temp file (opened and closed one at a time)."""
        for e in self.entries:
            if not e.chunks:
                continue
            if e.tmp is None:
                e.tmp = _mkstemp(self.out_dir, e.name)
                first = int(e.linktypes[0][0])
                e.chunks.insert(0, np.frombuffer(pcap_header(first, e.ns), dtype=np.uint8))
            with open(e.tmp, "ab") as fh:
                for chunk in e.chunks:
                    fh.write(chunk.data)
            e.chunks.clear()
        self.buffered = 0

    def finish(self) -> dict[int, Path]:
        """Finish every finding with packets; returns index -> written file."""
        self.spill()
        written: dict[int, Path] = {}
        for i, e in enumerate(self.entries):
            if e.tmp is None:
                continue
            written[i] = self._finish_one(e)
        return written

    def _finish_one(self, e: _Entry) -> Path:
        assert e.tmp is not None
        if len(e.kinds) == 1:
            if e.max_caplen > DEFAULT_SNAPLEN:
                with open(e.tmp, "rb+") as fh:
                    fh.seek(PCAP_SNAPLEN_OFFSET)
                    fh.write(struct.pack("<I", e.max_caplen))
            target = self.out_dir / f"{e.name}.pcap"
            _install(e.tmp, target, self.durable)
        else:
            target = self.out_dir / f"{e.name}.pcapng"
            ng = self._to_pcapng(e)
            _install(ng, target, self.durable)
            e.tmp.unlink()
        stale = target.with_suffix(".pcapng" if target.suffix == ".pcap" else ".pcap")
        stale.unlink(missing_ok=True)
        e.tmp = None
        return target

    def _to_pcapng(self, e: _Entry) -> Path:
        assert e.tmp is not None
        kinds = sorted(e.kinds)
        lts = np.concatenate(e.linktypes)
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
        """Remove every temp file (after a failure)."""
        for e in self.entries:
            if e.tmp is not None:
                e.tmp.unlink(missing_ok=True)
                e.tmp = None
            e.chunks.clear()
