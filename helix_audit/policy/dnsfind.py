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

import pandas as pd

from ..model import Evidence, Severity
from .dnsevidence import filter_string
from .findings import Draft
from .flowfind import LABEL
from .match import Matcher, canon_ip
from .outcome import FAILED_LOOKUPS, Lookup

RETRY_WINDOW = 5.0
_NONE = (-float("inf"),)  # max() of no times: nothing recovers
_OUTCOME_TEXT = {
    "nxdomain": "answered NXDOMAIN (the name does not exist for this resolver)",
    "servfail": "answered SERVFAIL (the resolver could not resolve it)",
    "refused": "answered REFUSED (the resolver will not resolve it: DNS filtering or an ACL)",
    "dns_timeout": "got no response",
}


def _latest_flows(
    named: pd.DataFrame, names: set[str]
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """(client, name) -> latest first_ts of the flows carrying that candidate name: of all of them,
    and of the successful ones."""
    if not names or named.empty:
        return {}, {}
    part = named[["orig_h", "names", "first_ts", "success"]].explode("names")
    part = part[part["names"].isin(names)]
    keys = ["orig_h", "names"]
    every = part.groupby(keys, sort=False)["first_ts"].max()
    ok = part[part["success"].to_numpy(dtype=bool)].groupby(keys, sort=False)["first_ts"].max()
    return _as_dict(every), _as_dict(ok)


def _as_dict(latest: pd.Series) -> dict[tuple[str, str], float]:
    return {(str(c), str(n)): float(t) for (c, n), t in latest.items()}


def lookup_drafts(
    lookups: Sequence[Lookup], named: pd.DataFrame, matcher: Matcher, components: dict[str, str]
) -> list[Draft]:
    judged = [lk for lk in lookups if components.get(lk.query.src, "other") != "other" and _judged(lk.name)]
    verdicts = {name: matcher.name_listed(name) for name in dict.fromkeys(lk.name for lk in judged)}
    names = set(verdicts)
    connected, success = _latest_flows(named, names)
    resolved: dict[tuple[str, str], list[float]] = {}
    for lk in judged:
        if lk.outcome == "ok":
            resolved.setdefault((lk.query.src, lk.name), []).append(lk.query.ts)
    listed = tuple(p + "." for r in matcher.enabled for p in r.hostnames if not p.startswith(("*", "{")))
    pairs = set(
        zip(named["orig_h"].to_numpy(dtype=object), named["resp_h"].to_numpy(dtype=object), strict=True)
    )
    out = []
    for lk in judged:
        key, ts, comp = (lk.query.src, lk.name), lk.query.ts, components[lk.query.src]
        verdict = verdicts[lk.name]
        if verdict.verdict == "allowed":
            recovered = max(resolved.get(key, _NONE)) >= ts - RETRY_WINDOW or success.get(key, _NONE[0]) >= ts
            if lk.outcome in FAILED_LOOKUPS and not recovered:
                out.append(_blocked(lk, comp, verdict.rule, matcher))
        elif key not in connected and not _reached(lk, pairs) and not lk.name.startswith(listed):
            out.append(_lookup_only(lk, comp, verdict.explanation))
    return out


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
    return (Evidence(lk.query.file, tuple(frames), lk.query.ts, last, fids, filt),)


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
