"""pcapng files: sections, interfaces, and record batches from the numba block walk.

Format: draft-ietf-opsawg-pcapng (https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/).
The kernel turns EPB (6), obsolete PB (2) and SPB (3) into records and skips every other block
(NRB, ISB, DSB, custom, unknown). It hands Section Header Blocks (either byte order; a file may hold
several sections) and Interface Description Blocks back to this module, which parses them here in
Python: they are rare. Interface ids are per section. ``if_tsresol`` (power of 10 or, with the high
bit set, of 2) and ``if_tsoffset`` (seconds) are applied in the kernel.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import CaptureError
from .interface import RecordBatch
from .pcap import Tally, alloc, damage_message, make_batch
from .pool import ArrayPool
from .walk import ST_BLOCKLEN, ST_END, ST_FULL, ST_IDB, ST_IFACE, ST_SHB, walk_pcapng

SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER_MAGIC = 0x1A2B3C4D
SHB_MIN_LEN = 28  # type, length, BOM, major, minor, section length (8), trailing length
BLOCK_HDR = "II"  # type, total length
IDB_FIXED = "HHI"  # linktype, reserved, snaplen
OPT_HDR = "HH"  # code, length
OPT_IF_NAME, OPT_IF_TSRESOL, OPT_IF_TSOFFSET = 2, 9, 14


class Damage(Exception):
    """A block the walk cannot get past; the message is the warning."""


@dataclass(frozen=True)
class Interface:
    linktype: int
    snaplen: int
    tsresol: int = 6  # raw if_tsresol byte
    tsoffset: int = 0  # seconds
    name: str | None = None

    @property
    def resolution(self) -> str:
        e = self.tsresol & 0x7F
        if self.tsresol & 0x80:
            return f"2^-{e}"
        return {6: "us", 9: "ns"}.get(e, f"1e-{e}")

    def scale(self) -> tuple[int, int, int]:
        """(mul, div, shift): ns = ts * mul // div for powers of 10, ts / 2**shift for powers of 2."""
        e = self.tsresol & 0x7F
        if self.tsresol & 0x80:
            return 1, 1, min(e, 63)
        if e <= 9:
            return 10 ** (9 - e), 1, -1
        return 1, 10 ** min(e - 9, 18), -1


def parse_shb(data: np.ndarray, pos: int) -> tuple[bool, int]:
    """(big endian?, block length) of the section header at ``pos``; raises Damage."""
    left = data.shape[0] - pos
    if left < 12:
        raise Damage(f"section header truncated at byte {pos} ({left} of {SHB_MIN_LEN} bytes)")
    bom = bytes(data[pos + 8 : pos + 12])
    if struct.unpack("<I", bom)[0] == BYTE_ORDER_MAGIC:
        big = False
    elif struct.unpack(">I", bom)[0] == BYTE_ORDER_MAGIC:
        big = True
    else:
        raise Damage(f"bad byte-order magic in section header at byte {pos} ({bom.hex(' ')})")
    e = ">" if big else "<"
    _, blen = struct.unpack(e + BLOCK_HDR, bytes(data[pos : pos + 8]))
    if blen < SHB_MIN_LEN or blen % 4:
        raise Damage(f"bad section header length at byte {pos}: {blen}")
    if blen > left:
        raise Damage(f"section header truncated at byte {pos} ({left} of {blen} bytes)")
    _check_trailer(data, pos, blen, e)
    return big, blen


def _check_trailer(data: np.ndarray, pos: int, blen: int, e: str) -> None:
    (tail,) = struct.unpack(e + "I", bytes(data[pos + blen - 4 : pos + blen]))
    if tail != blen:
        raise Damage(f"block length mismatch at byte {pos}: header says {blen}, trailer says {tail}")


def parse_idb(data: np.ndarray, pos: int, big: bool) -> tuple[Interface, int]:
    """The interface described at ``pos`` (the walk has checked its lengths) and the block length."""
    e = ">" if big else "<"
    block = bytes(data[pos : pos + struct.unpack(e + "I", bytes(data[pos + 4 : pos + 8]))[0]])
    if len(block) < 20:
        raise Damage(f"interface description block too short at byte {pos}: {len(block)} bytes")
    lt, _, snap = struct.unpack_from(e + IDB_FIXED, block, 8)
    tsresol, tsoffset, name = 6, 0, None
    p = 16
    while p + 4 <= len(block) - 4:
        code, olen = struct.unpack_from(e + OPT_HDR, block, p)
        val = block[p + 4 : p + 4 + olen]
        if code == 0:
            break
        if code == OPT_IF_TSRESOL and olen >= 1:
            tsresol = val[0]
        elif code == OPT_IF_TSOFFSET and olen >= 8:
            tsoffset = struct.unpack(e + "q", val[:8])[0]
        elif code == OPT_IF_NAME:
            name = val.decode("utf-8", "replace").rstrip("\0")
        p += 4 + olen + (-olen % 4)
    return Interface(lt, snap, tsresol, tsoffset, name), len(block)


