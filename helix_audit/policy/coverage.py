"""Coverage: for each documented endpoint of the components present, was it reached?

Components present: those with a role (profile or inferred) plus those the site profile declares.
For every *enabled* rule of those components: ``ok`` (an allowed flow succeeded), ``blocked`` (only
failed attempts: flows or lookups of its names; ``how`` is the most frequent failure) or
``not_seen``. Flow ids behind each entry are listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..model import CoverageEntry, Role
from .match import Matcher, host_matches
from .outcome import FAILED_LOOKUPS, Lookup
from .rules import CONTROL_PLANE_TOKEN, Rule
from .site import SiteProfile


def present_components(roles: Sequence[Role], site: SiteProfile | None) -> set[str]:
    present = {r.component for r in roles}
    if site is not None:
        if site.control_plane_addresses or site.control_plane_names:
            present.add("control_plane")
        if site.sandbox_addresses:
            present.add("sandbox")
    return present


def build_coverage(
    named: pd.DataFrame,
    found: Sequence[Lookup],
    matcher: Matcher,
    roles: Sequence[Role],
    site: SiteProfile | None,
) -> list[CoverageEntry]:
    present = present_components(roles, site)
    components = {r.address: r.component for r in roles}
    # only the columns an entry reads: a group-by part copies every column it carries
    ruled = named.loc[
        named["rule"].notna(), ["rule", "orig_component", "verdict", "success", "fail_how", "flow_id"]
    ]
    by_rule = {rule: part for rule, part in ruled.groupby("rule")}
    failed_by_comp: dict[str | None, list[Lookup]] = {}
    for lk in found:
        if lk.outcome in FAILED_LOOKUPS:
            failed_by_comp.setdefault(components.get(lk.query.src), []).append(lk)
    # each component's failed lookups' names read once, not once per rule
    names_by_comp = {comp: [lk.name for lk in lks] for comp, lks in failed_by_comp.items()}
    distinct = {comp: set(names) for comp, names in names_by_comp.items()}
    out = []
    for rule in matcher.enabled:
        comps = sorted(present) if rule.component == "any" else [rule.component]
        for comp in comps:
            if comp not in present:
                continue
            part = by_rule.get(rule.id)
            if part is not None:
                part = part[part["orig_component"] == comp]
            lookups = failed_by_comp.get(comp, [])
            # names repeat: each judged once
            named_here = {name: _names_rule(rule, name, matcher) for name in distinct.get(comp, ())}
            failed = []
            if any(named_here.values()):
                failed = [
                    lk for lk, name in zip(lookups, names_by_comp[comp], strict=True) if named_here[name]
                ]
            out.append(_entry(rule, comp, part, failed, matcher))
    return out


def _names_rule(rule: Rule, name: str, matcher: Matcher) -> bool:
    if CONTROL_PLANE_TOKEN in rule.hostnames and name in matcher.cp_names:
        return True
    return any(host_matches(p, name) for p in rule.hostnames)


def _entry(
    rule: Rule, comp: str, part: pd.DataFrame | None, failed: list[Lookup], matcher: Matcher
) -> CoverageEntry:
    hosts = rule.hostnames
    if CONTROL_PLANE_TOKEN in hosts:
        named_cp = sorted(matcher.cp_names | matcher.cp_addresses) or ["(control plane: unknown)"]
        hosts = tuple(h for h in hosts if h != CONTROL_PLANE_TOKEN) + tuple(named_cp)
    base: dict[str, Any] = dict(
        rule=rule.id,
        component=comp,
        phase=rule.phase,
        group=rule.group,
        hostnames=hosts,
        ports=rule.ports,
        purpose=rule.purpose,
    )
    if part is not None and not part.empty:
        ok = part[(part["verdict"] == "allowed") & part["success"]]
        if not ok.empty:
            return CoverageEntry(status="ok", flow_ids=_ids(ok), **base)
        bad = part[part["verdict"] == "blocked"]
        if not bad.empty:
            how = Counter(bad["fail_how"]).most_common(1)[0][0]  # a blocked flow's failure
            return CoverageEntry(status="blocked", how=how, flow_ids=_ids(bad), **base)
    if failed:
        how = Counter(lk.outcome for lk in failed).most_common(1)[0][0]
        fids = tuple(sorted({lk.flow_id for lk in failed if lk.flow_id is not None}))
        return CoverageEntry(status="blocked", how=how, flow_ids=fids, **base)
    return CoverageEntry(status="not_seen", **base)


def _ids(part: pd.DataFrame) -> tuple[int, ...]:
    return tuple(sorted(int(f) for f in part["flow_id"]))
