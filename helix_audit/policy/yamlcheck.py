"""A small schema checker over YAML *nodes*, so every error names file, line and key.

``yaml.compose`` keeps each node's position (``start_mark``); checking nodes rather than loaded
Python values lets a message say ``rules/x.yaml:12: rules[3].ports: expected a list of integers
1-65535``. The rules file and the site profile describe their shape with :class:`Field` tables and
convert nodes to plain values here. (jsonschema would validate the values but loses the lines.)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Check = Callable[["Checker", yaml.Node, str], Any]

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
HOSTNAME_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*\.?$", re.IGNORECASE)
IDENT_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_MISSING = object()


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = False


class Checker:
    """Collects errors as ``"{path}:{line}: {key}: {message}"``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[str] = []

    def error(self, node: yaml.Node | None, key: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.errors.append(f"{self.path}:{line}: {key}: {message}")

    def mapping(self, node: yaml.Node, key: str, fields: dict[str, Field]) -> dict[str, Any] | None:
        """Check a mapping against ``fields``: unknown, duplicate and missing keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, key or "(top level)", "expected a mapping")
            return None
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for knode, vnode in node.value:
            name = str(knode.value)
            sub = f"{key}.{name}" if key else name
            if name in seen:
                self.error(knode, sub, "duplicate key")
                continue
            seen.add(name)
            if name not in fields:
                self.error(knode, sub, f"unknown key (expected one of: {', '.join(fields)})")
                continue
            value = fields[name].check(self, vnode, sub)
            if value is not _MISSING and value is not None:
                out[name] = value
        for name, spec in fields.items():
            if spec.required and name not in seen:
                self.error(node, f"{key}.{name}" if key else name, "required key is missing")
        return out


#: libyaml's loader where PyYAML was built with it (same nodes and marks, ~10x faster to compose).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_nodes(path: Path, label: str, error_type: type[Exception]) -> yaml.Node | None:
    """Compose ``path`` into nodes; unreadable files and YAML syntax errors raise ``error_type``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error_type(f"{label}: cannot read: {exc}") from exc
    try:
        return yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise error_type(f"{label}:{line}: invalid YAML: {problem}") from exc


# --- scalar checks ----------------------------------------------------------------------------


def _scalar(c: Checker, node: yaml.Node, key: str, tag: str, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode) or node.tag != tag:
        c.error(node, key, f"expected {what}")
        return _MISSING
    return node.value


def string(c: Checker, node: yaml.Node, key: str) -> Any:
    value = _scalar(c, node, key, "tag:yaml.org,2002:str", "a string")
    if value is not _MISSING and not value.strip():
        c.error(node, key, "expected a non-empty string")
        return _MISSING
    return value


def boolean(c: Checker, node: yaml.Node, key: str) -> Any:
    value = _scalar(c, node, key, "tag:yaml.org,2002:bool", "true or false")
    return value if value is _MISSING else value.lower() in ("true", "yes", "on")


def ident(c: Checker, node: yaml.Node, key: str) -> Any:
    value = string(c, node, key)
    if value is not _MISSING and not IDENT_RE.match(value):
        c.error(node, key, "expected lower-case letters, digits and '-'")
        return _MISSING
    return value


def enum(*choices: str) -> Check:
    def check(c: Checker, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode) or node.value not in choices:
            c.error(node, key, f"expected one of: {', '.join(choices)}")
            return _MISSING
        return node.value

    return check


def list_of(item: Check, what: str, min_items: int = 0) -> Check:
    """A sequence whose items all pass ``item``; any bad item gives one error naming ``what``."""

    def check(c: Checker, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.SequenceNode) or len(node.value) < min_items:
            c.error(node, key, f"expected {what}")
            return _MISSING
        out = []
        for i, sub in enumerate(node.value):
            probe = Checker(c.path)
            value = item(probe, sub, f"{key}[{i}]")
            if probe.errors or value is _MISSING:
                c.error(sub, key, f"expected {what}")
                return _MISSING
            out.append(value)
        return out

    return check


def port(c: Checker, node: yaml.Node, key: str) -> Any:
    value = _scalar(c, node, key, "tag:yaml.org,2002:int", "an integer 1-65535")
    if value is _MISSING:
        return value
    try:
        number = int(value, 0)
    except ValueError:
        number = -1
    if not 1 <= number <= 65535:
        c.error(node, key, "expected an integer 1-65535")
        return _MISSING
    return number


def hostname(c: Checker, node: yaml.Node, key: str) -> Any:
    """A DNS name, ``*.`` wildcard, IP literal, or the ``{control_plane}`` placeholder."""
    value = string(c, node, key)
    if value is _MISSING:
        return value
    if value == "{control_plane}" or _is_ip(value) or HOSTNAME_RE.match(value):
        return value.lower().rstrip(".")
    c.error(node, key, "expected a host name, '*.' wildcard, IP address or {control_plane}")
    return _MISSING


def network(c: Checker, node: yaml.Node, key: str) -> Any:
    value = string(c, node, key)
    if value is _MISSING:
        return value
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        c.error(node, key, "expected an IP address or CIDR")
        return _MISSING


def address(c: Checker, node: yaml.Node, key: str) -> Any:
    value = string(c, node, key)
    if value is _MISSING:
        return value
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        c.error(node, key, "expected an IP address")
        return _MISSING


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


MISSING = _MISSING
