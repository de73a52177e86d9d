"""Raw packet sockets on Linux through scapy, read without dissecting a single packet.

scapy's ``L2ListenSocket`` does the set-up we want to share rather than redo: it resolves the
interface, compiles the BPF filter with libpcap (for the interface's link type, without root) and
attaches it *before* binding, turns on promiscuous mode, binds, flushes what slipped in, and asks
for ``PACKET_AUXDATA`` and ``SO_TIMESTAMPNS``. Its ``recv_raw`` however returns a float timestamp
(~240 ns of precision left in 2026) and allocates a 64 KiB buffer a packet, so packets are read
here with ``recvmsg_into`` on its socket: integer nanoseconds from ``SO_TIMESTAMPNS``, the
original length and VLAN tag from ``tpacket_auxdata`` (the kernel strips 802.1Q tags; they are put
back as libpcap does). ``any`` (every interface, Linux cooked capture) is a plain ``SOCK_DGRAM``
packet socket with the SLL header built from the sender address; it takes no BPF filter (libpcap
rewrites filters for cooked sockets; we do not).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, UsageError

SOL_PACKET, PACKET_STATISTICS, PACKET_AUXDATA = 263, 6, 8
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ETH_P_ALL = 0x0003
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
AUXDATA = struct.Struct("=IIIHHHH")  # status, len, snaplen, mac, net, vlan_tci, vlan_tpid
TIMESPEC = struct.Struct("=qq")
SLL = struct.Struct(">HHH8sH")  # packet type, ARPHRD, address length, address, protocol
LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL = 1, 101, 113
PACKET_OUTGOING, ARPHRD_LOOPBACK = 4, 772
#: ARPHRD types whose DLT is the platform's DLT_RAW (12): files say LINKTYPE_RAW (101).
DLT_RAW = 12
RCVBUF = 32 << 20  # the kernel queue: bursts wait here while Python writes
ANC_SIZE = socket.CMSG_SPACE(AUXDATA.size) + socket.CMSG_SPACE(TIMESPEC.size) + 64
SO_ATTACH_FILTER = 26
BPF_RET_K = 0x06
DRAIN = 256  # packets read from one socket before looking at the clock and the other sockets


@dataclass
class Tap:
    """One interface being captured: its socket, link type, and the kernel's counters so far."""

    name: str
    sock: socket.socket
    linktype: int
    snaplen: int
    owner: Any = None  # the scapy socket that owns ``sock`` (closing it ends promiscuous mode)
    cooked: bool = False
    kernel_received: int = 0
    kernel_dropped: int = 0
    idle: bool = False  # the last drain emptied the queue
    buf: bytearray = field(default_factory=bytearray)

    def read_stats(self) -> None:
        """Add PACKET_STATISTICS (which the kernel resets on each read) to the totals."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return
        packets, drops = struct.unpack("=II", raw[:8])
        self.kernel_received += packets
        self.kernel_dropped += drops

    def close(self) -> None:
        if self.owner is not None:
            self.owner.close()
        else:
            self.sock.close()


def _quiet_scapy() -> None:
    """scapy logs to stderr on import ("No IPv4 address found", route warnings): not our user's."""
    logging.getLogger("scapy").setLevel(logging.ERROR)


def _check_name(name: str) -> None:
    try:
        socket.if_nametoindex(name)
    except OSError:
        raise InputError(f"{name}: no such network interface") from None


def _denied(name: str) -> InputError:
    return InputError(f"{name}: cannot capture: permission denied (needs root or CAP_NET_RAW)")


