"""SYNs without payload build no Direction until the direction's first payload row (only the ISN is
kept): the result must be exactly the one of building it at the SYN, as the extractor did before.

The reference below is the extractor with every SYN row handed to ``_tcp`` (a Direction built at
once). Captures are built to stress what the SYN used to settle: peer links (a CONNECT side finished
and forgotten before the other side's first byte), several SYNs with other ISNs, data on a SYN,
SYNs in one batch and data in a later one, truncated hellos reported at the end (in table order),
and byte-range partitions merged with ``absorb``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from scapy.all import IP, TCP, Ether, Raw, wrpcap

from helix_audit.decode.interface import PacketColumns
from helix_audit.flows.interface import PacketFlows
from helix_audit.model import Anomaly, Observation
from helix_audit.protocols.extract import Extractor
from tests.conftest import CORPUS, CORPUS_FILES, needs_corpus
from tests.parallel.test_partitions import check as check_partitions

from .builders import client_hello_body, handshake, records, sni_ext
from .pipeline import drive


class EagerExtractor(Extractor):
    """Every selected row through ``_tcp``: a SYN builds its Direction at once (the reference)."""

    def _tcp_rows(self, cols: PacketColumns, pf: PacketFlows, rows: np.ndarray, keys: np.ndarray) -> None:
        self._base = self._births  # noqa: SLF001
        self._births += len(rows)  # noqa: SLF001
        columns = (pf.flow_id, pf.from_a, cols.seq, cols.tcp_flags, cols.frame, cols.ts_ns)
        for j, (i, fid, from_a, seq, flags, frame, ts_ns) in enumerate(
            zip(rows.tolist(), *(c[rows].tolist() for c in columns), strict=True)
        ):
            try:
                self._tcp(cols, pf, i, (fid, from_a), seq, flags, frame, ts_ns / 1e9, cols.payload(i), j)
            except Exception as exc:  # noqa: BLE001  as the extractor does
                self._internal_error(cols, i, exc)
                self._mark_done(fid * 2 + int(from_a))

    def finish(self) -> tuple[list[Observation], list[Anomaly]]:
        for d in self._dirs.values():  # leftovers in the table's (insertion) order
            self.anomalies.extend(d.leftover_anomalies())
        self._dirs.clear()
        return super().finish()


def _run(cls: type[Extractor], path: Path, batch: int | None) -> tuple:
    obs, anomalies, done = drive(cls(), [path], batch)
    return [o.to_record() for o in obs], anomalies, done


def _pkt(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, data: bytes = b""):  # noqa: ANN202
    return Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq) / Raw(data)


def _capture(path: Path, seed: int) -> Path:
    """Proxy conversations (CONNECT, 200, TLS inside) and plain TLS, in awkward orders."""
    rng = random.Random(seed)
    hello = records(22, handshake(1, client_hello_body(sni_ext(b"lazy.example"))))
    server_hello = records(22, handshake(2, bytes(2) + bytes(32) + b"\x00" + bytes(3)))
    pkts = []
    for n in range(120):
        c, s = f"10.1.{n // 100}.{n % 100 + 1}", "10.9.0.1"
        sp, dp = 40000 + n % 30, rng.choice([3128, 443, 8080])  # ports reused on purpose
        isn, rsn = rng.randrange(1 << 32), rng.randrange(1 << 32)
        client: list[bytes] = [b"CONNECT h:443 HTTP/1.1\r\n\r\n"] if rng.random() < 0.6 else []
        server: list[bytes] = [b"HTTP/1.1 200 OK\r\n\r\n"] if client and rng.random() < 0.8 else []
        cut = rng.random()
        client += (
            [hello[: rng.randint(10, len(hello) - 1)]] if cut < 0.15 else [hello, b"\x17\x03\x03\x00\x01x"]
        )
        server += [server_hello]
        syns = [_pkt(c, s, sp, dp, "S", isn), _pkt(s, c, dp, sp, "SA", rsn)]
        if rng.random() < 0.2:
            syns.append(_pkt(c, s, sp, dp, "S", rng.randrange(1 << 32)))  # another ISN, no data yet
        if rng.random() < 0.1:
            syns.append(_pkt(s, c, dp, sp, "SA", rsn, b"HTTP/1.1 200 OK\r\n\r\n"))  # data on the SYN
        convo, cseq, sseq = list(syns) if rng.random() < 0.9 else [], isn + 1, rsn + 1
        for data in client:
            convo.append(_pkt(c, s, sp, dp, "PA", cseq % (1 << 32), data))
            cseq += len(data)
        for data in server:  # after the client's application data: its direction is forgotten
            convo.append(_pkt(s, c, dp, sp, "PA", sseq % (1 << 32), data))
            sseq += len(data)
        if rng.random() < 0.2:
            rng.shuffle(convo)
        if rng.random() < 0.3:
            convo.append(_pkt(c, s, sp, dp, "S", rng.randrange(1 << 32)))  # a late SYN: port reuse
        pkts += convo
    wrpcap(str(path), pkts)
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch", [None, 1, 5, 64])
def test_lazy_syn_equals_building_at_the_syn(tmp_path: Path, seed: int, batch: int | None) -> None:
    path = _capture(tmp_path / "c.pcap", seed)
    lazy, eager = _run(Extractor, path, batch), _run(EagerExtractor, path, batch)
    assert lazy == eager
    kinds = {r["type"] for r in lazy[0]}
    assert {"http_connect", "tls_client_hello", "tls_server_hello"} <= kinds
    assert sum(a.name == "tls_client_hello_truncated" for a in lazy[1]) > 1


@pytest.mark.parametrize("seed", [4, 5])
def test_lazy_syn_partitions_merge_exactly(tmp_path: Path, seed: int) -> None:
    check_partitions(_capture(tmp_path / "c.pcap", seed), 6)


@needs_corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_lazy_syn_equals_building_at_the_syn_on_the_corpus(name: str) -> None:
    assert CORPUS is not None
    for batch in (None, 1000):
        assert _run(Extractor, CORPUS / name, batch) == _run(EagerExtractor, CORPUS / name, batch)
