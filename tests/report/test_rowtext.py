"""The numba row assembler and the batched record encoders write exactly what the plain per-record
formatting writes, hostile values included."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helix_audit.model import DnsAnswer, DnsQuery, DnsResponse
from helix_audit.report import json_flows, json_stream
from helix_audit.report.json_flows import _encoded_column, _kernel_chunk, flow_lines
from helix_audit.report.json_report import dumps, iter_json, to_dict
from helix_audit.report.json_stream import (
    _SEP,
    batch_text,
    compact,
    observation_text,
    observations_text,
)
from helix_audit.report.rowtext import quoted_cells, text_cells

from .factory import make_result

NAMES = [
    'a"b',
    "x\\y",
    "<script>",
    "tab\there",
    "",
    "100%",
    "ok",
    "del\x7f",
    "caf\u00e9",
    "\ud800lone",
    "nul\x00",
]


def _plain(frame: pd.DataFrame) -> bytes:
    columns = list(frame.columns)
    template = "{" + ",".join(compact(c).replace("%", "%%") + ":%s" for c in columns) + "}"
    cells = [_encoded_column(frame[c]) for c in columns]
    return _SEP.join(template % row for row in zip(*cells, strict=True)).encode("ascii")


def _frame(seed: int, n: int = 500, names: list[str] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pool = np.array(names or NAMES, dtype=object)
    ints = rng.integers(-(2**62), 2**62, n)
    ints[:4] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, -1]
    frame = pd.DataFrame(
        {
            "flow_id": np.arange(n, dtype=np.int64),
            "big": ints,
            "small": rng.integers(0, 255, n).astype(np.uint8),
            "u64": np.full(n, 2**64 - 1, dtype=np.uint64),
            "ts": rng.random(n) * 1e9,
            "dur": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "ok": rng.random(n) < 0.5,
            "name": pool[rng.integers(0, len(pool), n)],
            "maybe": np.where(rng.random(n) < 0.3, None, pool[rng.integers(0, len(pool), n)]),
            "s": pd.array(pool[rng.integers(0, len(pool), n)], dtype="str"),
            "none": pd.array([None] * n, dtype="str"),
            "stream": pd.array(np.where(rng.random(n) < 0.3, -1, rng.integers(0, 50, n)), dtype="Int64"),
            "%s key": rng.integers(-5, 5, n),
        }
    )
    frame["stream"] = frame["stream"].mask(frame["stream"] < 0)
    return frame


@pytest.mark.parametrize("seed", range(4))
def test_kernel_chunk_equals_plain_formatting(seed: int) -> None:
    frame = _frame(seed)
    data = _kernel_chunk(frame, list(frame.columns))
    assert data is not None and data.tobytes() == _plain(frame)


def test_plain_names_take_the_quoted_path_and_agree() -> None:
    frame = _frame(7, names=["10.0.0.1", "example.com", "", "a b", "~!@#$%^&*()"])
    data = _kernel_chunk(frame, list(frame.columns))
    assert data is not None and data.tobytes() == _plain(frame)
    assert quoted_cells(["a", "bc"], np.array([1, -1, 0])) is not None


@pytest.mark.parametrize("value", ['a"b', "x\\y", "t\tb", "del\x7f", "caf\u00e9", "\ud800", 3, None])
def test_quoted_cells_refuse_what_needs_escaping(value: object) -> None:
    assert quoted_cells(["plain", value], np.zeros(2, dtype=np.int64)) is None


def test_non_ascii_cells_are_refused_for_the_plain_path() -> None:
    assert text_cells(["caf\u00e9"], np.zeros(1, dtype=np.int64)) is None


def test_flow_lines_chunks_cover_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_flows, "FLOW_CHUNK", 7)
    frame = pd.DataFrame({"flow_id": np.arange(20), "h": ["10.0.0.1"] * 20})
    joined = json_stream.SEP.join(bytes(c) for c in flow_lines(frame, ["flow_id", "h"]))
    assert joined == _plain(frame)


def test_infinite_floats_are_refused() -> None:
    frame = pd.DataFrame({"x": [1.0, np.inf]})
    with pytest.raises(ValueError, match="not JSON compliant"):
        list(flow_lines(frame, ["x"]))


def _observations() -> list:
    base = {"frame": 1, "ts": 1.5, "file": "a.pcap", "src": "10.0.0.1", "sport": 5, "dst": "10.0.0.2",
            "dport": 53, "transport": "udp", "flow_id": 0, "frames": (1,)}  # fmt: skip
    out = []
    for i, name in enumerate(["ok.example", "caf\u00e9", "\ud800x", "del\x7f", 'q"', "nul\x00"]):
        out.append(DnsQuery("dns_query", **base, id=i, qname=name, qtype="A", qtypes=("A", "\x00", "AAAA"),
                            qnames=(name,)))  # fmt: skip
        answers = (DnsAnswer(name, "A", 60, "10.0.0.9"),)
        out.append(DnsResponse("dns_response", **base, id=i, qname=name, qtype="A", answers=answers))
    return out


def test_observation_batches_equal_record_by_record() -> None:
    obs = _observations()
    expected = _SEP.join(observation_text(o) for o in obs).encode("ascii")
    assert observations_text(obs) == expected
    plain = [o for o in obs if isinstance(o, DnsQuery)][:1]
    assert observations_text(plain) == _SEP.join(observation_text(o) for o in plain).encode("ascii")


def test_batch_text_refuses_a_marker_inside_a_record() -> None:
    assert batch_text([{"a": ["x", "\xff", "y"]}, {"b": 1}]) is None
    assert bytes(batch_text([{"a": ["x", "\x00"]}, {"b": 1}])) == b'{"a":["x","\\u0000"]},\n  {"b":1}'
    assert batch_text([{"a": 1}, {"b": [1, 2]}]) == b'{"a":1},\n  {"b":[1,2]}'
    assert batch_text([{"a": "caf\u00e9"}]) is None
    assert batch_text([{"a": {1: 2}}]) is None and batch_text([{"a": 2**70}]) is None


@pytest.mark.parametrize(
    "kw", [{}, {"hostile": True}, {"empty": True}, {"bulk": 300}], ids=["normal", "hostile", "empty", "bulk"]
)
def test_streamed_report_equals_the_whole_document(kw: dict) -> None:
    result = make_result(**kw)
    streamed = b"".join(bytes(piece) for piece in iter_json(result))
    assert streamed.decode("ascii") == dumps(to_dict(result))
    json.loads(streamed)
