"""Small pcap / pcapng writers (struct) for synthetic test captures, damaged ones included."""

from __future__ import annotations

import struct

ETH_FRAME = bytes.fromhex("ffffffffffff0200000000010800") + bytes(46)  # 60-byte Ethernet frame


def pcap_header(
    endian: str = "<",
    magic: int = 0xA1B2C3D4,
    snaplen: int = 65535,
    linktype: int = 1,
    version: tuple[int, int] = (2, 4),
) -> bytes:
    return struct.pack(endian + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)


def pcap_record(
    sec: int, frac: int, data: bytes, wirelen: int | None = None, endian: str = "<", caplen: int | None = None
) -> bytes:
    cap = len(data) if caplen is None else caplen
    wire = len(data) if wirelen is None else wirelen
    return struct.pack(endian + "IIII", sec, frac, cap, wire) + data


def pcap_file(n: int, endian: str = "<", magic: int = 0xA1B2C3D4, t0: int = 1_700_000_000) -> bytes:
    recs = b"".join(pcap_record(t0 + i, i * 10, ETH_FRAME + bytes(i % 7), endian=endian) for i in range(n))
    return pcap_header(endian, magic) + recs


def _block(btype: int, body: bytes, e: str = "<", trailer: int | None = None) -> bytes:
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return (
        struct.pack(e + "II", btype, total)
        + body
        + struct.pack(e + "I", total if trailer is None else trailer)
    )


def shb(e: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def option(code: int, value: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def idb(
    linktype: int = 1, snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None, e: str = "<"
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), e)
    if tsoffset is not None:
        opts += option(14, struct.pack(e + "q", tsoffset), e)
    if opts:
        opts += option(0, b"", e)
    return _block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts, e)


def epb(
    iface: int, ts: int, data: bytes, wirelen: int | None = None, e: str = "<", trailer: int | None = None
) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    body = struct.pack(e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), wire) + data
    return _block(6, body, e, trailer)


def spb(data: bytes, wirelen: int | None = None, e: str = "<") -> bytes:
    return _block(3, struct.pack(e + "I", len(data) if wirelen is None else wirelen) + data, e)


def pb(iface: int, ts: int, data: bytes, e: str = "<") -> bytes:
    body = struct.pack(e + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data
    return _block(2, body, e)


def other(btype: int, body: bytes = b"\x00" * 8, e: str = "<") -> bytes:
    """Any other block (NRB 4, ISB 5, DSB 10, custom 0xBAD ...), which readers skip."""
    return _block(btype, body, e)
