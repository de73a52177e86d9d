"""Rules as data: load and validate ``rules/*.yaml`` (the documented endpoint tables).

``rules/helix.yaml`` holds every row of the published page; ``rules/upstream.yaml`` holds what
Helix's own source uses beyond it (off unless a site enables it; always loaded as knowledge to
explain findings). docs/rules.md documents the fields. Validation reports every problem with file,
line and key (see :mod:`.yamlcheck`); an invalid file raises :class:`RulesError` on load.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import RulesError
from ..model import RulesetInfo
from . import yamlcheck as yc

COMPONENTS = ("control_plane", "sandbox", "any")
CORE_GROUPS = frozenset({"core", "llm-providers"})
CONTROL_PLANE_TOKEN = "{control_plane}"

_RULE_FIELDS = {
    "id": yc.Field(yc.ident, required=True),
    "hostnames": yc.Field(yc.list_of(yc.hostname, "a non-empty list of host names", 1), required=True),
    "ports": yc.Field(yc.list_of(yc.port, "a list of integers 1-65535", 1), required=True),
    "transport": yc.Field(yc.enum("tcp", "udp"), required=True),
    "component": yc.Field(yc.enum(*COMPONENTS), required=True),
    "phase": yc.Field(yc.enum("install", "runtime"), required=True),
    "group": yc.Field(yc.ident, required=True),
    "purpose": yc.Field(yc.string, required=True),
    "source": yc.Field(yc.string, required=True),
    "condition": yc.Field(yc.string),
    "provider": yc.Field(yc.ident),
    "protocol": yc.Field(yc.enum("websocket", "https", "http")),
    "websocket_paths": yc.Field(yc.list_of(yc.string, "a list of paths starting with '/'")),
    "note": yc.Field(yc.string),
}
_PATH_FIELDS = {
    "id": yc.Field(yc.ident, required=True),
    "path": yc.Field(yc.string, required=True),
    "websocket": yc.Field(yc.boolean, required=True),
    "legacy": yc.Field(yc.boolean),
    "purpose": yc.Field(yc.string, required=True),
    "source": yc.Field(yc.string, required=True),
}
_LEGACY_FIELDS = {
    "id": yc.Field(yc.ident, required=True),
    "transport": yc.Field(yc.enum("tcp", "udp"), required=True),
    "ports": yc.Field(yc.list_of(yc.port, "a list of integers 1-65535", 1), required=True),
    "ranges": yc.Field(yc.list_of(yc.list_of(yc.port, "[low, high] ports", 2), "a list of [low, high]")),
    "component": yc.Field(yc.enum(*COMPONENTS), required=True),
    "purpose": yc.Field(yc.string, required=True),
    "source": yc.Field(yc.string, required=True),
}


def _items(fields: dict[str, yc.Field]) -> yc.Check:
    def check(c: yc.Checker, node: Any, key: str) -> Any:
        if not isinstance(node, yaml.SequenceNode):
            c.error(node, key, "expected a list of mappings")
            return yc.MISSING
        return [c.mapping(sub, f"{key}[{i}]", fields) for i, sub in enumerate(node.value)]

    return check


_TOP_FIELDS = {
    "ruleset": yc.Field(yc.ident, required=True),
    "description": yc.Field(yc.string),
    "enabled_by_default": yc.Field(yc.boolean, required=True),
    "source_document": yc.Field(yc.string),
    "rules": yc.Field(_items(_RULE_FIELDS), required=True),
    "paths": yc.Field(_items(_PATH_FIELDS)),
    "legacy_ports": yc.Field(_items(_LEGACY_FIELDS)),
}


@dataclass(frozen=True)
class Rule:
    id: str
    hostnames: tuple[str, ...]
    ports: tuple[int, ...]
    transport: str
    component: str  # control_plane | sandbox | any
    phase: str  # install | runtime
    group: str
    purpose: str
    source: str
    ruleset: str
    condition: str | None = None
    provider: str | None = None
    protocol: str | None = None
    websocket_paths: tuple[str, ...] = ()
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``rules list --json``)."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def applies_to(self, component: str) -> bool:
        return self.component in (component, "any")


@dataclass(frozen=True)
class PathRule:
    id: str
    path: str  # exact path, or a glob with '*'
    websocket: bool
    purpose: str
    source: str
    ruleset: str
    legacy: bool = False


@dataclass(frozen=True)
class LegacyPort:
    id: str
    transport: str
    ports: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...]
    component: str
    purpose: str
    source: str

    def matches(self, transport: str, port: int) -> bool:
        if transport != self.transport:
            return False
        return port in self.ports or any(lo <= port <= hi for lo, hi in self.ranges)


@dataclass(frozen=True)
class Ruleset:
    rules: tuple[Rule, ...]
    paths: tuple[PathRule, ...] = ()
    legacy_ports: tuple[LegacyPort, ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (path, sha256)
    default_on: frozenset[str] = frozenset({"helix"})  # rulesets enabled without a site asking

    @property
    def info(self) -> RulesetInfo:
        return RulesetInfo(files=self.files, rules=len(self.rules))

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(r.group for r in self.rules)

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(r.provider for r in self.rules if r.provider)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(r.ruleset for r in self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def default_rule_files() -> list[Path]:
    """``rules/helix.yaml`` and ``rules/upstream.yaml``: repo checkout first, then package data."""
    repo = Path(__file__).resolve().parents[2] / "rules"
    if (repo / "helix.yaml").is_file():
        return [p for p in (repo / "helix.yaml", repo / "upstream.yaml") if p.is_file()]
    packaged = resources.files("helix_audit") / "rules"
    found = [Path(str(packaged / n)) for n in ("helix.yaml", "upstream.yaml") if (packaged / n).is_file()]
    if not found:
        raise RulesError("rules/helix.yaml: default rules not found (neither in the checkout nor installed)")
    return found


def format_rules_table(ruleset: Ruleset) -> str:
    """The ``rules list`` table (see :mod:`.ruletable`)."""
    from .ruletable import format_rules_table as render

    return render(ruleset)


def validate_rules_file(path: Path | str) -> list[str]:
    """Every problem in one rules file, as ``"file:line: key: message"`` (empty list when valid)."""
    return _parse(Path(path))[1]


def load_rules(paths: list[Path] | None = None) -> Ruleset:
    """Load and merge rules files (default: :func:`default_rule_files`); raise on the first invalid."""
    files = [Path(p) for p in paths] if paths else default_rule_files()
    rules: list[Rule] = []
    path_rules: list[PathRule] = []
    legacy: list[LegacyPort] = []
    default_on: set[str] = set()
    hashes: list[tuple[str, str]] = []
    for path in files:
        parsed, errors = _parse(path)
        if errors or parsed is None:
            raise RulesError("\n".join(errors))
        name = parsed["ruleset"]
        if parsed["enabled_by_default"]:
            default_on.add(name)
        rules += [_rule(r, name) for r in parsed["rules"]]
        path_rules += [PathRule(ruleset=name, **p) for p in parsed.get("paths", [])]
        legacy += [_legacy(x) for x in parsed.get("legacy_ports", [])]
        hashes.append((str(path), hashlib.sha256(path.read_bytes()).hexdigest()))
    _check_unique(rules, files)
    return Ruleset(tuple(rules), tuple(path_rules), tuple(legacy), tuple(hashes), frozenset(default_on))


def _parse(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    label = str(path)
    node = yc.load_nodes(path, label, RulesError)
    checker = yc.Checker(label)
    if node is None:
        return None, [f"{label}:1: (top level): expected a mapping"]
    parsed = checker.mapping(node, "", _TOP_FIELDS)
    if parsed is not None:
        _check_rule_ids(checker, node, parsed)
    return parsed, checker.errors


def _check_rule_ids(c: yc.Checker, node: Any, parsed: dict[str, Any]) -> None:
    seen: set[str] = set()
    rules_node = next((v for k, v in node.value if k.value == "rules"), None)
    for i, rule in enumerate(parsed.get("rules", [])):
        if rule is None or "id" not in rule:
            continue
        sub = rules_node.value[i] if rules_node is not None else node
        if rule["id"] in seen:
            c.error(sub, f"rules[{i}].id", f"duplicate rule id {rule['id']!r}")
        seen.add(rule["id"])
        if bool(rule.get("condition")) != bool(rule.get("provider")):
            c.error(sub, f"rules[{i}]", "condition and provider go together (an 'if configured' row)")
        for path in rule.get("websocket_paths", []):
            if not path.startswith("/"):
                c.error(sub, f"rules[{i}].websocket_paths", "expected a list of paths starting with '/'")


def _check_unique(rules: list[Rule], files: list[Path]) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RulesError(f"{files[-1]}: rule id {rule.id!r} is defined twice across rules files")
        seen.add(rule.id)


def _rule(raw: dict[str, Any], ruleset: str) -> Rule:
    fields = dict(raw)
    for key in ("hostnames", "ports", "websocket_paths"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return Rule(ruleset=ruleset, **fields)


def _legacy(raw: dict[str, Any]) -> LegacyPort:
    ranges = tuple((min(r), max(r)) for r in raw.get("ranges", []))
    return LegacyPort(**{**raw, "ports": tuple(raw["ports"]), "ranges": ranges})
