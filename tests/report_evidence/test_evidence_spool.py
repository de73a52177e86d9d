"""The evidence spool's copy path: runs of records that are the input's own bytes are copied by the
kernel instead of through memory, and each capture's SHA-256 is taken while it is written. Both
must give exactly the files of the in-memory path, whatever the input's byte order or resolution."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helix_audit.report import evidence_pcap
from helix_audit.report.evidence import write_evidence
from helix_audit.report.evidence_pcap import pcap_heads, verbatim_runs

from .helpers import finding, flow_table, read_packets
from .test_evidence_made import T0, flow_id, tcp_conn, write


def _interleaved(n: int) -> list:
    """``n`` connections whose packets alternate, so each flow's packets are short runs of the input."""
    conns = [tcp_conn(42000 + i, i, T0 + i * 0.001) for i in range(n)]
    return [conns[i][k] for k in range(len(conns[0])) for i in range(n)]


def _run(tmp_path: Path, name: str, srcs: list[Path], findings: list, **kw: Any) -> tuple[dict, dict]:
    digests: dict[Path, str] = {}
    flows = flow_table(srcs)
    return write_evidence(findings(flows), flows, srcs, tmp_path / name, digests=digests, **kw), digests


@pytest.mark.parametrize("kind", ["native", "big-endian", "nanoseconds", "two resolutions"])
def test_copied_runs_give_the_files_of_the_memory_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    pkts = _interleaved(6) + tcp_conn(43000, 7, T0 + 5)  # the last connection: one long run
    if kind == "big-endian":
        from scapy.utils import PcapWriter

        srcs = [tmp_path / "in.pcap"]
        with PcapWriter(str(srcs[0]), linktype=1, endianness=">", sync=True) as w:
            for p in pkts:
                w.write(p)
    elif kind == "two resolutions":  # one finding over both: nanoseconds out, the us input rewritten
        srcs = [write(tmp_path / "a.pcap", pkts[:24]), write(tmp_path / "b.pcap", pkts[24:], nano=True)]
    else:
        srcs = [write(tmp_path / "in.pcap", pkts, nano=kind == "nanoseconds")]

    def findings(flows: Any) -> list:
        ports = [42000 + i for i in range(6)] + [43000]
        ids = [flow_id(flows, p) for p in ports]
        return [finding(f"F{p}", [i]) for p, i in zip(ports, ids, strict=True)] + [finding("ALL", ids)]

    monkeypatch.setattr(evidence_pcap, "MIN_RUN", 1 << 60)  # nothing is copied: the memory path
    ref, _ = _run(tmp_path, "ref", srcs, findings)
    copies: list[tuple[int, int]] = []
    real = evidence_pcap.copy_range

    def counted(out_fd: int, src_fd: int, start: int, stop: int) -> None:
        copies.append((start, stop))
        real(out_fd, src_fd, start, stop)

    monkeypatch.setattr(evidence_pcap, "copy_range", counted)
    monkeypatch.setattr(evidence_pcap, "MIN_RUN", 1)
    got, digests = _run(tmp_path, "got", srcs, findings, batch_size=5, spool_limit=300)
    assert sorted(ref) == sorted(got) and len(got) == 8
    for fid, path in ref.items():
        assert got[fid].read_bytes() == path.read_bytes(), fid
    assert len(read_packets(got["ALL"])) == 7 * 8
    assert (len(copies) > 0) == (kind != "big-endian")
    assert digests == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in got.values()}
    assert not [p for p in (tmp_path / "got").iterdir() if p.name.startswith(".")]


def test_copy_falls_back_to_reading_when_sendfile_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write(tmp_path / "in.pcap", _interleaved(3))
    flows = flow_table([src])
    fs = [finding("F", [flow_id(flows, 42000)]), finding("G", [flow_id(flows, 42001), flow_id(flows, 42002)])]
    monkeypatch.setattr(evidence_pcap, "MIN_RUN", 1 << 60)
    ref = write_evidence(fs, flows, [src], tmp_path / "ref")

    def refuse(*args: Any) -> int:
        raise OSError(errno.EINVAL, "not here")

    monkeypatch.setattr(evidence_pcap, "MIN_RUN", 1)
    monkeypatch.setattr(os, "sendfile", refuse)
    got = write_evidence(fs, flows, [src], tmp_path / "got")
    assert {k: p.read_bytes() for k, p in got.items()} == {k: p.read_bytes() for k, p in ref.items()}


