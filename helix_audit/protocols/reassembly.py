"""TCP stream-start reassembly for one direction (RFC 9293 §3.4 sequence numbers, §3.10.7.4 data order).

Only the first ``limit`` bytes of a direction are rebuilt: enough for handshakes and request heads.
Segments are placed by sequence number relative to the ISN (SYN seq + 1; data carried on the SYN
itself, TCP Fast Open RFC 7413, starts there too). Without a SYN the stream starts at the lowest
sequence number seen before any byte was delivered. Out-of-order segments wait in a bounded pending
map; retransmitted and overlapping bytes keep the first copy. A new SYN with another ISN after data
starts a new stream (port reuse). Memory per direction is bounded by ``limit`` and ``MAX_PENDING``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEQ_MOD = 1 << 32
HALF = 1 << 31
DEFAULT_LIMIT = 64 * 1024
MAX_PENDING = 256
SYN = 0x02


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in sequence space."""
    return ((a - b + HALF) % SEQ_MOD) - HALF


@dataclass(slots=True)
class StreamStart:
    """The reassembled start of one TCP direction: ``buf`` plus which frame supplied which bytes."""

    limit: int = DEFAULT_LIMIT
    isn: int | None = None  # seq of the SYN
    base: int | None = None  # seq of buf[0], fixed once a byte is delivered
    buf: bytearray = field(default_factory=bytearray)
    pieces: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, frame) in buf
    pending: dict[int, tuple[bytes, int]] = field(default_factory=dict)  # seq -> (data, frame)
    dropped: int = 0  # segments ignored (beyond limit or pending full)
    grown: bool = False  # bytes appended in order since the last ``advance``

    @property
    def full(self) -> bool:
        return len(self.buf) >= self.limit

    def add(self, seq: int, flags: int, data: bytes, frame: int) -> bool:
        """Add one segment; True when it restarted the stream (a new SYN after data)."""
        restarted = False
        if flags & SYN:
            if self.isn is not None and seq != self.isn and self.buf:
                self._reset()
                restarted = True
            if self.isn is None or restarted:
                self.isn = seq
                if self.base is None:
                    self.base = (seq + 1) % SEQ_MOD
            seq = (seq + 1) % SEQ_MOD
        if (
            data
            and self.base is not None
            and not self.pending
            and seq == (self.base + len(self.buf)) % SEQ_MOD
        ):
            self._append(data, frame)  # the common case: the next bytes, in order
        elif data:
            self._pend(seq, data, frame)
        return restarted

    def _append(self, data: bytes, frame: int) -> None:
        room = self.limit - len(self.buf)
        if room > 0:
            tail = data[:room]
            self.pieces.append((len(self.buf), len(self.buf) + len(tail), frame))
            self.buf += tail
            self.grown = True

    def _reset(self) -> None:
        self.isn = self.base = None
        self.buf = bytearray()
        self.pieces = []
        self.pending = {}

    def _pend(self, seq: int, data: bytes, frame: int) -> None:
        if self.base is not None and seq_diff(seq + len(data), self.base + len(self.buf)) <= 0:
            return  # nothing new (retransmission of delivered bytes)
        if self.base is not None and seq_diff(seq, self.base) >= self.limit:
            self.dropped += 1
            return  # past what we keep
        old = self.pending.get(seq)
        if old is not None and len(old[0]) >= len(data):
            return
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self.pending[seq] = (data, frame)

    def advance(self) -> bool:
        """Move pending bytes that now touch the end of ``buf`` into it; True when ``buf`` grew."""
        grown, self.grown = self.grown, False
        if not self.pending:
            return grown
        if self.base is None:
            ref = next(iter(self.pending))
            self.base = min(self.pending, key=lambda s: seq_diff(s, ref))
        start_len = len(self.buf)
        progress = True
        while progress and self.pending and not self.full:
            progress = False
            for seq in list(self.pending):
                progress |= self._try_place(seq)
        return grown or len(self.buf) > start_len

    def _try_place(self, seq: int) -> bool:
        assert self.base is not None
        data, frame = self.pending[seq]
        off = seq_diff(seq, self.base)
        end = off + len(data)
        if end <= len(self.buf) or off >= self.limit:
            del self.pending[seq]  # already have it, or beyond what we keep
            return False
        if off > len(self.buf):
            return False  # a gap before it: wait
        del self.pending[seq]
        tail = data[len(self.buf) - off : self.limit - off]
        self.pieces.append((len(self.buf), len(self.buf) + len(tail), frame))
        self.buf += tail
        return True

    def frame_at(self, end: int) -> int:
        """Frame that supplied byte ``end - 1`` (the last segment of a message ending at ``end``)."""
        for start, stop, frame in reversed(self.pieces):
            if start < end <= stop:
                return frame
        return self.pieces[-1][2] if self.pieces else 0

    def frames_between(self, start: int, end: int) -> tuple[int, ...]:
        """Frames that supplied any byte of ``buf[start:end]``, in stream order."""
        out: list[int] = []
        for a, b, frame in self.pieces:
            if a < end and b > start and frame not in out:
                out.append(frame)
        return tuple(out)
