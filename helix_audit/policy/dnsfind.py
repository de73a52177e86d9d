"""Findings from DNS lookups: failed lookups of required names (``blocked``) and lookups of names
no rule lists that were not followed by a connection (``unexpected_destination``, state
``lookup_only``; a connection gets its own, stronger finding).

A failed lookup is *not* blocked when the same host resolved the same name successfully (another
record type, a retry: "AAAA refused, A works") from :data:`RETRY_WINDOW` seconds before it on, or
later connected successfully to that name. Reverse lookups (``*.arpa``) and search-list expansions
of a listed name (``registry.helixml.tech.corp.example``) are ignored. Only control plane and
sandbox lookups are judged; other hosts' lookups are not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..model import Evidence, Severity
from .dnsevidence import filter_string
from .evidence import new_evidence
from .findings import Draft, key_of
from .flowcodes import factorized, objects_at
from .flowfind import LABEL
from .match import Matcher, canon_ip
from .outcome import FAILED_LOOKUPS, Lookup, Lookups

RETRY_WINDOW = 5.0
_NONE = (-float("inf"),)  # max() of no times: nothing recovers
_OUTCOME_TEXT = {
    "nxdomain": "answered NXDOMAIN (the name does not exist for this resolver)",
    "servfail": "answered SERVFAIL (the resolver could not resolve it)",
    "refused": "answered REFUSED (the resolver will not resolve it: DNS filtering or an ACL)",
    "dns_timeout": "got no response",
}


def _latest_flows(
    named: pd.DataFrame, names: set[str], ok_only: bool, coded: _NameTuples
) -> dict[tuple[str, str], float]:
    """(client, name) -> latest first_ts of the flows (the successful ones when ``ok_only``)
    carrying that candidate name. Name tuples repeat: each distinct one is searched once.
    ``coded``: the ``names`` column factorised (once for both callers)."""
    if not names or named.empty:
        return {}
    codes, uniques = coded.factorized()
    hits = {c: [n for n in u if n in names] for c, u in enumerate(uniques)}
    hits = {c: found for c, found in hits.items() if found}
    if not hits:
        return {}
    keep = np.isin(codes, list(hits))
    if ok_only:
        keep &= named["success"].to_numpy(dtype=bool)
    rows = np.flatnonzero(keep)
    if rows.shape[0] == 0:
        return {}
    per_row = [hits[c] for c in codes[rows].tolist()]
    counts = np.fromiter(map(len, per_row), dtype=np.int64, count=len(per_row))
    part = pd.DataFrame(
        {
            "orig_h": np.repeat(objects_at(named["orig_h"], rows), counts),
            "names": [n for found in per_row for n in found],
            "first_ts": np.repeat(named["first_ts"].to_numpy(dtype=float)[rows], counts),
        }
    )
    latest = part.groupby(["orig_h", "names"], sort=False)["first_ts"].max()
    return {(str(c), str(n)): float(t) for (c, n), t in latest.items()}


class _NameTuples:
    """Codes and distinct tuples of the ``names`` column (a Categorical from :func:`names.attribute`:
    its own codes; else hashed, tuples being the cost), read once."""

    def __init__(self, named: pd.DataFrame) -> None:
        self.named = named
        self._done: tuple[np.ndarray, Any] | None = None

    def factorized(self) -> tuple[np.ndarray, Any]:
        if self._done is None:
            self._done = factorized(self.named["names"])  # a Categorical: its own codes
        return self._done


def lookup_drafts(
    lookups: Sequence[Lookup], named: pd.DataFrame, matcher: Matcher, components: dict[str, str]
) -> list[Draft]:
    """Lookups repeat (a thousand sandboxes resolving the same few names): each lookup's client,
    name and outcome are read once, into lists, and what depends on the client or the name alone
    (component, judged, listed) is decided once per distinct one."""
    columns = lookups if isinstance(lookups, Lookups) else None  # the columns read already
    srcs = columns.srcs if columns is not None else [lk.query.src for lk in lookups]
    names = columns.names if columns is not None else [lk.name for lk in lookups]
    every_outcome = columns.outcomes if columns is not None else [lk.outcome for lk in lookups]
    comp_of = {src: components.get(src, "other") for src in set(srcs)}
    name_ok = {name: _judged(name) for name in set(names)}
    judged = [
        i for i, (s, n) in enumerate(zip(srcs, names, strict=True)) if name_ok[n] and comp_of[s] != "other"
    ]
    outcomes = [every_outcome[i] for i in judged]
    bad = set(FAILED_LOOKUPS)
    failing = {names[i] for i, outcome in zip(judged, outcomes, strict=True) if outcome in bad}
    verdicts = {name: matcher.name_listed(name) for name in dict.fromkeys(names[i] for i in judged)}
    allowed = {name for name, v in verdicts.items() if v.verdict == "allowed"}
    failed = failing & allowed
    coded = _NameTuples(named)
    success = _latest_flows(named, failed, ok_only=True, coded=coded)
    connected = _latest_flows(named, set(verdicts) - allowed, ok_only=False, coded=coded)
    resolved: dict[tuple[str, str], float] = {}  # latest successful lookup per (client, name)
    times = columns.times if columns is not None else [lk.query.ts for lk in lookups]
    if failed:
        for i, outcome in zip(judged, outcomes, strict=True):
            if outcome == "ok" and names[i] in failed:
                key = (srcs[i], names[i])
                resolved[key] = max(resolved.get(key, _NONE[0]), times[i])
    listed = tuple(p + "." for r in matcher.enabled for p in r.hostnames if not p.startswith(("*", "{")))
    unlisted = [i for i in judged if names[i] not in allowed and (srcs[i], names[i]) not in connected]
    pairs = _pairs(named, {srcs[i] for i in unlisted})
    made = _Merging()
    for i, outcome in zip(judged, outcomes, strict=True):
        name = names[i]
        if name in allowed:
            if outcome not in bad:
                continue
            key, ts = (srcs[i], name), times[i]
            if resolved.get(key, _NONE[0]) >= ts - RETRY_WINDOW or success.get(key, _NONE[0]) >= ts:
                continue  # recovered
            lk = lookups[i]
            comp = comp_of[srcs[i]]
            group_key = _group_key("blocked", comp, lk, outcome, None)
            if not made.merged(group_key, lk):
                made.out[group_key] = _blocked(lk, comp, verdicts[name].rule, matcher)
        elif (srcs[i], name) not in connected:
            lk = lookups[i]
            if _reached(lk, pairs) or name.startswith(listed):
                continue
            comp = comp_of[srcs[i]]
            group_key = _group_key("unexpected_destination", comp, lk, None, "lookup_only")
            if not made.merged(group_key, lk):
                made.out[group_key] = _lookup_only(lk, comp, verdicts[name].explanation)
    return made.drafts()


def _group_key(kind: str, comp: str, lk: Lookup, how: str | None, state: str | None) -> tuple[object, ...]:
    """The key :func:`.findings.group` gives the lookup's draft (:func:`_base`'s fields)."""
    q = lk.query
    return key_of(kind, comp, lk.name, q.dst, q.dport, q.transport, how, state)


class _Merging:
    """Drafts by group key, each later lookup of a group merged into its draft as
    :func:`.findings.group` would merge that lookup's draft (same kind and key: same severity and
    message), without building it: a blocked name is one finding over thousands of failed lookups.
    Evidence and query types are collected per group and stored once, at :meth:`drafts`."""

    def __init__(self) -> None:
        self.out: dict[tuple[object, ...], Draft] = {}
        self._evidence: dict[tuple[object, ...], list[Evidence]] = {}
        self._qtypes: dict[tuple[object, ...], set[str]] = {}

    def merged(self, key: tuple[object, ...], lk: Lookup) -> bool:
        """Merge ``lk`` into its group's draft; False when the group has none yet."""
        have = self.out.get(key)
        if have is None:
            return False
        have.sources.append(lk.query.src)
        have.extra["count"] = have.extra.get("count", 1) + 1
        if key not in self._evidence:
            self._evidence[key], self._qtypes[key] = list(have.evidence), set(have.extra["qtypes"])
        self._evidence[key] += _evidence(lk)
        self._qtypes[key].add(lk.query.qtype)
        return True

    def drafts(self) -> list[Draft]:
        for key, evidence in self._evidence.items():
            self.out[key].evidence = tuple(evidence)
            self.out[key].extra["qtypes"] = sorted(self._qtypes[key])
        return list(self.out.values())


