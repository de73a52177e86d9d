"""A two-namespace lab for live capture: a client and a "sandbox" joined by a veth pair.

The capture runs *inside* the sandbox namespace (``ip netns exec``), as a real user would run it on
a host, while real clients (curl, python sockets) talk to a real HTTP server there. Root and the
``ip`` command are needed; without them every test here skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_IP, SANDBOX_IP, CONTROL_IP = "10.88.0.1", "10.88.0.2", "10.88.0.3"
HTTP_PORT = 8080
SITE = f"control_plane:\n  addresses: [{CONTROL_IP}]\nsandboxes:\n  addresses: [{SANDBOX_IP}]\n"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Pair:
    client: str  # namespace names
    sandbox: str
    site: Path

    def run(self, ns: str, cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def helix(self, *args: str) -> list[str]:
        """helix-audit in the sandbox namespace, from this checkout."""
        return ["ip", "netns", "exec", self.sandbox, sys.executable, "-m", "helix_audit.cli", *args]

    def start(self, *args: str, cwd: Path) -> subprocess.Popen[str]:
        """Start helix-audit; return once it says it is capturing (its first stderr line)."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.Popen(
            self.helix(*args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if "capturing on" not in line:
            proc.kill()
            rest = proc.communicate(timeout=10)[1]
            raise AssertionError(f"capture did not start: {line}{rest}")
        proc.first_line = line  # type: ignore[attr-defined]
        return proc

    def curl(self, path: str, host: str = "api.example.test") -> str:
        done = self.run(
            self.client,
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                f"Host: {host}",
                f"http://{SANDBOX_IP}:{HTTP_PORT}{path}",
            ],
        )
        return done.stdout

    def udp(self, port: int, n: int = 1, size: int = 20, ns: str = "", dst: str = SANDBOX_IP) -> None:
        """``n`` datagrams of ``size`` bytes from namespace ``ns`` (default: the client's)."""
        code = (
            "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            f"for _ in range({n}): s.sendto(b'x'*{size},('{dst}',{port}))"
        )
        self.run(ns or self.client, [sys.executable, "-c", code], timeout=60)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    """Wait for a started helix-audit; (exit code, whole stderr)."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, proc.first_line + err  # type: ignore[attr-defined]


def tshark_fields(path: Path, *fields: str, display: str = "") -> list[list[str]]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", *[a for f in fields for a in ("-e", f)]]
    if display:
        cmd += ["-Y", display]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if os.geteuid() != 0:
        pytest.skip("live capture tests need root (network namespaces, packet sockets)")
    missing = [t for t in ("ip", "curl", "tshark") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"live capture tests need {', '.join(missing)}")
    tag = f"hxlv{os.getpid() % 100000}"
    client, sandbox = f"{tag}-c", f"{tag}-s"
    made: list[str] = []
    server = None
    try:
        for ns in (client, sandbox):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", "eth0", "netns", client, "type", "veth", "peer", "name", "eth0", "netns", sandbox)
        for ns, addr in ((client, CLIENT_IP), (sandbox, SANDBOX_IP)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        root = tmp_path_factory.mktemp("live")
        (root / "site.yaml").write_text(SITE)
        (root / "www").mkdir()
        (root / "www" / "hello").write_text("hello from the sandbox\n")
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                sandbox,
                sys.executable,
                "-m",
                "http.server",
                str(HTTP_PORT),
                "--bind",
                SANDBOX_IP,
                "--directory",
                str(root / "www"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        p = Pair(client, sandbox, root / "site.yaml")
        deadline = time.monotonic() + 10
        while p.curl("/hello") != "200":
            if time.monotonic() > deadline:
                raise RuntimeError("the lab's HTTP server did not come up")
            time.sleep(0.1)
        yield p
    except RuntimeError as exc:
        pytest.skip(f"cannot build the live-capture lab: {exc}")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
