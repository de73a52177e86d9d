"""Classification: every flow gets components, a verdict and a rule; findings and coverage follow.

Verdicts, first match wins (docs/findings.md):
``infrastructure`` (:mod:`.infra`) > ``inbound`` (initiated towards a sandbox) > DNS to an unlisted
resolver (``violation``) > ``unknown`` (a proxy flow with no visible target; hosts reaching the
control plane, which the page does not restrict; ICMP) > the rules: ``allowed`` / ``violation``
(control plane and sandbox) or ``allowed`` / ``unknown`` (other hosts, reported at info). An allowed
flow that failed is ``blocked``. Matching runs once per distinct destination, not per flow; the
per-flow questions (transport, component, address) are integer comparisons on :mod:`.flowcodes`
(each text column hashed once), and the text columns written are built from their few values.
"""

from __future__ import annotations

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
from .flowcodes import FlowCodes, TextColumn, dense_codes, few_texts, objects_at, store
from .flowfind import blocked_drafts, destination_drafts, inbound_drafts, resolver_drafts
from .flowrows import Columns
from .infra import dns_mask, infrastructure_mask
from .match import Match, Matcher
from .observed import Observed
from .outcome import FlowNotes, failure_how, flow_notes, lookups, succeeded
from .roles import assign_roles, host_components
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
    """``flows``: the input table plus the policy columns the report writes (hostname,
    name_source, orig_component, resp_component, verdict, rule); the working columns are
    dropped (:data:`INTERNAL`)."""

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
    codes = seen.codes  # ``named`` has the rows and the address / transport columns of ``flows``
    named = attribute(flows, seen, site)  # its name columns Categoricals, target_port resp_p's
    roles = assign_roles(named, seen, site, codes)
    components = {r.address: r.component for r in roles}
    host_comps = host_components(components, codes)  # per distinct address
    for side in ("orig", "resp"):
        store(named, f"{side}_component", codes.per_host_text(host_comps.tolist(), side).column())
    matcher = Matcher(ruleset, site, [r.address for r in roles if r.component == "control_plane"])
    notes = flow_notes(named, seen)
    dns = dns_mask(named, codes)
    verdict = _verdicts(named, matcher, site, codes, host_comps, dns)
    _failures(named, notes, codes, verdict)
    end = float(named["last_ts"].max()) if len(named) else 0.0
    found = lookups(named, seen, end)
    drafts, scans = _flow_drafts(named, matcher, site, codes, host_comps, verdict, dns, notes)
    del dns
    drafts += lookup_drafts(found, named, matcher, components)
    drafts += websocket_drafts(named, seen, matcher, components)
    findings = order(build_all(group(drafts)) + scans)
    coverage = build_coverage(named, found, matcher, roles, site)
    return Classification(named.drop(columns=[c for c in INTERNAL if c in named]), findings, coverage, roles)


#: Columns classification works with but no consumer of the classified table reads (the report
#: writes the flow columns and :data:`report.json_report.POLICY_COLUMNS`): dropped from the table
#: that leaves, which lives for the whole report (~32 B a flow on a SYN scan). The names, proxied and
#: target_port of a flow are :func:`names.attribute`'s output, to ask of it when wanted.
INTERNAL = ("names", "proxied", "target_port", "success", "fail_how", "category", "explanation")


def _failures(named: pd.DataFrame, notes: FlowNotes, codes: FlowCodes, verdict: TextColumn) -> None:
    """Adds success and fail_how (every failure); the allowed flows that failed become
    ``blocked`` (marked in ``verdict`` and the verdict column): their fail_how is how they were
    blocked (no separate column of the allowed flows' failures)."""
    how = failure_how(named, notes, codes)
    store(named, "success", succeeded(named, how, codes))
    _store_coded(named, "fail_how", how)
    at = np.flatnonzero(verdict.mask("allowed"))
    at = at[pd.notna(how[at])]
    if at.shape[0]:
        verdict.set(at, ["blocked"])
        store(named, "verdict", verdict.column())


