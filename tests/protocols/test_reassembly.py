"""TCP stream-start reassembly: order, retransmission, overlap, missing SYN, wrap-around, limits."""

from __future__ import annotations

from helix_audit.protocols.reassembly import SYN, StreamStart

ISN = 1000


def feed(stream: StreamStart, segments: list[tuple[int, bytes, int]]) -> None:
    for seq, data, frame in segments:
        stream.add(seq, 0, data, frame)
        stream.advance()


def test_out_of_order_with_retransmission_and_overlap() -> None:
    s = StreamStart()
    s.add(ISN, SYN, b"", 1)
    feed(
        s,
        [(ISN + 6, b"world", 3), (ISN + 1, b"hello", 2), (ISN + 1, b"hello", 4), (ISN + 4, b"loXXXXXX!", 5)],
    )
    assert bytes(s.buf) == b"helloworldX!"  # overlap: the first copy of bytes 3..9 kept, new tail appended
    assert s.frame_at(5) == 2 and s.frame_at(10) == 3 and s.frame_at(12) == 5
    assert s.frames_between(0, 10) == (2, 3)


def test_gap_waits() -> None:
    s = StreamStart()
    s.add(ISN, SYN, b"", 1)
    feed(s, [(ISN + 4, b"def", 2)])
    assert bytes(s.buf) == b""
    feed(s, [(ISN + 1, b"abc", 3)])
    assert bytes(s.buf) == b"abcdef"


def test_missing_syn_starts_at_lowest_seq() -> None:
    s = StreamStart()
    s.add(5000, 0, b"second", 1)
    s.add(4994, 0, b"first ", 2)
    s.advance()
    assert bytes(s.buf) == b"first second"


def test_sequence_wraparound() -> None:
    s = StreamStart()
    s.add(2**32 - 3, SYN, b"", 1)
    feed(s, [(2**32 - 2, b"ab", 2), (0, b"cd", 3)])
    assert bytes(s.buf) == b"abcd"


def test_limit_bounds_memory() -> None:
    s = StreamStart(limit=10)
    s.add(ISN, SYN, b"", 1)
    feed(s, [(ISN + 1 + 8 * k, b"x" * 8, k + 2) for k in range(50)])
    assert len(s.buf) == 10 and s.full and not s.pending


def test_syn_with_data_fast_open() -> None:
    s = StreamStart()
    s.add(ISN, SYN, b"GET /", 1)
    feed(s, [(ISN + 6, b" HTTP", 2)])
    assert bytes(s.buf) == b"GET / HTTP"


def test_new_syn_after_data_restarts() -> None:
    s = StreamStart()
    s.add(ISN, SYN, b"", 1)
    feed(s, [(ISN + 1, b"old", 2)])
    assert s.add(77, SYN, b"", 3)
    feed(s, [(78, b"new", 4)])
    assert bytes(s.buf) == b"new"


def test_retransmitted_syn_does_not_restart() -> None:
    s = StreamStart()
    s.add(ISN, SYN, b"", 1)
    feed(s, [(ISN + 1, b"abc", 2)])
    assert not s.add(ISN, SYN, b"", 3)
    assert bytes(s.buf) == b"abc"
