"""Unusable and damaged inputs: one-line errors for the first, warnings (never exceptions) for the second."""

from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from helix_audit.capture import open_capture
from helix_audit.errors import CaptureError, InputError

from . import builders as b

GOOD = b.pcap_file(5)
REC = 16 + len(b.ETH_FRAME)  # the first record's size in pcap_file()
LAST = len(GOOD) - (REC + 4)  # offset of the 5th and last record (its frame has 4 padding bytes)

# name -> (file bytes, expected message after "<path>: ")
UNUSABLE = {
    "empty": (b"", "empty file (0 bytes)"),
    "random": (random.Random(7).randbytes(300), "not a pcap or pcapng file (starts with "),
    "zip": (b"PK\x03\x04" + bytes(40), "not a pcap or pcapng file (starts with 50 4b 03 04)"),
    "short-global-header": (GOOD[:20], "pcap header truncated (20 of 24 bytes)"),
    "short-shb": (b.shb()[:10], "section header truncated at byte 0 (10 of 28 bytes)"),
    "shb-bad-bom": (
        b.shb()[:8] + b"\x00\x11\x22\x33" + b.shb()[12:],
        "bad byte-order magic in section header",
    ),
    "gzip-of-text": (
        gzip.compress(b"hello world, not a capture"),
        "not a pcap or pcapng file (gzip of data starting with 68 65 6c 6c)",
    ),
    "gzip-empty": (gzip.compress(b""), "empty file (0 bytes after gunzip)"),
    "gzip-garbage": (b"\x1f\x8b" + bytes(30), "not a valid gzip file"),
}


@pytest.mark.parametrize("name", UNUSABLE)
def test_unusable_input_raises_one_line(tmp_path: Path, name: str) -> None:
    data, expected = UNUSABLE[name]
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(data)
    with pytest.raises(CaptureError) as exc:
        open_capture(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {expected}"), msg


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.pcap: no such file$"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(InputError, match="is a directory"):
        open_capture(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.pcap"
    path.write_bytes(GOOD)
    path.chmod(0)
    try:
        with open(path, "rb"):
            pytest.skip("running as root: permissions do not stop reads")
    except PermissionError:
        pass
    with pytest.raises(InputError, match="cannot read"):
        open_capture(path)


def _absurd() -> bytes:
    return GOOD[: 24 + REC] + struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 60) + bytes(80)


def _huge_but_present() -> bytes:  # caplen above snaplen but plausible: kept, as Wireshark does
    return b.pcap_header(snaplen=64) + b.pcap_record(1, 0, bytes(3000)) + b.pcap_record(2, 0, b.ETH_FRAME)


def _ng_bad_trailer() -> bytes:
    return (
        b.shb()
        + b.idb()
        + b.epb(0, 1, b.ETH_FRAME)
        + b.epb(0, 2, b.ETH_FRAME, trailer=999)
        + b.epb(0, 3, b"x")
    )


def _ng_unaligned() -> bytes:
    blk = bytearray(b.epb(0, 2, b.ETH_FRAME))
    blk[4:8] = struct.pack("<I", 13)
    return b.shb() + b.idb() + b.epb(0, 1, b.ETH_FRAME) + bytes(blk)


def _ng_bad_iface() -> bytes:
    return b.shb() + b.idb() + b.epb(0, 1, b.ETH_FRAME) + b.epb(3, 2, b.ETH_FRAME)


def _ng_truncated() -> bytes:
    return (b.shb() + b.idb() + b.epb(0, 1, b.ETH_FRAME) + b.epb(0, 2, b.ETH_FRAME))[:-20]


# name -> (bytes, packets read, expected warning prefix or None)
DAMAGED = {
    "truncated-record": (GOOD[:-10], 4, f"truncated record at byte {LAST} (after frame 4): "),
    "truncated-record-header": (GOOD + b"\x01\x02\x03", 5, "truncated record header at byte"),
    "absurd-caplen": (_absurd(), 1, f"absurd record length at byte {24 + REC} (after frame 1): 4294967280"),
    "caplen-over-snaplen": (_huge_but_present(), 2, None),
    "ng-trailer-mismatch": (_ng_bad_trailer(), 1, "block length mismatch at byte"),
    "ng-unaligned-length": (_ng_unaligned(), 1, "bad block length at byte"),
    "ng-unknown-interface": (_ng_bad_iface(), 1, "packet block at byte"),
    "ng-truncated-block": (_ng_truncated(), 1, "truncated block at byte"),
}


@pytest.mark.parametrize("name", DAMAGED)
def test_damage_is_a_warning(tmp_path: Path, name: str) -> None:
    data, packets, warning = DAMAGED[name]
    path = tmp_path / f"{name}.cap"
    path.write_bytes(data)
    cap = open_capture(path)
    n = sum(len(x) for x in cap.batches(batch_size=2))
    assert n == cap.info.packets == packets
    if warning is None:
        assert cap.info.warnings == ()
    else:
        assert len(cap.info.warnings) == 1 and cap.info.warnings[0].startswith(warning), cap.info.warnings


def test_truncated_record_message_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "t.pcap"
    path.write_bytes(GOOD[:-10])
    cap = open_capture(path)
    list(cap.batches())
    assert cap.info.warnings == (
        f"truncated record at byte {LAST} (after frame 4): {len(b.ETH_FRAME) + 4} bytes declared, "
        f"{len(b.ETH_FRAME) + 4 - 10} left",
    )


def test_gzip_of_pcap_reads_like_the_pcap(tmp_path: Path) -> None:
    raw, gz = tmp_path / "a.pcap", tmp_path / "a.pcap.gz"
    raw.write_bytes(GOOD)
    gz.write_bytes(gzip.compress(GOOD))
    a, c = open_capture(raw), open_capture(gz)
    ta = np.concatenate([x.ts_ns for x in a.batches()])
    tc = np.concatenate([x.ts_ns for x in c.batches()])
    assert np.array_equal(ta, tc) and c.info.gzip and not a.info.gzip
    assert [x.packet(0) for x in c.batches(batch_size=1)] == [x.packet(0) for x in a.batches(batch_size=1)]


def test_large_gzip_spills_to_a_mapped_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helix_audit.capture import source

    monkeypatch.setattr(source, "GZIP_IN_MEMORY", 1000)
    gz = tmp_path / "big.pcap.gz"
    gz.write_bytes(gzip.compress(b.pcap_file(200)))
    cap = open_capture(gz)
    assert cap._mm is not None
    assert sum(len(x) for x in cap.batches()) == 200


def test_truncated_gzip_is_read_up_to_the_cut(tmp_path: Path) -> None:
    gz = tmp_path / "cut.pcap.gz"
    gz.write_bytes(gzip.compress(b.pcap_file(500))[:-2000])
    cap = open_capture(gz)
    n = sum(len(x) for x in cap.batches())
    assert 0 < n < 500
    assert any(w.startswith("gzip stream truncated") for w in cap.info.warnings)