def test_copy_range_refuses_an_input_that_shrank(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.write_bytes(b"abcdefgh")
    fd_in, fd_out = os.open(src, os.O_RDONLY), os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        evidence_pcap.copy_range(fd_out, fd_in, 2, 6)
        with pytest.raises(OSError, match="changed while being read"):
            evidence_pcap.copy_range(fd_out, fd_in, 6, 12)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert out.read_bytes()[:4] == b"cdef"


def test_verbatim_runs_take_only_matching_back_to_back_records(monkeypatch: pytest.MonkeyPatch) -> None:
    caplen = np.array([10, 20, 30, 40, 50], dtype=np.int64)
    wirelen, ts = caplen + 1, np.arange(5, dtype=np.int64) * 1_000_000_007
    heads = pcap_heads(caplen, wirelen, ts, False)
    data, off, pos = bytearray(b"G" * 24), [], 24
    for i in range(5):
        if i == 3:
            data += b"gap!"  # record 3 does not follow record 2
            pos += 4
        data += heads[i].tobytes() + bytes([i]) * int(caplen[i])
        off.append(pos + 16)
        pos += 16 + int(caplen[i])
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    offs = np.array(off, dtype=np.int64)
    monkeypatch.setattr(evidence_pcap, "MIN_RUN", 1)
    assert verbatim_runs(arr, offs, caplen, heads) == [(0, 3), (3, 5)]
    bad = heads.copy()
    bad[1, 4] ^= 1  # record 1's header is not what the output needs: copied through memory
    assert verbatim_runs(arr, offs, caplen, bad) == [(0, 1), (2, 3), (3, 5)]
    assert verbatim_runs(arr[:-1], offs[:4], caplen[:4], heads[:4]) == [(0, 3), (3, 4)]
    monkeypatch.setattr(evidence_pcap, "MIN_RUN", 16 + 30 + 1)  # bytes: runs shorter are not worth a copy
    assert verbatim_runs(arr, offs, caplen, bad) == [(3, 5)]
    first = offs.copy()
    first[0] = 10  # a record too near the start to have a header in the data
    assert verbatim_runs(arr, first, caplen, heads) == [(1, 3), (3, 5)]


def test_digests_only_for_files_written_as_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pcapng (mixed link types) is rewritten and a long packet patches the header's snaplen:
    neither file is what was hashed, so neither gets a digest (SHA256SUMS reads them back)."""
    from scapy.layers.inet import IP

    from .helpers import write_pcapng

    conn = tcp_conn(40004, 42, T0)
    packets = [(i % 2, T0 * 10**9 + i, bytes(p) if i % 2 == 0 else bytes(p[IP])) for i, p in enumerate(conn)]
    mixed = write_pcapng(tmp_path / "mixed.pcapng", [1, 101], packets)
    plain = write(tmp_path / "plain.pcap", tcp_conn(40005, 1, T0 + 1))
    monkeypatch.setattr(evidence_pcap, "DEFAULT_SNAPLEN", 64)  # every packet is "longer than snaplen"
    flows = flow_table([mixed, plain])
    fs = [finding("M", [flow_id(flows, 40004)]), finding("P", [flow_id(flows, 40005)])]
    digests: dict[Path, str] = {}
    got = write_evidence(fs, flows, [mixed, plain], tmp_path / "ev", digests=digests)
    assert got["M"].suffix == ".pcapng" and got["P"].suffix == ".pcap" and digests == {}
    monkeypatch.setattr(evidence_pcap, "DEFAULT_SNAPLEN", 1 << 18)
    got = write_evidence(fs, flows, [mixed, plain], tmp_path / "ev2", digests=digests)
    assert digests == {got["P"]: hashlib.sha256(got["P"].read_bytes()).hexdigest()}
