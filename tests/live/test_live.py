"""Live capture end to end: real traffic in a namespace, captured, written, audited, read back."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helix_audit import audit
from helix_audit.capture import open_capture
from helix_audit.live import read_interface_stats

from .conftest import CLIENT_IP, HTTP_PORT, SANDBOX_IP, Pair, finish, tshark_fields


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _sums_ok(out: Path) -> str:
    done = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _live_audit(pair: Pair, out: Path, *opts: str) -> subprocess.Popen[str]:
    """``helix-audit audit --live eth0 OPTS --site SITE --out OUT``, started in the sandbox namespace
    (run from ``out``'s parent: relative paths in the report stay inside the test's directory)."""
    args = ("audit", "--live", "eth0", *opts, "--site", str(pair.site), "--out", str(out))
    return pair.start(*args, cwd=out.parent)


def test_audit_live_finds_inbound_http_with_frames_in_the_written_pcapng(pair: Pair, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    started = time.monotonic()
    proc = _live_audit(pair, out, "--duration", "2")
    assert pair.curl("/hello") == "200"
    assert pair.curl("/missing", host="other.example.test") == "404"
    code, err = finish(proc)
    assert time.monotonic() - started >= 2.0
    assert code == 1, err  # a critical finding
    assert "stopped by duration" in err
    report = _report(out)
    (info,) = report["inputs"]
    capture = out / info["path"].removeprefix(f"{out}/")
    assert capture.parent == out / "capture" and re.fullmatch(r"live-eth0-\d{8}T\d{6}Z\.pcapng", capture.name)
    assert info["format"] == "pcapng" and info["link_types"] == [1] and info["ts_resolution"] == "ns"
    assert info["warnings"] == []
    # every frame of the file is one packet of the report, in Wireshark's numbering
    frames = tshark_fields(capture, "frame.number", "frame.interface_name")
    assert len(frames) == info["packets"] and {f[1] for f in frames} == {"eth0"}
    http = [o for o in report["observations"] if o["type"] == "http_request"]
    assert {(o["host"], o["path"]) for o in http} == {
        ("api.example.test", "/hello"),
        ("other.example.test", "/missing"),
    }
    for o in http:  # the observation's frame is that request in the file
        (row,) = tshark_fields(
            capture, "http.host", "http.request.uri", display=f"frame.number=={o['frame']}"
        )
        assert row == [o["host"], o["path"]]
    tcp = [f for f in report["flows"] if f["transport"] == "tcp" and f["resp_p"] == HTTP_PORT]
    assert len(tcp) == 2 and all(f["orig_h"] == CLIENT_IP and f["conn_state"] == "SF" for f in tcp)
    (finding,) = [f for f in report["findings"] if f["kind"] == "inbound_to_sandbox"]
    assert (
        finding["severity"] == "critical"
        and finding["dst"] == SANDBOX_IP
        and finding["dst_port"] == HTTP_PORT
    )
    (ev,) = finding["evidence"]
    first = ev["frames"][0]
    (syn,) = tshark_fields(
        capture, "ip.dst", "tcp.dstport", "tcp.flags.syn", display=f"frame.number=={first}"
    )
    assert syn == [SANDBOX_IP, str(HTTP_PORT), "1"]
    assert f"capture/{capture.name}: OK" in _sums_ok(out)


def test_capture_count_and_filter(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "web.pcapng"
    proc = pair.start(
        "capture", "eth0", "--count", "6", "--filter", f"tcp port {HTTP_PORT}", "-o", str(path), cwd=tmp_path
    )
    pair.udp(9999, n=20)  # not captured: the filter
    pair.curl("/hello")
    code, err = finish(proc, timeout=30)
    assert code == 0, err
    assert "captured 6 packets" in err and "stopped by count" in err
    rows = tshark_fields(path, "tcp.port", "udp.port")
    assert len(rows) == 6 and all(str(HTTP_PORT) in r[0].split(",") and not r[1] for r in rows)
    info = subprocess.run(["capinfos", str(path)], capture_output=True, text=True, timeout=30).stdout
    assert f"tcp port {HTTP_PORT}" in info  # if_filter, for the person who opens the file
    (stats,) = read_interface_stats(path)
    assert stats.name == "eth0" and stats.dropped == 0 and stats.received is not None and stats.received >= 6


@pytest.mark.parametrize(("opts", "promiscuity"), [((), 1), (("--no-promisc",), 0)])
def test_promiscuous_mode_is_on_unless_no_promisc(
    pair: Pair, tmp_path: Path, opts: tuple[str, ...], promiscuity: int
) -> None:
    """The kernel's promiscuity count of the interface while the capture runs, and after it."""

    def count() -> int:
        shown = pair.run(pair.sandbox, ["ip", "-d", "-j", "link", "show", "eth0"])
        assert shown.returncode == 0, shown.stderr
        return int(json.loads(shown.stdout)[0]["promiscuity"])

    assert count() == 0
    proc = pair.start(
        "capture", "eth0", *opts, "--duration", "30", "-o", str(tmp_path / "c.pcapng"), cwd=tmp_path
    )
    try:
        assert count() == promiscuity
    finally:
        proc.send_signal(signal.SIGINT)
        code, err = finish(proc)
    assert code == 0, err
    assert count() == 0  # closing the socket leaves the interface as it was


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_gracefully_and_the_bundle_is_complete(pair: Pair, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "bundle"
    proc = _live_audit(pair, out, "--duration", "120", "--format", "json", "--format", "evidence")
    pair.curl("/hello")
    started = time.monotonic()
    proc.send_signal(sig)
    code, err = finish(proc, timeout=60)
    assert time.monotonic() - started < 30
    assert code == 1, err
    assert "stopped by signal" in err
    report = _report(out)
    assert report["inputs"][0]["packets"] >= 10
    assert any(f["kind"] == "inbound_to_sandbox" for f in report["findings"])
    _sums_ok(out)


def test_kernel_drops_reach_the_isb_and_the_report(pair: Pair, tmp_path: Path) -> None:
    """The capture is stopped (SIGSTOP) while 200k datagrams arrive: the socket's queue overflows."""
    out = tmp_path / "bundle"
    proc = _live_audit(pair, out, "--duration", "120", "--format", "json")
    wrapper = proc.pid  # ip netns exec execs python: same pid
    try:
        proc.send_signal(signal.SIGSTOP)
        pair.udp(9999, n=200_000)
    finally:
        proc.send_signal(signal.SIGCONT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc, timeout=120)
    assert wrapper and code in (0, 1, 3), err
    (info,) = _report(out)["inputs"]
    (stats,) = read_interface_stats(out / "capture" / Path(info["path"]).name)
    assert stats.dropped and stats.received and stats.received - stats.dropped == info["packets"]
    expected = f"kernel dropped {stats.dropped} of {stats.received} packets on eth0"
    assert any(w.startswith(expected) for w in info["warnings"])
    assert expected in err


def test_snaplen_cuts_packets_and_the_audit_says_so(pair: Pair, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    opts = ["--count", "8", "--snaplen", "96", "--filter", "tcp", "--format", "json"]
    proc = _live_audit(pair, out, *opts)
    assert pair.curl("/hello") == "200"
    code, err = finish(proc)
    assert code == 1, err
    (info,) = _report(out)["inputs"]
    assert info["snaplen"] == 96 and any(w.startswith("snaplen 96") for w in info["warnings"])
    rows = tshark_fields(out / "capture" / Path(info["path"]).name, "frame.cap_len", "frame.len")
    assert len(rows) == 8 and all(int(c) <= 96 <= int(w) or int(c) == int(w) < 96 for c, w in rows)
    assert any(int(w) > 96 for _, w in rows)


def test_two_interfaces_one_file_loopback_once(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "two.pcapng"
    proc = pair.start(
        "capture", "eth0", "lo", "--duration", "1.5", "--filter", "udp", "-o", str(path), cwd=tmp_path
    )
    pair.udp(7001, n=2)
    pair.udp(7002, n=3, ns=pair.sandbox, dst="127.0.0.1")
    code, err = finish(proc)
    assert code == 0, err
    rows = tshark_fields(path, "frame.interface_name", "udp.dstport", display="udp and not icmp")
    assert sorted(map(tuple, rows)) == [("eth0", "7001")] * 2 + [("lo", "7002")] * 3
    assert [s.name for s in read_interface_stats(path)] == ["eth0", "lo"]


def test_any_is_linux_cooked(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "any.pcapng"
    proc = pair.start("capture", "any", "--count", "4", "-o", str(path), cwd=tmp_path)
    pair.curl("/hello")
    code, err = finish(proc)
    assert code == 0, err
    cap = open_capture(path)
    assert sum(len(b) for b in cap.batches()) == 4 and cap.info.link_types == (113,)
    rows = tshark_fields(path, "sll.pkttype", "ip.src", "ip.dst", "tcp.dstport")
    assert rows[0][1:] == [CLIENT_IP, SANDBOX_IP, str(HTTP_PORT)]


TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
HOLD_TUN = f"""
import fcntl, os, struct, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, {TUNSETIFF}, struct.pack("16sH", b"tun7", {IFF_TUN | IFF_NO_PI}))
print("ready", flush=True)
time.sleep(30)
"""


def test_tun_is_raw_ip(pair: Pair, tmp_path: Path) -> None:
    """A tun device has no link layer: LINKTYPE_RAW (101), and the audit decodes its flows."""
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun")
    holder = subprocess.Popen(
        ["ip", "netns", "exec", pair.sandbox, sys.executable, "-c", HOLD_TUN],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        for args in (["addr", "add", "10.99.0.1/24", "dev", "tun7"], ["link", "set", "tun7", "up"]):
            assert pair.run(pair.sandbox, ["ip", *args]).returncode == 0
        path = tmp_path / "tun.pcapng"
        proc = pair.start("capture", "tun7", "--count", "3", "-o", str(path), cwd=tmp_path)
        pair.udp(5555, n=3, ns=pair.sandbox, dst="10.99.0.2")
        code, err = finish(proc)
        assert code == 0, err
    finally:
        holder.kill()
        holder.wait(10)
    result = audit([path])
    assert result.inputs[0].link_types == (101,)
    flows = result.flows
    assert list(flows["orig_h"]) == ["10.99.0.1"] and list(flows["resp_p"]) == [5555]
    assert int(flows["orig_pkts"].iloc[0]) == 3


def _fails(pair: Pair, *args: str, user: str | None = None) -> str:
    cmd = pair.helix(*args)
    if user:
        cmd = [*cmd[:4], "setpriv", "--reuid", user, "--regid", user, "--clear-groups", *cmd[4:]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/tmp")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    return done.stderr


def test_errors_are_one_line_exit_2(pair: Pair, tmp_path: Path) -> None:
    out = str(tmp_path / "x.pcapng")
    assert "eth9: no such network interface" in _fails(pair, "capture", "eth9", "--count", "1", "-o", out)
    assert "bad capture filter 'tcp port'" in _fails(
        pair, "capture", "eth0", "--count", "1", "--filter", "tcp port", "-o", out
    )
    assert "cannot be used with 'any'" in _fails(
        pair, "capture", "any", "--count", "1", "--filter", "tcp", "-o", out
    )
    assert "needs --duration" in _fails(pair, "audit", "--live", "eth0")
    assert "does not mix" in _fails(pair, "audit", "--live", "eth0", "--count", "1", out)
    denied = _fails(pair, "capture", "eth0", "--count", "1", "-o", out, user="65534")
    assert "permission denied (needs root or CAP_NET_RAW)" in denied
    assert not Path(out).exists()
