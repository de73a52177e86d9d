"""Plain-text table of a ruleset, for ``helix-audit rules list``."""

from __future__ import annotations

from .rules import Rule, Ruleset

_HEADERS = ("id", "component", "phase", "group", "hostnames", "ports", "transport", "default", "purpose")


def format_rules_table(ruleset: Ruleset) -> str:
    """One line per rule, columns aligned; ``default`` says whether the rule applies without a site
    profile asking for it (``yes``), only when the profile enables its group, provider or ruleset."""
    rows = [_HEADERS] + [_row(rule, ruleset) for rule in ruleset.rules]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _row(rule: Rule, ruleset: Ruleset) -> tuple[str, ...]:
    return (
        rule.id,
        rule.component,
        rule.phase,
        rule.group,
        ", ".join(rule.hostnames),
        ",".join(str(p) for p in rule.ports),
        rule.transport,
        _default(rule, ruleset),
        rule.purpose,
    )


def _default(rule: Rule, ruleset: Ruleset) -> str:
    if rule.ruleset not in ruleset.default_on:
        return f"no (rulesets: [{rule.ruleset}])"
    if rule.provider:
        return f"no (llm_providers: [{rule.provider}])"
    if rule.group != "core":
        return f"no (optional: [{rule.group}])"
    return "yes"
