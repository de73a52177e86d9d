"""Network namespaces for the lab: topology, entering a namespace from Python, captures, clients.

Topology (private test addresses only; nothing is routed outside the namespaces)::

    sandbox 10.77.0.10 ─┐                          ┌─ inet: 10.77.1.x (one address per lab name)
    control 10.77.0.2  ─┤ br-lan ── fw (router) ── br-wan ┘
    proxy   10.77.0.3  ─┤ 10.77.0.1    10.77.1.1
    resolver 10.77.0.53─┘  (fd77::/64 on the LAN)

Both bridges live in the ``fw`` namespace, which routes between them; blocking uses its policy
routing (``ip rule ... blackhole|prohibit``), so no iptables/nftables is needed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")


def ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the block with this thread in namespace ``ns`` (sockets made here stay there)."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({ns}) failed")
        yield
    finally:
        if _libc.setns(original, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the test's namespace failed")
        os.close(target)
        os.close(original)


class Topology:
    """Creates and destroys the namespaces; ``name(role)`` is the namespace of a role."""

    ROLES = ("fw", "sandbox", "control", "proxy", "resolver", "inet")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.created: list[str] = []

    def name(self, role: str) -> str:
        return f"hxlab{self.tag}-{role}"

    def build(self, lan: dict[str, tuple[str, str | None]], wan: dict[str, list[str]], resolver: str) -> None:
        for role in self.ROLES:
            ip("netns", "add", self.name(role))
            self.created.append(self.name(role))
            ip("link", "set", "lo", "up", ns=self.name(role))
        fw = self.name("fw")
        for br, v4, v6 in (("br-lan", "10.77.0.1/24", "fd77::1/64"), ("br-wan", "10.77.1.1/24", None)):
            ip("link", "add", br, "type", "bridge", ns=fw)
            ip("addr", "add", v4, "dev", br, ns=fw)
            if v6:
                ip("addr", "add", v6, "dev", br, "nodad", ns=fw)
            ip("link", "set", br, "up", ns=fw)
        subprocess.run(
            ["ip", "netns", "exec", fw, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True, timeout=10
        )
        for role, (v4, v6) in lan.items():
            self._attach(role, "br-lan", [v4], v6, "10.77.0.1")
        for role, addrs in wan.items():
            self._attach(role, "br-wan", addrs, None, "10.77.1.1")
        for role in self.ROLES[1:]:
            etc = ETC_NETNS / self.name(role)
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(f"nameserver {resolver}\noptions timeout:2 attempts:1\n")

    def _attach(self, role: str, bridge: str, v4: list[str], v6: str | None, gateway: str) -> None:
        ns, fw, port = self.name(role), self.name("fw"), f"p-{role}"[:15]
        ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", fw)
        ip("link", "set", port, "master", bridge, "up", ns=fw)
        for addr in v4:
            ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
        if v6:
            ip("addr", "add", f"{v6}/64", "dev", "eth0", "nodad", ns=ns)
        ip("link", "set", "eth0", "up", ns=ns)
        ip("route", "add", "default", "via", gateway, ns=ns)

    def mac(self, role: str) -> str:
        out = subprocess.run(
            ["ip", "-n", self.name(role), "-br", "link", "show", "eth0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return out.split()[2]

    def destroy(self) -> None:
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        self.created.clear()


class Tcpdump:
    """``tcpdump -w`` on one interface of a namespace; ``stop()`` ends it cleanly (SIGINT)."""

    def __init__(self, ns: str, iface: str, path: Path) -> None:
        self.path = path
        cmd = [
            "ip",
            "netns",
            "exec",
            ns,
            "tcpdump",
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            "0",
            "-i",
            iface,
            "-w",
            str(path),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "tcpdump: listening on ..." once the capture is live
        if "listening" not in line:
            self.proc.kill()
            raise RuntimeError(f"tcpdump in {ns} did not start: {line.strip()}")

    def stop(self) -> Path:
        """Immediate mode hands every packet to tcpdump at once, so SIGINT loses nothing queued.

        Waits first until the file has stopped growing for a second (the last answers and FINs
        arrive late on a loaded machine), at most 8 s."""
        deadline, last, still = time.monotonic() + 8, -1, 0.0
        while time.monotonic() < deadline and still < 1.0:
            time.sleep(0.2)
            size = self.path.stat().st_size if self.path.exists() else 0
            still = still + 0.2 if size == last else 0.0
            last = size
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.path


def run_in(
    ns: str, cmd: list[str], env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """A real client in namespace ``ns``, bounded by ``timeout``; the result is returned, not checked."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
