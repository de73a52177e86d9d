"""Real captures, decoded once and cut into row ranges at arbitrary points, merge into the serial result.

(Cutting decoded rows, not byte ranges, keeps the decode stage's input identical: IP fragments split
across byte ranges cannot be reassembled by a stateless ``decode_batch``, which is decode's concern.)
"""

from __future__ import annotations

import random
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helix_audit.decode.interface import PacketColumns
from helix_audit.flows.table import FlowTable
from tests.conftest import CORPUS_FILES, needs_corpus

pytestmark = [needs_corpus, pytest.mark.corpus]


def decoded(path: Path) -> list[PacketColumns]:
    from helix_audit.capture import open_capture
    from helix_audit.decode.core import decode_batch

    return [decode_batch(b) for b in open_capture(str(path)).batches()]


def rows(cols: PacketColumns, a: int, b: int) -> PacketColumns:
    vals = {f.name: getattr(cols, f.name) for f in fields(cols)}
    for k, v in vals.items():
        if isinstance(v, np.ndarray) and k != "data":
            vals[k] = v[a:b]
    vals["reassembled"] = {i - a: seg for i, seg in cols.reassembled.items() if a <= i < b}
    return PacketColumns(**vals)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_row_ranges_merge_to_serial(corpus: Path, name: str) -> None:
    path = corpus / name
    batches = decoded(path)
    serial = FlowTable([str(path)])
    for cols in batches:
        serial.add(cols)
    rnd = random.Random(name)
    merged = FlowTable([str(path)])
    for cols in batches:
        cuts = sorted({0, len(cols), *(rnd.randrange(len(cols) + 1) for _ in range(3))})
        for a, b in zip(cuts, cuts[1:], strict=False):
            part = FlowTable([str(path)])
            for c in range(a, b, 5):  # small batches inside each partition too
                part.add(rows(cols, c, min(b, c + 5)))
            merged.merge(part)
    pd.testing.assert_frame_equal(serial.finish()[0], merged.finish()[0])
    pd.testing.assert_frame_equal(serial.non_flow_summary(), merged.non_flow_summary())
