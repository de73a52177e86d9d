"""Compare an audit result with an expected-findings document (``sample_pcaps/*.expected.yaml`` shape).

Shared by the sample tests and the lab tests. Expected findings name only the fields the scenario
decides; each must match one finding, and every finding above ``info`` must match one expected entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CONTROL_PLANE_ROW = "<control plane>"


def audit_unavailable() -> str | None:
    """Why ``helix_audit.audit`` cannot be used yet (the tests skip with this reason), or None."""
    try:
        func = importlib.import_module("helix_audit").audit
    except (ImportError, AttributeError) as exc:
        return f"helix_audit.audit() is not integrated yet ({type(exc).__name__}: {exc})"
    return None if callable(func) else "helix_audit.audit is not callable"


def audit_function() -> Callable[..., Any] | None:
    return None if audit_unavailable() else importlib.import_module("helix_audit").audit


def run_audit(paths: Iterable[Path], site: Path) -> Any:
    func = audit_function()
    assert func is not None
    return func([str(p) for p in paths], site=str(site))


def _value(finding: Any, key: str) -> Any:
    value = getattr(finding, key, None)
    return getattr(value, "value", value)  # Severity enum -> "high"


def finding_matches(finding: Any, want: dict[str, Any]) -> bool:
    for key, expected in want.items():
        got = _value(finding, key)
        if key == "src" and expected in (getattr(finding, "sources", ()) or ()):
            continue
        if got != expected:
            return False
    return True


def _describe(finding: Any) -> str:
    keys = (
        "kind",
        "severity",
        "component",
        "src",
        "dst",
        "dst_port",
        "transport",
        "hostname",
        "how",
        "state",
    )
    return "{" + ", ".join(f"{k}={_value(finding, k)!r}" for k in keys) + "}"


def finding_problems(findings: list[Any], expected: list[dict[str, Any]]) -> list[str]:
    problems = [
        f"missing finding {want} among {[_describe(f) for f in findings]}"
        for want in expected
        if not any(finding_matches(f, want) for f in findings)
    ]
    for f in findings:
        if _value(f, "severity") != "info" and not any(finding_matches(f, want) for want in expected):
            problems.append(f"unexpected finding {_describe(f)}")
    return problems


def _covers(entry: Any, want: dict[str, Any], cp_names: set[str]) -> bool:
    if entry.component != want["component"]:
        return False
    host = want["hostname"]
    if host != CONTROL_PLANE_ROW:
        return host in entry.hostnames
    text = " ".join([entry.rule, entry.purpose, *entry.hostnames]).lower()
    return bool(cp_names & set(entry.hostnames)) or "control" in text or "revdial" in text


def coverage_problems(coverage: list[Any], expected: list[dict[str, Any]], cp_names: set[str]) -> list[str]:
    problems: list[str] = []
    for want in expected:
        entries = [e for e in coverage if _covers(e, want, cp_names)]
        if not entries:
            problems.append(f"no coverage entry for {want}")
            continue
        for e in entries:
            if e.status != want["status"] or ("how" in want and e.how != want["how"]):
                problems.append(f"coverage {e.rule}: {e.status}/{e.how}, expected {want}")
    return problems


def audit_problems(result: Any, expected: dict[str, Any], cp_names: set[str]) -> list[str]:
    return finding_problems(list(result.findings), expected.get("findings", [])) + coverage_problems(
        list(result.coverage), expected.get("coverage", []), cp_names
    )