class NgWalker:
    """Walk state across calls: current section's byte order and interfaces, all interfaces seen."""

    def __init__(self, data: np.ndarray, seen: dict[int, Interface] | None = None) -> None:
        self.data = data
        self.big = False
        self.section: list[Interface] = []
        self.seen = {} if seen is None else seen  # IDB offset -> interface, in order of appearance
        self.sections = 0
        self._arrays = self._tables()

    def _tables(self) -> tuple[np.ndarray, ...]:
        scales = [i.scale() for i in self.section]
        return (
            np.array([i.linktype for i in self.section], np.int32),
            np.array([i.snaplen for i in self.section], np.int64),
            np.array([s[0] for s in scales], np.int64),
            np.array([s[1] for s in scales], np.int64),
            np.array([s[2] for s in scales], np.int64),
            np.array([i.tsoffset * 1_000_000_000 for i in self.section], np.int64),
        )

    def step(self, pos: int, stop: int, cols: tuple, n: int) -> tuple[int, int, int, int]:
        """Walk to ``stop``, a full ``cols`` or damage; SHB/IDB are parsed on the way (Damage)."""
        while True:
            n, pos, st, declared, _ = walk_pcapng(self.data, pos, stop, self.big, *self._arrays, *cols[:5], n)  # type: ignore[call-arg]
            if st == ST_SHB:
                self.big, blen = parse_shb(self.data, pos)
                self.section, self.sections = [], self.sections + 1
            elif st == ST_IDB:
                iface, blen = parse_idb(self.data, pos, self.big)
                self.section.append(iface)
                self.seen.setdefault(pos, iface)
            else:
                return n, pos, st, declared
            self._arrays = self._tables()
            pos += blen

    def skip_to(self, start: int) -> tuple[int, int]:
        """Count records before ``start`` (state follows); returns (records, first block >= start)."""
        n, pos, st, _ = self.step(0, start, _EMPTY_COLS, 0)
        return n, pos

    def read_ahead(self) -> None:
        """Parse the first section header and the interfaces before the first packet."""
        self.step(0, self.data.shape[0], alloc(1), 0)


_EMPTY_COLS = alloc(0)


def open_pcapng(data: np.ndarray, name: str) -> NgWalker:
    walker = NgWalker(data)
    try:
        walker.big, _ = parse_shb(data, 0)
    except Damage as exc:
        raise CaptureError(f"{name}: {exc}") from None
    with contextlib.suppress(Damage):  # reported when batches() reaches it
        walker.read_ahead()
    return walker


def pcapng_batches(
    source: str,
    data: np.ndarray,
    walker: NgWalker,
    batch_size: int,
    start: int,
    stop: int,
    first_frame: int,
    tally: Tally,
    first_batch: int = 0,
) -> Iterator[RecordBatch]:
    """Records of blocks starting in [start, stop); ``walker`` already holds the state at ``start``.
    ``first_batch``: as ``pcap_batches``."""
    pos, frame = start, first_frame
    pool = ArrayPool()
    while True:
        cols = alloc(batch_size, pool)
        if first_batch:
            cols, first_batch = tuple(c[:first_batch] for c in cols), 0
        try:
            n, pos, st, declared = walker.step(pos, stop, cols, 0)
        except Damage as exc:
            n, st, declared = 0, -1, 0
            tally.warn(f"{exc} (after frame {frame - 1})")
        if n:
            tally.add(cols[3][:n])
            yield make_batch(source, data, cols, n, frame)
            frame += n
        del cols  # the next alloc can reuse these arrays once the consumer lets go of the batch
        if st == ST_FULL:
            continue
        if st not in (ST_END, -1):
            tally.warn(_ng_damage(walker, st, pos, frame - 1, declared))
        return


def _ng_damage(walker: NgWalker, st: int, pos: int, frame: int, declared: int) -> str:
    where = f"at byte {pos} (after frame {frame})"
    if st == ST_IFACE:
        known = len(walker.section)
        return f"packet block {where} names interface {declared}, but the section describes {known}"
    if st == ST_BLOCKLEN:
        return _blocklen_message(walker, pos, declared, where)
    return damage_message(st, pos, frame, declared, walker.data.shape[0] - pos, "block")


def _blocklen_message(walker: NgWalker, pos: int, declared: int, where: str) -> str:
    e = ">" if walker.big else "<"
    data = walker.data
    if declared >= 12 and declared % 4 == 0 and pos + declared <= data.shape[0]:
        (tail,) = struct.unpack(e + "I", bytes(data[pos + declared - 4 : pos + declared]))
        if tail != declared:
            return f"block length mismatch {where}: header says {declared}, trailer says {tail}"
        if declared >= 24:
            btype, _, _, _, _, caplen = struct.unpack(e + "6I", bytes(data[pos : pos + 24]))
            return f"packet block {where}: {caplen} captured bytes do not fit its {declared}-byte block"
    return f"bad block length {where}: {declared} bytes declared"