def _pairs(named: pd.DataFrame, clients: set[str]) -> set[tuple[str, str]]:
    """(originator, responder) of every flow from one of ``clients``."""
    if not clients:
        return set()
    rows = np.flatnonzero(named["orig_h"].isin(clients).to_numpy())
    orig, resp = objects_at(named["orig_h"], rows), objects_at(named["resp_h"], rows)
    return set(zip(orig.tolist(), resp.tolist(), strict=True))


def _reached(lk: Lookup, pairs: set[tuple[str, str]]) -> bool:
    """Did the host talk to an address the answer gave (e.g. its proxy, by name)?"""
    answers = lk.response.answers if lk.response else ()
    return any((lk.query.src, canon_ip(a.data)) in pairs for a in answers if a.rtype in ("A", "AAAA"))


def _judged(name: str) -> bool:
    return bool(name) and not name.endswith(".arpa") and "." in name


def _evidence(lk: Lookup) -> tuple[Evidence, ...]:
    frames = [lk.query.frame] + ([lk.response.frame] if lk.response else [])
    last = lk.response.ts if lk.response else lk.query.ts
    fids = (lk.flow_id,) if lk.flow_id is not None else ()
    filt = f"dns.qry.name == {filter_string(lk.name)}"
    return (new_evidence(lk.query.file, tuple(frames), lk.query.ts, last, fids, filt),)


def _base(lk: Lookup, kind: str, sev: Severity, comp: str, msg: str, **kw: Any) -> Draft:
    q = lk.query
    return Draft(
        kind=kind,
        severity=sev,
        component=comp,
        dst=q.dst,
        dst_port=q.dport,
        transport=q.transport,
        hostname=lk.name,
        message=msg,
        sources=[q.src],
        src_port=q.sport,
        evidence=_evidence(lk),
        extra={"qtypes": [q.qtype]},
        **kw,
    )


def _blocked(lk: Lookup, comp: str, rule: str | None, matcher: Matcher) -> Draft:
    q = lk.query
    found = matcher.ruleset.get(rule) if rule else None
    purpose = found.purpose if found is not None else "the control plane"
    msg = (
        f"{LABEL[comp]} {q.src} looked up {lk.name} ({q.qtype}) at resolver {q.dst}, which "
        f"{_OUTCOME_TEXT.get(lk.outcome, lk.outcome)}; the name is required ({purpose}) and no "
        "successful lookup or connection followed."
    )
    return _base(lk, "blocked", Severity.MEDIUM, comp, msg, rule=rule, how=lk.outcome)


def _lookup_only(lk: Lookup, comp: str, explanation: str | None) -> Draft:
    q = lk.query
    msg = (
        f"{LABEL[comp]} {q.src} looked up {lk.name} ({q.qtype}) but opened no connection to it; "
        "no enabled rule lists this name."
    )
    if explanation:
        msg += f" Why: {explanation}."
    return _base(
        lk, "unexpected_destination", Severity.LOW, comp, msg, state="lookup_only", explanation=explanation
    )
