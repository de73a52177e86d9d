"""``drain`` on a scripted socket: the control-message paths a veth lab cannot reach (no root)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

from helix_audit.live.sockets import (
    AUXDATA,
    PACKET_AUXDATA,
    SO_TIMESTAMPNS,
    SOL_PACKET,
    TIMESPEC,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    Tap,
    drain,
)

ETH = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + b"\x45" + b"\0" * 39  # 54 bytes
TS = 1_795_000_000 * 10**9 + 123_456_789


class ScriptedSocket:
    """recvmsg_into() hands out queued (data, ancillary, address); then EAGAIN."""

    def __init__(self, packets: list[tuple[bytes, list, tuple]]) -> None:
        self.packets: Iterator[tuple[bytes, list, tuple]] = iter(packets)

    def recvmsg_into(self, buffers: list[bytearray], ancbufsize: int) -> tuple[int, list, int, tuple]:
        try:
            data, anc, addr = next(self.packets)
        except StopIteration:
            raise BlockingIOError from None
        n = min(len(data), len(buffers[0]))
        buffers[0][:n] = data[:n]
        return n, anc, 0, addr


def _anc(wirelen: int, tci: int = 0, status: int = 0, tpid: int = 0, ts: int | None = TS) -> list:
    out = [(SOL_PACKET, PACKET_AUXDATA, AUXDATA.pack(status, wirelen, wirelen, 0, 0, tci, tpid))]
    if ts is not None:
        out.append((socket.SOL_SOCKET, SO_TIMESTAMPNS, TIMESPEC.pack(ts // 10**9, ts % 10**9)))
    return out


def _run(packets: list, linktype: int = 1, snaplen: int = 65535, cooked: bool = False) -> list:
    tap = Tap("x", ScriptedSocket(packets), linktype, snaplen, cooked=cooked)  # type: ignore[arg-type]
    tap.buf = bytearray(snaplen)
    got: list = []
    n = drain(tap, lambda ts, data, wirelen: got.append((ts, data, wirelen)))
    assert n == len(got) and tap.idle
    return got


def test_timestamp_and_lengths() -> None:
    ((ts, data, wirelen),) = _run([(ETH, _anc(len(ETH)), ("eth0", 0x0800, 0, 1, b""))])
    assert ts == TS and data == ETH and wirelen == len(ETH)


def test_vlan_tag_is_put_back() -> None:
    anc = _anc(len(ETH), tci=7, status=TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, tpid=0x88A8)
    ((_, data, wirelen),) = _run([(ETH, anc, ("eth0", 0x0800, 0, 1, b""))])
    assert data == ETH[:12] + struct.pack("!HH", 0x88A8, 7) + ETH[12:] and wirelen == len(ETH) + 4
    anc = _anc(len(ETH), tci=0, status=TP_STATUS_VLAN_VALID)  # VLAN 0 (priority tag), default TPID
    ((_, data, _),) = _run([(ETH, anc, ("eth0", 0x0800, 0, 1, b""))])
    assert data[12:16] == b"\x81\x00\x00\x00"


def test_vlan_tag_not_put_into_raw_ip() -> None:
    ip = ETH[14:]
    anc = _anc(len(ip), tci=7, status=TP_STATUS_VLAN_VALID)
    ((_, data, _),) = _run([(ip, anc, ("tun0", 0x0800, 0, 65534, b""))], linktype=101)
    assert data == ip


def test_snaplen_cuts_and_keeps_the_wire_length() -> None:
    big = ETH + b"\xaa" * 1000
    ((_, data, wirelen),) = _run([(big, _anc(len(big)), ("eth0", 0x0800, 0, 1, b""))], snaplen=64)
    assert data == big[:64] and wirelen == len(big)
    tagged = _anc(len(big), tci=5, status=TP_STATUS_VLAN_VALID)
    ((_, data, wirelen),) = _run([(big, tagged, ("eth0", 0x0800, 0, 1, b""))], snaplen=64)
    assert len(data) == 64 and data[12:16] == b"\x81\x00\x00\x05" and wirelen == len(big) + 4


def test_cooked_header_from_the_address() -> None:
    ip = ETH[14:]
    mac = bytes.fromhex("020000000001")
    ((_, data, wirelen),) = _run(
        [(ip, _anc(len(ip)), ("eth0", 0x0800, 4, 1, mac))], linktype=113, cooked=True
    )
    assert data[:16] == struct.pack(">HHH8sH", 4, 1, 6, mac, 0x0800) and data[16:] == ip
    assert wirelen == len(ip) + 16


def test_loopback_outgoing_copy_is_skipped_and_no_timestamp_falls_back() -> None:
    packets = [
        (ETH, _anc(len(ETH)), ("lo", 0x0800, 4, 772, b"")),  # leaving lo: skipped
        (ETH, _anc(len(ETH), ts=None), ("lo", 0x0800, 0, 772, b"")),  # arriving: kept
    ]
    ((ts, data, _),) = _run(packets)
    assert data == ETH and ts > TS  # now, from the clock


def test_drain_stops_at_its_limit() -> None:
    tap = Tap("x", ScriptedSocket([(ETH, _anc(len(ETH)), ("eth0", 0x0800, 0, 1, b""))] * 5), 1, 100)  # type: ignore[arg-type]
    tap.buf = bytearray(100)
    assert drain(tap, lambda *a: None, limit=3) == 3 and not tap.idle
    assert drain(tap, lambda *a: None, limit=3) == 2 and tap.idle
