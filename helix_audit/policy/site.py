"""The site profile: which addresses are which component, resolvers, proxies, enabled groups.

Shape (docs/site-profile.md)::

    control_plane: {addresses: [10.0.0.2, fd00::2], names: [helix.example.com]}
    sandboxes: {addresses: [10.0.1.0/24]}
    dns_servers: [10.0.0.53]
    proxies: ["10.0.0.3:3128"]
    llm_providers: [openai, anthropic]
    optional: [package-managers, git-providers]
    phase: both            # install | runtime | both
    rulesets: [upstream]   # opt-in rulesets

Unknown keys, wrong types, unknown providers/groups/rulesets are errors naming file, line and key.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import SiteError
from . import yamlcheck as yc
from .rules import CORE_GROUPS, Ruleset, load_rules

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _proxy(c: yc.Checker, node: yaml.Node, key: str) -> Any:
    """``"10.0.0.3:3128"``, ``"[fd00::3]:3128"`` or a bare address (any port)."""
    text = yc.string(c, node, key)
    if text is yc.MISSING:
        return text
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        addr = ipaddress.ip_address(host)
        number = int(port) if port is not None else None
    except ValueError:
        number = -1
    if number is not None and not 1 <= number <= 65535:
        c.error(node, key, "expected ADDRESS:PORT, e.g. 10.0.0.3:3128 or [fd00::3]:3128")
        return yc.MISSING
    return (addr, number)


_NETS = yc.list_of(yc.network, "a list of IP addresses or CIDRs")
_NAMES = yc.list_of(yc.hostname, "a list of host names")


def _section(fields: dict[str, yc.Field]) -> yc.Check:
    return lambda c, node, key: c.mapping(node, key, fields)


_FIELDS = {
    "control_plane": yc.Field(_section({"addresses": yc.Field(_NETS), "names": yc.Field(_NAMES)})),
    "sandboxes": yc.Field(_section({"addresses": yc.Field(_NETS)})),
    "dns_servers": yc.Field(yc.list_of(yc.address, "a list of IP addresses")),
    "proxies": yc.Field(yc.list_of(_proxy, "a list of ADDRESS:PORT")),
    "llm_providers": yc.Field(yc.list_of(yc.ident, "a list of provider names")),
    "optional": yc.Field(yc.list_of(yc.ident, "a list of optional group names")),
    "phase": yc.Field(yc.enum("install", "runtime", "both")),
    "rulesets": yc.Field(yc.list_of(yc.ident, "a list of ruleset names")),
}


@dataclass(frozen=True)
class SiteProfile:
    path: str = ""
    sha256: str = ""
    control_plane_addresses: tuple[IPNetwork, ...] = ()
    control_plane_names: tuple[str, ...] = ()
    sandbox_addresses: tuple[IPNetwork, ...] = ()
    dns_servers: tuple[IPAddress, ...] = ()
    proxies: tuple[tuple[IPAddress, int | None], ...] = ()
    llm_providers: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    phase: str = "both"
    rulesets: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The profile as written (report provenance)."""
        return dict(self.raw)

    def component_of(self, address: str) -> str | None:
        """``control_plane`` / ``sandbox`` for an address the profile places, else None."""
        return self._placed(parse_ip(address))

    def _placed(self, ip: IPAddress | None) -> str | None:
        if ip is None:
            return None
        if any(ip in net for net in self.control_plane_addresses):
            return "control_plane"
        if any(ip in net for net in self.sandbox_addresses):
            return "sandbox"
        return None

    def components_of(self, addresses: Sequence[str]) -> list[str | None]:
        """:meth:`component_of` of each address: the IPv4 ones against the IPv4 networks as
        integer arrays (a capture has thousands of addresses, a profile a few networks)."""
        ips = [parse_ip(a) for a in addresses]
        out: list[str | None] = [None] * len(ips)
        v4 = [i for i, ip in enumerate(ips) if isinstance(ip, ipaddress.IPv4Address)]
        if v4:
            value = np.fromiter((int(ips[i]) for i in v4), dtype=np.uint64, count=len(v4))  # type: ignore[arg-type]
            # the control plane wins where both place an address (as in component_of): set last
            for component, nets in (
                ("sandbox", self.sandbox_addresses),
                ("control_plane", self.control_plane_addresses),
            ):
                hit = np.zeros(len(v4), dtype=bool)
                for net in nets:
                    if net.version == 4:
                        hit |= (value & np.uint64(int(net.netmask))) == np.uint64(int(net.network_address))
                for j in np.flatnonzero(hit).tolist():
                    out[v4[j]] = component
        for i, ip in enumerate(ips):
            if ip is not None and not isinstance(ip, ipaddress.IPv4Address):
                out[i] = self._placed(ip)
        return out

    def is_dns_server(self, address: str) -> bool:
        ip = parse_ip(address)
        return ip is not None and ip in self.dns_servers

    def is_proxy(self, address: str, port: int | None = None) -> bool:
        ip = parse_ip(address)
        return any(ip == a and (p is None or port is None or p == port) for a, p in self.proxies)


@lru_cache(maxsize=1 << 16)  # addresses repeat: one parse per distinct text
def parse_ip(address: str) -> IPAddress | None:
    """The address in ``address`` (IPv4-mapped IPv6 as IPv4), or None when it is not one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def load_site(path: Path | str, ruleset: Ruleset | None = None) -> SiteProfile:
    """Read and validate a site profile; raise :class:`SiteError` listing every problem."""
    path = Path(path)
    label = str(path)
    node = yc.load_nodes(path, label, SiteError)
    checker = yc.Checker(label)
    parsed = checker.mapping(node, "", _FIELDS) if node is not None else {}
    if node is None:
        checker.error(None, "(top level)", "expected a mapping")
    if parsed is not None and node is not None:
        _check_names(checker, node, parsed, ruleset or load_rules())
    if checker.errors or parsed is None:
        raise SiteError("\n".join(checker.errors))
    return _profile(label, path.read_bytes(), parsed)


def _check_names(c: yc.Checker, node: yaml.Node, parsed: dict[str, Any], ruleset: Ruleset) -> None:
    known = {
        "llm_providers": ruleset.providers,
        "optional": ruleset.groups - CORE_GROUPS - ruleset.names,
        "rulesets": ruleset.names - ruleset.default_on,
    }
    for key, allowed in known.items():
        bad = [v for v in parsed.get(key, []) if v not in allowed]
        if bad:
            vnode = next(v for k, v in node.value if k.value == key)
            c.error(vnode, key, f"unknown {bad[0]!r} (expected one of: {', '.join(sorted(allowed))})")


def _profile(label: str, data: bytes, p: dict[str, Any]) -> SiteProfile:
    cp = p.get("control_plane", {})
    return SiteProfile(
        path=label,
        sha256=hashlib.sha256(data).hexdigest(),
        control_plane_addresses=tuple(cp.get("addresses", [])),
        control_plane_names=tuple(cp.get("names", [])),
        sandbox_addresses=tuple(p.get("sandboxes", {}).get("addresses", [])),
        dns_servers=tuple(p.get("dns_servers", [])),
        proxies=tuple(p.get("proxies", [])),
        llm_providers=tuple(p.get("llm_providers", [])),
        optional=tuple(p.get("optional", [])),
        phase=p.get("phase", "both"),
        rulesets=tuple(p.get("rulesets", [])),
        raw=yaml.load(data, Loader=yc.SAFE_LOADER) or {},
    )
