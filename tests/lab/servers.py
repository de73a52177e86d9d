"""Servers of the network lab: DNS (dnslib), HTTPS per lab name, WebSocket, git smart HTTP, PyPI index.

Each server's listening socket is created inside its network namespace (see ``netlab.in_netns``) and
then served from a thread of the test process; accepted connections stay in that namespace.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord

WHEEL_NAME = "labpkg-1.0-py3-none-any.whl"


# ----------------------------------------------------------------------------------------------------
# Throwaway CA
# ----------------------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path, names: list[str]) -> Path:
    """A CA (``ca.pem``) and ``<name>.pem``/``<name>.key`` for each name; returns the CA path."""
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    later = now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("helix-audit lab CA"))
        .issuer_name(_name("helix-audit lab CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=3650))
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for i, host in enumerate(names, start=2):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(host))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(i)
            .not_valid_before(now - datetime.timedelta(days=3650))
            .not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (directory / f"{host}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / f"{host}.key").write_bytes(pem)
    return directory / "ca.pem"


def server_context(pki: Path, host: str, tls13_only: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / f"{host}.pem", pki / f"{host}.key")
    if tls13_only:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


# ----------------------------------------------------------------------------------------------------
# DNS
# ----------------------------------------------------------------------------------------------------


@dataclass
class Zone:
    """Authoritative answers of the lab resolver."""

    a: dict[str, str] = field(default_factory=dict)
    aaaa: dict[str, str] = field(default_factory=dict)
    cname: dict[str, str] = field(default_factory=dict)
    refused_aaaa: set[str] = field(default_factory=set)

    def answer(self, request: DNSRecord) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        if qtype == "AAAA" and qname in self.refused_aaaa:
            reply.header.rcode = RCODE.REFUSED
            return reply
        name = qname
        while name in self.cname:
            reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(self.cname[name]), ttl=60))
            name = self.cname[name]
        if name not in self.a and name not in self.aaaa:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype == "A" and name in self.a:
            reply.add_answer(RR(name, QTYPE.A, rdata=A(self.a[name]), ttl=60))
        elif qtype == "AAAA" and name in self.aaaa:
            reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(self.aaaa[name]), ttl=60))
        return reply


def serve_dns(sock: socket.socket, zone: Zone) -> None:
    """UDP loop (daemon thread) until the socket is closed."""
    while True:
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            return
        try:
            sock.sendto(zone.answer(DNSRecord.parse(data)).pack(), peer)
        except Exception:  # noqa: BLE001 - a bad query must not stop the lab resolver
            continue


# ----------------------------------------------------------------------------------------------------
# HTTP(S): one handler for every lab web server, dispatching on the server's name
# ----------------------------------------------------------------------------------------------------


def make_wheel() -> bytes:
    buf = io.BytesIO()
    files = {
        "labpkg/__init__.py": b"VALUE = 1\n",
        "labpkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: labpkg\nVersion: 1.0\n",
        "labpkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: lab\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(
            "labpkg-1.0.dist-info/RECORD",
            "".join(f"{n},,\n" for n in files) + "labpkg-1.0.dist-info/RECORD,,\n",
        )
    return buf.getvalue()


class LabHandler(BaseHTTPRequestHandler):
    server: LabHttpServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        return

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        name, path = self.server.lab_name, self.path
        if name == "github.com" and self.server.git_root is not None:
            return self._git()
        if name == "pypi.org" and path.startswith("/simple/labpkg"):
            digest = hashlib.sha256(self.server.wheel).hexdigest()
            href = f"https://files.pythonhosted.org/packages/{WHEEL_NAME}#sha256={digest}"
            return self._send(
                200, f'<html><body><a href="{href}">{WHEEL_NAME}</a></body></html>'.encode(), "text/html"
            )
        if name == "files.pythonhosted.org" and path.endswith(".whl"):
            return self._send(200, self.server.wheel, "application/octet-stream")
        self._read_body()
        self._send(200, f'{{"host": "{name}", "path": "{path}"}}\n'.encode(), "application/json")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, ctype: str, extra: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _git(self) -> None:
        """git http-backend as a CGI program (git-http-backend(1))."""
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_ADDR": self.client_address[0],
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        body = self._read_body()
        env["CONTENT_LENGTH"] = str(len(body))
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=30
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        ctype = dict((k.lower(), v) for k, v in headers).get("content-type", "application/octet-stream")
        self._send(status, payload, ctype, [(k, v) for k, v in headers if k.lower() != "content-type"])


class LabHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        addr: tuple[str, int],
        name: str,
        ctx: ssl.SSLContext | None,
        git_root: Path | None,
        wheel: bytes,
    ) -> None:
        self.lab_name, self.git_root, self.wheel, self.tls = name, git_root, wheel, ctx
        super().__init__(addr, LabHandler)

    def server_bind(self) -> None:
        """As HTTPServer's, without the reverse lookup of the address (getfqdn) that stalls in the lab."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.lab_name, self.server_address[1]

    def get_request(self) -> tuple[socket.socket, object]:
        conn, addr = super().get_request()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def finish_request(self, request: socket.socket, client_address: object) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(10)
                request.do_handshake()
            super().finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            return


def start_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def make_git_repo(root: Path) -> Path:
    """A bare repository ``helixml/demo.git`` with one commit (fixed author and dates)."""
    work = root / "work"
    work.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
        "HOME": str(root),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    ident = ["-c", "user.name=lab", "-c", "user.email=lab@example.com", "-c", "init.defaultBranch=main"]
    (work / "README.md").write_text("helix-audit lab repository\n")
    for args in (["init", "-q"], ["add", "README.md"], ["commit", "-q", "-m", "lab"]):
        subprocess.run(["git", *ident, *args], cwd=work, env=env, check=True, capture_output=True, timeout=30)
    bare = root / "repos" / "helixml" / "demo.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(bare)],
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return root / "repos"


# ----------------------------------------------------------------------------------------------------
# WebSocket (the control plane's channels)
# ----------------------------------------------------------------------------------------------------


class WebSocketServer:
    """``websockets`` server on pre-bound sockets; answers every path (the audit judges the path)."""

    def __init__(self, socks: list[tuple[socket.socket, ssl.SSLContext | None]]) -> None:
        self.socks = socks
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self.paths: list[str] = []
        self.thread = start_thread(lambda: self.loop.run_until_complete(self._main()))
        if not self.ready.wait(10):
            raise RuntimeError("lab WebSocket server did not start")

    async def _handler(self, ws: object) -> None:
        self.paths.append(ws.request.path)  # type: ignore[attr-defined]
        async for message in ws:  # type: ignore[attr-defined]
            await ws.send(message)  # type: ignore[attr-defined]

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self.stop_event = asyncio.Event()
        servers = [await serve(self._handler, sock=s, ssl=ctx).__aenter__() for s, ctx in self.socks]
        self.ready.set()
        await self.stop_event.wait()
        for server in servers:
            server.close()
            await server.wait_closed()

    def close(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
