#!/usr/bin/env python3
"""End-to-end benchmark: helix-audit beside tshark, tcpdump, dpkt and scapy on the same capture.

Builds (once) a large capture with ../shared/bench/make_bench_pcap.py from the bundled sample
captures, then times each tool on it in this one run and prints packets/s, the ratio to tshark and
peak RSS (from wait4 of each child). Medians over --runs. helix-audit's own stage timings (from
report.json) say where its time goes.

Every tool runs pinned to one CPU (``--cpus 0``, the issues' "on one core": helix-audit's input
hashing thread then shares that core too). Serial and ``--jobs 2`` runs then alternate on all CPUs;
their ratio is printed beside its ceiling while the input is hashed. ``--synscan N`` adds an
audit of a SYN scan (N one-packet flows towards the sandboxes, benchmarks/synscan.py), the worst
case for memory.

usage: benchmarks/run.py [--packets 2000000] [--runs 3] [--quick] [--no-baselines] [--cpus 0|all]
                         [--synscan 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_SCRIPT = REPO.parent / "shared" / "bench" / "make_bench_pcap.py"
OUT = REPO / "benchmarks" / "out"
SCAPY_PREFIX = 20_000
SYNSCAN_SITE = "control_plane:\n  addresses: [10.0.0.2]\nsandboxes:\n  addresses: [10.0.1.0/24]\n"

DPKT_SCRIPT = r"""
import sys, dpkt
flows = {}
n = 0
with open(sys.argv[1], 'rb') as f:
    for ts, buf in dpkt.pcap.Reader(f):
        n += 1
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            k = (ip.src, ip.dst, ip.data.sport, ip.data.dport, ip.p)
            flows[k] = flows.get(k, 0) + 1
print(n, len(flows))
"""

SCAPY_SCRIPT = r"""
import sys
from scapy.all import PcapReader, IP, TCP, UDP
flows = {}
n = 0
for p in PcapReader(sys.argv[1]):
    n += 1
    if IP in p and (TCP in p or UDP in p):
        l4 = p[TCP] if TCP in p else p[UDP]
        k = (p[IP].src, p[IP].dst, l4.sport, l4.dport)
        flows[k] = flows.get(k, 0) + 1
    if n >= int(sys.argv[2]):
        break