def _store_coded(
    named: pd.DataFrame, name: str, values: np.ndarray | pd.api.extensions.ExtensionArray
) -> None:
    """Stores the column as a Categorical when it is a few texts (:func:`few_texts`), else as it
    is (a column already in the table stays): on a SYN scan it is 8 B a flow while
    classification peaks."""
    coded = few_texts(values)
    if coded is not None or name not in named:
        store(named, name, values if coded is None else coded)


def _verdicts(
    named: pd.DataFrame,
    matcher: Matcher,
    site: SiteProfile | None,
    codes: FlowCodes,
    components: np.ndarray,
    dns_rows: np.ndarray,
) -> TextColumn:
    """Adds verdict, rule, category and explanation; returns the verdicts (the caller marks the
    blocked ones). ``components``: :func:`host_components`; ``dns_rows``: :func:`dns_mask`."""
    n = len(named)
    verdict, rule, category, notes = TextColumn(n, "unknown"), TextColumn(n), TextColumn(n), TextColumn(n)
    oc, rc, _ = codes.hosts()
    to_sandbox = codes.per_host(components == "sandbox", "resp")
    tcp = codes.equals("transport", "tcp")
    # DNS and TCP towards a sandbox are connections into it, never resolver or LLMNR infrastructure
    into_sandbox = to_sandbox & (dns_rows | tcp)
    infra = infrastructure_mask(named, site, codes, dns_rows) & ~into_sandbox
    inbound = ~infra & to_sandbox & ((oc != rc) | (oc < 0))  # a missing address equals none
    dns = ~infra & ~inbound & dns_rows
    del to_sandbox, tcp, into_sandbox  # each mask a byte a flow: held no longer than needed
    no_target = np.zeros(n, dtype=bool)
    at = np.flatnonzero(named["proxied"].to_numpy())
    no_target[at] = named["hostname"].isna().to_numpy()[at] if at.shape[0] else False
    from_helix = codes.per_host(np.isin(components, HELIX), "orig")
    to_cp = codes.per_host(components == "control_plane", "resp") & ~codes.per_host(
        components == "sandbox", "orig"
    )
    icmp = codes.equals("transport", "icmp", "icmp6")
    judge = ~(infra | inbound | dns | no_target | to_cp | icmp)
    del no_target, to_cp, icmp
    verdict.set(infra, ["infrastructure"])  # masks, not positions: 8 B a flow less on a SYN scan
    del infra
    verdict.set(inbound, ["inbound"])
    verdict.set(dns & from_helix, ["violation"])
    del from_helix
    rows, group_of, matches = _evaluate(named, judge, matcher)
    if matches:
        verdict.set(rows, [m.verdict for m in matches], group_of)
        rule.set(rows, [m.rule for m in matches], group_of)
        category.set(rows, [m.category for m in matches], group_of)
        notes.set(rows, [m.explanation for m in matches], group_of)
    if inbound.any():
        texts, code = _legacy_notes(named, inbound, rc, components, codes, matcher)
        notes.set(inbound, texts, code)
    rows, group_of, matches = _evaluate(named, dns, matcher)
    if matches:
        notes.set(rows, [None if m.category == "unlisted" else m.explanation for m in matches], group_of)
    at = np.flatnonzero(judge & verdict.mask("violation"))
    del judge, inbound, dns
    at = at[codes.per_host(components == "other", "orig")[at]]
    verdict.set(at, ["unknown"])
    category.set(at[category.mask(None)[at]], ["unlisted"])
    del at
    # each column's codes dropped once it is stored (a byte a flow each while the next is built)
    store(named, "verdict", verdict.column())
    store(named, "rule", rule.column())
    del rule
    store(named, "category", category.column())
    del category
    store(named, "explanation", notes.column())
    return verdict


_PORTS = 1 << 16


