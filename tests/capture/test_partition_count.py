"""The counting walk (``walk.count_pcap``, loading the bytes ahead of its header chain and stopping
once every mark is passed) against a plain Python walk, on sound, damaged and hostile bytes; and
``partitions.landings`` (the walk in chunks) against the same reference."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from helix_audit.capture import open_capture
from helix_audit.capture.walk import MAX_RECORD, ST_ABSURD, ST_END, ST_TRUNC_DATA, ST_TRUNC_HDR, count_pcap

from . import builders as b


def visited(d: bytes, pos: int, be: bool, hdrlen: int, swap: bool) -> tuple[list[int], int]:
    """Every record start the walk reaches, then where it stops (the end, or the record it cannot
    read), and why."""
    out, size = [], len(d)
    fmt = ">I" if be else "<I"
    while pos < size:
        out.append(pos)
        if pos + hdrlen > size:
            return out, ST_TRUNC_HDR
        (c,) = struct.unpack_from(fmt, d, pos + (12 if swap else 8))
        if c > MAX_RECORD:
            return out, ST_ABSURD
        if pos + hdrlen + c > size:
            return out, ST_TRUNC_DATA
        pos += hdrlen + c
    return [*out, pos], ST_END


def expected(d: bytes, pos: int, be: bool, hdrlen: int, swap: bool, marks: list[int]) -> tuple:
    """(counts, landed, records, stop, status) of ``count_pcap``: each mark lands on the first
    position reached at or after it (-1: none), having passed the records before that position;
    the walk goes no further than the last mark's landing."""
    seen, status = visited(d, pos, be, hdrlen, swap)
    counts, landed = [], []
    for m in marks:
        at = next((i for i, p in enumerate(seen) if p >= m), None)
        counts.append(len(seen) - 1 if at is None else at)
        landed.append(-1 if at is None else seen[at])
    if not marks:  # nothing to pass: no walk
        return [], [], 0, pos, ST_END
    if landed[-1] >= 0:  # every mark passed: the walk stopped at the last one
        return counts, landed, counts[-1], landed[-1], ST_END
    return counts, landed, len(seen) - 1, seen[-1], status


def check(
    d: bytes, pos: int, marks: list[int], be: bool = False, hdrlen: int = 16, swap: bool = False
) -> None:
    arr = np.frombuffer(d, dtype=np.uint8) if d else np.zeros(0, np.uint8)
    m = np.array(sorted(marks), dtype=np.int64)
    counts, landed = np.zeros_like(m), np.zeros_like(m)
    n, stop, status, _ = count_pcap(arr, pos, be, hdrlen, swap, m, counts, landed)
    want = expected(d, pos, be, hdrlen, swap, sorted(marks))
    got = (counts.tolist(), landed.tolist(), int(n), int(stop), int(status))
    assert got == want, (len(d), pos, sorted(marks))


def sample(seed: int, n: int = 300, endian: str = "<") -> bytes:
    rnd = random.Random(seed)
    recs = [b.pcap_record(1_700_000_000 + i, i, bytes(rnd.randrange(0, 3000))) for i in range(n)]
    if endian == ">":  # the same records, big-endian headers
        recs = [struct.pack(">IIII", *struct.unpack("<IIII", r[:16])) + r[16:] for r in recs]
    return b"".join(recs)


def marks_for(rnd: random.Random, size: int) -> list[int]:
    return [rnd.randrange(-5, size + 40) for _ in range(rnd.randrange(0, 6))]


@pytest.mark.parametrize("seed", range(6))
def test_sound_records(seed: int) -> None:
    rnd = random.Random(seed)
    for endian in ("<", ">"):
        d = sample(seed, endian=endian)
        for _ in range(40):
            check(d, 0, marks_for(rnd, len(d)), be=endian == ">")
        check(d, 0, [len(d)], be=endian == ">")  # the exact end
        check(d, 0, [len(d) + 1], be=endian == ">")  # past it


@pytest.mark.parametrize("seed", range(6))
def test_damaged_and_hostile_bytes(seed: int) -> None:
    rnd = random.Random(1000 + seed)
    d = sample(seed)
    for _ in range(60):
        bad = bytearray(d)
        how = rnd.choice(("cut", "flip", "absurd", "noise"))
        if how == "cut":
            bad = bad[: rnd.randrange(len(bad))]
        elif how == "flip":
            for _ in range(rnd.randrange(1, 8)):
                bad[rnd.randrange(len(bad))] ^= 1 << rnd.randrange(8)
        elif how == "absurd":
            at = rnd.randrange(len(bad) - 4)
            bad[at : at + 4] = (MAX_RECORD + rnd.randrange(2)).to_bytes(4, "little")
        else:
            bad = bytearray(rnd.randbytes(rnd.randrange(0, 4000)))
        data = bytes(bad)
        check(data, 0, marks_for(rnd, len(data)))
        check(data, min(rnd.randrange(0, 64), len(data)), marks_for(rnd, len(data)), swap=True)
        check(data, 0, marks_for(rnd, len(data)), hdrlen=24)  # modified pcap headers are longer
    check(b"", 0, [0, 3])
    check(b"\x00" * 7, 0, [2])  # fewer bytes than a header


def test_landings_in_chunks(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """``landings`` walks chunks (and longer ones past a record longer than a chunk): each offset
    lands where one walk over the whole file lands it."""
    from helix_audit import partitions

    rnd = random.Random(7)
    body = sample(1, 200) + b.pcap_record(1_700_000_999, 0, bytes(9000)) + sample(2, 200)
    path = tmp_path / "c.pcap"
    for tail in (b"", b"\x01" * 10):  # sound, then a truncated header at the end
        path.write_bytes(b.pcap_header() + body + tail)
        d = path.read_bytes()
        for chunk in (4096, 5000, 1 << 20):
            monkeypatch.setattr(partitions, "PLAN_CHUNK", chunk)
            for _ in range(15):
                todo = sorted({rnd.randrange(24, len(d) + 30) for _ in range(rnd.randrange(1, 5))})
                counts, landed, *_ = expected(d, 24, False, 16, False, todo)
                want = [(x, c) for x, c in zip(landed, counts, strict=True) if x >= 0]
                assert partitions.landings(open_capture(path), todo) == want, (chunk, todo, tail)
