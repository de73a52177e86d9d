"""Matching one destination (component, names, address, port) against the rules.

Which rules are *enabled* depends on the site: core rows always (within the site's phase), "if
configured" rows when the profile lists the provider, optional groups when the profile lists the
group, opt-in rulesets (upstream) when the profile lists them. Disabled rules still *explain* a
violation ("listed as optional group git-providers, not enabled by the site profile").

Names matched: when the hostname came from the flow itself (SNI, Host, CONNECT) only that name
counts (an SNI is what the client asked for); when it came from DNS, every name of the CNAME chain
counts. ``*.example.com`` matches any name below example.com, not example.com itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from .rules import CONTROL_PLANE_TOKEN, CORE_GROUPS, Rule, Ruleset
from .site import SiteProfile, parse_ip

COMPONENT_LABEL = {"control_plane": "the control plane", "sandbox": "sandboxes", "any": "any component"}


@dataclass(frozen=True)
class Match:
    verdict: str  # allowed | violation
    category: str  # allowed | unlisted | not_enabled | upstream | other_component | wrong_port
    rule: str | None = None
    explanation: str | None = None


def host_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


@lru_cache(maxsize=1 << 16)
def canon_ip(text: str) -> str:
    """Canonical text of an address (IPv4-mapped IPv6 as IPv4); other text as it is."""
    ip = parse_ip(text)
    return text if ip is None else str(ip)


class Matcher:
    """Evaluates destinations for one (ruleset, site); results are cached per distinct input."""

    def __init__(self, ruleset: Ruleset, site: SiteProfile | None, cp_addresses: Iterable[str]) -> None:
        self.ruleset = ruleset
        self.site = site
        self.cp_names = frozenset(site.control_plane_names) if site else frozenset()
        self.cp_addresses = frozenset(canon_ip(a) for a in cp_addresses)
        self.enabled = tuple(r for r in ruleset.rules if self.disabled_reason(r) is None)
        self._enabled_ids = {id(r) for r in self.enabled}
        # Rules as bits of an int: a destination's candidate rules are the union of those its
        # names match (cached per name tuple), those listing its address, and the control-plane
        # rows when it is the control plane. Results are cached per (component, rules, port, ...).
        rules = ruleset.rules
        self._cp_mask = sum(1 << i for i, r in enumerate(rules) if CONTROL_PLANE_TOKEN in r.hostnames)
        self._literal: dict[str, int] = {}
        for i, r in enumerate(rules):
            for pattern in r.hostnames:
                if pattern != CONTROL_PLANE_TOKEN:
                    self._literal[pattern] = self._literal.get(pattern, 0) | (1 << i)
        self._name_masks: dict[tuple[str, ...], int] = {}
        self._by_mask: dict[int, list[Rule]] = {}
        self._results: dict[tuple[object, ...], Match] = {}

    def disabled_reason(self, rule: Rule) -> str | None:
        site = self.site
        enabled_sets = set(self.ruleset.default_on) | set(site.rulesets if site else ())
        if rule.ruleset not in enabled_sets:
            return f"used by Helix (upstream notes: {_note(rule)}) but not on the published page"
        if site is not None and site.phase not in ("both", rule.phase):
            return f"a {rule.phase}-phase row ({rule.id}) while the site profile declares phase {site.phase}"
        if rule.provider and rule.provider not in (site.llm_providers if site else ()):
            return (
                f"listed on the page for the control plane only 'if configured' ({rule.purpose}); "
                f"the site profile does not list {rule.provider} in llm_providers"
            )
        if (
            rule.ruleset in self.ruleset.default_on
            and rule.group not in CORE_GROUPS
            and (rule.group not in (site.optional if site else ()))
        ):
            return (
                f"listed on the page as optional group {rule.group} ({rule.purpose}), "
                "not enabled by the site profile"
            )
        return None

    def is_control_plane(self, names: Iterable[str], resp_h: str, resp_component: str) -> bool:
        return (
            resp_component == "control_plane"
            or canon_ip(resp_h) in self.cp_addresses
            or any(n in self.cp_names for n in names)
        )

    def hosts_match(self, rule: Rule, names: tuple[str, ...], addr: str, is_cp: bool) -> bool:
        """``addr`` is canonical (:func:`canon_ip`)."""
        for pattern in rule.hostnames:
            if pattern == CONTROL_PLANE_TOKEN:
                if is_cp:
                    return True
            elif pattern == addr or any(host_matches(pattern, n) for n in names):
                return True
        return False

    def evaluate(
        self,
        component: str,
        names: tuple[str, ...],
        resp_h: str,
        resp_component: str,
        port: int,
        transport: str,
    ) -> Match:
        """Allowed by an enabled rule, or the most telling reason why not."""
        is_cp = self.is_control_plane(names, resp_h, resp_component)
        mask = self._name_mask(names) | self._literal.get(canon_ip(resp_h), 0)
        if is_cp:
            mask |= self._cp_mask
        key = (component, mask, port, transport, resp_component)
        found = self._results.get(key)
        if found is None:
            found = self._results[key] = self._judge(component, mask, resp_component, port, transport)
        return found

    def _name_mask(self, names: tuple[str, ...]) -> int:
        mask = self._name_masks.get(names)
        if mask is None:
            mask = 0
            for i, rule in enumerate(self.ruleset.rules):
                patterns = [p for p in rule.hostnames if p != CONTROL_PLANE_TOKEN]
                if any(host_matches(p, n) for p in patterns for n in names):
                    mask |= 1 << i
            self._name_masks[names] = mask
        return mask

    def _judge(self, component: str, mask: int, resp_component: str, port: int, transport: str) -> Match:
        comp = component if component != "other" else None
        candidates = self._by_mask.get(mask)
        if candidates is None:
            candidates = self._by_mask[mask] = [r for i, r in enumerate(self.ruleset.rules) if mask >> i & 1]
        exact = [r for r in candidates if port in r.ports and transport == r.transport]
        for rule in exact:
            if id(rule) in self._enabled_ids and (comp is None or rule.applies_to(comp)):
                return Match("allowed", "allowed", rule.id)
        for rule in exact:
            if comp is None or rule.applies_to(comp):
                reason = self.disabled_reason(rule) or ""
                category = "upstream" if rule.ruleset not in self.ruleset.default_on else "not_enabled"
                return Match("violation", category, rule.id, reason)
        for rule in exact:
            where = COMPONENT_LABEL[rule.component]
            return Match(
                "violation",
                "other_component",
                rule.id,
                f"the page lists this endpoint for {where} only ({rule.purpose})",
            )
        for rule in candidates:
            if comp is None or rule.applies_to(comp):
                ports = "/".join(str(p) for p in rule.ports)
                return Match(
                    "violation",
                    "wrong_port",
                    rule.id,
                    f"the page lists this host on {rule.transport} {ports} only ({rule.purpose})",
                )
        return Match("violation", "unlisted", None, self.legacy(resp_component, port, transport))

    def legacy(self, resp_component: str, port: int, transport: str) -> str | None:
        for legacy in self.ruleset.legacy_ports:
            if legacy.matches(transport, port) and legacy.component in (resp_component, "any"):
                return f"{legacy.purpose} (upstream notes); seeing it suggests an old install"
        return None

    def name_listed(self, name: str) -> Match:
        """For a DNS lookup: is ``name`` in any enabled rule (any component, any port)?"""
        if name in self.cp_names:
            return Match("allowed", "allowed", None)
        rules = [r for r in self.ruleset.rules if any(host_matches(p, name) for p in r.hostnames)]
        for rule in rules:
            if rule in self.enabled:
                return Match("allowed", "allowed", rule.id)
        for rule in rules:
            category = "upstream" if rule.ruleset not in self.ruleset.default_on else "not_enabled"
            return Match("violation", category, rule.id, self.disabled_reason(rule))
        return Match("violation", "unlisted", None, None)


def _note(rule: Rule) -> str:
    return f"{rule.purpose}; {rule.note}" if rule.note else rule.purpose
