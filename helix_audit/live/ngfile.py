"""The pcapng file a live capture writes, and the interface statistics read back from any pcapng.

Why our own writer: the evidence file must carry what a person checks in Wireshark besides the
packets: the interface names (``if_name``), the capture filter (``if_filter``), nanosecond
timestamps (``if_tsresol``) and, at the end, one Interface Statistics Block per interface with the
kernel's counters (``isb_ifrecv`` / ``isb_ifdrop``: dumpcap's meaning, ``tp_packets`` and
``tp_drops`` of ``PACKET_STATISTICS``). Each EPB is written as it arrives (buffered, flushed by the
caller about twice a second), so an interrupted capture still leaves every flushed packet readable.

Reading: dumpcap and we write the ISBs last, so :func:`read_interface_stats` walks the blocks
backwards from the end of the file (each block ends with its length) while they are ISBs, and
names the interfaces from the IDBs before the first packet: a few reads whatever the file's size.
Format: draft-ietf-opsawg-pcapng; everything is written little-endian.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SHB_TYPE, IDB_TYPE, EPB_TYPE, ISB_TYPE = 0x0A0D0D0A, 1, 6, 5
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, SHB_USERAPPL = 0, 4
IF_NAME, IF_TSRESOL, IF_FILTER = 2, 9, 11
ISB_STARTTIME, ISB_ENDTIME, ISB_IFRECV, ISB_IFDROP = 2, 3, 4, 5
EPB_HEAD = struct.Struct("<IIIIIII")  # type, total len, interface, ts high, ts low, caplen, wirelen
MAX_TRAILING = 4096  # ISBs read back at most (one per interface)


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def _opts(*opts: bytes) -> bytes:
    return b"".join(opts) + _opt(OPT_END, b"") if opts else b""


@dataclass(frozen=True)
class IfaceStats:
    """One interface's kernel counters: ``received`` includes ``dropped`` (as PACKET_STATISTICS)."""

    name: str
    received: int | None
    dropped: int | None


class PcapngWriter:
    """SHB and one IDB per interface up front, EPBs as packets come, ISBs on :meth:`close`."""

    def __init__(
        self,
        path: Path,
        interfaces: list[tuple[str, int, int]],
        bpf: str | None = None,
        application: str = "helix-audit",
    ) -> None:
        """``interfaces``: (name, link type, snaplen) in interface-id order."""
        self.path = path
        self.f: BinaryIO = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by close()
        shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _opts(
            _opt(SHB_USERAPPL, application.encode())
        )
        out = [_block(SHB_TYPE, shb)]
        for name, linktype, snaplen in interfaces:
            opts = [_opt(IF_NAME, name.encode()), _opt(IF_TSRESOL, b"\x09")]
            if bpf:
                opts.append(_opt(IF_FILTER, b"\0" + bpf.encode()))
            out.append(_block(IDB_TYPE, struct.pack("<HHI", linktype, 0, snaplen) + _opts(*opts)))
        self.f.write(b"".join(out))
        self.packets = 0
        self.bytes = 0

    def write(self, iface: int, ts_ns: int, data: bytes, wirelen: int) -> None:
        caplen = len(data)
        pad = -caplen % 4
        total = EPB_HEAD.size + caplen + pad + 4
        head = EPB_HEAD.pack(EPB_TYPE, total, iface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, caplen, wirelen)
        self.f.write(head + data + b"\0" * pad + struct.pack("<I", total))
        self.packets += 1
        self.bytes += caplen

    def flush(self) -> None:
        self.f.flush()

    def close(self, stats: list[tuple[int, int, int, int | None, int | None]] | None = None) -> None:
        """``stats``: per interface (id, start ns, end ns, received, dropped); then fsync and close."""
        try:
            for iface, start, end, received, dropped in stats or []:
                opts = [
                    _opt(ISB_STARTTIME, struct.pack("<II", start >> 32, start & 0xFFFFFFFF)),
                    _opt(ISB_ENDTIME, struct.pack("<II", end >> 32, end & 0xFFFFFFFF)),
                ]
                if received is not None:
                    opts.append(_opt(ISB_IFRECV, struct.pack("<Q", received)))
                if dropped is not None:
                    opts.append(_opt(ISB_IFDROP, struct.pack("<Q", dropped)))
                body = struct.pack("<III", iface, end >> 32, end & 0xFFFFFFFF) + _opts(*opts)
                self.f.write(_block(ISB_TYPE, body))
            self.f.flush()
            os.fsync(self.f.fileno())
        finally:
            self.f.close()


