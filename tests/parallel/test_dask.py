"""A real dask.distributed cluster on loopback (a scheduler and two workers, as subprocesses) runs
the partitions; the result equals the serial run. Skipped when dask is not installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helix_audit.pipeline import scan

from .helpers import SAMPLE_FILES, SAMPLES, assert_same_scan

pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install 'helix-audit[dask]')"
)

BIN = Path(sys.executable).parent
START_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout=START_TIMEOUT) as client:
        client.wait_for_workers(n, timeout=START_TIMEOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    work = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    log = open(work / "cluster.log", "w")  # noqa: SIM115
    common = {"cwd": work, "env": env, "stdout": log, "stderr": subprocess.STDOUT}
    procs = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
                "--no-show",
            ],
            **common,
        )  # fmt: skip
    ]
    try:
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "dask"),
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--local-directory",
                        str(work),
                    ],
                    **common,
                )  # fmt: skip
            )
        wait_for_workers(address, 2)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        deadline = time.monotonic() + 20
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        log.close()


def test_dask_scan_equals_serial(cluster: str) -> None:
    serial = scan(SAMPLE_FILES, batch_size=9)
    remote = scan(SAMPLE_FILES, batch_size=9, dask=cluster, split_min=0, pieces=3)
    assert remote.timings["parts"] > len(SAMPLE_FILES)
    assert_same_scan(serial, remote, "dask")


def test_dask_cli_report_equals_serial(cluster: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from helix_audit.cli import main

    capture, site = SAMPLES / "proxied.pcap", SAMPLES / "proxied.site.yaml"
    reports = []
    for name, extra in (("serial", []), ("dask", ["--dask", cluster])):
        out = tmp_path / name
        argv = ["audit", str(capture), "--site", str(site), "--out", str(out), "--format", "json", "-q"]
        result = CliRunner().invoke(main, argv + extra)
        assert result.exit_code in (0, 1), result.output
        reports.append(json.loads((out / "report.json").read_text()))
    for key in ("findings", "coverage", "flows", "observations"):
        assert reports[0][key] == reports[1][key], key
