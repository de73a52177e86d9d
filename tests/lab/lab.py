"""The lab: namespaces + servers + real clients, and one capture per scenario.

``Lab.start()`` builds the topology (``netlab``), a throwaway CA, the lab resolver, HTTPS servers for
each lab name, the control plane's WebSocket server (8080 plain, 443 TLS), a git smart-HTTP server
(github.com), a PyPI-style index (pypi.org + files.pythonhosted.org) and tinyproxy. Each scenario
method runs real clients (curl, dig, git, pip, a websockets client) in the sandbox or control-plane
namespace while tcpdump writes a capture, and returns ``LabCapture(pcap, site)``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import yaml

from . import servers
from .netlab import Tcpdump, Topology, in_netns, ip, run_in

HERE = Path(__file__).resolve().parent
NEEDED_TOOLS = ("ip", "tcpdump", "curl", "dig", "git", "tinyproxy")

CP_NAME = "helix.example.com"
REGISTRY, GET = "registry.helixml.tech", "get.helixml.tech"
S3 = "helix-registry-europe.s3.eu-west-2.amazonaws.com"
S3_CNAME = "s3-r-w.eu-west-2.amazonaws.com"
OPENAI, ANTHROPIC = "api.openai.com", "api.anthropic.com"
EXFIL, LOOKUP_ONLY, DENIED = "example-exfil.net", "telemetry.unlisted-vendor.example", "evil.example.org"
ARCHIVE = "archive.ubuntu.com"

LAN = {  # role: (IPv4, IPv6)
    "control": ("10.77.0.2", "fd77::2"),
    "proxy": ("10.77.0.3", None),
    "sandbox": ("10.77.0.10", "fd77::10"),
    "resolver": ("10.77.0.53", "fd77::53"),
}
GHOST_SANDBOX = "10.77.0.11"  # in the sandbox range, routed to the sandbox's MAC, answered by nobody
WEB = {  # lab name: address on the internet host; every name gets an HTTPS server
    REGISTRY: "10.77.1.10",
    GET: "10.77.1.11",
    S3: "10.77.1.12",
    OPENAI: "10.77.1.13",
    ARCHIVE: "10.77.1.20",
    "pypi.org": "10.77.1.30",
    "files.pythonhosted.org": "10.77.1.31",
    "github.com": "10.77.1.40",
    EXFIL: "10.77.1.66",
    DENIED: "10.77.1.67",
}
PUBLIC_RESOLVER = "10.77.1.53"  # a resolver the site does not list
SCANNER = "10.77.1.77"  # source of inbound connections
SITE = {
    "control_plane": {"addresses": ["10.77.0.2", "fd77::2"], "names": [CP_NAME]},
    "sandboxes": {"addresses": ["10.77.0.8/29", "fd77::10"]},
    "dns_servers": ["10.77.0.53", "fd77::53"],
    "proxies": ["10.77.0.3:3128"],
    "llm_providers": ["openai", "anthropic"],
    "optional": ["desktop-image", "package-managers", "git-providers"],
}


class LabCapture(NamedTuple):
    pcap: Path
    site: Path


def missing_tools() -> list[str]:
    return [t for t in NEEDED_TOOLS if shutil.which(t) is None]


def zone() -> servers.Zone:
    z = servers.Zone(
        a={**WEB, CP_NAME: LAN["control"][0], LOOKUP_ONLY: "10.77.1.99"}, aaaa={CP_NAME: "fd77::2"}
    )
    z.a[S3_CNAME] = z.a.pop(S3)
    z.cname[S3] = S3_CNAME
    z.refused_aaaa.add(OPENAI)
    return z  # api.anthropic.com and every other name: NXDOMAIN


class Lab:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.topo = Topology(f"{os.getpid() % 100000}")
        self.http: dict[str, servers.LabHttpServer] = {}
        self.sockets: list[socket.socket] = []
        self.ws: servers.WebSocketServer | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.site = workdir / "site.yaml"
        self.ca = workdir / "pki" / "ca.pem"

    # ------------------------------------------------------------------ setup and teardown
    def start(self) -> None:
        wan = {"inet": [*WEB.values(), PUBLIC_RESOLVER, SCANNER]}
        self.topo.build(LAN, wan, LAN["resolver"][0])
        self.site.write_text(yaml.safe_dump(SITE, sort_keys=False))
        (self.dir / "pki").mkdir()
        servers.make_pki(self.dir / "pki", [*WEB, CP_NAME])
        self.git_root = servers.make_git_repo(self.dir / "git")
        self.wheel = servers.make_wheel()
        self._start_dns()
        for name in WEB:
            self.start_web(name)
        self._start_ws()
        self._start_proxy()
        self._start_sandbox_listener()
        ip(
            "neigh",
            "add",
            GHOST_SANDBOX,
            "lladdr",
            self.topo.mac("sandbox"),
            "dev",
            "br-lan",
            "nud",
            "permanent",
            ns=self.topo.name("fw"),
        )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.ws is not None:
            self.ws.close()
        for server in self.http.values():
            server.shutdown()
            server.server_close()
        for sock in self.sockets:
            sock.close()
        self.topo.destroy()

    def _bind(self, role: str, family: int, kind: int, addr: tuple[str, int]) -> socket.socket:
        with in_netns(self.topo.name(role)):
            sock = socket.socket(family, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
        if kind == socket.SOCK_STREAM:
            sock.listen(64)
        self.sockets.append(sock)
        return sock

    def _start_dns(self) -> None:
        z = zone()
        for role, addr, family in (
            ("resolver", LAN["resolver"][0], socket.AF_INET),
            ("resolver", LAN["resolver"][1], socket.AF_INET6),
            ("inet", PUBLIC_RESOLVER, socket.AF_INET),
        ):
            sock = self._bind(role, family, socket.SOCK_DGRAM, (addr, 53))
            servers.start_thread(lambda s=sock: servers.serve_dns(s, z))

    def start_web(self, name: str) -> None:
        """(Re)start the web server of ``name`` (port 443; archive.ubuntu.com also on 80)."""
        ports = [(443, servers.server_context(self.dir / "pki", name, tls13_only=name == S3))]
        if name == ARCHIVE:
            ports.append((80, None))
        for port, ctx in ports:
            with in_netns(self.topo.name("inet")):
                server = servers.LabHttpServer((WEB[name], port), name, ctx, self.git_root, self.wheel)
            servers.start_thread(server.serve_forever)
            self.http[f"{name}:{port}"] = server

    def stop_web(self, name: str) -> None:
        server = self.http.pop(f"{name}:443")
        server.shutdown()
        server.server_close()

    def _start_ws(self) -> None:
        """8080 plain and 443 TLS on both control-plane addresses (clients prefer the IPv6 one)."""
        ctx = servers.server_context(self.dir / "pki", CP_NAME)
        socks = []
        for addr, family in ((LAN["control"][0], socket.AF_INET), (LAN["control"][1], socket.AF_INET6)):
            socks.append((self._bind("control", family, socket.SOCK_STREAM, (addr, 8080)), None))
            socks.append((self._bind("control", family, socket.SOCK_STREAM, (addr, 443)), ctx))
        self.ws = servers.WebSocketServer(socks)

    def _start_proxy(self) -> None:
        conf, filt = self.dir / "tinyproxy.conf", self.dir / "tinyproxy.filter"
        filt.write_text(f"{DENIED}\n")
        conf.write_text(
            f"User nobody\nGroup nogroup\nPort 3128\nListen {LAN['proxy'][0]}\nTimeout 30\nMaxClients 20\n"
            f'LogLevel Info\nAllow 10.77.0.0/24\nConnectPort 443\nFilter "{filt}"\nFilterDefaultDeny No\n'
            "DisableViaHeader Yes\n"
        )
        os.chmod(self.dir, 0o755)
        for p in (conf, filt):
            os.chmod(p, 0o644)
        cmd = ["ip", "netns", "exec", self.topo.name("proxy"), "tinyproxy", "-d", "-c", str(conf)]
        self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._wait_port("sandbox", LAN["proxy"][0], 3128)

    def _start_sandbox_listener(self) -> None:
        """The legacy Moonlight port: an HTTP server inside the sandbox (accepts inbound)."""
        with in_netns(self.topo.name("sandbox")):
            server = servers.LabHttpServer((LAN["sandbox"][0], 47984), "sandbox", None, None, b"")
        servers.start_thread(server.serve_forever)
        self.http["sandbox:47984"] = server

    def _wait_port(self, role: str, host: str, port: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with in_netns(self.topo.name(role)), socket.socket() as s:
                s.settimeout(1)
                if s.connect_ex((host, port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"lab: nothing listens on {host}:{port}")

    # ------------------------------------------------------------------ clients
    def env(self) -> dict[str, str]:
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "GIT_SSL_CAINFO": str(self.ca),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INPUT": "1",
        }

    def client(self, role: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run_in(self.topo.name(role), list(cmd), self.env(), timeout)

    def curl(self, role: str, url: str, *opts: str) -> subprocess.CompletedProcess[str]:
        return self.client(
            role,
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            str(self.ca),
            "--connect-timeout",
            "4",
            "--max-time",
            "15",
            *opts,
            url,
        )

    def websocket(self, role: str, *urls: str) -> subprocess.CompletedProcess[str]:
        return self.client(role, sys.executable, str(HERE / "ws_client.py"), "--cafile", str(self.ca), *urls)

    def capture(self, name: str, role: str, iface: str = "eth0") -> Tcpdump:
        return Tcpdump(self.topo.name(role), iface, self.dir / f"{name}.pcap")
