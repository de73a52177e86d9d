"""ArrayPool hands an array out again only when no one holds it (nor a view of it); batches that a
consumer keeps stay intact while the stages go on reusing their pools."""

from __future__ import annotations

import numpy as np

from helix_audit.capture.pool import ArrayPool
from helix_audit.capture.source import open_capture
from helix_audit.decode.core import Decoder

from .builders import pcap_header, pcap_record


def test_reused_only_when_released() -> None:
    pool = ArrayPool(keep=2)
    a = pool.empty(100, np.int64, "x")
    b = pool.empty(100, np.int64, "x")
    a_id, b_id = id(a), id(b)
    view = b[10:20]
    del b
    c = pool.empty(100, np.int64, "x")  # a is held, b through its view: a new (unpooled) array
    assert id(c) not in (a_id, b_id)
    del a
    assert id(pool.empty(100, np.int64, "x")) == a_id
    a = pool.empty(100, np.int64, "x")
    assert id(a) == a_id and id(pool.empty(100, np.int64, "x")) not in (a_id, b_id)
    del view
    assert id(pool.empty(100, np.int64, "x")) == b_id


def test_names_and_dtypes_are_separate() -> None:
    pool = ArrayPool()
    a = pool.empty(8, np.uint8, "status")
    del a
    assert pool.empty(8, np.uint8, "proto") is not pool._arrays[("status", 8, "|u1")][0]
    assert pool.empty(8, np.int64, "status").dtype == np.int64


def test_kept_batches_survive_later_batches(tmp_path) -> None:  # noqa: ANN001
    packets = [bytes([i % 251]) * (60 + i % 7) for i in range(50)]
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_header() + b"".join(pcap_record(1, i, p) for i, p in enumerate(packets)))
    cap = open_capture(path)
    dec = Decoder()
    kept = [(b, dec.decode(b)) for b in cap.batches(batch_size=4)]  # every batch kept: no reuse
    frames = np.concatenate([b.frame for b, _ in kept])
    assert frames.tolist() == list(range(1, 51))
    assert np.concatenate([c.caplen for _, c in kept]).tolist() == [len(p) for p in packets]
    streamed = [int(c.frame[0]) for c in (dec.decode(b) for b in open_capture(path).batches(batch_size=4))]
    assert streamed == list(range(1, 51, 4))  # dropped at once: pooled arrays reused, values right


def test_one_set_of_record_columns_when_batches_are_dropped(tmp_path) -> None:  # noqa: ANN001
    """Neither the reader nor the releasing wrapper holds a batch while the next is read, so a
    consumer that drops each batch gets the same arrays every time (one set, not two alternating)."""
    from .builders import pcap_file

    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_file(40))
    bases, frames = set(), []
    for batch in open_capture(path).batches(batch_size=4, sha256=True):
        bases.add(id(batch.offset.base))
        frames += batch.frame.tolist()
        del batch
    assert frames == list(range(1, 41))
    assert len(bases) == 1
