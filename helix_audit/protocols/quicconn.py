"""QUIC connections across datagrams: which keys decrypt an Initial, and the CRYPTO stream per connection.

Initial keys come from the client's *first* Destination Connection ID (RFC 9001 §5.2) and stay
for every Initial of the connection, even after the client switches to the server's chosen CID
(RFC 9000 §7.2). So per flow we remember that first DCID, try it for later Initials, and recognise
server Initials (server keys) so they are not reported as undecryptable. CRYPTO frames arrive out of
order, split across packets and coalesced datagrams; the ClientHello is parsed once the stream from
offset 0 holds the whole handshake message (its frame is the datagram that completed it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Anomaly, Observation, TlsClientHello
from . import quic, tls, tlshello
from .build import build
from .interface import NeedData, ParseError
from .streams import Meta

MAX_CRYPTO = 1 << 16


@dataclass
class QuicConn:
    dcid: bytes
    version: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    frames: list[int] = field(default_factory=list)
    done: bool = False
    retry: bool = False
    meta: Meta | None = None


class QuicTracker:
    """State of every QUIC flow seen; emits TlsClientHello(quic=True) observations."""

    def __init__(self, observations: list[Observation], anomalies: list[Anomaly]) -> None:
        self.observations = observations
        self.anomalies = anomalies
        self.conns: dict[int, QuicConn] = {}

    def add(self, datagram: bytes, meta: Meta) -> None:
        try:
            packets = quic.parse_long_headers(datagram)
        except (NeedData, ParseError) as exc:
            self.anomalies.append(Anomaly("quic_initial_malformed", meta.file, meta.frame, str(exc)))
            return
        for pkt in packets:
            conn = self.conns.get(meta.flow_id)
            if pkt.ptype == 3 and conn is not None:
                conn.retry = True  # the client's next Initial uses the Retry's CID: same connection
            if pkt.ptype == 0 and quic.salt_for(pkt.version) is not None:
                self._initial(datagram, pkt, meta)

    def _initial(self, datagram: bytes, pkt: quic.LongPacket, meta: Meta) -> None:
        conn = self.conns.get(meta.flow_id)
        plain = self._try(datagram, pkt, pkt.dcid, False)
        if plain is not None and conn is not None and conn.retry and conn.dcid != pkt.dcid:
            conn.dcid, conn.retry = pkt.dcid, False
        elif plain is not None and (conn is None or conn.dcid != pkt.dcid or conn.version != pkt.version):
            conn = self.conns[meta.flow_id] = QuicConn(pkt.dcid, pkt.version)
        elif plain is None and conn is not None:
            plain = self._try(datagram, pkt, conn.dcid, False)
            if plain is None and self._try(datagram, pkt, conn.dcid, True) is not None:
                return  # the server's Initial
        if plain is None or conn is None:
            detail = f"dcid {pkt.dcid.hex()} version 0x{pkt.version:08x}"
            self.anomalies.append(Anomaly("quic_initial_undecryptable", meta.file, meta.frame, detail))
            return
        self._crypto(conn, plain, meta)

    @staticmethod
    def _try(datagram: bytes, pkt: quic.LongPacket, dcid: bytes, server: bool) -> bytes | None:
        try:
            return quic.decrypt_initial(datagram, pkt, quic.initial_keys(dcid, pkt.version, server))[1]
        except (NeedData, ParseError):
            return None

    def _crypto(self, conn: QuicConn, plain: bytes, meta: Meta) -> None:
        if conn.done:
            return
        try:
            frames = quic.crypto_frames(plain)
        except (NeedData, ParseError) as exc:
            self.anomalies.append(Anomaly("quic_initial_malformed", meta.file, meta.frame, str(exc)))
            return
        if not frames:
            return
        for offset, data in frames:
            if offset < MAX_CRYPTO and len(data) > len(conn.chunks.get(offset, b"")):
                conn.chunks[offset] = data
        if meta.frame not in conn.frames:
            conn.frames.append(meta.frame)
        conn.meta = meta
        self._maybe_hello(conn, meta)

    def _maybe_hello(self, conn: QuicConn, meta: Meta) -> None:
        stream = quic.contiguous(conn.chunks)
        if len(stream) < 4:
            return
        length = int.from_bytes(stream[1:4], "big")
        if len(stream) < 4 + length:
            return
        conn.done = True
        head = meta.head(tuple(conn.frames))
        if stream[0] != tls.HS_CLIENT_HELLO:
            return  # a server's first flight decrypted with client keys cannot happen; ignore
        try:
            ch = tlshello.parse_client_hello(stream[4 : 4 + length])
        except (NeedData, ParseError) as exc:
            self.anomalies.append(Anomaly("quic_client_hello_malformed", meta.file, meta.frame, str(exc)))
            return
        head.update(type="tls_client_hello", sni=ch.sni, alpn=ch.alpn, version=ch.version, ech=ch.ech)
        head["quic"] = True
        self.observations.append(build(TlsClientHello, head))

    def leftover_anomalies(self) -> list[Anomaly]:
        out = []
        for conn in self.conns.values():
            if not conn.done and conn.meta is not None:
                have = len(quic.contiguous(conn.chunks))
                out.append(
                    Anomaly("quic_client_hello_incomplete", conn.meta.file, conn.meta.frame, f"{have} bytes")
                )
        return out
