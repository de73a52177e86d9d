"""Classification: every flow gets components, a verdict and a rule; findings and coverage follow.

Verdicts, first match wins (docs/findings.md):
``infrastructure`` (:mod:`.infra`) > ``inbound`` (initiated towards a sandbox) > DNS to an unlisted
resolver (``violation``) > ``unknown`` (a proxy flow with no visible target; hosts reaching the
control plane, which the page does not restrict; ICMP) > the rules: ``allowed`` / ``violation``
(control plane and sandbox) or ``allowed`` / ``unknown`` (other hosts, reported at info). An allowed
flow that failed is ``blocked``. Matching runs once per distinct destination, not per flow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..gcpause import paused_gc
from ..model import CoverageEntry, Finding, Observation, Role, Severity
from ..names import attribute
from .coverage import build_coverage
from .dnsfind import lookup_drafts
from .findings import Draft, build_all, group, order
from .flowfind import blocked_drafts, destination_drafts, inbound_drafts, resolver_drafts
from .flowrows import Columns
from .infra import dns_mask, infrastructure_mask
from .match import Match, Matcher
from .observed import Observed
from .outcome import failure_how, flow_notes, lookups, succeeded
from .roles import assign_roles, component_columns
from .rules import CORE_GROUPS, Ruleset
from .scan import scan_findings
from .site import SiteProfile
from .wsfind import websocket_drafts

HELIX = ("control_plane", "sandbox")
#: unexpected_destination severity by (category, state, component); see docs/findings.md
_DEST_SEVERITY = {
    ("unlisted", "established"): Severity.HIGH,
    ("unlisted", "attempted"): Severity.MEDIUM,
}


def _dest_severity() -> dict[tuple[str, str, str], Severity]:
    out = {}
    for cat in ("unlisted", "not_enabled", "upstream", "other_component", "wrong_port"):
        for state in ("established", "attempted"):
            default = Severity.MEDIUM if state == "established" else Severity.LOW
            for comp in HELIX:
                out[(cat, state, comp)] = _DEST_SEVERITY.get((cat, state), default)
    return out


@dataclass(frozen=True)
class Classification:
    flows: pd.DataFrame
    findings: list[Finding]
    coverage: list[CoverageEntry]
    roles: list[Role]


def classify(
    flows: pd.DataFrame,
    observations: Sequence[Observation],
    ruleset: Ruleset,
    site: SiteProfile | None = None,
) -> Classification:
    with paused_gc():
        return _classify(flows, observations, ruleset, site)


def _classify(
    flows: pd.DataFrame, observations: Sequence[Observation], ruleset: Ruleset, site: SiteProfile | None
) -> Classification:
    seen = Observed(flows, observations)
    named = attribute(flows, seen, site)
    roles = assign_roles(named, seen, site)
    named["orig_component"], named["resp_component"] = component_columns(named, roles)
    matcher = Matcher(ruleset, site, [r.address for r in roles if r.component == "control_plane"])
    notes = flow_notes(named, seen)
    _verdicts(named, matcher, site)
    how = failure_how(named, notes)
    named["success"] = succeeded(named, how)
    allowed = named["verdict"].to_numpy() == "allowed"
    named["fail_how"] = pd.Series(how, index=named.index, dtype=object)
    named["how"] = named["fail_how"].where(allowed, None)
    named.loc[allowed & pd.notna(how), "verdict"] = "blocked"
    named["connect_status"] = named["flow_id"].map(notes.connect_status)
    named["tls_alert"] = named["flow_id"].map(notes.tls_alert)
    components = {r.address: r.component for r in roles}
    end = float(named["last_ts"].max()) if len(named) else 0.0
    found = lookups(named, seen, end)
    drafts, scans = _flow_drafts(named, matcher, site)
    drafts += lookup_drafts(found, named, matcher, components)
    drafts += websocket_drafts(named, seen, matcher, components)
    findings = order(build_all(group(drafts)) + scans)
    coverage = build_coverage(named, found, matcher, roles, site)
    keep = [c for c in named.columns if c not in ("category", "explanation", "dest", "state", "success")]
    return Classification(named[keep], findings, coverage, roles)


def _verdicts(named: pd.DataFrame, matcher: Matcher, site: SiteProfile | None) -> None:
    n = len(named)
    verdict = np.full(n, "unknown", dtype=object)
    rule = np.full(n, None, dtype=object)
    category = np.full(n, None, dtype=object)
    explanation = np.full(n, None, dtype=object)
    orig_c = named["orig_component"].to_numpy()
    resp_c = named["resp_component"].to_numpy()
    # DNS and TCP towards a sandbox are connections into it, never resolver or LLMNR infrastructure
    into_sandbox = (resp_c == "sandbox") & (dns_mask(named) | (named["transport"].to_numpy() == "tcp"))
    infra = infrastructure_mask(named, site) & ~into_sandbox
    inbound = ~infra & (resp_c == "sandbox") & (named["orig_h"].to_numpy() != named["resp_h"].to_numpy())
    dns = ~infra & ~inbound & dns_mask(named)
    no_target = named["proxied"].to_numpy() & named["hostname"].isna().to_numpy()
    to_cp = (resp_c == "control_plane") & (orig_c != "sandbox")
    icmp = np.isin(named["transport"].to_numpy(), ("icmp", "icmp6"))
    judge = ~(infra | inbound | dns | no_target | to_cp | icmp)
    verdict[infra], verdict[inbound] = "infrastructure", "inbound"
    verdict[dns & np.isin(orig_c, HELIX)] = "violation"
    rows, group_of, matches = _evaluate(named, judge, matcher)
    if matches:
        verdict[rows] = _per_group(matches, "verdict", group_of)
        rule[rows], category[rows] = (
            _per_group(matches, "rule", group_of),
            _per_group(matches, "category", group_of),
        )
        explanation[rows] = _per_group(matches, "explanation", group_of)
    explanation[inbound] = _legacy_notes(named, inbound, resp_c, matcher)
    rows, group_of, matches = _evaluate(named, dns, matcher)
    if matches:
        unlisted = [
            dataclasses.replace(m, explanation=None) if m.category == "unlisted" else m for m in matches
        ]
        explanation[rows] = _per_group(unlisted, "explanation", group_of)
    other = judge & (orig_c == "other") & (verdict == "violation")
    verdict[other] = "unknown"
    at = np.flatnonzero(other)
    category[at[category[at] == None]] = "unlisted"  # noqa: E711
    named["verdict"], named["rule"], named["category"], named["explanation"] = (
        verdict,
        rule,
        category,
        explanation,
    )


def _legacy_notes(named: pd.DataFrame, mask: np.ndarray, resp_c: np.ndarray, matcher: Matcher) -> np.ndarray:
    """:meth:`Matcher.legacy` of each masked row, asked once per distinct (component, port,
    transport): a SYN scan is a million inbound rows over a few thousand such keys."""
    rows = np.flatnonzero(mask)
    resp_p, transport = named["resp_p"].to_numpy()[rows], named["transport"].to_numpy(dtype=object)[rows]
    c_code, comps = pd.factorize(resp_c[rows], use_na_sentinel=False)
    p_code, ports = pd.factorize(resp_p)
    t_code, transports = pd.factorize(transport, use_na_sentinel=False)
    code, keys = pd.factorize((c_code.astype(np.int64) * len(ports) + p_code) * len(transports) + t_code)
    notes = np.empty(len(keys), dtype=object)
    for g, key in enumerate(keys.tolist()):
        rest, t = divmod(key, len(transports))
        c, p = divmod(rest, len(ports))
        notes[g] = matcher.legacy(comps[c], int(ports[p]), str(transports[t]))
    return notes[code]


_KEY_COLUMNS = (
    "orig_component",
    "names",
    "name_source",
    "hostname",
    "resp_h",
    "resp_component",
    "target_port",
    "transport",
)


def _evaluate(
    named: pd.DataFrame, mask: np.ndarray, matcher: Matcher
) -> tuple[np.ndarray, np.ndarray, list[Match]]:
    """The masked rows' positions, each one's group, and the Match of each group (a distinct
    destination).

    Rows are grouped on integer codes of the key columns (combined column by column); the names
    matched (every DNS name, else the flow's own hostname) are derived once per group.
    """
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return idx, idx, []
    part = {c: named[c].to_numpy(dtype=object)[idx] for c in _KEY_COLUMNS}
    group_of = np.zeros(len(idx), dtype=np.int64)
    span = 1  # group_of < span: codes combine as mixed-radix numbers, re-coded densely before overflow
    for values in part.values():  # missing values: code 0 (one group, as in the sentinel-free codes)
        codes, uniques = pd.factorize(values)  # with a sentinel: no object-array isna() pass first
        if span * (len(uniques) + 1) >= 1 << 62:
            group_of = pd.factorize(group_of)[0]
            span = int(group_of.max()) + 1
        group_of = group_of * (len(uniques) + 1) + codes + 1
        span *= len(uniques) + 1
    group_of = pd.factorize(group_of)[0]  # one code per distinct key, numbered by first row
    # codes number groups by first row, so each group's first row is where its code first appears
    firsts = np.unique(group_of, return_index=True)[1].tolist()
    matches = []
    for at in firsts:
        names, source, host = part["names"][at], part["name_source"][at], part["hostname"][at]
        match_names = tuple(names) if source == "dns_answer" else ((host,) if isinstance(host, str) else ())
        matches.append(
            matcher.evaluate(
                part["orig_component"][at],
                match_names,
                part["resp_h"][at],
                part["resp_component"][at],
                int(part["target_port"][at]),
                part["transport"][at],
            )
        )
    return idx, group_of, matches


def _per_group(matches: list[Match], attr: str, group_of: np.ndarray) -> np.ndarray:
    """Each row's value of its group's Match attribute."""
    return np.array([getattr(m, attr) for m in matches] + [None], dtype=object)[:-1][group_of]


def _flow_drafts(
    named: pd.DataFrame, matcher: Matcher, site: SiteProfile | None
) -> tuple[list[Draft], list[Finding]]:
    """Drafts of the flow findings, and the inbound scans (already findings: :mod:`.scan`)."""
    dest = named["hostname"].fillna(named["resp_h"])
    tcp = named["transport"].to_numpy() == "tcp"
    answered = np.where(tcp, named["synack"].to_numpy() > 0, named["resp_pkts"].to_numpy() > 0)
    success = named["success"].to_numpy()
    verdict = named["verdict"].to_numpy()
    category = named["category"].to_numpy()
    helix = np.isin(named["orig_component"].to_numpy(), HELIX)
    suspect = np.isin(verdict, ["violation", "unknown"])
    dns = dns_mask(named)
    has_category = pd.notna(category)
    dest_rows = ((verdict == "violation") & ~(dns & suspect & ~has_category)) | (
        (verdict == "unknown") & has_category
    )
    inbound = verdict == "inbound"
    blocked = verdict == "blocked"
    state = np.array(["attempted", "established"], dtype=object)[success.astype(np.intp)]
    cols = Columns(named, {"dest": dest.to_numpy(dtype=object), "state": state})
    purposes = {r.id: r.purpose for r in matcher.ruleset.rules}
    core = {r.id for r in matcher.ruleset.rules if r.group in CORE_GROUPS and r.provider is None}
    listed = tuple(str(a) for a in site.dns_servers) if site is not None else ()
    resolvers = dns & (helix | (verdict == "unknown")) & suspect
    inbound_state = np.array(["attempted", "accepted"], dtype=object)[answered.astype(np.intp)]
    scanned, scans = scan_findings(cols, inbound, inbound_state)
    drafts = (
        destination_drafts(cols, dest_rows, _dest_severity())
        + inbound_drafts(cols.replace(state=inbound_state), inbound & ~scanned)
        + blocked_drafts(
            cols.replace(recovered=_recovered(named, dest, success, blocked)), blocked, purposes, core
        )
        + resolver_drafts(cols, resolvers, listed)
    )
    return drafts, scans


def _recovered(named: pd.DataFrame, dest: pd.Series, success: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Per flow (meaningful for blocked ones): did a later flow from the same host to the same
    destination succeed?"""
    out = np.zeros(len(named), dtype=bool)
    if not blocked.any():
        return out
    df = named[["orig_h", "target_port", "first_ts", "verdict"]].assign(dest=dest)
    ok = df[success & (df["verdict"] == "allowed").to_numpy()]
    last_ok = ok.groupby(["orig_h", "dest", "target_port"])["first_ts"].max()
    part = df[blocked]
    keys = pd.MultiIndex.from_frame(part[["orig_h", "dest", "target_port"]])
    later = last_ok.reindex(keys).to_numpy()
    out[blocked] = np.nan_to_num(later, nan=-np.inf) > part["first_ts"].to_numpy()
    return out
