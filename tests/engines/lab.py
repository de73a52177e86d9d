"""A real ``wss://`` session on loopback, captured with tcpdump, with the client's TLS key log.

Python's ssl server (certificate made with ``cryptography``) runs a ``websockets`` server; the client
connects to ``/api/v1/revdial?runnerid=hydra-1`` with ``SSLContext.keylog_filename`` set, the way a
Helix runner dials its control plane. Every wait is bounded.
"""

from __future__ import annotations

import datetime as dt
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "hydra.example"
PATH = "/api/v1/revdial?runnerid=hydra-1"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Session:
    pcap: Path
    keylog: Path
    port: int
    decode_as: tuple[str, ...]  # empty on 443, where tshark decodes TLS by port


def make_cert(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _free_port() -> tuple[int, tuple[str, ...]]:
    """443 when free (tshark's TLS port); else an ephemeral port and a decode-as rule for it."""
    for port in (443, 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            got = s.getsockname()[1]
            return got, (() if got == 443 else (f"tcp.port=={got},tls",))
    raise OSError("no free port on 127.0.0.1")


def _start_tcpdump(pcap: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        "tcpdump",
        "-i",
        "lo",
        "-n",
        "-U",
        "--immediate-mode",
        "-Z",
        "root",
        "-w",
        str(pcap),
        "tcp",
        "port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline, seen = time.monotonic() + TIMEOUT, b""
    while b"listening on" not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"tcpdump did not start: {seen.decode(errors='replace')}")
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    time.sleep(0.3)  # let the last packets reach the ring buffer
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=TIMEOUT)


def _dial(port: int, cert: Path, keylog: Path) -> str:
    from websockets.sync.client import connect

    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.keylog_filename = str(keylog)
    ctx.set_alpn_protocols(["http/1.1"])
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    uri = f"wss://{HOST}{'' if port == 443 else f':{port}'}{PATH}"
    with connect(
        uri, sock=sock, ssl=ctx, server_hostname=HOST, open_timeout=TIMEOUT, close_timeout=TIMEOUT
    ) as ws:
        ws.send("hello")
        return str(ws.recv(timeout=TIMEOUT))


def record_session(folder: Path) -> Session:
    """Run the server, tcpdump and the client; returns the capture and the client's key log."""
    from websockets.sync.server import serve

    cert, key = make_cert(folder)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.set_alpn_protocols(["http/1.1"])
    port, decode_as = _free_port()
    pcap, keylog = folder / "revdial.pcap", folder / "keys.log"

    def echo(ws: object) -> None:
        for message in ws:  # type: ignore[attr-defined]
            ws.send(message)  # type: ignore[attr-defined]

    with serve(echo, "127.0.0.1", port, ssl=server_ctx) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        dump = _start_tcpdump(pcap, port)
        try:
            assert _dial(port, cert, keylog) == "hello"
        finally:
            _stop(dump)
            server.shutdown()
            thread.join(timeout=TIMEOUT)
    return Session(pcap, keylog, port, decode_as)
