"""The flow-record kernel's shortcuts (constant columns folded into the row text, text cells found
by object identity, word-wise copies, the marker splice of record batches) write exactly what the
plain per-value encoding writes."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helix_audit.arrays import addresses
from helix_audit.flows.blob import TextBlobArray
from helix_audit.report import atomic, json_flows
from helix_audit.report.atomic import atomic_write_chunks
from helix_audit.report.json_flows import _encoded_column, _kernel_chunk, flow_lines
from helix_audit.report.json_report import flow_records
from helix_audit.report.json_stream import SEP, compact, fast_compact
from helix_audit.report.rowtext import identities, splice

HOSTILE = ['a"b', "x\\y", "<script>", "tab\there", "", "100%", "del\x7f", "nul\x00", "</script>", "\u2028"]


def _by_value(frame: pd.DataFrame) -> bytes:
    """Each value encoded on its own, as the streamed report encodes a text it cannot quote itself
    (orjson where it can: it writes DEL raw where json writes ``\\u007f``)."""
    rows = flow_records(frame, tuple(frame.columns))
    text = ["{" + ",".join(f"{compact(k)}:{fast_compact(v)}" for k, v in r.items()) + "}" for r in rows]
    return ",\n  ".join(text).encode("ascii")


def _by_column(frame: pd.DataFrame) -> bytes:
    """Each cell as orjson writes the column (the spelling of floats the streamed report uses)."""
    columns = list(frame.columns)
    template = "{" + ",".join(compact(c).replace("%", "%%") + ":%s" for c in columns) + "}"
    cells = [_encoded_column(frame[c]) for c in columns]
    return ",\n  ".join(template % row for row in zip(*cells, strict=True)).encode("ascii")


def _kernel(frame: pd.DataFrame, columns: list[str] | None = None) -> bytes:
    data = _kernel_chunk(frame, columns or list(frame.columns))
    assert data is not None
    return data.tobytes()


def _fresh(text: str) -> str:
    """An equal string that is a different object."""
    return "".join(list(text))


def test_constant_columns_of_every_kind() -> None:
    n = 9
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "zero": np.zeros(n, dtype=np.int64),
            "big": np.full(n, np.iinfo(np.int64).max),
            "min": np.full(n, np.iinfo(np.int64).min),
            "small": np.full(n, 7, dtype=np.uint8),
            "text": pd.array(["tcp"] * n, dtype="str"),
            "hostile": np.array([HOSTILE[0]] * n, dtype=object),
            "none": np.array([None] * n, dtype=object),
            "stream": pd.array([None] * n, dtype="Int64"),
            "stream1": pd.array([3] * n, dtype="Int64"),
            "ok": np.ones(n, dtype=bool),
            "u64": np.full(n, 2**64 - 1, dtype=np.uint64),
            "empty": pd.array([""] * n, dtype="str"),
        }
    )
    assert _kernel(frame) == _by_value(frame)
    assert _kernel(frame.drop(columns="id")) == _by_value(frame.drop(columns="id"))  # no variable column
    assert _kernel(frame.iloc[:1]) == _by_value(frame.iloc[:1])


@pytest.mark.parametrize(
    "values",
    [
        [0.0, -0.0, 0.0],
        [-0.0, -0.0, -0.0],
        [np.nan, np.nan, np.nan],
        [np.nan, 1.5, np.nan],
        [1.5, 1.5, np.nan],
        [1e-05, 1e-05, 1e-05],
        [1700000000.0002, 1700000000.0002, 1700000000.0002],
        [1e300, 1e300, 1e300],
    ],
)
def test_float_columns_constant_or_not(values: list[float]) -> None:
    frame = pd.DataFrame({"x": values, "n": [1, 2, 3]})
    assert _kernel(frame) == _by_column(frame)


def test_infinite_constant_is_refused() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        list(flow_lines(pd.DataFrame({"x": [np.inf, np.inf]}), ["x"]))


def test_equal_strings_that_are_different_objects() -> None:
    rng = np.random.default_rng(3)
    pool = HOSTILE + ["10.0.0.1", "example.com", "ok"]
    picks = rng.integers(0, len(pool), 300)
    frame = pd.DataFrame(
        {
            "fresh": np.array([_fresh(pool[i]) for i in picks], dtype=object),
            "shared": np.array([pool[i] for i in picks], dtype=object),
            "s": pd.array([_fresh(pool[i]) for i in picks], dtype="str"),
            "plain": np.array([_fresh(pool[i]) for i in picks % 3 + len(HOSTILE)], dtype=object),
        }
    )
    assert _kernel(frame) == _by_value(frame)


def test_mixed_objects_are_written_value_by_value() -> None:
    values = [1, 1.0, True, None, np.nan, "1", (), ("a", 'b"'), pd.NA, "x", -0.0, 2**70]
    frame = pd.DataFrame({"v": np.array(values * 3, dtype=object), "i": np.arange(len(values) * 3)})
    assert _kernel(frame) == _by_value(frame)


def test_non_ascii_falls_back_and_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_flows, "FLOW_CHUNK", 4)
    names = ["ok", "a", "caf\u00e9", "\ud800lone", "b", "c", "d", "e", "f", "g"]
    frame = pd.DataFrame({"h": np.array(names, dtype=object), "i": np.arange(len(names))})
    joined = SEP.join(bytes(c) for c in flow_lines(frame, ["h", "i"]))
    assert joined == _by_value(frame)


def test_strided_object_column_and_missing_column() -> None:
    block = np.array([[_fresh(h), h, None if i % 3 else h] for i, h in enumerate(HOSTILE * 3)], dtype=object)
    frame = pd.DataFrame(block, columns=["a", "b", "c"], copy=False)  # columns: strided views
    assert not frame["a"].to_numpy().flags.c_contiguous
    expected = _by_value(frame.reindex(columns=["a", "b", "absent", "c"]))
    assert _kernel(frame, ["a", "b", "absent", "c"]) == expected


@pytest.mark.parametrize("rows", [1, 5, 4100])
def test_finished_frame_dtypes(rows: int) -> None:
    """Categoricals (odd texts, missing values, unused categories), int32 and Int32 columns: the
    kernel writes what the per-value encoding writes."""
    rng = np.random.default_rng(rows)
    texts = [*HOSTILE[:5], "tcp"]
    frame = pd.DataFrame(
        {
            "cat": pd.Categorical(
                [texts[i] if i < len(texts) else None for i in rng.integers(0, len(texts) + 1, rows)],
                categories=sorted({*texts, "unused"}),
            ),
            "one": pd.Categorical(["x.pcap"] * rows),
            "port": rng.integers(-(2**31), 2**31, rows).astype(np.int32),
            "stream": pd.array([None if i % 3 == 0 else i for i in range(rows)], dtype="Int32"),
        }
    )
    assert _kernel(frame) == _by_value(frame) == _by_column(frame)


@pytest.mark.parametrize("rows", [1, 7, 4100])
@pytest.mark.parametrize("odd", [None, 'a"b', "x\\y", "new\nline", "del\x7f", "é", "\u2028", "NA"])
def test_text_blob_column(rows: int, odd: str | None) -> None:
    """key_frames held as a TextBlobArray: quoted in its buffer when plain, else (an escape, a
    newline, non-ASCII, a missing row) from its strs; the same bytes as the per-value encoding."""
    texts: list[str | None] = [",".join(str(7 * i + k) for k in range(i % 4)) for i in range(rows)]
    if odd is not None:
        texts[rows // 2] = None if odd == "NA" else odd
    frame = pd.DataFrame({"id": np.arange(rows), "key_frames": TextBlobArray.from_texts(texts)}, copy=False)
    assert _kernel(frame) == _by_value(frame) == _by_column(frame)
    if odd is None and rows > 1:
        got = json_flows._blob_cells(frame["key_frames"].array[1:])
        assert got is not None and got.codes is None  # from the buffer, no strs


def test_identities() -> None:
    a, b = "x" * 3, _fresh("x" * 3)
    values = np.array([a, a, b, a, None, b, None], dtype=object)
    codes, first = identities(values)
    assert codes.tolist() == [0, 0, 1, 0, 2, 1, 2] and first.tolist() == [0, 2, 4]
    codes, first = identities(np.array([a] * 5, dtype=object))
    assert codes.tolist() == [0] * 5 and first.tolist() == [0]
    codes, first = identities(np.array([], dtype=object))
    assert len(codes) == 0 and len(first) == 0
    strided = np.array([a, b] * 4, dtype=object)[::2]
    assert identities(strided)[1].tolist() == [0]
    assert addresses(strided).tolist() == [id(a)] * 4 == addresses(np.ascontiguousarray(strided)).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_splice_matches_slicing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    src = rng.integers(32, 127, int(rng.integers(0, 200)), dtype=np.uint8)
    width = int(rng.integers(1, 9))
    cuts = np.sort(rng.choice(np.arange(0, max(len(src) - width, 0) + 1, width), size=0 if len(src) < width
                   else int(rng.integers(0, len(src) // width + 1)), replace=False))  # fmt: skip
    sep = b",\n  "
    expected, k = b"", 0
    for c in cuts:
        expected += src[k:c].tobytes() + sep
        k = c + width
    expected += src[k:].tobytes()
    assert bytes(splice(src, cuts.astype(np.int64), width, sep)) == expected


def test_chunks_written_and_hashed_in_order(tmp_path: Path) -> None:
    chunks = [bytes([65 + i % 26]) * (i * 997 % 9000) for i in range(300)]
    chunks += [np.frombuffer(b"tail", dtype=np.uint8), memoryview(b"!")]
    path, digest = atomic_write_chunks(tmp_path / "r.json", chunks)
    data = path.read_bytes()
    assert data == b"".join(bytes(c) for c in chunks)
    assert digest == hashlib.sha256(data).hexdigest()


def test_producer_error_leaves_no_file_and_no_thread(tmp_path: Path) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b"x" * 10_000
        raise RuntimeError("encoder failed")

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="encoder failed"):
        atomic_write_chunks(tmp_path / "r.json", chunks())
    assert not list(tmp_path.iterdir())
    assert threading.active_count() == before


def test_writer_error_reaches_the_producer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "DEPTH", 1)
    produced = []

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(1000):
            produced.append(i)
            yield "not bytes" if i == 3 else b"ok"

    before = threading.active_count()
    with pytest.raises(TypeError):
        atomic_write_chunks(tmp_path / "r.json", chunks())
    assert not list(tmp_path.iterdir())
    assert len(produced) < 1000  # stopped soon after the failure, not at the end
    assert threading.active_count() == before
