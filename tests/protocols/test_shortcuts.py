"""The extractor's bookkeeping short cuts give what the plain bookkeeping gave.

* rows of finished directions are dropped before ``_tcp`` (no head looked for in ``select`` for a
  direction done and not kept; no call for a row ``_tcp`` would return on at once);
* new directions read their ports and addresses from one bulk read per ``_tcp_rows`` call;
* ``_tcp_rows`` runs ``_tcp``'s steps itself (but for standalone heads) unless a subclass hooks
  ``_tcp`` or ``_new_direction``: the hooked path is the reference;
* ``finish`` knows a one-file result from the batches' sources instead of reading every
  observation's file;
* the pairing's answer is stored into the request in place (``amended``) rather than copied.

The reference extractor looks for heads in every row, hands every row to ``_tcp`` and reads every
observation's file at the end (what the extractor did before the short cuts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helix_audit.decode.interface import PacketColumns
from helix_audit.flows.interface import PacketFlows
from helix_audit.model import HttpConnect, Observation, WebSocketUpgrade
from helix_audit.protocols import selection
from helix_audit.protocols.build import amended, observation_maker, rebuilt
from helix_audit.protocols.extract import Extractor
from helix_audit.protocols.streams import Meta
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus
from tests.parallel.helpers import SAMPLE_FILES

from .pipeline import drive
from .test_lazy_syn import _capture


class PlainExtractor(Extractor):
    """No short cuts: every row through ``_tcp``, heads looked for in every row, files read."""

    def add(self, cols: PacketColumns, pf: PacketFlows) -> None:
        self._gone = np.zeros(1, dtype=bool)  # noqa: SLF001  nothing known to be gone
        super().add(cols, pf)
        self._filed = -1  # noqa: SLF001  finish reads every observation's file

    def _tcp_rows(self, cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, keys: np.ndarray) -> None:
        self._base = self._births  # noqa: SLF001
        self._births += len(rows)  # noqa: SLF001
        todo = self._early_syns(cols, pf, rows, keys)  # noqa: SLF001
        left = rows[todo]
        columns = (pf.flow_id, pf.from_a, cols.seq, cols.tcp_flags, cols.frame, cols.ts_ns)
        for j, i, fid, from_a, seq, flags, frame, ts_ns in zip(
            todo.tolist(), left.tolist(), *(c[left].tolist() for c in columns), strict=True
        ):
            payload = cols.payload(i)
            if not payload and flags & selection.SYN and (fid, from_a) not in self._dirs:  # noqa: SLF001
                k = fid * 2 + from_a
                if k not in self._syn and not (k < self._done.size and self._done[k]):  # noqa: SLF001
                    self._pending_syn(k, seq, self._base + j)  # noqa: SLF001
                continue
            try:
                self._tcp(cols, pf, i, (fid, from_a), seq, flags, frame, ts_ns / 1e9, payload, j)  # noqa: SLF001
            except Exception as exc:  # noqa: BLE001  as the extractor does
                self._internal_error(cols, i, exc)  # noqa: SLF001
                self._mark_done(fid * 2 + int(from_a))  # noqa: SLF001


def _run(cls: type[Extractor], paths: list[Path], batch: int | None) -> tuple:
    obs, anomalies, done = drive(cls(), paths, batch)
    return [(o.to_record(), list(vars(o))) for o in obs], anomalies, done


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch", [None, 1, 5, 64])
def test_short_cuts_equal_plain_bookkeeping(tmp_path: Path, seed: int, batch: int | None) -> None:
    path = _capture(tmp_path / "c.pcap", seed)
    assert _run(Extractor, [path], batch) == _run(PlainExtractor, [path], batch)


class HookedExtractor(Extractor):
    """Hooks ``_tcp`` (as the partition extractor does): every row goes through it, not the loop's copy."""

    def _tcp(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return super()._tcp(*args, **kwargs)


@pytest.mark.parametrize("seed", [1, 2, 3, 6])
@pytest.mark.parametrize("batch", [None, 1, 64])
def test_inlined_rows_equal_the_tcp_path(tmp_path: Path, seed: int, batch: int | None) -> None:
    path = _capture(tmp_path / "c.pcap", seed)
    assert _run(Extractor, [path], batch) == _run(HookedExtractor, [path], batch)


@needs_corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_inlined_rows_equal_the_tcp_path_on_the_corpus(name: str) -> None:
    assert CORPUS is not None
    for batch in (None, 1000):
        assert _run(Extractor, [CORPUS / name], batch) == _run(HookedExtractor, [CORPUS / name], batch)


def test_several_files_keep_file_then_frame_order(tmp_path: Path) -> None:
    paths = [_capture(tmp_path / "a.pcap", 4), _capture(tmp_path / "b.pcap", 5), *SAMPLE_FILES[:2]]
    fast, plain = _run(Extractor, paths, 7), _run(PlainExtractor, paths, 7)
    assert fast == plain
    files = [r["file"] for r, _ in fast[0]]
    # ordered by (file, frame), the file by its path text (finish's order), whatever the input order
    assert len(set(files)) > 1 and files == sorted(files)


def test_observations_appended_outside_add_are_sorted_by_file_too() -> None:
    ex = Extractor()
    make = observation_maker(HttpConnect)
    for file, frame in (("b.pcap", 1), ("a.pcap", 2), ("b.pcap", 0)):
        ex.observations.append(
            make(Meta(file, frame, 0.0, "s", 1, "d", 2, "tcp", 0), (frame,), "http_connect")
        )
    got = [(o.file, o.frame) for o in ex.finish()[0]]
    assert got == [("a.pcap", 2), ("b.pcap", 0), ("b.pcap", 1)]


@needs_corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_short_cuts_equal_plain_bookkeeping_on_the_corpus(name: str) -> None:
    assert CORPUS is not None
    for batch in (None, 1000):
        assert _run(Extractor, [CORPUS / name], batch) == _run(PlainExtractor, [CORPUS / name], batch)


META = Meta("f.pcap", 7, 1.5, "10.0.0.1", 40000, "10.0.0.2", 80, "tcp", 3)


@pytest.mark.parametrize(
    ("cls", "changes"),
    [
        (WebSocketUpgrade, {"accepted": True, "status": 101, "response_frame": 12}),
        (HttpConnect, {"status": 403, "response_frame": None}),
    ],
)
def test_amended_equals_rebuilt(cls: type[Observation], changes: dict[str, object]) -> None:
    make = observation_maker(cls)
    want = rebuilt(make(META, (7,), "x", "GET", "h", "/p", "HTTP/1.1", None), changes)
    obj = make(META, (7,), "x", "GET", "h", "/p", "HTTP/1.1", None)
    got = amended(obj, changes)
    assert got is obj and got == want and list(vars(got).items()) == list(vars(want).items())
    other = make(META, (7,), "x", "GET", "h", "/p", "HTTP/1.1", None)
    assert vars(other) != vars(got)  # each object has a dict of its own (copies of one prototype)


def test_amended_falls_back_for_a_partial_instance() -> None:
    obj = object.__new__(WebSocketUpgrade)
    object.__setattr__(obj, "__dict__", {"type": "websocket_upgrade", "frame": 1})
    with pytest.raises(TypeError):
        amended(obj, {"status": 101})  # what ``rebuilt`` (and the dataclass) say about missing fields


def test_maker_objects_equal_init_objects() -> None:
    make = observation_maker(WebSocketUpgrade)
    got = make(META, (7, 8), "websocket_upgrade", "GET", "h", "/ws", "HTTP/1.1", "ua", status=101)
    want = WebSocketUpgrade(
        type="websocket_upgrade", frame=7, ts=1.5, file="f.pcap", src="10.0.0.1", sport=40000, dst="10.0.0.2",
        dport=80, transport="tcp", flow_id=3, frames=(7, 8), method="GET", host="h", path="/ws",
        version="HTTP/1.1", user_agent="ua", status=101,
    )  # fmt: skip
    assert got == want and hash(got) == hash(want) and list(vars(got).items()) == list(vars(want).items())