def open_tap(name: str, bpf: str | None, snaplen: int, promisc: bool = True) -> Tap:
    """A capturing socket on interface ``name`` (``any``: all of them). Raises one-line errors."""
    if name == "any":
        return _open_any(bpf, snaplen)
    _check_name(name)
    _quiet_scapy()
    try:
        from scapy.arch.linux import L2ListenSocket
        from scapy.data import ARPHRD_TO_DLT
        from scapy.error import Scapy_Exception
    except ImportError as exc:  # pragma: no cover - scapy is a dependency
        raise InputError(f"{name}: live capture needs scapy ({exc})") from None
    try:
        owner = L2ListenSocket(iface=name, filter=bpf or None, promisc=promisc)
    except PermissionError:
        raise _denied(name) from None
    except Scapy_Exception as exc:
        detail = str(exc).removeprefix("Cannot set filter: ")
        raise UsageError(f"bad capture filter {bpf!r} for {name}: {detail}") from None
    except ImportError as exc:
        raise UsageError(f"cannot compile capture filter {bpf!r}: {exc}") from None
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENXIO):
            raise InputError(f"{name}: no such network interface") from None
        raise InputError(f"{name}: cannot capture: {exc.strerror or exc}") from None
    sock: socket.socket = owner.ins
    hatype = sock.getsockname()[3]
    dlt = ARPHRD_TO_DLT.get(hatype)
    if dlt is None or dlt < 0:
        owner.close()
        raise InputError(f"{name}: cannot capture: link type ARPHRD {hatype} is not supported")
    tap = Tap(name, sock, LINKTYPE_RAW if dlt == DLT_RAW else dlt, snaplen, owner=owner)
    return _finish(tap)


def _open_any(bpf: str | None, snaplen: int) -> Tap:
    if bpf:
        raise UsageError(
            "a capture filter cannot be used with 'any' (Linux cooked capture): "
            "capture on each interface instead (--live IFACE, repeatable)"
        )
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    except PermissionError:
        raise _denied("any") from None
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return _finish(Tap("any", sock, LINKTYPE_LINUX_SLL, snaplen, cooked=True))


def _finish(tap: Tap) -> Tap:
    """Non-blocking, a large kernel queue, a buffer of ``snaplen`` bytes, counters from zero."""
    try:
        tap.sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RCVBUF)
    except OSError:
        tap.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    tap.sock.setblocking(False)
    tap.buf = bytearray(tap.snaplen)
    tap.read_stats()
    tap.kernel_received = tap.kernel_dropped = 0
    return tap


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


def shut(tap: Tap) -> None:
    """Let no further packet in (a BPF program that accepts nothing) but keep what is queued.

    The kernel counts in ``tp_packets`` only what passes the filter, so after this the queue can be
    drained and the counters read without a race: received - dropped = packets written (on loopback
    plus the outgoing copies skipped)."""
    insns = (_SockFilter * 1)(_SockFilter(BPF_RET_K, 0, 0, 0))
    prog = struct.pack("HL", 1, ctypes.addressof(insns))
    with contextlib.suppress(OSError):  # every Linux since 2.2 has socket filters
        tap.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def drain(tap: Tap, emit: Any, limit: int = DRAIN) -> int:
    """Read up to ``limit`` queued packets, calling ``emit(ts_ns, data, wirelen)``; returns how many."""
    sock, buf, view, cooked = tap.sock, tap.buf, memoryview(tap.buf), tap.cooked
    eth = tap.linktype == LINKTYPE_ETHERNET
    n = reads = 0
    tap.idle = False
    while n < limit and reads < 2 * limit:
        try:
            size, anc, _flags, addr = sock.recvmsg_into([buf], ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            tap.idle = True
            break
        reads += 1
        if addr[2] == PACKET_OUTGOING and addr[3] == ARPHRD_LOOPBACK:
            continue  # loopback shows each packet leaving and arriving: keep one (as libpcap does)
        ts_ns = 0
        wirelen = size
        data = bytes(view[:size])
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= TIMESPEC.size:
                sec, nsec = TIMESPEC.unpack_from(value)
                ts_ns = sec * 1_000_000_000 + nsec
            elif level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= AUXDATA.size:
                status, wirelen, _, _, _, tci, tpid = AUXDATA.unpack_from(value)
                if eth and (tci or status & TP_STATUS_VLAN_VALID) and size >= 12:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
                    wirelen += 4
        if cooked:
            _ifname, proto, pkttype, hatype, haddr = addr[:5]
            head = SLL.pack(pkttype, hatype, len(haddr), haddr[:8], proto)
            data, wirelen = (head + data)[: tap.snaplen], wirelen + SLL.size
        elif len(data) > tap.snaplen:
            data = data[: tap.snaplen]
        emit(ts_ns or time.time_ns(), data, max(wirelen, len(data)))
        n += 1
    return n


__all__ = ["Tap", "drain", "open_tap", "shut"]
