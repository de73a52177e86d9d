"""The vectorised prefilter finishes only directions the Python parser would finish unread.

``could_be_parsed`` is checked against ``streams._detect`` itself on every first byte and many
heads (a False verdict must mean the parser finishes the direction); the extractor with the
prefilter must give exactly the observations, anomalies and direction state it gives without it,
on the corpus and on captures built to confuse it (out-of-order first segments, SYNs with another
ISN or after data, port reuse, short or SYN-carried first segments, DNS ports, small batches).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from scapy.all import IP, TCP, Ether, Raw, wrpcap

from helix_audit.protocols import http
from helix_audit.protocols.extract import Extractor
from helix_audit.protocols.prefilter import HEAD, could_be_parsed
from helix_audit.protocols.streams import Direction, Meta, parse_direction
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus

from .pipeline import drive

META = Meta("a.pcap", 1, 0.0, "10.0.0.1", 40000, "10.0.0.2", 9000, "tcp", 0)


def _python_finishes(head: bytes) -> bool:
    d = Direction(META, 64 * 1024, False)
    d.add_segment(1000, 0x02, b"", 1, 0.0)
    d.add_segment(1001, 0x18, head, 2, 0.0)
    parse_direction(d, [])
    return d.done


def _heads() -> list[bytes]:
    rng = random.Random(7)
    seconds, thirds = (0, 1, 2, 3, 5, 9, 0x5A), (0, 1, 4, 5)
    out = [bytes([b, c, d]) + bytes(5) for b in range(256) for c in seconds for d in thirds]
    out += [p[:HEAD].ljust(HEAD, b"x") for p in http.PREFIXES]
    out += [p[: HEAD - 1] + b"!" for p in http.PREFIXES]  # one byte off
    out += [b"SSH-2.0-", b"HTTP/2.0", b"GETX /a ", b"\x05\x06" + bytes(6), b"\x05\x05" + bytes(6)]
    out += [rng.randbytes(HEAD) for _ in range(20000)]
    out += [bytes([rng.choice(b"GPHDOCTMLUS")]) + rng.choice(http.PREFIXES)[1:HEAD] for _ in range(2000)]
    return [h.ljust(HEAD, b"/")[:HEAD] for h in out]


def test_a_false_verdict_means_the_parser_finishes_unread() -> None:
    heads = _heads()
    verdict = could_be_parsed(np.frombuffer(b"".join(heads), dtype=np.uint8).reshape(-1, HEAD))
    wrong = [h for h, v in zip(heads, verdict.tolist(), strict=True) if not v and not _python_finishes(h)]
    assert wrong == []
    assert not verdict.all()  # it does finish some (SSH, random bytes)
    assert verdict[[heads.index(b"SSH-2.0-")]].tolist() == [False]


def _run(path: Path, batch: int | None, prefilter: bool, **kwargs: object) -> tuple:
    ex = Extractor(**kwargs)  # type: ignore[arg-type]
    skipped: list[int] = []
    ex._skipped = skipped.extend  # type: ignore[method-assign]  # noqa: SLF001
    if not prefilter:
        ex._finish_unparsed = lambda cols, pf, keys: None  # type: ignore[method-assign]  # noqa: SLF001
    obs, anomalies, done = drive(ex, [path], batch)
    return [o.to_record() for o in obs], anomalies, done, len(skipped)


def _same(path: Path, batch: int | None = None, **kwargs: object) -> int:
    """Asserts the same result either way; returns how many directions the prefilter finished."""
    *fast, skipped = _run(path, batch, True, **kwargs)
    *slow, _ = _run(path, batch, False, **kwargs)
    assert fast == slow
    return skipped


def _pkt(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, data: bytes = b""):  # noqa: ANN202
    return Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq) / Raw(data)


def _hostile_capture(path: Path, seed: int) -> Path:
    """Many small conversations mixing unknown and parsed first segments in awkward orders."""
    rng = random.Random(seed)
    firsts = [b"SSH-2.0-OpenSSH_9.6\r\n", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
              b"GET / HTTP/1.1\r\n\r\n",
              b"\x05\x01\x00", b"\x00\x00\x00\x10abcdefgh", b"HTTP/1.1 200 OK\r\n\r\n", b"zz", b"abcdefg",
              b"CONNECT h:443 HTTP/1.1\r\n\r\n", b"\x04\x01\x00\x50\x01\x02\x03\x04"]  # fmt: skip
    pkts = []
    for n in range(300):
        c, s = f"10.0.{n // 200}.{n % 200 + 1}", "10.9.0.1"
        sp, dp = 30000 + n % 40, rng.choice([22, 80, 443, 53, 1080, 5432])  # ports reused on purpose
        isn, rsn = rng.randrange(1 << 32), rng.randrange(1 << 32)
        convo = []
        if rng.random() < 0.8:
            convo.append(_pkt(c, s, sp, dp, "S", isn))
            convo.append(_pkt(s, c, dp, sp, "SA", rsn))
        if rng.random() < 0.15:
            convo.append(_pkt(c, s, sp, dp, "S", rng.randrange(1 << 32)))  # another ISN
        a, b = rng.choice(firsts), rng.choice(firsts)
        if rng.random() < 0.1:
            convo.append(_pkt(c, s, sp, dp, "S", isn, a))  # data on the SYN
        off = rng.choice([1, 1, 1, 0, 2, len(a) + 1])  # mostly in order, sometimes not
        convo.append(_pkt(c, s, sp, dp, "PA", (isn + off) % (1 << 32), a))
        convo.append(_pkt(s, c, dp, sp, "PA", (rsn + 1) % (1 << 32), b))
        convo.append(_pkt(c, s, sp, dp, "PA", (isn + 1) % (1 << 32), a))  # retransmission / fill
        convo.append(_pkt(c, s, sp, dp, "PA", (isn + 1 + len(a)) % (1 << 32), rng.choice(firsts)))
        if rng.random() < 0.3:
            rng.shuffle(convo)
        pkts += convo
    wrpcap(str(path), pkts)
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch", [None, 7, 64])
def test_same_result_with_and_without_prefilter_on_hostile_captures(tmp_path: Path, seed: int,
                                                                    batch: int | None) -> None:  # fmt: skip
    assert _same(_hostile_capture(tmp_path / "h.pcap", seed), batch) > 20


def test_small_limit_turns_the_prefilter_off(tmp_path: Path) -> None:
    assert _same(_hostile_capture(tmp_path / "h.pcap", 4), None, limit=4) == 0


@needs_corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_same_result_with_and_without_prefilter_on_the_corpus(name: str) -> None:
    assert CORPUS is not None
    _same(CORPUS / name)
    _same(CORPUS / name, 1000)
