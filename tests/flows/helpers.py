"""Build ``PacketColumns`` straight from packet descriptions (the flow stage's unit-test input).

Each packet is a dict: src, dst (text addresses), proto (default 6), sport, dport, flags (e.g. "S", "SA",
"A", "PA", "FA", "R", "RA"), seq, pay (payload bytes), ts (seconds), icmp (raw ICMP bytes, for ICMP rows:
sport/dport are then type/code), status, ethertype, vlan, encap. Frames number 1.. unless given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helix_audit.decode.interface import PacketColumns, str_to_addr

FLAG_BITS = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16, "U": 32, "E": 64, "C": 128}


def flags(text: str) -> int:
    return sum(FLAG_BITS[c] for c in text)


def columns(packets: list[dict[str, Any]], source: str = "test.pcap", first_frame: int = 1) -> PacketColumns:
    n = len(packets)
    data = bytearray()
    c: dict[str, np.ndarray] = {
        name: np.zeros(n, dtype=dt)
        for name, dt in [
            ("frame", np.int64),
            ("ts_ns", np.int64),
            ("wirelen", np.int64),
            ("caplen", np.int64),
            ("status", np.uint8),
            ("ethertype", np.uint16),
            ("ipver", np.uint8),
            ("proto", np.uint8),
            ("src_hi", np.uint64),
            ("src_lo", np.uint64),
            ("dst_hi", np.uint64),
            ("dst_lo", np.uint64),
            ("ip_len", np.int64),
            ("ttl", np.uint8),
            ("sport", np.uint16),
            ("dport", np.uint16),
            ("tcp_flags", np.uint8),
            ("seq", np.uint32),
            ("ack", np.uint32),
            ("win", np.uint16),
            ("l4_off", np.int64),
            ("pay_off", np.int64),
            ("pay_len", np.int64),
            ("pay_wire", np.int64),
            ("encap", np.uint8),
            ("vlan", np.uint16),
            ("frag", np.uint8),
        ]
    }
    for i, p in enumerate(packets):
        c["frame"][i] = p.get("frame", first_frame + i)
        c["ts_ns"][i] = int(round(p.get("ts", i * 0.001) * 1e9))
        c["status"][i] = p.get("status", 0)
        c["vlan"][i], c["encap"][i] = p.get("vlan", 0), p.get("encap", 0)
        c["l4_off"][i] = c["pay_off"][i] = -1
        if "src" not in p:
            c["ethertype"][i] = p.get("ethertype", 0x0806)
            c["status"][i] = p.get("status", 1)
            continue
        v6 = ":" in p["src"]
        c["ethertype"][i], c["ipver"][i] = (0x86DD, 6) if v6 else (0x0800, 4)
        c["src_hi"][i], c["src_lo"][i] = str_to_addr(p["src"])
        c["dst_hi"][i], c["dst_lo"][i] = str_to_addr(p["dst"])
        c["proto"][i] = p.get("proto", 6)
        c["sport"][i], c["dport"][i] = p.get("sport", 0), p.get("dport", 0)
        c["tcp_flags"][i], c["seq"][i] = flags(p.get("flags", "")), p.get("seq", 0)
        pay = p.get("pay", 0)
        c["pay_len"][i] = c["pay_wire"][i] = pay
        l4 = p.get("icmp", b"\0" * (20 if c["proto"][i] == 6 else 8))
        c["l4_off"][i] = len(data)
        c["pay_off"][i] = len(data) + len(l4)
        if "icmp" in p:
            c["pay_off"][i] = len(data) + 8
            c["pay_len"][i] = c["pay_wire"][i] = len(l4) - 8
        data += l4 + b"x" * (0 if "icmp" in p else pay)
        c["ip_len"][i] = (40 if v6 else 20) + len(l4) + (0 if "icmp" in p else pay)
    c["wirelen"][:] = c["caplen"][:] = c["ip_len"] + 14
    return PacketColumns(source=source, data=np.frombuffer(bytes(data) or b"\0", dtype=np.uint8), **c)


def tcp(src: str, sport: int, dst: str, dport: int, fl: str, seq: int = 0, pay: int = 0, **kw: Any) -> dict:
    return {"src": src, "sport": sport, "dst": dst, "dport": dport, "flags": fl, "seq": seq, "pay": pay, **kw}


def udp(src: str, sport: int, dst: str, dport: int, pay: int = 10, **kw: Any) -> dict:
    return {"src": src, "sport": sport, "dst": dst, "dport": dport, "proto": 17, "pay": pay, **kw}