def _options(block: bytes, start: int, e: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    p = start
    while p + 4 <= len(block) - 4:
        code, olen = struct.unpack_from(e + "HH", block, p)
        if code == OPT_END:
            break
        out.setdefault(code, block[p + 4 : p + 4 + olen])
        p += 4 + olen + (-olen % 4)
    return out


def _names(f: BinaryIO, e: str, size: int) -> list[str]:
    """The first section's interface names, from the IDBs before its first other block."""
    names: list[str] = []
    f.seek(0)
    pos = struct.unpack(e + "I", f.read(8)[4:8])[0]
    while pos + 12 <= size:
        f.seek(pos)
        btype, blen = struct.unpack(e + "II", f.read(8))
        if btype != IDB_TYPE or blen < 20 or blen % 4 or pos + blen > size:
            break
        block = f.read(blen - 8)
        name = _options(b"\0" * 8 + block, 16, e).get(IF_NAME, b"")
        names.append(name.decode("utf-8", "replace").rstrip("\0") or f"interface {len(names)}")
        pos += blen
    return names


def read_interface_stats(path: str | Path) -> list[IfaceStats]:
    """Kernel counters from the ISBs at the end of a pcapng file ([] if none, or not pcapng).

    Only the last section's trailing ISBs count (they are the capture's final statistics); an ISB
    naming an interface twice keeps the last one written."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(12)
            if len(head) < 12 or struct.unpack("<I", head[:4])[0] != SHB_TYPE:
                return []
            e = "<" if struct.unpack("<I", head[8:12])[0] == BYTE_ORDER_MAGIC else ">"
            found: dict[int, tuple[int | None, int | None]] = {}
            pos = size - size % 4
            for _ in range(MAX_TRAILING):
                if pos < 12 + 28:
                    break
                f.seek(pos - 4)
                (blen,) = struct.unpack(e + "I", f.read(4))
                if blen < 24 or blen % 4 or blen > pos:
                    break
                f.seek(pos - blen)
                block = f.read(blen)
                btype, head_len = struct.unpack_from(e + "II", block)
                if btype != ISB_TYPE or head_len != blen:
                    break
                iface = struct.unpack_from(e + "I", block, 8)[0]
                opts = _options(block, 20, e)
                recv, drop = opts.get(ISB_IFRECV), opts.get(ISB_IFDROP)
                found.setdefault(iface, (
                    struct.unpack(e + "Q", recv[:8])[0] if recv and len(recv) >= 8 else None,
                    struct.unpack(e + "Q", drop[:8])[0] if drop and len(drop) >= 8 else None,
                ))  # fmt: skip
                pos -= blen
            if not found:
                return []
            names = _names(f, e, size)
    except (OSError, struct.error):
        return []
    return [
        IfaceStats(names[i] if i < len(names) else f"interface {i}", recv, drop)
        for i, (recv, drop) in sorted(found.items())
    ]


def drop_warnings(path: str | Path) -> list[str]:
    """Capture-quality warnings for the packets the kernel dropped while capturing ``path``."""
    out = []
    for s in read_interface_stats(path):
        if s.dropped:
            of = f" of {s.received}" if s.received is not None else ""
            out.append(
                f"kernel dropped {s.dropped}{of} packets on {s.name} while capturing: flows may "
                "be missing packets (their outcomes and names may be incomplete)"
            )
    return out


__all__ = ["IfaceStats", "PcapngWriter", "drop_warnings", "read_interface_stats"]