def _legacy_notes(
    named: pd.DataFrame,
    rows: np.ndarray,
    resp_code: np.ndarray,
    components: np.ndarray,
    codes: FlowCodes,
    matcher: Matcher,
) -> tuple[list[str | None], np.ndarray]:
    """:meth:`Matcher.legacy` of the rows (a mask), asked once per distinct (component, port,
    transport): a SYN scan is a million inbound rows over a few thousand such keys. (The notes,
    each row's.)"""
    comps, c_code = np.unique(components, return_inverse=True)  # per address: its component's code
    c_of = c_code.reshape(-1).astype(np.int32)[resp_code[rows]]
    port = named["resp_p"].to_numpy()[rows]
    t_all, transports = codes.column("transport")
    span = len(transports) + 1
    size = len(comps) * _PORTS * span
    if port.shape[0] > _PORTS and size <= 1 << 22 and port.min() >= 0 and port.max() < _PORTS:
        # many rows (a SYN scan: every row): keys as dense small integers, no hashing, built in
        # place in four bytes a row (the peak of this stage is its temporaries per row)
        dense = c_of
        dense *= _PORTS
        dense += port
        del port
        dense *= span
        dense += t_all[rows]
        dense += 1  # transport code 0: missing
        code, keys = dense_codes(dense, size)
        ports = np.arange(_PORTS)
    else:
        t_of = t_all[rows] + 1  # 0: missing
        p_code, ports = pd.factorize(port)
        code, keys = pd.factorize((c_of.astype(np.int64) * len(ports) + p_code) * span + t_of)
    notes: list[str | None] = []
    for key in keys.tolist():
        rest, t = divmod(key, span)
        c, p = divmod(rest, len(ports))
        transport = transports[t - 1] if t else np.nan
        notes.append(matcher.legacy(comps[c], int(ports[p]), str(transport)))
    return notes, code


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
    group_of = np.zeros(len(idx), dtype=np.int64)
    span = 1  # group_of < span: codes combine as mixed-radix numbers, re-coded densely before overflow
    for c in _KEY_COLUMNS:  # missing values: code 0 (one group, as in the sentinel-free codes)
        codes, count = _row_codes(named[c], idx)
        if span * (count + 1) >= 1 << 62:
            group_of = pd.factorize(group_of)[0]
            span = int(group_of.max()) + 1
        group_of = group_of * (count + 1) + codes + 1
        span *= count + 1
    group_of = pd.factorize(group_of)[0]  # one code per distinct key, numbered by first row
    # codes number groups by first row, so each group's first row is where its code first appears
    firsts = np.unique(group_of, return_index=True)[1]
    part = {c: objects_at(named[c], idx[firsts]) for c in _KEY_COLUMNS}  # each group's first row
    matches = []
    for at in range(firsts.shape[0]):
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


