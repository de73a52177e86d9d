"""``helix-audit diff OLD.json NEW.json``: what changed since a baseline audit.

Works on two ``report.json`` dicts (schema ``helix-audit/1``), nothing else:

- destinations: flows grouped by (hostname, else responder address; responder port; transport) are
  ``new`` or ``gone``, or ``changed`` when the set of verdicts behind them changed;
- findings: matched by their stable id, then (for ids that changed) by (kind, dst, dst_port,
  hostname); unmatched ones are ``new`` / ``gone``; a matched one is ``changed`` when its severity,
  state, how or sources changed, and *worsened* when its severity rose, it gained sources, or an
  inbound attempt became accepted;
- coverage: rules whose status (or how) changed, appeared or disappeared.

Names come from packets, so ``format_text`` prints every field with control characters escaped: a
hostname cannot move the cursor or recolour a CI log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helix_audit.errors import InputError
from helix_audit.model import Severity

SCHEMA = "helix-audit/1"
DIFF_SCHEMA = "helix-audit-diff/1"
FINDING_FIELDS = ("severity", "state", "how", "sources")
MARK = {"new": "+", "gone": "-", "changed": "~"}


@dataclass(frozen=True)
class DestinationChange:
    host: str
    port: int | None
    transport: str
    status: str  # new | gone | changed
    old_verdicts: tuple[str, ...]
    new_verdicts: tuple[str, ...]
    flows: int  # flows behind it in the newer report that has it


@dataclass(frozen=True)
class FindingChange:
    status: str  # new | gone | changed
    id: str
    kind: str
    severity: str  # the newer severity (the old one for gone findings)
    target: str  # hostname or dst, with port
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    changed: tuple[str, ...] = ()  # fields that differ (changed only)
    worsened: bool = False


@dataclass(frozen=True)
class CoverageChange:
    rule: str
    status: str  # new | gone | changed
    old_status: str | None
    new_status: str | None
    old_how: str | None
    new_how: str | None


@dataclass(frozen=True)
class DiffResult:
    destinations: tuple[DestinationChange, ...]
    findings: tuple[FindingChange, ...]
    coverage: tuple[CoverageChange, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name in ("destinations", "findings", "coverage"):
            items = getattr(self, name)
            out[name] = {s: sum(1 for c in items if c.status == s) for s in ("new", "gone", "changed")}
        return out

    @property
    def empty(self) -> bool:
        return not (self.destinations or self.findings or self.coverage)


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report.json; unusable files raise InputError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON report ({exc})") from None
    check_report(data, str(path))
    return data


def check_report(data: Any, name: str) -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{name}: not a helix-audit report (schema {got!r}, expected {SCHEMA!r})")
    for key in ("findings", "flows", "coverage"):
        if not isinstance(data.get(key, []), list):
            raise InputError(f"{name}: '{key}' is not a list")


# ------------------------------------------------------------------------------------- destinations


def _dest_key(flow: dict[str, Any]) -> tuple[str, int | None, str]:
    host = flow.get("hostname") or flow.get("resp_h") or ""
    port = flow.get("resp_p")
    return str(host).lower(), None if port is None else int(port), str(flow.get("transport") or "")


def _destinations(report: dict[str, Any]) -> dict[tuple[str, int | None, str], tuple[set[str], int]]:
    out: dict[tuple[str, int | None, str], tuple[set[str], int]] = {}
    for flow in report.get("flows") or []:
        key = _dest_key(flow)
        verdicts, n = out.get(key, (set(), 0))
        verdicts.add(str(flow.get("verdict") or "unknown"))
        out[key] = (verdicts, n + 1)
    return out


def diff_destinations(old: dict[str, Any], new: dict[str, Any]) -> tuple[DestinationChange, ...]:
    a, b = _destinations(old), _destinations(new)
    out = []
    for key in sorted(a.keys() | b.keys(), key=lambda k: (k[0], k[1] if k[1] is not None else -1, k[2])):
        va, vb = a.get(key), b.get(key)
        status = "new" if va is None else "gone" if vb is None else "changed" if va[0] != vb[0] else ""
        if status:
            flows = (vb or va or (set(), 0))[1]
            out.append(
                DestinationChange(
                    *key,
                    status,
                    tuple(sorted(va[0] if va else ())),
                    tuple(sorted(vb[0] if vb else ())),
                    flows,
                )
            )
    return tuple(out)


# ------------------------------------------------------------------------------------------ findings


def _rank(severity: Any) -> int:
    try:
        return Severity.parse(str(severity)).rank
    except ValueError:
        return -1


def _fallback_key(f: dict[str, Any]) -> tuple[str, str, Any, str]:
    return str(f.get("kind")), str(f.get("dst")), f.get("dst_port"), str(f.get("hostname") or "").lower()


def _target(f: dict[str, Any]) -> str:
    host = str(f.get("hostname") or f.get("dst") or "?")
    if ":" in host:
        host = f"[{host}]"
    return host if f.get("dst_port") is None else f"{host}:{f['dst_port']}"


def _pair_findings(
    old: list[dict], new: list[dict]
) -> tuple[list[tuple[dict, dict]], list[dict], list[dict]]:
    """(matched pairs, gone, new): by id first, then by the fallback key, first come first served."""
    by_id = {str(f.get("id")): f for f in old}
    pairs, rest_new = [], []
    used: set[int] = set()
    for f in new:
        o = by_id.get(str(f.get("id")))
        if o is not None and id(o) not in used:
            pairs.append((o, f))
            used.add(id(o))
        else:
            rest_new.append(f)
    spare: dict[tuple, list[dict]] = {}
    for o in old:
        if id(o) not in used:
            spare.setdefault(_fallback_key(o), []).append(o)
    added = []
    for f in rest_new:
        cands = spare.get(_fallback_key(f))
        if cands:
            o = cands.pop(0)
            pairs.append((o, f))
            used.add(id(o))
        else:
            added.append(f)
    return pairs, [o for o in old if id(o) not in used], added


def _compare(o: dict[str, Any], n: dict[str, Any]) -> FindingChange | None:
    changed = tuple(k for k in FINDING_FIELDS if _norm(k, o.get(k)) != _norm(k, n.get(k)))
    if not changed:
        return None
    gained = bool(set(n.get("sources") or ()) - set(o.get("sources") or ()))
    worse = (
        _rank(n.get("severity")) > _rank(o.get("severity"))
        or gained
        or (n.get("state") == "accepted" and o.get("state") != "accepted")
    )
    return FindingChange(
        "changed",
        str(n.get("id")),
        str(n.get("kind")),
        str(n.get("severity")),
        _target(n),
        o,
        n,
        changed,
        worse,
    )


def _norm(key: str, value: Any) -> Any:
    return tuple(sorted(map(str, value or ()))) if key == "sources" else value


def diff_findings(old: dict[str, Any], new: dict[str, Any]) -> tuple[FindingChange, ...]:
    pairs, gone, added = _pair_findings(list(old.get("findings") or []), list(new.get("findings") or []))
    out = [
        FindingChange(
            "new",
            str(f.get("id")),
            str(f.get("kind")),
            str(f.get("severity")),
            _target(f),
            None,
            f,
            worsened=True,
        )
        for f in added
    ]
    out += [
        FindingChange(
            "gone", str(f.get("id")), str(f.get("kind")), str(f.get("severity")), _target(f), f, None
        )
        for f in gone
    ]
    out += [c for o, n in pairs if (c := _compare(o, n)) is not None]
    order = {"new": 0, "changed": 1, "gone": 2}
    return tuple(sorted(out, key=lambda c: (order[c.status], -_rank(c.severity), c.kind, c.target, c.id)))


# ------------------------------------------------------------------------------------------ coverage


def diff_coverage(old: dict[str, Any], new: dict[str, Any]) -> tuple[CoverageChange, ...]:
    a = {str(c.get("rule")): c for c in old.get("coverage") or []}
    b = {str(c.get("rule")): c for c in new.get("coverage") or []}
    out = []
    for rule in sorted(a.keys() | b.keys()):
        ca, cb = a.get(rule), b.get(rule)
        sa, sb = (ca or {}).get("status"), (cb or {}).get("status")
        ha, hb = (ca or {}).get("how"), (cb or {}).get("how")
        status = "new" if ca is None else "gone" if cb is None else "changed" if (sa, ha) != (sb, hb) else ""
        if status:
            out.append(CoverageChange(rule, status, sa, sb, ha, hb))
    return tuple(out)


def diff_reports(old: dict[str, Any], new: dict[str, Any]) -> DiffResult:
    """Everything that differs between a baseline report (``old``) and a newer one."""
    check_report(old, "old report")
    check_report(new, "new report")
    return DiffResult(diff_destinations(old, new), diff_findings(old, new), diff_coverage(old, new))


def exit_code(diff: DiffResult, fail_on_severity: Severity | str | None) -> int:
    """1 when a new or worsened finding is at or above ``fail_on_severity`` (None: never), else 0."""
    if fail_on_severity is None:
        return 0
    floor = Severity.parse(str(getattr(fail_on_severity, "value", fail_on_severity))).rank
    hit = any(
        c.status in ("new", "changed") and c.worsened and _rank(c.severity) >= floor for c in diff.findings
    )
    return 1 if hit else 0


# ------------------------------------------------------------------------------------------ output


def _safe(value: Any) -> str:
    """Text with control characters (C0, DEL, C1) and lone surrogates escaped."""
    text = str(value)
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else ascii(c)[1:-1] for c in text)


def _finding_line(c: FindingChange) -> str:
    head = f"{MARK[c.status]} finding {c.severity} {c.kind} {c.target}"
    if c.status != "changed":
        return _safe(f"{head} ({c.status})")
    assert c.old is not None and c.new is not None
    parts = []
    for k in c.changed:
        if k == "sources":
            a, b = set(c.old.get("sources") or ()), set(c.new.get("sources") or ())
            parts.append(f"sources +{len(b - a)} -{len(a - b)}")
        else:
            parts.append(f"{k} {c.old.get(k) or '-'} -> {c.new.get(k) or '-'}")
    label = "worsened" if c.worsened else "changed"
    return _safe(f"{head} ({label}: {', '.join(parts)})")


def _dest_line(c: DestinationChange) -> str:
    host = f"[{c.host}]" if ":" in c.host else c.host
    port = "" if c.port is None else f":{c.port}"
    if c.status == "changed":
        what = f"verdict {'/'.join(c.old_verdicts)} -> {'/'.join(c.new_verdicts)}"
    else:
        what = f"{c.status}, {'/'.join(c.new_verdicts or c.old_verdicts)}"
    return _safe(f"{MARK[c.status]} destination {host}{port}/{c.transport} ({what}, {c.flows} flows)")


def _coverage_line(c: CoverageChange) -> str:
    def show(status: str | None, how: str | None) -> str:
        return f"{status or '-'}{f' ({how})' if how else ''}"

    return _safe(
        f"{MARK[c.status]} coverage {c.rule} {show(c.old_status, c.old_how)} -> "
        f"{show(c.new_status, c.new_how)}"
    )


def format_text(diff: DiffResult) -> str:
    """One line per change (findings, destinations, coverage), then a summary line."""
    lines = [_finding_line(c) for c in diff.findings]
    lines += [_dest_line(c) for c in diff.destinations]
    lines += [_coverage_line(c) for c in diff.coverage]
    counts = diff.counts()
    summary = "; ".join(
        f"{name}: " + ", ".join(f"{n} {s}" for s, n in by.items()) for name, by in counts.items()
    )
    lines.append(("no changes" if diff.empty else "changes") + f" ({summary})")
    return "\n".join(lines) + "\n"


def _finding_json(c: FindingChange) -> dict[str, Any]:
    ref = c.new if c.new is not None else c.old or {}
    out: dict[str, Any] = {
        "status": c.status,
        "id": c.id,
        "kind": c.kind,
        "severity": c.severity,
        "dst": ref.get("dst"),
        "dst_port": ref.get("dst_port"),
        "hostname": ref.get("hostname"),
        "transport": ref.get("transport"),
        "worsened": c.worsened,
        "changed": list(c.changed),
    }
    if c.status == "changed" and c.old is not None and c.new is not None:
        out["old_id"] = c.old.get("id")
        out["before"] = {k: c.old.get(k) for k in FINDING_FIELDS}
        out["after"] = {k: c.new.get(k) for k in FINDING_FIELDS}
    return out


def to_json(diff: DiffResult) -> dict[str, Any]:
    """The diff as plain JSON types (schema ``helix-audit-diff/1``)."""
    return {
        "schema": DIFF_SCHEMA,
        "summary": diff.counts(),
        "findings": [_finding_json(c) for c in diff.findings],
        "destinations": [
            {
                "status": c.status,
                "host": c.host,
                "port": c.port,
                "transport": c.transport,
                "old_verdicts": list(c.old_verdicts),
                "new_verdicts": list(c.new_verdicts),
                "flows": c.flows,
            }
            for c in diff.destinations
        ],
        "coverage": [
            {
                "status": c.status,
                "rule": c.rule,
                "old_status": c.old_status,
                "new_status": c.new_status,
                "old_how": c.old_how,
                "new_how": c.new_how,
            }
            for c in diff.coverage
        ],
    }
