"""Compare the decoded innermost IP / transport headers with tshark's, frame by frame, on the corpus.

tshark is asked for every occurrence of each field (``occurrence=a``) plus ``frame.protocols``, and the
layer our columns describe is picked from its protocol stack: the innermost IP layer that is not
quoted inside an ICMP/ICMPv6 error (our columns describe the ICMP packet itself; the quoted packet is
the flows stage's business via ``l4_off``), and the transport layer right after it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helix_audit.decode.core import decode_batch
from helix_audit.decode.interface import ST_FRAGMENT, ST_OK, ST_TRUNCATED, PacketColumns, addr_to_str
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus

from .capfile import read_batch

FIELDS = (
    "frame.number",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.proto",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
)
TRANSPORTS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

# Files tshark cannot decode at all (no IP layer for any frame) and that we cannot either: the brief's
# PPP file is HDLC-escaped PPP (0x7e/0x7d stuffing), link type 160 is unknown to both, and the fuzzed
# file is not a readable capture. Checked below only for "no IP decoded".
NO_IP_EXPECTED = {"tcpdump__ppp_ip_udp_dns.pcap", "tcpdump__unsupported-link-type-160.pcap"}

# Link types we do not decode (802.11 radiotap 127, 802.11 105, NFLOG 239): tshark decodes their IP;
# the auditor reports them as ST_UNKNOWN_LINK (Helix traffic is captured on Ethernet/cooked/raw links).
UNDECODED_LINKS = {127, 105, 239}


@dataclass
class Expect:
    src: str | None = None
    dst: str | None = None
    proto: int | None = None  # None: tshark shows no transport (fragment data, unknown protocol)
    sport: int | None = None
    dport: int | None = None
    flags: int | None = None


def tshark_rows(path: Path) -> dict[int, dict[str, list[str]]]:
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-E",
        "separator=\t",
    ]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split("\t")
        vals = {f: [x for x in p.split("|")] if p else [] for f, p in zip(FIELDS, parts, strict=False)}
        rows[int(parts[0])] = vals
    return rows


def expected(v: dict[str, list[str]]) -> Expect:
    """tshark's innermost IP layer outside ICMP errors, and the transport header right after it."""
    toks = v["frame.protocols"][0].split(":") if v["frame.protocols"] else []
    n = {"ip": 0, "ipv6": 0, "tcp": 0, "udp": 0, "icmp": 0, "icmpv6": 0}
    e, last_ip, after_ip = Expect(), None, None
    for t in toks:
        if t in ("icmp", "icmpv6") and last_ip is not None and after_ip is None:
            after_ip = t
        if t in n:
            n[t] += 1
        if after_ip in ("icmp", "icmpv6"):
            break
        if t in ("ip", "ipv6"):
            last_ip, after_ip = (t, n[t] - 1), None
        elif after_ip is None and last_ip is not None and not t.startswith("ipv6."):
            after_ip = t
    if last_ip is None:
        return e
    fam, k = last_ip
    e.src, e.dst = v[f"{fam}.src"][k], v[f"{fam}.dst"][k]
    if after_ip in TRANSPORTS:
        e.proto = TRANSPORTS[after_ip]
        i = n[after_ip] - 1
        a, b = ("srcport", "dstport") if after_ip in ("tcp", "udp") else ("type", "code")
        if len(v[f"{after_ip}.{a}"]) > i and len(v[f"{after_ip}.{b}"]) > i:
            e.sport, e.dport = int(v[f"{after_ip}.{a}"][i]), int(v[f"{after_ip}.{b}"][i])
        if after_ip == "tcp" and len(v["tcp.flags"]) > i:
            e.flags = int(v["tcp.flags"][i], 16) & 0xFF
    return e


def mismatches(name: str, cols: PacketColumns, rows: dict[int, dict[str, list[str]]]) -> list[str]:
    bad = []
    for i in range(len(cols)):
        frame = int(cols.frame[i])
        e = expected(rows.get(frame, {"frame.protocols": []}))
        got_ip = cols.ipver[i] != 0
        if e.src is None:
            if got_ip:
                bad.append(f"{name}#{frame}: tshark no IP, we {addr_to_str(cols.src_hi[i], cols.src_lo[i])}")
            continue
        if not got_ip:
            bad.append(f"{name}#{frame}: tshark {e.src}, we status {cols.status[i]}")
            continue
        src, dst = addr_to_str(cols.src_hi[i], cols.src_lo[i]), addr_to_str(cols.dst_hi[i], cols.dst_lo[i])
        if (src, dst) != (e.src, e.dst):
            bad.append(f"{name}#{frame}: addr tshark {e.src}>{e.dst} we {src}>{dst}")
            continue
        if e.proto is None:
            continue  # tshark shows no transport: fragment data, or a protocol it does not dissect
        if cols.proto[i] != e.proto:
            bad.append(f"{name}#{frame}: proto tshark {e.proto} we {cols.proto[i]}")
            continue
        if e.sport is not None and (cols.sport[i], cols.dport[i]) != (e.sport, e.dport):
            bad.append(f"{name}#{frame}: ports tshark {e.sport},{e.dport} we {cols.sport[i]},{cols.dport[i]}")
        if e.sport is not None and cols.status[i] not in (ST_OK, ST_TRUNCATED, ST_FRAGMENT):
            bad.append(f"{name}#{frame}: tshark decoded the transport, we status {cols.status[i]}")
        if e.flags is not None and cols.status[i] == ST_OK and cols.tcp_flags[i] != e.flags:
            bad.append(f"{name}#{frame}: flags tshark {e.flags:#x} we {cols.tcp_flags[i]:#x}")
    return bad


# Frames where tshark and we legitimately differ: {file: {frame: reason}}. Filled from the runs below.
KNOWN: dict[str, dict[int, str]] = {}


@needs_corpus
@pytest.mark.tshark
@pytest.mark.corpus
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_matches_tshark(name: str) -> None:
    assert CORPUS is not None
    batch = read_batch(CORPUS / name)
    cols = decode_batch(batch)
    if set(np.unique(batch.linktype).tolist()) & UNDECODED_LINKS:
        assert (cols.ipver == 0).all()
        return
    rows = tshark_rows(CORPUS / name)
    if name in NO_IP_EXPECTED:
        assert (cols.ipver == 0).all()
        return
    known = KNOWN.get(name, {})
    bad = [m for m in mismatches(name, cols, rows) if int(m.split("#")[1].split(":")[0]) not in known]
    assert not bad, "\n".join(bad[:20])
