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


def _latest_flows(named: pd.DataFrame, names: set[str], ok_only: bool) -> dict[tuple[str, str], float]:
    """(client, name) -> latest first_ts of the flows (the successful ones when ``ok_only``)
    carrying that candidate name. Name tuples repeat: each distinct one is searched once."""
    if not names or named.empty:
        return {}
    codes, uniques = pd.factorize(named["names"].to_numpy(dtype=object))
    hits = {c: [n for n in u if n in names] for c, u in enumerate(uniques.tolist())}
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
            "orig_h": np.repeat(named["orig_h"].to_numpy(dtype=object)[rows], counts),
            "names": [n for found in per_row for n in found],
            "first_ts": np.repeat(named["first_ts"].to_numpy(dtype=float)[rows], counts),
        }
    )
    latest = part.groupby(["orig_h", "names"], sort=False)["first_ts"].max()
    return {(str(c), str(n)): float(t) for (c, n), t in latest.items()}


def lookup_drafts(
    lookups: Sequence[Lookup], named: pd.DataFrame, matcher: Matcher, components: dict[str, str]
) -> list[Draft]:
    judged: list[tuple[Lookup, str]] = []
    name_judged: dict[str, bool] = {}  # names repeat: judge each once (in first-seen order)
    bad = set(FAILED_LOOKUPS)
    failing: set[str] = set()  # names some judged lookup failed
    for lk in lookups:
        comp = components.get(lk.query.src, "other")
        if comp == "other":
            continue
        name = lk.name
        ok = name_judged.get(name)
        if ok is None:
            ok = name_judged[name] = _judged(name)
        if ok:
            judged.append((lk, comp))
            if lk.outcome in bad:
                failing.add(name)
    verdicts = {name: matcher.name_listed(name) for name, ok in name_judged.items() if ok}
    allowed = {name for name, v in verdicts.items() if v.verdict == "allowed"}
    failed = failing & allowed
    success = _latest_flows(named, failed, ok_only=True)
    connected = _latest_flows(named, set(verdicts) - allowed, ok_only=False)
    resolved: dict[tuple[str, str], float] = {}  # latest successful lookup per (client, name)
    if failed:
        for lk, _ in judged:
            if lk.outcome == "ok" and lk.name in failed:
                key = (lk.query.src, lk.name)
                resolved[key] = max(resolved.get(key, _NONE[0]), lk.query.ts)
    listed = tuple(p + "." for r in matcher.enabled for p in r.hostnames if not p.startswith(("*", "{")))
    asking = {
        lk.query.src
        for lk, _ in judged
        if lk.name not in allowed and (lk.query.src, lk.name) not in connected
    }
    pairs = _pairs(named, asking)
    out = []
    for lk, comp in judged:
        name = lk.name
        if name in allowed:
            if lk.outcome in bad:
                key, ts = (lk.query.src, name), lk.query.ts
                recovered = (
                    resolved.get(key, _NONE[0]) >= ts - RETRY_WINDOW or success.get(key, _NONE[0]) >= ts
                )
                if not recovered:
                    out.append(_blocked(lk, comp, verdicts[name].rule, matcher))
        elif (
            (lk.query.src, name) not in connected and not _reached(lk, pairs) and not name.startswith(listed)
        ):
            out.append(_lookup_only(lk, comp, verdicts[name].explanation))
    return out


def _pairs(named: pd.DataFrame, clients: set[str]) -> set[tuple[str, str]]:
    """(originator, responder) of every flow from one of ``clients``."""
    if not clients:
        return set()
    orig = named["orig_h"].to_numpy(dtype=object)
    rows = np.flatnonzero(named["orig_h"].isin(clients).to_numpy())
    return set(zip(orig[rows].tolist(), named["resp_h"].to_numpy(dtype=object)[rows].tolist(), strict=True))


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