print(n, len(flows))
"""

HASH_SCRIPT = r"""
import sys
from helix_audit.digest import file_sha256
print(file_sha256(sys.argv[1]))
"""


def templates() -> list[Path]:
    """Ethernet sample captures to replay (make_bench_pcap.py skips other link types)."""
    return sorted(p for p in (REPO / "sample_pcaps").glob("*.pcap"))


def build(packets: int) -> tuple[Path, Path]:
    """The benchmark capture and a site profile for it (the samples' profile, widened by the
    script's address map: each copy of a template host gets its own address in a /16)."""
    path, site = OUT / f"bench-{packets}.pcap", OUT / f"bench-{packets}.site.yaml"
    if path.exists() and site.exists():
        return path, site
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    cmd = [sys.executable, str(BENCH_SCRIPT), str(tmp), str(packets), *map(str, templates())]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    tmp.replace(path)
    site.write_text(bench_site(out))
    return path, site


def bench_site(script_output: str) -> str:
    """sample_pcaps/site.yaml with each mapped host's /16 added to the role it has there."""
    import ipaddress

    import yaml

    profile = yaml.safe_load((REPO / "sample_pcaps" / "site.yaml").read_text())
    for line in script_output.splitlines():
        if not line.startswith("map "):
            continue
        _, addr, _, cidr = line.split()
        for role in ("control_plane", "sandboxes"):
            nets = [ipaddress.ip_network(a, strict=False) for a in profile[role]["addresses"]]
            if any(ipaddress.ip_address(addr) in n for n in nets):
                profile[role]["addresses"].append(cidr)
    return yaml.safe_dump(profile, sort_keys=False)


CPUS: set[int] | None = None  # the CPUs children run on (None: all)


def _pin() -> None:
    if CPUS is not None:
        os.sched_setaffinity(0, CPUS)


def run(cmd: list[str], env: dict[str, str] | None = None, pin: bool = True) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one child process (on ``CPUS`` when ``pin``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, preexec_fn=_pin if pin else None
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, out


def median_run(
    cmd: list[str], runs: int, env: dict[str, str] | None = None, pin: bool = True
) -> tuple[float, float, str]:
    results = [run(cmd, env, pin) for _ in range(runs)]
    wall = statistics.median(r[0] for r in results)
    rss = max(r[1] for r in results)
    return wall, rss, results[-1][2]


def read_timings(report: Path) -> dict[str, float]:
    """``tool.timings`` of a report.json, read in a child process: loading a large report here
    would inflate the peak RSS that the next children inherit at fork (ru_maxrss counts it)."""
    code = "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['tool'].get('timings', {})))"
    cmd = [sys.executable, "-c", code, str(report)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {k: v for k, v in json.loads(out.stdout).items() if k not in ("parts", "reruns")}


def count_packets(path: Path) -> int:
    with open(path, "rb") as f:
        f.seek(24)
        n = 0
        while hdr := f.read(16):
            n += 1
            f.seek(int.from_bytes(hdr[8:12], "little"), 1)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200k packets, 1 run")
    ap.add_argument("--no-baselines", action="store_true", help="helix-audit and tshark only")
    ap.add_argument("--cpus", default="0", help="CPUs to pin the tools to (default 0: one core), or 'all'")
    ap.add_argument("--synscan", type=int, default=0, metavar="N", help="also audit an N-SYN scan capture")
    args = ap.parse_args()
    global CPUS
    CPUS = None if args.cpus == "all" else {int(c) for c in args.cpus.split(",")}
    if args.quick:
        args.packets, args.runs = 200_000, 1
    pcap, site = build(args.packets)
    n = count_packets(pcap)
    print(f"capture: {pcap} ({pcap.stat().st_size / 1e6:.0f} MB, {n} packets); site: {site}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"pinned to CPUs: {sorted(CPUS) if CPUS is not None else 'all'} (except --jobs rows)")
    rows: list[tuple[str, float, float, str]] = []
    one_core = serial_wall = jobs_wall = 0.0
    synscan_row: tuple[str, float, float] | None = None
    helix = shutil.which("helix-audit", path=str(Path(sys.executable).parent)) or "helix-audit"
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, HELIX_AUDIT_TIMINGS="1")
        cmd = [helix, "audit", str(pcap), "--site", str(site), "--format", "json", "--out", out, "--quiet",
               "--fail-on", "critical"]  # fmt: skip
        # Bytecode as a pip install writes it (an editable install under PYTHONDONTWRITEBYTECODE
        # would compile every module on every run), then warm the numba and page caches.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "helix_audit")], check=False)
        run(cmd, env)
        wall, rss, _ = median_run(cmd, args.runs, env)
        rows.append(("helix-audit audit --site --format json", wall, rss, ""))
        timings = read_timings(Path(out) / "report.json")
        one_core = wall
        cores = os.cpu_count() or 1
        if cores >= 2:
            # Serial on all cores (its hashing thread gets a core of its own) against --jobs 2
            # on the same cores, alternating so that a noisy neighbour hits both alike.
            serial, jobs2 = [], []
            for _ in range(args.runs):
                serial.append(run(cmd, env, pin=False))
                jobs2.append(run([*cmd, "--jobs", "2"], env, pin=False))
            serial_wall = statistics.median(r[0] for r in serial)
            jobs_wall = statistics.median(r[0] for r in jobs2)
            rows.append((f"helix-audit serial ({cores} cores)", serial_wall, max(r[1] for r in serial), ""))
            rows.append((f"helix-audit … --jobs 2 ({cores} cores)", jobs_wall, max(r[1] for r in jobs2), ""))
        if args.synscan:
            from synscan import synscan

            scan = OUT / f"synscan-{args.synscan}.pcap"
            if not scan.exists():
                scan.write_bytes(synscan(args.synscan))
            scan_site = OUT / "synscan.site.yaml"
            scan_site.write_text(SYNSCAN_SITE)
            scan_cmd = [helix, "audit", str(scan), "--site", str(scan_site), "--format", "json", "--out", out,
                        "--quiet", "--fail-on", "critical"]  # fmt: skip
            wall, rss, _ = median_run(scan_cmd, 1, env)
            synscan_row = (f"helix-audit on a SYN scan ({args.synscan:,} flows)", wall, rss)
    # The audit's input digest (SHA-256, for the evidence record) alone, as the audit computes it.
    hash_cmd = [sys.executable, "-c", HASH_SCRIPT, str(pcap)]
    hash_wall, hash_rss, _ = median_run(hash_cmd, args.runs)
    rows.append(("SHA-256 of the capture (the audit's digest)", hash_wall, hash_rss, ""))
    if shutil.which("tshark"):
        fields = [
            "-e",
            "dns.qry.name",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "http.host",
            "-e",
            "http.request.uri",
        ]
        wall, rss, _ = median_run(["tshark", "-n", "-r", str(pcap), "-T", "fields", *fields], args.runs)
        rows.append(("tshark -T fields (names)", wall, rss, ""))
    if shutil.which("tcpdump") and not args.no_baselines:
        wall, rss, _ = median_run(["tcpdump", "-r", str(pcap), "-w", "/dev/null"], args.runs)
        rows.append(("tcpdump -r -w /dev/null (reader floor)", wall, rss, ""))
    if not args.no_baselines:
        wall, rss, _ = median_run([sys.executable, "-c", DPKT_SCRIPT, str(pcap)], 1)
        rows.append(("dpkt per-packet flows", wall, rss, ""))
        wall, rss, _ = median_run([sys.executable, "-c", SCAPY_SCRIPT, str(pcap), str(SCAPY_PREFIX)], 1)
        rows.append(("scapy per-packet flows", wall * n / SCAPY_PREFIX, rss, f"first {SCAPY_PREFIX} packets"))
    tshark_wall = next((r[1] for r in rows if r[0].startswith("tshark")), None)
    print(f"\n{'tool':42} {'seconds':>8} {'packets/s':>12} {'vs tshark':>10} {'peak MiB':>9}")
    for name, wall, rss, note in rows:
        ratio = f"{tshark_wall / wall:.1f}x" if tshark_wall else "-"
        extra = f"  (extrapolated from {note})" if note else ""
        print(f"{name:42} {wall:8.2f} {n / wall:12,.0f} {ratio:>10} {rss:9.0f}{extra}")
    if synscan_row is not None:
        name, wall, rss = synscan_row
        print(f"{name:42} {wall:8.2f} {args.synscan / wall:12,.0f} {'':>10} {rss:9.0f}")
    print(
        f"\nfloor on one core: the SHA-256 of the input alone takes {hash_wall:.2f} s, so no audit that "
        f"records the input's digest can pass {n / hash_wall:,.0f} packets/s on this capture and core "
        "(reading and decoding come on top)."
    )
    if serial_wall and jobs_wall and CPUS is not None and len(CPUS) == 1:
        # One core does all the work (T1, hashing included); the serial run on two cores overlaps
        # the hash (H) with everything else, so it takes ~T1 - H; two jobs cannot beat T1 / 2.
        ceiling = 2 * (one_core - hash_wall) / one_core
        print(
            f"--jobs 2 against serial on the same cores: {serial_wall / jobs_wall:.2f}x; "
            f"the ceiling while the input is hashed is 2 (T1 - H) / T1 = {ceiling:.2f}x "
            f"(T1 {one_core:.2f} s on one core, H {hash_wall:.2f} s the hash)."
        )
    if timings:
        total = sum(timings.values())
        print("\nhelix-audit stage timings (last run, seconds; what bounds it):")
        for stage, secs in sorted(timings.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:24} {secs:7.3f}  {100 * secs / total:5.1f}%")


if __name__ == "__main__":
    main()
