"""The CLI: exit codes, one-line errors without tracebacks, documented commands."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from helix_audit.cli import ExitCode, main

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, f"{prefix}{name} ")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_command_is_documented_in_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [c for c in _commands(main) if f"helix-audit {c}" not in readme]
    assert missing == []


def test_exit_codes_are_documented() -> None:
    readme = (REPO / "README.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", readme, re.M), code


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"PK\x03\x04 this is a zip file, not a capture", "not a pcap or pcapng file"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
    ],
)
def test_unusable_input_is_one_line_exit_2(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "input.pcap"
    if content is not None:
        path.write_bytes(content)
    for cmd in (["extract", str(path)], ["audit", str(path), "--out", str(tmp_path / "out")]):
        result = run(*cmd)
        assert result.exit_code == ExitCode.USAGE, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert str(path) in lines[0] and message in lines[0].lower()
        assert "Traceback" not in result.output


def test_bad_site_profile_names_file_and_key(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("control_plane:\n  adresses: [10.0.0.2]\n")
    pcap = next(SAMPLES.glob("*.pcap"), None)
    if pcap is None:
        pytest.skip("sample_pcaps not generated")
    result = run("audit", str(pcap), "--site", str(site), "--out", str(tmp_path / "o"))
    assert result.exit_code == ExitCode.USAGE
    assert str(site) in result.stderr and "adresses" in result.stderr


def test_rules_list_shows_every_documented_host() -> None:
    result = run("rules", "list")
    assert result.exit_code == 0
    spec = REPO.parent / "shared" / "helix" / "network-requirements.md"
    hosts = [
        "registry.helixml.tech",
        "get.helixml.tech",
        "helix-registry-europe.s3.eu-west-2.amazonaws.com",
        "api.openai.com",
        "api.anthropic.com",
        "api.together.xyz",
        "archive.ubuntu.com",
        "security.ubuntu.com",
        "download.docker.com",
        "registry.npmjs.org",
        "nodejs.org",
        "pypi.org",
        "files.pythonhosted.org",
        "proxy.golang.org",
        "sum.golang.org",
        "github.com",
        "api.github.com",
        "objects.githubusercontent.com",
        "gitlab.com",
        "registry.gitlab.com",
    ]
    if spec.exists():
        text = spec.read_text()
        assert all(h in text for h in hosts)
    for host in hosts:
        assert host in result.output, host


def test_rules_validate_reports_file_line_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    hostnames: [a.example]\n    ports: [70000]\n")
    result = run("rules", "validate", str(bad))
    assert result.exit_code == ExitCode.USAGE
    assert re.search(rf"{re.escape(str(bad))}:\d+: .*ports", result.stderr), result.stderr


def test_extract_jsonl_fields(corpus: Path) -> None:
    result = run("extract", str(corpus / "ndpi__http_connect.pcap"))
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    types = {r["type"] for r in rows}
    assert {"http_connect", "tls_client_hello"} <= types
    for r in rows:
        assert {"type", "frame", "ts", "src", "sport", "dst", "dport"} <= set(r)
    connect = next(r for r in rows if r["type"] == "http_connect")
    assert connect["target"] == "apache.org:443" and connect["frame"] == 4
    snis = sorted(r["sni"] for r in rows if r["type"] == "tls_client_hello")
    assert snis == ["apache.org", "apache.org"]


def test_extract_csv_has_header_and_neutralises(corpus: Path) -> None:
    result = run("extract", str(corpus / "ndpi__dns-invalid-chars.pcap"), "--format", "csv")
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0].split(",")
    assert header[:7] == ["type", "frame", "ts", "src", "sport", "dst", "dport"]
    assert "allyourba" in result.stdout


def _no_file(row: dict) -> dict:
    row.pop("file")
    return row


def test_damaged_capture_is_audited_up_to_the_damage(corpus: Path, tmp_path: Path) -> None:
    whole = run("extract", str(corpus / "ndpi__android.pcap"))
    data = (corpus / "ndpi__android.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])  # ends inside a record
    result = run("extract", str(cut))
    assert result.exit_code == 0
    assert "warning" in result.stderr and str(cut) in result.stderr
    got = [_no_file(json.loads(line)) for line in result.stdout.splitlines()]
    full = [_no_file(json.loads(line)) for line in whole.stdout.splitlines()]
    last = max(r["frame"] for r in got)
    # everything before the damage is there, exactly as in the whole file
    assert [r for r in full if r["frame"] < last] == [r for r in got if r["frame"] < last]
    assert 0 < len(got) < len(full)


def test_empty_capture_is_inconclusive(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    # a valid classic pcap header (µs, Ethernet) and no records
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    result = run("audit", str(empty), "--out", str(tmp_path / "out"))
    assert result.exit_code == ExitCode.INCONCLUSIVE, result.output
    assert "inconclusive" in result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["summary"]["verdict"] == "inconclusive" and report["summary"]["packets"] == 0


def test_compliant_sample_exits_0_and_violations_exit_1(tmp_path: Path) -> None:
    site = SAMPLES / "site.yaml"
    ok = run(
        "audit", str(SAMPLES / "compliant_sandbox.pcap"), "--site", str(site), "--out", str(tmp_path / "a")
    )
    assert ok.exit_code == ExitCode.COMPLIANT, ok.stderr
    bad = run(
        "audit", str(SAMPLES / "inbound_connections.pcap"), "--site", str(site), "--out", str(tmp_path / "b")
    )
    assert bad.exit_code == ExitCode.FINDINGS, bad.stderr
    # --fail-on raises the bar: an accepted inbound connection is critical, so it still fails
    crit = run(
        "audit",
        str(SAMPLES / "inbound_connections.pcap"),
        "--site",
        str(site),
        "--out",
        str(tmp_path / "c"),
        "--fail-on",
        "critical",
    )
    assert crit.exit_code == ExitCode.FINDINGS
    sums = (tmp_path / "b" / "SHA256SUMS").read_text()
    assert "report.json" in sums and "report.html" in sums and "evidence/" in sums


def test_diff_against_baseline_gates_on_new_findings(tmp_path: Path) -> None:
    site = str(SAMPLES / "site.yaml")
    run("audit", str(SAMPLES / "compliant_sandbox.pcap"), "--site", site, "--out", str(tmp_path / "old"))
    run(
        "audit", str(SAMPLES / "unexpected_destinations.pcap"), "--site", site, "--out", str(tmp_path / "new")
    )
    old, new = str(tmp_path / "old" / "report.json"), str(tmp_path / "new" / "report.json")
    changed = run("diff", old, new)
    assert changed.exit_code == 1
    assert "example-exfil.net" in changed.stdout and "(new)" in changed.stdout
    same = run("diff", old, old)
    assert same.exit_code == 0
    as_json = json.loads(run("diff", old, new, "--format", "json").stdout)
    assert as_json["findings"]
    missing = run("diff", old, str(tmp_path / "nope.json"))
    assert missing.exit_code == ExitCode.USAGE and "nope.json" in missing.stderr


def test_report_rerenders_a_bundle_from_json(tmp_path: Path) -> None:
    site = str(SAMPLES / "site.yaml")
    run("audit", str(SAMPLES / "proxied.pcap"), "--site", site, "--out", str(tmp_path / "a"))
    result = run("report", str(tmp_path / "a" / "report.json"), "--out", str(tmp_path / "b"))
    assert result.exit_code == 0
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()
    assert (tmp_path / "b" / "report.html").is_file()


@pytest.mark.tshark
def test_extract_with_the_tshark_engine_agrees(corpus: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = str(corpus / "ndpi__http_connect.pcap")
    native = [json.loads(line) for line in run("extract", path).stdout.splitlines()]
    tshark = [json.loads(line) for line in run("extract", path, "--engine", "tshark").stdout.splitlines()]
    key = sorted((r["type"], r["frame"], r.get("sni") or r.get("qname") or r.get("target")) for r in native)
    assert key == sorted(
        (r["type"], r["frame"], r.get("sni") or r.get("qname") or r.get("target")) for r in tshark
    )
    assert run("verify", path).exit_code == 0
    bad = run("extract", path, "--tls-keylog", str(corpus / "README.md"))
    assert bad.exit_code == ExitCode.USAGE and "--engine tshark" in bad.stderr


def test_extract_csv_cells_are_neutralised() -> None:
    from helix_audit.report.tabular import safe_cell

    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert safe_cell("@SUM(1)").startswith("'") and safe_cell("-1+2").startswith("'")
    assert safe_cell("evil\x1b[2Jname") == "evil\\x1b[2Jname"
    assert safe_cell(["=a", "b"]) == '["=a","b"]' and safe_cell(None) == ""


def test_cli_severities_are_the_models() -> None:
    from helix_audit.cli import SEVERITIES
    from helix_audit.model import Severity

    assert [s.value for s in Severity] == SEVERITIES


def test_parsing_the_command_line_imports_no_pandas() -> None:
    import subprocess
    import sys

    code = "import sys, helix_audit.cli; print(sorted({'pandas', 'numpy', 'numba'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
