"""``diff_reports`` over report.json dicts shaped like the real ones (schema helix-audit/1)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from helix_audit.errors import InputError
from helix_audit.report.diff import diff_reports, exit_code, format_text, load_report, to_json


def flow(
    fid: int, resp_h: str, resp_p: int, hostname: str | None, verdict: str, transport: str = "tcp"
) -> dict:
    return {
        "flow_id": fid,
        "transport": transport,
        "orig_h": "10.0.1.10",
        "orig_p": 40000 + fid,
        "resp_h": resp_h,
        "resp_p": resp_p,
        "conn_state": "SF",
        "orig_pkts": 5,
        "resp_pkts": 4,
        "file": "span-1.pcapng",
        "first_frame": fid + 1,
        "hostname": hostname,
        "name_source": "sni",
        "orig_component": "sandbox",
        "resp_component": "other",
        "verdict": verdict,
        "rule": None,
    }


def fnd(
    fid: str,
    kind: str,
    severity: str,
    dst: str,
    port: int | None,
    hostname: str | None,
    sources: list[str],
    **more: Any,
) -> dict:
    rec = {
        "id": fid,
        "kind": kind,
        "severity": severity,
        "component": "sandbox",
        "src": sources[0] if sources else "",
        "src_port": None,
        "dst": dst,
        "dst_port": port,
        "transport": "tcp",
        "hostname": hostname,
        "how": None,
        "state": None,
        "rule": None,
        "message": "m",
        "explanation": None,
        "sources": sources,
        "flow_ids": [1],
        "evidence": [
            {
                "file": "span-1.pcapng",
                "frames": [1, 2],
                "first_ts": 1.0,
                "last_ts": 2.0,
                "flow_ids": [1],
                "wireshark_filter": "tcp.stream eq 1",
            }
        ],
        "extra": {},
    }
    rec.update(more)
    return rec


def cov(rule: str, status: str, how: str | None = None) -> dict:
    return {
        "rule": rule,
        "component": "sandbox",
        "phase": "install",
        "group": "core",
        "hostnames": ["get.helixml.tech"],
        "ports": [443],
        "status": status,
        "how": how,
        "flow_ids": [],
        "purpose": "installer",
    }


def baseline() -> dict[str, Any]:
    return {
        "schema": "helix-audit/1",
        "tool": {"name": "helix-audit", "version": "0.1.0"},
        "summary": {"verdict": "findings"},
        "findings": [
            fnd(
                "unexpected_destination-aaaa",
                "unexpected_destination",
                "high",
                "198.51.100.7",
                443,
                "evil.example.net",
                ["10.0.1.10"],
            ),
            fnd(
                "blocked-bbbb",
                "blocked",
                "medium",
                "203.0.113.5",
                443,
                "get.helixml.tech",
                ["10.0.1.10"],
                how="no_answer",
            ),
            fnd(
                "inbound_to_sandbox-cccc",
                "inbound_to_sandbox",
                "high",
                "10.0.1.10",
                22,
                None,
                ["10.0.0.99"],
                state="attempted",
            ),
        ],
        "coverage": [cov("sandbox-install-get", "ok"), cov("sandbox-install-registry", "ok")],
        "flows": [
            flow(0, "104.18.0.1", 443, "registry.helixml.tech", "allowed"),
            flow(1, "198.51.100.7", 443, "evil.example.net", "violation"),
            flow(2, "203.0.113.5", 443, "get.helixml.tech", "allowed"),
            flow(3, "10.0.0.53", 53, None, "allowed", "udp"),
        ],
    }


def test_identical_reports_have_no_changes() -> None:
    d = diff_reports(baseline(), baseline())
    assert d.empty and exit_code(d, "info") == 0
    assert format_text(d).startswith("no changes (")


def test_new_finding_and_destination() -> None:
    new = baseline()
    new["findings"].append(
        fnd(
            "unexpected_destination-dddd",
            "unexpected_destination",
            "high",
            "192.0.2.9",
            443,
            "example-exfil.net",
            ["10.0.1.10", "10.0.1.11"],
        )
    )
    new["flows"].append(flow(4, "192.0.2.9", 443, "Example-Exfil.NET", "violation"))
    d = diff_reports(baseline(), new)
    text = format_text(d).splitlines()
    assert text[0] == "+ finding high unexpected_destination example-exfil.net:443 (new)"
    assert text[1] == "+ destination example-exfil.net:443/tcp (new, violation, 1 flows)"
    assert exit_code(d, "high") == 1 and exit_code(d, "medium") == 1 and exit_code(d, "critical") == 0
    assert exit_code(d, None) == 0
    js = to_json(d)
    assert js["summary"]["findings"] == {"new": 1, "gone": 0, "changed": 0}
    assert js["findings"][0]["hostname"] == "example-exfil.net" and js["findings"][0]["status"] == "new"
    json.dumps(js, allow_nan=False)


def test_gone_finding_and_destination_do_not_fail() -> None:
    new = baseline()
    del new["findings"][0]
    new["flows"] = [f for f in new["flows"] if f["hostname"] != "evil.example.net"]
    d = diff_reports(baseline(), new)
    assert "- finding high unexpected_destination evil.example.net:443 (gone)" in format_text(d)
    assert "- destination evil.example.net:443/tcp (gone, violation, 1 flows)" in format_text(d)
    assert exit_code(d, "info") == 0


def test_match_falls_back_to_kind_and_destination_when_the_id_changed() -> None:
    new = baseline()
    new["findings"][1]["id"] = "blocked-renamed"
    assert diff_reports(baseline(), new).empty
    new["findings"][1]["severity"] = "high"
    d = diff_reports(baseline(), new)
    (c,) = d.findings
    assert (c.status, c.worsened, c.changed) == ("changed", True, ("severity",))
    assert format_text(d).splitlines()[0] == (
        "~ finding high blocked get.helixml.tech:443 (worsened: severity medium -> high)"
    )
    assert to_json(d)["findings"][0]["old_id"] == "blocked-bbbb"
    assert exit_code(d, "high") == 1


@pytest.mark.parametrize(
    ("change", "worse"),
    [
        ({"severity": "low"}, False),
        ({"sources": []}, False),
        ({"sources": ["10.0.1.10", "10.0.1.12"]}, True),
        ({"how": "reset"}, False),
    ],
)
def test_changed_findings_and_what_counts_as_worse(change: dict, worse: bool) -> None:
    new = baseline()
    new["findings"][0].update(change)
    (c,) = diff_reports(baseline(), new).findings
    assert c.status == "changed" and c.worsened is worse
    assert exit_code(diff_reports(baseline(), new), "high") == int(worse)


def test_inbound_attempt_that_became_accepted_is_worse() -> None:
    new = baseline()
    new["findings"][2]["state"] = "accepted"
    d = diff_reports(baseline(), new)
    assert "(worsened: state attempted -> accepted)" in format_text(d)
    assert exit_code(d, "high") == 1


def test_destination_verdict_and_coverage_changes() -> None:
    new = baseline()
    new["flows"][2]["verdict"] = "blocked"
    new["coverage"][0].update(status="blocked", how="no_answer")
    del new["coverage"][1]
    new["coverage"].append(cov("sandbox-runtime-cp", "not_seen"))
    text = format_text(diff_reports(baseline(), new)).splitlines()
    assert "~ destination get.helixml.tech:443/tcp (verdict allowed -> blocked, 1 flows)" in text
    assert "~ coverage sandbox-install-get ok -> blocked (no_answer)" in text
    assert "- coverage sandbox-install-registry ok -> -" in text
    assert "+ coverage sandbox-runtime-cp - -> not_seen" in text
    assert text[-1] == (
        "changes (destinations: 0 new, 0 gone, 1 changed; findings: 0 new, 0 gone, 0 changed; "
        "coverage: 1 new, 1 gone, 1 changed)"
    )


def test_destination_without_hostname_uses_the_address() -> None:
    new = baseline()
    new["flows"].append(flow(9, "2001:db8::5", 8443, None, "violation"))
    (c,) = diff_reports(baseline(), new).destinations
    assert (c.host, c.port, c.status) == ("2001:db8::5", 8443, "new")
    assert "+ destination [2001:db8::5]:8443/tcp" in format_text(diff_reports(baseline(), new))


def test_hostile_names_cannot_drive_the_terminal() -> None:
    new = baseline()
    evil = "x\x1b[2J\x1b]0;pwned\x07\r\nfake line\udcff.example"
    new["findings"].append(
        fnd(
            "unexpected_destination-eeee",
            "unexpected_destination",
            "critical",
            "192.0.2.1",
            443,
            evil,
            ["10.0.1.10"],
        )
    )
    new["flows"].append(flow(5, "192.0.2.1", 443, evil, "violation"))
    text = format_text(diff_reports(baseline(), new))
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert len(text.splitlines()) == 3  # finding, destination, summary: the name's newline stayed text
    assert "\\x1b[2J" in text
    json.dumps(to_json(diff_reports(baseline(), new)))


def test_load_report_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "report.json"
    good.write_text(json.dumps(baseline()))
    assert load_report(good)["schema"] == "helix-audit/1"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: not a JSON report"):
        load_report(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something/2"}))
    with pytest.raises(InputError, match=r"other\.json: not a helix-audit report"):
        load_report(other)
    with pytest.raises(InputError, match="missing.json: cannot read"):
        load_report(tmp_path / "missing.json")


def test_diff_of_the_golden_report_against_a_mutated_copy() -> None:
    golden = Path(__file__).resolve().parents[1] / "report" / "golden" / "report-normal.json"
    if not golden.is_file():
        pytest.skip("golden report absent")
    old = json.loads(golden.read_text())
    assert diff_reports(old, old).empty
    new = copy.deepcopy(old)
    gone = new["findings"].pop()
    d = diff_reports(old, new)
    assert [(c.status, c.id) for c in d.findings] == [("gone", gone["id"])]
