"""Building findings: stable ids, grouping; their evidence comes from :mod:`.evidence` (for many
drafts at once: the columns their rows need read in one pass, :func:`build_all`).

Findings that share kind, component, destination (hostname, else address), port, transport and
how/state are one finding listing every source in ``sources`` and every flow in ``flow_ids``.
The id is a hash of that key, so it is stable across runs and across captures of the same thing.
Severities follow the table in docs/findings.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..model import Evidence, Finding, Severity
from .evidence import (  # the evidence helpers, here too: where callers have found them
    MAX_FRAMES,
    MAX_STREAMS_IN_FILTER,
    SMALL,
    _by_columns,
    address_filter,
    display_filter,
    few_flows_evidence,
    flow_evidence,
    isna,
    key_frames_of,
    merge_evidence,
    single_flow_evidence,
)
from .flowrows import FlowRows

__all__ = [
    "MAX_FRAMES",
    "MAX_STREAMS_IN_FILTER",
    "Draft",
    "address_filter",
    "build_all",
    "display_filter",
    "finding_id",
    "flow_evidence",
    "group",
    "isna",
    "key_of",
    "key_frames_of",
    "merge_evidence",
    "new_finding",
    "order",
    "single_flow_evidence",
]


def finding_id(kind: str, *parts: object) -> str:
    digest = hashlib.sha256("|".join([kind, *map(str, parts)]).encode()).hexdigest()
    return f"{kind}-{digest[:12]}"


def key_of(
    kind: str,
    component: str,
    hostname: str | None,
    dst: str,
    dst_port: int | None,
    transport: str,
    how: str | None = None,
    state: str | None = None,
    id_parts: tuple[object, ...] = (),
) -> tuple[object, ...]:
    """The group key of a draft with these fields (:meth:`Draft.group_key`): drafts with equal
    keys are one finding, whose id hashes the key. Code that merges drafts as it makes them
    (DNS lookups, WebSocket upgrades) keys its groups with this too, so it cannot drift from
    :func:`group`."""
    return (kind, component, hostname or dst, dst_port, transport, how, state, *id_parts)


@dataclass
class Draft:
    """A finding before grouping; ``rows`` are the flow rows behind it (may be empty)."""

    kind: str
    severity: Severity
    component: str
    dst: str
    dst_port: int | None
    transport: str
    hostname: str | None
    message: str
    sources: list[str]
    src_port: int | None = None
    rule: str | None = None
    how: str | None = None
    state: str | None = None
    explanation: str | None = None
    rows: FlowRows | None = None
    evidence: tuple[Evidence, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def group_key(self) -> tuple[object, ...]:
        """What :func:`group` merges by and the finding id hashes: :func:`key_of` of the draft."""
        return key_of(
            self.kind,
            self.component,
            self.hostname,
            self.dst,
            self.dst_port,
            self.transport,
            self.how,
            self.state,
            self.extra.get("id_parts", ()),
        )

    def build(
        self, flow_ev: tuple[Evidence, ...] | None = None, flow_ids: tuple[int, ...] | None = None
    ) -> Finding:
        """The finding; ``flow_ev``: :func:`flow_evidence` of its rows, ``flow_ids`` their sorted
        flow ids, when already known."""
        rows = self.rows
        evidence = merge_evidence(self.evidence) if self.evidence else ()
        if not evidence and rows is not None:
            evidence = flow_ev if flow_ev is not None else flow_evidence(rows)
        message = self.message
        if rows is None and self.extra.get("count", 1) > 1:
            message += f" Seen {self.extra['count']} times."
        if flow_ids is None:
            flow_ids = tuple(sorted(rows.values("flow_id"))) if rows is not None else ()
        if len(self.sources) == 1:  # most findings
            sources: tuple[str, ...] = (self.sources[0],)
        else:
            distinct = set(self.sources)  # merged drafts: often one host many times
            sources = tuple(distinct) if len(distinct) == 1 else tuple(sorted(distinct, key=_addr_key))
        extra = self.extra
        return stored_finding(
            {
                "id": finding_id(self.kind, *self.group_key()[1:]),  # the group key hashed
                "kind": self.kind,
                "severity": self.severity,
                "component": self.component,
                "src": sources[0] if sources else "",
                "src_port": self.src_port if len(sources) == 1 else None,
                "dst": self.dst,
                "dst_port": self.dst_port,
                "transport": self.transport,
                "hostname": self.hostname,
                "message": message,
                "evidence": evidence,
                "rule": self.rule,
                "how": self.how,
                "state": self.state,
                "sources": sources,
                "flow_ids": flow_ids,
                "explanation": self.explanation,
                "extra": {k: v for k, v in extra.items() if k not in ("id_parts", "count")} if extra else {},
            }
        )


_FIELDS = frozenset(f.name for f in dataclasses.fields(Finding))
#: a plain frozen dataclass (instance dict, no ``__post_init__``): its ``__init__`` only stores the
#: fields, one ``object.__setattr__`` each, which the instance dict can take in one update
_PLAIN = "__slots__" not in vars(Finding) and not hasattr(Finding, "__post_init__")


def new_finding(**fields: Any) -> Finding:
    """``Finding(**fields)`` with every field given, stored without the frozen dataclass's
    per-field ``object.__setattr__`` (10^4 findings per audit; falls back to the constructor
    when that would not be the same object)."""
    if not _PLAIN or fields.keys() != _FIELDS:
        return Finding(**fields)
    out = object.__new__(Finding)
    out.__dict__.update(fields)
    return out


def stored_finding(fields: dict[str, Any]) -> Finding:
    """:func:`new_finding` of a dict that names every field (:meth:`Draft.build`'s, a finding's
    own with new evidence): no keyword call and no key check per finding (~2 us each of 10^4), only
    the count."""
    if not _PLAIN or len(fields) != len(_FIELDS):
        return Finding(**fields)
    out = object.__new__(Finding)
    out.__dict__.update(fields)
    return out


@lru_cache(maxsize=1 << 16)
def _addr_key(text: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return (9, 0, text)
    return (ip.version, int(ip), text)


def build_all(drafts: list[Draft]) -> list[Finding]:
    """``[d.build() for d in drafts]``, with the flow ids of every draft with rows and the
    evidence of the one-flow and few-flow drafts (nearly all of them) read in bulk
    (:func:`flow_ids_of`, :func:`single_flow_evidence`, :func:`few_flows_evidence`)."""
    with_rows = [d for d in drafts if d.rows is not None]
    groups: list[FlowRows] = [d.rows for d in with_rows]  # type: ignore[misc]
    ids = {id(d): f for d, f in zip(with_rows, flow_ids_of(groups), strict=True)}
    sizes = [len(rows) for rows in groups]
    single = [d for d, n in zip(with_rows, sizes, strict=True) if n == 1 and not d.evidence]
    few = [d for d, n in zip(with_rows, sizes, strict=True) if 1 < n <= SMALL and not d.evidence]
    known = {id(d): ev for d, ev in zip(single, single_flow_evidence([d.rows for d in single]), strict=True)}  # type: ignore[misc]
    for d, ev in zip(few, few_flows_evidence([d.rows for d in few]), strict=True):  # type: ignore[misc]
        if ev is not None:
            known[id(d)] = ev
    return [d.build(known.get(id(d)), ids.get(id(d))) for d in drafts]


def group(drafts: Iterable[Draft]) -> list[Draft]:
    """Merge drafts with the same kind and key: sources and rows add up, the worst severity wins."""
    merged: dict[tuple[object, ...], Draft] = {}
    for draft in drafts:
        key = draft.group_key()
        have = merged.get(key)
        if have is None:
            merged[key] = draft
            continue
        have.sources += draft.sources
        if draft.rows is not None:
            have.rows = draft.rows if have.rows is None else have.rows.concat(draft.rows)
        have.evidence += draft.evidence
        have.extra["count"] = have.extra.get("count", 1) + draft.extra.get("count", 1)  # merged already
        for name, value in draft.extra.items():
            if isinstance(value, list) and isinstance(have.extra.get(name), list):
                have.extra[name] = sorted(set(have.extra[name]) | set(value))
        if draft.severity.rank > have.severity.rank:
            have.severity = draft.severity
    return list(merged.values())


def order(findings: list[Finding]) -> list[Finding]:
    """Worst first, then kind and destination: the report order."""
    return sorted(
        findings, key=lambda f: (-f.severity.rank, f.kind, f.hostname or f.dst or "", f.dst_port or 0, f.id)
    )


# --- the evidence and flow ids of many drafts at once (:func:`build_all`) -------------------------


def flow_ids_of(groups: list[FlowRows]) -> list[tuple[int, ...]]:
    """Each group's flow ids, sorted (``tuple(sorted(rows.values("flow_id")))``): the column
    read once per column set for all the groups' rows."""
    out: list[tuple[int, ...]] = [()] * len(groups)
    for cols, members in _by_columns(groups).items():
        parts = [groups[i].pos for i in members]
        ids = cols("flow_id")[np.concatenate(parts)].tolist() if parts else []
        start = 0
        for i, part in zip(members, parts, strict=True):
            stop = start + part.shape[0]
            out[i] = (ids[start],) if stop == start + 1 else tuple(sorted(ids[start:stop]))
            start = stop
    return out
