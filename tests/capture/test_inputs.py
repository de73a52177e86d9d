"""expand_inputs: files as given, directories searched for captures in time order."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from helix_audit.capture import expand_inputs
from helix_audit.errors import InputError

from . import builders as b


def test_directory_keeps_captures_in_time_order(tmp_path: Path) -> None:
    d = tmp_path / "rot"
    (d / "sub").mkdir(parents=True)
    (d / "a-latest.pcap").write_bytes(b.pcap_file(3, t0=3000))
    (d / "sub" / "b-first.bin").write_bytes(b.pcap_file(3, t0=1000, endian=">"))
    (d / "c-middle.gz").write_bytes(gzip.compress(b.shb() + b.idb() + b.epb(0, 2000 * 10**6, b.ETH_FRAME)))
    (d / "notes.txt").write_text("not a capture")
    (d / "data.gz").write_bytes(gzip.compress(b"plain text"))
    (d / "empty.pcap").write_bytes(b"")
    got = expand_inputs([d])
    assert [p.name for p in got] == ["b-first.bin", "c-middle.gz", "a-latest.pcap"]


def test_files_are_kept_as_given(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("whatever")
    assert expand_inputs([str(f)]) == [f]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing: no such file or directory$"):
        expand_inputs([tmp_path / "missing"])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "readme.md").write_text("hi")
    with pytest.raises(InputError, match=r"/d: no pcap or pcapng files$"):
        expand_inputs([tmp_path / "d"])