def _row_codes(column: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes of the values at ``rows`` (-1: missing; equal values, equal codes) and their bound: a
    Categorical's own (no object array, no hashing: ~12 ms on the benchmark), else factorised."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return np.asarray(column.array.codes)[rows].astype(np.int64), len(column.dtype.categories)
    codes, uniques = pd.factorize(objects_at(column, rows))  # with a sentinel: no isna() pass first
    return codes, len(uniques)


def _flow_drafts(
    named: pd.DataFrame,
    matcher: Matcher,
    site: SiteProfile | None,
    codes: FlowCodes,
    host_comps: np.ndarray,
    verdicts: TextColumn,
    dns: np.ndarray,
    notes: FlowNotes,
) -> tuple[list[Draft], list[Finding]]:
    """Drafts of the flow findings, and the inbound scans (already findings: :mod:`.scan`).
    ``dns``: :func:`dns_mask`; ``notes``: the CONNECT statuses and TLS alerts a failure cites."""
    # the scan first, before the per-row texts below exist: a SYN scan's peak is its work
    answered = _answered(named, codes)
    is_verdict = verdicts.mask
    inbound = is_verdict("inbound")
    base = Columns(named)
    scanned, scans = scan_findings(base, inbound, answered, codes)
    inbound &= ~scanned
    del scanned
    success = named["success"].to_numpy()
    category = named["category"].to_numpy()
    suspect = is_verdict("violation", "unknown")
    has_category = pd.notna(category)
    dest_rows = (is_verdict("violation") & ~(dns & suspect & ~has_category)) | (
        is_verdict("unknown") & has_category
    )
    del has_category, category
    blocked = is_verdict("blocked")
    # the per-row texts (8 B a flow each) only for the findings that read them: a SYN scan's
    # million inbound rows are its scans, and none of these is wanted
    cols, dest = base, None
    if dest_rows.any() or blocked.any():
        hostname = named["hostname"].to_numpy(dtype=object)
        dest = np.where(pd.isna(hostname), named["resp_h"].to_numpy(dtype=object), hostname)
        del hostname
        cols = base.replace(dest=dest)
    drafts: list[Draft] = []
    if dest_rows.any():
        state = _texts(("attempted", "established"), success)
        drafts += destination_drafts(cols.replace(state=state), dest_rows, _dest_severity(), notes)
    del dest_rows
    if inbound.any():
        drafts += inbound_drafts(cols.replace(state=_texts(("attempted", "accepted"), answered)), inbound)
    del inbound, answered
    if dest is not None and blocked.any():
        purposes = {r.id: r.purpose for r in matcher.ruleset.rules}
        core = {r.id for r in matcher.ruleset.rules if r.group in CORE_GROUPS and r.provider is None}
        recovered = _recovered(named, dest, success & is_verdict("allowed"), blocked, codes)
        drafts += blocked_drafts(cols.replace(recovered=recovered), blocked, purposes, core, notes)
    listed = tuple(str(a) for a in site.dns_servers) if site is not None else ()
    helix = codes.per_host(np.isin(host_comps, HELIX), "orig")
    resolvers = dns & (helix | is_verdict("unknown")) & suspect
    drafts += resolver_drafts(cols, resolvers, listed)
    return drafts, scans


def _answered(named: pd.DataFrame, codes: FlowCodes) -> np.ndarray:
    """Per flow: did the responder answer (TCP: a SYN-ACK; else any packet)?"""
    tcp = codes.equals("transport", "tcp")
    return np.where(tcp, named["synack"].to_numpy() > 0, named["resp_pkts"].to_numpy() > 0)


def _texts(texts: tuple[str, str], which: np.ndarray) -> np.ndarray:
    """Per row, ``texts[1]`` where ``which`` else ``texts[0]`` (object array of the two texts)."""
    return np.array(texts, dtype=object)[which.astype(np.uint8)]


def _recovered(
    named: pd.DataFrame, dest: np.ndarray, ok: np.ndarray, blocked: np.ndarray, codes: FlowCodes
) -> np.ndarray:
    """Per flow (meaningful for blocked ones): did a later flow from the same host to the same
    destination and port succeed (``ok``: succeeded and allowed)?

    ``groupby(["orig_h", "dest", "target_port"])["first_ts"].max()`` of the ok rows, read at the
    blocked rows, on integer codes: a row with a missing host or destination is in no group (as
    the group-by drops it), a group's NaN times are skipped and an all-NaN group is never later."""
    out = np.zeros(len(named), dtype=bool)
    bad = np.flatnonzero(blocked)
    if bad.shape[0] == 0:
        return out
    good = np.flatnonzero(ok)
    rows = np.concatenate([good, bad])
    host = codes.hosts()[0][rows].astype(np.int64)
    dest_code, dests = pd.factorize(dest[rows])
    port_code, _ = pd.factorize(named["target_port"].to_numpy()[rows])
    pair, _ = pd.factorize((host + 1) * (len(dests) + 1) + dest_code + 1)
    group, keys = pd.factorize(pair.astype(np.int64) * (int(port_code.max()) + 1) + port_code)
    valid = (host >= 0) & (dest_code >= 0)
    first = named["first_ts"].to_numpy(dtype=float)
    latest = np.full(len(keys), -np.inf)
    m = good.shape[0]
    np.fmax.at(latest, group[:m][valid[:m]], first[good][valid[:m]])
    later = np.where(valid[m:], latest[group[m:]], -np.inf)
    out[bad] = later > first[bad]
    return out
