#!/usr/bin/env python3
"""Write a SYN-scan capture: one scanner sends one SYN to each of N (address, port) pairs.

Every packet is its own flow (a million one-packet flows for N=1,000,000), the worst case for the
flow table and everything keyed by flow. Packets are built as one numpy array (scapy would take
minutes); tests/flows checks a small one against tshark's dissection.

usage: benchmarks/synscan.py OUT.pcap [N] [--target 10.0.1.0/24]
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys

import numpy as np

FRAME = 14 + 20 + 20  # Ethernet + IPv4 + TCP, no options
SCANNER = int(ipaddress.IPv4Address("192.0.2.66"))


def _checksum16(rows: np.ndarray) -> np.ndarray:
    """Internet checksum of each row of bytes (even length, big-endian 16-bit words)."""
    pairs = rows.reshape(rows.shape[0], -1, 2).astype(np.uint64)
    total = (pairs[:, :, 0] * 256 + pairs[:, :, 1]).sum(axis=1)
    while (total >> 16).any():
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).astype(np.uint16)


def synscan(n: int, target: str = "10.0.1.0/24", t0: float = 1_700_000_000.0) -> bytes:
    """The pcap bytes of ``n`` SYNs from the scanner to addresses of ``target``, ports 1-65535."""
    net = ipaddress.IPv4Network(target)
    hosts = max(net.num_addresses - 2, 1)
    i = np.arange(n, dtype=np.int64)
    dst = int(net.network_address) + 1 + (i // 65535) % hosts
    dport = 1 + i % 65535
    sport = 40000 + (i % 20000)
    pkt = np.zeros((n, FRAME), dtype=np.uint8)
    pkt[:, 0:6] = [0x02, 0, 0, 0, 0, 0x02]
    pkt[:, 6:12] = [0x02, 0, 0, 0, 0, 0x66]
    pkt[:, 12:14] = [0x08, 0x00]
    ip = pkt[:, 14:34]
    ip[:, 0] = 0x45
    ip[:, 3] = 40
    ip[:, 4] = (i >> 8) & 0xFF
    ip[:, 5] = i & 0xFF
    ip[:, 8] = 64
    ip[:, 9] = 6
    ip[:, 12:16] = np.frombuffer(struct.pack(">I", SCANNER), np.uint8)
    ip[:, 16:20] = ((dst[:, None] >> np.array([24, 16, 8, 0])) & 0xFF).astype(np.uint8)
    csum = _checksum16(ip)
    ip[:, 10], ip[:, 11] = csum >> 8, csum & 0xFF
    tcp = pkt[:, 34:54]
    tcp[:, 0], tcp[:, 1] = sport >> 8, sport & 0xFF
    tcp[:, 2], tcp[:, 3] = dport >> 8, dport & 0xFF
    seq = (i * 2654435761) & 0xFFFFFFFF
    tcp[:, 4:8] = ((seq[:, None] >> np.array([24, 16, 8, 0])) & 0xFF).astype(np.uint8)
    tcp[:, 12] = 0x50
    tcp[:, 13] = 0x02
    tcp[:, 14], tcp[:, 15] = 0x04, 0x00
    pseudo = np.zeros((n, 12 + 20), dtype=np.uint8)
    pseudo[:, 0:8] = ip[:, 12:20]
    pseudo[:, 9], pseudo[:, 11] = 6, 20
    pseudo[:, 12:] = tcp
    csum = _checksum16(pseudo)
    tcp[:, 16], tcp[:, 17] = csum >> 8, csum & 0xFF
    ts_us = np.int64(t0 * 1e6) + i * 10  # 100k SYNs/s
    rec = np.zeros((n, 16), dtype=np.uint8)
    hdr = np.stack([ts_us // 1_000_000, ts_us % 1_000_000, np.full(n, FRAME), np.full(n, FRAME)], axis=1)
    rec[:] = hdr.astype("<u4").view(np.uint8).reshape(n, 16)
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    return head + np.concatenate([rec, pkt], axis=1).tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("n", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--target", default="10.0.1.0/24")
    args = ap.parse_args()
    with open(args.out, "wb") as fh:
        fh.write(synscan(args.n, args.target))
    print(f"{args.out}: {args.n} SYNs", file=sys.stderr)


if __name__ == "__main__":
    main()
