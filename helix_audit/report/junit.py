"""junit.xml for CI: one test case per documented endpoint and one per finding.

Layout follows the de-facto JUnit XML format that Jenkins, GitLab and GitHub test reporters read
(``testsuites/testsuite/testcase`` with ``failure`` and ``skipped``). Coverage: ``ok`` passes,
``blocked`` fails, ``not_seen`` is skipped. Every finding is a failing case. Text from packets is
passed through ``display_text`` because XML 1.0 cannot hold most control characters at all.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from helix_audit.model import AuditResult, CoverageEntry, Finding, Severity
from helix_audit.report.atomic import atomic_write_bytes
from helix_audit.report.common import destination, display_text, tool_info


def _t(value: object) -> str:
    return display_text(value)


def _suite(parent: ET.Element, name: str, timestamp: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=name, timestamp=timestamp, time="0")


def _coverage_case(suite: ET.Element, c: CoverageEntry) -> None:
    ports = ",".join(str(p) for p in c.ports)
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_t(f"coverage.{c.component}.{c.phase}"),
        name=_t(f"{c.rule} {' '.join(c.hostnames)}:{ports}"),
        time="0",
    )
    flows = " ".join(str(i) for i in c.flow_ids)
    if c.status == "blocked":
        failure = ET.SubElement(case, "failure", type="blocked", message=_t(f"blocked ({c.how})"))
        failure.text = _t(f"{c.purpose}; flows: {flows}")
    elif c.status == "not_seen":
        ET.SubElement(case, "skipped", message="not seen in the capture")
    elif flows:
        ET.SubElement(case, "system-out").text = _t(f"reached; flows: {flows}")


def _finding_case(suite: ET.Element, f: Finding) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_t(f"findings.{f.kind}"),
        name=_t(f"{f.id} {f.hostname or destination(f)}:{f.dst_port}"),
        time="0",
    )
    failure = ET.SubElement(
        case, "failure", type=_t(f.kind), message=_t(f"[{Severity(f.severity).value}] {f.message}")
    )
    frames = "; ".join(f"{e.file} frames {','.join(str(n) for n in e.frames)}" for e in f.evidence)
    failure.text = _t(
        f"{f.src}:{f.src_port} -> {destination(f)}:{f.dst_port} {f.transport}\n"
        f"hostname: {f.hostname}\nrule: {f.rule}\nevidence: {frames}"
    )


def _count(suite: ET.Element) -> tuple[int, int, int]:
    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    return len(cases), failures, skipped


def to_junit(result: AuditResult) -> ET.Element:
    stamp = tool_info(result)["generated"].rstrip("Z")
    root = ET.Element("testsuites", name="helix-audit")
    coverage = _suite(root, "coverage", stamp)
    for c in result.coverage:
        _coverage_case(coverage, c)
    findings = _suite(root, "findings", stamp)
    for f in result.findings:
        _finding_case(findings, f)
    totals = [_count(s) for s in (coverage, findings)]
    for name, index in (("tests", 0), ("failures", 1), ("skipped", 2)):
        root.set(name, str(sum(t[index] for t in totals)))
    root.set("errors", "0")
    root.set("time", "0")
    return root


def render_junit(result: AuditResult) -> bytes:
    tree = to_junit(result)
    ET.indent(tree)
    return ET.tostring(tree, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(result: AuditResult, path: str | Path) -> Path:
    return atomic_write_bytes(path, render_junit(result))
