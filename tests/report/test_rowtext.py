"""The numba row assembler writes exactly the records the plain per-row formatting writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.report import json_stream
from helix_audit.report.json_stream import _SEP, _encoded_column, _kernel_chunk, compact, flow_lines
from helix_audit.report.rowtext import text_cells


def _plain(frame: pd.DataFrame) -> str:
    columns = list(frame.columns)
    template = "{" + ",".join(compact(c).replace("%", "%%") + ":%s" for c in columns) + "}"
    cells = [_encoded_column(frame[c]) for c in columns]
    return _SEP.join(template % row for row in zip(*cells, strict=True))


@pytest.mark.parametrize("seed", range(4))
def test_kernel_chunk_equals_plain_formatting(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    names = np.array(['a"b', "x\\y", "<script>", "tab\there", "", "100%", "ok"], dtype=object)
    frame = pd.DataFrame(
        {
            "flow_id": np.arange(n, dtype=np.int64),
            "ts": rng.random(n) * 1e9,
            "dur": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "ok": rng.random(n) < 0.5,
            "name": names[rng.integers(0, len(names), n)],
            "maybe": np.where(rng.random(n) < 0.3, None, names[rng.integers(0, len(names), n)]),
            "stream": pd.array(np.where(rng.random(n) < 0.3, -1, rng.integers(0, 50, n)), dtype="Int64"),
            "%s key": rng.integers(-5, 5, n),
        }
    )
    frame["stream"] = frame["stream"].mask(frame["stream"] < 0)
    text = _kernel_chunk(frame, list(frame.columns))
    assert text is not None and text == _plain(frame)


def test_non_ascii_values_are_escaped_the_same_way() -> None:
    frame = pd.DataFrame({"a": [1, 2], "name": ["caf\u00e9", "\ud800lone"]})
    text = _kernel_chunk(frame, ["a", "name"])
    assert text is not None and text.isascii() and text == _plain(frame)


def test_non_ascii_cells_are_refused_for_the_plain_path() -> None:
    assert text_cells(["caf\u00e9"], np.zeros(1, dtype=np.int64)) is None


def test_flow_lines_chunks_cover_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_stream, "FLOW_CHUNK", 7)
    frame = pd.DataFrame({"flow_id": np.arange(20), "h": ["10.0.0.1"] * 20})
    joined = _SEP.join(_SEP.join(c) for c in flow_lines(frame, ["flow_id", "h"]))
    assert joined == _plain(frame)
